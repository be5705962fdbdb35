#!/usr/bin/env bash
# Train the refiners of `ampczoo bench constraints` (DiffOG dataset / refine, the no-PE and
# matrix-learning ablations, the residual baseline) on a demonstration store, one after the
# other, into runs/constraints-<name>/. Usage:
#   scripts/train_constraints.sh DATA.zarr STEPS [BASE]      (BASE default lsm-kuka-obstacle)
# LETO_DATA / LETO_EPOCHS / LETO_STEPS set LeTO's run (LETO=0 skips it); ABLATIONS=1 also retrains DiffOG-dataset at
# alpha 16 / 1 and bound 0.05 / 0.2 for the Fig. 10 table of `ampczoo bench constraints`.
set -euo pipefail
data=$1 steps=$2 base=${3:-lsm-kuka-obstacle}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
py=${PYTHON:-.venv/bin/python}
common=(--data "$data" --epochs 1000 --max-steps "$steps" --batch-size 64 --lr 3e-4
        --warmup-steps 50 --val-fraction 0.1)
run() { name=$1; shift; [ -f "runs/constraints-$name/last/train_state.json" ] && extra=(--resume) || extra=();
        $py -m ampczoo train "$@" --out "runs/constraints-$name" "${common[@]}" "${extra[@]}"; }
run diffog-dataset diffog --policy.mode dataset
run diffog-refine diffog --policy.mode refine --policy.base "$base"
run matrix-dataset diffog --policy.mode dataset --policy.q-mode matrix
run diffog-nope-dataset diffog --policy.mode dataset --policy.no-positional-encoding
run residual-dataset residual --policy.mode dataset
# LeTO (its own policy: LSTM + DTO layer, windows of T_s = 12; batch = windows). LETO_DATA
# (default DATA), LETO_EPOCHS (default 1) and LETO_STEPS (default 4500) set its store and length.
if [ "${LETO:-1}" = 1 ]; then
  $py -m ampczoo train leto --out runs/constraints-leto --data "${LETO_DATA:-$data}" \
    --epochs "${LETO_EPOCHS:-1}" --max-steps "${LETO_STEPS:-4500}" --batch-size 32 --lr 1e-3 \
    --warmup-steps 100 --val-fraction 0.03 \
    $([ -f runs/constraints-leto/last/train_state.json ] && echo --resume)
fi
if [ "${ABLATIONS:-0}" = 1 ]; then
  run diffog-dataset-alpha16 diffog --policy.mode dataset --policy.alpha 16
  run diffog-dataset-alpha1 diffog --policy.mode dataset --policy.alpha 1
  run diffog-dataset-bound0.05 diffog --policy.mode dataset --policy.bound 0.05
  run diffog-dataset-bound0.2 diffog --policy.mode dataset --policy.bound 0.2
fi
