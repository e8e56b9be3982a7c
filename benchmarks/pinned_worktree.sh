#!/usr/bin/env bash
# A worktree of one commit for a long benchmark run, so that later edits in the checkout don't change the code under
# a running job. The editable install maps `nnunetv2_dualunc_trainers` (nnU-Net's trainer lookup folder) to the
# checkout's trainers/: a link under DIR/.import_shim puts the worktree's own trainers first on PYTHONPATH.
#
#   benchmarks/pinned_worktree.sh [COMMIT=HEAD] DIR
#   cd DIR && PYTHONPATH=DIR:DIR/.import_shim OMP_WAIT_POLICY=PASSIVE <checkout>/.venv/bin/python benchmarks/acdc.py ...
set -euo pipefail
if [ $# -eq 1 ]; then commit=HEAD; dir=$1; else commit=$1; dir=$2; fi
git -C "$(dirname "$0")/.." worktree add --detach "$dir" "$commit"
dir=$(cd "$dir" && pwd)
mkdir -p "$dir/.import_shim"
ln -sfn "$dir/trainers" "$dir/.import_shim/nnunetv2_dualunc_trainers"
echo "PYTHONPATH=$dir:$dir/.import_shim"
