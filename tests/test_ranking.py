"""Eq. 1 against hand-computed values, the reliable/unreliable split and the ranking file."""
import json

import pytest
import torch

from nnunetv2_dualunc.method.ranking import (RELIABLE, UNRELIABLE, rank_cases, read_ranking, reliable_cases,
                                             reusable_ranking, sample_uncertainty, write_ranking)
from nnunetv2_dualunc.run_layout import ranking_settings_path


def test_sample_uncertainty_matches_eq1_by_hand():
    teacher = torch.tensor([[0.9, 0.5], [0.1, 0.5]])  # (C=2, 2 voxels)
    s1 = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    s2 = torch.tensor([[0.7, 0.3], [0.3, 0.7]])
    # mean squared difference over the 4 entries
    d1 = (0.4 ** 2 + 0 + 0.4 ** 2 + 0) / 4
    d2 = (0.2 ** 2 + 0.2 ** 2 + 0.2 ** 2 + 0.2 ** 2) / 4
    assert sample_uncertainty(teacher, iter([s1, s2])) == pytest.approx((d1 + d2) / 2, rel=1e-6)


def test_sample_uncertainty_per_foreground_voxel_by_hand():
    teacher = torch.tensor([[0.9, 0.2, 0.4], [0.1, 0.8, 0.6]])  # (C=2, 3 voxels): voxels 1 and 2 are foreground
    earlier = torch.tensor([[0.6, 0.5, 0.4], [0.4, 0.5, 0.6]])
    per_image = (0.3 ** 2 + 0.3 ** 2 + 0 + 0.3 ** 2 + 0.3 ** 2 + 0) / 6
    assert sample_uncertainty(teacher, iter([earlier])) == pytest.approx(per_image, rel=1e-6)
    # the same squared differences, averaged per foreground voxel: x 3 voxels / 2 foreground voxels
    assert sample_uncertainty(teacher, iter([earlier]), per_foreground_voxel=True) == \
        pytest.approx(per_image * 3 / 2, rel=1e-6)
    # a larger structure with the same disagreement per foreground voxel scores the same
    big_teacher = torch.tensor([[0.9, 0.2, 0.4, 0.2, 0.4, 0.9], [0.1, 0.8, 0.6, 0.8, 0.6, 0.1]])
    big_earlier = torch.tensor([[0.6, 0.5, 0.4, 0.5, 0.4, 0.6], [0.4, 0.5, 0.6, 0.5, 0.6, 0.4]])
    assert sample_uncertainty(big_teacher, iter([big_earlier]), per_foreground_voxel=True) == pytest.approx(
        sample_uncertainty(teacher, iter([earlier]), per_foreground_voxel=True), rel=1e-6)
    # no foreground in the teacher's prediction: counted as one voxel, i.e. ranked as very uncertain
    background = torch.tensor([[0.9, 0.8], [0.1, 0.2]])
    assert sample_uncertainty(background, iter([torch.full((2, 2), 0.5)]), per_foreground_voxel=True) == \
        pytest.approx(2 * sample_uncertainty(background, iter([torch.full((2, 2), 0.5)])), rel=1e-6)


def test_sample_uncertainty_needs_an_earlier_snapshot_and_equal_shapes():
    with pytest.raises(ValueError, match="K >= 2"):
        sample_uncertainty(torch.zeros(2, 3), iter([]))
    with pytest.raises(ValueError, match="shape"):
        sample_uncertainty(torch.zeros(2, 3), iter([torch.zeros(2, 4)]))


def test_rank_cases_sorts_ascending_and_splits_half():
    scores = {"c": 0.3, "a": 0.1, "d": 0.4, "b": 0.2, "e": 0.05}
    ranking = rank_cases(scores)
    assert [r.case for r in ranking] == ["e", "a", "b", "c", "d"]
    assert [r.rank for r in ranking] == [1, 2, 3, 4, 5]
    # odd count: ceil(5 / 2) = 3 reliable
    assert [r.subset for r in ranking] == [RELIABLE] * 3 + [UNRELIABLE] * 2
    assert reliable_cases(ranking) == ["e", "a", "b"]


def test_rank_cases_ties_are_broken_by_case_id():
    ranking = rank_cases({"z": 0.1, "y": 0.1, "x": 0.2, "w": 0.1})
    assert [r.case for r in ranking] == ["w", "y", "z", "x"]
    assert reliable_cases(ranking) == ["w", "y"]


def test_rank_cases_rejects_bad_fraction():
    with pytest.raises(ValueError):
        rank_cases({"a": 1.0}, reliable_fraction=0.0)


def test_ranking_file_round_trip(tmp_path):
    ranking = rank_cases({"case_01": 0.125, "case_02": 1e-9, "case_03": 3.5})
    path = tmp_path / "ranking.tsv"
    write_ranking(str(path), ranking)
    assert read_ranking(str(path)) == ranking
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == ["case", "score", "rank", "subset"]
    assert lines[1].split("\t")[0] == "case_02"
    assert not list(tmp_path.glob("*.tmp*"))


def test_read_ranking_rejects_other_files(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="not a ranking file"):
        read_ranking(str(path))


def _trainer_with_ranking_on_disk(tmp_path, reliable_fraction: float, snapshot_epochs=(1, 2), trainer_class=None):
    """A DualUnc trainer object (or one of trainer_class) reduced to what _ensure_ranking reads, with a ranking of 8
    cases already on disk (computed with snapshots (1, 2), the paper's per-case mean and the paper's split)."""
    from nnunetv2_dualunc.method.schedule import StageSchedule
    from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
    from nnunetv2_dualunc.run_layout import SAMPLE_RANKING_FILE

    cases = [f"case_{i}" for i in range(8)]
    write_ranking(str(tmp_path / SAMPLE_RANKING_FILE), rank_cases({c: float(i) for i, c in enumerate(cases)}, 0.5),
                  {"snapshot_epochs": [1, 2], "uncertainty_per_foreground_voxel": False, "reliable_fraction": 0.5})
    trainer = object.__new__(trainer_class or nnUNetTrainerDualUnc)
    trainer.output_folder = str(tmp_path)
    trainer.stage_schedule = StageSchedule(2, 1, 1, explicit_snapshot_epochs=snapshot_epochs)
    trainer.unlabelled_cases = cases
    trainer.reliable_fraction = reliable_fraction
    trainer.print_to_log_file = lambda *args, **kwargs: None
    return trainer, str(tmp_path / SAMPLE_RANKING_FILE)


def _assert_ranking_is_recomputed(trainer) -> None:
    """_ensure_ranking goes on to predict with the snapshots (stopped there) instead of reusing the stored scores."""
    def no_prediction_expected(use_mirroring):
        raise RuntimeError("recomputing")
    trainer._snapshot_predictor = no_prediction_expected
    with pytest.raises(RuntimeError, match="recomputing"):
        trainer._ensure_ranking()


def test_resumed_run_with_another_reliable_fraction_re_splits_the_stored_scores(tmp_path):
    trainer, path = _trainer_with_ranking_on_disk(tmp_path, reliable_fraction=0.25)
    ranking = trainer._ensure_ranking()
    assert reliable_cases(ranking) == ["case_0", "case_1"]  # not the stored split's four
    assert read_ranking(path) == ranking
    assert json.load(open(ranking_settings_path(path)))["reliable_fraction"] == 0.25


def test_stored_scores_of_other_snapshots_are_recomputed(tmp_path):
    trainer, _ = _trainer_with_ranking_on_disk(tmp_path, reliable_fraction=0.5, snapshot_epochs=(1, 2))
    assert trainer._ensure_ranking()  # same snapshots (1, 2): reused without predicting
    trainer.stage_schedule = type(trainer.stage_schedule)(3, 1, 1, explicit_snapshot_epochs=(1, 3))
    _assert_ranking_is_recomputed(trainer)


@pytest.mark.parametrize("warm_start", [False, True])
def test_fg_rank_trainers_do_not_reuse_a_ranking_by_the_papers_mean(tmp_path, warm_start):
    """The per-foreground trainers score Eq. 1 per foreground voxel, so a stored ranking by the paper's per-case
    mean (say, from a run resumed under the other trainer) is recomputed, not reused."""
    from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
    from nnunetv2_dualunc.training.dualunc_warm_start import nnUNetTrainerDualUncWarmStart
    base = nnUNetTrainerDualUncWarmStart if warm_start else nnUNetTrainerDualUnc
    fg_rank = type("FgRank", (base,), {"uncertainty_per_foreground_voxel": True})
    trainer, _ = _trainer_with_ranking_on_disk(tmp_path, 0.5, trainer_class=fg_rank)
    assert trainer.uncertainty_per_foreground_voxel
    _assert_ranking_is_recomputed(trainer)


def test_reusable_ranking_needs_the_settings_file_and_the_same_cases(tmp_path):
    path = str(tmp_path / "ranking.tsv")
    ranking = rank_cases({"a": 0.1, "b": 0.2})
    write_ranking(path, ranking)  # no settings: an older table, never trusted
    assert reusable_ranking(path, {"snapshot_epochs": [1, 2]}, ["a", "b"]) is None
    settings = {"snapshot_epochs": [1, 2], "reliable_fraction": 0.5}
    write_ranking(path, ranking, settings)
    assert reusable_ranking(path, {"snapshot_epochs": [1, 2]}, ["b", "a"]) == (ranking, settings)
    assert reusable_ranking(path, {"snapshot_epochs": [1, 3]}, ["a", "b"]) is None
    assert reusable_ranking(path, {"snapshot_epochs": [1, 2]}, ["a", "b", "c"]) is None
