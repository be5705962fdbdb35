"""What a grasp residual allows on a Meta-World DP (issue 13, manipulation row): a hand-made
feedback added to the frozen base's action,

    r_xyz  = clip(k * e, -s, s),    r_grip = -g * tanh(|e| / 0.02 m),
    e = object - hand + (0, 0, OFFSET)   [m]

(pull the hand onto the grasp pose; open the gripper while the hand is away from it; e ~ 0
once the object is held, so the residual leaves transport to the base). Not a shipped
policy: the reference that sized the ``--features metaworld_grasp`` runs.

    python scripts/mw_grasp_reference.py ENV BASE SEED0 N [OFFSET=0.044] K,S,G [K,S,G ...]
    python scripts/mw_grasp_reference.py MetaWorld-PickPlaceWall-v0 dp-pickplacewall \
        100000 50 0.044 0,0,0 10,0.5,1
"""

import json
import sys
import time

import gymnasium as gym
import numpy as np
import torch

import ampczoo.envs  # noqa: F401
from ampczoo.benchmarks.manipulation import RowSpec, row_policy


def episode(env, base, seed: int, k: float, s: float, g: float, offset: np.ndarray) -> bool:
    """One episode of base + the feedback; True on Meta-World success (ends there)."""
    obs, info = env.reset(seed=seed)
    base.reset(seed=seed)
    done = False
    while not done:
        a = np.asarray(base.act(obs), np.float64).copy()
        e = obs[4:7] - obs[0:3] + offset
        a[:3] += np.clip(k * e, -s, s)
        a[3] -= g * np.tanh(np.linalg.norm(e) / 0.02)
        obs, _, terminated, truncated, info = env.step(np.clip(a, -1.0, 1.0))
        done = terminated or truncated or bool(info.get("success", False))
    return bool(info.get("success", False))


def main() -> None:
    env_id, base_name, seed0, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    offset = np.array([0.0, 0.0, float(sys.argv[5])])
    torch.set_num_threads(1)
    env = gym.make(env_id)
    base = row_policy(RowSpec("base", base_name), env_id, int(env.action_space.shape[0]))
    for spec in sys.argv[6:]:
        k, s, g = (float(v) for v in spec.split(","))
        t = time.time()
        wins = [episode(env, base, seed, k, s, g, offset) for seed in range(seed0, seed0 + n)]
        row = {"env": env_id, "base": base_name, "k": k, "s": s, "g": g, "offset": offset[2]}
        row.update(seeds=[seed0, n], success=100.0 * np.mean(wins), wall_s=round(time.time() - t))
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
