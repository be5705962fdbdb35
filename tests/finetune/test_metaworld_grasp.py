"""The ``metaworld_grasp`` residual features (Meta-World envs): the grasp error alone, a
linear actor on them acting as base + a saturated grasp feedback, refused elsewhere, and a
short ``finetune residual`` run on Pick Place Wall that exports a loadable policy."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")
pytest.importorskip("metaworld")

import ampczoo.envs  # noqa: F401
from ampczoo.core.registry import load_policy
from ampczoo.finetune.train import ResidualRunConfig, run_residual
from ampczoo.policies.residual_rl import (
    MW_GRASP_OFFSET,
    ResidualInput,
    ResidualRLConfig,
    ResidualRLPolicy,
)

ENV = "MetaWorld-PickPlaceWall-v0"


def observations(n: int = 3) -> np.ndarray:
    env = gym.make(ENV)
    obs = np.array([env.reset(seed=s)[0] for s in range(n)])
    env.close()
    return obs


def bounds(n: int) -> dict:
    """action_dim, scale and action bounds of an n-dimensional action."""
    return {
        "action_dim": n,
        "scale": (0.5,) * n,
        "action_low": (-1.0,) * n,
        "action_high": (1.0,) * n,
    }


def test_grasp_features_are_the_grasp_error_gripper_and_base_grip():
    obs = observations()
    base = np.tile([0.1, -0.2, 0.3, 0.7], (len(obs), 1))
    x = torch.as_tensor(np.concatenate([obs, base], 1), dtype=torch.float32)
    feats = ResidualInput(39, 4, "metaworld_grasp")(x).numpy()
    assert feats.shape == (3, 9)
    err = obs[:, 4:7] - obs[:, 0:3] + np.array(MW_GRASP_OFFSET)
    np.testing.assert_allclose(feats[:, :3], err / 0.1, atol=1e-5)
    np.testing.assert_allclose(feats[:, 3:6], np.tanh(err / 0.02), atol=1e-5)
    np.testing.assert_allclose(feats[:, 6], np.tanh(np.linalg.norm(err, axis=1) / 0.02), atol=1e-5)
    np.testing.assert_allclose(feats[:, 7], obs[:, 3], atol=1e-6)
    np.testing.assert_allclose(feats[:, 8], 0.7, atol=1e-6)
    moved = x.clone()
    moved[:, 36:39] += 0.1  # the goal and the base's position actions do not enter
    moved[:, 39:42] = 0.0
    torch.testing.assert_close(
        ResidualInput(39, 4, "metaworld_grasp")(moved), torch.as_tensor(feats)
    )
    with pytest.raises(ValueError, match="metaworld_grasp"):
        ResidualRLConfig(obs_dim=20, features="metaworld_grasp", **bounds(3))
    with pytest.raises(ValueError, match="metaworld_grasp"):
        ResidualRLConfig(obs_dim=39, features="metaworld_grasp", **bounds(3))


def grasp_feedback_policy(base_action: np.ndarray) -> ResidualRLPolicy:
    """A linear actor set by hand: xyz residual 0.5 tanh(2 e / 0.1 m), gripper residual
    -0.5 tanh(tanh(|e| / 0.02 m)) (open while the hand is away from the grasp pose)."""
    policy = ResidualRLPolicy(
        ResidualRLConfig(obs_dim=39, num_layers=0, features="metaworld_grasp", **bounds(4))
    )
    policy.set_base(lambda obs: base_action)
    weight = torch.zeros(4, 9)
    weight[:3, :3] = 2.0 * torch.eye(3)
    weight[3, 6] = -1.0
    with torch.no_grad():
        policy.actor.head.weight.copy_(weight)
    return policy


def test_linear_grasp_feedback_pulls_to_the_object_and_leaves_a_held_object_alone():
    base_action = np.array([0.0, 0.0, 0.0, 0.9])
    policy = grasp_feedback_policy(base_action)
    obs = observations(1)[0]  # at reset the hand is above and away from the object
    err = obs[4:7] - obs[0:3] + np.array(MW_GRASP_OFFSET)
    policy.reset()
    action = policy.act(obs)
    residual = action - base_action
    big = np.abs(err) > 0.01
    np.testing.assert_array_equal(np.sign(residual[:3][big]), np.sign(err[big]))
    assert residual[3] < -0.3  # opens the gripper far from the object
    held = obs.copy()
    held[4:7] = held[0:3] - np.array(MW_GRASP_OFFSET)  # the object where a held one sits
    policy.reset()
    np.testing.assert_allclose(policy.act(held), base_action, atol=1e-6)


def test_short_grasp_residual_run_exports_a_loadable_policy(tmp_path):
    out = tmp_path / "run"
    cfg = ResidualRunConfig(
        env=ENV,
        base="dp-pickplacewall",
        algo="sac",
        features="metaworld_grasp",
        actor_layers=0,
        scale=(0.5, 0.5, 0.5, 1.0),
        steps=200,
        learning_starts=50,
        eval_every=200,
        eval_episodes=1,
        norm_episodes=1,
        success_bonus=200.0,
        out=str(out),
        progress=False,
    )
    run_residual(cfg)
    config = json.loads((out / "last" / "config.json").read_text())
    assert (config["features"], config["num_layers"], config["obs_dim"]) == (
        "metaworld_grasp",
        0,
        39,
    )
    policy = load_policy(str(out / "last"), device="cpu")
    obs = observations(1)[0]
    policy.reset(seed=0)
    action = policy.act(obs)
    assert action.shape == (4,) and np.all(np.abs(action) <= 1.0)
    head = policy.actor.head
    assert head.weight.shape == (4, 9)  # linear: nine grasp features -> four residuals
