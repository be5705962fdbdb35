"""Chunk filters on chunked bases (Diffusion Policy): T_a executed actions per refined chunk,
the base observing in between (its own queue never executes), the continuity row on the last
executed action, time-varying bounds per env step (Table VIII), the magnitude bound of Table
X, the suite presets (Tables IX, XI) and the bad-input refusals."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from tiny_models import tiny_diffusion_policy

from ampczoo.policies.constrained import make_constrained, table8_schedule
from ampczoo.policies.diffusion_policy import DiffusionPolicy
from ampczoo.wrappers import ClippingPolicy, PenaltyPolicy
from ampczoo.wrappers.chunk import BoundSchedule
from ampczoo.wrappers.presets import suite_preset


class FakeChunkBase:
    """A chunked base like Diffusion Policy: ``predict_chunk`` gives T_p = 6 rows whose row 1
    is "now", ``observe`` records observations; random jumpy chunks (seeded)."""

    obs_dim, action_dim, chunk_len, chunk_offset, action_horizon = 2, 3, 6, 1, 4

    def __init__(self) -> None:
        self.observed: list[float] = []
        self.predicted: list[float] = []
        self.chunks: list[np.ndarray] = []
        self.rng = np.random.default_rng(0)
        self.resets = 0

    def reset(self, seed: int | None = None) -> None:
        self.resets += 1
        self.observed, self.predicted = [], []

    def observe(self, obs: Any) -> None:
        self.observed.append(float(obs[0]))

    def predict_chunk(self, obs: Any) -> np.ndarray:
        self.observed.append(float(obs[0]))
        self.predicted.append(float(obs[0]))
        chunk = self.rng.uniform(-1.0, 1.0, size=(self.chunk_len, self.action_dim))
        self.chunks.append(chunk)
        return chunk

    def act(self, obs: Any) -> np.ndarray:  # never used by the filters
        raise AssertionError("the filter must not execute the base's own queue")


def _run(policy: Any, steps: int) -> np.ndarray:
    policy.reset(seed=0)
    return np.array([policy.act(np.array([float(t), 0.0])) for t in range(steps)])


@pytest.mark.parametrize("cls", [ClippingPolicy, PenaltyPolicy])
def test_executes_t_a_refined_actions_per_chunk_and_the_base_observes_between(cls):
    base = FakeChunkBase()
    kw = {"step_size": 0.5, "tol": 1e-3, "max_iter": 5000} if cls is PenaltyPolicy else {}
    pol = cls(base, max_delta=0.1, **kw)
    assert pol.execute_steps == 4  # the base's action_horizon
    actions = _run(pol, 10)
    assert base.predicted == [0.0, 4.0, 8.0]  # one chunk per T_a = 4 steps
    assert base.observed == [float(t) for t in range(10)]  # every observation, once
    # the executed actions are rows 1..4 of each refined chunk; first chunk: row 1 = base's
    np.testing.assert_allclose(actions[0], base.chunks[0][1])
    tol = 1e-9 if cls is ClippingPolicy else 1e-3
    # every change, across chunk boundaries too (continuity row), within the bound
    assert np.abs(np.diff(actions, axis=0)).max() <= 0.1 + tol
    # reset clears the queue, the clock, the last action; the next act plans again
    pol.reset()
    assert pol.prev_action is None and pol.steps == 0 and base.resets == 2
    pol.act(np.array([50.0, 0.0]))
    assert base.predicted == [50.0]


def test_execute_steps_is_configurable_and_checked_against_the_chunk():
    base = FakeChunkBase()
    pol = ClippingPolicy(base, max_delta=0.1, execute_steps=1)
    _run(pol, 3)
    assert base.predicted == [0.0, 1.0, 2.0]  # receding horizon every step
    # T_a > rows from "now" to the chunk's end (6 - 1 = 5): refused, naming both
    with pytest.raises(ValueError, match=r"T_a=6.*T_p=6"):
        ClippingPolicy(base, max_delta=0.1, execute_steps=6)
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match="execute_steps"):
            ClippingPolicy(base, max_delta=0.1, execute_steps=bad)
    for bad in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="max_delta"):
            ClippingPolicy(base, max_delta=bad)


def test_a_single_step_base_still_executes_one_action():
    calls = []

    def base(obs):
        calls.append(obs)
        return np.array([float(obs[0]), 0.0])

    pol = ClippingPolicy(base, max_delta=0.5)
    actions = _run(pol, 3)
    assert len(calls) == 3 and pol.execute_steps == 1
    np.testing.assert_allclose(actions[:, 0], [0.0, 0.5, 1.0])


def test_bound_schedule_gives_each_env_step_its_phase_bound():
    sched = BoundSchedule((0.05, 0.1, 0.2, 0.3), phase_steps=5)
    np.testing.assert_allclose(
        sched.at(np.array([-1, 0, 4, 5, 14, 15, 99])), [0.05] * 3 + [0.1, 0.2, 0.3, 0.3]
    )
    np.testing.assert_allclose(sched.rows(4, 3, offset=1), [0.05, 0.05, 0.1])
    assert table8_schedule() == BoundSchedule((0.05, 0.1, 0.2, 0.3), 40)
    base = FakeChunkBase()
    pol = ClippingPolicy(base, max_delta=1.0, bound_schedule=sched)
    actions = _run(pol, 24)
    change = np.abs(np.diff(actions, axis=0)).max(axis=1)  # change executed at step t = k + 1
    limits = sched.at(np.arange(1, 24))
    assert np.all(change <= limits + 1e-9)
    assert np.any(change > 0.2 + 1e-6)  # the loose phases are used, not the tightest bound
    for bad in ((0.1, 0.0), (0.1, np.inf), ()):
        with pytest.raises(ValueError, match="bounds"):
            BoundSchedule(bad)
    with pytest.raises(ValueError, match="phase_steps"):
        BoundSchedule((0.1,), phase_steps=0)


@pytest.mark.parametrize("cls", [ClippingPolicy, PenaltyPolicy])
def test_magnitude_bound_with_the_change_bound(cls):
    base = FakeChunkBase()
    kw = {"step_size": 0.5, "tol": 1e-4, "max_iter": 20000} if cls is PenaltyPolicy else {}
    pol = cls(base, max_delta=0.1, max_abs=0.3, **kw)
    actions = _run(pol, 12)
    tol = 1e-9 if cls is ClippingPolicy else 1e-4
    assert np.abs(actions).max() <= 0.3 + tol
    assert np.abs(np.diff(actions, axis=0)).max() <= 0.1 + tol
    with pytest.raises(ValueError, match="max_abs"):
        cls(base, max_delta=0.1, max_abs=0.0)


def test_suite_presets_are_the_papers_tables():
    rm, mw, pt = (
        suite_preset(e) for e in ("Robomimic-Lift-v0", "MetaWorld-ShelfPlace-v0", "PushT-v0")
    )
    assert (rm.bound, rm.alpha, rm.scale_mode) == (0.1, 4.0, "unit")
    assert (mw.bound, mw.alpha, pt.bound, pt.alpha) == (0.6, 4.0, 0.05, 1.0)
    assert rm.dims(7) == (0, 1, 2, 3, 4, 5)  # S leaves the gripper out
    assert suite_preset("Robomimic-Transport-v0").dims(14) == (
        0,
        1,
        2,
        3,
        4,
        5,
        7,
        8,
        9,
        10,
        11,
        12,
    )
    assert mw.dims(4) == (0, 1, 2) and pt.dims(2) == (0, 1)
    assert (rm.penalty_step, rm.penalty_tol, rm.penalty_iters) == (0.03, 0.004, 10000)
    assert (mw.penalty_step, mw.penalty_tol, pt.penalty_tol, pt.penalty_iters) == (
        0.1,
        0.05,
        0.1,
        1000,
    )
    assert suite_preset("KukaTrack-v0") is None
    # min-max suites: raw bounds are bound x the data's half range
    kw = mw.filter_kwargs("clipping", 4, action_scale=[2.0, 4.0, 1.0, 9.0])
    np.testing.assert_allclose(kw["max_delta"], [1.2, 2.4, 0.6])
    with pytest.raises(ValueError, match="action_scale"):
        mw.filter_kwargs("clipping", 4)


def _tiny_dp() -> DiffusionPolicy:
    return tiny_diffusion_policy().eval()


def test_make_constrained_on_a_diffusion_policy_executes_its_t_a():
    dp = _tiny_dp()
    assert (dp.chunk_len, dp.chunk_offset, dp.action_horizon) == (8, 1, 4)
    calls = []
    inner = dp.sample
    dp.sample = lambda h, i=None: calls.append(np.array(h)) or inner(h, i)  # type: ignore
    for kind in ("clipping", "penalty"):
        calls.clear()
        pol = make_constrained(kind, dp, "Robomimic-Lift-v0", bound_schedule="table8")
        assert pol.dims == (0, 1, 2, 3, 4, 5) and pol.execute_steps == 4
        obs = np.random.default_rng(1).normal(size=(9, 4))
        pol.reset(seed=0)
        actions = np.array([pol.act(o) for o in obs])
        assert len(calls) == 3  # steps 0, 4, 8
        # the history the plan at step 4 conditions on: observations 3 and 4 (observe())
        np.testing.assert_allclose(calls[1][0], obs[[3, 4]], rtol=1e-6)
        assert np.abs(np.diff(actions[:, :6], axis=0)).max() <= 0.05 + 5e-3  # phase 1 bound
    assert make_constrained("none", dp, "Robomimic-Lift-v0") is dp
    with pytest.raises(ValueError, match="kind"):
        make_constrained("magic", dp, "Robomimic-Lift-v0")
    with pytest.raises(ValueError, match="no suite"):
        make_constrained("clipping", dp, "Kuka-v0")
