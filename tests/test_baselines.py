"""The comparison's baselines (training/baselines/): every trainer's own train step, a few iterations in 2D and 3D on
the tiny synthetic dataset's plans (from scratch, warm start and recipe-only twin, unlabelled and labelled second
batches), deep co-training's second network (its attacks, its warm start, its checkpoint), and end to end through
nnUNetv2_train: the unlabelled images' loader, BCP's labelled pre-training quarter, ST++'s ranking and stages, a warm
start, and Mean Teacher's EMA teacher surviving a kill."""
import itertools
import math
import os
import re
import signal
import sys

import pytest
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from helpers import trainer_factory

from nnunetv2_dualunc.run_layout import ranking_settings_path, sample_ranking_path
from nnunetv2_dualunc.training.baselines.catalogue import BASELINES
from nnunetv2_dualunc.method.co_training import fgsm_example
from nnunetv2_dualunc.training.baselines import dct
from nnunetv2_dualunc.training.baselines.dct import (PEER_CHECKPOINT_KEY, nnUNetTrainerDeepCoTraining,
                                                     nnUNetTrainerDeepCoTrainingWarmStart)
from nnunetv2_dualunc.training.baselines.fixmatch import nnUNetTrainerFixMatch
from nnunetv2_dualunc.training.online_teacher import (EmaTeacherMixin, TEACHER_CHECKPOINT_KEY,
                                                      TEACHER_UPDATES_CHECKPOINT_KEY)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from speed import synthetic_batch  # noqa: E402

UNLABELLED_LINE = "second batch of unlabelled images"
LABELLED_LINE = "second batch of labelled cases with their labels"
EVERY_CLASS = [cls for pair in BASELINES for cls in pair]
STEPS = 3


def _built(make_trainer, trainer_class: type, second_batch_from_labelled: bool):
    """The trainer initialised on the CPU (network, optimizer, losses), with a synthetic second batch in every step:
    unlabelled images, or labelled cases for the recipe-only twin."""
    cls = type(f"{trainer_class.__name__}Twin", (trainer_class,), {"second_batch_from_labelled": True}) \
        if second_batch_from_labelled else trainer_class
    trainer = make_trainer(cls)
    trainer.print_to_log_file = lambda *args, **kwargs: None
    trainer.initialize()
    trainer.network.train()
    trainer.dataloader_unlabelled = itertools.repeat(synthetic_batch(trainer, trainer.batch_size))
    # a further labelled batch, unlike the one train_step is given: deep co-training's second network draws its own
    trainer.dataloader_train = itertools.repeat(_mirrored(synthetic_batch(trainer, trainer.batch_size)))
    trainer.second_batch_is_labelled = second_batch_from_labelled
    return trainer


def _mirrored(batch: dict) -> dict:
    """The batch with images and label maps mirrored along the last axis: another valid labelled batch."""
    target = batch["target"]
    flipped = [t.flip(-1) for t in target] if isinstance(target, list) else target.flip(-1)
    return {"data": batch["data"].flip(-1), "target": flipped}


@pytest.mark.parametrize("second_batch_from_labelled", [False, True], ids=["unlabelled", "twin"])
@pytest.mark.parametrize("workspace, configuration", [("planned_workspace", "2d"),
                                                      ("planned_workspace_3d", "3d_fullres")])
def test_every_baseline_takes_train_steps_with_its_second_batch(request, monkeypatch, workspace, configuration,
                                                                second_batch_from_labelled):
    make_trainer = trainer_factory(request.getfixturevalue(workspace), monkeypatch, configuration=configuration)
    torch.manual_seed(0)
    batch = None
    for trainer_class in EVERY_CLASS:
        trainer = _built(make_trainer, trainer_class, second_batch_from_labelled)
        batch = batch or synthetic_batch(trainer, trainer.batch_size)
        before = {k: v.clone() for k, v in trainer.network.state_dict().items()}
        results = [trainer.train_step(batch) for _ in range(STEPS)]
        name = f"{trainer_class.__name__} ({configuration}, twin {second_batch_from_labelled})"
        assert all(math.isfinite(float(r["loss"])) for r in results), name
        unsupervised = [float(r["unsupervised_losses"]) for r in results]
        assert all(math.isfinite(v) and v >= 0 for v in unsupervised), (name, unsupervised)
        # an untrained network is confident (>= 0.95) nowhere, so FixMatch's unlabelled loss may be 0 here
        nothing_confident = issubclass(trainer_class, nnUNetTrainerFixMatch) and not second_batch_from_labelled
        assert nothing_confident or max(unsupervised) > 0, (name, unsupervised)
        assert any(not torch.equal(before[k], v) for k, v in trainer.network.state_dict().items()), name
        if isinstance(trainer, EmaTeacherMixin) and not second_batch_from_labelled:
            teacher, student = trainer._online_teacher.state_dict(), trainer.network.state_dict()
            assert trainer._teacher_updates == STEPS and any(not torch.equal(teacher[k], student[k])
                                                             for k in student), name
        if isinstance(trainer, EmaTeacherMixin) and second_batch_from_labelled:
            assert trainer._online_teacher is None, name  # true labels: no teacher is ever asked


def test_co_training_attacks_trains_both_networks_and_keeps_the_second_in_the_checkpoint(
        planned_workspace, monkeypatch, tmp_path):
    make_trainer = trainer_factory(planned_workspace, monkeypatch)
    attacked_own_argmax = []  # per attack: whether the network was attacked on its own argmax (the second batch)

    def recorded_fgsm(network, images, labels, *args):
        attacked_own_argmax.append(labels is None)
        return fgsm_example(network, images, labels, *args)

    monkeypatch.setattr(dct, "fgsm_example", recorded_fgsm)
    torch.manual_seed(0)
    trainer = _built(make_trainer, nnUNetTrainerDeepCoTraining, False)
    trainer.current_epoch = trainer.num_epochs - 1  # the adversarial term at its full weight
    assert trainer.adversarial_weight() == pytest.approx(trainer.adversarial_loss_weight)
    assert len(trainer.optimizer.param_groups) == 2  # one per network, both under nnU-Net's schedule
    batch = synthetic_batch(trainer, trainer.batch_size)
    networks = {"first": trainer.network, "second": trainer.peer_network}
    before = {name: {k: v.clone() for k, v in net.state_dict().items()} for name, net in networks.items()}
    results = []
    for attack_labelled in (1.0, 0.0, 1.0):  # each network's own labelled batch, then the shared second batch
        trainer.labelled_attack_probability = attack_labelled
        results.append(trainer.train_step(batch))
    assert all(math.isfinite(float(r["loss"])) and float(r["unsupervised_losses"]) > 0 for r in results)
    assert attacked_own_argmax == [False, False, True, True, False, False]  # both networks in every step
    for name, net in networks.items():
        assert any(not torch.equal(before[name][k], v) for k, v in net.state_dict().items()), name

    path = str(tmp_path / "checkpoint.pth")
    trainer.save_checkpoint(path)
    assert set(torch.load(path, map_location="cpu", weights_only=False)[PEER_CHECKPOINT_KEY]) == \
        set(trainer.peer_network.state_dict())
    resumed = _built(make_trainer, nnUNetTrainerDeepCoTraining, False)  # what --c does: a new trainer, then load
    resumed.load_checkpoint(path)
    for name, net in {"first": resumed.network, "second": resumed.peer_network}.items():
        assert all(torch.equal(v, networks[name].state_dict()[k]) for k, v in net.state_dict().items()), name
    assert resumed._peer_started and resumed.optimizer.state_dict()["state"].keys() == \
        trainer.optimizer.state_dict()["state"].keys()  # the second network's momentum came back too


def test_co_training_warm_start_copies_the_loaded_model_into_the_second_network_once(planned_workspace, monkeypatch,
                                                                                     tmp_path):
    make_trainer = trainer_factory(planned_workspace, monkeypatch)
    trainer = _built(make_trainer, nnUNetTrainerDeepCoTrainingWarmStart, False)
    first = trainer.network.state_dict()
    assert any(not torch.equal(v, first[k]) for k, v in trainer.peer_network.state_dict().items())
    trainer._start_peer()  # what the first step does first
    assert all(torch.equal(v, first[k]) for k, v in trainer.peer_network.state_dict().items())
    batch = synthetic_batch(trainer, trainer.batch_size)
    trainer.train_step(batch)  # each network learns from its own labelled batch, so the two part
    trainer.train_step(batch)
    first, second = trainer.network.state_dict(), trainer.peer_network.state_dict()
    assert any(not torch.equal(v, first[k]) for k, v in second.items())
    trainer._start_peer()  # later steps don't copy again
    assert any(not torch.equal(v, first[k]) for k, v in trainer.peer_network.state_dict().items())

    path = str(tmp_path / "warm.pth")  # a resumed warm start keeps its own second network: no copy after --c
    trainer.save_checkpoint(path)
    resumed = _built(make_trainer, nnUNetTrainerDeepCoTrainingWarmStart, False)
    resumed.load_checkpoint(path)
    resumed._start_peer()
    assert all(torch.equal(v, second[k]) for k, v in resumed.peer_network.state_dict().items())

    scratch = _built(make_trainer, nnUNetTrainerDeepCoTraining, False)
    scratch._start_peer()  # from scratch the two random initialisations stay different
    assert any(not torch.equal(v, scratch.network.state_dict()[k])
               for k, v in scratch.peer_network.state_dict().items())


def test_co_training_feeds_each_network_the_others_adversarial_examples_and_clean_prediction(planned_workspace,
                                                                                            monkeypatch):
    make_trainer = trainer_factory(planned_workspace, monkeypatch)
    trainer = _built(make_trainer, nnUNetTrainerDeepCoTraining, False)
    trainer.current_epoch = trainer.num_epochs - 1
    marker = {id(trainer.network): 7.0, id(trainer.peer_network): -7.0}  # what each network's attack returns
    classes = trainer.label_manager.num_segmentation_heads

    def marked_attack(network, images, labels, *args):
        logits = torch.full((images.shape[0], classes, *images.shape[2:]), marker[id(network)])
        return torch.full_like(images, marker[id(network)]), logits

    seen, targets = {}, []
    monkeypatch.setattr(dct, "fgsm_example", marked_attack)
    monkeypatch.setattr(dct, "adversarial_kl", lambda output, clean: targets.append(float(clean.mean())) or
                        (output.float() * 0).sum())
    for name, network in (("first", trainer.network), ("second", trainer.peer_network)):
        network.register_forward_pre_hook(lambda module, inputs, name=name: seen.setdefault(name, inputs[0]))
    trainer.train_step(synthetic_batch(trainer, trainer.batch_size))
    n = trainer.batch_size
    assert seen["first"].shape[0] == seen["second"].shape[0] == 3 * n  # own labelled, second batch, adversarial
    assert torch.all(seen["first"][2 * n:] == -7.0) and torch.all(seen["second"][2 * n:] == 7.0)
    assert targets == [-7.0, 7.0]  # the first network matches the second's clean prediction, and back


def _train(ws, trainer: str, log: str, extra=(), **kwargs):
    command = ["nnUNetv2_train", "991", "2d", "all", "-tr", trainer, "-device", "cpu", *extra]
    return ws.run(command, log, **kwargs)


def _unsupervised_losses(log: str) -> list:
    return [float(v) for v in re.findall(r"unsupervised loss: ([-0-9.naif]+)", log)]


def test_bcp_draws_unlabelled_images_after_its_labelled_quarter_and_continues_a_model(planned_workspace):
    ws = planned_workspace
    log = _train(ws, "nnUNetTrainerBCP_test", "bcp.log").log
    assert f"epoch 0: {LABELLED_LINE}" in log and f"epoch 1: {UNLABELLED_LINE}" in log
    assert "online teacher: an EMA of the network from epoch 1 on" in log
    losses = _unsupervised_losses(log)
    assert len(losses) == 4 and all(0 < v < 100 for v in losses), losses
    # the warm start continues that model (same dataset, plans and network), so that the shared workspace gets no
    # nnUNetTrainer_test model: another test needs it missing
    start = os.path.join(ws.results_folder("nnUNetTrainerBCP_test"), "checkpoint_final.pth")
    warm = _train(ws, "nnUNetTrainerBCPWarmStart_test", "bcp_warm.log",
                  env=dict(ws.env, DUALUNC_WARM_START_CHECKPOINT=start)).log
    assert "warm start: weights loaded from" in warm and f"epoch 0: {UNLABELLED_LINE}" in warm
    assert os.path.isfile(os.path.join(ws.results_folder("nnUNetTrainerBCPWarmStart_test"), "checkpoint_final.pth"))


def test_st_plus_plus_ranks_by_stability_and_trains_its_stages(planned_workspace):
    ws = planned_workspace
    log = _train(ws, "nnUNetTrainerSTPlusPlus_test", "st_plus_plus.log").log
    fold = ws.results_folder("nnUNetTrainerSTPlusPlus_test")
    settings = load_json(ranking_settings_path(sample_ranking_path(fold)))
    assert settings["ranking_score"] == "prediction instability (ST++)"
    assert "phase 'stage1': 3 pseudo-labelled cases in use" in log and "phase 'stage2': 6 pseudo-labelled" in log
    assert len(_unsupervised_losses(log)) == 2 and os.path.isfile(os.path.join(fold, "checkpoint_final.pth"))


def test_killed_mean_teacher_resumes_with_its_teacher_and_update_count(planned_workspace, tmp_path):
    ws = planned_workspace
    trainer = "nnUNetTrainerMeanTeacher_kill"
    markers = tmp_path / "markers"
    markers.mkdir()
    env = dict(ws.env, DUALUNC_TEST_KILL_POINTS="2", DUALUNC_TEST_KILL_MARKERS=str(markers))
    killed = _train(ws, trainer, "mean_teacher_killed.log", env=env, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.log[-3000:]
    assert f"epoch 0: {UNLABELLED_LINE}" in killed.log
    fold = ws.results_folder(trainer)
    saved = torch.load(os.path.join(fold, "checkpoint_latest.pth"), map_location="cpu", weights_only=False)
    assert saved["current_epoch"] == 2 and saved[TEACHER_UPDATES_CHECKPOINT_KEY] == 4  # 2 epochs of 2 steps

    resumed = _train(ws, trainer, "mean_teacher_resumed.log", extra=["--c"], env=env).log
    assert "online teacher restored from the checkpoint" in resumed and "online teacher: an EMA" not in resumed
    final = torch.load(os.path.join(fold, "checkpoint_final.pth"), map_location="cpu", weights_only=False)
    assert final[TEACHER_UPDATES_CHECKPOINT_KEY] == 8
    teacher, student = final[TEACHER_CHECKPOINT_KEY], final["network_weights"]
    assert any(not torch.equal(teacher[k], student[k]) for k in student)
