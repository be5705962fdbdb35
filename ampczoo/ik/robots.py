"""Kinematic trees for IKDiffuser: robot descriptions, limits and batched torch kinematics.

Each robot is a Pinocchio model built from a URDF (or MJCF) shipped in a package, reduced to the
joints IK solves for (grippers, heads and fingers' passive joints are locked), plus the names of
its end-effector frames. :class:`IKRobot` evaluates the forward kinematics of every end-effector
and their geometric Jacobians on batches of configurations in torch, so they can be
differentiated (guidance) and run on the GPU; Pinocchio stays the reference
(``tests/ik/test_robots.py`` checks agreement to 1e-10 in float64).

Pose convention (used by the poses IKDiffuser is conditioned on, and by every IK API here):
``(x, y, z, qx, qy, qz, qw)`` = position [m] in the robot's base frame and a unit quaternion,
scalar last (Pinocchio's ``SE3ToXYZQUAT`` and scipy's order), canonicalised to ``qw >= 0``.

Robots (``list_robots()``):

=========  ====  ====  ==============================================================
name       dof   N_ee  description
=========  ====  ====  ==============================================================
panda       7     1    Franka Panda (stand-in for the paper's FR3), fingers locked
baxter     14     2    Baxter dual arm, head and grippers locked
dual_ur5   15     2    two UR5 on a planar mobile base (x, y, yaw), stand-in for dual UR5e
g1         29     4    Unitree G1 29-DoF humanoid, fixed pelvis; hands and feet
allegro    16     4    Allegro right hand, fixed palm (stand-in for LEAP); fingertips
kuka        7     1    KUKA LBR iiwa 14 of the package's KukaTrack envs
threedof    3     1    the package's 3-DOF reaching arm (its orientation is implied)
=========  ====  ====  ==============================================================

Joints whose URDF range exceeds 2π are limited to [-π, π] (a range beyond one turn only
duplicates every solution); the mobile base's x, y lie in [-1, 1] m and its yaw in [-π, π].
"""

from __future__ import annotations

import functools
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ampczoo.robots.kinematics import EE_FRAME, KUKA_URDF, ROBOTS_DIR

POSE_DIM = 7
#: joint ranges wider than this are clipped to [-π, π] [rad]
MAX_RANGE = 2 * np.pi
BASE_XY_LIMIT = 1.0  # mobile base translation limit [m]


@dataclass(frozen=True)
class RobotSpec:
    """How to build one robot: the description file, joints to lock and end-effector frames."""

    name: str
    description: str
    source: str  # "erd:<path under example-robot-data/robots>" or "pkg:<file in ampczoo/robots>"
    ee_frames: tuple[str, ...]
    locked_joints: tuple[str, ...] = ()
    composite: str = ""  # name of a builder that composes several descriptions


ROBOT_SPECS: dict[str, RobotSpec] = {
    spec.name: spec
    for spec in (
        RobotSpec(
            "panda",
            "Franka Panda, 7-DoF serial chain (stand-in for FR3)",
            "erd:panda_description/urdf/panda.urdf",
            ("panda_hand_tcp",),
            ("panda_finger_joint1", "panda_finger_joint2"),
        ),
        RobotSpec(
            "baxter",
            "Baxter dual arm, 2 x 7 DoF on a fixed torso",
            "erd:baxter_description/urdf/baxter.urdf",
            ("left_gripper", "right_gripper"),
            (
                "head_pan",
                "l_gripper_l_finger_joint",
                "l_gripper_r_finger_joint",
                "r_gripper_l_finger_joint",
                "r_gripper_r_finger_joint",
            ),
        ),
        RobotSpec(
            "dual_ur5",
            "two UR5 arms on a planar mobile base (x, y, yaw): 3 + 2 x 6 DoF",
            "erd:ur_description/urdf/ur5_robot.urdf",
            ("left_tool0", "right_tool0"),
            composite="dual_ur5",
        ),
        RobotSpec(
            "g1",
            "Unitree G1 humanoid, 29 DoF, fixed pelvis; hands and feet",
            "erd:g1_description/urdf/g1_29dof_rev_1_0.urdf",
            (
                "left_rubber_hand",
                "right_rubber_hand",
                "left_ankle_roll_link",
                "right_ankle_roll_link",
            ),
        ),
        RobotSpec(
            "allegro",
            "Allegro right hand, 4 fingers x 4 DoF, fixed palm (stand-in for LEAP)",
            "erd:allegro_hand_description/urdf/allegro_right_hand.urdf",
            ("link_3.0_tip", "link_7.0_tip", "link_11.0_tip", "link_15.0_tip"),
        ),
        RobotSpec(
            "kuka", "KUKA LBR iiwa 14, 7-DoF serial chain", "pkg:" + KUKA_URDF.name, (EE_FRAME,)
        ),
        RobotSpec("threedof", "the package's 3-DOF reaching arm", "pkg:threedof.xml", ("ee",)),
    )
}


def list_robots() -> list[str]:
    """Names :func:`load_robot` accepts."""
    return sorted(ROBOT_SPECS)


def robot_spec(name: str) -> RobotSpec:
    """The spec of ``name``; ValueError naming the known robots otherwise."""
    if name not in ROBOT_SPECS:
        raise ValueError(f"unknown robot {name!r}; known robots: {', '.join(list_robots())}")
    return ROBOT_SPECS[name]


def example_robot_data_dir() -> Path:
    """Folder of example-robot-data's robot descriptions (installed by the ``ik`` extra)."""
    try:
        dist = importlib.metadata.distribution("example-robot-data")
    except importlib.metadata.PackageNotFoundError as err:
        raise ImportError(
            "this robot's description comes from example-robot-data: pip install 'ampczoo[ik]'"
        ) from err
    return Path(str(dist.locate_file("cmeel.prefix/share/example-robot-data/robots")))


def description_path(spec: RobotSpec) -> Path:
    """Absolute path of the robot's URDF/MJCF."""
    kind, _, rel = spec.source.partition(":")
    return (example_robot_data_dir() / rel) if kind == "erd" else (ROBOTS_DIR / rel)


def build_full_model(spec: RobotSpec, with_geometry: bool = False) -> tuple[Any, Any]:
    """(Pinocchio model, collision GeometryModel or None) of the whole description, before
    joints are locked."""
    import pinocchio as pin

    if spec.composite == "dual_ur5":
        return _dual_ur5_model(description_path(spec), with_geometry)
    path = str(description_path(spec))
    mjcf = path.endswith(".xml")
    model = pin.buildModelFromMJCF(path) if mjcf else pin.buildModelFromUrdf(path)
    if not with_geometry:
        return model, None
    kind = pin.GeometryType.COLLISION
    if mjcf:
        return model, pin.buildGeomFromMJCF(model, path, kind)
    return model, pin.buildGeomFromUrdf(model, path, kind, package_dirs=_package_dirs(spec))


def _package_dirs(spec: RobotSpec) -> list[str]:
    """Folders ``package://`` URIs resolve against (example-robot-data's share folder)."""
    return [str(example_robot_data_dir().parent.parent)] if spec.source.startswith("erd:") else []


def _dual_ur5_model(ur5_urdf: Path, with_geometry: bool) -> tuple[Any, Any]:
    """Planar base (PX, PY, RZ joints) carrying two UR5 arms 0.25 m either side, 0.6 m up."""
    import pinocchio as pin

    base = pin.Model()
    parent = 0
    for name, joint in (("base_x", pin.JointModelPX()), ("base_y", pin.JointModelPY())):
        parent = base.addJoint(parent, joint, pin.SE3.Identity(), name)
        base.appendBodyToJoint(parent, pin.Inertia.Zero(), pin.SE3.Identity())
    yaw = base.addJoint(parent, pin.JointModelRZ(), pin.SE3.Identity(), "base_yaw")
    base.appendBodyToJoint(yaw, pin.Inertia.Zero(), pin.SE3.Identity())
    base.lowerPositionLimit[:] = [-BASE_XY_LIMIT, -BASE_XY_LIMIT, -np.pi]
    base.upperPositionLimit[:] = [BASE_XY_LIMIT, BASE_XY_LIMIT, np.pi]
    base.addFrame(pin.Frame("mount", yaw, 0, pin.SE3.Identity(), pin.FrameType.OP_FRAME))
    model, geom = base, pin.GeometryModel()
    package_dirs = [str(example_robot_data_dir().parent.parent)]
    for side, y in (("left", 0.25), ("right", -0.25)):
        arm = pin.buildModelFromUrdf(str(ur5_urdf))
        kind = pin.GeometryType.COLLISION
        arm_geom = (
            pin.buildGeomFromUrdf(arm, str(ur5_urdf), kind, package_dirs=package_dirs)
            if with_geometry
            else None
        )
        for i in range(1, arm.njoints):
            arm.names[i] = f"{side}_{arm.names[i]}"
        for frame in arm.frames:
            frame.name = f"{side}_{frame.name}"
        placement = pin.SE3(np.eye(3), np.array([0.0, y, 0.6]))
        mount = model.getFrameId("mount")
        if arm_geom is None:
            model = pin.appendModel(model, arm, mount, placement)
            continue
        for obj in arm_geom.geometryObjects:
            obj.name = f"{side}_{obj.name}"
        model, geom = pin.appendModel(model, arm, geom, arm_geom, mount, placement)
    return model, (geom if with_geometry else None)


def locked_joint_ids(spec: RobotSpec, full: Any) -> list[int]:
    """Pinocchio ids of the spec's locked joints; ValueError naming any that are missing."""
    lock_ids = [full.getJointId(j) for j in spec.locked_joints]
    missing = [j for j, i in zip(spec.locked_joints, lock_ids, strict=True) if i >= full.njoints]
    if missing:
        raise ValueError(f"{spec.name}: joints {missing} are not in {description_path(spec).name}")
    return lock_ids


def reference_configuration(full: Any) -> np.ndarray:
    """The configuration locked joints are frozen at: zero, clipped into the limits."""
    return np.clip(np.zeros(full.nq), full.lowerPositionLimit, full.upperPositionLimit)


@functools.lru_cache(maxsize=16)
def pinocchio_model(name: str) -> Any:
    """The reduced Pinocchio model IK solves for (locked joints at 0, limits clipped)."""
    import pinocchio as pin

    spec = robot_spec(name)
    full, _ = build_full_model(spec)
    lock_ids = locked_joint_ids(spec, full)
    q_ref = reference_configuration(full)
    model = pin.buildReducedModel(full, lock_ids, q_ref) if lock_ids else full
    if model.nq != model.nv:
        raise ValueError(f"{name}: only 1-DoF revolute/prismatic joints are supported")
    clip_wide_limits(model)
    for frame in spec.ee_frames:
        if not model.existFrame(frame):
            raise ValueError(f"{name}: end-effector frame {frame!r} is not in the model")
    return model


def clip_wide_limits(model: Any) -> None:
    """Limit joints whose range exceeds one turn to [-π, π] (in place)."""
    lower, upper = model.lowerPositionLimit.copy(), model.upperPositionLimit.copy()
    wide = (upper - lower) > MAX_RANGE
    lower[wide], upper[wide] = -np.pi, np.pi
    model.lowerPositionLimit, model.upperPositionLimit = lower, upper


_AXES = {"X": (1.0, 0.0, 0.0), "Y": (0.0, 1.0, 0.0), "Z": (0.0, 0.0, 1.0)}


def _joint_kind_axis(jmodel: Any) -> tuple[str, np.ndarray]:
    """('revolute' | 'prismatic', unit axis in the joint frame) of a 1-DoF Pinocchio joint."""
    short = jmodel.shortname()
    if hasattr(jmodel, "extract"):
        jmodel = jmodel.extract()
    for prefix, kind in (("JointModelR", "revolute"), ("JointModelP", "prismatic")):
        if short.startswith(prefix):
            tail = short[len(prefix) :]
            if tail in _AXES:
                return kind, np.array(_AXES[tail])
            if tail.endswith("Unaligned"):
                return kind, np.asarray(jmodel.axis, dtype=float)
    raise ValueError(f"unsupported joint type {short}")


class IKRobot:
    """Batched torch kinematics of one robot's end-effectors.

    ``q: (B, dof)`` joint positions [rad, m for prismatic joints], in Pinocchio's order
    (:attr:`joint_names`). Works in the dtype and on the device of ``q``.
    """

    def __init__(self, name: str):
        import pinocchio as pin

        self.name = name
        self.spec = robot_spec(name)
        self.model = pinocchio_model(name)
        model = self.model
        self.dof: int = model.nq
        self.joint_names: tuple[str, ...] = tuple(model.names[i] for i in range(1, model.njoints))
        self.ee_names: tuple[str, ...] = self.spec.ee_frames
        self.num_ee = len(self.ee_names)
        self.lower = model.lowerPositionLimit.astype(np.float64).copy()
        self.upper = model.upperPositionLimit.astype(np.float64).copy()
        self._parents = [model.parents[i] for i in range(1, model.njoints)]
        kinds_axes = [_joint_kind_axis(model.joints[i]) for i in range(1, model.njoints)]
        self._revolute = torch.tensor([k == "revolute" for k, _ in kinds_axes])
        self._axes = torch.tensor(np.stack([a for _, a in kinds_axes]))
        placements = [model.jointPlacements[i] for i in range(1, model.njoints)]
        self._rot = torch.tensor(np.stack([p.rotation for p in placements]))
        self._trans = torch.tensor(np.stack([p.translation for p in placements]))
        frames = [model.frames[model.getFrameId(f)] for f in self.ee_names]
        self._ee_joint = [f.parentJoint for f in frames]
        self._ee_rot = torch.tensor(np.stack([f.placement.rotation for f in frames]))
        self._ee_trans = torch.tensor(np.stack([f.placement.translation for f in frames]))
        self.ancestors = torch.tensor(self._ancestor_mask())
        self._pin = pin

    @property
    def joint_limits(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower (dof,), upper (dof,)) [rad or m]."""
        return self.lower.copy(), self.upper.copy()

    def _ancestor_mask(self) -> np.ndarray:
        """(N_ee, dof) bool: joint j moves end-effector i."""
        mask = np.zeros((self.num_ee, self.dof), dtype=bool)
        for i, joint in enumerate(self._ee_joint):
            while joint > 0:
                mask[i, joint - 1] = True
                joint = self._parents[joint - 1]
        return mask

    def check_q(self, q: Any) -> torch.Tensor:
        """``q`` as a (B, dof) floating tensor; ValueError on a wrong shape or NaN/inf."""
        q = torch.as_tensor(q)
        if not q.is_floating_point():
            q = q.double()
        if q.ndim != 2 or q.shape[1] != self.dof:
            raise ValueError(f"{self.name}: q must be (B, {self.dof}), got {tuple(q.shape)}")
        if not torch.isfinite(q).all():
            raise ValueError(f"{self.name}: q contains NaN or inf")
        return q

    def joint_frames(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World rotation (B, dof, 3, 3) and position (B, dof, 3) of every joint frame after
        its motion (the frame the joint's children are placed in)."""
        q = self.check_q(q)
        kw: dict[str, Any] = {"dtype": q.dtype, "device": q.device}
        rot_p, trans_p = self._rot.to(**kw), self._trans.to(**kw)
        axes, revolute = self._axes.to(**kw), self._revolute.to(q.device)
        rotations: list[torch.Tensor] = []
        positions: list[torch.Tensor] = []
        for j in range(self.dof):
            local_r, shift = _joint_motion(q[:, j], axes[j], bool(revolute[j]))
            r = rot_p[j] @ local_r
            p = trans_p[j] + (rot_p[j] @ shift.unsqueeze(-1)).squeeze(-1)
            parent = self._parents[j]
            if parent > 0:
                pr, pp = rotations[parent - 1], positions[parent - 1]
                p = pp + (pr @ p.unsqueeze(-1)).squeeze(-1)
                r = pr @ r
            rotations.append(r)
            positions.append(p)
        return torch.stack(rotations, 1), torch.stack(positions, 1)

    def ee_transforms(self, q: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """End-effector rotations (B, N_ee, 3, 3) and positions (B, N_ee, 3) [m]."""
        q = self.check_q(q)
        return self._ee_from_frames(*self.joint_frames(q))

    def forward_kinematics(self, q: Any) -> torch.Tensor:
        """Poses (B, N_ee, 7): position [m] + unit quaternion (qx, qy, qz, qw), qw >= 0."""
        rot, pos = self.ee_transforms(q)
        return torch.cat([pos, matrix_to_quaternion(rot)], dim=-1)

    def jacobians(self, q: Any) -> torch.Tensor:
        """Geometric Jacobians (B, N_ee, 6, dof) in the world frame: rows 0-2 linear velocity
        [m/s per unit joint velocity], rows 3-5 angular velocity [rad/s per unit]."""
        return self.ee_transforms_and_jacobians(q)[2]

    def ee_transforms_and_jacobians(
        self, q: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`ee_transforms` and :meth:`jacobians` from one pass over the joints:
        rotations (B, N_ee, 3, 3), positions (B, N_ee, 3) [m], Jacobians (B, N_ee, 6, dof)."""
        q = self.check_q(q)
        rots, poss = self.joint_frames(q)
        ee_rot, ee_pos = self._ee_from_frames(rots, poss)
        axes = self._axes.to(dtype=q.dtype, device=q.device)
        world_axes = (rots @ axes.unsqueeze(-1)).squeeze(-1)  # (B, dof, 3)
        revolute = self._revolute.to(q.device).view(1, 1, -1, 1)
        lever = ee_pos.unsqueeze(2) - poss.unsqueeze(1)  # (B, N_ee, dof, 3)
        axes_b = world_axes.unsqueeze(1).expand_as(lever)
        linear = torch.where(revolute, torch.linalg.cross(axes_b, lever), axes_b)
        angular = torch.where(revolute, axes_b, torch.zeros_like(axes_b))
        mask = self.ancestors.to(q.device).view(1, self.num_ee, self.dof, 1)
        jac = torch.cat([linear, angular], dim=-1) * mask
        return ee_rot, ee_pos, jac.transpose(-1, -2)

    def _ee_from_frames(
        self, rots: torch.Tensor, poss: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """End-effector rotations and positions from the joint frames of :meth:`joint_frames`."""
        kw: dict[str, Any] = {"dtype": rots.dtype, "device": rots.device}
        ee_rot, ee_trans = self._ee_rot.to(**kw), self._ee_trans.to(**kw)
        batch = rots.shape[0]
        out_r, out_p = [], []
        for i, joint in enumerate(self._ee_joint):
            if joint == 0:
                out_r.append(ee_rot[i].expand(batch, 3, 3))
                out_p.append(ee_trans[i].expand(batch, 3))
                continue
            r, p = rots[:, joint - 1], poss[:, joint - 1]
            out_r.append(r @ ee_rot[i])
            out_p.append(p + (r @ ee_trans[i].unsqueeze(-1)).squeeze(-1))
        return torch.stack(out_r, 1), torch.stack(out_p, 1)

    def sample_q(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, dof) configurations uniform within the joint limits (float64)."""
        return rng.uniform(self.lower, self.upper, size=(n, self.dof))

    def pinocchio_poses(self, q: np.ndarray) -> np.ndarray:
        """Reference FK with Pinocchio: (B, N_ee, 7) in the same convention (float64)."""
        pin = self._pin
        data = self.model.createData()
        q = np.atleast_2d(np.asarray(q, dtype=np.float64))
        ids = [self.model.getFrameId(f) for f in self.ee_names]
        out = np.empty((len(q), self.num_ee, POSE_DIM))
        for b, qb in enumerate(q):
            pin.framesForwardKinematics(self.model, data, qb)
            for i, fid in enumerate(ids):
                out[b, i] = pin.SE3ToXYZQUAT(data.oMf[fid])
        out[..., 3:] *= np.where(out[..., 6:7] < 0, -1.0, 1.0)
        return out


def _joint_motion(
    qj: torch.Tensor, axis: torch.Tensor, revolute: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotation (B, 3, 3) and translation (B, 3) of a 1-DoF joint at ``qj: (B,)``."""
    batch = qj.shape[0]
    eye = torch.eye(3, dtype=qj.dtype, device=qj.device).expand(batch, 3, 3)
    if not revolute:
        return eye, qj.unsqueeze(-1) * axis
    k = _skew(axis)
    s, c = torch.sin(qj).view(-1, 1, 1), torch.cos(qj).view(-1, 1, 1)
    return eye + s * k + (1 - c) * (k @ k), torch.zeros_like(axis).expand(batch, 3)


def _skew(v: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros((), dtype=v.dtype, device=v.device)
    return torch.stack(
        [
            torch.stack([zero, -v[2], v[1]]),
            torch.stack([v[2], zero, -v[0]]),
            torch.stack([-v[1], v[0], zero]),
        ]
    )


def matrix_to_quaternion(rot: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4) as (qx, qy, qz, qw), qw >= 0.

    Shepperd's method: the largest of the four candidate denominators is used, so the result is
    accurate (and differentiable) for every rotation."""
    m00, m11, m22 = rot[..., 0, 0], rot[..., 1, 1], rot[..., 2, 2]
    m01, m02, m10 = rot[..., 0, 1], rot[..., 0, 2], rot[..., 1, 0]
    m12, m20, m21 = rot[..., 1, 2], rot[..., 2, 0], rot[..., 2, 1]
    traces = torch.stack(
        [1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22, 1 + m00 + m11 + m22], -1
    )
    candidates = torch.stack(
        [
            torch.stack([traces[..., 0], m01 + m10, m02 + m20, m21 - m12], -1),
            torch.stack([m01 + m10, traces[..., 1], m12 + m21, m02 - m20], -1),
            torch.stack([m02 + m20, m12 + m21, traces[..., 2], m10 - m01], -1),
            torch.stack([m21 - m12, m02 - m20, m10 - m01, traces[..., 3]], -1),
        ],
        -2,
    )  # (..., 4 candidates, 4 components)
    best = traces.argmax(-1)
    index = best[..., None, None].expand(*best.shape, 1, 4)
    chosen = candidates.gather(-2, index).squeeze(-2)
    denom = 2 * torch.sqrt(traces.gather(-1, best.unsqueeze(-1)).clamp_min(1e-12))
    quat = chosen / denom
    quat = quat / quat.norm(dim=-1, keepdim=True)
    return torch.where(quat[..., 3:4] < 0, -quat, quat)


def quaternion_geodesic(q1: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
    """Geodesic angle [rad] between unit quaternions (..., 4) (sign-invariant)."""
    dot = (q1 * q2).sum(-1).abs().clamp(max=1.0)
    return 2 * torch.arccos(dot)


@functools.lru_cache(maxsize=16)
def load_robot(name: str) -> IKRobot:
    """The (cached) :class:`IKRobot` of ``name`` (see :func:`list_robots`)."""
    return IKRobot(name)
