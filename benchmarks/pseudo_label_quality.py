#!/usr/bin/env python3
"""How good are the pseudo-labels a self-training run trained with, and would another way of labelling do better?

The benchmarks hide the labels of their "unlabelled" cases, so a finished run (DualUnc, warm start or from scratch)
can be judged stage by stage: every unlabelled case is labelled by several *recipes* from the run's saved weights
and compared, in the preprocessed geometry the trainer uses, with its hidden label preprocessed exactly as nnU-Net
preprocesses a labelled case. The pseudo-labels the run stored (pseudo_labels/stage1, stage2) are scored too, which
also checks that the recipe the trainer uses reproduces them.

Recipes (argmax of the softmax; several weights: mean of their softmax outputs):
    stored_stage1, stored_stage2  the pseudo-labels the run trained with (stage 1: reliable half only)
    NAME               any model's checkpoint given as --checkpoint NAME=PATH, no mirroring (the warm start's
                       loaded model; a control's final model: how well would it label the same cases?)
    teacher            the teacher's weights (last snapshot), no mirroring = how stage 1 is labelled
    teacher_mirrored   the same with nnU-Net's test-time mirroring
    snapshot_mean      the mean of the K snapshots' softmax outputs
    student            the weights after stage 1, no mirroring = how stage 2 is labelled
    student_mirrored   the same with mirroring
    final              the run's checkpoint_final (what one more refresh would label with)
    NAME_lcc           with --largest-component: each of the above after nnU-Net's largest-component
                       postprocessing per class (would cleaning the pseudo-labels this way help?)

    W=/tmp/dualunc_bench/ACDC_warm_seed0/labeled_7
    DUALUNC_ORACLE_LABELS=/work/shared/datasets/ACDC/labelsTr nnUNet_raw=$W/nnUNet_raw \\
    .venv/bin/python benchmarks/pseudo_label_quality.py --fold-folder $W/nnUNet_results/<dataset>/<trainer>/fold_0 \\
        --checkpoint source=<teacher's fold folder>/checkpoint_final.pth --out docs/results/<date>_<experiment>/<name>

Dice per case = mean over the foreground classes of the volume's Dice (a class absent from both: 1). Prints and
saves (--out) a table of mean Dice over all cases, over the reliable and the unreliable half of the run's ranking,
and per class; with --reference R, each recipe's per-case difference to recipe R (e.g. the control's final model:
does the semi-supervised model segment the unlabelled images themselves better?). --from-json re-renders a saved
result without predicting. The run folder and the datasets are only read.
"""
import argparse
import json
import os
import sys
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ext_trainers"))
from benchmark_trainers import hidden_label_file, preprocessed_hidden_label  # noqa: E402
from nnunetv2.postprocessing.remove_connected_components import \
    remove_all_but_largest_component_from_segmentation  # noqa: E402
from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2  # noqa: E402

from nnunetv2_dualunc.data.pseudo_labels import pseudo_label_from_probabilities  # noqa: E402
from nnunetv2_dualunc.data.unlabelled_raw import find_unlabelled_cases  # noqa: E402
from nnunetv2_dualunc.evaluation.evaluate_folders import labels_from_dataset_json  # noqa: E402
from nnunetv2_dualunc.evaluation.metrics import dice  # noqa: E402
from nnunetv2_dualunc.inference.predictors import SnapshotPredictor  # noqa: E402
from nnunetv2_dualunc.method.ranking import RELIABLE, read_ranking  # noqa: E402
from nnunetv2_dualunc.method.schedule import Phase  # noqa: E402
from nnunetv2_dualunc.run_layout import pseudo_label_folder, sample_ranking_path  # noqa: E402
from compare_runs import paired_case_statistics  # noqa: E402
from ranking_quality import FinishedRun, load_network_weights  # noqa: E402
from report_files import print_and_save  # noqa: E402

STORED_PHASES = (Phase.STAGE1.value, Phase.STAGE2.value)


def dice_per_class(prediction: np.ndarray, reference: np.ndarray, labels: Sequence[int]) -> Dict[int, float]:
    """Volume Dice per foreground label (the evaluation's empty-mask policy); voxels outside the image's nonzero
    region (-1) count as background."""
    return {label: dice(prediction == label, reference == label) for label in labels}


def mean_probabilities(predictor: SnapshotPredictor, data: np.ndarray, weights: Sequence[dict]) -> np.ndarray:
    """The mean softmax output of several weights (one weight: its own) on one preprocessed case."""
    total = None
    for w in weights:
        probabilities = predictor.probabilities(data, w)
        total = probabilities if total is None else total + probabilities
    return (total / len(weights)).cpu().numpy()


def summarise(per_case: Dict[str, Dict[int, float]], reliable: Sequence[str], names: Dict[int, str]) -> dict:
    """Mean Dice over all cases, the reliable and the unreliable half (of the cases present), and per class."""
    case_means = {case: float(np.mean(list(scores.values()))) for case, scores in per_case.items()}

    def mean_over(cases: List[str]) -> Optional[float]:
        return float(np.mean([case_means[c] for c in cases])) if cases else None

    labels = sorted(next(iter(per_case.values())))
    reliable = set(reliable)
    return {"cases": len(per_case), "mean_dice": mean_over(list(case_means)),
            "mean_dice_reliable": mean_over([c for c in case_means if c in reliable]),
            "mean_dice_unreliable": mean_over([c for c in case_means if c not in reliable]),
            "mean_dice_per_class": {names.get(label, str(label)): float(np.mean([s[label] for s in per_case.values()]))
                                    for label in labels},
            "per_case": case_means}


def paired_with(summary: dict, reference: dict) -> Optional[dict]:
    """Per-case difference to a reference recipe on the cases both scored: mean (points), cases better, Wilcoxon p."""
    cases = sorted(set(summary["per_case"]) & set(reference["per_case"]))
    differences = [summary["per_case"][c] - reference["per_case"][c] for c in cases]
    if not any(differences):
        return None
    statistics = paired_case_statistics(differences)
    return {"cases": statistics["cases_compared"], "mean_difference_points": float(100 * np.mean(differences)),
            "cases_better": statistics["cases_better"], "wilcoxon_p": statistics["wilcoxon_p"]}


def markdown(summaries: Dict[str, dict], descriptions: Dict[str, str], reference: Optional[str] = None) -> str:
    def cell(value: Optional[float]) -> str:
        return "-" if value is None else f"{value:.4f}"

    class_names = list(next(iter(summaries.values()))["mean_dice_per_class"])
    paired_header = f" minus {reference} (points) | cases better | Wilcoxon p |" if reference else ""
    lines = ["| recipe | what | cases | mean Dice | reliable half | unreliable half | "
             + " | ".join(class_names) + " |" + paired_header,
             "|" + "---|" * (6 + len(class_names) + (3 if reference else 0))]
    for name, s in summaries.items():
        row = (f"| {name} | {descriptions.get(name, '')} | {s['cases']} | {cell(s['mean_dice'])} | "
               f"{cell(s['mean_dice_reliable'])} | {cell(s['mean_dice_unreliable'])} | "
               + " | ".join(cell(s["mean_dice_per_class"][c]) for c in class_names) + " |")
        if reference:
            paired = paired_with(s, summaries[reference])
            row += (" - | - | - |" if paired is None else
                    f" {paired['mean_difference_points']:+.1f} | {paired['cases_better']} / {paired['cases']} | "
                    + ("-" if paired["wilcoxon_p"] is None else f"{paired['wilcoxon_p']:.3g}") + " |")
        lines.append(row)
    return "\n".join(lines) + "\n"


def side_by_side(runs: Dict[str, dict], reference: str) -> str:
    """One row per recipe, per run its mean Dice and its paired difference to the reference (runs: label -> data)."""
    recipes_in_order = list(dict.fromkeys(name for data in runs.values() for name in data["recipes"]))
    lines = ["| recipe | " + " | ".join(f"{label}: mean Dice (minus {reference}, cases better)" for label in runs)
             + " |", "|" + "---|" * (1 + len(runs))]
    for name in recipes_in_order:
        cells = []
        for data in runs.values():
            summary = data["recipes"].get(name)
            paired = paired_with(summary, data["recipes"][reference]) if summary else None
            cells.append("-" if summary is None else f"{summary['mean_dice']:.4f}" + (
                "" if paired is None else f" ({paired['mean_difference_points']:+.1f}, "
                                          f"{paired['cases_better']} / {paired['cases']})"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render(data: dict, reference: Optional[str], out: Optional[str]) -> None:
    if reference and reference not in data["recipes"]:
        raise SystemExit(f"--reference {reference}: no such recipe among {sorted(data['recipes'])}")
    print_and_save(f"Pseudo-label quality against the hidden labels: {data['fold_folder']}\n\n"
                   + markdown(data["recipes"], data["descriptions"], reference), data, out)


def mirroring_axes(run: FinishedRun) -> tuple:
    """The axes nnU-Net mirrors at inference for this run, from its checkpoint (the predictor mirrors nothing
    without them, even with use_mirroring)."""
    for name in ("checkpoint_final.pth", "checkpoint_latest.pth"):
        path = os.path.join(run.fold_folder, name)
        if os.path.isfile(path):
            return tuple(torch.load(path, map_location="cpu", weights_only=False)["inference_allowed_mirroring_axes"])
    raise SystemExit(f"no checkpoint in {run.fold_folder}: the mirroring axes of the run are unknown")


def recipes(run: FinishedRun, checkpoints: Dict[str, str]) -> Dict[str, tuple]:
    """name -> (description, mirroring, weights loader): the ways of labelling that the run's saved weights and the
    given checkpoints (name -> path) allow."""
    schedule = run.schedule
    found = {name: (f"given model {os.path.basename(os.path.dirname(os.path.dirname(path)))}", False,
                    lambda path=path: [load_network_weights(path)]) for name, path in checkpoints.items()}
    found["teacher"] = (f"snapshot after epoch {schedule.teacher_epoch} (stage-1 labeller)", False,
                        lambda: [run.weights(schedule.teacher_epoch)])
    found["teacher_mirrored"] = ("teacher + test-time mirroring", True, lambda: [run.weights(schedule.teacher_epoch)])
    found["snapshot_mean"] = (f"mean softmax of snapshots {list(schedule.snapshot_epochs)}", False,
                              lambda: [run.weights(e) for e in schedule.snapshot_epochs])
    if schedule.stage1_epochs:
        found["student"] = (f"weights after epoch {schedule.student_epoch} (stage-2 labeller)", False,
                            lambda: [run.weights(schedule.student_epoch)])
        found["student_mirrored"] = ("student + test-time mirroring", True,
                                     lambda: [run.weights(schedule.student_epoch)])
    final = os.path.join(run.fold_folder, "checkpoint_final.pth")
    if os.path.isfile(final):
        found["final"] = ("the run's checkpoint_final", False, lambda: [load_network_weights(final)])
    return found


def hidden_label_reader(run: FinishedRun) -> Callable[[str, tuple], np.ndarray]:
    """case, preprocessed shape -> the case's hidden label, preprocessed as nnU-Net preprocesses a labelled case
    ($nnUNet_raw holds the images, $DUALUNC_ORACLE_LABELS the labels)."""
    raw = os.path.join(os.environ["nnUNet_raw"], run.plans_manager.dataset_name)
    images = find_unlabelled_cases(raw, run.dataset_json)

    def hidden_label(case: str, shape: tuple) -> np.ndarray:
        return preprocessed_hidden_label(images[case], hidden_label_file(case, run.dataset_json["file_ending"]),
                                         run.plans_manager, run.configuration_manager, run.dataset_json, shape)

    return hidden_label


def largest_component_per_class(label: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """nnU-Net's "remove all but the largest component" postprocessing, applied to each foreground class."""
    for c in labels:
        label = remove_all_but_largest_component_from_segmentation(label, c)
    return label


def score_recipes(run: FinishedRun, cases: Sequence[str], hidden_label: Callable[[str, tuple], np.ndarray],
                  selected: Dict[str, tuple], labels: Sequence[int],
                  largest_component: bool = False) -> Dict[str, Dict[str, Dict[int, float]]]:
    """Per recipe, per case: Dice per class of its labelling against the hidden label (and the stored stages);
    largest_component: also each labelling after largest_component_per_class, as recipe NAME_lcc."""
    dataset = nnUNetDatasetBlosc2(run.unlabelled_preprocessed_folder, list(cases))
    predictors = {mirroring: SnapshotPredictor(run.network(), run.plans_manager, run.configuration_manager,
                                               run.dataset_json, torch.device("cpu"), use_mirroring=mirroring,
                                               mirroring_axes=mirroring_axes(run) if mirroring else None)
                  for mirroring in {m for _, m, _ in selected.values()}}
    weights = {name: load() for name, (_, _, load) in selected.items()}
    stored = {}
    for phase in STORED_PHASES:
        folder = pseudo_label_folder(run.fold_folder, phase)
        present = [c for c in cases if os.path.isfile(os.path.join(folder, c + ".pkl"))]
        stored[f"stored_{phase}"] = nnUNetDatasetBlosc2(folder, present) if present else None
    names = list(stored) + list(selected)
    results: Dict[str, Dict[str, Dict[int, float]]] = {
        name: {} for name in names + ([f"{n}_lcc" for n in names] if largest_component else [])}
    for i, case in enumerate(cases):
        data, nonzero, _, _ = dataset.load_case(case)
        data, nonzero = np.asarray(data[:]), np.asarray(nonzero[:])
        reference = hidden_label(case, data.shape[1:])

        def score(name: str, label: np.ndarray) -> None:
            results[name][case] = dice_per_class(label, reference, labels)
            if largest_component:
                results[f"{name}_lcc"][case] = dice_per_class(largest_component_per_class(label, labels), reference,
                                                              labels)

        for name, stored_dataset in stored.items():
            if stored_dataset is not None and case in stored_dataset.identifiers:
                score(name, np.asarray(stored_dataset.load_case(case)[1][:]))
        for name, (_, mirroring, _) in selected.items():
            probabilities = mean_probabilities(predictors[mirroring], data, weights[name])
            score(name, pseudo_label_from_probabilities(probabilities, nonzero))
        print(f"[{i + 1}/{len(cases)}] {case}: " + ", ".join(
            f"{n} {np.mean(list(r[case].values())):.3f}" for n, r in results.items() if case in r), flush=True)
    return {name: r for name, r in results.items() if r}


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fold-folder", help="fold folder of a finished self-training run")
    parser.add_argument("--checkpoint", nargs="+", default=[], metavar="NAME=PATH",
                        help="other models' checkpoints to label with (e.g. the warm start's loaded model, a "
                             "control's checkpoint_final.pth), each a recipe called NAME")
    parser.add_argument("--recipes", nargs="+", help="only these recipes (default: all the run allows)")
    parser.add_argument("--reference", help="a recipe every other is paired with, case by case (e.g. the control)")
    parser.add_argument("--largest-component", action="store_true",
                        help="also score every labelling after nnU-Net's largest-component postprocessing per class "
                             "(recipes NAME_lcc)")
    parser.add_argument("--from-json", nargs="+", metavar="OUT.json",
                        help="no predictions: render an earlier result; several: side by side (needs --reference)")
    parser.add_argument("--out", help="write OUT.md and OUT.json")
    args = parser.parse_args(argv)
    if args.from_json and len(args.from_json) > 1:
        if not args.reference:
            parser.error("side by side (several --from-json) needs --reference")
        stems = [os.path.basename(f)[:-len(".json")] for f in args.from_json]
        # label the runs by the words that tell them apart ("seed0", "seed1")
        shared = os.path.commonprefix(stems).rfind("_") + 1
        runs = {stem[shared:] or stem: json.load(open(f)) for stem, f in zip(stems, args.from_json)}
        return print_and_save(side_by_side(runs, args.reference), {"runs": list(runs), "reference": args.reference},
                              args.out)
    if args.from_json:
        return render(json.load(open(args.from_json[0])), args.reference, args.out)
    if not args.fold_folder:
        parser.error("--fold-folder is required (or --from-json)")
    run = FinishedRun(args.fold_folder)
    ranking = read_ranking(sample_ranking_path(run.fold_folder))
    reliable = [r.case for r in ranking if r.subset == RELIABLE]
    checkpoints = dict(item.split("=", 1) for item in args.checkpoint)
    missing = [path for path in checkpoints.values() if not os.path.isfile(path)]
    if missing:
        raise SystemExit(f"checkpoint(s) not found: {missing}")
    available = recipes(run, checkpoints)
    unknown = sorted(set(args.recipes or []) - set(available))
    if unknown:
        raise SystemExit(f"unknown or unavailable recipe(s) {unknown}; this run allows {sorted(available)}")
    selected = {n: r for n, r in available.items() if not args.recipes or n in args.recipes}
    labels, names = labels_from_dataset_json(run.dataset_json)
    scores = score_recipes(run, [r.case for r in ranking], hidden_label_reader(run), selected, labels,
                           args.largest_component)
    descriptions = {"stored_stage1": "trained with in stage 1", "stored_stage2": "trained with in stage 2",
                    **{n: d for n, (d, _, _) in selected.items()}}
    if args.largest_component:
        descriptions.update({f"{n}_lcc": f"{d}, largest component per class" for n, d in list(descriptions.items())})
    render({"fold_folder": run.fold_folder, "checkpoints": checkpoints, "reliable_cases": len(reliable),
            "descriptions": descriptions,
            "recipes": {name: summarise(per_case, reliable, names) for name, per_case in scores.items()}},
           args.reference, args.out)


if __name__ == "__main__":
    sys.exit(main())
