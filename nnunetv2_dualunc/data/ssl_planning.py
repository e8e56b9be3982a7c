"""Plans for a semi-supervised dataset: nnU-Net's own planner, with the unlabelled cases counted.

nnU-Net caps the batch size so that one batch covers at most 5 % of the training set's voxels, and it sizes the
training set by dataset.json's `numTraining` (the labelled cases). With few labelled cases that cap, not the GPU,
decides the batch: 9 labelled + 20 validation Hippocampus cases get batch 2 for `3d_fullres` where the full task
gets 9. The semi-supervised trainers see every unlabelled case too, so the cap should count them: this module
runs nnU-Net's fingerprinting, planning and preprocessing unchanged except that the planner sees
numTraining = labelled + unlabelled. Everything else (spacing, patch size, network, normalisation) still comes
from the labelled cases, exactly as nnU-Net plans them. The supervised-only baseline trains on the same plans,
so a comparison differs only in the method.
"""
import argparse
import os
from typing import List, Optional, Sequence, Type

import nnunetv2
from batchgenerators.utilities.file_and_folder_operations import join, load_json
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.experiment_planning.plan_and_preprocess_api import (extract_fingerprint_dataset,
                                                                  plan_experiment_dataset, preprocess_dataset)
from nnunetv2.utilities.find_class_by_name import recursive_find_python_class

from nnunetv2_dualunc.data.unlabelled import preprocess_unlabelled
from nnunetv2_dualunc.data.unlabelled_raw import UNLABELLED_IMAGES_FOLDER, UnlabelledDataError, find_unlabelled_cases
from nnunetv2_dualunc.nnunet_folders import nnunet_folder

#: key added to the plans: how many cases the planner counted, so the plans say how they were made
PLANS_RECORD_KEY = "dualunc_planning"


def planner_counting_unlabelled(planner_class: Type[ExperimentPlanner],
                                num_unlabelled: int) -> Type[ExperimentPlanner]:
    """A subclass of `planner_class` that plans as if numTraining included `num_unlabelled` more cases. Only the
    planner's in-memory copy of dataset.json changes (nnU-Net copies the file itself into the preprocessed
    folder), and the saved plans record the counts under PLANS_RECORD_KEY."""

    class CountingUnlabelled(planner_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.num_labelled_cases = int(self.dataset_json["numTraining"])
            self.dataset_json = dict(self.dataset_json, numTraining=self.num_labelled_cases + num_unlabelled)

        def save_plans(self, plans: dict) -> None:
            plans[PLANS_RECORD_KEY] = {"labelled_cases": self.num_labelled_cases,
                                       "unlabelled_cases_counted": num_unlabelled,
                                       "planner": planner_class.__name__}
            super().save_plans(plans)

    CountingUnlabelled.__name__ = CountingUnlabelled.__qualname__ = f"{planner_class.__name__}CountingUnlabelled"
    return CountingUnlabelled


def find_planner_class(name: str) -> Type[ExperimentPlanner]:
    """nnU-Net's planner class of that name (as `nnUNetv2_plan_experiment -pl` finds it)."""
    planner = recursive_find_python_class(join(nnunetv2.__path__[0], "experiment_planning"), name,
                                          current_module="nnunetv2.experiment_planning")
    if planner is None:
        raise ValueError(f"Planner '{name}' not found in nnunetv2.experiment_planning; use one that "
                         f"nnUNetv2_plan_experiment -pl accepts, e.g. ExperimentPlanner or nnUNetPlannerResEncM.")
    return planner


def count_unlabelled_cases(dataset_id: int) -> int:
    """Number of cases in the raw dataset's imagesUnlabeled/ (its naming checked as the trainer checks it)."""
    from nnunetv2.utilities.dataset_name_id_conversion import convert_id_to_dataset_name

    raw_folder = join(nnunet_folder("nnUNet_raw", UnlabelledDataError), convert_id_to_dataset_name(dataset_id))
    return len(find_unlabelled_cases(raw_folder, load_json(join(raw_folder, "dataset.json"))))


def plan_and_preprocess(dataset_id: int, configurations: Sequence[str] = ("2d", "3d_fullres"),
                        num_processes: int = 4, planner_name: str = "ExperimentPlanner",
                        gpu_memory_target_in_gb: Optional[float] = None, overwrite_plans_name: Optional[str] = None,
                        verify_dataset_integrity: bool = False, preprocess: bool = True) -> str:
    """Fingerprint, plan with the unlabelled cases counted, preprocess the labelled and the unlabelled cases of
    each configuration. Returns the plans identifier."""
    num_unlabelled = count_unlabelled_cases(dataset_id)
    extract_fingerprint_dataset(dataset_id, num_processes=num_processes,
                                check_dataset_integrity=verify_dataset_integrity, clean=False, verbose=False)
    planner = planner_counting_unlabelled(find_planner_class(planner_name), num_unlabelled)
    _, plans_identifier = plan_experiment_dataset(dataset_id, planner, gpu_memory_target_in_gb,
                                                  overwrite_plans_name=overwrite_plans_name)
    if preprocess:
        preprocess_labelled_and_unlabelled(dataset_id, plans_identifier, configurations, num_processes)
    return plans_identifier


def preprocess_labelled_and_unlabelled(dataset_id: int, plans_identifier: str, configurations: Sequence[str],
                                       num_processes: int = 4) -> None:
    """nnU-Net's preprocessing of the labelled cases, then the same for the unlabelled ones, for each configuration
    the plans hold (configurations the plans lack are skipped, as nnUNetv2_plan_and_preprocess does)."""
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import convert_id_to_dataset_name

    plans = load_json(join(nnUNet_preprocessed, convert_id_to_dataset_name(dataset_id), plans_identifier + ".json"))
    configurations = [c for c in configurations if c in plans["configurations"]]
    preprocess_dataset(dataset_id, plans_identifier, configurations, [num_processes] * len(configurations))
    for configuration in configurations:
        preprocess_unlabelled(dataset_id, configuration, plans_identifier, num_processes)


def plan_and_preprocess_entry(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog="nnunetv2_dualunc plan-and-preprocess",
        description=f"nnUNetv2_plan_and_preprocess for a semi-supervised dataset: the planner counts the cases in "
                    f"{UNLABELLED_IMAGES_FOLDER}/ when it caps the batch size; labelled and unlabelled cases are "
                    f"preprocessed. Train every method of a comparison on these plans.")
    parser.add_argument("-d", type=int, required=True, help="dataset id")
    parser.add_argument("-c", nargs="+", default=["2d", "3d_fullres"], help="configurations to preprocess")
    parser.add_argument("-np", type=int, default=4, help="processes")
    parser.add_argument("-pl", default="ExperimentPlanner", help="nnU-Net planner class (as -pl of nnU-Net)")
    parser.add_argument("-gpu_memory_target", type=float, default=None)
    parser.add_argument("-overwrite_plans_name", default=None)
    parser.add_argument("--verify_dataset_integrity", action="store_true")
    parser.add_argument("--no_pp", action="store_true", help="plan only")
    args = parser.parse_args(argv)
    # nnU-Net's planner calls torch.set_num_threads(nnUNet_n_proc_DA); 0 crashes it
    if os.environ.get("nnUNet_n_proc_DA") == "0":
        os.environ["nnUNet_n_proc_DA"] = "1"
    try:
        plans_identifier = plan_and_preprocess(args.d, args.c, args.np, args.pl, args.gpu_memory_target,
                                               args.overwrite_plans_name, args.verify_dataset_integrity,
                                               not args.no_pp)
    except UnlabelledDataError as error:
        raise SystemExit(f"ERROR: {error}")
    print(f"plans: {plans_identifier} (unlabelled cases counted for the batch size; see '{PLANS_RECORD_KEY}' in "
          f"the plans file)")
