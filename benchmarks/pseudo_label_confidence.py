#!/usr/bin/env python3
"""Where a labeller is confident, are its pseudo-labels right? (Would a confidence threshold clean them?)

A common fix for noisy pseudo-labels is to train only on the voxels whose softmax maximum reaches a threshold. It
helps only if the wrong voxels are the unconfident ones. For one labelling recipe of a finished self-training run
(pseudo_label_quality.py's recipes: teacher, student, final, or NAME=checkpoint) this scores every voxel of the
unlabelled cases against their hidden labels and prints, per threshold and per predicted class, the share of that
class's voxels a threshold would keep and the error rate among the kept ones, plus the share of all wrong voxels it
would drop and of all voxels.

    W=/tmp/dualunc_bench/ACDC_warm_seed0/labeled_7
    DUALUNC_ORACLE_LABELS=/work/shared/datasets/ACDC/labelsTr nnUNet_raw=$W/nnUNet_raw \\
    .venv/bin/python benchmarks/pseudo_label_confidence.py --fold-folder <DualUnc fold folder> --recipe student \\
        --out docs/results/<date>_<experiment>/<name>

The run folder and the datasets are only read.
"""
import argparse
import os
import sys
from typing import Dict, List, Sequence

import numpy as np
import torch
from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pseudo_label_quality import hidden_label_reader, mean_probabilities, mirroring_axes, recipes  # noqa: E402
from ranking_quality import FinishedRun  # noqa: E402
from report_files import print_and_save  # noqa: E402

from nnunetv2_dualunc.evaluation.evaluate_folders import labels_from_dataset_json  # noqa: E402
from nnunetv2_dualunc.inference.predictors import SnapshotPredictor  # noqa: E402
from nnunetv2_dualunc.method.ranking import read_ranking  # noqa: E402
from nnunetv2_dualunc.run_layout import sample_ranking_path  # noqa: E402

DEFAULT_THRESHOLDS = (0.0, 0.6, 0.7, 0.8, 0.9, 0.95)


def confidence_counts(probabilities: np.ndarray, reference: np.ndarray,
                      thresholds: Sequence[float]) -> Dict[str, np.ndarray]:
    """Voxel counts of one case, shaped (threshold, class): "kept" = argmax is the class and the softmax maximum
    reaches the threshold, "wrong" = of those, the reference says otherwise (reference -1, outside the image's
    nonzero region, counts as background as in nnU-Net's training)."""
    label, confidence = probabilities.argmax(0), probabilities.max(0)
    reference = np.where(reference < 0, 0, reference)
    classes = probabilities.shape[0]
    kept = np.zeros((len(thresholds), classes), dtype=np.int64)
    wrong = np.zeros_like(kept)
    for t, threshold in enumerate(thresholds):
        confident = confidence >= threshold
        kept[t] = np.bincount(label[confident], minlength=classes)
        wrong[t] = np.bincount(label[confident & (label != reference)], minlength=classes)
    return {"kept": kept, "wrong": wrong}


def summarise(kept: np.ndarray, wrong: np.ndarray, thresholds: Sequence[float], names: Dict[int, str]) -> List[dict]:
    """One row per threshold, relative to keeping every voxel (the first threshold must be 0)."""
    if thresholds[0] != 0.0:
        raise ValueError("the first threshold must be 0 (all voxels), the reference of the shares")
    rows = []
    for t, threshold in enumerate(thresholds):
        rows.append({
            "threshold": threshold,
            "kept_share": {names.get(c, str(c)): float(kept[t, c] / max(kept[0, c], 1)) for c in range(kept.shape[1])},
            "error_rate_kept": {names.get(c, str(c)): float(wrong[t, c] / max(kept[t, c], 1))
                                for c in range(kept.shape[1])},
            "wrong_dropped_share": float(1 - wrong[t].sum() / max(wrong[0].sum(), 1)),
            "voxels_dropped_share": float(1 - kept[t].sum() / max(kept[0].sum(), 1))})
    return rows


def markdown(rows: List[dict]) -> str:
    classes = list(rows[0]["kept_share"])
    lines = ["| threshold | " + " | ".join(f"{c}: kept, error rate" for c in classes)
             + " | wrong voxels dropped | all voxels dropped |", "|" + "---|" * (3 + len(classes))]
    for row in rows:
        lines.append(f"| {row['threshold']:.2f} | " + " | ".join(
            f"{row['kept_share'][c]:.3f}, {row['error_rate_kept'][c]:.3f}" for c in classes)
            + f" | {row['wrong_dropped_share']:.3f} | {row['voxels_dropped_share']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fold-folder", required=True, help="fold folder of a finished self-training run")
    parser.add_argument("--recipe", default="student",
                        help="the labelling to examine (pseudo_label_quality.py's recipes; default: student, the "
                             "stage-2 labeller)")
    parser.add_argument("--checkpoint", nargs="+", default=[], metavar="NAME=PATH",
                        help="other models' checkpoints, each a recipe called NAME")
    parser.add_argument("--thresholds", nargs="+", type=float, default=list(DEFAULT_THRESHOLDS))
    parser.add_argument("--out", help="write OUT.md and OUT.json")
    args = parser.parse_args(argv)
    run = FinishedRun(args.fold_folder)
    available = recipes(run, dict(item.split("=", 1) for item in args.checkpoint))
    if args.recipe not in available:
        raise SystemExit(f"unknown or unavailable recipe {args.recipe}; this run allows {sorted(available)}")
    description, mirroring, load = available[args.recipe]
    predictor = SnapshotPredictor(run.network(), run.plans_manager, run.configuration_manager, run.dataset_json,
                                  torch.device("cpu"), use_mirroring=mirroring,
                                  mirroring_axes=mirroring_axes(run) if mirroring else None)
    weights = load()
    cases = [r.case for r in read_ranking(sample_ranking_path(run.fold_folder))]
    hidden_label = hidden_label_reader(run)
    dataset = nnUNetDatasetBlosc2(run.unlabelled_preprocessed_folder, cases)
    totals = None
    for i, case in enumerate(cases):
        data = np.asarray(dataset.load_case(case)[0][:])
        counts = confidence_counts(mean_probabilities(predictor, data, weights), hidden_label(case, data.shape[1:])[0],
                                   args.thresholds)
        totals = counts if totals is None else {k: totals[k] + counts[k] for k in counts}
        print(f"[{i + 1}/{len(cases)}] {case}", flush=True)
    _, names = labels_from_dataset_json(run.dataset_json)
    rows = summarise(totals["kept"], totals["wrong"], args.thresholds, {0: "background", **names})
    print_and_save(f"Pseudo-label errors against the labeller's confidence: {args.recipe} ({description}) of "
                   f"{run.fold_folder}, {len(cases)} unlabelled cases\n\n" + markdown(rows),
                   {"fold_folder": run.fold_folder, "recipe": args.recipe, "description": description,
                    "cases": len(cases), "rows": rows}, args.out)


if __name__ == "__main__":
    sys.exit(main())
