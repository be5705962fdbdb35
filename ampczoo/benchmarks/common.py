"""Shared evaluation machinery: the closed-loop episode runner (:func:`rollout`), tracking
metrics, Wilson intervals and run folders with markdown + CSV tables. Every leaderboard in
ampczoo builds on this file.

Metric definitions (KUKA tracking, as in the DAMPC paper's Table I):
- success: final position error < 20 mm and final rotation error < 5.7 deg;
- ATE [mm] / ARE [deg]: final position / rotation error, averaged over successful episodes;
- TRT [s]: transient response time, the first time after which the pose error stays inside
  the success region until the end of the episode (successful episodes only).
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ampczoo.core.stats import wilson_interval  # noqa: F401  (re-exported: the benchmarks' import)
from ampczoo.nn.sequence import shift_sequence
from ampczoo.robots.kuka import SUCCESS_POS, SUCCESS_ROT


@dataclass
class Rollout:
    """One closed-loop episode as the env and the policy produced it (no metrics yet): the
    input of every benchmark's per-episode summary (:class:`EpisodeResult` for the KUKA
    envs, ``ReachEpisode`` for the 3-DOF arm) and of ``ampczoo eval``.

    T = number of steps taken (until ``terminated`` or ``truncated``)."""

    seed: int
    observations: list[Any] = field(repr=False)  # T + 1: the reset observation first
    actions: np.ndarray = field(repr=False)  # (T, action_dim) as returned by act()
    rewards: np.ndarray = field(repr=False)  # (T,)
    reset_info: dict[str, Any] = field(repr=False)  # info of reset()
    infos: list[dict[str, Any]] = field(repr=False)  # T: info after every step
    act_times: np.ndarray = field(repr=False)  # (T,) wall time of policy.act(obs) [s]
    terminated: bool
    truncated: bool
    policy_failures: int  # increase of the policy's ``n_failures`` over the episode
    control_dt: float  # env step [s] (nan if the env does not expose ``control_dt``)

    @property
    def length(self) -> int:
        """Steps taken, T."""
        return len(self.actions)

    @property
    def episode_return(self) -> float:
        """Sum of the rewards."""
        return float(np.sum(self.rewards))

    @property
    def final_info(self) -> dict[str, Any]:
        """The info of the last step (of reset() for an episode without steps)."""
        return self.infos[-1] if self.infos else self.reset_info

    def info_series(self, key: str) -> np.ndarray:
        """``info[key]`` after every step, (T, ...)."""
        return np.asarray([info[key] for info in self.infos])

    def env_success(self) -> bool | None:
        """``info["success"]`` of the last step, None when the env does not report it."""
        value = self.final_info.get("success")
        return None if value is None else bool(value)


def rollout(
    env: Any,
    policy: Any,
    seed: int,
    options: dict | None = None,
    frame_callback: Callable[[np.ndarray], None] | None = None,
) -> Rollout:
    """Roll out ``policy`` (``act(obs)``, ``reset(seed)``) in ``env`` from ``reset(seed=seed,
    options=options)`` until ``terminated`` or ``truncated``: the one closed-loop episode
    runner of every benchmark. Only ``policy.act(obs)`` is inside the timed block.
    ``frame_callback`` receives ``env.render()`` after the reset and after every step."""
    obs, reset_info = env.reset(seed=seed, options=options)
    policy.reset(seed=seed)
    failures0 = getattr(policy, "n_failures", 0)
    observations, actions, rewards, infos, times = [obs], [], [], [], []
    if frame_callback is not None:
        frame_callback(env.render())
    terminated = truncated = False
    while not (terminated or truncated):
        t0 = time.perf_counter()
        action = policy.act(obs)
        times.append(time.perf_counter() - t0)
        obs, reward, terminated, truncated, info = env.step(action)
        actions.append(np.asarray(action, float))
        observations.append(obs)
        rewards.append(float(reward))
        infos.append(info)
        if frame_callback is not None:
            frame_callback(env.render())
    return Rollout(
        seed=seed,
        observations=observations,
        actions=np.array(actions),
        rewards=np.array(rewards),
        reset_info=reset_info,
        infos=infos,
        act_times=np.array(times),
        terminated=bool(terminated),
        truncated=bool(truncated),
        policy_failures=getattr(policy, "n_failures", 0) - failures0,
        control_dt=float(getattr(env.unwrapped, "control_dt", float("nan"))),
    )


@dataclass
class EpisodeResult:
    """One closed-loop episode. Time series are per control step (T,)."""

    seed: int
    success: bool
    final_pos_error: float  # [m]
    final_rot_error: float  # [rad]
    trt: float  # [s], nan if never settled
    max_penetration: float  # fraction of the obstacle radius
    self_collision: bool
    pos_errors: np.ndarray = field(repr=False)  # [m]
    rot_errors: np.ndarray = field(repr=False)  # [rad]
    act_times: np.ndarray = field(repr=False)  # [s]
    actions: np.ndarray = field(repr=False)  # (T, 7)
    policy_failures: int = 0

    @classmethod
    def from_rollout(cls, r: Rollout) -> EpisodeResult:
        """KUKA tracking metrics of a rollout. The env must report ``pos_error``,
        ``rot_error`` and may report ``penetration``, ``self_collision`` in ``info`` (the KUKA
        tracking envs do); the reset's info counts for penetration and collision."""
        pos, rot = r.info_series("pos_error"), r.info_series("rot_error")
        all_infos = [r.reset_info, *r.infos]
        return cls(
            seed=r.seed,
            success=bool(pos[-1] < SUCCESS_POS and rot[-1] < SUCCESS_ROT),
            final_pos_error=float(pos[-1]),
            final_rot_error=float(rot[-1]),
            trt=transient_response_time(pos, rot, r.control_dt),
            max_penetration=float(max(i.get("penetration", 0.0) for i in all_infos)),
            self_collision=any(bool(i.get("self_collision", False)) for i in all_infos),
            pos_errors=pos,
            rot_errors=rot,
            act_times=r.act_times,
            actions=r.actions,
            policy_failures=r.policy_failures,
        )

    def to_json(self) -> dict[str, Any]:
        """Scalars only (per-episode JSON of a benchmark run)."""
        return {
            k: (bool(v) if isinstance(v, np.bool_) else v)
            for k, v in asdict(self).items()
            if not isinstance(v, np.ndarray)
        }


def transient_response_time(pos_err: np.ndarray, rot_err: np.ndarray, dt: float) -> float:
    """First time [s] after which both errors stay inside the success region; nan if the
    last step is outside it. pos_err, rot_err: (T,) errors after each step."""
    inside = (pos_err < SUCCESS_POS) & (rot_err < SUCCESS_ROT)
    if not inside[-1]:
        return float("nan")
    outside = np.flatnonzero(~inside)
    first_settled = 0 if outside.size == 0 else outside[-1] + 1
    return float((first_settled + 1) * dt)


@contextmanager
def single_thread() -> Iterator[None]:
    """torch on one thread inside the block (batch-1 act() timings on a CPU shared with the
    simulator and other jobs), restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_episode(
    env: Any,
    policy: Any,
    seed: int,
    options: dict | None = None,
    frame_callback: Callable[[np.ndarray], None] | None = None,
) -> EpisodeResult:
    """:func:`rollout` summarised as an :class:`EpisodeResult` (KUKA tracking envs)."""
    return EpisodeResult.from_rollout(rollout(env, policy, seed, options, frame_callback))


def summarize_episodes(results: Sequence[EpisodeResult]) -> dict[str, float]:
    """Success rate with Wilson interval [%], ATE [mm], ARE [deg], TRT [s] over successes,
    act() time mean/p95 [ms], collisions and penetration."""
    n = len(results)
    ok = [r for r in results if r.success]
    lo, hi = wilson_interval(len(ok), n)
    times = np.concatenate([r.act_times for r in results]) if results else np.array([np.nan])

    def mean_over_success(f: Callable[[EpisodeResult], float]) -> float:
        vals = [f(r) for r in ok]
        return float(np.nanmean(vals)) if vals else float("nan")

    return {
        "episodes": n,
        "SR [%]": 100.0 * len(ok) / max(n, 1),
        "SR 95% CI": f"[{100 * lo:.1f}, {100 * hi:.1f}]",
        "ATE [mm]": 1000.0 * mean_over_success(lambda r: r.final_pos_error),
        "ARE [deg]": math.degrees(mean_over_success(lambda r: r.final_rot_error)),
        "TRT [s]": mean_over_success(lambda r: r.trt),
        "act mean [ms]": 1000.0 * float(np.mean(times)),
        "act p95 [ms]": 1000.0 * float(np.percentile(times, 95)),
        "self-collision [%]": 100.0 * np.mean([r.self_collision for r in results]),
        "max penetration [%]": 100.0 * max((r.max_penetration for r in results), default=0.0),
        "policy failures": int(sum(r.policy_failures for r in results)),
    }


def make_run_dir(prefix: str, root: str | Path = "runs") -> Path:
    """``runs/<prefix>-<UTC date-time>/``, created; records the command that made it."""
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    out = Path(root) / f"{prefix}-{stamp}"
    out.mkdir(parents=True, exist_ok=False)
    (out / "command.txt").write_text(command_line() + "\n")
    return out


def command_line() -> str:
    """The command line of this process, shell-quoted, no folder of this machine in it
    (printed with every benchmark; :func:`ampczoo.core.card.command_line`)."""
    from ampczoo.core import card

    return card.command_line()


def format_value(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3g}" if abs(v) < 1e-2 and v != 0 else f"{v:.2f}"
    return str(v)


def write_table(
    rows: Sequence[dict[str, Any]], out_dir: Path, name: str, title: str | None = None
) -> str:
    """Write ``name.md`` and ``name.csv`` (same columns, union of keys in order); returns the
    markdown text."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(out_dir / f"{name}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"### {title}", ""] if title else []
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(format_value(r.get(c, "")) for c in columns) + " |" for r in rows]
    text = "\n".join(lines) + "\n"
    (out_dir / f"{name}.md").write_text(text)
    return text


def write_episodes_json(
    path: Path,
    per_method: dict[str, Sequence[EpisodeResult]],
    meta: dict[str, Any],
    extras: dict[str, Sequence[dict[str, Any]]] | None = None,
) -> None:
    """Per-episode seeds and metrics of every method, so two runs compare episode by episode.
    extras: optional per-method, per-episode dicts of further scalars merged into each
    episode's entry (same order as ``per_method``)."""
    extras = extras or {}

    def entries(k: str, v: Sequence[EpisodeResult]) -> list[dict[str, Any]]:
        more = list(extras.get(k, [])) or [{}] * len(v)
        return [{**r.to_json(), **e} for r, e in zip(v, more, strict=True)]

    payload = {
        "meta": meta,
        "command": command_line(),
        "episodes": {k: entries(k, v) for k, v in per_method.items()},
    }
    path.write_text(json.dumps(payload, indent=1, default=float))


def plot_tracking_errors(
    per_method: dict[str, Sequence[EpisodeResult]],
    dt: float | Mapping[str, float],
    path: Path,
    title: str = "",
) -> None:
    """Median end-effector position/rotation error over time with 10–90 % bands; the legend
    sits below both panels (two columns), so it never covers a curve. ``dt``: the control
    period [s], one for all methods or one per method name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name, results in per_method.items() if results]
    legend_rows = math.ceil(len(names) / 2)
    fig, axes = plt.subplots(
        1, 2, figsize=(10, 3.6 + 0.25 * legend_rows), constrained_layout=True, squeeze=True
    )
    for name in names:
        results = per_method[name]
        T = min(len(r.pos_errors) for r in results)
        step = dt[name] if isinstance(dt, Mapping) else dt
        t = step * np.arange(1, T + 1)
        panels = ((axes[0], "pos_errors", 1000.0), (axes[1], "rot_errors", 180 / np.pi))
        for ax, key, scale in panels:
            E = scale * np.stack([getattr(r, key)[:T] for r in results])
            lo, med, hi = np.percentile(E, [10, 50, 90], axis=0)
            (line,) = ax.plot(t, med, label=name if ax is axes[0] else None)
            ax.fill_between(t, lo, hi, alpha=0.2, color=line.get_color())
    axes[0].set(xlabel="time [s]", ylabel="position error [mm]", yscale="log")
    axes[1].set(xlabel="time [s]", ylabel="rotation error [deg]", yscale="log")
    axes[0].axhline(1000 * SUCCESS_POS, ls=":", c="k")
    axes[1].axhline(math.degrees(SUCCESS_ROT), ls=":", c="k")
    if names:
        fig.legend(loc="outside lower center", ncols=min(2, len(names)), fontsize=8)
    fig.suptitle(title or "tracking error (median, 10-90 % band)")
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------- smoothness
def jerk_norms(actions: np.ndarray, dt: float) -> np.ndarray:
    """Jerk norms [rad s^-3] of executed joint-velocity commands: actions (T, nq) [rad/s]
    applied every ``dt`` [s]. The commands are velocities, so the jerk (third derivative of
    the joint position) is their second finite difference over dt^2:
    ``||u_{t+1} - 2 u_t + u_{t-1}|| / dt^2`` -> (T-2,) (empty for T < 3)."""
    u = np.asarray(actions, float)
    if len(u) < 3:
        return np.zeros(0)
    return np.linalg.norm(u[2:] - 2.0 * u[1:-1] + u[:-2], axis=-1) / dt**2


def smoothness(actions: np.ndarray, dt: float, max_delta: np.ndarray) -> dict[str, float]:
    """Whole-episode metrics of executed commands (T, D) [rad/s]: du/dt max (per joint over
    time, averaged over joints) and std, violation rate [%] and largest violation [rad/s]."""
    d = np.diff(np.asarray(actions, float), axis=0)
    if len(d) == 0:
        return {"du max": 0.0, "du std": 0.0, "viol": 0.0, "viol max": 0.0, "steps": 0}
    rate = np.abs(d) / dt
    excess = np.abs(d) - max_delta
    return {
        "du max": float(rate.max(axis=0).mean()),
        "du std": float(rate.std(axis=0).mean()),
        "viol": float(np.mean((excess > 1e-6).any(axis=1)) * 100.0),
        "viol max": float(max(excess.max(), 0.0)),
        "steps": len(d),
    }


def smoothness_summary(per: Sequence[dict[str, float]]) -> dict[str, float]:
    """Table columns over episodes from :func:`smoothness` results: du/dt max and std
    (means over episodes), violation rate over all steps [%] and the largest violation."""
    steps = sum(p["steps"] for p in per)
    return {
        "du/dt max [rad/s^2]": float(np.mean([p["du max"] for p in per])),
        "du/dt std [rad/s^2]": float(np.mean([p["du std"] for p in per])),
        "violation [% steps]": sum(p["viol"] * p["steps"] for p in per) / max(steps, 1),
        "max violation [rad/s]": max((p["viol max"] for p in per), default=0.0),
    }


def sequence_jumps(seqs: np.ndarray, shift: float = 1.0) -> np.ndarray:
    """RMS distance [rad/s] between each selected sequence and the previous one advanced by
    ``shift`` steps: seqs (T, N, nq) -> (T-1,). A NaN sequence (failed solve) gives NaN."""
    seqs = np.asarray(seqs, float)
    if len(seqs) < 2:
        return np.zeros(0)
    prev = np.stack([shift_sequence(s, shift) for s in seqs[:-1]])
    return np.sqrt(np.mean((seqs[1:] - prev) ** 2, axis=(1, 2)))


def count_mode_swaps(seqs: np.ndarray, threshold: float, shift: float = 1.0) -> int:
    """Mode swaps of a closed loop: steps whose newly selected sequence is farther than
    ``threshold`` (RMS, rad/s) from the previous sequence advanced by the elapsed time
    (``shift`` = control period / sequence step). Steps next to a NaN sequence don't count."""
    d = sequence_jumps(seqs, shift)
    return int(np.sum(d[np.isfinite(d)] > threshold))


def constraint_success(results: Sequence[EpisodeResult], tol: float) -> dict[str, Any]:
    """Fraction [%] of episodes whose maximum obstacle penetration (fraction of the radius) is
    <= tol, with its 95 % Wilson interval."""
    n = len(results)
    k = sum(r.max_penetration <= tol for r in results)
    lo, hi = wilson_interval(k, n)
    return {"SR [%]": 100.0 * k / max(n, 1), "95% CI": f"[{100 * lo:.1f}, {100 * hi:.1f}]"}


# ----------------------------------------------------------------------------- more plots
def plot_cdf(
    values: dict[str, np.ndarray], path: Path, xlabel: str, title: str = "", scale: float = 1.0
) -> None:
    """Empirical CDFs (one step curve per key) of ``scale * values``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8), constrained_layout=True)
    for name, v in values.items():
        v = np.sort(scale * np.asarray(v, float).ravel())
        if v.size:
            ax.step(
                np.concatenate([[0.0], v]), np.arange(v.size + 1) / v.size, where="post", label=name
            )
    top = max((float(np.max(v)) * scale for v in values.values() if np.size(v)), default=0.0)
    ax.set(
        xlabel=xlabel,
        ylabel="fraction of episodes",
        ylim=(0, 1.02),
        title=title,
        xlim=(0, max(1.05 * top, 1e-3 * scale)),
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_position_heatmaps(
    points: dict[str, np.ndarray],
    path: Path,
    title: str = "",
    target: np.ndarray | None = None,
    obstacle: tuple[np.ndarray, float] | None = None,
    bins: int = 60,
) -> None:
    """Log-density 2D histograms of 3D points (M, 3) [m] on the x-y and x-z planes, one row
    per key (the paper's Fig. 2); ``target`` (3,) is marked with a star, ``obstacle`` (centre,
    radius) drawn as a circle. All rows share the axis ranges."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    points = {k: np.asarray(v, float).reshape(-1, 3) for k, v in points.items() if len(v)}
    if not points:
        return
    allp = np.concatenate(list(points.values()))
    lo, hi = allp.min(axis=0) - 0.05, allp.max(axis=0) + 0.05
    if obstacle is not None:
        lo = np.minimum(lo, np.asarray(obstacle[0]) - obstacle[1])
        hi = np.maximum(hi, np.asarray(obstacle[0]) + obstacle[1])
    if target is not None:
        lo = np.minimum(lo, np.asarray(target) - 0.05)
        hi = np.maximum(hi, np.asarray(target) + 0.05)
    fig, axes = plt.subplots(
        len(points), 2, figsize=(8, 3.4 * len(points)), squeeze=False, constrained_layout=True
    )
    for row, (name, p) in enumerate(points.items()):
        for col, (j, label) in enumerate(((1, "y"), (2, "z"))):
            ax = axes[row, col]
            h, xe, ye = np.histogram2d(
                p[:, 0], p[:, j], bins=bins, range=[[lo[0], hi[0]], [lo[j], hi[j]]], density=True
            )
            h = np.where(h > 0, h, np.nan)
            vmin = np.nanmin(h) if np.isfinite(h).any() else 1.0
            mesh = ax.pcolormesh(xe, ye, h.T, norm=LogNorm(vmin=vmin), cmap="viridis")
            if target is not None:
                ax.plot(target[0], target[j], "r*", ms=12)
            if obstacle is not None:
                ax.add_patch(
                    plt.Circle(
                        (obstacle[0][0], obstacle[0][j]),
                        obstacle[1],
                        fill=False,
                        ec="tab:red",
                        ls="--",
                    )
                )
            ax.set(xlabel="x [m]", ylabel=f"{label} [m]", aspect="equal")
            ax.set_title(f"{name}: x-{label}", fontsize=9)
            fig.colorbar(mesh, ax=ax, label="density (log)")
    fig.suptitle(title or "end-effector position density of open-loop sequences")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_video(
    frames: Sequence[np.ndarray], out: Path, control_dt: float, name: str = "episode"
) -> Path:
    """``<name>.mp4`` in ``out`` at the control rate (``<name>.gif`` when ffmpeg is
    unavailable)."""
    import imageio.v2 as imageio

    dt = control_dt if math.isfinite(control_dt) and control_dt > 0 else 0.05
    path = out / f"{name}.mp4"
    try:
        imageio.mimwrite(path, list(frames), fps=max(1, round(1.0 / dt)), macro_block_size=8)
    except Exception:  # no ffmpeg: fall back to a GIF
        path.unlink(missing_ok=True)
        path = out / f"{name}.gif"
        imageio.mimwrite(path, list(frames), duration=1000 * dt, loop=0)
    return path
