"""End-to-end demo: a synthetic semi-supervised dataset, real nnU-Net runs, and a Dice table.

The synthetic task is built so that unlabelled images can help: few labelled cases, three structures whose
appearance varies between cases (contrast, bias field, noise, shape), so a model trained on the labelled cases
alone sees only a small part of the appearance distribution that the unlabelled cases cover.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import gaussian_filter

DATASET_ID = 990
DATASET_SUFFIX = "SyntheticSSL"
FILE_ENDING = ".nii.gz"
CHANNEL_SUFFIX = "_0000"
UNLABELLED_FOLDER = "imagesUnlabeled"
TEST_IMAGES_FOLDER = "imagesTs"
TEST_LABELS_FOLDER = "labelsTs"
LABELS = {"background": 0, "organ": 1, "wall": 2, "lesion": 3}
# Voxel spacing (z, y, x) in mm: thick slices like cine MRI; nnU-Net's 2d configuration works in-plane.
SPACING_ZYX = (5.0, 1.0, 1.0)

# Sizes used by the demo (timed to fit its budget on a 2-core CPU) and a tiny preset for integration tests.
DEMO_PRESET = dict(n_labelled=6, n_unlabelled=30, n_test=12, shape=(4, 64, 64))
TINY_PRESET = dict(n_labelled=4, n_unlabelled=6, n_test=2, shape=(2, 32, 32))

# Each split draws from its own random stream so that adding cases to one split never changes another.
_SPLIT_STREAM = {"labelled": 0, "unlabelled": 1, "test": 2}


def dataset_name(dataset_id: int = DATASET_ID) -> str:
    return f"Dataset{dataset_id:03d}_{DATASET_SUFFIX}"


def _case_identifiers(prefix: str, n: int) -> List[str]:
    return [f"{prefix}_{i:03d}" for i in range(n)]


def _modulated_ellipse_distance(yy: np.ndarray, xx: np.ndarray, center: Tuple[float, float],
                                semi_axes: Tuple[float, float], angle: float,
                                wobble: Tuple[float, int, float]) -> np.ndarray:
    """Normalised distance to a rotated ellipse whose radius is modulated by a low-order sinusoid (<= 1 inside).

    The wobble (amplitude, frequency, phase) makes the organ shape vary beyond a plain ellipse."""
    dy, dx = yy - center[0], xx - center[1]
    u = np.cos(angle) * dx + np.sin(angle) * dy
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    un, vn = u / semi_axes[1], v / semi_axes[0]
    amplitude, frequency, phase = wobble
    radius = 1.0 + amplitude * np.sin(frequency * np.arctan2(vn, un) + phase)
    return np.sqrt(un ** 2 + vn ** 2) / radius


def _sample_geometry(rng: np.random.Generator, in_plane: Tuple[int, int]) -> dict:
    """Organ (wobbly ellipse), wall (ring around it) and a separate round lesion, in pixel units of the mid slice."""
    side = min(in_plane)
    for _ in range(200):
        semi_axes = (rng.uniform(0.12, 0.22) * side, rng.uniform(0.12, 0.22) * side)
        wall = max(1.6, rng.uniform(0.04, 0.07) * side)
        extent = (max(semi_axes) + wall) * 1.12
        low_y, high_y = extent + 1, in_plane[0] - extent - 1
        low_x, high_x = extent + 1, in_plane[1] - extent - 1
        if low_y >= high_y or low_x >= high_x:
            continue
        geometry = dict(
            center=(rng.uniform(low_y, high_y), rng.uniform(low_x, high_x)),
            semi_axes=semi_axes,
            angle=rng.uniform(0, np.pi),
            wobble=(rng.uniform(0.0, 0.12), int(rng.integers(2, 5)), rng.uniform(0, 2 * np.pi)),
            wall=wall,
            lesion_radius=max(1.5, rng.uniform(0.05, 0.09) * side),
        )
        lesion_center = _place_lesion(rng, in_plane, geometry)
        if lesion_center is not None:
            geometry["lesion_center"] = lesion_center
            return geometry
    raise RuntimeError(f"Could not place the synthetic structures in an image of in-plane size {in_plane}; "
                       f"use an in-plane shape of at least 32 x 32.")


def _place_lesion(rng: np.random.Generator, in_plane: Tuple[int, int], geometry: dict) -> Optional[tuple]:
    """Pick a lesion centre whose disc stays inside the image and at least 2 pixels away from the wall."""
    yy, xx = np.mgrid[0:in_plane[0], 0:in_plane[1]].astype(np.float64)
    outer = _structure_masks(yy, xx, geometry, scale=1.0, lesion_center=None)[1] > 0
    gap = 2.0
    radius = geometry["lesion_radius"]
    for _ in range(100):
        cy = rng.uniform(radius + 1, in_plane[0] - radius - 1)
        cx = rng.uniform(radius + 1, in_plane[1] - radius - 1)
        near = (yy - cy) ** 2 + (xx - cx) ** 2 <= (radius + gap) ** 2
        if not np.any(near & outer):
            return cy, cx
    return None


def _structure_masks(yy: np.ndarray, xx: np.ndarray, geometry: dict, scale: float,
                     lesion_center: Optional[tuple]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean masks (organ, organ+wall, lesion) for one slice; `scale` shrinks the structures off the mid slice."""
    semi = tuple(s * scale for s in geometry["semi_axes"])
    wall = geometry["wall"]
    args = (geometry["center"], geometry["angle"], geometry["wobble"])
    inner = _modulated_ellipse_distance(yy, xx, args[0], semi, args[1], args[2]) <= 1.0
    outer = _modulated_ellipse_distance(yy, xx, args[0], (semi[0] + wall, semi[1] + wall), args[1], args[2]) <= 1.0
    if lesion_center is None:
        lesion = np.zeros_like(inner)
    else:
        radius = geometry["lesion_radius"] * (0.6 + 0.4 * scale)
        lesion = (yy - lesion_center[0]) ** 2 + (xx - lesion_center[1]) ** 2 <= radius ** 2
    return inner, outer | inner, lesion


def _label_volume(rng: np.random.Generator, shape: Tuple[int, int, int]) -> np.ndarray:
    geometry = _sample_geometry(rng, shape[1:])
    yy, xx = np.mgrid[0:shape[1], 0:shape[2]].astype(np.float64)
    seg = np.zeros(shape, dtype=np.uint8)
    mid = (shape[0] - 1) / 2
    for z in range(shape[0]):
        # structures taper towards the outer slices, like an organ cut at its apex and base
        scale = 1.0 - 0.25 * (abs(z - mid) / max(mid, 1.0)) ** 2
        organ, organ_and_wall, lesion = _structure_masks(yy, xx, geometry, scale, geometry["lesion_center"])
        seg[z][organ_and_wall] = LABELS["wall"]
        seg[z][organ] = LABELS["organ"]
        seg[z][lesion] = LABELS["lesion"]
    return seg


def _smooth_bias_field(rng: np.random.Generator, shape: Tuple[int, int, int], strength: float) -> np.ndarray:
    """Multiplicative in-plane field made of a random linear ramp and a quadratic bowl (coil-shading look)."""
    yy, xx = np.meshgrid(np.linspace(-1, 1, shape[1]), np.linspace(-1, 1, shape[2]), indexing="ij")
    gy, gx, bowl = rng.uniform(-1, 1, size=3)
    field = gy * yy + gx * xx + bowl * (yy ** 2 + xx ** 2 - 0.66)
    field = 1.0 + strength * field / max(np.abs(field).max(), 1e-6)
    return np.broadcast_to(field, shape)


def _render_image(rng: np.random.Generator, seg: np.ndarray) -> np.ndarray:
    """MRI-like intensities: case-specific tissue contrast, blur, background texture, bias field, noise, gain."""
    # tissue means per label: the wall and the lesion look alike on purpose, only shape and context separate them
    means = np.array([0.2, 0.55, 0.85, 0.8]) + rng.uniform(-0.1, 0.1, size=4)
    clean = means[seg].astype(np.float64)
    clean = gaussian_filter(clean, sigma=(0, 0.7, 0.7))
    texture = gaussian_filter(rng.normal(size=seg.shape), sigma=(0, 3, 3))
    clean += rng.uniform(0.0, 0.6) * texture * (seg == 0)
    image = clean * _smooth_bias_field(rng, seg.shape, strength=rng.uniform(0.0, 0.35))
    image += rng.normal(scale=rng.uniform(0.03, 0.12), size=seg.shape)
    gain, offset = rng.uniform(300.0, 1500.0), rng.uniform(-100.0, 300.0)
    return (image * gain + offset).astype(np.float32)


def synthetic_case(seed: int, split: str, index: int,
                   shape: Tuple[int, int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """One (image, segmentation) pair as (z, y, x) arrays; a pure function of (seed, split, index, shape)."""
    rng = np.random.default_rng([seed, _SPLIT_STREAM[split], index])
    seg = _label_volume(rng, tuple(shape))
    return _render_image(rng, seg), seg


def _write_nifti(array: np.ndarray, filename: str) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(reversed(SPACING_ZYX)))  # SimpleITK spacing is (x, y, z)
    sitk.WriteImage(image, filename, useCompression=True)


def write_synthetic_dataset(raw_root: str, dataset_id: int = DATASET_ID,
                            n_labelled: int = DEMO_PRESET["n_labelled"],
                            n_unlabelled: int = DEMO_PRESET["n_unlabelled"],
                            n_test: int = DEMO_PRESET["n_test"],
                            shape: Tuple[int, int, int] = DEMO_PRESET["shape"],
                            seed: int = 0) -> str:
    """Write the synthetic semi-supervised dataset in nnU-Net raw format and return its folder.

    Layout under raw_root/DatasetXXX_SyntheticSSL: imagesTr + labelsTr (labelled), imagesUnlabeled (images only,
    read by the DualUnc trainer), imagesTs + labelsTs (held-out test cases; their references stay out of
    imagesTr/labelsTr so that nnU-Net never trains on them). An existing folder is replaced."""
    if len(shape) != 3 or min(shape[1:]) < 32 or shape[0] < 1:
        raise ValueError(f"shape must be (slices, height, width) with height and width >= 32, got {shape}; "
                         f"use e.g. {DEMO_PRESET['shape']}.")
    if n_labelled < 1:
        raise ValueError(f"n_labelled must be >= 1 (nnU-Net needs labelled training cases), got {n_labelled}.")
    folder = os.path.join(raw_root, dataset_name(dataset_id))
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    splits = [("labelled", "syn_l", n_labelled, "imagesTr", "labelsTr"),
              ("unlabelled", "syn_u", n_unlabelled, UNLABELLED_FOLDER, None),
              ("test", "syn_t", n_test, TEST_IMAGES_FOLDER, TEST_LABELS_FOLDER)]
    for split, prefix, n, image_folder, label_folder in splits:
        os.makedirs(os.path.join(folder, image_folder), exist_ok=True)
        if label_folder is not None:
            os.makedirs(os.path.join(folder, label_folder), exist_ok=True)
        for index, identifier in enumerate(_case_identifiers(prefix, n)):
            image, seg = synthetic_case(seed, split, index, shape)
            _write_nifti(image, os.path.join(folder, image_folder, identifier + CHANNEL_SUFFIX + FILE_ENDING))
            if label_folder is not None:
                _write_nifti(seg, os.path.join(folder, label_folder, identifier + FILE_ENDING))
    dataset_json = {
        "name": dataset_name(dataset_id),
        "description": "Synthetic semi-supervised segmentation task: organ, surrounding wall and a separate "
                       "lesion with case-specific contrast, bias field and noise.",
        "channel_names": {"0": "MRI"},
        "labels": dict(LABELS),
        "numTraining": n_labelled,
        "file_ending": FILE_ENDING,
        # extra keys (ignored by nnU-Net) describing the folders it does not know about
        "numUnlabeled": n_unlabelled,
        "numTest": n_test,
        "synthetic_seed": seed,
        "synthetic_shape_zyx": list(shape),
    }
    with open(os.path.join(folder, "dataset.json"), "w") as f:
        json.dump(dataset_json, f, indent=4)
    return folder
