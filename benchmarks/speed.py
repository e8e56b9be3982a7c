#!/usr/bin/env python3
"""Training-step cost of DualUnc vs nnU-Net's nnUNetTrainer on the same plans, configuration and machine.

Each trainer runs in its own process (clean peak-memory numbers): nnU-Net builds it from the plans
(`initialize()`: network, optimizer, loss), then its own `train_step` runs on fixed random batches of the plans'
batch and patch size, warm-up steps first. Data augmentation is left out on purpose: it is the same work for both
methods per sample and runs in nnU-Net's background workers. Reported: seconds per iteration, samples per second,
the per-sample cost ratio, and peak memory (GPU: torch's peak allocation; CPU: peak RSS of the process).

A DualUnc iteration is timed in pre-training (labelled batch only, both decoders supervised) and in a stage
(labelled batch + an equally large pseudo-labelled batch, Eq. 6) -- the stage is what the <= 25 % target is about.
An online baseline's step (phase "online": labelled + unlabelled batch, its teacher passes, strong view or pyramid
included) is timed with --runs, e.g. against the recommended trainer's stage:

    .venv/bin/python benchmarks/speed.py ... --runs nnUNetTrainer:- nnUNetTrainerDualUncPlus:stage2 \\
        nnUNetTrainerMeanTeacher:online nnUNetTrainerUAMT:online nnUNetTrainerURPC:online \\
        nnUNetTrainerFixMatch:online nnUNetTrainerBCP:online nnUNetTrainerDeepCoTraining:online

    .venv/bin/python benchmarks/speed.py -d 507 -c 2d_cpu --work /tmp/dualunc_bench/ACDC_labeled_7_cpu_seed0/labeled_7
    .venv/bin/python benchmarks/speed.py ... --fold-folder <a finished DualUnc run's fold_0>   # + ranking share

With --fold-folder it also reads that run's training logs: the share of its wall-clock spent on ranking and
pseudo-labelling, and that share extrapolated to the default schedule (200 + 200 + 200 epochs of 250 iterations),
whose ranking and pseudo-labelling cost the same while training is longer.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SCHEDULE_EPOCHS = {"pretrain": 200, "stage1": 200, "stage2": 200}
#: the phase name of an online baseline's step (training/baselines/: Mean Teacher, UA-MT, URPC, FixMatch, BCP, DCT)
ONLINE_PHASE = "online"


def synthetic_batch(trainer, batch_size: int) -> dict:
    """Random images and label maps at every deep-supervision scale, shaped like nnU-Net's batches."""
    import torch
    import torch.nn.functional as F

    patch = list(trainer.configuration_manager.patch_size)
    channels = trainer.num_input_channels
    classes = trainer.label_manager.num_segmentation_heads
    generator = torch.Generator().manual_seed(0)
    data = torch.randn([batch_size, channels] + patch, generator=generator)
    full = torch.randint(0, classes, [batch_size, 1] + patch, generator=generator).float()
    scales = trainer._get_deep_supervision_scales() or [[1.0] * len(patch)]
    target = [F.interpolate(full, size=[max(1, round(p * s)) for p, s in zip(patch, scale)], mode="nearest")
              for scale in scales]
    return {"data": data, "target": target if trainer.enable_deep_supervision else target[0]}


def measure_one(trainer_class_name: str, dataset: str, configuration: str, phase: Optional[str], iterations: int,
                warmup: int, device_name: str, steps_before_phase: int = 0) -> Dict[str, float]:
    """Time `iterations` train_steps of one trainer in this process (after `warmup` untimed ones).

    steps_before_phase: train_steps in pre-training before `phase` starts, as in a real run; under torch.compile the
    phase's first step then pays the recompilation for the larger batch (reported as first_step_s)."""
    import itertools

    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    from nnunetv2_dualunc.method.schedule import Phase

    device = torch.device(device_name)

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    trainer = get_trainer_from_args(dataset, configuration, 0, trainer_class_name, "nnUNetPlans", device=device)
    trainer.initialize()
    batch_size = trainer.configuration_manager.batch_size
    batch = synthetic_batch(trainer, batch_size)
    trainer.network.train()
    samples = batch_size
    if phase == ONLINE_PHASE:  # an online baseline: an unlabelled batch in every step, targets made in the step
        trainer.dataloader_unlabelled = itertools.repeat(synthetic_batch(trainer, batch_size))
        trainer.dataloader_train = itertools.repeat(batch)  # deep co-training's second network draws its own
        trainer.current_epoch = trainer.num_epochs - 1  # every term ramped up (co-training attacks only from 1/6 on)
        samples = 2 * batch_size
    elif phase is not None:
        trainer.active_phase = Phase("pretrain")
        for _ in range(steps_before_phase):
            trainer.train_step(batch)
        trainer.active_phase = Phase(phase)
        if trainer.active_phase.uses_unlabelled:
            trainer.dataloader_unlabelled = itertools.repeat(synthetic_batch(trainer, batch_size))
            samples = 2 * batch_size
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    synchronize()
    first_step_started = time.perf_counter()
    for i in range(warmup + iterations):
        if i == 1:
            synchronize()
            first_step_s = time.perf_counter() - first_step_started
        if i == warmup:
            synchronize()
            start = time.perf_counter()
        trainer.train_step(batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / iterations
    result = {"trainer": trainer_class_name, "phase": phase or "-", "batch_size": batch_size,
              "samples_per_iteration": samples, "s_per_iteration": seconds, "samples_per_s": samples / seconds,
              "s_per_sample": seconds / samples, "first_step_s": round(first_step_s, 3),
              "steps_before_phase": steps_before_phase if phase is not None else 0,
              "patch_size": list(trainer.configuration_manager.patch_size)}
    if device.type == "cuda":
        result["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    else:
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["rss_growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    return result


def ranking_share(fold_folder: str) -> Dict[str, float]:
    """Measured share of ranking + pseudo-labelling in a finished run, and extrapolated to the default schedule."""
    sys.path.insert(0, HERE)
    from training_log import phase_timings, schedule_from_log

    timings = phase_timings(fold_folder)
    with open(os.path.join(fold_folder, "debug.json")) as f:
        iterations = int(json.load(f)["num_iterations_per_epoch"])
    epochs = schedule_from_log(fold_folder)
    fixed = timings["ranking_s"] + timings["pseudo_labelling_s"]
    # seconds per epoch of each phase, rescaled from this run's iterations to nnU-Net's 250 per epoch
    per_default_epoch = {p: timings.get(f"epochs_{p}_s", 0.0) / max(1, epochs[p]) * 250 / iterations
                         for p in epochs if epochs[p]}
    default_training = sum(per_default_epoch[p] * DEFAULT_SCHEDULE_EPOCHS[p] for p in per_default_epoch)
    return {**timings, "epochs": epochs, "iterations_per_epoch": iterations,
            "ranking_and_pseudo_labelling_s": round(fixed, 1),
            "extrapolated_default_schedule_training_s": round(default_training, 1),
            "extrapolated_default_schedule_share": round(fixed / (fixed + default_training), 4)}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-d", required=True, help="dataset id (planned and preprocessed)")
    parser.add_argument("-c", required=True, help="configuration")
    parser.add_argument("--work", required=True, help="folder holding nnUNet_raw/preprocessed (results are written "
                                                      "to <work>/speed_results)")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fold-folder", default=None, help="fold_0 of a finished DualUnc run (ranking share)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the networks (nnU-Net's default on a GPU; the default here is off, so that "
                             "short timings are not dominated by compilation); a stage is then timed after "
                             "pre-training steps, as in a real run")
    parser.add_argument("--runs", nargs="+", default=None, metavar="TRAINER:PHASE",
                        help="subset of the runs, e.g. nnUNetTrainerDualUnc:stage2 nnUNetTrainer:-")
    parser.add_argument("--one", nargs=2, metavar=("TRAINER", "PHASE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        trainer, phase = args.one
        print("RESULT " + json.dumps(measure_one(trainer, args.d, args.c, None if phase == "-" else phase,
                                                 args.iterations, args.warmup, args.device,
                                                 steps_before_phase=3 if args.compile else 0)), flush=True)
        return

    env = dict(os.environ, nnUNet_raw=os.path.join(args.work, "nnUNet_raw"),
               nnUNet_preprocessed=os.path.join(args.work, "nnUNet_preprocessed"),
               nnUNet_results=os.path.join(args.work, "speed_results"),
               nnUNet_compile="true" if args.compile else "false")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from nnunetv2_dualunc.nnunet_commands import trainer_folder  # installed, else the source checkout

    env["nnUNet_extTrainer"] = trainer_folder()
    runs = [("nnUNetTrainer", "-"), ("nnUNetTrainerDualUnc", "pretrain"), ("nnUNetTrainerDualUnc", "stage2")]
    if args.runs:
        runs = [tuple(run.split(":")) for run in args.runs]
    results = []
    for trainer, phase in runs:
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "-d", args.d, "-c", args.c, "--work",
                              args.work, "--iterations", str(args.iterations), "--warmup", str(args.warmup),
                              "--device", args.device, "--one", trainer, phase] + (["--compile"] if args.compile else []),
                             env=env, capture_output=True, text=True)
        lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
        if out.returncode != 0 or not lines:
            raise SystemExit(f"{trainer} ({phase}) failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        results.append(json.loads(lines[-1][len("RESULT "):]))
        print(json.dumps(results[-1]), flush=True)
    plain = next((r for r in results if r["trainer"] == "nnUNetTrainer"), None)  # the reference, if it was run
    summary = {"device": args.device, "configuration": args.c, "dataset": args.d, "iterations": args.iterations,
               "torch_compile": args.compile, "load_average": os.getloadavg(), "runs": results,
               "per_sample_cost_ratio": {f"{r['trainer']}:{r['phase']}": round(r["s_per_sample"] /
                                                                               plain["s_per_sample"], 3)
                                         for r in results if plain is not None and r is not plain}}
    if args.fold_folder:
        summary["ranking_share"] = ranking_share(args.fold_folder)
    out_file = os.path.join(args.work, f"speed_{args.c}_{args.device}{'_compiled' if args.compile else ''}.json")
    with open(out_file, "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=1))
    print(f"written: {out_file}")


if __name__ == "__main__":
    main()
