#!/usr/bin/env python3
"""Repeated demo runs side by side: does the gain from the unlabelled images survive the run-to-run noise?

Each `nnunetv2_dualunc demo --output-dir DIR` leaves DIR/dice_results.json. In one folder every warm start continues
the same supervised model and is compared with the same control (the same model trained as long without the
unlabelled images), so the gains of one folder are paired. This prints, per method, the mean Dice of every run and
its gain over the control in each run.

    .venv/bin/python benchmarks/demo_runs.py /tmp/demo/run1 /tmp/demo/run2 \\
        --out docs/results/<date>_<experiment>/demo_runs

With --test-cases N every run's trained models are first scored again on N synthetic test cases of the run's own
dataset seed (the first ones are the run's own test cases: each split draws from its own random stream), predicted
into --work; a bigger test set separates the gain from the noise of which few lesions a small one happens to hold.

    .venv/bin/python benchmarks/demo_runs.py /tmp/demo/run1 /tmp/demo/run2 --test-cases 120 --work /tmp/demo/retest

Writes <out>.md and <out>.json when --out is given; the demo folders are only read.
"""
import argparse
import json
import os
import statistics
from typing import Dict, List, Optional

from nnunetv2_dualunc.data.synthetic import TEST_IMAGES_FOLDER, dataset_name, write_synthetic_dataset
from nnunetv2_dualunc.demo import DEMO_CONTROL, DEMO_START_MODEL, held_out_dice, predict_command, predictions_done, \
    trainer_output_folder, unlabelled_gains
from nnunetv2_dualunc.nnunet_commands import nnunet_environment, run_logged
from report_files import print_and_save


def read_runs(folders: List[str]) -> Dict[str, dict]:
    runs = {}
    for folder in folders:
        path = os.path.join(folder, "dice_results.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} does not exist: run `nnunetv2_dualunc demo --output-dir {folder}` first")
        runs[folder] = json.load(open(path))
    return runs


def rescore_on_more_test_cases(runs: Dict[str, dict], n_test: int, work: str) -> Dict[str, dict]:
    """The runs with each trained model's Dice on n_test test cases of its run's dataset seed (predicted into work,
    reused when every case was predicted after the checkpoint was written, as the demo itself decides). A method
    without a final checkpoint is dropped rather than kept with its Dice on the smaller test set."""
    rescored = {}
    for index, (folder, run) in enumerate(runs.items()):
        config = json.load(open(os.path.join(folder, "demo_config.json")))
        dataset_id, seed = config["dataset_id"], config["seed"]
        raw = os.path.join(work, f"dataset_seed{seed}_test{n_test}")
        raw_folder = os.path.join(raw, dataset_name(dataset_id))
        if not os.path.isfile(os.path.join(raw_folder, "dataset.json")):
            write_synthetic_dataset(raw, dataset_id, n_labelled=1, n_unlabelled=0, n_test=n_test, seed=seed,
                                    shape=tuple(config["shape"]))
        env = nnunet_environment(folder, num_processes=1)
        dice = {}
        for method in run["dice"]:
            checkpoint = os.path.join(trainer_output_folder(env["nnUNet_results"], method, dataset_id),
                                      "checkpoint_final.pth")
            if not os.path.isfile(checkpoint):
                continue
            prediction_dir = os.path.join(work, f"run{index}_{os.path.basename(os.path.normpath(folder))}", method)
            test_images = os.path.join(raw_folder, TEST_IMAGES_FOLDER)
            if not predictions_done(prediction_dir, test_images, checkpoint):
                os.makedirs(prediction_dir, exist_ok=True)
                run_logged(predict_command(test_images, prediction_dir, dataset_id, method, "cpu"), env,
                           prediction_dir + ".log")
            dice[method] = held_out_dice(prediction_dir, raw_folder)
            print(f"{folder} {method}: mean Dice {dice[method]['mean']:.4f} on {n_test} test cases", flush=True)
        rescored[folder] = dict(run, dice=dice, test_cases=n_test)
    return rescored


def compare(runs: Dict[str, dict], control: str = DEMO_CONTROL, start_model: str = DEMO_START_MODEL) -> dict:
    methods = list(dict.fromkeys(m for run in runs.values() for m in run["dice"]))
    gains_per_run = [unlabelled_gains(run["dice"], control, start_model) for run in runs.values()]
    rows = {}
    for method in methods:
        means = [run["dice"][method]["mean"] if method in run["dice"] else None for run in runs.values()]
        gains = [run_gains.get(method) for run_gains in gains_per_run]
        present = [g for g in gains if g is not None]
        rows[method] = {"mean_dice": means, "gain_over_control": gains,
                        "mean_gain": statistics.mean(present) if present else None,
                        "runs_with_gain": sum(g > 0 for g in present), "paired_runs": len(present)}
    return {"control": control, "folders": list(runs), "seeds": [run.get("seed") for run in runs.values()],
            "methods": rows}


def markdown(comparison: dict) -> str:
    test_cases = f"; each model scored on {comparison['test_cases']} test cases" if comparison.get("test_cases") else ""
    lines = [f"Runs: {'; '.join(comparison['folders'])} (dataset seeds {comparison['seeds']}{test_cases})", "",
             f"| method | mean Dice per run | minus {comparison['control']}, per run (points) | mean | runs above it |",
             "|---|---|---|---|---|"]
    for method, row in comparison["methods"].items():
        dice = ", ".join("-" if d is None else f"{d:.4f}" for d in row["mean_dice"])
        if row["paired_runs"]:
            gains = ", ".join("-" if g is None else f"{100 * g:+.1f}" for g in row["gain_over_control"])
            lines.append(f"| {method} | {dice} | {gains} | {100 * row['mean_gain']:+.2f} | "
                         f"{row['runs_with_gain']} / {row['paired_runs']} |")
        else:
            lines.append(f"| {method} | {dice} | - | - | - |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", help="demo output folders (each with dice_results.json)")
    parser.add_argument("--control", default=DEMO_CONTROL,
                        help=f"the method the others are paired with (default {DEMO_CONTROL})")
    parser.add_argument("--start-model", default=DEMO_START_MODEL,
                        help=f"the supervised model the others continue, not paired (default {DEMO_START_MODEL})")
    parser.add_argument("--test-cases", type=int,
                        help="score every trained model again on this many test cases (the run's own come first)")
    parser.add_argument("--work", help="with --test-cases: folder for the bigger test set and its predictions")
    parser.add_argument("--out", help="write <out>.md and <out>.json")
    args = parser.parse_args(argv)
    runs = read_runs(args.folders)
    if args.test_cases:
        if not args.work:
            parser.error("--test-cases needs --work (a folder for the test images and predictions)")
        runs = rescore_on_more_test_cases(runs, args.test_cases, os.path.abspath(args.work))
    comparison = compare(runs, args.control, args.start_model)
    comparison["test_cases"] = args.test_cases
    print_and_save(markdown(comparison), comparison, args.out)


if __name__ == "__main__":
    main()
