"""Guidance-scale ablation of a shipped IKDiffuser: warm start (distance to the prior) and
manipulability vs pose error, 100 held-out poses x 8 samples.
Usage: python scripts/ik_guidance_ablation.py ikdiffuser-panda"""

import sys

import numpy as np
import torch

from ampczoo.ik import Guidance, IKDiffuser
from ampczoo.ik import data as ikdata
from ampczoo.ik.evaluate import HELD_OUT_SEED

torch.set_num_threads(1)
name = sys.argv[1] if len(sys.argv) > 1 else "ikdiffuser-panda"
model = IKDiffuser.from_pretrained(name)
n, k = 100, 8
q_true, poses = ikdata.draw_chunk(
    model.robot, n, np.random.default_rng(HELD_OUT_SEED), ikdata.collision_filter(model.robot.name)
)
lower, upper = model.joint_limits
# the prior: a solution nearby (the target's own q moved by 0.2 rad per joint), as when
# tracking, so that a sample close to the prior can also reach the target
noise = np.random.default_rng(5).normal(0, 0.2, q_true.shape)
prior = np.clip(q_true + noise, lower, upper)
scale = (upper - lower) / 2


def run(guidance):
    sol = model.solve(poses, k, guidance=guidance, generator=torch.Generator().manual_seed(0))
    dist = np.linalg.norm((sol.q - prior[:, None]) / scale, axis=-1).mean()
    manip = model.manipulability(torch.tensor(sol.q.reshape(-1, model.dof))).mean().item()
    return np.median(sol.position_error) * 1000, np.degrees(np.median(sol.angle_error)), dist, manip


HEAD = "| guidance | w | median pos [mm] | median ang [deg] | mean distance to prior | manip. |"
print(HEAD)
print("|---|---|---|---|---|---|")
for w in (0.0, 0.1, 0.2, 0.5, 1.0):
    r = run(Guidance(q_prior=prior, warm_start_scale=w))
    print(f"| warm start | {w} | {r[0]:.1f} | {r[1]:.2f} | {r[2]:.3f} | {r[3]:.4f} |")
for w in (0.05, 0.2, 0.5, 1.0):
    r = run(Guidance(manipulability=True, manipulability_scale=w))
    print(f"| manipulability | {w} | {r[0]:.1f} | {r[1]:.2f} | {r[2]:.3f} | {r[3]:.4f} |")
