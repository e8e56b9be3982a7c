"""Short-budget trainers for the CPU demo (nnunetv2_dualunc demo).

The demo runs the recommended way to use the plugin (README, "Which trainer"): train nnUNetTrainer on the labelled
cases, then continue that model with the unlabelled images (nnUNetTrainerDualUncPlus) and, as the controls, without
them (nnUNetTrainerContinued, and supervised copy-paste: nnUNetTrainerCopyPasteWarmStart), all for the same
WARM_PHASES epochs with the same learning-rate schedule, so that the Dice table compares like with like.
"""
from typing import Optional

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_dualunc.training.budget_variants import budget_variant
from nnunetv2_dualunc.training.continued import nnUNetTrainerContinued
from nnunetv2_dualunc.training.copy_paste import nnUNetTrainerCopyPasteWarmStart
from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
from nnunetv2_dualunc.training.dualunc_plus import nnUNetTrainerDualUncPlus, nnUNetTrainerDualUncPlusFromCopyPaste
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


def warm_start_demo_variant(trainer_class: type, module: Optional[str] = None,
                            start_model: str = nnUNetTrainer_demo.__name__) -> type:
    """A warm-start trainer at the demo's budget, continuing start_model (default nnUNetTrainer_demo; K = 2 ranking
    snapshots), bound in module (default: this one)."""
    return budget_variant(trainer_class, f"{trainer_class.__name__}_demo", WARM_PHASES, DEMO_ITERATIONS_PER_EPOCH,
                          DEMO_VAL_ITERATIONS, module=module or __name__, num_snapshots=2,
                          warm_start_trainer=start_model)


#: the recommended trainer at the demo's budget: the demo's default (ten runs of 2026-12-05: +1.6 over the control,
#: 9 of 10 above)
nnUNetTrainerDualUncPlus_demo = warm_start_demo_variant(nnUNetTrainerDualUncPlus)
#: that model continued with the unlabelled images, Eq. 1 / Eq. 6 as the paper writes them
nnUNetTrainerDualUncWarmStart_demo = warm_start_demo_variant(nnUNetTrainerDualUncWarmStart)


def _continued_demo(trainer_class: type) -> type:
    """A supervised continuation of nnUNetTrainer_demo for the warm starts' epochs and learning-rate phases."""
    return budget_variant(trainer_class, f"{trainer_class.__name__}_demo", sum(WARM_PHASES), DEMO_ITERATIONS_PER_EPOCH,
                          DEMO_VAL_ITERATIONS, lr_phases=WARM_PHASES, warm_start_trainer=nnUNetTrainer_demo.__name__)


#: the control: the same model, the same extra epochs and learning-rate schedule, labelled cases only
nnUNetTrainerContinued_demo = _continued_demo(nnUNetTrainerContinued)
#: the same with supervised copy-paste (a second, mixed batch of labelled samples): what a strong supervised recipe
#: gains without any unlabelled image
nnUNetTrainerCopyPasteWarmStart_demo = _continued_demo(nnUNetTrainerCopyPasteWarmStart)
#: the recommended recipe continued from that copy-paste model (`--methods ... nnUNetTrainerCopyPasteWarmStart_demo
#: nnUNetTrainerDualUncPlusFromCopyPaste_demo`)
nnUNetTrainerDualUncPlusFromCopyPaste_demo = warm_start_demo_variant(
    nnUNetTrainerDualUncPlusFromCopyPaste, start_model=nnUNetTrainerCopyPasteWarmStart_demo.__name__)
#: DualUnc from scratch with DEMO_EPOCHS x DEMO_ITERATIONS_PER_EPOCH gradient steps, split into pre-training (with 3
#: ranking snapshots), stage 1 and stage 2 (`--methods nnUNetTrainer_demo nnUNetTrainerDualUnc_demo`)
nnUNetTrainerDualUnc_demo = budget_variant(nnUNetTrainerDualUnc, "nnUNetTrainerDualUnc_demo", (5, 2, 3),
                                           DEMO_ITERATIONS_PER_EPOCH, DEMO_VAL_ITERATIONS, num_snapshots=3)
