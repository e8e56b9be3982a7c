"""Does a labeller under-segment a class? Its pseudo-labels' class shares against the labelled cases' shares.

Why: the Dice term on pseudo-labels (`pseudo_label_dice`, training/dualunc_plus.py) gained where cross entropy leaves
a class too small (ACDC's right ventricle: the stage-1 pseudo-labels hold 0.44-0.82 of the labelled cases' share of
it, and the term brought the predicted RV volume from 0.60-0.91 to 0.71-1.07 of the reference) and cost Dice where
nothing is too small (Hippocampus: 0.94-1.07; the term shrank the predicted hippocampus to 0.93-0.96 of the
reference). docs/log/2026-12-06_hippocampus-longer-stages-and-guarded-dice-term.md. Labelled and unlabelled cases are
assumed to come from one population, so that a class's share of the voxels is about the same in both.
"""
from typing import Dict, Iterable, Optional, Sequence

import numpy as np


def class_shares(segmentations: Iterable[np.ndarray], labels: Sequence[int],
                 ignore_label: Optional[int] = None) -> np.ndarray:
    """Each label's share of all annotated voxels (>= 0 and not ignore_label; nnU-Net marks voxels outside the
    crop mask with -1), pooled over the segmentations, in the order of labels."""
    counts = np.zeros(len(labels), dtype=np.float64)
    annotated = 0
    for segmentation in segmentations:
        segmentation = np.asarray(segmentation)
        counts += [np.count_nonzero(segmentation == label) for label in labels]
        annotated_voxels = segmentation >= 0
        if ignore_label is not None:
            annotated_voxels &= segmentation != ignore_label
        annotated += np.count_nonzero(annotated_voxels)
    if annotated == 0:
        raise ValueError("no annotated voxel in the segmentations: nothing to compute class shares from")
    return counts / annotated


def share_ratios(pseudo_labels: np.ndarray, labelled: np.ndarray, labels: Sequence[int]) -> Dict[int, float]:
    """Per label, its share in the pseudo-labels over its share in the labelled cases (labels absent from the
    labelled cases are left out: there is no reference for them)."""
    return {int(label): float(p / r) for label, p, r in zip(labels, pseudo_labels, labelled) if r > 0}


def undersegmented(ratios: Dict[int, float], min_ratio: float) -> Dict[int, float]:
    """The labels whose pseudo-label share falls below min_ratio times their labelled share."""
    return {label: ratio for label, ratio in ratios.items() if ratio < min_ratio}
