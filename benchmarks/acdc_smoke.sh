#!/usr/bin/env bash
# ACDC smoke run: every phase of nnUNetTrainerDualUnc (pre-training, ranking, pseudo-labelling, stage 1, stage 2,
# final validation) on the real ACDC data, for a handful of iterations each, on the CPU configuration 2d_cpu.
# It checks that the pipeline runs end to end and measures what each phase costs. NOT a benchmark: its Dice after
# 100 iterations means nothing. Results: docs/ACDC_SMOKE.md.
#
# Usage: benchmarks/acdc_smoke.sh            (all settings below can be overridden from the environment)
#   WORK=/tmp/acdc_smoke   work dir (nnUNet_raw/preprocessed/results + logs); must not be inside the repository
#   ACDC=/work/shared/datasets/ACDC  source raw dataset (only read)
#   DATASET_ID=501  LABELLED_KEY=labeled_7  NP=2 (processes for preprocessing)  DA=2 (nnUNet_n_proc_DA in training)
#   CPU_BATCH_SIZE=    batch size of 2d_cpu (empty: keep the 2d plans' batch size)
#   TRAINER=nnUNetTrainerDualUnc_smoke  (benchmarks/ext_trainers/smoke_trainers.py)
#   OMP_WAIT_POLICY=PASSIVE  (see below)
#   BASELINE=0         1: also train nnUNetTrainer_smoke (plain nnU-Net, same 100 iterations) for reference
# WORK's nnUNet_raw/preprocessed/results are deleted first: a fresh run must not pick up the ranking or
# pseudo-labels that an earlier run left in its output folder.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$REPO/.venv/bin}
WORK=${WORK:-/tmp/acdc_smoke}
ACDC=${ACDC:-/work/shared/datasets/ACDC}
DATASET_ID=${DATASET_ID:-501}
LABELLED_KEY=${LABELLED_KEY:-labeled_7}
NAME=${NAME:-ACDC_${LABELLED_KEY}_smoke}
NP=${NP:-2}
DA=${DA:-2}
CPU_BATCH_SIZE=${CPU_BATCH_SIZE:-}
TRAINER=${TRAINER:-nnUNetTrainerDualUnc_smoke}
BASELINE=${BASELINE:-0}
CONFIGURATION=2d_cpu

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
case "$WORK/" in "$REPO"/*) echo "WORK=$WORK is inside the repository; use a folder under /tmp" >&2; exit 2;; esac

export nnUNet_raw=$WORK/nnUNet_raw nnUNet_preprocessed=$WORK/nnUNet_preprocessed nnUNet_results=$WORK/nnUNet_results
export nnUNet_extTrainer="$("$BIN/nnunetv2_dualunc" trainer-path):$REPO/benchmarks/ext_trainers"
export nnUNet_compile=false nnUNet_def_n_proc=$NP PYTHONUNBUFFERED=1
# OpenMP threads that wait by spinning make a 2-core machine crawl once anything else runs (data augmentation
# workers, other jobs): an SGD step measured 4.3 s instead of 0.6 s. Passive waiting avoids that.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
rm -rf "$nnUNet_raw" "$nnUNet_preprocessed" "$nnUNet_results" "$WORK/logs"
mkdir -p "$nnUNet_raw" "$nnUNet_preprocessed" "$nnUNet_results" "$WORK/logs"
TIMES=$WORK/logs/step_times.tsv
: > "$TIMES"
# the machine may be shared: sample the load average, so that timings can be judged
( while sleep 30; do echo "$(date +%T) $(cut -d' ' -f1-3 /proc/loadavg)"; done ) > "$WORK/logs/loadavg.txt" &
LOAD_SAMPLER=$!
trap 'kill $LOAD_SAMPLER 2>/dev/null || true' EXIT

step() {  # step NAME COMMAND...: run, log to $WORK/logs/NAME.log, record its wall-clock seconds
  local name=$1; shift
  local start=$SECONDS
  echo "[$(date +%T)] $name: $*"
  if ! "$@" > "$WORK/logs/$name.log" 2>&1; then
    echo "FAILED: $name (log: $WORK/logs/$name.log)" >&2; tail -40 "$WORK/logs/$name.log" >&2; exit 1
  fi
  printf '%s\t%s\n' "$name" $((SECONDS - start)) | tee -a "$TIMES"
}

P="$ACDC/patients.json"
step build_dataset "$BIN/python" -c "from nnunetv2_dualunc.data.ssl_dataset import build_ssl_dataset_entry as e; e()" \
  -i "$ACDC" -d "$DATASET_ID" -n "$NAME" --overwrite \
  --labelled-from "$P" "$LABELLED_KEY" --validation-from "$P" val --unlabelled-rest-of "$P" train
# the planner calls torch.set_num_threads(nnUNet_n_proc_DA): it must be >= 1 here
step plan_and_preprocess env nnUNet_n_proc_DA="$NP" \
  "$BIN/nnUNetv2_plan_and_preprocess" -d "$DATASET_ID" -c 2d --verify_dataset_integrity -np "$NP"
step add_cpu_configuration "$BIN/python" -c \
  "from nnunetv2_dualunc.cpu_configuration import add_cpu_configuration_entry as e; e()" \
  -d "$DATASET_ID" -c 2d -n "$CONFIGURATION" ${CPU_BATCH_SIZE:+-bs "$CPU_BATCH_SIZE"}
step preprocess_cpu "$BIN/nnUNetv2_preprocess" -d "$DATASET_ID" -c "$CONFIGURATION" -np "$NP"
step write_splits "$BIN/python" -c "from nnunetv2_dualunc.data.ssl_dataset import write_ssl_splits_entry as e; e()" \
  -d "$DATASET_ID"
step train env nnUNet_n_proc_DA="$DA" \
  "$BIN/nnUNetv2_train" "$DATASET_ID" "$CONFIGURATION" 0 -tr "$TRAINER" -device cpu
if [ "$BASELINE" = 1 ]; then
  step train_baseline env nnUNet_n_proc_DA="$DA" \
    "$BIN/nnUNetv2_train" "$DATASET_ID" "$CONFIGURATION" 0 -tr nnUNetTrainer_smoke -device cpu
fi

summarise() {  # summarise TRAINER: per-phase timings, load and final Dice of its fold 0
  local fold
  fold=$(ls -d "$nnUNet_results"/Dataset"$DATASET_ID"_*/"$1"__nnUNetPlans__"$CONFIGURATION"/fold_0)
  echo "=== $1 ==="
  "$BIN/python" - "$fold" "$nnUNet_preprocessed" "$TIMES" "$WORK/logs/loadavg.txt" <<'EOF'
"""Per-phase wall clock from the training log's timestamps, seconds per iteration, plans, load, final Dice."""
import glob, json, os, re, sys
from datetime import datetime

fold, preprocessed, times, loadavg = sys.argv[1:5]
log = sorted(glob.glob(os.path.join(fold, "training_log_*.txt")))[-1]
stamp = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d+): (.*)$")
events = []
for line in open(log):
    m = stamp.match(line.rstrip("\n"))
    if m:
        events.append((datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S.%f"), m[2].strip()))
day = events[0][0].date()
loads = [(datetime.combine(day, datetime.strptime(f[0], "%H:%M:%S").time()), float(f[1]))
         for f in (line.split() for line in open(loadavg)) if len(f) >= 2]


def after(pattern, t0, before=None):
    """Time of the first event matching pattern at or after t0 (and before `before`)."""
    return next((t for t, x in events if t >= t0 and (before is None or t < before) and re.search(pattern, x)), None)


def secs(a, b):
    return None if a is None or b is None else round((b - a).total_seconds(), 1)


def load(a, b):
    inside = [l for t, l in loads if a is not None and b is not None and a <= t <= b]
    return f"{sum(inside) / len(inside):.1f}" if inside else "n/a"


plans = json.load(open(glob.glob(os.path.join(preprocessed, "Dataset*", "nnUNetPlans.json"))[0]))
for c in ("2d", "2d_cpu"):
    cfg = dict(plans["configurations"]["2d"], **plans["configurations"][c])
    print(f"plans {c}: batch {cfg['batch_size']}, patch {cfg['patch_size']}, spacing {cfg['spacing']}, features "
          f"{cfg['architecture']['arch_kwargs']['features_per_stage']}")
print("script steps (s):", dict(line.split() for line in open(times)))
print(f"training log: {log}")

# the log file is named after the trainer's creation time; its first timestamped line comes much later
t0 = min(events[0][0], datetime.strptime(os.path.basename(log)[len("training_log_"):-len(".txt")], "%Y_%m_%d_%H_%M_%S"))
epochs = [(t, int(x.split()[1])) for t, x in events if re.fullmatch(r"Epoch \d+", x)]
print(f"trainer created -> epoch 0 (unlabelled preprocessing, data loaders): {secs(t0, epochs[0][0])} s")
for t, x in events:
    if x.startswith("ranking") and "unlabelled cases with snapshots" in x:
        end = after(r"^ranking written", t)
        print(f"{x}: {secs(t, end)} s (load {load(t, end)})")
    if x.startswith("pseudo-labelling"):
        end = after(r"pseudo-labelled cases in use", t)
        print(f"{x}: {secs(t, end)} s (load {load(t, end)})")
print("epoch | phase | 'Epoch N' -> 'Epoch time' line (train + val iterations) | load (1-min avg, sampled every 30 s)")
phase = "-"
for (t, n), nxt in zip(epochs, epochs[1:] + [(None, None)]):
    for tp, x in events:
        if tp <= t and "entering phase" in x:
            phase = re.search(r"phase '(\w+)'", x)[1]
    end = after(r"^Epoch time", t, nxt[0])
    unsup = after(r"^unsupervised loss", t, nxt[0])
    extra = f" (train iterations alone: {secs(t, unsup)} s)" if unsup else ""
    print(f"{n} | {phase} | {secs(t, end)} s{extra} | {load(t, end)}")
done = after(r"^Training done", t0)
val = after(r"Mean Validation Dice", t0)
print(f"final validation (nnU-Net's perform_actual_validation): {secs(done, val)} s (load {load(done, val)})")
summary = os.path.join(fold, "validation", "summary.json")
if os.path.isfile(summary):
    s = json.load(open(summary))
    print(f"final validation Dice: mean {s['foreground_mean']['Dice']:.4f}; per class "
          + ", ".join(f"{k}: {v['Dice']:.4f}" for k, v in s["mean"].items()))
EOF
}

{ summarise "$TRAINER"; if [ "$BASELINE" = 1 ]; then summarise nnUNetTrainer_smoke; fi; } | tee "$WORK/logs/summary.txt"
