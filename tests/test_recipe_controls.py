"""Training without any unlabelled image: the supervised copy-paste trainers and the recipe-without-unlabelled twin
of a semi-supervised trainer (``second_batch_from_labelled``), on the hardest small dataset a user may bring (one
labelled case, nnU-Net's ignore label, no imagesUnlabeled/ at all), end to end through nnUNetv2_train."""
import os
import re
import shutil
from os.path import join

from conftest import NnUNetWorkspace, _base_env
from helpers import add_ignore_label
from nnunetv2_dualunc.data.synthetic import dataset_name, write_synthetic_dataset
from nnunetv2_dualunc.run_layout import pseudo_label_folder, sample_ranking_path

DATASET_ID = 995
IGNORE = 4  # the synthetic labels are 0..3; nnU-Net wants the ignore label highest
SECOND_BATCH_LINE = "second batch from the labelled training cases"


def _one_labelled_case_with_ignore_label(root: str) -> NnUNetWorkspace:
    env = _base_env(root)
    raw = write_synthetic_dataset(env["nnUNet_raw"], DATASET_ID, n_labelled=1, n_unlabelled=0, n_test=0,
                                  shape=(2, 32, 32), seed=0)
    shutil.rmtree(join(raw, "imagesUnlabeled"))
    add_ignore_label(raw, IGNORE)
    ws = NnUNetWorkspace(root, env, dataset_name(DATASET_ID))
    ws.run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "-np", "1"], "plan.log",
           env=dict(env, nnUNet_n_proc_DA="1"))
    ws.env["nnUNet_n_proc_DA"] = "0"
    return ws


def _mixed_batch_losses(log: str) -> list:
    return [float(v) for v in re.findall(r"unsupervised loss: ([-0-9.naif]+)", log)]


def test_labelled_only_trainers_train_one_case_with_an_ignore_label_and_no_unlabelled_folder(tmp_path):
    ws = _one_labelled_case_with_ignore_label(str(tmp_path))
    train = ["nnUNetv2_train", str(DATASET_ID), "2d", "all", "-device", "cpu", "-tr"]
    ws.run(train + ["nnUNetTrainer_test"], "supervised.log")  # the model the warm starts continue

    for trainer, epochs_mixed in [("nnUNetTrainerCopyPaste_test", 2), ("nnUNetTrainerCopyPasteWarmStart_test", 4),
                                  ("nnUNetTrainerDualUncPlusRecipeOnly_test", 2)]:
        log = ws.run(train + [trainer], f"{trainer}.log").log
        fold = ws.results_folder(trainer)
        assert os.path.isfile(join(fold, "checkpoint_final.pth")), trainer
        assert SECOND_BATCH_LINE in log, trainer
        losses = _mixed_batch_losses(log)  # one line per epoch that trained with the mixed second batch
        assert len(losses) == epochs_mixed and all(0 < v < 100 for v in losses), (trainer, losses)
        # nothing unlabelled was looked for, ranked or pseudo-labelled
        assert not os.path.exists(sample_ranking_path(fold))
        assert not os.path.exists(pseudo_label_folder(fold, "stage1"))
    preprocessed = join(ws.env["nnUNet_preprocessed"], ws.dataset)
    assert not [name for name in os.listdir(preprocessed) if name.endswith("_unlabelled")]
    # the twin keeps its recipe's phases: labelled only while adapting, the second batch in stages 1 and 2
    twin_log = open(join(ws.root, "nnUNetTrainerDualUncPlusRecipeOnly_test.log")).read()
    assert "phase 'stage1': second batch from the labelled training cases" in twin_log
    assert "phase 'stage2': second batch from the labelled training cases" in twin_log


SMALL_DATASET_ID = 996


def _crop_case(raw: str, case: str, size: int) -> None:
    """Cut a labelled case (image and label) down to its first size x size pixels, geometry kept."""
    import SimpleITK as sitk

    for path in (join(raw, "imagesTr", f"{case}_0000.nii.gz"), join(raw, "labelsTr", f"{case}.nii.gz")):
        image = sitk.ReadImage(path)
        sitk.WriteImage(image[:size, :size], path)


def test_a_labelled_case_smaller_than_the_patch_trains_with_copy_paste_and_pseudo_labels(tmp_path):
    """nnU-Net pads a case smaller than the patch when it samples it; copy-paste then mixes the padded patch like any
    other with a pseudo-labelled one, end to end through the recommended trainer."""
    import SimpleITK as sitk
    from batchgenerators.utilities.file_and_folder_operations import load_json

    env = _base_env(str(tmp_path))
    raw = write_synthetic_dataset(env["nnUNet_raw"], SMALL_DATASET_ID, n_labelled=3, n_unlabelled=4, n_test=0,
                                  shape=(2, 48, 48), seed=0)
    small = sorted(f[: -len("_0000.nii.gz")] for f in os.listdir(join(raw, "imagesTr")))[0]
    _crop_case(raw, small, 12)
    ws = NnUNetWorkspace(str(tmp_path), env, dataset_name(SMALL_DATASET_ID))
    ws.run(["nnUNetv2_plan_and_preprocess", "-d", str(SMALL_DATASET_ID), "-c", "2d", "-np", "1"], "plan.log",
           env=dict(env, nnUNet_n_proc_DA="1"))
    ws.env["nnUNet_n_proc_DA"] = "0"
    patch = load_json(join(env["nnUNet_preprocessed"], ws.dataset, "nnUNetPlans.json"))[
        "configurations"]["2d"]["patch_size"]
    small_shape = sitk.ReadImage(join(raw, "imagesTr", f"{small}_0000.nii.gz")).GetSize()[:2]
    assert all(s < p for s, p in zip(small_shape, patch)), (small_shape, patch)  # the case really is smaller

    train = ["nnUNetv2_train", str(SMALL_DATASET_ID), "2d", "all", "-device", "cpu", "-tr"]
    ws.run(train + ["nnUNetTrainer_test"], "supervised.log")
    # the recommended trainer mixes each labelled patch, the padded small case's too, with a pseudo-labelled one (the
    # supervised copy-paste trainers mix labelled patches in the same function; the second run is left out for CI time)
    log = ws.run(train + ["nnUNetTrainerDualUncPlus_test"], "plus.log").log
    assert os.path.isfile(join(ws.results_folder("nnUNetTrainerDualUncPlus_test"), "checkpoint_final.pth"))
    assert _mixed_batch_losses(log)  # the mixed second batch trained
