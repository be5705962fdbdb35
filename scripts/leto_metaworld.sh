#!/bin/bash
# LeTO on the remaining Meta-World tasks of Table VII (issue 12): collect, train (the
# Pick Place Wall recipe: 4000 steps at lr 1e-3, then to 6000 at 1e-4), bench on 50 states.
set -e
export OMP_NUM_THREADS=1 MUJOCO_GL=osmesa
A=.venv/bin/ampczoo
for pair in disassemble:Disassemble stickpull:StickPull shelfplace:ShelfPlace; do
  t=${pair%%:*}; E=MetaWorld-${pair##*:}-v0
  echo "=== $t $(date -u +%H:%M)"
  nice -n 15 $A collect --env $E --episodes 31 --workers 1 --resume --out data/metaworld_$t.zarr
  C="--data data/metaworld_$t.zarr --out runs/leto-$t --epochs 100000 --batch-size 32 \
     --no-cosine --val-fraction 0.1 --seed 0 --device cpu --policy.hidden-dim 400 --policy.num-layers 2 \
     --policy.chunk-len 6 --policy.seq-len 12 --policy.exec-steps 1 --policy.l-init 0.3 --resume"
  nice -n 15 $A train leto $C --max-steps 4000 --lr 1e-3
  nice -n 15 $A train leto $C --max-steps 6000 --lr 1e-4
  echo "=== bench $t $(date -u +%H:%M)"
  nice -n 15 $A bench manipulation --base $E=dp-$t --leto $E=runs/leto-$t/last --methods leto \
      --episodes 50 --seed 100000 --workers 1 --out runs/leto-$t-bench
done
echo "=== done $(date -u +%H:%M)"
