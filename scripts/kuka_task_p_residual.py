"""What a task-space residual allows on the KUKA obstacle task (issue 13, third session): a
hand-made proportional twist a = clip(k * e / twist_scale, -1, 1), e = (e_p [m], e_r [rad])
the pose error of the `kuka_kinematic` features, mapped to joints exactly as the
`--residual-space task` agent's action is (TaskSpaceResidual: damped least-squares inverse
of the Jacobian, clipped to +-joint_scale [rad/s]) and added to the frozen base's action.
Not a shipped policy: the reference for what the parameterisation allows.

    python scripts/kuka_task_p_residual.py [BASE=lsm-kuka-obstacle] [SEED0=300000] [N=20] \
        [LIN=0.1] [ANG=0.3] [JOINT=0.15] [K=0,1,3,10] [SPACE=task]
"""

import json
import sys
import time

import numpy as np
import torch

from ampczoo.finetune.evaluation import evaluate_policy
from ampczoo.finetune.train import load_base, make_base_env
from ampczoo.nn.features import KukaFeatures
from ampczoo.policies.residual_rl import TaskSpaceResidual

torch.set_num_threads(1)
E_P, E_R = slice(17, 20), slice(21, 24)  # position / rotation error in KukaFeatures' output


class TaskP:
    """base + the mapped proportional twist (k = 0: the base alone)."""

    def __init__(self, base, k, twist, joint, space):
        self.base, self.k, self.space = base, k, space
        self.twist = np.asarray(twist, float)
        self.map, self.f = TaskSpaceResidual(twist, joint), KukaFeatures()

    def reset(self, seed=None):
        self.base.reset(seed=seed)

    def act(self, obs):
        u = np.asarray(self.base.act(obs), float)
        if self.k == 0:
            return u
        with torch.no_grad():
            kin = self.f(torch.as_tensor(np.asarray(obs, np.float32))[None])[0].numpy()
        e = np.concatenate([kin[E_P], kin[E_R]])[: len(self.twist)]
        a = np.clip(self.k * e / self.twist, -1.0, 1.0)
        return np.clip(u + self.map.numpy(obs, a), -2.3, 2.3)


args = sys.argv[1:] + [None] * 8
base = load_base(args[0] or "lsm-kuka-obstacle")
seed0, n = int(args[1] or 300000), int(args[2] or 20)
lin, ang, joint = float(args[3] or 0.1), float(args[4] or 0.3), float(args[5] or 0.15)
ks = [float(k) for k in (args[6] or "0,1,3,10").split(",")]
space = args[7] or "task"
twist = [lin] * 3 + ([ang] * 3 if space == "task" else [])
env = make_base_env("DAMPC-KukaTrackObstacle-v0")
for k in ks:
    t = time.time()
    r = evaluate_policy(env, TaskP(base, k, twist, joint, space), range(seed0, seed0 + n))
    row = {"space": space, "k": k, "lin": lin, "ang": ang, "joint": joint, "seeds": [seed0, n]}
    row.update(sr=r.success_rate, ci=r.ci95, err_mean_mm=1000 * r.final_error_mean)
    row.update(err_med_mm=1000 * r.final_error_median, pen_max=r.penetration_max)
    print(json.dumps({**row, "s": round(time.time() - t)}), flush=True)
