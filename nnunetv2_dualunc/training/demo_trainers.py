"""Short-budget trainers for the CPU demo (nnunetv2_dualunc demo).

The supervised baseline and the DualUnc demo trainer share these budget constants so that both methods take the
same number of gradient steps and the Dice table compares like with like.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_dualunc.training.budget_variants import budget_variant
from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc

DEMO_EPOCHS = 10
DEMO_ITERATIONS_PER_EPOCH = 50
DEMO_VAL_ITERATIONS = 2
# checkpoint_latest every few epochs so that an interrupted demo resumes with `nnUNetv2_train ... --c`
DEMO_SAVE_EVERY = 5

#: supervised-only nnU-Net with the demo's small training budget
nnUNetTrainer_demo = budget_variant(nnUNetTrainer, "nnUNetTrainer_demo", DEMO_EPOCHS, DEMO_ITERATIONS_PER_EPOCH,
                                    DEMO_VAL_ITERATIONS, save_every=DEMO_SAVE_EVERY)
#: DualUnc with the same DEMO_EPOCHS x DEMO_ITERATIONS_PER_EPOCH gradient steps, split into pre-training (with 3
#: ranking snapshots), stage 1 and stage 2
nnUNetTrainerDualUnc_demo = budget_variant(nnUNetTrainerDualUnc, "nnUNetTrainerDualUnc_demo", (5, 2, 3),
                                           DEMO_ITERATIONS_PER_EPOCH, DEMO_VAL_ITERATIONS, num_snapshots=3)
