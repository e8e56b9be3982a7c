#!/usr/bin/env bash
# What the unlabelled images add on top of the recommended trainer's recipe (docs/log/2026-12-07_recipe-controls.md):
# ACDC warm-start protocol (cpu_warm: a 2500-step nnUNetTrainer teacher, then 650 steps per method),
# every run with supervised_continued, the supervised copy-paste trainer, the recommended trainer, its recipe-only
# twin (the runner adds it) and, where named, the oracle under that recipe. Sequential on purpose (2 cores); rerunning
# resumes every step. Run it from a pinned worktree (benchmarks/pinned_worktree.sh) with the checkout's venv:
#
#   cd WORKTREE && PYTHONPATH=WORKTREE:WORKTREE/.import_shim OMP_WAIT_POLICY=PASSIVE PY=<checkout>/.venv/bin/python \
#       bash benchmarks/recipe_controls.sh [ROOT=/tmp/dualunc_bench]
set -euo pipefail
PY=${PY:-python}
ROOT=${1:-/tmp/dualunc_bench}
RECIPE="dualunc_warm_copy_paste_pseudo_dice copy_paste_continued"
ORACLE="dualunc_warm_copy_paste_pseudo_dice_oracle"
# the first candidate for closing the gap to the oracle: pseudo-labels refreshed every step by an EMA teacher; its
# rule (above the recommended trainer in all four paired runs) failed in the first (seed 0: 0.8101 against 0.8150),
# so the later folders leave it out
ONLINE="dualunc_warm_copy_paste_pseudo_dice_online_teacher"
# the second candidate (docs/log/2026-12-07_recipe-controls.md, 4b): supervised copy-paste + an EMA teacher's labels
# of the unlabelled images (BCP on nnU-Net's network); its recipe-only twin is copy_paste_continued
BCP="bcp_continued"
acdc() { "$PY" benchmarks/acdc.py --profile cpu_warm "$@"; }  # a later --profile wins
# 7 labelled, teacher A (2026-12-07): the oracle first, it gates where the CPU time goes next
acdc --labelled labeled_7 --seed 0 --work "$ROOT/acdc7_20261207_teacherA_seed0" --methods $ORACLE $RECIPE $ONLINE $BCP
acdc --labelled labeled_7 --seed 1 --work "$ROOT/acdc7_20261207_teacherA_seed1" \
    --teacher-from "$ROOT/acdc7_20261207_teacherA_seed0" --methods $ORACLE $RECIPE $BCP
# 3 labelled, one teacher, two seeds
acdc --labelled labeled_3 --seed 0 --work "$ROOT/acdc3_20261207_teacherA_seed0" --methods $ORACLE $RECIPE $BCP
acdc --labelled labeled_3 --seed 1 --work "$ROOT/acdc3_20261207_teacherA_seed1" \
    --teacher-from "$ROOT/acdc3_20261207_teacherA_seed0" --methods $RECIPE $BCP
# 7 labelled, teacher B: a second supervised start model (nnU-Net's augmentation is unseeded: a new teacher)
acdc --labelled labeled_7 --seed 0 --work "$ROOT/acdc7_20261207_teacherB_seed0" --methods $RECIPE $BCP
acdc --labelled labeled_7 --seed 1 --work "$ROOT/acdc7_20261207_teacherB_seed1" \
    --teacher-from "$ROOT/acdc7_20261207_teacherB_seed0" --methods $RECIPE $BCP
# supervised copy-paste from scratch (the cpu profile: 1500 steps, against nnU-Net's own trainer for as many steps)
acdc --labelled labeled_7 --profile cpu --seed 0 --work "$ROOT/acdc7_20261207_scratch_seed0" --methods supervised copy_paste
acdc --labelled labeled_3 --profile cpu --seed 0 --work "$ROOT/acdc3_20261207_scratch_seed0" --methods supervised copy_paste
# Hippocampus 9 labelled, the no-harm check (warm start, 260 steps): the recommended trainer at least the supervised
# copy-paste trainer - 0.5
"$PY" benchmarks/hippocampus.py --labelled labeled_9 --profile cpu_warm --seed 0 \
    --work "$ROOT/hippo9_20261207_seed0" --methods dualunc_warm_copy_paste_pseudo_dice copy_paste_continued
