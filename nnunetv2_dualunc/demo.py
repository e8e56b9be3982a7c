"""End-to-end demo: the synthetic semi-supervised dataset (data/synthetic.py), real nnU-Net runs, a Dice table.

Each step is the nnU-Net command a user would type (plan and preprocess, train, predict), plus the plugin's
predict-uncertainty for the DualUnc model. The default methods are the recommended use: a supervised model, then that
model continued with the unlabelled images and, as the controls, without them. Re-running on the same folder resumes.
"""
import argparse
import contextlib
import io
import json
import os
import re
import sys
import time
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from nnunetv2_dualunc.data.synthetic import (CHANNEL_SUFFIX, DATASET_ID, DEMO_PRESET, FILE_ENDING, LABELS,
                                             TEST_IMAGES_FOLDER, TEST_LABELS_FOLDER, dataset_name,
                                             write_synthetic_dataset)
from nnunetv2_dualunc.nnunet_commands import console_script, nnunet_environment, run_logged, train_command
from nnunetv2_dualunc.plots import plot_uncertainty_vs_dice
from nnunetv2_dualunc.run_layout import (RANKING_VS_DICE_FILE, SEMI_SUPERVISED_PROGRESS_FILE, UNCERTAINTY_OVERVIEW_FILE,
                                         UNCERTAINTY_RANKING_FILE, ranking_histogram_path, sample_ranking_path)

#: the recommended use (README): a supervised model (DEMO_START_MODEL), then that model continued with the unlabelled
#: images (DEMO_RECOMMENDED) and, as the controls the gain is measured against, for as long without them: nnU-Net
#: continued (DEMO_CONTROL) and supervised copy-paste continued (DEMO_COPY_PASTE, a strong recipe of labelled images
#: alone)
DEMO_START_MODEL = "nnUNetTrainer_demo"
DEMO_CONTROL = "nnUNetTrainerContinued_demo"
DEMO_COPY_PASTE = "nnUNetTrainerCopyPasteWarmStart_demo"
DEMO_RECOMMENDED = "nnUNetTrainerDualUncPlus_demo"
#: in this order: the others continue the first
DEMO_METHODS = (DEMO_START_MODEL, DEMO_CONTROL, DEMO_COPY_PASTE, DEMO_RECOMMENDED)
#: the console shows the most uncertain test cases only; the whole ranking goes to a file beside the maps
UNCERTAIN_CASES_SHOWN = 10
CONFIGURATION = "2d"
PLANS_IDENTIFIER = "nnUNetPlans"
FOLD = "all"
# Lines of nnU-Net's console output worth showing live; the full output goes to output_dir/logs.
_PROGRESS_PATTERN = re.compile(r"Epoch \d+$|train_loss|Pseudo dice|Epoch time|Mean Validation Dice|Training done"
                               r"|unsupervised loss|[Pp]hase|[Ss]tage|[Rr]anking|[Pp]seudo-?label"
                               r"|Preprocessing dataset|Plans were saved|^Predicting |Segmentation export complete"
                               r"|mean KL|WARNING|Error|Traceback")
_PROGRESS_BAR = re.compile(r"\d+%\|")  # tqdm redraws: one "line" per refresh, too many to show
_LOG_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d+: ")


class _Clock:
    """Prints stage headers and progress lines with the time elapsed since the demo started."""

    def __init__(self):
        self.start = time.time()

    def elapsed(self) -> float:
        return time.time() - self.start

    def say(self, message: str) -> None:
        minutes, seconds = divmod(int(self.elapsed()), 60)
        print(f"[demo {minutes:02d}:{seconds:02d}] {message}", flush=True)

    def header(self, title: str) -> None:
        self.say(f"===== {title} =====")


def _run_logged(command: List[str], env: Dict[str, str], log_file: str, clock: _Clock, verbose: bool) -> None:
    """Run a command, show its progress lines (all lines if verbose), keep its full output in log_file."""
    clock.say("$ " + " ".join(os.path.basename(c) if i == 0 else c for i, c in enumerate(command)))

    def show(line: str) -> None:
        shown = _LOG_TIMESTAMP.sub("", line).strip()
        # the plans dicts nnU-Net prints contain words like 'stage': progress lines never start with '{'
        if shown and (verbose or (_PROGRESS_PATTERN.search(shown) and not shown.startswith("{")
                                  and not _PROGRESS_BAR.search(shown))):
            clock.say("  " + shown[:200])

    run_logged(command, env, log_file, on_line=show)


def predict_command(test_images: str, prediction_dir: str, dataset_id: int, method: str, device: str) -> List[str]:
    """nnUNetv2_predict of one demo model (fold "all") on a folder of images; no mirroring: the demo compares models
    and the test cases are many and small."""
    return ["nnUNetv2_predict", "-i", test_images, "-o", prediction_dir, "-d", str(dataset_id), "-c", CONFIGURATION,
            "-f", FOLD, "-tr", method, "-device", device, "--disable_tta", "-npp", "1", "-nps", "1",
            "--disable_progress_bar"]


def trainer_output_folder(results_dir: str, method: str, dataset_id: int) -> str:
    from nnunetv2.utilities.file_path_utilities import convert_trainer_plans_config_to_identifier

    return os.path.join(results_dir, dataset_name(dataset_id),
                        convert_trainer_plans_config_to_identifier(method, PLANS_IDENTIFIER, CONFIGURATION),
                        f"fold_{FOLD}")


def _check_trainers_exist(methods: Sequence[str], env: Dict[str, str]) -> Dict[str, type]:
    """Fail before any long step if nnU-Net cannot find one of the requested trainer classes; return them."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    previous = os.environ.get("nnUNet_extTrainer")
    os.environ["nnUNet_extTrainer"] = env["nnUNet_extTrainer"]
    classes = {}
    try:
        for method in methods:
            try:
                # the search narrates every module it inspects, and importing trainers warns about torch.jit
                with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    classes[method] = recursive_find_trainer_class_by_name(method)
            except RuntimeError as error:
                raise RuntimeError(f"nnU-Net cannot find the trainer '{method}' (searched nnunetv2 and "
                                   f"{env['nnUNet_extTrainer']}); pass existing trainer names with "
                                   f"--methods.") from error
    finally:
        if previous is None:
            del os.environ["nnUNet_extTrainer"]
        else:
            os.environ["nnUNet_extTrainer"] = previous
    return classes


def _record_demo_config(output_dir: str, config: dict) -> None:
    """Refuse to resume a demo folder that was made with another seed or dataset size (stale results)."""
    filename = os.path.join(output_dir, "demo_config.json")
    if os.path.isfile(filename):
        with open(filename) as f:
            previous = json.load(f)
        if previous != config:
            raise ValueError(f"{output_dir} holds a demo run with settings {previous}, not {config}; choose another "
                             f"--output-dir or delete that folder.")
        return
    with open(filename, "w") as f:
        json.dump(config, f, indent=4)


def _preprocessing_done(preprocessed_dir: str, dataset_id: int, n_labelled: int) -> bool:
    folder = os.path.join(preprocessed_dir, dataset_name(dataset_id))
    data_folder = os.path.join(folder, f"{PLANS_IDENTIFIER}_{CONFIGURATION}")
    if not (os.path.isfile(os.path.join(folder, PLANS_IDENTIFIER + ".json")) and os.path.isdir(data_folder)):
        return False
    return len([f for f in os.listdir(data_folder) if f.endswith(".pkl")]) == n_labelled


def predictions_done(prediction_dir: str, test_images_dir: str, checkpoint: str) -> bool:
    """All test cases predicted after the checkpoint was written (a resumed run or a retrained model predicts again)."""
    if not os.path.isdir(prediction_dir):
        return False
    expected = [f.replace(CHANNEL_SUFFIX + FILE_ENDING, FILE_ENDING) for f in os.listdir(test_images_dir)]
    files = [os.path.join(prediction_dir, f) for f in expected]
    return all(os.path.isfile(f) and os.path.getmtime(f) > os.path.getmtime(checkpoint) for f in files)


def held_out_dice(prediction_dir: str, raw_folder: str) -> Dict:
    """dice_per_class of a folder of predictions against the synthetic dataset's held-out references."""
    from nnunetv2_dualunc.evaluation.dice import dice_per_class

    return dice_per_class(prediction_dir, os.path.join(raw_folder, TEST_LABELS_FOLDER),
                          [v for v in LABELS.values() if v != 0], FILE_ENDING)


def format_dice_table(results: Dict[str, dict], labels: Optional[Dict[str, int]] = None) -> str:
    """Markdown table: one row per method, one column per foreground class plus the mean."""
    labels = labels or {name: value for name, value in LABELS.items() if value != 0}
    header = "| method | " + " | ".join(f"{name} ({value})" for name, value in labels.items()) + " | mean |"
    lines = [header, "|" + "---|" * (len(labels) + 2)]
    for method, result in results.items():
        scores = [f"{result['mean_per_class'][value]:.4f}" for value in labels.values()]
        lines.append(f"| {method} | " + " | ".join(scores) + f" | {result['mean']:.4f} |")
    return "\n".join(lines)


def unlabelled_gains(results: Dict[str, dict], control: str = DEMO_CONTROL,
                     start_model: str = DEMO_START_MODEL, continues: Optional[Dict[str, str]] = None
                     ) -> Dict[str, float]:
    """Mean Dice of each method that continued the start model, minus the control's (nnU-Net continued for as many
    steps); empty unless the control was run. A gain of the supervised copy-paste trainer is the recipe's, not the
    unlabelled images'. continues: the model each method continues, where known; a method that continues another
    one (two runs of steps) is left out. Other start models and controls than the demo's own (e.g. budget variants
    of them) are passed by name."""
    if control not in results:
        return {}
    continues = continues or {}
    return {method: result["mean"] - results[control]["mean"] for method, result in results.items()
            if method not in (control, start_model) and continues.get(method, start_model) == start_model}


def chained_gains(results: Dict[str, dict], continues: Dict[str, str],
                  start_model: str = DEMO_START_MODEL) -> Dict[str, Tuple[str, float]]:
    """For each method that continues another method of this run (not the start model): that method and the mean
    Dice gained over it, its own steps included."""
    chained = {method: start for method, start in continues.items()
               if method in results and start in results and start != start_model}
    return {method: (start, results[method]["mean"] - results[start]["mean"]) for method, start in chained.items()}


def format_gains(results: Dict[str, dict], gains: Dict[str, float],
                 chained: Optional[Dict[str, Tuple[str, float]]] = None) -> str:
    """Where each point comes from: every continuation against nnU-Net continued, a chained method against the model
    it continues, and the recommended trainer against supervised copy-paste (what the unlabelled images add to the
    recipe); empty without the control."""
    if not gains:
        return ""
    lines = [f"Mean Dice points over {DEMO_CONTROL} (nnU-Net continued: same start model, same extra steps):"]
    lines += [f"  {method}: {100 * gain:+.1f}" for method, gain in gains.items()]
    lines += [f"{method} over {start}, the model it continues (its own steps on top): {100 * gain:+.1f}"
              for method, (start, gain) in (chained or {}).items()]
    if DEMO_COPY_PASTE in results and DEMO_RECOMMENDED in results:
        added = results[DEMO_RECOMMENDED]["mean"] - results[DEMO_COPY_PASTE]["mean"]
        lines.append(f"What the unlabelled images add to the supervised copy-paste recipe ({DEMO_RECOMMENDED} minus "
                     f"{DEMO_COPY_PASTE}): {100 * added:+.1f}")
    lines.append("One run decides nothing: training is not seeded, and the control alone moved by 3 points across "
                 "ten runs of this demo.")
    return "\n".join(lines)


def format_next_steps(pictures: Dict[str, List[str]]) -> str:
    """The pictures of each DualUnc model, and the commands for one's own data."""
    lines = []
    for method, files in pictures.items():
        lines.append(f"Pictures of {method}:")
        lines += [f"  {path}" for path in files]
    lines += ["Next, on your own nnU-Net dataset (README, \"Using it on your own dataset\"): put the unannotated "
              "images in imagesUnlabeled/ beside imagesTr/, then",
              "  export nnUNet_extTrainer=$(nnunetv2_dualunc trainer-path)",
              "  nnUNetv2_train DATASET 2d 0 -tr nnUNetTrainer                          # or the model you have",
              "  nnUNetv2_train DATASET 2d 0 -tr nnUNetTrainerCopyPasteWarmStart        # the control: labelled "
              "images only",
              "  nnUNetv2_train DATASET 2d 0 -tr nnUNetTrainerDualUncPlusFromCopyPaste  # the control's model "
              "continued with the unlabelled images"]
    return "\n".join(lines)


def format_uncertainty_ranking(ranking_file: str, case_dice: Dict[str, Dict[int, float]],
                               scatter_path: Optional[str] = None) -> Tuple[str, float]:
    """The predict-uncertainty ranking beside each case's Dice, and their Spearman correlation (negative: the cases
    the model is least sure about are the ones it segments worst); given scatter_path, the same pairs as a picture."""
    from scipy.stats import spearmanr

    from nnunetv2_dualunc.inference.uncertainty_maps import read_uncertainty_ranking

    ranking = read_uncertainty_ranking(ranking_file)
    dice = [float(np.mean(list(case_dice[c.case].values()))) for c in ranking]
    lines = ["| rank (most uncertain first) | case | mean KL over foreground | Dice (mean) |", "|---|---|---|---|"]
    lines += [f"| {rank} | {c.case} | {c.mean_kl_foreground:.6g} | {d:.4f} |"
              for rank, (c, d) in enumerate(zip(ranking, dice), start=1)]
    rho = float(spearmanr([c.mean_kl_foreground for c in ranking], dice)[0]) if len(ranking) > 1 else float("nan")
    if scatter_path is not None:
        plot_uncertainty_vs_dice([c.mean_kl_foreground for c in ranking], dice, rho, scatter_path)
    return "\n".join(lines), rho


def run_demo(output_dir: str, seed: int = 0, methods: Sequence[str] = DEMO_METHODS,
             dataset_preset: Optional[dict] = None, dataset_id: int = DATASET_ID, num_processes: int = 2,
             verbose: bool = False, device: str = "cpu") -> dict:
    """Write the synthetic dataset, plan + preprocess, train and predict each method with nnU-Net, score Dice.

    device is passed to nnUNetv2_train/-predict ("cpu" or "cuda"); on cuda nnU-Net's background augmentation
    workers are kept (on a 2-core CPU they cost more than they save, so the CPU demo runs augmentation in-process).

    Re-running on the same output_dir resumes: finished steps are skipped, interrupted training continues
    from its latest checkpoint. Writes dice_results.json and dice_table.md into output_dir and returns
    {"dice": {method: dice_per_class result}, "timings_s": {step: seconds}}."""
    from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc

    clock = _Clock()
    output_dir = os.path.abspath(output_dir)
    preset = dict(DEMO_PRESET if dataset_preset is None else dataset_preset)
    methods = list(methods)
    env = nnunet_environment(output_dir, num_processes)
    clock.header(f"Checking trainers {', '.join(methods)}")
    trainer_classes = _check_trainers_exist(methods, env)
    os.makedirs(os.path.join(output_dir, "logs"), exist_ok=True)
    _record_demo_config(output_dir, {"seed": seed, "dataset_id": dataset_id,
                                     **{k: list(v) if isinstance(v, tuple) else v for k, v in preset.items()}})
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.makedirs(env[key], exist_ok=True)
    timings = {}

    def finish(step: str, started: float) -> None:
        timings[step] = round(time.time() - started, 1)
        clock.say(f"{step} took {timings[step]:.0f} s")

    started = time.time()
    raw_folder = os.path.join(env["nnUNet_raw"], dataset_name(dataset_id))
    clock.header(f"Synthetic dataset {dataset_name(dataset_id)} (seed {seed}, {preset})")
    if os.path.isfile(os.path.join(raw_folder, "dataset.json")):
        clock.say("already written")
    else:
        write_synthetic_dataset(env["nnUNet_raw"], dataset_id, seed=seed, **preset)
    finish("dataset", started)

    started = time.time()
    clock.header("nnU-Net planning and preprocessing")
    if _preprocessing_done(env["nnUNet_preprocessed"], dataset_id, preset["n_labelled"]):
        clock.say("already done")
    else:
        # nnU-Net's planner calls torch.set_num_threads(nnUNet_n_proc_DA): 0 would crash it
        plan_env = dict(env, nnUNet_n_proc_DA=str(max(1, num_processes)))
        _run_logged([console_script("nnUNetv2_plan_and_preprocess"), "-d", str(dataset_id), "-c", CONFIGURATION,
                     "--verify_dataset_integrity", "-npfp", str(num_processes), "-np", str(num_processes)],
                    plan_env, os.path.join(output_dir, "logs", "plan_and_preprocess.log"), clock, verbose)
    finish("plan_and_preprocess", started)

    # data augmentation in the training process itself: worker processes cost more than they save on 2 cores
    train_env = dict(env, nnUNet_n_proc_DA="0") if device == "cpu" else env
    results, uncertainty = {}, {}
    for method in methods:
        trainer_folder = trainer_output_folder(env["nnUNet_results"], method, dataset_id)
        checkpoint = os.path.join(trainer_folder, "checkpoint_final.pth")
        started = time.time()
        clock.header(f"Training {method} ({CONFIGURATION}, fold {FOLD}, {device})")
        if os.path.isfile(checkpoint):
            clock.say("already trained (checkpoint_final.pth exists)")
        else:
            command = train_command(dataset_id, CONFIGURATION, FOLD, method, device, trainer_folder)
            if "--c" in command:
                clock.say("found an interrupted training: continuing it (--c)")
            _run_logged([console_script(command[0])] + command[1:], train_env, os.path.join(output_dir, "logs", f"train_{method}.log"), clock,
                        verbose)
        finish(f"train_{method}", started)

        started = time.time()
        clock.header(f"Predicting the test images with {method}")
        prediction_dir = os.path.join(output_dir, "predictions", method)
        test_images = os.path.join(raw_folder, TEST_IMAGES_FOLDER)
        if predictions_done(prediction_dir, test_images, checkpoint):
            clock.say("already predicted")
        else:
            command = predict_command(test_images, prediction_dir, dataset_id, method, device)
            _run_logged([console_script(command[0])] + command[1:], env,
                        os.path.join(output_dir, "logs", f"predict_{method}.log"), clock, verbose)
        finish(f"predict_{method}", started)
        results[method] = held_out_dice(prediction_dir, raw_folder)
        if issubclass(trainer_classes[method], nnUNetTrainerDualUnc):
            started = time.time()
            uncertainty[method] = _uncertainty_step(method, test_images, checkpoint, results[method]["per_case"],
                                                    dataset_id, device, env, output_dir, clock, verbose)
            finish(f"uncertainty_{method}", started)

    clock.header(f"Result: Dice on the {preset['n_test']} held-out test cases")
    table = format_dice_table(results)
    continues = {method: cls.warm_start_trainer for method, cls in trainer_classes.items()
                 if hasattr(cls, "warm_start_trainer")}
    gains = unlabelled_gains(results, continues=continues)
    gain_lines = format_gains(results, gains, chained_gains(results, continues))
    if gain_lines:
        table += "\n\n" + gain_lines
    pictures = {}
    for method, found in uncertainty.items():
        fold = trainer_output_folder(env["nnUNet_results"], method, dataset_id)
        pictures[method] = [os.path.join(fold, SEMI_SUPERVISED_PROGRESS_FILE),
                            ranking_histogram_path(sample_ranking_path(fold))] + \
            [os.path.join(found["folder"], name) for name in (UNCERTAINTY_OVERVIEW_FILE, RANKING_VS_DICE_FILE)]
    print(table + "\n\n" + format_next_steps(pictures), flush=True)
    timings["total"] = round(clock.elapsed(), 1)
    summary = {"dataset": dataset_name(dataset_id), "seed": seed, "preset": preset, "labels": LABELS,
               "dice": results, "unlabelled_gains": gains, "uncertainty": uncertainty, "timings_s": timings}
    with open(os.path.join(output_dir, "dice_results.json"), "w") as f:
        json.dump(summary, f, indent=2, default=list)
    with open(os.path.join(output_dir, "dice_table.md"), "w") as f:
        f.write(f"# Dice on {dataset_name(dataset_id)} (seed {seed}, {preset['n_labelled']} labelled, "
                f"{preset['n_unlabelled']} unlabelled, {preset['n_test']} test cases)\n\n{table}\n")
    clock.say(f"Done in {timings['total']:.0f} s. Results: {output_dir}/dice_table.md, dice_results.json")
    return {"dice": results, "uncertainty": uncertainty, "timings_s": timings}


def _uncertainty_step(method: str, test_images: str, checkpoint: str, case_dice: Dict[str, Dict[int, float]],
                      dataset_id: int, device: str, env: Dict[str, str], output_dir: str, clock: "_Clock",
                      verbose: bool) -> dict:
    """`nnunetv2_dualunc predict-uncertainty` on the test images; print its case ranking beside each case's Dice."""
    clock.header(f"Uncertainty maps and case ranking with {method} (KL between its two decoders)")
    folder = os.path.join(output_dir, "uncertainty", method)
    ranking_file = os.path.join(folder, UNCERTAINTY_RANKING_FILE)
    if os.path.isfile(ranking_file) and os.path.getmtime(ranking_file) > os.path.getmtime(checkpoint):
        clock.say("already done")
    else:
        _run_logged([console_script("nnunetv2_dualunc"), "predict-uncertainty", "-i", test_images, "-o", folder,
                     "-d", str(dataset_id), "-c", CONFIGURATION, "-f", FOLD, "-tr", method, "-device", device,
                     "--disable_tta", "-ref", os.path.join(os.path.dirname(test_images), TEST_LABELS_FOLDER)],
                    env, os.path.join(output_dir, "logs", f"uncertainty_{method}.log"), clock, verbose)
    table, rho = format_uncertainty_ranking(ranking_file, case_dice, os.path.join(folder, RANKING_VS_DICE_FILE))
    table_file = os.path.join(folder, "ranking_with_dice.md")
    with open(table_file, "w") as f:
        f.write(table + "\n")
    rows = table.splitlines()
    shown = rows[:2 + UNCERTAIN_CASES_SHOWN]
    print("\n".join(shown) + (f"\n... {len(rows) - len(shown)} more cases in {table_file}" if len(rows) > len(shown)
                              else ""), flush=True)
    clock.say(f"Spearman correlation of case uncertainty with case Dice: {rho:+.2f} (negative: the ranking puts the "
              f"worst segmentations first). Maps: {folder}/CASE_uncertainty.nii.gz")
    return {"folder": folder, "spearman_uncertainty_vs_dice": rho}


def demo_entry(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: nnunetv2_dualunc demo [--output-dir DIR] [--seed N] [--methods ...] [--verbose]."""
    parser = argparse.ArgumentParser(
        prog="nnunetv2_dualunc demo",
        description="On a small synthetic semi-supervised dataset (CPU only, about 8 minutes on 2 idle cores): "
                    "train a supervised nnU-Net, continue it with the unlabelled images (nnUNetTrainerDualUncPlus) "
                    "and, as the controls, without them (nnU-Net continued, supervised copy-paste), and compare their "
                    "Dice on held-out cases; uncertainty maps and pictures of the recommended model.")
    parser.add_argument("--output-dir", default="./dualunc_demo",
                        help="Folder for the nnU-Net data, models, predictions and the Dice table; re-running "
                             "on the same folder resumes. Default: ./dualunc_demo")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the synthetic dataset. Default: 0")
    parser.add_argument("--methods", nargs="+", default=list(DEMO_METHODS),
                        help=f"nnU-Net trainer classes to compare. Default: {' '.join(DEMO_METHODS)}")
    parser.add_argument("--verbose", action="store_true", help="Show all nnU-Net output, not only progress lines.")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="Train and predict on this device (nnU-Net's -device). Default: cpu")
    args = parser.parse_args(argv)
    run_demo(args.output_dir, seed=args.seed, methods=args.methods, verbose=args.verbose, device=args.device)
    return 0


if __name__ == "__main__":
    sys.exit(demo_entry())
