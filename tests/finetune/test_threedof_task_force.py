"""The 3-DOF task-space force residual (``--residual-space task_force``) and the
end-effector error features (``threedof_error``): the J^T map, the wrapper's action, the
exported policy acting as base + the wrapper's executed residual, refused envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")

import ampczoo.envs  # noqa: F401
from ampczoo.finetune import sb3
from ampczoo.finetune.residual_env import ResidualPolicyEnv
from ampczoo.finetune.train import ResidualRunConfig, input_statistics
from ampczoo.policies.residual_rl import (
    ResidualInput,
    ResidualRLConfig,
    ResidualRLPolicy,
    TaskSpaceResidual,
    threedof_jacobian,
)
from ampczoo.robots.threedof import forward_kinematics

ENV = "ThreeDOF-Reach-v0"
FORCE = (20.0, 20.0, 10.0)
JOINT = (1.0, 1.0, 0.5)


def base(obs: np.ndarray) -> np.ndarray:
    """A deterministic stand-in base (3,) [N m]."""
    return 0.5 * np.sin(np.asarray(obs)[:3] + 0.3)


def numeric_jacobian(q: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    p0 = forward_kinematics(q)
    cols = [(forward_kinematics(q + eps * np.eye(3)[i]) - p0) / eps for i in range(3)]
    return np.stack(cols, 1)


def observations(n: int = 4) -> np.ndarray:
    env = gym.make(ENV)
    gen = np.random.default_rng(1)
    obs = np.array([env.reset(seed=s)[0] for s in range(n)])
    obs[:, 3:6] = gen.uniform(-1, 1, (n, 3))  # nonzero joint velocities
    return obs


def test_jacobian_matches_finite_differences():
    obs = observations()
    J = threedof_jacobian(torch.as_tensor(obs[:, :3])).numpy()
    for o, j in zip(obs, J, strict=True):
        np.testing.assert_allclose(j, numeric_jacobian(o[:3]), atol=1e-5)


def test_force_maps_through_the_jacobian_transpose_and_is_clipped():
    gen = np.random.default_rng(0)
    big = TaskSpaceResidual(FORCE, 100.0, "task_force")
    small = TaskSpaceResidual(FORCE, JOINT, "task_force")
    for o in observations():
        a = gen.uniform(-1, 1, 3)
        want = numeric_jacobian(o[:3]).T @ (np.array(FORCE) * a)
        np.testing.assert_allclose(big.numpy(o, a), want, atol=1e-4)
        np.testing.assert_allclose(
            small.numpy(o, a), np.clip(want, -1 * np.array(JOINT), JOINT), atol=1e-4
        )
        np.testing.assert_array_equal(big.numpy(o, np.zeros(3)), 0.0)


def force_env() -> ResidualPolicyEnv:
    return ResidualPolicyEnv(
        gym.make(ENV), base, JOINT, residual_space="task_force", twist_scale=FORCE
    )


def test_wrapper_takes_a_force_and_zero_is_the_base():
    env = force_env()
    assert env.action_space.shape == (3,)
    obs, _ = env.reset(seed=3)
    _, _, _, _, info = env.step(np.zeros(3))
    np.testing.assert_array_equal(info["residual"], 0.0)
    np.testing.assert_allclose(info["executed_action"], info["base_action"])
    obs, _ = env.reset(seed=3)
    _, _, _, _, info = env.step(np.ones(3))
    mapped = TaskSpaceResidual(FORCE, JOINT, "task_force").numpy(
        obs[:9].astype(np.float64), np.ones(3)
    )
    np.testing.assert_allclose(info["residual"], mapped)
    assert np.any(np.abs(info["residual"]) > 1e-3)
    assert np.all(np.abs(info["residual"]) <= np.array(JOINT) + 1e-7)


def test_task_force_is_refused_off_the_three_dof_arm():
    with pytest.raises(ValueError, match="DAMPC-KukaTrack-v0.*joint"):
        ResidualPolicyEnv(
            gym.make("DAMPC-KukaTrack-v0"),
            None,
            0.1,
            residual_space="task_force",
            twist_scale=FORCE,
        )
    with pytest.raises(ValueError, match="3-DOF"):
        ResidualRLConfig(
            obs_dim=20,
            action_dim=7,
            scale=(0.1,) * 7,
            action_low=(-1,) * 7,
            action_high=(1,) * 7,
            residual_space="task_force",
            twist_scale=FORCE,
        )
    with pytest.raises(ValueError, match=r"\[N\]"):
        ResidualPolicyEnv(
            gym.make(ENV), base, JOINT, residual_space="task_force", twist_scale=(1, 2)
        )
    with pytest.raises(ValueError, match="threedof_error"):
        ResidualRLConfig(obs_dim=20, features="threedof_error")
    cfg = ResidualRunConfig(env=ENV, residual_space="task_force", twist_scale=(20.0,))
    assert cfg.resolved_twist_scale() == (20.0, 20.0, 20.0)


def test_error_features_are_the_end_effector_error_and_velocity_alone():
    obs = observations()
    x = torch.as_tensor(np.concatenate([obs, np.zeros((len(obs), 3))], 1), dtype=torch.float32)
    feats = ResidualInput(9, 3, "threedof_error")(x).numpy()
    assert feats.shape == (len(obs), 9)
    for o, f in zip(obs, feats, strict=True):
        e = o[6:9] - forward_kinematics(o[:3])
        v = numeric_jacobian(o[:3]) @ o[3:6]
        np.testing.assert_allclose(f[:3], e / 0.3, atol=1e-5)
        np.testing.assert_allclose(f[3:6], np.tanh(e / 0.02), atol=1e-5)
        np.testing.assert_allclose(f[6:], v / 0.3, atol=1e-4)
    moved = x.clone()
    moved[:, 9:] += 1.0  # the base action does not enter
    torch.testing.assert_close(ResidualInput(9, 3, "threedof_error")(moved), torch.as_tensor(feats))


def test_exported_linear_policy_acts_as_base_plus_the_wrappers_residual(tmp_path):
    env = force_env()
    mean, std = input_statistics(env, 1)
    kwargs = sb3.policy_kwargs("ppo", 9, 3, 16, 2, "threedof_error", mean, std, 0)
    model = sb3.make_model("ppo", env, kwargs, {"n_steps": 64, "batch_size": 32}, seed=0)
    _, _, head = sb3.actor_parts(model, "ppo")
    with torch.no_grad():
        head.weight.add_(
            0.5 * torch.randn(head.weight.shape, generator=torch.Generator().manual_seed(2))
        )
    low, high = env.low, env.high
    policy = sb3.export_policy(
        model,
        "ppo",
        "",
        JOINT,
        low,
        high,
        base_object=base,
        residual_space="task_force",
        twist_scale=FORCE,
    )
    assert policy.config.num_layers == 0 and policy.config.features == "threedof_error"
    loaded = ResidualRLPolicy.from_pretrained(policy.save_pretrained(tmp_path / "p"))
    assert loaded.config.residual_space == "task_force" and loaded.config.twist_scale == FORCE
    loaded.set_base(base)
    obs, _ = env.reset(seed=5)
    loaded.reset(seed=5)
    moved = 0.0
    for _ in range(5):
        a = sb3.deterministic_residual(model, obs[None])[0]
        executed, residual = env.compose(a)
        np.testing.assert_allclose(loaded.act(obs[:9].astype(np.float64)), executed, atol=1e-5)
        moved = max(moved, np.abs(residual).max())
        obs, *_ = env.step(a)
    assert moved > 1e-3
