"""build_ssl_dataset / write_ssl_splits on a tiny ACDC-like raw dataset (patients with two frames each)."""
import hashlib
import json
import os
import re

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_dualunc.data.ssl_dataset import (SSL_SPLIT_FILE, SSLDatasetError, build_ssl_dataset,
                                               build_ssl_dataset_entry, resolve_case_ids, write_ssl_splits,
                                               write_ssl_splits_entry)
from nnunetv2_dualunc.data.unlabelled_raw import find_unlabelled_cases

PATIENTS = ["patient001", "patient002", "patient003", "patient004", "patient010"]
FRAMES = ["frame01", "frame12"]
CASES = [f"{p}_{f}" for p in PATIENTS for f in FRAMES]


def _write(array: np.ndarray, path: str) -> None:
    sitk.WriteImage(sitk.GetImageFromArray(array), path)


def _md5(path: str) -> str:
    return hashlib.md5(open(path, "rb").read()).hexdigest()


@pytest.fixture
def source(tmp_path) -> str:
    """Raw dataset: every case's image and label differ (values encode the case index), so copies are traceable."""
    folder = tmp_path / "source" / "Dataset100_ACDCmini"
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    for i, case in enumerate(CASES):
        _write(np.full((2, 4, 4), 100 + i, dtype=np.int16), str(folder / "imagesTr" / f"{case}_0000.nii.gz"))
        _write(np.full((2, 4, 4), i % 4, dtype=np.uint8) + np.eye(4, dtype=np.uint8)[None] * (i + 4),
               str(folder / "labelsTr" / f"{case}.nii.gz"))
    json.dump({"channel_names": {"0": "MRI"}, "labels": {"background": 0, "a": 1, "b": 2, "c": 3},
               "numTraining": len(CASES), "file_ending": ".nii.gz", "name": "mini"},
              open(folder / "dataset.json", "w"))
    return str(folder)


def _build(source: str, root: str, **kwargs) -> str:
    args = dict(labelled=["patient001"], unlabelled=["patient003", "patient004"], validation=["patient002"])
    args.update(kwargs)
    return build_ssl_dataset(source, root, 7, "Mini", **args)


def test_layout_and_files(source, tmp_path):
    root = str(tmp_path / "raw")
    target = _build(source, root)
    assert target == os.path.join(root, "Dataset007_Mini")
    assert sorted(os.listdir(root)) == ["Dataset007_Mini"]  # no scratch folder left behind
    labelled_and_val = [f"{p}_{f}" for p in ("patient001", "patient002") for f in FRAMES]
    unlabelled = [f"{p}_{f}" for p in ("patient003", "patient004") for f in FRAMES]
    assert sorted(os.listdir(os.path.join(target, "imagesTr"))) == [f"{c}_0000.nii.gz" for c in labelled_and_val]
    assert sorted(os.listdir(os.path.join(target, "labelsTr"))) == [f"{c}.nii.gz" for c in labelled_and_val]
    assert sorted(os.listdir(os.path.join(target, "imagesUnlabeled"))) == [f"{c}_0000.nii.gz" for c in unlabelled]
    for case in labelled_and_val:
        assert _md5(os.path.join(target, "labelsTr", f"{case}.nii.gz")) == \
            _md5(os.path.join(source, "labelsTr", f"{case}.nii.gz"))
    for case in unlabelled:
        assert _md5(os.path.join(target, "imagesUnlabeled", f"{case}_0000.nii.gz")) == \
            _md5(os.path.join(source, "imagesTr", f"{case}_0000.nii.gz"))

    dataset_json = json.load(open(os.path.join(target, "dataset.json")))
    assert dataset_json["numTraining"] == 4 and dataset_json["labels"]["c"] == 3
    split = json.load(open(os.path.join(target, SSL_SPLIT_FILE)))
    assert split["labelled"] == ["patient001_frame01", "patient001_frame12"]
    assert split["validation"] == ["patient002_frame01", "patient002_frame12"]
    assert split["unlabelled"] == unlabelled
    assert split["entries"]["labelled"] == ["patient001"]
    # the plugin's own reader accepts the unlabelled folder as written
    assert sorted(find_unlabelled_cases(target, dataset_json)) == unlabelled


def test_no_label_of_an_unlabelled_case_is_copied(source, tmp_path):
    target = _build(source, str(tmp_path / "raw"))
    hidden = {_md5(os.path.join(source, "labelsTr", f"{p}_{f}.nii.gz")) for p in ("patient003", "patient004")
              for f in FRAMES}
    written = {_md5(os.path.join(d, f)) for d, _, files in os.walk(target) for f in files}
    assert not hidden & written
    assert not any("patient003" in f or "patient004" in f
                   for f in os.listdir(os.path.join(target, "labelsTr")) + os.listdir(os.path.join(target, "imagesTr")))


def test_grouping_rules():
    # prefix rule: an entry is a case id or a prefix followed by '_'
    assert resolve_case_ids(["patient001"], CASES) == ["patient001_frame01", "patient001_frame12"]
    assert resolve_case_ids(["patient001_frame12"], CASES) == ["patient001_frame12"]
    with pytest.raises(SSLDatasetError, match="patient00"):  # a bare prefix without '_' is no group
        resolve_case_ids(["patient00"], CASES)
    # regex: first group is the group; exact case ids still work
    assert resolve_case_ids(["patient01"], CASES, r"^(patient\d\d)") == ["patient010_frame01", "patient010_frame12"]
    assert resolve_case_ids(["frame12"], CASES, r"^patient\d+_(frame\d+)") == [f"{p}_frame12" for p in PATIENTS]
    # callable
    assert resolve_case_ids(["odd"], CASES, lambda c: "odd" if int(c[7:10]) % 2 else "even") == \
        [f"{p}_{f}" for p in ("patient001", "patient003") for f in FRAMES]


def test_regex_grouping_in_builder(source, tmp_path):
    target = _build(source, str(tmp_path / "raw"), labelled=["frame01"], unlabelled=["frame12"],
                    validation=["patient010_frame01"], group_by=r"^patient00\d_(frame\d+)$")
    split = json.load(open(os.path.join(target, SSL_SPLIT_FILE)))
    assert split["labelled"] == [f"{p}_frame01" for p in PATIENTS[:4]]
    assert split["unlabelled"] == [f"{p}_frame12" for p in PATIENTS[:4]]
    assert split["group_by"] == r"^patient00\d_(frame\d+)$"


@pytest.mark.parametrize("lists, message", [
    (dict(labelled=["patient001", "patient999"]), r"Unknown id\(s\) in the labelled list: patient999"),
    (dict(validation=["nope"]), r"validation list: nope"),
    (dict(unlabelled=["patient003", "patient001_frame12"]), r"labelled and unlabelled: patient001_frame12"),
    (dict(validation=["patient002", "patient004"]), r"unlabelled and validation: patient004_frame01"),
    (dict(labelled=[]), r"labelled list is empty"),
    (dict(unlabelled=[]), r"unlabelled list is empty"),
    (dict(labelled="patient001"), r"is a string"),
    (dict(group_by="(unclosed"), r"Invalid group regex"),
])
def test_errors_name_the_ids(source, tmp_path, lists, message):
    root = str(tmp_path / "raw")
    with pytest.raises(SSLDatasetError, match=message):
        _build(source, root, **lists)
    assert not os.path.isdir(root) or os.listdir(root) == []  # nothing written


def test_target_checks(source, tmp_path):
    root = str(tmp_path / "raw")
    _build(source, root)
    with pytest.raises(SSLDatasetError, match="already exists.*--overwrite"):
        _build(source, root)
    target = _build(source, root, labelled=["patient010"], overwrite=True)
    assert json.load(open(os.path.join(target, SSL_SPLIT_FILE)))["labelled"][0] == "patient010_frame01"
    assert not os.path.exists(os.path.join(target, "labelsTr", "patient001_frame01.nii.gz"))
    with pytest.raises(SSLDatasetError, match="Dataset007_Mini.*unique ids"):
        build_ssl_dataset(source, root, 7, "Other", ["patient001"], ["patient003"], ["patient002"])
    with pytest.raises(SSLDatasetError, match="dataset.json not found"):
        build_ssl_dataset(str(tmp_path), root, 8, "X", ["patient001"], ["patient003"], ["patient002"])


def test_write_ssl_splits(tmp_path):
    folder = tmp_path / "Dataset007_Mini"
    with pytest.raises(SSLDatasetError, match="nnUNetv2_plan_and_preprocess"):
        write_ssl_splits(str(folder), ["a"], ["b"])
    folder.mkdir()
    (folder / "splits_final.json").write_text(json.dumps([{"train": ["x"], "val": ["y"]}] * 5))  # nnU-Net's 5 folds
    path = write_ssl_splits(str(folder), ["b_1", "a_1", "a_1"], ["c_1"])
    assert json.load(open(path)) == [{"train": ["a_1", "b_1"], "val": ["c_1"]}]
    with pytest.raises(SSLDatasetError, match="both labelled and validation: a_1"):
        write_ssl_splits(str(folder), ["a_1"], ["a_1"])
    with pytest.raises(SSLDatasetError, match="0 validation"):
        write_ssl_splits(str(folder), ["a_1"], [])


def test_cli_rest_of_and_splits(source, tmp_path, monkeypatch):
    raw, preprocessed = tmp_path / "raw", tmp_path / "preprocessed"
    (preprocessed / "Dataset042_Cli").mkdir(parents=True)  # as if already planned: the builder writes the splits
    lists = tmp_path / "patients.json"
    lists.write_text(json.dumps({"train": ["patient001", "patient003", "patient004", "patient010"],
                                 "val": ["patient002"], "labeled_1": ["patient001"]}))
    monkeypatch.setenv("nnUNet_raw", str(raw))
    monkeypatch.setenv("nnUNet_preprocessed", str(preprocessed))
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    build_ssl_dataset_entry(["-i", source, "-d", "42", "-n", "Cli", "--labelled-from", str(lists), "labeled_1",
                             "--validation-from", str(lists), "val", "--unlabelled-rest-of", str(lists), "train"])
    split = json.load(open(raw / "Dataset042_Cli" / SSL_SPLIT_FILE))
    assert split["unlabelled"] == [f"{p}_{f}" for p in ("patient003", "patient004", "patient010") for f in FRAMES]
    splits_file = preprocessed / "Dataset042_Cli" / "splits_final.json"
    assert json.load(open(splits_file)) == [{"train": split["labelled"], "val": split["validation"]}]

    splits_file.unlink()
    write_ssl_splits_entry(["-d", "42"])
    assert json.load(open(splits_file))[0]["val"] == ["patient002_frame01", "patient002_frame12"]

    with pytest.raises(SystemExit, match=re.escape("Key 'labeled_9' not found")):
        build_ssl_dataset_entry(["-i", source, "-d", "43", "-n", "Bad", "--labelled-from", str(lists), "labeled_9",
                                 "--validation", "patient002", "--unlabelled", "patient003"])
