"""Short-budget trainers for the CPU demo (nnunetv2_dualunc demo).

The demo runs the recommended way to use the plugin (README, "Starting from a model you already have"): train
nnUNetTrainer on the labelled cases, then continue that model with unlabelled images
(nnUNetTrainerDualUncWarmStart) and, as the control, without them (nnUNetTrainerContinued), both for the same
WARM_PHASES epochs with the same learning-rate schedule, so that the Dice table compares like with like.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_dualunc.training.budget_variants import budget_variant
from nnunetv2_dualunc.training.continued import nnUNetTrainerContinued
from nnunetv2_dualunc.training.copy_paste import nnUNetTrainerCopyPasteWarmStart
from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
from nnunetv2_dualunc.training.dualunc_copy_paste import nnUNetTrainerDualUncWarmStartCopyPaste
from nnunetv2_dualunc.training.dualunc_copy_paste_pseudo_dice import (
    nnUNetTrainerDualUncWarmStartCopyPastePseudoDice, nnUNetTrainerDualUncWarmStartCopyPastePseudoDiceIfUndersegmented)
from nnunetv2_dualunc.training.dualunc_fg_rank import nnUNetTrainerDualUncWarmStartFgRank
from nnunetv2_dualunc.training.dualunc_pseudo_dice import nnUNetTrainerDualUncWarmStartPseudoDice
from nnunetv2_dualunc.training.dualunc_warm_start import nnUNetTrainerDualUncWarmStart

DEMO_EPOCHS = 10
DEMO_ITERATIONS_PER_EPOCH = 50
DEMO_VAL_ITERATIONS = 2
# checkpoint_latest every few epochs so that an interrupted demo resumes with `nnUNetv2_train ... --c`
DEMO_SAVE_EVERY = 5
#: epochs after the supervised model: adaptation (K = 2 ranking snapshots), stage 1, stage 2
WARM_PHASES = (2, 2, 2)

#: supervised-only nnU-Net with the demo's small training budget: "the model you have"
nnUNetTrainer_demo = budget_variant(nnUNetTrainer, "nnUNetTrainer_demo", DEMO_EPOCHS, DEMO_ITERATIONS_PER_EPOCH,
                                    DEMO_VAL_ITERATIONS, save_every=DEMO_SAVE_EVERY)


def _warm_start_demo(trainer_class: type) -> type:
    """A warm-start trainer at the demo's budget, continuing nnUNetTrainer_demo (K = 2 ranking snapshots)."""
    return budget_variant(trainer_class, f"{trainer_class.__name__}_demo", WARM_PHASES, DEMO_ITERATIONS_PER_EPOCH,
                          DEMO_VAL_ITERATIONS, num_snapshots=2, warm_start_trainer=nnUNetTrainer_demo.__name__)


#: that model continued with the unlabelled images, Eq. 1 / Eq. 6 as the paper writes them
nnUNetTrainerDualUncWarmStart_demo = _warm_start_demo(nnUNetTrainerDualUncWarmStart)
#: the same with nnU-Net's Dice added to the pseudo-label loss (nnUNetTrainerDualUncWarmStartPseudoDice)
nnUNetTrainerDualUncWarmStartPseudoDice_demo = _warm_start_demo(nnUNetTrainerDualUncWarmStartPseudoDice)
#: the same ranking by Eq. 1 per foreground voxel (nnUNetTrainerDualUncWarmStartFgRank)
nnUNetTrainerDualUncWarmStartFgRank_demo = _warm_start_demo(nnUNetTrainerDualUncWarmStartFgRank)
#: the same with copy-paste between the labelled and the pseudo-labelled batch (nnUNetTrainerDualUncWarmStartCopyPaste):
#: the recommended trainer until its pseudo-Dice successor below, and the demo's default until 2026-12-05
nnUNetTrainerDualUncWarmStartCopyPaste_demo = _warm_start_demo(nnUNetTrainerDualUncWarmStartCopyPaste)
#: copy-paste with nnU-Net's Dice on the pseudo-labels (nnUNetTrainerDualUncWarmStartCopyPastePseudoDice): the
#: recommended trainer at the demo's budget and the demo's default (ten runs: +1.6 over the control, 9 of 10 above;
#: docs/BENCHMARKS.md section 8, "ninth sitting")
nnUNetTrainerDualUncWarmStartCopyPastePseudoDice_demo = _warm_start_demo(
    nnUNetTrainerDualUncWarmStartCopyPastePseudoDice)
#: the same, the Dice term kept only where the first pseudo-labels under-segment a class (method/class_volume.py)
nnUNetTrainerDualUncWarmStartCopyPastePseudoDiceIfUndersegmented_demo = _warm_start_demo(
    nnUNetTrainerDualUncWarmStartCopyPastePseudoDiceIfUndersegmented)


def _continued_demo(trainer_class: type) -> type:
    """A supervised continuation of nnUNetTrainer_demo for the warm starts' epochs and learning-rate phases."""
    return budget_variant(trainer_class, f"{trainer_class.__name__}_demo", sum(WARM_PHASES), DEMO_ITERATIONS_PER_EPOCH,
                          DEMO_VAL_ITERATIONS, lr_phases=WARM_PHASES, warm_start_trainer=nnUNetTrainer_demo.__name__)


#: the control: the same model, the same extra epochs and learning-rate schedule, labelled cases only
nnUNetTrainerContinued_demo = _continued_demo(nnUNetTrainerContinued)
#: the same with supervised copy-paste (a second, mixed batch of labelled samples): what a strong supervised recipe
#: gains without any unlabelled image
nnUNetTrainerCopyPasteWarmStart_demo = _continued_demo(nnUNetTrainerCopyPasteWarmStart)
#: DualUnc from scratch with DEMO_EPOCHS x DEMO_ITERATIONS_PER_EPOCH gradient steps, split into pre-training (with 3
#: ranking snapshots), stage 1 and stage 2 (`--methods nnUNetTrainer_demo nnUNetTrainerDualUnc_demo`)
nnUNetTrainerDualUnc_demo = budget_variant(nnUNetTrainerDualUnc, "nnUNetTrainerDualUnc_demo", (5, 2, 3),
                                           DEMO_ITERATIONS_PER_EPOCH, DEMO_VAL_ITERATIONS, num_snapshots=3)
