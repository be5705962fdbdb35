"""Greedy constraint clipping: chunk filter, policy wrapper, gymnasium ActionWrapper."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from ampczoo.wrappers import ClipActionChange, ClippingPolicy, clip_chunk


def _jerky_chunk(T: int = 12, D: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=1.0, size=(T, D))


def test_clip_chunk_satisfies_bounds_and_keeps_feasible_chunks():
    c = _jerky_chunk()
    lo, hi = -0.1 * np.ones_like(c), 0.2 * np.ones_like(c)
    prev = np.zeros(3)
    out = clip_chunk(c, prev, lo, hi)
    d = np.diff(np.concatenate([prev[None], out]), axis=0)
    assert np.all(d <= 0.2 + 1e-12) and np.all(d >= -0.1 - 1e-12)
    smooth = np.cumsum(0.05 * np.ones((5, 3)), axis=0)
    assert np.allclose(
        clip_chunk(smooth, np.zeros(3), -0.1 * np.ones((5, 3)), 0.1 * np.ones((5, 3))), smooth
    )
    # without a previous action the first step is free
    assert np.allclose(clip_chunk(c, None, lo, hi)[0], c[0])


def test_policy_wrapper_receding_horizon_dims_and_stats():
    rng = np.random.default_rng(1)
    base = lambda obs: rng.normal(size=(8, 4))  # noqa: E731 (a plain callable base)
    pol = ClippingPolicy(base, max_delta=0.05, dims=[0, 1, 2], action_scale=[1, 1, 1, 5])
    pol.reset()
    actions = np.stack([pol.act(None) for _ in range(20)])
    assert np.all(np.abs(np.diff(actions[:, :3], axis=0)) <= 0.05 + 1e-12)
    assert np.abs(np.diff(actions[:, 3])).max() > 0.1  # the unselected dim is untouched
    assert pol.stats.calls == 20 and pol.stats.interventions >= 18
    assert pol.stats.as_dict()["max change"] > 0
    assert pol.last_chunk.shape == (8, 4)
    # time-varying bound for one call
    a = pol.act(None, max_delta=0.01)
    assert np.all(np.abs(a[:3] - actions[-1, :3]) <= 0.01 + 1e-12)
    with pytest.raises(ValueError, match="infeasible"):
        pol.act(None, max_delta=0.1, min_delta=0.2)
    with pytest.raises(ValueError, match="NaN"):
        ClippingPolicy(lambda o: np.full(4, np.nan), 0.1).act(None)


def test_gym_action_wrapper_limits_change_between_env_actions():
    env = ClipActionChange(gym.make("Pendulum-v1"), max_delta=0.3)
    env.reset(seed=0)
    applied = []
    for a in (2.0, -2.0, 2.0):
        _, _, _, _, info = env.step(np.array([a], dtype=np.float32))
        applied.append(env.prev_action[0])
        assert "filter_intervened" in info
    assert applied[0] == 2.0  # no previous action after reset
    assert np.allclose(applied[1:], [1.7, 2.0])
    assert env.stats.interventions == 1  # the third request is reachable from 1.7
    env.reset(seed=1)
    assert env.prev_action is None
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([np.nan]))
