"""Short-budget trainers for the CPU demo (nnunetv2_dualunc demo).

The supervised baseline and the DualUnc demo trainer share these budget constants so that both methods take the
same number of gradient steps and the Dice table compares like with like.
"""
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc

DEMO_EPOCHS = 10
DEMO_ITERATIONS_PER_EPOCH = 50
DEMO_VAL_ITERATIONS = 2
# checkpoint_latest every few epochs so that an interrupted demo resumes with `nnUNetv2_train ... --c`
DEMO_SAVE_EVERY = 5


class nnUNetTrainer_demo(nnUNetTrainer):
    """Supervised-only nnU-Net with the demo's small training budget."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = DEMO_EPOCHS
        self.num_iterations_per_epoch = DEMO_ITERATIONS_PER_EPOCH
        self.num_val_iterations_per_epoch = DEMO_VAL_ITERATIONS
        self.save_every = DEMO_SAVE_EVERY


class nnUNetTrainerDualUnc_demo(nnUNetTrainerDualUnc):
    """DualUnc with the demo's budget: the same DEMO_EPOCHS x DEMO_ITERATIONS_PER_EPOCH gradient steps as
    nnUNetTrainer_demo, split into pre-training (with 3 ranking snapshots), stage 1 and stage 2."""

    pretrain_epochs, stage1_epochs, stage2_epochs = 5, 2, 3
    num_snapshots = 3
    iterations_per_epoch = DEMO_ITERATIONS_PER_EPOCH
    val_iterations_per_epoch = DEMO_VAL_ITERATIONS

