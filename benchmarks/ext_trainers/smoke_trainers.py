"""Smoke-run trainers for benchmarks/acdc_smoke.sh (found through nnUNet_extTrainer, like tests/ext_trainers).

Every phase of Algorithm 1 runs (pre-training with 2 snapshots, ranking, pseudo-labelling, stage 1, refresh,
stage 2, final validation), each for a handful of iterations: it checks that the pipeline runs on real data and
measures its cost; its Dice means nothing.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_dualunc.training.budget_variants import budget_variant
from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc

nnUNetTrainerDualUnc_smoke = budget_variant(nnUNetTrainerDualUnc, "nnUNetTrainerDualUnc_smoke", (2, 1, 1), 25, 5,
                                            num_snapshots=2)
#: plain supervised nnU-Net with the smoke run's budget (4 epochs x 25 iterations): the reference for what 100
#: iterations reach without any unlabelled data
nnUNetTrainer_smoke = budget_variant(nnUNetTrainer, "nnUNetTrainer_smoke", 4, 25, 5)
