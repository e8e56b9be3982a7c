"""Tiny-budget trainers for the integration tests (found through nnUNet_extTrainer like the real ones).

nnUNetTrainerDualUnc_kill sends itself SIGKILL at the start of epoch $DUALUNC_TEST_KILL_AT_EPOCH (or, with
$DUALUNC_TEST_KILL_AT_PHASE_ENTRY, right after entering that epoch's phase, i.e. after ranking/pseudo-labelling),
once: the marker file $DUALUNC_TEST_KILL_MARKER stops it from killing the resumed run.
"""
import os
import signal

from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
from nnunetv2_dualunc.training.self_training import nnUNetTrainerSelfTraining


class nnUNetTrainerDualUnc_test(nnUNetTrainerDualUnc):
    pretrain_epochs, stage1_epochs, stage2_epochs = 2, 1, 1
    num_snapshots = 2
    iterations_per_epoch = 2
    val_iterations_per_epoch = 1


class nnUNetTrainerSelfTraining_test(nnUNetTrainerSelfTraining):
    pretrain_epochs, stage1_epochs, stage2_epochs = 1, 0, 1
    iterations_per_epoch = 2
    val_iterations_per_epoch = 1


class nnUNetTrainerDualUnc_kill(nnUNetTrainerDualUnc_test):
    def on_epoch_start(self):
        kill_epoch = int(os.environ.get("DUALUNC_TEST_KILL_AT_EPOCH", "-1"))
        marker = os.environ.get("DUALUNC_TEST_KILL_MARKER", "")
        due = self.current_epoch == kill_epoch and marker and not os.path.exists(marker)
        after_entry = os.environ.get("DUALUNC_TEST_KILL_AT_PHASE_ENTRY") == "1"
        if due and not after_entry:
            self._die(marker)
        super().on_epoch_start()
        if due and after_entry:
            self._die(marker)

    @staticmethod
    def _die(marker: str) -> None:
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
