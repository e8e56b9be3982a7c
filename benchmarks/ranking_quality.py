#!/usr/bin/env python3
"""Does the sample-level uncertainty (Eq. 1) find the cases the teacher labels badly?

The benchmarks hide the labels of their "unlabelled" cases, so those labels can judge the ranking of a finished
run (DualUnc or sample sorting): every unlabelled case is predicted with the teacher's saved weights (the
pseudo-labels the method would use) through nnU-Net's predictor in its original geometry, scored against its
hidden reference, and set against the run's `unlabelled_ranking.tsv` (with --rescore also against Eq. 1 recomputed
from the saved snapshots, per image voxel as the paper and per teacher-foreground voxel, the trainer's option
`uncertainty_per_foreground_voxel`):

- Spearman rank correlation between the uncertainty score and the pseudo-label's mean Dice (negative = the
  ranking works: higher uncertainty, lower Dice);
- mean Dice of the reliable half, of the unreliable half, and of the best half an oracle would have picked.

    W=/tmp/dualunc_bench/ACDC_labeled_7_cpu_seed0/labeled_7
    .venv/bin/python benchmarks/ranking_quality.py --references /work/shared/datasets/ACDC/labelsTr \\
        --raw $W/nnUNet_raw/Dataset507_ACDC_labeled_7 \\
        --fold-folder $W/nnUNet_results/Dataset507_ACDC_labeled_7/nnUNetTrainerDualUnc_acdcCPU__nnUNetPlans__2d_cpu/fold_0

Writes <model folder>/ranking_quality_fold_N/ (teacher predictions, reference links, ranking_quality.json);
re-running reuses finished predictions. The fold folder and the datasets are only read.
"""
import argparse
import ast
import json
import os
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from scipy.stats import spearmanr
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_dualunc.atomic_files import atomic_write_json
from nnunetv2_dualunc.data.unlabelled_raw import find_unlabelled_cases
from nnunetv2_dualunc.evaluation.evaluate_folders import evaluate_folders, labels_from_dataset_json, mean_dice_per_case
from nnunetv2_dualunc.method.ranking import RELIABLE, rank_cases, read_ranking, sample_uncertainty
from nnunetv2_dualunc.method.schedule import StageSchedule
from nnunetv2_dualunc.network.dual_decoder import strip_auxiliary_decoder
from nnunetv2_dualunc.inference.predictors import SnapshotPredictor, sliding_window_predictor
from nnunetv2_dualunc.run_layout import sample_ranking_path, snapshot_path


class FinishedRun:
    """What a finished run's fold folder holds: its plans, schedule and saved weights (main path only)."""

    def __init__(self, fold_folder: str):
        self.fold_folder = os.path.abspath(fold_folder)
        model_folder = os.path.dirname(self.fold_folder)
        debug = load_json(os.path.join(self.fold_folder, "debug.json"))
        self.dataset_json = load_json(os.path.join(model_folder, "dataset.json"))
        self.plans_manager = PlansManager(os.path.join(model_folder, "plans.json"))
        self.configuration_manager = self.plans_manager.get_configuration(debug["configuration_name"])
        # the trainer attribute's name before 2026-12-01 was snapshot_epochs
        explicit = debug.get("explicit_snapshot_epochs", debug.get("snapshot_epochs"))
        self.schedule = StageSchedule(int(debug["pretrain_epochs"]), int(debug["stage1_epochs"]),
                                      int(debug["stage2_epochs"]), int(debug["num_snapshots"]),
                                      explicit_snapshot_epochs=ast.literal_eval(explicit),
                                      include_initial_snapshot=debug.get("snapshot_initial_weights") == "True")
        self.unlabelled_preprocessed_folder = debug["unlabelled_preprocessed_folder"]

    def weights(self, completed_epochs: int) -> dict:
        path = snapshot_path(self.fold_folder, completed_epochs)
        if not os.path.isfile(path):
            raise SystemExit(f"{path} not found: pass the fold folder of a finished DualUnc or sample-sorting run.")
        return strip_auxiliary_decoder(torch.load(path, map_location="cpu", weights_only=True)["network_weights"])

    def network(self) -> torch.nn.Module:
        pm, cm = self.plans_manager, self.configuration_manager
        return nnUNetTrainer.build_network_architecture(
            pm, cm, determine_num_input_channels(pm, cm, self.dataset_json),
            pm.get_label_manager(self.dataset_json).num_segmentation_heads, enable_deep_supervision=False)


def predict_with_teacher(run: FinishedRun, raw_dataset: str, output_folder: str, num_processes: int) -> None:
    """The teacher's segmentations of every unlabelled case, in the original geometry (nnU-Net's predictor)."""
    predictor = sliding_window_predictor(torch.device("cpu"), use_mirroring=False)
    predictor.manual_initialization(run.network(), run.plans_manager, run.configuration_manager,
                                    [run.weights(run.schedule.teacher_epoch)], run.dataset_json, "nnUNetTrainer", None)
    cases = find_unlabelled_cases(raw_dataset, run.dataset_json)
    os.makedirs(output_folder, exist_ok=True)
    predictor.predict_from_files([cases[c] for c in sorted(cases)],
                                 [os.path.join(output_folder, c) for c in sorted(cases)], overwrite=False,
                                 num_processes_preprocessing=num_processes,
                                 num_processes_segmentation_export=num_processes)


def load_network_weights(path: str) -> dict:
    """The main-path weights of a checkpoint or snapshot (nnUNetTrainer's or a dual-decoder run's)."""
    return strip_auxiliary_decoder(torch.load(path, map_location="cpu", weights_only=False)["network_weights"])


def rescore(run: FinishedRun, cases: Sequence[str], initial_weights: Optional[str] = None) -> Dict[str, Dict[str, float]]:
    """Eq. 1 recomputed from the saved snapshots on the preprocessed cases, as the trainer does, per image voxel
    (the paper) and per teacher-foreground voxel (the option). initial_weights (a warm start's loaded checkpoint):
    also Eq. 1 with that model as one more, first snapshot ("with_initial"), and its difference from the teacher
    alone ("initial_only") -- what snapshot_initial_weights would have ranked by, without training that run. A run
    that had its initial weights as a snapshot is also scored without them ("without_initial"): both rankings from
    the very same snapshots."""
    predictor = SnapshotPredictor(run.network(), run.plans_manager, run.configuration_manager, run.dataset_json,
                                  torch.device("cpu"))
    epochs = run.schedule.snapshot_epochs
    weights = {e: run.weights(e) for e in epochs}
    initial = load_network_weights(initial_weights) if initial_weights else None
    dataset = nnUNetDatasetBlosc2(run.unlabelled_preprocessed_folder, list(cases))
    scores = {}
    for case in cases:
        data = np.asarray(dataset.load_case(case)[0][:])
        teacher = predictor.probabilities(data, weights[epochs[-1]])
        earlier = [predictor.probabilities(data, weights[e]) for e in epochs[:-1]]
        scores[case] = {"paper": sample_uncertainty(teacher, earlier),
                        "per_foreground_voxel": sample_uncertainty(teacher, earlier, per_foreground_voxel=True)}
        if run.schedule.include_initial_snapshot:  # the same run's ranking as Eq. 1 of the trained snapshots only
            scores[case]["without_initial"] = sample_uncertainty(teacher, earlier[1:])
        if initial is not None:
            loaded = predictor.probabilities(data, initial)
            scores[case]["with_initial"] = sample_uncertainty(teacher, [loaded] + earlier)
            scores[case]["initial_only"] = sample_uncertainty(teacher, [loaded])
    return scores


def reference_links(cases: Sequence[str], references: str, file_ending: str, folder: str) -> str:
    os.makedirs(folder, exist_ok=True)
    for case in cases:
        source = os.path.join(references, case + file_ending)
        if not os.path.isfile(source):
            raise SystemExit(f"No reference {source} for unlabelled case {case}: --references must hold the "
                             f"hidden labels of every unlabelled case.")
        link = os.path.join(folder, case + file_ending)
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(source), link)
    return folder


def ranking_quality(scores: Dict[str, float], dice: Dict[str, float], reliable_fraction: float = 0.5) -> dict:
    """How well a ranking by these scores separates well from badly labelled cases (dice: pseudo-label quality)."""
    cases = sorted(scores)
    subsets = {r.case: r.subset for r in rank_cases(scores, reliable_fraction)}
    reliable = [dice[c] for c in cases if subsets[c] == RELIABLE]
    unreliable = [dice[c] for c in cases if subsets[c] != RELIABLE]
    best_half = sorted(dice.values(), reverse=True)[:len(reliable)]
    correlation = spearmanr([scores[c] for c in cases], [dice[c] for c in cases])
    return {"cases": len(cases), "spearman_score_vs_dice": float(correlation.statistic),
            "spearman_p_value": float(correlation.pvalue),
            "mean_dice_all": float(np.mean(list(dice.values()))), "mean_dice_reliable": float(np.mean(reliable)),
            "mean_dice_unreliable": float(np.mean(unreliable)), "mean_dice_oracle_best_half": float(np.mean(best_half)),
            "reliable_cases": len(reliable)}


def markdown_table(summaries: Dict[str, dict]) -> str:
    """One row per file and ranking: how well each ranking separates good from bad pseudo-labels."""
    rows = ["| run | ranking | Spearman (score vs pseudo-label Dice) | mean Dice, reliable half | unreliable half | "
            "oracle's best half |", "|---|---|---|---|---|---|"]
    for name, summary in summaries.items():
        for ranking, r in summary["rankings"].items():
            rows.append(f"| {name} | {ranking} | {r['spearman_score_vs_dice']:+.2f} | {r['mean_dice_reliable']:.3f} | "
                        f"{r['mean_dice_unreliable']:.3f} | {r['mean_dice_oracle_best_half']:.3f} |")
    return "\n".join(rows)


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from-json", nargs="+", metavar="ranking_quality.json",
                        help="only print the markdown table of finished analyses (no other argument needed)")
    parser.add_argument("--fold-folder", help="fold folder of a finished run with a ranking")
    parser.add_argument("--raw", help="the run's raw dataset folder (its imagesUnlabeled is predicted)")
    parser.add_argument("--references", help="folder with the unlabelled cases' hidden labels")
    parser.add_argument("--rescore", action="store_true",
                        help="also recompute Eq. 1 from the snapshots, per image voxel and per foreground voxel")
    parser.add_argument("--initial-weights", metavar="CHECKPOINT",
                        help="with --rescore: a warm start's loaded checkpoint, also scored as Eq. 1's first snapshot")
    parser.add_argument("--np", type=int, default=2, help="processes for pre/post-processing and evaluation")
    args = parser.parse_args(argv)
    if args.from_json:
        print(markdown_table({os.path.basename(path): load_json(path) for path in args.from_json}))
        return
    if not (args.fold_folder and args.raw and args.references):
        parser.error("--fold-folder, --raw and --references are required (or --from-json)")
    run = FinishedRun(args.fold_folder)
    ranking = read_ranking(sample_ranking_path(run.fold_folder))
    labels, names = labels_from_dataset_json(run.dataset_json)
    out = os.path.join(os.path.dirname(run.fold_folder), f"ranking_quality_{os.path.basename(run.fold_folder)}")
    predictions = os.path.join(out, "teacher_predictions")
    predict_with_teacher(run, args.raw, predictions, args.np)
    ending = run.dataset_json["file_ending"]
    references = reference_links([r.case for r in ranking], args.references, ending, os.path.join(out, "references"))
    evaluation = evaluate_folders(predictions, references, labels, ending, num_processes=args.np)
    dice = mean_dice_per_case(evaluation["per_case"])

    scores = {"trainer": {r.case: r.score for r in ranking}}  # the run's own unlabelled_ranking.tsv
    summary = {"fold_folder": run.fold_folder, "teacher_epoch": run.schedule.teacher_epoch,
               "snapshot_epochs": list(run.schedule.snapshot_epochs),
               "teacher_mean_dice_per_class": {names.get(int(label), label): v["dice"]
                                               for label, v in evaluation["mean_per_class"].items()}}
    if args.rescore:
        recomputed = rescore(run, sorted(scores["trainer"]), args.initial_weights)
        for key in next(iter(recomputed.values())):
            scores[key] = {case: values[key] for case, values in recomputed.items()}
        summary["recomputed_vs_trainer_max_relative_difference"] = max(
            abs(scores["paper"][c] - scores["trainer"][c]) / max(abs(scores["trainer"][c]), 1e-12)
            for c in scores["trainer"])
    summary["rankings"] = {name: ranking_quality(values, dice) for name, values in scores.items()}
    summary["per_case"] = [{"case": c, "teacher_dice": dice[c], **{f"score_{n}": v[c] for n, v in scores.items()}}
                           for c in sorted(dice)]
    atomic_write_json(summary, os.path.join(out, "ranking_quality.json"), indent=1)
    print(json.dumps({k: v for k, v in summary.items() if k != "per_case"}, indent=1))
    print(f"written: {os.path.join(out, 'ranking_quality.json')}")


if __name__ == "__main__":
    sys.exit(main())
