"""Can a larger or better-shaped task-space P residual close the KUKA gap to the MPC expert?
(issue 13, sixth session). Base + a hand-made task-space P, optionally with the rotation error
as the axis-angle log map (instead of the features' sin(theta) * axis) and a null-space term
that pulls the joints to mid-range (I - J+ J) kn (q_mid - q) / q_half:

    v = (clip(k e_p, +-LIN), clip(k e_r, +-ANG)),  dq = clip(J+ v [+ null term], +-JOINT)

J+ the damped least-squares inverse (lambda^2 = 0.01). Not a shipped policy.

    python scripts/kuka_nullspace_reference.py SEED0 N K,LIN,ANG,JOINT,KN,LOGMAP [...]
    python scripts/kuka_nullspace_reference.py 1000 40 10,0.2,1.0,0.3,0,0 10,0.2,1.0,0.3,0.5,1
"""

import json
import sys
import time

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ampczoo.finetune.evaluation import evaluate_policy
from ampczoo.finetune.train import load_base, make_base_env
from ampczoo.nn.features import KukaFeatures, rotation_from_6d
from ampczoo.robots.kuka import OBS_Q, OBS_TARGET_POS, OBS_TARGET_ROT6D


class NullSpaceP:
    """base + the mapped task-space P (+ the null-space joint centring)."""

    def __init__(self, base, spec: str, lower: np.ndarray, upper: np.ndarray):
        k, lin, ang, joint, kn, logmap = (float(v) for v in spec.split(","))
        self.base, self.k, self.lin, self.ang, self.joint, self.kn = base, k, lin, ang, joint, kn
        self.logmap, self.kin = bool(logmap), KukaFeatures()
        self.mid, self.half = 0.5 * (lower + upper), 0.5 * (upper - lower)

    def reset(self, seed=None):
        self.base.reset(seed=seed)

    def act(self, obs):
        u = np.asarray(self.base.act(obs), np.float64)
        o = torch.as_tensor(np.asarray(obs, np.float32))[None]
        with torch.no_grad():
            p_ee, R_ee, origins, axes = self.kin.kinematics(o[:, OBS_Q])
            R_d = rotation_from_6d(o[:, OBS_TARGET_ROT6D])[0].double().numpy()
            jac_t = self.kin.jacobian_t(p_ee, origins, axes)[0].double().numpy()  # (7, 6)
        e_p = np.asarray(obs[OBS_TARGET_POS], np.float64) - p_ee[0].double().numpy()
        E = R_d @ R_ee[0].double().numpy().T
        if self.logmap:
            e_r = Rotation.from_matrix(E).as_rotvec()
        else:
            e_r = 0.5 * np.array([E[2, 1] - E[1, 2], E[0, 2] - E[2, 0], E[1, 0] - E[0, 1]])
        v = np.concatenate(
            [np.clip(self.k * e_p, -self.lin, self.lin), np.clip(self.k * e_r, -self.ang, self.ang)]
        )
        J = jac_t.T
        J_pinv = jac_t @ np.linalg.inv(J @ jac_t + 0.01 * np.eye(6))
        dq = J_pinv @ v
        if self.kn:
            q = np.asarray(obs[OBS_Q], np.float64)
            dq += (np.eye(7) - J_pinv @ J) @ (self.kn * (self.mid - q) / self.half)
        return np.clip(u + np.clip(dq, -self.joint, self.joint), -2.3, 2.3)


def main() -> None:
    torch.set_num_threads(1)
    seed0, n = int(sys.argv[1]), int(sys.argv[2])
    base = load_base("lsm-kuka-obstacle")
    env = make_base_env("DAMPC-KukaTrackObstacle-v0")
    chain = env.unwrapped.chain
    lower, upper = np.asarray(chain.lower, float), np.asarray(chain.upper, float)
    for spec in sys.argv[3:]:
        t = time.time()
        r = evaluate_policy(env, NullSpaceP(base, spec, lower, upper), range(seed0, seed0 + n))
        row = {"spec": spec, "seeds": [seed0, n], "sr": r.success_rate, "ci": r.ci95}
        row.update(err_mean_mm=1000 * r.final_error_mean, pen_max=r.penetration_max)
        print(json.dumps({**row, "s": round(time.time() - t)}), flush=True)


if __name__ == "__main__":
    main()
