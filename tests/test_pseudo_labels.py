"""Pseudo-labelled cases: nnU-Net-readable, written atomically, tied to the run that made them."""
import os

import numpy as np
import pytest
from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

from nnunetv2_dualunc.data.pseudo_labels import (PseudoLabelMismatchError, check_manifest, class_presence_report,
                                                 completed_cases, pseudo_label_from_probabilities, reset_folder,
                                                 write_manifest, write_pseudo_labelled_case)
from nnunetv2_dualunc.run_layout import pseudo_label_folder

PROVENANCE = {"dataset": "Dataset990_X", "configuration": "2d", "plans": "nnUNetPlans", "fold": "0",
              "trainer": "nnUNetTrainerDualUnc", "stage": "stage1", "weights_epoch": 4}


def _case(rng):
    data = rng.normal(size=(1, 2, 16, 16)).astype(np.float32)
    probabilities = rng.random((3, 2, 16, 16)).astype(np.float32)
    nonzero = np.zeros((1, 2, 16, 16), dtype=np.int8)
    nonzero[..., :2] = -1  # outside the image's nonzero region
    return data, probabilities, nonzero


def test_argmax_and_outside_region_marked_like_nnunet():
    probabilities = np.zeros((3, 1, 2, 2), dtype=np.float32)
    probabilities[0, 0, 0, 0] = probabilities[2, 0, 0, 1] = probabilities[1, 0, 1, 0] = probabilities[0, 0, 1, 1] = 1
    nonzero = np.array([[[[-1, -1], [0, 0]]]], dtype=np.int8)
    label = pseudo_label_from_probabilities(probabilities, nonzero)
    assert label.shape == (1, 1, 2, 2) and label.dtype == np.int8
    # background outside the nonzero region becomes -1, foreground is kept
    assert label.tolist() == [[[[-1, 2], [1, 0]]]]


def test_written_case_loads_with_nnunet_dataset_class(tmp_path):
    rng = np.random.default_rng(0)
    data, probabilities, nonzero = _case(rng)
    label = pseudo_label_from_probabilities(probabilities, nonzero)
    folder = str(tmp_path / "stage1")
    reset_folder(folder)
    write_pseudo_labelled_case(folder, "case_a", data, label, {"spacing": [1, 1, 1]}, (16, 16), [1, 2])
    loaded_data, loaded_seg, _, props = nnUNetDatasetBlosc2(folder, ["case_a"]).load_case("case_a")
    np.testing.assert_array_equal(np.asarray(loaded_data[:]), data)
    np.testing.assert_array_equal(np.asarray(loaded_seg[:]), label)
    assert set(props["class_locations"]) == {1, 2}
    # every sampled location really holds its class
    for cls, locations in props["class_locations"].items():
        assert len(locations) > 0
        for loc in locations[:20]:
            assert label[tuple(loc)] == cls
    assert props["spacing"] == [1, 1, 1]
    assert sorted(os.listdir(folder)) == ["case_a.b2nd", "case_a.pkl", "case_a_seg.b2nd"]


def test_manifest_decides_reuse(tmp_path):
    rng = np.random.default_rng(1)
    folder = pseudo_label_folder(str(tmp_path), "stage1")
    assert folder.endswith(os.path.join("pseudo_labels", "stage1"))
    reset_folder(folder)
    data, probabilities, nonzero = _case(rng)
    for case in ("a", "b"):
        write_pseudo_labelled_case(folder, case, data, pseudo_label_from_probabilities(probabilities, nonzero), {},
                                   (16, 16), [1, 2])
    # cases written but no manifest: an interrupted run, not reusable
    assert not check_manifest(folder, PROVENANCE, ["a", "b"])
    write_manifest(folder, PROVENANCE, ["b", "a"])
    assert check_manifest(folder, PROVENANCE, ["a", "b"])
    assert completed_cases(folder) == ["a", "b"]
    # a different case list (e.g. another ranking) is not reusable
    assert not check_manifest(folder, PROVENANCE, ["a"])
    # a case file lost after the manifest: not reusable
    os.remove(os.path.join(folder, "b.pkl"))
    assert not check_manifest(folder, PROVENANCE, ["a", "b"])


@pytest.mark.parametrize("key,value", [("fold", "1"), ("configuration", "3d_fullres"), ("plans", "Other")])
def test_pseudo_labels_of_another_run_are_refused(tmp_path, key, value):
    folder = str(tmp_path / "stage1")
    reset_folder(folder)
    write_manifest(folder, dict(PROVENANCE, **{key: value}), [])
    with pytest.raises(PseudoLabelMismatchError, match=key):
        check_manifest(folder, PROVENANCE, [])


def test_a_class_no_pseudo_label_contains_is_named_in_a_warning():
    summary, warnings = class_presence_report({0: 4, 1: 4, 3: 1}, 4, {1: "LV", 2: "RV", 3: "MYO"})
    assert summary == "foreground classes per pseudo-labelled case (of 4): LV in 4, RV in 0, MYO in 1"
    assert len(warnings) == 1 and "no pseudo-label contains class 'RV' (label 2)" in warnings[0]
    assert class_presence_report({1: 2, 2: 1}, 2, {1: "LV", 2: "RV"})[1] == []
