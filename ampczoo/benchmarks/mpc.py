"""Function-level timing of the MPC expert: warm closed-loop and cold solve times.

Kinematic closed loop (``q += control_dt * u_0``) from random collision-free starts to the
FK of random collision-free configurations; no simulator. Example::

    python -m ampczoo.benchmarks.mpc            # all solvers x compile modes, 10 episodes

The env-level benchmark (success rate, tracking errors, ...) is ``ampczoo bench mpc``.
"""

from __future__ import annotations

import argparse

import numpy as np

from ampczoo.robots.kuka import kuka_chain, make_observation, self_collision_gaps


def _free_q(rng: np.random.Generator, margin: float = 0.03) -> np.ndarray:
    chain = kuka_chain()
    while True:
        q = rng.uniform(0.9 * chain.lower, 0.9 * chain.upper)
        if self_collision_gaps(chain.sphere_centres_np(q)).min() > margin:
            return q


def solve_time_benchmark(episodes: int = 10, steps: int = 30, solver: str = "ipopt",
                         compile: bool = True, formulation: str = "steady_state",
                         seed: int = 0, control_dt: float = 0.1) -> dict[str, float]:
    """Solve times [ms] over ``episodes`` closed loops of ``steps`` MPC steps.

    Returns warm mean/p95 (every solve after the first of an episode), cold mean/p95 (the
    first, random-guess solve), mean warm iterations, failure rate [%] and the final
    position error mean [mm]."""
    from ampczoo.experts import MPCConfig, MPCExpert

    expert = MPCExpert(MPCConfig(solver=solver, compile=compile, formulation=formulation,
                                 seed=seed))
    chain, rng = kuka_chain(), np.random.default_rng(seed)
    warm, cold, iters, pos_err, fails = [], [], [], [], 0
    for ep in range(episodes):
        q, q_goal = _free_q(rng), _free_q(rng)
        p_d, R_d = chain.ee_pose(q_goal)
        expert.reset(seed=seed + ep)
        for t in range(steps):
            sol = expert.solve(make_observation(q, p_d, R_d, None))
            (cold if t == 0 else warm).append(1e3 * sol.solve_time)
            if t:
                iters.append(sol.iterations)
            fails += not sol.success
            q = q + control_dt * sol.u[0]
        pos_err.append(1e3 * np.linalg.norm(chain.ee_pose(q)[0] - p_d))
    return {"warm mean [ms]": float(np.mean(warm)), "warm p95 [ms]": float(np.percentile(warm, 95)),
            "cold mean [ms]": float(np.mean(cold)), "cold p95 [ms]": float(np.percentile(cold, 95)),
            "warm iterations": float(np.mean(iters)),
            "failure rate [%]": 100.0 * fails / (episodes * steps),
            "final pos error mean [mm]": float(np.mean(pos_err))}


def main(argv: list[str] | None = None) -> None:
    """CLI: print one line per solver x compile mode."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--solvers", nargs="+", default=["ipopt", "fatrop"])
    p.add_argument("--compile", nargs="+", type=int, default=[0, 1])
    p.add_argument("--formulation", default="steady_state")
    args = p.parse_args(argv)
    for solver in args.solvers:
        for comp in args.compile:
            res = solve_time_benchmark(args.episodes, args.steps, solver, bool(comp),
                                       args.formulation)
            print(f"{solver:7s} compile={bool(comp)!s:5s} "
                  + "  ".join(f"{k}: {v:.1f}" for k, v in res.items()), flush=True)


if __name__ == "__main__":
    main()
