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

Every constructor refuses invalid parameters with ``ValueError`` right away: a base that is
neither a policy nor a callable, bounds that are not finite or do not admit holding the
action (``max_delta <= 0``, ``min_delta >= 0``), and vectors whose length does not match
the base's action size where the base declares it (``action_dim``, or a flat Box
``action_space``). Each wrapper lists a small working instance (``example_kwargs``) and its
own invalid cases (``invalid_kwargs``) next to it; the contract tests run them all.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from ampczoo.core.policy import Policy, planned_inputs


class _FilterOnly:
    """The base of a filter used only through ``refine`` (the gymnasium wrappers)."""

    def __repr__(self) -> str:
        return "FILTER_ONLY"


#: Pass as the base of a chunk filter used only through ``refine`` (no ``act``).
FILTER_ONLY: Any = _FilterOnly()


def is_policy_like(base: Any) -> bool:
    """Whether :func:`action_chunk` can get actions out of ``base``."""
    return (
        hasattr(base, "act_chunk")
        or (hasattr(base, "predict") and hasattr(base, "policy"))
        or hasattr(base, "act")
        or callable(base)
    )


def check_base(base: Any) -> None:
    """ValueError unless ``base`` is a policy (``act_chunk`` / ``act`` / SB3 ``predict``) or
    a callable ``obs -> action or chunk``."""
    if isinstance(base, gym.Env) or not is_policy_like(base):
        raise ValueError(
            "base must be a policy (act_chunk / act / SB3 model) or a callable obs -> action, "
            f"got {type(base).__name__}"
        )


def base_action_dim(base: Any) -> int | None:
    """The action size a base declares: its ``action_dim`` (ampczoo policies) or the size of
    its flat Box ``action_space`` (SB3 models); None if it declares none (plain callables)."""
    dim = getattr(base, "action_dim", None)
    if isinstance(dim, int | np.integer) and not isinstance(dim, bool):
        return int(dim)
    shape = getattr(getattr(base, "action_space", None), "shape", None)
    if isinstance(shape, tuple) and len(shape) == 1:
        return int(shape[0])
    return None


def env_action_dim(env: Any) -> int:
    """Size of a gymnasium env's flat Box action space; ValueError for anything else."""
    if not isinstance(env, gym.Env):
        raise ValueError(f"env must be a gymnasium.Env, got {type(env).__name__}")
    space = env.action_space
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"env needs a flat Box action space, got {space}")
    return int(space.shape[0])


def check_positive(name: str, value: Any, integer: bool = False) -> None:
    """ValueError unless ``value`` is a finite number > 0 (an int when ``integer``)."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not 0 < value < np.inf:
        what = "a positive integer" if integer else "a finite number > 0"
        raise ValueError(f"{name} must be {what}, got {value!r}")


def _as_finite_array(name: str, value: Any, max_ndim: int = 2) -> np.ndarray:
    """``value`` as a non-empty finite float64 array of at most ``max_ndim`` axes."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numbers, got {value!r}") from exc
    shapes = "scalar, (D_c,) or (T, D_c)" if max_ndim == 2 else "scalar or (D_a,)"
    if arr.size == 0 or arr.ndim > max_ndim or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a finite {shapes}, got {value!r}")
    return arr


def check_change_bounds(max_delta: Any, min_delta: Any, dim: int | None) -> None:
    """Constructor check of per-step change bounds: finite, ``max_delta > 0`` and
    ``min_delta < 0`` (holding the action is always allowed), last axis 1 or ``dim`` (the
    number of constrained dimensions, when known)."""
    bounds = {"max_delta": _as_finite_array("max_delta", max_delta)}
    if min_delta is not None:
        bounds["min_delta"] = _as_finite_array("min_delta", min_delta)
    if np.any(bounds["max_delta"] <= 0):
        raise ValueError(f"max_delta must be > 0, got {max_delta!r}")
    if "min_delta" in bounds and np.any(bounds["min_delta"] >= 0):
        raise ValueError(f"min_delta must be < 0, got {min_delta!r}")
    for name, arr in bounds.items():
        if dim is not None and arr.ndim and arr.shape[-1] not in (1, dim):
            raise ValueError(
                f"{name} has {arr.shape[-1]} values per step for {dim} constrained dimensions"
            )


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
        raise ValueError(f"{type(base).__name__} has no act_chunk/predict/act and is not callable")
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
    try:
        idx = np.arange(action_dim) if dims is None else np.asarray(list(dims), dtype=int)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"dims must be a sequence of indices, got {dims!r}") from exc
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

    base: anything :func:`action_chunk` accepts (ValueError otherwise), or
    :data:`FILTER_ONLY` for a filter used only through :meth:`refine` (the gymnasium
    wrappers). ``stats`` collects the
    interventions, ``last_info`` describes the last call. Subclasses implement
    :meth:`refine`."""

    name = "chunk-filter"
    #: one observation per ``act`` (the filter state is the last executed action)
    batched: ClassVar[bool] = False
    #: constructor arguments (besides the base) of a small working instance, for tests/docs
    example_kwargs: ClassVar[dict[str, Any]] = {}
    #: argument sets (applied over ``example_kwargs``) the constructor refuses (ValueError),
    #: beyond the generic ones of the contract tests (a bad base, non-positive or non-finite
    #: values of the positive ``example_kwargs``, vectors of the wrong length)
    invalid_kwargs: ClassVar[tuple[dict[str, Any], ...]] = ()
    #: parameters that take one value per action (or constrained) dimension
    per_dimension_parameters: ClassVar[tuple[str, ...]] = ()

    def __init__(self, base: Any):
        if base is not FILTER_ONLY:
            check_base(base)
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

    @property
    def action_dim(self) -> int | None:
        """The base's action size (None when the base does not declare it)."""
        return base_action_dim(self.base)

    @property
    def obs_dim(self) -> int | None:
        """The base's observation size (None when the base does not declare it)."""
        dim = getattr(self.base, "obs_dim", None)
        return int(dim) if isinstance(dim, int | np.integer) else None

    def reset(self, seed: int | None = None) -> None:
        """Forget the last executed action and chunk; reset the base (if it can be reset)."""
        self.prev_action = None
        self.last_chunk = None
        if hasattr(self.base, "reset") and not hasattr(self.base, "observation_space"):
            self.base.reset(seed=seed)

    def planned_inputs(self) -> tuple[np.ndarray, float] | None:
        """The refined chunk (T, D_a) of the last :meth:`act` (a copy of ``last_chunk``) and
        its time step: the step [s] of the base's own plan (``base.planned_inputs()``, e.g.
        DAMPC's ``config.dt``); None before the first act after :meth:`reset` or when the
        base exposes no plan (:class:`~ampczoo.core.policy.PlansInputs`)."""
        base_plan = planned_inputs(self.base)
        if self.last_chunk is None or base_plan is None:
            return None
        return self.last_chunk.copy(), base_plan[1]

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
    ``filter_change`` and ``filter_intervened``; ``stats`` accumulates them. ``env`` must be
    a gymnasium env with a flat Box action space (ValueError otherwise)."""

    #: as :class:`ChunkFilterPolicy` (constructor arguments besides the env)
    example_kwargs: ClassVar[dict[str, Any]] = {}
    invalid_kwargs: ClassVar[tuple[dict[str, Any], ...]] = ()
    per_dimension_parameters: ClassVar[tuple[str, ...]] = ()

    def __init__(self, env: gym.Env, refine: Any):
        env_action_dim(env)
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
    normalised units, as in the DiffOG appendix).

    base: the policy (see :class:`ChunkFilterPolicy`). max_delta / min_delta: per-step change
    bounds [raw action units], > 0 / < 0 (min_delta defaults to -max_delta); scalar, (D_c,)
    or (T, D_c). dims: constrained action dimensions (None = all). action_scale: > 0,
    scalar or (D_a,), the divisor that normalises actions."""

    example_kwargs: ClassVar[dict[str, Any]] = {"max_delta": 0.1}
    invalid_kwargs: ClassVar[tuple[dict[str, Any], ...]] = (
        {"min_delta": 0.0},
        {"min_delta": 0.05},
        {"min_delta": float("nan")},
        {"max_delta": [0.1, float("inf")]},
        {"max_delta": "fast"},
        {"max_delta": []},
        {"max_delta": np.full((2, 2, 2), 0.1)},
        {"dims": ()},
        {"dims": (0, 0)},
        {"dims": (-1,)},
        {"dims": (99,)},
        {"action_scale": [1.0, -1.0]},
        {"action_scale": [1.0, float("inf")]},
    )
    per_dimension_parameters: ClassVar[tuple[str, ...]] = ("max_delta", "action_scale")

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
        self.action_scale = _as_finite_array("action_scale", action_scale, max_ndim=1)
        if not np.all(self.action_scale > 0):
            raise ValueError(f"action_scale must be > 0, got {action_scale!r}")
        self.check_action_dim(base_action_dim(base))

    def check_action_dim(self, action_dim: int | None) -> None:
        """ValueError unless dims, the bounds and action_scale fit ``action_dim`` actions
        (the gymnasium wrappers pass their env's; None: only what does not depend on it)."""
        if action_dim is not None:
            n_c = len(select_dims(action_dim, self.dims))
        elif self.dims is None:
            n_c = None
        else:
            try:
                n_c = len(select_dims(max(list(self.dims), default=-1) + 1, self.dims))
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"dims must be distinct non-negative indices, got {self.dims!r}"
                ) from exc
        check_change_bounds(self.max_delta, self.min_delta, n_c)
        size = self.action_scale.size
        if action_dim is not None and size not in (1, action_dim):
            raise ValueError(f"action_scale has {size} values for {action_dim} action dimensions")

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
