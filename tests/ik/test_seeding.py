"""IK seeding: uniform seeds, seeds from a generative model (the oracle stand-in), position-only
targets, the 3-DOF expert's ik_seed="ikdiffuser" option, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ampczoo.ik.numerical import solve_dls
from ampczoo.ik.robots import load_robot
from ampczoo.ik.seeding import OracleSampler, ik_seeds, load_ik_sampler


def fk_poses(name: str, n: int, seed: int = 0) -> np.ndarray:
    robot = load_robot(name)
    q = robot.sample_q(n, np.random.default_rng(seed))
    return robot.forward_kinematics(torch.tensor(q)).numpy()


def test_random_seeds_are_uniform_within_limits_and_reproducible() -> None:
    robot = load_robot("baxter")
    poses = fk_poses("baxter", 3)
    a = ik_seeds(robot, poses, 500, generator=torch.Generator().manual_seed(1))
    b = ik_seeds("baxter", poses, 500, generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, 500, robot.dof) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert (a >= robot.lower).all() and (a <= robot.upper).all()
    mid = (robot.lower + robot.upper) / 2
    spread = np.abs(a.reshape(-1, robot.dof).mean(0) - mid) / (robot.upper - robot.lower)
    assert (spread < 0.05).all()


def test_model_seeds_lead_dls_to_the_targets() -> None:
    poses = fk_poses("kuka", 2)
    oracle = OracleSampler("kuka", noise=0.02, max_restarts=10, max_iters=100)
    seeds = ik_seeds(
        "kuka",
        poses,
        3,
        source="ikdiffuser",
        model=oracle,
        generator=torch.Generator().manual_seed(0),
    )
    assert seeds.shape == (2, 3, 7)
    res = solve_dls("kuka", np.repeat(poses, 3, axis=0), seeds.reshape(-1, 7))
    assert res.success.all() and np.median(res.iterations) < 20


def test_missing_or_foreign_model_is_a_clear_error() -> None:
    poses = fk_poses("panda", 1)
    with pytest.raises(ValueError, match="ikdiffuser-nosuch"):
        ik_seeds("panda", poses, 2, source="ikdiffuser", model="ikdiffuser-nosuch")
    with pytest.raises(ValueError, match="for robot 'kuka'"):
        load_ik_sampler("panda", OracleSampler("kuka"))
    with pytest.raises(ValueError, match="unknown seed source"):
        ik_seeds("panda", poses, 2, source="ikflow")
    with pytest.raises(ValueError, match="num_seeds"):
        ik_seeds("panda", poses, 0)


def test_position_only_targets_get_seeds_of_several_modes() -> None:
    """The 3-DOF arm reaches a position elbow-up or elbow-down: seeds cover both."""
    from ampczoo.robots.threedof_ik import DampedLeastSquaresIK

    target = np.array([0.35, 0.1, 0.35])
    seeds = ik_seeds(
        "threedof",
        target.reshape(1, 1, 3),
        12,
        source="ikdiffuser",
        model=OracleSampler("threedof", noise=0.02, max_restarts=0, max_iters=30),
        generator=torch.Generator().manual_seed(0),
    )[0]
    ik = DampedLeastSquaresIK()
    sols = np.array([ik.solve(target, s).q for s in seeds])
    elbows = np.sign(sols[:, 2])
    assert {-1.0, 1.0} <= set(elbows.tolist())


def test_ikmpc_expert_seeded_by_a_model_varies_its_mode_with_the_reset_seed() -> None:
    from ampczoo.experts.ikmpc import IKMPCConfig, IKMPCExpert

    target = np.array([0.35, 0.1, 0.35])
    q0 = np.zeros(3)
    default = IKMPCExpert(IKMPCConfig(horizon=5))
    refs = []
    for seed in range(2):
        default.reset(seed)
        refs.append(default.reference(q0, target)[0])
    np.testing.assert_array_equal(refs[0], refs[1])  # default: deterministic, seed unused
    cfg = IKMPCConfig(horizon=5, ik_seed="ikdiffuser", ik_num_seeds=2)
    expert = IKMPCExpert(
        cfg, seed_model=OracleSampler("threedof", noise=0.02, max_restarts=0, max_iters=30)
    )
    elbows = set()
    for seed in range(8):
        expert.reset(seed)
        q_ref, res, _ = expert.reference(q0, target)
        assert res.converged
        elbows.add(float(np.sign(q_ref[2])))
    assert elbows == {-1.0, 1.0}
    with pytest.raises(ValueError, match="ik_seed"):
        IKMPCConfig(ik_seed="random")
    with pytest.raises(ValueError, match="ikdiffuser-nosuch"):
        IKMPCExpert(IKMPCConfig(horizon=5, ik_seed="ikdiffuser", ik_seed_model="ikdiffuser-nosuch"))


def test_seeds_from_an_ikdiffuser_checkpoint_folder(tmp_path) -> None:
    """The real model behind source="ikdiffuser" (an untrained tiny one: shapes and limits)."""
    diffuser = pytest.importorskip("ampczoo.ik.diffuser")
    model = diffuser.IKDiffuser(
        diffuser.IKDiffuserConfig(robot="baxter", width=16, depth=1, heads=2, ffn=16)
    )
    model.save_pretrained(tmp_path / "tiny")
    robot = load_robot("baxter")
    poses = fk_poses("baxter", 2)
    seeds = ik_seeds(
        robot,
        poses,
        3,
        source="ikdiffuser",
        model=str(tmp_path / "tiny"),
        generator=torch.Generator().manual_seed(0),
        mask=np.array([[True, False]] * 2),
    )
    assert seeds.shape == (2, 3, robot.dof)
    assert (seeds >= robot.lower).all() and (seeds <= robot.upper).all()
    with pytest.raises(ValueError, match="for robot 'baxter'"):
        load_ik_sampler("panda", model)
