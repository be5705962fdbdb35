r"""Closed-loop MPC expert episodes with a per-episode dead-end record (issue 15 item 4).

Runs the expert as ``ampczoo bench kuka`` does (kinematic env, control_dt 0.02 s, 5 s
episodes, reset seeds ``--seed .. --seed+--episodes-1``; solver / cold start as given) and
appends one JSON line per episode to ``--out`` (resumable: seeds already there are skipped).
Each line: success, final errors, the last artificial reference ``x_ref`` with its own
position / rotation error to the target and its joints' distances to their limits, the final
configuration's distances to the limits, per-step wall and thread-CPU time of ``act`` [s],
the kind of each step (c = cold, w = warm, r = re-seeded, a = re-seed attempted without
a new solution), the reference's position [mm] / rotation [deg] error after each successful
solve, solver failures and re-seeds.

    nice -n 10 python scripts/mpc_dead_ends.py --env free --no-reseed \
        --out runs/deadends/before_free.jsonl
    nice -n 10 python scripts/mpc_dead_ends.py --env free --out runs/deadends/after_free.jsonl
    python scripts/mpc_dead_ends.py --summary runs/deadends/before_free.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

ENVS = {"free": "DAMPC-KukaTrack-v0", "obstacle": "DAMPC-KukaTrackObstacle-v0"}
LIMIT_TOL = 1e-2  # [rad] a joint closer than this to a limit is "at its limit"


def pose_errors(q: np.ndarray, target_pos: np.ndarray, target_rot: np.ndarray) -> tuple:
    """Position [m] and geodesic rotation [rad] error of configuration q (7,) to a target."""
    from ampczoo.robots.kuka import kuka_chain

    p, R = kuka_chain().batch_ee_pose(q[None])
    E = np.asarray(target_rot).T @ R[0]
    c = np.clip(0.5 * (np.trace(E) - 1.0), -1.0, 1.0)
    return float(np.linalg.norm(p[0] - target_pos)), float(math.acos(c))


def limit_distances(q: np.ndarray) -> np.ndarray:
    """(7,) signed distance of each joint to its nearest limit [rad] (>= 0 inside)."""
    from ampczoo.robots.kuka import kuka_chain

    ch = kuka_chain()
    return np.minimum(q - ch.lower, ch.upper - q)


def run_one(env, expert, seed: int) -> dict:
    from ampczoo.benchmarks.common import SUCCESS_POS, SUCCESS_ROT
    from ampczoo.experts.mpc import reference_pose_errors
    from ampczoo.robots.kuka import parse_observation

    obs, _ = env.reset(seed=seed)
    expert.reset(seed=seed)
    ob0 = parse_observation(obs)
    f0, r0 = expert.n_failures, getattr(expert, "n_reseeds", 0)
    wall, cpu, kinds, done, info = [], [], [], False, {}
    x_ref, ref_pos, ref_rot, max_pen = None, [], [], 0.0
    while not done:
        reseeds_before = getattr(expert, "n_reseeds", 0)
        attempts_before = getattr(expert, "n_reseed_attempts", 0)
        cold = expert._warm is None
        t0, c0 = time.perf_counter(), time.thread_time()
        a = expert.act(obs)
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - t0)
        sol = expert.last_solution
        if sol is not None and sol.success:
            x_ref = sol.x_ref.copy()
            pos, rot = reference_pose_errors(x_ref, ob0.target_pos, ob0.target_rot)
            ref_pos.append(round(1e3 * float(pos[0]), 3))
            ref_rot.append(round(math.degrees(float(rot[0])), 3))
        reseeded = getattr(expert, "n_reseeds", 0) > reseeds_before
        attempted = getattr(expert, "n_reseed_attempts", 0) > attempts_before
        kinds.append("r" if reseeded else "a" if attempted else "c" if cold else "w")
        obs, _, term, trunc, info = env.step(a)
        max_pen = max(max_pen, float(info.get("penetration", 0.0)))
        done = term or trunc
    ob = parse_observation(obs)
    rec = {
        "seed": seed,
        "success": bool(info["pos_error"] < SUCCESS_POS and info["rot_error"] < SUCCESS_ROT),
        "final_pos_error": float(info["pos_error"]),
        "final_rot_error": float(info["rot_error"]),
        "q_final": ob.q.tolist(),
        "q_final_limit_dist": limit_distances(ob.q).tolist(),
        "failures": expert.n_failures - f0,
        "reseeds": getattr(expert, "n_reseeds", 0) - r0,
        "branch": int(getattr(expert, "branch", -1)),
        "max_penetration": float(max_pen),
        "steps": len(kinds),
        "wall": [round(t, 6) for t in wall],
        "cpu": [round(t, 6) for t in cpu],
        "kinds": "".join(kinds),
        "ref_pos_mm": ref_pos,
        "ref_rot_deg": ref_rot,
    }
    if x_ref is not None:
        pe, re = pose_errors(x_ref, ob0.target_pos, ob0.target_rot)
        rec.update(
            x_ref=x_ref.tolist(),
            x_ref_pos_error=pe,
            x_ref_rot_error=re,
            x_ref_limit_dist=limit_distances(x_ref).tolist(),
            x_ref_to_q_final=float(np.max(np.abs(x_ref - ob.q))),
        )
    return rec


def steps_of_kind(recs: list[dict], key: str, kind: str) -> np.ndarray:
    """Per-step times ``key`` ("wall" / "cpu") [s] of the steps of one kind, all episodes."""
    return np.array([t for r in recs for t, k in zip(r[key], r["kinds"], strict=True) if k == kind])


def summary(path: Path) -> None:
    from ampczoo.core.stats import wilson_interval

    recs = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    n, ok = len(recs), sum(r["success"] for r in recs)
    lo, hi = wilson_interval(ok, n)
    warm, wcpu = steps_of_kind(recs, "wall", "w"), steps_of_kind(recs, "cpu", "w")
    allw = np.array([t for r in recs for t in r["wall"]])
    print(f"{path}: {ok}/{n} = {100 * ok / n:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]")
    print(
        f"  warm solve wall mean/p95/max {1e3 * warm.mean():.2f}/"
        f"{1e3 * np.percentile(warm, 95):.2f}/{1e3 * warm.max():.1f} ms, cpu mean/p95 "
        f"{1e3 * wcpu.mean():.2f}/{1e3 * np.percentile(wcpu, 95):.2f} ms; all act() mean/p95/max "
        f"{1e3 * allw.mean():.2f}/{1e3 * np.percentile(allw, 95):.2f}/{1e3 * allw.max():.1f} ms"
    )
    allc = np.array([t for r in recs for t in r["cpu"]])
    okr = [r for r in recs if r["success"]]
    bad = [r for r in recs if not r["success"]]
    print(
        f"  | {ok}/{n} = {100 * ok / n:.1f} | [{100 * lo:.1f}, {100 * hi:.1f}] | "
        f"{1e3 * np.mean([r['final_pos_error'] for r in okr]):.2f} / "
        f"{math.degrees(np.mean([r['final_rot_error'] for r in okr])):.2f} | "
        f"{1e3 * np.median([r['final_pos_error'] for r in bad]) if bad else float('nan'):.0f} | "
        f"{1e3 * warm.mean():.2f} / {1e3 * np.percentile(warm, 95):.2f} | "
        f"{1e3 * wcpu.mean():.2f} / {1e3 * np.percentile(wcpu, 95):.2f} | "
        f"{1e3 * allc.max():.0f} | {sum(r['reseeds'] > 0 for r in recs)} |"
    )
    okr = [r for r in recs if r["success"]]
    print(
        f"  success: final pos {1e3 * np.mean([r['final_pos_error'] for r in okr]):.2f} mm, "
        f"rot {math.degrees(np.mean([r['final_rot_error'] for r in okr])):.3f} deg; "
        f"re-seeded episodes {sum(r['reseeds'] > 0 for r in recs)}, "
        f"solver failures {sum(r['failures'] for r in recs)}"
    )
    for r in recs:
        if r["success"]:
            continue
        d = np.array(r.get("x_ref_limit_dist", [np.nan] * 7))
        at = [f"j{j + 1}" for j in np.flatnonzero(d < LIMIT_TOL)]
        print(
            f"  FAIL seed {r['seed']}: final {1e3 * r['final_pos_error']:.1f} mm "
            f"{math.degrees(r['final_rot_error']):.1f} deg | x_ref at limit {at or '-'} "
            f"(min dist {d.min():.3f} rad, j{int(np.argmin(d)) + 1}) | x_ref to target "
            f"{1e3 * r.get('x_ref_pos_error', np.nan):.1f} mm "
            f"{math.degrees(r.get('x_ref_rot_error', np.nan)):.1f} deg | |x_ref-q_T| "
            f"{r.get('x_ref_to_q_final', np.nan):.3f} rad | failures {r['failures']} "
            f"reseeds {r['reseeds']}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", choices=list(ENVS), default="free")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--seeds", type=int, nargs="*", help="explicit reset seeds (else a range)")
    ap.add_argument("--solver", default="fatrop")
    ap.add_argument("--cold-start", default="state")
    ap.add_argument("--control-dt", type=float, default=0.02)
    ap.add_argument(
        "--placement",
        choices=["fixed", "between"],
        default="fixed",
        help="obstacle_placement of the obstacle env",
    )
    ap.add_argument("--episode-seconds", type=float, default=None, help="env default if None")
    ap.add_argument("--branches", type=int, default=3, help="reference_branches K")
    ap.add_argument(
        "--no-reseed", action="store_true", help="reseed_on_stall=False (the expert before)"
    )
    ap.add_argument("--out", type=Path)
    ap.add_argument("--summary", type=Path, nargs="*")
    args = ap.parse_args()
    if args.summary:
        for p in args.summary:
            summary(p)
        return
    import gymnasium as gym

    import ampczoo  # noqa: F401
    from ampczoo.experts.mpc import MPCConfig, MPCExpert

    kwargs: dict = {"control_dt": args.control_dt}
    if args.placement != "fixed":
        kwargs["obstacle_placement"] = args.placement
    if args.episode_seconds is not None:
        kwargs["episode_seconds"] = args.episode_seconds
    env = gym.make(ENVS[args.env], **kwargs)
    cfg = MPCConfig(
        solver=args.solver,
        obstacle=args.env == "obstacle",
        cold_start=args.cold_start,
        reference_branches=args.branches,
        reseed_on_stall=not args.no_reseed,
    )
    expert = MPCExpert(cfg)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.out.exists():
        done = {json.loads(ln)["seed"] for ln in args.out.read_text().splitlines() if ln}
    for seed in args.seeds or range(args.seed, args.seed + args.episodes):
        if seed in done:
            continue
        rec = run_one(env, expert, seed)
        with args.out.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        print(seed, rec["success"], f"{1e3 * rec['final_pos_error']:.1f} mm", flush=True)


if __name__ == "__main__":
    main()
