"""Collect MPC demonstrations into an :class:`~ampczoo.data.store.EpisodeStore` (paper IV-A).

Each of the N_e episodes runs N_d steps of the noisy expert (paper Eq. 5)::

    a_t = clip(u*_0 + sigma * eps, -2.3, 2.3),   eps ~ N(0, I),
    sigma = max(|u*_0| / SNR_d, sigma_min)        (elementwise)

and stores, per kept solve, the noise-free optimal sequence u*_{.|t} and the solver data.
Solves that fail (or return non-finite values) and solves with output error d_y above
``max_output_error`` are counted but not stored.

Episode ``i`` is reproducible on its own: its reset seed and noise stream derive from
``(seed, i)`` only, so the data do not depend on the number of workers, the backend or the
completion order, and a resumed run yields exactly the episodes of an uninterrupted one.
Workers (processes or Ray actors) build their env and expert once and return episodes; only
the parent writes the store.

The env id picks the builder (env + expert) and the defaults of ``steps``, ``control_dt``,
``snr``, ``sigma_min`` and ``solver`` (:data:`ENV_DEFAULTS`): the KUKA envs run the
:class:`~ampczoo.experts.MPCExpert` (velocity commands, stored u* (N, 7)); ``ThreeDOF-Reach-v0``
runs the :class:`~ampczoo.experts.ikmpc.IKMPCExpert` (corrective torques, stored τ* (N, 3)),
episodes ending at success (``terminate_on_success``) or after ``steps``. Any other
registered env whose policy is an ``act(obs)`` policy -- the env's scripted expert
(``make_policy("scripted", env_id=...)``, the manipulation suites) or ``--policy`` (a
registered type, a checkpoint folder or a zoo name) -- runs through the :class:`PolicyBuilder`:
it stores per step the observation, action, reward, done, success and the sim state, and keeps
only the episodes that end in success unless ``keep_failed``.

Run as ``ampczoo collect --episodes 10 --out data/kuka.zarr`` (flags: ``ampczoo collect
--help``).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import datetime
import importlib
import multiprocessing as mp
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from ampczoo.data.store import CHUNK_LEN, Episode, EpisodeStore, is_episode_store, jsonable
from ampczoo.robots import kuka, threedof
from ampczoo.robots.kuka import VELOCITY_LIMIT

#: Metadata that must match for ``--resume`` (these determine the data).
FINGERPRINT_KEYS = (
    "env",
    "env_kwargs",
    "expert_config",
    "seed",
    "steps",
    "snr",
    "sigma_min",
    "max_output_error",
    "builder",
)
DEFAULT_BUILDER = "ampczoo.data.collect:MPC_BUILDER"
IKMPC_BUILDER_SPEC = "ampczoo.data.collect:IKMPC_BUILDER"
POLICY_BUILDER_SPEC = "ampczoo.data.collect:POLICY_BUILDER"
#: Policy of the :class:`PolicyBuilder` when ``--policy`` is not given.
DEFAULT_POLICY = "scripted"
#: Defaults of envs collected with an ``act(obs)`` policy (an env with a scripted expert, or
#: ``--policy`` given); ``steps`` then defaults to the env's ``max_episode_steps``.
POLICY_DEFAULTS: dict[str, Any] = {"builder": POLICY_BUILDER_SPEC}
#: Fields that only the MPC builders use (left None for the policy builder).
MPC_ONLY_FIELDS = ("snr", "sigma_min", "solver", "control_dt")
#: Per-env defaults of the fields left at None (envs not listed get the KUKA ones).
KUKA_DEFAULTS = {
    "builder": DEFAULT_BUILDER,
    "steps": 80,
    "control_dt": 0.1,
    "snr": 0.8,
    "sigma_min": 0.35,
    "solver": "ipopt",
}
ENV_DEFAULTS: dict[str, dict[str, Any]] = {
    "ThreeDOF-Reach-v0": {
        "builder": IKMPC_BUILDER_SPEC,
        "steps": 200,
        "control_dt": 0.02,
        "snr": 4.0,
        "sigma_min": 0.3,
        "solver": "osqp",
    },
}


Solver = Literal["ipopt", "fatrop", "osqp", "proxqp", "qpoases", "hpipm", "qrqp"]


@dataclass(frozen=True)
class CollectConfig:
    """``ampczoo collect``: expert demonstrations into a Zarr episode store.

    Fields left at None take the env's default (``ENV_DEFAULTS``: KUKA envs or
    ThreeDOF-Reach-v0), filled in by ``__post_init__``."""

    env: str = "DAMPC-KukaTrack-v0"
    """gymnasium env id"""
    episodes: int = 10
    """N_e episodes (episode ids 0 .. N_e-1)"""
    steps: int | None = None
    """N_d expert steps per episode (None = 80 KUKA, 200 ThreeDOF-Reach-v0)"""
    out: str | None = None
    """path of the Zarr store (None = data/kuka_track.zarr for the MPC builders, else
    data/<env id, lower case>.zarr, e.g. data/robomimic_can.zarr)"""
    workers: int = 1
    """parallel workers (1 = in this process)"""
    seed: int = 0
    """run seed; episode i's reset seed and noise stream derive from (seed, i) only"""
    resume: bool = False
    """continue an existing store (its metadata must match; finished episodes are kept)"""
    backend: Literal["process", "ray"] = "process"
    """workers as local processes or as Ray actors"""
    ray_address: str | None = None
    """Ray cluster address (None = start a local instance)"""
    snr: float | None = None
    """SNR_d of the exploration noise (None = 0.8 KUKA, 4 ThreeDOF-Reach-v0)"""
    sigma_min: float | None = None
    """minimum noise std [rad/s, or N m for torque-controlled envs] (None = 0.35 KUKA, 0.3
    ThreeDOF-Reach-v0)"""
    max_output_error: float = 0.01
    """drop samples whose output error at the artificial reference, the paper's weighted
    average d_y / (w_pos + w_rot), exceeds this (paper: 0.01)"""
    solver: Solver | None = None
    """expert solver: ipopt | fatrop (KUKA MPC), osqp | proxqp | qpoases | hpipm | qrqp |
    ipopt (3-DOF IK-MPC) (None = ipopt KUKA, osqp ThreeDOF-Reach-v0)"""
    cold_start: Literal["random", "state", "branches"] = "random"
    """the expert's initial guess without warm start: random (paper), the current state, or
    one of ``reference_branches`` distinct IK branches of the target drawn per episode (stored
    per sample as ``branch``; see :class:`~ampczoo.experts.MPCConfig`)"""
    reference_branches: int = 3
    """K distinct IK branches of ``cold_start branches`` (>= 1)"""
    control_dt: float | None = None
    """env step [s] (= MPC dt: one sample per expert step; None = 0.1 KUKA, 0.02
    ThreeDOF-Reach-v0)"""
    compile: bool = True
    """compile the expert's NLP to C"""
    simulation: Literal["kinematic", "physics"] = "kinematic"
    """env simulation"""
    chunk_len: int = CHUNK_LEN
    """chunk length along time of the store's data arrays"""
    flush_interval_s: float = 1.0
    """completed episodes are buffered at most this long [s] before being written"""
    max_retries: int = 1
    """re-runs of an episode whose worker raised"""
    builder: str | None = None
    """"module:attribute" naming the :class:`Builder` that makes env + expert (None = the
    env's default)"""
    policy: str | None = None
    """the acting policy of envs without an MPC expert: a registered policy type
    (``scripted``, ...), a checkpoint folder or a zoo name (None = the env's scripted expert)"""
    policy_kwargs: dict[str, bool | int | float | str] = field(default_factory=dict, hash=False)
    """config fields of a registered policy type, e.g. ``diversity 0.5`` (``env_id`` is
    filled in for types that have it)"""
    env_kwargs: dict[str, bool | int | float | str] = field(default_factory=dict, hash=False)
    """extra ``gym.make`` keywords, e.g. ``obs_mode image`` or ``terminate_on_success False``"""
    keep_failed: bool = False
    """policy builder: also store the episodes that do not end in success (they are always
    counted: ``n_failed`` = 1 per failed episode)"""

    def __post_init__(self) -> None:
        defaults = env_defaults(self.env, self.policy, self.builder)
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.steps is None and self.builder_spec == POLICY_BUILDER_SPEC:
            object.__setattr__(self, "steps", default_episode_steps(self.env))
        if self.out is None:
            object.__setattr__(self, "out", default_out(self.env, self.builder_spec))
        for name in ("episodes", "steps", "workers", "chunk_len"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("snr", "control_dt", "max_output_error"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.sigma_min is not None and not self.sigma_min >= 0:
            raise ValueError(f"sigma_min must be >= 0, got {self.sigma_min}")
        for name in ("policy_kwargs", "env_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be a dict, got {getattr(self, name)!r}")
        if self.backend not in ("process", "ray"):
            raise ValueError(f"backend must be 'process' or 'ray', got {self.backend!r}")
        rb = self.reference_branches
        if isinstance(rb, bool) or int(rb) != rb or rb < 1:
            raise ValueError(f"reference_branches must be an integer >= 1, got {rb}")
        if self.max_retries < 0 or self.flush_interval_s < 0:
            raise ValueError("max_retries and flush_interval_s must be >= 0")
        if ":" not in self.builder_spec:
            raise ValueError(f"builder must be 'module:attribute', got {self.builder!r}")

    # The fields left at None are filled by __post_init__; these read them with their types.
    @property
    def n_steps(self) -> int:
        """``steps`` after the env default is applied."""
        return int(_filled(self.steps, "steps"))

    @property
    def dt(self) -> float:
        """``control_dt`` [s] after the env default is applied."""
        return float(_filled(self.control_dt, "control_dt"))

    @property
    def noise_snr(self) -> float:
        """``snr`` after the env default is applied."""
        return float(_filled(self.snr, "snr"))

    @property
    def noise_sigma_min(self) -> float:
        """``sigma_min`` after the env default is applied."""
        return float(_filled(self.sigma_min, "sigma_min"))

    @property
    def expert_solver(self) -> str:
        """``solver`` after the env default is applied."""
        return str(_filled(self.solver, "solver"))

    @property
    def builder_spec(self) -> str:
        """``builder`` after the env default is applied."""
        return str(_filled(self.builder, "builder"))


def has_scripted_expert(env_id: str) -> bool:
    """Whether ``env_id`` (optionally "module:id") has a scripted expert
    (:data:`ampczoo.experts.scripted.SCRIPTED_CONTROLLERS`)."""
    from ampczoo.experts.scripted import SCRIPTED_CONTROLLERS

    return registered_id(env_id) in SCRIPTED_CONTROLLERS


def registered_id(env_id: str) -> str:
    """The Gymnasium id of ``env_id`` given as "module:id" (gym.make's form) or "id"."""
    return env_id.split(":")[-1]


def env_defaults(env_id: str, policy: str | None, builder: str | None) -> dict[str, Any]:
    """Defaults of the fields left None: :data:`ENV_DEFAULTS` for the 3-DOF arm,
    :data:`POLICY_DEFAULTS` for an env with a scripted expert or a ``policy`` (unless another
    builder is given), else the KUKA ones (also for unknown ids with a custom builder)."""
    if env_id in ENV_DEFAULTS:
        return ENV_DEFAULTS[env_id]
    if builder in (None, POLICY_BUILDER_SPEC) and (
        policy is not None or builder == POLICY_BUILDER_SPEC or has_scripted_expert(env_id)
    ):
        return POLICY_DEFAULTS
    if builder is None and is_package_env(env_id) and not is_kuka_env(env_id):
        raise ValueError(
            f"env {env_id!r} has no scripted expert to collect with: pass --policy "
            "(a policy type, checkpoint folder or zoo name)"
        )
    return KUKA_DEFAULTS


def is_kuka_env(env_id: str) -> bool:
    """Whether ``env_id`` is one of the KUKA tracking envs (collected with the MPC builders)."""
    return registered_id(env_id).startswith("DAMPC-KukaTrack")


def is_package_env(env_id: str) -> bool:
    """Whether ``env_id`` is registered by ampczoo (not a user's "module:id" env)."""
    from ampczoo.envs import ENVS

    return registered_id(env_id) in ENVS


def default_out(env_id: str, builder: str) -> str:
    """Default store path: data/kuka_track.zarr (MPC builders, as before), else
    data/<id, lower case>.zarr ("MetaWorld-ShelfPlace-v0" -> data/metaworld_shelfplace.zarr)."""
    if builder != POLICY_BUILDER_SPEC:
        return "data/kuka_track.zarr"
    name = re.sub(r"-v\d+$", "", registered_id(env_id)).replace("-", "_")
    return f"data/{name.lower()}.zarr"


def default_episode_steps(env_id: str) -> int:
    """The registered ``max_episode_steps`` of ``env_id`` (ValueError when it has none)."""
    spec = env_spec(env_id)
    if not spec.max_episode_steps:
        raise ValueError(f"env {env_id!r} has no max_episode_steps: pass --steps")
    return int(spec.max_episode_steps)


def env_spec(env_id: str) -> Any:
    """Gymnasium's spec of ``env_id`` ("module:id" imports the module first, as gym.make);
    ValueError when it is not registered."""
    import gymnasium as gym

    import ampczoo.envs  # noqa: F401  (registers the env ids)

    module, _, name = env_id.rpartition(":")
    if module:
        importlib.import_module(module)
    if name not in gym.registry:
        raise ValueError(f"env {env_id!r} is not registered (ampczoo ids: ampczoo.envs.env_ids())")
    return gym.spec(name)


def _filled(value: Any, name: str) -> Any:
    """``value`` of a CollectConfig field that ``__post_init__`` fills; ValueError if unset."""
    if value is None:
        raise ValueError(f"CollectConfig.{name} has no value and the env has no default")
    return value


@dataclass(frozen=True)
class CollectReport:
    """Outcome of :func:`collect`. Counts cover the episodes run by this call;
    ``store_counts`` the whole store. errors: one message per episode that raised."""

    path: str
    episodes: int
    episodes_skipped: int
    samples_kept: int
    n_dropped_output_error: int
    n_failed: int
    n_solves: int
    wall_time_s: float
    solves_per_s: float
    store_counts: dict[str, int]
    errors: tuple[str, ...] = ()
    episodes_failed: int | None = None
    """policy builder: episodes of this call that did not end in success (None: MPC
    builders, where ``n_failed`` counts failed solves)"""
    failed_kept: bool = False
    """policy builder: whether those episodes were stored (``keep_failed``)"""

    def __str__(self) -> str:
        lines = [
            f"collected {self.episodes} episodes into {self.path} "
            f"({self.episodes_skipped} already stored) in {self.wall_time_s:.1f} s",
        ]
        if self.episodes_failed is None:
            lines.append(
                f"  solves {self.n_solves} ({self.solves_per_s:.1f}/s), kept "
                f"{self.samples_kept}, dropped (output error) {self.n_dropped_output_error}, "
                f"failed {self.n_failed}"
            )
        else:
            stored = "stored (keep_failed)" if self.failed_kept else "not stored"
            lines.append(
                f"  successful {self.episodes - self.episodes_failed}, failed "
                f"{self.episodes_failed} ({stored}); steps {self.n_solves} "
                f"({self.solves_per_s:.1f}/s), samples kept {self.samples_kept}"
            )
        lines.append(f"  store: {self.store_counts}")
        lines += [f"  ERROR {e}" for e in self.errors]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- env + expert
class Builder(Protocol):
    """Makes the env and expert of a run (in each worker) and describes them (parent)."""

    def build(self, config: CollectConfig) -> tuple[Any, Any]:
        """(env, expert): a gymnasium env and an object with ``solve(obs)`` / ``reset(seed)``."""

    def describe(self, config: CollectConfig) -> dict[str, Any]:
        """JSON-able {"env_kwargs": ..., "expert_config": ...} recorded in the store."""


class MPCBuilder:
    """The KUKA tracking env (``gym.make``) and the :class:`~ampczoo.experts.MPCExpert`."""

    @staticmethod
    def env_kwargs(config: CollectConfig) -> dict[str, Any]:
        """Keyword arguments of ``gym.make`` (besides ``max_episode_steps``): ``env_kwargs``
        (e.g. ``obstacle_placement between``) and the run's control_dt, simulation and
        episode length."""
        return {
            **config.env_kwargs,
            "control_dt": config.control_dt,
            "simulation": config.simulation,
            "episode_seconds": config.n_steps * config.dt,
        }

    @staticmethod
    def expert_config(config: CollectConfig) -> Any:
        """The :class:`~ampczoo.experts.MPCConfig` of the run (obstacle from the env id)."""
        from ampczoo.experts import MPCConfig

        return MPCConfig(
            solver=config.expert_solver,
            compile=config.compile,
            obstacle="Obstacle" in config.env,
            seed=config.seed,
            cold_start=config.cold_start,
            reference_branches=config.reference_branches,
        )

    def build(self, config: CollectConfig) -> tuple[Any, Any]:
        import gymnasium as gym

        import ampczoo.envs  # noqa: F401  (registers the env ids)
        from ampczoo.experts import MPCExpert

        env = gym.make(config.env, max_episode_steps=config.steps, **self.env_kwargs(config))
        return env, MPCExpert(self.expert_config(config))

    def describe(self, config: CollectConfig) -> dict[str, Any]:
        return {
            "env_kwargs": self.env_kwargs(config),
            "expert_config": dataclasses.asdict(self.expert_config(config)),
        }

    # -- per-sample hooks of :func:`run_episode`
    action_limit = VELOCITY_LIMIT

    @staticmethod
    def first_input(sol: Any) -> np.ndarray:
        """u*_0 (7,) [rad/s] of a solution."""
        return np.asarray(sol.u[0], float)

    @staticmethod
    def solution_ok(sol: Any) -> bool:
        """Solver success and every stored value finite."""
        values = (sol.u, sol.x_ref, sol.cost, sol.output_error, sol.output_error_avg)
        return bool(sol.success) and all(np.all(np.isfinite(v)) for v in values)

    @staticmethod
    def keep(sol: Any, config: CollectConfig) -> bool:
        """Output error d_y / (w_pos + w_rot) at the artificial reference small enough."""
        return bool(sol.output_error_avg <= config.max_output_error)

    @staticmethod
    def sample(obs: np.ndarray, sol: Any, action: np.ndarray) -> dict[str, Any]:
        """One stored row: obs (D,), u_seq (N,7) [rad/s], x (7,) [rad], target (9,) = pos
        [m] + rot 6D, x_ref (7,) [rad], output_error, cost, iterations, solve_time [s],
        status, action (7,) the applied noisy command [rad/s]; with ``cold_start branches``
        also branch (the episode's IK branch index)."""
        row = {
            "obs": obs.copy(),
            "u_seq": np.asarray(sol.u, float),
            "x": obs[kuka.OBS_Q].copy(),
            "target": obs[kuka.OBS_TARGET].copy(),
            "x_ref": np.asarray(sol.x_ref, float),
            "output_error": float(sol.output_error),
            "output_error_avg": float(sol.output_error_avg),
            "cost": float(sol.cost),
            "iterations": int(sol.iterations),
            "solve_time": float(sol.solve_time),
            "status": str(sol.status),
            "action": action,
        }
        if getattr(sol, "branch", -1) >= 0:
            row["branch"] = int(sol.branch)
        return row


MPC_BUILDER = MPCBuilder()


#: Success region δ that ends a 3-DOF collection episode: 5 mm and 0.05 rad/s (tighter than
#: the env's 2 cm / 0.1 rad/s, so the demonstrations include the final approach).
COLLECT_SUCCESS_POS, COLLECT_SUCCESS_VEL = 0.005, 0.05


class IKMPCBuilder:
    """``ThreeDOF-Reach-v0`` (terminating at success, δ = 5 mm and 0.05 rad/s) and the
    :class:`~ampczoo.experts.ikmpc.IKMPCExpert`. Rows store the observation [q, q̇, p_des]
    (9,), the noise-free optimal corrective torques ``u_seq`` τ* (N, 3) [N m] (gravity
    compensation excluded, as the paper), the IK reference and solver data; a sample whose
    IK did not converge is counted in ``n_dropped_output_error`` and not stored."""

    action_limit = np.array([6.0, 10.0, 4.0])  # robots.threedof.TORQUE_LIMIT

    @staticmethod
    def env_kwargs(config: CollectConfig) -> dict[str, Any]:
        """Keyword arguments of ``gym.make`` (besides ``max_episode_steps``)."""
        return {
            "control_dt": config.control_dt,
            "terminate_on_success": True,
            "success_pos": COLLECT_SUCCESS_POS,
            "success_vel": COLLECT_SUCCESS_VEL,
            "episode_seconds": config.n_steps * config.dt,
        }

    @staticmethod
    def expert_config(config: CollectConfig) -> Any:
        """The :class:`~ampczoo.experts.ikmpc.IKMPCConfig` of the run (dt = control_dt)."""
        from ampczoo.experts.ikmpc import IKMPCConfig

        return IKMPCConfig(solver=config.expert_solver, dt=config.dt)

    def build(self, config: CollectConfig) -> tuple[Any, Any]:
        import gymnasium as gym

        import ampczoo.envs  # noqa: F401  (registers the env ids)
        from ampczoo.experts.ikmpc import IKMPCExpert

        env = gym.make(config.env, max_episode_steps=config.steps, **self.env_kwargs(config))
        return env, IKMPCExpert(self.expert_config(config))

    def describe(self, config: CollectConfig) -> dict[str, Any]:
        return {
            "env_kwargs": self.env_kwargs(config),
            "expert_config": dataclasses.asdict(self.expert_config(config)),
        }

    @staticmethod
    def first_input(sol: Any) -> np.ndarray:
        """τ*_0 (3,) [N m]."""
        return np.asarray(sol.tau[0], float)

    @staticmethod
    def solution_ok(sol: Any) -> bool:
        return bool(sol.success) and bool(np.all(np.isfinite(sol.tau)))

    @staticmethod
    def keep(sol: Any, config: CollectConfig) -> bool:
        """IK converged (the reference is the target's)."""
        return bool(sol.ik_converged)

    @staticmethod
    def sample(obs: np.ndarray, sol: Any, action: np.ndarray) -> dict[str, Any]:
        """One stored row: obs (9,), u_seq τ* (N, 3) [N m], x (6,) = [q, q̇], target (3,)
        [m], q_ref (3,) [rad], ik_error [m], cost, iterations, solve_time / ik_time [s],
        status, action (3,) the applied noisy torque [N m]."""
        return {
            "obs": obs.copy(),
            "u_seq": np.asarray(sol.tau, float),
            "x": obs[threedof.OBS_STATE].copy(),
            "target": obs[threedof.OBS_TARGET].copy(),
            "q_ref": np.asarray(sol.q_ref, float),
            "ik_error": float(sol.ik_error),
            "cost": float(sol.cost),
            "iterations": int(sol.iterations),
            "solve_time": float(sol.solve_time),
            "ik_time": float(sol.ik_time),
            "status": str(sol.status),
            "action": action,
        }


IKMPC_BUILDER = IKMPCBuilder()


class PolicyBuilder:
    """Any registered env (``gym.make(env, max_episode_steps=steps, **env_kwargs)``) and a
    policy with ``act(obs)`` / ``reset(seed)``: the env's scripted expert by default, else
    ``config.policy`` (registered type, checkpoint folder or zoo name).

    Rows (one per env step, T = steps of the episode)::

        obs (D,)          flat observation (dict observations: the ``obs_layout`` keys
                          concatenated; the other keys, e.g. camera images, as obs.<key>)
        next_obs (D,)     the observation after the step (next_obs.<key> likewise)
        action (A,)       the action applied
        reward ()         float64
        done ()           int64, 1 when the episode ends here or succeeds (robomimic's
                          done_mode 2)
        success ()        bool, ``info["success"]`` after the step
        sim_state (S,)    ``env.unwrapped.get_sim_state()`` before the step (envs that have it)

    An episode succeeds when ``info["success"]`` holds after its last step; one that does not
    gets ``n_failed = 1`` and is stored only with ``keep_failed`` (its meta row always is, so
    a resumed run does not repeat it). Reset seeds are 31-bit (any env's seeding takes them)."""

    @staticmethod
    def env_kwargs(config: CollectConfig) -> dict[str, Any]:
        """Keyword arguments of ``gym.make`` (besides ``max_episode_steps``)."""
        return dict(config.env_kwargs)

    @staticmethod
    def policy_name(config: CollectConfig) -> str:
        return config.policy or DEFAULT_POLICY

    def build(self, config: CollectConfig) -> tuple[Any, Any]:
        return self.make_env(config), make_act_policy(
            self.policy_name(config), config.env, dict(config.policy_kwargs)
        )

    def make_env(self, config: CollectConfig) -> Any:
        import gymnasium as gym

        import ampczoo.envs  # noqa: F401  (registers the env ids)

        return gym.make(config.env, max_episode_steps=config.n_steps, **self.env_kwargs(config))

    def describe(self, config: CollectConfig) -> dict[str, Any]:
        """env_kwargs, expert_config ({"policy", "config"}), keep_failed and, where the env has
        them, its ``obs_layout`` and robomimic ``env_args`` (the env is made once)."""
        env = self.make_env(config)
        try:
            extra = env_description(env)
        finally:
            env.close()
        return {
            "env_kwargs": self.env_kwargs(config),
            "expert_config": policy_description(
                self.policy_name(config), config.env, dict(config.policy_kwargs)
            ),
            "keep_failed": config.keep_failed,
            **extra,
        }

    def run_episode(self, env: Any, policy: Any, config: CollectConfig, index: int) -> Episode:
        """Episode ``index``: reset both with its seed, act until ``steps`` or the env ends."""
        seed = episode_seed(config.seed, index) & 0x7FFFFFFF
        obs, _ = env.reset(seed=seed)
        policy.reset(seed=seed)
        base = env.unwrapped
        layout = getattr(base, "obs_layout", None)
        get_state = getattr(base, "get_sim_state", None)
        ep, rows = Episode(index, seed, 0), list[dict[str, Any]]()
        for _ in range(config.n_steps):
            state = None if get_state is None else np.asarray(get_state(), np.float64)
            flat, extras = split_observation(obs, layout)
            action = np.asarray(policy.act(flat if flat is not None else obs), np.float64)
            next_obs, reward, terminated, truncated, info = env.step(action)
            success = bool(info.get("success", False))
            row: dict[str, Any] = observation_row("obs", flat, extras)
            row.update(observation_row("next_obs", *split_observation(next_obs, layout)))
            row.update(
                action=action,
                reward=np.float64(reward),
                done=np.int64(terminated or truncated or success),
                success=np.bool_(success),
            )
            if state is not None:
                row["sim_state"] = state
            rows.append(row)
            ep.n_steps += 1
            obs = next_obs
            if terminated or truncated:
                break
        ep.n_failed = int(not (rows and bool(rows[-1]["success"])))
        keep = rows and (config.keep_failed or not ep.n_failed)
        ep.data = {k: np.stack([r[k] for r in rows]) for k in rows[0]} if keep else {}
        return ep


POLICY_BUILDER = PolicyBuilder()


def split_observation(obs: Any, layout: Any) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """(flat, extras) of an observation: an array is the flat vector itself; a dict gives
    the ``layout`` keys concatenated in layout order (None without a layout) and every other
    key as an extra."""
    if not isinstance(obs, dict):
        return np.asarray(obs), {}
    keys = list(layout or ())
    flat = None
    if keys and all(k in obs for k in keys):
        flat = np.concatenate([np.ravel(np.asarray(obs[k], np.float64)) for k in keys])
    extras = {k: np.asarray(v) for k, v in obs.items() if flat is None or k not in keys}
    return flat, extras


def observation_row(
    prefix: str, flat: np.ndarray | None, extras: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """{prefix: flat, prefix.<key>: extra} (copies)."""
    row = {f"{prefix}.{k}": v.copy() for k, v in extras.items()}
    if flat is not None:
        row[prefix] = flat.copy()
    return row


def env_description(env: Any) -> dict[str, Any]:
    """{"obs_layout": {key: [start, stop]}, "env_args": {...}} of an env, where it has them."""
    base = env.unwrapped
    out: dict[str, Any] = {}
    if getattr(base, "obs_layout", None) is not None:
        out["obs_layout"] = {k: [int(a), int(b)] for k, (a, b) in base.obs_layout.items()}
    if callable(getattr(base, "env_args", None)):
        out["env_args"] = jsonable(base.env_args())
    return out


def _policy_source(name: str) -> str:
    """ "type" (registered policy type or ``scripted``) or "checkpoint" (folder / zoo name)."""
    from ampczoo.core.registry import policy_types

    return "type" if name == DEFAULT_POLICY or name in policy_types() else "checkpoint"


def _type_kwargs(name: str, env_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` plus ``env_id`` for types whose config has that field."""
    from ampczoo.core.registry import config_class

    cls = _scripted_config() if name == DEFAULT_POLICY else config_class(name)
    if "env_id" in {f.name for f in dataclasses.fields(cls)}:
        kwargs = {"env_id": registered_id(env_id), **kwargs}
    return kwargs


def _scripted_config() -> Any:
    from ampczoo.experts.scripted import ScriptedConfig

    return ScriptedConfig


def make_act_policy(name: str, env_id: str, kwargs: dict[str, Any]) -> Any:
    """The acting policy: ``scripted`` (the manipulation suites' scripted experts), another
    registered type built from ``kwargs`` (+ ``env_id`` where its config has it), or a
    checkpoint folder / zoo name loaded with :func:`ampczoo.load_policy`."""
    from ampczoo.core.registry import load_policy, make_policy

    if _policy_source(name) == "checkpoint":
        if kwargs:
            raise ValueError(f"policy_kwargs apply to registered types, not to {name!r}")
        return load_policy(name, device="cpu")
    kwargs = _type_kwargs(name, env_id, kwargs)
    if name == DEFAULT_POLICY:  # built directly: the experts layer's ``scripted`` type
        from ampczoo.experts.scripted import ScriptedExpert

        return ScriptedExpert(_scripted_config()(**kwargs))
    return make_policy(name, **kwargs)


def policy_description(name: str, env_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """{"policy": name, "config": its config as a dict} without building the policy
    (a checkpoint's config.json)."""
    if _policy_source(name) == "checkpoint":
        from ampczoo.core.checkpoint import read_config
        from ampczoo.core.registry import resolve_checkpoint

        return {"policy": name, "config": read_config(resolve_checkpoint(name))}
    kwargs = _type_kwargs(name, env_id, kwargs)
    if name == DEFAULT_POLICY:
        config = _scripted_config()(**kwargs)
    else:
        from ampczoo.core.registry import make_config

        config = make_config(name, **kwargs)
    return {"policy": name, "config": dataclasses.asdict(config)}


def load_builder(spec: str) -> Builder:
    """Resolve a "module:attribute" builder spec."""
    module, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load builder {spec!r}: {exc}") from exc


# ----------------------------------------------------------------------------- one episode
def episode_seed(run_seed: int, episode_index: int) -> int:
    """Reset seed of episode ``episode_index`` (a 63-bit int from (run_seed, index) only)."""
    state = np.random.SeedSequence(entropy=(run_seed, episode_index)).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def noise_rng(run_seed: int, episode_index: int) -> np.random.Generator:
    """Exploration-noise generator of an episode (a stream independent of the reset seed)."""
    return np.random.default_rng(
        np.random.SeedSequence(entropy=(run_seed, episode_index), spawn_key=(1,))
    )


def noisy_action(
    u0: np.ndarray,
    rng: np.random.Generator,
    snr: float,
    sigma_min: float,
    limit: Any = VELOCITY_LIMIT,
) -> np.ndarray:
    """Paper Eq. 5, clipped: u0 (nu,) -> (nu,) in ±limit (default ±VELOCITY_LIMIT rad/s)."""
    sigma = np.maximum(np.abs(u0) / snr, sigma_min)
    return np.clip(
        u0 + sigma * rng.standard_normal(u0.shape), -np.asarray(limit), np.asarray(limit)
    )


def _stack(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    if not rows:
        return {}
    out = {k: np.stack([r[k] for r in rows]) for k in rows[0] if k != "status"}
    out["status"] = np.array([r["status"] for r in rows], dtype=str)
    return out


def run_episode(env: Any, expert: Any, config: CollectConfig, episode_index: int) -> Episode:
    """Run episode ``episode_index`` with the noisy expert (until ``steps`` solves or the env
    terminates/truncates); returns the kept samples. The builder's per-sample hooks
    (``first_input``, ``solution_ok``, ``keep``, ``sample``, ``action_limit``) shape the
    rows (builders without them, test fakes, get the KUKA ones); a builder with its own
    ``run_episode`` (:class:`PolicyBuilder`) runs the episode instead."""
    builder = load_builder(config.builder_spec)
    if hasattr(builder, "run_episode"):  # the builder runs its own episodes
        return builder.run_episode(env, expert, config, episode_index)
    hooks: Any = builder if hasattr(builder, "sample") else MPC_BUILDER
    seed = episode_seed(config.seed, episode_index)
    rng = noise_rng(config.seed, episode_index)
    obs, _ = env.reset(seed=seed)
    expert.reset(seed=seed)
    ep = Episode(episode_index, seed, 0)
    rows: list[dict[str, Any]] = []
    for _ in range(config.n_steps):
        obs = np.asarray(obs, dtype=np.float64)
        sol = expert.solve(obs)
        ep.n_steps += 1
        ok = hooks.solution_ok(sol)
        u0 = hooks.first_input(sol) if ok else np.zeros(np.shape(hooks.first_input(sol)))
        action = noisy_action(u0, rng, config.noise_snr, config.noise_sigma_min, hooks.action_limit)
        if not ok:
            ep.n_failed += 1
        elif not hooks.keep(sol, config):
            ep.n_dropped_output_error += 1
        else:
            rows.append(hooks.sample(obs, sol, action))
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    ep.data = _stack(rows)
    return ep


# ----------------------------------------------------------------------------- backends
_WORKER: dict[str, Any] = {}


def _watch_parent(parent: int) -> None:
    """Exit this worker when its parent dies (e.g. SIGKILL), instead of lingering."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _init_worker(config: CollectConfig) -> None:
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    _WORKER["config"] = config


def _worker_episode(episode_index: int) -> Episode:
    """Run one episode in a worker process, building env + expert on first use."""
    config = _WORKER["config"]
    if "env" not in _WORKER:
        _WORKER["env"], _WORKER["expert"] = load_builder(config.builder_spec).build(config)
    try:
        return run_episode(_WORKER["env"], _WORKER["expert"], config, episode_index)
    except BaseException:
        _WORKER.pop("env", None)  # rebuild after an error: the state may be broken
        raise


class _LocalBackend:
    """Episodes run one by one in this process."""

    def __init__(self, config: CollectConfig):
        self.config = config
        self.env, self.expert = load_builder(config.builder_spec).build(config)
        self.pending: list[int] = []
        self.capacity = 1

    def submit(self, episode_index: int) -> None:
        self.pending.append(episode_index)

    def next_done(self) -> tuple[int, Episode | BaseException]:
        idx = self.pending.pop(0)
        try:
            return idx, run_episode(self.env, self.expert, self.config, idx)
        except Exception as exc:  # reported by the caller
            self.env, self.expert = load_builder(self.config.builder_spec).build(self.config)
            return idx, exc

    def close(self) -> None:
        self.env.close()


class _ProcessBackend:
    """A spawn-context process pool; each worker builds env + expert once."""

    def __init__(self, config: CollectConfig):
        self.capacity = 2 * config.workers
        self.pool = cf.ProcessPoolExecutor(
            config.workers,
            mp_context=mp.get_context("spawn"),
            initializer=_init_worker,
            initargs=(config,),
        )
        self.futures: dict[cf.Future, int] = {}

    def submit(self, episode_index: int) -> None:
        self.futures[self.pool.submit(_worker_episode, episode_index)] = episode_index

    def next_done(self) -> tuple[int, Episode | BaseException]:
        done, _ = cf.wait(self.futures, return_when=cf.FIRST_COMPLETED)
        fut = next(iter(done))
        idx = self.futures.pop(fut)
        exc = fut.exception()
        return idx, exc if exc is not None else fut.result()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class _RayBackend:
    """Ray actors (one per worker) running the same episode function."""

    def __init__(self, config: CollectConfig):
        try:
            import ray
        except ImportError as exc:
            raise ImportError("backend 'ray' needs Ray: pip install 'ampczoo[ray]'") from exc
        self.ray = ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if config.ray_address:
                ray.init(address=config.ray_address, **kwargs)
            else:
                ray.init(num_cpus=config.workers, **kwargs)
        actor = ray.remote(num_cpus=1, max_restarts=1)(_RayWorker)
        # Ray actor handles get their .remote methods at run time (no useful static types)
        self.actors: list[Any] = [actor.remote(config) for _ in range(config.workers)]
        self.idle: list[Any] = list(self.actors)
        self.capacity = len(self.actors)
        self.refs: dict[Any, tuple[int, Any]] = {}

    def submit(self, episode_index: int) -> None:
        actor = self.idle.pop()
        self.refs[actor.run.remote(episode_index)] = (episode_index, actor)

    def next_done(self) -> tuple[int, Episode | BaseException]:
        (ref,), _ = self.ray.wait(list(self.refs), num_returns=1)
        idx, actor = self.refs.pop(ref)
        self.idle.append(actor)
        try:
            return idx, self.ray.get(ref)
        except Exception as exc:  # RayTaskError / RayActorError
            return idx, exc

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)


class _RayWorker:
    """Body of a Ray actor: env + expert built once, episodes run by id."""

    def __init__(self, config: CollectConfig):
        _init_worker(config)

    def run(self, episode_index: int) -> Episode:
        return _worker_episode(episode_index)


def _make_backend(config: CollectConfig) -> Any:
    if config.backend == "ray":
        return _RayBackend(config)
    return _LocalBackend(config) if config.workers == 1 else _ProcessBackend(config)


# ----------------------------------------------------------------------------- the run
def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def fingerprint(config: CollectConfig) -> dict[str, Any]:
    """The metadata that determines the data (compared on resume), JSON-compatible."""
    desc = load_builder(config.builder_spec).describe(config)
    values = {**dataclasses.asdict(config), **desc}
    keys = FINGERPRINT_KEYS + tuple(k for k in desc if k not in FINGERPRINT_KEYS)
    return jsonable({k: values[k] for k in keys})


def open_store(config: CollectConfig) -> EpisodeStore:
    """Open (resume) or create the store of a run, checking metadata and overwrites."""
    path = Path(str(config.out))
    fp = fingerprint(config)
    non_empty = any(path.iterdir()) if path.is_dir() else path.exists()
    if non_empty and not is_episode_store(path):
        raise FileExistsError(f"{path} exists and is not an episode store")
    store = EpisodeStore(path, mode="a", chunk_len=config.chunk_len)
    try:
        _check_resume(store, config, fp)
    except BaseException:
        store.close()
        raise
    return store


def _check_resume(store: EpisodeStore, config: CollectConfig, fp: dict[str, Any]) -> None:
    """Refuse a store of another run (or one already holding episodes without ``resume``);
    record the run's metadata in a new store."""
    path = store.path
    old = store.attrs.get("fingerprint")
    if config.resume and old is not None:
        bad = [
            f"{k}: stored {old.get(k)!r} != requested {fp[k]!r}" for k in fp if old.get(k) != fp[k]
        ]
        if bad:
            raise ValueError(f"cannot resume {path}: metadata mismatch: " + "; ".join(bad))
    elif store.n_episodes:
        raise FileExistsError(
            f"{path} already holds {store.n_episodes} episodes; pass "
            "--resume to continue it or choose another --out"
        )
    if not config.resume and "data" in store.group:
        del store.group["data"]  # rows of an empty store's crashed first append
    if old is None or not config.resume:
        store.update_attrs(
            {
                "fingerprint": fp,
                **fp,
                "collection": dataclasses.asdict(config),
                "ampczoo_version": _version(),
                "git_commit": _git_commit(),
                "created": datetime.datetime.now().astimezone().isoformat(),
            }
        )


def _version() -> str:
    from ampczoo import __version__

    return __version__


@dataclass
class _Tally:
    """Running counts of this call."""

    episodes: int = 0
    kept: int = 0
    dropped: int = 0
    failed: int = 0
    solves: int = 0

    def add(self, ep: Episode) -> None:
        self.episodes += 1
        self.kept += ep.n_kept
        self.dropped += ep.n_dropped_output_error
        self.failed += ep.n_failed
        self.solves += ep.n_steps


class _Writer:
    """Buffers finished episodes and appends them to the store at most every ``interval``."""

    def __init__(self, store: EpisodeStore, interval: float):
        self.store, self.interval = store, interval
        self.buffer: list[Episode] = []
        self.last = time.monotonic()

    def add(self, ep: Episode) -> None:
        self.buffer.append(ep)
        if time.monotonic() - self.last >= self.interval:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.store.add_episodes(self.buffer)
            self.buffer = []
        self.last = time.monotonic()


def _progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="ep", desc="collect", disable=not enabled, dynamic_ncols=True)


def collect(config: CollectConfig, progress: bool = True) -> CollectReport:
    """Run (or resume) a collection; returns counts and throughput of this call.

    Episodes whose worker raised (after ``max_retries`` re-runs) are reported in
    ``errors``; all other episodes are stored."""
    store = open_store(config)
    done = set(store.episode_ids().tolist())
    todo = [i for i in range(config.episodes) if i not in done]
    tally, errors = _Tally(), list[str]()
    writer = _Writer(store, config.flush_interval_s)
    t0 = time.perf_counter()
    bar = _progress(len(todo), progress)
    backend = _make_backend(config) if todo else None
    try:
        _drive(backend, todo, config.max_retries, writer, tally, errors, bar, t0)
        writer.flush()
        if hasattr(load_builder(config.builder_spec), "run_episode"):
            store.update_attrs(episode_outcomes(store))
    finally:
        writer.flush()
        bar.close()
        if backend is not None:
            backend.close()
        store.close()  # release the writer lock: the next --resume may open the store
    wall = time.perf_counter() - t0
    per_episode = hasattr(load_builder(config.builder_spec), "run_episode")
    return CollectReport(
        str(store.path),
        tally.episodes,
        len(done),
        tally.kept,
        tally.dropped,
        tally.failed,
        tally.solves,
        wall,
        tally.solves / max(wall, 1e-9),
        store.counts(),
        tuple(errors),
        tally.failed if per_episode else None,
        config.keep_failed,
    )


def episode_outcomes(store: EpisodeStore) -> dict[str, int]:
    """Policy-builder stores: {"episodes_successful", "episodes_failed"} over the stored
    episodes (a failed episode has n_failed = 1, whether its rows were kept or not)."""
    failed = int(np.count_nonzero(store.meta("n_failed")))
    return {"episodes_successful": store.n_episodes - failed, "episodes_failed": failed}


def _drive(
    backend: Any,
    todo: list[int],
    max_retries: int,
    writer: _Writer,
    tally: _Tally,
    errors: list[str],
    bar: Any,
    t0: float,
) -> None:
    """Keep the backend busy, collect results, retry failures, update the progress bar."""
    queue, attempts, running = list(todo), dict.fromkeys(todo, 0), 0
    while queue or running:
        while queue and running < backend.capacity:
            backend.submit(queue.pop(0))
            running += 1
        idx, result = backend.next_done()
        running -= 1
        if isinstance(result, BaseException):
            attempts[idx] += 1
            if attempts[idx] <= max_retries:
                queue.append(idx)
                continue
            errors.append(f"episode {idx}: {type(result).__name__}: {result}")
            bar.update(1)
        else:
            writer.add(result)
            tally.add(result)
            bar.update(1)
        bar.set_postfix(
            solves_s=f"{tally.solves / (time.perf_counter() - t0):.0f}",
            failed=tally.failed,
            dropped=tally.dropped,
            errors=len(errors),
        )
