"""Warm start from an existing nnU-Net model: checks of the checkpoint, how its weights are loaded, and the user's
path end to end (stock nnUNetv2_train -> nnUNetTrainerDualUncWarmStart -> nnUNetv2_predict; nnUNetTrainer ->
nnUNetTrainerCopyPasteWarmStart -> nnUNetTrainerDualUncPlusFromCopyPaste -> nnUNetTrainerDualUncPlusSecondRound)."""
import copy
import json
import os
import re

import pytest
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_dualunc.network.dual_decoder import build_dual_decoder_network
from nnunetv2_dualunc.run_layout import ranking_settings_path, sample_ranking_path, snapshot_path
from nnunetv2_dualunc.training.warm_start import (WARM_START_VARIABLE, checkpoint_differences, warm_start_weights,
                                                  weight_differences)

SUPERVISED = "nnUNetTrainer_test"
WARM = "nnUNetTrainerDualUncWarmStart_test"
CONTROL = "nnUNetTrainerContinued_test"


def _plans_and_dataset(ws):
    folder = os.path.join(ws.env["nnUNet_preprocessed"], ws.dataset)
    return json.load(open(os.path.join(folder, "nnUNetPlans.json"))), json.load(open(os.path.join(folder,
                                                                                                   "dataset.json")))


def _networks(plans: dict, dataset_json: dict):
    manager = PlansManager(plans)
    configuration = manager.get_configuration("2d")
    classes = len(dataset_json["labels"])
    torch.manual_seed(0)
    plain = nnUNetTrainer.build_network_architecture(manager, configuration, 1, classes, True)
    dual = build_dual_decoder_network(manager, configuration, 1, classes, True)
    return plain, dual


def _checkpoint(plans: dict, dataset_json: dict, fold="all", configuration="2d") -> dict:
    return {"network_weights": {}, "init_args": {"plans": copy.deepcopy(plans), "configuration": configuration,
                                                 "fold": fold, "dataset_json": copy.deepcopy(dataset_json)}}


def test_checkpoint_differences_name_what_differs(planned_workspace):
    plans, dataset_json = _plans_and_dataset(planned_workspace)
    assert checkpoint_differences(_checkpoint(plans, dataset_json), plans, "2d", "all", dataset_json) == []

    other_labels = copy.deepcopy(dataset_json)
    other_labels["labels"] = {"background": 0, "organ": 1}
    assert any(d.startswith("labels:") for d in
               checkpoint_differences(_checkpoint(plans, other_labels), plans, "2d", "all", dataset_json))
    assert any(d.startswith("fold:") for d in
               checkpoint_differences(_checkpoint(plans, dataset_json, fold=0), plans, "2d", "all", dataset_json))
    assert any(d.startswith("configuration:") for d in checkpoint_differences(
        _checkpoint(plans, dataset_json, configuration="3d_fullres"), plans, "2d", "all", dataset_json))
    other_plans = copy.deepcopy(plans)
    other_plans["plans_name"] = "nnUNetResEncUNetMPlans"
    assert any(d.startswith("plans_name:") for d in
               checkpoint_differences(_checkpoint(other_plans, dataset_json), plans, "2d", "all", dataset_json))
    changed_patch = copy.deepcopy(plans)
    changed_patch["configurations"]["2d"]["patch_size"] = [16, 16]
    differences = checkpoint_differences(_checkpoint(changed_patch, dataset_json), plans, "2d", "all", dataset_json)
    assert len(differences) == 1 and "patch_size" in differences[0]


def test_main_weights_loaded_and_auxiliary_stages_copied(planned_workspace):
    plans, dataset_json = _plans_and_dataset(planned_workspace)
    plain, dual = _networks(plans, dataset_json)
    trained = {k: v + 1.0 if v.is_floating_point() else v for k, v in plain.state_dict().items()}
    assert weight_differences(dual, trained) == []
    upsampler_before = {k: v.clone() for k, v in dual.state_dict().items() if ".upsamplers." in k}

    dual.load_state_dict(warm_start_weights(dual, trained))  # strict: every key present
    state = dual.state_dict()
    for key, value in trained.items():  # encoder and main decoder: the checkpoint's weights
        assert torch.equal(state[key], value), key
    copied = [k for k in state if k.startswith("aux_decoder.stages.") or k.startswith("aux_decoder.seg_layers.")]
    assert copied
    for key in copied:  # the auxiliary decoder's stages start as the trained main decoder's
        assert torch.equal(state[key], trained["decoder." + key[len("aux_decoder."):]]), key
    for key, value in upsampler_before.items():  # its own upsampling keeps its initialisation
        assert torch.equal(state[key], value), key


def test_weight_differences_report_a_foreign_network(planned_workspace):
    plans, dataset_json = _plans_and_dataset(planned_workspace)
    plain, dual = _networks(plans, dataset_json)
    weights = dict(plain.state_dict())
    key = next(k for k in weights if k.startswith("decoder.seg_layers."))
    weights[key] = torch.zeros(7, *weights[key].shape[1:])
    weights["extra.weight"] = torch.zeros(1)
    del weights[next(k for k in weights if k.startswith("encoder."))]
    differences = weight_differences(dual, weights)
    assert any(d.startswith("missing encoder.") for d in differences)
    assert "unexpected extra.weight" in differences
    assert any(d.startswith(key) and "(7," in d for d in differences)


def test_stock_model_then_warm_start_then_predict(planned_workspace, tmp_path):
    ws = planned_workspace
    # no existing model yet: the error names the command that creates it, before any work
    missing = ws.run(["nnUNetv2_train", "991", "2d", "all", "-tr", WARM, "-device", "cpu"], "warm_missing.log",
                     check=False)
    assert missing.returncode != 0
    assert f"nnUNetv2_train {ws.dataset} 2d all -tr {SUPERVISED} -p nnUNetPlans" in missing.log
    assert "Epoch 0" not in missing.log

    ws.run(["nnUNetv2_train", "991", "2d", "all", "-tr", SUPERVISED, "-device", "cpu"], "supervised.log")
    checkpoint_file = os.path.join(ws.results_folder(SUPERVISED), "checkpoint_final.pth")
    train = ws.run(["nnUNetv2_train", "991", "2d", "all", "-tr", WARM, "-device", "cpu"], "warm.log")
    assert f"warm start: weights loaded from {checkpoint_file}" in train.log
    assert "entering phase 'stage2'" in train.log
    fold = ws.results_folder(WARM)
    # the K = 2 snapshots come from the adaptation phase that starts at the loaded weights
    assert sorted(os.listdir(os.path.join(fold, "snapshots")))[:2] == ["weights_after_epoch_0001.pth",
                                                                       "weights_after_epoch_0002.pth"]
    predicted = str(tmp_path / "pred")
    ws.run(["nnUNetv2_predict", "-i", os.path.join(ws.raw_dataset, "imagesTs"), "-o", predicted, "-d", "991", "-c",
            "2d", "-f", "all", "-tr", WARM, "-device", "cpu", "--disable_tta"], "warm_predict.log")
    assert sorted(f for f in os.listdir(predicted) if f.endswith(".nii.gz")) == ["syn_t_000.nii.gz",
                                                                                "syn_t_001.nii.gz"]

    # with snapshot_initial_weights the loaded model itself is Eq. 1's first snapshot, saved before any step
    loaded_first = "nnUNetTrainerDualUncWarmStartLoadedSnapshot_test"
    ws.run(["nnUNetv2_train", "991", "2d", "all", "-tr", loaded_first, "-device", "cpu"], "warm_loaded_snapshot.log")
    fold = ws.results_folder(loaded_first)
    snapshot = torch.load(snapshot_path(fold, 0), weights_only=True)
    loaded = torch.load(checkpoint_file, map_location="cpu", weights_only=False)["network_weights"]
    assert all(torch.equal(snapshot["network_weights"][k], v) for k, v in loaded.items())
    assert not torch.equal(snapshot["network_weights"][next(iter(loaded))],  # training moved on from it
                           torch.load(snapshot_path(fold, 2), weights_only=True)["network_weights"][next(iter(loaded))])
    with open(ranking_settings_path(sample_ranking_path(fold))) as f:
        assert json.load(f)["snapshot_epochs"] == [0, 1, 2]

    # the supervised control starts from the same model and follows the warm start's learning rates epoch by epoch
    control = ws.run(["nnUNetv2_train", "991", "2d", "all", "-tr", CONTROL, "-device", "cpu"], "control.log")
    assert f"warm start: weights loaded from {checkpoint_file}" in control.log
    assert "entering phase" not in control.log  # no unlabelled data
    assert _learning_rates(control.log) == _learning_rates(train.log)
    assert len(set(_learning_rates(control.log))) == 2  # two restarts of phases of 2, 1, 1 epochs: 0.01 and less

    # the recipe continued from the supervised copy-paste model: refused, naming that model's command, until it exists
    from_copy_paste, copy_paste = "nnUNetTrainerDualUncPlusFromCopyPaste_test", "nnUNetTrainerCopyPasteWarmStart_test"
    missing = ws.run(["nnUNetv2_train", "991", "2d", "all", "-tr", from_copy_paste, "-device", "cpu"],
                     "from_copy_paste_missing.log", check=False)
    assert missing.returncode != 0 and "Epoch 0" not in missing.log
    assert f"nnUNetv2_train {ws.dataset} 2d all -tr {copy_paste} -p nnUNetPlans" in missing.log
    ws.run(["nnUNetv2_train", "991", "2d", "all", "-tr", copy_paste, "-device", "cpu"], "copy_paste.log")
    chained = ws.run(["nnUNetv2_train", "991", "2d", "all", "-tr", from_copy_paste, "-device", "cpu"],
                     "from_copy_paste.log")
    copy_paste_model = os.path.join(ws.results_folder(copy_paste), "checkpoint_final.pth")
    assert f"warm start: weights loaded from {copy_paste_model}" in chained.log
    assert "entering phase 'stage2'" in chained.log
    # a second round from that model: the dual-decoder checkpoint loads into the next dual-decoder student
    second_round = ws.run(["nnUNetv2_train", "991", "2d", "all", "-tr", "nnUNetTrainerDualUncPlusSecondRound_test",
                           "-device", "cpu"], "second_round.log")
    first_round_model = os.path.join(ws.results_folder(from_copy_paste), "checkpoint_final.pth")
    assert f"warm start: weights loaded from {first_round_model}" in second_round.log
    assert "entering phase 'stage2'" in second_round.log

    # a checkpoint of another label set is refused before training, naming the file and the difference
    foreign = torch.load(checkpoint_file, map_location="cpu", weights_only=False)
    foreign["init_args"]["dataset_json"]["labels"] = {"background": 0, "tumour": 1}
    foreign_file = str(tmp_path / "foreign_checkpoint.pth")
    torch.save(foreign, foreign_file)
    refused = ws.run(["nnUNetv2_train", "991", "2d", "all", "-tr", WARM, "-device", "cpu"], "warm_foreign.log",
                     env=dict(ws.env, **{WARM_START_VARIABLE: foreign_file}), check=False)
    assert refused.returncode != 0 and foreign_file in refused.log and "labels: checkpoint" in refused.log
    assert "Epoch 0" not in refused.log


def _learning_rates(log: str) -> list:
    return re.findall(r"Current learning rate: ([0-9.e-]+)", log)


def _bare_control(**attributes):
    """An nnUNetTrainerContinued with only what configure_optimizers reads (no plans, no dataset)."""
    from nnunetv2_dualunc.training.continued import nnUNetTrainerContinued

    control = object.__new__(nnUNetTrainerContinued)
    control.network, control.initial_lr, control.weight_decay = torch.nn.Linear(1, 1), 0.01, 3e-5
    for name, value in attributes.items():
        setattr(control, name, value)
    return control


def test_control_refuses_phases_that_do_not_add_up_to_its_epochs():
    from nnunetv2_dualunc.method.schedule import ScheduleError

    control = _bare_control(lr_phases=(2, 1, 1), num_epochs=4)
    _, scheduler = control.configure_optimizers()
    assert [round(scheduler.lr_at(epoch), 6) for epoch in range(4)] == [0.01, round(0.01 * 0.5 ** 0.9, 6), 0.01,
                                                                       0.01]
    control.num_epochs = 5
    with pytest.raises(ScheduleError, match="lr_phases"):
        control.configure_optimizers()


def test_control_with_restarts_off_decays_once_over_its_phases():
    control = _bare_control(lr_phases=(2, 1, 1), num_epochs=4, lr_restart_each_phase=False)
    _, scheduler = control.configure_optimizers()
    assert [scheduler.lr_at(epoch) for epoch in range(4)] == pytest.approx([0.01 * (1 - e / 4) ** 0.9
                                                                            for e in range(4)])


@pytest.mark.parametrize("content", [b"not a checkpoint", None])
def test_unreadable_checkpoint_is_named(planned_workspace, tmp_path, content):
    ws = planned_workspace
    path = str(tmp_path / "checkpoint_final.pth")
    if content is None:
        torch.save({"weights": 1}, path)
    else:
        open(path, "wb").write(content)
    run = ws.run(["nnUNetv2_train", "991", "2d", "all", "-tr", WARM, "-device", "cpu"], "warm_unreadable.log",
                 env=dict(ws.env, **{WARM_START_VARIABLE: path}), check=False)
    assert run.returncode != 0 and path in run.log and "Epoch 0" not in run.log
