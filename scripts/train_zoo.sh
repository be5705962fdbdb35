#!/usr/bin/env bash
# Train the shipped zoo checkpoints from a demonstration store and copy the best-on-validation
# weights into ampczoo/zoo/<name>/. Usage:
#   scripts/train_zoo.sh {lsm|dampc} DATA.zarr ZOO_NAME MAX_STEPS [extra `ampczoo train` flags]
# Example (the shipped DAMPC of the obstacle env):
#   scripts/train_zoo.sh dampc data/kuka_obstacle.zarr dampc-kuka-obstacle 12000
set -euo pipefail
policy=$1 data=$2 name=$3 steps=$4
shift 4
run=runs/train-$name
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
resume=()
[ -d "$run/last" ] && resume=(--resume)
.venv/bin/ampczoo train "$policy" --data "$data" --out "$run" --epochs 1000 --steps "$steps" \
  "${resume[@]}" "$@"
mkdir -p "ampczoo/zoo/$name"
cp "$run/best/config.json" "$run/best/model.safetensors" "ampczoo/zoo/$name/"
echo "shipped $run/best -> ampczoo/zoo/$name"
