#!/bin/bash
# Table V analog in dataset mode on Square (issue 12): the diffog-matrix-dp-square recipe with
# --policy.mode dataset (inputs = demonstrated chunks, no base; the DP chunk layout: 16 rows, "now" at row T_o - 1 = 1), then wrapped on dp-square.
set -e
export OMP_NUM_THREADS=1 MUJOCO_GL=osmesa
A=.venv/bin/ampczoo
E=Robomimic-Square-v0
nice -n 5 $A collect --env $E --episodes 207 --workers 1 --resume --out data/robomimic_square.zarr
nice -n 5 $A train diffog --data data/robomimic_square.zarr --out runs/sq-ds-matrix --policy.mode dataset --policy.chunk-offset 1 \
    --epochs 1000 --max-steps 1200 --batch-size 64 --lr 3e-4 --warmup-steps 50 --val-fraction 0.05 \
    --policy.embed-dim 128 --policy.q-dims 0 1 2 3 4 5 --policy.q-reg 0.1 --policy.q-mode matrix
for s in 100000 100050; do
  nice -n 5 $A bench manipulation --base $E=dp-square --diffog $E=runs/sq-ds-matrix/best \
      --methods diffog --episodes 50 --seed $s --workers 1 --out runs/sq-ds-matrix-bench-$s
done
echo "=== done $(date -u +%H:%M)"
