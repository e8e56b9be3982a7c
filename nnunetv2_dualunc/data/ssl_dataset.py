"""Turn a fully labelled nnU-Net raw dataset into a semi-supervised one, plus the split nnU-Net must train on.

Semi-supervised benchmarks (ACDC 3/7/14 patients, Hippocampus 9/18 cases) take a labelled dataset and *hide* the
labels of most training cases. This module writes that as a new raw dataset, so nnU-Net never sees a hidden label:

    DatasetXXX_Name/imagesTr/, labelsTr/   labelled + validation cases (copies)
    DatasetXXX_Name/imagesUnlabeled/        images of the unlabelled cases only (their labels are never copied)
    DatasetXXX_Name/dataset.json            the source's, numTraining = labelled + validation
    DatasetXXX_Name/ssl_split.json          the lists as given and as resolved to case ids

Lists name cases or *groups* of cases: ACDC lists patients ('patient021') while its cases are frames
('patient021_frame01', 'patient021_frame02'). By default an entry matches the case with exactly that id and every
case whose id starts with the entry followed by '_'. ``group_by`` (a regex whose first group, or whole match, is
the group, or a callable case id -> group) replaces the prefix rule.

The validation cases are labelled cases too (nnU-Net validates on them), so nnU-Net's default 5-fold split would
train on them: ``write_ssl_splits`` writes a ``splits_final.json`` whose fold 0 trains on the labelled cases only
and validates on the validation cases.
"""
import argparse
import os
import re
import shutil
import tempfile
from copy import deepcopy
from os.path import isdir, isfile, join
from typing import Callable, Dict, List, Optional, Sequence, Union

from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

from nnunetv2_dualunc.atomic_files import atomic_write_json
from nnunetv2_dualunc.data.unlabelled_raw import NUM_UNLABELLED_KEY, UNLABELLED_IMAGES_FOLDER
from nnunetv2_dualunc.nnunet_folders import nnunet_folder

SSL_SPLIT_FILE = "ssl_split.json"
SPLITS_FILE = "splits_final.json"
LIST_NAMES = ("labelled", "unlabelled", "validation")
GroupBy = Optional[Union[str, "re.Pattern", Callable[[str], Optional[str]]]]
_MAX_LISTED = 20


class SSLDatasetError(ValueError):
    """Bad input for building a semi-supervised dataset; the message names the offending ids/files and the fix."""


# ----------------------------------------------------------------------------------------------------------------
# case lists
# ----------------------------------------------------------------------------------------------------------------
def _group_function(group_by: GroupBy) -> Optional[Callable[[str], Optional[str]]]:
    """None (prefix rule), or case id -> group key."""
    if group_by is None or callable(group_by):
        return group_by
    try:
        pattern = re.compile(group_by)
    except re.error as e:
        raise SSLDatasetError(f"Invalid group regex {group_by!r}: {e}. Fix: give a Python regex whose first group "
                              f"is the group, e.g. '^(patient\\d+)_'.") from e

    def group_of(case_id: str) -> Optional[str]:
        match = pattern.match(case_id)
        if match is None:
            return None
        return match.group(1) if pattern.groups else match.group(0)

    return group_of


def _entry_matches(entry: str, case_id: str, group_of: Optional[Callable[[str], Optional[str]]]) -> bool:
    if case_id == entry:
        return True
    if group_of is None:
        return case_id.startswith(entry + "_")
    return group_of(case_id) == entry


def _abbreviated(items: Sequence[str]) -> str:
    items = list(items)
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f", ... ({len(items)} in all)" if len(items) > _MAX_LISTED else "")


def resolve_case_ids(entries: Sequence[str], case_ids: Sequence[str], group_by: GroupBy = None,
                     list_name: str = "list") -> List[str]:
    """The case ids (sorted, unique) that the entries name. Raises SSLDatasetError naming every entry that matches
    no case."""
    group_of = _group_function(group_by)
    resolved, unknown = set(), []
    for entry in entries:
        matches = [c for c in case_ids if _entry_matches(entry, c, group_of)]
        if not matches:
            unknown.append(entry)
        resolved.update(matches)
    if unknown:
        rule = "an exact case id or a prefix followed by '_'" if group_by is None else f"a group of {group_by!r}"
        raise SSLDatasetError(
            f"Unknown id(s) in the {list_name} list: {_abbreviated(unknown)}. Each entry must be {rule}. Available "
            f"case ids: {_abbreviated(sorted(case_ids))}. Fix: correct the ids or the grouping (--group-regex).")
    return sorted(resolved)


def resolve_ssl_lists(case_ids: Sequence[str], labelled: Sequence[str], unlabelled: Sequence[str],
                      validation: Sequence[str], group_by: GroupBy = None) -> Dict[str, List[str]]:
    """{'labelled', 'unlabelled', 'validation'} -> case ids, checked: every entry known, no case in two lists,
    no list empty (nnU-Net needs training and validation cases, the trainer needs unlabelled ones)."""
    lists = {"labelled": labelled, "unlabelled": unlabelled, "validation": validation}
    for name, entries in lists.items():
        if isinstance(entries, str):
            raise SSLDatasetError(f"The {name} list is a string ({entries!r}), not a list of ids. Fix: pass "
                                  f"[{entries!r}].")
        if len(entries) == 0:
            raise SSLDatasetError(f"The {name} list is empty. Fix: give at least one {name} case or group "
                                  f"(--{name} ... or --{name}-from FILE.json KEY).")
    resolved = {name: resolve_case_ids(entries, case_ids, group_by, name) for name, entries in lists.items()}
    overlaps = []
    for i, a in enumerate(LIST_NAMES):
        for b in LIST_NAMES[i + 1:]:
            common = sorted(set(resolved[a]) & set(resolved[b]))
            if common:
                overlaps.append(f"{a} and {b}: {_abbreviated(common)}")
    if overlaps:
        raise SSLDatasetError("Case(s) in two lists: " + "; ".join(overlaps) + ". Fix: every case must be in one "
                              "list only (check the entries and the grouping).")
    return resolved


def ids_from_json(json_file: str, key: str) -> List[str]:
    """The list stored under ``key`` of a JSON file such as ACDC's patients.json or Hippocampus' cases.json."""
    if not isfile(json_file):
        raise SSLDatasetError(f"List file not found: {json_file}. Fix: check the path.")
    content = load_json(json_file)
    if not isinstance(content, dict) or key not in content:
        keys = sorted(content) if isinstance(content, dict) else "none (not a JSON object)"
        raise SSLDatasetError(f"Key {key!r} not found in {json_file}. Available keys: {keys}.")
    ids = content[key]
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise SSLDatasetError(f"{json_file}[{key!r}] is not a list of id strings.")
    return ids


# ----------------------------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------------------------
def _check_target(target_raw_root: str, dataset_id: int, dataset_folder_name: str, source: str,
                  overwrite: bool) -> None:
    if not 1 <= dataset_id <= 999:
        raise SSLDatasetError(f"Dataset id {dataset_id} is out of nnU-Net's range. Fix: use an id in 1..999.")
    target = join(target_raw_root, dataset_folder_name)
    if os.path.abspath(target) == os.path.abspath(source):
        raise SSLDatasetError(f"Target {target} is the source dataset. Fix: use another dataset id or name; the "
                              f"source is only read.")
    prefix = f"Dataset{dataset_id:03d}_"
    clashes = [d for d in (os.listdir(target_raw_root) if isdir(target_raw_root) else [])
               if d.startswith(prefix) and d != dataset_folder_name and isdir(join(target_raw_root, d))]
    if clashes:
        raise SSLDatasetError(f"Dataset id {dataset_id} is already used by {join(target_raw_root, clashes[0])}; "
                              f"nnU-Net needs unique ids. Fix: choose another id.")
    if isdir(target) and not overwrite:
        raise SSLDatasetError(f"{target} already exists. Fix: pass overwrite=True (--overwrite) to rebuild it, or "
                              f"choose another id/name.")


def _copy_case(files: Dict[str, Union[str, List[str]]], case_id: str, folder: str, file_ending: str,
               with_images_to: str, with_label_to: Optional[str]) -> None:
    for channel, image in enumerate(files["images"]):
        shutil.copyfile(image, join(folder, with_images_to, f"{case_id}_{channel:04d}{file_ending}"))
    if with_label_to is not None:
        shutil.copyfile(files["label"], join(folder, with_label_to, f"{case_id}{file_ending}"))


def build_ssl_dataset(source_raw_folder: str, target_raw_root: str, dataset_id: int, dataset_name: str,
                      labelled: Sequence[str], unlabelled: Sequence[str], validation: Sequence[str],
                      group_by: GroupBy = None, overwrite: bool = False,
                      preprocessed_root: Optional[str] = None) -> str:
    """Write ``target_raw_root/DatasetXXX_<dataset_name>`` (see the module docstring) and return its path.

    The lists hold case ids or groups (see ``resolve_case_ids``). The dataset is assembled in a hidden folder and
    renamed into place, so an interrupted build never leaves a half-written dataset behind. If
    ``preprocessed_root/DatasetXXX_<dataset_name>`` already exists, its splits_final.json is (re)written too.
    """
    source_dataset_json_file = join(source_raw_folder, "dataset.json")
    if not isfile(source_dataset_json_file):
        raise SSLDatasetError(f"{source_dataset_json_file} not found. Fix: -i must be an nnU-Net raw dataset folder "
                              f"(with dataset.json, imagesTr, labelsTr).")
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", dataset_name):
        raise SSLDatasetError(f"Dataset name {dataset_name!r} must contain only letters, digits, '_' and '-'.")
    dataset_json = load_json(source_dataset_json_file)
    files = get_filenames_of_train_images_and_targets(source_raw_folder, deepcopy(dataset_json))
    if not files:
        raise SSLDatasetError(f"{source_raw_folder} holds no labelled cases (imagesTr is empty).")
    lists = resolve_ssl_lists(sorted(files), labelled, unlabelled, validation, group_by)

    dataset_folder_name = f"Dataset{dataset_id:03d}_{dataset_name}"
    _check_target(target_raw_root, dataset_id, dataset_folder_name, source_raw_folder, overwrite)
    target = join(target_raw_root, dataset_folder_name)
    file_ending = dataset_json["file_ending"]

    os.makedirs(target_raw_root, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=f".{dataset_folder_name}.partial_", dir=target_raw_root)
    try:
        for sub in ("imagesTr", "labelsTr", UNLABELLED_IMAGES_FOLDER):
            os.makedirs(join(scratch, sub))
        for case_id in lists["labelled"] + lists["validation"]:
            _copy_case(files[case_id], case_id, scratch, file_ending, "imagesTr", "labelsTr")
        for case_id in lists["unlabelled"]:
            _copy_case(files[case_id], case_id, scratch, file_ending, UNLABELLED_IMAGES_FOLDER, None)

        new_dataset_json = {k: v for k, v in dataset_json.items() if k != "dataset"}  # files now follow the layout
        new_dataset_json["numTraining"] = len(lists["labelled"]) + len(lists["validation"])
        new_dataset_json[NUM_UNLABELLED_KEY] = len(lists["unlabelled"])
        atomic_write_json(new_dataset_json, join(scratch, "dataset.json"))
        atomic_write_json({
            "source": os.path.abspath(source_raw_folder),
            "group_by": group_by if group_by is None or isinstance(group_by, str) else repr(group_by),
            "entries": {"labelled": list(labelled), "unlabelled": list(unlabelled), "validation": list(validation)},
            **lists,
        }, join(scratch, SSL_SPLIT_FILE))

        if isdir(target):  # overwrite=True was checked above
            shutil.rmtree(target)
        os.replace(scratch, target)
    finally:
        if isdir(scratch):
            shutil.rmtree(scratch, ignore_errors=True)

    if preprocessed_root is not None and isdir(join(preprocessed_root, dataset_folder_name)):
        write_ssl_splits(join(preprocessed_root, dataset_folder_name), lists["labelled"], lists["validation"])
    return target


def write_ssl_splits(preprocessed_dataset_folder: str, labelled_case_ids: Sequence[str],
                     validation_case_ids: Sequence[str]) -> str:
    """Write nnU-Net's splits_final.json with a single fold 0: train = labelled, val = validation. Returns its path.

    Must run after nnUNetv2_plan_and_preprocess created the folder; an existing file is replaced (nnU-Net would
    otherwise keep training on its own 5-fold split)."""
    if not isdir(preprocessed_dataset_folder):
        raise SSLDatasetError(f"Preprocessed dataset folder not found: {preprocessed_dataset_folder}. Fix: run "
                              f"`nnUNetv2_plan_and_preprocess -d ID -c 2d` first, then write the splits.")
    train, val = sorted(set(labelled_case_ids)), sorted(set(validation_case_ids))
    if not train or not val:
        raise SSLDatasetError(f"splits_final.json needs training and validation cases (got {len(train)} labelled, "
                              f"{len(val)} validation). Fix: give both lists.")
    common = sorted(set(train) & set(val))
    if common:
        raise SSLDatasetError(f"Case(s) both labelled and validation: {_abbreviated(common)}. Fix: remove them from "
                              f"one of the lists.")
    path = join(preprocessed_dataset_folder, SPLITS_FILE)
    atomic_write_json([{"train": train, "val": val}], path)
    return path


def write_ssl_splits_from_raw(raw_dataset_folder: str, preprocessed_dataset_folder: str) -> str:
    """write_ssl_splits with the lists that build_ssl_dataset remembered in the raw dataset's ssl_split.json."""
    split_file = join(raw_dataset_folder, SSL_SPLIT_FILE)
    if not isfile(split_file):
        raise SSLDatasetError(f"{split_file} not found. Fix: build the dataset with `nnunetv2_dualunc "
                              f"build-ssl-dataset`, or call write_ssl_splits with explicit lists.")
    split = load_json(split_file)
    return write_ssl_splits(preprocessed_dataset_folder, split["labelled"], split["validation"])


# ----------------------------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------------------------
def _add_list_arguments(parser: argparse.ArgumentParser, name: str, required: bool, rest_of: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument(f"--{name}", nargs="+", metavar="ID", help=f"{name} case ids or groups")
    group.add_argument(f"--{name}-from", nargs=2, metavar=("FILE.json", "KEY"),
                       help=f"{name} ids: the list under KEY in FILE.json")
    if rest_of:
        group.add_argument(f"--{name}-rest-of", nargs=2, metavar=("FILE.json", "KEY"),
                           help=f"{name} = every case of the list under KEY in FILE.json that is neither labelled "
                                f"nor validation")


def _entries(args: argparse.Namespace, name: str) -> Optional[List[str]]:
    key = name.replace("-", "_")
    if getattr(args, key) is not None:
        return list(getattr(args, key))
    from_file = getattr(args, f"{key}_from")
    return ids_from_json(*from_file) if from_file is not None else None


def build_ssl_dataset_entry(argv: Optional[List[str]] = None) -> None:
    """CLI: nnunetv2_dualunc build-ssl-dataset -i SOURCE -d ID -n NAME --labelled... --validation... --unlabelled..."""
    parser = argparse.ArgumentParser(
        prog="nnunetv2_dualunc build-ssl-dataset",
        description="Build a semi-supervised nnU-Net raw dataset from a labelled one: labelled + validation cases "
                    f"go to imagesTr/labelsTr, unlabelled cases' images (only) to {UNLABELLED_IMAGES_FOLDER}/. An id "
                    "names a case exactly or a group: every case whose id starts with it followed by '_' (ACDC: "
                    "patient021 -> patient021_frame01, patient021_frame02), or the first group of --group-regex.",
        epilog="ACDC 7 labelled patients: -i /data/ACDC -d 501 -n ACDC_L7 --labelled-from patients.json labeled_7 "
               "--validation-from patients.json val --unlabelled-rest-of patients.json train")
    parser.add_argument("-i", dest="source", required=True, help="source nnU-Net raw dataset folder (only read)")
    parser.add_argument("-d", dest="dataset_id", type=int, required=True, help="id of the new dataset")
    parser.add_argument("-n", dest="name", required=True, help="name of the new dataset (DatasetXXX_NAME)")
    parser.add_argument("-o", dest="raw_root", default=None, help="raw root to write into (default: $nnUNet_raw)")
    _add_list_arguments(parser, "labelled", required=True, rest_of=False)
    _add_list_arguments(parser, "validation", required=True, rest_of=False)
    _add_list_arguments(parser, "unlabelled", required=True, rest_of=True)
    parser.add_argument("--group-regex", default=None,
                        help="regex whose first group is a case's group, e.g. '^(patient\\d+)_' (default: exact id "
                             "or prefix followed by '_')")
    parser.add_argument("--overwrite", action="store_true", help="replace the target dataset if it exists")
    args = parser.parse_args(argv)
    try:
        raw_root = args.raw_root or nnunet_folder("nnUNet_raw", SSLDatasetError)
        labelled, validation = _entries(args, "labelled"), _entries(args, "validation")
        unlabelled = _entries(args, "unlabelled")
        if unlabelled is None:  # --unlabelled-rest-of
            dataset_json = load_json(join(args.source, "dataset.json")) if isfile(join(args.source, "dataset.json")) \
                else None
            if dataset_json is None:
                raise SSLDatasetError(f"{join(args.source, 'dataset.json')} not found. Fix: -i must be an nnU-Net raw "
                                      f"dataset folder.")
            case_ids = sorted(get_filenames_of_train_images_and_targets(args.source, dataset_json))
            pool = resolve_case_ids(ids_from_json(*args.unlabelled_rest_of), case_ids, args.group_regex,
                                    "unlabelled pool")
            taken = set(resolve_case_ids(labelled, case_ids, args.group_regex, "labelled")) | \
                set(resolve_case_ids(validation, case_ids, args.group_regex, "validation"))
            unlabelled = [c for c in pool if c not in taken]
        preprocessed_root = os.environ.get("nnUNet_preprocessed")
        target = build_ssl_dataset(args.source, raw_root, args.dataset_id, args.name, labelled, unlabelled,
                                   validation, args.group_regex, args.overwrite, preprocessed_root)
    except SSLDatasetError as e:
        raise SystemExit(f"ERROR: {e}")
    split = load_json(join(target, SSL_SPLIT_FILE))
    print(f"Wrote {target}: {len(split['labelled'])} labelled, {len(split['validation'])} validation, "
          f"{len(split['unlabelled'])} unlabelled cases.\nNext: nnUNetv2_plan_and_preprocess -d {args.dataset_id} "
          f"-c CONFIGURATION --verify_dataset_integrity, then `nnunetv2_dualunc write-ssl-splits -d "
          f"{args.dataset_id}` (nnU-Net would otherwise train on its own 5-fold split of labelled + validation).")


def write_ssl_splits_entry(argv: Optional[List[str]] = None) -> None:
    """CLI: nnunetv2_dualunc write-ssl-splits -d DATASET (after nnUNetv2_plan_and_preprocess)."""
    parser = argparse.ArgumentParser(
        prog="nnunetv2_dualunc write-ssl-splits",
        description=f"Write $nnUNet_preprocessed/DatasetXXX/{SPLITS_FILE} (fold 0: train = labelled, val = "
                    f"validation) from the {SSL_SPLIT_FILE} that build-ssl-dataset wrote into the raw dataset. Run "
                    f"it after nnUNetv2_plan_and_preprocess.")
    parser.add_argument("-d", dest="dataset", required=True, help="dataset name or id")
    args = parser.parse_args(argv)
    try:
        raw_root = nnunet_folder("nnUNet_raw", SSLDatasetError)
        preprocessed_root = nnunet_folder("nnUNet_preprocessed", SSLDatasetError)
        from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
        try:
            name = maybe_convert_to_dataset_name(args.dataset)
        except RuntimeError as e:
            raise SSLDatasetError(f"Unknown dataset {args.dataset!r}: {e}") from e
        path = write_ssl_splits_from_raw(join(raw_root, name), join(preprocessed_root, name))
    except SSLDatasetError as e:
        raise SystemExit(f"ERROR: {e}")
    print(f"Wrote {path}")
