"""Kill training with SIGKILL inside every step of Algorithm 1 and resume each time with `nnUNetv2_train ... --c`:
while saving a pre-training snapshot, in the middle of the ranking, in the middle of stage 1's pseudo-labelling,
after stage 1 was prepared, and in the middle of stage 2's refresh. The run finishes; every step's result is
computed to completion once and then reused; no half-written file is ever used; the ranking and pseudo-labels
equal those of an uninterrupted computation from the same snapshots; the final checkpoint predicts."""
import os
import re
import signal

import torch

from nnunetv2_dualunc.data.pseudo_labels import completed_cases
from nnunetv2_dualunc.method.ranking import rank_cases, write_ranking
from nnunetv2_dualunc.run_layout import (PSEUDO_LABEL_MANIFEST_FILE, SAMPLE_RANKING_FILE, SNAPSHOT_FOLDER,
                                         pseudo_label_folder)
from test_determinism import assert_same_pseudo_labels, rank_and_pseudo_label_from_snapshots

TRAINER = "nnUNetTrainerDualUnc_kill"  # tests/ext_trainers: epochs 0-1 pre-train, 2 stage 1, 3 stage 2
# one kill per process, in this order (see nnUNetTrainerDualUnc_kill): while saving the teacher (weights after
# 2 epochs), after 2 of 6 cases were ranked, after 1 of 3 stage-1 pseudo-labels, after stage 1 was prepared,
# after 3 of 6 stage-2 pseudo-labels
KILL_POINTS = ("save2", "rank2", "stage1_label1", "2+", "stage2_label3")


def _stat(path: str) -> tuple:
    info = os.stat(path)
    return info.st_mtime_ns, info.st_size


def _files_below(folder: str) -> list:
    return sorted(os.path.relpath(os.path.join(root, f), folder) for root, _, files in os.walk(folder) for f in files)


def test_killed_anywhere_resumes_without_losing_or_repeating_work(planned_workspace, tmp_path):
    ws = planned_workspace
    markers = tmp_path / "markers"
    markers.mkdir()
    env = dict(ws.env, DUALUNC_TEST_KILL_POINTS=",".join(KILL_POINTS), DUALUNC_TEST_KILL_MARKERS=str(markers))
    fold = ws.results_folder(TRAINER)
    snapshots = os.path.join(fold, SNAPSHOT_FOLDER)
    stage1, stage2 = pseudo_label_folder(fold, "stage1"), pseudo_label_folder(fold, "stage2")
    command = ["nnUNetv2_train", "991", "2d", "all", "-tr", TRAINER, "-device", "cpu"]

    # leftovers of an earlier, finished run in the same fold folder: a fresh run must not reuse them
    os.makedirs(stage1, exist_ok=True)
    write_ranking(os.path.join(fold, SAMPLE_RANKING_FILE), rank_cases({f"syn_u_{i:03d}": float(i) for i in range(6)}))

    logs = []
    for attempt in range(len(KILL_POINTS) + 1):
        proc = ws.run(command + (["--c"] if attempt else []), f"resume_{attempt}.log", env=env, check=False)
        logs.append(proc.log)
        expected = -signal.SIGKILL if attempt < len(KILL_POINTS) else 0
        assert proc.returncode == expected, proc.log[-3000:]
        assert sorted(os.listdir(markers)) == sorted(f"killed_at_{p}" for p in KILL_POINTS[:attempt + 1])
        if attempt == 0:  # killed while the teacher's weights were written: only a cut temporary file of them
            left = sorted(os.listdir(snapshots))
            assert len(left) == 2 and re.fullmatch(r"weights_after_epoch_0002\.pth\.tmp\d+", left[1]), left
            assert os.path.getsize(os.path.join(snapshots, left[1])) < \
                os.path.getsize(os.path.join(snapshots, "weights_after_epoch_0001.pth"))
        if attempt == 1:  # killed mid-ranking: nothing of it on disk; the teacher saved again, its leftover gone
            assert not os.path.exists(os.path.join(fold, SAMPLE_RANKING_FILE))
            assert sorted(os.listdir(snapshots)) == ["weights_after_epoch_0001.pth", "weights_after_epoch_0002.pth"]
        if attempt == 2:  # killed mid-labelling: one finished case, no manifest
            assert len(completed_cases(stage1)) == 1
            assert not os.path.exists(os.path.join(stage1, PSEUDO_LABEL_MANIFEST_FILE))
            ranking_stat = _stat(os.path.join(fold, SAMPLE_RANKING_FILE))
        if attempt == 3:
            stage1_stat = _stat(os.path.join(stage1, PSEUDO_LABEL_MANIFEST_FILE))
        if attempt == 4:
            assert len(completed_cases(stage2)) == 3
            assert not os.path.exists(os.path.join(stage2, PSEUDO_LABEL_MANIFEST_FILE))
    assert "fresh run: removing the previous run's" in logs[0]

    everything = "\n".join(logs)
    # epochs: only epoch 1 runs twice, because the kill while saving its weights came before its checkpoint
    assert [int(e) for e in re.findall(r": Epoch (\d+)\n", everything)] == [0, 1, 1, 2, 3]
    # ranking and each pseudo-label set: restarted after a kill inside, finished once, then reused
    assert everything.count("ranking 6 unlabelled cases") == 2
    assert everything.count("ranking written to") == 1 and "ranking written to" in logs[2]
    assert everything.count("pseudo-labelling 3 cases with the weights after epoch 2") == 2
    assert everything.count("pseudo-labelling 6 cases with the weights after epoch 3") == 2
    assert "using the ranking in" in logs[3] and "using the ranking in" in logs[4]
    assert "using the pseudo-labels in" in logs[4]
    assert _stat(os.path.join(fold, SAMPLE_RANKING_FILE)) == ranking_stat
    assert _stat(os.path.join(stage1, PSEUDO_LABEL_MANIFEST_FILE)) == stage1_stat

    # what training used equals an uninterrupted computation from the same snapshot files
    reference = rank_and_pseudo_label_from_snapshots(ws, TRAINER, snapshots, tmp_path / "reference")
    assert open(os.path.join(fold, SAMPLE_RANKING_FILE), "rb").read() == \
        open(os.path.join(reference, SAMPLE_RANKING_FILE), "rb").read()
    for stage in ("stage1", "stage2"):
        assert_same_pseudo_labels(fold, reference, stage)

    checkpoint = torch.load(os.path.join(fold, "checkpoint_final.pth"), map_location="cpu", weights_only=False)
    assert checkpoint["current_epoch"] == 4 and checkpoint["trainer_name"] == TRAINER
    assert not os.path.exists(os.path.join(fold, "checkpoint_latest.pth"))
    assert not [f for f in _files_below(fold) if ".tmp" in f or "/." in f]  # no temporary or staging files left
    predicted = tmp_path / "predicted"
    ws.run(["nnUNetv2_predict", "-i", os.path.join(ws.raw_dataset, "imagesTs"), "-o", str(predicted), "-d", "991",
            "-c", "2d", "-f", "all", "-tr", TRAINER, "-device", "cpu", "--disable_tta"], "resume_predict.log")
    assert sorted(f for f in os.listdir(predicted) if f.endswith(".nii.gz")) == ["syn_t_000.nii.gz",
                                                                                 "syn_t_001.nii.gz"]
