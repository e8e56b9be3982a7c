"""End to end through nnU-Net's real commands on a tiny synthetic dataset:
plan_and_preprocess -> nnUNetv2_train -tr nnUNetTrainerDualUnc_test -> nnUNetv2_predict -> export -> stock predict.
"""
import json
import math
import os
import re

import numpy as np
import SimpleITK as sitk
import torch

from helpers import folder_checksums
from conftest import TINY_PRESET
from nnunetv2_dualunc.method.ranking import RELIABLE, read_ranking
from nnunetv2_dualunc.run_layout import SAMPLE_RANKING_FILE

TRAINER = "nnUNetTrainerDualUnc_test"  # tests/ext_trainers: 2 + 1 + 1 epochs of 2 iterations, K = 2


def _phase_entries(log: str):
    return re.findall(r"entering phase '(\w+)' at epoch (\d+)", log)


def _predicted_labels(folder):
    files = sorted(f for f in os.listdir(folder) if f.endswith(".nii.gz"))
    return files, set(np.unique(np.concatenate([sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(folder, f))).ravel()
                                                for f in files])).tolist())


def test_train_predict_export(planned_workspace, tmp_path):
    ws = planned_workspace
    raw_before = folder_checksums(ws.raw_dataset)
    train = ws.run(["nnUNetv2_train", "991", "2d", "all", "-tr", TRAINER, "-device", "cpu"], "train_full.log")
    fold = ws.results_folder(TRAINER)

    # Algorithm 1 ran in order, each phase once, at the scheduled epochs
    assert _phase_entries(train.log) == [("pretrain", "0"), ("stage1", "2"), ("stage2", "3")]
    for stage in ("stage1", "stage2"):  # the training log says which classes the pseudo-labels contain
        assert re.search(rf"pseudo-labels \({stage}\): foreground classes per pseudo-labelled case \(of \d+\): "
                         rf"\w+ in \d+", train.log)
    assert os.path.isfile(os.path.join(fold, "checkpoint_final.pth"))
    # the run's pictures beside nnU-Net's progress.png: valid PNG files (their pixels are not checked)
    for picture in ("progress.png", "progress_semi_supervised.png", "unlabelled_ranking.png"):
        with open(os.path.join(fold, picture), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", picture
    logged = torch.load(os.path.join(fold, "checkpoint_final.pth"), map_location="cpu", weights_only=False)["logging"]
    assert len(logged["mean_kl"]) == len(logged["train_losses"]) == 4  # one value per epoch, NaN before stage 1
    assert [math.isnan(v) for v in logged["mean_kl"]] == [True, True, False, False]
    assert torch.load(os.path.join(fold, "checkpoint_final.pth"), map_location="cpu",
                      weights_only=False)["current_epoch"] == 4

    # ranking: every unlabelled case once, ranks 1..n by ascending score, first half reliable
    ranking = read_ranking(os.path.join(fold, SAMPLE_RANKING_FILE))
    n = TINY_PRESET["n_unlabelled"]
    assert sorted(r.case for r in ranking) == [f"syn_u_{i:03d}" for i in range(n)]
    assert [r.rank for r in ranking] == list(range(1, n + 1))
    assert [r.score for r in ranking] == sorted(r.score for r in ranking)
    reliable = [r.case for r in ranking if r.subset == RELIABLE]
    assert reliable == [r.case for r in ranking[: n // 2]]

    # pseudo-labels: stage 1 = reliable half (teacher), stage 2 = all cases (student)
    for stage, cases, epoch in (("stage1", reliable, 2), ("stage2", [r.case for r in ranking], 3)):
        manifest = json.load(open(os.path.join(fold, "pseudo_labels", stage, "manifest.json")))
        assert sorted(manifest["cases"]) == sorted(cases)
        assert manifest["weights_epoch"] == epoch and manifest["fold"] == "all" and manifest["configuration"] == "2d"
    assert sorted(os.listdir(os.path.join(fold, "snapshots"))) == [
        "weights_after_epoch_0001.pth", "weights_after_epoch_0002.pth", "weights_after_epoch_0003.pth"]

    # nnU-Net's own predictor with the plugin's trainer (main decoder only)
    images = os.path.join(ws.raw_dataset, "imagesTs")
    predicted = str(tmp_path / "pred")
    ws.run(["nnUNetv2_predict", "-i", images, "-o", predicted, "-d", "991", "-c", "2d", "-f", "all", "-tr", TRAINER,
            "-device", "cpu", "--disable_tta"], "predict.log")
    files, labels = _predicted_labels(predicted)
    assert files == ["syn_t_000.nii.gz", "syn_t_001.nii.gz"]
    assert labels <= {0, 1, 2, 3}

    # uncertainty maps: nnUNetv2_predict's segmentation, plus a KL map per case in the image's geometry, ranked
    uncertain = str(tmp_path / "uncertainty")
    ws.run(["nnunetv2_dualunc", "predict-uncertainty", "-i", images, "-o", uncertain, "-d", "991", "-c", "2d", "-f",
            "all", "-tr", TRAINER, "-device", "cpu", "--disable_tta", "-ref", os.path.join(ws.raw_dataset, "labelsTs")],
           "uncertainty.log")
    with open(os.path.join(uncertain, "uncertainty_overview.png"), "rb") as f:  # a valid picture; pixels unchecked
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    for f in files:
        case = f[: -len(".nii.gz")]
        segmentation = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(uncertain, f)))
        assert (segmentation == sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(predicted, f)))).mean() > 0.99
        kl_map = sitk.ReadImage(os.path.join(uncertain, f"{case}_uncertainty.nii.gz"))
        image = sitk.ReadImage(os.path.join(images, f"{case}_0000.nii.gz"))
        assert kl_map.GetSize() == image.GetSize() and kl_map.GetOrigin() == image.GetOrigin()
        assert kl_map.GetSpacing() == image.GetSpacing() and kl_map.GetDirection() == image.GetDirection()
        kl = sitk.GetArrayFromImage(kl_map)
        assert kl.dtype == np.float32 and kl.min() >= 0 and kl.max() > 0
    ranked = [line.split("\t") for line in open(os.path.join(uncertain, "uncertainty_ranking.tsv")).read().splitlines()]
    assert ranked[0][:2] == ["rank", "case"] and sorted(row[1] for row in ranked[1:]) == ["syn_t_000", "syn_t_001"]

    # exported plain model: predicted by nnU-Net WITHOUT the plugin's trainers on the path
    exported = str(tmp_path / "exported")
    export = ws.run(["nnunetv2_dualunc", "export", "-d", "991", "-c", "2d", "-tr", TRAINER, "-f", "all",
                     "-o", exported], "export.log")
    model_folder = export.log.strip().splitlines()[-1]
    assert os.path.basename(model_folder) == "nnUNetTrainer__nnUNetPlans__2d"
    stock_env = {k: v for k, v in ws.env.items() if k != "nnUNet_extTrainer"}
    predicted_stock = str(tmp_path / "pred_stock")
    ws.run(["nnUNetv2_predict_from_modelfolder", "-i", images, "-o", predicted_stock, "-m", model_folder, "-f", "all",
            "-device", "cpu", "--disable_tta"], "predict_stock.log", env=stock_env)
    for f in files:
        plugin = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(predicted, f)))
        stock = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(predicted_stock, f)))
        assert (plugin == stock).mean() > 0.99  # same weights; tiles are summed in fp16 by nnU-Net
    assert folder_checksums(ws.raw_dataset) == raw_before  # training, prediction and export never touch raw data


def test_copy_paste_with_an_unmixed_finish_stops_mixing_for_the_last_epoch(planned_workspace):
    """Through nnUNetv2_train: copy-paste mixes in stage 1 and stage 2's first epoch, not in its last (0.5 of 2)."""
    trainer = "nnUNetTrainerDualUncCopyPasteUnmixedFinish_test"
    train = planned_workspace.run(["nnUNetv2_train", "991", "2d", "all", "-tr", trainer, "-device", "cpu"],
                                  "train_unmixed_finish.log")
    fold = planned_workspace.results_folder(trainer)
    log = open(next(os.path.join(fold, f) for f in os.listdir(fold) if f.startswith("training_log"))).read()
    assert "unmixed from epoch 4" in log
    steps = set(re.findall(r"copy-paste step at epoch (\d+): mixes (\w+)", log))
    assert steps == {("2", "True"), ("3", "True"), ("4", "False")}, train.log


def test_3d_fullres_runs_every_phase(planned_workspace_3d):
    ws = planned_workspace_3d
    train = ws.run(["nnUNetv2_train", "992", "3d_fullres", "all", "-tr", TRAINER, "-device", "cpu"], "train_3d.log")
    assert _phase_entries(train.log) == [("pretrain", "0"), ("stage1", "2"), ("stage2", "3")]
    fold = ws.results_folder(TRAINER, "3d_fullres")
    assert len(read_ranking(os.path.join(fold, SAMPLE_RANKING_FILE))) == 4
    checkpoint = torch.load(os.path.join(fold, "checkpoint_final.pth"), map_location="cpu", weights_only=False)
    # the dual network really is 3D: the auxiliary decoder's convolutions have 5-D kernels
    aux_kernels = [v for k, v in checkpoint["network_weights"].items()
                   if k.startswith("aux_decoder.") and k.endswith("weight") and v.ndim > 1]
    assert aux_kernels and all(v.ndim == 5 for v in aux_kernels)


def test_progress_picture_takes_runs_without_second_batch_values_and_the_ranking_histogram_its_cut(tmp_path):
    from nnunetv2_dualunc.plots import plot_ranking_histogram, plot_semi_supervised_progress

    nan = float("nan")
    progress, histogram = str(tmp_path / "progress.png"), str(tmp_path / "ranking.png")
    plot_semi_supervised_progress({"train_losses": [1.0, 0.8, 1.2], "unsupervised_losses": [nan, nan, 0.5],
                                   "mean_kl": [nan], "mean_fg_dice": [0.2, 0.4, 0.5]},
                                  [(0, "pretrain"), (2, "stage1")], progress)
    plot_ranking_histogram([0.3, 0.1, 0.2, 0.4, 0.05], 3, histogram)
    for picture in (progress, histogram):
        with open(picture, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(tmp_path)) == ["progress.png", "ranking.png"]  # no temporary file left
