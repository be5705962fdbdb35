"""``ampczoo bench constraints``: constrained action chunks on DAMPC-KukaTrackObstacle-v0.

Every method runs closed loop on the same episodes (reset seeds ``seed .. seed+n-1``) at
``--control-dt`` 0.1 s (= the step of the predicted chunks, so one chunk step per env step),
with the SAME per-step change bound for every method: ``--bound`` (0.1) in units normalised by
the per-joint scale max |u_j| of the training data (the DiffOG checkpoint's ``action_scale``),
i.e. |u_{t+1,j} - u_{t,j}| <= bound * scale_j [rad/s] between consecutive executed commands.

Rows, per base policy (``--bases``: ``lsm`` = the zoo LSM, ``dampc`` = the zoo DAMPC without
early stopping, a jerky stochastic base): base, clipping, penalty (Table XI Robomimic
defaults in normalised units), DiffOG-dataset, DiffOG-refine, DiffOG without positional
encoding, static Q, matrix learning, residual; plus LeTO (its own policy). Checkpoints come
from ``--checkpoints`` (default ``runs``; folders ``constraints-<name>/best``, the lowest
validation loss, written by
``scripts/train_constraints.sh``; ``--leto`` for LeTO); a missing one is skipped and noted.

Tables (markdown + CSV): ``constraints`` -- SR [%] with 95 % Wilson interval, ATE, the action
derivative du/dt [rad/s^2] over whole episodes (DiffOG appendix F: max over time per joint
averaged over joints; std over time per joint averaged; then the mean over episodes), the
constraint-violation rate (% of steps after the first with any |du_j| > bound_j + 1e-6) and the
largest violation, the intervention rate and mean change of the filter, the refine time per
chunk mean / p95 [ms] (batch 1) and, for the QP refiners, the share of refines whose
unconstrained minimiser was infeasible so that ProxQP ran ("QP solver runs"); ``fidelity``
(with ``--speed-data``: MSE of each refiner's output to held-out demonstrated chunks, and how
often the demonstrations exceed the bound); ``ablation_alpha_bound`` (Fig. 10: DiffOG-dataset
retrained per setting where ``constraints-diffog-dataset-<alpha|bound><value>/best`` exists,
otherwise the default checkpoint with alpha / bound changed at inference only; column "trained
at"); ``time_varying`` (Table VIII: bounds 0.05 / 0.1 / 0.2 / 0.3 over four equal phases of
each episode, zero-shot); ``training_speed`` (one DiffOG training step, forward + backward,
batch ``--speed-batch``, ProxSuite vs cvxpylayers, and the epoch time it implies on the data;
the QP layer alone on the same problems for ProxSuite, cvxpylayers and, with ``--qpth-python``,
qpth run in a side environment by ``qpth_step.py``, with its distance to ProxSuite's solution).
``--tables`` runs a subset. Plots: ``constraints.png``. ``episodes.json``: every episode of
every row.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from ampczoo.benchmarks.common import (
    EpisodeResult,
    command_line,
    make_run_dir,
    run_episode,
    single_thread,
    smoothness,
    smoothness_summary,
    summarize_episodes,
    write_episodes_json,
    write_table,
)

ENV_ID = "DAMPC-KukaTrackObstacle-v0"
REFINERS = {
    "diffog-dataset": "DiffOG-dataset",
    "diffog-refine": "DiffOG-refine",
    "diffog-nope-dataset": "DiffOG no PE",
    "matrix-dataset": "matrix learning",
    "residual-dataset": "residual",
}


Table = Literal["main", "ablations", "fidelity", "speed"]


@dataclasses.dataclass(frozen=True)
class ConstraintsBenchConfig:
    """``ampczoo bench constraints``: constrained action chunks on DAMPC-KukaTrackObstacle-v0."""

    episodes: int = 50
    """closed-loop episodes per row (reset seeds seed .. seed+episodes-1)"""
    seed: int = 1000
    """reset seed of the first episode"""
    control_dt: float = 0.1
    """env step [s] (0.1 = the step of the predicted chunks)"""
    bound: float = 0.1
    """per-step change bound of every method, normalised by the per-joint data scale"""
    bases: tuple[str, ...] = ("lsm", "dampc")
    """base policies: lsm, dampc (the zoo DAMPC without early stopping) or a checkpoint
    folder / zoo name; empty: only the LeTO row"""
    checkpoints: str = "runs"
    """folder holding constraints-<name>/best (written by scripts/train_constraints.sh)"""
    leto: str = ""
    """LeTO checkpoint folder ("" = <checkpoints>/constraints-leto/best; missing: no LeTO
    row)"""
    ablation_episodes: int = 20
    """episodes per setting of the alpha / bound ablation"""
    speed_batch: int = 64
    """batch of the training-speed table"""
    speed_data: str = ""
    """demonstration store: sizes the implied epoch time and gives the held-out chunks of the
    fidelity table ("" = no fidelity rows)"""
    qpth_python: str = ""
    """python of a side environment with qpth (it pins numpy<2) for the training-speed table,
    e.g. .venv-qpth/bin/python ("" = no qpth row)"""
    tables: tuple[Table, ...] = ("main", "ablations", "fidelity", "speed")
    """which tables to run"""
    quick: bool = False
    """smoke run: at most 10 episodes per row, 5 per ablation setting"""
    out: str = "runs"
    """parent folder of the run folder"""

    def __post_init__(self) -> None:
        if self.quick:
            object.__setattr__(self, "episodes", min(self.episodes, 10))
            object.__setattr__(self, "ablation_episodes", min(self.ablation_episodes, 5))
        if self.episodes < 1 or self.ablation_episodes < 1 or self.speed_batch < 1:
            raise ValueError("episodes, ablation_episodes and speed_batch must be >= 1")
        if not self.bound > 0 or not self.control_dt > 0:
            raise ValueError(
                f"bound and control_dt must be > 0, got {self.bound}, {self.control_dt}"
            )
        unknown = set(self.tables) - set(get_args(Table))
        if unknown or not self.tables:
            raise ValueError(f"tables must be a non-empty subset of {get_args(Table)}")


class _NoESDAMPC:
    """The zoo DAMPC sampled without early stopping (a jerky, stochastic chunk policy)."""

    def __init__(self, policy: Any):
        self.policy = policy

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset(seed=seed)

    def act_chunk(self, obs: Any) -> np.ndarray:
        return self.policy.act_chunk(obs, early_stop=False)

    def act(self, obs: Any) -> np.ndarray:
        return self.act_chunk(obs)[0]


class _Phased:
    """Time-varying bounds (Table VIII): bound ``bounds[k]`` in phase k of ``steps`` steps."""

    def __init__(self, policy: Any, bounds: Sequence[float], steps: int):
        self.policy, self.bounds, self.steps, self.t = policy, list(bounds), steps, 0
        self.stats = policy.stats

    def reset(self, seed: int | None = None) -> None:
        self.t = 0
        self.policy.reset(seed)

    def act(self, obs: Any) -> np.ndarray:
        b = self.bounds[min(self.t // self.steps, len(self.bounds) - 1)]
        self.t += 1
        return self.policy.act(obs, bound=b)


def _row(
    name: str, results: list[EpisodeResult], dt: float, max_delta: np.ndarray, policy: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    s = summarize_episodes(results)
    per = [smoothness(r.actions, dt, max_delta) for r in results]
    row = {
        "method": name,
        "SR [%]": s["SR [%]"],
        "SR 95% CI": s["SR 95% CI"],
        "ATE [mm]": s["ATE [mm]"],
        **smoothness_summary(per),
    }
    stats = getattr(policy, "stats", None)
    if stats is not None:
        st = stats.as_dict()
        row.update(
            {
                "intervention [%]": st["intervention rate [%]"],
                "mean change [rad/s]": st["mean change"],
                "refine mean [ms]": st["refine mean [ms]"],
                "refine p95 [ms]": st["refine p95 [ms]"],
            }
        )
    if hasattr(policy, "n_continuity_dropped"):
        row["continuity dropped"] = policy.n_continuity_dropped
    return row, per


def _episodes(
    env: Any,
    policy: Any,
    cfg: ConstraintsBenchConfig,
    n: int,
) -> list[EpisodeResult]:
    return [run_episode(env, policy, cfg.seed + i) for i in range(n)]


def _checkpoint(cfg: ConstraintsBenchConfig, name: str) -> Path | None:
    """The validation-selected weights (``best/``) of a training run, else None."""
    path = Path(cfg.checkpoints) / f"constraints-{name}" / "best"
    return path if (path / "config.json").is_file() else None


def _methods(
    cfg: ConstraintsBenchConfig, base: Any, scale: np.ndarray, notes: list[str]
) -> dict[str, Any]:
    from ampczoo.policies.diffog import DiffOG, DiffOGConfig
    from ampczoo.policies.refiner import ChunkRefiner
    from ampczoo.wrappers import ClippingPolicy, PenaltyPolicy

    max_delta = cfg.bound * scale
    methods: dict[str, Any] = {
        "base": ClippingPolicy(base, max_delta=1e9),  # same chunk interface; never intervenes
        "clipping": ClippingPolicy(base, max_delta=max_delta),
        "penalty": PenaltyPolicy(base, max_delta=max_delta, action_scale=scale),
    }
    static = DiffOG(DiffOGConfig(q_mode="static", bound=cfg.bound, action_dim=len(scale)))
    static.action_scale.copy_(static.action_scale.new_tensor(scale))
    methods["static Q"] = DiffOG.wrap(base, static.config)
    methods["static Q"].refiner = static
    for key, label in REFINERS.items():
        path = _checkpoint(cfg, key)
        if path is None:
            notes.append(f"{label}: no checkpoint {cfg.checkpoints}/constraints-{key}/best")
            continue
        wrapped = (
            ChunkRefiner.wrap(base, path) if key.startswith("residual") else DiffOG.wrap(base, path)
        )
        if not key.startswith("residual"):
            r = wrapped.refiner
            wrapped.refiner = _with(r, bound=cfg.bound)
        methods[label] = wrapped
    return methods


def _with(refiner: Any, **changes: Any) -> Any:
    """A copy of a loaded refiner with config fields changed (inference-time alpha / bound)."""
    clone = type(refiner)(dataclasses.replace(refiner.config, **changes))
    clone.load_state_dict(refiner.state_dict())
    return clone.eval()


def _base(name: str) -> Any:
    from ampczoo.core.registry import load_policy

    if name == "lsm":
        return load_policy("lsm-kuka-obstacle", device="cpu")
    if name == "dampc":
        return _NoESDAMPC(load_policy("dampc-kuka-obstacle", device="cpu"))
    return load_policy(name, device="cpu")


def _scale(cfg: ConstraintsBenchConfig) -> np.ndarray:
    """Per-joint scale of the bounds: the DiffOG checkpoint's (= the data's max |u_j|)."""
    from ampczoo.core.registry import load_policy

    for key in REFINERS:
        path = _checkpoint(cfg, key)
        if path is not None:
            return load_policy(path, device="cpu").action_scale.numpy().astype(float)
    from ampczoo.robots.kuka import VELOCITY_LIMIT

    return np.full(7, VELOCITY_LIMIT)


def run_constraints_benchmark(cfg: ConstraintsBenchConfig) -> Path:
    """Run every table (see the module docstring) with torch on one thread; returns the run
    folder."""
    with single_thread():
        return _run_tables(cfg)


def _run_tables(cfg: ConstraintsBenchConfig) -> Path:
    import gymnasium as gym

    out = make_run_dir("bench-constraints", cfg.out)
    env = gym.make(ENV_ID, control_dt=cfg.control_dt)
    scale = _scale(cfg)
    rows, per_method, extras, notes = [], {}, {}, []
    text = ""
    if "main" in cfg.tables:
        text = _main_table(cfg, env, out, scale, rows, per_method, extras, notes)
    if "ablations" in cfg.tables:
        text += _ablations(cfg, env, out, scale, notes)
    if "fidelity" in cfg.tables:
        text += _fidelity_table(cfg, out, scale)
    if "speed" in cfg.tables:
        text += _speed_table(cfg, out)
    if rows:
        _plot(rows, out / "constraints.png")
    write_episodes_json(out / "episodes.json", per_method, dataclasses.asdict(cfg), extras)
    summary = "\n".join([text, *(f"- note: {n}" for n in notes), "", command_line()])
    (out / "README.md").write_text(summary + "\n")
    print(summary)
    print(f"\nwritten to {out}\ncommand: {command_line()}")
    return out


def _qp_share(before: dict[str, int]) -> dict[str, float]:
    """Share of the QP refines since ``before`` that needed ProxQP (the rest were answered by
    the unconstrained minimiser); empty when the method solved no QP."""
    from ampczoo.nn import qp

    n = {k: qp.UNCONSTRAINED_SOLVES[k] - before[k] for k in before}
    total = n["skipped"] + n["proxqp"]
    return {"QP solver runs [%]": 100.0 * n["proxqp"] / total} if total else {}


def _main_table(
    cfg: ConstraintsBenchConfig,
    env: Any,
    out: Path,
    scale: np.ndarray,
    rows: list,
    per_method: dict,
    extras: dict,
    notes: list[str],
) -> str:
    """The ``constraints`` table: every method on every base, plus LeTO."""
    from ampczoo.nn import qp

    max_delta = cfg.bound * scale
    for base_name in cfg.bases:
        base = _base(base_name)
        for name, policy in _methods(cfg, base, scale, notes).items():
            t0 = time.perf_counter()
            solves = dict(qp.UNCONSTRAINED_SOLVES)
            res = _episodes(env, policy, cfg, cfg.episodes)
            row, per = _row(name, res, cfg.control_dt, max_delta, policy)
            row.update(_qp_share(solves))
            rows.append({"base": base_name, **row})
            per_method[f"{base_name}/{name}"], extras[f"{base_name}/{name}"] = res, per
            print(
                f"{base_name}/{name}: SR {row['SR [%]']:.0f} % ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    leto = Path(cfg.leto) if cfg.leto else _checkpoint(cfg, "leto")
    if cfg.leto == "none":
        pass
    elif leto is not None and (leto / "config.json").is_file():
        from ampczoo.core.registry import load_policy

        pol = load_policy(leto, device="cpu")
        res = _episodes(env, pol, cfg, cfg.episodes)
        row, per = _row("LeTO", res, cfg.control_dt, max_delta, pol)
        rows.append({"base": "-", **row})
        per_method["LeTO"], extras["LeTO"] = res, per
    else:
        notes.append("LeTO: no checkpoint")
    return write_table(
        rows,
        out,
        "constraints",
        f"Constrained chunks on {ENV_ID} "
        f"(bound {cfg.bound} normalised, {cfg.episodes} episodes per row)",
    )


def _ablations(
    cfg: ConstraintsBenchConfig, env: Any, out: Path, scale: np.ndarray, notes: list[str]
) -> str:
    from ampczoo.policies.diffog import DiffOG

    path = _checkpoint(cfg, "diffog-dataset")
    if path is None:
        notes.append("ablations skipped: no DiffOG-dataset checkpoint")
        return ""
    base = _base("lsm")
    trained = DiffOG.wrap(base, path).refiner
    rows = []
    settings = [("alpha", a) for a in (0.5, 1.0, 4.0, 16.0)] + [
        ("bound", b) for b in (0.05, 0.1, 0.2, 0.4)
    ]
    for key, value in settings:
        alpha = value if key == "alpha" else trained.config.alpha
        bound = value if key == "bound" else cfg.bound
        retrained = _checkpoint(cfg, f"diffog-dataset-{key}{value:g}")
        pol = DiffOG.wrap(base, retrained or path)
        used = pol.refiner.config  # what the checkpoint was trained with
        pol.refiner = _with(pol.refiner, alpha=alpha, bound=bound)
        res = _episodes(env, pol, cfg, cfg.ablation_episodes)
        row, _ = _row(f"{key}={value}", res, cfg.control_dt, bound * scale, pol)
        rows.append(
            {
                "alpha": alpha,
                "bound": bound,
                "trained at": f"alpha {used.alpha:g}, bound {used.bound:g}",
                **row,
            }
        )
    text = write_table(
        rows,
        out,
        "ablation_alpha_bound",
        "DiffOG-dataset (LSM base): alpha and "
        "bound, retrained where constraints-diffog-dataset-<alpha|bound><value> "
        "exists, else changed at inference only",
    )
    phased = DiffOG.wrap(base, path)
    phased.refiner = trained
    steps = int(round(5.0 / cfg.control_dt)) // 4
    bounds = (0.05, 0.1, 0.2, 0.3)
    pol = _Phased(phased, bounds, steps)
    res = _episodes(env, pol, cfg, cfg.ablation_episodes)
    tv = []
    for k, b in enumerate(bounds):
        # the diffs of the actions chosen in phase k (each against its predecessor)
        sl = slice(max(k * steps - 1, 0), (k + 1) * steps if k < len(bounds) - 1 else None)
        per = [smoothness(r.actions[sl], cfg.control_dt, b * scale) for r in res]
        tv.append({"phase": f"P{k + 1}", "bound": b, **smoothness_summary(per)})
    s = summarize_episodes(res)
    tv.append(
        {"phase": "all", "bound": "0.05-0.3", "SR [%]": s["SR [%]"], "SR 95% CI": s["SR 95% CI"]}
    )
    return text + write_table(
        tv,
        out,
        "time_varying",
        "Time-varying bounds at inference (DiffOG-dataset trained at 0.1, LSM base)",
    )


def _speed_table(cfg: ConstraintsBenchConfig, out: Path) -> str:
    """One DiffOG training step (forward + backward) per QP backend at equal batch, and the
    QP layer alone on the same problems (plus qpth in ``--qpth-python``'s environment)."""
    import torch

    from ampczoo.policies.diffog import DiffOG, DiffOGConfig

    g = torch.Generator().manual_seed(0)
    u = torch.cumsum(0.1 * torch.randn(cfg.speed_batch, 20, 7, generator=g), dim=1)
    batch = {"obs": torch.zeros(cfg.speed_batch, 20), "u_seq": u}
    n_train = _train_samples(cfg)
    rows = []
    for backend in ("proxsuite", "cvxpylayers"):
        model = DiffOG(DiffOGConfig(backend=backend))
        step = _median_time(lambda m=model: m.loss(batch)[0].backward())
        rows.append(
            {
                "what": "DiffOG step",
                "backend": backend,
                "batch": cfg.speed_batch,
                "step [s]": step,
                "epoch [s] (implied)": step * np.ceil(n_train / cfg.speed_batch)
                if n_train
                else float("nan"),
            }
        )
    rows[0]["speed-up"] = rows[1]["step [s]"] / rows[0]["step [s]"]
    rows += _qp_layer_rows(cfg, out, batch)
    return write_table(
        rows,
        out,
        "training_speed",
        f"Training speed at batch "
        f"{cfg.speed_batch} (T_p 16 x 7; epoch = {n_train} train samples); "
        "speed-up = cvxpylayers time / this row's; max abs dz, d grad p: vs "
        "ProxSuite",
    )


def _median_time(fn: Any, repeats: int = 3) -> float:
    """Median wall time [s] of ``fn()`` over ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _qp_layer_rows(cfg: ConstraintsBenchConfig, out: Path, batch: dict) -> list[dict]:
    """The QP layer alone (forward + backward of sum(w z)) on one DiffOG batch's problems."""
    import subprocess

    import torch

    from ampczoo.nn import qp
    from ampczoo.policies.diffog import DiffOG, DiffOGConfig

    model = DiffOG(DiffOGConfig())
    target = batch["u_seq"][:, : model.config.chunk_len]
    with torch.no_grad():
        Q = (model.cost_matrix(target).double() + model.smooth).contiguous()
    p = -target.reshape(len(target), -1).double()
    hi = torch.full((model.G_diff.shape[0],), model.config.bound, dtype=torch.float64)
    G, lo, hi = model.G_diff, -hi.expand(len(p), -1), hi.expand(len(p), -1)
    w = torch.linspace(-1.0, 1.0, p.shape[1], dtype=torch.float64).expand_as(p)
    results = {}

    def layer(backend: str) -> tuple[torch.Tensor, torch.Tensor]:
        pr = p.clone().requires_grad_()
        z = qp.solve_qp(Q.clone().requires_grad_(), pr, G, lo, hi, backend=backend)
        (w * z).sum().backward()
        return z.detach(), pr.grad

    rows = []
    for backend in ("proxsuite", "cvxpylayers"):
        step = _median_time(lambda b=backend: results.__setitem__(b, layer(b)))
        rows.append({"what": "QP layer", "backend": backend, "batch": len(p), "step [s]": step})
    if cfg.qpth_python:
        problems, result = out / "qpth_problems.npz", out / "qpth_result.json"
        np.savez(
            problems,
            Q=Q.numpy(),
            p=p.numpy(),
            G=G.numpy(),
            lower=lo.numpy(),
            upper=hi.numpy(),
            w=w.numpy(),
        )
        script = Path(__file__).with_name("qpth_step.py")
        subprocess.run([cfg.qpth_python, str(script), str(problems), str(result), "4"], check=True)
        import json

        data = json.loads(result.read_text())
        z = torch.tensor(data["z"], dtype=torch.float64)
        results["qpth"] = (z, torch.tensor(data["grad_p"], dtype=torch.float64))
        rows.append(
            {
                "what": "QP layer",
                "backend": f"qpth {data['versions']['qpth']} (side "
                f"env, numpy {data['versions']['numpy']})",
                "batch": len(p),
                "step [s]": float(np.median(data["step_s"][1:])),
            }
        )
    ref_z, ref_g = results["proxsuite"]
    cvx = rows[1]["step [s]"]
    for row, (z, grad) in zip(rows, results.values(), strict=True):
        row["speed-up"] = cvx / row["step [s]"]
        row["max abs dz"] = float((z - ref_z).abs().max())
        row["max abs d grad p"] = float((grad - ref_g).abs().max())
    return rows


def _fidelity_table(cfg: ConstraintsBenchConfig, out: Path, scale: np.ndarray) -> str:
    """Open-loop fidelity on the val split of ``--speed-data`` (the split the trainer held
    out, seed 0, 10 %): MSE (normalised) between the refined and the demonstrated chunk
    (dataset-mode input), and how often the demonstrations themselves exceed the bound."""
    if not cfg.speed_data:
        return ""
    import torch

    from ampczoo.core.registry import load_policy
    from ampczoo.data.dataset import DemonstrationDataset
    from ampczoo.policies.diffog import DiffOG, DiffOGConfig

    ds = DemonstrationDataset(cfg.speed_data, "val", 0.1, 0)
    idx = np.random.default_rng(0).permutation(len(ds))[:512]
    u = torch.from_numpy(ds.u_seq[idx, :16].astype(np.float32))
    a = u / torch.as_tensor(scale, dtype=torch.float32)
    steps = np.abs(np.diff(a.numpy(), axis=1))
    static = DiffOG(DiffOGConfig(q_mode="static", bound=cfg.bound))
    refiners: dict[str, Any] = {"static Q": static}
    for key, label in REFINERS.items():
        path = _checkpoint(cfg, key)
        if path is not None:
            refiners[label] = (
                _with(load_policy(path, device="cpu"), bound=cfg.bound)
                if not key.startswith("residual")
                else load_policy(path, device="cpu")
            )
    rows = [
        {
            "method": "demonstrations",
            "val chunks": len(idx),
            "steps over bound [%]": float(np.mean(steps > cfg.bound + 1e-6) * 100.0),
        }
    ]
    for label, ref in refiners.items():
        with torch.no_grad():
            y = torch.cat([ref.refine_normalized(a[i : i + 128]) for i in range(0, len(a), 128)])
        d = np.abs(np.diff(y.numpy(), axis=1))
        rows.append(
            {
                "method": label,
                "val chunks": len(idx),
                "MSE to demo (normalised)": float(torch.mean((y - a) ** 2)),
                "steps over bound [%]": float(np.mean(d > cfg.bound + 1e-6) * 100.0),
            }
        )
    return write_table(
        rows,
        out,
        "fidelity",
        f"Open-loop fidelity on held-out demonstration chunks (first 16 steps, {cfg.speed_data})",
    )


def _train_samples(cfg: ConstraintsBenchConfig) -> int:
    if not cfg.speed_data:
        return 0
    from ampczoo.data.dataset import DemonstrationDataset

    return len(DemonstrationDataset(cfg.speed_data, "train"))


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['base']}/{r['method']}" for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.3 * len(rows) + 2), constrained_layout=True)
    for ax, key in zip(axes, ("SR [%]", "du/dt max [rad/s^2]", "du/dt std [rad/s^2]"), strict=True):
        ax.barh(labels, [r[key] for r in rows])
        ax.set_xlabel(key)
        ax.invert_yaxis()
    fig.savefig(path, dpi=110)
    plt.close(fig)
