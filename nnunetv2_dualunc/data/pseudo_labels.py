"""Pseudo-labelled cases stored as nnU-Net preprocessed cases, in a folder of their own per stage.

A pseudo-labelled case is the unlabelled case's preprocessed image plus the teacher's (or student's) argmax as
its segmentation, saved with nnU-Net's Blosc2 dataset class so nnU-Net's data loader and augmentation read it
like any training case. Crash safety: every case is written in a hidden temporary folder and moved in with the
.pkl last, and the folder only counts as complete once its manifest (written last, atomically) exists.
The manifest records which fold, configuration, plans and weights produced the labels, so labels of another
run are never mixed in.
"""
import json
import os
import shutil
import warnings
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np
from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor

from nnunetv2_dualunc.atomic_files import atomic_write_json
from nnunetv2_dualunc.data.case_files import write_case_atomically
from nnunetv2_dualunc.data.checks import describe_problems, unreadable_cases
from nnunetv2_dualunc.run_layout import PSEUDO_LABEL_MANIFEST_FILE

_STAGING_PREFIX = ".writing_"
# the provenance keys that must match before existing pseudo-labels are reused
PROVENANCE_KEYS = ("dataset", "configuration", "plans", "fold", "trainer", "stage", "weights_epoch")


class PseudoLabelMismatchError(RuntimeError):
    """Pseudo-labels in the folder were made by another run (fold, configuration, plans or trainer)."""


def pseudo_label_from_probabilities(probabilities: np.ndarray, nonzero_mask_seg: Optional[np.ndarray]) -> np.ndarray:
    """argmax over classes, shaped (1, *spatial) like nnU-Net's stored segmentations. Background outside the
    image's nonzero region is stored as -1, as nnU-Net's preprocessing does for labelled cases."""
    label = np.argmax(probabilities, axis=0)[None]
    label = label.astype(np.int16 if probabilities.shape[0] > 127 else np.int8)
    if nonzero_mask_seg is not None:
        label[(np.asarray(nonzero_mask_seg) < 0) & (label == 0)] = -1
    return label


def write_pseudo_labelled_case(folder: str, identifier: str, data: np.ndarray, pseudo_label: np.ndarray,
                               properties: dict, patch_size: Sequence[int], foreground_labels: Sequence[int],
                               annotated_labels: Optional[Sequence[int]] = None) -> None:
    """Store one case atomically; adds the class locations nnU-Net's foreground oversampling needs.

    annotated_labels: for datasets with an ignore label, all other labels (LabelManager.all_labels). nnU-Net's data
    loader then centres patches on annotated voxels, which it looks up under the key (-1, *all_labels), as nnU-Net's
    preprocessing stores it. Every pseudo-labelled voxel is annotated (a pseudo-label never holds the ignore label).
    """
    properties = dict(properties)
    classes = list(foreground_labels) + ([[-1, *annotated_labels]] if annotated_labels is not None else [])
    properties["class_locations"] = DefaultPreprocessor._sample_foreground_locations(pseudo_label, classes,
                                                                                     verbose=False)
    write_case_atomically(folder, identifier, np.ascontiguousarray(data, dtype=np.float32), pseudo_label, properties,
                          patch_size, _STAGING_PREFIX)


def class_presence_report(cases_with_class: Mapping[int, int], n_cases: int,
                          class_names: Mapping[int, str]) -> Tuple[str, List[str]]:
    """One log line saying in how many pseudo-labels each foreground class occurs, and a warning per class that
    occurs in none. Why: a labeller that never finds a class (e.g. a short-trained teacher that calls every right
    ventricle background) makes self-training teach the network that the class is absent."""
    counts = ", ".join(f"{name} in {cases_with_class.get(label, 0)}" for label, name in class_names.items())
    warnings_ = [f"WARNING: no pseudo-label contains class '{name}' (label {label}): the model that labelled the "
                 f"{n_cases} unlabelled cases never predicts it, so training on these pseudo-labels teaches the "
                 f"network that it is absent. Check that the labelled cases contain it, or start from a model that "
                 f"finds it (a longer teacher, a better warm-start checkpoint)."
                 for label, name in class_names.items() if not cases_with_class.get(label)]
    return f"foreground classes per pseudo-labelled case (of {n_cases}): {counts}", warnings_


def completed_cases(folder: str) -> List[str]:
    if not os.path.isdir(folder):
        return []
    return sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".pkl") and not f.startswith("."))


def read_manifest(folder: str) -> Optional[dict]:
    path = os.path.join(folder, PSEUDO_LABEL_MANIFEST_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        warnings.warn(f"{path} is damaged ({e}); the pseudo-labels in {folder} are made again.", stacklevel=2)
        return None


def write_manifest(folder: str, provenance: dict, cases: Sequence[str]) -> None:
    manifest = dict(provenance, cases=sorted(cases))
    atomic_write_json(manifest, os.path.join(folder, PSEUDO_LABEL_MANIFEST_FILE))


def check_manifest(folder: str, provenance: dict, cases: Sequence[str]) -> bool:
    """True when the folder holds exactly the finished pseudo-labels this run would make; False when it is
    unfinished or a case file no longer opens (the caller rebuilds it, with a warning naming the file); raises
    when it was finished by a different run."""
    manifest = read_manifest(folder)
    if manifest is None:
        return False
    different = {k: (manifest.get(k), provenance.get(k)) for k in PROVENANCE_KEYS if manifest.get(k) != provenance.get(k)}
    if different:
        details = ", ".join(f"{k}: found {found!r}, expected {expected!r}" for k, (found, expected) in different.items())
        raise PseudoLabelMismatchError(
            f"The pseudo-labels in {folder} were made by another run ({details}). Delete that folder (or train "
            f"in a fresh output folder) so they are regenerated for this run.")
    missing = sorted(set(cases) - set(completed_cases(folder)))
    if sorted(manifest.get("cases", [])) != sorted(cases) or missing:
        return False
    damaged = unreadable_cases(folder, cases)
    if damaged:
        warnings.warn(f"Damaged pseudo-labels in {folder}: {'; '.join(describe_problems(damaged))}. The "
                      f"pseudo-labels of this stage are made again.", stacklevel=2)
        return False
    return True


def reset_folder(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
