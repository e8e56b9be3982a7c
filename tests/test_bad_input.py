"""The bad-input matrix: each bad setup either works or fails before training starts, with an error that names the
file or setting and the fix.

Covered elsewhere, not repeated here:
  tests/test_unlabelled.py     imagesUnlabeled/ missing or empty, wrong file ending, label file among the images,
                               missing/extra channel, case id shared with a labelled case, unreadable image, NaN/inf,
                               2D among 3D, nnUNet_raw/nnUNet_preprocessed unset (library call), unknown dataset,
                               missing plans or configuration
  tests/test_schedule.py       more ranking snapshots than pre-training epochs, impossible budgets
  tests/test_pseudo_labels.py  pseudo-labels made by another run (manifest mismatch)
"""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from os.path import join

import numpy as np
import pytest
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json, save_json
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
from nnunetv2.utilities.label_handling.label_handling import LabelManager

from conftest import TEST_TRAINERS, NnUNetWorkspace
from nnunetv2_dualunc import cli
from nnunetv2_dualunc.data.checks import CorruptPreprocessedDataError
from nnunetv2_dualunc.data.pseudo_labels import (check_manifest, pseudo_label_from_probabilities, reset_folder,
                                                 write_manifest, write_pseudo_labelled_case)
from nnunetv2_dualunc.data.unlabelled import preprocess_unlabelled
from nnunetv2_dualunc.method.schedule import ScheduleError
from nnunetv2_dualunc.nnunet_commands import console_script, trainer_folder

TRAINER = "nnUNetTrainerDualUnc_test"  # tests/ext_trainers: 2 + 1 + 1 epochs of 2 iterations, K = 2
DATASET_ID = "991"
LABELLED = [f"syn_l_{i:03d}" for i in range(4)]
NNUNET_FOLDER_VARIABLES = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


# ------------------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------------------
def _copy_workspace(ws: NnUNetWorkspace, root: str) -> NnUNetWorkspace:
    """raw + preprocessed data of the session workspace in a folder of its own, with empty results."""
    env = dict(ws.env)
    for name in NNUNET_FOLDER_VARIABLES:
        env[name] = join(root, name)
        if name == "nnUNet_results":
            os.makedirs(env[name])
        else:
            shutil.copytree(ws.env[name], env[name])
    return NnUNetWorkspace(root, env, ws.dataset)


def _preprocessed(ws: NnUNetWorkspace) -> str:
    return join(ws.env["nnUNet_preprocessed"], ws.dataset)


def _use_environment(monkeypatch, ws: NnUNetWorkspace) -> None:
    """nnunetv2.paths reads the variables when a path is used, so in-process trainers see these folders."""
    for name in NNUNET_FOLDER_VARIABLES:
        monkeypatch.setenv(name, ws.env[name])


def _tiny_trainer_class(name: str = TRAINER):
    spec = importlib.util.spec_from_file_location("tiny_trainers", join(TEST_TRAINERS, "tiny_trainers.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def _in_process_trainer(ws: NnUNetWorkspace, dataset_json: dict = None, trainer_class=None, fold="all"):
    plans = dict(load_json(join(_preprocessed(ws), "nnUNetPlans.json")), continue_training=False)
    dataset_json = dataset_json or load_json(join(_preprocessed(ws), "dataset.json"))
    return (trainer_class or _tiny_trainer_class())(plans, "2d", fold, dataset_json, torch.device("cpu"))


def _truncate(path: str) -> None:
    with open(path, "rb") as f:
        content = f.read()
    with open(path, "wb") as f:
        f.write(content[: len(content) // 2])


def _overwrite_with_garbage(path: str) -> None:
    with open(path, "wb") as f:
        f.write(b"this is not what nnU-Net wrote" * 10)


def _phase_entries(log: str):
    return re.findall(r"entering phase '(\w+)' at epoch (\d+)", log)


def _final_epoch(fold_folder: str) -> int:
    return torch.load(join(fold_folder, "checkpoint_final.pth"), map_location="cpu",
                      weights_only=False)["current_epoch"]


# ------------------------------------------------------------------------------------------------------------------
# a. a fold with a single labelled training case
# ------------------------------------------------------------------------------------------------------------------
def test_fold_with_a_single_labelled_case_trains_to_the_end(planned_workspace, tmp_path):
    """nnU-Net samples training patches with replacement, so one labelled case fills any batch size; the
    semi-supervised phases must run with it too (their labelled half of each batch is that one case)."""
    ws = _copy_workspace(planned_workspace, str(tmp_path))
    save_json([{"train": LABELLED[:1], "val": LABELLED[1:]}], join(_preprocessed(ws), "splits_final.json"))
    batch_size = load_json(join(_preprocessed(ws), "nnUNetPlans.json"))["configurations"]["2d"]["batch_size"]
    assert batch_size > 1  # more samples per batch than training cases

    train = ws.run(["nnUNetv2_train", DATASET_ID, "2d", "0", "-tr", TRAINER, "-device", "cpu"], "single_case.log")
    assert "This split has 1 training and 3 validation cases." in train.log
    assert _phase_entries(train.log) == [("pretrain", "0"), ("stage1", "2"), ("stage2", "3")]
    fold = ws.results_folder(TRAINER, fold="0")
    assert _final_epoch(fold) == 4
    summary = load_json(join(fold, "validation", "summary.json"))
    assert sorted(os.path.basename(c["reference_file"])[:-len(".nii.gz")] for c in summary["metric_per_case"]) == \
        LABELLED[1:]


# ------------------------------------------------------------------------------------------------------------------
# b. damaged preprocessed files and pseudo-labels
# ------------------------------------------------------------------------------------------------------------------
def test_damaged_labelled_preprocessed_file_stops_training_before_it_starts(planned_workspace, tmp_path, monkeypatch):
    ws = _copy_workspace(planned_workspace, str(tmp_path))
    _use_environment(monkeypatch, ws)
    trainer = _in_process_trainer(ws)
    trainer._check_labelled_preprocessed_data()  # intact data passes

    data_folder = join(_preprocessed(ws), "nnUNetPlans_2d")
    truncated, garbage = join(data_folder, "syn_l_001.b2nd"), join(data_folder, "syn_l_002.pkl")
    _truncate(truncated)
    _overwrite_with_garbage(garbage)
    with pytest.raises(CorruptPreprocessedDataError) as e:
        trainer.on_train_start()
    message = str(e.value)
    assert truncated in message and garbage in message
    assert "syn_l_000" not in message and "syn_l_003" not in message  # only the damaged cases are named
    assert "rerun `nnUNetv2_preprocess -d 991 -c 2d -plans_name nnUNetPlans`" in message
    # nothing was set up: no network, no data loaders, not even the unlabelled data
    assert not trainer.was_initialized and trainer.dataloader_train is None
    assert trainer.unlabelled_preprocessed_folder is None


def test_damaged_unlabelled_preprocessed_cases_are_preprocessed_again(planned_workspace, tmp_path, monkeypatch,
                                                                      capsys):
    """The trainer calls preprocess_unlabelled at start-up: damaged cases are removed and rebuilt from the raw
    images, the others are left alone."""
    ws = _copy_workspace(planned_workspace, str(tmp_path))
    _use_environment(monkeypatch, ws)
    folder = preprocess_unlabelled(DATASET_ID, "2d", num_processes=1, verbose=False)
    cases = sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".pkl"))
    expected = {c: np.asarray(nnUNetDatasetBlosc2(folder, [c]).load_case(c)[0][:]) for c in cases}
    damaged = {join(folder, "syn_u_001.b2nd"): _truncate, join(folder, "syn_u_002.pkl"): _overwrite_with_garbage,
               join(folder, "syn_u_003_seg.b2nd"): _overwrite_with_garbage}
    for path, damage in damaged.items():
        damage(path)
    intact = {f: os.stat(join(folder, f)).st_mtime_ns for f in os.listdir(folder)
              if f.startswith(("syn_u_000", "syn_u_004", "syn_u_005"))}
    capsys.readouterr()

    assert preprocess_unlabelled(DATASET_ID, "2d", num_processes=1, verbose=False) == folder
    printed = capsys.readouterr().out
    for path in damaged:
        assert path in printed
    assert printed.count("it is preprocessed again") == 3
    dataset = nnUNetDatasetBlosc2(folder, cases)
    for case in cases:
        data, seg, _, _ = dataset.load_case(case)
        np.testing.assert_array_equal(np.asarray(data[:]), expected[case])
        assert seg.shape[1:] == data.shape[1:]
    assert {f: os.stat(join(folder, f)).st_mtime_ns for f in intact} == intact


PROVENANCE = {"dataset": "Dataset991_X", "configuration": "2d", "plans": "nnUNetPlans", "fold": "0",
              "trainer": TRAINER, "stage": "stage1", "weights_epoch": 2}


@pytest.mark.parametrize("damaged_file, damage", [
    ("a.b2nd", _truncate), ("b_seg.b2nd", _overwrite_with_garbage), ("a.pkl", _truncate),
    ("manifest.json", _truncate)])
def test_damaged_pseudo_labels_are_made_again(tmp_path, damaged_file, damage):
    """check_manifest decides whether the trainer reuses a stage's pseudo-labels (on resume); a damaged file makes
    it answer 'rebuild' with a warning naming the file, instead of a crash in the data loader later."""
    folder = str(tmp_path / "pseudo_labels" / "stage1")
    reset_folder(folder)
    rng = np.random.default_rng(0)
    for case in ("a", "b"):
        label = pseudo_label_from_probabilities(rng.random((4, 1, 16, 16)).astype(np.float32), None)
        write_pseudo_labelled_case(folder, case, rng.normal(size=(1, 1, 16, 16)), label, {}, (16, 16), [1, 2, 3])
    write_manifest(folder, PROVENANCE, ["a", "b"])
    assert check_manifest(folder, PROVENANCE, ["a", "b"])

    damage(join(folder, damaged_file))
    with pytest.warns(UserWarning, match="made again") as warnings:
        assert not check_manifest(folder, PROVENANCE, ["a", "b"])
    assert join(folder, damaged_file) in str(warnings[0].message)


# ------------------------------------------------------------------------------------------------------------------
# c. nnUNet_extTrainer not set
# ------------------------------------------------------------------------------------------------------------------
def _environment_without(*names) -> dict:
    return {k: v for k, v in os.environ.items() if k not in names}


@pytest.mark.parametrize("command", ["build-ssl-dataset", "plan-and-preprocess", "preprocess-unlabelled",
                                     "write-ssl-splits", "add-cpu-configuration", "export",
                                     "predict-uncertainty"])
def test_plugin_commands_say_how_to_set_nnunet_ext_trainer(command, monkeypatch, capsys, tmp_path):
    for name in NNUNET_FOLDER_VARIABLES + ("nnUNet_extTrainer",):
        monkeypatch.delenv(name, raising=False)
    arguments = {"build-ssl-dataset": ["-i", str(tmp_path / "missing"), "-d", "5", "-n", "X", "-o", str(tmp_path),
                                       "--labelled", "a", "--validation", "b", "--unlabelled", "c"],
                 "export": ["-d", DATASET_ID, "-c", "2d", "-o", str(tmp_path)],
                 "predict-uncertainty": ["-i", str(tmp_path), "-o", str(tmp_path / "o"), "-d", DATASET_ID, "-c", "2d",
                                         "-device", "cpu"]}.get(command, ["-d", DATASET_ID])
    with pytest.raises(SystemExit):  # stops at the missing nnU-Net folders or the missing source dataset
        cli.main([command] + arguments)
    printed = capsys.readouterr().err
    assert "NOTE: nnUNet_extTrainer does not include this plugin's trainers" in printed
    assert "export nnUNet_extTrainer=$(nnunetv2_dualunc trainer-path)" in printed

    # once it is set as the note says, the note is gone
    monkeypatch.setenv("nnUNet_extTrainer", trainer_folder())
    assert cli.ext_trainer_hint() is None
    with pytest.raises(SystemExit):
        cli.main([command] + arguments)
    assert "nnUNet_extTrainer" not in capsys.readouterr().err


def test_nnunet_train_without_ext_trainer_names_the_variable():
    """What users see when they skip `export nnUNet_extTrainer=$(nnunetv2_dualunc trainer-path)`: nnU-Net's own
    error, which the plugin cannot change (the README shows it). With the variable set, nnUNetv2_train finds the
    trainers: every test that trains through nnUNetv2_train uses that setting."""
    proc = subprocess.run([console_script("nnUNetv2_train"), DATASET_ID, "2d", "0", "-tr", "nnUNetTrainerDualUnc",
                           "-device", "cpu"], env=_environment_without("nnUNet_extTrainer"), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert "RuntimeError: Could not find requested nnunet trainer nnUNetTrainerDualUnc in " \
           "nnunetv2.training.nnUNetTrainer" in proc.stderr
    assert "specify the external path via the `nnUNet_extTrainer` environment variable" in proc.stderr
    assert proc.stderr.rstrip().endswith("nnUNet_extTrainer=")


# ------------------------------------------------------------------------------------------------------------------
# d. nnU-Net's folder variables not set
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command, arguments, named", [
    ("preprocess-unlabelled", ["-d", DATASET_ID, "-c", "2d"], ["nnUNet_raw", "nnUNet_preprocessed"]),
    ("build-ssl-dataset", ["-i", "/nonexistent", "-d", "5", "-n", "X", "--labelled", "a", "--validation", "b",
                           "--unlabelled", "c"], ["nnUNet_raw"]),
    ("write-ssl-splits", ["-d", DATASET_ID], ["nnUNet_raw", "nnUNet_preprocessed"]),
    ("export", ["-d", DATASET_ID, "-c", "2d", "-o", "/nonexistent"], ["nnUNet_results"]),
    ("predict-uncertainty", ["-i", "/nonexistent", "-o", "/nonexistent", "-d", DATASET_ID, "-c", "2d", "-device",
                             "cpu"], ["nnUNet_results"]),
    ("add-cpu-configuration", ["-d", DATASET_ID], ["nnUNet_preprocessed"]),
    ("plan-and-preprocess", ["-d", DATASET_ID, "-c", "2d"], ["nnUNet_raw", "nnUNet_preprocessed"]),
])
def test_commands_without_nnunet_folders_name_the_variable_and_how_to_set_it(command, arguments, named):
    proc = subprocess.run([console_script("nnunetv2_dualunc"), command] + arguments,
                          env=_environment_without(*NNUNET_FOLDER_VARIABLES), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    error = proc.stderr.strip().splitlines()
    error = "\n".join(error[next(i for i, line in enumerate(error) if line.startswith("ERROR")):])
    for name in named:
        assert name in error and f"export {name}=/path/to/" in error
    for name in set(NNUNET_FOLDER_VARIABLES) - set(named):
        assert name not in error  # only what the command needs


def test_export_of_an_unknown_dataset_says_so_without_traceback(monkeypatch, tmp_path):
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    for name in ("nnUNet_raw", "nnUNet_preprocessed"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as e:
        cli.main(["export", "-d", "986", "-c", "2d", "-o", str(tmp_path / "out")])
    assert str(e.value.code).startswith("ERROR: unknown dataset '986': Could not find a dataset with the ID 986")


# ------------------------------------------------------------------------------------------------------------------
# e. nnU-Net's ignore label
# ------------------------------------------------------------------------------------------------------------------
IGNORE = 4  # the tiny dataset's labels are 0..3; nnU-Net requires the ignore label to be the highest value


def test_ignore_label_dataset_trains_every_phase_and_ignored_voxels_stay_out(tmp_path):
    """A dataset whose labels carry nnU-Net's ignore label (a band of each labelled case unannotated) trains through
    pre-training, ranking, both pseudo-label rounds and both stages; pseudo-labels never hold the ignore label."""
    from conftest import _base_env
    from helpers import add_ignore_label
    from nnunetv2_dualunc.data.synthetic import dataset_name, write_synthetic_dataset

    env = _base_env(str(tmp_path))
    raw = write_synthetic_dataset(env["nnUNet_raw"], 994, n_labelled=4, n_unlabelled=4, n_test=0,
                                  shape=(2, 32, 32), seed=0)
    add_ignore_label(raw, IGNORE)  # a band of each labelled case unannotated
    ws = NnUNetWorkspace(str(tmp_path), env, dataset_name(994))
    ws.run(["nnUNetv2_plan_and_preprocess", "-d", "994", "-c", "2d", "-np", "1"], "plan.log",
           env=dict(env, nnUNet_n_proc_DA="1"))
    ws.env["nnUNet_n_proc_DA"] = "0"
    ws.run(["nnUNetv2_train", "994", "2d", "all", "-tr", TRAINER, "-device", "cpu"], "train.log")
    fold = ws.results_folder(TRAINER)
    assert os.path.isfile(join(fold, "checkpoint_final.pth"))
    for stage in ("stage1", "stage2"):
        folder = join(fold, "pseudo_labels", stage)
        cases = sorted(f[:-len(".pkl")] for f in os.listdir(folder) if f.endswith(".pkl"))
        assert cases
        for case in cases:
            _, seg, _, properties = nnUNetDatasetBlosc2(folder, [case]).load_case(case)
            assert IGNORE not in np.unique(seg[:])
            assert (-1, *range(IGNORE)) in properties["class_locations"]  # what the ignore-label loader looks up


def test_pseudo_labels_with_annotated_labels_feed_nnunets_ignore_label_loader(tmp_path):
    """What ignore-label support needs from the pseudo-labels: with annotated_labels, nnU-Net's data loader (ignore
    label set) samples patches from them; without, it fails looking up the annotated-voxel key."""
    label_manager = LabelManager({"background": 0, "a": 1, "b": 2, "c": 3, "ignore": IGNORE}, None)
    probabilities = torch.softmax(5 * torch.randn(4, 1, 24, 24, generator=torch.Generator().manual_seed(0)),
                                  0).numpy()
    nonzero = np.zeros((1, 1, 24, 24), np.int8)
    nonzero[..., :4] = -1
    pseudo_label = pseudo_label_from_probabilities(probabilities, nonzero)
    assert set(np.unique(pseudo_label)) <= {-1, 0, 1, 2, 3}  # argmax over predicted classes: never IGNORE
    data = np.random.default_rng(0).normal(size=(1, 1, 24, 24)).astype(np.float32)

    def batch_from(folder: str, annotated_labels):
        reset_folder(folder)
        write_pseudo_labelled_case(folder, "u", data, pseudo_label, {}, (16, 16), label_manager.foreground_labels,
                                   annotated_labels)
        loader = nnUNetDataLoader(nnUNetDatasetBlosc2(folder, ["u"]), 2, (16, 16), (16, 16), label_manager,
                                  oversample_foreground_percent=0.0)
        return loader.generate_train_batch()

    batch = batch_from(str(tmp_path / "with"), label_manager.all_labels)
    assert batch["data"].shape == (2, 1, 16, 16) and not (batch["target"] == IGNORE).any()
    with pytest.raises(KeyError):
        batch_from(str(tmp_path / "without"), None)


# ------------------------------------------------------------------------------------------------------------------
# f. region-based labels
# ------------------------------------------------------------------------------------------------------------------
def test_region_based_dataset_is_refused_when_the_trainer_is_built(planned_workspace, tmp_path, monkeypatch):
    ws = planned_workspace
    _use_environment(monkeypatch, replace(ws, env=dict(ws.env, nnUNet_results=str(tmp_path))))
    dataset_json = load_json(join(_preprocessed(ws), "dataset.json"))
    dataset_json["labels"] = {"background": 0, "organ_and_wall": [1, 2], "wall": 2, "lesion": 3}
    dataset_json["regions_class_order"] = [1, 2, 3]
    from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
    with pytest.raises(RuntimeError) as e:
        _in_process_trainer(ws, dataset_json, nnUNetTrainerDualUnc)
    message = str(e.value)
    assert "nnUNetTrainerDualUnc does not support region-based labels" in message
    assert "dataset.json 'regions_class_order'" in message
    assert "Train this dataset with nnUNetTrainer, or convert it to mutually exclusive labels" in message


@pytest.mark.parametrize("attribute, value, error, message", [
    ("reliable_fraction", 0.0, ScheduleError, r"reliable_fraction = 0.0: it must be in \(0, 1\]"),
    ("copy_paste_fraction", 1.0, ValueError, r"copy_paste_fraction = 1.0: it must be in \[0, 1\)"),
    ("copy_paste_unmixed_finish", -0.2, ScheduleError, r"copy_paste_unmixed_finish = -0.2: it must be in \[0, 1\]")])
def test_impossible_setting_is_refused_before_pre_training(planned_workspace, tmp_path, monkeypatch, attribute, value,
                                                           error, message):
    ws = planned_workspace
    _use_environment(monkeypatch, replace(ws, env=dict(ws.env, nnUNet_results=str(tmp_path))))
    trainer_class = type("nnUNetTrainerDualUnc_badSetting", (_tiny_trainer_class(),), {attribute: value})
    with pytest.raises(error, match=message):
        _in_process_trainer(ws, trainer_class=trainer_class)


@pytest.mark.parametrize("trainer_name", ["nnUNetTrainerDualUncCopyPasteUnmixedFinish_test",
                                          "nnUNetTrainerCopyPaste_test"])
def test_copy_paste_losses_leave_the_ignore_labels_voxels_out(planned_workspace, tmp_path, monkeypatch, trainer_name):
    """A box pasted from a labelled case carries its ignored voxels into the mixed batch: the mixed batch's loss
    (Eq. 4 with copy-paste; nnU-Net's Dice + CE in the supervised copy-paste trainer) must not see what the network
    predicts there. Whatever the logits inside the ignored voxels, the loss is the same."""
    ws = planned_workspace
    _use_environment(monkeypatch, replace(ws, env=dict(ws.env, nnUNet_results=str(tmp_path))))
    dataset_json = load_json(join(_preprocessed(ws), "dataset.json"))
    dataset_json["labels"] = dict(dataset_json["labels"], ignore=IGNORE)
    trainer = _in_process_trainer(ws, dataset_json, _tiny_trainer_class(trainer_name))
    trainer.initialize()
    generator = torch.Generator().manual_seed(0)
    shapes = [(2, 1, 16, 16), (2, 1, 8, 8)]
    targets = [torch.randint(0, 4, s, generator=generator).float() for s in shapes]
    for target in targets:
        target[..., : target.shape[-1] // 2] = IGNORE  # half of every sample unannotated
    heads = 2 if "DualUnc" in trainer_name else 1

    def loss_with(inside_ignored: float) -> float:
        logits = [[torch.randn(s[0], 4, *s[2:], generator=torch.Generator().manual_seed(h)) for s in shapes]
                  for h in range(heads)]
        for head in logits:
            for scale, target in zip(head, targets):
                scale[..., : target.shape[-1] // 2] = inside_ignored
        return float(trainer.unsupervised_loss(*logits, targets))  # the first two deep-supervision scales

    assert np.isfinite(loss_with(0.0))
    assert loss_with(0.0) == pytest.approx(loss_with(50.0), rel=1e-5)


# ------------------------------------------------------------------------------------------------------------------
# multi-GPU (DDP): refused up front
# ------------------------------------------------------------------------------------------------------------------
def test_ddp_training_is_refused_when_the_trainer_is_built(planned_workspace, tmp_path):
    """nnUNetv2_train -num_gpus N builds the trainer inside an initialised process group (nnU-Net's is_ddp). A
    one-process gloo group on the CPU reproduces that state; the trainer must refuse before any work."""
    ws = planned_workspace
    script = f"""
import os, torch, torch.distributed as dist
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29533")
dist.init_process_group("gloo", rank=0, world_size=1)
from batchgenerators.utilities.file_and_folder_operations import load_json, join
from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
folder = {join(_preprocessed(ws))!r}
plans = dict(load_json(join(folder, "nnUNetPlans.json")), continue_training=False)
try:
    nnUNetTrainerDualUnc(plans, "2d", 0, load_json(join(folder, "dataset.json")), torch.device("cpu"))
except RuntimeError as e:
    print("REFUSED:", e)
dist.destroy_process_group()
"""
    env = dict(ws.env, nnUNet_results=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                          cwd=str(tmp_path))
    assert "REFUSED: nnUNetTrainerDualUnc does not support multi-GPU training (-num_gpus > 1)" in proc.stdout, \
        proc.stdout + proc.stderr
    assert "Train with a single GPU" in proc.stdout
    written = [join(root, f) for root, _, files in os.walk(tmp_path) for f in files]
    # nnU-Net's own __init__ has opened its training log by then; nothing else (no checkpoint, no data) is written
    assert [os.path.basename(f)[:len("training_log_")] for f in written] == ["training_log_"]
