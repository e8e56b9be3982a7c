"""Per-class Dice of a prediction folder: the demo's view of `evaluate_folders` (same checks, same empty-mask
policy: absent from both -> 1.0, absent from exactly one -> 0.0)."""
from typing import Dict, Sequence

from nnunetv2_dualunc.evaluation.evaluate_folders import evaluate_folders


def dice_per_class(prediction_folder: str, reference_folder: str, labels: Sequence[int],
                   file_ending: str) -> Dict:
    """{"per_case": {case: {label: dice}}, "mean_per_class": {label: mean over cases}, "mean": mean over classes}
    for every reference case; predictions without a reference are ignored."""
    result = evaluate_folders(prediction_folder, reference_folder, labels, file_ending)
    return {"per_case": {case: {label: metrics["dice"] for label, metrics in scores.items()}
                         for case, scores in result["per_case"].items()},
            "mean_per_class": {label: metrics["dice"] for label, metrics in result["mean_per_class"].items()},
            "mean": result["mean"]["dice"]}
