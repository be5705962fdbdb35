#!/usr/bin/env bash
# Issue 13: BC-init PPO vs PPO from scratch vs residual SAC on ThreeDOF-Reach-v0 at an equal
# env-step budget, with the same held-out evaluation (50 reset seeds 300000.., every 10 000
# steps), then the side-by-side curves (`ampczoo bench finetune --runs ...`).
# Sequential and resumable: rerun the script to continue (finished runs are skipped).
# Usage: scripts/finetune_compare.sh [OUT=runs/finetune-compare] [STEPS=30000]
# Results: docs/results/finetune.md#sample-efficiency-bc-init-ppo-vs-ppo-vs-residual-sac
set -uo pipefail
out=${1:-runs/finetune-compare} steps=${2:-30000}
py=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
common=(--env ThreeDOF-Reach-v0 --steps "$steps" --gamma 0.98 --success-bonus 1.0
  --success-pos-error 0.02 --eval-every 10000 --eval-episodes 50 --eval-seed 300000
  --checkpoint-every 10000 --seed 0 --no-progress)
data=$out/threedof_demos.zarr
mkdir -p "$out"
[ -d "$data" ] || $py -m ampczoo collect --env ThreeDOF-Reach-v0 --episodes 200 --workers 1 --out "$data"
run() {  # run NAME ARGS...: skip when finished at $steps, resume when started
  local name=$out/$1; shift
  if [ -d "$name/last" ] && $py -c "import json, sys
sys.exit(json.load(open('$name/checkpoint/state.json'))['steps'] < $steps)"; then return; fi
  local resume=(); [ -f "$name/run.json" ] && resume=(--resume)
  $py -m ampczoo finetune "$@" "${common[@]}" --out "$name" "${resume[@]}" >> "$name.log" 2>&1
}
run residual-sac residual --base threedof-ffn-h10 --algo sac --scale 0.3 0.3 0.15 --n-step 10 \
  --actor-lr-scale 0.3
run bc-ppo bc --data "$data" --algo ppo --hidden-dim 256 --num-layers 3 --bc-epochs 50
run ppo-scratch bc --data "$data" --algo ppo --hidden-dim 256 --num-layers 3 --bc-epochs 0
$py -m ampczoo bench finetune --policies --runs "$out/residual-sac" "$out/bc-ppo" "$out/ppo-scratch"
