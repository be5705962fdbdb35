"""Where the time of the ONNX Runtime hot paths goes (issue 16; docs/results/speed.md).

One torch / ONNX Runtime thread, the shipped checkpoints on DAMPC-KukaTrackObstacle-v0 (control
step 0.1 s), observations of a 50-step closed loop of dampc-kuka-obstacle (reset seed 0). Per
hot path: the call's wall time (median / p95 over ``--calls``), the time inside
``InferenceSession.run`` and the rest (Python: checks, noise, conversions, selection, QP), and
ONNX Runtime's own per-node profile of the graph grouped by the part of the model the nodes
come from. For the DiffOG refine also the QP's parts (Cholesky shortcut, ProxQP, solution
check). Prints a markdown table.

    nice -n 5 python scripts/profile_speed.py --calls 300
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import ampczoo
import ampczoo.envs  # noqa: F401  (registers the env ids)
from ampczoo.nn import qp
from ampczoo.policies.diffog import DiffOG

ENV_ID = "DAMPC-KukaTrackObstacle-v0"


class Clock:
    """CPU time of this thread [s] in wrapped callables per timed call, by label
    (:meth:`start` opens the next call). CPU time, not wall time: on a shared machine the
    waits for a core inflate wall times at random, which would hide how a call splits."""

    def __init__(self) -> None:
        self.calls: list[dict[str, float]] = []

    def start(self) -> None:
        self.calls.append(collections.defaultdict(float))

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                if self.calls:
                    self.calls[-1][label] += time.thread_time() - t0

        return timed

    def parts(self, times: tuple[np.ndarray, np.ndarray], labels: list[str]) -> dict[str, float]:
        """Median CPU time per call [ms] of each label and of the rest of the call."""
        per = {k: 1e3 * np.array([c.get(k, 0.0) for c in self.calls]) for k in labels}
        rest = times[1] - sum(per.values())
        return {**{k: float(np.median(v)) for k, v in per.items()}, "rest": float(np.median(rest))}


def recorded_observations(steps: int = 50) -> list[np.ndarray]:
    env = gym.make(ENV_ID, control_dt=0.1)
    obs, _ = env.reset(seed=0)
    policy = ampczoo.load_policy("dampc-kuka-obstacle", device="cpu")
    policy.reset(seed=0)
    out = [obs]
    for _ in range(steps - 1):
        obs, *_ = env.step(policy.act(obs))
        out.append(obs)
    env.close()
    return out


def node_groups(path: str, feeds: dict[str, np.ndarray], runs: int, group: Callable) -> dict:
    """ONNX Runtime's per-node profile of ``runs`` runs: share [%] of the node time by group
    (the profiler's own overhead per node inflates absolute times, so only shares)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        session.run(None, feeds)
    with open(session.end_profiling()) as fh:
        events = json.load(fh)
    totals: dict[str, float] = collections.defaultdict(float)
    nodes: set[str] = set()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            node = e["name"][: -len("_kernel_time")]
            nodes.add(node)
            totals[group(node)] += e["dur"]
    total = sum(totals.values())
    shares = {k: 100.0 * v / total for k, v in totals.items()}
    return {"nodes": len(nodes), **shares}


def features_or_network(node: str) -> str:
    return "observation features" if "obs_input" in node else "network (MLP / denoiser loop)"


def diffog_part(node: str) -> str:
    if "/q_encoder/layers" in node:
        return "transformer encoder"
    if "/q_encoder/head" in node or "/q_encoder/norm" in node:
        return "Q head (LayerNorm + Linear)"
    if "/q_encoder/" in node:
        return "token projection"
    return "Algorithm 1 (L Lᵀ) + smoothing"


def timed_calls(
    fn: Callable[[int], Any], calls: int, clock: Clock
) -> tuple[np.ndarray, np.ndarray]:
    """(wall, thread CPU) times [ms] of ``calls`` calls after 5 untimed ones."""
    for k in range(5):
        fn(k)
    clock.calls.clear()
    wall, cpu = [], []
    for k in range(calls):
        clock.start()
        t0, c0 = time.perf_counter(), time.thread_time()
        fn(k)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    return 1e3 * np.asarray(wall), 1e3 * np.asarray(cpu)


def row(
    label: str,
    times: tuple[np.ndarray, np.ndarray],
    parts: dict[str, float],
    nodes: dict[str, float],
) -> str:
    wall, cpu = times
    parts_s = "; ".join(f"{k} {v:.3f}" for k, v in parts.items())
    count = int(nodes.pop("nodes"))
    shares = sorted(nodes.items(), key=lambda x: -x[1])
    nodes_s = f"{count} nodes: " + "; ".join(f"{k} {v:.0f} %" for k, v in shares)
    return (
        f"| {label} | {np.median(wall):.3f} | {np.percentile(wall, 95):.3f} | "
        f"{np.median(cpu):.3f} | {parts_s} | {nodes_s} |"
    )


def profile_policy(name: str, observations: list, calls: int, **act_kwargs: Any) -> str:
    policy = ampczoo.load_policy(name, backend="onnxruntime")
    clock = Clock()
    policy.session.run = clock.wrap("session", policy.session.run)
    inner = policy.policy
    for attr in ("_graph_noise", "select"):
        if hasattr(inner, attr):
            setattr(inner, attr, clock.wrap(attr, getattr(inner, attr)))
    policy.reset(seed=0)
    times = timed_calls(
        lambda k: policy.act(observations[k % len(observations)], **act_kwargs), calls, clock
    )
    labels = ["session"] + (["_graph_noise"] if hasattr(inner, "_graph_noise") else [])
    labels += ["select"] if act_kwargs else []
    parts = clock.parts(times, labels)
    feeds = last_feeds(policy, observations[0], act_kwargs)
    nodes = node_groups(str(policy.onnx_path), feeds, 50, features_or_network)
    label = f"{name} act()" + (f" L={act_kwargs['num_samples']}" if act_kwargs else "")
    return row(label, times, parts, nodes)


def last_feeds(policy: Any, obs: np.ndarray, act_kwargs: dict) -> dict[str, np.ndarray]:
    """The feeds of one act() call (captured from the session)."""
    captured: dict[str, Any] = {}
    run = policy.session.run

    def capture(names: Any, feeds: dict) -> Any:
        captured.update({k: np.array(v) for k, v in feeds.items()})
        return run(names, feeds)

    policy.session.run = capture
    policy.act(obs, **act_kwargs)
    policy.session.run = run
    return captured


def profile_refiner(name: str, observations: list, calls: int) -> str:
    base = ampczoo.load_policy("dampc-kuka-obstacle", device="cpu")
    base.reset(seed=0)
    chunks = [base.act_chunk(o) for o in observations]
    wrap = DiffOG.wrap(base, name, backend="onnxruntime")
    runtime, refiner = wrap.run.__self__, wrap.refiner  # type: ignore[attr-defined]
    clock = Clock()
    runtime.session.run = clock.wrap("session", runtime.session.run)
    workspace = refiner.qp_workspace
    workspace.solve = clock.wrap("ProxQP", workspace.solve)
    patched = {
        "_unconstrained_minimisers": "Cholesky shortcut",
        "_check_solution": "solution check",
    }
    originals = {f: getattr(qp, f) for f in patched}
    for f, label in patched.items():
        setattr(qp, f, clock.wrap(label, originals[f]))
    try:
        times = timed_calls(
            lambda k: wrap.refine(chunks[k % len(chunks)], chunks[(k - 1) % len(chunks)][0]),
            calls,
            clock,
        )
    finally:
        for f, fn in originals.items():
            setattr(qp, f, fn)
    parts = clock.parts(times, ["session", "Cholesky shortcut", "ProxQP", "solution check"])
    scale = refiner.action_scale.double().numpy()
    a = (chunks[0][: refiner.config.chunk_len] / scale).astype(np.float32)[None]
    nodes = node_groups(str(runtime.onnx_path), {"a": a}, 50, diffog_part)
    return row(f"{name} refine()", times, parts, nodes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="timed calls per hot path")
    args = parser.parse_args()
    torch.set_num_threads(1)
    observations = recorded_observations()
    print(
        "| hot path (onnxruntime, 1 thread) | wall median [ms] | wall p95 [ms] | CPU median "
        "[ms] | parts, CPU median per call [ms] | inside the graph: ONNX Runtime node "
        "profile, share of node time |"
    )
    print("|---|---|---|---|---|---|")
    print(profile_policy("dampc-kuka-obstacle", observations, args.calls))
    print(
        profile_policy(
            "dampc-kuka-obstacle",
            observations,
            max(args.calls // 5, 10),
            num_samples=100,
            selection="cost",
        )
    )
    print(profile_policy("lsm-kuka-obstacle", observations, args.calls))
    for name in ("diffog-kuka-obstacle", "diffog-matrix-kuka-obstacle"):
        print(profile_refiner(name, observations, args.calls))


if __name__ == "__main__":
    main()
