"""Unlabelled raw images: where they are, how they must be named, and whether they can be used.

Raw layout: the images without labels sit in ``$nnUNet_raw/DatasetXXX_Name/imagesUnlabeled/`` next to imagesTr,
named like imagesTr (``CASE_0000.nii.gz``, ``CASE_0001.nii.gz``, ... one file per entry of dataset.json's
``channel_names``, with dataset.json's ``file_ending``). nnU-Net itself never looks into that folder, so
``nnUNetv2_plan_and_preprocess --verify_dataset_integrity`` keeps working, and the plans stay those of the
labelled data. Every problem is reported with the file and the fix, all problems of a folder at once.
"""
import os
import re
from copy import deepcopy
from os.path import isdir, isfile, join
from typing import Dict, List, Optional, Sequence, Type

import numpy as np
from nnunetv2.imageio.base_reader_writer import BaseReaderWriter
from nnunetv2.utilities.utils import (create_paths_fn, get_filenames_of_train_images_and_targets,
                                      get_identifiers_from_splitted_dataset_folder)

UNLABELLED_IMAGES_FOLDER = "imagesUnlabeled"
#: dataset.json key with the number of unlabelled cases (informative; nnU-Net ignores it)
NUM_UNLABELLED_KEY = "numUnlabeled"
_CHANNEL_SUFFIX = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
_MAX_LISTED_PROBLEMS = 30


class UnlabelledDataError(ValueError):
    """Bad unlabelled input (or missing setup to preprocess it); the message names the file and the fix."""


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

    labelled_images = {case: files[0] for case, files in
                       _labelled_case_images(raw_dataset_folder, dataset_json).items()}
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
        raise UnlabelledDataError(problem_report(f"Invalid unlabelled images in {folder}", problems))
    return cases


def _labelled_case_images(raw_dataset_folder: str, dataset_json: dict) -> Dict[str, List[str]]:
    """Labelled case id -> its image files, found the way nnU-Net finds the training set (dataset.json's 'dataset'
    entry, else imagesTr/)."""
    if "dataset" in dataset_json:
        # get_filenames_of_train_images_and_targets rewrites dataset_json['dataset'] in place: give it a copy
        dataset = get_filenames_of_train_images_and_targets(raw_dataset_folder, deepcopy(dataset_json))
        return {str(k): v["images"] for k, v in dataset.items()}
    images_tr = join(raw_dataset_folder, "imagesTr")
    if not isdir(images_tr):
        return {}
    file_ending = dataset_json["file_ending"]
    files = sorted(os.listdir(images_tr))
    return {str(i): create_paths_fn(images_tr, files, file_ending, str(i))
            for i in get_identifiers_from_splitted_dataset_folder(images_tr, file_ending)}


def spatial_ndim(image: np.ndarray) -> int:
    """2 or 3. nnU-Net's readers return every image as (c, x, y, z) and put 2D images in as (c, 1, y, z)."""
    return 2 if image.shape[1] == 1 else 3


def labelled_spatial_ndim(raw_dataset_folder: str, dataset_json: dict,
                          reader_writer_class: Type[BaseReaderWriter]) -> Optional[int]:
    """Spatial dimensionality of the labelled images (one case is read); None if there is no labelled case."""
    cases = _labelled_case_images(raw_dataset_folder, dataset_json)
    if not cases:
        return None
    image, _ = reader_writer_class().read_images(next(iter(cases.values())))
    return spatial_ndim(image)


def problem_with_case_images(case_id: str, files: Sequence[str], reader_writer_class: Type[BaseReaderWriter],
                              expected_ndim: Optional[int]) -> Optional[str]:
    """None when nnU-Net's reader opens the case, all voxels are finite and its dimensionality is expected_ndim (when
    given), else the problem with the file(s) named. Preprocessing calls it on each case as it reads it anyway."""
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


def problem_report(title: str, problems: List[str]) -> str:
    listed = problems[:_MAX_LISTED_PROBLEMS]
    more = len(problems) - len(listed)
    return (f"{title} ({len(problems)} problem(s)):\n - " + "\n - ".join(listed)
            + (f"\n - ... and {more} more" if more > 0 else ""))
