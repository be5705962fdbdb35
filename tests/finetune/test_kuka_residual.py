"""Residual RL on the KUKA tracking envs: the ``kuka_kinematic`` actor features, the
obstacle-penetration penalty of ResidualPolicyEnv and the held-out evaluation's deepest
penetration."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import ampczoo.envs  # noqa: F401
from ampczoo.finetune.evaluation import evaluate_policy
from ampczoo.finetune.residual_env import ResidualPolicyEnv
from ampczoo.nn.features import KukaFeatures
from ampczoo.policies.residual_rl import (
    KUKA_DLS,
    KUKA_EP,
    ResidualInput,
    ResidualRLConfig,
    ResidualRLPolicy,
)
from ampczoo.robots.kinematics import rotation_from_6d
from ampczoo.robots.kuka import kuka_chain

ENV = "DAMPC-KukaTrackObstacle-v0"


def kuka_observations(n: int) -> np.ndarray:
    """(n, 20) reset observations of the obstacle env."""
    env = gym.make(ENV)
    return np.array([env.reset(seed=s)[0] for s in range(n)])


def numeric_jacobian(q: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """(6, 7) world-frame geometric Jacobian of the KUKA end effector by central differences
    (position rows: dp/dq; rotation rows: the axis-angle of R(q + h e_i) R(q - h e_i)^T / 2h)."""
    chain = kuka_chain()
    J = np.zeros((6, 7))
    for i in range(7):
        dq = np.zeros(7)
        dq[i] = h
        p1, R1 = chain.ee_pose(q + dq)
        p0, R0 = chain.ee_pose(q - dq)
        D = R1 @ R0.T
        J[:3, i] = (p1 - p0) / (2 * h)
        J[3:, i] = (
            0.5 * np.array([D[2, 1] - D[1, 2], D[0, 2] - D[2, 0], D[1, 0] - D[0, 1]]) / (2 * h)
        )
    return J


def test_kuka_features_are_the_pose_error_and_the_least_squares_step():
    obs = kuka_observations(3)
    inputs = ResidualInput(20, 7, "kuka_kinematic")
    x = torch.as_tensor(np.concatenate([obs, np.zeros((3, 7))], 1), dtype=torch.float32)
    out = inputs(x)
    assert out.shape == (3, inputs.output_dim) == (3, 27 + 60 + 10)
    kin = out[:, 27 : 27 + 60].double().numpy()
    chain, damping = kuka_chain(), KukaFeatures().damping
    for row, o in zip(kin, obs, strict=True):
        q, p_d = o[:7], o[7:10]
        p_ee, R_ee = chain.ee_pose(q)
        np.testing.assert_allclose(row[KUKA_EP], p_d - p_ee, atol=1e-5)
        # the damped least-squares step J^T (J J^T + lambda I)^-1 e on the stacked error
        E = rotation_from_6d(o[10:16]) @ R_ee.T
        e = np.concatenate(
            [p_d - p_ee, 0.5 * np.array([E[2, 1] - E[1, 2], E[0, 2] - E[2, 0], E[1, 0] - E[0, 1]])]
        )
        J = numeric_jacobian(q)
        dls = J.T @ np.linalg.solve(J @ J.T + damping * np.eye(6), e)
        np.testing.assert_allclose(row[KUKA_DLS], dls, atol=2e-4)
    fine = out[:, 27 + 60 :].numpy()
    np.testing.assert_allclose(fine[:, :3], np.tanh(kin[:, KUKA_EP] / 0.02), atol=1e-5)
    np.testing.assert_allclose(fine[:, 3:], np.tanh(kin[:, KUKA_DLS] / 0.05), atol=1e-5)


def test_kuka_feature_cache_never_returns_another_batch():
    obs = kuka_observations(4)
    inputs = ResidualInput(20, 7, "kuka_kinematic")
    a = torch.as_tensor(np.concatenate([obs[:2], np.zeros((2, 7))], 1), dtype=torch.float32)
    b = torch.as_tensor(np.concatenate([obs[2:], np.zeros((2, 7))], 1), dtype=torch.float32)
    first_a, first_b = inputs(a), inputs(b)
    torch.testing.assert_close(inputs(a), first_a)  # cached
    other = ResidualInput(20, 7, "kuka_kinematic")  # a second instance shares the cache
    torch.testing.assert_close(other(b.clone()), first_b)  # an equal copy: computed anew
    assert not torch.allclose(first_a, first_b)


def test_kuka_policy_with_features_round_trips_and_starts_at_its_base(tmp_path):
    env = gym.make(ENV)
    low, high = env.action_space.low, env.action_space.high
    config = ResidualRLConfig(
        base="",
        obs_dim=20,
        action_dim=7,
        scale=(0.1,) * 7,
        action_low=tuple(float(v) for v in low),
        action_high=tuple(float(v) for v in high),
        hidden_dim=8,
        features="kuka_kinematic",
    )
    policy = ResidualRLPolicy(config)
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(policy.act(obs), (low + high) / 2)  # zero residual at the start
    loaded = ResidualRLPolicy.from_pretrained(policy.save_pretrained(tmp_path / "p"))
    np.testing.assert_allclose(loaded.act(obs), policy.act(obs))


def test_kuka_features_need_a_kuka_observation():
    with pytest.raises(ValueError, match="kuka_kinematic"):
        ResidualRLConfig(obs_dim=9, features="kuka_kinematic")


class PenetratingEnv(gym.Env):
    """Two-step env reporting a fixed obstacle penetration (fraction of the radius)."""

    observation_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float64)
    action_space = spaces.Box(-1.0, 1.0, (1,), dtype=np.float64)

    def __init__(self, penetration: float = 0.25):
        self.penetration, self.t = penetration, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2), {"penetration": 0.0, "success": False, "pos_error": 0.1}

    def step(self, action):
        self.t += 1
        info = {"penetration": self.penetration * self.t, "success": False, "pos_error": 0.1}
        return np.zeros(2), -1.0, False, self.t >= 2, info


def test_penetration_penalty_is_subtracted_and_bad_values_are_refused():
    env = ResidualPolicyEnv(PenetratingEnv(0.25), None, 1.0, penetration_penalty=4.0)
    env.reset(seed=0)
    _, reward, *_ = env.step(np.zeros(1))
    assert reward == pytest.approx(-1.0 - 4.0 * 0.25)
    plain = ResidualPolicyEnv(PenetratingEnv(0.25), None, 1.0)
    plain.reset(seed=0)
    assert plain.step(np.zeros(1))[1] == pytest.approx(-1.0)
    for bad in (-1.0, float("inf"), "1"):
        with pytest.raises(ValueError, match="penetration_penalty"):
            ResidualPolicyEnv(PenetratingEnv(), None, 1.0, penetration_penalty=bad)


def test_evaluation_reports_the_deepest_penetration():
    class Zero:
        def reset(self, seed=None):
            pass

        def act(self, obs):
            return np.zeros(1)

    result = evaluate_policy(PenetratingEnv(0.25), Zero(), [0, 1], success_pos_error=0.2)
    assert result.penetration_max == pytest.approx(0.5)  # step 2 of every episode
    assert result.success_rate == 100.0
    assert "penetration_max" in result.to_json()


def test_error_shaping_rewards_the_decrease_of_the_position_error():
    def run(shaping):
        env = ResidualPolicyEnv(gym.make(ENV), lambda o: np.zeros(7), 0.1, error_shaping=shaping)
        _, info = env.reset(seed=4)
        errors, rewards = [info["pos_error"]], []
        for _ in range(5):
            _, reward, *_, info = env.step(np.ones(7))
            errors.append(info["pos_error"])
            rewards.append(reward)
        return np.array(errors), np.array(rewards)

    errors, plain = run(0.0)
    _, shaped = run(20.0)
    np.testing.assert_allclose(shaped - plain, 20.0 * (errors[:-1] - errors[1:]), atol=1e-9)
    assert np.any(np.abs(shaped - plain) > 1e-6)
    with pytest.raises(ValueError, match="error_shaping"):
        ResidualPolicyEnv(gym.make(ENV), lambda o: np.zeros(7), 0.1, error_shaping=-1.0)
