"""End-to-end demo: a synthetic semi-supervised dataset, real nnU-Net runs, and a Dice table.

The synthetic task is built so that unlabelled images can help: few labelled cases, three structures whose
appearance varies between cases (contrast, bias field, noise, shape), so a model trained on the labelled cases
alone sees only a small part of the appearance distribution that the unlabelled cases cover.
"""
import argparse
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
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
              ("unlabelled", "syn_u", n_unlabelled, UNLABELLED_FOLDER, None),
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
        "numUnlabeled": n_unlabelled,
        "numTest": n_test,
        "synthetic_seed": seed,
        "synthetic_shape_zyx": list(shape),
        "synthetic_spacing_zyx": [float(s) for s in spacing_zyx],
    }
    with open(os.path.join(folder, "dataset.json"), "w") as f:
        json.dump(dataset_json, f, indent=4)
    return folder


# ----------------------------------------------------------------------------------------------------------------
# The demo pipeline: real nnU-Net commands as subprocesses, then a Dice table.
# ----------------------------------------------------------------------------------------------------------------
DEMO_METHODS = ("nnUNetTrainer_demo", "nnUNetTrainerDualUnc_demo")
CONFIGURATION = "2d"
PLANS_IDENTIFIER = "nnUNetPlans"
FOLD = "all"
# Lines of nnU-Net's console output worth showing live; the full output goes to output_dir/logs.
_PROGRESS_PATTERN = re.compile(r"Epoch \d+$|train_loss|Pseudo dice|Epoch time|Mean Validation Dice|Training done"
                               r"|unsupervised loss|[Pp]hase|[Ss]tage|[Rr]anking|[Pp]seudo-?label"
                               r"|Preprocessing dataset|Plans were saved|^Predicting |Segmentation export complete"
                               r"|mean KL|WARNING|Error|Traceback")
_PROGRESS_BAR = re.compile(r"\d+%\|")  # tqdm redraws: one "line" per refresh, too many to show
_LOG_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d+: ")
# the folder holding the nnunetv2_dualunc package (a source checkout or site-packages)
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Clock:
    """Prints stage headers and progress lines with the time elapsed since the demo started."""

    def __init__(self):
        self.start = time.time()

    def elapsed(self) -> float:
        return time.time() - self.start

    def say(self, message: str) -> None:
        minutes, seconds = divmod(int(self.elapsed()), 60)
        print(f"[demo {minutes:02d}:{seconds:02d}] {message}", flush=True)

    def header(self, title: str) -> None:
        self.say(f"===== {title} =====")


def console_script(name: str) -> str:
    """An nnU-Net console script of the running interpreter's environment, else the first one on PATH."""
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"Cannot find the nnU-Net command '{name}' next to {sys.executable} or on PATH; "
                                f"install nnunetv2 into this environment (pip install nnunetv2).")
    return found


def external_trainer_folder() -> str:
    """Folder of thin trainer modules for nnUNet_extTrainer: the installed package, else the source checkout."""
    try:
        from nnunetv2_dualunc.cli import trainer_path
        return trainer_path()
    except ImportError:
        checkout = os.path.join(_PACKAGE_PARENT, "trainers")
        if os.path.isfile(os.path.join(checkout, "demo_trainers.py")):
            return checkout
    raise RuntimeError("Cannot locate the trainer folder for nnUNet_extTrainer: install this plugin with "
                       "'pip install -e .' (it provides the package nnunetv2_dualunc_trainers).")


def nnunet_environment(output_dir: str, num_processes: int = 2, extra_trainer_folders: Sequence[str] = (),
                       base_env: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment for nnU-Net subprocesses: data folders under output_dir, this plugin's trainers (plus
    extra_trainer_folders and any already configured), CPU-friendly settings; on top of base_env (os.environ)."""
    env = dict(os.environ if base_env is None else base_env)
    env.update({
        "nnUNet_raw": os.path.join(output_dir, "nnUNet_raw"),
        "nnUNet_preprocessed": os.path.join(output_dir, "nnUNet_preprocessed"),
        "nnUNet_results": os.path.join(output_dir, "nnUNet_results"),
        "nnUNet_compile": "false",
        # default pool size of nnU-Net's helpers (validation export etc.); its default of 8 thrashes 2 cores
        "nnUNet_def_n_proc": str(num_processes),
        "PYTHONUNBUFFERED": "1",
        # torch's spinning OpenMP threads slow every step several-fold when another process needs a core
        "OMP_WAIT_POLICY": env.get("OMP_WAIT_POLICY", "PASSIVE"),
    })
    folders = [external_trainer_folder(), *extra_trainer_folders] + \
        [p for p in env.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    env["nnUNet_extTrainer"] = os.pathsep.join(dict.fromkeys(folders))
    # subprocesses must import this package even when it runs from a source checkout without installation
    python_path = [_PACKAGE_PARENT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(python_path))
    return env


def _run_logged(command: List[str], env: Dict[str, str], log_file: str, clock: _Clock, verbose: bool) -> None:
    """Run a command, show its progress lines (all lines if verbose), keep its full output in log_file."""
    clock.say("$ " + " ".join(os.path.basename(c) if i == 0 else c for i, c in enumerate(command)))
    recent = []
    with open(log_file, "a") as log, subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                                      stderr=subprocess.STDOUT, text=True, bufsize=1) as process:
        for line in process.stdout:
            log.write(line)
            line = line.rstrip().split("\r")[-1]
            recent = (recent + [line])[-40:]
            shown = _LOG_TIMESTAMP.sub("", line).strip()
            # the plans dicts nnU-Net prints contain words like 'stage': progress lines never start with '{'
            if shown and (verbose or (_PROGRESS_PATTERN.search(shown) and not shown.startswith("{")
                                      and not _PROGRESS_BAR.search(shown))):
                clock.say("  " + shown[:200])
    if process.returncode != 0:
        print("\n".join(recent), flush=True)
        raise RuntimeError(f"Command failed with exit code {process.returncode}: {' '.join(command)}\n"
                           f"Full output: {log_file}")


def _trainer_output_folder(results_dir: str, method: str, dataset_id: int) -> str:
    return os.path.join(results_dir, dataset_name(dataset_id),
                        f"{method}__{PLANS_IDENTIFIER}__{CONFIGURATION}", f"fold_{FOLD}")


def _check_trainers_exist(methods: Sequence[str], env: Dict[str, str]) -> Dict[str, type]:
    """Fail before any long step if nnU-Net cannot find one of the requested trainer classes; return them."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    previous = os.environ.get("nnUNet_extTrainer")
    os.environ["nnUNet_extTrainer"] = env["nnUNet_extTrainer"]
    classes = {}
    try:
        for method in methods:
            try:
                # the search narrates every module it inspects, and importing trainers warns about torch.jit
                with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    classes[method] = recursive_find_trainer_class_by_name(method)
            except RuntimeError as error:
                raise RuntimeError(f"nnU-Net cannot find the trainer '{method}' (searched nnunetv2 and "
                                   f"{env['nnUNet_extTrainer']}); pass existing trainer names with "
                                   f"--methods.") from error
    finally:
        if previous is None:
            del os.environ["nnUNet_extTrainer"]
        else:
            os.environ["nnUNet_extTrainer"] = previous
    return classes


def _record_demo_config(output_dir: str, config: dict) -> None:
    """Refuse to resume a demo folder that was made with another seed or dataset size (stale results)."""
    filename = os.path.join(output_dir, "demo_config.json")
    if os.path.isfile(filename):
        with open(filename) as f:
            previous = json.load(f)
        if previous != config:
            raise ValueError(f"{output_dir} holds a demo run with settings {previous}, not {config}; choose another "
                             f"--output-dir or delete that folder.")
        return
    with open(filename, "w") as f:
        json.dump(config, f, indent=4)


def _preprocessing_done(preprocessed_dir: str, dataset_id: int, n_labelled: int) -> bool:
    folder = os.path.join(preprocessed_dir, dataset_name(dataset_id))
    data_folder = os.path.join(folder, f"{PLANS_IDENTIFIER}_{CONFIGURATION}")
    if not (os.path.isfile(os.path.join(folder, PLANS_IDENTIFIER + ".json")) and os.path.isdir(data_folder)):
        return False
    return len([f for f in os.listdir(data_folder) if f.endswith(".pkl")]) == n_labelled


def _predictions_done(prediction_dir: str, test_images_dir: str, checkpoint: str) -> bool:
    """All test cases predicted after the checkpoint was written."""
    expected = [f.replace(CHANNEL_SUFFIX + FILE_ENDING, FILE_ENDING) for f in os.listdir(test_images_dir)]
    files = [os.path.join(prediction_dir, f) for f in expected]
    return all(os.path.isfile(f) and os.path.getmtime(f) > os.path.getmtime(checkpoint) for f in files)


def format_dice_table(results: Dict[str, dict], labels: Optional[Dict[str, int]] = None) -> str:
    """Markdown table: one row per method, one column per foreground class plus the mean."""
    labels = labels or {name: value for name, value in LABELS.items() if value != 0}
    header = "| method | " + " | ".join(f"{name} ({value})" for name, value in labels.items()) + " | mean |"
    lines = [header, "|" + "---|" * (len(labels) + 2)]
    for method, result in results.items():
        scores = [f"{result['mean_per_class'][value]:.4f}" for value in labels.values()]
        lines.append(f"| {method} | " + " | ".join(scores) + f" | {result['mean']:.4f} |")
    return "\n".join(lines)


def format_uncertainty_ranking(ranking_file: str, case_dice: Dict[str, Dict[int, float]]) -> Tuple[str, float]:
    """The predict-uncertainty ranking beside each case's Dice, and their Spearman correlation (negative: the cases
    the model is least sure about are the ones it segments worst)."""
    from scipy.stats import spearmanr

    from nnunetv2_dualunc.uncertainty_maps import read_uncertainty_ranking

    ranking = read_uncertainty_ranking(ranking_file)
    dice = [float(np.mean(list(case_dice[c.case].values()))) for c in ranking]
    lines = ["| rank (most uncertain first) | case | mean KL over foreground | Dice (mean) |", "|---|---|---|---|"]
    lines += [f"| {rank} | {c.case} | {c.mean_kl_foreground:.6g} | {d:.4f} |"
              for rank, (c, d) in enumerate(zip(ranking, dice), start=1)]
    rho = float(spearmanr([c.mean_kl_foreground for c in ranking], dice)[0]) if len(ranking) > 1 else float("nan")
    return "\n".join(lines), rho


def run_demo(output_dir: str, seed: int = 0, methods: Sequence[str] = DEMO_METHODS,
             dataset_preset: Optional[dict] = None, dataset_id: int = DATASET_ID, num_processes: int = 2,
             verbose: bool = False, device: str = "cpu") -> dict:
    """Write the synthetic dataset, plan + preprocess, train and predict each method with nnU-Net, score Dice.

    device is passed to nnUNetv2_train/-predict ("cpu" or "cuda"); on cuda nnU-Net's background augmentation
    workers are kept (on a 2-core CPU they cost more than they save, so the CPU demo runs augmentation in-process).

    Re-running on the same output_dir resumes: finished steps are skipped, interrupted training continues
    from its latest checkpoint. Writes dice_results.json and dice_table.md into output_dir and returns
    {"dice": {method: dice_per_class result}, "timings_s": {step: seconds}}."""
    from nnunetv2_dualunc.evaluation.dice import dice_per_class
    from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc

    clock = _Clock()
    output_dir = os.path.abspath(output_dir)
    preset = dict(DEMO_PRESET if dataset_preset is None else dataset_preset)
    methods = list(methods)
    env = nnunet_environment(output_dir, num_processes)
    clock.header(f"Checking trainers {', '.join(methods)}")
    trainer_classes = _check_trainers_exist(methods, env)
    os.makedirs(os.path.join(output_dir, "logs"), exist_ok=True)
    _record_demo_config(output_dir, {"seed": seed, "dataset_id": dataset_id,
                                     **{k: list(v) if isinstance(v, tuple) else v for k, v in preset.items()}})
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.makedirs(env[key], exist_ok=True)
    timings = {}

    def finish(step: str, started: float) -> None:
        timings[step] = round(time.time() - started, 1)
        clock.say(f"{step} took {timings[step]:.0f} s")

    started = time.time()
    raw_folder = os.path.join(env["nnUNet_raw"], dataset_name(dataset_id))
    clock.header(f"Synthetic dataset {dataset_name(dataset_id)} (seed {seed}, {preset})")
    if os.path.isfile(os.path.join(raw_folder, "dataset.json")):
        clock.say("already written")
    else:
        write_synthetic_dataset(env["nnUNet_raw"], dataset_id, seed=seed, **preset)
    finish("dataset", started)

    started = time.time()
    clock.header("nnU-Net planning and preprocessing")
    if _preprocessing_done(env["nnUNet_preprocessed"], dataset_id, preset["n_labelled"]):
        clock.say("already done")
    else:
        # nnU-Net's planner calls torch.set_num_threads(nnUNet_n_proc_DA): 0 would crash it
        plan_env = dict(env, nnUNet_n_proc_DA=str(max(1, num_processes)))
        _run_logged([console_script("nnUNetv2_plan_and_preprocess"), "-d", str(dataset_id), "-c", CONFIGURATION,
                     "--verify_dataset_integrity", "-npfp", str(num_processes), "-np", str(num_processes)],
                    plan_env, os.path.join(output_dir, "logs", "plan_and_preprocess.log"), clock, verbose)
    finish("plan_and_preprocess", started)

    # data augmentation in the training process itself: worker processes cost more than they save on 2 cores
    train_env = dict(env, nnUNet_n_proc_DA="0") if device == "cpu" else env
    results, uncertainty = {}, {}
    for method in methods:
        trainer_folder = _trainer_output_folder(env["nnUNet_results"], method, dataset_id)
        checkpoint = os.path.join(trainer_folder, "checkpoint_final.pth")
        started = time.time()
        clock.header(f"Training {method} ({CONFIGURATION}, fold {FOLD}, {device})")
        if os.path.isfile(checkpoint):
            clock.say("already trained (checkpoint_final.pth exists)")
        else:
            command = [console_script("nnUNetv2_train"), str(dataset_id), CONFIGURATION, FOLD, "-tr", method,
                       "-device", device]
            if any(os.path.isfile(os.path.join(trainer_folder, f"checkpoint_{kind}.pth"))
                   for kind in ("latest", "best")):
                clock.say("found an interrupted training: continuing it (--c)")
                command.append("--c")
            _run_logged(command, train_env, os.path.join(output_dir, "logs", f"train_{method}.log"), clock,
                        verbose)
        finish(f"train_{method}", started)

        started = time.time()
        clock.header(f"Predicting the test images with {method}")
        prediction_dir = os.path.join(output_dir, "predictions", method)
        test_images = os.path.join(raw_folder, TEST_IMAGES_FOLDER)
        if os.path.isdir(prediction_dir) and _predictions_done(prediction_dir, test_images, checkpoint):
            clock.say("already predicted")
        else:
            _run_logged([console_script("nnUNetv2_predict"), "-i", test_images, "-o", prediction_dir,
                         "-d", str(dataset_id), "-c", CONFIGURATION, "-f", FOLD, "-tr", method, "-device", device,
                         "--disable_tta", "-npp", "1", "-nps", "1", "--disable_progress_bar"],
                        env, os.path.join(output_dir, "logs", f"predict_{method}.log"), clock, verbose)
        finish(f"predict_{method}", started)
        results[method] = dice_per_class(prediction_dir, os.path.join(raw_folder, TEST_LABELS_FOLDER),
                                         [v for v in LABELS.values() if v != 0], FILE_ENDING)
        if issubclass(trainer_classes[method], nnUNetTrainerDualUnc):
            started = time.time()
            uncertainty[method] = _uncertainty_step(method, test_images, checkpoint, results[method]["per_case"],
                                                    dataset_id, device, env, output_dir, clock, verbose)
            finish(f"uncertainty_{method}", started)

    clock.header("Dice on the held-out test cases")
    table = format_dice_table(results)
    print(table, flush=True)
    timings["total"] = round(clock.elapsed(), 1)
    summary = {"dataset": dataset_name(dataset_id), "seed": seed, "preset": preset, "labels": LABELS,
               "dice": results, "uncertainty": uncertainty, "timings_s": timings}
    with open(os.path.join(output_dir, "dice_results.json"), "w") as f:
        json.dump(summary, f, indent=2, default=list)
    with open(os.path.join(output_dir, "dice_table.md"), "w") as f:
        f.write(f"# Dice on {dataset_name(dataset_id)} (seed {seed}, {preset['n_labelled']} labelled, "
                f"{preset['n_unlabelled']} unlabelled, {preset['n_test']} test cases)\n\n{table}\n")
    clock.say(f"Done in {timings['total']:.0f} s. Results: {output_dir}/dice_table.md, dice_results.json")
    return {"dice": results, "uncertainty": uncertainty, "timings_s": timings}


def _uncertainty_step(method: str, test_images: str, checkpoint: str, case_dice: Dict[str, Dict[int, float]],
                      dataset_id: int, device: str, env: Dict[str, str], output_dir: str, clock: "_Clock",
                      verbose: bool) -> dict:
    """`nnunetv2_dualunc predict-uncertainty` on the test images; print its case ranking beside each case's Dice."""
    from nnunetv2_dualunc.uncertainty_maps import RANKING_FILE

    clock.header(f"Uncertainty maps and case ranking with {method} (KL between its two decoders)")
    folder = os.path.join(output_dir, "uncertainty", method)
    ranking_file = os.path.join(folder, RANKING_FILE)
    if os.path.isfile(ranking_file) and os.path.getmtime(ranking_file) > os.path.getmtime(checkpoint):
        clock.say("already done")
    else:
        _run_logged([console_script("nnunetv2_dualunc"), "predict-uncertainty", "-i", test_images, "-o", folder,
                     "-d", str(dataset_id), "-c", CONFIGURATION, "-f", FOLD, "-tr", method, "-device", device,
                     "--disable_tta"], env, os.path.join(output_dir, "logs", f"uncertainty_{method}.log"), clock,
                    verbose)
    table, rho = format_uncertainty_ranking(ranking_file, case_dice)
    print(table, flush=True)
    clock.say(f"Spearman correlation of case uncertainty with case Dice: {rho:+.2f} (negative: the ranking puts the "
              f"worst segmentations first). Maps: {folder}/CASE_uncertainty.nii.gz")
    return {"folder": folder, "spearman_uncertainty_vs_dice": rho}


def demo_entry(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: nnunetv2_dualunc demo [--output-dir DIR] [--seed N] [--methods ...] [--verbose]."""
    parser = argparse.ArgumentParser(
        prog="nnunetv2_dualunc demo",
        description="Train a supervised nnU-Net and the DualUnc self-training nnU-Net on a small synthetic "
                    "semi-supervised dataset (CPU, a few minutes) and compare their Dice on held-out cases.")
    parser.add_argument("--output-dir", default="./dualunc_demo",
                        help="Folder for the nnU-Net data, models, predictions and the Dice table; re-running "
                             "on the same folder resumes. Default: ./dualunc_demo")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the synthetic dataset. Default: 0")
    parser.add_argument("--methods", nargs="+", default=list(DEMO_METHODS),
                        help=f"nnU-Net trainer classes to compare. Default: {' '.join(DEMO_METHODS)}")
    parser.add_argument("--verbose", action="store_true", help="Show all nnU-Net output, not only progress lines.")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="Train and predict on this device (nnU-Net's -device). Default: cpu")
    args = parser.parse_args(argv)
    run_demo(args.output_dir, seed=args.seed, methods=args.methods, verbose=args.verbose, device=args.device)
    return 0


if __name__ == "__main__":
    sys.exit(demo_entry())
