"""``ampczoo bench ik``: IKDiffuser vs numerical IK, the analogues of the IKDiffuser paper's tables.

Per robot, on ``--poses`` unseen targets (FK of configurations uniform within the joint limits,
self-colliding ones redrawn; a seed of their own, not the training data's), ``--samples`` each:

- **Table I** (``table1``): position error [mm] (mean ± std, median; over every solution and
  end-effector), geodesic angle [deg], self-collision % (:mod:`ampczoo.ik.collision`), solved %
  (< ``pos_tol`` and < ``rot_tol``) and diversity: the mean pairwise joint distance [rad] of the
  samples of one target, averaged over the targets, and its ratio to that of random-restart DLS
  (:func:`~ampczoo.ik.numerical.solve_random_restart`, the numerical reference: the paper's
  cuRobo). IKDiffuser rows need a model; the numerical row is always there.
- **Tables II/III** (``table2``): success (< 0.1 mm and < 0.01 rad within ``max_iters``) and
  iterations (mean over the solved runs, and over all runs counting the cap) of DLS and Pink
  from random seeds vs from the model's samples (the Table I samples are the seeds). Pink
  solves one problem at a time, so it runs on the first ``--pink-poses`` targets only.
- **Time per solution vs batch size** (``timing``): for ``--timing-poses`` targets and each
  batch size b, draw b seeds (uniform, or b model samples), refine them all, and divide the
  wall time (seeding included) by the number solved; the model's sampling time per sample on
  its own; CPU, ``torch.set_num_threads(1)``, all methods in the same run; ratios printed.
- **Tables IV/V** (``table4_warm_start``, ``table5_manipulability``, first ``--guided-poses``
  targets): warm start -- the prior is the target's own configuration, the target position is
  moved uniformly within a ``--warm-radius`` ball; J.Diff [%] = mean over joints of |q - q_prior|
  / joint range, without and with warm-start guidance (and DLS from the prior for reference);
  manipulability Σ_i √det(J_i J_iᵀ) with and without manipulability guidance (M.Imp [%]).
- **Task 5** (``task5_marginal``, robots with >= 2 end-effectors): each target masks a uniform
  number m in 1..N_ee-1 of its end-effectors (uniformly chosen); errors on the constrained ones.
- **Ablation** (``ablation_flat``, with ``--flat-model``): Table I metrics of a model with
  flat (concatenated) pose conditioning beside the sequence model.

A model is anything with the :class:`~ampczoo.ik.seeding.IKSampler` protocol; ``--model``
takes, per robot, a zoo name or checkpoint folder (``IKDiffuser.from_pretrained``), ``none``, or
``oracle[:NOISE]`` (:class:`~ampczoo.ik.seeding.OracleSampler`: numerical solutions + Gaussian
noise, a check of the metrics, no learned model). Without ``--model`` the zoo's
``ikdiffuser-<robot>`` is used where shipped (the numerical rows run either way).

Writes ``<table>.md`` / ``.csv`` for each table, ``report.md`` (all tables and the command),
``results.json`` and plots (``timing.png``, ``success_vs_iterations.png``) into
``runs/ik-<date>/``; prints the tables, the ratios and the command.

Example::

    ampczoo bench ik --robots panda baxter kuka --poses 200 --samples 20 --pink-poses 200
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from ampczoo.benchmarks.common import command_line, make_run_dir, single_thread, write_table
from ampczoo.ik.numerical import (
    MAX_ITERS,
    POS_TOL,
    ROT_TOL,
    IKSolveResult,
    pose_errors,
    solve_dls,
    solve_pink,
    solve_random_restart,
)
from ampczoo.ik.robots import IKRobot, load_robot
from ampczoo.ik.seeding import OracleSampler, ik_seeds, load_ik_sampler, zoo_model_name

#: held-out test targets use seeds from here on (training draws its own)
TEST_SEED_OFFSET = 7_000_003
QUICK = {
    "poses": 12,
    "samples": 6,
    "pink_poses": 4,
    "timing_poses": 1,
    "batch_sizes": (4, 8),
    "guided_poses": 6,
    "restarts": 3,
}


@dataclass(frozen=True)
class IKBenchConfig:
    """``ampczoo bench ik``: IKDiffuser vs numerical IK (the IKDiffuser paper's tables)."""

    robots: tuple[str, ...] = ("panda", "baxter", "kuka")
    """robots (``ampczoo.ik.robots.list_robots``); ``panda,baxter`` also accepted"""
    model: tuple[str, ...] = ()
    """per robot (same order, or ``ROBOT=VALUE``): zoo name / checkpoint folder, ``none``, or
    ``oracle[:NOISE]``; empty = ``ikdiffuser-<robot>`` where shipped"""
    flat_model: tuple[str, ...] = ()
    """flat-conditioning models for the ablation (same format as ``model``)"""
    numerical_only: bool = False
    """skip every model row (the numerical baselines only)"""
    poses: int = 10_000
    """unseen target poses per robot"""
    samples: int = 100
    """samples (and seeds) per target"""
    pink_poses: int = 500
    """targets of the Pink rows of Table III (Pink runs one problem at a time)"""
    restarts: int = 10
    """restart budget of random-restart DLS (Table I)"""
    max_iters: int = MAX_ITERS
    """iteration cap of DLS and Pink"""
    pos_tol: float = POS_TOL
    """success: position error below this [m]"""
    rot_tol: float = ROT_TOL
    """success: angle error below this [rad]"""
    batch_sizes: tuple[int, ...] = (4, 8, 16, 32, 64, 128)
    """batch sizes of the timing table"""
    timing_poses: int = 10
    """targets of the timing table"""
    guided_poses: int = 1000
    """targets of Tables IV/V and Task 5"""
    warm_radius: float = 0.02
    """Table IV: the target moves uniformly within this radius of the prior's pose [m]"""
    quick: bool = False
    """CI-sized run: 12 poses x 6 samples, 4 Pink poses, 1 timing pose, batches 4 and 8"""
    seed: int = 0
    """seed of the test targets and every random draw"""
    out: str = "runs"
    """folder of the run folders"""

    def __post_init__(self) -> None:
        for name in ("poses", "samples", "pink_poses", "timing_poses", "guided_poses"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.samples < 2:
            raise ValueError("samples must be >= 2 (diversity compares samples of one target)")
        if self.restarts < 0 or self.max_iters < 1:
            raise ValueError("restarts must be >= 0 and max_iters >= 1")
        if not (self.pos_tol > 0 and self.rot_tol > 0 and self.warm_radius >= 0):
            raise ValueError("pos_tol and rot_tol must be > 0, warm_radius >= 0")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ValueError(f"batch_sizes must be >= 1, got {self.batch_sizes}")
        robots = robot_names(self)
        if not robots:
            raise ValueError("robots must name at least one robot")
        for r in robots:
            load_robot(r)  # ValueError naming the known robots
        per_robot(self.model, robots, "model")
        per_robot(self.flat_model, robots, "flat_model")

    def effective(self) -> IKBenchConfig:
        """The config with ``quick``'s sizes applied."""
        if not self.quick:
            return self
        values = {**asdict(self), **QUICK, "quick": False}
        return IKBenchConfig(**values)


def robot_names(cfg: IKBenchConfig) -> list[str]:
    """``cfg.robots`` with comma-separated entries split."""
    return [r for entry in cfg.robots for r in entry.split(",") if r]


def per_robot(values: tuple[str, ...], robots: list[str], what: str) -> dict[str, str]:
    """{robot: value} from ``values`` given in robot order or as ``ROBOT=VALUE``."""
    flat = [v for entry in values for v in entry.split(",") if v]
    if not flat:
        return {}
    if all("=" in v for v in flat):
        out = dict(v.split("=", 1) for v in flat)
        unknown = set(out) - set(robots)
        if unknown:
            raise ValueError(f"{what}: robots {sorted(unknown)} are not in --robots {robots}")
        return out
    if len(flat) != len(robots):
        raise ValueError(
            f"{what}: give one value per robot ({len(robots)}: {robots}) or ROBOT=VALUE, "
            f"got {len(flat)}"
        )
    return dict(zip(robots, flat, strict=True))


# ----------------------------------------------------------------------------- models
def make_sampler(robot: str, spec: str | None, required: bool) -> Any:
    """The IK sampler of ``robot`` from a ``--model`` value (None = the zoo's, if shipped).
    Returns None for ``none``, or for a missing zoo model when ``required`` is False."""
    if spec is not None and spec.lower() == "none":
        return None
    if spec is not None and spec.startswith("oracle"):
        _, _, noise = spec.partition(":")
        return OracleSampler(robot, noise=float(noise or 0.0))
    try:
        return load_ik_sampler(robot, spec)
    except ValueError as err:
        if required:
            raise
        print(f"[bench ik] {robot}: no model rows ({err})")
        return None


def make_guidance(q_prior: Any = None, manipulability: bool = False) -> Any:
    """IKDiffuser's ``Guidance`` (warm start toward ``q_prior`` (B, dof) and/or
    manipulability), or an object with the same attributes where it is not installed."""
    try:
        from ampczoo.ik.diffuser import Guidance
    except ImportError:
        return SimpleNamespace(q_prior=q_prior, manipulability=manipulability)
    return Guidance(q_prior=q_prior, manipulability=manipulability)


def sample_model(
    sampler: Any,
    poses: np.ndarray,
    num: int,
    generator: torch.Generator,
    mask: np.ndarray | None = None,
    guidance: Callable[[slice], Any] | None = None,
    chunk: int = 256,
) -> np.ndarray:
    """(B, num, dof) float64 samples in chunks of ``chunk`` targets; guidance(rows) builds
    the guidance of a chunk's rows."""
    out = []
    for start in range(0, len(poses), chunk):
        rows = slice(start, start + chunk)
        kw: dict[str, Any] = {"num_samples": num, "generator": generator}
        if mask is not None:
            kw["mask"] = torch.as_tensor(mask[rows])
        if guidance is not None:
            kw["guidance"] = guidance(rows)
        q = sampler.sample(torch.as_tensor(poses[rows], dtype=torch.float32), **kw)
        q = q.detach().cpu().numpy() if isinstance(q, torch.Tensor) else np.asarray(q)
        out.append(q.astype(np.float64))
    return np.concatenate(out)


# ----------------------------------------------------------------------------- targets
def held_out_targets(robot: IKRobot, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(q (n, dof), poses (n, N_ee, 7)): configurations uniform within the limits, free of
    self-collision (redrawn), and their end-effector poses."""
    rng = np.random.default_rng(TEST_SEED_OFFSET + seed)
    checker = collision_checker(robot.name)
    kept: list[np.ndarray] = []
    count = 0
    while count < n:
        q = robot.sample_q(max(2 * (n - count), 16), rng)
        if checker is not None:
            q = q[~checker.in_collision(q)]
        kept.append(q)
        count += len(q)
    q = np.concatenate(kept)[:n]
    return q, robot.forward_kinematics(torch.as_tensor(q)).numpy()


def collision_checker(robot: str) -> Any:
    """The robot's :class:`~ampczoo.ik.collision.SelfCollision` (None if unavailable)."""
    try:
        from ampczoo.ik.collision import self_collision
    except ImportError:
        return None
    return self_collision(robot)


def collision_percent(robot: str, q: np.ndarray) -> float:
    """Share of configurations q (n, dof) in self-collision [%] (NaN without a checker)."""
    checker = collision_checker(robot)
    if checker is None or len(q) == 0:
        return float("nan")
    return 100.0 * float(np.mean(checker.in_collision(q)))


# ----------------------------------------------------------------------------- metrics
def mean_pairwise_distance(q: np.ndarray, chunk: int = 512) -> float:
    """Diversity of q (B, K, dof): the mean Euclidean distance [rad] between two different
    samples of one target, averaged over the B targets."""
    q_t = torch.as_tensor(q, dtype=torch.float64)
    b, k = q_t.shape[:2]
    if k < 2:
        raise ValueError("diversity needs at least 2 samples per target")
    total = 0.0
    for start in range(0, b, chunk):
        d = torch.cdist(q_t[start : start + chunk], q_t[start : start + chunk])
        total += float(d.sum()) / (k * (k - 1))
    return total / b


def error_stats(pos_err: np.ndarray, ang_err: np.ndarray) -> dict[str, float]:
    """Summary of position errors [m] and angles [rad] (NaN entries = masked EEs ignored):
    mean, std and median in mm and degrees."""
    pos = 1000.0 * pos_err[np.isfinite(pos_err)]
    ang = np.degrees(ang_err[np.isfinite(ang_err)])
    return {
        "pos mean [mm]": float(np.mean(pos)),
        "pos std [mm]": float(np.std(pos)),
        "pos median [mm]": float(np.median(pos)),
        "ang mean [deg]": float(np.mean(ang)),
        "ang std [deg]": float(np.std(ang)),
        "ang median [deg]": float(np.median(ang)),
    }


def solution_metrics(
    robot: IKRobot,
    q: np.ndarray,
    poses: np.ndarray,
    pos_tol: float,
    rot_tol: float,
    mask: np.ndarray | None = None,
) -> dict[str, float]:
    """Table I metrics of q (B, K, dof) for poses (B, N_ee, 7) (mask (B, N_ee), None = all):
    errors, solved %, self-collision %."""
    b, k, dof = q.shape
    flat_q = q.reshape(b * k, dof)
    flat_poses = np.repeat(poses, k, axis=0)
    flat_mask = None if mask is None else np.repeat(mask, k, axis=0)
    pos_err, ang_err = pose_errors(robot, flat_q, flat_poses, flat_mask)
    solved = (np.nanmax(pos_err, 1) < pos_tol) & (np.nanmax(ang_err, 1) < rot_tol)
    return {
        "coll [%]": collision_percent(robot.name, flat_q),
        **error_stats(pos_err, ang_err),
        "solved [%]": 100.0 * float(np.mean(solved)),
    }


def joint_difference(q: np.ndarray, prior: np.ndarray, robot: IKRobot) -> float:
    """J.Diff [%]: mean over samples and joints of |q - prior| / joint range; q (B, K, dof),
    prior (B, dof)."""
    span = robot.upper - robot.lower
    return 100.0 * float(np.mean(np.abs(q - prior[:, None, :]) / span))


def manipulability(robot: IKRobot, q: np.ndarray) -> np.ndarray:
    """Σ_i √det(J_i J_iᵀ) over end-effectors i, per configuration q (n, dof) -> (n,)."""
    jac = robot.jacobians(torch.as_tensor(q, dtype=torch.float64))
    gram = jac @ jac.transpose(-1, -2)
    return torch.sqrt(torch.linalg.det(gram).clamp_min(0)).sum(-1).numpy()


def iteration_summary(res: IKSolveResult) -> dict[str, float]:
    """Success [%], iterations (solved runs / all runs, capped ones at the cap), final errors."""
    solved = res.success
    return {
        "runs": len(res),
        "success [%]": 100.0 * res.success_rate,
        "iters (solved)": float(np.mean(res.iterations[solved])) if solved.any() else float("nan"),
        "iters (all)": float(np.mean(res.iterations)),
        "pos median [mm]": 1000.0 * float(np.median(res.position_error)),
        "ang median [deg]": float(np.degrees(np.median(res.angle_error))),
    }


# ----------------------------------------------------------------------------- sections
@dataclass
class RobotRun:
    """Everything measured on one robot (rows per table, arrays for the plots)."""

    robot: str
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    iterations: dict[str, np.ndarray] = field(default_factory=dict)
    timing: dict[str, list[float]] = field(default_factory=dict)

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(table, []).append({"robot": self.robot, **row})


def table1(
    run: RobotRun, robot: IKRobot, poses: np.ndarray, samples: dict[str, np.ndarray], cfg: Any
) -> np.ndarray:
    """Table I rows: every sampler's samples and random-restart DLS; returns the DLS q."""
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    k = cfg.samples
    t0 = time.perf_counter()
    rr = solve_random_restart(
        robot,
        np.repeat(poses, k, axis=0),
        cfg.restarts,
        gen,
        max_iters=cfg.max_iters,
        pos_tol=cfg.pos_tol,
        rot_tol=cfg.rot_tol,
    )
    wall = time.perf_counter() - t0
    rr_q = rr.q.reshape(len(poses), k, robot.dof)
    reference = mean_pairwise_distance(rr_q)
    methods = {**samples, f"random-restart DLS ({cfg.restarts} restarts)": rr_q}
    for name, q in methods.items():
        row = {"method": name, **solution_metrics(robot, q, poses, cfg.pos_tol, cfg.rot_tol)}
        div = mean_pairwise_distance(q)
        row.update({"diversity [rad]": div, "div ratio": div / reference})
        if name not in samples:
            row["wall [s]"] = wall
        run.add("table1", row)
    return rr_q


def table2(
    run: RobotRun, robot: IKRobot, poses: np.ndarray, samples: dict[str, np.ndarray], cfg: Any
) -> None:
    """Tables II/III rows: DLS and Pink from random seeds and from each sampler's samples."""
    k = cfg.samples
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    seed_sets = {"random": ik_seeds(robot, poses, k, "random", generator=gen), **samples}
    kw = {"max_iters": cfg.max_iters, "pos_tol": cfg.pos_tol, "rot_tol": cfg.rot_tol}
    n_pink = min(cfg.pink_poses, len(poses))
    solvers: dict[str, tuple[Callable[..., IKSolveResult], int]] = {
        "DLS": (solve_dls, len(poses)),
        "Pink": (solve_pink, n_pink),
    }
    for solver_name, (solve, n) in solvers.items():
        for seed_name, seeds in seed_sets.items():
            t0 = time.perf_counter()
            res = solve(
                robot, np.repeat(poses[:n], k, axis=0), seeds[:n].reshape(-1, robot.dof), **kw
            )
            wall = time.perf_counter() - t0
            label = f"{solver_name} ({seed_name} seeds)"
            run.iterations[label] = res.iterations[res.success]
            run.add(
                "table2",
                {"method": label, "poses": n, **iteration_summary(res), "wall [s]": wall},
            )


def timing(
    run: RobotRun, robot: IKRobot, poses: np.ndarray, sampler: Any, name: str, cfg: Any
) -> None:
    """Time per solution vs batch size, one thread (module docstring)."""
    kw = {"max_iters": cfg.max_iters, "pos_tol": cfg.pos_tol, "rot_tol": cfg.rot_tol}
    targets = poses[: cfg.timing_poses]
    gen = torch.Generator().manual_seed(cfg.seed + 3)
    with single_thread():
        for b in cfg.batch_sizes:
            stats: dict[str, list[float]] = {}
            for pose in targets:
                batch = np.repeat(pose[None], b, axis=0)
                for solver_name, solve in (("DLS", solve_dls), ("Pink", solve_pink)):
                    for source in ("random", "model") if sampler is not None else ("random",):
                        t0 = time.perf_counter()
                        if source == "random":
                            seeds = ik_seeds(robot, pose[None], b, "random", generator=gen)[0]
                        else:
                            seeds = sample_model(sampler, pose[None], b, gen)[0]
                        res = solve(robot, batch, seeds, **kw)
                        label = f"{solver_name} ({'random' if source == 'random' else name} seeds)"
                        acc = stats.setdefault(label, [0.0, 0.0])
                        acc[0] += time.perf_counter() - t0
                        acc[1] += float(res.success.sum())
                if sampler is not None:
                    t0 = time.perf_counter()
                    sample_model(sampler, pose[None], b, gen)
                    acc = stats.setdefault(f"{name} sampling (per sample)", [0.0, 0.0])
                    acc[0] += time.perf_counter() - t0
                    acc[1] += b
            row: dict[str, Any] = {"batch": b}
            for label, (wall, solved) in stats.items():
                ms = 1000.0 * wall / solved if solved else float("inf")
                row[f"{label} [ms/sol]"] = ms
                run.timing.setdefault(label, []).append(ms)
            if sampler is not None:
                for solver_name in ("DLS", "Pink"):
                    plain = row[f"{solver_name} (random seeds) [ms/sol]"]
                    seeded = row[f"{solver_name} ({name} seeds) [ms/sol]"]
                    row[f"{solver_name}: random / {name} seeds"] = plain / seeded
                sample_ms = row[f"{name} sampling (per sample) [ms/sol]"]
                row[f"{name} sample / DLS solution"] = (
                    sample_ms / row["DLS (random seeds) [ms/sol]"]
                )
            run.add("timing", row)


def guided_tables(
    run: RobotRun,
    robot: IKRobot,
    q_true: np.ndarray,
    poses: np.ndarray,
    sampler: Any,
    name: str,
    cfg: Any,
) -> None:
    """Tables IV (warm start) and V (manipulability) on the first ``guided_poses`` targets."""
    n = min(cfg.guided_poses, len(poses))
    rng = np.random.default_rng(TEST_SEED_OFFSET + cfg.seed + 4)
    prior, nominal = q_true[:n], poses[:n].copy()
    direction = rng.normal(size=(n, robot.num_ee, 3))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    radius = cfg.warm_radius * rng.uniform(size=(n, robot.num_ee, 1)) ** (1 / 3)
    moved = nominal.copy()
    moved[..., :3] += radius * direction
    k = cfg.samples
    gen = torch.Generator().manual_seed(cfg.seed + 5)
    plain = sample_model(sampler, moved, k, gen)
    warm = sample_model(
        sampler,
        moved,
        k,
        gen,
        guidance=lambda rows: make_guidance(
            q_prior=torch.as_tensor(prior[rows], dtype=torch.float32)
        ),
    )
    dls = solve_dls(
        robot, moved, prior, max_iters=cfg.max_iters, pos_tol=cfg.pos_tol, rot_tol=cfg.rot_tol
    )
    for label, q in (
        (name, plain),
        (f"{name} + warm start", warm),
        ("DLS from the prior", dls.q[:, None]),
    ):
        run.add(
            "table4_warm_start",
            {
                "method": label,
                **solution_metrics(robot, q, moved, cfg.pos_tol, cfg.rot_tol),
                "J.Diff [%]": joint_difference(q, prior, robot),
            },
        )
    unguided = sample_model(sampler, nominal, k, gen)
    manip = sample_model(
        sampler, nominal, k, gen, guidance=lambda rows: make_guidance(manipulability=True)
    )
    base = float(np.mean(manipulability(robot, unguided.reshape(-1, robot.dof))))
    for label, q in ((name, unguided), (f"{name} + manipulability", manip)):
        value = float(np.mean(manipulability(robot, q.reshape(-1, robot.dof))))
        run.add(
            "table5_manipulability",
            {
                "method": label,
                **solution_metrics(robot, q, nominal, cfg.pos_tol, cfg.rot_tol),
                "manipulability": value,
                "M.Imp [%]": 100.0 * (value / base - 1.0),
            },
        )


def marginal_masks(num_ee: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, N_ee) bool masks: m ~ U{1..N_ee-1} end-effectors dropped, chosen uniformly."""
    mask = np.ones((n, num_ee), dtype=bool)
    for row in mask:
        m = int(rng.integers(1, num_ee))
        row[rng.choice(num_ee, size=m, replace=False)] = False
    return mask


def marginal(
    run: RobotRun, robot: IKRobot, poses: np.ndarray, sampler: Any, name: str, cfg: Any
) -> None:
    """Task 5 rows: partially specified targets (robots with >= 2 end-effectors)."""
    n = min(cfg.guided_poses, len(poses))
    rng = np.random.default_rng(TEST_SEED_OFFSET + cfg.seed + 6)
    mask = marginal_masks(robot.num_ee, n, rng)
    gen = torch.Generator().manual_seed(cfg.seed + 7)
    q = sample_model(sampler, poses[:n], cfg.samples, gen, mask=mask)
    run.add(
        "task5_marginal",
        {
            "method": name,
            "masked EEs (mean)": float(np.mean((~mask).sum(1))),
            **solution_metrics(robot, q, poses[:n], cfg.pos_tol, cfg.rot_tol, mask=mask),
        },
    )


# ----------------------------------------------------------------------------- driver
def bench_robot(name: str, cfg: IKBenchConfig, spec: str | None, flat_spec: str | None) -> RobotRun:
    """All sections on one robot."""
    robot = load_robot(name)
    run = RobotRun(name)
    sampler = None if cfg.numerical_only else make_sampler(name, spec, required=spec is not None)
    label = "IKDiffuser" if sampler is None or not isinstance(sampler, OracleSampler) else "oracle"
    q_true, poses = held_out_targets(robot, cfg.poses, cfg.seed)
    samples: dict[str, np.ndarray] = {}
    gen = torch.Generator().manual_seed(cfg.seed)
    if sampler is not None:
        t0 = time.perf_counter()
        samples[label] = sample_model(sampler, poses, cfg.samples, gen)
        print(f"[bench ik] {name}: {label} sampled in {time.perf_counter() - t0:.1f} s")
    flat = (
        None if (cfg.numerical_only or flat_spec is None) else make_sampler(name, flat_spec, True)
    )
    if flat is not None:
        samples[f"{label} (flat conditioning)"] = sample_model(flat, poses, cfg.samples, gen)
    for section, fn in (("table1", table1), ("table2", table2)):
        t0 = time.perf_counter()
        fn(run, robot, poses, samples, cfg)
        print(f"[bench ik] {name}: {section} in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    timing(run, robot, poses, sampler, label, cfg)
    print(f"[bench ik] {name}: timing in {time.perf_counter() - t0:.1f} s")
    if sampler is not None:
        guided_tables(run, robot, q_true, poses, sampler, label, cfg)
        if robot.num_ee >= 2:
            marginal(run, robot, poses, sampler, label, cfg)
    if flat is not None:
        run.rows["ablation_flat"] = [
            r for r in run.rows["table1"] if r["method"] in (label, f"{label} (flat conditioning)")
        ]
    return run


TABLES = {
    "table1": "Table I analog: solutions of the model vs random-restart DLS",
    "table2": "Tables II/III analog: DLS and Pink from random vs model seeds",
    "timing": "Time per solution vs batch size (CPU, 1 thread)",
    "table4_warm_start": "Table IV analog: warm-start guidance (target moved within the radius)",
    "table5_manipulability": "Table V analog: manipulability guidance",
    "task5_marginal": "Task 5 analog: marginal queries (errors on the constrained EEs)",
    "ablation_flat": "App. A ablation: sequence vs flat pose conditioning",
}


def run_ik_bench(cfg: IKBenchConfig) -> dict[str, Any]:
    """Run the benchmark of ``cfg``; returns {"rows": {table: rows}, "out": run folder}."""
    eff = cfg.effective()
    robots = robot_names(eff)
    models, flats = (
        per_robot(eff.model, robots, "model"),
        per_robot(eff.flat_model, robots, "flat_model"),
    )
    out = make_run_dir("ik", eff.out)
    runs = [bench_robot(r, eff, models.get(r), flats.get(r)) for r in robots]
    rows: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        for table, table_rows in run.rows.items():
            rows.setdefault(table, []).extend(table_rows)
    texts = [f"# ampczoo bench ik\n\ncommand: `{command_line()}`\n"]
    for table, title in TABLES.items():
        if rows.get(table):
            texts.append(write_table(rows[table], out, table, title=title))
    report = "\n".join(texts)
    (out / "report.md").write_text(report)
    meta = {"command": command_line(), "config": asdict(eff), "robots": robots}
    payload = {"meta": meta, "tables": rows}
    (out / "results.json").write_text(json.dumps(payload, indent=1, default=float))
    plot_timing(runs, eff.batch_sizes, out / "timing.png")
    plot_success_vs_iterations(runs, eff.max_iters, out / "success_vs_iterations.png")
    print(report)
    print_ratios(rows.get("timing", []))
    print(f"command: {command_line()}\nwritten to {out}")
    return {"rows": rows, "out": out}


def print_ratios(rows: list[dict[str, Any]]) -> None:
    """The timing table's ratios, one line per robot and batch size."""
    for row in rows:
        ratios = {k: v for k, v in row.items() if " / " in k}
        if ratios:
            text = ", ".join(f"{k} = {v:.2f}" for k, v in ratios.items())
            print(f"[ratios] {row['robot']} batch {row['batch']}: {text}")


def plot_timing(runs: list[RobotRun], batch_sizes: tuple[int, ...], path: Path) -> None:
    """ms per solution vs batch size, one panel per robot, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.6), squeeze=False)
    for ax, run in zip(axes[0], runs, strict=True):
        for label, ms in run.timing.items():
            ax.plot(batch_sizes, ms, marker="o", label=label)
        ax.set(
            xscale="log", yscale="log", xlabel="batch size", ylabel="ms / solution", title=run.robot
        )
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_success_vs_iterations(runs: list[RobotRun], max_iters: int, path: Path) -> None:
    """Share of runs solved within i iterations (Fig. 3 analog), per robot and method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.6), squeeze=False)
    grid = np.arange(max_iters + 1)
    for ax, run in zip(axes[0], runs, strict=True):
        totals = {r["method"]: r["runs"] for r in run.rows.get("table2", [])}
        for label, its in run.iterations.items():
            curve = 100.0 * np.searchsorted(np.sort(its), grid, side="right") / totals[label]
            ax.plot(grid, curve, label=label)
        ax.set(xlabel="iterations", ylabel="solved [%]", ylim=(0, 100), title=run.robot)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


__all__ = ["IKBenchConfig", "run_ik_bench", "zoo_model_name"]
