"""DiffOG with an int8 Q head (``DiffOG.wrap(..., backend="onnxruntime", precision="int8")``)
against the float32 graph, on the constraints benchmark's quick settings (issue 16;
docs/results/speed.md).

DAMPC-KukaTrackObstacle-v0 at control step 0.1 s, reset seeds 1000..1009 (``ampczoo bench
constraints --quick``), change bound 0.1 normalised by the refiner's per-joint scale; bases as
that benchmark's: the zoo LSM and the zoo DAMPC without early stopping; refiner: the zoo
``diffog-kuka-obstacle``. Per base and precision: success rate, ATE, the change-bound
violations of the executed commands, refine time; and, along the float32 closed loop, the
int8 refiner on the same chunks and continuity rows (its own warm start): largest difference
of the refined chunk and of the executed action. Prints markdown tables.

    nice -n 5 python scripts/diffog_precision.py [--episodes 10]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

from ampczoo.benchmarks.common import run_episode, smoothness, summarize_episodes
from ampczoo.benchmarks.constraints import ENV_ID, _base
from ampczoo.policies.diffog import DiffOG

REFINER = "diffog-kuka-obstacle"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--bound", type=float, default=0.1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    env = gym.make(ENV_ID, control_dt=0.1)
    seeds = range(1000, 1000 + args.episodes)
    print(
        "| base | precision | SR [%] | ATE [mm] | violation [%] | largest violation [rad/s] "
        "| refine median [ms] | refine p95 [ms] |"
    )
    print("|---|---|---|---|---|---|---|---|")
    shadow_rows = []
    for base_name in ("lsm", "dampc"):
        for precision in ("float32", "int8"):
            policy = DiffOG.wrap(
                _base(base_name), REFINER, backend="onnxruntime", precision=precision
            )
            policy.refiner.config = _with_bound(policy.refiner.config, args.bound)
            max_delta = policy.refiner.raw_bound()
            times: list[float] = []
            refine = policy.refine

            def timed(chunk, prev, bound=None, refine=refine, times=times):  # type: ignore[no-untyped-def]
                t0 = time.perf_counter()
                out = refine(chunk, prev, bound)
                times.append(time.perf_counter() - t0)
                return out

            policy.refine = timed  # type: ignore[method-assign]
            if precision == "float32":  # the int8 refiner on the same inputs, not timed
                shadow = DiffOG.wrap(
                    _base(base_name), REFINER, backend="onnxruntime", precision="int8"
                )
                shadow.refiner.config = policy.refiner.config
                shadow_rows.append((base_name, _shadowed(policy, shadow)))
            results = [run_episode(env, policy, s) for s in seeds]
            s = summarize_episodes(results)
            per = [smoothness(r.actions, 0.1, max_delta) for r in results]
            t = 1e3 * np.asarray(times)
            print(
                f"| {base_name} | {precision} | {s['SR [%]']:.0f} | {s['ATE [mm]']:.1f} | "
                f"{np.mean([p['viol'] for p in per]):.2f} | "
                f"{max(p['viol max'] for p in per):.2e} | {np.median(t):.3f} | "
                f"{np.percentile(t, 95):.3f} |"
            )
    print(
        "\n| base | refines | int8 vs float32: max abs chunk diff [rad/s] | executed action: "
        "max | median |"
    )
    print("|---|---|---|---|---|")
    for base_name, diffs in shadow_rows:
        chunk_d = np.array([d[0] for d in diffs])
        act_d = np.array([d[1] for d in diffs])
        print(
            f"| {base_name} | {len(diffs)} | {chunk_d.max():.2e} | {act_d.max():.2e} | "
            f"{np.median(act_d):.2e} |"
        )
    env.close()


def _with_bound(config, bound):  # type: ignore[no-untyped-def]
    import dataclasses

    return dataclasses.replace(config, bound=bound)


def _shadowed(policy, shadow) -> list:  # type: ignore[no-untyped-def]
    """Make ``policy.refine`` also run ``shadow``'s refiner on the same inputs; the returned
    list collects (max |chunk diff|, |executed action diff|) per refine."""
    diffs: list = []
    refine = policy.refine

    def both(chunk, prev, bound=None):  # type: ignore[no-untyped-def]
        out = refine(chunk, prev, bound)
        other = shadow.refine(chunk, prev, bound)
        diffs.append((float(np.abs(other - out).max()), float(np.abs(other[0] - out[0]).max())))
        return out

    policy.refine = both
    reset = policy.reset

    def reset_both(seed=None):  # type: ignore[no-untyped-def]
        reset(seed)
        shadow.reset(seed)

    policy.reset = reset_both
    return diffs


if __name__ == "__main__":
    main()
