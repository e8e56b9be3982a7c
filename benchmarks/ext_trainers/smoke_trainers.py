"""Smoke-run trainers for benchmarks/acdc_smoke.sh (found through nnUNet_extTrainer, like tests/ext_trainers).

Every phase of Algorithm 1 runs (pre-training with 2 snapshots, ranking, pseudo-labelling, stage 1, refresh,
stage 2, final validation), each for a handful of iterations: it checks that the pipeline runs on real data and
measures its cost; its Dice means nothing.
"""
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc


class nnUNetTrainerDualUnc_smoke(nnUNetTrainerDualUnc):
    pretrain_epochs, stage1_epochs, stage2_epochs = 2, 1, 1
    num_snapshots = 2
    iterations_per_epoch = 25
    val_iterations_per_epoch = 5


class nnUNetTrainer_smoke(nnUNetTrainer):
    """Plain supervised nnU-Net with the smoke run's budget (4 epochs x 25 iterations): the reference for what
    100 iterations reach without any unlabelled data."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 4
        self.num_iterations_per_epoch = 25
        self.num_val_iterations_per_epoch = 5
