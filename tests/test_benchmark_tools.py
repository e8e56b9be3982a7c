"""The benchmark scripts' log reading and the budget variants they train (no training here)."""
import json
import os
import shutil
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCHMARKS)
sys.path.insert(0, os.path.join(BENCHMARKS, "ext_trainers"))

import benchmark_trainers  # noqa: E402
import speed  # noqa: E402
from training_log import phase_timings, schedule_from_log  # noqa: E402

LOG = """\
2026-11-25 10:00:00.000000: Self-training schedule: pre-train 2, stage 1 1, stage 2 1 epochs; snapshots after epochs [1, 2]; 4 unlabelled cases
2026-11-25 10:00:00.500000: Epoch 0
2026-11-25 10:00:10.000000: Epoch time: 10.0 s
2026-11-25 10:00:10.500000: Epoch 1
2026-11-25 10:00:20.000000: Epoch time: 9.0 s
2026-11-25 10:00:20.500000: Epoch 2
2026-11-25 10:00:20.600000: === Algorithm 1: entering phase 'stage1' at epoch 2 ===
2026-11-25 10:00:21.000000: ranking 4 unlabelled cases with snapshots [1, 2]
2026-11-25 10:00:25.000000: ranking written to /x/unlabelled_ranking.tsv
2026-11-25 10:00:25.000000: pseudo-labelling 2 cases with the weights after epoch 2
2026-11-25 10:00:27.000000: phase 'stage1': 2 pseudo-labelled cases in use
2026-11-25 10:00:47.000000: Epoch time: 26.0 s
"""
LOG_RESUMED = """\
2026-11-25 11:00:00.000000: Epoch 3
2026-11-25 11:00:00.000000: === Algorithm 1: entering phase 'stage2' at epoch 3 ===
2026-11-25 11:00:00.000000: pseudo-labelling 4 cases with the weights after epoch 3
2026-11-25 11:00:03.000000: phase 'stage2': 4 pseudo-labelled cases in use
2026-11-25 11:00:25.000000: Epoch time: 24.0 s
2026-11-25 11:00:26.000000: Training done.
2026-11-25 11:00:36.000000: Mean Validation Dice:  0.5
"""


@pytest.fixture
def fold(tmp_path):
    (tmp_path / "training_log_2026_11_25_10_00_00.txt").write_text(LOG)
    (tmp_path / "training_log_2026_11_25_11_00_00.txt").write_text(LOG_RESUMED)
    (tmp_path / "debug.json").write_text(json.dumps({"num_iterations_per_epoch": "50"}))
    return str(tmp_path)


def test_phase_timings_add_up_over_resumed_logs(fold):
    t = phase_timings(fold)
    assert t["run_s"] == 47.0 + 36.0
    assert t["ranking_s"] == 4.0 and t["pseudo_labelling_s"] == 2.0 + 3.0
    # the ranking and pseudo-labelling at a phase's first epoch are not counted as that epoch's training
    assert t["epochs_pretrain_s"] == 19.0 and t["epochs_stage1_s"] == 20.0 and t["epochs_stage2_s"] == 21.0
    assert t["final_validation_s"] == 10.0
    assert t["epoch_s"] == {"pretrain": [10.0, 9.0], "stage1": [20.0], "stage2": [21.0]}
    assert t["ranking_and_pseudo_labelling_share"] == pytest.approx(9.0 / 83.0, abs=1e-4)
    assert schedule_from_log(fold) == {"pretrain": 2, "stage1": 1, "stage2": 1}


def test_ranking_share_extrapolates_training_to_the_default_schedule(fold):
    share = speed.ranking_share(fold)
    # per default epoch (250 iterations = 5x this run's 50): pretrain 9.5*5, stage1 20*5, stage2 21*5 seconds
    expected_training = (9.5 * 5 + 20 * 5 + 21 * 5) * 200
    assert share["extrapolated_default_schedule_training_s"] == pytest.approx(expected_training)
    assert share["extrapolated_default_schedule_share"] == pytest.approx(9.0 / (9.0 + expected_training), abs=1e-4)


def test_every_profile_gives_each_method_the_same_number_of_gradient_steps():
    for profile, (epochs, split, iterations, _) in benchmark_trainers.PROFILES.items():
        trainers = {m: getattr(benchmark_trainers, benchmark_trainers.trainer_name(m, profile))
                    for m in benchmark_trainers.METHODS}
        for method, trainer in trainers.items():
            if not hasattr(trainer, "pretrain_epochs"):  # supervised, supervised_continued: plain nnUNetTrainer
                continue
            assert trainer.pretrain_epochs + trainer.stage1_epochs + trainer.stage2_epochs == epochs
            assert trainer.iterations_per_epoch == iterations
        assert trainers["self_training"].stage1_epochs == 0
        assert (trainers["dualunc"].pretrain_epochs, trainers["dualunc"].stage1_epochs,
                trainers["dualunc"].stage2_epochs) == split


def test_gpu_budget_keeps_dualunc_within_the_minutes_given():
    import gpu_calibration

    dualunc = {"s_per_step": {"pretrain": 0.1, "stage1": 0.2, "stage2": 0.2},
               "timings": {"ranking_s": 50.0, "pseudo_labelling_s": 10.0}}
    budget = gpu_calibration.step_budget(dualunc, {"s_per_step": {"pretrain": 0.05}}, minutes=10)
    # half the steps in pre-training, a quarter in each stage: 0.15 s per step on average
    assert budget["dualunc_max_steps"] in (3599, 3600)  # floor of (600 - 60) / 0.15, up to float rounding
    assert budget["supervised_max_steps"] == int(600 / 0.05)
    assert "incomplete" in gpu_calibration.step_budget({"s_per_step": {"pretrain": 0.1}, "timings": {}}, None, 10)


def test_console_scripts_for_unpacked_wheels_run_only_as_main(tmp_path):
    import subprocess

    sys.path.insert(0, os.path.join(BENCHMARKS, "device"))
    from make_console_scripts import write_console_scripts

    (tmp_path / "fakepkg").mkdir()
    (tmp_path / "fakepkg" / "__init__.py").write_text("")
    (tmp_path / "fakepkg" / "cli.py").write_text("def main():\n    print('ran main')\n    return 3\n")
    (tmp_path / "fakepkg-1.0.dist-info").mkdir()
    (tmp_path / "fakepkg-1.0.dist-info" / "entry_points.txt").write_text(
        "[console_scripts]\nFake_Tool = fakepkg.cli:main\n")
    assert write_console_scripts(str(tmp_path)) == 1
    script = tmp_path / "bin" / "Fake_Tool"  # the name's case is kept
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    run = subprocess.run([str(script)], env=env, capture_output=True, text=True)
    assert run.returncode == 3 and run.stdout == "ran main\n"
    # imported under another name (as spawned worker processes import the main module), it must not run
    imported = subprocess.run([sys.executable, "-c", f"import runpy; runpy.run_path({str(script)!r}, run_name='w')"],
                              env=env, capture_output=True, text=True)
    assert imported.returncode == 0 and imported.stdout == ""


def _write_metrics(folder, seed, dice_by_method):
    """A work folder as the benchmark runner leaves it: metrics_<method>.json per method, results.json."""
    folder.mkdir()
    for method, per_case in dice_by_method.items():
        metrics = {"per_case": {case: {"1": {"dice": d1}, "2": {"dice": d2}} for case, (d1, d2) in per_case.items()}}
        (folder / f"metrics_{method}.json").write_text(json.dumps(metrics))
    (folder / "results.json").write_text(json.dumps({"seed": seed}))
    return str(folder)


def test_compare_runs_pairs_each_method_with_the_reference_within_a_seed(tmp_path):
    import compare_runs

    seed0 = _write_metrics(tmp_path / "s0", 0, {"supervised": {"a": (0.6, 0.8), "b": (0.5, 0.5)},
                                                "dualunc": {"a": (0.8, 0.8), "b": (0.4, 0.6)}})
    seed1 = _write_metrics(tmp_path / "s1", 1, {"supervised": {"a": (0.4, 0.4), "b": (0.6, 0.6)},
                                                "dualunc": {"a": (0.6, 0.6), "b": (0.6, 0.7)},
                                                "self_training": {"a": (0.1, 0.1), "b": (0.1, 0.1)}})
    result = compare_runs.compare([compare_runs.read_run(seed0), compare_runs.read_run(seed1)])
    sup, dual = result["methods"]["supervised"], result["methods"]["dualunc"]
    assert sup["mean_dice"] == pytest.approx([0.6, 0.5]) and sup["sd_over_runs"] == pytest.approx(0.0707107)
    # case means: seed 0 a 0.7 -> 0.8, b 0.5 -> 0.5; seed 1 a 0.4 -> 0.6, b 0.6 -> 0.65
    assert dual["difference_per_run"] == pytest.approx([0.05, 0.125]) and dual["difference_seeds"] == [0, 1]
    assert (dual["cases_better"], dual["cases_compared"]) == (3, 4)
    assert result["methods"]["self_training"]["difference_seeds"] == [1]  # only seed 1 has it
    assert "| dualunc | 0.6500 (0), 0.6250 (1) |" in compare_runs.markdown(result)


def test_pool_comparisons_lists_every_paired_run_of_every_file_and_refuses_mixed_references(tmp_path):
    import compare_runs
    import pool_comparisons

    def comparison(folder, seed, control, trained, reference="supervised"):
        run = compare_runs.read_run(_write_metrics(folder, seed, {"supervised": {"a": (control, control)},
                                                                  "dualunc": {"a": (trained, trained)}}))
        return compare_runs.compare([run], reference)

    teacher_a = comparison(tmp_path / "a", 0, 0.5, 0.6)
    teacher_b = comparison(tmp_path / "b", 1, 0.7, 0.6)
    pooled = pool_comparisons.pool([("ta", teacher_a), ("tb", teacher_b)])
    dual = pooled["methods"]["dualunc"]
    assert dual["difference_runs"] == ["ta/0", "tb/1"]
    assert dual["difference_per_run"] == pytest.approx([0.1, -0.1]) and dual["mean_difference"] == pytest.approx(0)
    assert dual["runs_above_reference"] == 1
    row = "| dualunc | 2 | 0.6000 | +10.0 (ta/0), -10.0 (tb/1) | +0.00 points | 1 / 2 |"
    assert row in pool_comparisons.markdown(pooled)
    with pytest.raises(ValueError, match="different references"):
        pool_comparisons.pool([("ta", teacher_a), ("tc", comparison(tmp_path / "c", 0, 0.5, 0.6, "dualunc"))])


def test_demo_runs_pairs_each_warm_start_with_its_own_folders_control(tmp_path):
    import demo_runs

    from nnunetv2_dualunc.demo import DEMO_CONTROL, DEMO_START_MODEL

    folders = []
    for run, (control, warm) in enumerate([(0.90, 0.92), (0.94, 0.93)]):
        folder = tmp_path / f"run{run}"
        folder.mkdir()
        dice = {DEMO_START_MODEL: {"mean": 0.8}, DEMO_CONTROL: {"mean": control}, "warm": {"mean": warm}}
        (folder / "dice_results.json").write_text(json.dumps({"seed": 0, "dice": dice}))
        folders.append(str(folder))
    rows = demo_runs.compare(demo_runs.read_runs(folders))["methods"]
    assert rows["warm"]["gain_over_control"] == pytest.approx([0.02, -0.01])
    assert rows["warm"]["runs_with_gain"] == 1 and rows["warm"]["paired_runs"] == 2
    assert rows[DEMO_CONTROL]["paired_runs"] == 0
    assert "| warm | 0.9200, 0.9300 | +2.0, -1.0 | +0.50 | 1 / 2 |" in demo_runs.markdown(demo_runs.compare(
        demo_runs.read_runs(folders)))
    # another control by name (a budget variant of the demo's): every other continuation is paired with it
    rows = demo_runs.compare(demo_runs.read_runs(folders), control="warm")["methods"]
    assert rows[DEMO_CONTROL]["gain_over_control"] == pytest.approx([-0.02, 0.01]) and rows["warm"]["paired_runs"] == 0
    with pytest.raises(FileNotFoundError, match="nnunetv2_dualunc demo --output-dir"):
        demo_runs.read_runs([str(tmp_path)])


def test_demo_runs_rescores_each_trained_model_on_a_bigger_test_set(tmp_path, monkeypatch):
    """--test-cases: every model with a final checkpoint is predicted on the bigger set (the run's own cases first) and
    scored there; a model without one is dropped. nnUNetv2_predict is replaced by a copy of the references (perfect)
    or an empty segmentation (Dice 0 wherever a structure exists)."""
    import shutil

    import demo_runs
    import numpy as np
    import SimpleITK as sitk

    from nnunetv2_dualunc.demo import DEMO_CONTROL, DEMO_START_MODEL, trainer_output_folder

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "demo_config.json").write_text(json.dumps({"seed": 3, "dataset_id": 990, "shape": [2, 32, 32]}))
    dice = {m: {"mean": 0.5} for m in (DEMO_START_MODEL, DEMO_CONTROL, "untrained")}
    (folder / "dice_results.json").write_text(json.dumps({"seed": 3, "dice": dice}))
    for method in (DEMO_START_MODEL, DEMO_CONTROL):
        fold = trainer_output_folder(str(folder / "nnUNet_results"), method, 990)
        os.makedirs(fold)
        open(os.path.join(fold, "checkpoint_final.pth"), "w").close()
    predicted = []

    def fake_predict(command, env, log_file, on_line=None):
        images, out, method = (command[command.index(flag) + 1] for flag in ("-i", "-o", "-tr"))
        assert env["nnUNet_results"] == str(folder / "nnUNet_results")
        predicted.append((method, len(os.listdir(images))))
        labels = os.path.join(os.path.dirname(images), "labelsTs")
        for name in os.listdir(labels):
            if method == DEMO_CONTROL:
                shutil.copy(os.path.join(labels, name), os.path.join(out, name))
            else:
                reference = sitk.ReadImage(os.path.join(labels, name))
                empty = sitk.Image(reference.GetSize(), reference.GetPixelID())
                empty.CopyInformation(reference)
                sitk.WriteImage(empty, os.path.join(out, name))
        return 0.0

    monkeypatch.setattr(demo_runs, "run_logged", fake_predict)
    runs = demo_runs.rescore_on_more_test_cases(demo_runs.read_runs([str(folder)]), 5, str(tmp_path / "work"))
    scored = runs[str(folder)]
    assert sorted(predicted) == sorted([(DEMO_START_MODEL, 5), (DEMO_CONTROL, 5)])
    assert set(scored["dice"]) == {DEMO_START_MODEL, DEMO_CONTROL} and scored["test_cases"] == 5
    assert len(scored["dice"][DEMO_CONTROL]["per_case"]) == 5 and scored["dice"][DEMO_CONTROL]["mean"] == 1.0
    assert scored["dice"][DEMO_START_MODEL]["mean"] < 0.5
    # the bigger set starts with the run's own test cases: the synthetic generator's test stream, seed 3
    from nnunetv2_dualunc.data.synthetic import synthetic_case
    first = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "work" / "dataset_seed3_test5" /
                                                      "Dataset990_SyntheticSSL" / "labelsTs" / "syn_t_000.nii.gz")))
    assert np.array_equal(first, synthetic_case(3, "test", 0, (2, 32, 32))[1])
    # a second call reuses the predictions
    demo_runs.rescore_on_more_test_cases(demo_runs.read_runs([str(folder)]), 5, str(tmp_path / "work"))
    assert len(predicted) == 2


def test_compare_runs_names_a_folder_without_results(tmp_path):
    import compare_runs

    with pytest.raises(FileNotFoundError, match="metrics_<method>.json"):
        compare_runs.read_run(str(tmp_path))


def test_warm_start_profile_methods_continue_from_its_teacher():
    for profile, teacher in benchmark_trainers.TEACHER_PROFILES.items():
        expected = benchmark_trainers.trainer_name("supervised", teacher)
        for method in ("supervised_continued", "dualunc_warm", "dualunc_warm_oracle", "dualunc_warm_detached",
                       "dualunc_warm_long_adaptation", "dualunc_warm_summed_loss", "dualunc_warm_mirrored_labels",
                       "dualunc_warm_loaded_snapshot", "dualunc_warm_fg_rank", "dualunc_warm_copy_paste",
                       "dualunc_warm_copy_paste_unmixed_finish",
                       "supervised_continued_one_lr_decay", "dualunc_warm_one_lr_decay", "bcp_continued_oracle"):
            trainer = getattr(benchmark_trainers, benchmark_trainers.trainer_name(method, profile))
            assert trainer.warm_start_trainer == expected
            assert trainer.lr_restart_each_phase == (not method.endswith("one_lr_decay"))


def test_supervised_benchmark_trainers_checkpoint_each_epoch_so_that_a_resume_loses_at_most_one():
    # the plugin's trainers set save_every = 1 in their constructors; nnUNetTrainer's 50 outlasts a teacher profile
    for profile in benchmark_trainers.PROFILES:
        trainer = getattr(benchmark_trainers, benchmark_trainers.trainer_name("supervised", profile))
        assert trainer.save_every == 1, profile


def test_long_adaptation_moves_half_of_each_stage_into_the_first_phase():
    trainer = getattr(benchmark_trainers, benchmark_trainers.trainer_name("dualunc_warm_long_adaptation", "acdcCPUwarm"))
    assert (trainer.pretrain_epochs, trainer.stage1_epochs, trainer.stage2_epochs) == (7, 3, 3)
    assert trainer.num_snapshots == 3


def _hidden_label_setup(ws, tmp_path, monkeypatch, oracle_class: type) -> tuple:
    """An oracle trainer (built without nnU-Net's constructor) on the planned workspace, the preprocessed
    unlabelled folder and the "true" label of syn_u_000 (class 2 on its brightest fifth) in $DUALUNC_ORACLE_LABELS."""
    import numpy as np
    import SimpleITK as sitk
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_dualunc.data.unlabelled import preprocess_unlabelled

    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(key, ws.env[key])
    folder = preprocess_unlabelled(ws.dataset, "2d", "nnUNetPlans", 1)
    image = sitk.ReadImage(os.path.join(ws.raw_dataset, "imagesUnlabeled", "syn_u_000_0000.nii.gz"))
    array = sitk.GetArrayFromImage(image)
    hidden = (array > np.percentile(array, 80)).astype(np.uint8) * 2
    label = sitk.GetImageFromArray(hidden)
    label.CopyInformation(image)
    labels = tmp_path / "labelsTr"
    labels.mkdir()
    sitk.WriteImage(label, str(labels / "syn_u_000.nii.gz"))
    monkeypatch.setenv(benchmark_trainers.ORACLE_LABELS_VARIABLE, str(labels))
    oracle = object.__new__(oracle_class)
    oracle.dataset_json = json.load(open(os.path.join(ws.raw_dataset, "dataset.json")))
    oracle.plans_manager = PlansManager(os.path.join(ws.env["nnUNet_preprocessed"], ws.dataset, "nnUNetPlans.json"))
    oracle.configuration_manager = oracle.plans_manager.get_configuration("2d")
    return oracle, folder, hidden


def test_oracle_trains_with_the_hidden_label_in_the_preprocessed_geometry(planned_workspace, tmp_path, monkeypatch):
    """The oracle's label of an unlabelled case is its true label, preprocessed like nnU-Net's labelled cases."""
    import numpy as np
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

    oracle, folder, hidden = _hidden_label_setup(planned_workspace, tmp_path, monkeypatch,
                                                 benchmark_trainers.nnUNetTrainerDualUncWarmStartOracle)
    data, nonzero, _, _ = nnUNetDatasetBlosc2(folder, ["syn_u_000"]).load_case("syn_u_000")
    result = oracle.pseudo_label("syn_u_000", np.asarray(data[:]), np.asarray(nonzero[:]), None, None)
    assert result.shape == (1, *data.shape[1:])
    assert set(np.unique(result).tolist()) <= {-1, 0, 2} and (result == 2).sum() == (hidden == 2).sum()

    monkeypatch.setenv(benchmark_trainers.ORACLE_LABELS_VARIABLE, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="DUALUNC_ORACLE_LABELS"):
        oracle.pseudo_label("syn_u_000", np.asarray(data[:]), np.asarray(nonzero[:]), None, None)


def test_copy_paste_oracle_trains_on_the_unlabelled_cases_stored_with_their_hidden_labels(planned_workspace,
                                                                                         tmp_path, monkeypatch):
    """BCP's oracle: the unlabelled cases become training cases whose segmentation is the hidden label (with the class
    locations nnU-Net's loader samples from), written once; the loader's targets are used as they are."""
    import numpy as np
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

    oracle, folder, hidden = _hidden_label_setup(planned_workspace, tmp_path, monkeypatch,
                                                 benchmark_trainers.nnUNetTrainerBCPWarmStartOracle)
    oracle.output_folder, oracle.unlabelled_cases = str(tmp_path / "fold_0"), ["syn_u_000"]
    oracle.unlabelled_preprocessed_folder = folder
    oracle.label_manager = oracle.plans_manager.get_label_manager(oracle.dataset_json)
    cases = oracle._hidden_label_cases()
    data, seg, _, properties = nnUNetDatasetBlosc2(cases, ["syn_u_000"]).load_case("syn_u_000")
    assert seg.shape == (1, *data.shape[1:]) and (np.asarray(seg[:]) == 2).sum() == (hidden == 2).sum()
    assert len(properties["class_locations"][2]) > 0 and len(properties["class_locations"][1]) == 0
    written = os.path.getmtime(os.path.join(cases, "syn_u_000.pkl"))
    assert oracle._hidden_label_cases() == cases and os.path.getmtime(os.path.join(cases, "syn_u_000.pkl")) == written
    targets = [object()]
    assert oracle.second_batch_targets(None, targets) is targets  # no teacher: the stored labels as they are
    assert benchmark_trainers.RECIPE_TWINS["bcp_continued_oracle"] == "copy_paste_continued"


def test_half_oracle_labels_a_fixed_half_truly_and_pseudo_labels_the_rest(monkeypatch):
    cases = [f"patient{i:03d}_frame{f:02d}" for i in range(1, 64) for f in (1, 12)]
    half = benchmark_trainers.oracle_subset(cases, 0.5)
    assert len(half) == 63 and half == benchmark_trainers.oracle_subset(list(reversed(cases)), 0.5)
    assert half != frozenset(cases[:63])  # not the first names in alphabetical order
    assert benchmark_trainers.oracle_subset(cases, 1.0) == frozenset(cases)

    trainer = object.__new__(benchmark_trainers.nnUNetTrainerDualUncWarmStartHalfOracle)
    trainer.unlabelled_cases = cases
    truly_labelled = []
    monkeypatch.setattr(benchmark_trainers, "hidden_label_file", lambda case, ending: truly_labelled.append(case))
    monkeypatch.setattr(benchmark_trainers, "preprocessed_hidden_label", lambda *args: "true label")
    trainer.dataset_json, trainer._oracle_images = {"file_ending": ".nii.gz"}, {c: [] for c in cases}
    trainer.plans_manager = trainer.configuration_manager = None

    class Predictor:
        def probabilities(self, data, weights):
            import torch
            return torch.tensor([[[0.2]], [[0.8]]])

    import numpy as np
    data, nonzero = np.zeros((1, 1, 1)), np.zeros((1, 1, 1))
    labels = {case: trainer.pseudo_label(case, data, nonzero, Predictor(), None) for case in cases}
    assert sorted(truly_labelled) == sorted(half)
    assert all(labels[c] == "true label" for c in half)
    assert all(np.asarray(labels[c]).tolist() == [[[1]]] for c in cases if c not in half)  # the argmax


def test_largest_component_per_class_keeps_one_blob_of_each_class():
    import numpy as np
    from pseudo_label_quality import largest_component_per_class

    label = np.array([[[1, 1, 0, 1], [0, 0, 0, 0], [2, 0, 2, 2], [-1, 0, 0, 0]]], dtype=np.int8)
    cleaned = largest_component_per_class(label, [1, 2, 3])
    assert cleaned.tolist() == [[[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 2, 2], [-1, 0, 0, 0]]]
    assert label[0, 0, 3] == 1  # the input is not modified


def test_pseudo_label_confidence_counts_kept_and_wrong_voxels_per_threshold():
    import numpy as np
    from pseudo_label_confidence import confidence_counts, markdown, summarise

    # four voxels: confident right background, unconfident wrong class 1, confident wrong class 1, -1 = background
    probabilities = np.array([[0.9, 0.4, 0.05, 0.8], [0.1, 0.6, 0.95, 0.2]])[:, None, :]
    reference = np.array([[0, 0, 0, -1]])
    counts = confidence_counts(probabilities, reference, [0.0, 0.7])
    assert counts["kept"].tolist() == [[2, 2], [2, 1]]
    assert counts["wrong"].tolist() == [[0, 2], [0, 1]]
    rows = summarise(counts["kept"], counts["wrong"], [0.0, 0.7], {0: "background", 1: "organ"})
    assert rows[1]["kept_share"] == {"background": 1.0, "organ": 0.5}
    assert rows[1]["error_rate_kept"]["organ"] == 1.0  # the confident mistake survives the threshold
    assert rows[1]["wrong_dropped_share"] == 0.5 and rows[1]["voxels_dropped_share"] == 0.25
    assert "| 0.70 | 1.000, 0.000 | 0.500, 1.000 | 0.500 | 0.2500 |" in markdown(rows)
    with pytest.raises(ValueError, match="first threshold"):
        summarise(counts["kept"], counts["wrong"], [0.7, 0.0], {})


def test_learning_curve_plateau_uses_a_trailing_window():
    from learning_curve import plateau_epoch, summary, trailing_means

    assert trailing_means([0.0, 1.0, 2.0, 3.0], 2) == [0.0, 0.5, 1.5, 2.5]
    assert plateau_epoch([0.1, 0.5, 0.79, 0.8, 0.78], 0.01) == 2
    noisy = [0.0, 0.2, 0.4, 0.6, 0.9, 0.6, 0.8, 0.8, 0.8, 0.8]  # one lucky epoch (0.9) is not the plateau
    curve = {"ema_fg_dice": noisy, "mean_fg_dice": noisy, "lrs": [0.01] * 10, "train_losses": [0.0] * 10,
             "val_losses": [0.0] * 10, "dice_per_class_or_region": [[d] for d in noisy]}
    result = summary(curve, 50, tolerance=0.01, every=5, window=3)
    assert result["plateau_epoch"] == 9 and result["best_window_mean"] == 0.8


def test_pseudo_label_quality_scores_volumes_per_class_and_splits_by_the_ranking():
    import numpy as np
    from pseudo_label_quality import dice_per_class, mean_probabilities, summarise

    reference = np.array([[[0, 1, 1, 2], [0, 0, 2, 2]]])
    prediction = np.array([[[-1, 1, 0, 2], [0, 0, 2, 2]]])  # -1 (outside the nonzero region) is background
    scores = dice_per_class(prediction, reference, [1, 2, 3])
    assert scores[1] == pytest.approx(2 / 3) and scores[2] == 1.0 and scores[3] == 1.0  # 3: absent from both
    assert dice_per_class(np.zeros((1, 2, 2)), np.ones((1, 2, 2)), [1]) == {1: 0.0}

    summary = summarise({"a": {1: 1.0, 2: 0.5}, "b": {1: 0.0, 2: 0.5}, "c": {1: 1.0, 2: 1.0}}, ["a", "c"],
                        {1: "RV", 2: "LV"})
    assert summary["mean_dice"] == pytest.approx(0.6666667, abs=1e-6)
    assert summary["mean_dice_reliable"] == pytest.approx(0.875) and summary["mean_dice_unreliable"] == 0.25
    assert summary["mean_dice_per_class"] == {"RV": pytest.approx(2 / 3), "LV": pytest.approx(2 / 3)}

    class Fake:  # a "prediction" that is the weights themselves
        def probabilities(self, data, weights):
            import torch
            return torch.tensor(weights["p"])

    mean = mean_probabilities(Fake(), None, [{"p": [0.2, 0.8]}, {"p": [0.6, 0.4]}])
    assert np.allclose(mean, [0.4, 0.6])


def test_pseudo_label_quality_pairs_each_recipe_with_the_reference_case_by_case():
    from pseudo_label_quality import markdown, paired_with

    reference = {"per_case": {"a": 0.5, "b": 0.5, "c": 0.5}, "cases": 3, "mean_dice": 0.5, "mean_dice_reliable": 0.5,
                 "mean_dice_unreliable": None, "mean_dice_per_class": {"RV": 0.5}}
    better = dict(reference, per_case={"a": 0.6, "b": 0.7, "c": 0.4})
    paired = paired_with(better, reference)
    assert paired["cases"] == 3 and paired["cases_better"] == 2
    assert paired["mean_difference_points"] == pytest.approx(100 * 0.2 / 3)
    assert paired_with(reference, reference) is None  # no differences: no test
    table = markdown({"control": reference, "final": better}, {"control": "c", "final": "f"}, reference="control")
    assert "minus control (points)" in table and "| +6.7 | 2 / 3 |" in table
    from pseudo_label_quality import side_by_side

    runs = {"seed0": {"recipes": {"control": reference, "final": better}},
            "seed1": {"recipes": {"control": reference}}}
    rows = side_by_side(runs, "control").splitlines()
    assert rows[0].startswith("| recipe | seed0: mean Dice (minus control")
    assert rows[3] == "| final | 0.5000 (+6.7, 2 / 3) | - |"


def _fake_work_folder(root, with_teacher=True):
    """The files of a finished warm-start teacher run as the runner leaves them (contents are placeholders)."""
    dataset = "Dataset507_ACDC_labeled_7"
    files = {f"nnUNet_raw/{dataset}/dataset.json": "{}", f"nnUNet_preprocessed/{dataset}/nnUNetPlans.json": "{}",
             "state/prepare.json": '{"settings": {}}', "state/supervised.json": '{"trained": true}'}
    if with_teacher:
        files[f"nnUNet_results/{dataset}/nnUNetTrainer_acdcCPUteacher__nnUNetPlans__2d_cpu/fold_0/"
              f"checkpoint_final.pth"] = "weights"
    for relative, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(root, relative)), exist_ok=True)
        with open(os.path.join(root, relative), "w") as f:
            f.write(text)
    return files


def test_teacher_from_copies_dataset_plans_and_teacher_into_a_new_work_folder(tmp_path):
    import acdc
    from ssl_benchmark import BenchmarkRun

    files = _fake_work_folder(str(tmp_path / "seed0"))
    run = BenchmarkRun(acdc.make_setup("labeled_7", "cpu_warm"), str(tmp_path / "seed1"), 1, 1, 1)
    run.adopt_teacher(str(tmp_path / "seed0"))
    for relative, text in files.items():
        assert open(tmp_path / "seed1" / relative).read() == text
    run.adopt_teacher(str(tmp_path / "seed0"))  # a resumed command: nothing to do, no error

    _fake_work_folder(str(tmp_path / "untrained"), with_teacher=False)
    with pytest.raises(SystemExit, match="no finished teacher"):
        BenchmarkRun(acdc.make_setup("labeled_7", "cpu_warm"), str(tmp_path / "x"), 1, 1, 1).adopt_teacher(
            str(tmp_path / "untrained"))
    # checkpoint_final.pth written, nnU-Net's final validation still running: not finished yet
    _fake_work_folder(str(tmp_path / "validating"))
    with open(tmp_path / "validating" / "state" / "supervised.json", "w") as f:
        f.write('{"running": {"start": 0, "resumed": false}}')
    with pytest.raises(SystemExit, match="no finished teacher"):
        BenchmarkRun(acdc.make_setup("labeled_7", "cpu_warm"), str(tmp_path / "z"), 1, 1, 1).adopt_teacher(
            str(tmp_path / "validating"))
    prepared = BenchmarkRun(acdc.make_setup("labeled_7", "cpu_warm"), str(tmp_path / "prepared"), 1, 1, 1)
    _fake_work_folder(str(tmp_path / "prepared"), with_teacher=False)
    with pytest.raises(SystemExit, match="already holds a prepared dataset"):
        prepared.adopt_teacher(str(tmp_path / "seed0"))
    with pytest.raises(SystemExit, match="warm-start profile"):
        BenchmarkRun(acdc.make_setup("labeled_7", "cpu"), str(tmp_path / "y"), 1, 1, 1).adopt_teacher(
            str(tmp_path / "seed0"))


def test_an_interrupted_training_attempt_still_counts_in_the_reported_wall_clock(tmp_path, monkeypatch):
    import acdc
    from ssl_benchmark import BenchmarkRun

    run = BenchmarkRun(acdc.make_setup("labeled_7", "cpu_warm"), str(tmp_path / "work"), 0, 1, 1)
    fold = run._fold_folder("supervised_continued")

    def killed(args, log_name, env=None):  # trains 120 s, writes its latest checkpoint, then the session ends
        os.makedirs(fold, exist_ok=True)
        with open(os.path.join(fold, "checkpoint_latest.pth"), "w") as f:
            f.write("weights")
        started = run._state("supervised_continued")["running"]["start"]
        os.utime(os.path.join(fold, "checkpoint_latest.pth"), (started + 120, started + 120))
        raise SystemExit("killed")

    monkeypatch.setattr(run, "_run", killed)
    with pytest.raises(SystemExit):
        run.train("supervised_continued")

    commands = []

    def resumed(args, log_name, env=None):
        commands.append(args)
        with open(os.path.join(fold, "checkpoint_final.pth"), "w") as f:
            f.write("weights")
        return 30.0

    monkeypatch.setattr(run, "_run", resumed)
    run.train("supervised_continued")
    state = run._state("supervised_continued")
    assert "--c" in commands[0]
    assert [a["seconds"] for a in state["attempts"]] == [120.0, 30.0]
    assert state["attempts"][0]["interrupted"] and state["attempts"][1]["resumed"]
    assert state["train_seconds"] == 150.0 and "running" not in state


def test_ranking_quality_tables_every_ranking_of_every_file(tmp_path, capsys):
    import ranking_quality

    def ranking(spearman, reliable):
        return {"spearman_score_vs_dice": spearman, "mean_dice_reliable": reliable, "mean_dice_unreliable": 0.4,
                "mean_dice_oracle_best_half": 0.7}
    path = tmp_path / "seed1.json"
    path.write_text(json.dumps({"rankings": {"paper": ranking(-0.24, 0.559),
                                             "per_foreground_voxel": ranking(-0.69, 0.637)}}))
    ranking_quality.main(["--from-json", str(path)])
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[2:] == ["| seed1.json | paper | -0.24 | 0.559 | 0.400 | 0.700 |",
                        "| seed1.json | per_foreground_voxel | -0.69 | 0.637 | 0.400 | 0.700 |"]
    with pytest.raises(SystemExit):  # an analysis needs its run
        ranking_quality.main(["--fold-folder", str(tmp_path)])


def test_postprocessing_lets_nnunet_remove_a_far_false_positive_and_writes_comparable_metrics(tmp_path):
    """A prediction with the true structure plus a far blob: nnU-Net's own postprocessing (chosen on the
    validation cases) keeps the largest component, the scored metrics then lose the blob's HD95, and the result
    lands as metrics_<method>.json that compare_runs reads."""
    import shutil

    import numpy as np
    import SimpleITK as sitk

    from compare_runs import read_run
    from postprocessing import markdown, model_folder, postprocess_runs

    setup = {"profile": "acdcCPUwarm", "dataset_id": 507, "dataset_name": "ACDC_labeled_7",
             "configuration": "2d_cpu"}
    work = tmp_path / "work"
    model = model_folder(str(work), setup, "dualunc_warm")
    assert model.endswith("Dataset507_ACDC_labeled_7/nnUNetTrainerDualUncWarmStart_acdcCPUwarm__nnUNetPlans__2d_cpu")
    assert "acdcCPUteacher" in model_folder(str(work), setup, "supervised")  # the warm start's teacher
    validation, references = os.path.join(model, "fold_0", "validation"), work / "references"
    os.makedirs(validation)
    os.makedirs(references)
    dataset_json = {"labels": {"background": 0, "LV": 1}, "file_ending": ".nii.gz", "numTraining": 2,
                    "channel_names": {"0": "MRI"}}
    json.dump(dataset_json, open(os.path.join(model, "dataset.json"), "w"))
    json.dump({"image_reader_writer": "SimpleITKIO"}, open(os.path.join(model, "plans.json"), "w"))
    for case in ("a", "b"):
        truth = np.zeros((4, 32, 32), np.uint8)
        truth[1:3, 4:12, 4:12] = 1
        prediction = truth.copy()
        prediction[1:3, 28:30, 28:30] = 1  # far false positive
        for array, folder in ((truth, str(references)), (prediction, validation)):
            sitk.WriteImage(sitk.GetImageFromArray(array), os.path.join(folder, f"{case}.nii.gz"))
    raw = {"mean": {"dice": 0.9, "hd95_vox": 20.0}}
    json.dump(raw, open(work / "metrics_dualunc_warm.json", "w"))
    json.dump({"seed": 3, "setup": setup}, open(work / "results.json", "w"))

    runs = postprocess_runs([str(work)], ["dualunc_warm"], str(tmp_path / "out"))
    result = runs[str(work)]["methods"]["dualunc_warm"]
    assert result["steps"][0]["function"] == "remove_all_but_largest_component_from_segmentation"
    assert "largest of" in markdown(runs)
    assert result["dice_postprocessed"] == pytest.approx(1.0)
    assert result["hd95_vox_postprocessed"] == pytest.approx(0.0)
    assert not os.path.isdir(os.path.join(validation, "postprocessed"))  # the run folder is only read
    shutil.rmtree(validation)  # a second command finds the run done in <out> and does not look again
    again = postprocess_runs([str(work)], ["dualunc_warm"], str(tmp_path / "out"))
    assert again == json.loads(json.dumps(runs))
    other = tmp_path / "other"  # another run of the same seed must not overwrite out/seed3
    shutil.copytree(work, other)
    with pytest.raises(SystemExit, match="its own --out"):
        postprocess_runs([str(other)], ["dualunc_warm"], str(tmp_path / "out"))
    run = read_run(str(tmp_path / "out" / "seed3"))
    assert run.seed == 3 and run.mean_dice("dualunc_warm") == pytest.approx(1.0)


def test_every_semi_supervised_method_has_a_recipe_twin_that_differs_only_in_its_second_batch():
    """The twin is the method's own class with second_batch_from_labelled set, at the same budget; an oracle's twin
    is that of the method whose pseudo-labels it replaces; BCP's is supervised copy-paste, which it equals with
    labelled second batches."""
    twins = benchmark_trainers.RECIPE_TWINS
    assert twins["dualunc_warm_copy_paste_pseudo_dice"] == "dualunc_warm_copy_paste_pseudo_dice_recipe_only"
    assert twins["dualunc_warm_copy_paste_pseudo_dice_oracle"] == "dualunc_warm_copy_paste_pseudo_dice_recipe_only"
    assert twins["dualunc_warm_oracle"] == "dualunc_warm_recipe_only"
    assert "dualunc_warm_no_unlabelled" not in twins and "supervised_continued" not in twins
    assert twins["mean_teacher_continued"] == "mean_teacher_continued_recipe_only"
    assert twins["bcp_continued"] == "copy_paste_continued" and twins["bcp"] == "copy_paste"
    for method, twin in twins.items():
        trained = getattr(benchmark_trainers, benchmark_trainers.trainer_name(method, "acdcCPUwarm"))
        control = getattr(benchmark_trainers, benchmark_trainers.trainer_name(twin, "acdcCPUwarm"))
        assert control.second_batch_from_labelled and not trained.second_batch_from_labelled, method
        for attribute in ("pretrain_epochs", "stage1_epochs", "stage2_epochs", "iterations_per_epoch", "num_epochs",
                          "lr_phases", "copy_paste_fraction", "num_snapshots"):
            assert getattr(control, attribute, None) == getattr(trained, attribute, None), (method, attribute)
        if method not in benchmark_trainers.WARM_START_METHODS or \
                benchmark_trainers.WARM_START_METHODS[method] not in twins:  # else the start's twin (test below)
            assert getattr(control, "warm_start_trainer", None) == getattr(trained, "warm_start_trainer", None)
        if not method.endswith("oracle"):
            assert getattr(control, "pseudo_label_dice", None) == getattr(trained, "pseudo_label_dice", None)


def test_runner_trains_the_control_and_each_methods_twin_beside_it(tmp_path):
    import acdc
    from ssl_benchmark import BenchmarkRun

    warm = BenchmarkRun(acdc.make_setup("labeled_7", "cpu_warm"), str(tmp_path / "w"), 0, 1, 1)
    assert warm.with_controls(["dualunc_warm_copy_paste_pseudo_dice", "copy_paste_continued",
                               "dualunc_warm_copy_paste_pseudo_dice_oracle"]) == [
        "supervised_continued", "dualunc_warm_copy_paste_pseudo_dice", "dualunc_warm_copy_paste_pseudo_dice_recipe_only",
        "copy_paste_continued", "dualunc_warm_copy_paste_pseudo_dice_oracle"]
    scratch = BenchmarkRun(acdc.make_setup("labeled_7", "cpu"), str(tmp_path / "s"), 0, 1, 1)
    assert scratch.with_controls(["supervised", "dualunc"]) == ["supervised", "dualunc", "dualunc_recipe_only"]


def test_a_method_that_continues_another_methods_model_trains_after_it_and_its_twin_loads_the_same_model(tmp_path):
    import acdc
    from ssl_benchmark import BenchmarkRun

    warm = BenchmarkRun(acdc.make_setup("labeled_3", "cpu_warm"), str(tmp_path / "w"), 0, 1, 1)
    assert warm.with_controls(["dualunc_plus_from_copy_paste", "copy_paste_continued"]) == [
        "supervised_continued", "copy_paste_continued", "dualunc_plus_from_copy_paste",
        "dualunc_plus_from_copy_paste_recipe_only"]
    copy_paste = benchmark_trainers.trainer_name("copy_paste_continued", "acdcCPUwarm")
    for method in ("dualunc_plus_from_copy_paste", "dualunc_plus_from_copy_paste_recipe_only"):
        trainer = getattr(benchmark_trainers, benchmark_trainers.trainer_name(method, "acdcCPUwarm"))
        assert trainer.warm_start_trainer == copy_paste
    # the copy-paste model itself still continues the profile's teacher
    assert getattr(benchmark_trainers, copy_paste).warm_start_trainer == \
        benchmark_trainers.trainer_name("supervised", "acdcCPUteacher")


def test_a_second_round_trains_after_the_first_and_its_twin_has_no_unlabelled_image_in_its_chain(tmp_path):
    """copy-paste -> candidate -> second round, and the twin: copy-paste -> the candidate's twin -> its own."""
    import acdc
    from ssl_benchmark import BenchmarkRun

    warm = BenchmarkRun(acdc.make_setup("labeled_3", "cpu_warm"), str(tmp_path / "w"), 0, 1, 1)
    assert warm.with_controls(["dualunc_plus_second_round"]) == [
        "supervised_continued", "copy_paste_continued", "dualunc_plus_from_copy_paste",
        "dualunc_plus_from_copy_paste_recipe_only", "dualunc_plus_second_round", "dualunc_plus_second_round_recipe_only"]

    def start(method):
        return getattr(benchmark_trainers, benchmark_trainers.trainer_name(method, "acdcCPUwarm")).warm_start_trainer

    assert start("dualunc_plus_second_round") == benchmark_trainers.trainer_name("dualunc_plus_from_copy_paste",
                                                                                 "acdcCPUwarm")
    assert start("dualunc_plus_second_round_recipe_only") == benchmark_trainers.trainer_name(
        "dualunc_plus_from_copy_paste_recipe_only", "acdcCPUwarm")


def test_compare_runs_reports_each_method_against_its_own_recipe_twin(tmp_path):
    import compare_runs

    folders = []
    for seed, (control, recipe, method) in enumerate([(0.5, 0.6, 0.7), (0.5, 0.7, 0.65)]):
        folder = _write_metrics(tmp_path / f"s{seed}", seed, {
            "supervised_continued": {"a": (control, control)}, "dual_recipe_only": {"a": (recipe, recipe)},
            "dual": {"a": (method, method)}})
        with open(os.path.join(folder, "results.json"), "w") as f:
            json.dump({"seed": seed, "recipe_twins": {"dual": "dual_recipe_only"}}, f)
        folders.append(folder)
    result = compare_runs.compare([compare_runs.read_run(f) for f in folders], "supervised_continued")
    dual = result["methods"]["dual"]
    assert dual["difference_per_run"] == pytest.approx([0.2, 0.15])
    assert dual["against_recipe_only"]["difference_per_run"] == pytest.approx([0.1, -0.05])
    assert dual["against_recipe_only"]["twin"] == ["dual_recipe_only"]
    assert "against_recipe_only" not in result["methods"]["dual_recipe_only"]
    row = next(line for line in compare_runs.markdown(result).splitlines() if line.startswith("| dual |"))
    assert row.endswith("| +10.0 (0), -5.0 (1) | +2.5 points | 1 / 2 | 1 |")


def test_gain_sources_splits_the_gain_into_the_recipes_and_the_unlabelled_images(tmp_path):
    import gain_sources

    folder = _write_metrics(tmp_path / "s0", 0, {
        "supervised_continued": {"a": (0.70, 0.70)}, "copy_paste_continued": {"a": (0.74, 0.74)},
        "rec_recipe_only": {"a": (0.78, 0.78)}, "rec": {"a": (0.80, 0.80)}, "rec_oracle": {"a": (0.86, 0.86)}})
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump({"seed": 0, "recipe_twins": {"rec": "rec_recipe_only", "rec_oracle": "rec_recipe_only"}}, f)
    import compare_runs
    row = gain_sources.gain_row("ACDC 7", compare_runs.read_run(folder), "rec", "rec_oracle")
    assert row["total_gain"] == pytest.approx(10.0) and row["recipe_gain"] == pytest.approx(8.0)
    assert row["unlabelled_gain"] == pytest.approx(2.0) and row["gap_closed"] == pytest.approx(0.25)
    assert "| ACDC 7 | 0 | 70.0 | 74.0 | 78.0 | 80.0 | 86.0 | +10.0 | +8.0 | +2.0 | 25 % |" in gain_sources.markdown([row])
    missing = gain_sources.gain_row("ACDC 7", compare_runs.read_run(folder), "other", "other_oracle")
    assert missing["recipe_only"] is None and "| - |" in gain_sources.markdown([missing])
    with open(os.path.join(folder, "results.json"), "w") as f:  # the method not run yet: its oracle names the twin
        json.dump({"seed": 0, "recipe_twins": {"rec_oracle": "rec_recipe_only"}}, f)
    early = gain_sources.gain_row("ACDC 7", compare_runs.read_run(folder), "rec", "rec_oracle")
    assert early["recipe_only"] == pytest.approx(78.0)
    os.remove(os.path.join(folder, "metrics_rec.json"))  # the oracle and the twin finished, the method not yet
    assert gain_sources.gain_row("ACDC 7", compare_runs.read_run(folder), "rec", "rec_oracle")["gap_closed"] is None


def test_arena_table_puts_each_method_against_the_three_controls_with_its_step_cost(tmp_path):
    import arena_table
    import compare_runs

    folder = _write_metrics(tmp_path / "s1", 1, {
        "supervised_continued": {"a": (0.70, 0.70)}, "copy_paste_continued": {"a": (0.76, 0.76)},
        "mean_teacher_continued": {"a": (0.75, 0.75)}, "mean_teacher_continued_recipe_only": {"a": (0.72, 0.72)},
        "bcp_continued": {"a": (0.80, 0.80)},
        "dualunc_warm_copy_paste_pseudo_dice_oracle": {"a": (0.90, 0.90)}})
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump({"seed": 1, "recipe_twins": {
            "mean_teacher_continued": "mean_teacher_continued_recipe_only", "bcp_continued": "copy_paste_continued",
            "dualunc_warm_copy_paste_pseudo_dice_oracle": "dualunc_warm_copy_paste_pseudo_dice_recipe_only"}}, f)
    speed_result = {"runs": [{"trainer": "nnUNetTrainerDualUncPlus", "s_per_iteration": 1.0},
                             {"trainer": "nnUNetTrainerDualUncPlus", "s_per_iteration": 2.0},  # the slowest phase
                             {"trainer": "nnUNetTrainerMeanTeacher", "s_per_iteration": 1.0}]}
    costs = arena_table.step_costs(speed_result)
    assert costs == {"nnUNetTrainerDualUncPlus": 1.0, "nnUNetTrainerMeanTeacher": 0.5}
    run = compare_runs.read_run(folder)
    assert arena_table.arena_methods(run) == ["bcp_continued", "mean_teacher_continued"]  # no oracle, no control
    rows = {r["method"]: r for r in arena_table.arena_rows("ACDC 3", run, arena_table.arena_methods(run), costs)}
    mean_teacher, bcp = rows["mean_teacher_continued"], rows["bcp_continued"]
    assert mean_teacher["total_gain"] == pytest.approx(5.0) and mean_teacher["minus_copy_paste"] == pytest.approx(-1.0)
    assert mean_teacher["unlabelled_gain"] == pytest.approx(3.0) and mean_teacher["step_cost"] == pytest.approx(0.5)
    assert bcp["unlabelled_gain"] == pytest.approx(4.0) and bcp["step_cost"] is None  # BCP was not timed here
    table = arena_table.markdown(list(rows.values()))
    assert "| ACDC 3 | 1 | mean_teacher_continued | 75.0 | +5.0 | -1.0 | +3.0 | 0.50 |" in table
    assert "| ACDC 3 | 1 | bcp_continued | 80.0 | +10.0 | +4.0 | +4.0 | - |" in table
    with pytest.raises(ValueError, match="nnUNetTrainerDualUncPlus"):
        arena_table.step_costs({"runs": [{"trainer": "nnUNetTrainerMeanTeacher", "s_per_iteration": 1.0}]})


def test_results_table_is_generated_from_the_stored_runs_into_the_marked_block(tmp_path):
    import results_table

    (tmp_path / "exp").mkdir()
    folder = _write_metrics(tmp_path / "exp" / "seed0", 0, {
        "supervised_continued": {"a": (0.70, 0.70)}, "rec_recipe_only": {"a": (0.78, 0.78)}, "rec": {"a": (0.80, 0.80)}})
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump({"seed": 0, "recipe_twins": {"rec": "rec_recipe_only"}}, f)
    manifest = {"method": "rec", "oracle": "rec_oracle", "settings": [
        {"label": "ACDC 7", "runs": ["exp/seed0"], "budget": "650 steps", "hardware": "2-core CPU"}]}
    (tmp_path / "current.json").write_text(json.dumps(manifest))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{results_table.BEGIN}\nold table\n{results_table.END}\noutro\n")
    results_table.main(["--manifest", str(tmp_path / "current.json"), "--update", str(readme)])
    text = readme.read_text()
    assert "old table" not in text and text.startswith("intro\n") and text.endswith(f"{results_table.END}\noutro\n")
    assert "| ACDC 7 | 0 | 70.0 | - | 78.0 | **80.0** | - | +2.0 |" in text
    assert "ACDC 7: 650 steps. Every run: 2-core CPU; result files `docs/results/exp`." in text
    results_table.main(["--manifest", str(tmp_path / "current.json"), "--update", str(readme)])
    assert readme.read_text() == text  # rerunning reproduces the table
    # settings measured on different machines name each its own, after a protocol said once
    manifest["protocol"] = "Protocol: warm start."
    manifest["settings"].append({"label": "ACDC 3", "runs": ["exp/seed0"], "hardware": "GPU"})  # no budget of its own
    (tmp_path / "current.json").write_text(json.dumps(manifest))
    results_table.main(["--manifest", str(tmp_path / "current.json"), "--update", str(readme)])
    text = readme.read_text()
    assert "(yet). Protocol: warm start. ACDC 7: 650 steps; 2-core CPU; result files `docs/results/exp`. " \
           "ACDC 3: GPU; result files `docs/results/exp`." in text and "Every run" not in text
    (tmp_path / "other.md").write_text("no markers\n")
    with pytest.raises(SystemExit, match="other.md has no .* block"):
        results_table.main(["--manifest", str(tmp_path / "current.json"), "--update", str(tmp_path / "other.md")])


def test_results_table_shows_a_candidate_only_for_the_runs_that_have_it(tmp_path):
    import results_table

    (tmp_path / "exp").mkdir()
    for seed, methods in ((0, {"copy_paste_continued": {"a": (0.70, 0.70)}, "cand_recipe_only": {"a": (0.72, 0.72)},
                               "cand": {"a": (0.75, 0.77)}, "rec": {"a": (0.69, 0.69)}}),
                          (1, {"rec": {"a": (0.71, 0.71)}})):
        folder = _write_metrics(tmp_path / "exp" / f"seed{seed}", seed, methods)
        with open(os.path.join(folder, "results.json"), "w") as f:
            json.dump({"seed": seed, "recipe_twins": {"cand": "cand_recipe_only"}}, f)
    manifest = {"method": "rec", "oracle": "rec_oracle", "settings": [
        {"label": "ACDC 3", "runs": ["exp/seed0", "exp/seed1"], "budget": "650 steps", "hardware": "2-core CPU"}],
        "candidates": [{"method": "cand", "name": "candidate", "start": "copy-paste model", "title": "Candidate:",
                        "note": "Not yet recommended."},
                       {"method": "second", "name": "second round", "start": "candidate", "start_method": "cand",
                        "title": "Second round:", "note": "Never run."}]}
    (tmp_path / "current.json").write_text(json.dumps(manifest))
    readme = tmp_path / "README.md"
    readme.write_text(f"{results_table.BEGIN}\n{results_table.END}\n")
    results_table.main(["--manifest", str(tmp_path / "current.json"), "--update", str(readme)])
    text = readme.read_text()
    assert "| ACDC 3 | 0 | 70.0 | 72.0 | **76.0** | +4.0 |" in text and "Not yet recommended." in text
    assert "| ACDC 3 | 1 | - |" not in text.split("Candidate:")[1]  # seed 1 has no candidate run
    assert "| ACDC 3 | 1 | - | - | - | **71.0** | - | - |" in text  # the main table keeps every run
    assert "Second round:" not in text  # a candidate without a run has no table
    # a candidate that continues another candidate shows that model's Dice as its start
    second = {"copy_paste_continued": {"a": (0.70, 0.70)}, "cand": {"a": (0.75, 0.77)}, "second": {"a": (0.80, 0.80)},
              "second_recipe_only": {"a": (0.74, 0.74)}, "rec": {"a": (0.69, 0.69)}}
    shutil.rmtree(tmp_path / "exp" / "seed0")
    folder = _write_metrics(tmp_path / "exp" / "seed0", 0, second)
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump({"seed": 0, "recipe_twins": {"second": "second_recipe_only"}}, f)
    results_table.main(["--manifest", str(tmp_path / "current.json"), "--update", str(readme)])
    assert "| ACDC 3 | 0 | 76.0 | 74.0 | **80.0** | +6.0 |" in readme.read_text().split("Second round:")[1]


def test_keep_copies_the_report_and_metrics_but_nothing_else_of_the_work_folder(tmp_path):
    import acdc
    from ssl_benchmark import BenchmarkRun

    keep = tmp_path / "docs" / "acdc7_seed0"
    run = BenchmarkRun(acdc.make_setup("labeled_7", "cpu_warm"), str(tmp_path / "work"), 0, 1, 1, str(keep))
    for name in ("results.json", "results.md", "metrics_supervised.json", "metrics_notes.txt", "nnUNet_raw.json"):
        (tmp_path / "work" / name).write_text(name)
    run.keep_results()
    assert sorted(os.listdir(keep)) == ["metrics_supervised.json", "results.json", "results.md"]
    assert (keep / "results.md").read_text() == "results.md"
    BenchmarkRun(acdc.make_setup("labeled_7", "cpu_warm"), str(tmp_path / "w2"), 0, 1, 1).keep_results()  # no --keep


def test_a_later_invocation_keeps_the_methods_an_earlier_one_evaluated_in_the_folder(tmp_path):
    import acdc
    from ssl_benchmark import BenchmarkRun

    run = BenchmarkRun(acdc.make_setup("labeled_7", "cpu_warm"), str(tmp_path / "work"), 0, 1, 1)
    assert run.methods_evaluated_earlier(["copy_paste_continued"]) == []  # nothing evaluated yet
    for name in ("metrics_supervised.json", "metrics_copy_paste_continued.json", "metrics_no_such_method.json",
                 "metrics_dualunc_warm_copy_paste_pseudo_dice.json", "results.json"):
        (tmp_path / "work" / name).write_text("{}")
    # the teacher has its own row, the method this invocation trains is evaluated again, an unknown name is skipped
    assert run.methods_evaluated_earlier(["copy_paste_continued", "dualunc_plus_from_copy_paste"]) == [
        "dualunc_warm_copy_paste_pseudo_dice"]


def test_evaluation_reads_the_metrics_file_unless_a_prediction_is_newer(tmp_path, monkeypatch):
    import acdc
    import ssl_benchmark
    from ssl_benchmark import BenchmarkRun

    work = tmp_path / "work"
    _fake_work_folder(str(work))
    (work / "nnUNet_raw" / "Dataset507_ACDC_labeled_7" / "dataset.json").write_text('{"file_ending": ".nii.gz"}')
    run = BenchmarkRun(acdc.make_setup("labeled_7", "cpu_warm"), str(work), 0, 1, 1)
    monkeypatch.setattr(run, "references", lambda ending: "references")
    scored = []
    monkeypatch.setattr(ssl_benchmark, "evaluate_folders", lambda *a, **k: scored.append(a) or {"mean": len(scored)})
    validation = os.path.join(run._fold_folder("copy_paste_continued"), "validation")
    os.makedirs(validation)
    prediction = os.path.join(validation, "patient001_frame01.nii.gz")
    open(prediction, "w").close()
    os.utime(prediction, (1000, 1000))

    assert run.evaluate("copy_paste_continued") == {"mean": 1} and len(scored) == 1  # no metrics file yet
    assert run.evaluate("copy_paste_continued") == {"mean": 1} and len(scored) == 1  # read, not scored again
    os.utime(prediction)  # the method was trained again: its predictions are newer than the metrics
    assert run.evaluate("copy_paste_continued") == {"mean": 2} and len(scored) == 2
