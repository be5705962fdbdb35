"""Shared evaluation machinery: closed-loop rollouts, tracking metrics, Wilson intervals and
run folders with markdown + CSV tables. Every leaderboard in ampczoo builds on this file.

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
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SUCCESS_POS = 0.020  # [m]
SUCCESS_ROT = math.radians(5.7)  # [rad]


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

    def to_json(self) -> dict[str, Any]:
        """Scalars only (per-episode JSON of a benchmark run)."""
        return {k: (bool(v) if isinstance(v, np.bool_) else v) for k, v in asdict(self).items()
                if not isinstance(v, np.ndarray)}


def transient_response_time(pos_err: np.ndarray, rot_err: np.ndarray, dt: float) -> float:
    """First time [s] after which both errors stay inside the success region; nan if the
    last step is outside it. pos_err, rot_err: (T,) errors after each step."""
    inside = (pos_err < SUCCESS_POS) & (rot_err < SUCCESS_ROT)
    if not inside[-1]:
        return float("nan")
    outside = np.flatnonzero(~inside)
    first_settled = 0 if outside.size == 0 else outside[-1] + 1
    return float((first_settled + 1) * dt)


def run_episode(env: Any, policy: Any, seed: int, options: dict | None = None,
                frame_callback: Callable[[np.ndarray], None] | None = None) -> EpisodeResult:
    """Roll out ``policy`` (``act(obs)``, ``reset(seed)``) in ``env`` until truncation.

    The env must report ``pos_error``, ``rot_error``, ``penetration``, ``self_collision`` in
    ``info`` (the KUKA tracking envs do)."""
    obs, info = env.reset(seed=seed, options=options)
    policy.reset(seed=seed)
    failures0 = getattr(policy, "n_failures", 0)
    pos, rot, times, actions = [], [], [], []
    pen, collided = info.get("penetration", 0.0), bool(info.get("self_collision", False))
    done = False
    while not done:
        t0 = time.perf_counter()
        action = policy.act(obs)
        times.append(time.perf_counter() - t0)
        obs, _, terminated, truncated, info = env.step(action)
        actions.append(np.asarray(action, float))
        pos.append(info["pos_error"])
        rot.append(info["rot_error"])
        pen = max(pen, info.get("penetration", 0.0))
        collided |= bool(info.get("self_collision", False))
        if frame_callback is not None:
            frame_callback(env.render())
        done = terminated or truncated
    pos_a, rot_a = np.array(pos), np.array(rot)
    dt = env.unwrapped.control_dt
    return EpisodeResult(
        seed=seed, success=bool(pos_a[-1] < SUCCESS_POS and rot_a[-1] < SUCCESS_ROT),
        final_pos_error=float(pos_a[-1]), final_rot_error=float(rot_a[-1]),
        trt=transient_response_time(pos_a, rot_a, dt), max_penetration=float(pen),
        self_collision=collided, pos_errors=pos_a, rot_errors=rot_a, act_times=np.array(times),
        actions=np.array(actions), policy_failures=getattr(policy, "n_failures", 0) - failures0)


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion, as fractions in [0, 1]."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


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
    """The command line of this process, shell-quoted (printed with every benchmark)."""
    argv = list(sys.argv)
    if argv and argv[0].endswith("ampczoo"):
        argv[0] = "ampczoo"
    return " ".join(shlex.quote(a) for a in argv)


def format_value(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3g}" if abs(v) < 1e-2 and v != 0 else f"{v:.2f}"
    return str(v)


def write_table(rows: Sequence[dict[str, Any]], out_dir: Path, name: str,
                title: str | None = None) -> str:
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


def write_episodes_json(path: Path, per_method: dict[str, Sequence[EpisodeResult]],
                        meta: dict[str, Any]) -> None:
    """Per-episode seeds and metrics of every method, so two runs compare episode by episode."""
    payload = {"meta": meta, "command": command_line(),
               "episodes": {k: [r.to_json() for r in v] for k, v in per_method.items()}}
    path.write_text(json.dumps(payload, indent=1, default=float))


def plot_tracking_errors(per_method: dict[str, Sequence[EpisodeResult]], dt: float,
                         path: Path, title: str = "") -> None:
    """Median end-effector position/rotation error over time with 10–90 % bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    for name, results in per_method.items():
        if not results:
            continue
        T = min(len(r.pos_errors) for r in results)
        t = dt * np.arange(1, T + 1)
        panels = ((axes[0], "pos_errors", 1000.0), (axes[1], "rot_errors", 180 / np.pi))
        for ax, key, scale in panels:
            E = scale * np.stack([getattr(r, key)[:T] for r in results])
            lo, med, hi = np.percentile(E, [10, 50, 90], axis=0)
            (line,) = ax.plot(t, med, label=name)
            ax.fill_between(t, lo, hi, alpha=0.2, color=line.get_color())
    axes[0].set(xlabel="time [s]", ylabel="position error [mm]", yscale="log")
    axes[1].set(xlabel="time [s]", ylabel="rotation error [deg]", yscale="log")
    axes[0].axhline(1000 * SUCCESS_POS, ls=":", c="k")
    axes[1].axhline(math.degrees(SUCCESS_ROT), ls=":", c="k")
    axes[0].legend()
    fig.suptitle(title or "tracking error (median, 10-90 % band)")
    fig.savefig(path, dpi=120)
    plt.close(fig)
