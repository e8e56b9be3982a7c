"""Ranking (Eq. 1) and pseudo-labelling read only saved weights, so on CPU they repeat bit for bit: two fresh
processes given the same snapshot files write byte-identical ranking tables and identical pseudo-labels.

rank_and_pseudo_label_from_snapshots is also the "clean run" reference of the resume tests."""
import json
import os
import subprocess
import sys
from typing import Dict

import numpy as np
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_dualunc.data.pseudo_labels import completed_cases
from nnunetv2_dualunc.method.ranking import read_ranking
from nnunetv2_dualunc.run_layout import PSEUDO_LABEL_MANIFEST_FILE, SAMPLE_RANKING_FILE, pseudo_label_folder
from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc

TRAINER = "nnUNetTrainerDualUnc_test"  # tests/ext_trainers: K = 2 snapshots after epochs 1 and 2, student after 3
WEIGHT_EPOCHS = (1, 2, 3)

# Algorithm 1's steps between pre-training and stage 2, uninterrupted, in a fresh process: the trainer ranks the
# unlabelled cases from the snapshot files and writes both pseudo-label sets, exactly as on entering each phase.
_RANK_AND_LABEL = """
import multiprocessing, os, shutil, sys
import torch
from nnunetv2.run.run_training import get_trainer_from_args
from nnunetv2_dualunc.method.schedule import Phase
from nnunetv2_dualunc.run_layout import SNAPSHOT_FOLDER

dataset, configuration, trainer_name, snapshots = sys.argv[1:]
torch.set_num_threads(multiprocessing.cpu_count())  # what nnUNetv2_train -device cpu sets
trainer = get_trainer_from_args(dataset, configuration, "all", trainer_name, device=torch.device("cpu"))
shutil.copytree(snapshots, os.path.join(trainer.output_folder, SNAPSHOT_FOLDER))
trainer.initialize()
trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()  # sets the mirroring axes, as on_train_start
trainer._prepare_unlabelled_data()
for phase in (Phase.STAGE1, Phase.STAGE2):
    trainer.current_epoch = trainer.stage_schedule.phase_start(phase)
    trainer._enter_phase(phase)
trainer._stop_unlabelled_loader()
print(trainer.output_folder)
"""


def rank_and_pseudo_label_from_snapshots(ws, trainer: str, snapshots: str, results_root: str) -> str:
    """Run ranking + both pseudo-labelling steps of `trainer` from the weights in `snapshots`, in a fresh process
    whose nnUNet_results is results_root; returns the fold folder holding the ranking and pseudo-labels."""
    env = dict(ws.env, nnUNet_results=str(results_root))
    proc = subprocess.run([sys.executable, "-c", _RANK_AND_LABEL, ws.dataset, "2d", trainer, str(snapshots)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def stored_pseudo_labels(fold: str, stage: str) -> Dict[str, tuple]:
    """case -> (image, pseudo-label, class locations) as nnU-Net's data loader would read them."""
    folder = pseudo_label_folder(fold, stage)
    cases = completed_cases(folder)
    dataset = nnUNetDatasetBlosc2(folder, cases)
    stored = {}
    for case in cases:
        data, seg, _, properties = dataset.load_case(case)
        stored[case] = (np.asarray(data[:]), np.asarray(seg[:]), properties["class_locations"])
    return stored


def assert_same_pseudo_labels(fold: str, reference_fold: str, stage: str) -> None:
    manifest = json.load(open(os.path.join(pseudo_label_folder(fold, stage), PSEUDO_LABEL_MANIFEST_FILE)))
    reference_manifest = json.load(open(os.path.join(pseudo_label_folder(reference_fold, stage),
                                                     PSEUDO_LABEL_MANIFEST_FILE)))
    assert manifest["cases"] == reference_manifest["cases"]
    found, expected = stored_pseudo_labels(fold, stage), stored_pseudo_labels(reference_fold, stage)
    assert sorted(found) == sorted(expected) == manifest["cases"]
    for case, (data, label, locations) in expected.items():
        assert np.array_equal(found[case][0], data), f"{stage}/{case}: image differs"
        assert found[case][1].dtype == label.dtype and np.array_equal(found[case][1], label), \
            f"{stage}/{case}: pseudo-label differs"
        assert found[case][2].keys() == locations.keys()
        assert all(np.array_equal(found[case][2][k], v) for k, v in locations.items())


def _write_seeded_snapshots(ws, folder: str) -> None:
    """Randomly initialised dual-decoder weights, one seed per snapshot: distinct networks, so Eq. 1 is nonzero."""
    preprocessed = os.path.join(ws.env["nnUNet_preprocessed"], ws.dataset)
    plans_manager = PlansManager(load_json(os.path.join(preprocessed, "nnUNetPlans.json")))
    dataset_json = load_json(os.path.join(preprocessed, "dataset.json"))
    configuration = plans_manager.get_configuration("2d")
    channels = determine_num_input_channels(plans_manager, configuration, dataset_json)
    heads = plans_manager.get_label_manager(dataset_json).num_segmentation_heads
    os.makedirs(folder)
    for epoch in WEIGHT_EPOCHS:
        torch.manual_seed(epoch)
        network = nnUNetTrainerDualUnc.build_network_architecture(plans_manager, configuration, channels, heads)
        torch.save({"network_weights": network.state_dict(), "epoch": epoch},
                   os.path.join(folder, f"weights_after_epoch_{epoch:04d}.pth"))


def test_ranking_and_pseudo_labels_repeat_exactly_from_the_same_snapshots(planned_workspace, tmp_path):
    snapshots = str(tmp_path / "snapshots")
    _write_seeded_snapshots(planned_workspace, snapshots)
    first = rank_and_pseudo_label_from_snapshots(planned_workspace, TRAINER, snapshots, tmp_path / "first")
    second = rank_and_pseudo_label_from_snapshots(planned_workspace, TRAINER, snapshots, tmp_path / "second")
    assert first != second

    table = open(os.path.join(first, SAMPLE_RANKING_FILE), "rb").read()
    assert open(os.path.join(second, SAMPLE_RANKING_FILE), "rb").read() == table  # scores written with repr: bitwise
    scores = [r.score for r in read_ranking(os.path.join(first, SAMPLE_RANKING_FILE))]
    assert len(scores) == 6 and min(scores) > 0 and len(set(scores)) == 6  # a real ordering, not all ties
    for stage in ("stage1", "stage2"):
        assert_same_pseudo_labels(second, first, stage)


def test_mirrored_pseudo_labels_change_the_labels_not_the_ranking(planned_workspace, tmp_path):
    """pseudo_label_mirroring: nnU-Net's test-time mirroring when labelling (the trainer's mirroring axes reach the
    predictor: without them nnU-Net silently mirrors nothing); Eq. 1 is computed without it either way."""
    snapshots = str(tmp_path / "snapshots")
    _write_seeded_snapshots(planned_workspace, snapshots)
    plain = rank_and_pseudo_label_from_snapshots(planned_workspace, TRAINER, snapshots, tmp_path / "plain")
    mirrored = rank_and_pseudo_label_from_snapshots(planned_workspace, "nnUNetTrainerDualUncMirroredLabels_test",
                                                    snapshots, tmp_path / "mirrored")
    assert (open(os.path.join(mirrored, SAMPLE_RANKING_FILE), "rb").read()
            == open(os.path.join(plain, SAMPLE_RANKING_FILE), "rb").read())
    for stage in ("stage1", "stage2"):
        found, expected = stored_pseudo_labels(mirrored, stage), stored_pseudo_labels(plain, stage)
        assert sorted(found) == sorted(expected)
        assert any(not np.array_equal(found[c][1], expected[c][1]) for c in expected), f"{stage}: not mirrored"
