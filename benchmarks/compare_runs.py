#!/usr/bin/env python3
"""Several benchmark runs (seeds) of the same subset side by side: is a method's gain larger than the seed noise?

One CPU-profile run per method says little: two seeds of the same supervised baseline differed by 4 Dice points on
ACDC (docs/log/2026-11-25_acdc-cpu-profile-from-scratch.md). This reads the `metrics_<method>.json` files that
`benchmarks/acdc.py` and `benchmarks/hippocampus.py` leave in their work folders (one folder per seed) and reports, per method:

- mean Dice of each run, and mean +- standard deviation over the runs that have the method;
- the difference to a reference method (default: supervised) in each run that has both, and its mean;
- per case (mean Dice over the classes), how many of the validation cases the method segments better than the
  reference, pooled over those runs, with the Wilcoxon signed-rank p-value of the pooled per-case differences
  (cases repeat across seeds, so this p-value understates the uncertainty: read it next to the per-run numbers);
- the same against the method's own recipe-without-unlabelled twin (`<method>_recipe_only`, named in the run's
  results.json), where the run has it: what the unlabelled images add on top of the recipe.

    .venv/bin/python benchmarks/compare_runs.py /tmp/dualunc_bench/ACDC_labeled_7_cpu_seed{0,1}/labeled_7 \\
        --out docs/results/2026-11-25_acdc-cpu-profile-from-scratch/acdc_cpu_labeled_7_seeds

Writes <out>.md and <out>.json when --out is given; the work folders are only read.
"""
import argparse
import glob
import json
import os
import re
import statistics
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from scipy.stats import wilcoxon

from nnunetv2_dualunc.evaluation.evaluate_folders import mean_dice_per_case
from report_files import print_and_save

METRICS_FILE = re.compile(r"^metrics_(?P<method>.+)\.json$")


@dataclass
class Run:
    """One work folder: its seed (from results.json) and each method's per-case mean Dice."""
    folder: str
    seed: Optional[int]
    case_dice: Dict[str, Dict[str, float]]  # method -> case -> mean Dice over the classes
    recipe_twins: Dict[str, str] = field(default_factory=dict)  # method -> its recipe-without-unlabelled twin

    def mean_dice(self, method: str) -> float:
        return statistics.fmean(self.case_dice[method].values())


def read_run(folder: str) -> Run:
    files = sorted(glob.glob(os.path.join(folder, "metrics_*.json")))
    if not files:
        raise FileNotFoundError(f"{folder} holds no metrics_<method>.json: pass the work folder of a finished "
                                f"benchmark run (the folder with results.md)")
    case_dice = {}
    for path in files:
        method = METRICS_FILE.match(os.path.basename(path)).group("method")
        with open(path) as f:
            case_dice[method] = mean_dice_per_case(json.load(f)["per_case"])
    results = {}
    if os.path.isfile(os.path.join(folder, "results.json")):
        with open(os.path.join(folder, "results.json")) as f:
            results = json.load(f)
    return Run(os.path.abspath(folder), results.get("seed"), case_dice, results.get("recipe_twins", {}))


def paired_case_statistics(case_differences: Sequence[float]) -> dict:
    """Cases better than the reference, cases compared and the Wilcoxon signed-rank p of per-case differences (None
    with fewer than two nonzero differences)."""
    nonzero = [d for d in case_differences if d != 0]
    return {"cases_better": sum(d > 0 for d in case_differences), "cases_compared": len(case_differences),
            "wilcoxon_p": float(wilcoxon(nonzero).pvalue) if len(nonzero) >= 2 else None}


def compare(runs: Sequence[Run], reference: str = "supervised") -> dict:
    """Per method: per-run mean Dice, mean/sd over runs, differences to the reference (per run and per case)."""
    methods = sorted({m for r in runs for m in r.case_dice}, key=lambda m: (m != reference, m))
    out = {"reference": reference, "runs": [{"folder": r.folder, "seed": r.seed} for r in runs], "methods": {}}
    for method in methods:
        having = [r for r in runs if method in r.case_dice]
        means = [r.mean_dice(method) for r in having]
        entry = {"seeds": [r.seed for r in having], "mean_dice": means,
                 "mean_over_runs": statistics.fmean(means),
                 "sd_over_runs": statistics.stdev(means) if len(means) > 1 else None}
        if method != reference:
            entry.update(_paired(having, method, lambda run: reference))
        twin = _paired(having, method, lambda run: run.recipe_twins.get(method))
        if twin:
            entry["against_recipe_only"] = dict(twin, twin=sorted({r.recipe_twins[method] for r in having
                                                                   if method in r.recipe_twins}))
        out["methods"][method] = entry
    return out


def _paired(runs: Sequence[Run], method: str, reference_of) -> dict:
    """method against reference_of(run) in every run that has both: per-run and pooled per-case differences ({}:
    no such run)."""
    paired = [(r, reference_of(r)) for r in runs if reference_of(r) in r.case_dice]
    if not paired:
        return {}
    case_differences = []
    for r, reference in paired:
        cases = r.case_dice[reference].keys()
        if set(cases) != set(r.case_dice[method]):
            raise ValueError(f"{r.folder}: {method} and {reference} were evaluated on different cases")
        case_differences += [r.case_dice[method][c] - r.case_dice[reference][c] for c in cases]
    run_differences = [r.mean_dice(method) - r.mean_dice(reference) for r, reference in paired]
    return {"difference_seeds": [r.seed for r, _ in paired], "difference_per_run": run_differences,
            "mean_difference": statistics.fmean(run_differences), **paired_case_statistics(case_differences)}


def _difference_cells(e: dict) -> List[str]:
    """per-run differences, their mean, cases better, Wilcoxon p: four table cells ("-" without a pairing)."""
    if "difference_per_run" not in e:
        return ["-"] * 4
    p = "-" if e["wilcoxon_p"] is None else f"{e['wilcoxon_p']:.3g}"
    return [", ".join(f"{100 * d:+.1f} ({s})" for d, s in zip(e["difference_per_run"], e["difference_seeds"])),
            f"{100 * e['mean_difference']:+.1f} points", f"{e['cases_better']} / {e['cases_compared']}", p]


def markdown(comparison: dict) -> str:
    reference = comparison["reference"]
    seeds = ", ".join(str(r["seed"]) for r in comparison["runs"])
    with_twins = any("against_recipe_only" in e for e in comparison["methods"].values())
    header = (f"| method | mean Dice per run (seed) | mean +- sd over runs | minus {reference}, per run | mean "
              f"difference | cases better than {reference} | Wilcoxon p (pooled cases) |")
    if with_twins:
        header += (" minus its recipe without unlabelled images (own `_recipe_only` twin), per run | mean difference | "
                   "cases better than the twin | Wilcoxon p |")
    lines = [f"Runs (seeds {seeds}): " + "; ".join(r["folder"] for r in comparison["runs"]), "", header,
             "|" + "---|" * (7 + 4 * with_twins)]
    for method, e in comparison["methods"].items():
        per_run = ", ".join(f"{d:.4f} ({s})" for d, s in zip(e["mean_dice"], e["seeds"]))
        spread = f"{e['mean_over_runs']:.4f}" + (f" +- {e['sd_over_runs']:.4f}" if e["sd_over_runs"] is not None else "")
        cells = [method, per_run, spread] + _difference_cells(e)
        if with_twins:
            cells += _difference_cells(e.get("against_recipe_only", {}))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="work folders of finished runs (one per seed)")
    parser.add_argument("--reference", default="supervised", help="method the others are compared with")
    parser.add_argument("--out", help="write <out>.md and <out>.json")
    args = parser.parse_args(argv)
    try:
        comparison = compare([read_run(f) for f in args.folders], args.reference)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"ERROR: {e}")
    print_and_save(markdown(comparison), comparison, args.out)


if __name__ == "__main__":
    main()
