"""Overlap and surface-distance metrics of one binary structure, as the semi-supervised literature reports them.

Dice, Jaccard, 95 % Hausdorff distance (HD95), average surface distance prediction -> reference (ASD, medpy's
`asd`) and its symmetric version (ASSD), each distance in voxels and in mm. The distances come from
`medpy.metric.binary` (the implementation the ACDC semi-supervised papers cite), so where both masks are non-empty
the numbers are medpy's.

Empty-mask policy (medpy raises on an empty mask, and a missed structure must never look perfect):
- both empty: the structure is correctly absent: Dice = Jaccard = 1, every distance 0;
- exactly one empty: Dice = Jaccard = 0 and every distance = the image diagonal (the largest distance possible
  inside the image), in voxels and in mm; `empty` records which mask was empty, so such cases can be found.
"""
from typing import Dict, Optional, Sequence

import numpy as np
from medpy.metric import binary as medpy_binary

OVERLAP_METRICS = ("dice", "jaccard")
DISTANCE_METRICS = ("hd95", "asd", "assd")
UNITS = ("vox", "mm")
#: every key of `structure_metrics`' result that is a number, in table order
METRIC_KEYS = OVERLAP_METRICS + tuple(f"{m}_{u}" for u in UNITS for m in DISTANCE_METRICS)
_DISTANCE_FUNCTIONS = {"hd95": medpy_binary.hd95, "asd": medpy_binary.asd, "assd": medpy_binary.assd}


def image_diagonal(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Length of the image's diagonal: the distance a missed or hallucinated structure is charged."""
    return float(np.sqrt(np.sum((np.asarray(shape, dtype=np.float64) * np.asarray(spacing, dtype=np.float64)) ** 2)))


def dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Dice of two boolean masks with the empty-mask policy above (both empty: 1, exactly one empty: 0)."""
    predicted_any, reference_any = bool(prediction.any()), bool(reference.any())
    if predicted_any and reference_any:
        return float(medpy_binary.dc(prediction, reference))
    return 1.0 if predicted_any == reference_any else 0.0


def structure_metrics(prediction: np.ndarray, reference: np.ndarray,
                      spacing: Optional[Sequence[float]] = None) -> Dict[str, object]:
    """All metrics of one structure. prediction/reference: boolean masks of equal shape; spacing: mm per voxel in
    the arrays' axis order (for SimpleITK arrays that is the reversed `GetSpacing()`); None means 1 mm."""
    prediction, reference = np.asarray(prediction, dtype=bool), np.asarray(reference, dtype=bool)
    if prediction.shape != reference.shape:
        raise ValueError(f"prediction shape {prediction.shape} != reference shape {reference.shape}")
    spacing = tuple(float(s) for s in (spacing if spacing is not None else (1.0,) * reference.ndim))
    if len(spacing) != reference.ndim:
        raise ValueError(f"spacing {spacing} has {len(spacing)} values for a {reference.ndim}-D mask")
    spacings = {"vox": (1.0,) * reference.ndim, "mm": spacing}
    predicted_any, reference_any = bool(prediction.any()), bool(reference.any())
    result: Dict[str, object] = {"empty": _empty_label(predicted_any, reference_any), "dice": dice(prediction, reference)}
    if predicted_any and reference_any:
        result["jaccard"] = float(medpy_binary.jc(prediction, reference))
        for unit, unit_spacing in spacings.items():
            for name, function in _DISTANCE_FUNCTIONS.items():
                result[f"{name}_{unit}"] = float(function(prediction, reference, voxelspacing=unit_spacing))
        return result
    agree = not predicted_any and not reference_any
    result["jaccard"] = 1.0 if agree else 0.0
    for unit, unit_spacing in spacings.items():
        penalty = 0.0 if agree else image_diagonal(reference.shape, unit_spacing)
        for name in DISTANCE_METRICS:
            result[f"{name}_{unit}"] = penalty
    return result


def _empty_label(predicted_any: bool, reference_any: bool) -> Optional[str]:
    if predicted_any and reference_any:
        return None
    if not predicted_any and not reference_any:
        return "both"
    return "prediction" if reference_any else "reference"
