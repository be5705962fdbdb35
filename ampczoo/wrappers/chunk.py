"""Shared machinery of the action-trajectory filters (clipping, penalty, DiffOG, residual).

* :func:`action_chunk` gets an action chunk (T, D_a) out of any base: an ampczoo policy with
  ``act_chunk`` (LSM, DAMPC), a stable-baselines3 model (``predict``), an object with
  ``act`` or a plain callable; a single action (D_a,) becomes a chunk of length 1.
* :class:`InterventionStats` counts how often and by how much a filter changed the action
  the base policy wanted to execute.
* :class:`ChunkFilterPolicy` runs a filter receding-horizon: it refines one base chunk
  against the last executed action (no continuity constraint at the first step of an
  episode) and executes ``execute_steps`` of its actions (default: the base's
  ``action_horizon`` where it declares one, e.g. Diffusion Policy's T_a = 8, else 1) before
  it asks the base for the next chunk. A base with ``predict_chunk(obs)`` (Diffusion
  Policy) gives its full predicted chunk, whose row ``chunk_offset`` is the action for
  "now", and gets the observations in between through ``observe(obs)``.
* :class:`BoundSchedule`: time-varying bounds per env step (DiffOG Table VIII: 0.05 / 0.1 /
  0.2 / 0.3 over 40-step phases), an option of every chunk filter.
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


def base_chunk_layout(base: Any) -> tuple[int | None, int]:
    """(chunk length, offset) a base declares: ``chunk_len`` (rows of its ``predict_chunk``;
    None when not declared) and ``chunk_offset`` (the row of "now", 0 when not declared)."""
    length = getattr(base, "chunk_len", None)
    offset = getattr(base, "chunk_offset", 0)
    ok = isinstance(length, int | np.integer) and not isinstance(length, bool)
    return (int(length) if ok else None), int(offset) if isinstance(offset, int | np.integer) else 0


def resolve_execute_steps(base: Any, execute_steps: int | None) -> int:
    """Actions executed per refined chunk: ``execute_steps``, or (None) the base's
    ``action_horizon`` where it declares one, else 1. ValueError when not a positive integer
    or more than the rows from "now" to the end of the base's declared chunk (T_a > T_p)."""
    if execute_steps is None:
        declared = getattr(base, "action_horizon", None)
        ok = isinstance(declared, int | np.integer) and not isinstance(declared, bool)
        execute_steps = int(declared) if ok and declared > 0 else 1
    check_positive("execute_steps", execute_steps, integer=True)
    length, offset = base_chunk_layout(base)
    if length is not None and execute_steps > length - offset:
        raise ValueError(
            f"execute_steps T_a={execute_steps} exceeds the base's chunk: T_p={length} rows, "
            f"the current one at row {offset} ({length - offset} executable)"
        )
    return int(execute_steps)


@dataclass(frozen=True)
class BoundSchedule:
    """Time-varying change bounds per env step (DiffOG Table VIII): ``bounds[i]`` holds for
    env steps [i * phase_steps, (i + 1) * phase_steps) after ``reset``, the last one after
    that. Values are in the filter's normalised units (its ``bound`` / actions divided by
    ``action_scale``), > 0."""

    bounds: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)
    """per-step change bound of each phase [normalised units]"""
    phase_steps: int = 40
    """env steps per phase"""

    def __post_init__(self) -> None:
        values = _as_finite_array("bounds", self.bounds, max_ndim=1)
        if values.ndim != 1 or np.any(values <= 0):
            raise ValueError(f"bounds must be finite numbers > 0, got {self.bounds!r}")
        object.__setattr__(self, "bounds", tuple(float(v) for v in values))
        check_positive("phase_steps", self.phase_steps, integer=True)

    def at(self, steps: Any) -> np.ndarray:
        """Bounds at env steps ``steps`` (array; negative steps = the first phase)."""
        phase = np.clip(np.asarray(steps) // self.phase_steps, 0, len(self.bounds) - 1)
        return np.asarray(self.bounds)[phase]

    def rows(self, step: int, T: int, offset: int = 0) -> np.ndarray:
        """(T,) bound of each row of a chunk whose row ``offset`` is executed at env step
        ``step`` (row k's change c_k − c_{k−1} happens at step ``step + k − offset``)."""
        return self.at(step + np.arange(T) - offset)


def check_schedule(schedule: Any) -> BoundSchedule | None:
    """None or a :class:`BoundSchedule`; a sequence of bounds becomes 40-step phases."""
    if schedule is None or isinstance(schedule, BoundSchedule):
        return schedule
    if isinstance(schedule, str | bytes | dict):
        raise ValueError(f"bound_schedule must be a BoundSchedule or bounds, got {schedule!r}")
    return BoundSchedule(tuple(schedule))


def base_chunk(base: Any, obs: Any) -> np.ndarray:
    """:func:`action_chunk`, but the base's full predicted chunk (``predict_chunk``) where it
    has one (Diffusion Policy: T_p rows, row ``chunk_offset`` = now)."""
    if hasattr(base, "predict_chunk"):
        return _checked_chunk(base.predict_chunk(obs))
    return action_chunk(base, obs)


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
    return _checked_chunk(out)


def _checked_chunk(out: Any) -> np.ndarray:
    """A base's output as a float64 chunk (T, D_a); ValueError if non-finite / not 1-D, 2-D."""
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
    """Receding-horizon wrapper: base chunk -> :meth:`refine` -> ``execute_steps`` actions.

    base: anything :func:`action_chunk` accepts (ValueError otherwise), or
    :data:`FILTER_ONLY` for a filter used only through :meth:`refine` (the gymnasium
    wrappers). execute_steps: actions executed per refined chunk (T_a; None = the base's
    ``action_horizon`` where declared, else 1); the continuity row ties the first of them to
    the last executed action. bound_schedule: a :class:`BoundSchedule` (or a sequence of
    phase bounds, 40-step phases) giving each chunk row the bound of the env step it is
    executed at. ``stats`` collects the interventions, ``last_info`` describes the last
    call. Subclasses implement :meth:`refine` (and :meth:`schedule_kwargs`)."""

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

    def __init__(
        self,
        base: Any,
        execute_steps: int | None = None,
        bound_schedule: BoundSchedule | Any = None,
    ):
        if base is not FILTER_ONLY:
            check_base(base)
        self.base = base
        self.prev_action: np.ndarray | None = None
        self.stats = InterventionStats()
        self.last_info: dict[str, Any] = {}
        self.last_chunk: np.ndarray | None = None
        _, self.chunk_offset = base_chunk_layout(base)
        self.execute_steps = resolve_execute_steps(base, execute_steps)
        self.bound_schedule = check_schedule(bound_schedule)
        #: (base action, refined action) pairs of the current chunk still to execute
        self._queue: list[tuple[np.ndarray, np.ndarray]] = []
        #: env steps since reset (the bound schedule's clock)
        self.steps = 0
        self._refine_seconds = 0.0

    @abc.abstractmethod
    def refine(
        self,
        chunk: np.ndarray,
        prev_action: np.ndarray | None,
        **kwargs: Any,
    ) -> np.ndarray:
        """chunk (T, D_a) raw -> refined chunk (T, D_a); prev_action (D_a,) or None."""

    def refine_chunk(
        self,
        chunk: np.ndarray,
        prev_action: np.ndarray | None,
        offset: int = 0,
        **kwargs: Any,
    ) -> np.ndarray:
        """A base chunk whose row ``offset`` is "now" -> refined chunk (T, D_a): the rows
        from ``offset`` on are refined with the continuity row on row ``offset`` (the rows
        before it, the past, are returned unchanged; the learned refiners override this to
        refine the whole chunk they were trained on)."""
        if offset == 0:
            return self.refine(chunk, prev_action, **kwargs)
        out = np.array(chunk, dtype=np.float64)
        out[offset:] = self.refine(out[offset:], prev_action, **kwargs)
        return out

    def schedule_kwargs(self, bounds: np.ndarray, offset: int) -> dict[str, Any]:
        """The per-call keyword arguments of :meth:`refine_chunk` for row bounds ``bounds``
        (T,) [normalised units] of a chunk with its current row at ``offset``."""
        raise ValueError(f"{type(self).__name__} does not support bound_schedule")

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
        """Forget the last executed action, the chunk being executed and the step count;
        reset the base (if it can be reset)."""
        self.prev_action = None
        self.last_chunk = None
        self._queue = []
        self.steps = 0
        if hasattr(self.base, "reset") and not hasattr(self.base, "observation_space"):
            self.base.reset(seed=seed)

    def planned_inputs(self) -> tuple[np.ndarray, float] | None:
        """The refined chunk (T, D_a) of the last refine from its current row (a copy of
        ``last_chunk``) and its time step: the step [s] of the base's own plan
        (``base.planned_inputs()``, e.g. DAMPC's ``config.dt``); None before the first act
        after :meth:`reset` or when the base exposes no plan
        (:class:`~ampczoo.core.policy.PlansInputs`)."""
        base_plan = planned_inputs(self.base)
        if self.last_chunk is None or base_plan is None:
            return None
        return self.last_chunk.copy(), base_plan[1]

    def _refined(self, obs: Any, kwargs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """(base chunk, refined chunk) from row ``chunk_offset`` on, for ``obs``."""
        chunk = base_chunk(self.base, obs)
        offset = self.chunk_offset
        if len(chunk) < offset + self.execute_steps:
            raise ValueError(
                f"the base returned a chunk of {len(chunk)} rows; executing "
                f"{self.execute_steps} from row {offset} needs {offset + self.execute_steps}"
            )
        if self.bound_schedule is not None and not kwargs:
            kwargs = self.schedule_kwargs(
                self.bound_schedule.rows(self.steps, len(chunk), offset), offset
            )
        t0 = time.perf_counter()
        refined = self.refine_chunk(chunk, self.prev_action, offset, **kwargs)
        self._refine_seconds = time.perf_counter() - t0
        return chunk[offset:], refined[offset:]

    def act_chunk(self, obs: Any, **kwargs: Any) -> np.ndarray:
        """The refined chunk (T, D_a) for ``obs`` from its current row (does not advance the
        filter state)."""
        return self._refined(obs, kwargs)[1]

    def act(self, obs: Any, **kwargs: Any) -> np.ndarray:
        """Refined action (D_a,): the next of the current refined chunk, or (every
        ``execute_steps`` steps) the first of a new one; kwargs go to :meth:`refine` (e.g.
        time-varying ``max_delta``) when a chunk is refined. Between chunks the base only
        observes (``base.observe(obs)`` where it has it)."""
        if self._queue:
            if hasattr(self.base, "observe"):
                self.base.observe(obs)
            before, action = self._queue.pop(0)
            change = self.stats.update(before, action)
            self.last_info = {
                "filter_change": change,
                "filter_intervened": change > self.stats.tol,
                "refine_seconds": 0.0,
            }
        else:
            chunk, refined = self._refined(obs, kwargs)
            seconds = self._refine_seconds
            n = self.execute_steps
            self._queue = [(chunk[k], refined[k].copy()) for k in range(1, n)]
            action = refined[0].copy()
            change = self.stats.update(chunk[0], action, seconds)
            self.last_info = {
                "filter_change": change,
                "filter_intervened": change > self.stats.tol,
                "refine_seconds": seconds,
            }
            self.last_chunk = refined
        self.prev_action = action
        self.steps += 1
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


#: arguments of the policy filters that their gymnasium twins (one action at a time) lack
POLICY_ONLY_PARAMETERS = ("max_abs", "execute_steps", "bound_schedule", "bound_unit")


class ChangeBoundFilter(ChunkFilterPolicy):
    """A model-based filter of the change bounds: subclasses implement :meth:`filter_selected`
    on the selected dims, divided by ``action_scale`` (so tolerances and step sizes are in
    normalised units, as in the DiffOG appendix).

    base: the policy (see :class:`ChunkFilterPolicy`). max_delta / min_delta: per-step change
    bounds [raw action units], > 0 / < 0 (min_delta defaults to -max_delta); scalar, (D_c,)
    or (T, D_c). dims: constrained action dimensions (None = all). action_scale: > 0,
    scalar or (D_a,), the divisor that normalises actions. max_abs: optional magnitude bound
    |c_k| <= max_abs [normalised units, > 0] on the constrained dimensions (DiffOG Table X:
    the velocity bound 0.5 beside the change bound 0.1 of robomimic's velocity actions).
    execute_steps, bound_schedule (normalised units, times ``bound_unit`` (D_c,) or else
    ``action_scale`` = raw bounds): see :class:`ChunkFilterPolicy`."""

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
        {"max_abs": 0.0},
        {"max_abs": -0.5},
        {"max_abs": float("nan")},
        {"execute_steps": 0},
        {"execute_steps": 1.5},
        {"bound_schedule": (0.1, 0.0)},
        {"bound_schedule": (0.1, float("inf"))},
        {"bound_unit": [1.0, 0.0]},
    )
    per_dimension_parameters: ClassVar[tuple[str, ...]] = ("max_delta", "action_scale")

    def __init__(
        self,
        base: Any,
        max_delta: Any,
        min_delta: Any = None,
        dims: Any = None,
        action_scale: Any = 1.0,
        max_abs: float | None = None,
        execute_steps: int | None = None,
        bound_schedule: BoundSchedule | Any = None,
        bound_unit: Any = None,
    ):
        super().__init__(base, execute_steps, bound_schedule)
        self.max_delta, self.min_delta, self.dims = max_delta, min_delta, dims
        self.action_scale = _as_finite_array("action_scale", action_scale, max_ndim=1)
        if not np.all(self.action_scale > 0):
            raise ValueError(f"action_scale must be > 0, got {action_scale!r}")
        if max_abs is not None:
            check_positive("max_abs", max_abs)
        self.max_abs = None if max_abs is None else float(max_abs)
        self.bound_unit = None
        if bound_unit is not None:
            self.bound_unit = _as_finite_array("bound_unit", bound_unit, max_ndim=1)
            if not np.all(self.bound_unit > 0):
                raise ValueError(f"bound_unit must be > 0, got {bound_unit!r}")
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
        c_k - c_{k-1} (row 0: against prev) -> filtered (T, D_c); ``self.max_abs`` (None
        or > 0) bounds |c_k| too."""

    def schedule_kwargs(self, bounds: np.ndarray, offset: int) -> dict[str, Any]:
        """Row bounds (T,) normalised -> ``max_delta`` (T − offset, D_c) raw for the rows
        :meth:`refine_chunk` refines (from ``offset``): times ``bound_unit`` (D_c,) where
        given, else ``action_scale``."""
        if self.bound_unit is not None:
            scale = np.atleast_1d(self.bound_unit)
        else:
            scale = np.atleast_1d(self.action_scale)
            if self.dims is not None and scale.size > 1:
                scale = scale[list(self.dims)]
        return {"max_delta": np.asarray(bounds)[offset:, None] * scale[None, :]}

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
