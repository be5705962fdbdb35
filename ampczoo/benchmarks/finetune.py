"""``ampczoo bench finetune``: RL fine-tuned policies (``residual_rl``) beside their bases on
the same held-out episodes, and the learning curves of fine-tuning runs.

For every fine-tuned checkpoint (default: every ``residual_rl`` checkpoint of the zoo) the
base its config names and the fine-tuned policy run in closed loop on the reset seeds
``seed .. seed+episodes-1`` of the checkpoint's env (card ``env``; a folder without a card:
``--env``), a fresh ``reset()`` at every episode, torch on one thread. Metrics:

* ThreeDOF-Reach-v0: the 3-DOF benchmark's row (:mod:`ampczoo.benchmarks.threedof`:
  success at 2 / 3 / 5 cm of the final error with 95 % Wilson intervals, ``SR env``, RMSE,
  final error, act() time); default seeds 100000.. = that benchmark's targets;
* the KUKA tracking envs: the KUKA row (:func:`~ampczoo.benchmarks.common.summarize_episodes`:
  success, ATE, ARE, TRT, act() time, self-collision, max obstacle penetration);
* envs that report no ``pos_error`` (the manipulation suites: Meta-World, robomimic,
  Push-T): the env's own ``info["success"]`` at the episode's end (the episode ends at the
  first success where the env terminates there), with 95 % Wilson interval, the mean steps
  of the successes, the mean return and act() time (:func:`success_row`).

Every fine-tuned row is also paired with its base on the same seeds (:func:`paired_columns`):
the episodes it won and lost against the base (success at 2 cm on the 3-DOF arm, the
table's success elsewhere) and the two-sided exact McNemar p-value of that split (a binomial
test of won vs lost at 1/2, ``scipy.stats.binomtest``).

``--runs``: fine-tuning run folders (``ampczoo finetune ... --out``) whose held-out
evaluations (``eval.jsonl``) are drawn side by side as success vs env steps and vs wall time
(``curves.png``, one line per run labelled by its method: residual SAC on a base, BC-init
PPO, PPO from scratch, ...) and summarised in ``table_runs`` (method, evaluations, env steps,
wall time, first, best and last success). Runs of one task at the same env-step budget give
the sample-efficiency comparison of issue 13.

Writes ``table_finetune.{md,csv}``, ``table_runs.{md,csv}``, ``curves.png``,
``episodes.json`` into ``runs/bench-finetune-<date>/``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ampczoo.benchmarks.common import (
    command_line,
    make_run_dir,
    rollout,
    single_thread,
    summarize_episodes,
    write_table,
)

THREEDOF = "ThreeDOF-Reach-v0"


def shipped_finetuned() -> tuple[str, ...]:
    """Zoo names of the shipped ``residual_rl`` checkpoints."""
    from ampczoo.core.registry import list_policies

    return tuple(list_policies(model="residual_rl"))


@dataclass(frozen=True)
class FinetuneBenchConfig:
    """``ampczoo bench finetune``: fine-tuned policies vs their bases on held-out episodes,
    and learning curves of fine-tuning runs."""

    policies: tuple[str, ...] = shipped_finetuned()
    """zoo names or folders of ``residual_rl`` checkpoints (default: the shipped ones)"""
    runs: tuple[str, ...] = ()
    """fine-tuning run folders whose eval.jsonl are drawn as learning curves"""
    env: str = ""
    """env id for checkpoint folders without a card ("" = from the card)"""
    episodes: int = 300
    """held-out episodes per method"""
    seed: int = 100_000
    """reset seed of the first episode"""
    quick: bool = False
    """smoke run: at most 20 episodes"""
    out: str = "runs"
    """parent folder of the run folder"""

    def __post_init__(self) -> None:
        if self.quick:
            object.__setattr__(self, "episodes", min(self.episodes, 20))
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if not self.policies and not self.runs:
            raise ValueError("nothing to benchmark: give --policies and/or --runs")


def env_of(spec: str, default: str) -> str:
    """The env id of a checkpoint: its card's, else ``default`` (ValueError if neither)."""
    from ampczoo.core.card import read_card
    from ampczoo.core.registry import resolve_checkpoint

    card = read_card(resolve_checkpoint(spec))
    env = (card or {}).get("env") or default
    if not env:
        raise ValueError(f"{spec}: no card naming its env; pass --env")
    return env


def evaluate(env_id: str, policy: Any, seeds: list[int]) -> tuple[dict[str, Any], list[dict]]:
    """(table row, per-episode scalars) of ``policy`` on ``seeds`` of ``env_id``."""
    if env_id == THREEDOF:
        from ampczoo.benchmarks.threedof import run_method, summarize

        results = run_method(policy, seeds)
        return summarize(results), [r.to_json() for r in results]
    import gymnasium as gym

    import ampczoo.envs  # noqa: F401
    from ampczoo.benchmarks.common import EpisodeResult

    env = gym.make(env_id)
    try:
        rollouts = [rollout(env, policy, s) for s in seeds]
    finally:
        env.close()
    if rollouts and "pos_error" not in rollouts[0].final_info:
        return success_row(rollouts), [success_episode(r) for r in rollouts]
    episodes = [EpisodeResult.from_rollout(r) for r in rollouts]
    return summarize_episodes(episodes), [r.to_json() for r in episodes]


def success_episode(r: Any) -> dict[str, Any]:
    """Per-episode scalars of a rollout judged by the env's ``info["success"]``."""
    return {
        "seed": r.seed,
        "success": bool(r.env_success()),
        "steps": r.length,
        "return": r.episode_return,
        "policy_failures": int(r.policy_failures),
    }


def success_row(rollouts: list[Any]) -> dict[str, Any]:
    """Table row of rollouts judged by the env's ``info["success"]`` (ValueError for an env
    that reports none): success [%] with Wilson 95 % interval, mean steps of the successes,
    mean return, act() time mean / p95 [ms], policy failures."""
    import numpy as np

    from ampczoo.core.stats import wilson_interval

    if any(r.env_success() is None for r in rollouts):
        raise ValueError("the env reports neither info['pos_error'] nor info['success']")
    wins = [r for r in rollouts if r.env_success()]
    lo, hi = wilson_interval(len(wins), len(rollouts))
    times = np.concatenate([r.act_times for r in rollouts])
    return {
        "episodes": len(rollouts),
        "SR [%]": 100.0 * len(wins) / len(rollouts),
        "SR 95% CI": f"[{100 * lo:.1f}, {100 * hi:.1f}]",
        "steps of successes": float(np.mean([r.length for r in wins])) if wins else float("nan"),
        "return": float(np.mean([r.episode_return for r in rollouts])),
        "act mean [ms]": 1000.0 * float(np.mean(times)),
        "act p95 [ms]": 1000.0 * float(np.percentile(times, 95)),
        "policy failures": int(sum(r.policy_failures for r in rollouts)),
    }


def episode_success(env_id: str, episode: dict[str, Any]) -> bool:
    """Whether one per-episode record of :func:`evaluate` counts as a success: the final
    error below 2 cm on the 3-DOF arm (its headline column), else ``episode["success"]``."""
    if env_id == THREEDOF:
        from ampczoo.benchmarks.threedof import THRESHOLDS

        return bool(episode["final_error"] < THRESHOLDS[0])
    return bool(episode["success"])


def paired_columns(env_id: str, base: list[dict], tuned: list[dict]) -> dict[str, Any]:
    """Fine-tuned vs base on the same seeds: episodes won (tuned succeeds, base fails) and
    lost, and the exact McNemar p-value (two-sided binomial test of won vs lost at 1/2;
    1.0 when no episode differs). ValueError if the two lists hold different seeds."""
    from scipy.stats import binomtest

    if [e["seed"] for e in base] != [e["seed"] for e in tuned]:
        raise ValueError("paired rows must hold the same seeds in the same order")
    won = lost = 0
    for b, t in zip(base, tuned, strict=True):
        won += episode_success(env_id, t) and not episode_success(env_id, b)
        lost += episode_success(env_id, b) and not episode_success(env_id, t)
    p = binomtest(won, won + lost, 0.5).pvalue if won + lost else 1.0
    return {"vs base won/lost": f"+{won}/-{lost}", "McNemar p": float(p)}


def run_label(config: dict[str, Any]) -> str:
    """The method of a run from its run.json: "residual SAC on BASE", "BC-init PPO" (a ``bc``
    run with behaviour-cloning epochs), "PPO from scratch" (a ``bc`` run with none)."""
    algo = str(config.get("algo", "?")).upper()
    if config.get("kind") == "bc" or "data" in config:
        return f"BC-init {algo}" if config.get("bc_epochs", 1) > 0 else f"{algo} from scratch"
    return f"residual {algo} on {config.get('base', '?')}"


def read_config(folder: str | Path) -> dict[str, Any]:
    """The run.json of a run folder ({} if absent)."""
    file = Path(folder) / "run.json"
    return json.loads(file.read_text()) if file.is_file() else {}


def env_steps_per_step(config: dict[str, Any]) -> int:
    """Env steps per recorded step of a run (its ``hold``: eval.jsonl counts agent steps)."""
    return int(config.get("hold", 1) or 1)


def run_rows(runs: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per run folder: method, evaluations, env steps (agent steps x ``hold``), wall
    time, first / best / last success."""
    rows = []
    for folder in runs:
        history = read_history(folder)
        config = read_config(folder)
        hold = env_steps_per_step(config)
        best = max(history, key=lambda h: h["success_rate"])
        rows.append(
            {
                "run": folder,
                "method": run_label(config),
                "algo": config.get("algo"),
                "base": config.get("base", "(none)"),
                "seed": config.get("seed"),
                "env steps": history[-1]["steps"] * hold,
                "wall [min]": history[-1]["wall_s"] / 60,
                "eval episodes": history[-1]["episodes"],
                "SR at 0 [%]": history[0]["success_rate"],
                "best SR [%]": best["success_rate"],
                "best at [env steps]": best["steps"] * hold,
                "last SR [%]": history[-1]["success_rate"],
                "last 95% CI": f"[{history[-1]['ci95'][0]:.1f}, {history[-1]['ci95'][1]:.1f}]",
            }
        )
    return rows


def read_history(folder: str | Path) -> list[dict[str, Any]]:
    """The evaluation records of a run folder (eval.jsonl); FileNotFoundError if absent."""
    file = Path(folder) / "eval.jsonl"
    if not file.is_file():
        raise FileNotFoundError(f"{folder}: no eval.jsonl (not a finetune run folder)")
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]


def plot_curves(runs: tuple[str, ...], path: Path) -> None:
    """Held-out success rate (95 % CI bands) of every run, side by side against env steps
    (left) and wall time [min] (middle), and the mean final position error [mm] against env
    steps (right: progress that the success rate does not show yet; only where a run
    records it: envs without ``pos_error``, the manipulation suites, have two panels); each
    line labelled "method (folder)"."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    histories = [read_history(folder) for folder in runs]
    errors = [h.get("final_error_mean", np.nan) for history in histories for h in history]
    panels = 3 if np.isfinite(np.asarray(errors, float)).any() else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), constrained_layout=True)
    by_steps, by_time, error = (*axes, None) if panels == 2 else axes
    for folder, history in zip(runs, histories, strict=True):
        config = read_config(folder)
        label = f"{run_label(config)} ({Path(folder).name})"
        rate = [h["success_rate"] for h in history]
        low, high = [h["ci95"][0] for h in history], [h["ci95"][1] for h in history]
        steps = [h["steps"] * env_steps_per_step(config) for h in history]
        for ax, x in ((by_steps, steps), (by_time, [h["wall_s"] / 60 for h in history])):
            (line,) = ax.plot(x, rate, marker="o", ms=3, label=label)
            ax.fill_between(x, low, high, alpha=0.15, color=line.get_color())
        if error is not None:
            mm = [1000 * h.get("final_error_mean", float("nan")) for h in history]
            error.plot(steps, mm, marker="o", ms=3, label=label)
    for ax, xlabel in ((by_steps, "env steps"), (by_time, "wall time [min]")):
        ax.set(xlabel=xlabel, ylabel="held-out success rate [%]", ylim=(0, 100))
    if error is not None:
        error.set(xlabel="env steps", ylabel="mean final position error [mm]", yscale="log")
        error.set_title("mean final error vs env steps")
    for ax in axes:
        ax.grid(alpha=0.3)
    by_steps.set_title("held-out success vs env steps")
    by_time.set_title("... vs wall time (training + evaluations)")
    by_steps.legend(fontsize=7)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run_finetune_bench(cfg: FinetuneBenchConfig) -> Path:
    """Run the benchmark; returns the run folder."""
    with single_thread():
        return _run(cfg)


def _run(cfg: FinetuneBenchConfig) -> Path:
    from ampczoo.core.registry import load_policy

    out = make_run_dir("bench-finetune", cfg.out)
    seeds = list(range(cfg.seed, cfg.seed + cfg.episodes))
    rows, episodes, text = [], {}, ""
    done: set[tuple[str, str]] = set()
    for spec in cfg.policies:
        env_id = env_of(spec, cfg.env)
        policy = load_policy(spec, device="cpu")
        base_spec = policy.config.base
        base_name = f"base {base_spec}"
        pairs = [(base_name, base_spec), (spec, spec)] if base_spec else [(spec, spec)]
        for name, which in pairs:
            if (env_id, name) in done:
                continue
            done.add((env_id, name))
            method = policy if which == spec else load_policy(which, device="cpu")
            row, eps = evaluate(env_id, method, seeds)
            base_key = f"{env_id} {base_name}"
            if which == spec and base_spec and base_key in episodes:
                row.update(paired_columns(env_id, episodes[base_key], eps))
            rows.append({"env": env_id, "method": name, **row})
            episodes[f"{env_id} {name}"] = eps
            print(f"  {env_id} {name}: done", flush=True)
    if rows:
        text += write_table(rows, out, "table_finetune", f"held-out episodes (seeds {cfg.seed}..)")
    if cfg.runs:
        text += "\n" + write_table(run_rows(cfg.runs), out, "table_runs", "fine-tuning runs")
        plot_curves(cfg.runs, out / "curves.png")
    payload = {"config": asdict(cfg), "command": command_line(), "episodes": episodes}
    (out / "episodes.json").write_text(json.dumps(payload, indent=1, default=float))
    print(text)
    print(f"wrote {out}\ncommand: {command_line()}")
    return out
