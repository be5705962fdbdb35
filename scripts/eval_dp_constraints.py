"""DP vs DP + DiffOG vs DP + clipping vs DP + penalty on one manipulation task, same seeds.

Success (env's own check, episode ends on success) with Wilson 95 % CI, and smoothness of the
executed actions on the constrained dimensions S (the paper's Fig. 8 metrics): per episode the
max over steps of |a_k| ("velocity", Table X), the max and the std over steps of
a_{k+1} - a_k per dimension, each averaged over the dimensions (robomimic: the "acceleration"
of the normalised velocity actions; times 20 m/s^2 / 200 rad/s^2 for raw values, paper
Sec. VI-E), and the % of steps with a change over the suite's bound (+1e-6). Every layer uses
the suite's Table IX / XI preset (``make_constrained``).

    python scripts/eval_dp_constraints.py --base dp-lift --env Robomimic-Lift-v0 \
        --diffog runs/diffog-dp-lift/best --episodes 50 --seed 100000 --out runs/dp-constraints
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import ampczoo
import ampczoo.envs  # noqa: F401  (registers the env ids)
from ampczoo.benchmarks.common import rollout, wilson_interval
from ampczoo.policies.constrained import make_constrained
from ampczoo.wrappers.presets import suite_preset


def smoothness(actions: np.ndarray, dims: tuple[int, ...], bound: float) -> dict[str, float]:
    """actions (T, D_a) executed -> max / std of the first difference on ``dims`` (each the
    mean over dims of the per-dim max / std over steps) and % steps with a change > bound."""
    d = np.abs(np.diff(actions[:, list(dims)], axis=0))
    if len(d) == 0:
        return {"vel max": 0.0, "max": 0.0, "std": 0.0, "over": 0.0}
    return {
        "vel max": float(np.abs(actions[:, list(dims)]).max(axis=0).mean()),
        "max": float(d.max(axis=0).mean()),
        "std": float(np.diff(actions[:, list(dims)], axis=0).std(axis=0).mean()),
        "over": float(100.0 * np.mean(np.any(d > bound + 1e-6, axis=1))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="dp-lift")
    ap.add_argument("--env", default="Robomimic-Lift-v0")
    ap.add_argument("--diffog", default=None, help="DiffOG checkpoint (folder or zoo name)")
    ap.add_argument("--kinds", nargs="+", default=["none", "diffog", "clipping", "penalty"])
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--seed", type=int, default=100000)
    ap.add_argument("--schedule", default=None, help='"table8": Table VIII bounds per step')
    ap.add_argument("--max-abs", type=float, default=None, help="Table X magnitude bound")
    ap.add_argument("--out", default="runs/dp-constraints")
    args = ap.parse_args()
    preset = suite_preset(args.env)
    assert preset is not None, f"{args.env}: no suite preset"
    env = gym.make(args.env)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind in args.kinds:
        base = ampczoo.load_policy(args.base)
        extra = {} if args.max_abs is None else {"max_abs": args.max_abs}
        policy = make_constrained(
            kind,
            base,
            args.env,
            checkpoint=args.diffog if kind == "diffog" else None,
            bound_schedule=args.schedule if kind != "none" else None,
            **(extra if kind != "none" else {}),
        )
        dims = preset.dims(base.action_dim)
        episodes, t0 = [], time.perf_counter()
        for i in range(args.episodes):
            r = rollout(env, policy, args.seed + i)
            m = smoothness(r.actions, dims, preset.bound)
            episodes.append(
                {"seed": args.seed + i, "success": bool(r.env_success()), "steps": r.length, **m}
            )
        wins = sum(e["success"] for e in episodes)
        lo, hi = wilson_interval(wins, len(episodes))
        stats = getattr(policy, "stats", None)
        row = {
            "method": "DP" if kind == "none" else f"DP + {kind}",
            "success [%]": 100.0 * wins / len(episodes),
            "ci95": [100.0 * lo, 100.0 * hi],
            "vel max": float(np.mean([e["vel max"] for e in episodes])),
            "acc max": float(np.mean([e["max"] for e in episodes])),
            "acc std": float(np.mean([e["std"] for e in episodes])),
            "steps over bound [%]": float(np.mean([e["over"] for e in episodes])),
            "mean steps": float(np.mean([e["steps"] for e in episodes])),
            "refine ms/chunk": stats.as_dict()["refine mean [ms]"] if stats else float("nan"),
            "wall [s]": time.perf_counter() - t0,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        (out / f"{kind}.json").write_text(json.dumps({"row": row, "episodes": episodes}) + "\n")
    (out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
