"""How much a residual could gain on the KUKA obstacle task (issue 13 diagnosis): a hand-made
proportional residual u = base(obs) + clip(k * dq_DLS, +-scale), dq_DLS [rad] the damped
least-squares joint step toward the target pose (the `kuka_kinematic` actor features),
k [1/s], scale [rad/s]. Not a shipped policy: it bounds what residual RL should find.

    python scripts/kuka_p_residual.py [BASE=lsm-kuka-obstacle] [PAIRS=40]
"""

import json
import sys
import time

import numpy as np
import torch

from ampczoo.finetune.evaluation import evaluate_policy
from ampczoo.finetune.train import load_base, make_base_env
from ampczoo.nn.features import KukaFeatures
from ampczoo.policies.residual_rl import KUKA_DLS

torch.set_num_threads(1)


class PRes:
    """base + clipped proportional DLS residual (k = 0: the base alone)."""

    def __init__(self, base, k, scale):
        self.base, self.k, self.scale, self.f = base, k, scale, KukaFeatures()

    def reset(self, seed=None):
        self.base.reset(seed=seed)

    def act(self, obs):
        u = np.asarray(self.base.act(obs), float)
        if self.k == 0:
            return u
        with torch.no_grad():
            dq = self.f(torch.as_tensor(np.asarray(obs, np.float32))[None])[0, KUKA_DLS].numpy()
        return u + np.clip(self.k * dq, -self.scale, self.scale)


env = make_base_env("DAMPC-KukaTrackObstacle-v0")
base = load_base(sys.argv[1] if len(sys.argv) > 1 else "lsm-kuka-obstacle")
n = int(sys.argv[2]) if len(sys.argv) > 2 else 40
seeds = range(1000, 1000 + n)
for k, scale in [(0, 0), (1.0, 0.05), (3.0, 0.05), (3.0, 0.15), (10.0, 0.15)]:
    t = time.time()
    r = evaluate_policy(env, PRes(base, k, scale), seeds)
    print(
        json.dumps(
            {
                "k": k,
                "scale": scale,
                "sr": r.success_rate,
                "ci": r.ci95,
                "err_med_mm": 1000 * r.final_error_median,
                "pen_max": r.penetration_max,
                "s": round(time.time() - t),
            }
        ),
        flush=True,
    )
