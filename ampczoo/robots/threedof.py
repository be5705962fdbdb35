"""The 3-DOF arm of ``ThreeDOF-Reach-v0``: constants, the shipped MuJoCo model, kinematics.

One model file, ``ampczoo/robots/threedof.xml`` (MJCF), is loaded by MuJoCo (simulation) and
by Pinocchio (``pin.buildModelFromMJCF``: the expert's FK, Jacobian and gravity); a test checks
that both agree with the closed-form :func:`forward_kinematics` below.

======  ===========  ==========  =========  ==================================  =========
link    joint (axis) length [m]  mass [kg]  COM inertia (x, y, z) [kg m²]       range
======  ===========  ==========  =========  ==================================  =========
base    –            0.05        fixed      –                                   –
link1   joint1 (+z)  0.25 (up)   1.0        (0.0056, 0.0056, 0.0008)            ±π
link2   joint2 (−y)  0.35        1.5        (0.000675, 0.01565, 0.01565)        ±π/2
link3   joint3 (−y)  0.30        1.0        (0.0003125, 0.007656, 0.007656)     ±2.618
======  ===========  ==========  =========  ==================================  =========

Links are solid cylinders/rods with the centre of mass at half length (radii 0.04, 0.03,
0.025 m; I = m r²/2 about the axis, m (3 r² + l²)/12 across). The shoulder (joint 2) sits at
height 0.30 m; with q = 0 the arm points along +x, horizontal; positive q2 / q3 raise it.
Joints have damping 0.1 N m s/rad and armature 0.5 kg m² (the reflected inertia of a geared
motor, e.g. a 5e-5 kg m² rotor behind a 100:1 gearbox). The armature dominates the link
inertia (0.05-0.35 kg m²), which is what makes the expert's double-integrator model
q̈ = τ a fair approximation: with armature 0.01 the real accelerations are up to 70x the
model's and the MPC closed loop chatters between the torque bounds.

Closed form (r = horizontal reach, θ = q2 + q3)::

    r = l2 cos q2 + l3 cos θ,   p = (r cos q1, r sin q1, h + l2 sin q2 + l3 sin θ)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: The shipped MJCF model.
THREEDOF_XML = Path(__file__).resolve().parent / "threedof.xml"
JOINT_NAMES = ("joint1", "joint2", "joint3")
EE_SITE = "ee"
NQ = 3
#: Observation layout of ThreeDOF-Reach-v0 (flat Box (9,), float64): q [rad] | q̇ [rad/s] |
#: target position p_des [m]. Nothing outside this module indexes it by number.
OBS_DIM = 9
OBS_Q = slice(0, 3)
OBS_QD = slice(3, 6)
OBS_STATE = slice(0, 6)  # [q, q̇]
OBS_TARGET = slice(6, 9)
#: Joint limits [rad] (must match threedof.xml).
LOWER = np.array([-np.pi, -np.pi / 2, -2.618])
UPPER = np.array([np.pi, np.pi / 2, 2.618])
#: Height of the shoulder (joint 2) above the floor [m]: 0.05 pedestal + 0.25 link 1.
SHOULDER_HEIGHT = 0.30
#: Link lengths l2, l3 [m] (shoulder to elbow, elbow to end effector).
LINK_LENGTHS = (0.35, 0.30)
#: Bounds of the *corrective* torque a policy commands (the action space) [N m].
TORQUE_LIMIT = np.array([6.0, 10.0, 4.0])
#: Motor ranges in threedof.xml [N m] = TORQUE_LIMIT + headroom for gravity compensation
#: (max |τ_g| is 0 / 7.5 / 1.5 N m nominal, at most 11.0 / 2.3 N m with every mass and length
#: scaled by 1.25; a test checks this), so corrective torque plus τ_g is never clipped.
ACTUATOR_LIMIT = np.array([6.0, 22.0, 8.0])
#: Success region: end-effector position error [m] and joint speed ||q̇|| [rad/s].
SUCCESS_POS = 0.02
SUCCESS_VEL = 0.1
#: Observation bound on joint velocities [rad/s] (observations are clipped to it).
VELOCITY_BOUND = 50.0


@dataclass(frozen=True)
class Workspace:
    """A target region: points at distance ``radius`` [m] from the shoulder, elevation
    ``elevation`` [rad] above the shoulder's horizontal plane, any azimuth, and at least
    ``min_height`` [m] above the floor."""

    radius: tuple[float, float] = (0.20, 0.55)
    elevation: tuple[float, float] = (-0.9, 1.3)
    min_height: float = 0.05


#: In-distribution targets (training data, main benchmark).
NOMINAL_WORKSPACE = Workspace()
#: Out-of-distribution shells: near full stretch (q3 ≈ 0, singular) and near the folded
#: inner boundary, plus a cone around the vertical axis through the base (yaw singularity).
OOD_OUTER = Workspace(radius=(0.56, 0.63))
OOD_INNER = Workspace(radius=(0.10, 0.19))
OOD_AXIS_HALF_ANGLE = 0.12  # [rad] around the vertical above the shoulder


def forward_kinematics(
    q: Any,
    lengths: tuple[float, float] = LINK_LENGTHS,
    shoulder_height: float = SHOULDER_HEIGHT,
    xp: Any = np,
) -> Any:
    """End-effector position (..., 3) [m] of joint angles q (..., 3) [rad] (closed form).

    ``xp`` is the array module (``numpy`` or ``torch``): the same formula serves the env,
    the tests and the policies' torch features."""
    q1, q2, q3 = q[..., 0], q[..., 1], q[..., 2]
    l2, l3 = lengths
    r = l2 * xp.cos(q2) + l3 * xp.cos(q2 + q3)
    z = shoulder_height + l2 * xp.sin(q2) + l3 * xp.sin(q2 + q3)
    return xp.stack([r * xp.cos(q1), r * xp.sin(q1), z], -1)


def sample_in_workspace(rng: np.random.Generator, ws: Workspace) -> np.ndarray:
    """One point (3,) [m] uniform in radius/azimuth/elevation of ``ws`` and above its
    ``min_height`` (rejection sampled)."""
    for _ in range(1000):
        r = rng.uniform(*ws.radius)
        az = rng.uniform(-np.pi, np.pi)
        el = rng.uniform(*ws.elevation)
        p = np.array(
            [
                r * np.cos(el) * np.cos(az),
                r * np.cos(el) * np.sin(az),
                SHOULDER_HEIGHT + r * np.sin(el),
            ]
        )
        if p[2] >= ws.min_height:
            return p
    raise RuntimeError(f"no point above the floor in {ws}")


def in_workspace(p: np.ndarray, ws: Workspace) -> bool:
    """Whether the point p (3,) [m] lies in ``ws``."""
    d = np.asarray(p, float) - np.array([0.0, 0.0, SHOULDER_HEIGHT])
    r = float(np.linalg.norm(d))
    if r == 0.0:
        return False
    el = float(np.arcsin(d[2] / r))
    return (
        ws.radius[0] <= r <= ws.radius[1]
        and ws.elevation[0] <= el <= ws.elevation[1]
        and p[2] >= ws.min_height
    )


@functools.lru_cache(maxsize=1)
def pinocchio_model() -> Any:
    """The shipped model as a ``pinocchio.Model`` (cached; joints joint1..3, frame "ee")."""
    import pinocchio as pin

    return pin.buildModelFromMJCF(str(THREEDOF_XML))


class PinocchioKinematics:
    """FK, position Jacobian and gravity torque of the shipped model through Pinocchio.

    All methods take q (3,) [rad]; one instance owns its ``pinocchio.Data`` (not thread safe).
    """

    def __init__(self, model: Any = None):
        import pinocchio as pin

        self._pin = pin
        self.model = model if model is not None else pinocchio_model()
        self.data = self.model.createData()
        self.ee = self.model.getFrameId(EE_SITE)

    def fk(self, q: np.ndarray) -> np.ndarray:
        """End-effector position (3,) [m]."""
        self._pin.framesForwardKinematics(self.model, self.data, q)
        return self.data.oMf[self.ee].translation.copy()

    def fk_jacobian(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position (3,) [m], dp/dq (3, 3) [m/rad]) in the world frame."""
        pin = self._pin
        J = pin.computeFrameJacobian(
            self.model, self.data, q, self.ee, pin.ReferenceFrame.LOCAL_WORLD_ALIGNED
        )
        return self.data.oMf[self.ee].translation.copy(), J[:3].copy()

    def gravity(self, q: np.ndarray) -> np.ndarray:
        """Gravity torque τ_g(q) (3,) [N m] (the torque that holds the arm still)."""
        return self._pin.computeGeneralizedGravity(self.model, self.data, q).copy()


def load_mujoco_spec() -> Any:
    """The shipped model as an editable ``mujoco.MjSpec``."""
    import mujoco

    return mujoco.MjSpec.from_file(str(THREEDOF_XML))


def scale_dynamics(spec: Any, mass: np.ndarray, length: np.ndarray, inertia: np.ndarray) -> None:
    """Scale the three links of ``spec`` in place: link i's mass by mass[i], its length (body
    offsets, geometry, centre of mass, end-effector site) by length[i], and its rotational
    inertia by inertia[i] (on top of the change the mass and length imply: I ∝ m l²)."""
    for i, name in enumerate(("link1", "link2", "link3")):
        body = spec.body(name)
        body.mass = body.mass * mass[i]
        body.inertia = np.asarray(body.inertia) * mass[i] * length[i] ** 2 * inertia[i]
        body.ipos = np.asarray(body.ipos) * length[i]
        for geom in body.geoms:
            geom.fromto = np.asarray(geom.fromto) * length[i]
        for child in body.bodies:
            child.pos = np.asarray(child.pos) * length[i]
        for site in body.sites:
            site.pos = np.asarray(site.pos) * length[i]


def check_vector3(v: Any, name: str) -> np.ndarray:
    """``v`` as a finite float64 (3,) array; ValueError naming ``name`` otherwise."""
    arr = np.asarray(v, dtype=np.float64)
    if arr.shape != (3,):
        raise ValueError(f"{name} must have shape (3,), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN/inf: {arr}")
    return arr
