#!/usr/bin/env python3
"""Would nnU-Net's own postprocessing change a comparison of finished benchmark runs?

nnU-Net users end with `nnUNetv2_find_best_configuration`, which decides on the validation predictions whether
keeping only the largest connected component (of all foreground, then of each class) helps, and applies that rule
at inference. A recipe can gain Dice and still leave far false positives (copy-paste,
docs/log/2026-12-04_bidirectional-copy-paste.md: mean HD95 8.6 against 2.8 voxels): does the step users already
run remove them, and does the Dice ranking of the methods survive it?

For each work folder (one per seed) and method: the method's validation predictions are copied to
<out>/<run>/<method>/, nnU-Net's `determine_postprocessing` chooses on the copy (against the run's references), its
postprocessed folder is scored with the plugin's metrics and written as <out>/<run>/metrics_<method>.json beside a
results.json with the run's seed, so that `benchmarks/compare_runs.py <out>/<run> ...` pairs the postprocessed
methods exactly as it pairs the raw ones. The postprocessing is chosen and scored on the same validation cases, as
in nnU-Net: optimistic for every method alike. Prints and saves (<out>/postprocessing.md|json) per run and method
what nnU-Net chose and the mean Dice / HD95 as predicted and postprocessed. The work folders are only read;
re-running with more folders or methods adds them and keeps what <out> holds.

    B=/tmp/dualunc_bench
    .venv/bin/python benchmarks/postprocessing.py $B/ACDC7_seed{0,1,2}/labeled_7 \\
        --methods supervised_continued dualunc_warm dualunc_warm_copy_paste --out /tmp/dualunc_bench/pp_teacher6
"""
import argparse
import json
import os
import shutil
import sys
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ext_trainers"))
from benchmark_trainers import TEACHER_PROFILES, trainer_name  # noqa: E402
from nnunetv2.postprocessing.remove_connected_components import determine_postprocessing  # noqa: E402

from nnunetv2_dualunc.atomic_files import atomic_write_json  # noqa: E402
from nnunetv2_dualunc.evaluation.evaluate_folders import evaluate_folders, labels_from_dataset_json  # noqa: E402
from report_files import print_and_save  # noqa: E402
from ssl_benchmark import fold_folder  # noqa: E402


def model_folder(work: str, setup: dict, method: str) -> str:
    """The nnU-Net model folder the runner trained `method` into (the warm-start teacher under its own profile)."""
    profile = setup["profile"]
    if method == "supervised" and profile in TEACHER_PROFILES:
        profile = TEACHER_PROFILES[profile]
    return os.path.dirname(fold_folder(work, setup["dataset_id"], setup["dataset_name"], setup["configuration"],
                                       trainer_name(method, profile)))


def postprocess_method(work: str, setup: dict, method: str, out_run: str, num_processes: int) -> dict:
    """Copy the method's validation predictions, let nnU-Net choose its postprocessing on them, score the result."""
    model = model_folder(work, setup, method)
    validation = os.path.join(model, "fold_0", "validation")
    if not os.path.isdir(validation):
        raise SystemExit(f"ERROR: {validation} does not exist: {method} has not finished in {work}")
    copy = os.path.join(out_run, method)
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(validation, copy)
    dataset_json_file = os.path.join(model, "dataset.json")
    dataset_json = json.load(open(dataset_json_file))
    references = os.path.join(work, "references")
    functions, arguments = determine_postprocessing(copy, references, os.path.join(model, "plans.json"),
                                                    dataset_json_file, num_processes)
    labels, _ = labels_from_dataset_json(dataset_json, dataset_json_file)
    ending = dataset_json["file_ending"]
    raw = json.load(open(os.path.join(work, f"metrics_{method}.json")))
    processed = evaluate_folders(os.path.join(copy, "postprocessed"), references, labels, ending, num_processes)
    with open(os.path.join(out_run, f"metrics_{method}.json"), "w") as f:
        json.dump(processed, f, indent=1)
    steps = [{"function": fn.__name__, "arguments": kw} for fn, kw in zip(functions, arguments)]
    return {"steps": steps, "dice": raw["mean"]["dice"], "dice_postprocessed": processed["mean"]["dice"],
            "hd95_vox": raw["mean"]["hd95_vox"], "hd95_vox_postprocessed": processed["mean"]["hd95_vox"]}


def describe_step(function_name: str, arguments: dict) -> str:
    """"largest of [1, 2, 3]" for nnU-Net's keep-the-largest-component step (a list: all of them as one region)."""
    if function_name == "remove_all_but_largest_component_from_segmentation":
        return f"largest of {arguments['labels_or_regions']}"
    return f"{function_name}({', '.join(f'{k}={v}' for k, v in arguments.items())})"


def postprocess_runs(works: Sequence[str], methods: Sequence[str], out: str, num_processes: int = 1) -> dict:
    """Every (work folder, method) not yet in <out>/postprocessing.json, added to what is there: a run that finishes
    later joins its seeds with one more command."""
    summary = os.path.join(out, "postprocessing.json")
    runs = json.load(open(summary)) if os.path.isfile(summary) else {}
    for work in works:
        done = runs.get(os.path.abspath(work), {}).get("methods", {})
        if all(method in done for method in methods):
            continue
        results = json.load(open(os.path.join(work, "results.json")))
        out_run = os.path.join(out, f"seed{results['seed']}")
        marker = os.path.join(out_run, "results.json")
        holder = json.load(open(marker))["postprocessed_from"] if os.path.isfile(marker) else os.path.abspath(work)
        if holder != os.path.abspath(work):
            raise SystemExit(f"ERROR: {out_run} holds seed {results['seed']} of {holder}; give {work} (same seed, "
                             f"another run) its own --out")
        os.makedirs(out_run, exist_ok=True)
        with open(os.path.join(out_run, "results.json"), "w") as f:
            json.dump({"seed": results["seed"], "postprocessed_from": os.path.abspath(work)}, f, indent=1)
        runs[os.path.abspath(work)] = {"seed": results["seed"], "methods": {**done, **{
            method: postprocess_method(work, results["setup"], method, out_run, num_processes)
            for method in methods if method not in done}}}
        atomic_write_json(runs, summary, indent=1)
    return runs


def markdown(runs: Dict[str, dict]) -> str:
    lines = ["| run (seed) | method | nnU-Net's choice | mean Dice: predicted / postprocessed | mean HD95 (voxels): "
             "predicted / postprocessed |", "|---|---|---|---|---|"]
    for work, run in runs.items():
        for method, r in run["methods"].items():
            chosen = "; ".join(describe_step(step["function"], step["arguments"]) for step in r["steps"]) or "none"
            lines.append(f"| {run['seed']} | {method} | {chosen} | {r['dice']:.4f} / {r['dice_postprocessed']:.4f} | "
                         f"{r['hd95_vox']:.1f} / {r['hd95_vox_postprocessed']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", help="work folders of finished runs (one per seed)")
    parser.add_argument("--methods", nargs="+", help="methods to postprocess (their metrics files "
                        "must exist in every folder)")
    parser.add_argument("--out", required=True, help="folder for the postprocessed runs and postprocessing.md|json")
    parser.add_argument("-np", type=int, default=1, help="processes")
    parser.add_argument("--from-json", action="store_true", help="re-render <out>/postprocessing.json, no work")
    args = parser.parse_args(argv)
    if args.from_json:
        runs = json.load(open(os.path.join(args.out, "postprocessing.json")))
    elif not (args.folders and args.methods):
        parser.error("give the work folders and --methods (or --from-json)")
    else:
        runs = postprocess_runs(args.folders, args.methods, args.out, args.np)
    print_and_save(markdown(runs), runs, os.path.join(args.out, "postprocessing"))


if __name__ == "__main__":
    main()
