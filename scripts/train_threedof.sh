#!/usr/bin/env bash
# Train the 3-DOF history policies (paper §5: MSE, Adam lr 1e-3, batch 256, weight decay 1e-4
# (AdamW), early stopping on the validation loss (patience 4); split by episode 80/10/10; LR
# schedule: warm-up + cosine decay over MAX_EPOCHS unless --no-cosine is passed) and ship the
# H = 10 ones as ampczoo/zoo/threedof-<arch>-h10 (the best/ = lowest-validation checkpoint).
# Usage: scripts/train_threedof.sh DATA.zarr ARCH H [MAX_EPOCHS] [extra `ampczoo train` flags]
# Example: scripts/train_threedof.sh data/threedof.zarr gru 10 30
set -euo pipefail
data=$1 arch=$2 hist=$3 epochs=${4:-30}
shift $(( $# < 4 ? $# : 4 ))
run=runs/train-threedof-$arch-h$hist
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
py=${PYTHON:-.venv/bin/python}
resume=()
[ -f "$run/last/train_state.json" ] && resume=(--resume)
$py -m ampczoo train "$arch" --data "$data" --out "$run" --policy.history "$hist" \
  --epochs "$epochs" --patience 4 --lr 1e-3 --weight-decay 1e-4 --batch-size 256 \
  --val-fraction 0.1 --test-fraction 0.1 --seed 0 "${resume[@]}" "$@"
if [ "$hist" = 10 ]; then
  mkdir -p "ampczoo/zoo/threedof-$arch-h10"
  cp "$run/best/config.json" "$run/best/model.safetensors" "$run/best/card.json" \
    "ampczoo/zoo/threedof-$arch-h10/"
  echo "shipped $run/best -> ampczoo/zoo/threedof-$arch-h10"
fi
