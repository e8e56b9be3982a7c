"""Metrics and the `evaluate` command: hand-computed values, medpy equality, empty-mask policy, bad input."""
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk
from medpy.metric import binary as medpy_binary

from nnunetv2_dualunc.evaluation.evaluate_folders import (EvaluationInputError, evaluate_entry, evaluate_folders,
                                                          labels_from_dataset_json, markdown_table)
from nnunetv2_dualunc.evaluation.metrics import METRIC_KEYS, image_diagonal, structure_metrics

# SimpleITK spacing is (x, y, z); numpy arrays from SimpleITK are indexed (z, y, x)
SITK_SPACING = (1.0, 2.0, 10.0)
ARRAY_SPACING = (10.0, 2.0, 1.0)


def _blob(shape, centre, radii):
    grid = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1.0


def _write(folder, name, array, spacing=SITK_SPACING):
    os.makedirs(folder, exist_ok=True)
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(spacing)
    sitk.WriteImage(image, os.path.join(folder, name))


def test_single_voxels_give_hand_computed_distances_in_voxels_and_mm():
    prediction, reference = np.zeros((5, 6, 7), bool), np.zeros((5, 6, 7), bool)
    prediction[0, 1, 1] = True
    reference[3, 1, 1] = True  # 3 voxels apart along axis 0 (10 mm voxels)
    m = structure_metrics(prediction, reference, ARRAY_SPACING)
    assert m["dice"] == 0.0 and m["jaccard"] == 0.0 and m["empty"] is None
    for name in ("hd95", "asd", "assd"):
        assert m[f"{name}_vox"] == pytest.approx(3.0)
        assert m[f"{name}_mm"] == pytest.approx(30.0)
    reference[:] = False
    reference[0, 5, 1] = True  # 4 voxels apart along axis 1 (2 mm voxels)
    m = structure_metrics(prediction, reference, ARRAY_SPACING)
    assert m["hd95_vox"] == pytest.approx(4.0) and m["hd95_mm"] == pytest.approx(8.0)


def test_equals_medpy_where_both_masks_are_non_empty_and_asd_is_pred_to_ref():
    shape = (12, 30, 28)
    reference = _blob(shape, (6, 15, 14), (4, 9, 8))
    prediction = _blob(shape, (6, 13, 15), (3, 6, 9)) | _blob(shape, (6, 26, 4), (2, 2, 2))  # + a far blob
    m = structure_metrics(prediction, reference, ARRAY_SPACING)
    assert m["dice"] == medpy_binary.dc(prediction, reference)
    assert m["jaccard"] == medpy_binary.jc(prediction, reference)
    for unit, spacing in (("vox", None), ("mm", ARRAY_SPACING)):
        assert m[f"hd95_{unit}"] == medpy_binary.hd95(prediction, reference, voxelspacing=spacing)
        assert m[f"asd_{unit}"] == medpy_binary.asd(prediction, reference, voxelspacing=spacing)
        assert m[f"assd_{unit}"] == medpy_binary.assd(prediction, reference, voxelspacing=spacing)
    # the far blob makes the two directions differ: asd must be prediction -> reference
    assert m["asd_mm"] != pytest.approx(medpy_binary.asd(reference, prediction, voxelspacing=ARRAY_SPACING))
    assert 0.0 < m["dice"] < 1.0 and m["hd95_mm"] > m["hd95_vox"]


def test_missed_or_hallucinated_structures_never_score_a_perfect_distance():
    shape = (4, 8, 8)
    empty, present = np.zeros(shape, bool), np.zeros(shape, bool)
    present[1, 2:4, 2:4] = True
    diagonal_mm = image_diagonal(shape, ARRAY_SPACING)
    assert diagonal_mm == pytest.approx(np.sqrt(40 ** 2 + 16 ** 2 + 8 ** 2))
    for prediction, reference, which in ((empty, present, "prediction"), (present, empty, "reference")):
        m = structure_metrics(prediction, reference, ARRAY_SPACING)
        assert m["empty"] == which and m["dice"] == 0.0 and m["jaccard"] == 0.0
        for name in ("hd95", "asd", "assd"):
            assert m[f"{name}_mm"] == pytest.approx(diagonal_mm)
            assert m[f"{name}_vox"] == pytest.approx(np.sqrt(4 ** 2 + 8 ** 2 + 8 ** 2))
    m = structure_metrics(empty, empty, ARRAY_SPACING)
    assert m["empty"] == "both" and m["dice"] == 1.0 and all(m[k] == 0.0 for k in METRIC_KEYS[2:])


@pytest.fixture
def folders(tmp_path):
    shape = (10, 24, 20)
    reference_1 = _blob(shape, (5, 12, 10), (3, 7, 6)).astype(np.uint8)
    reference_1[_blob(shape, (5, 12, 10), (2, 3, 3))] = 2
    prediction_1 = np.roll(reference_1, 2, axis=1)
    reference_2 = reference_1.copy()
    prediction_2 = np.where(reference_1 == 2, 0, reference_1)  # class 2 missed
    for name, ref, pred in (("case_1", reference_1, prediction_1), ("case_2", reference_2, prediction_2)):
        _write(str(tmp_path / "ref"), name + ".nii.gz", ref)
        _write(str(tmp_path / "pred"), name + ".nii.gz", pred)
    _write(str(tmp_path / "pred"), "only_predicted.nii.gz", prediction_1)  # no reference: not evaluated
    return str(tmp_path / "pred"), str(tmp_path / "ref"), {"1": (prediction_1, reference_1)}


def test_folder_evaluation_reads_spacing_in_array_order_and_averages(folders):
    prediction_folder, reference_folder, arrays = folders
    result = evaluate_folders(prediction_folder, reference_folder, [1, 2])
    assert result["cases"] == ["case_1", "case_2"]
    prediction, reference = arrays["1"]
    case = result["per_case"]["case_1"][1]
    assert case["hd95_mm"] == pytest.approx(medpy_binary.hd95(prediction == 1, reference == 1, ARRAY_SPACING))
    assert case["asd_mm"] == pytest.approx(medpy_binary.asd(prediction == 1, reference == 1, ARRAY_SPACING))
    assert case["hd95_vox"] == pytest.approx(medpy_binary.hd95(prediction == 1, reference == 1))
    missed = result["per_case"]["case_2"][2]
    assert missed["dice"] == 0.0 and missed["empty"] == "prediction"
    assert missed["hd95_mm"] == pytest.approx(image_diagonal((10, 24, 20), ARRAY_SPACING))
    per_class = result["mean_per_class"]
    assert per_class[1]["dice"] == pytest.approx(np.mean([result["per_case"][c][1]["dice"] for c in result["cases"]]))
    assert result["mean"]["asd_vox"] == pytest.approx((per_class[1]["asd_vox"] + per_class[2]["asd_vox"]) / 2)
    assert evaluate_folders(prediction_folder, reference_folder, [1, 2], num_processes=2)["mean"] == result["mean"]


def test_missing_predictions_are_all_named(folders):
    prediction_folder, reference_folder, _ = folders
    os.remove(os.path.join(prediction_folder, "case_1.nii.gz"))
    os.remove(os.path.join(prediction_folder, "case_2.nii.gz"))
    with pytest.raises(EvaluationInputError, match=r"2 of 2 .*case_1\.nii\.gz, case_2\.nii\.gz.*nnUNetv2_predict"):
        evaluate_folders(prediction_folder, reference_folder, [1, 2])


def test_shape_and_spacing_mismatches_name_the_case(folders):
    prediction_folder, reference_folder, arrays = folders
    prediction, _ = arrays["1"]
    _write(prediction_folder, "case_1.nii.gz", prediction[:, :-1])
    _write(prediction_folder, "case_2.nii.gz", prediction, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(EvaluationInputError) as error:
        evaluate_folders(prediction_folder, reference_folder, [1, 2])
    assert "case_1: prediction shape (10, 23, 20) != reference shape (10, 24, 20)" in str(error.value)
    assert "case_2: prediction spacing" in str(error.value) and "re-predict" in str(error.value)


def test_bad_labels_and_folders(folders, tmp_path):
    prediction_folder, reference_folder, _ = folders
    with pytest.raises(EvaluationInputError, match="foreground label"):
        evaluate_folders(prediction_folder, reference_folder, [0, 1])
    with pytest.raises(EvaluationInputError, match="reference folder .*nowhere does not exist"):
        evaluate_folders(prediction_folder, str(tmp_path / "nowhere"), [1])
    with pytest.raises(EvaluationInputError, match=r"No reference files ending in '\.png'"):
        evaluate_folders(prediction_folder, reference_folder, [1], file_ending=".png")


def test_cli_writes_json_and_table_with_label_names(folders, tmp_path, capsys):
    prediction_folder, reference_folder, _ = folders
    dataset_json = tmp_path / "dataset.json"
    dataset_json.write_text(json.dumps({"labels": {"background": 0, "outer": 1, "inner": 2, "ignore": 3},
                                        "file_ending": ".nii.gz"}))
    assert labels_from_dataset_json(json.loads(dataset_json.read_text())) == ([1, 2], {1: "outer", 2: "inner"})
    evaluate_entry(["-ref", reference_folder, "-pred", prediction_folder, "-djfile", str(dataset_json), "-np", "1"])
    saved = json.load(open(os.path.join(prediction_folder, "metrics.json")))
    assert saved["cases"] == ["case_1", "case_2"] and set(saved["mean_per_class"]) == {"1", "2"}
    table = open(os.path.join(prediction_folder, "metrics.md")).read()
    assert "| prediction | outer |" in table and "| prediction | inner |" in table and "HD95 (mm)" in table
    assert "| prediction | **mean** | " + f"{saved['mean']['dice']:.4f}" in capsys.readouterr().out
    os.remove(os.path.join(prediction_folder, "case_2.nii.gz"))
    with pytest.raises(SystemExit, match="ERROR: 1 of 2 reference cases have no prediction"):
        evaluate_entry(["-ref", reference_folder, "-pred", prediction_folder, "-l", "1", "-np", "1"])


def test_markdown_table_has_a_row_per_method_and_class():
    result = {"mean_per_class": {1: dict.fromkeys(METRIC_KEYS, 0.5)}, "mean": dict.fromkeys(METRIC_KEYS, 0.25)}
    lines = markdown_table({"sup": result, "ssl": result}, {1: "LV"}, metrics=("dice", "hd95_vox")).splitlines()
    assert lines[0] == "| method | class | Dice | HD95 (vox) |"
    assert lines[2:] == ["| sup | LV | 0.5000 | 0.5000 |", "| sup | **mean** | 0.2500 | 0.2500 |",
                         "| ssl | LV | 0.5000 | 0.5000 |", "| ssl | **mean** | 0.2500 | 0.2500 |"]
