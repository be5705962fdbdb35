"""``ampczoo bench scripted``: the scripted experts of the manipulation suites on held-out seeds.

Per env: success rate with its 95 % Wilson interval over ``--episodes`` reset seeds
``seed .. seed+n-1`` (held out: collection uses other seeds, see ``ampczoo collect``), and the
spread that makes the demonstrations worth imitating: episode length (mean, std, min, max, over
the successful episodes) and the actions' spread (the mean over action dimensions of the std
of all actions, and of the std across episodes of each episode's mean action).

Writes ``table.md`` / ``table.csv`` and ``episodes.json`` (seed, success, length per episode)
into ``runs/scripted-<date>/`` and prints the table and the command.

Example::

    ampczoo bench scripted --envs Robomimic-Lift-v0 Robomimic-Can-v0 --episodes 100
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ampczoo.benchmarks.common import (
    Rollout,
    command_line,
    make_run_dir,
    rollout,
    wilson_interval,
    write_table,
)


@dataclass(frozen=True)
class ScriptedBenchConfig:
    """``ampczoo bench scripted``: scripted-expert success and demonstration spread."""

    envs: tuple[str, ...] = ("Robomimic-Lift-v0",)
    """registered env ids with a scripted expert (``ampczoo.experts.scripted``)"""
    episodes: int = 100
    """episodes per env (reset seeds seed .. seed+episodes-1)"""
    seed: int = 100_000
    """first reset seed (held out from collection's seeds)"""
    diversity: float = 1.0
    """the experts' diversity knob"""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """extra gym.make keywords for every env"""
    out: str = "runs"
    """folder of the run folders"""

    def __post_init__(self) -> None:
        if not self.envs:
            raise ValueError("envs must name at least one env id")
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")


def spread_row(rollouts: list[Rollout]) -> dict[str, float]:
    """Episode-length and action spread of ``rollouts`` (lengths over successful episodes)."""
    ok = [r for r in rollouts if bool(r.infos[-1].get("success", False))] if rollouts else []
    lengths = np.array([len(r.actions) for r in ok], float) if ok else np.array([np.nan])
    acts = [np.asarray(r.actions, float) for r in rollouts if len(r.actions)]
    all_actions = np.concatenate(acts) if acts else np.full((1, 1), np.nan)
    episode_means = np.stack([a.mean(axis=0) for a in acts]) if acts else all_actions
    return {
        "len mean": float(np.mean(lengths)),
        "len std": float(np.std(lengths)),
        "len min": float(np.min(lengths)),
        "len max": float(np.max(lengths)),
        "action std": float(np.mean(np.std(all_actions, axis=0))),
        "episode-mean action std": float(np.mean(np.std(episode_means, axis=0))),
    }


def evaluate_scripted(
    env_id: str,
    episodes: int,
    seed: int,
    diversity: float = 1.0,
    env_kwargs: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Roll the scripted expert of ``env_id`` out on seeds ``seed .. seed+episodes-1``:
    (table row, per-episode records)."""
    import gymnasium as gym

    import ampczoo.envs  # noqa: F401  (registers the ids)
    from ampczoo.core.registry import make_policy

    env = gym.make(env_id, **(env_kwargs or {}))
    expert = make_policy("scripted", env_id=env_id, diversity=diversity)
    rollouts, records = [], []
    t0 = time.perf_counter()
    try:
        for s in range(seed, seed + episodes):
            r = rollout(env, expert, s)
            success = bool(r.infos[-1].get("success", False))
            rollouts.append(r)
            records.append({"seed": s, "success": success, "length": len(r.actions)})
    finally:
        env.close()
    n_ok = sum(rec["success"] for rec in records)
    lo, hi = wilson_interval(n_ok, episodes)
    row = {
        "env": env_id,
        "episodes": episodes,
        "SR [%]": 100.0 * n_ok / episodes,
        "SR 95% CI": f"[{100 * lo:.1f}, {100 * hi:.1f}]",
        **spread_row(rollouts),
        "wall [s]": time.perf_counter() - t0,
    }
    return row, records


def run_scripted_bench(cfg: ScriptedBenchConfig) -> dict[str, Any]:
    """Run the benchmark of ``cfg``; returns {"rows", "out"}."""
    out = make_run_dir("scripted", cfg.out)
    rows, per_env = [], {}
    for env_id in cfg.envs:
        row, records = evaluate_scripted(
            env_id, cfg.episodes, cfg.seed, cfg.diversity, cfg.env_kwargs
        )
        rows.append(row)
        per_env[env_id] = records
    text = write_table(rows, out, "table", title="Scripted experts on held-out seeds")
    meta = {"command": command_line(), "seed": cfg.seed, "diversity": cfg.diversity}
    (out / "episodes.json").write_text(json.dumps({"meta": meta, "envs": per_env}, indent=1))
    print(text)
    print(f"command: {command_line()}\nwritten to {out}")
    return {"rows": rows, "out": out}
