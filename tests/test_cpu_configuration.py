"""add_cpu_configuration on plans that nnU-Net's own planner made for a tiny synthetic dataset."""
import json
import os
import shutil

import pytest
import torch

from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprints, plan_experiments
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_dualunc.cpu_configuration import (CPUConfigurationError, add_batch_size_configuration,
                                                add_cpu_configuration, add_cpu_configuration_entry,
                                                features_per_stage)
from nnunetv2_dualunc.data.synthetic import dataset_name, write_synthetic_dataset

DATASET_ID = 993


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """(raw dataset folder, plans file): nnU-Net's fingerprint + ExperimentPlanner, run in this process."""
    root = tmp_path_factory.mktemp("cpu_configuration")
    env = {"nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "preprocessed"),
           "nnUNet_results": str(root / "results"), "nnUNet_n_proc_DA": "1"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        raw = write_synthetic_dataset(env["nnUNet_raw"], DATASET_ID, n_labelled=4, n_unlabelled=1, n_test=1,
                                      shape=(2, 64, 64))
        extract_fingerprints([DATASET_ID], num_processes=1, check_dataset_integrity=False, verbose=False)
        plan_experiments([DATASET_ID])
        yield env, raw, os.path.join(env["nnUNet_preprocessed"], dataset_name(DATASET_ID), "nnUNetPlans.json")


@pytest.fixture
def plans_file(planned, tmp_path):
    """A private copy of the planned plans file (tests modify it)."""
    copy = str(tmp_path / "nnUNetPlans.json")
    shutil.copyfile(planned[2], copy)
    return copy


def test_features_per_stage():
    assert features_per_stage(6) == [16, 32, 64, 128, 256, 256]
    assert features_per_stage(3, 32, 64) == [32, 64, 64]


def test_resolves_through_plans_manager(plans_file):
    base_plans = json.load(open(plans_file))
    base = base_plans["configurations"]["2d"]
    add_cpu_configuration(plans_file)
    plans = json.load(open(plans_file))
    assert plans["configurations"]["2d"] == base  # the base is untouched
    stored = plans["configurations"]["2d_cpu"]
    assert stored["inherits_from"] == "2d"

    cpu = PlansManager(plans_file).get_configuration("2d_cpu")
    assert cpu.patch_size == [128, 128]
    assert cpu.spacing == pytest.approx([2 * s for s in base["spacing"]])
    assert cpu.data_identifier == "nnUNetPlans_2d_cpu"
    assert cpu.batch_size == base["batch_size"]
    assert cpu.median_image_size_in_voxels == [round(m / 2) for m in base["median_image_size_in_voxels"]]
    kwargs = cpu.network_arch_init_kwargs
    assert kwargs["n_stages"] == 6
    assert kwargs["features_per_stage"] == [16, 32, 64, 128, 256, 256]
    assert kwargs["strides"] == [[1, 1]] + [[2, 2]] * 5
    assert kwargs["kernel_sizes"] == [[3, 3]] * 6
    assert len(kwargs["n_conv_per_stage"]) == 6 and len(kwargs["n_conv_per_stage_decoder"]) == 5
    assert cpu.pool_op_kernel_sizes == kwargs["strides"]
    # inherited unchanged
    assert cpu.normalization_schemes == base["normalization_schemes"]
    assert cpu.network_arch_class_name == base["architecture"]["network_class_name"]


def test_network_builds_and_runs(plans_file):
    add_cpu_configuration(plans_file)
    cpu = PlansManager(plans_file).get_configuration("2d_cpu")
    network = get_network_from_plans(cpu.network_arch_class_name, cpu.network_arch_init_kwargs,
                                     cpu.network_arch_init_kwargs_req_import, 1, 4, deep_supervision=True)
    network.eval()
    with torch.no_grad():
        outputs = network(torch.rand(1, 1, 128, 128))
    assert [tuple(o.shape) for o in outputs] == [(1, 4, 128 // 2 ** i, 128 // 2 ** i) for i in range(5)]


def test_idempotent_and_options(plans_file):
    add_cpu_configuration(plans_file)
    first = open(plans_file).read()
    add_cpu_configuration(plans_file)
    assert open(plans_file).read() == first
    assert not [f for f in os.listdir(os.path.dirname(plans_file)) if ".tmp" in f]

    resolved = add_cpu_configuration(plans_file, name="2d_cpu64", spacing_factor=(1.0, 3.0), patch_size=(64, 32),
                                     max_num_features=64, batch_size=3)
    assert resolved["patch_size"] == [64, 32] and resolved["batch_size"] == 3
    base_spacing = json.load(open(plans_file))["configurations"]["2d"]["spacing"]
    assert resolved["spacing"] == pytest.approx([base_spacing[0], 3 * base_spacing[1]])
    kwargs = resolved["architecture"]["arch_kwargs"]
    # nnU-Net's topology for anisotropic spacing (1, 3): the fine axis is pooled (and convolved) alone first,
    # 64 -> 4 takes 4 poolings, 32 -> 4 takes 3
    assert kwargs["strides"] == [[1, 1], [2, 1], [2, 2], [2, 2], [2, 2]]
    assert kwargs["kernel_sizes"] == [[3, 1]] + [[3, 3]] * 4
    assert kwargs["features_per_stage"] == [16, 32, 64, 64, 64]
    assert set(json.load(open(plans_file))["configurations"]) >= {"2d", "2d_cpu", "2d_cpu64"}


def test_preprocessing_with_cpu_configuration(planned, plans_file):
    """nnU-Net's preprocessor resamples a case to the coarser in-plane spacing of 2d_cpu."""
    env, raw, _ = planned
    add_cpu_configuration(plans_file)
    plans_manager = PlansManager(plans_file)
    dataset_json = json.load(open(os.path.join(raw, "dataset.json")))
    image = os.path.join(raw, "imagesTr", sorted(os.listdir(os.path.join(raw, "imagesTr")))[0])
    shapes = {}
    for configuration in ("2d", "2d_cpu"):
        manager = plans_manager.get_configuration(configuration)
        data, _, _ = manager.preprocessor_class(verbose=False).run_case([image], None, plans_manager, manager,
                                                                        dataset_json)
        shapes[configuration] = data.shape
    assert shapes["2d"] == (1, 2, 64, 64)
    assert shapes["2d_cpu"] == (1, 2, 32, 32)


@pytest.mark.parametrize("kwargs, message", [
    (dict(base_configuration="3d_lowres"), r"'3d_lowres' is not in .*Fix"),
    (dict(name="2d"), r"name of its own"),
    (dict(patch_size=(100, 100)), r"divisible by \(16, 16\).*e\.g\. \(112, 112\)"),
    (dict(patch_size=(128, 128, 128)), r"has 3 axes but configuration '2d' has 2"),
    (dict(spacing_factor=(2.0, 2.0, 2.0)), r"spacing_factor has 3 entries"),
    (dict(batch_size=0), r"batch_size must be >= 1"),
])
def test_errors(plans_file, kwargs, message):
    before = open(plans_file).read()
    with pytest.raises(CPUConfigurationError, match=message):
        add_cpu_configuration(plans_file, **kwargs)
    assert open(plans_file).read() == before


def test_missing_plans_file(tmp_path):
    with pytest.raises(CPUConfigurationError, match="nnUNetv2_plan_and_preprocess"):
        add_cpu_configuration(str(tmp_path / "nnUNetPlans.json"))


def test_entry(planned, monkeypatch, capsys):
    env, _, plans_file = planned
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    add_cpu_configuration_entry(["-d", str(DATASET_ID), "-bs", "4"])
    assert "patch [128, 128]" in capsys.readouterr().out
    assert PlansManager(plans_file).get_configuration("2d_cpu").batch_size == 4
    with pytest.raises(SystemExit, match="Unknown dataset"):
        add_cpu_configuration_entry(["-d", "994"])


def test_batch_size_configuration_changes_only_the_batch(plans_file):
    base = PlansManager(plans_file).get_configuration("2d").configuration
    resolved = add_batch_size_configuration(plans_file, "2d", "2d_bs1", 1)
    assert resolved["batch_size"] == 1 and base["batch_size"] != 1
    assert {k: v for k, v in resolved.items() if k not in ("batch_size", "inherits_from")} == \
        {k: v for k, v in base.items() if k != "batch_size"}  # same data_identifier: no new preprocessing
    assert json.load(open(plans_file))["configurations"]["2d_bs1"] == {"inherits_from": "2d", "batch_size": 1}
    with pytest.raises(CPUConfigurationError, match="batch_size must be >= 1"):
        add_batch_size_configuration(plans_file, "2d", "2d_bs0", 0)
    with pytest.raises(CPUConfigurationError, match="not in"):
        add_batch_size_configuration(plans_file, "3d_lowres_missing", "x", 2)


def test_entry_batch_size_only(planned, monkeypatch, capsys):
    env, _, plans_file = planned
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    add_cpu_configuration_entry(["-d", str(DATASET_ID), "-n", "2d_bs3", "-bs", "3", "--batch-size-only"])
    assert "shares '2d''s preprocessed data" in capsys.readouterr().out
    manager = PlansManager(plans_file)
    assert manager.get_configuration("2d_bs3").batch_size == 3
    assert manager.get_configuration("2d_bs3").data_identifier == manager.get_configuration("2d").data_identifier
    with pytest.raises(SystemExit, match="-bs N"):
        add_cpu_configuration_entry(["-d", str(DATASET_ID), "-n", "2d_bs3", "--batch-size-only"])
