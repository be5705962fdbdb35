"""``ampczoo bench speed``: inference time of every zoo policy and refiner, eager PyTorch vs
ONNX Runtime, next to the MPC expert's warm solve measured in the same run (issue 16).

For every env named by the selected checkpoints' cards (with the card's ``env_kwargs``), the
env's expert (KUKA envs: the MPC expert, ``MPCExpert.for_env``, compiled, ``--mpc-solver``
fatrop, first guess from the state, as ``ampczoo bench kuka``; 3-DOF arm: the IK-MPC expert,
OSQP) runs ``--episodes`` closed-loop episodes from reset seeds ``seed ..``: its
``act()`` wall times after the first step of each episode are the *warm solve* times, and
the observations it visits are the recorded observations every policy of that env is timed
on (the same observations, in the same order, for every backend).

Rows (one per policy, backend, device, threads, batch):

- batch 1: ``act(obs)`` on the recorded episodes in order, ``reset(seed)`` at each
  episode start (history buffers and DAMPC's guidance memory behave as in a closed loop);
- batch B > 1: DAMPC draws L = B samples for one observation and picks one with
  ``--sample-selection`` (default "cost": the sample-and-select of the DAMPC paper, the
  issue's L = 100); the other policies act on B observations per call (B envs stepped
  together: row j of call k is recorded observation (k + j P / B) mod P of the P recorded);
  refiners refine one chunk per call, so they have no batch rows;
- refiners (DiffOG, residual) run on the base their card names (``wrap``): the ``act()`` row
  is base + refine, the ``refine()`` row the refine call alone (one chunk, the QP included);
- threads: ``torch.set_num_threads(n)`` (torch) or ``n`` intra-op threads (ONNX Runtime);
  0 in ``--threads`` means every core (``os.cpu_count()``);
- on a CUDA machine (``torch.cuda.is_available()``) every torch row is repeated on the GPU,
  and with ONNX Runtime's CUDA provider (onnxruntime-gpu) the onnxruntime rows too.

Columns: act() time mean / p95 / max [ms] over ``--calls`` timed calls (``--batch-calls``
for batch > 1) after ``--warmup`` untimed ones; ``speed-up p95`` / ``speed-up max`` = the
expert's warm p95 / max divided by the row's; ``max |Δa| vs torch``: largest absolute
difference between the row's actions and the torch CPU row's with the same batch and threads
(same observations, same seeds), so the table shows that the backend computes the same
thing. A variant that cannot run (a type without an ONNX graph) is listed under "not timed"
with the reason.

Outputs in ``<out>/bench-speed-<date>/``: ``speed.md`` / ``speed.csv`` (the table),
``experts.md`` / ``.csv`` (warm solve times), ``speed_p95.png`` (p95 per row, log scale,
expert warm p95 as vertical lines), ``README.md`` with the command and notes.

Example::

    ampczoo bench speed                                  # every zoo checkpoint
    ampczoo bench speed --policies dampc-kuka-obstacle lsm-kuka-obstacle --calls 500
    ampczoo bench speed --quick                          # few calls, 1 expert episode
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ampczoo.benchmarks.common import command_line, make_run_dir, rollout, write_table

Backend = Literal["torch", "onnxruntime"]
Selection = Literal["cost", "cluster", "safe", "none"]
#: expert policy type of each env id the benchmark times against (the KUKA and 3-DOF envs:
#: the papers' learned-vs-MPC speed tables); zoo checkpoints of other envs (the manipulation
#: suites) are not timed here: ``ampczoo eval`` reports their act() time
ENV_EXPERTS = {
    "DAMPC-KukaTrack-v0": "mpc",
    "DAMPC-KukaTrackObstacle-v0": "mpc",
    "ThreeDOF-Reach-v0": "ikmpc",
}
#: backends the refiners (DiffOG, residual) run on: with "onnxruntime" the refiner's graph
#: (``ChunkRefiner.wrap(..., backend="onnxruntime")``) and the base's (its ``act_chunk``)
REFINER_BACKENDS: tuple[str, ...] = ("torch", "onnxruntime")
#: caps applied by ``quick``
QUICK_CAPS = {"episodes": 1, "calls": 20, "batch_calls": 5, "warmup": 2}


def zoo_names() -> tuple[str, ...]:
    """Every shipped checkpoint whose env has an expert in :data:`ENV_EXPERTS` (the default
    of ``--policies``)."""
    from ampczoo.core.registry import list_policies, zoo_card

    return tuple(n for n in list_policies() if zoo_card(n)["env"] in ENV_EXPERTS)


@dataclass(frozen=True)
class SpeedBenchConfig:
    """``ampczoo bench speed``: act() time of every zoo policy and refiner, torch vs ONNX
    Runtime, batch 1 and L = 100, one thread and all, next to the expert's warm solve."""

    policies: tuple[str, ...] = ()
    """zoo checkpoints to time (empty = every one; refiners run on the base their card
    names)"""
    backends: tuple[Backend, ...] = ("torch", "onnxruntime")
    """inference backends"""
    batch_sizes: tuple[int, ...] = (1, 100)
    """batches: B observations per call, for DAMPC L = B samples of one observation"""
    threads: tuple[int, ...] = (1, 0)
    """intra-op threads per row (0 = every core)"""
    sample_selection: Selection = "cost"
    """DAMPC's rule picking one of the L samples at batch > 1"""
    mpc_solver: Literal["fatrop", "ipopt"] = "fatrop"
    """NLP solver of the KUKA MPC expert (compiled, warm-started along the episode, first
    guess from the state: as ``ampczoo bench kuka``)"""
    episodes: int = 10
    """expert episodes per env: their warm solves and visited observations"""
    calls: int = 500
    """timed act() calls per batch-1 row"""
    batch_calls: int = 50
    """timed act() calls per batch > 1 row"""
    warmup: int = 5
    """untimed calls before each row"""
    cuda: bool = True
    """add GPU rows when CUDA is available"""
    seed: int = 0
    """reset seed of the first expert episode"""
    quick: bool = False
    """smoke run: 1 expert episode, 20 calls, 5 batch calls, 2 warm-up calls"""
    out: str = "runs"
    """parent folder of the run folder"""

    def __post_init__(self) -> None:
        if self.quick:
            for name, cap in QUICK_CAPS.items():
                object.__setattr__(self, name, min(getattr(self, name), cap))
        unknown = sorted(set(self.policies) - set(zoo_names()))
        if unknown:
            raise ValueError(
                f"policies {unknown} are not zoo checkpoints of an env with an MPC / IK-MPC "
                f"expert ({sorted(ENV_EXPERTS)}); choose from {zoo_names()}"
            )
        if not self.backends or set(self.backends) - {"torch", "onnxruntime"}:
            raise ValueError(
                f"backends must be a non-empty subset of torch, onnxruntime, got {self.backends}"
            )
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ValueError(f"batch_sizes must be non-empty and >= 1, got {self.batch_sizes}")
        if not self.threads or min(self.threads) < 0:
            raise ValueError(f"threads must be non-empty and >= 0 (0 = all), got {self.threads}")
        if self.sample_selection not in ("cost", "cluster", "safe", "none"):
            raise ValueError(f"unknown sample_selection {self.sample_selection!r}")
        if self.mpc_solver not in ("fatrop", "ipopt"):
            raise ValueError(f"mpc_solver must be fatrop or ipopt, got {self.mpc_solver!r}")
        if min(self.episodes, self.calls, self.batch_calls) < 1 or self.warmup < 0:
            raise ValueError("episodes, calls and batch_calls must be >= 1 and warmup >= 0")

    def selected(self) -> tuple[str, ...]:
        """The checkpoints to time (``policies`` or every zoo checkpoint)."""
        return self.policies or zoo_names()

    def thread_counts(self) -> list[int]:
        """``threads`` with 0 replaced by the number of cores, without repeats."""
        cores = os.cpu_count() or 1
        return list(dict.fromkeys(cores if n == 0 else n for n in self.threads))


# ----------------------------------------------------------------------------- recording
@dataclass
class Recording:
    """The expert's closed loops on one env: expert label ("mpc (fatrop)"), episodes as
    (seed, observations (T+1, D)) and warm act() times [s] (the first step of each episode,
    a cold start, left out)."""

    env_id: str
    expert: str
    episodes: list[tuple[int, np.ndarray]]
    warm_times: np.ndarray

    @property
    def pool(self) -> np.ndarray:
        """Every recorded observation, (P, D), episode after episode."""
        return np.concatenate([obs for _, obs in self.episodes])


def make_expert(env_id: str, env: Any, mpc_solver: str = "fatrop") -> Any:
    """The expert of ``env_id`` (:data:`ENV_EXPERTS`) for ``env``: the compiled MPC expert
    with ``mpc_solver`` and a first guess from the state, or the IK-MPC expert (OSQP)."""
    from ampczoo.core.registry import make_policy, policy_class

    kind = ENV_EXPERTS.get(env_id)
    if kind is None:
        raise ValueError(f"no expert known for {env_id!r}; known: {sorted(ENV_EXPERTS)}")
    if kind == "mpc":
        return policy_class("mpc").for_env(env, solver=mpc_solver, compile=True, cold_start="state")
    return make_policy(kind, dt=float(env.unwrapped.control_dt))


def record_expert(env_id: str, env_kwargs: dict[str, Any], cfg: SpeedBenchConfig) -> Recording:
    """Closed loops of the env's expert: warm solve times and the visited observations."""
    import gymnasium as gym

    import ampczoo.envs  # noqa: F401  (registers the env ids)

    env = gym.make(env_id, **env_kwargs)
    try:
        expert = make_expert(env_id, env, cfg.mpc_solver)
        runs = [rollout(env, expert, cfg.seed + i) for i in range(cfg.episodes)]
    finally:
        env.close()
    episodes = [(r.seed, np.asarray(r.observations, float)) for r in runs]
    warm = np.concatenate([r.act_times[1:] for r in runs])
    label = f"{ENV_EXPERTS[env_id]} ({expert.config.solver})"
    return Recording(env_id, label, episodes, warm)


# ----------------------------------------------------------------------------- timing
@dataclass
class Timing:
    """One row's timed calls: times [s] (calls,), actions (calls, ...) and, for refiners, the
    refine() times [s] alone."""

    times: np.ndarray
    actions: np.ndarray
    refine_times: np.ndarray | None = None


def batch1_calls(rec: Recording, calls: int) -> Iterator[tuple[int | None, np.ndarray]]:
    """(seed to reset with or None, obs (D,)) for ``calls`` calls: the recorded episodes in
    order (cycled when ``calls`` exceeds them), a reset seed at each episode start."""
    k = 0
    while True:
        for seed, obs in rec.episodes:
            for i, o in enumerate(obs):
                if k == calls:
                    return
                yield (seed if i == 0 else None), o
                k += 1


def batch_obs(pool: np.ndarray, k: int, B: int) -> np.ndarray:
    """Call k's batch (B, D): row j is recorded observation (k + j P / B) mod P."""
    P = len(pool)
    return pool[[(k + j * max(P // B, 1)) % P for j in range(B)]]


def time_batch1(
    policy: Any, act: Callable[[np.ndarray], Any], rec: Recording, cfg: SpeedBenchConfig
) -> Timing:
    """Warm-up calls, then ``cfg.calls`` timed ``act(obs)`` on the recorded episodes."""
    seed0, obs0 = rec.episodes[0]
    policy.reset(seed=seed0)
    for o in obs0[: cfg.warmup]:
        act(o)
    stats = policy.stats if hasattr(policy, "refiner") else None  # a wrapped refiner
    n_refine = len(stats.refine_times) if stats is not None else 0
    times, actions = [], []
    for seed, o in batch1_calls(rec, cfg.calls):
        if seed is not None:
            policy.reset(seed=seed)
        t0 = time.perf_counter()
        a = act(o)
        times.append(time.perf_counter() - t0)
        actions.append(np.asarray(a, float))
    refine = None if stats is None else np.asarray(stats.refine_times[n_refine:])
    return Timing(np.array(times), np.stack(actions), refine)


def time_batched(
    policy: Any, act: Callable[[np.ndarray], Any], rec: Recording, B: int, cfg: SpeedBenchConfig
) -> Timing:
    """Warm-up calls, then ``cfg.batch_calls`` timed calls on batches of B observations
    (``act`` decides what B means for the policy)."""
    pool = rec.pool
    seed = rec.episodes[0][0]
    policy.reset(seed=seed)
    for k in range(cfg.warmup):
        act(batch_obs(pool, k, B))
    policy.reset(seed=seed)
    times, actions = [], []
    for k in range(cfg.batch_calls):
        obs = batch_obs(pool, k, B)
        t0 = time.perf_counter()
        a = act(obs)
        times.append(time.perf_counter() - t0)
        actions.append(np.asarray(a, float))
    return Timing(np.array(times), np.stack(actions))


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch on ``n`` intra-op threads inside the block, restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class Variant:
    """How one row runs: backend, device ("cpu" | "cuda"), threads."""

    backend: str
    device: str
    threads: int


def is_refiner(name: str) -> bool:
    from ampczoo.core.registry import zoo_card

    return "base" in zoo_card(name)


def load(name: str, v: Variant) -> Any:
    """Zoo checkpoint ``name`` for variant ``v``; refiners wrapped around their card's base
    (loaded with the same backend). ValueError (reason) when the variant is not supported."""
    from ampczoo.core.registry import policy_class, zoo_card

    if not is_refiner(name):
        return _load_plain(name, v)
    if v.backend not in REFINER_BACKENDS:
        raise ValueError(f"the refiners run on {REFINER_BACKENDS}, not {v.backend!r}")
    card = zoo_card(name)
    base = _load_plain(card["base"], v)
    cls = policy_class(card["model"])
    if v.backend == "torch":
        return cls.wrap(base, name, device=v.device)
    return cls.wrap(base, name, device=v.device, backend=v.backend, num_threads=v.threads)


def _load_plain(name: str, v: Variant) -> Any:
    from ampczoo.core.registry import load_policy

    if v.backend == "torch":
        return load_policy(name, device=v.device).eval()
    policy = load_policy(name, backend=v.backend, num_threads=v.threads)
    if v.device == "cuda":
        policy.session = cuda_session(policy.onnx_path)
    return policy


def ort_cuda_available() -> bool:
    """Whether onnxruntime has its CUDA execution provider (onnxruntime-gpu)."""
    try:
        import onnxruntime
    except ImportError:
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def cuda_session(path: Path) -> Any:
    """An ONNX Runtime session of ``path`` on the CUDA execution provider."""
    import onnxruntime

    return onnxruntime.InferenceSession(
        str(path), providers=["CUDAExecutionProvider", "CPUExecutionProvider"]
    )


def variants(cfg: SpeedBenchConfig) -> list[Variant]:
    """CPU rows for every backend and thread count; CUDA rows (one CPU thread) for torch and,
    with onnxruntime-gpu, for onnxruntime."""
    import torch

    out = [Variant(b, "cpu", n) for b in cfg.backends for n in cfg.thread_counts()]
    if cfg.cuda and torch.cuda.is_available():
        out += [Variant("torch", "cuda", 1)] if "torch" in cfg.backends else []
        if "onnxruntime" in cfg.backends and ort_cuda_available():
            out.append(Variant("onnxruntime", "cuda", 1))
    return out


# ----------------------------------------------------------------------------- one policy
def actor(
    policy: Any, name: str, B: int, cfg: SpeedBenchConfig
) -> tuple[Callable[[np.ndarray], Any], str] | None:
    """(act function, what the batch is over) of ``policy`` at batch ``B``; None when the
    policy has no batch-B form (refiners at B > 1)."""
    from ampczoo.core.registry import zoo_card

    model = zoo_card(name)["model"]
    if B == 1:
        return policy.act, "-"
    if is_refiner(name):
        return None
    if model == "dampc":
        return (
            lambda obs: policy.act(obs[0], num_samples=B, selection=cfg.sample_selection),
            f"samples ({cfg.sample_selection})",
        )
    return policy.act, "observations"


def time_policy(
    name: str, v: Variant, rec: Recording, cfg: SpeedBenchConfig
) -> list[tuple[int, str, str, Timing]]:
    """(batch, batched over, timed part, timing) of every batch size for one variant."""
    policy = load(name, v)
    rows = []
    with torch_threads(v.threads):
        for B in cfg.batch_sizes:
            spec = actor(policy, name, B, cfg)
            if spec is None:
                continue
            act, over = spec
            t = (
                time_batch1(policy, act, rec, cfg)
                if B == 1
                else time_batched(policy, act, rec, B, cfg)
            )
            rows.append((B, over, "act()", t))
            if t.refine_times is not None:
                rows.append((B, over, "refine()", Timing(t.refine_times, t.actions)))
    return rows


# ----------------------------------------------------------------------------- tables
def ms_stats(times: np.ndarray) -> tuple[float, float, float]:
    """mean, p95, max [ms] of times [s]."""
    t = 1000.0 * np.asarray(times, float)
    return float(t.mean()), float(np.percentile(t, 95)), float(t.max())


def expert_row(rec: Recording) -> dict[str, Any]:
    mean, p95, mx = ms_stats(rec.warm_times)
    return {
        "env": rec.env_id,
        "expert": rec.expert,
        "warm solves": len(rec.warm_times),
        "mean [ms]": mean,
        "p95 [ms]": p95,
        "max [ms]": mx,
    }


def timing_row(
    name: str, v: Variant, B: int, over: str, part: str, t: Timing, rec: Recording
) -> dict[str, Any]:
    from ampczoo.core.registry import zoo_card

    mean, p95, mx = ms_stats(t.times)
    _, e95, emax = ms_stats(rec.warm_times)
    card = zoo_card(name)
    return {
        "env": rec.env_id,
        "policy": name + (f" on {card['base']}" if "base" in card else ""),
        "timed": part,
        "backend": v.backend,
        "device": v.device,
        "threads": v.threads,
        "batch": B,
        "batched over": over,
        "calls": len(t.times),
        "mean [ms]": mean,
        "p95 [ms]": p95,
        "max [ms]": mx,
        "speed-up p95": e95 / p95,
        "speed-up max": emax / mx,
        "max |Δa| vs torch": "-",
    }


def row_order(row: dict[str, Any]) -> tuple:
    """Table order: env, policy, part, batch, threads, device, backend (torch first), so the
    rows to compare sit next to each other."""
    return (
        row["env"],
        row["policy"],
        row["timed"],
        row["batch"],
        row["threads"],
        row["device"],
        row["backend"] != "torch",
    )


def action_differences(rows: list[dict[str, Any]], actions: list[np.ndarray]) -> None:
    """Fill ``max |Δa| vs torch`` of every non-torch CPU row from the torch CPU row of the
    same policy, part, batch and threads."""
    key = ("policy", "timed", "batch", "threads")
    reference = {
        tuple(r[k] for k in key): a
        for r, a in zip(rows, actions, strict=True)
        if r["backend"] == "torch" and r["device"] == "cpu"
    }
    for r, a in zip(rows, actions, strict=True):
        ref = reference.get(tuple(r[k] for k in key))
        if r["backend"] != "torch" and ref is not None and ref.shape == a.shape:
            r["max |Δa| vs torch"] = float(np.max(np.abs(a - ref)))


def plot_p95(rows: Sequence[dict[str, Any]], experts: Sequence[dict[str, Any]], path: Path) -> None:
    """Horizontal bars of p95 [ms] per row (log scale), expert warm p95 as vertical lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [
        f"{r['policy']} {r['timed']} B={r['batch']} | {r['backend']} {r['device']} {r['threads']}t"
        for r in rows
    ]
    colours = {
        ("torch", "cpu"): "tab:blue",
        ("onnxruntime", "cpu"): "tab:orange",
        ("torch", "cuda"): "tab:green",
        ("onnxruntime", "cuda"): "tab:red",
    }
    fig, ax = plt.subplots(figsize=(10, 1.0 + 0.22 * len(rows)), constrained_layout=True)
    y = np.arange(len(rows))[::-1]
    ax.barh(
        y,
        [r["p95 [ms]"] for r in rows],
        color=[colours.get((r["backend"], r["device"]), "tab:gray") for r in rows],
    )
    for e, style in zip(experts, ("--", ":", "-.", (0, (1, 3))), strict=False):
        ax.axvline(
            e["p95 [ms]"], ls=style, c="k", lw=1, label=f"{e['expert']} warm p95, {e['env']}"
        )
    ax.set_yticks(y, labels, fontsize=7)
    ax.set(
        xscale="log",
        xlabel="act() p95 [ms] (log)",
        title="p95 per call: torch (blue), onnxruntime (orange); CUDA: green / red",
    )
    ax.grid(axis="x", alpha=0.3, which="both")
    if experts:
        fig.legend(fontsize=7, loc="outside lower center", ncols=min(len(experts), 3))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- the run
@dataclass
class SpeedReport:
    rows: list[dict[str, Any]] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    experts: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def env_groups(names: Sequence[str]) -> dict[tuple[str, str], list[str]]:
    """{(env id, env_kwargs as JSON): checkpoints} from the zoo cards."""
    import json

    from ampczoo.core.registry import zoo_card

    groups: dict[tuple[str, str], list[str]] = {}
    for name in names:
        card = zoo_card(name)
        key = (card["env"], json.dumps(card.get("env_kwargs") or {}, sort_keys=True))
        groups.setdefault(key, []).append(name)
    return groups


def bench_group(
    env_id: str,
    env_kwargs: dict[str, Any],
    names: Sequence[str],
    cfg: SpeedBenchConfig,
    report: SpeedReport,
) -> None:
    """The expert's recording on one env, then every variant of every policy on it."""
    from ampczoo.benchmarks.common import single_thread

    print(
        f"bench speed: {env_id} {env_kwargs}: {ENV_EXPERTS.get(env_id)} expert, "
        f"{cfg.episodes} episodes"
    )
    with single_thread():
        rec = record_expert(env_id, env_kwargs, cfg)
    report.experts.append(expert_row(rec))
    for name in names:
        for v in variants(cfg):
            try:
                timed = time_policy(name, v, rec, cfg)
            except ValueError as exc:
                report.notes.append(f"{name} | {v.backend} {v.device}: not timed: {exc}")
                continue
            for B, over, part, t in timed:
                report.rows.append(timing_row(name, v, B, over, part, t, rec))
                report.actions.append(t.actions)
            print(f"  {name} | {v.backend} {v.device} {v.threads} thread(s): {len(timed)} rows")


def run_speed_bench(cfg: SpeedBenchConfig) -> Path:
    """Run the benchmark; returns the run folder ``<out>/bench-speed-<date>/``."""
    import json

    out = make_run_dir("bench-speed", cfg.out)
    report = SpeedReport()
    for (env_id, kwargs), names in env_groups(cfg.selected()).items():
        bench_group(env_id, json.loads(kwargs), names, cfg, report)
    action_differences(report.rows, report.actions)
    report.rows.sort(key=row_order)
    notes = list(dict.fromkeys(report.notes))
    md = write_table(
        report.experts,
        out,
        "experts",
        "Expert warm solve (act() after the first step of each episode)",
    )
    md += "\n" + write_table(
        report.rows, out, "speed", "act() / refine() time per call, speed-up = expert warm / row"
    )
    if report.rows:
        plot_p95(report.rows, report.experts, out / "speed_p95.png")
    not_timed = "".join(f"- {n}\n" for n in notes)
    (out / "README.md").write_text(
        f"Command: `{command_line()}`\n\n" + (f"Not timed:\n\n{not_timed}\n" if notes else "") + md
    )
    print(md)
    for n in notes:
        print(f"note: {n}")
    print(f"wrote {out}\ncommand: {command_line()}")
    return out
