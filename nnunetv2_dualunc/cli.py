"""`nnunetv2_dualunc COMMAND ...`: the plugin's commands, in nnU-Net's flag style.

    trainers                the trainers to choose from, one line each (which one: README, "Which trainer")
    trainer-path            print the folder to export as nnUNet_extTrainer
    preprocess-unlabelled   preprocess imagesUnlabeled/ with an existing plans file (the trainer also does it)
    export                  write a plain nnU-Net model folder (main decoder only) that stock nnU-Net predicts with
    predict-uncertainty     segment a folder with a DualUnc model + voxel-wise uncertainty maps (KL between its
                            decoders) + uncertainty_ranking.tsv (most uncertain case first)
    demo                    synthetic dataset -> plan -> train a start model, the recommended trainer and its
                            controls -> predict -> Dice table, uncertainty maps and pictures
    build-ssl-dataset       write a semi-supervised raw dataset (labelled / unlabelled / validation lists)
    write-ssl-splits        write splits_final.json (fold 0: labelled -> validation) after preprocessing
    add-cpu-configuration   add a CPU-sized configuration (inherits 2d: coarser spacing, 128 patches, 16->256)
    plan-and-preprocess     nnU-Net's planning with the unlabelled cases counted, then preprocessing (all methods
                            of a comparison share these plans)
    evaluate                Dice, Jaccard, HD95, ASD, ASSD (voxels and mm) of a prediction folder vs references
"""
import argparse
import os
import sys
from typing import List, Optional

from nnunetv2_dualunc.nnunet_commands import trainer_folder
from nnunetv2_dualunc.nnunet_folders import how_to_set, missing_folder_variables


def ext_trainer_hint() -> Optional[str]:
    """A how-to when nnUNet_extTrainer does not point at this plugin's trainers, else None."""
    folder = trainer_folder()
    configured = [os.path.abspath(p) for p in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    if folder in configured:
        return None
    return (f"nnUNet_extTrainer does not include this plugin's trainers, so `nnUNetv2_train ... -tr "
            f"nnUNetTrainerDualUnc` cannot find them. Set it with:\n"
            f"    export nnUNet_extTrainer=$(nnunetv2_dualunc trainer-path)\n"
            f"(currently nnUNet_extTrainer={os.environ.get('nnUNet_extTrainer', '<unset>')})")


# nnU-Net's folder variables each command reads. nnunetv2.paths only fails when an unset one is first used, deep
# inside nnU-Net; checking them here names the variable and the fix before any work starts.
NNUNET_FOLDERS_NEEDED = {
    "preprocess-unlabelled": ("nnUNet_raw", "nnUNet_preprocessed"),
    "plan-and-preprocess": ("nnUNet_raw", "nnUNet_preprocessed"),
    "write-ssl-splits": ("nnUNet_raw", "nnUNet_preprocessed"),
    "add-cpu-configuration": ("nnUNet_preprocessed",),
    "export": ("nnUNet_results",),
    "predict-uncertainty": ("nnUNet_results",),
}  # build-ssl-dataset checks nnUNet_raw itself: `-o FOLDER` replaces it
# the steps before and after nnUNetv2_train: where a missing nnUNet_extTrainer is worth pointing out
COMMANDS_WITH_EXT_TRAINER_HINT = ("build-ssl-dataset", "plan-and-preprocess", "preprocess-unlabelled",
                                  "write-ssl-splits", "add-cpu-configuration", "export", "predict-uncertainty")


def missing_nnunet_folders_message(command: str) -> Optional[str]:
    """What to export when nnU-Net folder variables that the command needs are unset, else None."""
    missing = missing_folder_variables(NNUNET_FOLDERS_NEEDED.get(command, ()))
    if not missing:
        return None
    return (f"`nnunetv2_dualunc {command}` needs nnU-Net's environment variable(s) {', '.join(missing)}, not set "
            f"in this shell. Fix: {how_to_set(missing)}")


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that name a trained model folder, as nnUNetv2_predict spells them."""
    parser.add_argument("-d", required=True, help="dataset name or id")
    parser.add_argument("-c", required=True, help="configuration, e.g. 2d")
    parser.add_argument("-tr", default="nnUNetTrainerDualUnc", help="trainer the model was trained with")
    parser.add_argument("-p", default="nnUNetPlans", help="plans identifier")
    parser.add_argument("-f", nargs="+", default=None, help="folds (default: all found)")
    parser.add_argument("-chk", default="checkpoint_final.pth", help="checkpoint name")


def _model_folder_and_folds(args: argparse.Namespace) -> tuple:
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    try:
        folder = get_output_folder(args.d, args.tr, args.p, args.c)
    except (RuntimeError, ValueError) as e:
        raise SystemExit(f"ERROR: unknown dataset {args.d!r}: {e}")
    if not os.path.isdir(folder):
        raise SystemExit(f"ERROR: no trained model in {folder}: train it with `nnUNetv2_train {args.d} {args.c} FOLD "
                         f"-tr {args.tr}` or check -d/-c/-tr/-p")
    folds = [f if f == "all" else int(f) for f in args.f] if args.f else None
    return folder, folds


def _export_entry(argv: List[str]) -> None:
    from nnunetv2_dualunc.inference.export import export_plain_model

    parser = argparse.ArgumentParser(prog="nnunetv2_dualunc export",
                                     description="Export a trained model as a plain nnU-Net model folder "
                                                 "(main decoder only, trainer nnUNetTrainer).")
    _add_model_arguments(parser)
    parser.add_argument("-o", required=True, help="output folder; the model folder is written in it as "
                                                  "nnUNetTrainer__PLANS__CONFIGURATION (printed at the end), the "
                                                  "folder nnUNetv2_predict_from_modelfolder -m takes")
    args = parser.parse_args(argv)
    folder, folds = _model_folder_and_folds(args)
    try:
        print(export_plain_model(folder, args.o, folds, args.chk))
    except (FileNotFoundError, FileExistsError, ValueError) as e:  # their messages name the file and the fix
        raise SystemExit(f"ERROR: {e}")


def _predict_uncertainty_entry(argv: List[str]) -> None:
    import torch

    from nnunetv2_dualunc.inference.uncertainty_maps import predict_uncertainty_folder

    parser = argparse.ArgumentParser(prog="nnunetv2_dualunc predict-uncertainty",
                                     description="Segment a folder of images with a trained DualUnc model and write "
                                                 "voxel-wise uncertainty maps (KL between its two decoders, Eq. 2) "
                                                 "and uncertainty_ranking.tsv (most uncertain case first), with "
                                                 "uncertainty_overview.png (the most uncertain cases at a glance).")
    parser.add_argument("-i", required=True, help="input folder (nnU-Net naming: CASE_0000.nii.gz, ...)")
    parser.add_argument("-o", required=True, help="output folder")
    _add_model_arguments(parser)
    parser.add_argument("-device", default="cuda", choices=("cuda", "cpu", "mps"), help="as nnUNetv2_predict")
    parser.add_argument("--disable_tta", action="store_true", help="no test-time mirroring (faster)")
    parser.add_argument("-ref", default=None, help="optional folder of reference segmentations (CASE<file ending>), "
                                                   "shown beside the predictions in uncertainty_overview.png")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("ERROR: -device cuda, but torch sees no CUDA GPU here: pass -device cpu")
    folder, folds = _model_folder_and_folds(args)
    try:
        predict_uncertainty_folder(folder, args.i, args.o, folds, args.chk, torch.device(args.device),
                                   use_mirroring=not args.disable_tta, reference_folder=args.ref)
    except (FileNotFoundError, ValueError) as e:  # their messages name the file and the fix
        raise SystemExit(f"ERROR: {e}")


def main(argv: Optional[List[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    commands = {
        "trainers": lambda rest: print(_lazy("nnunetv2_dualunc.training.catalogue", "format_catalogue")()),
        "trainer-path": lambda rest: print(trainer_folder()),
        "preprocess-unlabelled": lambda rest: _lazy("nnunetv2_dualunc.data.unlabelled", "preprocess_unlabelled_entry")(rest),
        "export": _export_entry,
        "predict-uncertainty": _predict_uncertainty_entry,
        "demo": lambda rest: _lazy("nnunetv2_dualunc.demo", "demo_entry")(rest),
        "build-ssl-dataset": lambda rest: _lazy("nnunetv2_dualunc.data.ssl_dataset", "build_ssl_dataset_entry")(rest),
        "write-ssl-splits": lambda rest: _lazy("nnunetv2_dualunc.data.ssl_dataset", "write_ssl_splits_entry")(rest),
        "add-cpu-configuration": lambda rest: _lazy("nnunetv2_dualunc.cpu_configuration",
                                                    "add_cpu_configuration_entry")(rest),
        "plan-and-preprocess": lambda rest: _lazy("nnunetv2_dualunc.data.ssl_planning", "plan_and_preprocess_entry")(rest),
        "evaluate": lambda rest: _lazy("nnunetv2_dualunc.evaluation.evaluate_folders", "evaluate_entry")(rest),
    }
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print(__doc__)
        raise SystemExit(0 if argv and argv[0] in ("-h", "--help") else 2)
    command, rest = argv[0], argv[1:]
    if command in COMMANDS_WITH_EXT_TRAINER_HINT and (hint := ext_trainer_hint()) is not None:
        print(f"NOTE: {hint}", file=sys.stderr)
    if not {"-h", "--help"} & set(rest) and (problem := missing_nnunet_folders_message(command)) is not None:
        raise SystemExit(f"ERROR: {problem}")
    commands[command](rest)


def _lazy(module: str, name: str):
    import importlib

    return getattr(importlib.import_module(module), name)


if __name__ == "__main__":
    main()
