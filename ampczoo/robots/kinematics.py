"""Serial-chain forward kinematics shared by the simulator checks and the MPC expert.

One kinematic description (the shipped URDF) is parsed by Pinocchio; this module turns the
Pinocchio model's joint placements into a tiny generic serial-chain evaluator that works on
numpy arrays *and* CasADi symbols, so the expert's symbolic forward kinematics is built from
exactly the numbers Pinocchio and MuJoCo use (agreement is tested to 1e-12).

Conventions: positions in metres, angles in radians, rotation matrices map child-frame
coordinates to the world frame. ``q: (7,)`` joint positions [rad].
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROBOTS_DIR = Path(__file__).resolve().parent
KUKA_URDF = ROBOTS_DIR / "lbr_iiwa14.urdf"
EE_FRAME = "iiwa_link_ee"


@dataclass(frozen=True)
class CollisionSphere:
    """A sphere of the collision model.

    link: index of the body it is attached to (0 = base, i = after joint i).
    offset: (3,) centre in the link frame [m]. radius: [m].
    """

    link: int
    offset: tuple[float, float, float]
    radius: float


@functools.lru_cache(maxsize=4)
def load_pinocchio_model(urdf: str = str(KUKA_URDF)) -> Any:
    """Pinocchio model of the shipped URDF (cached; imports Pinocchio lazily)."""
    import pinocchio as pin

    return pin.buildModelFromUrdf(urdf)


def _rot_axis(axis: np.ndarray, angle: Any, backend: Any) -> Any:
    """Rotation matrix about a unit ``axis`` by ``angle`` (Rodrigues), numpy or CasADi."""
    c, s = backend.cos(angle), backend.sin(angle)
    x, y, z = (float(a) for a in axis)
    C = 1 - c
    rows = [
        [c + x * x * C, x * y * C - z * s, x * z * C + y * s],
        [y * x * C + z * s, c + y * y * C, y * z * C - x * s],
        [z * x * C - y * s, z * y * C + x * s, c + z * z * C],
    ]
    if backend is np:
        return np.array(rows, dtype=float)
    import casadi as ca

    return ca.vertcat(*[ca.horzcat(*r) for r in rows])


class SerialChain:
    """Forward kinematics of a chain of revolute joints taken from a Pinocchio model.

    ``placements[i]`` is the fixed transform (R, p) from the parent joint frame to joint i's
    frame at q_i = 0; ``axes[i]`` the unit rotation axis of joint i in its own frame.
    """

    def __init__(self, urdf: str | Path = KUKA_URDF, ee_frame: str = EE_FRAME):
        model = load_pinocchio_model(str(urdf))
        self.urdf = Path(urdf)
        self.nq = model.nq
        self.joint_names = [model.names[j] for j in range(1, model.njoints)]
        self.lower = np.array(model.lowerPositionLimit, dtype=float)
        self.upper = np.array(model.upperPositionLimit, dtype=float)
        self.placements: list[tuple[np.ndarray, np.ndarray]] = []
        self.axes: list[np.ndarray] = []
        for j in range(1, model.njoints):
            M = model.jointPlacements[j]
            self.placements.append((np.array(M.rotation), np.array(M.translation)))
            self.axes.append(_joint_axis(model.joints[j]))
        frame = model.frames[model.getFrameId(ee_frame)]
        if frame.parentJoint != model.njoints - 1:
            raise ValueError(f"frame {ee_frame!r} is not attached to the last joint")
        self.ee_offset = (np.array(frame.placement.rotation), np.array(frame.placement.translation))
        self.spheres = parse_collision_spheres(self.urdf, model)

    def link_transforms(self, q: Any, backend: Any = np) -> list[tuple[Any, Any]]:
        """World transforms (R, p) of links 0..nq (link 0 = base) for joint positions ``q``."""
        R: Any  # (3, 3) numpy array or CasADi SX/MX matrix
        p: Any  # (3,) numpy array or CasADi DM/SX/MX vector
        if backend is np:
            q = np.asarray(q, dtype=float)
            R, p = np.eye(3), np.zeros(3)
        else:
            import casadi as ca

            R, p = ca.SX.eye(3) if isinstance(q, ca.SX) else ca.MX.eye(3), ca.DM.zeros(3)
        out = [(R, p)]
        for i, ((Rj, pj), axis) in enumerate(zip(self.placements, self.axes, strict=True)):
            p = p + _mul(R, pj, backend)
            R = _mul(_mul(R, Rj, backend), _rot_axis(axis, q[i], backend), backend)
            out.append((R, p))
        return out

    def ee_pose(self, q: Any, backend: Any = np) -> tuple[Any, Any]:
        """End-effector position (3,) [m] and rotation (3, 3) for joint positions ``q``."""
        R, p = self.link_transforms(q, backend)[-1]
        Re, pe = self.ee_offset
        return p + _mul(R, pe, backend), _mul(R, Re, backend)

    def sphere_centres(self, q: Any, backend: Any = np) -> list[Any]:
        """World centres of the collision spheres, in ``self.spheres`` order (each (3,) [m])."""
        links = self.link_transforms(q, backend)
        return [
            links[s.link][1] + _mul(links[s.link][0], np.array(s.offset), backend)
            for s in self.spheres
        ]

    def sphere_centres_np(self, q: np.ndarray) -> np.ndarray:
        """Numpy convenience: (S, 3) sphere centres [m]."""
        return np.stack(self.sphere_centres(q, np))

    def batch_link_transforms(self, qs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised FK. qs: (M, nq) -> rotations (M, nq+1, 3, 3), positions (M, nq+1, 3).

        Joint i's rotation Rj rot(q_i) = Rj + sin q_i (Rj K) + (1 - cos q_i) (Rj K^2)
        (Rodrigues, K the axis' cross-product matrix) with the three constant matrices
        precomputed: one batched product per joint."""
        qs = np.atleast_2d(np.asarray(qs, dtype=float))
        M = qs.shape[0]
        Rs, ps = np.empty((M, self.nq + 1, 3, 3)), np.empty((M, self.nq + 1, 3))
        Rs[:, 0], ps[:, 0] = np.eye(3), 0.0
        c, s = np.cos(qs)[:, :, None, None], np.sin(qs)[:, :, None, None]
        for i, (Rj, RjK, RjK2, pj) in enumerate(self._rodrigues_terms()):
            ps[:, i + 1] = ps[:, i] + Rs[:, i] @ pj
            np.matmul(Rs[:, i], Rj + s[:, i] * RjK + (1.0 - c[:, i]) * RjK2, out=Rs[:, i + 1])
        return Rs, ps

    def _rodrigues_terms(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """(Rj, Rj K, Rj K^2, pj) per joint (cached)."""
        terms = self.__dict__.get("_terms")
        if terms is None:
            terms = []
            for (Rj, pj), axis in zip(self.placements, self.axes, strict=True):
                K = np.array(
                    [[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]]
                )
                terms.append((Rj, Rj @ K, Rj @ K @ K, pj))
            self.__dict__["_terms"] = terms
        return terms

    def batch_sphere_centres(self, qs: np.ndarray) -> np.ndarray:
        """Vectorised sphere centres: qs (M, nq) -> (M, S, 3) [m]."""
        Rs, ps = self.batch_link_transforms(qs)
        links = [s.link for s in self.spheres]
        offsets = np.array([s.offset for s in self.spheres])  # (S, 3)
        return ps[:, links] + np.einsum("mkij,kj->mki", Rs[:, links], offsets)

    def batch_ee_pose(self, qs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised end-effector pose: qs (M, nq) -> positions (M, 3), rotations (M, 3, 3)."""
        Rs, ps = self.batch_link_transforms(qs)
        Re, pe = self.ee_offset
        return ps[:, -1] + Rs[:, -1] @ pe, Rs[:, -1] @ Re


def _mul(a: Any, b: Any, backend: Any) -> Any:
    if backend is np:
        return a @ b
    import casadi as ca

    return ca.mtimes(a, b)


def _joint_axis(jmodel: Any) -> np.ndarray:
    kind = jmodel.shortname()
    axes = {"JointModelRX": (1, 0, 0), "JointModelRY": (0, 1, 0), "JointModelRZ": (0, 0, 1)}
    if kind in axes:
        return np.array(axes[kind], dtype=float)
    if kind == "JointModelRevoluteUnaligned":
        return np.array(jmodel.axis, dtype=float)
    raise ValueError(
        f"unsupported joint type {kind}: the serial-chain builder handles revolute joints only"
    )


def parse_collision_spheres(urdf: Path, model: Any) -> tuple[CollisionSphere, ...]:
    """Read the ``<collision><sphere>`` elements of the URDF, attached to joint-frame indices.

    Links rigidly attached by fixed joints are resolved to their moving parent via Pinocchio.
    """
    root = ET.parse(urdf).getroot()
    spheres = []
    for link in root.iter("link"):
        frame = model.frames[model.getFrameId(link.get("name"))]
        placement = frame.placement
        for col in link.iter("collision"):
            sphere = col.find("geometry/sphere")
            if sphere is None:
                continue
            origin = col.find("origin")
            xyz = np.array(
                (origin.get("xyz", "0 0 0") if origin is not None else "0 0 0").split(), dtype=float
            )
            cx, cy, cz = np.array(placement.rotation) @ xyz + np.array(placement.translation)
            radius = sphere.get("radius")
            if radius is None:
                raise ValueError(
                    f"{urdf}: a collision sphere of link {link.get('name')!r} has no radius"
                )
            spheres.append(
                CollisionSphere(
                    int(frame.parentJoint), (float(cx), float(cy), float(cz)), float(radius)
                )
            )
    return tuple(spheres)


def rotation_6d(R: np.ndarray) -> np.ndarray:
    """6D rotation representation (Zhou et al. 2019): the first two columns of R, (6,)."""
    R = np.asarray(R, dtype=float)
    return np.concatenate([R[:, 0], R[:, 1]])


def rotation_from_6d(r6: np.ndarray) -> np.ndarray:
    """Gram-Schmidt inverse of :func:`rotation_6d`: (6,) -> (3, 3) rotation matrix."""
    a, b = np.asarray(r6[:3], float), np.asarray(r6[3:6], float)
    c1 = a / np.linalg.norm(a)
    b = b - c1 * (c1 @ b)
    c2 = b / np.linalg.norm(b)
    return np.stack([c1, c2, np.cross(c1, c2)], axis=1)


def geodesic_angle(R_d: np.ndarray, R: np.ndarray) -> float:
    """Geodesic rotation distance [rad] between two rotation matrices (in [0, pi])."""
    E = np.asarray(R_d).T @ np.asarray(R)
    v = 0.5 * np.array([E[2, 1] - E[1, 2], E[0, 2] - E[2, 0], E[1, 0] - E[0, 1]])
    return float(np.arctan2(np.linalg.norm(v), 0.5 * (np.trace(E) - 1.0)))
