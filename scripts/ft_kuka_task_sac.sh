#!/bin/bash
# residual SAC with the task-space linear actor of residual-ppo-kuka-obstacle (issue 13)
set -e
export OMP_NUM_THREADS=1 MUJOCO_GL=osmesa
nice -n 5 .venv/bin/ampczoo finetune residual --env DAMPC-KukaTrackObstacle-v0 \
    --base lsm-kuka-obstacle --algo sac --residual-space task --twist-scale 0.2 0.5 --scale 0.3 \
    --actor-layers 0 --features kuka_error --hold 5 --gamma 0.9 --n-step 3 --learning-starts 200 \
    --actor-delay 2000 --actor-lr-scale 0.3 --init-std 0.2 --success-bonus 1.0 \
    --penetration-penalty 1 --norm-episodes 3 --eval-every 400 --eval-episodes 20 \
    --eval-seed 300000 --checkpoint-every 400 --seed ${SEED:-0} --no-progress --steps ${STEPS:-30000} \
    --out runs/kuka/sac-task-err-s${SEED:-0} "$@"
