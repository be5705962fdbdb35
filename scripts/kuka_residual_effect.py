"""How large is the effect a residual-RL critic must learn on the KUKA obstacle task? (issue 13)

From states along the frozen base's episodes (every 40 steps from step 20, reset seeds
300000..), the env and base are copied (``copy.deepcopy``) and continued twice: with the
residual 0.5 * scale * dq_DLS / max|dq_DLS| (the damped least-squares step toward the target
pose, recomputed each step) for the first 10 steps, and with zero residual; then both run on
with the base alone. Prints the difference of the training reward (env's + success bonus 1
- penetration penalty 1) summed over the next 10 and 50 steps. A measurement, not a policy.

With RUN (a ``--hold 10`` TD3 run folder) and BONUS (its success bonus), also compares that
run's critic, Q(s, a_DLS) - Q(s, 0), with the true difference of the next 10 steps' reward
(one agent decision) at the same states: does the critic rank the DLS residual above none?

    python scripts/kuka_residual_effect.py [EPISODES=10] [RUN BONUS]
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


def critic_versus_truth(run: str, bonus: float) -> None:
    """Q(s, a_DLS) - Q(s, 0) of the run's critic against the true reward difference of one
    10-step decision (the run's reward: success bonus ``bonus``, penetration penalty 1)."""
    from ampczoo.finetune import sb3

    held = residual_env(
        "DAMPC-KukaTrackObstacle-v0", "lsm-kuka-obstacle", 0.15, bonus, False, 1.0, 10
    )
    model = sb3.algo_class("td3").load(f"{run}/checkpoint/model.zip", device="cpu")
    predicted, true = [], []
    for seed in range(300000, 300000 + episodes):
        obs, _ = held.reset(seed=seed)
        for t in range(20):  # decisions of 10 steps
            if t % 4 == 2:
                a = dls_residual(obs)
                with torch.no_grad():
                    o = torch.as_tensor(obs[None])
                    q = [
                        model.critic(o, torch.as_tensor(x[None], dtype=torch.float32))[0]
                        for x in (a, np.zeros(7))
                    ]
                predicted.append(float(q[0] - q[1]))
                rewards = [copy.deepcopy(held).step(x)[1] for x in (a, np.zeros(7))]
                true.append(rewards[0] - rewards[1])
            obs, *_ = held.step(np.zeros(7))
    p, r = np.array(predicted), np.array(true)
    print(
        f"{run}: true 10-step difference median {np.median(r):.4f} (> 0 in "
        f"{100 * np.mean(r > 0):.0f} %), critic's median {np.median(p):.4f} (> 0 in "
        f"{100 * np.mean(p > 0):.0f} %), correlation {np.corrcoef(p, r)[0, 1]:.2f}, n {len(p)}"
    )


if len(sys.argv) > 3:
    critic_versus_truth(sys.argv[2], float(sys.argv[3]))
