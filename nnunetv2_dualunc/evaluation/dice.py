"""Per-class Dice between a folder of predicted segmentations and a folder of references.

Kept small on purpose: the demo only needs a Dice table. Empty-structure policy: when a class is absent from
both the reference and the prediction the case scores 1.0 for that class (nothing to find, nothing found);
when it is absent from exactly one of them the case scores 0.0.
"""
import os
from typing import Dict, Sequence

import numpy as np
import SimpleITK as sitk


def dice_score(prediction: np.ndarray, reference: np.ndarray, label: int) -> float:
    """Dice of one label; both empty -> 1.0, exactly one empty -> 0.0."""
    predicted, expected = prediction == label, reference == label
    denominator = int(predicted.sum()) + int(expected.sum())
    if denominator == 0:
        return 1.0
    return 2.0 * int(np.logical_and(predicted, expected).sum()) / denominator


def _read_segmentation(filename: str) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(filename))


def dice_per_class(prediction_folder: str, reference_folder: str, labels: Sequence[int],
                   file_ending: str) -> Dict:
    """Dice for every reference case in reference_folder against the same file name in prediction_folder.

    Returns {"per_case": {case: {label: dice}}, "mean_per_class": {label: mean over cases},
    "mean": mean of mean_per_class}. Predictions without a reference are ignored."""
    labels = [int(label) for label in labels]
    if not labels:
        raise ValueError("labels is empty: pass the foreground label values to evaluate, e.g. [1, 2, 3].")
    if not os.path.isdir(reference_folder):
        raise FileNotFoundError(f"Reference folder {reference_folder} does not exist; pass the folder holding the "
                                f"reference segmentations (e.g. labelsTs).")
    reference_files = sorted(f for f in os.listdir(reference_folder) if f.endswith(file_ending))
    if not reference_files:
        raise FileNotFoundError(f"No reference files ending in '{file_ending}' in {reference_folder}; check the "
                                f"folder and the file_ending argument.")
    per_case = {}
    for filename in reference_files:
        prediction_file = os.path.join(prediction_folder, filename)
        if not os.path.isfile(prediction_file):
            raise FileNotFoundError(f"Missing prediction {prediction_file} for reference "
                                    f"{os.path.join(reference_folder, filename)}; predict every case of the "
                                    f"reference folder into {prediction_folder} first.")
        prediction = _read_segmentation(prediction_file)
        reference = _read_segmentation(os.path.join(reference_folder, filename))
        if prediction.shape != reference.shape:
            raise ValueError(f"Shape mismatch for {filename}: prediction {prediction.shape} vs reference "
                             f"{reference.shape}; predictions must be in the geometry of the reference images.")
        case = filename[:-len(file_ending)]
        per_case[case] = {label: dice_score(prediction, reference, label) for label in labels}
    mean_per_class = {label: float(np.mean([scores[label] for scores in per_case.values()])) for label in labels}
    return {"per_case": per_case, "mean_per_class": mean_per_class,
            "mean": float(np.mean(list(mean_per_class.values())))}
