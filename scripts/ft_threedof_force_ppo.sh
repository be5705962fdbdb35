#!/bin/bash
# 3-DOF task-space force residual, linear PPO actor on the end-effector error (issue 13)
export OMP_NUM_THREADS=1 MUJOCO_GL=osmesa
exec nice -n 5 .venv/bin/ampczoo finetune residual --env ThreeDOF-Reach-v0 \
    --base threedof-ffn-h10 --algo ppo --residual-space task_force --twist-scale 20 \
    --scale 1 1 0.5 --actor-layers 0 --features threedof_error --gamma 0.98 --n-steps 1024 \
    --batch-size 128 --init-std 0.2 --learning-rate 1e-3 --success-bonus 1.0 \
    --success-pos-error 0.02 --eval-every 10000 --eval-episodes 50 --eval-seed 300000 \
    --checkpoint-every 10240 --seed ${SEED:-0} --no-progress --steps ${STEPS:-200000} \
    --out runs/t3/ppo-force-s${SEED:-0} "$@"
