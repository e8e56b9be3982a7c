"""The benchmark scripts' log reading and the budget variants they train (no training here)."""
import json
import os
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCHMARKS)
sys.path.insert(0, os.path.join(BENCHMARKS, "ext_trainers"))

import benchmark_trainers  # noqa: E402
import speed  # noqa: E402
from training_log import phase_timings, schedule_from_log  # noqa: E402

LOG = """\
2026-11-25 10:00:00.000000: Self-training schedule: pre-train 2, stage 1 1, stage 2 1 epochs; snapshots after epochs [1, 2]; 4 unlabelled cases
2026-11-25 10:00:00.500000: Epoch 0
2026-11-25 10:00:10.000000: Epoch time: 10.0 s
2026-11-25 10:00:10.500000: Epoch 1
2026-11-25 10:00:20.000000: Epoch time: 9.0 s
2026-11-25 10:00:20.500000: Epoch 2
2026-11-25 10:00:20.600000: === Algorithm 1: entering phase 'stage1' at epoch 2 ===
2026-11-25 10:00:21.000000: ranking 4 unlabelled cases with snapshots [1, 2]
2026-11-25 10:00:25.000000: ranking written to /x/unlabelled_ranking.tsv
2026-11-25 10:00:25.000000: pseudo-labelling 2 cases with the weights after epoch 2
2026-11-25 10:00:27.000000: phase 'stage1': 2 pseudo-labelled cases in use
2026-11-25 10:00:47.000000: Epoch time: 26.0 s
"""
LOG_RESUMED = """\
2026-11-25 11:00:00.000000: Epoch 3
2026-11-25 11:00:00.000000: === Algorithm 1: entering phase 'stage2' at epoch 3 ===
2026-11-25 11:00:00.000000: pseudo-labelling 4 cases with the weights after epoch 3
2026-11-25 11:00:03.000000: phase 'stage2': 4 pseudo-labelled cases in use
2026-11-25 11:00:25.000000: Epoch time: 24.0 s
2026-11-25 11:00:26.000000: Training done.
2026-11-25 11:00:36.000000: Mean Validation Dice:  0.5
"""


@pytest.fixture
def fold(tmp_path):
    (tmp_path / "training_log_2026_11_25_10_00_00.txt").write_text(LOG)
    (tmp_path / "training_log_2026_11_25_11_00_00.txt").write_text(LOG_RESUMED)
    (tmp_path / "debug.json").write_text(json.dumps({"num_iterations_per_epoch": "50"}))
    return str(tmp_path)


def test_phase_timings_add_up_over_resumed_logs(fold):
    t = phase_timings(fold)
    assert t["run_s"] == 47.0 + 36.0
    assert t["ranking_s"] == 4.0 and t["pseudo_labelling_s"] == 2.0 + 3.0
    # the ranking and pseudo-labelling at a phase's first epoch are not counted as that epoch's training
    assert t["epochs_pretrain_s"] == 19.0 and t["epochs_stage1_s"] == 20.0 and t["epochs_stage2_s"] == 21.0
    assert t["final_validation_s"] == 10.0
    assert t["ranking_and_pseudo_labelling_share"] == pytest.approx(9.0 / 83.0, abs=1e-4)
    assert schedule_from_log(fold) == {"pretrain": 2, "stage1": 1, "stage2": 1}


def test_ranking_share_extrapolates_training_to_the_default_schedule(fold):
    share = speed.ranking_share(fold)
    # per default epoch (250 iterations = 5x this run's 50): pretrain 9.5*5, stage1 20*5, stage2 21*5 seconds
    expected_training = (9.5 * 5 + 20 * 5 + 21 * 5) * 200
    assert share["extrapolated_default_schedule_training_s"] == pytest.approx(expected_training)
    assert share["extrapolated_default_schedule_share"] == pytest.approx(9.0 / (9.0 + expected_training), abs=1e-4)


def test_every_profile_gives_each_method_the_same_number_of_gradient_steps():
    for profile, (epochs, split, iterations, _) in benchmark_trainers.PROFILES.items():
        trainers = {m: getattr(benchmark_trainers, benchmark_trainers.trainer_name(m, profile))
                    for m in benchmark_trainers.METHODS}
        for method, trainer in trainers.items():
            if method == "supervised":
                continue
            assert trainer.pretrain_epochs + trainer.stage1_epochs + trainer.stage2_epochs == epochs
            assert trainer.iterations_per_epoch == iterations
        assert trainers["self_training"].stage1_epochs == 0
        assert (trainers["dualunc"].pretrain_epochs, trainers["dualunc"].stage1_epochs,
                trainers["dualunc"].stage2_epochs) == split
