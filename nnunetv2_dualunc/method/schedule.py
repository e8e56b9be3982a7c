"""Algorithm 1 as an epoch schedule: which phase an epoch belongs to, and which weights must be kept.

    pre-train (labelled only; K snapshots saved)  ->  rank unlabelled cases (Eq. 1)
    -> pseudo-label the reliable half with the teacher -> stage 1 (labelled + reliable)
    -> refresh the pseudo-labels of all unlabelled cases with the student -> stage 2 (labelled + all)

Plain self-training is the same schedule with a zero-length stage 1 (no ranking; the teacher labels every case).
Epoch numbers are nnU-Net's 0-based `current_epoch`; "after epoch count e" means e epochs have completed.
"""
from dataclasses import dataclass, field
from enum import Enum
from typing import Optional, Tuple


class Phase(str, Enum):
    PRETRAIN = "pretrain"
    STAGE1 = "stage1"  # labelled + reliable pseudo-labelled cases
    STAGE2 = "stage2"  # labelled + all pseudo-labelled cases

    @property
    def uses_unlabelled(self) -> bool:
        return self is not Phase.PRETRAIN


class ScheduleError(ValueError):
    """An impossible budget: the message names the trainer attribute to change."""


@dataclass(frozen=True)
class StageSchedule:
    pretrain_epochs: int
    stage1_epochs: int
    stage2_epochs: int
    num_snapshots: int = 5
    # snapshots are spread evenly over the last (1 - snapshot_start_fraction) of pre-training: very early
    # snapshots are uniformly wrong on every case and only add noise to the ranking
    snapshot_start_fraction: float = 0.5
    explicit_snapshot_epochs: Optional[Tuple[int, ...]] = field(default=None)
    # the weights before the first epoch (completed-epoch count 0) as one more, first snapshot: for a warm start
    # that is the loaded model, the end of the teacher's own training (from scratch it would be random weights)
    include_initial_snapshot: bool = False

    def __post_init__(self):
        for name in ("pretrain_epochs", "stage1_epochs", "stage2_epochs"):
            if getattr(self, name) < 0:
                raise ScheduleError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.pretrain_epochs < 1:
            raise ScheduleError("pretrain_epochs must be >= 1: the teacher has to be trained before it can label")
        if self.stage1_epochs + self.stage2_epochs < 1:
            raise ScheduleError("stage1_epochs + stage2_epochs must be >= 1, or nothing learns from unlabelled data")
        if self.uses_ranking:
            self.snapshot_epochs  # validates K against the pre-training length

    @property
    def uses_ranking(self) -> bool:
        return self.stage1_epochs > 0

    @property
    def total_epochs(self) -> int:
        return self.pretrain_epochs + self.stage1_epochs + self.stage2_epochs

    def phase_start(self, phase: Phase) -> int:
        return {Phase.PRETRAIN: 0, Phase.STAGE1: self.pretrain_epochs,
                Phase.STAGE2: self.pretrain_epochs + self.stage1_epochs}[phase]

    def phase_length(self, phase: Phase) -> int:
        return {Phase.PRETRAIN: self.pretrain_epochs, Phase.STAGE1: self.stage1_epochs,
                Phase.STAGE2: self.stage2_epochs}[phase]

    def phase_at(self, epoch: int) -> Phase:
        if not 0 <= epoch < self.total_epochs:
            raise ValueError(f"epoch {epoch} is outside the schedule (0..{self.total_epochs - 1})")
        for phase in (Phase.STAGE2, Phase.STAGE1, Phase.PRETRAIN):
            if self.phase_length(phase) > 0 and epoch >= self.phase_start(phase):
                return phase
        raise AssertionError("unreachable")

    def epoch_in_phase(self, epoch: int) -> Tuple[Phase, int, int]:
        """(phase, 0-based epoch inside it, its length): what a per-phase learning-rate schedule needs."""
        phase = self.phase_at(epoch)
        return phase, epoch - self.phase_start(phase), self.phase_length(phase)

    def final_share_start(self, fraction: float) -> int:
        """The first epoch of the last `fraction` of the final phase, rounded to whole epochs (total_epochs for 0).
        What a switch for the end of training needs, e.g. the unmixed finish of copy-paste."""
        if not 0.0 <= fraction <= 1.0:
            raise ScheduleError(f"a share of the final phase must lie in [0, 1], got {fraction}")
        final = Phase.STAGE2 if self.stage2_epochs else Phase.STAGE1
        return self.total_epochs - round(fraction * self.phase_length(final))

    def in_final_share(self, epoch: int, fraction: float) -> bool:
        return epoch >= self.final_share_start(fraction)

    @property
    def snapshot_epochs(self) -> Tuple[int, ...]:
        """Completed-epoch counts after which the ranking snapshots are saved; the last one is the teacher. K of
        them are taken during pre-training, preceded by 0 (the initial weights) with include_initial_snapshot."""
        initial = (0,) if self.include_initial_snapshot else ()
        return initial + self._trained_snapshot_epochs()

    def _trained_snapshot_epochs(self) -> Tuple[int, ...]:
        k, e = self.num_snapshots, self.pretrain_epochs
        if self.explicit_snapshot_epochs is not None:
            epochs = tuple(sorted(set(self.explicit_snapshot_epochs)))
            if len(epochs) < 2 or epochs[-1] != e or epochs[0] < 1:
                raise ScheduleError(f"snapshot_epochs {self.explicit_snapshot_epochs} must hold >= 2 distinct epoch "
                                    f"counts in 1..{e} and end with pretrain_epochs={e} (the teacher)")
            return epochs
        if k < 2:
            raise ScheduleError(f"num_snapshots={k}: Eq. 1 needs K >= 2 snapshots (earlier ones vs the teacher)")
        if k > e:
            raise ScheduleError(f"num_snapshots={k} is more than pretrain_epochs={e} allows (one snapshot per epoch "
                                f"at most): lower num_snapshots or raise pretrain_epochs")
        start = self.snapshot_start_fraction * e
        spread = tuple(round(start + (e - start) * i / k) for i in range(1, k + 1))
        if len(set(spread)) == k and spread[0] >= 1:
            return spread
        return tuple(range(e - k + 1, e + 1))  # too short to spread: the last K epochs

    @property
    def teacher_epoch(self) -> int:
        return self.pretrain_epochs

    @property
    def student_epoch(self) -> int:
        """Weights that refresh the pseudo-labels for stage 2: the end of stage 1 (the teacher when it is empty)."""
        return self.pretrain_epochs + self.stage1_epochs

    @property
    def saved_weight_epochs(self) -> Tuple[int, ...]:
        """Every completed-epoch count whose weights must be kept on disk for ranking and pseudo-labelling."""
        keep = {self.teacher_epoch, self.student_epoch}
        if self.uses_ranking:
            keep.update(self.snapshot_epochs)
        return tuple(sorted(keep))


class PhasePolyLRScheduler:
    """nnU-Net's poly learning-rate decay, restarted at the start of every phase (restart_each_phase=False: one
    decay over the whole schedule, as nnU-Net's PolyLRScheduler over all epochs).

    In the paper every phase is a full training run (200 epochs each); a single decay over all phases would
    leave the teacher unconverged (high learning rate) at the moment it labels the unlabelled cases.
    Drop-in for nnU-Net's PolyLRScheduler: nnU-Net calls ``step(current_epoch)`` at each epoch start.
    """

    def __init__(self, optimizer, initial_lr: float, schedule: StageSchedule, exponent: float = 0.9,
                 restart_each_phase: bool = True):
        self.optimizer = optimizer
        self.initial_lr = initial_lr
        self.stage_schedule = schedule
        self.exponent = exponent
        self.restart_each_phase = restart_each_phase
        self.step(0)

    def lr_at(self, epoch: int) -> float:
        epoch = min(epoch, self.stage_schedule.total_epochs - 1)
        if self.restart_each_phase:
            _, epoch_in_phase, length = self.stage_schedule.epoch_in_phase(epoch)
        else:
            epoch_in_phase, length = epoch, self.stage_schedule.total_epochs
        return self.initial_lr * (1 - epoch_in_phase / length) ** self.exponent

    def step(self, current_epoch: int) -> None:
        lr = self.lr_at(current_epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self._last_lr = [lr] * len(self.optimizer.param_groups)

    def get_last_lr(self):
        return self._last_lr
