#!/usr/bin/env bash
# Train a shipped zoo checkpoint from a demonstration store and copy it (config.json,
# model.safetensors and the card.json the training wrote: env, data, command, date; add the
# measured result to the card after benchmarking it) into ampczoo/zoo/<name>/. Usage:
#   scripts/train_zoo.sh {lsm|dampc} DATA.zarr ZOO_NAME MAX_STEPS [extra `ampczoo train` flags]
# SHIP=last (default: the final EMA weights) or SHIP=best (lowest validation loss). The
# validation loss is dominated by the exploration-noise spread of the demonstrations and
# picked early, worse closed-loop checkpoints in our runs, hence `last`.
# Re-running continues an interrupted run (--resume) and then copies again.
# Example (the shipped DAMPC of the obstacle env, see README):
#   scripts/train_zoo.sh dampc data/kuka_obstacle_state.zarr dampc-kuka-obstacle 36000 --batch-size 1024
set -euo pipefail
policy=$1 data=$2 name=$3 steps=$4
shift 4
ship=${SHIP:-last}
run=runs/train-$name
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
resume=()
[ -d "$run/last" ] && resume=(--resume)
.venv/bin/ampczoo train "$policy" --data "$data" --out "$run" --epochs 100000 --max-steps "$steps" \
  "${resume[@]}" "$@"
mkdir -p "ampczoo/zoo/$name"
cp "$run/$ship/config.json" "$run/$ship/model.safetensors" "$run/$ship/card.json" "ampczoo/zoo/$name/"
echo "shipped $run/$ship -> ampczoo/zoo/$name"
