#!/usr/bin/env python3
"""The paired runs of several saved comparisons pooled: each method's gain over the reference, run by run.

`compare_runs.py` pairs the runs of work folders it can read. The work folders of earlier teachers went with their
machines, but each comparison's <out>.json keeps every run's mean Dice per method and its difference to the
reference. This pools those per-run differences over several files (all with the same reference), so that a verdict
over every paired run of a method (e.g. "+3 on average, positive in every run") comes from the files, not from typing:

    .venv/bin/python benchmarks/pool_comparisons.py \\
        t6=docs/results/2026-12-04_per-foreground-ranking-at-7-labelled/acdc_cpu_warm_teacher6_labeled_7_seeds.json \\
        t7=docs/results/2026-12-05_copy-paste-three-more-seeds-and-postprocessing/acdc_cpu_warm_teacher7_labeled_7_seeds.json \\
        --out docs/results/<date>_<experiment>/acdc_pooled

Case-level statistics (cases better, Wilcoxon) stay in each file's own table: the files hold no per-case values.
"""
import argparse
import json
import statistics
from typing import List, Optional, Sequence, Tuple

from report_files import print_and_save


def pool(comparisons: Sequence[Tuple[str, dict]]) -> dict:
    """comparisons: (label, compare_runs' JSON) pairs. Per method, every paired run labelled 'label/seed'."""
    references = {c["reference"] for _, c in comparisons}
    if len(references) != 1:
        raise ValueError(f"the comparisons have different references ({', '.join(sorted(references))}): pool "
                         f"files made with the same --reference")
    methods = {}
    for label, comparison in comparisons:
        for method, entry in comparison["methods"].items():
            pooled = methods.setdefault(method, {"runs": [], "mean_dice": [], "difference_per_run": []})
            pooled["runs"] += [f"{label}/{seed}" for seed in entry["seeds"]]
            pooled["mean_dice"] += entry["mean_dice"]
            if "difference_per_run" in entry:
                pooled.setdefault("difference_runs", [])
                pooled["difference_runs"] += [f"{label}/{seed}" for seed in entry["difference_seeds"]]
                pooled["difference_per_run"] += entry["difference_per_run"]
    for entry in methods.values():
        differences = entry["difference_per_run"]
        entry["mean_over_runs"] = statistics.fmean(entry["mean_dice"])
        if differences:
            entry["mean_difference"] = statistics.fmean(differences)
            entry["runs_above_reference"] = sum(d > 0 for d in differences)
    return {"reference": references.pop(), "files": [label for label, _ in comparisons], "methods": methods}


def markdown(pooled: dict) -> str:
    reference = pooled["reference"]
    lines = [f"Pooled comparisons: {', '.join(pooled['files'])} (runs named file/seed)", "",
             f"| method | runs | mean Dice over runs | minus {reference}, per run | mean difference | runs above "
             f"{reference} |", "|---|---|---|---|---|---|"]
    for method, e in pooled["methods"].items():
        if e["difference_per_run"]:
            per_run = ", ".join(f"{100 * d:+.1f} ({r})" for d, r in zip(e["difference_per_run"], e["difference_runs"]))
            mean_diff = f"{100 * e['mean_difference']:+.2f} points"
            above = f"{e['runs_above_reference']} / {len(e['difference_per_run'])}"
        else:
            per_run = mean_diff = above = "-"
        lines.append(f"| {method} | {len(e['runs'])} | {e['mean_over_runs']:.4f} | {per_run} | {mean_diff} | {above} |")
    return "\n".join(lines) + "\n"


def _labelled_file(text: str) -> Tuple[str, dict]:
    label, sep, path = text.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: give LABEL=FILE, e.g. t6=docs/results/....json")
    try:
        with open(path) as f:
            return label, json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise argparse.ArgumentTypeError(f"{path}: not a readable compare_runs.py JSON ({e})")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("comparisons", nargs="+", type=_labelled_file, metavar="LABEL=FILE",
                        help="compare_runs.py JSON files, each with a short label for its runs")
    parser.add_argument("--out", help="write <out>.md and <out>.json")
    args = parser.parse_args(argv)
    try:
        pooled = pool(args.comparisons)
    except ValueError as e:
        raise SystemExit(f"ERROR: {e}")
    print_and_save(markdown(pooled), pooled, args.out)


if __name__ == "__main__":
    main()
