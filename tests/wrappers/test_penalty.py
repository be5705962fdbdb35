"""Penalty-based trajectory optimisation (DiffOG appendix A-2)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from ampczoo.wrappers import PenaltyActionChange, PenaltyPolicy, penalty_chunk


def test_penalty_chunk_reaches_tolerance_and_stays_close():
    c = np.random.default_rng(0).normal(size=(10, 3))
    lo, hi = -0.1 * np.ones_like(c), 0.1 * np.ones_like(c)
    prev = np.zeros(3)
    out, its = penalty_chunk(c, prev, lo, hi, step_size=0.03, tol=0.004, max_iter=10000)
    d = np.diff(np.concatenate([prev[None], out]), axis=0)
    assert its < 10000
    assert np.max(np.abs(d)) <= 0.1 + 0.004
    # a feasible chunk is returned unchanged after zero iterations
    smooth = np.cumsum(0.05 * np.ones((5, 3)), axis=0)
    out2, its2 = penalty_chunk(smooth, np.zeros(3), lo[:5], hi[:5])
    assert its2 == 0 and np.allclose(out2, smooth)


def test_penalty_policy_and_env_wrapper():
    rng = np.random.default_rng(2)
    pol = PenaltyPolicy(lambda obs: rng.normal(size=(6, 2)), max_delta=0.05, tol=1e-3)
    actions = np.stack([pol.act(None) for _ in range(10)])
    assert np.abs(np.diff(actions, axis=0)).max() <= 0.05 + 1e-3
    assert len(pol.iterations) == 10 and pol.stats.interventions > 0
    env = PenaltyActionChange(gym.make("Pendulum-v1"), max_delta=0.3, tol=1e-4)
    env.reset(seed=0)
    env.step(np.array([1.0], dtype=np.float32))
    _, _, _, _, info = env.step(np.array([-1.0], dtype=np.float32))
    assert info["filter_intervened"] and abs(env.prev_action[0] - 0.7) < 1e-3
