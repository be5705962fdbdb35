"""``ampczoo bench envs``: what the registered envs cost, and how fast they yield demonstrations.

Per env id and observation mode (``obs_mode`` "low_dim" and "image" where the env takes it,
else its one default mode):

* ``env.step`` and ``env.reset(seed)`` wall times (mean and p95 [ms]) under random actions
  from the action space (a step that ends the episode is followed by an untimed reset);
* the bare suite's step, ``env.unwrapped.suite_env.step(action)`` (robosuite, Meta-World,
  gym-pusht), timed in the same run in alternating rounds with ours, and the ratio ours / bare
  (goal for the robosuite envs in low-dim mode: <= 1.2);

and collection throughput: ``ampczoo collect`` of ``collect_episodes`` episodes with 1 and 2
workers (episodes/min and env steps/s, counted from the start of the backend, so the workers'
start-up and env / expert construction are included; one-time costs are not: an untimed
1-step collection runs first), with the env's scripted expert where it has one, else its
default expert (the MPC of the KUKA envs, the IK-MPC of the 3-DOF arm).

Writes ``step.md`` / ``step.csv``, ``collection.md`` / ``collection.csv`` and ``envs.json``
into ``runs/envs-<date>/`` and prints the tables and the command.

Example::

    ampczoo bench envs --envs Robomimic-Lift-v0 Robomimic-Can-v0 --workers 1 2
    ampczoo bench envs --quick --envs ThreeDOF-Reach-v0
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ampczoo.benchmarks.common import command_line, make_run_dir, write_table

#: Goal of the robosuite envs: our low-dim step at most this many times the bare suite's.
OVERHEAD_GOAL = 1.2
#: Alternating rounds of ours / bare steps (so drift of a shared machine hits both alike).
ROUNDS = 4


@dataclass(frozen=True)
class EnvBenchConfig:
    """``ampczoo bench envs``: step / reset cost per env (vs the bare suite) and collection
    throughput."""

    envs: tuple[str, ...] = ()
    """env ids (empty = every id of ``ampczoo.envs.env_ids()``)"""
    obs_modes: tuple[str, ...] = ("low_dim", "image")
    """observation modes timed where the env takes ``obs_mode`` (others: their default)"""
    steps: int = 400
    """timed env steps per env and mode (as many bare-suite steps)"""
    resets: int = 10
    """timed resets per env and mode"""
    collect_episodes: int = 6
    """episodes per collection run (0 = no collection)"""
    workers: tuple[int, ...] = (1, 2)
    """worker counts of the collection runs"""
    collect_steps: int | None = None
    """cap on the steps of a collected episode (None = the env's default)"""
    collect_kwargs: dict[str, bool | int | float | str] = field(default_factory=dict, hash=False)
    """further CollectConfig fields of the collection runs, e.g. ``compile False``"""
    warmup: bool = True
    """before the timed collection runs, an untimed one of 1 episode x 1 step per env, so
    one-time costs (compiling the MPC's NLP to C, numba) are not counted"""
    seed: int = 0
    """seed of the resets, the random actions and the collection"""
    quick: bool = False
    """smoke run: 30 steps, 3 resets, 2 collection episodes of at most 20 steps"""
    out: str = "runs"
    """parent folder of the run folder envs-<date>/"""

    def __post_init__(self) -> None:
        if self.quick:
            object.__setattr__(self, "steps", min(self.steps, 30))
            object.__setattr__(self, "resets", min(self.resets, 3))
            object.__setattr__(self, "collect_episodes", min(self.collect_episodes, 2))
            object.__setattr__(self, "collect_steps", min(self.collect_steps or 20, 20))
        for name in ("steps", "resets"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.collect_episodes < 0:
            raise ValueError(f"collect_episodes must be >= 0, got {self.collect_episodes}")
        if not self.workers or min(self.workers) < 1:
            raise ValueError(f"workers must be positive counts, got {self.workers}")
        if self.collect_steps is not None and self.collect_steps < 1:
            raise ValueError(f"collect_steps must be >= 1, got {self.collect_steps}")
        bad = [m for m in self.obs_modes if m not in ("low_dim", "dict", "image")]
        if bad or not self.obs_modes:
            raise ValueError(f"obs_modes must be among low_dim, dict, image; got {self.obs_modes}")


# ----------------------------------------------------------------------------- timing
def _ms(times: list[float]) -> tuple[float, float]:
    """(mean, p95) [ms] of times [s] (NaN when empty)."""
    if not times:
        return float("nan"), float("nan")
    arr = 1e3 * np.asarray(times)
    return float(arr.mean()), float(np.percentile(arr, 95))


def make_env(env_id: str, mode: str | None) -> Any:
    """``gym.make(env_id[, obs_mode=mode])``."""
    import gymnasium as gym

    import ampczoo.envs  # noqa: F401  (registers the ids)

    return gym.make(env_id, **({} if mode is None else {"obs_mode": mode}))


def env_modes(env_id: str, modes: tuple[str, ...]) -> list[tuple[str | None, Any]]:
    """[(mode, env)] for the modes ``env_id`` accepts; an env that takes none of them (no
    ``obs_mode`` keyword, or other modes such as the KUKA envs' "flat") is made once with its
    defaults (mode None)."""
    out: list[tuple[str | None, Any]] = []
    for mode in modes:
        try:
            out.append((mode, make_env(env_id, mode)))
        except (TypeError, ValueError):  # no obs_mode keyword, or not this mode
            continue
    return out or [(None, make_env(env_id, None))]


def time_resets(env: Any, n: int, seed: int) -> list[float]:
    """Wall times [s] of ``n`` seeded resets."""
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        env.reset(seed=seed + i)
        times.append(time.perf_counter() - t0)
    return times


def time_steps(env: Any, actions: np.ndarray, seed: int) -> list[float]:
    """Wall times [s] of ``env.step`` over ``actions`` (untimed reset when an episode ends)."""
    times = []
    env.reset(seed=seed)
    for action in actions:
        t0 = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(action)
        times.append(time.perf_counter() - t0)
        if terminated or truncated:
            env.reset()
    return times


def time_bare_steps(env: Any, actions: np.ndarray, seed: int) -> list[float]:
    """Wall times [s] of the bare suite's ``step`` on the env's own simulation (after our
    seeded reset; a suite that refuses to go on is reset through our env, untimed)."""
    suite = env.unwrapped.suite_env
    times = []
    env.reset(seed=seed)
    for action in actions:
        t0 = time.perf_counter()
        try:
            result = suite.step(action)
        except Exception:  # e.g. robosuite: "executing action in terminated episode"
            env.reset()
            continue
        times.append(time.perf_counter() - t0)
        if isinstance(result, tuple) and any(bool(x) is True for x in result[2:-1]):
            env.reset()  # done / terminated / truncated
    return times


def step_row(env_id: str, mode: str | None, env: Any, cfg: EnvBenchConfig) -> dict[str, Any]:
    """One row of the step table: reset / step / bare step times of ``env``."""
    env.action_space.seed(cfg.seed)
    actions = np.stack([env.action_space.sample() for _ in range(cfg.steps)])
    resets = time_resets(env, cfg.resets, cfg.seed)
    has_suite = getattr(env.unwrapped, "suite_env", None) is not None
    ours: list[float] = []
    bare: list[float] = []
    for part in np.array_split(actions, ROUNDS):
        ours += time_steps(env, part, cfg.seed)
        if has_suite:
            bare += time_bare_steps(env, part, cfg.seed)
    step_mean, step_p95 = _ms(ours)
    reset_mean, reset_p95 = _ms(resets)
    bare_mean, bare_p95 = _ms(bare)
    return {
        "env": env_id,
        "obs mode": mode or "default",
        "step mean [ms]": step_mean,
        "step p95 [ms]": step_p95,
        "reset mean [ms]": reset_mean,
        "reset p95 [ms]": reset_p95,
        "bare step mean [ms]": bare_mean,
        "bare step p95 [ms]": bare_p95,
        "ours / bare": step_mean / bare_mean if bare else float("nan"),
    }


# ----------------------------------------------------------------------------- collection
def collect_config(
    env_id: str, workers: int, cfg: EnvBenchConfig, out: Path, episodes: int, steps: int | None
) -> Any:
    """The CollectConfig of a collection run of the benchmark."""
    from ampczoo.data.collect import CollectConfig

    return CollectConfig(
        env=env_id,
        episodes=episodes,
        workers=workers,
        seed=cfg.seed,
        steps=steps,
        out=str(out),
        keep_failed=True,
        **cfg.collect_kwargs,  # type: ignore[arg-type]
    )


def warm_up(env_id: str, cfg: EnvBenchConfig, tmp: Path) -> None:
    """An untimed 1-episode, 1-step collection (compiles and caches what it needs)."""
    from ampczoo.data.collect import collect

    out = tmp / f"{env_id.replace(':', '_')}-warmup.zarr"
    collect(collect_config(env_id, 1, cfg, out, 1, 1), progress=False)


def collection_row(env_id: str, workers: int, cfg: EnvBenchConfig, tmp: Path) -> dict[str, Any]:
    """One row of the collection table: ``ampczoo collect`` with ``workers`` workers."""
    from ampczoo.data.collect import collect

    out = tmp / f"{env_id.replace(':', '_')}-w{workers}.zarr"
    config = collect_config(env_id, workers, cfg, out, cfg.collect_episodes, cfg.collect_steps)
    report = collect(config, progress=False)
    wall = max(report.wall_time_s, 1e-9)
    failed = report.episodes_failed
    return {
        "env": env_id,
        "expert": _expert_label(config),
        "workers": workers,
        "episodes": report.episodes,
        "steps": report.n_solves,
        "wall [s]": wall,
        "episodes/min": 60.0 * report.episodes / wall,
        "steps/s": report.n_solves / wall,
        "successful": "" if failed is None else report.episodes - failed,
        "errors": len(report.errors),
    }


def has_collector(env_id: str, cfg: EnvBenchConfig, tmp: Path, notes: list[str]) -> bool:
    """Whether ``ampczoo collect`` has an expert for ``env_id`` (else one note says why)."""
    try:
        collect_config(env_id, 1, cfg, tmp / "probe.zarr", 1, 1)
    except ValueError as exc:
        notes.append(f"{env_id}: no collection rows: {exc}")
        return False
    return True


def _expert_label(config: Any) -> str:
    from ampczoo.data.collect import POLICY_BUILDER_SPEC

    if config.builder_spec == POLICY_BUILDER_SPEC:
        return config.policy or "scripted"
    return config.builder_spec.rsplit(":", 1)[-1].replace("_BUILDER", "").lower()


# ----------------------------------------------------------------------------- the run
def bench_env(env_id: str, cfg: EnvBenchConfig, tmp: Path) -> tuple[list, list, list[str]]:
    """(step rows, collection rows, error notes) of one env."""
    steps, collection, notes = [], [], []
    try:
        pairs = env_modes(env_id, cfg.obs_modes)
    except Exception as exc:  # the env cannot be made here (missing extra, ...)
        return [], [], [f"{env_id}: cannot make the env: {type(exc).__name__}: {exc}"]
    for mode, env in pairs:
        try:
            steps.append(step_row(env_id, mode, env, cfg))
        except Exception as exc:
            notes.append(f"{env_id} ({mode or 'default'}): {type(exc).__name__}: {exc}")
        finally:
            env.close()
    if cfg.collect_episodes and not has_collector(env_id, cfg, tmp, notes):
        return steps, collection, notes
    if cfg.collect_episodes and cfg.warmup:
        try:
            warm_up(env_id, cfg, tmp)
        except Exception as exc:
            notes.append(f"{env_id} collection warm-up: {type(exc).__name__}: {exc}")
    for workers in cfg.workers if cfg.collect_episodes else ():
        try:
            collection.append(collection_row(env_id, workers, cfg, tmp))
        except Exception as exc:
            notes.append(f"{env_id} collection, {workers} workers: {type(exc).__name__}: {exc}")
    return steps, collection, notes


def run_env_bench(cfg: EnvBenchConfig) -> dict[str, Any]:
    """Run the benchmark of ``cfg``; returns {"steps", "collection", "notes", "out"}."""
    from ampczoo.envs import env_ids

    out = make_run_dir("envs", cfg.out)
    ids = list(cfg.envs) or env_ids()
    steps, collection, notes = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-envs-") as tmp:
        for env_id in ids:
            s, c, n = bench_env(env_id, cfg, Path(tmp))
            steps += s
            collection += c
            notes += n
            for line in n:
                print(f"note: {line}")
    title = f"Env step and reset cost ({cfg.steps} steps, {cfg.resets} resets)"
    text = write_table(steps, out, "step", title=title) if steps else ""
    if collection:
        title = f"Collection throughput ({cfg.collect_episodes} episodes per run)"
        text += "\n" + write_table(collection, out, "collection", title=title)
    summary = {
        "command": command_line(),
        "config": {k: v for k, v in vars(cfg).items()},
        "steps": steps,
        "collection": collection,
        "notes": notes,
    }
    (out / "envs.json").write_text(json.dumps(summary, indent=1, default=str))
    print(text)
    for row in steps:
        if np.isfinite(row["ours / bare"]):
            verdict = "within" if row["ours / bare"] <= OVERHEAD_GOAL else "over"
            print(
                f"{row['env']} ({row['obs mode']}): ours / bare step = {row['ours / bare']:.2f} "
                f"({verdict} the {OVERHEAD_GOAL:.1f} goal)"
            )
    print(f"command: {command_line()}\nwritten to {out}")
    return {"steps": steps, "collection": collection, "notes": notes, "out": out}
