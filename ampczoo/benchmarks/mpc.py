"""``ampczoo bench mpc``: the MPC expert in closed loop on both KUKA envs.

For every env x solver x formulation: success rate (95 % Wilson interval), ATE [mm], ARE [deg],
TRT [s], warm and cold solve time mean/p95 [ms], iterations, failure rate; plus the number of
distinct local optima found from ``guesses`` random initial guesses for a few fixed
start/target pairs (agglomerative clustering of the input trajectories).
Writes ``runs/bench-mpc-<date>/`` (markdown + CSV + JSON + PNG) and prints the command.

Example (the README's numbers)::

    ampczoo bench mpc --episodes 50 --solvers ipopt fatrop --compile-modes True False
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from ampczoo.benchmarks.common import (
    EpisodeResult,
    command_line,
    make_run_dir,
    plot_tracking_errors,
    run_episode,
    summarize_episodes,
    write_episodes_json,
    write_table,
)

ENVS = ("DAMPC-KukaTrack-v0", "DAMPC-KukaTrackObstacle-v0")


Solver = Literal["ipopt", "fatrop"]
Formulation = Literal["steady_state", "virtual_trajectory"]
EnvId = Literal["DAMPC-KukaTrack-v0", "DAMPC-KukaTrackObstacle-v0"]


@dataclass(frozen=True)
class MPCBenchConfig:
    """``ampczoo bench mpc``: the MPC expert in closed loop on both KUKA envs."""

    episodes: int = 50
    """closed-loop episodes per env and configuration (reset seeds seed .. seed+episodes-1)"""
    solvers: tuple[Solver, ...] = ("ipopt", "fatrop")
    """NLP solvers to compare"""
    formulations: tuple[Formulation, ...] = ("steady_state",)
    """MPC formulations to compare"""
    envs: tuple[EnvId, ...] = ENVS
    """envs to run"""
    control_dt: float = 0.1
    """env step [s] (0.1 = the MPC's own rate: one solve per step)"""
    seed: int = 1000
    """reset seed of the first episode"""
    optima_pairs: int = 3
    """start/target pairs of the local-optima count"""
    guesses: int = 20
    """random initial guesses per pair of the local-optima count"""
    cluster_tol: float = 0.05
    """RMS distance [rad/s] below which two input trajectories are the same optimum"""
    compile_modes: tuple[bool, ...] = (True,)
    """run each configuration with the NLP compiled to C (True, cached) and/or interpreted by
    CasADi (False)"""
    quick: bool = False
    """smoke run: at most 5 episodes, 1 start/target pair, 8 guesses"""
    out: str = "runs"
    """parent folder of the run folder bench-mpc-<date>/"""

    def __post_init__(self) -> None:
        if self.quick:
            object.__setattr__(self, "episodes", min(self.episodes, 5))
            object.__setattr__(self, "optima_pairs", 1)
            object.__setattr__(self, "guesses", 8)
        for name in ("episodes", "guesses"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.optima_pairs < 0 or not self.cluster_tol > 0 or not self.control_dt > 0:
            raise ValueError("optima_pairs must be >= 0, cluster_tol and control_dt > 0")
        for name, allowed in (("solvers", Solver), ("formulations", Formulation), ("envs", EnvId)):
            bad = set(getattr(self, name)) - set(get_args(allowed))
            if bad or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty subset of {get_args(allowed)}")
        if not self.compile_modes:
            raise ValueError("compile_modes must not be empty")


class SolveRecorder:
    """Wraps an MPCExpert to record every solve's time, iterations and status."""

    name = "mpc"

    def __init__(self, expert):
        self.expert = expert
        self.warm_times: list[float] = []
        self.cold_times: list[float] = []
        self.iterations: list[int] = []
        self.solves = 0
        self._cold = True

    @property
    def n_failures(self) -> int:
        return self.expert.n_failures

    def reset(self, seed: int | None = None) -> None:
        self.expert.reset(seed=seed)
        self._cold = True

    def act(self, obs: np.ndarray) -> np.ndarray:
        action = self.expert.act(obs)
        sol = self.expert.last_solution
        (self.cold_times if self._cold else self.warm_times).append(sol.solve_time)
        self.iterations.append(sol.iterations)
        self.solves += 1
        self._cold = False
        return action

    def stats(self) -> dict[str, float]:
        warm = 1000 * np.array(self.warm_times or [np.nan])
        cold = 1000 * np.array(self.cold_times or [np.nan])
        return {
            "warm solve mean [ms]": float(np.mean(warm)),
            "warm solve p95 [ms]": float(np.percentile(warm, 95)),
            "warm solve max [ms]": float(np.max(warm)),
            "cold solve mean [ms]": float(np.mean(cold)),
            "cold solve p95 [ms]": float(np.percentile(cold, 95)),
            "iterations mean": float(np.mean(self.iterations)),
            "failure rate [%]": 100.0 * self.n_failures / max(self.solves, 1),
        }


def count_local_optima(
    expert, obs: np.ndarray, guesses: int, tol: float, seed: int = 0
) -> tuple[int, list[float]]:
    """Distinct local optima of one MPC problem: solve from ``guesses`` random initial guesses,
    keep successful solutions, cluster their input trajectories (complete linkage, RMS
    distance ``tol`` [rad/s]). Returns (number of clusters, costs of the kept solutions)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    sols = []
    for k in range(guesses):
        expert.reset(seed=seed + k)
        sol = expert.solve(obs)
        if sol.success:
            sols.append(sol)
    if len(sols) < 2:
        return len(sols), [s.cost for s in sols]
    U = np.stack([s.u.ravel() for s in sols]) / math.sqrt(sols[0].u.size)
    labels = fcluster(linkage(U, method="complete"), t=tol, criterion="distance")
    return int(labels.max()), [s.cost for s in sols]


def run_mpc_benchmark(cfg: MPCBenchConfig) -> Path:
    """Run the benchmark; returns the run folder."""
    import gymnasium as gym
    from tqdm.auto import tqdm

    import ampczoo  # noqa: F401
    from ampczoo.experts import MPCConfig, MPCExpert

    out = make_run_dir("bench-mpc", cfg.out)
    rows, optima_rows, per_method = [], [], {}
    for env_id in cfg.envs:
        obstacle = "Obstacle" in env_id
        env = gym.make(env_id, control_dt=cfg.control_dt)
        for solver, form, compiled in itertools.product(
            cfg.solvers, cfg.formulations, cfg.compile_modes
        ):
            mpc_cfg = MPCConfig(
                solver=solver, formulation=form, obstacle=obstacle, compile=compiled
            )
            rec = SolveRecorder(MPCExpert(mpc_cfg))
            label = f"{env_id} | {solver} | {form} | {'compiled' if compiled else 'casadi'}"
            results: list[EpisodeResult] = [
                run_episode(env, rec, seed=cfg.seed + i)
                for i in tqdm(range(cfg.episodes), desc=label, unit="ep")
            ]
            per_method[label] = results
            summary = summarize_episodes(results)
            summary.pop("act mean [ms]")
            summary.pop("act p95 [ms]")
            rows.append(
                {
                    "env": env_id,
                    "solver": solver,
                    "formulation": form,
                    "compiled": compiled,
                    **summary,
                    **rec.stats(),
                }
            )
        optima_rows += _optima_rows(env, env_id, obstacle, cfg, MPCExpert, MPCConfig)
        env.close()
    md = write_table(rows, out, "mpc_closed_loop", title="MPC expert, closed loop")
    if optima_rows:
        md += "\n" + write_table(
            optima_rows,
            out,
            "local_optima",
            title=f"Distinct local optima from {cfg.guesses} random guesses",
        )
    write_episodes_json(
        out / "episodes.json", per_method, {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}
    )
    plot_tracking_errors(
        per_method,
        cfg.control_dt,
        out / "tracking_error.png",
        title="MPC expert: end-effector error",
    )
    (out / "README.md").write_text(f"Command: `{command_line()}`\n\n{md}")
    print(md)
    print(f"wrote {out}\ncommand: {command_line()}")
    return out


def _optima_rows(
    env, env_id: str, obstacle: bool, cfg: MPCBenchConfig, expert_cls, config_cls
) -> list[dict]:
    expert = expert_cls(
        config_cls(solver=cfg.solvers[0], obstacle=obstacle, compile=cfg.compile_modes[0])
    )
    rows = []
    nan = float("nan")
    for k in range(cfg.optima_pairs):
        obs, _ = env.reset(seed=cfg.seed + 10_000 + k)
        n, costs = count_local_optima(expert, obs, cfg.guesses, cfg.cluster_tol, seed=k * 100)
        rows.append(
            {
                "env": env_id,
                "pair seed": cfg.seed + 10_000 + k,
                "converged guesses": len(costs),
                "distinct optima": n,
                "cost min": float(np.min(costs)) if costs else nan,
                "cost max/min": float(np.max(costs) / np.min(costs)) if costs else nan,
            }
        )
    return rows
