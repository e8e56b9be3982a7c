"""The supervised control of a warm start: the existing model trained on, with its labelled cases alone.

A warm-started semi-supervised run (nnUNetTrainerDualUncWarmStart) gives a model more gradient steps than it had, and
more steps with a restarted learning rate help by themselves (ACDC, docs/log/2026-12-01_acdc-warm-start-protocol.md:
+2 Dice points for supervised training alone). Whether the unlabelled images paid shows only against the same model
trained the same extra epochs with the same learning-rate schedule and no unlabelled data: this trainer. The demo and
the benchmarks compare against it; a user runs it to see the gain on their own data:

    nnUNetv2_train DATASET 2d 0 -tr nnUNetTrainer                  # the model you have
    nnUNetv2_train DATASET 2d 0 -tr nnUNetTrainerDualUncWarmStart  # + unlabelled images
    nnUNetv2_train DATASET 2d 0 -tr nnUNetTrainerContinued         # the same extra epochs without them
"""
from typing import Tuple

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_dualunc.method.schedule import PhasePolyLRScheduler, ScheduleError, StageSchedule
from nnunetv2_dualunc.training.dualunc_warm_start import nnUNetTrainerDualUncWarmStart
from nnunetv2_dualunc.training.warm_start import WarmStartMixin

_MIRRORED = nnUNetTrainerDualUncWarmStart


class nnUNetTrainerContinued(WarmStartMixin, nnUNetTrainer):
    """nnUNetTrainer from the warm-start checkpoint, with one poly learning-rate decay per phase of the mirrored
    semi-supervised trainer (lr_phases: its pre-training / stage 1 / stage 2 epochs) and nothing else changed."""

    lr_phases: Tuple[int, int, int] = (_MIRRORED.pretrain_epochs, _MIRRORED.stage1_epochs, _MIRRORED.stage2_epochs)
    lr_restart_each_phase: bool = _MIRRORED.lr_restart_each_phase  # False: one decay over all of lr_phases

    # nnU-Net records its constructor's arguments by name: the signature is spelled out
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = sum(self.lr_phases)
        self.save_every = 1  # as the semi-supervised trainers: an interruption costs at most one epoch

    def configure_optimizers(self):
        optimizer, _ = super().configure_optimizers()
        if sum(self.lr_phases) != self.num_epochs:
            raise ScheduleError(f"{type(self).__name__}: lr_phases {self.lr_phases} add up to {sum(self.lr_phases)} "
                                f"epochs, num_epochs is {self.num_epochs}; set both to the same budget")
        # the snapshots don't matter here; 2 passes the checks of any phases a semi-supervised trainer can have
        schedule = StageSchedule(*self.lr_phases, num_snapshots=min(2, self.lr_phases[0]))
        return optimizer, PhasePolyLRScheduler(optimizer, self.initial_lr, schedule,
                                               restart_each_phase=self.lr_restart_each_phase)
