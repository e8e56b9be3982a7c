#!/usr/bin/env python3
"""Do the uncertainty maps (`nnunetv2_dualunc predict-uncertainty`) point at the model's mistakes?

For a trained DualUnc model and labelled images it was not trained on (a benchmark's validation cases), this runs
`predict_uncertainty_folder` (segmentations, KL(main || aux) maps, uncertainty_ranking.tsv) and judges the maps
against the references:

- per case: Spearman rank correlation between the case's mean KL over foreground (the ranking's score) and its
  mean Dice over the classes (negative = the ranking puts badly segmented cases first);
- per voxel: AUROC of the KL value for "this voxel is mis-labelled" (0.5 = no better than chance, 1 = every wrong
  voxel more uncertain than every right one), over the voxels that the prediction or the reference labels
  foreground (where almost all mistakes are) and over whole images.

    W=/tmp/dualunc_bench/ACDC_labeled_7_cpu_seed0/labeled_7
    nnUNet_extTrainer=$(.venv/bin/nnunetv2_dualunc trainer-path):benchmarks/ext_trainers \\
    .venv/bin/python benchmarks/uncertainty_quality.py \\
        --model-folder $W/nnUNet_results/Dataset507_ACDC_labeled_7/nnUNetTrainerDualUnc_acdcCPU__nnUNetPlans__2d_cpu \\
        --images $W/nnUNet_raw/Dataset507_ACDC_labeled_7/imagesTr --references $W/references --out /tmp/uq_acdc

Only the cases in --references are predicted (their images are linked into <out>/images); the inputs are only read.
"""
import argparse
import json
import os
from typing import Dict, List, Optional

import numpy as np
import SimpleITK as sitk
import torch
from scipy.stats import rankdata, spearmanr

from nnunetv2_dualunc.evaluation.evaluate_folders import evaluate_folders, labels_from_dataset_json, mean_dice_per_case
from nnunetv2_dualunc.inference.uncertainty_maps import predict_uncertainty_folder, read_uncertainty_ranking
from nnunetv2_dualunc.run_layout import UNCERTAINTY_MAP_SUFFIX, UNCERTAINTY_RANKING_FILE


def auroc(scores: np.ndarray, positive: np.ndarray) -> Optional[float]:
    """Probability that a random positive scores above a random negative (ties count half): Mann-Whitney U."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _link_images(images: str, cases: List[str], file_ending: str, folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    for case in cases:
        channels = sorted(f for f in os.listdir(images) if f.startswith(case + "_") and f.endswith(file_ending))
        if not channels:
            raise FileNotFoundError(f"no image {case}_0000{file_ending} in {images}")
        for name in channels:
            link = os.path.join(folder, name)
            if not os.path.lexists(link):
                os.symlink(os.path.abspath(os.path.join(images, name)), link)


def judge(out: str, references: str, cases: List[str], labels: List[int], file_ending: str) -> Dict:
    scores = {c.case: c.mean_kl_foreground for c in read_uncertainty_ranking(os.path.join(out, UNCERTAINTY_RANKING_FILE))}
    case_dice = mean_dice_per_case(evaluate_folders(out, references, labels, file_ending)["per_case"])
    rho, p = spearmanr([scores[c] for c in cases], [case_dice[c] for c in cases])
    kl_fg, wrong_fg, kl_all, wrong_all = [], [], [], []
    for case in cases:
        kl = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(out, case + UNCERTAINTY_MAP_SUFFIX)))
        prediction = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(out, case + file_ending)))
        reference = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(references, case + file_ending)))
        wrong = prediction != reference
        region = (prediction > 0) | (reference > 0)
        kl_fg.append(kl[region]), wrong_fg.append(wrong[region])
        kl_all.append(kl.ravel()), wrong_all.append(wrong.ravel())
    return {
        "cases": len(cases),
        "spearman_case_score_vs_dice": float(rho), "spearman_p": float(p),
        "mean_dice": float(np.mean(list(case_dice.values()))),
        "auroc_error_foreground_region": auroc(np.concatenate(kl_fg), np.concatenate(wrong_fg)),
        "error_rate_foreground_region": float(np.concatenate(wrong_fg).mean()),
        "auroc_error_whole_image": auroc(np.concatenate(kl_all), np.concatenate(wrong_all)),
        "error_rate_whole_image": float(np.concatenate(wrong_all).mean()),
        "per_case": {c: {"mean_kl_foreground": scores[c], "mean_dice": case_dice[c]} for c in cases},
    }


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-folder", required=True, help="<trainer>__<plans>__<configuration> folder")
    parser.add_argument("--images", required=True, help="folder holding the cases' images (nnU-Net naming)")
    parser.add_argument("--references", required=True, help="reference segmentations; their cases are predicted")
    parser.add_argument("--out", required=True)
    parser.add_argument("-f", nargs="+", default=None, help="folds (default: all found)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tta", action="store_true", help="test-time mirroring (default off, as the benchmarks)")
    args = parser.parse_args(argv)
    with open(os.path.join(args.model_folder, "dataset.json")) as f:
        dataset_json = json.load(f)
    file_ending = dataset_json["file_ending"]
    labels, _ = labels_from_dataset_json(dataset_json)
    cases = sorted(f[: -len(file_ending)] for f in os.listdir(args.references) if f.endswith(file_ending))
    images = os.path.join(args.out, "images")
    _link_images(args.images, cases, file_ending, images)
    folds = [f if f == "all" else int(f) for f in args.f] if args.f else None
    if not os.path.isfile(os.path.join(args.out, UNCERTAINTY_RANKING_FILE)):
        predict_uncertainty_folder(args.model_folder, images, args.out, folds, device=torch.device(args.device),
                                   use_mirroring=args.tta)
    result = judge(args.out, args.references, cases, labels, file_ending)
    result["model_folder"] = os.path.abspath(args.model_folder)
    with open(os.path.join(args.out, "uncertainty_quality.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps({k: v for k, v in result.items() if k != "per_case"}, indent=1))


if __name__ == "__main__":
    main()
