"""Unlabelled raw images: find and validate them, then preprocess them with an existing nnU-Net plan.

Raw layout: the images without labels sit in ``$nnUNet_raw/DatasetXXX_Name/imagesUnlabeled/`` next to imagesTr,
named like imagesTr (``CASE_0000.nii.gz``, ``CASE_0001.nii.gz``, ... one file per entry of dataset.json's
``channel_names``, with dataset.json's ``file_ending``). nnU-Net itself never looks into that folder, so
``nnUNetv2_plan_and_preprocess --verify_dataset_integrity`` keeps working, and the plans stay those of the
labelled data.

Preprocessed layout: ``$nnUNet_preprocessed/DatasetXXX_Name/<data_identifier>_unlabelled/`` holds the cases in
nnU-Net's Blosc2 format (``CASE.b2nd``, ``CASE_seg.b2nd`` = nonzero mask with -1 outside, ``CASE.pkl``). It is a
folder of its own because nnU-Net expects one dataset format per configuration folder. Raw data is only read.
"""
import argparse
import os
import re
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from copy import deepcopy
from multiprocessing import get_context
from os.path import isdir, isfile, join
from typing import Dict, List, Optional, Sequence, Type, Union

import numpy as np
from batchgenerators.utilities.file_and_folder_operations import load_json
from tqdm import tqdm

import nnunetv2.paths
from nnunetv2.configuration import default_num_processes
from nnunetv2.imageio.base_reader_writer import BaseReaderWriter
from nnunetv2.training.dataloading.nnunet_dataset import comp_blosc2_params, nnUNetDatasetBlosc2
from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from nnunetv2.utilities.utils import (create_paths_fn, get_filenames_of_train_images_and_targets,
                                      get_identifiers_from_splitted_dataset_folder)

from nnunetv2_dualunc.data.checks import CASE_FILE_SUFFIXES, describe_problems, unreadable_cases

UNLABELLED_IMAGES_FOLDER = "imagesUnlabeled"
UNLABELLED_FOLDER_SUFFIX = "_unlabelled"
# Prefix of the per-case scratch folders inside the output folder. Hidden, so neither nnU-Net's
# nnUNetDatasetBlosc2.get_identifiers nor load_unlabelled_identifiers ever sees a half-written case.
PARTIAL_CASE_PREFIX = ".partial_"
_CHANNEL_SUFFIX = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
_MAX_LISTED_PROBLEMS = 30
_PREPROCESS_CLI = "nnunetv2_dualunc preprocess-unlabelled -d DATASET -c CONFIGURATION"


class UnlabelledDataError(ValueError):
    """Bad unlabelled input (or missing setup to preprocess it); the message names the file and the fix."""


# ----------------------------------------------------------------------------------------------------------------
# raw data: find + validate
# ----------------------------------------------------------------------------------------------------------------
def find_unlabelled_cases(raw_dataset_folder: str, dataset_json: dict) -> Dict[str, List[str]]:
    """Case id -> sorted list of channel files in ``imagesUnlabeled``.

    All naming problems are collected and raised together (one UnlabelledDataError) before any image is read, so a
    user fixes the folder in one go instead of one file per run.
    """
    folder = join(raw_dataset_folder, UNLABELLED_IMAGES_FOLDER)
    file_ending = dataset_json["file_ending"]
    num_channels = len(dataset_json["channel_names"])
    example = f"CASE_0000{file_ending}" + (f" ... CASE_{num_channels - 1:04d}{file_ending}" if num_channels > 1 else "")
    if not isdir(folder):
        raise UnlabelledDataError(
            f"Unlabelled images folder not found: {folder}\nFix: create it next to imagesTr and put the unlabelled "
            f"images there, named like imagesTr: {example} (one file per channel in dataset.json's channel_names).")

    entries = sorted(i for i in os.listdir(folder) if not i.startswith("."))
    problems = []
    channels_per_case: Dict[str, Dict[int, str]] = {}
    for name in entries:
        path = join(folder, name)
        if not isfile(path):
            problems.append(f"{path} is a folder. Fix: put the images directly into {folder}.")
        elif not name.endswith(file_ending):
            problems.append(f"{path} does not have dataset.json's file_ending '{file_ending}'. Fix: convert it to "
                            f"{file_ending} or remove it.")
        else:
            match = _CHANNEL_SUFFIX.match(name[:-len(file_ending)])
            if match is None:
                problems.append(f"{path} looks like a label file; unlabelled images need the _0000 channel suffix. "
                                f"Fix: rename it to {name[:-len(file_ending)]}_0000{file_ending} if it is an image, "
                                f"or remove it if it is a label.")
            else:
                channels_per_case.setdefault(match["case"], {})[int(match["channel"])] = path

    if not channels_per_case and not problems:
        raise UnlabelledDataError(
            f"Unlabelled images folder {folder} holds no images ending with '{file_ending}'. Fix: put the "
            f"unlabelled images there, named like imagesTr: {example}.")

    labelled_images = _first_image_of_labelled_cases(raw_dataset_folder, dataset_json)
    cases = {}
    for case_id in sorted(channels_per_case):
        channels = channels_per_case[case_id]
        expected = {c: join(folder, f"{case_id}_{c:04d}{file_ending}") for c in range(num_channels)}
        if set(channels) != set(expected):
            missing = [expected[c] for c in sorted(set(expected) - set(channels))]
            extra = [channels[c] for c in sorted(set(channels) - set(expected))]
            found = (f" Missing: {missing}." if missing else "") + (f" Unexpected: {extra}." if extra else "")
            problems.append(
                f"Unlabelled case '{case_id}' does not have exactly the {num_channels} channel(s) of dataset.json's "
                f"channel_names. Expected files: {list(expected.values())}.{found} Fix: add the missing channel "
                f"files / remove or rename the unexpected ones.")
            continue
        if case_id in labelled_images:
            problems.append(
                f"Unlabelled case '{case_id}' ({expected[0]}) has the same case id as the labelled case "
                f"{labelled_images[case_id]}. Fix: rename the unlabelled files, e.g. to "
                f"{case_id}_unlabelled_0000{file_ending}; case ids must be unique across labelled and unlabelled.")
            continue
        cases[case_id] = [expected[c] for c in range(num_channels)]

    if problems:
        raise UnlabelledDataError(_problem_report(f"Invalid unlabelled images in {folder}", problems))
    return cases


def _first_image_of_labelled_cases(raw_dataset_folder: str, dataset_json: dict) -> Dict[str, str]:
    """Labelled case id -> its first image file, read the way nnU-Net reads the training set."""
    if "dataset" in dataset_json:
        # get_filenames_of_train_images_and_targets rewrites dataset_json['dataset'] in place: give it a copy
        dataset = get_filenames_of_train_images_and_targets(raw_dataset_folder, deepcopy(dataset_json))
        return {k: v["images"][0] for k, v in dataset.items()}
    images_tr = join(raw_dataset_folder, "imagesTr")
    if not isdir(images_tr):
        return {}
    file_ending = dataset_json["file_ending"]
    identifiers = get_identifiers_from_splitted_dataset_folder(images_tr, file_ending)
    return {str(i): join(images_tr, f"{i}_0000{file_ending}") for i in identifiers}


def _labelled_case_image_files(raw_dataset_folder: str, dataset_json: dict) -> List[str]:
    """The image files of one labelled case (to learn the dataset's spatial dimensionality)."""
    if "dataset" in dataset_json:
        dataset = get_filenames_of_train_images_and_targets(raw_dataset_folder, deepcopy(dataset_json))
        return next(iter(dataset.values()))["images"] if dataset else []
    images_tr = join(raw_dataset_folder, "imagesTr")
    if not isdir(images_tr):
        return []
    file_ending = dataset_json["file_ending"]
    identifiers = get_identifiers_from_splitted_dataset_folder(images_tr, file_ending)
    if len(identifiers) == 0:
        return []
    return create_paths_fn(images_tr, sorted(os.listdir(images_tr)), file_ending, str(identifiers[0]))


def spatial_ndim(image: np.ndarray) -> int:
    """2 or 3. nnU-Net's readers return every image as (c, x, y, z) and put 2D images in as (c, 1, y, z)."""
    return 2 if image.shape[1] == 1 else 3


def labelled_spatial_ndim(raw_dataset_folder: str, dataset_json: dict,
                          reader_writer_class: Type[BaseReaderWriter]) -> Optional[int]:
    """Spatial dimensionality of the labelled images (one case is read); None if there is no labelled case."""
    files = _labelled_case_image_files(raw_dataset_folder, dataset_json)
    if not files:
        return None
    image, _ = reader_writer_class().read_images(files)
    return spatial_ndim(image)


def check_unlabelled_images_readable(cases: Dict[str, List[str]], reader_writer_class: Type[BaseReaderWriter],
                                     expected_ndim: Optional[int] = None) -> None:
    """Read every case once with nnU-Net's reader; raise one UnlabelledDataError listing every unreadable case,
    every case with NaN/inf voxels and every case whose spatial dimensionality differs from expected_ndim."""
    problems = [p for case_id, files in cases.items()
                if (p := _problem_with_case_images(case_id, files, reader_writer_class, expected_ndim)) is not None]
    if problems:
        raise UnlabelledDataError(_problem_report("Unusable unlabelled images", problems))


def _problem_with_case_images(case_id: str, files: Sequence[str], reader_writer_class: Type[BaseReaderWriter],
                              expected_ndim: Optional[int]) -> Optional[str]:
    try:
        image, _ = reader_writer_class().read_images(list(files))
    except Exception as e:  # readers raise anything from RuntimeError to nibabel/ITK errors
        return (f"Cannot read unlabelled case '{case_id}' ({', '.join(files)}) with {reader_writer_class.__name__}: "
                f"{type(e).__name__}: {e}. Fix: check that the file(s) open in an image viewer, are not truncated, "
                f"and that all channels of the case have the same shape and spacing; or remove the case.")
    if not np.all(np.isfinite(image)):
        bad = [f for c, f in enumerate(files) if not np.all(np.isfinite(image[c]))] if len(files) == image.shape[0] \
            else list(files)
        return (f"Unlabelled case '{case_id}' has NaN or inf voxel values in {', '.join(bad)}. Fix: replace them "
                f"with finite values that make sense for the modality (e.g. the background value).")
    ndim = spatial_ndim(image)
    if expected_ndim is not None and ndim != expected_ndim:
        return (f"Unlabelled case '{case_id}' ({', '.join(files)}) is {ndim}D but the labelled images are "
                f"{expected_ndim}D (image shape as read by nnU-Net: {tuple(image.shape[1:])}). Fix: provide "
                f"{expected_ndim}D images like those in imagesTr, or remove the case.")
    return None


def _problem_report(title: str, problems: List[str]) -> str:
    listed = problems[:_MAX_LISTED_PROBLEMS]
    more = len(problems) - len(listed)
    return (f"{title} ({len(problems)} problem(s)):\n - " + "\n - ".join(listed)
            + (f"\n - ... and {more} more" if more > 0 else ""))


# ----------------------------------------------------------------------------------------------------------------
# preprocessed data: folder layout and completeness
# ----------------------------------------------------------------------------------------------------------------
def unlabelled_preprocessed_folder(preprocessed_dataset_folder_base: str, data_identifier: str) -> str:
    """join(base, data_identifier + '_unlabelled'): nnU-Net requires one dataset format per configuration folder."""
    return join(preprocessed_dataset_folder_base, data_identifier + UNLABELLED_FOLDER_SUFFIX)


def _is_complete_case(folder: str, case_id: str) -> bool:
    return all(isfile(join(folder, case_id + s)) for s in CASE_FILE_SUFFIXES)


def load_unlabelled_identifiers(folder: str) -> List[str]:
    """The complete cases in a preprocessed unlabelled folder (sorted); partial leftovers of a killed run are not
    listed. An existing folder without complete cases gives []."""
    if not isdir(folder):
        raise UnlabelledDataError(f"Preprocessed unlabelled folder not found: {folder}. Fix: run "
                                  f"`{_PREPROCESS_CLI}` first.")
    ids = [i[:-len(".pkl")] for i in os.listdir(folder) if i.endswith(".pkl") and not i.startswith(".")]
    return sorted(i for i in ids if _is_complete_case(folder, i))


def _remove_leftovers_of_killed_runs(folder: str) -> None:
    """Scratch folders and case files without their .pkl can only come from an interrupted run."""
    for name in os.listdir(folder):
        path = join(folder, name)
        if name.startswith(PARTIAL_CASE_PREFIX) and isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif name.endswith(".b2nd") and not name.startswith("."):
            # 'A_seg.b2nd' is either the seg of case 'A' or the data of case 'A_seg': keep it if either is complete
            owners = [name[:-len(".b2nd")]]
            if name.endswith("_seg.b2nd"):
                owners.append(name[:-len("_seg.b2nd")])
            if not any(isfile(join(folder, o + ".pkl")) for o in owners):
                os.remove(path)


def _remove_damaged_cases(folder: str) -> List[str]:
    """Complete cases whose files no longer open (truncated copy, full disk, overwritten file) are deleted, so that
    they are preprocessed again from their raw images instead of failing later inside a data loader. Returns the
    removed case ids."""
    damaged = unreadable_cases(folder, load_unlabelled_identifiers(folder))
    for case_id in sorted(damaged):
        details = "; ".join(describe_problems({case_id: damaged[case_id]}))
        print(f"Damaged preprocessed unlabelled case '{case_id}': {details}. Removing it; it is preprocessed again "
              f"from {UNLABELLED_IMAGES_FOLDER}/.")
        for suffix in (".pkl", ".b2nd", "_seg.b2nd"):  # .pkl first: a kill in between leaves an incomplete case
            path = join(folder, case_id + suffix)
            if isfile(path):
                os.remove(path)
    return sorted(damaged)


class _UnlabelledCaseWriter:
    """Validates, preprocesses and atomically stores one unlabelled case. Holds plain data only, so it pickles
    cheaply into 'spawn' workers."""

    def __init__(self, plans: dict, configuration: str, dataset_json: dict, output_folder: str,
                 expected_ndim: Optional[int]):
        self.plans = plans
        self.configuration = configuration
        self.dataset_json = dataset_json
        self.output_folder = output_folder
        self.expected_ndim = expected_ndim

    def __call__(self, case_id: str, image_files: List[str]) -> Optional[str]:
        """None when stored, else the problem with this case's images (so that one run reports all bad cases)."""
        plans_manager = PlansManager(self.plans)
        configuration_manager = plans_manager.get_configuration(self.configuration)
        problem = _problem_with_case_images(case_id, image_files, plans_manager.image_reader_writer_class,
                                            self.expected_ndim)
        if problem is not None:
            return problem
        preprocessor = configuration_manager.preprocessor_class(verbose=False)
        data, seg, properties = preprocessor.run_case(image_files, None, plans_manager, configuration_manager,
                                                      self.dataset_json)
        self._store_atomically(case_id, data.astype(np.float32, copy=False), seg.astype(np.int16, copy=False),
                               properties, tuple(configuration_manager.patch_size))
        return None

    def _store_atomically(self, case_id: str, data: np.ndarray, seg: np.ndarray, properties: dict,
                          patch_size: tuple) -> None:
        block_data, chunk_data = comp_blosc2_params(data.shape, patch_size, data.itemsize)
        block_seg, chunk_seg = comp_blosc2_params(seg.shape, patch_size, seg.itemsize)
        scratch = tempfile.mkdtemp(prefix=PARTIAL_CASE_PREFIX, dir=self.output_folder)
        try:
            nnUNetDatasetBlosc2.save_case(data, seg, properties, join(scratch, case_id),
                                          chunks=chunk_data, blocks=block_data,
                                          chunks_seg=chunk_seg, blocks_seg=block_seg)
            for suffix in CASE_FILE_SUFFIXES:  # .pkl last: it marks the case complete
                os.replace(join(scratch, case_id + suffix), join(self.output_folder, case_id + suffix))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------------
# preprocessing entry points
# ----------------------------------------------------------------------------------------------------------------
def _nnunet_folder(name: str) -> str:
    """Value of nnunetv2.paths.<name>: an object with is_set()/get() in nnU-Net >= 2.8, a str or None before."""
    value = getattr(nnunetv2.paths, name)
    if hasattr(value, "is_set"):
        value = value.get() if value.is_set() else None
    if not value:
        raise UnlabelledDataError(f"Environment variable {name} is not set. Fix: export {name}=/path/to/folder as "
                                  f"for nnU-Net itself (see nnU-Net's documentation/setting_up_paths.md).")
    return str(value)


def _resolve_dataset_name(dataset_name_or_id: Union[str, int]) -> str:
    try:
        return maybe_convert_to_dataset_name(dataset_name_or_id)
    except (RuntimeError, ValueError) as e:
        raise UnlabelledDataError(f"Unknown dataset {dataset_name_or_id!r}: {e}\nFix: give an existing dataset id or "
                                  f"name (a folder DatasetXXX_Name in nnUNet_raw).") from e


def preprocess_unlabelled(dataset_name_or_id: Union[str, int], configuration: str,
                          plans_identifier: str = "nnUNetPlans", num_processes: int = default_num_processes,
                          verbose: bool = True) -> str:
    """Preprocess every unlabelled case of a dataset with an existing plans file + configuration, exactly as nnU-Net
    preprocesses its own cases, into unlabelled_preprocessed_folder(...). Complete cases are skipped, so an
    interrupted run resumes. Returns the output folder."""
    raw_base = _nnunet_folder("nnUNet_raw")
    preprocessed_base = _nnunet_folder("nnUNet_preprocessed")
    dataset_name = _resolve_dataset_name(dataset_name_or_id)
    raw_dataset_folder = join(raw_base, dataset_name)
    preprocessed_dataset_folder = join(preprocessed_base, dataset_name)
    plan_command = f"nnUNetv2_plan_and_preprocess -d {dataset_name_or_id} -c {configuration}" + \
                   (f" -overwrite_plans_name {plans_identifier}" if plans_identifier != "nnUNetPlans" else "")
    if not isdir(raw_dataset_folder):
        raise UnlabelledDataError(f"Raw dataset folder not found: {raw_dataset_folder}. Fix: check nnUNet_raw and "
                                  f"the dataset id; the unlabelled images live in its {UNLABELLED_IMAGES_FOLDER}/.")
    plans_file = join(preprocessed_dataset_folder, plans_identifier + ".json")
    dataset_json_file = join(preprocessed_dataset_folder, "dataset.json")
    for required in (plans_file, dataset_json_file):
        if not isfile(required):
            raise UnlabelledDataError(f"Not found: {required}. Fix: run `{plan_command}` first.")
    plans = load_json(plans_file)
    if configuration not in plans["configurations"]:
        raise UnlabelledDataError(f"Configuration '{configuration}' is not in {plans_file}. Fix: use one of "
                                  f"{sorted(plans['configurations'])}, or plan it with `{plan_command}`.")
    dataset_json = load_json(dataset_json_file)
    plans_manager = PlansManager(plans)
    configuration_manager = plans_manager.get_configuration(configuration)

    cases = find_unlabelled_cases(raw_dataset_folder, dataset_json)
    output_folder = unlabelled_preprocessed_folder(preprocessed_dataset_folder, configuration_manager.data_identifier)
    os.makedirs(output_folder, exist_ok=True)
    _remove_leftovers_of_killed_runs(output_folder)
    _remove_damaged_cases(output_folder)
    pending = {k: v for k, v in cases.items() if not _is_complete_case(output_folder, k)}
    if verbose:
        print(f"Unlabelled cases of {dataset_name} ({configuration}): {len(cases)} found, "
              f"{len(cases) - len(pending)} already preprocessed, {len(pending)} to do -> {output_folder}")
    if not pending:
        return output_folder

    expected_ndim = labelled_spatial_ndim(raw_dataset_folder, dataset_json, plans_manager.image_reader_writer_class)
    writer = _UnlabelledCaseWriter(plans, configuration, dataset_json, output_folder, expected_ndim)
    problems = _run_writer(writer, pending, num_processes, verbose)
    if problems:
        raise UnlabelledDataError(_problem_report(
            f"Preprocessed {len(pending) - len(problems)} of {len(pending)} unlabelled cases; these failed (fix or "
            f"remove them and rerun, finished cases are skipped)", problems))
    return output_folder


def _run_writer(writer: _UnlabelledCaseWriter, cases: Dict[str, List[str]], num_processes: int,
                verbose: bool) -> List[str]:
    """Run the writer on every case; returns the problems. num_processes <= 1 stays in this process (no worker
    start-up cost); otherwise 'spawn' workers, as nnU-Net's own preprocessing uses."""
    problems = []
    with tqdm(total=len(cases), desc="Preprocessing unlabelled cases", disable=not verbose) as progress:
        if num_processes <= 1:
            for case_id, files in cases.items():
                problems.append(writer(case_id, files))
                progress.update()
        else:
            with ProcessPoolExecutor(max_workers=min(num_processes, len(cases)),
                                     mp_context=get_context("spawn")) as pool:
                futures = [pool.submit(writer, case_id, files) for case_id, files in cases.items()]
                try:
                    for future in as_completed(futures):
                        problems.append(future.result())
                        progress.update()
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
    return [p for p in problems if p is not None]


def preprocess_unlabelled_entry(argv: Optional[List[str]] = None) -> None:
    """CLI: nnunetv2_dualunc preprocess-unlabelled -d DATASET -c CONFIG [CONFIG ...] [-p PLANS] [-np N]"""
    parser = argparse.ArgumentParser(
        prog="nnunetv2_dualunc preprocess-unlabelled",
        description=f"Preprocess the images in $nnUNet_raw/DatasetXXX/{UNLABELLED_IMAGES_FOLDER}/ with the plans of "
                    f"an already planned and preprocessed dataset (run nnUNetv2_plan_and_preprocess first). Output: "
                    f"$nnUNet_preprocessed/DatasetXXX/<plans>_<configuration>{UNLABELLED_FOLDER_SUFFIX}/. Cases "
                    f"already done are skipped.")
    parser.add_argument("-d", dest="dataset", required=True, help="dataset name or id, e.g. 1 or Dataset001_X")
    parser.add_argument("-c", dest="configurations", nargs="+", required=True,
                        help="configuration(s) of the plans, e.g. 2d 3d_fullres")
    parser.add_argument("-p", dest="plans", default="nnUNetPlans", help="plans identifier (default: nnUNetPlans)")
    parser.add_argument("-np", dest="num_processes", type=int, default=default_num_processes,
                        help=f"worker processes (default: {default_num_processes}; 1 runs in this process)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    args = parser.parse_args(argv)
    try:
        for configuration in args.configurations:
            folder = preprocess_unlabelled(args.dataset, configuration, args.plans, args.num_processes,
                                           verbose=not args.quiet)
            if not args.quiet:
                print(f"{configuration}: {len(load_unlabelled_identifiers(folder))} unlabelled cases in {folder}")
    except UnlabelledDataError as e:
        raise SystemExit(f"Error: {e}")
