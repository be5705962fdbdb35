"""IK robot models: torch FK and Jacobians agree with Pinocchio on every robot."""

from __future__ import annotations

import numpy as np
import pinocchio as pin
import pytest
import torch

from ampczoo.ik.robots import list_robots, load_robot, matrix_to_quaternion, quaternion_geodesic


@pytest.mark.parametrize("name", list_robots())
def test_forward_kinematics_matches_pinocchio(name: str) -> None:
    robot = load_robot(name)
    q = robot.sample_q(32, np.random.default_rng(1))
    ours = robot.forward_kinematics(torch.tensor(q)).numpy()
    assert ours.shape == (32, robot.num_ee, 7)
    np.testing.assert_allclose(ours, robot.pinocchio_poses(q), atol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(ours[..., 3:], axis=-1), 1.0, atol=1e-12)
    assert (ours[..., 6] >= 0).all()


@pytest.mark.parametrize("name", list_robots())
def test_jacobians_match_pinocchio(name: str) -> None:
    robot = load_robot(name)
    q = robot.sample_q(3, np.random.default_rng(2))
    ours = robot.jacobians(torch.tensor(q)).numpy()
    data = robot.model.createData()
    for b, qb in enumerate(q):
        pin.computeJointJacobians(robot.model, data, qb)
        pin.updateFramePlacements(robot.model, data)
        for i, frame in enumerate(robot.ee_names):
            fid = robot.model.getFrameId(frame)
            ref = pin.getFrameJacobian(robot.model, data, fid, pin.LOCAL_WORLD_ALIGNED)
            np.testing.assert_allclose(ours[b, i], ref, atol=1e-10)


def test_robot_sizes_match_the_issue() -> None:
    sizes = {n: (load_robot(n).dof, load_robot(n).num_ee) for n in list_robots()}
    assert sizes["panda"] == (7, 1) and sizes["baxter"] == (14, 2)
    assert sizes["dual_ur5"] == (15, 2) and sizes["g1"] == (29, 4) and sizes["allegro"] == (16, 4)
    lower, upper = load_robot("dual_ur5").joint_limits
    assert (upper - lower <= 2 * np.pi + 1e-9).all()


def test_quaternion_of_half_turns_is_accurate() -> None:
    """Rotations by pi (trace -1) are where the naive formula fails."""
    axes = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 0]], dtype=torch.float64)
    axes = axes / axes.norm(dim=-1, keepdim=True)
    rot = 2 * axes.unsqueeze(-1) * axes.unsqueeze(-2) - torch.eye(3, dtype=torch.float64)
    quat = matrix_to_quaternion(rot)
    np.testing.assert_allclose(quat[:, :3].abs().numpy(), axes.abs().numpy(), atol=1e-12)
    assert torch.allclose(
        quaternion_geodesic(quat, quat), torch.zeros(4, dtype=torch.float64), atol=1e-6
    )


def test_bad_input_is_refused() -> None:
    robot = load_robot("panda")
    with pytest.raises(ValueError, match="unknown robot"):
        load_robot("nao")
    with pytest.raises(ValueError, match=r"\(B, 7\)"):
        robot.forward_kinematics(torch.zeros(2, 6))
    with pytest.raises(ValueError, match="NaN"):
        robot.forward_kinematics(torch.full((1, 7), float("nan")))
