"""Can the linear actor of ``--features metaworld_grasp`` represent the hand-made grasp
feedback of ``scripts/mw_grasp_reference.py``? A ``residual_rl`` policy (scale 0.5 on xyz,
1.0 on the gripper, tanh squash, no hidden layer) on the frozen DP with its weights set by
hand: KX on e / 0.1 m -> the same axis (a pull onto the grasp pose), KG on tanh(|e| / 0.02 m)
-> the gripper (negative: open while away from it); everything else 0.

    python scripts/mw_grasp_linear_check.py [ENV] [BASE] SEED0 N KX,KG [KX,KG ...]
    python scripts/mw_grasp_linear_check.py MetaWorld-PickPlaceWall-v0 dp-pickplacewall \
        100000 20 2,-1 2,0 0,-1
"""

import json
import sys
import time

import gymnasium as gym
import numpy as np
import torch

import ampczoo.envs  # noqa: F401
from ampczoo.policies.residual_rl import ResidualRLConfig, ResidualRLPolicy


def hand_set_policy(base: str, kx: float, kg: float) -> ResidualRLPolicy:
    config = ResidualRLConfig(
        base=base,
        obs_dim=39,
        action_dim=4,
        scale=(0.5, 0.5, 0.5, 1.0),
        action_low=(-1.0,) * 4,
        action_high=(1.0,) * 4,
        num_layers=0,
        features="metaworld_grasp",
    )
    policy = ResidualRLPolicy(config)
    weight = torch.zeros(4, 9)
    weight[:3, :3] = kx * torch.eye(3)
    weight[3, 6] = kg
    with torch.no_grad():
        policy.actor.head.weight.copy_(weight)
    return policy


def success(env, policy, seed: int) -> bool:
    obs, info = env.reset(seed=seed)
    policy.reset(seed=seed)
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(policy.act(obs))
        done = terminated or truncated
    return bool(info.get("success", False))


def main() -> None:
    env_id, base, seed0, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(1)
    env = gym.make(env_id)
    for spec in sys.argv[5:]:
        kx, kg = (float(v) for v in spec.split(","))
        t = time.time()
        policy = hand_set_policy(base, kx, kg)
        wins = [success(env, policy, s) for s in range(seed0, seed0 + n)]
        row = {"env": env_id, "base": base, "kx": kx, "kg": kg, "seeds": [seed0, n]}
        print(
            json.dumps({**row, "success": 100.0 * np.mean(wins), "wall_s": round(time.time() - t)})
        )


if __name__ == "__main__":
    main()
