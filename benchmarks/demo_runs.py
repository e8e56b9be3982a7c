#!/usr/bin/env python3
"""Repeated demo runs side by side: does the gain from the unlabelled images survive the run-to-run noise?

Each `nnunetv2_dualunc demo --output-dir DIR` leaves DIR/dice_results.json. In one folder every warm start continues
the same supervised model and is compared with the same control (the same model trained as long without the
unlabelled images), so the gains of one folder are paired. This prints, per method, the mean Dice of every run and
its gain over the control in each run.

    .venv/bin/python benchmarks/demo_runs.py /tmp/demo/run1 /tmp/demo/run2 --out docs/results/demo_runs

Writes <out>.md and <out>.json when --out is given; the demo folders are only read.
"""
import argparse
import json
import os
import statistics
from typing import Dict, List, Optional

from nnunetv2_dualunc.demo import DEMO_CONTROL, DEMO_START_MODEL, unlabelled_gains
from report_files import print_and_save


def read_runs(folders: List[str]) -> Dict[str, dict]:
    runs = {}
    for folder in folders:
        path = os.path.join(folder, "dice_results.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} does not exist: run `nnunetv2_dualunc demo --output-dir {folder}` first")
        runs[folder] = json.load(open(path))
    return runs


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
    lines = [f"Runs: {'; '.join(comparison['folders'])} (dataset seeds {comparison['seeds']})", "",
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
    parser.add_argument("--out", help="write <out>.md and <out>.json")
    args = parser.parse_args(argv)
    comparison = compare(read_runs(args.folders), args.control, args.start_model)
    print_and_save(markdown(comparison), comparison, args.out)


if __name__ == "__main__":
    main()
