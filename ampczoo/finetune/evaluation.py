"""Held-out evaluation of a fine-tuned policy during training: success rate with a 95 %
Wilson interval on fixed reset seeds (the same seeds at every evaluation of a run)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ampczoo.core.stats import wilson_interval


@dataclass(frozen=True)
class EvalResult:
    """One evaluation: ``episodes`` closed-loop episodes of the deterministic policy.
    success_rate and ci95 in %; final_error [env units of info["pos_error"]] or nan."""

    steps: int
    wall_s: float
    episodes: int
    success_rate: float
    ci95: tuple[float, float]
    final_error_mean: float
    final_error_median: float
    episode_return: float
    penetration_max: float = 0.0
    """deepest info["penetration"] over all steps of all episodes (0 if not reported)"""

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def episode_success(info: dict[str, Any], success_pos_error: float | None) -> bool:
    """Success of an episode from its last info: ``pos_error < success_pos_error`` when
    given (the 3-DOF benchmark's SR@2cm), else the env's ``info["success"]``."""
    if success_pos_error is not None:
        if "pos_error" not in info:
            raise ValueError("success_pos_error needs an env that reports info['pos_error']")
        return bool(info["pos_error"] < success_pos_error)
    if "success" not in info:
        raise ValueError("the env reports no info['success']; give success_pos_error")
    return bool(info["success"])


def run_episode(env: Any, policy: Any, seed: int) -> tuple[dict[str, Any], float]:
    """One episode of ``policy`` (act / reset) from ``env.reset(seed=seed)``: (last info
    with ``penetration_max`` = the episode's deepest ``info["penetration"]``, return)."""
    obs, info = env.reset(seed=seed)
    policy.reset(seed=seed)
    total, done = 0.0, False
    deepest = float(info.get("penetration", 0.0))
    while not done:
        obs, reward, terminated, truncated, info = env.step(policy.act(obs))
        total += float(reward)
        deepest = max(deepest, float(info.get("penetration", 0.0)))
        done = terminated or truncated
    return {**info, "penetration_max": deepest}, total


def evaluate_policy(
    env: Any,
    policy: Any,
    seeds: Sequence[int],
    success_pos_error: float | None = None,
    steps: int = 0,
    wall_s: float = 0.0,
) -> EvalResult:
    """Success rate [%] with Wilson 95 % CI over the episodes of ``seeds``."""
    results = [run_episode(env, policy, int(s)) for s in seeds]
    wins = sum(episode_success(info, success_pos_error) for info, _ in results)
    errors = np.array([info.get("pos_error", np.nan) for info, _ in results], dtype=float)
    lo, hi = wilson_interval(wins, len(results))
    return EvalResult(
        steps=int(steps),
        wall_s=float(wall_s),
        episodes=len(results),
        success_rate=100.0 * wins / len(results),
        ci95=(round(100.0 * lo, 2), round(100.0 * hi, 2)),
        final_error_mean=float(np.mean(errors)),
        final_error_median=float(np.median(errors)),
        episode_return=float(np.mean([r for _, r in results])),
        penetration_max=max(float(info["penetration_max"]) for info, _ in results),
    )


def plot_learning_curve(history: Sequence[dict[str, Any]], path: Any, title: str) -> None:
    """Success rate [%] (with its 95 % CI band) vs env steps, from evaluation records."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["steps"] for h in history]
    rate = [h["success_rate"] for h in history]
    lo = [h["ci95"][0] for h in history]
    hi = [h["ci95"][1] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.6), constrained_layout=True)
    ax.plot(steps, rate, marker="o", ms=3)
    ax.fill_between(steps, lo, hi, alpha=0.2)
    ax.set(xlabel="env steps", ylabel="success rate [%]", ylim=(0, 100), title=title)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)
