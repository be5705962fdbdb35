"""``ampczoo bench mpc``: the MPC expert in closed loop on both KUKA envs.

For every env x solver x formulation: success rate (95 % Wilson interval), ATE [mm], ARE [deg],
TRT [s], warm and cold solve time mean/p95 [ms], iterations, failure rate; plus the number of
distinct local optima found from ``--guesses`` random initial guesses for a few fixed
start/target pairs (agglomerative clustering of the input trajectories).
Writes ``runs/bench-mpc-<date>/`` (markdown + CSV + JSON + PNG) and prints the command.

Example (the README's numbers)::

    ampczoo bench mpc --episodes 50 --solvers ipopt fatrop --compile-modes 1 0
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

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


@dataclass(frozen=True)
class MPCBenchConfig:
    """episodes: closed-loop episodes per env and configuration (fixed seeds seed..seed+n-1).
    solvers / formulations: MPC variants to compare. control_dt: env step [s] (0.1 = the
    MPC's own rate, one solve per step). optima_pairs / guesses: start/target pairs and random
    initial guesses for the local-optima count. cluster_tol: RMS distance [rad/s] below which
    two input trajectories are the same optimum. compile_modes: run each configuration with
    the NLP compiled to C (True) and/or interpreted by CasADi (False)."""

    episodes: int = 50
    solvers: tuple[str, ...] = ("ipopt", "fatrop")
    formulations: tuple[str, ...] = ("steady_state",)
    envs: tuple[str, ...] = ENVS
    control_dt: float = 0.1
    seed: int = 1000
    optima_pairs: int = 3
    guesses: int = 20
    cluster_tol: float = 0.05
    compile_modes: tuple[bool, ...] = (True,)
    out: str = "runs"


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


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = MPCBenchConfig()
    p.add_argument("--episodes", type=int, default=d.episodes)
    p.add_argument("--solvers", nargs="+", default=list(d.solvers), choices=["ipopt", "fatrop"])
    p.add_argument(
        "--formulations",
        nargs="+",
        default=list(d.formulations),
        choices=["steady_state", "virtual_trajectory"],
    )
    p.add_argument("--envs", nargs="+", default=list(d.envs), choices=list(ENVS))
    p.add_argument("--control-dt", type=float, default=d.control_dt)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--optima-pairs", type=int, default=d.optima_pairs)
    p.add_argument("--guesses", type=int, default=d.guesses)
    p.add_argument(
        "--compile-modes",
        nargs="+",
        type=int,
        default=[1],
        choices=[0, 1],
        help="1 = NLP compiled to C (cached), 0 = interpreted by CasADi",
    )
    p.add_argument("--quick", action="store_true", help="5 episodes, 1 pair, 8 guesses")
    p.add_argument("--out", default=d.out)
    p.set_defaults(func=_run)


def config_from_args(args: argparse.Namespace) -> MPCBenchConfig:
    cfg = MPCBenchConfig(
        episodes=args.episodes,
        solvers=tuple(args.solvers),
        formulations=tuple(args.formulations),
        envs=tuple(args.envs),
        control_dt=args.control_dt,
        seed=args.seed,
        optima_pairs=args.optima_pairs,
        guesses=args.guesses,
        compile_modes=tuple(bool(c) for c in args.compile_modes),
        out=args.out,
    )
    if args.quick:
        cfg = replace(cfg, episodes=min(cfg.episodes, 5), optima_pairs=1, guesses=8)
    return cfg


def _run(args: argparse.Namespace) -> int:
    run_mpc_benchmark(config_from_args(args))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ampczoo bench mpc")
    add_arguments(p)
    return _run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
