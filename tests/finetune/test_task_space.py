"""Task-space residuals on the KUKA envs (``--residual-space task``): the twist -> joint map,
the wrapper's action, the exported policy acting as base + the wrapper's executed residual,
linear actors, and refused envs / scales."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")

import ampczoo.envs  # noqa: F401
from ampczoo.core.registry import load_policy
from ampczoo.finetune import sb3
from ampczoo.finetune.residual_env import ResidualPolicyEnv
from ampczoo.finetune.train import ResidualRunConfig, input_statistics, run_residual
from ampczoo.nn.features import KukaFeatures
from ampczoo.policies.residual_rl import (
    ResidualInput,
    ResidualRLConfig,
    ResidualRLPolicy,
    TaskSpaceResidual,
)
from tests.finetune.test_kuka_residual import numeric_jacobian

ENV = "DAMPC-KukaTrackObstacle-v0"
TWIST = (0.1, 0.1, 0.1, 0.3, 0.3, 0.3)
JOINT = 0.15


def base(obs: np.ndarray) -> np.ndarray:
    """A deterministic stand-in base (7,) [rad/s] (fast; any policy works the same)."""
    return 0.2 * np.sin(np.asarray(obs)[:7] + 0.3)


def task_env(space: str = "task", hold: int = 1) -> ResidualPolicyEnv:
    twist = TWIST if space == "task" else TWIST[:3]
    return ResidualPolicyEnv(
        gym.make(ENV), base, JOINT, hold=hold, residual_space=space, twist_scale=twist
    )


def test_twist_maps_through_the_damped_least_squares_inverse_and_is_clipped():
    env = gym.make(ENV)
    obs = np.array([env.reset(seed=s)[0] for s in range(3)])
    big = TaskSpaceResidual(TWIST, 10.0)  # bound out of reach: the plain DLS map
    damping = KukaFeatures().damping
    gen = np.random.default_rng(0)
    for o in obs:
        a = gen.uniform(-1, 1, 6)
        J = numeric_jacobian(o[:7])
        want = J.T @ np.linalg.solve(J @ J.T + damping * np.eye(6), np.array(TWIST) * a)
        np.testing.assert_allclose(big.numpy(o, a), want, atol=2e-4)
        np.testing.assert_array_equal(big.numpy(o, np.zeros(6)), 0.0)
        clipped = TaskSpaceResidual(TWIST, 0.02).numpy(o, a)
        np.testing.assert_allclose(clipped, np.clip(want, -0.02, 0.02), atol=2e-4)
        position = TaskSpaceResidual(TWIST[:3], 10.0).numpy(o, a[:3])  # angular twist 0
        twist = np.concatenate([np.array(TWIST[:3]) * a[:3], np.zeros(3)])
        np.testing.assert_allclose(
            position, J.T @ np.linalg.solve(J @ J.T + damping * np.eye(6), twist), atol=2e-4
        )


@pytest.mark.parametrize("space, dim", [("task", 6), ("task_position", 3)])
def test_wrapper_takes_a_twist_and_zero_is_the_base(space, dim):
    env = task_env(space)
    assert env.action_space.shape == (dim,)
    obs, _ = env.reset(seed=3)
    np.testing.assert_allclose(obs[20:], base(obs[:20]), atol=1e-6)
    _, _, _, _, info = env.step(np.zeros(dim))
    np.testing.assert_array_equal(info["residual"], 0.0)
    np.testing.assert_allclose(info["executed_action"], info["base_action"])
    raw = obs[:20].astype(np.float64)
    env.reset(seed=3)
    _, _, _, _, info = env.step(np.ones(dim))
    mapped = TaskSpaceResidual(TWIST[:dim], JOINT).numpy(raw, np.ones(dim))
    np.testing.assert_allclose(info["residual"], mapped)
    assert np.abs(info["residual"]).max() <= JOINT + 1e-7
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(7))


def test_task_space_is_refused_on_envs_without_kinematics_and_for_bad_scales():
    with pytest.raises(ValueError, match="ThreeDOF-Reach-v0"):
        ResidualPolicyEnv(
            gym.make("ThreeDOF-Reach-v0"), None, 0.1, residual_space="task", twist_scale=TWIST
        )
    for space, twist in [
        ("task", TWIST[:3]),
        ("task", (0.1,) * 5 + (-1,)),
        ("joint", TWIST),
        ("cartesian", TWIST),
    ]:
        with pytest.raises(ValueError, match="twist_scale|residual_space"):
            ResidualPolicyEnv(gym.make(ENV), base, JOINT, residual_space=space, twist_scale=twist)
    with pytest.raises(ValueError, match="KUKA"):
        ResidualRLConfig(obs_dim=9, residual_space="task", twist_scale=TWIST)
    with pytest.raises(ValueError, match="twist"):
        ResidualRunConfig(env=ENV, residual_space="task")
    cfg = ResidualRunConfig(env=ENV, residual_space="task", twist_scale=(0.1, 0.3))
    assert cfg.resolved_twist_scale() == TWIST
    assert ResidualRunConfig(env=ENV).residual_space == "joint"  # the default is unchanged


def task_model(algo: str, env, actor_layers: int | None, features: str):
    mean, std = input_statistics(env, 1)
    kwargs = sb3.policy_kwargs(algo, 20, 7, 16, 2, features, mean, std, actor_layers)
    extra = {"n_steps": 64, "batch_size": 32} if algo == "ppo" else {"learning_starts": 10}
    return sb3.make_model(algo, env, kwargs, extra, seed=0)


@pytest.mark.parametrize(
    "algo, actor_layers, features",
    [("ppo", 0, "kuka_error"), ("td3", 0, "kuka_kinematic"), ("sac", None, "kuka_kinematic")],
)
def test_exported_policy_acts_as_base_plus_the_wrappers_executed_residual(
    algo, actor_layers, features, tmp_path
):
    hold = 3
    env = task_env("task", hold=1)  # the wrapper steps one env step at a time below
    model = task_model(algo, env, actor_layers, features)
    obs, _ = env.reset(seed=5)
    np.testing.assert_array_equal(sb3.deterministic_residual(model, obs[None]), 0.0)
    _, body, head = sb3.actor_parts(model, algo)
    hidden = len([m for m in body if isinstance(m, torch.nn.Linear)])
    assert hidden == (2 if actor_layers is None else actor_layers)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        head.weight.add_(0.5 * torch.randn(head.weight.shape, generator=gen))
    policy = sb3.export_policy(
        model,
        algo,
        "",
        JOINT,
        env.low,
        env.high,
        base_object=base,
        hold=hold,
        residual_space="task",
        twist_scale=TWIST,
    )
    assert policy.config.features == features
    assert policy.config.residual_space == "task" and policy.config.num_layers == (
        2 if actor_layers is None else 0
    )
    loaded = ResidualRLPolicy.from_pretrained(policy.save_pretrained(tmp_path / "p"))
    assert loaded.config.twist_scale == TWIST
    loaded.set_base(base)
    for p in (policy, loaded):
        p.reset(seed=5)
        obs, _ = env.reset(seed=5)
        moved = 0.0
        for t in range(7):
            if t % hold == 0:  # the agent decides every `hold` steps and holds its twist
                a = sb3.deterministic_residual(model, obs[None])[0]
            executed, residual = env.compose(a)
            np.testing.assert_allclose(p.act(obs[:20].astype(np.float64)), executed, atol=1e-6)
            moved = max(moved, np.abs(residual).max())
            obs, *_ = env.step(a)
        assert moved > 1e-3  # the residual is not zero


def test_task_space_run_exports_its_space(tmp_path):
    out = run_residual(
        ResidualRunConfig(
            env=ENV,
            base="lsm-kuka-obstacle",
            algo="ppo",
            steps=64,
            n_steps=64,
            batch_size=32,
            hidden_dim=8,
            actor_layers=0,
            scale=(JOINT,),
            residual_space="task_position",
            twist_scale=(0.1,),
            eval_every=64,
            eval_episodes=1,
            checkpoint_every=64,
            norm_episodes=1,
            progress=False,
            out=str(tmp_path / "run"),
        )
    )
    policy = load_policy(out / "last", device="cpu")
    assert policy.config.residual_space == "task_position"
    assert policy.config.twist_scale == (0.1, 0.1, 0.1) and policy.config.num_layers == 0
    assert policy.actor.head.out_features == 3
    with pytest.raises(ValueError, match="ThreeDOF-Reach-v0"):
        run_residual(
            ResidualRunConfig(
                residual_space="task",
                twist_scale=(0.1, 0.3),
                out=str(tmp_path / "b"),
                progress=False,
                norm_episodes=1,
            )
        )


def test_pose_error_features_are_the_pose_error_alone():
    env = gym.make(ENV)
    obs = np.array([env.reset(seed=s)[0] for s in range(3)])
    x = torch.as_tensor(np.concatenate([obs, np.zeros((3, 7))], 1), dtype=torch.float32)
    full = ResidualInput(20, 7, "kuka_kinematic")(x)[:, 27 : 27 + 60].numpy()
    err = ResidualInput(20, 7, "kuka_error")(x).numpy()
    assert err.shape == (3, 12)
    e_p, e_r = full[:, 17:20], full[:, 21:24]
    np.testing.assert_allclose(err[:, :3], e_p / 0.1, atol=1e-6)
    np.testing.assert_allclose(err[:, 3:6], np.tanh(e_p / 0.02), atol=1e-6)
    np.testing.assert_allclose(err[:, 6:9], e_r / 0.3, atol=1e-6)
    np.testing.assert_allclose(err[:, 9:], np.tanh(e_r / 0.05), atol=1e-6)
    # the observation's other values (the obstacle here) do not enter
    moved = x.clone()
    moved[:, 16:20] += 0.1
    torch.testing.assert_close(ResidualInput(20, 7, "kuka_error")(moved), torch.as_tensor(err))
    with pytest.raises(ValueError, match="kuka_error"):
        ResidualRLConfig(obs_dim=9, features="kuka_error")
