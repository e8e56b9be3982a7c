#!/usr/bin/env python3
"""The results table of the README and docs/RESULTS.md, generated from the stored result files.

`docs/results/current.json` names the runs that make the current results: per setting, the stored run folders (each a
copy of a benchmark work folder's `results.json` and `metrics_<method>.json`), the budget and the hardware. Each row
is one setting and seed: nnU-Net continued, supervised copy-paste, the recommended trainer's recipe without unlabelled
images (its twin), the recommended trainer, the oracle under its recipe, and what the unlabelled images add (the
recommended trainer minus its twin), computed by benchmarks/gain_sources.py. Each candidate recipe (`candidates` in
the manifest: measured under its rule, not yet recommended; `start_method` names the model it continues, default
supervised copy-paste) and a held-out test evaluation, where stored, get a table each.

    .venv/bin/python benchmarks/results_table.py --update README.md docs/RESULTS.md

rewrites the part of each file between `<!-- results-table:begin -->` and `<!-- results-table:end -->` (and prints it),
so rerunning it reproduces the tables; the result files are only read.
"""
import argparse
import json
import os
import sys
from typing import List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_runs import Run, read_run  # noqa: E402
from gain_sources import COPY_PASTE, dice_points, gain_row  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST = os.path.join(REPO, "docs", "results", "current.json")
BEGIN, END = "<!-- results-table:begin -->", "<!-- results-table:end -->"


def _cell(value: Optional[float], signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def stored_runs(manifest: dict, results_root: str) -> List[Tuple[str, Run]]:
    """(setting label, run) for every stored run of every setting, each read once."""
    return [(setting["label"], read_run(os.path.join(results_root, folder)))
            for setting in manifest["settings"] for folder in setting["runs"]]


def setting_rows(runs: Sequence[Tuple[str, Run]], method: str, oracle: Optional[str]) -> List[dict]:
    """gain_sources' row of method (and its oracle; None: none) for every stored run; the footnote takes budget and
    hardware from the manifest."""
    return [gain_row(label, run, method, oracle) for label, run in runs]


def candidate_rows(candidate: dict, runs: Sequence[Tuple[str, Run]]) -> List[dict]:
    """The rows of the runs that have this candidate (a recipe measured under its rule, not yet recommended), each
    with the Dice of the model it continues (start_dice)."""
    start = candidate.get("start_method", COPY_PASTE)
    rows = []
    for (_, run), row in zip(runs, setting_rows(runs, candidate["method"], candidate.get("oracle"))):
        if row["method_dice"] is not None:
            row["start_dice"] = dice_points(run, start)
            rows.append(row)
    return rows


def candidate_markdown(candidate: dict, rows: Sequence[dict]) -> List[str]:
    """A candidate's table: the model it continues, its recipe without unlabelled images, itself, the difference."""
    lines = ["", candidate["title"], "", f"| setting | seed | {candidate['start']} | recipe without unlabelled images "
             f"| **{candidate['name']}** | what the unlabelled images add ({candidate['name']} − recipe) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['setting']} | {r['seed']} | {_cell(r['start_dice'])} | {_cell(r['recipe_only'])} | "
              f"**{_cell(r['method_dice'])}** | {_cell(r['unlabelled_gain'], True)} |" for r in rows]
    return lines + ["", candidate["note"]]


def markdown(manifest: dict, rows: Sequence[dict], heldout: Optional[dict],
             candidates: Sequence[Tuple[dict, Sequence[dict]]] = ()) -> str:
    """The main table, then each candidate's (candidate, its rows) that has a run, then the held-out table."""
    lines = ["| setting | seed | nnU-Net continued | supervised copy-paste | recipe without unlabelled images | "
             "**recommended trainer** | oracle (true labels for the unlabelled images) | what the unlabelled images "
             "add (recommended − recipe) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['seed']} | {_cell(r['control'])} | {_cell(r['copy_paste'])} | "
                     f"{_cell(r['recipe_only'])} | **{_cell(r['method_dice'])}** | {_cell(r['oracle'])} | "
                     f"{_cell(r['unlabelled_gain'], True)} |")
    lines.append("")
    lines.append("Mean Dice in points over the validation volumes and foreground classes; \"-\": not run (yet). "
                 + (manifest["protocol"] + " " if "protocol" in manifest else ""))
    places = [f"{setting['hardware']}; result files "
              f"`docs/results/{os.path.dirname(setting['runs'][0]) if setting['runs'] else '-'}`"
              for setting in manifest["settings"]]
    shared = len(set(places)) == 1  # one machine and results folder for every setting: said once
    for setting, place in zip(manifest["settings"], places):  # a setting without a budget of its own: the protocol's
        said = ([setting["budget"]] if setting.get("budget") else []) + ([] if shared else [place])
        lines[-1] += f"{setting['label']}: {'; '.join(said)}. " if said else ""
    lines[-1] = (lines[-1] + (f"Every run: {places[0]}." if shared else "")).rstrip()
    for candidate, candidate_table_rows in candidates:
        if candidate_table_rows:
            lines += candidate_markdown(candidate, candidate_table_rows)
    if heldout:
        lines += ["", heldout["title"], "", "| run | " + " | ".join(heldout["columns"]) + " |",
                  "|---|" + "---|" * len(heldout["columns"])]
        lines += [f"| {row['run']} | " + " | ".join(row["values"]) + " |" for row in heldout["rows"]]
        lines += ["", heldout["note"]]
    return "\n".join(lines)


def replace_block(text: str, table: str, path: str) -> str:
    """text with the part between the markers replaced by table; a file without both markers is refused."""
    if BEGIN not in text or END not in text or text.index(BEGIN) > text.index(END):
        raise ValueError(f"{path} has no {BEGIN} ... {END} block to replace: add the two marker lines where the "
                         f"table goes")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", default=MANIFEST, help="default: docs/results/current.json")
    parser.add_argument("--update", nargs="*", default=[], help="files whose marked block gets the table")
    args = parser.parse_args(argv)
    root = os.path.dirname(os.path.abspath(args.manifest))
    with open(args.manifest) as f:
        manifest = json.load(f)
    heldout = None
    if manifest.get("heldout"):
        with open(os.path.join(root, manifest["heldout"])) as f:
            heldout = json.load(f)
    try:
        runs = stored_runs(manifest, root)
        table = markdown(manifest, setting_rows(runs, manifest["method"], manifest["oracle"]), heldout,
                         [(c, candidate_rows(c, runs)) for c in manifest.get("candidates", [])])
        for path in args.update:
            with open(path) as f:
                text = f.read()
            with open(path, "w") as f:
                f.write(replace_block(text, table, path))
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"ERROR: {e}")
    print(table)


if __name__ == "__main__":
    main()
