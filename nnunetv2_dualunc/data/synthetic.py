"""The synthetic semi-supervised dataset of the demo and the tests, in nnU-Net raw format.

The task is built so that unlabelled images can help: few labelled cases, three structures whose
appearance varies between cases (contrast, bias field, noise, shape), so a model trained on the labelled cases
alone sees only a small part of the appearance distribution that the unlabelled cases cover.
"""
import json
import os
import shutil
from typing import List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import gaussian_filter

from nnunetv2_dualunc.data.unlabelled_raw import NUM_UNLABELLED_KEY, UNLABELLED_IMAGES_FOLDER

DATASET_ID = 990
DATASET_SUFFIX = "SyntheticSSL"
FILE_ENDING = ".nii.gz"
CHANNEL_SUFFIX = "_0000"
TEST_IMAGES_FOLDER = "imagesTs"
TEST_LABELS_FOLDER = "labelsTs"
LABELS = {"background": 0, "organ": 1, "wall": 2, "lesion": 3}
# Voxel spacing (z, y, x) in mm: thick slices like cine MRI; nnU-Net's 2d configuration works in-plane.
SPACING_ZYX = (5.0, 1.0, 1.0)

# Sizes used by the demo (timed to fit its budget on a 2-core CPU); the tests have their own tiny preset. 60 test
# cases, not 12: on 12 one missed lesion moves the mean Dice by ~3 points, as much as the gain the demo shows
# (docs/log/2026-12-03_demo-test-set-size.md); predicting 48 more tiny cases costs seconds per model (measured
# 26-32 s for 60 against 26 s for 12: nnU-Net's start-up dominates). 3 labelled cases to 30 unlabelled, the
# plugin's use case (few labels, many images): with 6 the gain stayed within the control's run-to-run spread, with
# 3 it shows in repeated runs (the measured runs: docs/log/2026-12-05_demo-at-3-labelled-cases.md).
DEMO_PRESET = dict(n_labelled=3, n_unlabelled=30, n_test=60, shape=(4, 64, 64))

# Each split draws from its own random stream so that adding cases to one split never changes another.
_SPLIT_STREAM = {"labelled": 0, "unlabelled": 1, "test": 2}


def dataset_name(dataset_id: int = DATASET_ID) -> str:
    return f"Dataset{dataset_id:03d}_{DATASET_SUFFIX}"


def _case_identifiers(prefix: str, n: int) -> List[str]:
    return [f"{prefix}_{i:03d}" for i in range(n)]


def _ellipse_distance(yy: np.ndarray, xx: np.ndarray, center: Tuple[float, float],
                      semi_axes: Tuple[float, float], angle: float,
                      wobble: Tuple[float, int, float] = (0.0, 0, 0.0)) -> np.ndarray:
    """Normalised distance to a rotated ellipse (<= 1 inside), whose radius may be modulated by a sinusoid.

    The wobble (amplitude, frequency, phase) makes the organ shape vary beyond a plain ellipse."""
    dy, dx = yy - center[0], xx - center[1]
    u = (np.cos(angle) * dx + np.sin(angle) * dy) / semi_axes[1]
    v = (-np.sin(angle) * dx + np.cos(angle) * dy) / semi_axes[0]
    amplitude, frequency, phase = wobble
    radius = 1.0 + amplitude * np.sin(frequency * np.arctan2(v, u) + phase)
    return np.sqrt(u ** 2 + v ** 2) / radius


class _SliceGeometry:
    """Random geometry of one case, drawn once and rendered on every slice with a per-slice scale.

    Structures: an organ (wobbly ellipse), a wall (ring of roughly constant thickness around it), a small round
    lesion elsewhere, and an unlabelled elongated distractor (a vessel-like bright stripe) nearly as bright as the
    lesion, so that shape more than brightness identifies the lesion."""

    def __init__(self, rng: np.random.Generator, in_plane: Tuple[int, int]):
        self.in_plane = in_plane
        self.yy, self.xx = np.mgrid[0:in_plane[0], 0:in_plane[1]].astype(np.float64)
        side = min(in_plane)
        self.lesion_center: Optional[Tuple[float, float]] = None
        self.distractor_center: Optional[Tuple[float, float]] = None
        for _ in range(200):
            self.semi_axes = (rng.uniform(0.12, 0.22) * side, rng.uniform(0.12, 0.22) * side)
            self.wall = max(1.6, rng.uniform(0.04, 0.07) * side)
            self.angle = rng.uniform(0, np.pi)
            self.wobble = (rng.uniform(0.0, 0.12), int(rng.integers(2, 5)), rng.uniform(0, 2 * np.pi))
            extent = (max(self.semi_axes) + self.wall) * 1.12 + 1
            if 2 * extent >= side:
                continue
            self.center = (rng.uniform(extent, in_plane[0] - extent), rng.uniform(extent, in_plane[1] - extent))
            self.lesion_radius = max(1.5, rng.uniform(0.05, 0.09) * side)
            self.lesion_center = None
            occupied = self.masks(1.0)[1]
            self.lesion_center = self._free_position(rng, occupied, (self.lesion_radius,) * 2, 0.0)
            if self.lesion_center is None:
                continue
            self.distractor_axes = (self.lesion_radius * rng.uniform(0.6, 0.9),
                                    self.lesion_radius * rng.uniform(2.2, 3.5))
            self.distractor_angle = rng.uniform(0, np.pi)
            occupied = occupied | self.masks(1.0)[2]
            # the distractor is optional: small images may have no room left for it
            self.distractor_center = self._free_position(rng, occupied, self.distractor_axes,
                                                         self.distractor_angle)
            return
        raise RuntimeError(f"Could not place the synthetic structures in an image of in-plane size {in_plane}; "
                           f"use an in-plane shape of at least 32 x 32.")

    def _free_position(self, rng: np.random.Generator, occupied: np.ndarray, axes: Tuple[float, float],
                       angle: float, gap: float = 2.0) -> Optional[Tuple[float, float]]:
        """A centre for an ellipse that, grown by `gap` pixels, stays off the image border and off `occupied`."""
        grown = (axes[0] + gap, axes[1] + gap)
        for _ in range(100):
            center = (rng.uniform(0, self.in_plane[0]), rng.uniform(0, self.in_plane[1]))
            near = _ellipse_distance(self.yy, self.xx, center, grown, angle) <= 1.0
            touches_border = near[0].any() or near[-1].any() or near[:, 0].any() or near[:, -1].any()
            if not touches_border and not np.any(near & occupied):
                return center
        return None

    def masks(self, scale: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Boolean masks (organ, organ+wall, lesion, distractor) of a slice whose structures are shrunk by scale."""
        semi = (self.semi_axes[0] * scale, self.semi_axes[1] * scale)
        organ = _ellipse_distance(self.yy, self.xx, self.center, semi, self.angle, self.wobble) <= 1.0
        outer_axes = (semi[0] + self.wall, semi[1] + self.wall)
        organ_and_wall = organ | (_ellipse_distance(self.yy, self.xx, self.center, outer_axes, self.angle,
                                                    self.wobble) <= 1.0)
        nothing = np.zeros_like(organ)
        lesion, distractor = nothing, nothing
        if self.lesion_center is not None:
            radius = self.lesion_radius * (0.6 + 0.4 * scale)
            lesion = (self.yy - self.lesion_center[0]) ** 2 + (self.xx - self.lesion_center[1]) ** 2 <= radius ** 2
        if self.distractor_center is not None:
            distractor = _ellipse_distance(self.yy, self.xx, self.distractor_center, self.distractor_axes,
                                           self.distractor_angle) <= 1.0
        return organ, organ_and_wall, lesion, distractor


def _draw_case(rng: np.random.Generator, shape: Tuple[int, int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """Segmentation (uint8, values of LABELS) and the unlabelled distractor mask of one case."""
    geometry = _SliceGeometry(rng, shape[1:])
    seg = np.zeros(shape, dtype=np.uint8)
    distractor = np.zeros(shape, dtype=bool)
    mid = (shape[0] - 1) / 2
    for z in range(shape[0]):
        # structures taper towards the outer slices, like an organ cut near its apex and base
        scale = 1.0 - 0.25 * (abs(z - mid) / max(mid, 1.0)) ** 2
        organ, organ_and_wall, lesion, distractor[z] = geometry.masks(scale)
        seg[z][organ_and_wall] = LABELS["wall"]
        seg[z][organ] = LABELS["organ"]
        seg[z][lesion] = LABELS["lesion"]
    return seg, distractor


def _smooth_bias_field(rng: np.random.Generator, shape: Tuple[int, int, int], strength: float) -> np.ndarray:
    """Multiplicative in-plane field made of a random linear ramp and a quadratic bowl (coil-shading look)."""
    yy, xx = np.meshgrid(np.linspace(-1, 1, shape[1]), np.linspace(-1, 1, shape[2]), indexing="ij")
    gy, gx, bowl = rng.uniform(-1, 1, size=3)
    field = gy * yy + gx * xx + bowl * (yy ** 2 + xx ** 2 - 0.66)
    field = 1.0 + strength * field / max(np.abs(field).max(), 1e-6)
    return np.broadcast_to(field, shape)


def _render_image(rng: np.random.Generator, seg: np.ndarray, distractor: np.ndarray) -> np.ndarray:
    """MRI-like intensities: case-specific tissue contrast, blur, background texture, bias field, noise, gain.

    The contrasts vary widely between cases (the organ can be barely darker than its wall), so a handful of
    labelled cases covers only part of the appearance range that the unlabelled cases span."""
    background = rng.uniform(0.05, 0.35)
    wall = rng.uniform(0.7, 1.0)
    organ = rng.uniform(background + 0.15, wall - 0.1)
    lesion = wall + rng.uniform(-0.15, 0.1)
    means = np.array([background, organ, wall, lesion])
    clean = means[seg]
    clean[distractor] = lesion - rng.uniform(0.05, 0.2)  # mostly a little darker than the lesion
    clean = gaussian_filter(clean, sigma=(0, 0.7, 0.7))
    texture = gaussian_filter(rng.normal(size=seg.shape), sigma=(0, 3, 3))
    clean += rng.uniform(0.0, 0.6) * texture * (seg == 0)
    image = clean * _smooth_bias_field(rng, seg.shape, strength=rng.uniform(0.0, 0.4))
    image += rng.normal(scale=rng.uniform(0.03, 0.15), size=seg.shape)
    gain, offset = rng.uniform(300.0, 1500.0), rng.uniform(-100.0, 300.0)
    return (image * gain + offset).astype(np.float32)


def synthetic_case(seed: int, split: str, index: int,
                   shape: Tuple[int, int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """One (image, segmentation) pair as (z, y, x) arrays; a pure function of (seed, split, index, shape)."""
    rng = np.random.default_rng([seed, _SPLIT_STREAM[split], index])
    seg, distractor = _draw_case(rng, tuple(shape))
    return _render_image(rng, seg, distractor), seg


def _write_nifti(array: np.ndarray, filename: str, spacing_zyx: Sequence[float] = SPACING_ZYX) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in reversed(spacing_zyx)))  # SimpleITK spacing is (x, y, z)
    sitk.WriteImage(image, filename, useCompression=True)


def write_synthetic_dataset(raw_root: str, dataset_id: int = DATASET_ID,
                            n_labelled: int = DEMO_PRESET["n_labelled"],
                            n_unlabelled: int = DEMO_PRESET["n_unlabelled"],
                            n_test: int = DEMO_PRESET["n_test"],
                            shape: Tuple[int, int, int] = DEMO_PRESET["shape"],
                            seed: int = 0, spacing_zyx: Sequence[float] = SPACING_ZYX) -> str:
    """Write the synthetic semi-supervised dataset in nnU-Net raw format and return its folder.

    spacing_zyx sets the voxel spacing in mm (the shapes are drawn in voxels): benchmarks use it to mimic a real
    dataset's geometry, so that nnU-Net plans the same patch and network for the synthetic copy.

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
              ("unlabelled", "syn_u", n_unlabelled, UNLABELLED_IMAGES_FOLDER, None),
              ("test", "syn_t", n_test, TEST_IMAGES_FOLDER, TEST_LABELS_FOLDER)]
    for split, prefix, n, image_folder, label_folder in splits:
        os.makedirs(os.path.join(folder, image_folder), exist_ok=True)
        if label_folder is not None:
            os.makedirs(os.path.join(folder, label_folder), exist_ok=True)
        for index, identifier in enumerate(_case_identifiers(prefix, n)):
            image, seg = synthetic_case(seed, split, index, shape)
            _write_nifti(image, os.path.join(folder, image_folder, identifier + CHANNEL_SUFFIX + FILE_ENDING),
                         spacing_zyx)
            if label_folder is not None:
                _write_nifti(seg, os.path.join(folder, label_folder, identifier + FILE_ENDING), spacing_zyx)
    dataset_json = {
        "name": dataset_name(dataset_id),
        "description": "Synthetic semi-supervised segmentation task: organ, surrounding wall and a separate "
                       "lesion (plus an unlabelled lesion-like distractor) with case-specific contrast, bias "
                       "field and noise.",
        "channel_names": {"0": "MRI"},
        "labels": dict(LABELS),
        "numTraining": n_labelled,
        "file_ending": FILE_ENDING,
        # extra keys (ignored by nnU-Net) describing the folders it does not know about
        NUM_UNLABELLED_KEY: n_unlabelled,
        "numTest": n_test,
        "synthetic_seed": seed,
        "synthetic_shape_zyx": list(shape),
        "synthetic_spacing_zyx": [float(s) for s in spacing_zyx],
    }
    with open(os.path.join(folder, "dataset.json"), "w") as f:
        json.dump(dataset_json, f, indent=4)
    return folder
