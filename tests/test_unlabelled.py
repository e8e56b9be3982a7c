"""Unlabelled raw images: validation errors, and preprocessing with nnU-Net's own plans (tiny synthetic dataset)."""
import os
import shutil
import subprocess
import sys
from os.path import join

import numpy as np
import pytest
import SimpleITK as sitk
from batchgenerators.utilities.file_and_folder_operations import load_json, save_json
from nnunetv2.imageio.nibabel_reader_writer import NibabelIO
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from helpers import folder_checksums
from nnunetv2_dualunc.data.unlabelled import (load_unlabelled_identifiers, preprocess_unlabelled,
                                              preprocess_unlabelled_entry, unlabelled_preprocessed_folder)
from nnunetv2_dualunc.data.unlabelled_raw import (UNLABELLED_IMAGES_FOLDER, UnlabelledDataError, find_unlabelled_cases,
                                                  problem_with_case_images)

DATASET_ID = 987
DATASET_NAME = f"Dataset{DATASET_ID}_TinyUnlabelled"
LABELLED = [f"case{i}" for i in range(4)]
UNLABELLED = ["unl0", "unl1", "unl2"]  # unl2 is a copy of case0's image
SHAPE_ZYX = (8, 16, 16)
SPACING_XYZ = (1.0, 1.0, 2.0)
VENV_BIN = os.path.dirname(sys.executable)


def _write(array: np.ndarray, path: str, spacing=SPACING_XYZ) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing[:array.ndim])
    sitk.WriteImage(image, path)


def _volume(seed: int) -> np.ndarray:
    """Zero background around a noisy block with a notch (away from the labels), so that cropping to the nonzero
    bounding box is non-trivial and the nonzero mask has holes inside that box (-1 in the stored seg)."""
    volume = np.zeros(SHAPE_ZYX, np.float32)
    volume[1:7, 2:14, 3:13] = np.random.default_rng(seed).normal(100, 20, (6, 12, 10))
    volume[:, 12:14, 10:13] = 0
    return volume


def _make_raw_dataset(raw_base: str) -> str:
    folder = join(raw_base, DATASET_NAME)
    for sub in ("imagesTr", "labelsTr", UNLABELLED_IMAGES_FOLDER):
        os.makedirs(join(folder, sub))
    for i, case in enumerate(LABELLED):
        _write(_volume(i), join(folder, "imagesTr", f"{case}_0000.nii.gz"))
        label = np.zeros(SHAPE_ZYX, np.uint8)
        label[2:6, 4:10, 4:9] = 1
        label[3:5, 10:12, 5:8] = 2
        _write(label, join(folder, "labelsTr", f"{case}.nii.gz"))
    for i, case in enumerate(UNLABELLED[:2]):
        _write(_volume(10 + i), join(folder, UNLABELLED_IMAGES_FOLDER, f"{case}_0000.nii.gz"))
    shutil.copy(join(folder, "imagesTr", "case0_0000.nii.gz"),
                join(folder, UNLABELLED_IMAGES_FOLDER, "unl2_0000.nii.gz"))
    open(join(folder, UNLABELLED_IMAGES_FOLDER, ".DS_Store"), "w").close()  # hidden files are ignored
    save_json({"channel_names": {"0": "MR"}, "labels": {"background": 0, "a": 1, "b": 2},
               "numTraining": len(LABELLED), "file_ending": ".nii.gz"}, join(folder, "dataset.json"))
    return folder


def _mtimes(folder: str) -> dict:
    return {f: os.stat(join(folder, f)).st_mtime_ns for f in os.listdir(folder)}


# ------------------------------------------------------------------------------------------------------------------
# naming / layout validation (no planning needed)
# ------------------------------------------------------------------------------------------------------------------
@pytest.fixture
def raw_folder(tmp_path):
    return _make_raw_dataset(str(tmp_path / "raw"))


def test_find_unlabelled_cases_lists_cases_and_ignores_hidden_files(raw_folder):
    dataset_json = load_json(join(raw_folder, "dataset.json"))
    cases = find_unlabelled_cases(raw_folder, dataset_json)
    assert cases == {c: [join(raw_folder, UNLABELLED_IMAGES_FOLDER, f"{c}_0000.nii.gz")] for c in UNLABELLED}
    assert dataset_json == load_json(join(raw_folder, "dataset.json"))  # not modified


def _remove_unlabelled_folder(folder):
    shutil.rmtree(join(folder, UNLABELLED_IMAGES_FOLDER))


def _empty_unlabelled_folder(folder):
    for f in os.listdir(join(folder, UNLABELLED_IMAGES_FOLDER)):
        if not f.startswith("."):
            os.remove(join(folder, UNLABELLED_IMAGES_FOLDER, f))


def _add(name):
    def add(folder):
        shutil.copy(join(folder, "imagesTr", "case1_0000.nii.gz"), join(folder, UNLABELLED_IMAGES_FOLDER, name))
    return add


@pytest.mark.parametrize("break_folder, expected_in_message", [
    (_remove_unlabelled_folder, [UNLABELLED_IMAGES_FOLDER, "create it", "CASE_0000.nii.gz"]),
    (_empty_unlabelled_folder, [UNLABELLED_IMAGES_FOLDER, "no images"]),
    (_add("unl9_0000.nii"), ["unl9_0000.nii", "file_ending"]),
    (_add("unl9.nii.gz"), ["unl9.nii.gz", "looks like a label file", "_0000 channel suffix"]),
    (_add("unl0_0001.nii.gz"), ["'unl0'", "unl0_0001.nii.gz", "unl0_0000.nii.gz"]),  # extra channel
    (_add("unl9_0001.nii.gz"), ["'unl9'", "unl9_0000.nii.gz"]),  # channel 0 missing
    (_add("case1_0000.nii.gz"), [f"{UNLABELLED_IMAGES_FOLDER}/case1_0000.nii.gz", "imagesTr/case1_0000.nii.gz",
                                 "rename"]),
], ids=["missing_folder", "empty_folder", "wrong_file_ending", "label_file", "extra_channel", "missing_channel",
        "same_id_as_labelled"])
def test_bad_unlabelled_folder_raises_naming_the_file(raw_folder, break_folder, expected_in_message):
    break_folder(raw_folder)
    with pytest.raises(UnlabelledDataError) as e:
        find_unlabelled_cases(raw_folder, load_json(join(raw_folder, "dataset.json")))
    for text in expected_in_message:
        assert text in str(e.value)


def test_all_naming_problems_are_reported_at_once(raw_folder):
    _add("unl9.nii.gz")(raw_folder)
    _add("case1_0000.nii.gz")(raw_folder)
    with pytest.raises(UnlabelledDataError, match=r"2 problem") as e:
        find_unlabelled_cases(raw_folder, load_json(join(raw_folder, "dataset.json")))
    assert "unl9.nii.gz" in str(e.value) and "case1_0000.nii.gz" in str(e.value)


def test_same_id_check_uses_dataset_json_file_lists(raw_folder):
    """Datasets that list their training files in dataset.json['dataset'] instead of imagesTr/labelsTr."""
    dataset_json = load_json(join(raw_folder, "dataset.json"))
    dataset_json["dataset"] = {"unl1": {"images": ["imagesTr/case1_0000.nii.gz"], "label": "labelsTr/case1.nii.gz"}}
    with pytest.raises(UnlabelledDataError, match="rename") as e:
        find_unlabelled_cases(raw_folder, dataset_json)
    assert "unl1_0000.nii.gz" in str(e.value) and "imagesTr/case1_0000.nii.gz" in str(e.value)
    assert dataset_json["dataset"]["unl1"]["images"] == ["imagesTr/case1_0000.nii.gz"]  # caller's dict untouched


# ------------------------------------------------------------------------------------------------------------------
# image content validation
# ------------------------------------------------------------------------------------------------------------------
def _nan_in_foreground(path):
    volume = _volume(0)
    _write(np.where(volume > 120, np.nan, volume).astype(np.float32), path)


# ITK's NIfTI reader turns NaN/inf into 0, so those two go through nnU-Net's nibabel reader (where they survive)
@pytest.mark.parametrize("reader, write_bad_image, expected_in_message", [
    (SimpleITKIO, lambda p: open(p, "wb").write(b"not an image at all"), ["Cannot read"]),
    (NibabelIO, _nan_in_foreground, ["NaN"]),
    (NibabelIO, lambda p: _write(np.full(SHAPE_ZYX, np.inf, np.float32), p), ["inf"]),
    (SimpleITKIO, lambda p: _write(_volume(0)[4], p), ["is 2D", "3D"]),
], ids=["unreadable", "nan", "inf", "2d_among_3d"])
def test_unusable_images_raise_naming_the_file(raw_folder, reader, write_bad_image, expected_in_message):
    bad_file = join(raw_folder, UNLABELLED_IMAGES_FOLDER, "unl1_0000.nii.gz")
    write_bad_image(bad_file)
    cases = find_unlabelled_cases(raw_folder, load_json(join(raw_folder, "dataset.json")))
    problems = {case: problem_with_case_images(case, files, reader, expected_ndim=3) for case, files in cases.items()}
    assert [case for case, problem in problems.items() if problem is not None] == ["unl1"]  # only the bad case
    assert bad_file in problems["unl1"]
    for text in expected_in_message:
        assert text in problems["unl1"]


# ------------------------------------------------------------------------------------------------------------------
# preprocessing with nnU-Net's plans
# ------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """Raw dataset with imagesUnlabeled/, planned by nnU-Net's own CLI with --verify_dataset_integrity."""
    root = tmp_path_factory.mktemp("nnunet")
    env = {name: str(root / name) for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    raw_folder = _make_raw_dataset(env["nnUNet_raw"])
    result = subprocess.run(
        [join(VENV_BIN, "nnUNetv2_plan_and_preprocess"), "-d", str(DATASET_ID), "-c", "2d", "3d_fullres",
         "--verify_dataset_integrity", "-npfp", "1", "-np", "1", "--no_pp"],
        env={**os.environ, **env}, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "verify_dataset_integrity Done" in result.stdout
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        yield {"raw_folder": raw_folder, "preprocessed": join(env["nnUNet_preprocessed"], DATASET_NAME)}


def _reference(planned, configuration, image_files, seg_file=None):
    """What nnU-Net's own preprocessor makes of these files."""
    plans_manager = PlansManager(join(planned["preprocessed"], "nnUNetPlans.json"))
    configuration_manager = plans_manager.get_configuration(configuration)
    preprocessor = configuration_manager.preprocessor_class(verbose=False)
    return preprocessor.run_case(image_files, seg_file, plans_manager, configuration_manager,
                                 join(planned["preprocessed"], "dataset.json"))


@pytest.mark.parametrize("configuration, num_processes", [("2d", 1), ("3d_fullres", 2)])
def test_preprocess_matches_nnunet_preprocessing(planned, configuration, num_processes):
    raw_before = folder_checksums(planned["raw_folder"])
    if configuration == "2d":
        preprocess_unlabelled_entry(["-d", str(DATASET_ID), "-c", configuration, "-np", str(num_processes)])
    else:
        preprocess_unlabelled(DATASET_ID, configuration, num_processes=num_processes, verbose=False)
    data_identifier = PlansManager(join(planned["preprocessed"], "nnUNetPlans.json")).get_configuration(
        configuration).data_identifier
    folder = unlabelled_preprocessed_folder(planned["preprocessed"], data_identifier)
    assert folder == join(planned["preprocessed"], f"nnUNetPlans_{configuration}_unlabelled")
    assert load_unlabelled_identifiers(folder) == UNLABELLED
    assert folder_checksums(planned["raw_folder"]) == raw_before

    dataset = nnUNetDatasetBlosc2(folder, load_unlabelled_identifiers(folder))
    unlabelled_images = join(planned["raw_folder"], UNLABELLED_IMAGES_FOLDER)
    for case in UNLABELLED:
        data, seg, _, properties = dataset.load_case(case)
        ref_data, ref_seg, ref_properties = _reference(planned, configuration,
                                                       [join(unlabelled_images, f"{case}_0000.nii.gz")])
        assert data.dtype == np.float32 and seg.dtype == np.int16
        assert data.shape == ref_data.shape and seg.shape == ref_seg.shape
        np.testing.assert_array_equal(data[:], ref_data)
        np.testing.assert_array_equal(seg[:], ref_seg)
        assert set(np.unique(seg[:])) == {-1, 0}  # the nonzero mask, -1 outside
        assert properties["bbox_used_for_cropping"] == ref_properties["bbox_used_for_cropping"]

    # unl2 is case0's image: it must come out like nnU-Net's labelled preprocessing of case0 (same normalisation,
    # cropping, resampling); the stored mask is -1 exactly where the labelled seg is -1 (labels lie inside the mask)
    data, seg, _, _ = dataset.load_case("unl2")
    labelled_data, labelled_seg, _ = _reference(planned, configuration,
                                                [join(planned["raw_folder"], "imagesTr", "case0_0000.nii.gz")],
                                                join(planned["raw_folder"], "labelsTr", "case0.nii.gz"))
    np.testing.assert_array_equal(data[:], labelled_data)
    np.testing.assert_array_equal(seg[:] == -1, labelled_seg == -1)
    assert (seg[:] == -1).any() and (seg[:] == 0).any()


def test_second_run_skips_done_cases(planned):
    folder = preprocess_unlabelled(DATASET_ID, "2d", num_processes=1, verbose=False)
    before = _mtimes(folder)
    assert preprocess_unlabelled(DATASET_ID, "2d", num_processes=1, verbose=False) == folder
    assert _mtimes(folder) == before


def test_leftovers_of_a_killed_run_are_ignored_and_cleaned(planned):
    folder = preprocess_unlabelled(DATASET_ID, "2d", num_processes=1, verbose=False)
    expected_unl1 = np.asarray(nnUNetDatasetBlosc2(folder, ["unl1"]).load_case("unl1")[0][:])
    # killed between moving unl1's arrays and its .pkl, and while another case was in its scratch folder
    os.remove(join(folder, "unl1.pkl"))
    with open(join(folder, "unl1.b2nd"), "wb") as f:
        f.write(b"half written")
    os.makedirs(join(folder, ".partial_killed"))
    with open(join(folder, ".partial_killed", "unl2.b2nd"), "wb") as f:
        f.write(b"half written")
    assert load_unlabelled_identifiers(folder) == ["unl0", "unl2"]
    untouched = _mtimes(folder)

    preprocess_unlabelled(DATASET_ID, "2d", num_processes=1, verbose=False)
    assert sorted(os.listdir(folder)) == sorted(f"{c}{s}" for c in UNLABELLED for s in (".b2nd", "_seg.b2nd", ".pkl"))
    assert load_unlabelled_identifiers(folder) == UNLABELLED
    np.testing.assert_array_equal(nnUNetDatasetBlosc2(folder, ["unl1"]).load_case("unl1")[0][:], expected_unl1)
    after = _mtimes(folder)
    for f in ("unl0.b2nd", "unl0.pkl", "unl2.b2nd", "unl2.pkl"):
        assert after[f] == untouched[f]


def test_bad_unlabelled_image_fails_before_training_and_names_the_file(planned, tmp_path, monkeypatch):
    """A 2D image among 3D ones, found while preprocessing: the good cases are stored, the error names the file."""
    raw_base = tmp_path / "raw"
    shutil.copytree(planned["raw_folder"], raw_base / DATASET_NAME)
    bad_file = str(raw_base / DATASET_NAME / UNLABELLED_IMAGES_FOLDER / "unl1_0000.nii.gz")
    _write(_volume(1)[4], bad_file)
    preprocessed_base = tmp_path / "preprocessed"
    shutil.copytree(planned["preprocessed"], preprocessed_base / DATASET_NAME,
                    ignore=shutil.ignore_patterns("*_unlabelled"))
    monkeypatch.setenv("nnUNet_raw", str(raw_base))
    monkeypatch.setenv("nnUNet_preprocessed", str(preprocessed_base))
    with pytest.raises(UnlabelledDataError, match="is 2D but the labelled images are 3D") as e:
        preprocess_unlabelled(DATASET_ID, "3d_fullres", num_processes=1, verbose=False)
    assert bad_file in str(e.value)
    folder = join(preprocessed_base, DATASET_NAME, "nnUNetPlans_3d_fullres_unlabelled")
    assert load_unlabelled_identifiers(folder) == ["unl0", "unl2"]


@pytest.mark.parametrize("environment, kwargs, expected_in_message", [
    ({"nnUNet_raw": None}, {}, ["nnUNet_raw", "export"]),
    ({"nnUNet_preprocessed": None}, {}, ["nnUNet_preprocessed", "export"]),
    ({}, {"dataset_name_or_id": 986}, ["986"]),
    ({}, {"plans_identifier": "OtherPlans"}, ["OtherPlans.json", "nnUNetv2_plan_and_preprocess"]),
    ({}, {"configuration": "3d_lowres"}, ["3d_lowres", "'2d'", "nnUNetv2_plan_and_preprocess"]),
], ids=["raw_unset", "preprocessed_unset", "unknown_dataset", "missing_plans", "missing_configuration"])
def test_setup_errors_name_the_path_and_fix(planned, monkeypatch, environment, kwargs, expected_in_message):
    for name in environment:
        monkeypatch.delenv(name)
    kwargs = {"dataset_name_or_id": DATASET_ID, "configuration": "2d", "verbose": False, **kwargs}
    with pytest.raises(UnlabelledDataError) as e:
        preprocess_unlabelled(**kwargs)
    for text in expected_in_message:
        assert text in str(e.value)


def test_cli_reports_errors_without_traceback(planned):
    with pytest.raises(SystemExit) as e:
        preprocess_unlabelled_entry(["-d", str(DATASET_ID), "-c", "2d", "-p", "OtherPlans"])
    assert "OtherPlans.json" in str(e.value.code)


def test_load_identifiers_of_missing_folder_says_to_preprocess(tmp_path):
    with pytest.raises(UnlabelledDataError, match="preprocess-unlabelled"):
        load_unlabelled_identifiers(str(tmp_path / "nnUNetPlans_2d_unlabelled"))
