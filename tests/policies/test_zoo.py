"""The checkpoints shipped in the package load offline and drive their env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import ampczoo
from ampczoo.benchmarks.demo import MAX_DELTA, ZOO_POLICIES, ZOO_REFINED
from ampczoo.robots.kuka import VELOCITY_LIMIT

SHIPPED = [(env_id, name) for env_id, names in ZOO_POLICIES.items() for name in names]


def test_every_demo_policy_is_shipped():
    assert {name for _, name in SHIPPED} <= set(ampczoo.list_policies())


@pytest.mark.parametrize(("env_id", "name"), SHIPPED)
def test_shipped_policy_acts_in_its_env(env_id, name):
    policy = ampczoo.load_policy(name, device="cpu")
    env = gym.make(env_id, control_dt=0.1)
    obs, _ = env.reset(seed=0)
    policy.reset(seed=0)
    assert policy.config.obs_dim == obs.shape[0]
    for _ in range(3):
        action = policy.act(obs)
        assert action.shape == (7,) and np.all(np.isfinite(action))
        assert np.all(np.abs(action) <= 1.5 * VELOCITY_LIMIT)
        obs, *_ = env.step(action)


def test_shipped_actions_match_golden():
    """Backward compatibility: the shipped weights, features and sampler still give the actions
    recorded by scripts/regen_zoo_golden.py (rerun it after retraining a checkpoint on purpose)."""
    import importlib.util
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("regen", root / "scripts/regen_zoo_golden.py")
    regen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(regen)
    golden = json.loads(regen.GOLDEN.read_text())
    assert set(golden) == {name for _, name in regen.shipped()}
    for env_id, name in regen.shipped():
        np.testing.assert_allclose(
            regen.zoo_actions(env_id, name),
            golden[name],
            atol=1e-4,
            err_msg=f"{name} no longer reproduces its golden actions",
        )


REFINED = [
    (env_id, base, refiner) for env_id, pairs in ZOO_REFINED.items() for base, refiner in pairs
]


@pytest.mark.parametrize(("env_id", "base", "refiner"), REFINED)
def test_shipped_refiner_keeps_the_change_bound_on_a_shipped_base(env_id, base, refiner):
    from ampczoo.policies.diffog import DiffOG

    assert {base, refiner} <= set(ampczoo.list_policies())
    policy = DiffOG.wrap(ampczoo.load_policy(base, device="cpu"), refiner)
    np.testing.assert_allclose(policy.refiner.raw_bound(), MAX_DELTA, rtol=1e-6)
    env = gym.make(env_id, control_dt=0.1)
    obs, _ = env.reset(seed=0)
    policy.reset(seed=0)
    actions = []
    for _ in range(8):
        actions.append(policy.act(obs))
        obs, *_ = env.step(actions[-1])
    changes = np.abs(np.diff(actions, axis=0))
    assert changes.max() <= MAX_DELTA + 1e-6
    assert policy.stats.calls == 8 and policy.stats.interventions > 0


THREEDOF = [f"threedof-{arch}-h10" for arch in ("ffn", "lstm", "gru", "transformer")]


def test_threedof_policies_are_shipped():
    assert set(THREEDOF) <= set(ampczoo.list_policies())


@pytest.mark.parametrize("name", THREEDOF)
def test_threedof_policy_acts_within_torque_bounds(name):
    policy = ampczoo.load_policy(name, device="cpu")
    assert policy.config.history == 10
    env = gym.make("ThreeDOF-Reach-v0")
    obs, _ = env.reset(seed=0)
    policy.reset(seed=0)
    for _ in range(5):
        action = policy.act(obs)
        assert action.shape == (3,) and np.all(np.abs(action) <= env.action_space.high)
        obs, _, _, _, info = env.step(action)
        assert info["action_clipped"] == 0
