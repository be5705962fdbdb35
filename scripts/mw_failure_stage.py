"""Where in a Meta-World task the rows of ``bench manipulation`` fail: per episode the furthest
stage Meta-World's own info reports (near the object, grasped, object at the target) and the
pace (steps, mean |position action|), for the base and its static-Q DiffOG variants.

    python scripts/mw_failure_stage.py --env MetaWorld-StickPush-v0 --base dp-stickpush \
        --rows base static static:0 --episodes 50 --seed 100000 --out runs/mw-stage.json

Rows: ``base`` or a ``--diffog`` SPEC of ``ampczoo bench manipulation`` (``static[:ALPHA]`` or a
refiner checkpoint); episodes from the bench's reset seeds, ending at the first success.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def episode_stages(env, policy, seed: int) -> dict:
    """One episode: success, steps, max near_object / grasp_success, min obj_to_target [m],
    mean |a| over the position dims (normalised to the env's [-1, 1] actions)."""
    obs, info = env.reset(seed=seed)
    policy.reset(seed=seed)
    near = grasp = 0.0
    to_target = np.inf
    actions = []
    done = False
    while not done:
        action = np.asarray(policy.act(obs), np.float64)
        obs, _, terminated, truncated, info = env.step(action)
        actions.append(action)
        near = max(near, float(info.get("near_object", 0.0)))
        grasp = max(grasp, float(info.get("grasp_success", 0.0)))
        to_target = min(to_target, float(info.get("obj_to_target", np.inf)))
        done = terminated or truncated or bool(info.get("success", False))
    a = np.array(actions)
    return {
        "seed": seed,
        "success": bool(info.get("success", False)),
        "steps": len(a),
        "near_object": near,
        "grasped": grasp,
        "min_obj_to_target": to_target,
        "mean_abs_position_action": float(np.abs(a[:, :3]).mean()),
    }


def main() -> None:
    import gymnasium as gym
    import torch

    import ampczoo.envs  # noqa: F401
    from ampczoo.benchmarks.manipulation import RowSpec, row_policy

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", required=True)
    p.add_argument("--base", required=True)
    p.add_argument("--rows", nargs="+", default=["base", "static", "static:0"])
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=100000)
    p.add_argument("--out", default="")
    args = p.parse_args()
    torch.set_num_threads(1)
    env = gym.make(args.env)
    action_dim = int(env.action_space.shape[0])
    results = {}
    for row in args.rows:
        spec = RowSpec("base", args.base) if row == "base" else RowSpec("diffog", args.base, row)
        policy = row_policy(spec, args.env, action_dim)
        eps = [episode_stages(env, policy, args.seed + i) for i in range(args.episodes)]
        results[row] = eps
        fails = [e for e in eps if not e["success"]]
        closest = np.median([e["min_obj_to_target"] for e in fails]) if fails else np.nan
        print(
            f"{row}: success {sum(e['success'] for e in eps)}/{len(eps)}; failures: "
            f"{sum(e['grasped'] > 0 for e in fails)} grasped, "
            f"{sum(e['near_object'] > 0 for e in fails)} near the object, "
            f"median closest object-target {closest:.3f} m; "
            f"successes: mean steps {np.mean([e['steps'] for e in eps if e['success']]):.1f}; "
            f"mean |a_pos| {np.mean([e['mean_abs_position_action'] for e in eps]):.3f}"
        )
    env.close()
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
