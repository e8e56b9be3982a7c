#!/usr/bin/env python3
"""ACDC 2D semi-supervised benchmark: 3 and 7 labelled patients; supervised-only, self-training, + sample sorting,
DualUnc with equal gradient steps; validation patients' 3D volumes evaluated (Dice, Jaccard, HD95, ASD).

    .venv/bin/python benchmarks/acdc.py                          # CPU profile (2d_cpu), both subsets, all methods
    .venv/bin/python benchmarks/acdc.py --labelled labeled_7 --methods supervised dualunc
    .venv/bin/python benchmarks/acdc.py --profile gpu --seed 1   # nnU-Net's own 2d on one GPU
Re-running a command resumes it. Results: <work>/<subset>/results.md (see docs/BENCHMARKING.md).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ssl_benchmark import BenchmarkSetup, main  # noqa: E402

ACDC = os.environ.get("ACDC", "/work/shared/datasets/ACDC")
DATASET_IDS = {"labeled_3": 503, "labeled_7": 507, "labeled_14": 514}
BATCH_8 = ("2d", ("-bs", "8"))  # 2d_cpu: nnU-Net's 2d configuration at batch 8
PROFILES = {  # --profile -> (trainer budget profile, configuration, derived from (base, options), device)
    "cpu": ("acdcCPU", "2d_cpu", BATCH_8, "cpu"),
    "cpu_teacher": ("acdcCPUteacher", "2d_cpu", BATCH_8, "cpu"),
    # warm-start protocol (issue 11): trains cpu_teacher's supervised model first if it is missing
    "cpu_warm": ("acdcCPUwarm", "2d_cpu", BATCH_8, "cpu"),
    "cpu_warm_long": ("acdcCPUwarmLong", "2d_cpu", BATCH_8, "cpu"),  # the same, each stage twice as long
    "gpu": ("acdcGPU", "2d", None, "cuda"),
    "paper": ("paper", "2d", None, "cuda"),
}


def make_setup(labelled_key: str, profile: str) -> BenchmarkSetup:
    budget, configuration, derived_from, device = PROFILES[profile]
    return BenchmarkSetup(
        source=ACDC, lists_file=os.path.join(ACDC, "patients.json"), labelled_key=labelled_key,
        dataset_id=DATASET_IDS[labelled_key], dataset_name=f"ACDC_{labelled_key}", configuration=configuration,
        profile=budget, derived_from=derived_from, device=device, label_names={1: "RV", 2: "MYO", 3: "LV"})


if __name__ == "__main__":
    main(make_setup, ["labeled_3", "labeled_7", "labeled_14"][:2], list(PROFILES), __doc__)
