"""How large is the effect a residual-RL critic must learn on the KUKA obstacle task? (issue 13)

From states along the frozen base's episodes (every 40 steps from step 20, reset seeds
300000..), the env and base are copied (``copy.deepcopy``) and continued twice: with the
residual 0.5 * scale * dq_DLS / max|dq_DLS| (the damped least-squares step toward the target
pose, recomputed each step) for the first 10 steps, and with zero residual; then both run on
with the base alone. Prints the difference of the training reward (env's + success bonus 1
- penetration penalty 1) summed over the next 10 and 50 steps. A measurement, not a policy.

    python scripts/kuka_residual_effect.py [EPISODES=10]
"""

import copy
import sys

import numpy as np
import torch

from ampczoo.finetune.train import residual_env
from ampczoo.nn.features import KukaFeatures
from ampczoo.policies.residual_rl import KUKA_DLS

torch.set_num_threads(1)
episodes = int(sys.argv[1]) if len(sys.argv) > 1 else 10
env = residual_env(
    "DAMPC-KukaTrackObstacle-v0", "lsm-kuka-obstacle", 0.15, 1.0, False, penetration_penalty=1.0
)
features = KukaFeatures()


def dls_residual(obs: np.ndarray) -> np.ndarray:
    """0.5 * dq_DLS / max|dq_DLS| (7,) in residual units."""
    with torch.no_grad():
        g = features(torch.as_tensor(obs[None, :20]))[0, KUKA_DLS].numpy()
    return 0.5 * g / (np.abs(g).max() + 1e-12)


def branch_return(obs: np.ndarray, horizon: int, push: bool) -> float:
    """Reward summed over ``horizon`` steps of a copy of the env (and base) from ``obs``."""
    branch, o, total = copy.deepcopy(env), obs.copy(), 0.0
    for k in range(horizon):
        o, reward, *_ = branch.step(dls_residual(o) if push and k < 10 else np.zeros(7))
        total += reward
    return total


diffs: dict[int, list[float]] = {10: [], 50: []}
for seed in range(300000, 300000 + episodes):
    obs, _ = env.reset(seed=seed)
    for t in range(200):
        if t % 40 == 20:
            for horizon, rows in diffs.items():
                rows.append(branch_return(obs, horizon, True) - branch_return(obs, horizon, False))
        obs, *_ = env.step(np.zeros(7))
for horizon, rows in diffs.items():
    d = np.array(rows)
    print(
        f"reward over {horizon} steps, 10 steps of the DLS residual minus none: mean "
        f"{d.mean():.4f}, median {np.median(d):.4f}, "
        f"> 0 in {100 * np.mean(d > 0):.0f} % of {len(d)}"
    )
