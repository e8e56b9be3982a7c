"""Algorithm 1's epoch schedule and the per-phase learning rate."""
import pytest
import torch

from nnunetv2_dualunc.method.schedule import Phase, PhasePolyLRScheduler, ScheduleError, StageSchedule


def test_phases_follow_algorithm_1():
    s = StageSchedule(4, 3, 2, num_snapshots=2)
    assert s.total_epochs == 9
    assert [s.phase_at(e) for e in range(9)] == [Phase.PRETRAIN] * 4 + [Phase.STAGE1] * 3 + [Phase.STAGE2] * 2
    assert s.epoch_in_phase(5) == (Phase.STAGE1, 1, 3)
    assert s.teacher_epoch == 4 and s.student_epoch == 7
    with pytest.raises(ValueError):
        s.phase_at(9)


def test_final_share_counts_whole_epochs_at_the_end_of_the_last_phase():
    s = StageSchedule(3, 5, 5, num_snapshots=3)
    assert [e for e in range(13) if s.in_final_share(e, 0.2)] == [12]
    assert [e for e in range(13) if s.in_final_share(e, 0.4)] == [11, 12]
    assert not any(s.in_final_share(e, 0.0) for e in range(13)) and s.final_share_start(0.0) == 13
    assert [e for e in range(6) if StageSchedule(3, 3, 0, num_snapshots=2).in_final_share(e, 1 / 3)] == [5]
    with pytest.raises(ScheduleError, match=r"\[0, 1\]"):
        s.in_final_share(0, 1.5)


def test_plain_self_training_has_no_stage1_and_no_ranking():
    s = StageSchedule(3, 0, 4)
    assert not s.uses_ranking
    assert [s.phase_at(e) for e in range(7)] == [Phase.PRETRAIN] * 3 + [Phase.STAGE2] * 4
    # stage 2 pseudo-labels then come from the teacher
    assert s.student_epoch == s.teacher_epoch == 3
    assert s.saved_weight_epochs == (3,)


def test_default_snapshots_spread_over_second_half_and_end_with_teacher():
    s = StageSchedule(200, 200, 200, num_snapshots=5)
    assert s.snapshot_epochs == (120, 140, 160, 180, 200)
    assert s.saved_weight_epochs == (120, 140, 160, 180, 200, 400)


def test_short_pretraining_falls_back_to_last_k_epochs():
    assert StageSchedule(5, 1, 1, num_snapshots=5).snapshot_epochs == (1, 2, 3, 4, 5)
    assert StageSchedule(6, 1, 1, num_snapshots=4).snapshot_epochs == (3, 4, 5, 6)


def test_more_snapshots_than_pretraining_epochs_is_refused_with_the_fix():
    with pytest.raises(ScheduleError, match="num_snapshots=5 is more than pretrain_epochs=3"):
        StageSchedule(3, 2, 2, num_snapshots=5)
    with pytest.raises(ScheduleError, match="K >= 2"):
        StageSchedule(3, 2, 2, num_snapshots=1)
    # without ranking, K does not matter
    StageSchedule(3, 0, 2, num_snapshots=50)


def test_initial_weights_come_first_among_the_snapshots_and_are_kept():
    s = StageSchedule(3, 5, 5, num_snapshots=3, include_initial_snapshot=True)
    assert s.snapshot_epochs == (0, 1, 2, 3)
    assert 0 in s.saved_weight_epochs and s.teacher_epoch == 3
    assert StageSchedule(10, 1, 1, explicit_snapshot_epochs=(6, 10), include_initial_snapshot=True
                         ).snapshot_epochs == (0, 6, 10)
    assert 0 not in StageSchedule(3, 5, 5, num_snapshots=3).saved_weight_epochs


def test_explicit_snapshot_epochs_must_end_with_teacher():
    assert StageSchedule(10, 1, 1, explicit_snapshot_epochs=(2, 10, 6)).snapshot_epochs == (2, 6, 10)
    with pytest.raises(ScheduleError):
        StageSchedule(10, 1, 1, explicit_snapshot_epochs=(2, 6))


def test_invalid_budgets():
    with pytest.raises(ScheduleError):
        StageSchedule(0, 1, 1)
    with pytest.raises(ScheduleError):
        StageSchedule(3, 0, 0)


def test_learning_rate_restarts_each_phase():
    s = StageSchedule(4, 2, 2, num_snapshots=2)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = PhasePolyLRScheduler(optimizer, 0.01, s)
    lrs = []
    for epoch in range(s.total_epochs):
        scheduler.step(epoch)
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs[0] == lrs[4] == lrs[6] == pytest.approx(0.01)
    assert lrs[1] == pytest.approx(0.01 * (1 - 1 / 4) ** 0.9)
    assert lrs[5] == pytest.approx(0.01 * (1 - 1 / 2) ** 0.9)
    assert lrs[3] < lrs[2] < lrs[1] < lrs[0]
    assert scheduler.get_last_lr() == [lrs[-1]]


def test_one_learning_rate_decay_over_all_phases_when_restarts_are_off():
    """restart_each_phase=False (the schedule ablation): nnU-Net's poly decay over the total, phases ignored."""
    s = StageSchedule(4, 2, 2, num_snapshots=2)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = PhasePolyLRScheduler(optimizer, 0.01, s, restart_each_phase=False)
    assert [scheduler.lr_at(e) for e in range(8)] == pytest.approx([0.01 * (1 - e / 8) ** 0.9 for e in range(8)])
    scheduler.step(5)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * (3 / 8) ** 0.9)


def test_a_trainer_with_the_old_snapshot_attribute_name_is_refused(planned_workspace, monkeypatch):
    """`snapshot_epochs` was renamed `explicit_snapshot_epochs`: a subclass still setting it would silently get the
    default spread of snapshots."""
    import json
    import os

    from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc

    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(key, planned_workspace.env[key])
    folder = os.path.join(planned_workspace.env["nnUNet_preprocessed"], planned_workspace.dataset)
    dataset_json = json.load(open(os.path.join(folder, "dataset.json")))

    def plans():  # nnU-Net's run_training adds continue_training, and the trainer pops it
        return dict(json.load(open(os.path.join(folder, "nnUNetPlans.json"))), continue_training=False)

    old_style = type("nnUNetTrainerDualUncOldStyle", (nnUNetTrainerDualUnc,), {"snapshot_epochs": (150, 200)})
    with pytest.raises(ScheduleError, match="explicit_snapshot_epochs"):
        old_style(plans(), "2d", 0, dataset_json, torch.device("cpu"))
    assert nnUNetTrainerDualUnc(plans(), "2d", 0, dataset_json, torch.device("cpu")).stage_schedule.snapshot_epochs
