#!/usr/bin/env python3
"""Where each point of gain comes from: per setting and seed, the controls and the semi-supervised trainer side by
side, from the benchmark runner's work folders (docs/log/2026-12-07_recipe-controls.md).

Columns (mean Dice over the validation volumes and classes, in points): nnU-Net continued (`supervised_continued`),
supervised copy-paste (`copy_paste_continued`), the recipe without unlabelled images (the method's `_recipe_only`
twin), the method, the oracle under the method's recipe; then the method minus nnU-Net continued (everything), the
twin minus nnU-Net continued (the recipe's share) and the method minus its twin (the unlabelled images' share), and
how much of the twin-to-oracle gap the method closes. A missing run is "-".

    .venv/bin/python benchmarks/gain_sources.py "ACDC 7 labelled, teacher A=/tmp/dualunc_bench/acdc7_20261207_teacherA_seed0/labeled_7" \\
        "ACDC 7 labelled, teacher A=/tmp/dualunc_bench/acdc7_20261207_teacherA_seed1/labeled_7" \\
        --out docs/results/2026-12-07_recipe-controls/...

Writes <out>.md and <out>.json when --out is given; the work folders are only read.
"""
import argparse
from typing import Dict, List, Optional, Sequence, Tuple

from compare_runs import Run, read_run
from report_files import print_and_save

CONTROL, COPY_PASTE = "supervised_continued", "copy_paste_continued"


def dice_points(run: Run, method: Optional[str]) -> Optional[float]:
    """A method's mean Dice in points in this run; None where the run lacks it (or method is None)."""
    return 100 * run.mean_dice(method) if method in run.case_dice else None


def gain_row(label: str, run: Run, method: str, oracle: Optional[str]) -> dict:
    """One setting and seed: each column's mean Dice in points (None where the run lacks it) and the differences."""
    # a run records a twin once its method finished; until then the oracle's twin (the same recipe) stands in
    twin = run.recipe_twins.get(method) or run.recipe_twins.get(oracle)

    def minus(a: Optional[float], b: Optional[float]) -> Optional[float]:
        return None if a is None or b is None else a - b

    row = {"setting": label, "seed": run.seed, "folder": run.folder, "method": method, "twin": twin,
           "control": dice_points(run, CONTROL), "copy_paste": dice_points(run, COPY_PASTE),
           "recipe_only": dice_points(run, twin), "method_dice": dice_points(run, method),
           "oracle": dice_points(run, oracle)}
    row.update(total_gain=minus(row["method_dice"], row["control"]),
               recipe_gain=minus(row["recipe_only"], row["control"]),
               unlabelled_gain=minus(row["method_dice"], row["recipe_only"]))
    gap = minus(row["oracle"], row["recipe_only"])
    row["gap_closed"] = None if gap is None or gap <= 0 or row["unlabelled_gain"] is None \
        else row["unlabelled_gain"] / gap
    return row


def markdown(rows: Sequence[dict]) -> str:
    def cell(value: Optional[float], signed: bool = False, percent: bool = False) -> str:
        if value is None:
            return "-"
        if percent:
            return f"{100 * value:.0f} %"
        return f"{value:+.1f}" if signed else f"{value:.1f}"

    lines = ["| setting | seed | nnU-Net continued | supervised copy-paste | recipe without unlabelled images | "
             "method | oracle under the recipe | method − continued | recipe − continued | method − recipe (the "
             "unlabelled images) | share of the recipe-to-oracle gap closed |", "|---|---|" + "---|" * 9]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['seed']} | {cell(r['control'])} | {cell(r['copy_paste'])} | "
                     f"{cell(r['recipe_only'])} | {cell(r['method_dice'])} | {cell(r['oracle'])} | "
                     f"{cell(r['total_gain'], True)} | {cell(r['recipe_gain'], True)} | "
                     f"{cell(r['unlabelled_gain'], True)} | {cell(r['gap_closed'], percent=True)} |")
    methods = sorted({r["method"] for r in rows})
    return "\n".join(lines) + f"\n\nmethod: {', '.join(methods)}; Dice in points (mean over classes and volumes).\n"


def _labelled_folder(text: str) -> Tuple[str, str]:
    label, separator, folder = text.rpartition("=")
    if not separator or not label:
        raise argparse.ArgumentTypeError(f"{text!r}: give LABEL=WORK_FOLDER")
    return label, folder


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=_labelled_folder, help="LABEL=WORK_FOLDER, one per setting and seed")
    parser.add_argument("--method", default="dualunc_warm_copy_paste_pseudo_dice")
    parser.add_argument("--oracle", default="dualunc_warm_copy_paste_pseudo_dice_oracle")
    parser.add_argument("--out", help="write <out>.md and <out>.json")
    args = parser.parse_args(argv)
    try:
        rows = [gain_row(label, read_run(folder), args.method, args.oracle) for label, folder in args.runs]
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"ERROR: {e}")
    data: Dict[str, object] = {"method": args.method, "oracle": args.oracle, "rows": rows}
    print_and_save(markdown(rows), data, args.out)


if __name__ == "__main__":
    main()
