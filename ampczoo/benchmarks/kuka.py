"""``ampczoo bench kuka``: MPC vs LSM vs DAMPC on the KUKA tracking envs (the paper's tables).

Every method runs in closed loop on the same episodes (reset seeds ``seed .. seed+n-1``, so
the same start/goal pairs), in the kinematic simulation at ``--control-dt`` (default 0.02 s,
5 s episodes); the MPC expert is re-solved at every control step. A *method* is a
(checkpoint, inference options) pair, see :data:`METHODS`; a row whose checkpoint is missing
(or does not fit the env) is skipped with a printed note.

Rows (``--methods``): the paper's Table I / III rows MPC, LSM, DDPM-5 +∇G+ES (the proposed
method), DDPM-5 +∇G, DDPM-40, DDPM-5, DDIM-5 (the last three vanilla: no guidance, no early
stopping; "∇G" = gradient guidance toward the previous sequence, "ES" = early-stopped noise
injection, Eq. 14); our extra rows DDPM-5 +ES, DDPM-40 +∇G+ES (a paper row of Table IV only)
and DDIM-5 +∇G+ES, and the sampling rows cluster / cost / safe (DDPM-5 +∇G+ES with
``--num-samples`` samples, Tables V-VII). In every table a row that is not one of that
table's rows in the paper is marked "(ours)".

Tables (markdown + CSV, one ``env`` column; every success rate with its 95 % Wilson interval):

- ``table1_tracking`` (Table I): ATE [mm], ARE [deg], SR [%], TRT [s] (ATE/ARE/TRT over the
  successful episodes).
- ``table3_smoothness`` (Table III), over the first ``--stats-seconds`` (2 s, as the paper)
  of each episode. *Mode swaps* as the paper defines them, changes of the local minimum
  chosen (:mod:`ampczoo.benchmarks.modes`): at every ``--mode-every``-th step the open-loop
  sequences the method can produce at the visited state (MPC: ``--mode-guesses`` solves from
  random initial guesses; DAMPC: ``--mode-samples`` unguided samples with the row's sampler,
  N_I and ES; LSM: its one prediction) are clustered together with the selected sequence
  (``--mode-linkage`` linkage, cut at ``--mode-threshold`` rad/s RMS over horizon and
  joints); the previous plan, advanced by the elapsed time, continues into the cluster of its
  nearest point, and a swap is a chosen cluster other than that one (a state with one
  cluster has none) -- per episode, as % of the evaluated transitions, and the distinct
  modes chosen per episode. *(ours)* the earlier proxy: steps whose selected sequence is
  farther than ``--mode-swap-threshold`` (RMS) from the previous one advanced by the elapsed
  time.
  *Jerk*: the executed commands are joint velocities u_t, so jerk_t =
  ||u_{t+1} - 2 u_t + u_{t-1}|| / dt^2 [rad s^-3], median (and p90) over all steps of all
  episodes, at ``--control-dt`` and in a second set of closed loops (same seeds, the Table III
  window only) at ``--jerk-rate-hz`` (default 250 Hz, the paper's DAMPC control rate).
- ``table5_sampling`` (Tables V + VI): DDPM-5 +∇G+ES with sampling none / cluster / cost / safe
  (``--num-samples`` samples, default 100) next to MPC and LSM: tracking metrics and, on the
  obstacle env, constraint-satisfaction SR = % of episodes whose maximum obstacle penetration
  (fraction of the obstacle radius) is <= 10 % and <= 1 %. Plot ``penetration_cdf_<env>.png``:
  CDF over episodes of the maximum closed-loop penetration, per method (Fig. 5, centre).
- ``table4_timing`` (Tables IV + VII): ``act()`` wall time mean / p95 / max [ms] measured in the
  closed loops (one warm-up call per method excluded), batch 1 or ``num_samples`` samples, on
  CPU and -- when ``torch.cuda.is_available()`` -- on CUDA (``--timing-episodes`` extra episodes
  per method), next to the MPC expert's warm closed-loop solve times of the same run, with the
  speed-ups MPC p95 / method p95 and MPC max / method max. ``torch.set_num_threads(1)`` is set
  for the whole run (at batch 1 intra-op threads only add contention; restored afterwards).
- ``optimality_gap`` (ours): at the states a policy visits (every ``--gap-every``-th step of
  the first ``--gap-episodes`` episodes), the expert cost (``MPCExpert.cost_batch``) of the
  policy's selected sequence minus that of the expert's optimum there (best successful solve
  from a random cold start and from the policy's sequence as initial guess) -- mean and
  median, and the % of states where the policy's sequence is cheaper (by > 1e-6) than the
  solver's best (a local optimum the solver missed; the cost ignores constraints).

Plots: ``tracking_error_<env>.png`` (median, 10-90 % bands), ``penetration_cdf_<env>.png``,
``heatmap_<env>.png`` (Fig. 2: log density of end-effector positions of open-loop sequences
for the first episode's start/goal, each sequence rolled out kinematically with dt = 0.1 s:
MPC from ``--heatmap-guesses`` random initial guesses, DAMPC ``--heatmap-samples`` samples,
LSM its single prediction). ``episodes.json`` holds every episode's seed and metrics per
method (keys ``<env>/<method>``), so two runs compare episode by episode.

Example::

    ampczoo bench kuka --envs obstacle --episodes 200 --dampc runs/dampc/best \\
        --dampc40 runs/dampc40/best --lsm runs/lsm/best
    ampczoo bench kuka --methods mpc lsm ddpm5-g-es ddpm5-g ddpm40 ddpm5 ddim5  # the paper's
    ampczoo bench kuka --quick            # 5 episodes, 20 samples, smaller plots
    ampczoo bench kuka --obstacle-placement between --seed 50000 \\
        --lsm lsm-kuka-multimodal --dampc dampc-kuka-multimodal  # the multi-modal scenario

``--obstacle-placement between`` makes the obstacle env with the sphere on the segment from
the start to the target end-effector position (issue 15's multi-modal scenario; the
``fixed`` default is the paper's env).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ampczoo.benchmarks.common import (
    EpisodeResult,
    command_line,
    constraint_success,
    count_mode_swaps,
    jerk_norms,
    make_run_dir,
    plot_cdf,
    plot_position_heatmaps,
    plot_tracking_errors,
    run_episode,
    sequence_jumps,
    single_thread,
    summarize_episodes,
    write_episodes_json,
    write_table,
)
from ampczoo.benchmarks.modes import chosen_mode_labels, count_label_switches
from ampczoo.benchmarks.mpc import SolveRecorder

ENVS = {"obstacle": "DAMPC-KukaTrackObstacle-v0", "free": "DAMPC-KukaTrack-v0"}
CHECKPOINTS = ("lsm", "dampc", "dampc40")
#: Sequence step [s] assumed for policies without a ``dt`` in their config (LSM): the MPC's.
DEFAULT_SEQ_DT = 0.1
#: Cost difference below which the policy's sequence counts as no better than the optimum.
GAP_TOL = 1e-6


#: caps applied by ``quick``
QUICK_CAPS = {
    "episodes": 5,
    "num_samples": 20,
    "gap_episodes": 1,
    "timing_episodes": 1,
    "heatmap_guesses": 8,
    "heatmap_samples": 50,
    "mode_samples": 8,
    "mode_guesses": 2,
}


def default_checkpoint(kind: str, env: str, placement: str = "fixed") -> str:
    """Zoo name of a checkpoint kind ("lsm" | "dampc" | "dampc40") for an env key, from the
    zoo index: the checkpoint of ``ENVS[env]`` of the kind's policy type whose name starts
    with ``<kind>-`` and whose card's ``env_kwargs`` have the obstacle ``placement`` (absent =
    "fixed"), e.g. ``dampc-kuka-obstacle`` (fixed) or ``dampc-kuka-multimodal`` (between);
    ``<kind>-kuka[-obstacle|-multimodal]`` if none is shipped (its rows are then skipped
    with a note)."""
    from ampczoo.core.registry import list_policies, zoo_card

    model = {"lsm": "lsm", "dampc": "dampc", "dampc40": "dampc"}.get(kind, kind)
    for name in list_policies(env=ENVS[env], model=model):
        kwargs = zoo_card(name).get("env_kwargs", {})
        if name.startswith(f"{kind}-") and kwargs.get("obstacle_placement", "fixed") == placement:
            return name
    if env != "obstacle":
        return f"{kind}-kuka"
    return f"{kind}-kuka-" + ("obstacle" if placement == "fixed" else "multimodal")


EnvKey = Literal["obstacle", "free"]
#: keys of :data:`METHODS` (a test checks that the two agree)
MethodKey = Literal[
    "mpc",
    "lsm",
    "ddpm5-g-es",
    "ddpm5-g",
    "ddpm40",
    "ddpm5",
    "ddim5",
    "ddpm5-es",
    "ddpm40-g-es",
    "ddim5-g-es",
    "cluster",
    "cost",
    "safe",
]


@dataclass(frozen=True)
class KukaBenchConfig:
    """``ampczoo bench kuka``: MPC vs LSM vs DAMPC on the KUKA tracking envs."""

    envs: tuple[EnvKey, ...] = ("obstacle",)
    """envs to run: obstacle (the paper's headline comparison) and/or free"""
    episodes: int = 200
    """closed-loop episodes per method (reset seeds seed .. seed+episodes-1)"""
    seed: int = 1000
    """reset seed of the first episode"""
    control_dt: float = 0.02
    """env step [s]"""
    episode_seconds: float = 5.0
    """episode length [s]"""
    obstacle_placement: Literal["fixed", "between"] = "fixed"
    """obstacle env: the paper's fixed sphere, or one on the segment from the start to the
    target end-effector position (the multi-modal scenario, ``obstacle_placement="between"``)"""
    lsm: str | None = None
    """LSM checkpoint folder or zoo name (None = lsm-kuka / lsm-kuka-obstacle, or the zoo's
    checkpoint of the obstacle placement)"""
    dampc: str | None = None
    """DAMPC (N_I = 5) checkpoint folder or zoo name (None = dampc-kuka / dampc-kuka-obstacle,
    or the zoo's checkpoint of the obstacle placement)"""
    dampc40: str | None = None
    """DAMPC (N_I = 40) checkpoint folder or zoo name (None = dampc40-kuka /
    dampc40-kuka-obstacle)"""
    methods: tuple[MethodKey, ...] = ()
    """rows to run (empty = all)"""
    mpc_solver: Literal["fatrop", "ipopt"] = "fatrop"
    """NLP solver of the MPC expert"""
    mpc_compile: bool = True
    """compile the expert's NLP to C (cached; the first build takes about a minute)"""
    mpc_cold_start: Literal["state", "random"] = "state"
    """the expert's first guess after reset: "state" (as the zoo's demonstrations were
    collected) or "random" (the paper's)"""
    num_samples: int = 100
    """samples L of the cluster / cost / safe rows"""
    guidance_scale: float | None = None
    """nabla-G scale of the "+G" rows (None = the checkpoint's config value)"""
    mode_threshold: float = 0.25
    """mode clustering: linkage distance [rad/s, RMS over horizon and joints] above which
    open-loop sequences at a state are different modes (local minima)"""
    mode_linkage: Literal["average", "single", "complete"] = "average"
    """linkage of the mode clustering (scipy.cluster.hierarchy)"""
    mode_every: int = 5
    """every how many steps of the Table III window the chosen mode is evaluated"""
    mode_samples: int = 32
    """DAMPC samples per evaluated state that define its modes"""
    mode_guesses: int = 8
    """MPC solves from random initial guesses per evaluated state that define its modes"""
    mode_swap_threshold: float = 0.25
    """(ours) proxy: RMS jump [rad/s] between consecutive selected sequences counted as a
    mode swap"""
    jerk_rate_hz: float = 250.0
    """second control rate [Hz] of the jerk columns (the paper's DAMPC rate; 0 = off): the
    Table III rows run again at this rate over the Table III window"""
    stats_seconds: float = 2.0
    """window of the smoothness table (Table III) [s] (0 = whole episode)"""
    gap_episodes: int = 3
    """episodes whose visited states enter the optimality gap"""
    gap_every: int = 10
    """every how many steps a state enters the optimality gap"""
    heatmap_guesses: int = 20
    """random MPC initial guesses of the Fig. 2 heat map"""
    heatmap_samples: int = 200
    """DAMPC samples of the Fig. 2 heat map"""
    heatmap_dt: float = 0.1
    """step [s] of the kinematic rollouts of the heat map"""
    cuda: bool = True
    """also time the policies on CUDA when available"""
    timing_episodes: int = 3
    """episodes of the CUDA timing run"""
    quick: bool = False
    """smoke run: at most 5 episodes, 20 samples, 1 gap episode, 1 timing episode, a small
    heat map"""
    out: str = "runs"
    """parent folder of the run folder"""

    def __post_init__(self) -> None:
        if self.quick:
            for name, cap in QUICK_CAPS.items():
                object.__setattr__(self, name, min(getattr(self, name), cap))
        if not self.envs or set(self.envs) - set(ENVS):
            raise ValueError(f"envs must be a non-empty subset of {list(ENVS)}, got {self.envs}")
        unknown = sorted(set(self.methods) - set(METHOD_KEYS))
        if unknown:
            raise ValueError(f"unknown methods {unknown}; choose from {list(METHOD_KEYS)}")
        if self.episodes < 1 or self.num_samples < 1:
            raise ValueError("episodes and num_samples must be >= 1")
        if not self.control_dt > 0 or not self.episode_seconds > 0:
            raise ValueError("control_dt and episode_seconds must be > 0")
        if not self.mode_threshold > 0 or not self.mode_swap_threshold > 0:
            raise ValueError("mode_threshold and mode_swap_threshold must be > 0")
        if self.mode_every < 1 or self.mode_samples < 1 or self.mode_guesses < 0:
            raise ValueError("mode_every and mode_samples must be >= 1, mode_guesses >= 0")
        if not self.jerk_rate_hz >= 0 or not math.isfinite(self.jerk_rate_hz):
            raise ValueError(f"jerk_rate_hz must be >= 0 (0 = off), got {self.jerk_rate_hz}")
        if not self.stats_seconds >= 0:
            raise ValueError(f"stats_seconds must be >= 0, got {self.stats_seconds}")
        if self.obstacle_placement not in ("fixed", "between"):
            raise ValueError(
                f"obstacle_placement must be 'fixed' or 'between', got {self.obstacle_placement!r}"
            )
        if self.obstacle_placement != "fixed" and "obstacle" not in self.envs:
            raise ValueError("obstacle_placement='between' needs the obstacle env in envs")

    def checkpoint(self, kind: str, env: str) -> str:
        placement = self.obstacle_placement if env == "obstacle" else "fixed"
        return getattr(self, kind) or default_checkpoint(kind, env, placement)

    def env_kwargs(self, env: str) -> dict[str, Any]:
        """gym.make keywords of an env key besides the control period and episode length."""
        return {"obstacle_placement": self.obstacle_placement} if env == "obstacle" else {}


@dataclass(frozen=True)
class Method:
    """One row: ``checkpoint`` ("mpc" | "lsm" | "dampc" | "dampc40") run with inference
    options. guidance / early_stop / sampler / selection: DAMPC act() options; all_steps:
    denoise with all N_I steps of the checkpoint (DDPM-40). tables: where the row appears;
    paper: those of them where it is one of the paper's rows (elsewhere it is marked
    "(ours)")."""

    key: str
    name: str
    checkpoint: str
    tables: tuple[str, ...]
    paper: tuple[str, ...] = ()
    guidance: bool = False
    early_stop: bool = False
    sampler: str = "ddpm"
    selection: str = "none"
    all_steps: bool = False

    def act_kwargs(self, cfg: KukaBenchConfig) -> dict[str, Any]:
        if self.checkpoint not in ("dampc", "dampc40"):
            return {}
        return {
            "sampler": self.sampler,
            "early_stop": self.early_stop,
            "guidance_scale": cfg.guidance_scale if self.guidance else 0.0,
            "selection": self.selection,
            "num_samples": None if self.selection == "none" else cfg.num_samples,
        }

    def label(self, table: str) -> str:
        """The row's name in ``table``, with " (ours)" where the paper has no such row."""
        return self.name if table in self.paper else f"{self.name} (ours)"


_T1, _T3, _T5, _T4 = "tracking", "smoothness", "sampling", "timing"
_GES = {"guidance": True, "early_stop": True}
METHODS: tuple[Method, ...] = (
    # the paper's rows (Table I / III order)
    Method("mpc", "MPC", "mpc", (_T1, _T3, _T5), (_T1, _T3, _T5)),
    Method("lsm", "LSM", "lsm", (_T1, _T3, _T5, _T4), (_T1, _T3, _T5)),
    Method(
        "ddpm5-g-es", "DDPM-5 +∇G+ES", "dampc", (_T1, _T3, _T5, _T4), (_T1, _T3, _T5, _T4), **_GES
    ),
    Method("ddpm5-g", "DDPM-5 +∇G", "dampc", (_T1, _T3), (_T1, _T3), guidance=True),
    Method("ddpm40", "DDPM-40", "dampc40", (_T1, _T3), (_T1, _T3), all_steps=True),
    Method("ddpm5", "DDPM-5", "dampc", (_T1, _T3, _T4), (_T1, _T3)),
    Method("ddim5", "DDIM-5", "dampc", (_T1, _T3), (_T1, _T3), sampler="ddim"),
    # ours
    Method("ddpm5-es", "DDPM-5 +ES", "dampc", (_T1, _T3), early_stop=True),
    Method(
        "ddpm40-g-es", "DDPM-40 +∇G+ES", "dampc40", (_T1, _T3, _T4), (_T4,), all_steps=True, **_GES
    ),
    Method("ddim5-g-es", "DDIM-5 +∇G+ES", "dampc", (_T1, _T3, _T4), sampler="ddim", **_GES),
    # sampling strategies (Tables V-VII)
    *(
        Method(sel, f"DDPM-5 +∇G+ES {sel}", "dampc", (_T5, _T4), (_T5, _T4), selection=sel, **_GES)
        for sel in ("cluster", "cost", "safe")
    ),
)
METHOD_KEYS = tuple(m.key for m in METHODS)


# ----------------------------------------------------------------------------- running
class SequenceRecorder:
    """Adapter for :func:`run_episode`: ``step(obs) -> (u_0, selected sequence or None)``;
    keeps each step's observation and selected sequence (None: e.g. a failed MPC solve)."""

    def __init__(self, policy: Any, step: Callable[[np.ndarray], tuple[np.ndarray, Any]]):
        self.policy, self._step = policy, step
        self.obs: list[np.ndarray] = []
        self.seqs: list[np.ndarray | None] = []

    @property
    def n_failures(self) -> int:
        return getattr(self.policy, "n_failures", 0)

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset(seed=seed)
        self.obs, self.seqs = [], []

    def act(self, obs: np.ndarray) -> np.ndarray:
        action, seq = self._step(obs)
        self.obs.append(np.array(obs, float))
        self.seqs.append(None if seq is None else np.array(seq, float))
        return action


def make_recorder(method: Method, policy: Any, cfg: KukaBenchConfig) -> SequenceRecorder:
    """Recorder around the MPC expert (wrapped in a :class:`SolveRecorder`), an LSM or a
    DAMPC policy called with the method's act() options."""
    if method.checkpoint == "mpc":
        rec = SolveRecorder(policy)

        def step(obs):
            u = rec.act(obs)
            sol = policy.last_solution
            return u, (sol.u if sol is not None and sol.success else None)

        return SequenceRecorder(rec, step)
    if method.checkpoint == "lsm":

        def step(obs):
            seq = policy.sample(obs)
            return seq[0].copy(), seq

        return SequenceRecorder(policy, step)
    kwargs = method.act_kwargs(cfg)
    return SequenceRecorder(policy, lambda obs: (policy.act(obs, **kwargs), policy.prev_sequence))


def sequence_dt(policy: Any) -> float:
    """Step [s] of a policy's predicted sequences (MPC/DAMPC config ``dt``; LSM: 0.1)."""
    return float(getattr(policy.config, "dt", DEFAULT_SEQ_DT))


def stack_sequences(seqs: Sequence[np.ndarray | None]) -> np.ndarray:
    """(T, N, 7) with NaN where a step had no sequence; (0,) when none had."""
    shape = next((s.shape for s in seqs if s is not None), None)
    if shape is None:
        return np.zeros(0)
    return np.stack([np.full(shape, np.nan) if s is None else s for s in seqs])


def window_steps(n_steps: int, control_dt: float, cfg: KukaBenchConfig) -> int:
    """Steps of an ``n_steps`` episode inside the Table III window (``stats_seconds``)."""
    if cfg.stats_seconds > 0:
        return min(n_steps, max(1, round(cfg.stats_seconds / control_dt)))
    return n_steps


def smoothness_metrics(
    result: EpisodeResult,
    seqs: Sequence[np.ndarray | None],
    control_dt: float,
    seq_dt: float,
    cfg: KukaBenchConfig,
) -> tuple[dict[str, Any], np.ndarray]:
    """Per-episode jerk and the (ours) RMS-jump proxy of mode swaps over the Table III window
    -> (scalars, jerk norms (T-2,) [rad/s^3])."""
    T = window_steps(len(result.actions), control_dt, cfg)
    jerk = jerk_norms(result.actions[:T], control_dt)
    S = stack_sequences(seqs[:T])
    shift = control_dt / seq_dt
    swaps = count_mode_swaps(S, cfg.mode_swap_threshold, shift) if S.ndim == 3 else 0
    jumps = sequence_jumps(S, shift) if S.ndim == 3 else np.zeros(0)
    return {
        "rms_jump_swaps": swaps,
        "rms_jump_steps_pct": 100.0 * swaps / max(T - 1, 1),
        "max_sequence_jump": float(np.nanmax(jumps)) if np.isfinite(jumps).any() else 0.0,
        "median_jerk": float(np.median(jerk)) if jerk.size else float("nan"),
    }, jerk


#: (obs (D,), seed) -> (M, N, 7) open-loop sequences a method can produce at that state
Candidates = Callable[[np.ndarray, int], np.ndarray]


def mode_candidates(
    method: Method, policy: Any, cfg: KukaBenchConfig, expert: Any | None
) -> Candidates:
    """The sequences that define the modes (local minima) at a state, per method: the MPC
    from ``cfg.mode_guesses`` random initial guesses (solved by ``expert``, a second
    instance, so the closed loop's warm start is untouched); DAMPC ``cfg.mode_samples``
    unguided samples with the row's sampler, N_I and early stopping (its own generator,
    seeded per state); LSM none (its one prediction is the selected sequence)."""
    if method.checkpoint == "mpc":

        def mpc(obs: np.ndarray, seed: int) -> np.ndarray:
            if expert is None:
                return np.zeros((0, 0, 7))
            expert.reset(seed=seed)
            sols = [expert.solve(obs, initial_guess="random") for _ in range(cfg.mode_guesses)]
            u = [s.u for s in sols if s.success]
            return np.stack(u) if u else np.zeros((0, expert.horizon, 7))

        return mpc
    if method.checkpoint == "lsm":
        return lambda obs, seed: np.zeros((0, 0, 7))

    def dampc(obs: np.ndarray, seed: int) -> np.ndarray:
        import torch

        gen = torch.Generator(policy.generator().device).manual_seed(seed)
        return policy.sample(
            obs,
            cfg.mode_samples,
            sampler=method.sampler,
            early_stop=method.early_stop,
            guidance_scale=0.0,
            prev_sequence=None,
            generator=gen,
        )

    return dampc


def mode_metrics(
    obs: Sequence[np.ndarray],
    seqs: Sequence[np.ndarray | None],
    candidates: Candidates,
    control_dt: float,
    seq_dt: float,
    cfg: KukaBenchConfig,
    seed: int,
) -> dict[str, Any]:
    """Mode swaps of one episode as the paper defines them (changes of the chosen local
    minimum, :func:`~ampczoo.benchmarks.modes.chosen_mode_labels`) at every
    ``cfg.mode_every``-th step of the Table III window."""
    T = window_steps(len(seqs), control_dt, cfg)
    idx = range(0, T, cfg.mode_every)
    sel = [seqs[t] for t in idx]
    cand = [
        np.zeros((0, 0, 7)) if s is None else candidates(obs[t], seed * 10_000 + t)
        for t, s in zip(idx, sel, strict=True)
    ]
    labels = chosen_mode_labels(
        sel, cand, cfg.mode_every * control_dt / seq_dt, cfg.mode_threshold, cfg.mode_linkage
    )
    valid = int(np.sum(labels >= 0))
    swaps = count_label_switches(labels)
    return {
        "mode_swaps": swaps,
        "mode_swaps_pct": 100.0 * swaps / max(valid - 1, 1),
        "modes_chosen": len(set(labels[labels >= 0].tolist())),
        "mode_labels": labels.tolist(),
    }


@dataclass
class MethodRun:
    """Closed-loop outcome of one method on one env."""

    method: Method
    results: list[EpisodeResult] = field(default_factory=list)
    extras: list[dict[str, Any]] = field(default_factory=list)
    jerks: list[np.ndarray] = field(default_factory=list)
    rate_jerks: list[np.ndarray] = field(default_factory=list)  # at cfg.jerk_rate_hz
    gap_states: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    solve_stats: dict[str, float] | None = None
    n_steps: int | None = None  # N_I used
    samples: int = 1


def warm_up(rec: SequenceRecorder, env: Any, seed: int) -> None:
    """One act() before timing (lazy torch init, first-call allocations)."""
    obs, _ = env.reset(seed=seed)
    rec.reset(seed=seed)
    rec.act(obs)


def run_method(
    method: Method,
    policy: Any,
    env: Any,
    cfg: KukaBenchConfig,
    episodes: int,
    progress: str = "",
    mode_expert: Any | None = None,
    modes: bool = True,
) -> MethodRun:
    """Closed loops of one method on episodes ``cfg.seed + i``: results, smoothness metrics
    (mode swaps when ``modes``; the MPC's candidates are solved by ``mode_expert``) and the
    states kept for the optimality gap."""
    from tqdm.auto import tqdm

    rec = make_recorder(method, policy, cfg)
    if method.checkpoint != "mpc":
        warm_up(rec, env, cfg.seed)
    dt, seq_dt = env.unwrapped.control_dt, sequence_dt(policy)
    candidates = mode_candidates(method, policy, cfg, mode_expert)
    run = MethodRun(
        method,
        n_steps=_inference_steps(policy),
        samples=method.act_kwargs(cfg).get("num_samples") or 1,
    )
    for i in tqdm(range(episodes), desc=progress or method.name, unit="ep", leave=False):
        seed = cfg.seed + i
        res = run_episode(env, rec, seed=seed)
        extra, jerk = smoothness_metrics(res, rec.seqs, dt, seq_dt, cfg)
        if modes:
            extra |= mode_metrics(rec.obs, rec.seqs, candidates, dt, seq_dt, cfg, seed)
        run.results.append(res)
        run.extras.append(extra)
        run.jerks.append(jerk)
        if i < cfg.gap_episodes:
            run.gap_states += [
                (o, s)
                for o, s in zip(rec.obs[:: cfg.gap_every], rec.seqs[:: cfg.gap_every], strict=True)
                if s is not None
            ]
    if method.checkpoint == "mpc":
        run.solve_stats = rec.policy.stats()
    return run


def rate_jerks(
    method: Method, policy: Any, env: Any, cfg: KukaBenchConfig, progress: str = ""
) -> list[np.ndarray]:
    """Jerk norms (T-2,) [rad/s^3] per episode of the method's closed loops on ``env`` (made
    at another control period, e.g. 1 / cfg.jerk_rate_hz), same seeds; a DAMPC policy's
    guidance period follows the env's and is restored afterwards."""
    from tqdm.auto import tqdm

    rec = make_recorder(method, policy, cfg)
    dt = env.unwrapped.control_dt
    old = getattr(policy, "control_dt", None)
    if old is not None:
        policy.control_dt = dt
    try:
        out = []
        for i in tqdm(range(cfg.episodes), desc=progress or method.name, unit="ep", leave=False):
            res = run_episode(env, rec, seed=cfg.seed + i)
            out.append(jerk_norms(res.actions[: window_steps(len(res.actions), dt, cfg)], dt))
        return out
    finally:
        if old is not None:
            policy.control_dt = old


def _inference_steps(policy: Any) -> int | None:
    return getattr(policy.config, "num_inference_steps", None)


def optimality_gaps(
    expert: Any, states: Sequence[tuple[np.ndarray, np.ndarray]], seed: int = 0
) -> list[float]:
    """cost(policy sequence) - cost(expert optimum) at each (obs, sequence), both evaluated
    with ``expert.cost_batch``; the optimum is the best successful solve from a random cold
    start and from the sequence itself as initial guess. States without a successful solve
    or with another horizon are skipped."""
    gaps = []
    for k, (obs, seq) in enumerate(states):
        if seq.shape != (expert.horizon, 7):
            continue
        expert.reset(seed=seed + k)
        best = math.inf
        for guess in ("random", seq):
            sol = expert.solve(obs, initial_guess=guess)
            if sol.success:
                best = min(best, float(expert.cost_batch(obs, sol.u[None])[0]))
        if math.isfinite(best):
            gaps.append(float(expert.cost_batch(obs, seq[None])[0]) - best)
    return gaps


# ----------------------------------------------------------------------------- checkpoints
def load_checkpoints(
    cfg: KukaBenchConfig,
    env_key: str,
    obs_dim: int,
    device: str = "cpu",
    needed: Sequence[str] = CHECKPOINTS,
) -> tuple[dict[str, Any], list[str]]:
    """{kind: policy} of the checkpoints that load and fit the env, and a note per skip."""
    import ampczoo

    want_type = {"lsm": "lsm", "dampc": "dampc", "dampc40": "dampc"}
    policies, notes = {}, []
    for kind in needed:
        src = cfg.checkpoint(kind, env_key)
        try:
            pol = ampczoo.load_policy(src, device=device)
        except (FileNotFoundError, ValueError) as exc:
            notes.append(f"[{env_key}] --{kind} {src!r} not loaded, rows skipped: {exc}")
            continue
        problem = None
        if pol.name != want_type[kind]:
            problem = f"is a {pol.name!r} policy, expected {want_type[kind]!r}"
        elif pol.config.obs_dim != obs_dim:
            problem = f"has obs_dim {pol.config.obs_dim}, the env {obs_dim}"
        if problem:
            notes.append(f"[{env_key}] --{kind} {src!r} {problem}; rows skipped")
            continue
        if hasattr(pol, "control_dt"):  # guidance target advanced by the env's period
            pol.control_dt = cfg.control_dt
        policies[kind] = pol
    return policies, notes


def policy_for(method: Method, policies: dict[str, Any]) -> Any:
    """The policy of a method, configured for it (DDPM-40: all N_I denoising steps; only
    that row uses the dampc40 checkpoint, so the change stays local)."""
    pol = policies[method.checkpoint]
    if method.all_steps:
        pol.config = replace(pol.config, num_inference_steps=pol.config.num_train_timesteps)
    return pol


# ----------------------------------------------------------------------------- heat map
def ee_positions(q0: np.ndarray, U: np.ndarray, dt: float) -> np.ndarray:
    """End-effector positions (L*(N+1), 3) [m] of input sequences U (L, N, 7) rolled out
    kinematically from q0 (clipped to the joint limits, as the env does)."""
    from ampczoo.robots.kuka import kuka_chain

    chain = kuka_chain()
    U = np.asarray(U, float)
    Q = np.clip(q0 + dt * np.cumsum(U, axis=1), chain.lower, chain.upper)
    Q = np.concatenate([np.broadcast_to(q0, (len(U), 1, 7)), Q], axis=1)
    return chain.batch_ee_pose(Q.reshape(-1, 7))[0]


def heatmap_points(
    env: Any, cfg: KukaBenchConfig, expert: Any, policies: dict[str, Any]
) -> tuple[dict[str, np.ndarray], np.ndarray, Any]:
    """Open-loop end-effector positions for the first episode's start/goal, per method."""
    from ampczoo.robots.kuka import parse_observation

    obs, _ = env.reset(seed=cfg.seed)
    ob = parse_observation(obs)
    seqs: dict[str, np.ndarray] = {}
    if expert is not None:
        sols = []
        for k in range(cfg.heatmap_guesses):
            expert.reset(seed=cfg.seed + k)
            sol = expert.solve(obs, initial_guess="random")
            if sol.success:
                sols.append(sol.u)
        if sols:
            seqs[f"MPC ({len(sols)}/{cfg.heatmap_guesses} guesses converged)"] = np.stack(sols)
    if "dampc" in policies:
        pol = policies["dampc"]
        pol.reset(seed=cfg.seed)
        seqs[f"DAMPC ({cfg.heatmap_samples} samples)"] = pol.sample(
            obs, cfg.heatmap_samples, sampler="ddpm", early_stop=True, prev_sequence=None
        )
    if "lsm" in policies:
        seqs["LSM"] = policies["lsm"].sample(obs)[None]
    pts = {k: ee_positions(ob.q, v, cfg.heatmap_dt) for k, v in seqs.items()}
    obstacle = None if ob.obstacle is None else (np.array(ob.obstacle.centre), ob.obstacle.radius)
    return pts, ob.target_pos, obstacle


# ----------------------------------------------------------------------------- tables
def _yes(flag: bool) -> str:
    return "yes" if flag else "-"


def _hz(dt: float) -> str:
    return f"{1.0 / dt:g} Hz"


def method_columns(env_key: str, run: MethodRun, table: str) -> dict[str, Any]:
    """env, method (marked "(ours)" where the paper's ``table`` has no such row), N_I, ∇G,
    ES."""
    m = run.method
    dampc = m.checkpoint in ("dampc", "dampc40")
    return {
        "env": env_key,
        "method": m.label(table),
        "N_I": run.n_steps if dampc else "-",
        "∇G": _yes(m.guidance) if dampc else "-",
        "ES": _yes(m.early_stop) if dampc else "-",
    }


TRACKING_COLUMNS = (
    "ATE [mm]",
    "ARE [deg]",
    "SR [%]",
    "SR 95% CI",
    "TRT [s]",
    "episodes",
    "self-collision [%]",
    "policy failures",
)


def tracking_row(env_key: str, run: MethodRun, table: str = _T1) -> dict[str, Any]:
    s = summarize_episodes(run.results)
    return {**method_columns(env_key, run, table), **{k: s[k] for k in TRACKING_COLUMNS}}


def _jerk_stats(jerks: Sequence[np.ndarray], rate: str) -> dict[str, float]:
    j = np.concatenate(jerks) if jerks else np.zeros(0)
    nan = float("nan")
    return {
        f"median jerk @{rate} [rad/s^3]": float(np.median(j)) if j.size else nan,
        f"p90 jerk @{rate} [rad/s^3]": float(np.percentile(j, 90)) if j.size else nan,
    }


def smoothness_row(
    env_key: str, run: MethodRun, control_dt: float, jerk_rate_hz: float = 0.0
) -> dict[str, Any]:
    """Table III: mode swaps (the paper's definition), jerk at the run's rate and at
    ``jerk_rate_hz`` (when > 0), and the (ours) RMS-jump proxy."""

    def mean(key: str) -> float:
        v = [e[key] for e in run.extras if key in e]
        return float(np.mean(v)) if v else float("nan")

    row = {
        **method_columns(env_key, run, _T3),
        "mode swaps / episode": mean("mode_swaps"),
        "mode swaps [% of transitions]": mean("mode_swaps_pct"),
        "modes chosen / episode": mean("modes_chosen"),
        **_jerk_stats(run.jerks, _hz(control_dt)),
    }
    if jerk_rate_hz > 0:
        row |= _jerk_stats(run.rate_jerks, f"{jerk_rate_hz:g} Hz")
    row["RMS-jump swaps / episode (ours)"] = mean("rms_jump_swaps")
    return row


def sampling_row(env_key: str, run: MethodRun, obstacle: bool) -> dict[str, Any]:
    row = tracking_row(env_key, run, _T5)
    for k in ("N_I", "self-collision [%]", "policy failures"):
        row.pop(k)
    m = run.method
    dampc = m.checkpoint in ("dampc", "dampc40")
    name = m.name.removesuffix(f" {m.selection}")
    row = {
        "env": env_key,
        "method": name if _T5 in m.paper else f"{name} (ours)",
        "sampling": m.selection if dampc else "-",
        **{k: v for k, v in row.items() if k not in ("env", "method")},
    }
    if obstacle:
        for tol in (0.10, 0.01):
            c = constraint_success(run.results, tol)
            row[f"{tol:.0%} pen. SR [%]"] = c["SR [%]"]
            row[f"{tol:.0%} pen. 95% CI"] = c["95% CI"]
    return row


def timing_rows(
    env_key: str, runs: Sequence[MethodRun], device: str, mpc: dict[str, float] | None
) -> list[dict[str, Any]]:
    """act() time rows (warm-up excluded) with speed-ups vs the MPC's warm solves."""
    nan = float("nan")
    rows = []
    if mpc is not None and device == "cpu":
        rows.append(
            {
                "env": env_key,
                "method": "MPC (warm solve)",
                "device": "cpu",
                "samples": "-",
                "mean [ms]": mpc["warm solve mean [ms]"],
                "p95 [ms]": mpc["warm solve p95 [ms]"],
                "max [ms]": mpc["warm solve max [ms]"],
                "speed-up p95": 1.0,
                "speed-up max": 1.0,
            }
        )
    for run in runs:
        t = 1000.0 * np.concatenate([r.act_times for r in run.results])
        mean, p95, mx = float(np.mean(t)), float(np.percentile(t, 95)), float(np.max(t))
        rows.append(
            {
                "env": env_key,
                "method": run.method.label(_T4),
                "device": device,
                "samples": run.samples,
                "mean [ms]": mean,
                "p95 [ms]": p95,
                "max [ms]": mx,
                "speed-up p95": mpc["warm solve p95 [ms]"] / p95 if mpc else nan,
                "speed-up max": mpc["warm solve max [ms]"] / mx if mpc else nan,
            }
        )
    return rows


def gap_row(env_key: str, run: MethodRun) -> dict[str, Any]:
    g = np.array(run.gaps)
    nan = float("nan")
    return {
        "env": env_key,
        "method": run.method.name,
        "states": len(g),
        "gap mean": float(g.mean()) if g.size else nan,
        "gap median": float(np.median(g)) if g.size else nan,
        "policy better [%]": 100.0 * float(np.mean(g < -GAP_TOL)) if g.size else nan,
    }


# ----------------------------------------------------------------------------- the benchmark
@dataclass
class EnvReport:
    """Everything one env contributes to the run's tables."""

    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    per_method: dict[str, list[EpisodeResult]] = field(default_factory=dict)
    extras: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def selected_methods(cfg: KukaBenchConfig) -> list[Method]:
    unknown = sorted(set(cfg.methods) - set(METHOD_KEYS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {list(METHOD_KEYS)}")
    return [m for m in METHODS if not cfg.methods or m.key in cfg.methods]


def bench_env(env_key: str, cfg: KukaBenchConfig, out: Path) -> EnvReport:
    """All methods on one env: closed loops, gaps, CUDA timing, plots; returns the rows."""
    import gymnasium as gym
    import torch

    import ampczoo  # noqa: F401  (registers the envs)
    from ampczoo.experts.mpc import MPCConfig, MPCExpert

    env = gym.make(
        ENVS[env_key],
        control_dt=cfg.control_dt,
        episode_seconds=cfg.episode_seconds,
        **cfg.env_kwargs(env_key),
    )
    obs_dim = int(np.prod(env.observation_space.shape))
    obstacle = env_key == "obstacle"
    methods = selected_methods(cfg)
    needed = sorted({m.checkpoint for m in methods} - {"mpc"})
    policies, notes = load_checkpoints(cfg, env_key, obs_dim, "cpu", needed)
    mpc_cfg = MPCConfig(
        solver=cfg.mpc_solver,
        compile=cfg.mpc_compile,
        obstacle=obstacle,
        seed=cfg.seed,
        cold_start=cfg.mpc_cold_start,
    )
    expert = MPCExpert(mpc_cfg)
    gap_expert = MPCExpert(mpc_cfg)
    report = EnvReport(notes=notes)
    rate_env = None
    if cfg.jerk_rate_hz > 0 and any(_T3 in m.tables for m in methods):
        rate_env = gym.make(
            ENVS[env_key],
            control_dt=1.0 / cfg.jerk_rate_hz,
            episode_seconds=cfg.stats_seconds or cfg.episode_seconds,
            **cfg.env_kwargs(env_key),
        )
    runs: list[MethodRun] = []
    for m in methods:
        if m.checkpoint != "mpc" and m.checkpoint not in policies:
            report.notes.append(f"[{env_key}] skipped {m.name!r}: no --{m.checkpoint} checkpoint")
            continue
        pol = expert if m.checkpoint == "mpc" else policy_for(m, policies)
        progress = f"{env_key} | {m.name}"
        run = run_method(m, pol, env, cfg, cfg.episodes, progress, mode_expert=gap_expert)
        run.gaps = optimality_gaps(gap_expert, run.gap_states, seed=cfg.seed)
        if rate_env is not None and _T3 in m.tables:
            run.rate_jerks = rate_jerks(
                m, pol, rate_env, cfg, progress=f"{progress} | {cfg.jerk_rate_hz:g} Hz"
            )
        runs.append(run)
    if rate_env is not None:
        rate_env.close()
    mpc_stats = next((r.solve_stats for r in runs if r.solve_stats), None)
    timed = [r for r in runs if _T4 in r.method.tables]
    report.tables["tracking"] = [tracking_row(env_key, r) for r in runs if _T1 in r.method.tables]
    report.tables["smoothness"] = [
        smoothness_row(env_key, r, cfg.control_dt, cfg.jerk_rate_hz)
        for r in runs
        if _T3 in r.method.tables
    ]
    report.tables["sampling"] = [
        sampling_row(env_key, r, obstacle) for r in runs if _T5 in r.method.tables
    ]
    report.tables["timing"] = timing_rows(env_key, timed, "cpu", mpc_stats)
    if cfg.cuda and torch.cuda.is_available():
        report.tables["timing"] += timing_rows(
            env_key,
            cuda_runs(env_key, env, cfg, [r.method for r in timed], obs_dim),
            "cuda",
            mpc_stats,
        )
    report.tables["gap"] = [gap_row(env_key, r) for r in runs]
    for r in runs:
        report.per_method[f"{env_key}/{r.method.name}"] = r.results
        report.extras[f"{env_key}/{r.method.name}"] = r.extras
    _plots(
        env_key,
        env,
        cfg,
        out,
        runs,
        expert if any(r.method.checkpoint == "mpc" for r in runs) else None,
        policies,
    )
    env.close()
    return report


def cuda_runs(
    env_key: str, env: Any, cfg: KukaBenchConfig, methods: Sequence[Method], obs_dim: int
) -> list[MethodRun]:
    """The timed methods again on CUDA (``cfg.timing_episodes`` episodes each)."""
    needed = sorted({m.checkpoint for m in methods} - {"mpc"})
    policies, _ = load_checkpoints(cfg, env_key, obs_dim, "cuda", needed)
    runs = []
    for m in methods:
        if m.checkpoint in policies:
            runs.append(
                run_method(
                    m,
                    policy_for(m, policies),
                    env,
                    cfg,
                    cfg.timing_episodes,
                    progress=f"{env_key} | {m.name} | cuda",
                    modes=False,
                )
            )
    return runs


def _plots(
    env_key: str,
    env: Any,
    cfg: KukaBenchConfig,
    out: Path,
    runs: list[MethodRun],
    expert: Any,
    policies: dict[str, Any],
) -> None:
    per = {r.method.name: r.results for r in runs}
    plot_tracking_errors(
        per,
        cfg.control_dt,
        out / f"tracking_error_{env_key}.png",
        title=f"{ENVS[env_key]}: end-effector error (median, 10-90 %)",
    )
    if env_key == "obstacle":
        plot_cdf(
            {k: [r.max_penetration for r in v] for k, v in per.items()},
            out / f"penetration_cdf_{env_key}.png",
            scale=100.0,
            xlabel="max. obstacle penetration per episode [% of radius]",
            title="closed-loop obstacle penetration (CDF)",
        )
    pts, target, obstacle = heatmap_points(env, cfg, expert, policies)
    plot_position_heatmaps(
        pts,
        out / f"heatmap_{env_key}.png",
        target=target,
        obstacle=obstacle,
        title=f"{ENVS[env_key]}: open-loop end-effector density (seed "
        f"{cfg.seed}, dt {cfg.heatmap_dt} s)",
    )


TABLE_FILES = {
    "tracking": ("table1_tracking", "Table I: closed-loop tracking (ATE/ARE/TRT over successes)"),
    "smoothness": (
        "table3_smoothness",
        "Table III: mode swaps (changes of the chosen local minimum) and jerk",
    ),
    "sampling": (
        "table5_sampling",
        "Tables V + VI: sampling strategies, tracking and constraint satisfaction",
    ),
    "timing": ("table4_timing", "Tables IV + VII: act() time vs warm MPC solve"),
    "gap": (
        "optimality_gap",
        "Optimality gap: expert cost of the policy's sequence minus "
        "the expert optimum (open loop, visited states)",
    ),
}


def run_kuka_benchmark(cfg: KukaBenchConfig) -> Path:
    """Run the benchmark; returns the run folder ``<out>/bench-kuka-<date>/``."""
    selected_methods(cfg)  # validate before creating the folder
    out = make_run_dir("bench-kuka", cfg.out)
    with single_thread():
        reports = [bench_env(e, cfg, out) for e in cfg.envs]
    notes = [n for r in reports for n in r.notes]
    for n in notes:
        print(f"note: {n}")
    md = ""
    for key, (name, title) in TABLE_FILES.items():
        rows = [row for r in reports for row in r.tables.get(key, [])]
        if rows:
            md += write_table(rows, out, name, title=title) + "\n"
    write_episodes_json(
        out / "episodes.json",
        {k: v for r in reports for k, v in r.per_method.items()},
        {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        extras={k: v for r in reports for k, v in r.extras.items()},
    )
    skipped = "".join(f"- {n}\n" for n in notes)
    (out / "README.md").write_text(
        f"Command: `{command_line()}`\n\n" + (f"Skipped:\n\n{skipped}\n" if notes else "") + md
    )
    print(md)
    print(f"wrote {out}\ncommand: {command_line()}")
    return out
