"""``ampczoo bench manipulation``: a base policy (Diffusion Policy) and the constraint layer on
it (clipping, penalty, DiffOG; LeTO beside them) on the manipulation suites, every row on the
same fixed initial states (DiffOG paper Tables I/II, Fig. 8; LeTO paper Table I).

Per task (``--base TASK=SPEC``; SPEC a zoo name, checkpoint folder or training run folder,
several training seeds comma-separated), rows:

* ``base``: the base policy as it acts (Diffusion Policy: T_a executed actions per plan);
* ``clipping`` / ``penalty``: :class:`~ampczoo.wrappers.clipping.ClippingPolicy` /
  :class:`~ampczoo.wrappers.penalty.PenaltyPolicy` on the base, the suite's bound
  (:func:`ampczoo.wrappers.presets.suite_preset`, Table IX) on the continuous dims (gripper
  excluded), penalty parameters of Table XI;
* ``diffog``: the base through a DiffOG refiner (``--diffog TASK=SPEC``; ``static``: an
  untrained static-Q DiffOG with the preset's bound and alpha, the Table V ablation);
* ``leto``: a LeTO checkpoint (``--leto TASK=SPEC``) acting alone.

Constraint variants (DiffOG Tables VIII and X), applied identically to the clipping, penalty
and DiffOG rows (not to base, nor to LeTO, which acts under its own trained bounds: noted in
the table): ``--bound-schedule 0.05 0.1 0.2 0.3 --phase-steps 40`` replaces the suite's static
change bound by one bound per 40-step phase (normalised units; the last phase lasts to the
episode's end); ``--max-abs 0.5`` adds the magnitude bound |a| <= 0.5 on the constrained dims
(normalised; robomimic's actions are velocities, so this is Table X's velocity bound) to the
same problem as the change bound. The table's notes give both in normalised and raw units.

A row whose checkpoint is not given is skipped with a note. Wrapped rows are built by
:func:`ampczoo.policies.constrained.make_constrained` (see :func:`row_policy`).

Initial states: reset seeds ``seed .. seed+episodes-1`` (held out from the demonstrations'
seeds); each seed's initial simulator state (``env.unwrapped.get_sim_state()``) is stored in
``initial_states-<TASK>.npz`` and every row starts from it (``reset(options={"sim_state":
s})``); ``--initial-states RUN_FOLDER`` reuses the states of an earlier run. The policy is
reset with the same seed, so an episode is a function of (row, checkpoint, seed) only: the
rollouts run in parallel through the collection backends (``--workers N``, ``--backend ray``,
:mod:`ampczoo.data.collect`) and give the same rows for any number of workers. Episodes end on
success (``terminate_on_success``); metrics use the steps until then.

Metrics per row (pooled over checkpoints x initial states):

* success rate with its 95 % Wilson interval;
* the first difference of the executed actions on the constrained dims, in the suite
  preset's normalised units (robomimic: raw, its actions lie in [-1, 1]; others: the base's
  min-max half range) per step: per episode its max |.| and std, averaged over episodes.
  Robomimic (OSC delta actions: a change of 1 per 0.05 s step of the position
  / rotation action is 20 m/s^2 / 200 rad/s^2, the paper's scale) it is an acceleration and
  also given in m/s^2 and rad/s^2; Meta-World / Push-T it is a velocity;
* % of steps whose change exceeds the bound (normalised, 1e-6 tolerance) and the largest
  excess over the bound (normalised; penalty stops within its tolerance, so it may exceed);
  under a bound schedule the bound is that of the step's phase, and per phase P1, P2, ...
  the max |.| and std of the change and % steps over the phase's bound;
* the largest |a| on the constrained dims per episode (normalised), and with ``--max-abs``
  % steps over it and the largest excess;
* refine time per refine call [ms] (wrapped rows), act() time per step [ms].

``--checkpoints last:K`` takes the last K saved checkpoints of each training run folder (the
paper: last 10): the ``step-NNNNNNN/`` snapshots that ``ampczoo train --keep-checkpoints K``
keeps, and ``last/``; a run folder with fewer is refused with a message. Several run folders,
comma-separated, are training seeds.

Writes ``table.{md,csv}``, ``episodes.json`` (per episode: row, checkpoint, seed, success,
steps, metrics), ``initial_states-<TASK>.npz`` and ``fig8.png`` (success with CI and the action
differences per task and row) into ``runs/bench-manipulation-<date>/`` and prints the command.

Example::

    ampczoo bench manipulation --base Robomimic-Can-v0=runs/dp-can/last \\
        --diffog Robomimic-Can-v0=runs/diffog-dp-can/last --episodes 50 --workers 2
    ampczoo bench manipulation --quick      # Lift with zoo dp-lift, a few short episodes
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ampczoo.benchmarks.common import (
    command_line,
    make_run_dir,
    single_thread,
    wilson_interval,
    write_table,
)
from ampczoo.wrappers.chunk import BoundSchedule, check_positive
from ampczoo.wrappers.presets import SuitePreset, suite_preset

METHODS = ("base", "clipping", "penalty", "diffog", "leto")
#: ``--diffog`` value for an untrained static-Q DiffOG (Q = I; the Table V ablation)
STATIC_DIFFOG = "static"
#: tolerance of the over-bound count [normalised units]
BOUND_TOL = 1e-6


# ----------------------------------------------------------------------------- presets
#: robomimic OSC: a change of 1 per step of the position / rotation action is 20 m/s^2 /
#: 200 rad/s^2 (output_max 0.05 m and 0.5 rad per 0.05 s step; the paper's scale)
ROBOMIMIC_SCALE = {"m/s^2": (range(0, 3), 20.0), "rad/s^2": (range(3, 6), 200.0)}


def task_preset(env_id: str) -> SuitePreset:
    """The constraint preset of ``env_id``'s suite (:func:`ampczoo.wrappers.presets.
    suite_preset`: Tables IX and XI); ValueError for an env of no suite of the paper."""
    preset = suite_preset(env_id)
    if preset is None:
        raise ValueError(
            f"{env_id!r} is not a manipulation env (Robomimic-*, MetaWorld-*, PushT-*)"
        )
    return preset


def constrained_dims(preset: SuitePreset, action_dim: int) -> tuple[int, ...]:
    """Action dims under the bound: all but the gripper(s) (selection matrix S)."""
    return preset.dims(action_dim)


# ----------------------------------------------------------------------------- config
@dataclass(frozen=True)
class ManipulationBenchConfig:
    """``ampczoo bench manipulation``: base policy, clipping, penalty, DiffOG and LeTO on the
    manipulation suites, on the same stored initial states."""

    base: tuple[str, ...] = ("Robomimic-Lift-v0=dp-lift",)
    """TASK=SPEC per task (in table order): the base policy of an env id, SPEC a zoo name,
    checkpoint folder or training run folder; several (training seeds) comma-separated"""
    diffog: tuple[str, ...] = ()
    """TASK=SPEC: DiffOG refiner checkpoint(s) of a task (one, or one per base checkpoint),
    or "static" (untrained static-Q DiffOG; "static:ALPHA": with smoothing weight ALPHA in
    place of the suite's); tasks without one: row skipped"""
    leto: tuple[str, ...] = ()
    """TASK=SPEC: LeTO checkpoint(s) of a task; tasks without one: row skipped"""
    methods: tuple[str, ...] = METHODS
    """rows to run, from base, clipping, penalty, diffog, leto"""
    checkpoints: str = "last"
    """which checkpoints of a training run folder: "last" or "last:K" (the last K saved)"""
    episodes: int = 50
    """initial states per task (reset seeds seed .. seed+episodes-1)"""
    seed: int = 100_000
    """first reset seed (held out from the demonstrations' seeds)"""
    max_steps: int | None = None
    """episode horizon [steps] (None: the env's registered limit)"""
    initial_states: str = ""
    """run folder of an earlier run (its initial_states-<TASK>.npz) or, for one task, an
    .npz file: start from those states (their seeds replace seed / episodes)"""
    workers: int = 1
    """parallel rollout workers (1 = in this process)"""
    backend: Literal["process", "ray"] = "process"
    """workers as local processes or Ray actors (the collection backends)"""
    ray_address: str | None = None
    """Ray cluster address (None = a local instance)"""
    bound_schedule: tuple[float, ...] = ()
    """time-varying change bounds, one per phase of ``phase_steps`` env steps [normalised
    units, > 0] (DiffOG Table VIII: 0.05 0.1 0.2 0.3), for the clipping, penalty and DiffOG
    rows in place of the suite's static bound (empty: the static bound)"""
    phase_steps: int = 40
    """env steps per phase of ``bound_schedule`` (Table VIII: 40)"""
    max_abs: float | None = None
    """magnitude bound |a| <= max_abs on the constrained dims [normalised units, > 0] in the
    same problem as the change bound, for the clipping, penalty and DiffOG rows (DiffOG
    Table X: 0.5 on robomimic's velocity actions); None: none"""
    quick: bool = False
    """smoke run: Lift with zoo dp-lift (and a static-Q DiffOG), 2 episodes of <= 40 steps"""
    out: str = "runs"
    """parent folder of the run folder"""

    def __post_init__(self) -> None:
        if self.quick:
            object.__setattr__(self, "base", ("Robomimic-Lift-v0=dp-lift",))
            if not self.diffog:
                object.__setattr__(self, "diffog", (f"Robomimic-Lift-v0={STATIC_DIFFOG}",))
            object.__setattr__(self, "episodes", min(self.episodes, 2))
            object.__setattr__(self, "max_steps", min(self.max_steps or 40, 40))
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.backend not in ("process", "ray"):
            raise ValueError(f"backend must be 'process' or 'ray', got {self.backend!r}")
        self.schedule()  # ValueError on non-positive / non-finite bounds or phase_steps
        if self.max_abs is not None and (
            isinstance(self.max_abs, bool) or not 0 < self.max_abs < np.inf
        ):
            raise ValueError(f"max_abs must be a finite number > 0, got {self.max_abs!r}")
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"methods must be among {METHODS}, got {self.methods}")
        checkpoints_per_run(self.checkpoints)
        tasks = list(parse_entries(self.base, "base"))
        if not tasks:
            raise ValueError("base must name at least one TASK=SPEC")
        for name in ("diffog", "leto"):
            extra = [t for t in parse_entries(getattr(self, name), name) if t not in tasks]
            if extra:
                raise ValueError(f"{name} names tasks without a base: {extra} (bases: {tasks})")
        for specs in parse_entries(self.diffog, "diffog").values():
            for spec in specs:
                if is_static(spec):
                    static_alpha(spec)  # ValueError on a malformed ALPHA
        for task in tasks:
            task_preset(task)

    @property
    def tasks(self) -> list[str]:
        """Env ids in table order."""
        return list(parse_entries(self.base, "base"))

    def schedule(self) -> BoundSchedule | None:
        """The :class:`~ampczoo.wrappers.chunk.BoundSchedule` of ``bound_schedule`` /
        ``phase_steps`` (None without a schedule); ValueError on invalid values."""
        if not self.bound_schedule:
            check_positive("phase_steps", self.phase_steps, integer=True)
            return None
        return BoundSchedule(tuple(self.bound_schedule), self.phase_steps)

    def constraint_variant(self) -> Constraints:
        """The constraint variant of the wrapped rows (picklable, travels with the rows)."""
        return Constraints(tuple(self.bound_schedule), self.phase_steps, self.max_abs)


def parse_entries(entries: tuple[str, ...], what: str) -> dict[str, list[str]]:
    """``("TASK=SPEC[,SPEC...]", ...)`` -> {task: [spec, ...]}; ValueError on a malformed or
    repeated entry."""
    out: dict[str, list[str]] = {}
    for entry in entries:
        task, sep, specs = entry.partition("=")
        parts = [s.strip() for s in specs.split(",") if s.strip()]
        if not sep or not task or not parts:
            raise ValueError(f"{what} entries are TASK=SPEC[,SPEC...], got {entry!r}")
        if task in out:
            raise ValueError(f"{what} names task {task!r} twice")
        out[task] = parts
    return out


def is_static(spec: str) -> bool:
    """Whether a ``--diffog`` SPEC is the untrained static-Q DiffOG ("static[:ALPHA]")."""
    return spec == STATIC_DIFFOG or spec.startswith(STATIC_DIFFOG + ":")


def static_alpha(spec: str) -> float | None:
    """Smoothing weight of a static-Q SPEC: None for "static" (the suite's), ALPHA for
    "static:ALPHA"; ValueError when ALPHA is not a finite number >= 0."""
    _, sep, text = spec.partition(":")
    if not sep:
        return None
    try:
        alpha = float(text)
    except ValueError:
        alpha = float("nan")
    if not (np.isfinite(alpha) and alpha >= 0):
        raise ValueError(
            f'a static DiffOG spec is "static" or "static:ALPHA" (ALPHA >= 0), got {spec!r}'
        )
    return alpha


def checkpoints_per_run(spec: str) -> int:
    """K of ``"last"`` (1) or ``"last:K"``; ValueError otherwise."""
    head, _, k = spec.partition(":")
    if head == "last" and not k:
        return 1
    if head == "last" and k.isdigit() and int(k) >= 1:
        return int(k)
    raise ValueError(f"checkpoints must be 'last' or 'last:K' (K >= 1), got {spec!r}")


def resolve_checkpoints(spec: str, k: int) -> list[str]:
    """The checkpoints of one SPEC: a zoo name or checkpoint folder is itself (K must be 1); a
    training run folder gives its last K saved checkpoints: its ``step-NNNNNNN/`` snapshots
    (``ampczoo train --keep-checkpoints``) in step order, then ``last/`` unless the newest
    snapshot is the same step. ValueError when fewer than K exist."""
    from ampczoo.training.supervised import SNAPSHOT_PREFIX, STATE_JSON, snapshot_folders

    path = Path(spec)
    if not (path / "last").is_dir() or (path / "config.json").is_file():
        if k > 1:
            raise ValueError(
                f"{spec} is a single checkpoint; checkpoints last:{k} needs a training run folder"
            )
        return [spec]
    found = [str(p) for p in snapshot_folders(path)]
    last_state = path / "last" / STATE_JSON
    last_step = json.loads(last_state.read_text())["step"] if last_state.is_file() else None
    newest_is_last = bool(found) and int(Path(found[-1]).name[len(SNAPSHOT_PREFIX) :]) == last_step
    if not newest_is_last:
        found.append(str(path / "last"))
    if len(found) < k:
        raise ValueError(
            f"{spec} keeps {len(found)} checkpoint(s) ({[Path(f).name for f in found]}), "
            f"checkpoints last:{k} needs {k}: train with --keep-checkpoints {k} to keep step-*/ "
            "snapshots; pass several run folders (comma-separated) for training seeds"
        )
    return found[-k:]


# ----------------------------------------------------------------------------- rows
#: rows the constraint variant (bound schedule, magnitude bound) applies to
WRAPPED_METHODS = ("clipping", "penalty", "diffog")


@dataclass(frozen=True)
class Constraints:
    """The constraint variant of the wrapped rows (normalised units): a time-varying change
    bound (Table VIII) and/or a magnitude bound (Table X); the defaults are the suite's
    static change bound alone."""

    bound_schedule: tuple[float, ...] = ()
    """change bound per phase (empty: the suite's static bound)"""
    phase_steps: int = 40
    """env steps per phase"""
    max_abs: float | None = None
    """magnitude bound on the constrained dims (None: none)"""

    def schedule(self) -> BoundSchedule | None:
        """The bound schedule (None without one)."""
        if not self.bound_schedule:
            return None
        return BoundSchedule(tuple(self.bound_schedule), int(self.phase_steps))

    def change_bound(self, preset: SuitePreset, steps: np.ndarray) -> np.ndarray:
        """(N,) change bound [normalised] of the actions executed at env steps ``steps``."""
        schedule = self.schedule()
        if schedule is None:
            return np.full(len(steps), preset.bound)
        return schedule.at(np.asarray(steps))

    def describe(self, preset: SuitePreset, raw_scale: np.ndarray) -> str:
        """One line for the table: the variant in normalised and raw units."""
        parts = []
        if self.bound_schedule:
            bounds = " / ".join(f"{b:g}" for b in self.bound_schedule)
            parts.append(
                f"change bound {bounds} per {self.phase_steps}-step phase (normalised; the "
                f"last one to the episode's end) instead of the static {preset.bound:g}"
            )
        if self.max_abs is not None:
            raw = np.unique(np.round(self.max_abs * raw_scale, 6))
            raw_text = ", ".join(f"{r:g}" for r in raw)
            if preset.suite == "robomimic":  # OSC: 1 = 0.05 m / 0.5 rad per 0.05 s step
                raw_text += f" = {self.max_abs:g} m/s, {10 * self.max_abs:g} rad/s"
            parts.append(
                f"magnitude bound |a| <= {self.max_abs:g} (normalised; raw {raw_text}) on the "
                "constrained dims, in the same problem as the change bound"
            )
        return "; ".join(parts)


@dataclass(frozen=True)
class RowSpec:
    """One row's policy, picklable (built again in every worker)."""

    method: str
    """base | clipping | penalty | diffog | leto"""
    checkpoint: str
    """the base checkpoint (leto: the LeTO checkpoint)"""
    refiner: str = ""
    """diffog: refiner checkpoint or "static[:ALPHA]\""""
    constraints: Constraints = Constraints()
    """the constraint variant (applied to the clipping, penalty and DiffOG rows only)"""


def action_half_range(policy: Any, preset: SuitePreset, action_dim: int) -> np.ndarray:
    """(A,) raw size of one normalised action unit: the suite preset's scale (robomimic: 1,
    its actions lie in [-1, 1]; Meta-World / Push-T: the base's ``action_scale``, its data
    half range per dimension)."""
    return preset.raw_scale(getattr(policy, "action_scale", None), action_dim)


def row_policy(spec: RowSpec, env_id: str, action_dim: int) -> Any:
    """The acting policy of a row (torch on CPU): the base, LeTO, or the base behind
    :func:`ampczoo.policies.constrained.make_constrained` (the suite's Table IX / XI
    settings; T_a refined actions executed per chunk of a chunked base)."""
    from ampczoo.core.registry import load_policy
    from ampczoo.policies.constrained import make_constrained

    policy = load_policy(spec.checkpoint, device="cpu").eval()
    if spec.method in ("base", "leto"):
        return policy
    variant = spec.constraints
    schedule = variant.schedule()
    if spec.method in ("clipping", "penalty"):
        extra = magnitude_kwargs(spec.method, policy, task_preset(env_id), action_dim, variant)
        return make_constrained(spec.method, policy, env_id, bound_schedule=schedule, **extra)
    if spec.method == "diffog":
        if is_static(spec.refiner):
            return static_diffog_policy(
                policy,
                task_preset(env_id),
                action_dim,
                schedule,
                variant.max_abs,
                alpha=static_alpha(spec.refiner),
            )
        extra = {} if variant.max_abs is None else {"max_abs": variant.max_abs}
        return make_constrained(
            "diffog", policy, env_id, checkpoint=spec.refiner, bound_schedule=schedule, **extra
        )
    raise ValueError(f"unknown method {spec.method!r}; choose from {METHODS}")


def magnitude_kwargs(
    method: str, base: Any, preset: SuitePreset, action_dim: int, variant: Constraints
) -> dict[str, Any]:
    """Overrides of :func:`~ampczoo.policies.constrained.make_constrained` for a magnitude
    bound on a clipping / penalty row: ``max_abs`` [normalised] with ``action_scale`` = the
    raw size of a normalised unit (so it bounds |a_raw| <= max_abs * scale per dim; the raw
    change bounds are unchanged) and, for penalty, Table XI's raw tolerance expressed in
    normalised units (divided by the largest scale: it holds in every dim). {} without one."""
    if variant.max_abs is None:
        return {}
    scale = action_half_range(base, preset, action_dim)
    out: dict[str, Any] = {"max_abs": variant.max_abs, "action_scale": scale}
    if method == "penalty":
        out["tol"] = preset.penalty_tol / float(np.max(scale))
    return out


def static_diffog_policy(
    base: Any,
    preset: SuitePreset,
    action_dim: int,
    bound_schedule: BoundSchedule | None = None,
    max_abs: float | None = None,
    alpha: float | None = None,
) -> Any:
    """``base`` through an untrained static-Q DiffOG (Q = I; the Table V ablation) over the
    base's full chunk, with the suite's bound, alpha (or ``alpha``), S and normalisation;
    optionally a bound schedule and a magnitude bound ``max_abs`` [normalised units] in the
    QP."""
    import torch

    from ampczoo.policies.diffog import DiffOG, DiffOGConfig

    c = base.config
    chunk = int(getattr(base, "chunk_len", getattr(c, "pred_horizon", 16)))
    fields = preset.refiner_fields(action_dim)
    if alpha is not None:
        fields["alpha"] = float(alpha)
    config = DiffOGConfig(
        q_mode="static",
        horizon=chunk,
        chunk_len=chunk,
        chunk_offset=int(getattr(base, "chunk_offset", 0)),
        action_dim=action_dim,
        obs_dim=int(getattr(c, "obs_dim", 1)),
        max_abs=max_abs,
        **fields,
    )
    wrapped = DiffOG.wrap(base, config, bound_schedule=bound_schedule)
    scale = action_half_range(base, preset, action_dim)
    wrapped.refiner.action_scale.copy_(torch.as_tensor(scale, dtype=torch.float32))
    return wrapped


def row_label(spec: RowSpec) -> str:
    """Table label of a row."""
    if spec.method == "diffog" and is_static(spec.refiner):
        alpha = static_alpha(spec.refiner)
        return "diffog (static Q)" if alpha is None else f"diffog (static Q, alpha {alpha:g})"
    return spec.method


def check_fit(policy: Any, env: Any, env_id: str, spec: str) -> None:
    """ValueError naming both unless ``policy`` fits ``env``: the policy's own layout check
    (Diffusion Policy: observation layout and action size), else its declared sizes."""
    what = f"{spec} does not fit {env_id}"
    check_env = getattr(policy, "check_env", None)
    if callable(check_env):
        try:
            check_env(env)
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from None
        return
    obs_dim = getattr(getattr(policy, "config", None), "obs_dim", None)
    action_dim = getattr(getattr(policy, "config", None), "action_dim", None)
    env_obs, env_act = env.observation_space.shape, env.action_space.shape
    if (obs_dim is not None and (int(obs_dim),) != tuple(env_obs or ())) or (
        action_dim is not None and (int(action_dim),) != tuple(env_act or ())
    ):
        raise ValueError(
            f"{what}: it takes obs_dim {obs_dim} / action_dim {action_dim}, the env gives "
            f"observations {env_obs} and takes actions {env_act}"
        )


def build_rows(
    cfg: ManipulationBenchConfig, task: str, env: Any
) -> tuple[list[RowSpec], list[str]]:
    """The rows of ``task`` (checked against ``env`` before any episode) and the notes on
    skipped rows."""
    from ampczoo.core.registry import load_policy

    k = checkpoints_per_run(cfg.checkpoints)
    bases = [c for s in parse_entries(cfg.base, "base")[task] for c in resolve_checkpoints(s, k)]
    refiners = parse_entries(cfg.diffog, "diffog").get(task, [])
    letos = parse_entries(cfg.leto, "leto").get(task, [])
    for spec in [*bases, *letos]:
        check_fit(load_policy(spec, device="cpu"), env, task, spec)
    if refiners and len(refiners) not in (1, len(bases)):
        raise ValueError(
            f"diffog for {task}: give one refiner or one per base checkpoint "
            f"({len(bases)}), got {len(refiners)}"
        )
    rows, notes = [], []
    variant = cfg.constraint_variant()
    for method in cfg.methods:
        if method == "leto":
            rows += [RowSpec("leto", c) for c in letos]
        elif method == "diffog":
            paired = refiners * len(bases) if len(refiners) == 1 else refiners
            rows += [RowSpec("diffog", b, r, variant) for b, r in zip(bases, paired, strict=False)]
        else:
            own = variant if method in WRAPPED_METHODS else Constraints()
            rows += [RowSpec(method, b, "", own) for b in bases]
        if method in ("leto", "diffog") and not (letos if method == "leto" else refiners):
            notes.append(f"{task}: row {method} skipped (no --{method} {task}=CHECKPOINT given)")
    if variant != Constraints():
        if "base" in cfg.methods:
            notes.append(
                f"{task}: row base unconstrained; its over-bound columns count against the "
                "same bounds as the others"
            )
        if letos and "leto" in cfg.methods:
            notes.append(
                f"{task}: row leto acts under its own trained bounds (accel_bound, vel_bound "
                "of its config): --bound-schedule / --max-abs are not applied to it (LeTO "
                "has no per-call bounds); its over-bound columns count against the same "
                "bounds as the others"
            )
    return rows, notes


# ----------------------------------------------------------------------------- episodes
def initial_states(
    env: Any, seeds: list[int], path: str = ""
) -> tuple[list[int], list[np.ndarray | None]]:
    """(seeds, sim states) of the episodes: read from ``path`` (an ``initial_states-<TASK>.npz``),
    else the state after ``env.reset(seed=s)`` for each seed (None where the env has no
    ``get_sim_state``)."""
    if path:
        data = np.load(path)
        if "seeds" not in data or "states" not in data:
            raise ValueError(f"{path}: not an initial_states.npz (needs seeds and states)")
        return [int(s) for s in data["seeds"]], list(data["states"])
    get_state = getattr(env.unwrapped, "get_sim_state", None)
    states: list[np.ndarray | None] = []
    for s in seeds:
        env.reset(seed=s)
        states.append(None if get_state is None else np.asarray(get_state(), np.float64))
    return seeds, states


def states_path(given: str, task: str) -> str:
    """The initial-states file of ``task``: ``given`` itself (a file) or its
    ``initial_states-<task>.npz`` (a run folder); "" when nothing is given. ValueError when
    it does not exist."""
    if not given:
        return ""
    path = Path(given) / f"initial_states-{task}.npz" if Path(given).is_dir() else Path(given)
    if not path.is_file():
        raise ValueError(f"no initial states file {path}")
    return str(path)


def run_rollout(env: Any, policy: Any, seed: int, state: np.ndarray | None) -> dict[str, Any]:
    """One episode from ``state`` (reset seed ``seed``; the policy reset with it): executed
    actions (T, A), success, act() times [s] and the wrapper's refine times [s]."""
    options = None if state is None else {"sim_state": np.asarray(state)}
    obs, info = env.reset(seed=seed, options=options)
    policy.reset(seed=seed)
    stats = getattr(policy, "stats", None)
    refine0 = len(stats.refine_times) if stats is not None else 0
    actions, times, success = [], [], bool(info.get("success", False))
    terminated = truncated = False
    while not (terminated or truncated or success):
        t0 = time.perf_counter()
        action = np.asarray(policy.act(obs), np.float64)
        times.append(time.perf_counter() - t0)
        obs, _, terminated, truncated, info = env.step(action)
        actions.append(action)
        success = bool(info.get("success", False))
    refine = list(stats.refine_times[refine0:]) if stats is not None else []
    return {
        "actions": np.array(actions).reshape(len(actions), -1),
        "success": success,
        "act_times": np.array(times),
        "refine_times": np.array(refine),
    }


class BenchRolloutBuilder:
    """The collection backends' builder of this benchmark (``ampczoo.data.collect``): the env
    with the run's keywords and, per row, its policy (built on first use in each worker);
    episode ``index`` = row * episodes + i runs row ``index // episodes`` from initial state
    ``i``. The job (rows, seeds, states file) travels in ``config.policy_kwargs["job"]``."""

    def build(self, config: Any) -> tuple[Any, Any]:
        import gymnasium as gym
        import torch

        import ampczoo.envs  # noqa: F401  (registers the ids)

        torch.set_num_threads(1)
        job = json.loads(str(config.policy_kwargs["job"]))
        env = gym.make(config.env, max_episode_steps=config.n_steps, **dict(config.env_kwargs))
        return env, _RowPolicies(job, config.env, int(env.action_space.shape[0]))

    def describe(self, config: Any) -> dict[str, Any]:
        return {"job": config.policy_kwargs.get("job")}

    def run_episode(self, env: Any, rows: Any, config: Any, index: int) -> Any:
        from ampczoo.data.store import Episode

        row, i = divmod(index, rows.n_states)
        seed, state = rows.seeds[i], rows.states[i]
        with single_thread():
            out = run_rollout(env, rows.policy(row), seed, state)
        ep = Episode(index, seed, len(out["actions"]))
        ep.data = {
            "actions": out["actions"],
            "success": np.array([out["success"]]),
            "act_times": out["act_times"],
            "refine_times": out["refine_times"],
        }
        return ep


BENCH_BUILDER = BenchRolloutBuilder()
BENCH_BUILDER_SPEC = "ampczoo.benchmarks.manipulation:BENCH_BUILDER"


def row_from_json(row: dict[str, Any]) -> RowSpec:
    """A :class:`RowSpec` from its ``asdict`` form after a JSON round trip."""
    c = dict(row.get("constraints") or {})
    c["bound_schedule"] = tuple(float(b) for b in c.get("bound_schedule", ()))
    return RowSpec(**{**row, "constraints": Constraints(**c)})


class _RowPolicies:
    """The rows' policies of one worker, built on first use."""

    def __init__(self, job: dict[str, Any], env_id: str, action_dim: int):
        self.specs = [row_from_json(r) for r in job["rows"]]
        self.seeds = [int(s) for s in job["seeds"]]
        self.n_states = len(self.seeds)
        states = np.load(job["states"]) if job.get("states") else None
        self.states = list(states["states"]) if states is not None else [None] * self.n_states
        self.env_id, self.action_dim = env_id, action_dim
        self.built: dict[int, Any] = {}

    def policy(self, row: int) -> Any:
        if row not in self.built:
            self.built[row] = row_policy(self.specs[row], self.env_id, self.action_dim)
        return self.built[row]


def run_task_episodes(
    cfg: ManipulationBenchConfig,
    task: str,
    rows: list[RowSpec],
    seeds: list[int],
    states_file: str,
) -> list[dict[str, Any]]:
    """Every (row, initial state) episode of ``task`` through the collection backends; the
    results in (row, state) order whatever the order they finish in."""
    from ampczoo.data.collect import CollectConfig, _make_backend

    job = {"rows": [asdict(r) for r in rows], "seeds": seeds, "states": states_file}
    config = CollectConfig(
        env=task,
        episodes=len(rows) * len(seeds),
        steps=cfg.max_steps or _horizon(task),
        out="unused",
        workers=cfg.workers,
        backend=cfg.backend,
        ray_address=cfg.ray_address,
        builder=BENCH_BUILDER_SPEC,
        policy_kwargs={"job": json.dumps(job)},
    )
    backend = _make_backend(config)
    results: dict[int, Any] = {}
    todo = list(range(config.episodes))
    try:
        while todo or len(results) < config.episodes:
            while todo and _in_flight(backend) < backend.capacity:
                backend.submit(todo.pop(0))
            index, ep = backend.next_done()
            if isinstance(ep, BaseException):
                row, i = divmod(index, len(seeds))
                raise RuntimeError(
                    f"{task} row {rows[row].method} ({rows[row].checkpoint}) seed {seeds[i]} "
                    f"failed: {ep}"
                ) from ep
            results[index] = ep
            if len(results) % max(1, len(seeds)) == 0:
                print(f"  {task}: {len(results)}/{config.episodes} episodes", flush=True)
    finally:
        backend.close()
    return [_episode_record(rows, seeds, i, results[i]) for i in range(config.episodes)]


def _in_flight(backend: Any) -> int:
    for name in ("pending", "futures", "refs"):
        if hasattr(backend, name):
            return len(getattr(backend, name))
    return 0


def _horizon(task: str) -> int:
    from ampczoo.data.collect import default_episode_steps

    return default_episode_steps(task)


def _episode_record(rows: list[RowSpec], seeds: list[int], index: int, ep: Any) -> dict[str, Any]:
    row, i = divmod(index, len(seeds))
    spec = rows[row]
    return {
        "row": row_label(spec),
        "checkpoint": spec.checkpoint,
        "refiner": spec.refiner,
        "seed": seeds[i],
        "success": bool(ep.data["success"][0]),
        "actions": ep.data["actions"],
        "act_times": ep.data["act_times"],
        "refine_times": ep.data["refine_times"],
    }


# ----------------------------------------------------------------------------- metrics
def episode_metrics(
    actions: np.ndarray,
    half_range: np.ndarray,
    preset: SuitePreset,
    dims: tuple[int, ...],
    constraints: Constraints | None = None,
) -> dict[str, float]:
    """Smoothness of one episode's executed actions (T, A): the first difference on the
    constrained dims in normalised units per step (max |.|, std, % steps over the change
    bound: the suite's, or under a bound schedule the bound of the step's phase, the change
    a_t − a_{t−1} belonging to env step t), the largest |a| on those dims [normalised] and,
    with a magnitude bound, % steps over it; under a schedule also max / std / % over per
    phase ("P1 d max", ...); robomimic also in m/s^2 and rad/s^2 (:data:`ROBOMIMIC_SCALE`,
    raw env actions)."""
    variant = constraints or Constraints()
    a = np.asarray(actions, np.float64)
    cols = list(dims)
    d_raw = np.diff(a, axis=0)
    out: dict[str, float] = {}
    if len(d_raw) == 0:
        out = {"d max": 0.0, "d std": 0.0, "over bound [%]": 0.0, "excess": 0.0, "transitions": 0}
    else:
        d = np.abs(d_raw[:, cols] / half_range[cols])
        steps = np.arange(1, len(d) + 1)
        bound = variant.change_bound(preset, steps)[:, None]
        over = d > bound + BOUND_TOL
        out = {
            "d max": float(d.max()),
            "d std": float((d_raw[:, cols] / half_range[cols]).std()),
            "over bound [%]": 100.0 * float(over.any(axis=1).mean()),
            "excess": float(max((d - bound).max(), 0.0)),
            "transitions": len(d),
        }
    schedule = variant.schedule()
    if schedule is not None:
        out.update(phase_metrics(d_raw[:, cols] / half_range[cols], schedule))
    mag = np.abs(a[:, cols] / half_range[cols]) if len(a) else np.zeros((1, len(cols)))
    out["|a| max"] = float(mag.max())
    if variant.max_abs is not None:
        out["over |a| [%]"] = 100.0 * float((mag > variant.max_abs + BOUND_TOL).any(axis=1).mean())
        out["|a| excess"] = float(max(mag.max() - variant.max_abs, 0.0))
        out["n actions"] = len(a)
    if preset.suite == "robomimic":
        for unit, (idx, scale) in ROBOMIMIC_SCALE.items():
            rc = [j for j in idx if j < a.shape[1]]
            x = scale * d_raw[:, rc] if len(d_raw) else np.zeros((1, 1))
            out[f"max [{unit}]"] = float(np.abs(x).max())
            out[f"std [{unit}]"] = float(x.std())
    return out


def phase_metrics(d: np.ndarray, schedule: BoundSchedule) -> dict[str, float]:
    """Per phase i (1-based) of ``schedule``: max |d|, std of d, % steps over the phase's
    bound and the number of transitions, of the normalised differences d (N, D_c) whose row
    n is the change at env step n + 1 (nan where the episode has none in a phase)."""
    steps = np.arange(1, len(d) + 1)
    phase = np.clip(steps // schedule.phase_steps, 0, len(schedule.bounds) - 1)
    out: dict[str, float] = {}
    for i, bound in enumerate(schedule.bounds):
        x = d[phase == i]
        p = f"P{i + 1}"
        out[f"{p} transitions"] = len(x)
        out[f"{p} d max"] = float(np.abs(x).max()) if len(x) else float("nan")
        out[f"{p} d std"] = float(x.std()) if len(x) else float("nan")
        over = (np.abs(x) > bound + BOUND_TOL).any(axis=1) if len(x) else np.zeros(0)
        out[f"{p} over [%]"] = 100.0 * float(over.mean()) if len(x) else 0.0
    return out


def _mean_where(episodes: list[dict[str, Any]], key: str) -> float:
    """Mean of ``key`` over the episodes where it is a number (not nan); nan if none."""
    vals = [e[key] for e in episodes if key in e and not np.isnan(e[key])]
    return float(np.mean(vals)) if vals else float("nan")


def _pooled(episodes: list[dict[str, Any]], key: str, count: str) -> float:
    """``key`` (a per-episode %) pooled over episodes, weighted by ``count``."""
    total = sum(e.get(count, 0) for e in episodes)
    return sum(e[key] * e.get(count, 0) for e in episodes) / max(total, 1)


def success_per_checkpoint(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Success [%] of each checkpoint (training seed / snapshot) in order of appearance, joined
    by " / ", and their standard deviation (0 for one checkpoint): the paper's spread."""
    checkpoints = list(dict.fromkeys(e["checkpoint"] for e in episodes))
    rates = [
        100.0 * float(np.mean([e["success"] for e in episodes if e["checkpoint"] == c]))
        for c in checkpoints
    ]
    return {
        "SR per checkpoint [%]": " / ".join(f"{r:.0f}" for r in rates),
        "SR std over checkpoints": float(np.std(rates)) if rates else float("nan"),
    }


def summary_row(task: str, label: str, episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The table row of one (task, method) over its episodes."""
    n = len(episodes)
    k = sum(e["success"] for e in episodes)
    lo, hi = wilson_interval(k, n)
    refine = np.concatenate([e["refine_times"] for e in episodes]) if episodes else np.zeros(0)
    act = np.concatenate([e["act_times"] for e in episodes]) if episodes else np.zeros(0)
    row: dict[str, Any] = {
        "task": task,
        "method": label,
        "checkpoints": len({e["checkpoint"] for e in episodes}),
        "episodes": n,
        "SR [%]": 100.0 * k / max(n, 1),
        "SR 95% CI": f"[{100 * lo:.1f}, {100 * hi:.1f}]",
        **success_per_checkpoint(episodes),
        "steps mean": float(np.mean([e["length"] for e in episodes])),
        "d max": float(np.mean([e["d max"] for e in episodes])),
        "d std": float(np.mean([e["d std"] for e in episodes])),
        "over bound [% steps]": _pooled(episodes, "over bound [%]", "transitions"),
        "max excess": max(e["excess"] for e in episodes),
    }
    phases = sorted({key.split()[0] for key in episodes[0] if key.endswith(" d max")})
    for p in phases:
        row[f"{p} d max"] = _mean_where(episodes, f"{p} d max")
        row[f"{p} d std"] = _mean_where(episodes, f"{p} d std")
        row[f"{p} over [% steps]"] = _pooled(episodes, f"{p} over [%]", f"{p} transitions")
    row["|a| max"] = float(np.mean([e["|a| max"] for e in episodes]))
    if "over |a| [%]" in episodes[0]:
        row["over |a| bound [% steps]"] = _pooled(episodes, "over |a| [%]", "n actions")
        row["max |a| excess"] = max(e["|a| excess"] for e in episodes)
    for unit in ROBOMIMIC_SCALE:
        if f"max [{unit}]" in episodes[0]:
            row[f"max [{unit}]"] = float(np.mean([e[f"max [{unit}]"] for e in episodes]))
            row[f"std [{unit}]"] = float(np.mean([e[f"std [{unit}]"] for e in episodes]))
    row["refine [ms/call]"] = 1000.0 * float(refine.mean()) if refine.size else float("nan")
    row["act [ms/step]"] = 1000.0 * float(act.mean()) if act.size else float("nan")
    return row


def plot_fig8(rows: list[dict[str, Any]], path: Path) -> None:
    """Fig. 8-style bars per task and method: success with its 95 % CI, and the max and std of
    the action's first difference (normalised units per step)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    width = 0.8 / max(len(methods), 1)
    fig, axes = plt.subplots(1, 3, figsize=(4 + 2.2 * len(tasks) * 1.5, 3.8), squeeze=False)
    panels = (("SR [%]", "success [%]"), ("d max", "max |Δa| [norm/step]"), ("d std", "std Δa"))
    for ax, (key, label) in zip(axes[0], panels, strict=True):
        for j, method in enumerate(methods):
            xs, ys, err = [], [], []
            for t, task in enumerate(tasks):
                row = next((r for r in rows if r["task"] == task and r["method"] == method), None)
                if row is None:
                    continue
                xs.append(t + (j - (len(methods) - 1) / 2) * width)
                ys.append(row[key])
                if key == "SR [%]":
                    lo, hi = (float(v) for v in row["SR 95% CI"].strip("[]").split(","))
                    err.append((row[key] - lo, hi - row[key]))
            # asymmetric error bars as two lists (a 2-D array trips a numpy deprecation
            # inside matplotlib's errorbar)
            yerr = [[e[0] for e in err], [e[1] for e in err]] if err else None
            ax.bar(xs, ys, width, yerr=yerr, capsize=2, label=method)
        ax.set_xticks(range(len(tasks)), [t.replace("-v0", "") for t in tasks], fontsize=7)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncols=min(len(methods), 5), fontsize=7)
    fig.suptitle("manipulation: base vs constraint layer (same initial states)")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------- the run
def run_manipulation_bench(cfg: ManipulationBenchConfig) -> Path:
    """Run the benchmark of ``cfg``; returns the run folder. Every task's rows are checked
    against its env (ValueError) before the run folder is made or any episode runs."""
    plans = [plan_task(cfg, task) for task in cfg.tasks]
    out = make_run_dir("bench-manipulation", cfg.out)
    rows_out, episodes_out, notes, all_states = [], [], [], {}
    variant = cfg.constraint_variant()
    for plan in plans:
        notes += plan.notes
        if not plan.rows:
            notes.append(f"{plan.task}: no rows to run")
            continue
        states_file = ""
        if all(s is not None for s in plan.states):
            states_file = str(out / f"initial_states-{plan.task}.npz")
            np.savez(states_file, seeds=np.array(plan.seeds), states=np.stack(plan.states))
            all_states[plan.task] = Path(states_file).name
        t0 = time.perf_counter()
        records = run_task_episodes(cfg, plan.task, plan.rows, plan.seeds, states_file)
        wall = time.perf_counter() - t0
        for rec in records:
            rec.update(episode_metrics(rec["actions"], plan.scale, plan.preset, plan.dims, variant))
            rec["length"] = len(rec["actions"])
        for label in dict.fromkeys(r["row"] for r in records):
            eps = [r for r in records if r["row"] == label]
            rows_out.append(summary_row(plan.task, label, eps))
        episodes_out += [
            {"task": plan.task, **{k: v for k, v in r.items() if not isinstance(v, np.ndarray)}}
            for r in records
        ]
        print(f"  {plan.task}: {len(plan.rows)} rows x {len(plan.seeds)} states in {wall:.0f} s")
    title = f"manipulation (initial states of seeds {cfg.seed}..)"
    if variant != Constraints():
        title += ", constraint variant: see below"
        notes = [
            f"{p.task}, clipping / penalty / DiffOG rows: "
            f"{variant.describe(p.preset, p.scale[list(p.dims)])}"
            for p in plans
        ] + notes
    notes.append(f"command: `{command_line()}`")
    text = write_table(rows_out, out, "table", title) if rows_out else ""
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
        (out / "table.md").write_text(text)
    if rows_out:
        plot_fig8(rows_out, out / "fig8.png")
    payload = {
        "config": asdict(cfg),
        "command": command_line(),
        "presets": {t: asdict(task_preset(t)) for t in cfg.tasks},
        "constraints": asdict(variant),
        "initial_states": all_states,
        "notes": notes,
        "episodes": episodes_out,
    }
    (out / "episodes.json").write_text(json.dumps(payload, indent=1, default=float))
    print(text)
    print(f"wrote {out}\ncommand: {command_line()}")
    return out


@dataclass
class TaskPlan:
    """What runs on one task: rows, initial states and the metric's normalisation."""

    task: str
    rows: list[RowSpec]
    notes: list[str]
    seeds: list[int]
    states: list[np.ndarray | None]
    preset: SuitePreset
    dims: tuple[int, ...]
    scale: np.ndarray  # (A,) the base's action half range


def plan_task(cfg: ManipulationBenchConfig, task: str) -> TaskPlan:
    """Rows of ``task`` checked against its env, its initial states, the base's scale."""
    import gymnasium as gym

    import ampczoo.envs  # noqa: F401  (registers the ids)
    from ampczoo.core.registry import load_policy

    env = gym.make(task)
    try:
        rows, notes = build_rows(cfg, task, env)
        seeds = list(range(cfg.seed, cfg.seed + cfg.episodes))
        seeds, states = initial_states(env, seeds, states_path(cfg.initial_states, task))
        action_dim = int(env.action_space.shape[0])
    finally:
        env.close()
    preset = task_preset(task)
    base = next((r for r in rows if r.method != "leto"), rows[0]).checkpoint if rows else ""
    scale = (
        action_half_range(load_policy(base, device="cpu"), preset, action_dim)
        if base
        else np.ones(action_dim)
    )
    return TaskPlan(
        task, rows, notes, seeds, states, preset, constrained_dims(preset, action_dim), scale
    )


__all__ = [
    "ManipulationBenchConfig",
    "RowSpec",
    "episode_metrics",
    "run_manipulation_bench",
    "task_preset",
]
