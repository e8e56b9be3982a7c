"""Kill training with SIGKILL inside pre-training, after stage 1's ranking + pseudo-labelling and before stage 2's
refresh; resume each time with `nnUNetv2_train ... --c`. Every epoch trains once, the ranking and pseudo-labels
are computed once and reused, and the run finishes with a final checkpoint."""
import os
import re
import signal

import torch

from nnunetv2_dualunc.method.ranking import rank_cases, write_ranking
from nnunetv2_dualunc.training.self_training import RANKING_FILE

TRAINER = "nnUNetTrainerDualUnc_kill"  # tests/ext_trainers: epochs 0-1 pre-train, 2 stage 1, 3 stage 2


def test_killed_anywhere_resumes_without_losing_or_repeating_work(planned_workspace, tmp_path):
    ws = planned_workspace
    env = dict(ws.env, DUALUNC_TEST_KILL_POINTS="1,2+,3", DUALUNC_TEST_KILL_MARKERS=str(tmp_path))
    fold = ws.results_folder(TRAINER)
    command = ["nnUNetv2_train", "991", "2d", "all", "-tr", TRAINER, "-device", "cpu"]

    # leftovers of an earlier, finished run in the same fold folder: a fresh run must not reuse them
    os.makedirs(os.path.join(fold, "pseudo_labels", "stage1"), exist_ok=True)
    write_ranking(os.path.join(fold, RANKING_FILE), rank_cases({f"syn_u_{i:03d}": float(i) for i in range(6)}))

    logs = []
    first = ws.run(command, "resume_0.log", env=env, check=False)
    assert first.returncode == -signal.SIGKILL, first.log[-3000:]
    logs.append(first.log)
    ranking_stat = None
    for attempt in range(1, 4):
        proc = ws.run(command + ["--c"], f"resume_{attempt}.log", env=env, check=False)
        logs.append(proc.log)
        if attempt < 3:
            assert proc.returncode == -signal.SIGKILL, proc.log[-3000:]
        else:
            assert proc.returncode == 0, proc.log[-3000:]
        if attempt == 1:  # killed right after stage 1 was prepared
            ranking_stat = os.stat(os.path.join(fold, RANKING_FILE))
    assert sorted(os.listdir(tmp_path)) == ["killed_at_1", "killed_at_2+", "killed_at_3"]
    assert "fresh run: removing the previous run's" in logs[0]

    everything = "\n".join(logs)
    # every epoch was trained exactly once across the four processes
    assert [int(e) for e in re.findall(r": Epoch (\d+)\n", everything)] == [0, 1, 2, 3]
    # ranking and each pseudo-label set were computed once; the resumed runs reused them
    assert everything.count("ranking 6 unlabelled cases") == 1
    assert everything.count("pseudo-labelling 3 cases with the weights after epoch 2") == 1
    assert everything.count("pseudo-labelling 6 cases with the weights after epoch 3") == 1
    assert "using the ranking in" in logs[2] and "using the pseudo-labels in" in logs[2]
    after = os.stat(os.path.join(fold, RANKING_FILE))
    assert (after.st_mtime_ns, after.st_size) == (ranking_stat.st_mtime_ns, ranking_stat.st_size)

    checkpoint = torch.load(os.path.join(fold, "checkpoint_final.pth"), map_location="cpu", weights_only=False)
    assert checkpoint["current_epoch"] == 4 and checkpoint["trainer_name"] == TRAINER
    assert not os.path.exists(os.path.join(fold, "checkpoint_latest.pth"))
    assert not [f for f in os.listdir(fold) if ".tmp" in f]
