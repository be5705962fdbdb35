"""Penalty-based trajectory optimisation of action chunks (DiffOG appendix A-2, Table XI).

With c_{-1} the last executed action, the differences dc_k = c_k - c_{k-1} are compared with
the bounds; v_max = max(0, dc - d_max dt), v_min = max(0, d_min dt - dc), and every step is
moved against its violation, c <- c - eta (v_max - v_min), until max|v_max| + max|v_min| <
tol or max_iter iterations. A magnitude bound ``max_abs`` (DiffOG Table X's velocity bound)
adds its violations max(0, |c_k| - max_abs) to the same update and the same stopping test.
Defaults are Table XI's Robomimic row (eta = 0.03, tol = 0.004,
10 000 iterations) for actions normalised to [-1, 1] (pass ``action_scale``). The result is
only as feasible as ``tol``: the remaining violation is counted, not hidden.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from ampczoo.wrappers.chunk import (
    FILTER_ONLY,
    POLICY_ONLY_PARAMETERS,
    ActionChangeWrapper,
    ChangeBoundFilter,
    check_positive,
    env_action_dim,
)

#: Table XI of the DiffOG paper: task family -> (step size eta, tolerance, max iterations).
TABLE_XI = {
    "robomimic": (0.03, 0.004, 10000),
    "push-t": (0.1, 0.1, 1000),
    "metaworld": (0.1, 0.05, 1000),
    "aloha": (0.05, 0.01, 1000),
}


def penalty_chunk(
    c: np.ndarray,
    prev: np.ndarray | None,
    lo: np.ndarray,
    hi: np.ndarray,
    step_size: float = 0.03,
    tol: float = 0.004,
    max_iter: int = 10000,
    max_abs: float | None = None,
) -> tuple[np.ndarray, int]:
    """c (T, D) -> (optimised chunk (T, D), iterations used); lo/hi (T, D) bounds of
    c_k - c_{k-1} (row 0 against ``prev``; without prev row 0 is unconstrained); max_abs:
    magnitude bound |c_k| <= max_abs (None: none)."""
    x = np.array(c, dtype=np.float64)
    start = 0 if prev is not None else 1
    for it in range(max_iter):
        before = np.concatenate([prev[None], x[:-1]]) if prev is not None else x[:-1]
        d = x[start:] - before
        v_max = np.maximum(0.0, d - hi[start:])
        v_min = np.maximum(0.0, lo[start:] - d)
        violation = np.max(v_max, initial=0.0) + np.max(v_min, initial=0.0)
        if max_abs is not None:
            m_hi, m_lo = np.maximum(0.0, x - max_abs), np.maximum(0.0, -max_abs - x)
            violation += np.max(m_hi, initial=0.0) + np.max(m_lo, initial=0.0)
        if violation < tol:
            return x, it
        x[start:] -= step_size * (v_max - v_min)
        if max_abs is not None:
            x -= step_size * (m_hi - m_lo)
    return x, max_iter


class PenaltyPolicy(ChangeBoundFilter):
    """Policy wrapper: penalty-based optimisation of the base chunk, receding horizon.
    step_size / tol / max_iter: Table XI (tol in units of the actions divided by
    ``action_scale``; step_size and tol > 0, max_iter a positive integer). ``iterations``
    lists the iterations of every call."""

    name = "penalty"
    example_kwargs: ClassVar[dict[str, Any]] = {
        "max_delta": 0.1,
        "step_size": 0.1,
        "tol": 0.01,
        "max_iter": 100,
    }
    invalid_kwargs = (*ChangeBoundFilter.invalid_kwargs, {"max_iter": 2.5}, {"tol": "0.1"})

    def __init__(
        self,
        base: Any,
        max_delta: Any,
        min_delta: Any = None,
        dims: Any = None,
        action_scale: Any = 1.0,
        step_size: float = 0.03,
        tol: float = 0.004,
        max_iter: int = 10000,
        max_abs: float | None = None,
        execute_steps: int | None = None,
        bound_schedule: Any = None,
        bound_unit: Any = None,
    ):
        super().__init__(
            base,
            max_delta,
            min_delta,
            dims,
            action_scale,
            max_abs,
            execute_steps,
            bound_schedule,
            bound_unit,
        )
        check_positive("step_size", step_size)
        check_positive("tol", tol)
        check_positive("max_iter", max_iter, integer=True)
        self.step_size, self.tol, self.max_iter = step_size, tol, int(max_iter)
        self.iterations: list[int] = []

    def filter_selected(self, c, prev, lo, hi):
        out, its = penalty_chunk(
            c, prev, lo, hi, self.step_size, self.tol, self.max_iter, self.max_abs
        )
        self.iterations.append(its)
        return out


class PenaltyActionChange(ActionChangeWrapper):
    """``gymnasium.ActionWrapper`` applying penalty-based optimisation to the change between
    consecutive env actions (see :class:`PenaltyPolicy`)."""

    example_kwargs = PenaltyPolicy.example_kwargs
    invalid_kwargs = tuple(
        c for c in PenaltyPolicy.invalid_kwargs if not set(c) & set(POLICY_ONLY_PARAMETERS)
    )
    per_dimension_parameters = PenaltyPolicy.per_dimension_parameters

    def __init__(
        self,
        env: gym.Env,
        max_delta: Any,
        min_delta: Any = None,
        dims: Any = None,
        action_scale: Any = 1.0,
        step_size: float = 0.03,
        tol: float = 0.004,
        max_iter: int = 10000,
    ):
        action_dim = env_action_dim(env)
        self.filter = PenaltyPolicy(
            FILTER_ONLY, max_delta, min_delta, dims, action_scale, step_size, tol, max_iter
        )
        self.filter.check_action_dim(action_dim)
        super().__init__(env, self.filter.refine)
