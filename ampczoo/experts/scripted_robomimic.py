"""Scripted experts of robomimic's tasks: phase / waypoint controllers on the flat low-dim
observation of :class:`~ampczoo.envs.robomimic.RobomimicEnv` (the object poses are in it).

Every controller moves the gripper through task waypoints (approach above, descend, grasp,
lift, carry, place / insert / hang) with a proportional law on the end-effector pose, turned
into robomimic's OSC_POSE delta action (±1 = ±0.05 m, ±0.5 rad per step). What makes the
demonstrations look human rather than replayed is drawn per episode at ``reset(seed)``
(:class:`Style`, scaled by ``config.diversity``): speed and gain, hover height, grasp offset,
approach path (straight down after hovering, or a diagonal glide), a detour while carrying,
pauses between phases, grip duration and temporally correlated action noise.

Fixed scene constants (bin compartment of the can, square peg, Tool Hang stand) are
robosuite 1.5's; ``tests/experts/test_scripted_robomimic.py`` checks them against the env.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ampczoo.envs.robomimic import TASKS, make_layout

#: End-effector change per unit action: position [m], rotation [rad] (robomimic's OSC_POSE).
POS_SCALE, ROT_SCALE = 0.05, 0.5
#: Gripper pointing down with yaw 0: quaternion (x, y, z, w) = (1, 0, 0, 0), rotation
#: diag(1, -1, -1); its fingers close along world y.
R_DOWN = np.diag([1.0, -1.0, -1.0])
OPEN, CLOSE = -1.0, 1.0
#: Table top height of Lift, Square and Tool Hang [m].
TABLE_Z = 0.8
#: The can's compartment of the target bin (robosuite PickPlace bin 3: x in [0.1, 0.295],
#: y in [0.28, 0.525]) and the release point in it, near its corner closest to the robot
#: (the centre (0.1975, 0.4025) is at the edge of the Panda's reach) [m].
CAN_BIN_LOW, CAN_BIN_HIGH = np.array([0.1, 0.28]), np.array([0.295, 0.525])
CAN_TARGET_XY = np.array([0.16, 0.34])
#: Square peg (robosuite NutAssembly peg1) position [m].
SQUARE_PEG = np.array([0.23, 0.1, 0.85])
#: Handle of the square nut in the nut's frame [m] (site SquareNut_handle_site).
SQUARE_HANDLE = np.array([0.054, 0.0, 0.0])


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    """(4,) unit quaternion (x, y, z, w) -> (3, 3) rotation matrix."""
    x, y, z, w = np.asarray(q, float) / max(float(np.linalg.norm(q)), 1e-12)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotation_vector(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> (3,) axis * angle [rad], angle in [0, pi]."""
    cos = np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)
    angle = float(np.arccos(cos))
    if angle < 1e-9:
        return np.zeros(3)
    axis = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    if angle > np.pi - 1e-6:  # 180°: axis from the symmetric part
        axis = np.sqrt(np.clip((np.diag(R) + 1.0) / 2.0, 0.0, None))
        k = int(np.argmax(axis))
        signs = np.sign(R[k] + R[:, k])
        signs[k] = 1.0
        axis = axis * signs
        return angle * axis / np.linalg.norm(axis)
    return angle * axis / (2.0 * np.sin(angle))


def rot_z(angle: float) -> np.ndarray:
    """(3, 3) rotation by ``angle`` [rad] about world z."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def yaw_of(R: np.ndarray) -> float:
    """Heading [rad] of the x axis of rotation ``R`` projected on the table."""
    return float(np.arctan2(R[1, 0], R[0, 0]))


def gripper_yaw(R_eef: np.ndarray) -> float:
    """Yaw ψ [rad] of a downward gripper: ``R_eef ≈ rot_z(ψ) @ R_DOWN``."""
    return yaw_of(R_eef @ R_DOWN.T)


def nearest_yaw(target: float, current: float, period: float) -> float:
    """``target + k * period`` closest to ``current`` [rad] (symmetric grasps)."""
    return target + period * np.round((current - target) / period)


@dataclass
class Style:
    """One episode's randomisation (drawn by :func:`draw_style`; lengths [m], angles [rad],
    durations [steps])."""

    speed: float
    """largest position action (fraction of 0.05 m / step)"""
    gain: float
    """proportional gain: action = gain * error / 0.05 m"""
    hover: float
    """height of the approach point above the grasp"""
    grasp_offset: np.ndarray
    """(3,) grasp point offset from the nominal one"""
    yaw_offset: float
    """grasp yaw offset"""
    diagonal: bool
    """glide straight to the grasp instead of hovering above it first"""
    via: np.ndarray
    """(3,) detour of the carrying path (mid-point offset)"""
    lift: float
    """carrying height above the nominal one"""
    pauses: np.ndarray
    """(8,) steps to wait at the end of each phase"""
    close_steps: int
    """steps the gripper closes before lifting"""
    noise_std: float
    """std of the action noise (action units)"""
    noise_corr: float
    """correlation of the action noise from one step to the next"""
    place_offset: np.ndarray
    """(2,) x-y offset of the release point"""


def draw_style(rng: np.random.Generator, diversity: float) -> Style:
    """A :class:`Style` around the nominal one, spread scaled by ``diversity`` (0: nominal)."""
    d = float(diversity)

    def around(nominal: float, spread: float) -> float:
        return float(nominal + d * spread * rng.uniform(-1.0, 1.0))

    return Style(
        speed=float(np.clip(around(0.75, 0.25), 0.3, 1.0)),
        gain=float(np.clip(around(1.2, 0.4), 0.6, 2.0)),
        hover=max(0.03, around(0.08, 0.04)),
        grasp_offset=d * rng.uniform(-1.0, 1.0, 3) * np.array([0.004, 0.004, 0.003]),
        yaw_offset=around(0.0, 0.15),
        diagonal=bool(d > 0 and rng.random() < 0.4),
        via=d * rng.uniform(-1.0, 1.0, 3) * np.array([0.06, 0.06, 0.03]),
        lift=around(0.0, 0.03),
        pauses=np.round(d * rng.uniform(0.0, 1.0, 8) * 5).astype(int),
        close_steps=int(round(around(10, 3))),
        noise_std=d * 0.04 * float(rng.uniform(0.5, 1.5)),
        noise_corr=float(rng.uniform(0.5, 0.9)),
        place_offset=d * rng.uniform(-1.0, 1.0, 2) * 0.01,
    )


@dataclass
class Arm:
    """One arm's state read from the observation: eef position (3,) [m], rotation (3, 3),
    finger opening (sum of the two finger joints' magnitudes) [m]."""

    pos: np.ndarray
    rot: np.ndarray
    opening: float


class RobomimicScriptedController:
    """Shared machinery of the task controllers: observation parsing, per-episode
    :class:`Style`, pose-tracking actions, phases with pauses, correlated action noise.

    Subclasses set ``task`` and implement :meth:`command` (one arm's target, gripper) and may
    override :meth:`actions` for several arms."""

    task = "Lift"
    #: factor on the action noise (controllers lower it in phases that need precision)
    noise_scale = 1.0

    def __init__(self, config: Any):
        self.config = config
        self.diversity = float(getattr(config, "diversity", 1.0))
        self.layout = make_layout(TASKS[self.task])
        self.obs_dim = max(stop for _, stop in self.layout.values())
        self.n_arms = len(TASKS[self.task].robots)
        self.action_dim = 7 * self.n_arms
        self.reset(getattr(config, "seed", None))

    # ------------------------------------------------------------------ episode state
    def reset(self, seed: int | None = None) -> None:
        """Draw this episode's style and noise from ``seed`` and restart at the first phase."""
        self.rng = np.random.default_rng(seed)
        self.style = draw_style(self.rng, self.diversity)
        self.phase, self.phase_steps, self.wait = 0, 0, 0
        self.memory: dict[str, Any] = {}
        self.noise = np.zeros(self.action_dim)

    def next_phase(self, to: int | None = None) -> None:
        """Go to phase ``to`` (default: the next one) after this phase's pause."""
        self.wait = int(self.style.pauses[self.phase % len(self.style.pauses)])
        self.phase = self.phase + 1 if to is None else to
        self.phase_steps = 0

    # ------------------------------------------------------------------ observation
    def part(self, obs: np.ndarray, key: str) -> np.ndarray:
        start, stop = self.layout[key]
        return obs[start:stop]

    def arm(self, obs: np.ndarray, i: int = 0) -> Arm:
        grip = self.part(obs, f"robot{i}_gripper_qpos")
        return Arm(
            pos=self.part(obs, f"robot{i}_eef_pos").copy(),
            rot=quat_to_mat(self.part(obs, f"robot{i}_eef_quat")),
            opening=float(np.sum(np.abs(grip))),
        )

    # ------------------------------------------------------------------ actions
    def track(
        self,
        arm: Arm,
        target: np.ndarray,
        yaw: float,
        gripper: float,
        speed: float | None = None,
        base_rot: np.ndarray | None = None,
    ) -> np.ndarray:
        """(7,) action moving ``arm`` toward ``target`` (3,) [m] with a downward gripper of
        heading ``yaw`` [rad]; ``base_rot`` (3, 3): the robot base's rotation (deltas are
        in the base frame)."""
        s = self.style
        dpos = s.gain * (np.asarray(target) - arm.pos) / POS_SCALE
        limit = s.speed if speed is None else speed
        norm = float(np.linalg.norm(dpos))
        if norm > limit:
            dpos *= limit / norm
        drot = rotation_vector(rot_z(yaw) @ R_DOWN @ arm.rot.T) / ROT_SCALE
        drot = np.clip(1.5 * drot, -1.0, 1.0)
        if base_rot is not None:
            dpos, drot = base_rot.T @ dpos, base_rot.T @ drot
        return np.concatenate([dpos, drot, [gripper]])

    def act(self, obs: np.ndarray) -> np.ndarray:
        """obs: (obs_dim,) flat low-dim observation -> (action_dim,) action in [-1, 1]."""
        x = np.asarray(obs, dtype=np.float64)
        if x.shape != (self.obs_dim,):
            raise ValueError(f"{self.task} expects a ({self.obs_dim},) observation, got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("observation contains NaN/inf")
        if self.wait > 0:
            self.wait -= 1
            action = self.hold(x)
        else:
            action = self.actions(x)
            self.phase_steps += 1
        s = self.style
        step = self.rng.normal(0.0, 1.0, self.action_dim) * s.noise_std
        self.noise = s.noise_corr * self.noise + np.sqrt(1.0 - s.noise_corr**2) * step
        noisy = action + self.noise_scale * self.noise
        grippers = slice(6, None, 7)
        noisy[grippers] = action[grippers]
        return np.clip(noisy, -1.0, 1.0)

    def hold(self, obs: np.ndarray) -> np.ndarray:
        """Action while pausing: stay put, keep the gripper as it was."""
        action = np.zeros(self.action_dim)
        action[6::7] = self.memory.get("gripper", OPEN)
        return action

    def actions(self, obs: np.ndarray) -> np.ndarray:
        """(action_dim,) noise-free action of the current phase."""
        action = self.command(obs)
        self.memory["gripper"] = action[6]
        return action

    def command(self, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class PickController(RobomimicScriptedController):
    """Grasp an object from above: approach above, descend, close, lift, then
    :meth:`after_lift` (carry and place) . Subclasses give the grasp point and yaw."""

    #: height of the carrying path [m]
    carry_z = 1.0

    def grasp_pose(self, obs: np.ndarray, arm: Arm) -> tuple[np.ndarray, float]:
        """(grasp point (3,) [m], gripper yaw [rad])."""
        raise NotImplementedError

    def object_pos(self, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def command(self, obs: np.ndarray) -> np.ndarray:
        arm, s = self.arm(obs), self.style
        if self.phase <= 2:
            grasp, yaw = self.grasp_pose(obs, arm)
            grasp = grasp + s.grasp_offset
            self.memory["yaw"] = yaw
        yaw = self.memory["yaw"]
        if self.phase == 0:  # approach: hover above, or glide down while closing in
            far = float(np.linalg.norm(arm.pos[:2] - grasp[:2]))
            height = s.hover * (float(np.clip(far / 0.08, 0.0, 1.0)) if s.diagonal else 1.0)
            target = grasp + np.array([0.0, 0.0, height])
            if self._yaw_error(arm, yaw) < 0.15 and np.linalg.norm(arm.pos - target) < 0.012:
                self.next_phase(2 if s.diagonal and height < 0.005 else 1)
            return self.track(arm, target, yaw, OPEN)
        if self.phase == 1:  # descend
            if np.linalg.norm(arm.pos - grasp) < 0.008 or self.phase_steps > 60:
                self.next_phase()
            return self.track(arm, grasp, yaw, OPEN, speed=0.6 * s.speed)
        if self.phase == 2:  # close
            if self.phase_steps >= s.close_steps:
                self.memory["grasp_z"] = float(self.object_pos(obs)[2])
                self.next_phase()
            return self.track(arm, grasp, yaw, CLOSE, speed=0.2)
        if self.phase == 3:  # lift
            if arm.opening < 0.002:  # fingers shut on nothing: retry
                self.next_phase(0)
                return self.track(arm, arm.pos + np.array([0, 0, 0.05]), yaw, OPEN)
            target = np.array([*arm.pos[:2], self.carry_z + s.lift])
            if arm.pos[2] > self.carry_z + s.lift - 0.02:
                self.next_phase()
            return self.track(arm, target, yaw, CLOSE)
        return self.after_lift(obs, arm)

    def after_lift(self, obs: np.ndarray, arm: Arm) -> np.ndarray:
        return self.track(arm, arm.pos, self.memory["yaw"], CLOSE)

    def _yaw_error(self, arm: Arm, yaw: float) -> float:
        return float(np.linalg.norm(rotation_vector(rot_z(yaw) @ R_DOWN @ arm.rot.T)))


class LiftController(PickController):
    """Lift: grasp the cube from above (yaw aligned with a cube face) and lift it."""

    task = "Lift"
    carry_z = 0.95

    def object_pos(self, obs: np.ndarray) -> np.ndarray:
        return self.part(obs, "object")[0:3]

    def grasp_pose(self, obs: np.ndarray, arm: Arm) -> tuple[np.ndarray, float]:
        cube = self.part(obs, "object")
        yaw = yaw_of(quat_to_mat(cube[3:7])) + self.style.yaw_offset
        return cube[0:3].copy(), nearest_yaw(yaw, gripper_yaw(arm.rot), np.pi / 2)


class CanController(PickController):
    """Can: grasp the can from above, lift it over the bin walls, carry it (with a detour)
    over its compartment of the target bin, lower it, release and move up."""

    task = "Can"
    carry_z = 1.02

    def object_pos(self, obs: np.ndarray) -> np.ndarray:
        return self.part(obs, "object")[0:3]

    def grasp_pose(self, obs: np.ndarray, arm: Arm) -> tuple[np.ndarray, float]:
        can = self.part(obs, "object")[0:3].copy()
        yaw = self.memory.setdefault("yaw0", gripper_yaw(arm.rot) + self.style.yaw_offset)
        return can, yaw

    def after_lift(self, obs: np.ndarray, arm: Arm) -> np.ndarray:
        s, yaw = self.style, self.memory["yaw"]
        goal = np.array([*(CAN_TARGET_XY + s.place_offset), self.carry_z + s.lift])
        if self.phase == 4:  # carry via a detour point
            start = self.memory.setdefault("carry_start", arm.pos.copy())
            via = 0.5 * (start + goal) + s.via
            if np.linalg.norm(arm.pos[:2] - via[:2]) < 0.04:
                self.next_phase()
            return self.track(arm, via, yaw, CLOSE)
        if self.phase == 5:  # over the compartment (a held can sags ~3 cm below the target)
            if np.linalg.norm(arm.pos[:2] - goal[:2]) < 0.015 and arm.pos[2] > 0.97:
                self.next_phase()
            return self.track(arm, goal, yaw, CLOSE)
        if self.phase == 6:  # lower
            low = np.array([*goal[:2], 0.93])
            if arm.pos[2] < 0.945 or self.phase_steps > 40:
                self.next_phase()
            return self.track(arm, low, yaw, CLOSE, speed=0.5 * s.speed)
        if self.phase == 7:  # release
            if self.phase_steps >= 6:
                self.next_phase()
            return self.track(arm, arm.pos, yaw, OPEN, speed=0.1)
        return self.track(arm, np.array([*goal[:2], 1.1]), yaw, OPEN)  # move away


class SquareController(PickController):
    """Square: grasp the square nut by its handle, carry it over the square peg, lower it
    around the peg and release."""

    task = "Square"
    carry_z = 1.0

    def object_pos(self, obs: np.ndarray) -> np.ndarray:
        return self.part(obs, "object")[0:3]

    def nut(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        o = self.part(obs, "object")
        return o[0:3].copy(), quat_to_mat(o[3:7])

    def grasp_pose(self, obs: np.ndarray, arm: Arm) -> tuple[np.ndarray, float]:
        centre, R = self.nut(obs)
        handle = centre + R @ SQUARE_HANDLE
        yaw = yaw_of(R) + self.style.yaw_offset * 0.3
        return handle, nearest_yaw(yaw, gripper_yaw(arm.rot), np.pi)

    @staticmethod
    def nut_goal_yaw(nut_yaw: float) -> float:
        """Nut heading [rad] to insert with: a multiple of 90° (the peg's square) with the
        handle pointing sideways or toward the robot, the closest one to ``nut_yaw``."""
        options = [np.pi / 2, np.pi, -np.pi / 2]
        candidates = [nearest_yaw(o, nut_yaw, 2 * np.pi) for o in options]
        return float(min(candidates, key=lambda c: abs(c - nut_yaw)))

    def after_lift(self, obs: np.ndarray, arm: Arm) -> np.ndarray:
        s = self.style
        centre, R = self.nut(obs)
        # turn the gripper so that the nut's square hole lines up with the peg (90° symmetric)
        # and its handle does not point away from the robot (out of the Panda's reach)
        nut_yaw = yaw_of(R)
        goal_yaw = self.memory.setdefault("nut_goal_yaw", self.nut_goal_yaw(nut_yaw))
        yaw = gripper_yaw(arm.rot) + goal_yaw - nut_yaw
        offset = arm.pos - centre  # the eef goes where it puts the nut centre over the peg
        xy_error = float(np.linalg.norm(centre[:2] - SQUARE_PEG[:2]))
        aligned = abs(goal_yaw - nut_yaw) < 0.05
        if self.phase == 4:  # carry over the peg (nut centre above it)
            target = np.array([*SQUARE_PEG[:2], self.carry_z + s.lift - 0.04]) + offset
            target[2] = max(target[2], 0.97)
            if xy_error < 0.004 and aligned:
                self.next_phase()
            speed = s.speed if xy_error > 0.05 else 0.3
            return self.track(arm, target, yaw, CLOSE, speed=speed)
        if self.phase == 5:  # lower around the peg, re-centring when off
            z = 0.83 if xy_error < 0.006 else centre[2]
            target = np.array([*SQUARE_PEG[:2], z]) + offset
            if centre[2] < 0.86 or self.phase_steps > 80:
                self.next_phase()
            return self.track(arm, target, yaw, CLOSE, speed=0.3)
        if self.phase == 6:  # release
            if self.phase_steps >= 6:
                self.next_phase()
            return self.track(arm, arm.pos, yaw, OPEN, speed=0.1)
        return self.track(arm, arm.pos + np.array([0, 0, 0.05]), yaw, OPEN)


#: Robot bases of Transport (robosuite "opposed"): robot0 at y = -0.81 facing +y, robot1 at
#: y = +0.81 facing -y; OSC deltas are in these frames.
TRANSPORT_BASE_ROT = (rot_z(np.pi / 2), rot_z(-np.pi / 2))
#: Where robot0 puts the start bin's lid down: the free table corner on its side [m].
TRANSPORT_LID_DROP = np.array([-0.17, -0.45])
#: The hammer (payload) handle runs along its body z axis, the head at z = +0.116 m.
HAMMER_GRIPS = (-0.065, 0.06)
#: Hand-over point: handle centre, height [m]; the handle lies along world y there.
HANDOVER = np.array([0.0, 0.03, 0.97])


@dataclass
class Waypoint:
    """One step of an arm's script: move toward ``target(obs)`` (3,) [m] with gripper yaw
    ``yaw(obs)`` [rad] and ``gripper`` until within ``tol`` [m] (and ``until(obs)``), or for
    ``steps`` steps when given; ``speed`` caps the action (fraction of the style's)."""

    target: Any
    yaw: Any
    gripper: float
    tol: float = 0.015
    steps: int | None = None
    speed: float = 1.0
    until: Any = None
    timeout: int = 150
    retry: int | None = None
    """script step to go back to when the gripper shuts on nothing (a missed grasp), or
    when ``redo_if(obs)`` holds at the end of this waypoint"""
    redo_if: Any = None


class TransportController(RobomimicScriptedController):
    """Transport (two Pandas facing each other): robot0 lifts the lid off the start bin,
    puts it down aside, grasps the hammer by its handle and holds it out over the gap
    between the tables; meanwhile robot1 drops the trash cube from the target bin into the
    trash bin, then takes the hammer by the other end of its handle, robot0 lets go, and
    robot1 lays it into the target bin. Each arm follows its own list of
    :class:`Waypoint` s; the hand-over waits on the other arm."""

    task = "Transport"

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.scripts = (self.robot0_script(), self.robot1_script())
        self.steps = [0, 0]
        self.step_count = [0, 0]
        self.grip = [OPEN, OPEN]

    # -------------------------------------------------------------- scene from obs
    def obj(self, obs: np.ndarray, start: int, stop: int) -> np.ndarray:
        return self.part(obs, "object")[start:stop].copy()

    def hammer_axis(self, obs: np.ndarray) -> np.ndarray:
        """Unit vector (3,) from the handle centre toward the head (world)."""
        return quat_to_mat(self.obj(obs, 3, 7))[:, 2]

    def hammer_point(self, obs: np.ndarray, along: float) -> np.ndarray:
        return self.obj(obs, 0, 3) + along * self.hammer_axis(obs)

    def grips(self, obs: np.ndarray) -> tuple[float, float]:
        """(robot0's, robot1's) grip along the handle: robot1 takes the end toward +y."""
        if "grips" not in self.memory:
            head_to_plus_y = self.hammer_axis(obs)[1] > 0
            self.memory["grips"] = HAMMER_GRIPS if head_to_plus_y else HAMMER_GRIPS[::-1]
        return self.memory["grips"]

    def handle_yaw(self, obs: np.ndarray, arm: int) -> float:
        a = self.hammer_axis(obs)
        return nearest_yaw(float(np.arctan2(a[1], a[0])), self.arm_yaw(obs, arm), np.pi)

    def arm_yaw(self, obs: np.ndarray, arm: int) -> float:
        return gripper_yaw(self.arm(obs, arm).rot)

    # -------------------------------------------------------------- scripts
    def frozen(self, key: str, fn: Any) -> Any:
        """``fn(obs)`` evaluated at its first call, then kept (a waypoint that must not
        follow the arm, e.g. the lift above where the grasp happened)."""
        held = self.memory.setdefault("frozen", {})

        def value(obs: np.ndarray) -> Any:
            if key not in held:
                held[key] = fn(obs)
            return held[key]

        return value

    def above_bin(self, point: np.ndarray) -> np.ndarray:
        """The approach point above ``point`` (3,), clear of the bins' 0.15 m walls [m]."""
        return np.array([*point[:2], max(point[2] + self.style.hover, 1.0 + self.style.hover / 4)])

    def robot0_script(self) -> list[Waypoint]:
        s = self.style
        up = np.array([0.0, 0.0, 1.0])
        above_bin = self.above_bin

        def lifted(obs: np.ndarray, arm: int) -> np.ndarray:
            return np.array([*self.arm(obs, arm).pos[:2], 1.15])

        def lid(obs: np.ndarray) -> np.ndarray:
            return self.obj(obs, 14, 17)

        def lid_yaw(obs: np.ndarray) -> float:
            return nearest_yaw(np.pi / 2, self.arm_yaw(obs, 0), np.pi)

        def grip0(obs: np.ndarray) -> np.ndarray:
            return self.hammer_point(obs, self.grips(obs)[0]) + s.grasp_offset * [1, 1, 0]

        def yaw0(obs: np.ndarray) -> float:
            return self.handle_yaw(obs, 0)

        def handover0(obs: np.ndarray) -> np.ndarray:
            # put robot0's grip where the handle centre lands on HANDOVER (handle along y)
            return HANDOVER + np.array([0.0, -abs(self.grips(obs)[0]), 0.0])

        def handover_yaw(obs: np.ndarray) -> float:
            yaw = self.arm_yaw(obs, 0)
            a = self.hammer_axis(obs)
            return (
                yaw
                + nearest_yaw(np.pi / 2, float(np.arctan2(a[1], a[0])), np.pi)
                - float(np.arctan2(a[1], a[0]))
            )

        hold_yaw = self.frozen

        return [
            Waypoint(lambda o: lid(o) + up * s.hover, hold_yaw("lid", lid_yaw), OPEN),
            Waypoint(lambda o: lid(o) - up * 0.005, hold_yaw("lid", lid_yaw), OPEN, tol=0.008),
            Waypoint(lambda o: lid(o), hold_yaw("lid", lid_yaw), CLOSE, steps=s.close_steps),
            Waypoint(lambda o: [*self.arm(o, 0).pos[:2], 1.1], hold_yaw("lid", lid_yaw), CLOSE),
            Waypoint(lambda o: [*TRANSPORT_LID_DROP, 1.1], hold_yaw("lid", lid_yaw), CLOSE),
            Waypoint(lambda o: [*TRANSPORT_LID_DROP, 0.99], hold_yaw("lid", lid_yaw), CLOSE),
            Waypoint(lambda o: self.arm(o, 0).pos, hold_yaw("lid", lid_yaw), OPEN, steps=6),
            Waypoint(lambda o: [*TRANSPORT_LID_DROP, 1.08], hold_yaw("lid", lid_yaw), OPEN),
            Waypoint(lambda o: above_bin(grip0(o)), hold_yaw("h0", yaw0), OPEN),
            Waypoint(lambda o: grip0(o) - up * 0.003, hold_yaw("h0", yaw0), OPEN, tol=0.008),
            Waypoint(lambda o: grip0(o), hold_yaw("h0", yaw0), CLOSE, steps=s.close_steps),
            Waypoint(
                self.frozen("lift0", lambda o: lifted(o, 0)), hold_yaw("h0", yaw0), CLOSE, retry=8
            ),
            Waypoint(lambda o: handover0(o) + up * 0.08, handover_yaw, CLOSE, tol=0.03, speed=0.8),
            Waypoint(handover0, handover_yaw, CLOSE, tol=0.02, speed=0.5),
            Waypoint(handover0, handover_yaw, CLOSE, tol=1.0, until=lambda o: self.steps[1] >= 14),
            Waypoint(lambda o: self.arm(o, 0).pos, handover_yaw, OPEN, steps=8),
            Waypoint(lambda o: handover0(o) + up * 0.1, handover_yaw, OPEN, tol=0.02),
            Waypoint(lambda o: [0.0, -0.3, 1.1], handover_yaw, OPEN, tol=0.03),
            Waypoint(lambda o: [0.0, -0.3, 1.1], handover_yaw, OPEN, tol=1.0, timeout=10**6),
        ]

    def robot1_script(self) -> list[Waypoint]:
        s = self.style
        up = np.array([0.0, 0.0, 1.0])
        above_bin = self.above_bin

        def lifted(obs: np.ndarray, arm: int) -> np.ndarray:
            return np.array([*self.arm(obs, arm).pos[:2], 1.15])

        def trash(obs: np.ndarray) -> np.ndarray:
            return self.obj(obs, 7, 10)

        def trash_bin(obs: np.ndarray) -> np.ndarray:
            return self.obj(obs, 24, 27)

        def target_bin(obs: np.ndarray) -> np.ndarray:
            return self.obj(obs, 21, 24)

        def yaw1(obs: np.ndarray) -> float:
            return self.memory.setdefault("yaw1", self.arm_yaw(obs, 1))

        def keep(obs: np.ndarray) -> float:
            return self.arm_yaw(obs, 1)

        def trash_yaw(obs: np.ndarray) -> float:
            cube = yaw_of(quat_to_mat(self.obj(obs, 10, 14))) + s.yaw_offset
            return nearest_yaw(cube, self.arm_yaw(obs, 1), np.pi / 2)

        def grip1(obs: np.ndarray) -> np.ndarray:
            return self.hammer_point(obs, self.grips(obs)[1])

        def grip_yaw1(obs: np.ndarray) -> float:
            return self.handle_yaw(obs, 1)

        ready = lambda o: self.steps[0] >= 14  # noqa: E731 - robot0 holds the hammer out
        released = lambda o: self.steps[0] >= 17  # noqa: E731 - robot0 let go, moved up
        return [
            Waypoint(lambda o: above_bin(trash(o)), trash_yaw, OPEN),
            Waypoint(lambda o: trash(o) - up * 0.003, trash_yaw, OPEN, tol=0.008),
            Waypoint(lambda o: trash(o), trash_yaw, CLOSE, steps=s.close_steps),
            Waypoint(self.frozen("lift1", lambda o: lifted(o, 1)), keep, CLOSE, retry=0),
            Waypoint(lambda o: [*trash_bin(o)[:2] + s.place_offset, 1.05], keep, CLOSE),
            Waypoint(lambda o: [*trash_bin(o)[:2] + s.place_offset, 0.93], keep, CLOSE),
            Waypoint(lambda o: self.arm(o, 1).pos, yaw1, OPEN, steps=6),
            Waypoint(
                lambda o: [*trash_bin(o)[:2], 1.05],
                yaw1,
                OPEN,
                tol=0.03,
                retry=0,
                redo_if=lambda o: self.part(o, "object")[40] < 0.5,  # trash not in its bin
            ),
            Waypoint(lambda o: HANDOVER + [0.0, 0.12, 0.12], yaw1, OPEN, tol=0.03),
            Waypoint(lambda o: HANDOVER + [0.0, 0.12, 0.12], yaw1, OPEN, tol=1.0, until=ready),
            Waypoint(lambda o: grip1(o) + up * 0.06, grip_yaw1, OPEN, tol=0.01, speed=0.6),
            Waypoint(lambda o: grip1(o) - up * 0.003, grip_yaw1, OPEN, tol=0.008, speed=0.5),
            Waypoint(lambda o: grip1(o), grip_yaw1, CLOSE, steps=s.close_steps),
            Waypoint(lambda o: self.arm(o, 1).pos, grip_yaw1, CLOSE, steps=2),
            Waypoint(lambda o: self.arm(o, 1).pos, grip_yaw1, CLOSE, tol=1.0, until=released),
            Waypoint(self.frozen("lift2", lambda o: self.arm(o, 1).pos + up * 0.05), keep, CLOSE),
            Waypoint(lambda o: [*target_bin(o)[:2] + s.place_offset, 1.08], keep, CLOSE),
            Waypoint(lambda o: [*target_bin(o)[:2] + s.place_offset, 0.95], keep, CLOSE),
            Waypoint(lambda o: self.arm(o, 1).pos, yaw1, OPEN, steps=8),
            Waypoint(lambda o: [*target_bin(o)[:2], 1.1], yaw1, OPEN, tol=1.0, timeout=10**6),
        ]

    # -------------------------------------------------------------- actions
    def hold(self, obs: np.ndarray) -> np.ndarray:
        action = np.zeros(self.action_dim)
        action[6::7] = self.grip
        return action

    def actions(self, obs: np.ndarray) -> np.ndarray:
        return np.concatenate([self.arm_action(obs, i) for i in range(2)])

    def arm_action(self, obs: np.ndarray, i: int) -> np.ndarray:
        script = self.scripts[i]
        step = min(self.steps[i], len(script) - 1)
        w = script[step]
        arm = self.arm(obs, i)
        target = np.asarray(w.target(obs), dtype=float)
        yaw = float(w.yaw(obs))
        action = self.track(
            arm, target, yaw, w.gripper, self.style.speed * w.speed, TRANSPORT_BASE_ROT[i]
        )
        self.grip[i] = w.gripper
        self.step_count[i] += 1
        n = self.step_count[i]
        if w.retry is not None and w.redo_if is None and arm.opening < 0.002:
            self.steps[i], self.step_count[i] = w.retry, 0
            return action
        if w.steps is not None:
            done = n >= w.steps
        else:
            reached = np.linalg.norm(arm.pos - target) < w.tol
            done = (reached and (w.until is None or bool(w.until(obs)))) or n > w.timeout
        if done and w.redo_if is not None and w.retry is not None and w.redo_if(obs):
            self.steps[i], self.step_count[i] = w.retry, 0
        elif done and self.steps[i] < len(script) - 1:
            self.steps[i] += 1
            self.step_count[i] = 0
        return action


#: Tool Hang scene (robosuite 1.5 ToolHang), in the objects' body frames [m]. The stand's
#: base never moves; its square mount hole (1.0 cm inside, 15 cm deep) is at this offset
#: from the base position (``object`` 0-2).
TOOLHANG_HOLE = np.array([0.0, 0.045, 0.0])
#: Frame (body origin at the corner of the rod and the bar; +z along the rod, upward when
#: assembled; the bar runs along -x to the hook): grasp point on the grip, the tip of the
#: rod's cone, the bar's free end and the foot of the hook (its upright block, 1.2 cm tall
#: above the 0.75 cm thick bar) on the bar's centre line.
FRAME_GRIP = np.array([0.0, 0.0, -0.045])
FRAME_TIP = np.array([0.0, 0.0, -0.2207])
FRAME_BAR_END = np.array([-0.0912, 0.0, 0.0])
FRAME_HOOK = np.array([-0.0875, 0.0, 0.0])
#: Tool (ratcheting wrench, body x along the handle, z the holes' axis): centre of the hole
#: that must go onto the frame's bar (robosuite's ``tool_hole1_center``); the grip is at the
#: body origin.
TOOL_HOLE = np.array([-0.0935, 0.0, 0.0])


def rot_axis(axis: np.ndarray, angle: float) -> np.ndarray:
    """(3, 3) rotation by ``angle`` [rad] about unit ``axis`` (3,) (Rodrigues)."""
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])
    return np.eye(3) + np.sin(angle) * K + (1.0 - np.cos(angle)) * K @ K


class ToolHangController(RobomimicScriptedController):
    """Tool Hang: pick the frame by its grip from above, lift it and turn it upright (the
    gripper ends up horizontal), lower its tip into the stand's mount hole and push it
    down, release and back off; then pick the wrench by its grip, hold it flat with the
    hole over the frame's hook, lower the hole around the hook and tilt the wrench down
    over the bar's free end (like hanging a key ring), slide it onto the bar and let go.

    Held objects are steered by their observed pose (the target of the gripper is where it
    puts the object's point of interest on its goal), so slips in the grasp are corrected."""

    task = "ToolHang"
    lift_z = 1.17

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        # per-episode (besides the shared Style): the frame's heading once assembled and
        # the grasp height on its grip
        d = self.diversity
        self.frame_yaw = float(d * self.rng.uniform(-1.0, 1.0) * 0.2)
        self.grip_shift = float(d * self.rng.uniform(-1.0, 1.0) * 0.008)
        # the horizon (700 steps) leaves no room for the slowest of the shared styles
        self.style.speed = float(np.clip(self.style.speed + 0.2, 0.3, 1.0))
        self.style.pauses = self.style.pauses // 2

    # ------------------------------------------------------------------ scene
    def pose(self, obs: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray]:
        o = self.part(obs, "object")
        return o[start : start + 3].copy(), quat_to_mat(o[start + 3 : start + 7])

    def frame(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.pose(obs, 14)

    def tool(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.pose(obs, 28)

    def hole(self, obs: np.ndarray) -> np.ndarray:
        return self.part(obs, "object")[0:3] + TOOLHANG_HOLE

    def frame_goal_rot(self) -> np.ndarray:
        """Frame orientation (3, 3) when assembled: rod up, bar pointing away from the
        robot (+x), turned by this episode's ``frame_yaw``; the gripper holding it then
        points sideways (-y). Pointing it forward ends at a wrist limit, and with the bar
        toward the robot the wrench cannot be hung without the hand hitting the arm."""
        return rot_z(np.pi + self.frame_yaw)

    # ------------------------------------------------------------------ control
    def track_pose(
        self,
        arm: Arm,
        target: np.ndarray,
        R: np.ndarray,
        gripper: float,
        speed: float = 1.0,
        rot_speed: float = 1.0,
    ) -> np.ndarray:
        """(7,) action moving the gripper toward position ``target`` (3,) [m] and rotation
        ``R`` (3, 3); ``speed``/``rot_speed`` cap the position / rotation action."""
        s = self.style
        dpos = s.gain * (np.asarray(target) - arm.pos) / POS_SCALE
        limit = s.speed * speed
        norm = float(np.linalg.norm(dpos))
        if norm > limit:
            dpos *= limit / norm
        drot = 1.5 * rotation_vector(R @ arm.rot.T) / ROT_SCALE
        norm = float(np.linalg.norm(drot))
        if norm > rot_speed:
            drot *= rot_speed / norm
        return np.concatenate([dpos, drot, [gripper]])

    @staticmethod
    def carry_target(
        arm: Arm,
        obj: tuple[np.ndarray, np.ndarray],
        point: np.ndarray,
        goal: np.ndarray,
        R_goal: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gripper pose (position (3,), rotation (3, 3)) that puts the held object's body
        point ``point`` at ``goal`` with orientation ``R_goal``, the grasp as it is now."""
        p, R = obj
        rel_p, rel_R = R.T @ (arm.pos - p), R.T @ arm.rot
        origin = goal - R_goal @ point
        return origin + R_goal @ rel_p, R_goal @ rel_R

    def down_yaw_rot(self, axis_xy: np.ndarray, arm: Arm) -> np.ndarray:
        """Downward gripper whose fingers close along the horizontal ``axis_xy`` (2,), of the
        two such headings the one nearer to the Panda's neutral heading (yaw 0)."""
        yaw = float(np.arctan2(axis_xy[0], -axis_xy[1]))
        return rot_z(nearest_yaw(yaw, 0.0, np.pi)) @ R_DOWN

    def command(self, obs: np.ndarray) -> np.ndarray:
        arm = self.arm(obs)
        # little noise where millimetres count (insertion, threading the hole on the hook)
        self.noise_scale = 0.15 if self.phase in (5, 6, 13, 14, 15, 16, 17) else 1.0
        if self.phase < 8:
            return self.frame_phase(obs, arm)
        return self.tool_phase(obs, arm)

    def done_when(self, cond: bool, timeout: int = 200) -> None:
        """Next phase when ``cond`` holds or after ``timeout`` steps in this one."""
        if cond or self.phase_steps > timeout:
            self.next_phase()

    def frame_phase(self, obs: np.ndarray, arm: Arm) -> np.ndarray:
        s, m = self.style, self.memory
        p, R = self.frame(obs)
        up = np.array([0.0, 0.0, 1.0])
        if self.phase <= 2:
            grasp = p + R @ (FRAME_GRIP + [0.0, 0.0, self.grip_shift]) + [0, 0, 0.004]
            # fingers across the grip (along the frame's x axis)
            m["R"] = Rg = self.down_yaw_rot((R @ [1.0, 0.0, 0.0])[:2], arm)
        if self.phase == 0:  # above the grip
            target = grasp + up * s.hover
            self.done_when(np.linalg.norm(arm.pos - target) < 0.01)
            return self.track_pose(arm, target, Rg, OPEN)
        if self.phase == 1:  # descend
            self.done_when(np.linalg.norm(arm.pos - grasp) < 0.006, 60)
            return self.track_pose(arm, grasp, Rg, OPEN, speed=0.5)
        if self.phase == 2:  # close
            self.done_when(self.phase_steps >= s.close_steps + 4)
            return self.track_pose(arm, grasp, Rg, CLOSE, speed=0.2)
        if self.phase == 3:  # lift
            if arm.opening < 0.002:
                self.next_phase(0)
            m["R_frame"] = m["R"]
            target = m.setdefault("lift", np.array([*arm.pos[:2], self.lift_z]))
            self.done_when(arm.pos[2] > self.lift_z - 0.02)
            return self.track_pose(arm, target, m["R"], CLOSE)
        Rf = self.frame_goal_rot()
        hole = self.hole(obs)
        tip = p + R @ FRAME_TIP
        if self.phase == 4 and not m.get("upright"):  # turn upright, up where it was lifted
            _, Rt = self.carry_target(arm, (p, R), FRAME_GRIP, p + R @ FRAME_GRIP, Rf)
            target = m["lift"]
            m["upright"] = float(np.linalg.norm(rotation_vector(Rf @ R.T))) < 0.1
            return self.track_pose(arm, target, Rt, CLOSE, speed=0.5, rot_speed=0.6)
        if self.phase == 4:  # move over the stand
            goal = np.array([*hole[:2], hole[2] + 0.2])
            target, Rt = self.carry_target(arm, (p, R), FRAME_TIP, goal, Rf)
            err = float(np.linalg.norm(rotation_vector(Rf @ R.T)))
            self.done_when(err < 0.05 and np.linalg.norm(tip - goal) < 0.01, 150)
            return self.track_pose(arm, target, Rt, CLOSE, speed=0.8, rot_speed=0.5)
        if self.phase == 5:  # tip right above the hole
            goal = hole + [0.0, 0.0, 0.17]
            target, Rt = self.carry_target(arm, (p, R), FRAME_TIP, goal, Rf)
            self.done_when(np.linalg.norm(tip - goal) < 0.003, 80)
            return self.track_pose(arm, target, Rt, CLOSE, speed=0.3, rot_speed=0.3)
        if self.phase == 6:  # insert: down, re-centring on the hole
            xy_err = float(np.linalg.norm(tip[:2] - hole[:2]))
            z = hole[2] + 0.008 if xy_err < 0.002 else tip[2]
            goal = np.array([*hole[:2], z])
            target, Rt = self.carry_target(arm, (p, R), FRAME_TIP, goal, Rf)
            # jammed (no progress for a while once inside): pull up a little and push again,
            # at most three times, then let go (the frame often drops in by itself)
            best = m.get("best_z", np.inf)
            if tip[2] < best - 0.002:
                m["best_z"], m["best_step"] = tip[2], self.phase_steps
            stalled = self.phase_steps - m.get("best_step", 0) > 12
            if stalled and tip[2] < hole[2] + 0.13:
                m["retries"] = m.get("retries", 0) + 1
                m["pull_until"] = self.phase_steps + 5
                m["best_z"], m["best_step"] = np.inf, self.phase_steps + 5
            if self.phase_steps < m.get("pull_until", -1):
                goal = np.array([*hole[:2], tip[2] + 0.015])
                target, Rt = self.carry_target(arm, (p, R), FRAME_TIP, goal, Rf)
            done = tip[2] < hole[2] + 0.018 or m.get("retries", 0) > 3
            self.done_when(done and self.phase_steps >= m.get("pull_until", -1), 200)
            return self.track_pose(arm, target, Rt, CLOSE, speed=0.25, rot_speed=0.3)
        # phase 7: release, back off along the gripper's axis, then up
        if self.phase_steps <= 8:
            return self.track_pose(arm, arm.pos, arm.rot, OPEN, speed=0.1)
        back = m.setdefault("back", arm.pos - 0.1 * arm.rot[:, 2])
        self.done_when(np.linalg.norm(arm.pos - back) < 0.03, 30)
        return self.track_pose(arm, back, arm.rot, OPEN)

    def tool_phase(self, obs: np.ndarray, arm: Arm) -> np.ndarray:
        s, m = self.style, self.memory
        p, R = self.tool(obs)
        fp, fR = self.frame(obs)
        up = np.array([0.0, 0.0, 1.0])
        if self.phase == 8 and not m.get("unwound"):  # turn the gripper down again, up high
            target = m.setdefault("unwind_at", arm.pos + np.array([0.0, -0.05, 0.1]))
            err = float(np.linalg.norm(rotation_vector(m["R_frame"] @ arm.rot.T)))
            m["unwound"] = err < 0.15 and np.linalg.norm(arm.pos - target) < 0.03
            return self.track_pose(arm, target, m["R_frame"], OPEN, rot_speed=0.8)
        if self.phase == 8:  # up and over the tool
            target = np.array([*p[:2], self.lift_z - 0.1])
            Rg = self.down_yaw_rot((R @ [0.0, 1.0, 0.0])[:2], arm)
            m["R"] = Rg
            self.done_when(np.linalg.norm(arm.pos - target) < 0.02)
            return self.track_pose(arm, target, Rg, OPEN, rot_speed=0.6)
        if self.phase <= 11:
            grasp = p + [0.0, 0.0, 0.004]
            Rg = m["R"] = self.down_yaw_rot((R @ [0.0, 1.0, 0.0])[:2], arm)
        if self.phase == 9:  # descend onto the grip
            self.done_when(np.linalg.norm(arm.pos - grasp) < 0.008, 80)
            return self.track_pose(arm, grasp, Rg, OPEN, speed=0.8)
        if self.phase == 10:  # close
            self.done_when(self.phase_steps >= s.close_steps + 4)
            return self.track_pose(arm, grasp, Rg, CLOSE, speed=0.2)
        if self.phase == 11:  # lift
            if arm.opening < 0.002:
                self.next_phase(8)
            target = m.setdefault("lift2", np.array([*arm.pos[:2], self.lift_z - 0.05]))
            self.done_when(arm.pos[2] > self.lift_z - 0.07)
            return self.track_pose(arm, target, Rg, CLOSE)
        # the bar in the world: u from the free end toward the rod, v up (the frame's z)
        u = fR @ np.array([1.0, 0.0, 0.0])
        v = fR @ np.array([0.0, 0.0, 1.0])
        w = np.cross(u, v)
        hole = p + R @ TOOL_HOLE
        # flat wrench, handle sideways (along w) from the hole: the tilt below is then a
        # roll about the handle, which the fingers (closing along u) hold without slipping
        R_flat = np.column_stack([w, u, v])
        hook = fp + fR @ FRAME_HOOK

        def tilted(angle: float) -> np.ndarray:
            return rot_axis(w, angle) @ R_flat  # rod side of the ring up

        def at(du: float, dv: float) -> np.ndarray:
            return hook + du * u + dv * v

        plan = {  # phase: (ring centre goal, tilt [rad], tolerance [m], speed, timeout)
            12: (at(-0.01, 0.06), 0.0, 0.01, 1.0, 120),
            13: (at(0.0, 0.03), 0.0, 0.003, 0.25, 60),
            14: (at(0.0, 0.011), 0.0, 0.002, 0.15, 60),
            15: (at(0.001, 0.010), np.deg2rad(35), 0.002, 0.1, 60),
            16: (at(0.007, -0.002), np.deg2rad(50), 0.003, 0.1, 30),
            17: (at(0.014, -0.004), np.deg2rad(55), 0.004, 0.1, 40),
        }
        if self.phase in plan:
            goal, angle, tol, speed, timeout = plan[self.phase]
            Rt_goal = tilted(angle)
            target, Rt = self.carry_target(arm, (p, R), TOOL_HOLE, goal, Rt_goal)
            rot_err = float(np.linalg.norm(rotation_vector(Rt_goal @ R.T)))
            self.done_when(np.linalg.norm(hole - goal) < tol and rot_err < 0.08, timeout)
            rot_speed = 0.8 if self.phase == 12 else 0.3
            return self.track_pose(arm, target, Rt, CLOSE, speed=speed, rot_speed=rot_speed)
        if self.phase == 18:  # let go
            self.done_when(self.phase_steps >= 8)
            return self.track_pose(arm, arm.pos, arm.rot, OPEN, speed=0.1)
        back = m.setdefault("back2", arm.pos - 0.1 * arm.rot[:, 2] - 0.03 * up)
        return self.track_pose(arm, back, arm.rot, OPEN, speed=0.5)
