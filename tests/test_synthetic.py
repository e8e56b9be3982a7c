"""Synthetic semi-supervised dataset writer, the small Dice evaluation and the demo's cheap plumbing (no training)."""
import importlib.util
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import TINY_PRESET
from nnunetv2_dualunc import demo
from nnunetv2_dualunc.data.synthetic import DEMO_PRESET, LABELS, dataset_name, synthetic_case, write_synthetic_dataset
from nnunetv2_dualunc.demo import format_dice_table
from nnunetv2_dualunc.nnunet_commands import nnunet_environment, trainer_folder, train_command
from nnunetv2_dualunc.evaluation.dice import dice_per_class
from nnunetv2_dualunc.evaluation.evaluate_folders import EvaluationInputError

FOREGROUND = [v for v in LABELS.values() if v != 0]


def _read(filename: str) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(filename))


def _files(folder: str) -> list:
    return sorted(os.listdir(folder))


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> str:
    return write_synthetic_dataset(str(tmp_path_factory.mktemp("raw")), 990, seed=0, **TINY_PRESET)


def test_dataset_json_describes_the_labelled_cases(tiny_dataset):
    assert os.path.basename(tiny_dataset) == dataset_name(990) == "Dataset990_SyntheticSSL"
    with open(os.path.join(tiny_dataset, "dataset.json")) as f:
        dataset_json = json.load(f)
    assert dataset_json["channel_names"] == {"0": "MRI"}
    assert dataset_json["labels"] == {"background": 0, "organ": 1, "wall": 2, "lesion": 3}
    assert dataset_json["numTraining"] == TINY_PRESET["n_labelled"]
    assert dataset_json["file_ending"] == ".nii.gz"


def test_raw_layout_follows_nnunet_naming(tiny_dataset):
    images_tr = _files(os.path.join(tiny_dataset, "imagesTr"))
    labels_tr = _files(os.path.join(tiny_dataset, "labelsTr"))
    assert len(images_tr) == TINY_PRESET["n_labelled"]
    assert all(f.endswith("_0000.nii.gz") for f in images_tr)
    assert [f.replace("_0000.nii.gz", ".nii.gz") for f in images_tr] == labels_tr

    unlabelled = _files(os.path.join(tiny_dataset, "imagesUnlabeled"))
    assert len(unlabelled) == TINY_PRESET["n_unlabelled"]
    assert all(f.endswith("_0000.nii.gz") for f in unlabelled)
    # images only: no label file for an unlabelled case anywhere in the dataset
    unlabelled_ids = {f[:-len("_0000.nii.gz")] for f in unlabelled}
    every_label_file = labels_tr + _files(os.path.join(tiny_dataset, "labelsTs"))
    assert not unlabelled_ids & {f[:-len(".nii.gz")] for f in every_label_file}

    images_ts = _files(os.path.join(tiny_dataset, "imagesTs"))
    labels_ts = _files(os.path.join(tiny_dataset, "labelsTs"))
    assert len(images_ts) == len(labels_ts) == TINY_PRESET["n_test"]
    assert [f.replace("_0000.nii.gz", ".nii.gz") for f in images_ts] == labels_ts
    # test references stay out of the training folders
    assert not set(labels_ts) & set(labels_tr)
    assert sorted(os.listdir(tiny_dataset)) == ["dataset.json", "imagesTr", "imagesTs", "imagesUnlabeled",
                                                "labelsTr", "labelsTs"]


def test_images_and_labels_share_shape_geometry_and_declared_labels(tiny_dataset):
    for name in _files(os.path.join(tiny_dataset, "labelsTr")):
        label_image = sitk.ReadImage(os.path.join(tiny_dataset, "labelsTr", name))
        image = sitk.ReadImage(os.path.join(tiny_dataset, "imagesTr", name.replace(".nii.gz", "_0000.nii.gz")))
        seg = sitk.GetArrayFromImage(label_image)
        assert seg.shape == tuple(TINY_PRESET["shape"])
        assert image.GetSize() == label_image.GetSize()
        assert image.GetSpacing() == label_image.GetSpacing() == (1.0, 1.0, 5.0)
        assert set(np.unique(seg)) <= set(LABELS.values())
        assert np.issubdtype(seg.dtype, np.integer)


def test_structures_are_present_and_intensity_ordered_in_most_cases():
    n = 20
    present = {label: 0 for label in FOREGROUND}
    wall_brighter_than_organ_brighter_than_background = 0
    for index in range(n):
        image, seg = synthetic_case(3, "labelled", index, DEMO_PRESET["shape"])
        for label in FOREGROUND:
            present[label] += bool(np.any(seg == label))
        means = [image[seg == label].mean() for label in (0, 1, 2)]
        wall_brighter_than_organ_brighter_than_background += means[2] > means[1] > means[0]
    assert all(count >= 0.9 * n for count in present.values()), present
    assert wall_brighter_than_organ_brighter_than_background >= 0.8 * n


def test_cases_differ_in_intensity_and_geometry():
    cases = [synthetic_case(0, "unlabelled", index, TINY_PRESET["shape"]) for index in range(6)]
    organ_sizes = {int((seg == 1).sum()) for _, seg in cases}
    background_levels = [float(np.median(image[seg == 0])) for image, seg in cases]
    assert len(organ_sizes) == 6
    assert max(background_levels) - min(background_levels) > 50.0


def test_cases_are_deterministic_per_seed_and_independent_of_split_sizes(tmp_path):
    first = write_synthetic_dataset(str(tmp_path / "a"), seed=5, n_labelled=2, n_unlabelled=1, n_test=1,
                                    shape=(2, 32, 32))
    second = write_synthetic_dataset(str(tmp_path / "b"), seed=5, n_labelled=3, n_unlabelled=2, n_test=1,
                                     shape=(2, 32, 32))
    other_seed = write_synthetic_dataset(str(tmp_path / "c"), seed=6, n_labelled=2, n_unlabelled=1, n_test=1,
                                         shape=(2, 32, 32))
    for relative in ("imagesTr/syn_l_000_0000.nii.gz", "labelsTr/syn_l_001.nii.gz",
                     "imagesUnlabeled/syn_u_000_0000.nii.gz", "labelsTs/syn_t_000.nii.gz"):
        assert np.array_equal(_read(os.path.join(first, relative)), _read(os.path.join(second, relative)))
        assert not np.array_equal(_read(os.path.join(first, relative)), _read(os.path.join(other_seed, relative)))
    # the three splits are different draws, not copies of each other
    assert not np.array_equal(synthetic_case(5, "labelled", 0, (2, 32, 32))[0],
                              synthetic_case(5, "unlabelled", 0, (2, 32, 32))[0])


def test_writer_rejects_unusable_settings(tmp_path):
    with pytest.raises(ValueError, match="height and width >= 32"):
        write_synthetic_dataset(str(tmp_path), shape=(2, 16, 16))
    with pytest.raises(ValueError, match="n_labelled"):
        write_synthetic_dataset(str(tmp_path), n_labelled=0)


def _write_case(folder, name: str, array: np.ndarray) -> None:
    os.makedirs(folder, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(array.astype(np.uint8)), os.path.join(folder, name))


@pytest.fixture
def dice_folders(tmp_path):
    reference, prediction = str(tmp_path / "ref"), str(tmp_path / "pred")
    ref_a = np.zeros((1, 4, 4), np.uint8)
    ref_a[0, 0, :4] = 1                       # 4 voxels of class 1
    ref_a[0, 3, :2] = 2                       # 2 voxels of class 2, class 3 absent
    pred_a = np.zeros_like(ref_a)
    pred_a[0, 0, :3] = 1                      # 3 of the 4 right ...
    pred_a[0, 1, 0] = 1                       # ... plus one false positive -> 2*3/(4+4) = 0.75
    # class 2 missed entirely -> 0.0; class 3 empty in both -> 1.0
    ref_b = np.zeros((1, 4, 4), np.uint8)
    ref_b[0, 1:3, 1:3] = 1                    # class 1 matched exactly -> 1.0
    ref_b[0, 0, 0] = 3                        # class 3 matched exactly -> 1.0
    pred_b = ref_b.copy()
    pred_b[0, 3, 3] = 2                       # class 2 absent from the reference, predicted -> 0.0
    _write_case(reference, "a.nii.gz", ref_a)
    _write_case(prediction, "a.nii.gz", pred_a)
    _write_case(reference, "b.nii.gz", ref_b)
    _write_case(prediction, "b.nii.gz", pred_b)
    _write_case(prediction, "extra.nii.gz", pred_b)  # a prediction without reference is ignored
    return prediction, reference


def test_dice_per_class_matches_hand_computed_values(dice_folders):
    result = dice_per_class(*dice_folders, labels=[1, 2, 3], file_ending=".nii.gz")
    assert set(result["per_case"]) == {"a", "b"}
    assert result["per_case"]["a"] == {1: 0.75, 2: 0.0, 3: 1.0}
    assert result["per_case"]["b"] == {1: 1.0, 2: 0.0, 3: 1.0}
    assert result["mean_per_class"] == {1: 0.875, 2: 0.0, 3: 1.0}
    assert result["mean"] == pytest.approx(0.625)


def test_dice_names_a_missing_prediction(dice_folders):
    prediction, reference = dice_folders
    os.remove(os.path.join(prediction, "b.nii.gz"))
    with pytest.raises(EvaluationInputError, match=r"no prediction in .*pred: b\.nii\.gz"):
        dice_per_class(prediction, reference, [1, 2, 3], ".nii.gz")


def test_dice_table_lists_each_method_and_class():
    results = {"sup": {"mean_per_class": {1: 0.9, 2: 0.8, 3: 0.5}, "mean": 0.7333333},
               "ssl": {"mean_per_class": {1: 0.95, 2: 0.85, 3: 0.6}, "mean": 0.8}}
    lines = format_dice_table(results).splitlines()
    assert lines[0] == "| method | organ (1) | wall (2) | lesion (3) | mean |"
    assert lines[2] == "| sup | 0.9000 | 0.8000 | 0.5000 | 0.7333 |"
    assert lines[3] == "| ssl | 0.9500 | 0.8500 | 0.6000 | 0.8000 |"


def test_demo_entry_passes_arguments(monkeypatch):
    calls = []
    monkeypatch.setattr(demo, "run_demo", lambda output_dir, **kwargs: calls.append((output_dir, kwargs)))
    assert demo.demo_entry([]) == 0
    assert demo.demo_entry(["--output-dir", "/tmp/x", "--seed", "3", "--methods", "nnUNetTrainer_demo",
                            "--device", "cuda"]) == 0
    assert calls[0] == ("./dualunc_demo", {"seed": 0, "methods": list(demo.DEMO_METHODS), "verbose": False,
                                           "device": "cpu"})
    assert calls[1] == ("/tmp/x", {"seed": 3, "methods": ["nnUNetTrainer_demo"], "verbose": False,
                                   "device": "cuda"})


def test_spacing_of_the_synthetic_dataset_can_mimic_a_real_one(tmp_path):
    folder = write_synthetic_dataset(str(tmp_path), 994, n_labelled=1, n_unlabelled=1, n_test=0, shape=(2, 32, 40),
                                     spacing_zyx=(10.0, 1.5, 1.25))
    image = sitk.ReadImage(os.path.join(folder, "imagesTr", "syn_l_000_0000.nii.gz"))
    label = sitk.ReadImage(os.path.join(folder, "labelsTr", "syn_l_000.nii.gz"))
    assert image.GetSpacing() == label.GetSpacing() == (1.25, 1.5, 10.0)  # SimpleITK order: x, y, z
    assert sitk.GetArrayFromImage(image).shape == (2, 32, 40)


def test_demo_refuses_to_resume_a_folder_made_with_other_settings(tmp_path):
    demo._record_demo_config(str(tmp_path), {"seed": 0, "n_labelled": 6})
    demo._record_demo_config(str(tmp_path), {"seed": 0, "n_labelled": 6})  # same settings: resume is fine
    with pytest.raises(ValueError, match="another --output-dir"):
        demo._record_demo_config(str(tmp_path), {"seed": 1, "n_labelled": 6})


def test_demo_environment_points_nnunet_at_the_demo_folders_and_trainers(tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_extTrainer", "/somewhere/else")
    env = nnunet_environment(str(tmp_path), num_processes=2)
    assert env["nnUNet_raw"] == os.path.join(str(tmp_path), "nnUNet_raw")
    assert env["nnUNet_results"] == os.path.join(str(tmp_path), "nnUNet_results")
    assert env["nnUNet_compile"] == "false"
    folders = env["nnUNet_extTrainer"].split(os.pathsep)
    assert folders == [trainer_folder(), "/somewhere/else"]
    assert os.path.isfile(os.path.join(folders[0], "dualunc_trainers.py"))


def test_nnunet_finds_every_plugin_trainer_in_the_trainer_folder():
    """nnU-Net's own lookup, in the folder nnUNet_extTrainer gets, returns the library's class for every name."""
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class

    from nnunetv2_dualunc.training import demo_trainers
    thin_file = os.path.join(trainer_folder(), "dualunc_trainers.py")
    spec = importlib.util.spec_from_file_location("thin_trainers", thin_file)
    thin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(thin)
    assert thin.nnUNetTrainer_demo is demo_trainers.nnUNetTrainer_demo
    for name in thin.__all__:
        found = recursive_find_python_class(trainer_folder(), name, current_module=None)
        assert found is not None and found.__name__ == name and found.__module__.startswith("nnunetv2_dualunc.")


def test_demo_methods_take_the_same_number_of_gradient_steps():
    from nnunetv2_dualunc.training import demo_trainers

    dualunc = demo_trainers.nnUNetTrainerDualUnc_demo
    assert dualunc.pretrain_epochs + dualunc.stage1_epochs + dualunc.stage2_epochs == demo_trainers.DEMO_EPOCHS
    assert dualunc.iterations_per_epoch == demo_trainers.DEMO_ITERATIONS_PER_EPOCH
    # the demo's comparison: the recommended trainer and the control both continue the supervised demo model, for
    # the same phases
    start = getattr(demo_trainers, demo.DEMO_START_MODEL)
    control, recommended = getattr(demo_trainers, demo.DEMO_CONTROL), getattr(demo_trainers, demo.DEMO_RECOMMENDED)
    assert start is demo_trainers.nnUNetTrainer_demo and control is demo_trainers.nnUNetTrainerContinued_demo
    # the demo shows the README's recommended trainer at the demo's budget
    from nnunetv2_dualunc.training.dualunc_plus import nnUNetTrainerDualUncPlus
    assert recommended is demo_trainers.nnUNetTrainerDualUncPlus_demo
    assert issubclass(recommended, nnUNetTrainerDualUncPlus)
    assert demo.DEMO_METHODS == (demo.DEMO_START_MODEL, demo.DEMO_CONTROL, demo.DEMO_COPY_PASTE,
                                 demo.DEMO_RECOMMENDED)
    copy_paste = getattr(demo_trainers, demo.DEMO_COPY_PASTE)  # supervised copy-paste for the same steps
    assert copy_paste.lr_phases == control.lr_phases and copy_paste.warm_start_trainer == control.warm_start_trainer
    for warm in (recommended, demo_trainers.nnUNetTrainerDualUncWarmStart_demo):
        phases = (warm.pretrain_epochs, warm.stage1_epochs, warm.stage2_epochs)
        assert phases == control.lr_phases == demo_trainers.WARM_PHASES
        assert warm.iterations_per_epoch == demo_trainers.DEMO_ITERATIONS_PER_EPOCH
        assert warm.warm_start_trainer == control.warm_start_trainer == start.__name__


def test_demo_reports_the_gain_from_the_unlabelled_images():
    results = {demo.DEMO_START_MODEL: {"mean": 0.80}, demo.DEMO_CONTROL: {"mean": 0.88}, "warm_a": {"mean": 0.91},
               "warm_b": {"mean": 0.87}}
    gains = demo.unlabelled_gains(results)
    assert gains.keys() == {"warm_a", "warm_b"}
    assert gains["warm_a"] == pytest.approx(0.03) and gains["warm_b"] == pytest.approx(-0.01)
    assert demo.unlabelled_gains({"warm_a": {"mean": 0.91}}) == {}
    # a method that continues another method's model has two runs of steps: reported against that model instead
    chain = {**results, "chained": {"mean": 0.95}}
    continues = {"warm_a": demo.DEMO_START_MODEL, "chained": "warm_a"}
    assert demo.unlabelled_gains(chain, continues=continues).keys() == {"warm_a", "warm_b"}
    chained = demo.chained_gains(chain, continues)
    assert chained.keys() == {"chained"} and chained["chained"][0] == "warm_a"
    assert chained["chained"][1] == pytest.approx(0.04)
    line = demo.format_gains(chain, demo.unlabelled_gains(chain, continues=continues), chained).splitlines()[3]
    assert line == "chained over warm_a, the model it continues (its own steps on top): +4.0"


def test_demo_last_screen_splits_the_gain_and_names_the_pictures_and_next_commands():
    results = {demo.DEMO_START_MODEL: {"mean": 0.80}, demo.DEMO_CONTROL: {"mean": 0.88},
               demo.DEMO_COPY_PASTE: {"mean": 0.90}, demo.DEMO_RECOMMENDED: {"mean": 0.915}}
    lines = demo.format_gains(results, demo.unlabelled_gains(results)).splitlines()
    assert lines[1:3] == [f"  {demo.DEMO_COPY_PASTE}: +2.0", f"  {demo.DEMO_RECOMMENDED}: +3.5"]
    assert lines[3].startswith("What the unlabelled images add") and lines[3].endswith(": +1.5")
    assert demo.format_gains({demo.DEMO_RECOMMENDED: {"mean": 0.9}}, {}) == ""
    screen = demo.format_next_steps({"m": ["/x/overview.png", "/x/scatter.png"]})
    assert "  /x/overview.png" in screen.splitlines() and "-tr nnUNetTrainerDualUncPlusFromCopyPaste" in screen
    assert screen.index("-tr nnUNetTrainerCopyPasteWarmStart") < screen.index("-tr nnUNetTrainerDualUncPlusFromCopyPaste")


def test_uncertainty_ranking_is_shown_beside_each_cases_dice(tmp_path):
    ranking = tmp_path / "uncertainty_ranking.tsv"
    ranking.write_text("rank\tcase\tmean_kl_foreground\tmean_kl_image\tforeground_voxels\n"
                       "1\tb\t0.5\t0.1\t10\n2\tc\t0.2\t0.05\t10\n3\ta\t0.1\t0.01\t10\n")
    case_dice = {"a": {1: 0.9, 2: 1.0}, "b": {1: 0.5, 2: 0.6}, "c": {1: 0.7, 2: 0.8}}
    table, rho = demo.format_uncertainty_ranking(str(ranking), case_dice, str(tmp_path / "scatter.png"))
    assert (tmp_path / "scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert table.splitlines()[2] == "| 1 | b | 0.5 | 0.5500 |"
    assert table.splitlines()[4] == "| 3 | a | 0.1 | 0.9500 |"
    assert rho == pytest.approx(-1.0)  # most uncertain = worst segmented, in this order


@pytest.mark.parametrize("checkpoint", [None, "latest", "best", "final"])
def test_train_command_continues_an_interrupted_run(tmp_path, checkpoint):
    if checkpoint:
        (tmp_path / f"checkpoint_{checkpoint}.pth").write_bytes(b"")
    command = train_command(990, "2d", "all", "nnUNetTrainer_demo", "cpu", str(tmp_path))
    assert command[:7] == ["nnUNetv2_train", "990", "2d", "all", "-tr", "nnUNetTrainer_demo", "-device"]
    assert ("--c" in command) == (checkpoint is not None)
