"""Regenerate tests/policies/golden/zoo_actions.json: the first three actions of every shipped
checkpoint, and of every shipped refiner on its demo base ("<base> + <refiner>"), from a fixed
reset of the env (kinematic sim, control_dt 0.1 s, reset seed 0, policy seed 0). Run after
retraining a zoo checkpoint on purpose:

    .venv/bin/python scripts/regen_zoo_golden.py
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np

import ampczoo
from ampczoo.benchmarks.demo import ZOO_POLICIES, ZOO_REFINED

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "policies" / "golden" / "zoo_actions.json"
STEPS = 3


def zoo_actions(env_id: str, name: str) -> np.ndarray:
    """(STEPS, 7) actions [rad/s] of zoo checkpoint ``name`` in ``env_id`` from reset seed 0;
    ``"<base> + <refiner>"`` runs zoo base ``base`` through zoo refiner ``refiner``."""
    import torch

    from ampczoo.policies.diffog import DiffOG

    torch.set_num_threads(1)
    base, _, refiner = name.partition(" + ")
    policy = ampczoo.load_policy(base, device="cpu")
    if refiner:
        policy = DiffOG.wrap(policy, refiner, device="cpu")
    env = gym.make(env_id, control_dt=0.1)
    obs, _ = env.reset(seed=0)
    policy.reset(seed=0)
    actions = []
    for _ in range(STEPS):
        actions.append(policy.act(obs))
        obs, *_ = env.step(actions[-1])
    env.close()
    return np.asarray(actions)


def shipped() -> list[tuple[str, str]]:
    """(env id, name) of every golden entry: zoo policies, then "<base> + <refiner>"."""
    return [(env_id, name) for env_id, names in ZOO_POLICIES.items() for name in names] + [
        (env_id, f"{base} + {refiner}")
        for env_id, pairs in ZOO_REFINED.items()
        for base, refiner in pairs
    ]


def main() -> None:
    table = {name: zoo_actions(env_id, name).tolist() for env_id, name in shipped()}
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(table, indent=1) + "\n")
    print(f"wrote {GOLDEN} ({len(table)} checkpoints)")


if __name__ == "__main__":
    main()
