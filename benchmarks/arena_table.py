#!/usr/bin/env python3
"""The comparison arena's table: every semi-supervised method of a benchmark run against the three controls, per
setting and seed, with its cost per step (benchmarks/arena.sh runs the methods; docs/RESULTS.md shows the table).

Columns (mean Dice over the validation volumes and classes, in points): the method; the method minus nnU-Net
continued (`supervised_continued`), minus supervised copy-paste (`copy_paste_continued`) and minus its own recipe
without unlabelled images (its `_recipe_only` twin: what the unlabelled images add); the seconds per training step
relative to the recommended trainer's, read from a `benchmarks/speed.py` result (the slowest phase a trainer was
timed in). A run or a step cost that is missing is "-".

    .venv/bin/python benchmarks/arena_table.py "ACDC 3 labelled=$KEEP/acdc3_teacherA_seed0" \\
        "ACDC 7 labelled, teacher B=$KEEP/acdc7_teacherB_seed0" \\
        --step-cost docs/results/2026-12-07_baseline-step-cost/speed_2d_cpu_cpu.json --out docs/results/<date>_arena/table

Writes <out>.md and <out>.json when --out is given; the run folders are only read.
"""
import argparse
import json
from typing import Dict, List, Optional, Sequence

from compare_runs import Run, read_run
from gain_sources import COPY_PASTE, _labelled_folder, gain_row
from report_files import print_and_save

from nnunetv2_dualunc.training.baselines.catalogue import BASELINE_METHOD_NAMES

RECOMMENDED = "dualunc_warm_copy_paste_pseudo_dice"
#: the trainer that speed.py times for a method (its warm start steps as it does from scratch)
_TIMED_TRAINER = {**{method: trainer for trainer, method in BASELINE_METHOD_NAMES.items()},
                  RECOMMENDED: "nnUNetTrainerDualUncPlus", "copy_paste": "nnUNetTrainerCopyPaste"}
_NOT_METHODS = ("supervised", "supervised_continued", COPY_PASTE)


def timed_trainer(method: str) -> Optional[str]:
    """The product trainer whose step speed.py measured for this benchmark method, or None."""
    return _TIMED_TRAINER.get(method.removesuffix("_continued"))


def step_costs(speed_result: dict) -> Dict[str, float]:
    """trainer -> seconds per step relative to the recommended trainer's, each at its slowest timed phase."""
    slowest: Dict[str, float] = {}
    for run in speed_result["runs"]:
        slowest[run["trainer"]] = max(slowest.get(run["trainer"], 0.0), run["s_per_iteration"])
    reference = slowest.get(_TIMED_TRAINER[RECOMMENDED])
    if not reference:
        raise ValueError(f"the speed result has no run of {_TIMED_TRAINER[RECOMMENDED]}, the reference of the costs")
    return {trainer: seconds / reference for trainer, seconds in slowest.items()}


def arena_methods(run: Run) -> List[str]:
    """The run's semi-supervised methods: those with a recipe-only twin, the twins and oracles left out."""
    return sorted(m for m in run.recipe_twins if m not in _NOT_METHODS and not m.endswith("_oracle"))


def arena_rows(label: str, run: Run, methods: Sequence[str], costs: Dict[str, float]) -> List[dict]:
    """gain_sources' row of each method (None where a run lacks it), plus its difference to supervised copy-paste
    and its step cost."""
    rows = []
    for method in methods:
        row = gain_row(label, run, method, oracle="")
        copy_paste = row["copy_paste"]
        row["minus_copy_paste"] = None if row["method_dice"] is None or copy_paste is None \
            else row["method_dice"] - copy_paste
        row["step_cost"] = costs.get(timed_trainer(method) or "")
        rows.append(row)
    return rows


def markdown(rows: Sequence[dict]) -> str:
    def cell(value: Optional[float], fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    lines = ["| setting | seed | method | Dice | − nnU-Net continued | − supervised copy-paste | − its recipe without "
             "unlabelled images | step cost (× recommended) |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['setting']} | {r['seed']} | {r['method']} | {cell(r['method_dice'], '.1f')} | "
              f"{cell(r['total_gain'], '+.1f')} | {cell(r['minus_copy_paste'], '+.1f')} | "
              f"{cell(r['unlabelled_gain'], '+.1f')} | {cell(r['step_cost'], '.2f')} |" for r in rows]
    return "\n".join(lines) + "\n\nDice in points (mean over classes and validation volumes); differences paired " \
                              "within each run (same teacher, seed and validation volumes).\n"


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=_labelled_folder, help="LABEL=WORK_FOLDER, one per setting and seed")
    parser.add_argument("--methods", nargs="+", help="default: every method of a run that has a recipe-only twin")
    parser.add_argument("--step-cost", help="a benchmarks/speed.py result (JSON) for the cost column")
    parser.add_argument("--out", help="write <out>.md and <out>.json")
    args = parser.parse_args(argv)
    try:
        costs = {}
        if args.step_cost:
            with open(args.step_cost) as f:
                costs = step_costs(json.load(f))
        rows = []
        for label, folder in args.runs:
            run = read_run(folder)
            rows += arena_rows(label, run, args.methods or arena_methods(run), costs)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"ERROR: {e}")
    print_and_save(markdown(rows), {"rows": rows, "step_cost_file": args.step_cost}, args.out)


if __name__ == "__main__":
    main()
