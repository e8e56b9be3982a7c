#!/usr/bin/env bash
# What the unlabelled images add on top of the recommended trainer's recipe (docs/log/2026-12-07_recipe-controls.md):
# ACDC warm-start protocol (cpu_warm: a 2500-step nnUNetTrainer teacher, then 650 steps per method),
# every run with supervised_continued, the supervised copy-paste trainer, the recommended trainer, its recipe-only
# twin (the runner adds it) and, where named, the oracle under that recipe. Sequential on purpose (2 cores); rerunning
# resumes every step. Run it from a pinned worktree (benchmarks/pinned_worktree.sh) with the checkout's venv:
#
#   cd WORKTREE && PYTHONPATH=WORKTREE:WORKTREE/.import_shim OMP_WAIT_POLICY=PASSIVE PY=<checkout>/.venv/bin/python \
#       KEEP=<checkout>/docs/results/2026-12-07_recipe-controls bash benchmarks/recipe_controls.sh [ROOT=/tmp/dualunc_bench]
set -euo pipefail
PY=${PY:-python}
ROOT=${1:-/tmp/dualunc_bench}
# KEEP: the checkout's results folder; after each method the runner copies its report and metrics there (--keep),
# so that a work folder lost with its machine loses only the method under way
KEEP=${KEEP:-}
RECIPE="dualunc_warm_copy_paste_pseudo_dice copy_paste_continued"
ORACLE="dualunc_warm_copy_paste_pseudo_dice_oracle"
# the second candidate (docs/log/2026-12-07_recipe-controls.md, 4b): supervised copy-paste + an EMA teacher's labels
# of the unlabelled images (BCP on nnU-Net's network); its recipe-only twin is copy_paste_continued. Its rule failed
# in the first pair (teacher A, seed 0); the first candidate (the online teacher) failed there too and is left out
BCP="bcp_continued"
# the ceiling under the copy-paste recipe (docs/log/2026-12-07_recipe-controls.md, 6): supervised copy-paste with the
# unlabelled cases' hidden true labels as its second batch; its twin is copy_paste_continued
CP_ORACLE="bcp_continued_oracle"
# the third candidate (docs/log/2026-12-07_recipe-controls.md, 7): the recommended trainer continued from the
# supervised copy-paste model of its folder (the runner trains copy_paste_continued first), paired with its twin
FROM_CP="dualunc_plus_from_copy_paste"
acdc() {  # acdc SETTING ARGS...: one work folder, its results kept under $KEEP/SETTING
    local setting=$1; shift
    "$PY" benchmarks/acdc.py --profile cpu_warm --work "$ROOT/$setting" ${KEEP:+--keep "$KEEP/$setting"} "$@"
}  # a later --profile wins
# 7 labelled, teacher A (2026-12-07): seed 0 finished; its teacher and the seed-1 folder were lost with their
# machine (10:15 UTC, before seed 1's twin ran), so teacher A has one seed. Each unit below (a teacher and its
# methods, about 2.5 h alone on 2 cores) fits a working period when the cores are not shared.
# 7 labelled, teacher B, seed 0: the oracle first, it gates where the CPU time goes next (with teacher A's +3.3)
acdc acdc7_teacherB_seed0 --labelled labeled_7 --seed 0 --methods $ORACLE $RECIPE $CP_ORACLE
# The gate (log item 1): oracle - twin was +3.3 (teacher A) and +1.6 (teacher B), mean +2.45 < +3, so the 3-labelled
# setting comes next (teacher B's seed 1, which completes item 6's reading, and teacher C after it). The copy-paste
# oracle runs at 3 labelled too: the ceiling under supervised copy-paste where labels are scarcer.
acdc acdc3_teacherA_seed0 --labelled labeled_3 --seed 0 --methods $ORACLE $RECIPE $FROM_CP
# item 7's rule needs both seeds: seed 1's candidate and twin first (the runner trains copy-paste before them)
acdc acdc3_teacherA_seed1 --labelled labeled_3 --seed 1 --teacher-from "$ROOT/acdc3_teacherA_seed0" \
    --methods $FROM_CP $RECIPE
# item 7's rule passed at 3 labelled (+3.1 / +5.8 over its twin): its no-harm check at 7 labelled, teacher B, seeds
# 0 / 1 (the mean at least its twin's - 0.5) comes next, before the README offers it
acdc acdc7_teacherB_seed0 --labelled labeled_7 --seed 0 --methods $FROM_CP
acdc acdc7_teacherB_seed1 --labelled labeled_7 --seed 1 --teacher-from "$ROOT/acdc7_teacherB_seed0" \
    --methods $FROM_CP $RECIPE $CP_ORACLE
# 7 labelled, teacher C: the second teacher of the target (nnU-Net's augmentation is unseeded: a new teacher), with
# the candidate first (item 7: two teachers x two seeds at 7 labelled decide whether it replaces the recommended
# trainer; the rule is the log's item 8), then the recommended trainer; BCP failed its rule and waits behind the
# no-harm check below
acdc acdc7_teacherC_seed0 --labelled labeled_7 --seed 0 --methods $FROM_CP $RECIPE
acdc acdc7_teacherC_seed1 --labelled labeled_7 --seed 1 --teacher-from "$ROOT/acdc7_teacherC_seed0" \
    --methods $FROM_CP $RECIPE
# item 9: a second round from item 7's candidate at 3 labelled (its twin runs both rounds without unlabelled images;
# the runner reuses the folders' copy-paste models, candidates and twins). Moved before Hippocampus on 2026-12-08:
# it decides an unmet target in about 80 min, Hippocampus (a new teacher) needs about 5 h
SECOND_ROUND="dualunc_plus_second_round"
acdc acdc3_teacherA_seed0 --labelled labeled_3 --seed 0 --methods $SECOND_ROUND
acdc acdc3_teacherA_seed1 --labelled labeled_3 --seed 1 --methods $SECOND_ROUND
# Hippocampus 9 labelled, the no-harm check (warm start, 260 steps): the recommended trainer at least the supervised
# copy-paste trainer - 0.5 (item 7's candidate too; first since 2026-12-08: it decides item 8 (c))
"$PY" benchmarks/hippocampus.py --labelled labeled_9 --profile cpu_warm --seed 0 --work "$ROOT/hippo9_seed0" \
    ${KEEP:+--keep "$KEEP/hippo9_seed0"} --methods copy_paste_continued $FROM_CP dualunc_warm_copy_paste_pseudo_dice
# item 10: item 9's second round passed at 3 labelled; whether the README offers it at 7 labelled too (teacher C)
acdc acdc7_teacherC_seed0 --labelled labeled_7 --seed 0 --methods $SECOND_ROUND
acdc acdc7_teacherC_seed1 --labelled labeled_7 --seed 1 --methods $SECOND_ROUND
# the ceiling under supervised copy-paste and BCP at 3 labelled (item 6 where labels are scarcer)
acdc acdc3_teacherA_seed0 --labelled labeled_3 --seed 0 --methods $CP_ORACLE $BCP
acdc acdc3_teacherA_seed1 --labelled labeled_3 --seed 1 --methods $CP_ORACLE $BCP
acdc acdc7_teacherC_seed0 --labelled labeled_7 --seed 0 --methods $BCP
acdc acdc7_teacherC_seed1 --labelled labeled_7 --seed 1 --methods $BCP
# supervised copy-paste from scratch (the cpu profile: 1500 steps, against nnU-Net's own trainer for as many steps)
acdc acdc7_scratch_seed0 --labelled labeled_7 --profile cpu --seed 0 --methods supervised copy_paste
acdc acdc3_scratch_seed0 --labelled labeled_3 --profile cpu --seed 0 --methods supervised copy_paste
