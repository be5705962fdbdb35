"""KUKA LBR iiwa 14 constants, collision geometry and the MuJoCo model built from the URDF.

The task space, the obstacle of the paper's second data set and the safety limits live here
so that the environment, the MPC expert and the data pipeline share one definition.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from ampczoo.robots.kinematics import KUKA_URDF, SerialChain

#: KUKA safety stop: joint velocity commands beyond this engage the brakes [rad/s].
VELOCITY_LIMIT = 2.3
#: Spherical obstacle of the paper's second data set: centre [m] and radius [m].
OBSTACLE_CENTRE = (0.55, 0.0, 0.45)
OBSTACLE_RADIUS = 0.2
#: Height of the mounting plane; robot spheres above link 2 must stay above it [m].
FLOOR_Z = 0.0
#: Success region of the tracking task (the paper's Table I): final position error [m] and
#: final geodesic rotation error [rad] (5.7 deg).
SUCCESS_POS = 0.020
SUCCESS_ROT = math.radians(5.7)
#: Extra clearance required between spheres of non-adjacent links [m].
SELF_COLLISION_MARGIN = 0.0


@dataclass(frozen=True)
class Obstacle:
    """A sphere the robot must avoid. centre: (3,) [m], radius: [m]."""

    centre: tuple[float, float, float] = OBSTACLE_CENTRE
    radius: float = OBSTACLE_RADIUS


@dataclass(frozen=True)
class CollisionModel:
    """Which sphere pairs and sphere/plane/obstacle distances the robot must keep.

    pairs: (P, 2) indices into ``chain.spheres`` of sphere pairs on non-adjacent links that
    can approach each other within the joint limits. floor: indices of spheres that must stay
    above ``FLOOR_Z``.
    """

    pairs: np.ndarray
    floor: np.ndarray
    radii: np.ndarray = field(repr=False)


@functools.lru_cache(maxsize=1)
def kuka_chain() -> SerialChain:
    """The shipped KUKA URDF as a :class:`SerialChain` (cached)."""
    return SerialChain(KUKA_URDF)


@functools.lru_cache(maxsize=1)
def kuka_collision_model() -> CollisionModel:
    """Self-collision pairs: spheres on links at least two joints apart, excluding pairs
    that never get closer than 5 cm beyond contact over 20 000 random configurations and
    structural overlaps (in contact in most configurations, e.g. across the short link 6).
    The sample is deterministic; pruning keeps the MPC small."""
    chain = kuka_chain()
    radii = np.array([s.radius for s in chain.spheres])
    links = np.array([s.link for s in chain.spheres])
    i, j = np.triu_indices(len(radii), k=1)
    keep = np.abs(links[i] - links[j]) >= 2
    i, j = i[keep], j[keep]
    rng = np.random.default_rng(0)
    qs = rng.uniform(chain.lower, chain.upper, size=(20000, chain.nq))
    centres = chain.batch_sphere_centres(qs)  # (M, S, 3)
    gaps = np.linalg.norm(centres[:, i] - centres[:, j], axis=-1) - (radii[i] + radii[j])
    reachable = (gaps.min(axis=0) < 0.05) & ((gaps < 0).mean(axis=0) < 0.5)
    floor = np.flatnonzero(links >= 3)
    return CollisionModel(np.stack([i[reachable], j[reachable]], axis=1), floor, radii)


def self_collision_gaps(centres: np.ndarray, model: CollisionModel | None = None) -> np.ndarray:
    """Signed clearances [m] (negative = collision) of all self-collision and floor checks.

    centres: (..., S, 3) sphere centres. Returns (..., P + F) distances."""
    model = model or kuka_collision_model()
    i, j = model.pairs[:, 0], model.pairs[:, 1]
    pair = np.linalg.norm(centres[..., i, :] - centres[..., j, :], axis=-1)
    pair = pair - (model.radii[i] + model.radii[j]) - SELF_COLLISION_MARGIN
    floor = centres[..., model.floor, 2] - model.radii[model.floor] - FLOOR_Z
    return np.concatenate([pair, floor], axis=-1)


def obstacle_penetration(
    centres: np.ndarray, obstacle: Obstacle, model: CollisionModel | None = None
) -> np.ndarray | float:
    """Deepest penetration of any robot sphere into the obstacle, as a fraction of its radius
    (0 = no contact; 1 = a sphere surface reaches the obstacle centre).

    centres: (S, 3) -> float, or (..., S, 3) -> (...,) array."""
    model = model or kuka_collision_model()
    d = np.linalg.norm(centres - np.asarray(obstacle.centre), axis=-1)
    depth = np.maximum((model.radii + obstacle.radius - d).max(axis=-1), 0.0) / obstacle.radius
    return float(depth) if np.ndim(depth) == 0 else depth


def batch_collision_free(
    qs: np.ndarray, obstacle: Obstacle | None, model: CollisionModel | None = None
) -> np.ndarray:
    """qs: (M, 7) [rad] -> (M,) bool: no self/floor collision and, if given, outside the
    obstacle."""
    centres = kuka_chain().batch_sphere_centres(qs)  # (M, S, 3)
    free = self_collision_gaps(centres, model).min(axis=-1) > 0
    if obstacle is not None:
        free &= obstacle_penetration(centres, obstacle, model) == 0
    return free


def planned_ee_path(q0: np.ndarray, inputs: np.ndarray, dt: float) -> np.ndarray:
    """End-effector positions (N+1, 3) [m] along a planned joint-velocity sequence.

    q0: (7,) current joint positions [rad]; inputs: (N, 7) planned velocities [rad/s] at
    step ``dt`` [s]. The joints follow the kinematic env's step q_{k+1} = clip(q_k + dt u_k)
    to the joint limits; row 0 is the end-effector position at ``q0`` (batched FK).
    ValueError on other shapes, non-finite values or ``dt <= 0``."""
    chain = kuka_chain()
    q = np.asarray(q0, dtype=float)
    u = np.asarray(inputs, dtype=float)
    if q.shape != (chain.nq,) or u.ndim != 2 or u.shape[1] != chain.nq:
        raise ValueError(
            f"q0 must be ({chain.nq},) and inputs (N, {chain.nq}), got {q.shape} and {u.shape}"
        )
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(u)) and math.isfinite(dt) and dt > 0):
        raise ValueError("q0 and inputs must be finite and dt a positive number [s]")
    qs = [q]
    for u_k in u:
        qs.append(np.clip(qs[-1] + dt * u_k, chain.lower, chain.upper))
    return chain.batch_ee_pose(np.stack(qs))[0]


def build_mujoco_spec(obstacle: Obstacle | None, actuated: bool, kv: float = 200.0):
    """MjSpec of the KUKA from the shipped URDF, plus an end-effector site, a target marker
    (mocap), the optional obstacle, a floor, lights and (if ``actuated``) velocity actuators
    with gain ``kv`` [N m s/rad] and ctrlrange ±VELOCITY_LIMIT.

    Contacts are disabled in the simulation (collisions are checked geometrically on the same
    spheres the MPC constrains, see :func:`self_collision_gaps`)."""
    import mujoco

    spec = mujoco.MjSpec.from_file(str(KUKA_URDF))
    spec.option.timestep = 0.002
    spec.option.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT
    for geom in spec.geoms:
        geom.contype, geom.conaffinity = 0, 0
        if geom.type == mujoco.mjtGeom.mjGEOM_SPHERE:
            geom.group = 3  # collision spheres: hidden by default in renders
            geom.rgba = [0.9, 0.5, 0.1, 0.3]
        else:
            geom.rgba = [0.85, 0.45, 0.1, 1.0]
    world = spec.worldbody
    world.add_light(pos=[0, -1.0, 3.0], dir=[0, 0.3, -1])
    world.add_geom(type=mujoco.mjtGeom.mjGEOM_PLANE, size=[2, 2, 0.1], rgba=[0.8, 0.8, 0.85, 1])
    ee_body = spec.body("iiwa_link_ee")
    ee_body.add_site(name="ee", size=[0.01, 0.01, 0.01], rgba=[0, 0.8, 0, 1])
    target = world.add_body(name="target", mocap=True)
    for axis, rgba in zip(np.eye(3), ([1, 0, 0, 0.6], [0, 1, 0, 0.6], [0, 0, 1, 0.6]), strict=True):
        target.add_geom(
            type=mujoco.mjtGeom.mjGEOM_CAPSULE,
            fromto=[0, 0, 0, *(0.08 * axis)],
            size=[0.006, 0, 0],
            rgba=rgba,
            contype=0,
            conaffinity=0,
        )
    if obstacle is not None:
        world.add_geom(
            name="obstacle",
            type=mujoco.mjtGeom.mjGEOM_SPHERE,
            pos=list(obstacle.centre),
            size=[obstacle.radius, 0, 0],
            rgba=[0.2, 0.4, 0.9, 0.5],
            contype=0,
            conaffinity=0,
        )
    if actuated:
        for name in kuka_chain().joint_names:
            act = spec.add_actuator(
                name=f"vel_{name}", target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT
            )
            act.gaintype = mujoco.mjtGain.mjGAIN_FIXED
            act.biastype = mujoco.mjtBias.mjBIAS_AFFINE
            act.gainprm[0] = kv
            act.biasprm[:3] = [0.0, 0.0, -kv]
            act.ctrllimited = True
            act.ctrlrange = [-VELOCITY_LIMIT, VELOCITY_LIMIT]
            act.forcelimited = False
    return spec


#: Observation layout of the KUKA tracking envs (flat Box, float64):
#: [0:7] q [rad] | [7:10] target position [m] | [10:16] target rotation, 6D (first two
#: columns of R) | obstacle variant only: [16:19] obstacle centre [m] | [19] radius [m].
OBS_DIM = 16
OBS_DIM_OBSTACLE = 20
#: Named slices of that layout; nothing outside this module indexes the observation by number.
OBS_Q = slice(0, 7)
OBS_TARGET_POS = slice(7, 10)
OBS_TARGET_ROT6D = slice(10, 16)
OBS_TARGET = slice(7, 16)  # position + 6D rotation
OBS_OBSTACLE_CENTRE = slice(16, 19)
OBS_OBSTACLE_RADIUS = slice(19, 20)


@dataclass(frozen=True)
class KukaObservation:
    """A parsed observation. q: (7,) [rad]; target_pos: (3,) [m]; target_rot: (3, 3)."""

    q: np.ndarray
    target_pos: np.ndarray
    target_rot: np.ndarray
    obstacle: Obstacle | None


def make_observation(
    q: np.ndarray, target_pos: np.ndarray, target_rot: np.ndarray, obstacle: Obstacle | None
) -> np.ndarray:
    """Flat observation (16,) or (20,) in the documented layout."""
    from ampczoo.robots.kinematics import rotation_6d

    parts = [np.asarray(q, float), np.asarray(target_pos, float), rotation_6d(target_rot)]
    if obstacle is not None:
        parts += [np.asarray(obstacle.centre, float), np.array([obstacle.radius], float)]
    return np.concatenate(parts)


def parse_observation(obs: np.ndarray) -> KukaObservation:
    """Inverse of :func:`make_observation`; raises ValueError on a bad shape or non-finite
    values (no silent clipping)."""
    from ampczoo.robots.kinematics import rotation_from_6d

    obs = np.asarray(obs, dtype=float)
    if obs.shape not in ((OBS_DIM,), (OBS_DIM_OBSTACLE,)):
        raise ValueError(
            f"KUKA observation must have shape ({OBS_DIM},) or "
            f"({OBS_DIM_OBSTACLE},), got {obs.shape}"
        )
    if not np.all(np.isfinite(obs)):
        raise ValueError(f"KUKA observation contains NaN/inf: {obs}")
    obstacle = None
    if obs.shape[0] == OBS_DIM_OBSTACLE:
        cx, cy, cz = (float(c) for c in obs[OBS_OBSTACLE_CENTRE])
        obstacle = Obstacle((cx, cy, cz), float(obs[OBS_OBSTACLE_RADIUS][0]))
    return KukaObservation(
        obs[OBS_Q].copy(),
        obs[OBS_TARGET_POS].copy(),
        rotation_from_6d(obs[OBS_TARGET_ROT6D]),
        obstacle,
    )
