"""Does a residual-RL critic know which residual helps? (issue 13 diagnosis, KUKA obstacle.)

For the SB3 critic of a run's resume checkpoint (``RUN/checkpoint/model.zip``), roll out the
frozen base plus one step of policy improvement along the critic, with no actor at all:
r = c * g / max|g|, g = dQ/da at zero residual, recomputed every ``hold`` env steps; and, as
the reference, the same-sized residual along the damped least-squares step dq_DLS (one of
the actor's input features, the direction of the hand P residual of kuka_p_residual.py).
Also prints the mean cosine between g and dq_DLS. Not a policy: a measurement.

    python scripts/kuka_critic_direction.py RUN [ALGO=td3] [C=0.5] [HOLD=1] [EPISODES=20]
"""

import sys

import numpy as np
import torch

from ampczoo.finetune import sb3
from ampczoo.finetune.train import residual_env
from ampczoo.nn.features import KukaFeatures
from ampczoo.policies.residual_rl import KUKA_DLS

torch.set_num_threads(1)
run = sys.argv[1]
algo = sys.argv[2] if len(sys.argv) > 2 else "td3"
c = float(sys.argv[3]) if len(sys.argv) > 3 else 0.5
hold = int(sys.argv[4]) if len(sys.argv) > 4 else 1
episodes = int(sys.argv[5]) if len(sys.argv) > 5 else 20
env = residual_env("DAMPC-KukaTrackObstacle-v0", "lsm-kuka-obstacle", 0.15, 0.0, monitor=False)
model = sb3.algo_class(algo).load(f"{run}/checkpoint/model.zip", device="cpu")
features = KukaFeatures()


def critic_gradient(obs: np.ndarray) -> np.ndarray:
    """dQ1/da (7,) at zero residual."""
    a = torch.zeros(1, 7, requires_grad=True)
    q = model.critic(torch.as_tensor(obs[None]), a)[0]
    return torch.autograd.grad(q.sum(), a)[0][0].numpy()


def dls_step(obs: np.ndarray) -> np.ndarray:
    """The damped least-squares joint step toward the target pose (7,) [rad]."""
    with torch.no_grad():
        return features(torch.as_tensor(obs[None, :20]))[0, KUKA_DLS].numpy()


def rollout(direction) -> tuple[float, float, list[float]]:
    """(success %, mean final position error mm, cosines of g and dq_DLS) over the episodes."""
    success, error, cosines = [], [], []
    for seed in range(300000, 300000 + episodes):
        obs, _ = env.reset(seed=seed)
        done, t = False, 0
        while not done:
            if t % hold == 0:
                d = direction(obs)
                r = c * d / (np.abs(d).max() + 1e-12)
                if t % 10 == 0:
                    g, q = critic_gradient(obs), dls_step(obs)
                    cosines.append(g @ q / (np.linalg.norm(g) * np.linalg.norm(q) + 1e-12))
            obs, _, terminated, truncated, info = env.step(r)
            done, t = terminated or truncated, t + 1
        success.append(info["success"])
        error.append(info["pos_error"])
    return 100 * np.mean(success), 1000 * np.mean(error), cosines


for name, direction in (("critic dQ/da", critic_gradient), ("dq_DLS", dls_step)):
    sr, err, cos = rollout(direction)
    print(
        f"{run} {name}: c {c} hold {hold}: success {sr:.0f} %, mean final error {err:.1f} mm; "
        f"cos(dQ/da, dq_DLS) mean {np.mean(cos):.3f}, {100 * np.mean(np.array(cos) > 0):.0f} % > 0"
    )
