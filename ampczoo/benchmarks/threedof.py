"""``ampczoo bench threedof``: IK-MPC expert vs the FFN / LSTM / GRU / Transformer policies on
``ThreeDOF-Reach-v0`` (the 3-DOF paper's evaluation).

Every method runs in closed loop on the same targets (reset seeds ``seed .. seed+n-1``: the
same start state and target for every method), 4 s episodes at 50 Hz, with a fresh
``reset()`` (history buffer / hidden state / warm start cleared) at every episode.

Metrics per episode (end-effector position error e_k = ||p_EE,k − p_des|| after step k):

- ``RMSE_p`` [mm] = sqrt(mean_k e_k²) over the whole episode (paper §7);
- final error [mm] and success at 2 / 3 / 5 cm (final error below the threshold, the
  authors' public evaluation) with 95 % Wilson intervals; ``SR env`` additionally needs
  ||q̇|| < 0.1 rad/s at the end (the env's ``success``);
- settling time ``t95`` [s]: the first time after which e_k stays at or below 5 % of the
  initial error e_0 (nan if it does not settle; mean over settled episodes);
- ``act`` time mean / p95 [ms] per step (the expert: IK + solve; networks: one ``act``
  including numpy<->torch), with ``torch.set_num_threads(1)``, and speed-ups mean expert
  time / mean method time against both experts (QP via OSQP, IPOPT) of the same run.

Tables (markdown + CSV): ``table_main`` (all methods, in-distribution targets),
``table_ablation`` (history length H of the ``--ablation`` checkpoints), ``table_ood``
(targets near the workspace boundary and the singular configurations, env
``target_region="ood"``, with the success degradation in percentage points and relative).
Plot ``error_vs_time.png``: median error with 10-90 % band per method. ``episodes.json``: every
episode's seed and metrics per method.

Example::

    ampczoo bench threedof --episodes 1000
    ampczoo bench threedof --quick                 # 30 targets, 20 OOD targets
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ampczoo.benchmarks.common import (
    Rollout,
    command_line,
    make_run_dir,
    rollout,
    single_thread,
    wilson_interval,
    write_episodes_json,
    write_table,
)

ENV_ID = "ThreeDOF-Reach-v0"
ARCHS = ("ffn", "lstm", "gru", "transformer")
THRESHOLDS = (0.02, 0.03, 0.05)  # [m]


def zoo_name(arch: str, history: int = 10) -> str:
    """Zoo name of the shipped history policy of type ``arch`` with ``history`` steps, from
    the zoo index (the :data:`ENV_ID` checkpoint of that model whose config has that
    history), e.g. ``threedof-gru-h10``; ``threedof-<arch>-h<history>`` if none is shipped."""
    from ampczoo.core.checkpoint import read_config
    from ampczoo.core.registry import ZOO_DIR, list_policies

    for name in list_policies(env=ENV_ID, model=arch):
        if read_config(ZOO_DIR / name).get("history") == history:
            return name
    return f"threedof-{arch}-h{history}"


#: solvers of the IK-MPC expert (:data:`ampczoo.experts.ikmpc.SOLVERS`; a test checks it)
ExpertSolver = Literal["osqp", "proxqp", "qpoases", "hpipm", "qrqp", "ipopt"]


@dataclass(frozen=True)
class ThreeDOFBenchConfig:
    """``ampczoo bench threedof``: IK-MPC expert vs the FFN / LSTM / GRU / Transformer
    policies on ThreeDOF-Reach-v0."""

    episodes: int = 1000
    """in-distribution targets (reset seeds seed .. seed+episodes-1)"""
    seed: int = 100_000
    """reset seed of the first in-distribution target"""
    ood_episodes: int = 200
    """targets near the workspace boundary and the singular configurations (0 = no OOD
    table)"""
    ood_seed: int = 200_000
    """reset seed of the first OOD target"""
    policies: tuple[str, ...] = tuple(zoo_name(a) for a in ARCHS)
    """checkpoint folders or zoo names of the networks (default: the four shipped H = 10
    ones)"""
    ablation: tuple[str, ...] = ()
    """H=PATH checkpoints of the history ablation, e.g. 1=runs/train-threedof-ffn-h1/best"""
    experts: tuple[ExpertSolver, ...] = ("osqp", "ipopt")
    """solvers of the IK-MPC expert rows"""
    stateful: bool = False
    """also run every recurrent checkpoint with ``recurrent_mode="stateful"`` (hidden state
    carried across the steps of the episode instead of re-running the H-window)"""
    quick: bool = False
    """smoke run: at most 30 targets and 20 OOD targets"""
    out: str = "runs"
    """parent folder of the run folder"""

    def __post_init__(self) -> None:
        if self.quick:
            object.__setattr__(self, "episodes", min(self.episodes, 30))
            object.__setattr__(self, "ood_episodes", min(self.ood_episodes, 20))
        if self.episodes < 1 or self.ood_episodes < 0:
            raise ValueError("episodes must be >= 1 and ood_episodes >= 0")
        for entry in self.ablation:
            h, sep, _ = entry.partition("=")
            if not sep or not h.isdigit():
                raise ValueError(f"ablation entries are H=PATH, got {entry!r}")


@dataclass
class ReachEpisode:
    """One closed-loop episode of a method. errors: (T,) position error after each step
    [m]; act_times: (T,) [s]."""

    seed: int
    final_error: float  # [m]
    rmse: float  # [m]
    t95: float  # [s], nan if it never settles
    env_success: bool
    initial_error: float  # [m]
    errors: np.ndarray = field(repr=False)
    act_times: np.ndarray = field(repr=False)
    policy_failures: int = 0

    @classmethod
    def from_rollout(cls, r: Rollout) -> ReachEpisode:
        """The reach metrics of a rollout of ``ThreeDOF-Reach-v0`` (info ``pos_error`` at
        the reset and after every step, ``success`` at the last step)."""
        err = r.info_series("pos_error")
        e0 = r.reset_info["pos_error"]
        return cls(
            seed=r.seed,
            final_error=float(err[-1]),
            rmse=float(np.sqrt(np.mean(err**2))),
            t95=settling_time(err, e0, r.control_dt),
            env_success=bool(r.final_info["success"]),
            initial_error=float(e0),
            errors=err,
            act_times=r.act_times,
            policy_failures=r.policy_failures,
        )

    def to_json(self) -> dict[str, Any]:
        """Scalars only."""
        return {k: v for k, v in asdict(self).items() if not isinstance(v, np.ndarray)}


def settling_time(errors: np.ndarray, initial: float, dt: float, frac: float = 0.05) -> float:
    """First time [s] after which ``errors`` (T,) stay <= frac * initial; nan if the last
    error is above it."""
    inside = errors <= frac * initial
    if not inside[-1]:
        return float("nan")
    outside = np.flatnonzero(~inside)
    first = 0 if outside.size == 0 else outside[-1] + 1
    return float((first + 1) * dt)


def run_method(policy: Any, seeds: Sequence[int], region: str = "nominal") -> list[ReachEpisode]:
    """Episodes of one method over ``seeds`` (one env, target region ``region``)."""
    import gymnasium as gym

    import ampczoo.envs  # noqa: F401

    env = gym.make(ENV_ID, target_region=region)
    try:
        return [ReachEpisode.from_rollout(rollout(env, policy, s)) for s in seeds]
    finally:
        env.close()


def summarize(results: Sequence[ReachEpisode]) -> dict[str, Any]:
    """The table columns of one method (see the module docstring)."""
    n = len(results)
    final = np.array([r.final_error for r in results])
    times = np.concatenate(
        [r.act_times[1:] if len(r.act_times) > 1 else r.act_times for r in results]
    )
    row: dict[str, Any] = {
        "episodes": n,
        "RMSE_p [mm]": 1000 * float(np.mean([r.rmse for r in results])),
        "final err median [mm]": 1000 * float(np.median(final)),
    }
    for thr in THRESHOLDS:
        k = int(np.sum(final < thr))
        lo, hi = wilson_interval(k, n)
        row[f"SR@{round(thr * 100)}cm [%]"] = 100.0 * k / n
        row[f"SR@{round(thr * 100)}cm 95% CI"] = f"[{100 * lo:.1f}, {100 * hi:.1f}]"
    row["SR env [%]"] = 100.0 * float(np.mean([r.env_success for r in results]))
    t95 = [r.t95 for r in results if math.isfinite(r.t95)]
    row["t95 [s]"] = float(np.mean(t95)) if t95 else float("nan")
    row["act mean [ms]"] = 1000 * float(np.mean(times))
    row["act p95 [ms]"] = 1000 * float(np.percentile(times, 95))
    row["failures"] = int(sum(r.policy_failures for r in results))
    return row


def plot_error_vs_time(
    per_method: dict[str, Sequence[ReachEpisode]], dt: float, path: Path, title: str
) -> None:
    """Median position error over time with 10-90 % bands, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4), constrained_layout=True)
    for name, results in per_method.items():
        T = min(len(r.errors) for r in results)
        E = 1000 * np.stack([r.errors[:T] for r in results])
        lo, med, hi = np.percentile(E, [10, 50, 90], axis=0)
        t = dt * np.arange(1, T + 1)
        (line,) = ax.plot(t, med, label=name)
        ax.fill_between(t, lo, hi, alpha=0.15, color=line.get_color())
    ax.axhline(20, ls=":", c="k", lw=0.8)
    ax.set(xlabel="time [s]", ylabel="end-effector error [mm]", yscale="log", title=title)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------- the run
def _experts(cfg: ThreeDOFBenchConfig) -> dict[str, Any]:
    from ampczoo.experts.ikmpc import IKMPCConfig, IKMPCExpert

    names = {"osqp": "IK-MPC (OSQP)", "ipopt": "IK-MPC (IPOPT)"}
    return {names.get(s, f"IK-MPC ({s})"): IKMPCExpert(IKMPCConfig(solver=s)) for s in cfg.experts}


def _load(spec: str) -> tuple[str, Any] | None:
    """(row name, policy) of a checkpoint, or None (printed) if it does not exist."""
    from ampczoo.core.registry import load_policy

    try:
        policy = load_policy(spec, device="cpu")
    except (FileNotFoundError, ValueError) as exc:
        print(f"bench threedof: skipping {spec}: {exc}")
        return None
    c = policy.config
    mode = getattr(c, "recurrent_mode", "window")
    name = f"{c.type.upper() if c.type != 'transformer' else 'Transformer'} H={c.history}"
    return name + (" stateful" if mode == "stateful" else ""), policy


def _speedups(rows: list[dict[str, Any]], expert_rows: dict[str, dict[str, Any]]) -> None:
    for row in rows:
        for name, er in expert_rows.items():
            solver = name.split("(")[-1].rstrip(")")
            row[f"speed-up vs {solver}"] = er["act mean [ms]"] / row["act mean [ms]"]


def run_threedof_bench(cfg: ThreeDOFBenchConfig) -> Path:
    """Run the benchmark; returns the run folder (tables, plot, episodes.json)."""
    with single_thread():
        return _run(cfg)


def _run(cfg: ThreeDOFBenchConfig) -> Path:
    out = make_run_dir("bench-threedof", cfg.out)
    seeds = list(range(cfg.seed, cfg.seed + cfg.episodes))
    methods = dict(_experts(cfg))
    for spec in cfg.policies:
        loaded = _load(spec)
        if loaded:
            methods[loaded[0]] = loaded[1]
            if cfg.stateful and hasattr(loaded[1].config, "recurrent_mode"):
                stateful = _load(spec)[1]  # type: ignore[index]
                stateful.config = replace(stateful.config, recurrent_mode="stateful")
                methods[loaded[0] + " stateful"] = stateful
    results: dict[str, list[ReachEpisode]] = {}
    rows = []
    for name, policy in methods.items():
        t0 = time.perf_counter()
        results[name] = run_method(policy, seeds)
        rows.append({"method": name, **summarize(results[name])})
        print(f"  {name}: {time.perf_counter() - t0:.0f} s")
    expert_rows = {r["method"]: r for r in rows if r["method"].startswith("IK-MPC")}
    _speedups(rows, expert_rows)
    text = write_table(rows, out, "table_main", f"ThreeDOF-Reach-v0, {cfg.episodes} targets")
    text += _ablation(cfg, seeds, results, out)
    text += _ood(cfg, methods, results, rows, out)
    plot_error_vs_time(
        {k: v for k, v in results.items() if "@" not in k},
        0.02,
        out / "error_vs_time.png",
        "ThreeDOF-Reach-v0: error vs time",
    )
    write_episodes_json(out / "episodes.json", results, {"config": asdict(cfg), "env": ENV_ID})
    print(text)
    print(f"wrote {out}\ncommand: {command_line()}")
    return out


def _ablation(
    cfg: ThreeDOFBenchConfig, seeds: list[int], results: dict[str, list[ReachEpisode]], out: Path
) -> str:
    rows = []
    for entry in cfg.ablation:
        h, _, spec = entry.partition("=")
        loaded = _load(spec)
        if not loaded:
            continue
        name, policy = loaded
        if policy.config.history != int(h):
            raise ValueError(
                f"ablation entry {entry}: checkpoint has history {policy.config.history}"
            )
        key = f"{name} @ablation"
        results[key] = run_method(policy, seeds)
        rows.append({"method": name, "H": int(h), **summarize(results[key])})
    if not rows:
        return ""
    rows.sort(key=lambda r: (r["method"].split()[0], r["H"]))
    return "\n" + write_table(rows, out, "table_ablation", "History length H")


def _ood(
    cfg: ThreeDOFBenchConfig,
    methods: dict[str, Any],
    results: dict[str, list[ReachEpisode]],
    main_rows: list[dict[str, Any]],
    out: Path,
) -> str:
    if cfg.ood_episodes == 0:
        return ""
    seeds = list(range(cfg.ood_seed, cfg.ood_seed + cfg.ood_episodes))
    by_name = {r["method"]: r for r in main_rows}
    rows = []
    for name, policy in methods.items():
        key = f"{name} @ood"
        results[key] = run_method(policy, seeds, region="ood")
        ood = summarize(results[key])
        row = {
            "method": name,
            "SR@2cm in-dist [%]": by_name[name]["SR@2cm [%]"],
            "SR@2cm OOD [%]": ood["SR@2cm [%]"],
            "OOD 95% CI": ood["SR@2cm 95% CI"],
        }
        row["degradation [pp]"] = row["SR@2cm in-dist [%]"] - row["SR@2cm OOD [%]"]
        base = row["SR@2cm in-dist [%]"]
        row["degradation [%]"] = 100 * row["degradation [pp]"] / base if base else float("nan")
        row["RMSE_p OOD [mm]"] = ood["RMSE_p [mm]"]
        row["SR@5cm OOD [%]"] = ood["SR@5cm [%]"]
        rows.append(row)
    return "\n" + write_table(
        rows, out, "table_ood", f"Out-of-distribution targets ({cfg.ood_episodes})"
    )
