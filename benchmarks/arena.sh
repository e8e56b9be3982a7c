#!/usr/bin/env bash
# The comparison arena (training/baselines/): every baseline on the protocols of benchmarks/recipe_controls.sh, in the
# same work folders, so that each is paired with the controls already trained there (supervised_continued,
# copy_paste_continued, the recommended trainer and its twin) and gets its own recipe-only twin (the runner adds it).
# Run it after recipe_controls.sh has finished a folder (it reuses that folder's teacher and controls), from a pinned
# worktree (benchmarks/pinned_worktree.sh) with the checkout's venv; rerunning resumes every step:
#
#   cd WORKTREE && PYTHONPATH=WORKTREE:WORKTREE/.import_shim OMP_WAIT_POLICY=PASSIVE PY=<checkout>/.venv/bin/python \
#       KEEP=<checkout>/docs/results/<date>_arena bash benchmarks/arena.sh [ROOT=/tmp/dualunc_bench]
#
# The table (each method against nnU-Net continued, supervised copy-paste and its own twin, with its step cost):
#   .venv/bin/python benchmarks/arena_table.py "ACDC 3 labelled=$KEEP/acdc3_teacherA_seed0" ... \
#       --step-cost docs/results/2026-12-07_baseline-step-cost/speed_2d_cpu_cpu.json --out $KEEP/arena_table
#
# Cost on 2 CPU cores: a warm-start method or its twin takes 15-45 min at 650 steps (0.75-2.6 s per step,
# docs/log/2026-12-07_baseline-step-cost.md, plus validation), so one setting and seed is about 5 h: several working
# periods, each on the same machine only if it is kept (a lost work folder loses its teacher; what finished is in
# KEEP); the order below is the order of importance. 3 labelled comes first: at 7 labelled the true labels of the
# unlabelled images add only +1.6 to +3.3 under the recommended recipe (docs/log/2026-12-07_recipe-controls.md), so
# the methods' differences there are of the size of one run's noise.
set -euo pipefail
PY=${PY:-python}
ROOT=${1:-/tmp/dualunc_bench}
WARM="bcp_continued mean_teacher_continued fixmatch_continued ua_mt_continued urpc_continued st_plus_plus_continued
    dct_continued"
SCRATCH="bcp mean_teacher fixmatch ua_mt urpc st_plus_plus dct"
KEEP=${KEEP:-}  # the checkout's results folder: each finished method's report and metrics are copied there (--keep)
acdc() {  # acdc SETTING ARGS...: the work folder of recipe_controls.sh's unit, its results kept under $KEEP/SETTING
    local setting=$1; shift
    "$PY" benchmarks/acdc.py --work "$ROOT/$setting" ${KEEP:+--keep "$KEEP/$setting"} "$@"
}
# warm-start protocol (cpu_warm): ACDC 3 labelled, seed 0; then 7 labelled, teacher B, seeds 0 and 1
acdc acdc3_teacherA_seed0 --profile cpu_warm --labelled labeled_3 --seed 0 --methods $WARM
acdc acdc7_teacherB_seed0 --profile cpu_warm --labelled labeled_7 --seed 0 --methods $WARM
acdc acdc7_teacherB_seed1 --profile cpu_warm --labelled labeled_7 --seed 1 --methods $WARM
# from scratch (cpu profile, 1500 steps), beside nnU-Net and supervised copy-paste of recipe_controls.sh
acdc acdc7_scratch_seed0 --profile cpu --labelled labeled_7 --seed 0 --methods $SCRATCH
acdc acdc7_scratch_seed1 --profile cpu --labelled labeled_7 --seed 1 --methods supervised copy_paste $SCRATCH
acdc acdc3_scratch_seed0 --profile cpu --labelled labeled_3 --seed 0 --methods $SCRATCH
