"""Push-T diagnosis: the largest goal coverage each episode of a policy reaches.

Usage: python scripts/pusht_coverage.py POLICY EPISODES SEED|train
  SEED: reset seeds SEED, SEED+1, ...; "train": the reset seeds of the first EPISODES
  episodes that `ampczoo collect --seed 0` stored (their own initial states).
Prints the max coverage per episode, their mean / median, how many pass 0.95 (success) and
0.8, and the median final distance of the T's origin to the goal [px].
Results: docs/results/manipulation.md#push-t-table-is-last-column-2026-12-05
"""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np

import ampczoo
from ampczoo.data.collect import episode_seed
from ampczoo.experts.scripted_pusht import GOAL


def main(policy_path: str, episodes: int, seeds: str) -> None:
    policy = ampczoo.load_policy(policy_path, device="cpu")
    env = gym.make("PushT-v0")
    best, dist = [], []
    for k in range(episodes):
        seed = (episode_seed(0, k) & 0x7FFFFFFF) if seeds == "train" else int(seeds) + k
        obs, _ = env.reset(seed=seed)
        policy.reset()
        top = 0.0
        for _ in range(300):
            obs, _, terminated, truncated, _ = env.step(policy.act(obs))
            top = max(top, env.unwrapped.coverage())
            if terminated or truncated:
                break
        best.append(top)
        dist.append(float(np.linalg.norm(obs[2:4] - GOAL[:2])))
    cov = np.array(best)
    print(policy_path, "max coverage per episode", np.round(cov, 2).tolist())
    print(
        f"mean {cov.mean():.3f}, median {np.median(cov):.3f}, > 0.95: {(cov > 0.95).sum()}/"
        f"{len(cov)}, > 0.8: {(cov > 0.8).sum()}, median final distance {np.median(dist):.1f} px"
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
