"""`ampczoo bench ik`: the metrics against known answers (a sampler that returns the targets'
own configurations plus noise of known size), and a tiny end-to-end run through the CLI."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pinocchio as pin
import pytest
import torch

from ampczoo import cli
from ampczoo.benchmarks.ik import (
    IKBenchConfig,
    RobotRun,
    error_stats,
    held_out_targets,
    joint_difference,
    manipulability,
    marginal_masks,
    mean_pairwise_distance,
    per_robot,
    sample_model,
    table1,
    table2,
)
from ampczoo.ik.robots import load_robot


class KnownSampler:
    """Returns the true configuration of each target (looked up by pose) plus N(0, noise²)."""

    def __init__(self, robot, q_true: np.ndarray, poses: np.ndarray, noise: float):
        self.robot, self.q_true, self.poses, self.noise = robot, q_true, poses, noise

    def sample(self, poses, num_samples=1, mask=None, guidance=None, generator=None):
        p = np.asarray(poses, float).reshape(len(poses), -1)
        dist = np.linalg.norm(p[:, None] - self.poses.reshape(len(self.poses), -1)[None], axis=-1)
        q = self.q_true[dist.argmin(1)]
        noise = torch.randn((len(p), num_samples, q.shape[1]), generator=generator).numpy()
        return torch.as_tensor(q[:, None] + self.noise * noise)


def test_diversity_matches_the_gaussian_expectation() -> None:
    rng = np.random.default_rng(0)
    sigma, d = 0.1, 7
    q = rng.normal(0, sigma, size=(300, 20, d)) + rng.uniform(-2, 2, size=(300, 1, d))
    expected = 2 * sigma * math.gamma((d + 1) / 2) / math.gamma(d / 2)
    assert mean_pairwise_distance(q, chunk=64) == pytest.approx(expected, rel=0.02)
    two = np.zeros((1, 2, 3))
    two[0, 1] = [3.0, 4.0, 0.0]
    assert mean_pairwise_distance(two) == pytest.approx(5.0)


def test_error_stats_joint_difference_and_masks() -> None:
    stats = error_stats(np.array([0.001, 0.003, np.nan]), np.radians([1.0, 3.0, np.nan]))
    assert stats["pos mean [mm]"] == pytest.approx(2.0)
    assert stats["pos std [mm]"] == pytest.approx(1.0)
    assert stats["ang median [deg]"] == pytest.approx(2.0)
    robot = load_robot("panda")
    prior = robot.sample_q(4, np.random.default_rng(0))
    span = robot.upper - robot.lower
    q = np.repeat(prior[:, None], 3, axis=1) + 0.1 * span
    assert joint_difference(q, prior, robot) == pytest.approx(10.0)
    masks = marginal_masks(4, 200, np.random.default_rng(0))
    dropped = (~masks).sum(1)
    assert dropped.min() == 1 and dropped.max() == 3


def test_manipulability_matches_pinocchio() -> None:
    robot = load_robot("baxter")
    q = robot.sample_q(3, np.random.default_rng(1))
    data = robot.model.createData()
    expected = []
    for qb in q:
        pin.computeJointJacobians(robot.model, data, qb)
        pin.updateFramePlacements(robot.model, data)
        total = 0.0
        for frame in robot.ee_names:
            jac = pin.getFrameJacobian(
                robot.model, data, robot.model.getFrameId(frame), pin.LOCAL_WORLD_ALIGNED
            )
            total += math.sqrt(np.linalg.det(jac @ jac.T))
        expected.append(total)
    np.testing.assert_allclose(manipulability(robot, q), expected, rtol=1e-9)


def cfg_for(**kw) -> IKBenchConfig:
    base = dict(
        robots=("kuka",),
        poses=6,
        samples=4,
        pink_poses=2,
        restarts=1,
        max_iters=60,
        timing_poses=1,
        batch_sizes=(2,),
        guided_poses=2,
    )
    return IKBenchConfig(**{**base, **kw})


def test_table1_and_table2_on_exact_and_noisy_samples() -> None:
    cfg = cfg_for()
    robot = load_robot("kuka")
    q_true, poses = held_out_targets(robot, cfg.poses, cfg.seed)
    np.testing.assert_allclose(robot.pinocchio_poses(q_true), poses, atol=1e-10)
    gen = torch.Generator().manual_seed(0)
    exact = sample_model(KnownSampler(robot, q_true, poses, 0.0), poses, cfg.samples, gen)
    noisy = sample_model(KnownSampler(robot, q_true, poses, 0.05), poses, cfg.samples, gen)
    run = RobotRun("kuka")
    table1(run, robot, poses, {"exact": exact, "noisy": noisy}, cfg)
    rows = {r["method"]: r for r in run.rows["table1"]}
    # poses are cast to float32 for the sampler, the lookup still finds the right q
    assert rows["exact"]["solved [%]"] == 100.0 and rows["exact"]["pos median [mm]"] < 1e-6
    assert rows["exact"]["coll [%]"] == 0.0 and rows["exact"]["diversity [rad]"] == 0.0
    expected = 2 * 0.05 * math.gamma(4) / math.gamma(3.5)
    assert rows["noisy"]["diversity [rad]"] == pytest.approx(expected, rel=0.25)
    assert rows["noisy"]["pos median [mm]"] > 1.0 and rows["noisy"]["solved [%]"] < 20
    numerical = [r for m, r in rows.items() if m.startswith("random-restart")][0]
    assert numerical["div ratio"] == 1.0 and numerical["diversity [rad]"] > 1.0
    table2(run, robot, poses, {"exact": exact}, cfg)
    rows2 = {r["method"]: r for r in run.rows["table2"]}
    for solver in ("DLS", "Pink"):
        assert rows2[f"{solver} (exact seeds)"]["success [%]"] == 100.0
        assert rows2[f"{solver} (exact seeds)"]["iters (all)"] == 0.0
    assert rows2["Pink (exact seeds)"]["runs"] == cfg.pink_poses * cfg.samples


def test_config_parsing_and_bad_values() -> None:
    assert per_robot(("oracle", "none"), ["panda", "kuka"], "model") == {
        "panda": "oracle",
        "kuka": "none",
    }
    assert per_robot(("kuka=oracle:0.1",), ["panda", "kuka"], "model") == {"kuka": "oracle:0.1"}
    with pytest.raises(ValueError, match="one value per robot"):
        cfg_for(model=("oracle", "none"))
    with pytest.raises(ValueError, match="unknown robot"):
        cfg_for(robots=("nobot",))
    with pytest.raises(ValueError, match="samples must be >= 2"):
        cfg_for(samples=1)
    quick = cfg_for(quick=True).effective()
    assert quick.poses == 12 and quick.batch_sizes == (4, 8)


def test_bench_ik_cli_numerical_only(tmp_path: Path, capsys) -> None:
    args = [
        "bench", "ik", "--robots", "kuka", "--numerical-only", "--poses", "2", "--samples", "2",
        "--pink-poses", "1", "--restarts", "0", "--max-iters", "30", "--timing-poses", "1",
        "--batch-sizes", "2", "--out", str(tmp_path),
    ]  # fmt: skip
    assert cli.main(args) == 0
    (run_dir,) = tmp_path.iterdir()
    names = sorted(p.name for p in run_dir.glob("*.csv"))
    assert names == ["table1.csv", "table2.csv", "timing.csv"]  # no model: no guided tables
    with open(run_dir / "table2.csv", newline="") as fh:
        assert [r["method"] for r in csv.DictReader(fh)] == [
            "DLS (random seeds)",
            "Pink (random seeds)",
        ]
    assert "written to" in capsys.readouterr().out
    assert cli.main(["bench", "ik", "--robots", "nobot"]) == 2


def test_bench_ik_cli_tiny_run(tmp_path: Path, capsys) -> None:
    """Every table with the oracle sampler (~8 s on the 2-core VM, ~35 s under heavy load)."""
    args = [
        "bench", "ik", "--robots", "kuka", "--model", "oracle:0.01", "--poses", "3",
        "--samples", "3", "--pink-poses", "1", "--restarts", "0", "--max-iters", "40",
        "--timing-poses", "1", "--batch-sizes", "2", "--guided-poses", "2", "--out", str(tmp_path),
    ]  # fmt: skip
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "command: " in printed and "[ratios] kuka batch 2" in printed
    (run_dir,) = tmp_path.iterdir()
    for name in ("table1", "table2", "timing", "table4_warm_start", "table5_manipulability"):
        with open(run_dir / f"{name}.csv", newline="") as fh:
            assert list(csv.DictReader(fh)), name
    assert not (run_dir / "task5_marginal.csv").exists()  # one end-effector: no marginal query
    for name in ("report.md", "results.json", "timing.png", "success_vs_iterations.png"):
        assert (run_dir / name).is_file()
    with open(run_dir / "table2.csv", newline="") as fh:
        methods = [r["method"] for r in csv.DictReader(fh)]
    assert methods == [
        "DLS (random seeds)", "DLS (oracle seeds)", "Pink (random seeds)", "Pink (oracle seeds)",
    ]  # fmt: skip
