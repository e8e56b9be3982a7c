"""Planning a semi-supervised dataset: nnU-Net's planner with the unlabelled cases counted for the batch-size cap."""
import json
import os

import pytest

from nnunetv2_dualunc.data.ssl_planning import PLANS_RECORD_KEY, find_planner_class, planner_counting_unlabelled
from nnunetv2_dualunc.data.unlabelled import unlabelled_preprocessed_folder
from nnunetv2_dualunc.data.synthetic import dataset_name, write_synthetic_dataset

from conftest import NnUNetWorkspace, _base_env

DATASET_ID = 993


def _plans(workspace: NnUNetWorkspace) -> dict:
    with open(os.path.join(workspace.env["nnUNet_preprocessed"], workspace.dataset, "nnUNetPlans.json")) as f:
        return json.load(f)


def test_counting_unlabelled_cases_lifts_the_batch_cap_and_changes_nothing_else(tmp_path):
    # 4 labelled 2x32x32 cases: nnU-Net's 5 % cap allows 0.4 samples of 32x32 -> its minimum batch, 2;
    # counting 40 unlabelled cases as well allows 4.4 -> 4
    env = _base_env(str(tmp_path))
    write_synthetic_dataset(env["nnUNet_raw"], DATASET_ID, n_labelled=4, n_unlabelled=40, n_test=0,
                            shape=(2, 32, 32), seed=0)
    workspace = NnUNetWorkspace(str(tmp_path), dict(env, nnUNet_n_proc_DA="1"), dataset_name(DATASET_ID))
    workspace.run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "-np", "1", "--no_pp"],
                  "stock_plan.log")
    stock = _plans(workspace)
    workspace.run(["nnunetv2_dualunc", "plan-and-preprocess", "-d", str(DATASET_ID), "-c", "2d", "-np", "1"],
                  "ssl_plan.log")
    counted = _plans(workspace)
    assert stock["configurations"]["2d"]["batch_size"] == 2
    assert counted["configurations"]["2d"]["batch_size"] == 4
    assert counted[PLANS_RECORD_KEY] == {"labelled_cases": 4, "unlabelled_cases_counted": 40,
                                         "planner": "ExperimentPlanner"}
    for key in ("patch_size", "spacing", "architecture", "normalization_schemes"):
        assert counted["configurations"]["2d"][key] == stock["configurations"]["2d"][key]
    assert counted["foreground_intensity_properties_per_channel"] == \
        stock["foreground_intensity_properties_per_channel"]
    # preprocessing ran for the labelled and the unlabelled cases; dataset.json copied unchanged (numTraining 4)
    preprocessed = os.path.join(workspace.env["nnUNet_preprocessed"], workspace.dataset)
    with open(os.path.join(preprocessed, "dataset.json")) as f:
        assert json.load(f)["numTraining"] == 4
    data_identifier = counted["configurations"]["2d"]["data_identifier"]
    assert len([f for f in os.listdir(os.path.join(preprocessed, data_identifier)) if f.endswith(".pkl")]) == 4
    unlabelled = unlabelled_preprocessed_folder(preprocessed, data_identifier)
    assert len([f for f in os.listdir(unlabelled) if f.endswith(".pkl")]) == 40


def test_planner_subclass_keeps_the_file_and_names_itself():
    base = find_planner_class("ExperimentPlanner")
    planner = planner_counting_unlabelled(base, 7)
    assert issubclass(planner, base) and planner.__name__ == "ExperimentPlannerCountingUnlabelled"
    with pytest.raises(ValueError, match="Planner 'NoSuchPlanner' not found.*nnUNetPlannerResEncM"):
        find_planner_class("NoSuchPlanner")


def test_missing_unlabelled_folder_stops_before_planning(tmp_path):
    env = _base_env(str(tmp_path))
    raw = write_synthetic_dataset(env["nnUNet_raw"], DATASET_ID, n_labelled=2, n_unlabelled=1, n_test=0,
                                  shape=(2, 32, 32), seed=0)
    for name in os.listdir(os.path.join(raw, "imagesUnlabeled")):
        os.remove(os.path.join(raw, "imagesUnlabeled", name))
    os.rmdir(os.path.join(raw, "imagesUnlabeled"))
    workspace = NnUNetWorkspace(str(tmp_path), env, dataset_name(DATASET_ID))
    proc = workspace.run(["nnunetv2_dualunc", "plan-and-preprocess", "-d", str(DATASET_ID), "-c", "2d"],
                         "plan.log", check=False)
    assert proc.returncode != 0 and "Unlabelled images folder not found" in proc.log
    assert "Traceback" not in proc.log
    assert not os.path.exists(os.path.join(env["nnUNet_preprocessed"], dataset_name(DATASET_ID), "nnUNetPlans.json"))
