"""Unlabelled images preprocessed with an existing nnU-Net plan (raw layout and validation: data/unlabelled_raw.py).

Preprocessed layout: ``$nnUNet_preprocessed/DatasetXXX_Name/<data_identifier>_unlabelled/`` holds the cases in
nnU-Net's Blosc2 format (``CASE.b2nd``, ``CASE_seg.b2nd`` = nonzero mask with -1 outside, ``CASE.pkl``). It is a
folder of its own because nnU-Net expects one dataset format per configuration folder. Raw data is only read.
"""
import argparse
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from os.path import isdir, isfile, join
from typing import Dict, List, Optional, Union

import numpy as np
from batchgenerators.utilities.file_and_folder_operations import load_json
from tqdm import tqdm

from nnunetv2.configuration import default_num_processes
from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_dualunc.data.case_files import CASE_FILE_SUFFIXES, write_case_atomically
from nnunetv2_dualunc.data.checks import describe_problems, unreadable_cases
from nnunetv2_dualunc.data.unlabelled_raw import (UNLABELLED_IMAGES_FOLDER, UnlabelledDataError, find_unlabelled_cases,
                                                  labelled_spatial_ndim, problem_report, problem_with_case_images)
from nnunetv2_dualunc.nnunet_folders import nnunet_folder

UNLABELLED_FOLDER_SUFFIX = "_unlabelled"
# Prefix of the per-case scratch folders inside the output folder. Hidden, so neither nnU-Net's
# nnUNetDatasetBlosc2.get_identifiers nor load_unlabelled_identifiers ever sees a half-written case.
PARTIAL_CASE_PREFIX = ".partial_"
_PREPROCESS_CLI = "nnunetv2_dualunc preprocess-unlabelled -d DATASET -c CONFIGURATION"


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
        problem = problem_with_case_images(case_id, image_files, plans_manager.image_reader_writer_class,
                                            self.expected_ndim)
        if problem is not None:
            return problem
        preprocessor = configuration_manager.preprocessor_class(verbose=False)
        data, seg, properties = preprocessor.run_case(image_files, None, plans_manager, configuration_manager,
                                                      self.dataset_json)
        write_case_atomically(self.output_folder, case_id, data.astype(np.float32, copy=False),
                              seg.astype(np.int16, copy=False), properties, configuration_manager.patch_size,
                              PARTIAL_CASE_PREFIX)
        return None


# ----------------------------------------------------------------------------------------------------------------
# preprocessing entry points
# ----------------------------------------------------------------------------------------------------------------
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
    raw_base = nnunet_folder("nnUNet_raw", UnlabelledDataError)
    preprocessed_base = nnunet_folder("nnUNet_preprocessed", UnlabelledDataError)
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
        raise UnlabelledDataError(problem_report(
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
