"""Shared machinery of the action-trajectory filters (clipping, penalty, DiffOG, residual).

* :func:`action_chunk` gets an action chunk (T, D_a) out of any base: an ampczoo policy with
  ``act_chunk`` (LSM, DAMPC), a stable-baselines3 model (``predict``), an object with
  ``act`` or a plain callable; a single action (D_a,) becomes a chunk of length 1.
* :class:`InterventionStats` counts how often and by how much a filter changed the action
  the base policy wanted to execute.
* :class:`ChunkFilterPolicy` runs a filter receding-horizon: each ``act`` refines the base
  chunk against the last executed action (no continuity constraint at the first step of an
  episode) and executes its first action.
* :class:`ActionChangeWrapper` (a ``gymnasium.ActionWrapper``) applies a filter to the change
  between consecutive env actions and puts the intervention into ``info``.

Bounds are "per step" bounds on consecutive actions, d_min*dt <= c_{k+1} - c_k <= d_max*dt,
given in raw action units as ``max_delta`` (scalar, (D_c,) or time-varying (T, D_c)) and
``min_delta`` (default -max_delta). ``dims`` selects the constrained (continuous) action
dimensions (selection matrix S); the others pass through unchanged.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from ampczoo.core.policy import Policy


def action_chunk(base: Any, obs: Any) -> np.ndarray:
    """The base's action chunk for ``obs`` as float64 (T, D_a); ValueError if non-finite or
    not 1-D/2-D. Order of preference: ``act_chunk``, SB3 ``predict`` (deterministic),
    ``act``, ``__call__``."""
    if hasattr(base, "act_chunk"):
        out = base.act_chunk(obs)
    elif hasattr(base, "predict") and hasattr(base, "policy") and not hasattr(base, "act"):
        out = base.predict(obs, deterministic=True)[0]
    elif hasattr(base, "act"):
        out = base.act(obs)
    elif callable(base):
        out = base(obs)
    else:
        raise TypeError(f"{type(base).__name__} has no act_chunk/predict/act and is not callable")
    arr = np.asarray(out, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(
            f"base policy returned an action of shape {np.shape(out)}; expected "
            "(D_a,) or a chunk (T, D_a)"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("base policy returned NaN/inf actions")
    return arr


def resolve_bounds(
    max_delta: Any,
    min_delta: Any,
    T: int,
    dim: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) arrays (T, dim) of per-step change bounds; ValueError if lo >= hi anywhere
    or the shapes do not broadcast."""
    hi = np.asarray(max_delta, dtype=np.float64)
    lo = -hi if min_delta is None else np.asarray(min_delta, dtype=np.float64)
    try:
        hi, lo = (np.broadcast_to(b, (T, dim)).copy() for b in (hi, lo))
    except ValueError as exc:
        raise ValueError(f"change bounds must broadcast to (T={T}, D_c={dim}): {exc}") from exc
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError("change bounds must be finite")
    if np.any(lo >= hi):
        raise ValueError("infeasible change bounds: min_delta >= max_delta somewhere")
    return lo, hi


def select_dims(action_dim: int, dims: Any) -> np.ndarray:
    """Indices of the constrained dimensions (all when ``dims`` is None)."""
    idx = np.arange(action_dim) if dims is None else np.asarray(list(dims), dtype=int)
    if (
        idx.size == 0
        or len(set(idx.tolist())) != idx.size
        or idx.min() < 0
        or idx.max() >= action_dim
    ):
        raise ValueError(f"dims must be distinct indices in [0, {action_dim}), got {dims}")
    return idx


@dataclass
class InterventionStats:
    """How often and by how much a filter changed the executed action.

    calls: filtered actions; interventions: calls that changed the action by more than
    ``tol``; change_sum / change_max: inf-norm of the change [raw action units];
    refine_times: seconds per refine call."""

    tol: float = 1e-9
    calls: int = 0
    interventions: int = 0
    change_sum: float = 0.0
    change_max: float = 0.0
    refine_times: list[float] = field(default_factory=list)

    def update(
        self,
        before: np.ndarray,
        after: np.ndarray,
        seconds: float | None = None,
    ) -> float:
        """Record one executed action; returns its change (inf-norm)."""
        change = float(np.max(np.abs(np.asarray(after) - np.asarray(before)), initial=0.0))
        self.calls += 1
        self.interventions += change > self.tol
        self.change_sum += change
        self.change_max = max(self.change_max, change)
        if seconds is not None:
            self.refine_times.append(seconds)
        return change

    def as_dict(self) -> dict[str, float]:
        """Summary: intervention rate [%], mean / max change, refine time mean / p95 [ms]."""
        t = np.asarray(self.refine_times) * 1000.0
        return {
            "intervention rate [%]": 100.0 * self.interventions / max(self.calls, 1),
            "mean change": self.change_sum / max(self.calls, 1),
            "max change": self.change_max,
            "refine mean [ms]": float(t.mean()) if t.size else float("nan"),
            "refine p95 [ms]": float(np.percentile(t, 95)) if t.size else float("nan"),
        }


class ChunkFilterPolicy(Policy):
    """Receding-horizon wrapper: base chunk -> :meth:`refine` -> first action executed.

    base: anything :func:`action_chunk` accepts. ``stats`` collects the interventions,
    ``last_info`` describes the last call. Subclasses implement :meth:`refine`."""

    name = "chunk-filter"

    def __init__(self, base: Any):
        self.base = base
        self.prev_action: np.ndarray | None = None
        self.stats = InterventionStats()
        self.last_info: dict[str, Any] = {}
        self.last_chunk: np.ndarray | None = None

    @abc.abstractmethod
    def refine(
        self,
        chunk: np.ndarray,
        prev_action: np.ndarray | None,
        **kwargs: Any,
    ) -> np.ndarray:
        """chunk (T, D_a) raw -> refined chunk (T, D_a); prev_action (D_a,) or None."""

    def reset(self, seed: int | None = None) -> None:
        """Forget the last executed action and reset the base (if it can be reset)."""
        self.prev_action = None
        if hasattr(self.base, "reset") and not hasattr(self.base, "observation_space"):
            self.base.reset(seed=seed)

    def act_chunk(self, obs: Any, **kwargs: Any) -> np.ndarray:
        """The refined chunk (T, D_a) for ``obs`` (does not advance the filter state)."""
        return self.refine(action_chunk(self.base, obs), self.prev_action, **kwargs)

    def act(self, obs: Any, **kwargs: Any) -> np.ndarray:
        """Refined first action (D_a,); kwargs go to :meth:`refine` (e.g. time-varying
        ``max_delta``)."""
        chunk = action_chunk(self.base, obs)
        t0 = time.perf_counter()
        refined = self.refine(chunk, self.prev_action, **kwargs)
        seconds = time.perf_counter() - t0
        action = refined[0].copy()
        change = self.stats.update(chunk[0], action, seconds)
        self.last_info = {
            "filter_change": change,
            "filter_intervened": change > self.stats.tol,
            "refine_seconds": seconds,
        }
        self.last_chunk = refined
        self.prev_action = action
        return action


class ActionChangeWrapper(gym.ActionWrapper):
    """Constrains the change between consecutive env actions with a chunk filter applied to
    the single action against the previous env action (none after ``reset``). ``info`` gets
    ``filter_change`` and ``filter_intervened``; ``stats`` accumulates them."""

    def __init__(self, env: gym.Env, refine: Any):
        super().__init__(env)
        self._refine = refine
        self.prev_action: np.ndarray | None = None
        self.stats = InterventionStats()
        self._last: tuple[float, bool] = (0.0, False)

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        self.prev_action = None
        return self.env.reset(**kwargs)

    def action(self, action: Any) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        if a.ndim != 1 or not np.all(np.isfinite(a)):
            raise ValueError(f"action must be a finite 1-D array, got shape {a.shape}")
        out = self._refine(a[None], self.prev_action)[0]
        change = self.stats.update(a, out)
        self._last = (change, change > self.stats.tol)
        self.prev_action = out
        return out

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(self.action(action))
        info = {**info, "filter_change": self._last[0], "filter_intervened": self._last[1]}
        return obs, reward, terminated, truncated, info


class ChangeBoundFilter(ChunkFilterPolicy):
    """A model-based filter of the change bounds: subclasses implement :meth:`filter_selected`
    on the selected dims, divided by ``action_scale`` (so tolerances and step sizes are in
    normalised units, as in the DiffOG appendix)."""

    def __init__(
        self,
        base: Any,
        max_delta: Any,
        min_delta: Any = None,
        dims: Any = None,
        action_scale: Any = 1.0,
    ):
        super().__init__(base)
        self.max_delta, self.min_delta, self.dims = max_delta, min_delta, dims
        self.action_scale = np.asarray(action_scale, dtype=np.float64)
        if not np.all(self.action_scale > 0):
            raise ValueError("action_scale must be > 0")

    @abc.abstractmethod
    def filter_selected(
        self, c: np.ndarray, prev: np.ndarray | None, lo: np.ndarray, hi: np.ndarray
    ) -> np.ndarray:
        """c (T, D_c) normalised, prev (D_c,) or None, lo/hi (T, D_c) bounds of
        c_k - c_{k-1} (row 0: against prev) -> filtered (T, D_c)."""

    def refine(
        self,
        chunk: np.ndarray,
        prev_action: np.ndarray | None,
        max_delta: Any = None,
        min_delta: Any = None,
    ) -> np.ndarray:
        """chunk (T, D_a) raw -> filtered chunk; max_delta/min_delta override the bounds for
        this call (time-varying constraints)."""
        chunk = np.asarray(chunk, dtype=np.float64)
        T, Da = chunk.shape
        idx = select_dims(Da, self.dims)
        scale = np.broadcast_to(self.action_scale, (Da,))[idx]
        lo, hi = resolve_bounds(
            self.max_delta if max_delta is None else max_delta,
            self.min_delta if min_delta is None else min_delta,
            T,
            len(idx),
        )
        prev = None if prev_action is None else np.asarray(prev_action, float)[idx] / scale
        out = chunk.copy()
        out[:, idx] = (
            self.filter_selected(chunk[:, idx] / scale, prev, lo / scale, hi / scale) * scale
        )
        return out
