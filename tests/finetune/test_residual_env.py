"""ResidualPolicyEnv: spaces, composition, info, chunk queues and refused inputs (no SB3)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import ampczoo.envs  # noqa: F401
from ampczoo.core.registry import load_policy
from ampczoo.finetune.residual_env import ResidualPolicyEnv

ENV = "ThreeDOF-Reach-v0"
SCALE = np.array([1.5, 2.5, 1.0])


@pytest.fixture(scope="module")
def base():
    return load_policy("threedof-ffn-h10", device="cpu")


def test_spaces_info_and_composition(base):
    env = ResidualPolicyEnv(gym.make(ENV), base, SCALE)
    inner = gym.make(ENV)
    assert env.observation_space.shape == (12,) and env.action_space.shape == (3,)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    obs, info = env.reset(seed=3)
    raw, _ = inner.reset(seed=3)
    np.testing.assert_allclose(obs[:9], raw, atol=1e-6)
    # the observation carries the base action the base computes on the same observation
    base.reset(seed=3)
    np.testing.assert_allclose(obs[9:], base.act(raw), atol=1e-5)
    np.testing.assert_allclose(info["base_action"], obs[9:], atol=1e-6)
    residual = np.array([1.0, -0.5, 0.25])
    obs2, reward, terminated, truncated, info = env.step(residual)
    np.testing.assert_allclose(info["residual"], SCALE * residual)
    want = np.clip(info["base_action"] + SCALE * residual, -np.array([6, 10, 4]), [6, 10, 4])
    np.testing.assert_allclose(info["executed_action"], want)
    # the env executed exactly that action
    raw2, reward2, *_ = inner.step(want)
    np.testing.assert_allclose(obs2[:9], raw2, atol=1e-6)
    assert reward == pytest.approx(reward2)
    assert obs2.dtype == np.float32 and env.observation_space.contains(obs2)


def test_composed_action_is_clipped_to_the_action_space():
    env = ResidualPolicyEnv(gym.make(ENV), lambda obs: np.array([5.9, -9.9, 3.9]), 2.0)
    env.reset(seed=0)
    *_, info = env.step(np.array([1.0, -1.0, 1.0]))
    np.testing.assert_allclose(info["executed_action"], [6.0, -10.0, 4.0])


def test_success_bonus_is_added_where_the_env_reports_success():
    env = gym.make(ENV)
    obs, _ = env.reset(seed=0)
    target = obs[6:9]
    # start at the target with zero velocity: the env reports success from the first step
    from ampczoo.robots.threedof_ik import DampedLeastSquaresIK

    q = DampedLeastSquaresIK().solve(target, obs[:3]).q
    options = {"q0": q, "target_pos": target}
    plain = ResidualPolicyEnv(gym.make(ENV), lambda o: np.zeros(3), 1.0)
    bonus = ResidualPolicyEnv(gym.make(ENV), lambda o: np.zeros(3), 1.0, success_bonus=2.5)
    plain.reset(seed=0, options=options)
    bonus.reset(seed=0, options=options)
    _, r0, *_, info = plain.step(np.zeros(3))
    _, r1, *_ = bonus.step(np.zeros(3))
    assert info["success"]
    assert r1 == pytest.approx(r0 + 2.5)


def test_chunked_base_executes_its_queue():
    calls = []

    def chunk_base(obs):
        calls.append(obs)
        k = len(calls)
        return np.array([[k, 0.0, 0.0], [k, 1.0, 0.0], [k, 2.0, 0.0]])

    env = ResidualPolicyEnv(gym.make(ENV), chunk_base, 1.0)
    calls.clear()
    _, info = env.reset(seed=0)
    executed = [info["base_action"]]
    for _ in range(4):
        *_, info = env.step(np.zeros(3))
        executed.append(info["executed_action"])
    # reset queried a chunk; its 3 actions ran, then the next chunk was queried
    np.testing.assert_allclose(np.array(executed[1:4]), [[1, 0, 0], [1, 1, 0], [1, 2, 0]])
    np.testing.assert_allclose(executed[4], [2, 0, 0])
    assert len(calls) == 2


def test_no_base_means_the_centre_of_the_action_range():
    env = ResidualPolicyEnv(gym.make(ENV), None, [6.0, 10.0, 4.0])
    obs, info = env.reset(seed=0)
    np.testing.assert_allclose(info["base_action"], 0.0)
    *_, info = env.step(np.array([0.5, 0.5, -0.5]))
    np.testing.assert_allclose(info["executed_action"], [3.0, 5.0, -2.0])


@pytest.mark.parametrize("scale", [0.0, -1.0, [1.0, 0.0, 1.0], np.nan, [1.0, 2.0], "big"])
def test_bad_scale_is_refused(scale):
    with pytest.raises(ValueError, match="scale"):
        ResidualPolicyEnv(gym.make(ENV), lambda o: np.zeros(3), scale)


def test_base_of_another_action_shape_is_refused():
    with pytest.raises(ValueError, match=r"shape \(2,\).*\(3,\)"):
        ResidualPolicyEnv(gym.make(ENV), lambda o: np.zeros(2), 1.0)
    kuka_base = load_policy("lsm-kuka", device="cpu")
    with pytest.raises(ValueError):
        ResidualPolicyEnv(gym.make(ENV), kuka_base, 1.0)


@pytest.mark.parametrize("base", [42, "lsm", object()])
def test_base_that_is_not_a_policy_is_refused(base):
    with pytest.raises(ValueError, match="base"):
        ResidualPolicyEnv(gym.make(ENV), base, 1.0)


def test_bad_residual_is_refused():
    env = ResidualPolicyEnv(gym.make(ENV), lambda o: np.zeros(3), 1.0)
    env.reset(seed=0)
    for bad in (np.zeros(2), np.array([np.nan, 0, 0])):
        with pytest.raises(ValueError, match="residual"):
            env.step(bad)


def test_held_residual_repeats_on_hold_env_steps_and_sums_rewards(base):
    env = ResidualPolicyEnv(gym.make(ENV), base, SCALE, hold=4)
    inner = gym.make(ENV)
    obs, _ = env.reset(seed=5)
    raw, _ = inner.reset(seed=5)
    alone = load_policy("threedof-ffn-h10", device="cpu")  # the same base, its own history
    alone.reset(seed=5)
    residual = np.array([0.5, -1.0, 0.2])
    obs2, reward, terminated, truncated, info = env.step(residual)
    assert info["env_steps"] == 4
    total = 0.0
    for _ in range(4):  # the base acts afresh each env step, the residual stays
        limit = np.array([6.0, 10.0, 4.0])
        raw, r, *_ = inner.step(np.clip(alone.act(raw) + SCALE * residual, -limit, limit))
        total += r
    np.testing.assert_allclose(obs2[:9], raw, atol=1e-5)
    assert reward == pytest.approx(total, rel=1e-5)
    # the episode's end cuts the last agent step short (200 env steps, 4 per agent step)
    steps, done = 1, False
    while not done:
        *_, terminated, truncated, info = env.step(np.zeros(3))
        steps, done = steps + 1, terminated or truncated
    assert info["env_steps"] <= 4
    with pytest.raises(ValueError, match="hold"):
        ResidualPolicyEnv(gym.make(ENV), base, SCALE, hold=0)
