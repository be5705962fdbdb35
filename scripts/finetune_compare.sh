#!/usr/bin/env bash
# Issue 13: residual SAC and PPO vs BC-init PPO vs PPO from scratch vs BC-init SAC
# (demonstrations preloaded) on ThreeDOF-Reach-v0 at an equal env-step budget, per training seed, with the same
# reward and held-out evaluation (50 reset seeds 300000.., every 10 000 steps), then the
# side-by-side curves (`ampczoo bench finetune --runs ...`).
# The residuals are the shipped `residual-sac-threedof` recipe (scripts/ft_threedof_force_sac.sh)
# and its PPO twin (scripts/ft_threedof_force_ppo.sh).
# Sequential and resumable: rerun the script to continue (finished runs are skipped).
# Usage: scripts/finetune_compare.sh [OUT=runs/finetune-compare] [STEPS=100000] [SEEDS="0 1"]
# Results: docs/results/finetune.md#sample-efficiency-bc-init-ppo-vs-ppo-vs-residual-sac
set -uo pipefail
out=${1:-runs/finetune-compare} steps=${2:-100000} seeds=${3:-0 1}
py=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MUJOCO_GL=${MUJOCO_GL:-osmesa}
common=(--env ThreeDOF-Reach-v0 --steps "$steps" --gamma 0.98 --success-bonus 1.0
  --success-pos-error 0.02 --eval-every 10000 --eval-episodes 50 --eval-seed 300000
  --checkpoint-every 10000 --no-progress)
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
bc=(bc --data "$data" --hidden-dim 256 --num-layers 3)
for s in $seeds; do
  run residual-sac-s$s residual --base threedof-ffn-h10 --algo sac --residual-space task_force \
    --twist-scale 20 --scale 1 1 0.5 --actor-layers 0 --features threedof_error --n-step 10 \
    --actor-lr-scale 0.3 --seed "$s"
  run residual-ppo-s$s residual --base threedof-ffn-h10 --algo ppo --residual-space task_force \
    --twist-scale 20 --scale 1 1 0.5 --actor-layers 0 --features threedof_error --n-steps 1024 \
    --batch-size 128 --init-std 0.2 --learning-rate 1e-3 --seed "$s"
  run bc-ppo-s$s "${bc[@]}" --algo ppo --bc-epochs 50 --seed "$s"
  run ppo-scratch-s$s "${bc[@]}" --algo ppo --bc-epochs 0 --seed "$s"
done
for s in $seeds; do
  run bc-sac-s$s "${bc[@]}" --algo sac --bc-epochs 50 --preload --actor-delay 10000 --n-step 10 \
    --actor-lr-scale 0.3 --seed "$s"
done
runs=(); for s in $seeds; do
  for m in residual-sac residual-ppo bc-ppo ppo-scratch bc-sac; do [ -d "$out/$m-s$s/last" ] && runs+=("$out/$m-s$s"); done
done
$py -m ampczoo bench finetune --policies --runs "${runs[@]}"
