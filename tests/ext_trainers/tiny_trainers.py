"""Tiny-budget trainers for the integration tests (found through nnUNet_extTrainer like the real ones).

nnUNetTrainerDualUnc_kill kills itself at chosen points, for the resume tests.
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
    """SIGKILLs itself at each point of $DUALUNC_TEST_KILL_POINTS (comma-separated; "E": at the start of epoch E,
    "E+": after epoch E's phase was entered, i.e. after its ranking/pseudo-labelling), once per point: a marker
    file in $DUALUNC_TEST_KILL_MARKERS remembers the points already used, so the resumed run goes on."""

    def on_epoch_start(self):
        self._maybe_die(str(self.current_epoch))
        super().on_epoch_start()
        self._maybe_die(f"{self.current_epoch}+")

    @staticmethod
    def _maybe_die(point: str) -> None:
        points = os.environ.get("DUALUNC_TEST_KILL_POINTS", "").split(",")
        marker = os.path.join(os.environ.get("DUALUNC_TEST_KILL_MARKERS", "."), f"killed_at_{point}")
        if point in points and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
