"""Evaluate a folder of predicted segmentations against a folder of references (`nnunetv2_dualunc evaluate`).

Per case and per class every metric of `metrics.structure_metrics`; then the mean over cases per class and the
mean over classes. Writes JSON (everything) and a markdown table (the means). Every problem with the inputs is
found before any metric is computed: missing predictions (all of them listed), and shape or spacing mismatches
(named by case).
"""
import argparse
import json
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from nnunetv2_dualunc.evaluation.metrics import METRIC_KEYS, structure_metrics

METRIC_TITLES = {"dice": "Dice", "jaccard": "Jaccard", "hd95_vox": "HD95 (vox)", "asd_vox": "ASD (vox)",
                 "assd_vox": "ASSD (vox)", "hd95_mm": "HD95 (mm)", "asd_mm": "ASD (mm)", "assd_mm": "ASSD (mm)"}
SPACING_TOLERANCE = 1e-3  # relative; NIfTI headers round-trip spacing through float32


class EvaluationInputError(ValueError):
    """Prediction and reference folders do not match; the message names the case(s) and the fix."""


def _read(filename: str) -> Tuple[np.ndarray, Tuple[float, ...]]:
    """The label array and its spacing in the array's axis order."""
    image = sitk.ReadImage(filename)
    return sitk.GetArrayFromImage(image), tuple(reversed(image.GetSpacing()))


def _header(filename: str) -> Tuple[Tuple[int, ...], Tuple[float, ...]]:
    """Shape and spacing (array axis order) without reading the voxels."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(filename)
    reader.ReadImageInformation()
    return tuple(reversed(reader.GetSize())), tuple(reversed(reader.GetSpacing()))


def match_cases(prediction_folder: str, reference_folder: str, file_ending: str) -> List[str]:
    """Case ids of the reference folder, after checking each has a prediction of the same shape and spacing."""
    for folder, role in ((reference_folder, "reference"), (prediction_folder, "prediction")):
        if not os.path.isdir(folder):
            raise EvaluationInputError(f"The {role} folder {folder} does not exist; pass the folder holding the "
                                       f"{role} segmentations.")
    cases = sorted(f[:-len(file_ending)] for f in os.listdir(reference_folder)
                   if f.endswith(file_ending) and not f.startswith("."))
    if not cases:
        raise EvaluationInputError(f"No reference files ending in '{file_ending}' in {reference_folder}; check the "
                                   f"folder or pass the right file ending (-fe).")
    missing = [c for c in cases if not os.path.isfile(os.path.join(prediction_folder, c + file_ending))]
    if missing:
        raise EvaluationInputError(
            f"{len(missing)} of {len(cases)} reference cases have no prediction in {prediction_folder}: "
            f"{', '.join(c + file_ending for c in missing)}. Predict every case of {reference_folder} (e.g. "
            f"nnUNetv2_predict -i <their images> -o {prediction_folder}) before evaluating.")
    problems = []
    for case in cases:
        predicted_shape, predicted_spacing = _header(os.path.join(prediction_folder, case + file_ending))
        reference_shape, reference_spacing = _header(os.path.join(reference_folder, case + file_ending))
        if predicted_shape != reference_shape:
            problems.append(f"{case}: prediction shape {predicted_shape} != reference shape {reference_shape}")
        elif not np.allclose(predicted_spacing, reference_spacing, rtol=SPACING_TOLERANCE):
            problems.append(f"{case}: prediction spacing {predicted_spacing} != reference spacing "
                            f"{reference_spacing}")
    if problems:
        raise EvaluationInputError(
            "Predictions are not in the geometry of their references:\n  " + "\n  ".join(problems)
            + "\nPredictions must be written in the reference images' geometry (as nnUNetv2_predict does from the "
              "original images); re-predict these cases.")
    return cases


def evaluate_case(prediction_file: str, reference_file: str, labels: Sequence[int]) -> Dict[int, dict]:
    prediction, spacing = _read(prediction_file)
    reference, _ = _read(reference_file)
    return {label: structure_metrics(prediction == label, reference == label, spacing) for label in labels}


def summarise(per_case: Dict[str, Dict[int, dict]], labels: Sequence[int]) -> dict:
    """Mean over cases per class and the mean over classes of those, for every metric."""
    mean_per_class = {label: {key: float(np.mean([scores[label][key] for scores in per_case.values()]))
                              for key in METRIC_KEYS} for label in labels}
    mean = {key: float(np.mean([mean_per_class[label][key] for label in labels])) for key in METRIC_KEYS}
    return {"mean_per_class": mean_per_class, "mean": mean}


def evaluate_folders(prediction_folder: str, reference_folder: str, labels: Sequence[int],
                     file_ending: str = ".nii.gz", num_processes: int = 1) -> dict:
    """{"per_case": {case: {label: metrics}}, "mean_per_class": {label: {metric: mean}}, "mean": {metric: mean},
    "labels", "file_ending", "cases"}. Predictions without a reference are not evaluated."""
    labels = [int(label) for label in labels]
    if not labels or 0 in labels:
        raise EvaluationInputError(f"labels must be the foreground label values to evaluate (e.g. 1 2 3), got "
                                   f"{labels}.")
    cases = match_cases(prediction_folder, reference_folder, file_ending)
    jobs = [(os.path.join(prediction_folder, c + file_ending), os.path.join(reference_folder, c + file_ending),
             labels) for c in cases]
    if num_processes > 1:
        with ProcessPoolExecutor(num_processes) as pool:
            scores = list(pool.map(evaluate_case, *zip(*jobs)))
    else:
        scores = [evaluate_case(*job) for job in jobs]
    per_case = dict(zip(cases, scores))
    return {"per_case": per_case, **summarise(per_case, labels), "labels": labels, "file_ending": file_ending,
            "cases": cases}


def markdown_table(results: Dict[str, dict], label_names: Optional[Dict[int, str]] = None,
                   metrics: Sequence[str] = METRIC_KEYS, digits: int = 4) -> str:
    """One row per (method, class) plus each method's mean. results: {method name: evaluate_folders result}."""
    header = "| method | class | " + " | ".join(METRIC_TITLES[m] for m in metrics) + " |"
    lines = [header, "|" + "---|" * (len(metrics) + 2)]
    for method, result in results.items():
        rows = [(str((label_names or {}).get(int(label), label)), values)
                for label, values in result["mean_per_class"].items()] + [("**mean**", result["mean"])]
        for name, values in rows:
            lines.append(f"| {method} | {name} | " + " | ".join(f"{values[m]:.{digits}f}" for m in metrics) + " |")
    return "\n".join(lines) + "\n"


def mean_dice_per_case(per_case: Dict[str, Dict]) -> Dict[str, float]:
    """Each case's Dice averaged over its classes, from evaluate_folders' (or its JSON's) "per_case"."""
    return {case: float(np.mean([metrics["dice"] for metrics in classes.values()]))
            for case, classes in per_case.items()}


def labels_from_dataset_json(dataset_json: dict, dataset_json_file: str = "dataset.json"
                             ) -> Tuple[List[int], Dict[int, str]]:
    """Foreground labels (ignore label excluded) and their names from an nnU-Net dataset.json's content
    (dataset_json_file only names it in errors)."""
    labels = dataset_json["labels"]
    names = {}
    for name, value in labels.items():
        if name == "background" or name == "ignore":
            continue
        if isinstance(value, (list, tuple)):
            raise EvaluationInputError(f"{dataset_json_file} defines region-based labels ({name}: {value}); this "
                                       f"evaluation needs one integer per class: pass -l explicitly.")
        names[int(value)] = name
    return sorted(names), names


def write_results(result: dict, output_json: str, label_names: Optional[Dict[int, str]] = None) -> str:
    """Write the JSON and, beside it, the markdown table (same name, .md). Returns the table."""
    table = markdown_table({"prediction": result}, label_names)
    os.makedirs(os.path.dirname(os.path.abspath(output_json)), exist_ok=True)
    with open(output_json, "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.splitext(output_json)[0] + ".md", "w") as f:
        f.write(table)
    return table


def evaluate_entry(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog="nnunetv2_dualunc evaluate",
        description="Dice, Jaccard, HD95, ASD (pred->ref, medpy's asd) and ASSD, in voxels and mm, per case and "
                    "class, with means. A structure missed or hallucinated scores Dice 0 and the image diagonal as "
                    "distance; one absent from both scores Dice 1 and distance 0.")
    parser.add_argument("-ref", required=True, help="folder of reference segmentations")
    parser.add_argument("-pred", required=True, help="folder of predicted segmentations (same file names)")
    parser.add_argument("-l", nargs="+", type=int, default=None, help="foreground labels (default: from -djfile)")
    parser.add_argument("-djfile", default=None, help="dataset.json giving labels and their names")
    parser.add_argument("-fe", default=None, help="file ending (default: dataset.json's, else .nii.gz)")
    parser.add_argument("-o", default=None, help="output JSON (default: PRED/metrics.json; the table goes beside "
                                                 "it as .md)")
    parser.add_argument("-np", type=int, default=2, help="processes")
    args = parser.parse_args(argv)
    names: Dict[int, str] = {}
    labels = args.l
    file_ending = args.fe
    if args.djfile is not None:
        with open(args.djfile) as f:
            dataset_json = json.load(f)
        dataset_labels, names = labels_from_dataset_json(dataset_json, args.djfile)
        labels = labels or dataset_labels
        file_ending = file_ending or dataset_json.get("file_ending")
    if not labels:
        parser.error("pass the labels to evaluate with -l (e.g. -l 1 2 3) or a dataset.json with -djfile")
    try:
        result = evaluate_folders(args.pred, args.ref, labels, file_ending or ".nii.gz", args.np)
    except EvaluationInputError as error:
        raise SystemExit(f"ERROR: {error}")
    output = args.o or os.path.join(args.pred, "metrics.json")
    print(write_results(result, output, names))
    print(f"written: {output}")
