#!/usr/bin/env python3
"""Calibrate the GPU profile on one GPU lease: the time per gradient step of each phase inside nnU-Net's own
training loop (augmentation workers, validation and checkpoints included), the ranking and pseudo-labelling time,
and the train_step cost of DualUnc vs nnUNetTrainer -- on a synthetic dataset with ACDC's geometry.

Why synthetic: the device lease carries at most 64 MiB and nnU-Net's dependencies take most of it, so the real
ACDC images (71 MB) cannot travel. Throughput does not depend on image content: a copy with ACDC's shapes, spacing,
case counts and labels (34 labelled = 14 training + 20 validation, 126 unlabelled, ACDC's median image of
10 x 256 x 216 voxels at 10 x 1.5 x 1.5 mm) takes the same steps when it is trained on ACDC's own `2d`
configuration (--plans-from: patch, batch and network of the real plans).
Dice on it means nothing and is not reported.

Steps (each one's figures are written to <out>/gpu_calibration.json as soon as it finishes):
  1. write the dataset, plan (unlabelled cases counted) and preprocess `2d`;
  2. benchmarks/speed.py: train_step of nnUNetTrainer vs DualUnc (pre-training, stage), per-sample ratio, memory;
  3. nnUNetv2_train DualUnc with the `gpuCal` budget (5 + 2 + 2 epochs of 50 steps), then nnUNetTrainer
     (9 epochs of 50 steps), torch.compile on as nnU-Net defaults on a GPU: seconds per step of each phase in the
     real loop (its fastest epoch), ranking, pseudo-labelling; a run still going at --deadline is stopped;
  4. the step budget that keeps one method within --minutes on this GPU.

    python benchmarks/gpu_calibration.py --work /tmp/gpucal --out ./gpu_calibration --device cuda \
        --plans-from docs/results/2026-11-26_gpu-calibration-and-speed/acdc_labeled_7_nnUNetPlans.json
(docs/log/2026-11-26_gpu-calibration-and-speed.md has the device-lease commands around it.)
"""
import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

DATASET_ID = 990
#: ACDC labeled_7 as built by benchmarks/acdc.py: 7 patients x 2 frames labelled, 10 x 2 validation, 63 x 2 unlabelled
N_TRAIN, N_VALIDATION, N_UNLABELLED = 14, 20, 126
ACDC_SHAPE_ZYX, ACDC_SPACING_ZYX = (10, 256, 216), (10.0, 1.5, 1.5)  # ACDC's median image
PROFILE = "gpuCal"


def _save(out_dir: str, summary: dict) -> None:
    from nnunetv2_dualunc.atomic_files import atomic_write_json

    atomic_write_json(summary, os.path.join(out_dir, "gpu_calibration.json"), indent=1)


def _write_fold0_split(preprocessed_dataset: str) -> None:
    """Fold 0 trains on the 14 'training' cases and validates on the 20 others, as the ACDC benchmark's split."""
    from nnunetv2_dualunc.data.ssl_dataset import write_ssl_splits

    cases = sorted(os.path.basename(p)[:-len("_0000.nii.gz")]
                   for p in glob.glob(os.path.join(os.environ["nnUNet_raw"], f"Dataset{DATASET_ID}_*", "imagesTr",
                                                   "*_0000.nii.gz")))
    write_ssl_splits(preprocessed_dataset, cases[:N_TRAIN], cases[N_TRAIN:])


def prepare(processes: int, plans_from: Optional[str]) -> dict:
    """Write the dataset, plan it (unlabelled cases counted), optionally take the `2d` configuration from a real
    dataset's plans (patch, batch, network), preprocess labelled and unlabelled cases."""
    from batchgenerators.utilities.file_and_folder_operations import load_json, save_json

    from nnunetv2_dualunc.data.ssl_planning import plan_and_preprocess, preprocess_labelled_and_unlabelled
    from nnunetv2_dualunc.data.synthetic import dataset_name, write_synthetic_dataset

    started = time.time()
    write_synthetic_dataset(os.environ["nnUNet_raw"], DATASET_ID, n_labelled=N_TRAIN + N_VALIDATION,
                            n_unlabelled=N_UNLABELLED, n_test=0, shape=ACDC_SHAPE_ZYX, spacing_zyx=ACDC_SPACING_ZYX)
    written = time.time()
    plans_identifier = plan_and_preprocess(DATASET_ID, ["2d"], num_processes=processes, preprocess=False)
    preprocessed = os.path.join(os.environ["nnUNet_preprocessed"], dataset_name(DATASET_ID))
    plans_file = os.path.join(preprocessed, plans_identifier + ".json")
    plans = load_json(plans_file)
    if plans_from:
        plans["configurations"]["2d"] = load_json(plans_from)["configurations"]["2d"]
        plans["2d_configuration_from"] = plans_from
        save_json(plans, plans_file, sort_keys=False)
    preprocess_labelled_and_unlabelled(DATASET_ID, plans_identifier, ["2d"], processes)
    _write_fold0_split(preprocessed)
    config = plans["configurations"]["2d"]
    return {"dataset_s": round(written - started, 1), "plan_and_preprocess_s": round(time.time() - written, 1),
            "plans_2d": {"batch_size": config["batch_size"], "patch_size": config["patch_size"],
                         "spacing": config["spacing"], "from": plans_from or "planned for the synthetic copy"}}


def train(trainer: str, device: str, log_dir: str, timeout_s: float) -> dict:
    """One nnUNetv2_train run (stopped after timeout_s); seconds per step per phase from its own log
    (training_log.phase_timings), complete epochs only when it was stopped."""
    from benchmark_trainers import PROFILES
    from nnunetv2.utilities.file_path_utilities import convert_trainer_plans_config_to_identifier
    from nnunetv2_dualunc.data.synthetic import dataset_name
    from nnunetv2_dualunc.nnunet_commands import console_script
    from training_log import phase_timings

    iterations = PROFILES[PROFILE][2]
    started = time.time()
    with open(os.path.join(log_dir, f"train_{trainer}.log"), "w") as log:
        # own process group: a stopped run takes its augmentation workers with it
        process = subprocess.Popen([console_script("nnUNetv2_train"), str(DATASET_ID), "2d", "0", "-tr", trainer,
                                    "-device", device], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = process.wait(timeout=max(1.0, timeout_s))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            code = "timeout"
    fold = os.path.join(os.environ["nnUNet_results"], dataset_name(DATASET_ID),
                        convert_trainer_plans_config_to_identifier(trainer, "nnUNetPlans", "2d"), "fold_0")
    logs = glob.glob(os.path.join(fold, "training_log_*.txt"))
    compiled = False
    for log_file in logs:
        shutil.copy(log_file, log_dir)
        with open(log_file) as f:
            compiled = compiled or "Using torch.compile" in f.read()
    result = {"trainer": trainer, "exit_code": code, "wall_clock_s": round(time.time() - started, 1),
              "iterations_per_epoch": iterations, "torch_compile": compiled}
    if not logs:
        return result
    timings = phase_timings(fold)
    result["timings"] = timings
    # the fastest epoch of each phase: the first epochs carry torch.compile's (re)compilation and cuDNN's autotuning,
    # which a 25-minute run pays once; ranking and pseudo-labelling are already taken out (training_log)
    result["s_per_step"] = {phase: round(min(seconds) / iterations, 4)
                            for phase, seconds in timings["epoch_s"].items() if seconds}
    if code == 0 and "DualUnc" in trainer:
        import speed
        result["ranking_share"] = speed.ranking_share(fold)
    return result


def step_budget(dualunc: dict, supervised: Optional[dict], minutes: float) -> dict:
    """Largest equal number of gradient steps (split 2:1:1 as the acdcGPU profile) that keeps each method's
    training + ranking + pseudo-labelling within `minutes` on this GPU (final validation excluded)."""
    steps = dualunc["s_per_step"]
    if not {"pretrain", "stage1", "stage2"} <= set(steps):
        return {"incomplete": f"phases timed: {sorted(steps)}"}
    fixed = dualunc["timings"]["ranking_s"] + dualunc["timings"]["pseudo_labelling_s"]
    per_step_dualunc = 0.5 * steps["pretrain"] + 0.25 * steps["stage1"] + 0.25 * steps["stage2"]
    budget = {"dualunc_max_steps": int((minutes * 60 - fixed) / per_step_dualunc),
              "dualunc_mean_s_per_step": round(per_step_dualunc, 4), "ranking_and_pseudo_labelling_s": fixed}
    if supervised and supervised.get("s_per_step"):
        budget["supervised_max_steps"] = int(minutes * 60 / supervised["s_per_step"]["pretrain"])
    return budget


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="scratch folder for nnU-Net's raw/preprocessed/results")
    parser.add_argument("--out", required=True, help="folder for gpu_calibration.json and the training logs")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--speed-iterations", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=25.0, help="time allowed per method (issue 3: 25)")
    parser.add_argument("--plans-from", default=None,
                        help="nnUNetPlans.json of the real dataset whose `2d` configuration is to be timed (e.g. "
                             "ACDC labeled_7's, planned by benchmarks/acdc.py)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("speed", "dualunc", "supervised"))
    parser.add_argument("--deadline", type=float, default=3600.0,
                        help="seconds for the whole script: a training still running then is stopped and timed "
                             "from its complete epochs")
    args = parser.parse_args(argv)
    started = time.time()

    from nnunetv2_dualunc.nnunet_commands import nnunet_environment

    os.makedirs(args.out, exist_ok=True)
    work = os.path.abspath(args.work)
    os.environ.update(nnunet_environment(work, args.processes, [os.path.join(HERE, "ext_trainers")]))
    os.environ.pop("nnUNet_n_proc_DA", None)  # nnU-Net's own default number of augmentation workers on a GPU
    if args.device == "cuda":
        os.environ.pop("nnUNet_compile", None)  # nnU-Net's default on a GPU (torch.compile), as users train
    sys.path.insert(0, os.path.join(HERE, "ext_trainers"))
    import torch

    summary: Dict[str, object] = {
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else args.device,
        "cpu_cores": os.cpu_count(), "torch": torch.__version__,
        "nnUNet_compile": os.environ.get("nnUNet_compile", "unset (nnU-Net default)"),
        "dataset": {"train": N_TRAIN, "validation": N_VALIDATION, "unlabelled": N_UNLABELLED,
                    "shape_zyx": ACDC_SHAPE_ZYX, "spacing_zyx": ACDC_SPACING_ZYX}}
    summary["prepare"] = prepare(args.processes, args.plans_from)
    _save(args.out, summary)
    print(json.dumps(summary["prepare"]), flush=True)

    if "speed" not in args.skip:
        import speed
        speed.main(["-d", str(DATASET_ID), "-c", "2d", "--work", work, "--device", args.device,
                    "--iterations", str(args.speed_iterations), "--warmup", "10"])
        with open(os.path.join(work, f"speed_2d_{args.device}.json")) as f:
            summary["speed"] = json.load(f)
        _save(args.out, summary)

    remaining = lambda: args.deadline - (time.time() - started)  # noqa: E731
    if "dualunc" in args.skip:
        return
    # DualUnc gets two thirds of what is left when supervised still has to run
    share = 1.0 if "supervised" in args.skip else 0.67
    summary["dualunc"] = train(f"nnUNetTrainerDualUnc_{PROFILE}", args.device, args.out, share * remaining())
    _save(args.out, summary)
    print(json.dumps(summary["dualunc"]), flush=True)
    if summary["dualunc"]["exit_code"] not in (0, "timeout") and "nnUNet_compile" not in os.environ:
        # a failure under torch.compile is a finding; time the method without it all the same
        os.rename(os.path.join(args.out, f"train_nnUNetTrainerDualUnc_{PROFILE}.log"),
                  os.path.join(args.out, "failed_with_torch_compile.log"))
        shutil.rmtree(os.path.join(work, "nnUNet_results"), ignore_errors=True)
        summary["dualunc_failed_with_torch_compile"] = summary.pop("dualunc")
        os.environ["nnUNet_compile"] = "false"
        summary["dualunc"] = train(f"nnUNetTrainerDualUnc_{PROFILE}", args.device, args.out, share * remaining())
        _save(args.out, summary)
        print(json.dumps(summary["dualunc"]), flush=True)
    if "supervised" not in args.skip:
        summary["supervised"] = train(f"nnUNetTrainer_{PROFILE}", args.device, args.out, remaining() - 10)
        _save(args.out, summary)
        print(json.dumps(summary["supervised"]), flush=True)
    if summary["dualunc"].get("s_per_step"):
        summary["budget"] = step_budget(summary["dualunc"], summary.get("supervised"), args.minutes)
        _save(args.out, summary)
        print(json.dumps(summary["budget"]), flush=True)


if __name__ == "__main__":
    main()
