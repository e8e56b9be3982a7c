"""A CPU-sized nnU-Net configuration, added to an existing plans file the nnU-Net way (``inherits_from``).

nnU-Net plans for a GPU: ACDC's 2d configuration (256x224 patches, 32->512 features) takes seconds per iteration
on a 2-core CPU. ``2d_cpu`` keeps everything of its base configuration (normalisation, resampling functions,
network class, ...) and overrides only what sets the cost:

    spacing                      base spacing x spacing_factor (in-plane 2x coarser by default)
    median_image_size_in_voxels  base median / spacing_factor (what the coarser spacing gives)
    patch_size                   128 x 128 by default
    architecture                 topology for that patch from nnU-Net's own get_pool_and_conv_props (6 stages for
                                 128 x 128), features 16, 32, ... capped at 256
    data_identifier              <plans_name>_<name>: its preprocessed data gets a folder of its own
    batch_size                   the base's unless given

PlansManager merges a configuration with its parent by a *shallow* dict update, so ``architecture`` is written
whole (a partial ``arch_kwargs`` would replace the parent's entirely). Then preprocess and train it like any
configuration: ``nnUNetv2_preprocess -d ID -c 2d_cpu`` and ``nnUNetv2_train ID 2d_cpu FOLD``.
"""
import argparse
import os
from copy import deepcopy
from os.path import isdir, isfile, join
from typing import List, Optional, Sequence, Union

import numpy as np
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_dualunc.atomic_files import atomic_write_json

# nnU-Net's planner stops pooling once an axis of the bottleneck would drop below this edge length
FEATURE_MAP_MIN_EDGE_LENGTH = 4
# per-stage lists in arch_kwargs: encoder lists have n_stages entries, decoder lists n_stages - 1
_ENCODER_STAGE_KEYS = ("n_conv_per_stage", "n_blocks_per_stage")
_DECODER_STAGE_KEYS = ("n_conv_per_stage_decoder",)


class CPUConfigurationError(ValueError):
    """Bad plans file or settings for the CPU configuration; the message names the file/setting and the fix."""


def features_per_stage(n_stages: int, base_num_features: int = 16, max_num_features: int = 256) -> List[int]:
    """16, 32, 64, ... doubling per stage and capped, as nnU-Net's planner does with its own base/cap."""
    return [min(base_num_features * 2 ** i, max_num_features) for i in range(n_stages)]


def _resized(values: Sequence, length: int) -> list:
    """A per-stage list cut or extended (repeating its last entry) to ``length`` entries."""
    values = list(values)
    return values[:length] + [values[-1]] * max(0, length - len(values))


def _as_per_axis(value: Union[float, Sequence[float]], ndim: int, what: str) -> List[float]:
    values = [float(value)] * ndim if np.isscalar(value) else [float(v) for v in value]
    if len(values) != ndim:
        raise CPUConfigurationError(f"{what} has {len(values)} entries but the base configuration has {ndim} axes. "
                                    f"Fix: give one value or {ndim}.")
    return values


def cpu_configuration(base: dict, base_configuration: str, data_identifier: str,
                      spacing_factor: Union[float, Sequence[float]] = 2.0, patch_size: Sequence[int] = (128, 128),
                      base_num_features: int = 16, max_num_features: int = 256,
                      batch_size: Optional[int] = None) -> dict:
    """The plans entry of the CPU configuration, given the *resolved* base configuration dict."""
    base_spacing = [float(s) for s in base["spacing"]]
    ndim = len(base_spacing)
    factors = _as_per_axis(spacing_factor, ndim, "spacing_factor")
    if any(f <= 0 for f in factors):
        raise CPUConfigurationError(f"spacing_factor must be > 0, got {spacing_factor}.")
    patch = [int(p) for p in patch_size]
    if len(patch) != ndim:
        raise CPUConfigurationError(f"patch_size {tuple(patch)} has {len(patch)} axes but configuration "
                                    f"'{base_configuration}' has {ndim}. Fix: give {ndim} values.")
    spacing = [s * f for s, f in zip(base_spacing, factors)]

    _, strides, kernel_sizes, padded_patch, divisor = get_pool_and_conv_props(
        spacing, patch, FEATURE_MAP_MIN_EDGE_LENGTH, 999999)
    if [int(p) for p in padded_patch] != patch:
        suggestion = tuple(int(p) for p in padded_patch)
        raise CPUConfigurationError(
            f"patch_size {tuple(patch)} does not fit nnU-Net's topology for spacing {spacing}: each axis must be "
            f"divisible by {tuple(int(d) for d in divisor)}. Fix: use e.g. {suggestion}.")
    n_stages = len(strides)

    architecture = deepcopy(base["architecture"])
    kwargs = architecture["arch_kwargs"]
    kwargs.update(n_stages=n_stages, features_per_stage=features_per_stage(n_stages, base_num_features,
                                                                           max_num_features),
                  kernel_sizes=[list(map(int, k)) for k in kernel_sizes], strides=[list(map(int, s)) for s in strides])
    for key in _ENCODER_STAGE_KEYS:
        if key in kwargs:
            kwargs[key] = _resized(kwargs[key], n_stages)
    for key in _DECODER_STAGE_KEYS:
        if key in kwargs:
            kwargs[key] = _resized(kwargs[key], n_stages - 1)

    configuration = {
        "inherits_from": base_configuration,
        "data_identifier": data_identifier,
        "spacing": spacing,
        "median_image_size_in_voxels": [max(1, int(round(m / f)))
                                        for m, f in zip(base["median_image_size_in_voxels"], factors)],
        "patch_size": patch,
        "architecture": architecture,
    }
    if batch_size is not None:
        if batch_size < 1:
            raise CPUConfigurationError(f"batch_size must be >= 1, got {batch_size}.")
        configuration["batch_size"] = int(batch_size)
    return configuration


def _plans_to_extend(plans_file: str, base_configuration: str, name: str) -> tuple:
    """(plans, resolved base configuration) once the new configuration ``name`` is known to be addable."""
    if not isfile(plans_file):
        raise CPUConfigurationError(f"Plans file not found: {plans_file}. Fix: run `nnUNetv2_plan_and_preprocess -d "
                                    f"ID -c {base_configuration}` (or nnUNetv2_plan_experiment) first.")
    plans = load_json(plans_file)
    configurations = plans.get("configurations", {})
    if name == base_configuration:
        raise CPUConfigurationError(f"The CPU configuration needs a name of its own, not '{name}'.")
    if base_configuration not in configurations:
        raise CPUConfigurationError(f"Configuration '{base_configuration}' is not in {plans_file}. Fix: use one of "
                                    f"{sorted(configurations)} (-c), or plan it with nnUNetv2_plan_and_preprocess.")
    if configurations[base_configuration].get("inherits_from") == name:
        raise CPUConfigurationError(f"'{base_configuration}' inherits from '{name}' in {plans_file}; making '{name}' "
                                    f"inherit from it would be circular. Fix: choose another name (-n).")
    return plans, PlansManager(plans).get_configuration(base_configuration).configuration


def _write_configuration(plans: dict, plans_file: str, name: str, configuration: dict) -> dict:
    """Add (or replace: running it again gives the same file) ``name``, atomically; return it as nnU-Net resolves it."""
    plans["configurations"][name] = configuration
    atomic_write_json(plans, plans_file, indent=4)
    return PlansManager(plans).get_configuration(name).configuration


def add_cpu_configuration(plans_file: str, base_configuration: str = "2d", name: str = "2d_cpu",
                          spacing_factor: Union[float, Sequence[float]] = 2.0, patch_size: Sequence[int] = (128, 128),
                          base_num_features: int = 16, max_num_features: int = 256,
                          batch_size: Optional[int] = None) -> dict:
    """Add (or replace) configuration ``name`` to ``plans_file``; returns the configuration as resolved by nnU-Net's
    PlansManager. The file is replaced atomically."""
    plans, base = _plans_to_extend(plans_file, base_configuration, name)
    data_identifier = f"{plans['plans_name']}_{name}"
    return _write_configuration(plans, plans_file, name, cpu_configuration(
        base, base_configuration, data_identifier, spacing_factor, patch_size, base_num_features, max_num_features,
        batch_size))


def add_batch_size_configuration(plans_file: str, base_configuration: str, name: str, batch_size: int) -> dict:
    """Add (or replace) ``name``: the base configuration with only its batch size changed.

    Why: on a CPU the time budget, not the number of training cases, should set the batch (nnU-Net's 3d_fullres on
    Hippocampus plans batch 7 at ~0.8 s per sample on 2 cores). Same network, patch, spacing and preprocessed data
    (the data_identifier is inherited), so ``nnUNetv2_train ID NAME FOLD`` runs without preprocessing again.
    """
    if batch_size < 1:
        raise CPUConfigurationError(f"batch_size must be >= 1, got {batch_size}.")
    plans, _ = _plans_to_extend(plans_file, base_configuration, name)
    return _write_configuration(plans, plans_file, name,
                                {"inherits_from": base_configuration, "batch_size": int(batch_size)})


def add_cpu_configuration_entry(argv: Optional[List[str]] = None) -> None:
    """CLI: nnunetv2_dualunc add-cpu-configuration -d DATASET [-p nnUNetPlans] [-c 2d] [-n 2d_cpu] ..."""
    parser = argparse.ArgumentParser(
        prog="nnunetv2_dualunc add-cpu-configuration",
        description="Add a CPU-sized configuration (coarser spacing, small patch, 16->256 features) that inherits "
                    "from an existing one to $nnUNet_preprocessed/DatasetXXX/<plans>.json. Then run "
                    "`nnUNetv2_preprocess -d ID -c NAME` and train with `nnUNetv2_train ID NAME FOLD`.")
    parser.add_argument("-d", dest="dataset", required=True, help="dataset name or id")
    parser.add_argument("-p", dest="plans", default="nnUNetPlans", help="plans identifier (default: nnUNetPlans)")
    parser.add_argument("-c", dest="base", default="2d", help="configuration to inherit from (default: 2d)")
    parser.add_argument("-n", dest="name", default="2d_cpu", help="name of the new configuration (default: 2d_cpu)")
    parser.add_argument("--spacing-factor", type=float, nargs="+", default=[2.0],
                        help="multiply the base spacing by this (one value, or one per axis; default: 2)")
    parser.add_argument("--patch-size", type=int, nargs="+", default=[128, 128], help="default: 128 128")
    parser.add_argument("--base-features", type=int, default=16, help="features of the first stage (default: 16)")
    parser.add_argument("--max-features", type=int, default=256, help="feature cap (default: 256)")
    parser.add_argument("-bs", dest="batch_size", type=int, default=None,
                        help="batch size (default: the base configuration's)")
    parser.add_argument("--batch-size-only", action="store_true",
                        help="change only the batch size (-bs): same network, patch, spacing and preprocessed data as "
                             "the base, so no preprocessing is needed (e.g. -c 3d_fullres -n 3d_fullres_bs2 -bs 2)")
    args = parser.parse_args(argv)
    try:
        preprocessed = os.environ.get("nnUNet_preprocessed")
        if not preprocessed:
            raise CPUConfigurationError("Environment variable nnUNet_preprocessed is not set. Fix: export it as for "
                                        "nnU-Net itself.")
        from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
        try:
            dataset_name = maybe_convert_to_dataset_name(args.dataset)
        except RuntimeError as e:
            raise CPUConfigurationError(f"Unknown dataset {args.dataset!r}: {e}") from e
        folder = join(preprocessed, dataset_name)
        if not isdir(folder):
            raise CPUConfigurationError(f"{folder} not found. Fix: run nnUNetv2_plan_and_preprocess -d "
                                        f"{args.dataset} -c {args.base} first.")
        plans_file = join(folder, args.plans + ".json")
        if args.batch_size_only:
            if args.batch_size is None:
                raise CPUConfigurationError("--batch-size-only needs the batch size. Fix: add -bs N.")
            configuration = add_batch_size_configuration(plans_file, args.base, args.name, args.batch_size)
            print(f"Added '{args.name}' ('{args.base}' with batch size {configuration['batch_size']}) to {plans_file}. "
                  f"It shares '{args.base}''s preprocessed data. Next: nnUNetv2_train {args.dataset} {args.name} FOLD "
                  f"-p {args.plans}")
            return
        factor = args.spacing_factor[0] if len(args.spacing_factor) == 1 else args.spacing_factor
        configuration = add_cpu_configuration(plans_file, args.base, args.name, factor, args.patch_size,
                                              args.base_features, args.max_features, args.batch_size)
    except CPUConfigurationError as e:
        raise SystemExit(f"ERROR: {e}")
    arch = configuration["architecture"]["arch_kwargs"]
    print(f"Added '{args.name}' (inherits from '{args.base}') to {plans_file}: patch "
          f"{configuration['patch_size']}, spacing {configuration['spacing']}, batch size "
          f"{configuration['batch_size']}, features {arch['features_per_stage']}.\nNext: nnUNetv2_preprocess -d "
          f"{args.dataset} -c {args.name} -p {args.plans}")
