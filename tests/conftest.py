"""Shared fixtures: a tiny synthetic nnU-Net dataset, planned and preprocessed once per test session, and a
helper that runs nnU-Net's real console scripts with the nnU-Net environment variables of that dataset."""
import os
import subprocess

# torch's OpenMP threads spin while they wait by default; on a shared 2-core machine (CI beside a benchmark) spinning
# test processes starve everything else. Set before torch is first imported; inherited by every nnU-Net subprocess.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from dataclasses import dataclass
from typing import Dict, List

import pytest
from nnunetv2.utilities.file_path_utilities import convert_trainer_plans_config_to_identifier

from nnunetv2_dualunc.data.synthetic import dataset_name, write_synthetic_dataset
from nnunetv2_dualunc.nnunet_commands import console_script, nnunet_environment

TEST_DATASET_ID = 991
TEST_DATASET_ID_3D = 992
#: the synthetic dataset's size in the integration tests: the smallest that nnU-Net plans and trains
TINY_PRESET = dict(n_labelled=4, n_unlabelled=6, n_test=2, shape=(2, 32, 32))
TEST_TRAINERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ext_trainers")


@dataclass
class NnUNetWorkspace:
    root: str
    env: Dict[str, str]
    dataset: str

    @property
    def raw_dataset(self) -> str:
        return os.path.join(self.env["nnUNet_raw"], self.dataset)

    def results_folder(self, trainer: str, configuration: str = "2d", fold: str = "all") -> str:
        return os.path.join(self.env["nnUNet_results"], self.dataset,
                            convert_trainer_plans_config_to_identifier(trainer, "nnUNetPlans", configuration),
                            f"fold_{fold}")

    def run(self, args: List[str], log_name: str, env: Dict[str, str] = None, check: bool = True,
            timeout: int = 900) -> subprocess.CompletedProcess:
        """Run a console script; its output goes to a log file in the workspace (shown when it fails)."""
        log_path = os.path.join(self.root, log_name)
        with open(log_path, "w") as log:
            proc = subprocess.run([console_script(args[0])] + args[1:], env=env or self.env, stdout=log,
                                  stderr=subprocess.STDOUT, timeout=timeout)
        proc.log = open(log_path).read()
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited with {proc.returncode}:\n{proc.log[-6000:]}")
        return proc


def _base_env(root: str) -> Dict[str, str]:
    """The demo's nnU-Net environment, isolated from any nnU-Net settings of the developer's shell."""
    isolated = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    return nnunet_environment(root, num_processes=1, extra_trainer_folders=[TEST_TRAINERS], base_env=isolated)


def _planned(root: str, dataset_id: int, configuration: str, **synthetic) -> NnUNetWorkspace:
    env = _base_env(root)
    write_synthetic_dataset(env["nnUNet_raw"], dataset_id, seed=0, **synthetic)
    workspace = NnUNetWorkspace(root, env, dataset_name(dataset_id))
    # nnU-Net's planner calls torch.set_num_threads(nnUNet_n_proc_DA): it must not be 0 while planning
    workspace.run(["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", configuration,
                   "--verify_dataset_integrity", "-np", "1"], "plan.log", env=dict(env, nnUNet_n_proc_DA="1"))
    # training runs augmentation in-process: worker start-up would dominate these tiny runs
    workspace.env["nnUNet_n_proc_DA"] = "0"
    return workspace


@pytest.fixture(scope="session")
def planned_workspace(tmp_path_factory) -> NnUNetWorkspace:
    """Synthetic dataset (4 labelled, 6 unlabelled, 2 test cases of 2x32x32) after planning the 2d configuration."""
    return _planned(str(tmp_path_factory.mktemp("nnunet2d")), TEST_DATASET_ID, "2d", **TINY_PRESET)


@pytest.fixture(scope="session")
def planned_workspace_3d(tmp_path_factory) -> NnUNetWorkspace:
    """Synthetic volumes (4 labelled, 4 unlabelled of 8x32x32) after planning the 3d_fullres configuration."""
    return _planned(str(tmp_path_factory.mktemp("nnunet3d")), TEST_DATASET_ID_3D, "3d_fullres",
                    n_labelled=4, n_unlabelled=4, n_test=1, shape=(8, 32, 32))
