#!/usr/bin/env python3
"""MSD Hippocampus 3D semi-supervised benchmark: 9 and 18 labelled cases, nnU-Net's own 3d_fullres; the four
methods with equal gradient steps; the 20 validation cases evaluated (Dice, Jaccard, HD95, ASD).

    .venv/bin/python benchmarks/hippocampus.py                     # CPU profile, both subsets, all methods
    .venv/bin/python benchmarks/hippocampus.py --labelled labeled_9 --methods supervised dualunc
Re-running a command resumes it. Results: <work>/<subset>/results.md (see docs/BENCHMARKING.md).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ssl_benchmark import BenchmarkSetup, main  # noqa: E402

HIPPOCAMPUS = os.environ.get("HIPPOCAMPUS", "/work/shared/datasets/Hippocampus")
DATASET_IDS = {"labeled_9": 509, "labeled_18": 518}
BATCH_2 = ("3d_fullres", ("-bs", "2", "--batch-size-only"))  # nnU-Net's 3d_fullres network and patch at batch 2
PROFILES = {  # --profile -> (trainer budget profile, configuration, derived from (base, options), device)
    # batch 2: 3x the gradient steps of batch 7 in the same CPU time
    "cpu": ("hippoCPUbs2", "3d_fullres_bs2", BATCH_2, "cpu"),
    "cpu_teacher": ("hippoCPUteacher", "3d_fullres_bs2", BATCH_2, "cpu"),
    # warm-start protocol (issue 11): trains cpu_teacher's supervised model first if it is missing
    "cpu_warm": ("hippoCPUwarm", "3d_fullres_bs2", BATCH_2, "cpu"),
    # the same with stages four times as long (860 steps), where the oracle may have room
    # (docs/log/2026-12-06_hippocampus-longer-stages-and-guarded-dice-term.md)
    "cpu_warm_long": ("hippoCPUwarmLong", "3d_fullres_bs2", BATCH_2, "cpu"),
    # the first CPU profile (batch 7 as planned, 100 steps; docs/log/2026-11-26_hippocampus-cpu-profile.md)
    "cpu-batch7": ("hippoCPU", "3d_fullres", None, "cpu"),
    "paper": ("paper", "3d_fullres", None, "cuda"),
}


def make_setup(labelled_key: str, profile: str) -> BenchmarkSetup:
    budget, configuration, derived_from, device = PROFILES[profile]
    return BenchmarkSetup(
        source=HIPPOCAMPUS, lists_file=os.path.join(HIPPOCAMPUS, "cases.json"), labelled_key=labelled_key,
        dataset_id=DATASET_IDS[labelled_key], dataset_name=f"Hippocampus_{labelled_key}", configuration=configuration,
        profile=budget, derived_from=derived_from, device=device, label_names={1: "anterior", 2: "posterior"})


if __name__ == "__main__":
    main(make_setup, list(DATASET_IDS), list(PROFILES), __doc__)
