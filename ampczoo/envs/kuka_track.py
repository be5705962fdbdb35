"""KUKA LBR iiwa 14 end-effector pose tracking with joint-velocity control (DAMPC paper task)."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ampczoo.envs.actions import checked_reset_options, clip_box_action
from ampczoo.robots import kuka
from ampczoo.robots.kinematics import SerialChain, geodesic_angle
from ampczoo.robots.kuka import (
    FLOOR_Z,
    SUCCESS_POS,
    SUCCESS_ROT,
    VELOCITY_LIMIT,
    Obstacle,
    batch_collision_free,
    kuka_chain,
    kuka_collision_model,
    make_observation,
    obstacle_penetration,
    self_collision_gaps,
)

#: MuJoCo integration step of the "physics" simulation [s].
PHYSICS_TIMESTEP = 0.002
#: Velocity-actuator gain of the "physics" simulation [N m s/rad]: 1000 gives a velocity time
#: constant below 10 ms on every joint (200, build_mujoco_spec's default, lags ~40 ms on joint 2).
PHYSICS_KV = 1000.0
#: Bound of every position in the observation (robot reach is 1.31 m) [m].
POS_BOUND = 2.0
#: Candidates drawn per rejection-sampling round and the maximum number of rounds.
SAMPLE_BATCH = 64
MAX_SAMPLE_ROUNDS = 200
SIMULATIONS = ("kinematic", "physics")
#: ``obstacle_placement`` values: the paper's fixed sphere, or one centred on the segment
#: between the start and target end-effector positions (drawn per reset).
OBSTACLE_PLACEMENTS = ("fixed", "between")
#: "between": the centre is at fraction U(0.4, 0.6) of the start -> target segment; both ends
#: must be more than radius + BETWEEN_CLEARANCE [m] from it (room for the hand's spheres).
BETWEEN_FRACTION, BETWEEN_CLEARANCE = (0.4, 0.6), 0.12
OBS_MODES = ("flat", "dict")
RESET_OPTIONS = frozenset({"q0", "target_q", "target_pos", "target_rot"})


class KukaTrackEnv(gym.Env):
    """Track a 6-DoF end-effector pose with the 7-joint KUKA LBR iiwa 14 by commanding joint
    velocities, optionally around a spherical obstacle (the DAMPC paper's two data sets).

    Registered as ``DAMPC-KukaTrack-v0`` (self-collision only) and
    ``DAMPC-KukaTrackObstacle-v0`` (``obstacle=True``: sphere of radius 0.2 m centred at
    (0.55, 0, 0.45) m). Kinematics come from the shipped URDF (``ampczoo/robots``); the
    end effector is frame ``iiwa_link_ee`` (MuJoCo site ``ee``).

    **Action** ``Box(-2.3, 2.3, (7,), float64)``: joint velocity commands [rad/s] for
    ``iiwa_joint_1`` … ``iiwa_joint_7`` (2.3 rad/s is the KUKA safety-stop limit). An action
    whose shape is not (7,) or that contains NaN/inf raises ``ValueError``; finite components
    outside the bounds are clipped to them, and ``info["action_clipped"]`` counts the clipped
    components of the step (``info["action_clipped_total"]`` over the episode).

    **Observation** (``obs_mode="flat"``): ``Box`` float64 of shape (16,), or (20,) with the
    obstacle, laid out as :func:`ampczoo.robots.kuka.make_observation`:

    ========  ==========================================  ======  =======================
    index     quantity                                    unit    bounds
    ========  ==========================================  ======  =======================
    0 – 6     q, joints ``iiwa_joint_1`` … ``_7``          rad     URDF joint limits
    7 – 9     target end-effector position (world)        m       ±2
    10 – 15   target rotation, 6D (columns 1, 2 of R)     –       ±1
    16 – 18   obstacle centre (obstacle variant)          m       ±2
    19        obstacle radius (obstacle variant)          m       [0, 1]
    ========  ==========================================  ======  =======================

    ``obs_mode="dict"``: ``Dict`` with keys ``q`` (7,), ``target_pos`` (3,), ``target_rot6d``
    (6,) and, with the obstacle, ``obstacle_centre`` (3,), ``obstacle_radius`` (1,); same
    units and bounds.

    **Reward** ``= reward_pos + reward_rot`` with ``reward_pos = -pos_weight * pos_error``
    (1.0 per metre) and ``reward_rot = -rot_weight * rot_error`` (0.1 per radian), where
    ``pos_error`` [m] is the Euclidean end-effector position error and ``rot_error`` [rad]
    the geodesic angle between target and end-effector rotations. Both terms are in ``info``.

    **Info** (at reset and every step): ``pos_error`` [m], ``rot_error`` [rad],
    ``penetration`` (deepest robot-sphere penetration into the obstacle as a fraction of its
    radius; 0.0 without obstacle), ``self_collision`` (bool, any self/floor clearance < 0),
    ``success`` (``pos_error < 0.020`` and ``rot_error < 5.7°``: ``SUCCESS_POS`` and
    ``SUCCESS_ROT`` of :mod:`ampczoo.robots.kuka`),
    ``reward_pos``, ``reward_rot``; steps add ``action_clipped`` and ``action_clipped_total``.

    **Episode end**: never terminated (``terminated`` is always False, also on success,
    collision or penetration: these are reported in ``info`` so that benchmarks measure them
    over the fixed horizon). Truncated after ``episode_seconds`` (5 s = 250 steps of 0.02 s):
    the registration sets ``max_episode_steps=250`` (standard ``TimeLimit``) for the default
    ``control_dt``, and the env itself reports ``truncated=True`` from step
    ``round(episode_seconds / control_dt)`` on, so a coarser ``control_dt`` (e.g. 0.1 s: 50
    steps) still gives 5 s episodes. For longer episodes pass both ``episode_seconds`` and
    ``max_episode_steps`` to ``gym.make`` (the latter alone does not lengthen the episode).
    Stepping past truncation is allowed (the state keeps integrating).

    **Reset**: ``q0`` uniform within the joint limits and target ``FK(q_rand)`` with
    ``q_rand`` uniform, both rejection-sampled (batches of candidates) until free of self/
    floor collision and, with the obstacle, outside it. Deterministic under ``seed``.
    ``options`` may fix the pair: ``{"q0": (7,), "target_q": (7,)}`` or ``{"target_pos":
    (3,), "target_rot": (3, 3)}``; invalid ones (non-finite, outside the joint limits,
    colliding, out of reach, inside the obstacle, not a rotation) raise ``ValueError``.

    **Obstacle placement** (``obstacle_placement``, obstacle variant): ``"fixed"`` (default, the
    paper's sphere) or ``"between"``: at every reset the sphere (same radius) is centred on the
    straight segment from the start to the target end-effector position, at a fraction
    ``U(0.4, 0.6)`` of its length (on the segment up to floating point: 1e-9 m), so that left
    and right detours are distinct solutions whose mean goes through the obstacle. Pairs are
    rejection-sampled until both ends are more than radius + 0.12 m from the centre and the
    start and target configurations are free of the obstacle (the target is reachable without
    contact); a pair given in ``options`` that violates this raises ``ValueError``. Kinematic
    simulation only (``"physics"`` with ``"between"``: ValueError).

    **Simulation**: ``"kinematic"`` (default, the paper's): ``q <- clip(q + control_dt * u,
    lower, upper)``. ``"physics"``: MuJoCo velocity actuators (gain 1000 N m s/rad) with
    gravity compensation, ``implicitfast`` integration at 0.002 s and
    ``control_dt / 0.002`` substeps per step; joints are hard-stopped at their limits.

    **Rendering**: ``"rgb_array"`` (offscreen ``mujoco.Renderer``, (height, width, 3) uint8)
    or ``"human"`` (``mujoco.viewer`` window; needs a display). The target pose is drawn as
    RGB arrows (its frame's x, y, z axes) around a white sphere (off with
    ``env.unwrapped.render_target = False``), the obstacle as a blue sphere;
    ``env.unwrapped.set_render_path(points)`` adds a predicted end-effector path (K, 3) [m]
    in yellow (cleared by ``reset`` or ``set_render_path(None)``). On construction with
    ``"rgb_array"``, ``MUJOCO_GL`` defaults to ``egl`` (GPU present) or ``osmesa`` unless set
    by the user or ``mujoco`` is already imported (see :mod:`ampczoo.envs.rendering`).

    Args:
        obstacle: add the spherical obstacle (observation grows to 20).
        obstacle_placement: ``"fixed"`` or ``"between"`` (see above; needs ``obstacle``).
        control_dt: control period [s] (multiple of 0.002 for ``"physics"``).
        simulation: ``"kinematic"`` or ``"physics"``.
        episode_seconds: episode length [s].
        render_mode: None, ``"rgb_array"`` or ``"human"``.
        width, height: image size [px] for rendering.
        obs_mode: ``"flat"`` or ``"dict"``.
        pos_weight: reward weight per metre of position error (>= 0).
        rot_weight: reward weight per radian of rotation error (>= 0).

    Exposed state (``env.unwrapped``): ``q`` (7,), ``target_pos`` (3,), ``target_rot``
    (3, 3), ``obstacle`` (:class:`Obstacle` | None), ``chain``, ``control_dt``,
    ``ee_pose() -> (pos (3,), R (3, 3))``.

    Version history:
        v0: initial release (DAMPC paper's KUKA tracking task, kinematic simulation default).
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 50}

    def __init__(
        self,
        obstacle: bool = False,
        control_dt: float = 0.02,
        simulation: str = "kinematic",
        episode_seconds: float = 5.0,
        render_mode: str | None = None,
        width: int = 640,
        height: int = 480,
        obs_mode: str = "flat",
        pos_weight: float = 1.0,
        rot_weight: float = 0.1,
        obstacle_placement: str = "fixed",
    ):
        _validate_placement(obstacle, obstacle_placement, simulation)
        _validate_kwargs(
            obstacle,
            control_dt,
            simulation,
            episode_seconds,
            render_mode,
            width,
            height,
            obs_mode,
            pos_weight,
            rot_weight,
        )
        self.obstacle: Obstacle | None = Obstacle() if obstacle else None
        self.obstacle_placement = obstacle_placement
        self.control_dt = float(control_dt)
        self.simulation, self.obs_mode, self.render_mode = simulation, obs_mode, render_mode
        self.episode_seconds = float(episode_seconds)
        self.max_steps = max(1, round(self.episode_seconds / self.control_dt))
        self.width, self.height = int(width), int(height)
        self.pos_weight, self.rot_weight = float(pos_weight), float(rot_weight)
        self.metadata = {**self.metadata, "render_fps": 1.0 / self.control_dt}
        self.chain = kuka_chain()
        self.collision_model = kuka_collision_model()
        self.action_space = spaces.Box(
            -VELOCITY_LIMIT, VELOCITY_LIMIT, (self.chain.nq,), np.float64
        )
        self.observation_space = self._make_observation_space()
        self._q: np.ndarray | None = None
        self._target_pos = np.zeros(3)
        self._target_rot = np.eye(3)
        self._steps = 0
        self._clipped_total = 0
        self._mj_model: Any = None
        self._mj_data: Any = None
        self._renderer: Any = None
        #: draw the target pose (RGB axes + sphere) into rendered frames
        self.render_target = True
        self._render_path: np.ndarray | None = None
        if render_mode == "rgb_array":
            from ampczoo.envs.rendering import configure_mujoco_gl

            configure_mujoco_gl()
        elif render_mode == "human":
            from ampczoo.envs.rendering import has_display

            if not has_display():
                raise RuntimeError(
                    "render_mode='human' needs a display (DISPLAY unset); "
                    "use render_mode='rgb_array' on headless machines"
                )
        if simulation == "physics":
            self._build_mujoco()

    # ------------------------------------------------------------------ spaces, state
    def _make_observation_space(self) -> spaces.Space:
        parts = {
            "q": spaces.Box(self.chain.lower, self.chain.upper, dtype=np.float64),
            "target_pos": spaces.Box(-POS_BOUND, POS_BOUND, (3,), np.float64),
            "target_rot6d": spaces.Box(-1.0, 1.0, (6,), np.float64),
        }
        if self.obstacle is not None:
            parts["obstacle_centre"] = spaces.Box(-POS_BOUND, POS_BOUND, (3,), np.float64)
            parts["obstacle_radius"] = spaces.Box(0.0, 1.0, (1,), np.float64)
        if self.obs_mode == "dict":
            return spaces.Dict(dict[str, spaces.Space[Any]](parts))
        low = np.concatenate([b.low for b in parts.values()])
        high = np.concatenate([b.high for b in parts.values()])
        return spaces.Box(low, high, dtype=np.float64)

    @property
    def q(self) -> np.ndarray:
        """Current joint positions (7,) [rad] (a copy)."""
        return self._require_q().copy()

    def _require_q(self) -> np.ndarray:
        """The joint positions (7,) [rad] (no copy); RuntimeError before the first reset."""
        if self._q is None:
            raise RuntimeError("call reset() first")
        return self._q

    @property
    def target_pos(self) -> np.ndarray:
        """Target end-effector position (3,) [m] (a copy)."""
        return self._target_pos.copy()

    @property
    def target_rot(self) -> np.ndarray:
        """Target end-effector rotation (3, 3), world frame (a copy)."""
        return self._target_rot.copy()

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Current end-effector position (3,) [m] and rotation (3, 3)."""
        return self.chain.ee_pose(self.q)

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Sample (or take from ``options``) a start configuration and a target pose."""
        super().reset(seed=seed)
        options = checked_reset_options(options, RESET_OPTIONS)
        if self.obstacle_placement == "between":
            q0, (self._target_pos, self._target_rot) = self._reset_between(options)
        else:
            q0, (self._target_pos, self._target_rot) = self._reset_pair(options)
        self._reset_rest(q0)
        return self._get_obs(), self._get_info()

    def _reset_pair(self, options: dict[str, Any]) -> tuple[np.ndarray, tuple[np.ndarray, Any]]:
        """Start configuration q0 (7,) [rad] and target pose, from ``options`` or sampled."""
        q0 = (
            self._check_q(options["q0"], "q0")
            if options.get("q0") is not None
            else self._sample_free_q()
        )
        return q0, self._target_from_options(options)

    def _reset_between(
        self, options: dict[str, Any]
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """A pair with the obstacle placed between start and target (``"between"``): pairs
        are redrawn until valid; a pair fixed by ``options`` that is not raises ValueError."""
        assert self.obstacle is not None
        radius = self.obstacle.radius
        fixed = any(options.get(k) is not None for k in RESET_OPTIONS)
        own_target = options.get("target_pos") is None and options.get("target_rot") is None
        for _ in range(MAX_SAMPLE_ROUNDS):
            self.obstacle = None  # sample the pair without the previous episode's sphere
            opts = dict(options)
            if own_target and opts.get("target_q") is None:
                opts["target_q"] = self._sample_free_q()
            q0, (pos, rot) = self._reset_pair(opts)
            start = self.chain.ee_pose(q0)[0]
            frac = self.np_random.uniform(*BETWEEN_FRACTION)
            self.obstacle = Obstacle(tuple(start + frac * (pos - start)), radius)
            qs = np.stack([q0, opts["target_q"]]) if own_target else q0[None]
            if self._between_valid(qs, start, pos):
                return q0, (pos, rot)
            if fixed:
                raise ValueError(
                    "the given start/target pair admits no obstacle between them: an end "
                    f"within {radius + BETWEEN_CLEARANCE:.2f} m of the centre or the start "
                    "configuration inside the obstacle"
                )
        raise RuntimeError("no start/target pair with the obstacle between them was found")

    def _between_valid(self, qs: np.ndarray, start: np.ndarray, pos: np.ndarray) -> bool:
        """Both segment ends at least radius + BETWEEN_CLEARANCE from the centre and the
        configurations qs (M, 7) (start, and the target's where known) free of the sphere."""
        assert self.obstacle is not None
        centre, min_d = np.asarray(self.obstacle.centre), self.obstacle.radius + BETWEEN_CLEARANCE
        ends_clear = min(np.linalg.norm(start - centre), np.linalg.norm(pos - centre)) > min_d
        free = batch_collision_free(qs, self.obstacle, self.collision_model).all()
        return bool(ends_clear and free)

    def _reset_rest(self, q0: np.ndarray) -> None:
        """Start the episode at q0 (7,) [rad]: counters, render path, MuJoCo state."""
        self._q = q0
        self._steps, self._clipped_total = 0, 0
        self._render_path = None
        if self.simulation == "physics":
            import mujoco

            mujoco.mj_resetData(self._mj_model, self._mj_data)  # zero velocity, ctrl and time
            self._mj_data.qpos[:] = q0
        if self.render_mode == "human":
            self.render()

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Apply joint-velocity command ``action`` (7,) [rad/s] for ``control_dt`` seconds."""
        if self._q is None:
            raise RuntimeError("call reset() before step()")
        u, n_clipped = self._check_action(action)
        if self.simulation == "physics":
            self._q = self._simulate(u)
        else:
            self._q = np.clip(self._q + self.control_dt * u, self.chain.lower, self.chain.upper)
        self._steps += 1
        self._clipped_total += n_clipped
        info = self._get_info()
        info["action_clipped"] = n_clipped
        info["action_clipped_total"] = self._clipped_total
        reward = info["reward_pos"] + info["reward_rot"]
        truncated = self._steps >= self.max_steps
        if self.render_mode == "human":
            self.render()
        return self._get_obs(), float(reward), False, truncated, info

    # gymnasium annotates Env.render with an unbound TypeVar (RenderFrame): a stub bug
    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """(height, width, 3) uint8 frame for ``"rgb_array"``; draws the window for
        ``"human"``; None (with a gymnasium warning) without a render mode."""
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; pass render_mode to make()")
            return None
        if self._q is None:
            raise RuntimeError("call reset() before render()")
        self._sync_mujoco_for_render()
        if self._renderer is None:
            from ampczoo.envs.rendering import MujocoRenderer

            self._renderer = MujocoRenderer(
                self._mj_model, self._mj_data, self.render_mode, self.width, self.height
            )
        return self._renderer.render(self._render_markers())

    def set_render_path(self, points: Any) -> None:
        """Draw ``points`` (K, 3) [m] (e.g. end-effector positions predicted from a chunk
        policy's planned sequence) as a yellow path in rendered frames until the next call;
        None clears it. Rendering only: the simulation is unaffected. Non-finite points or
        another shape raise ValueError."""
        from ampczoo.envs.rendering import check_path

        self._render_path = check_path(points)

    def _render_markers(self) -> list[Any]:
        from ampczoo.envs.rendering import path_markers, target_frame_markers

        markers = []
        if self.render_target:
            markers += target_frame_markers(self._target_pos, self._target_rot)
        if self._render_path is not None:
            markers += path_markers(self._render_path)
        return markers

    def close(self) -> None:
        """Free the renderer / viewer."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        super().close()

    # ------------------------------------------------------------------ internals
    def _check_action(self, action: Any) -> tuple[np.ndarray, int]:
        """(action clipped to the bounds, number of clipped components); ValueError for a
        non-numeric, mis-shaped or non-finite action (the state is not touched)."""
        assert isinstance(self.action_space, spaces.Box)
        return clip_box_action(action, self.action_space)

    def _check_q(self, q: Any, name: str) -> np.ndarray:
        """Validate a configuration from reset options: (7,), finite, within the joint limits,
        collision free and outside the obstacle."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (self.chain.nq,):
            raise ValueError(f"{name} must have shape ({self.chain.nq},), got {q.shape}")
        if not np.all(np.isfinite(q)):
            raise ValueError(f"{name} contains NaN/inf: {q}")
        if np.any(q < self.chain.lower) or np.any(q > self.chain.upper):
            raise ValueError(f"{name} is outside the joint limits: {q}")
        if not batch_collision_free(q[None], self.obstacle, self.collision_model)[0]:
            raise ValueError(f"{name} is in self/floor collision or inside the obstacle: {q}")
        return q.copy()

    def _sample_free_q(self) -> np.ndarray:
        """Uniform collision-free (and obstacle-free) configuration (7,) from ``np_random``."""
        for _ in range(MAX_SAMPLE_ROUNDS):
            qs = self.np_random.uniform(
                self.chain.lower, self.chain.upper, size=(SAMPLE_BATCH, self.chain.nq)
            )
            free = np.flatnonzero(batch_collision_free(qs, self.obstacle, self.collision_model))
            if free.size:
                return qs[free[0]]
        raise RuntimeError("no collision-free configuration found by rejection sampling")

    def _target_from_options(self, options: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        has_q = options.get("target_q") is not None
        has_pose = options.get("target_pos") is not None or options.get("target_rot") is not None
        if has_q and has_pose:
            raise ValueError("pass either target_q or target_pos + target_rot, not both")
        if has_pose:
            return self._check_target_pose(options.get("target_pos"), options.get("target_rot"))
        q = self._check_q(options["target_q"], "target_q") if has_q else self._sample_free_q()
        return self.chain.ee_pose(q)

    def _check_target_pose(self, pos: Any, rot: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validate an explicit target pose. Reachability is the necessary condition
        ``|pos - shoulder| <= arm length`` and ``pos`` above the floor, outside the obstacle."""
        if pos is None or rot is None:
            raise ValueError("target_pos and target_rot must be given together")
        pos, rot = np.asarray(pos, np.float64), np.asarray(rot, np.float64)
        if pos.shape != (3,) or rot.shape != (3, 3):
            raise ValueError(
                f"target_pos must be (3,), target_rot (3, 3); got {pos.shape}, {rot.shape}"
            )
        if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(rot))):
            raise ValueError("target pose contains NaN/inf")
        if not (np.allclose(rot.T @ rot, np.eye(3), atol=1e-6) and np.linalg.det(rot) > 0):
            raise ValueError("target_rot is not a rotation matrix")
        shoulder, reach = _reach_sphere(self.chain)
        if np.linalg.norm(pos - shoulder) > reach or pos[2] <= FLOOR_Z:
            raise ValueError(f"target_pos {pos} is out of reach")
        if self.obstacle is not None:
            if np.linalg.norm(pos - np.asarray(self.obstacle.centre)) <= self.obstacle.radius:
                raise ValueError(f"target_pos {pos} is inside the obstacle")
        return pos.copy(), rot.copy()

    def _get_obs(self) -> Any:
        flat = make_observation(
            self._require_q(), self._target_pos, self._target_rot, self.obstacle
        )
        rot6d = flat[kuka.OBS_TARGET_ROT6D]
        flat[kuka.OBS_TARGET_ROT6D] = np.clip(rot6d, -1.0, 1.0)  # guard round-off at +-1
        if self.obs_mode == "flat":
            return flat
        obs = {
            "q": flat[kuka.OBS_Q],
            "target_pos": flat[kuka.OBS_TARGET_POS],
            "target_rot6d": flat[kuka.OBS_TARGET_ROT6D],
        }
        if self.obstacle is not None:
            obs["obstacle_centre"] = flat[kuka.OBS_OBSTACLE_CENTRE]
            obs["obstacle_radius"] = flat[kuka.OBS_OBSTACLE_RADIUS]
        return obs

    def _get_info(self) -> dict[str, Any]:
        q = self._require_q()
        pos, R = self.chain.ee_pose(q)
        pos_error = float(np.linalg.norm(pos - self._target_pos))
        rot_error = geodesic_angle(self._target_rot, R)
        centres = self.chain.sphere_centres_np(q)
        penetration = (
            0.0
            if self.obstacle is None
            else obstacle_penetration(centres, self.obstacle, self.collision_model)
        )
        return {
            "pos_error": pos_error,
            "rot_error": rot_error,
            "penetration": penetration,
            "self_collision": bool(self_collision_gaps(centres, self.collision_model).min() < 0),
            "success": bool(pos_error < SUCCESS_POS and rot_error < SUCCESS_ROT),
            "reward_pos": -self.pos_weight * pos_error,
            "reward_rot": -self.rot_weight * rot_error,
        }

    # ------------------------------------------------------------------ MuJoCo
    def _build_mujoco(self) -> None:
        """Compile the MuJoCo model (velocity actuators in physics mode) and its data."""
        import mujoco

        from ampczoo.robots.kuka import build_mujoco_spec

        spec = build_mujoco_spec(
            self.obstacle, actuated=self.simulation == "physics", kv=PHYSICS_KV
        )
        spec.option.timestep = PHYSICS_TIMESTEP
        spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
        for body in spec.bodies:
            body.gravcomp = 1.0
        spec.visual.global_.offwidth = max(self.width, 640)
        spec.visual.global_.offheight = max(self.height, 480)
        self._mj_model = spec.compile()
        self._mj_data = mujoco.MjData(self._mj_model)
        self._target_mocap = self._mj_model.body("target").mocapid[0]

    def _simulate(self, u: np.ndarray) -> np.ndarray:
        """Integrate ``control_dt`` with velocity command ``u``; returns the new q (7,)."""
        import mujoco

        m, d = self._mj_model, self._mj_data
        d.ctrl[:] = u
        lo, hi = self.chain.lower, self.chain.upper
        for _ in range(round(self.control_dt / PHYSICS_TIMESTEP)):
            mujoco.mj_step(m, d)
            q = d.qpos
            stop = ((q < lo) & (d.qvel < 0)) | ((q > hi) & (d.qvel > 0))
            d.qvel[stop] = 0.0
            d.qpos[:] = np.clip(q, lo, hi)
        return d.qpos.copy()

    def _sync_mujoco_for_render(self) -> None:
        import mujoco

        from ampczoo.envs.rendering import rotation_to_quat

        if self._mj_model is None:
            self._build_mujoco()
        d = self._mj_data
        if self.obstacle is not None:  # "between" moves it every reset
            self._mj_model.geom("obstacle").pos[:] = self.obstacle.centre
        if self.simulation == "kinematic":
            d.qpos[:] = self._q
        d.mocap_pos[self._target_mocap] = self._target_pos
        d.mocap_quat[self._target_mocap] = rotation_to_quat(self._target_rot)
        mujoco.mj_forward(self._mj_model, d)


def _reach_sphere(chain: SerialChain) -> tuple[np.ndarray, float]:
    """Shoulder (joint-2 origin, (3,) [m]) and the largest shoulder-to-end-effector distance
    [m] (stretched arm, q = 0), with 1 mm slack."""
    _, ps = chain.batch_link_transforms(np.zeros((1, chain.nq)))
    shoulder = ps[0, 2]
    return shoulder, float(np.linalg.norm(chain.ee_pose(np.zeros(chain.nq))[0] - shoulder)) + 1e-3


def _validate_placement(obstacle: Any, placement: Any, simulation: Any) -> None:
    """ValueError on an undocumented ``obstacle_placement`` or one the env cannot honour."""
    if placement not in OBSTACLE_PLACEMENTS:
        raise ValueError(
            f"obstacle_placement must be one of {OBSTACLE_PLACEMENTS}, got {placement!r}"
        )
    if placement == "between" and not obstacle:
        raise ValueError("obstacle_placement='between' needs the obstacle (obstacle=True)")
    if placement == "between" and simulation == "physics":
        raise ValueError("obstacle_placement='between' supports simulation='kinematic' only")


def _validate_kwargs(
    obstacle: Any,
    control_dt: Any,
    simulation: Any,
    episode_seconds: Any,
    render_mode: Any,
    width: Any,
    height: Any,
    obs_mode: Any,
    pos_weight: Any,
    rot_weight: Any,
) -> None:
    """Raise ValueError on a bad constructor argument."""
    if not isinstance(obstacle, bool | np.bool_):
        raise ValueError(f"obstacle must be a bool, got {obstacle!r}")
    if simulation not in SIMULATIONS:
        raise ValueError(f"simulation must be one of {SIMULATIONS}, got {simulation!r}")
    if obs_mode not in OBS_MODES:
        raise ValueError(f"obs_mode must be one of {OBS_MODES}, got {obs_mode!r}")
    if render_mode not in (None, *KukaTrackEnv.metadata["render_modes"]):
        raise ValueError(f"render_mode must be None, 'rgb_array' or 'human', got {render_mode!r}")
    for name, v in (("control_dt", control_dt), ("episode_seconds", episode_seconds)):
        if isinstance(v, bool) or not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive finite number [s], got {v!r}")
    if episode_seconds < control_dt:
        raise ValueError("episode_seconds must be at least one control_dt")
    n_sub = control_dt / PHYSICS_TIMESTEP
    if simulation == "physics" and (round(n_sub) < 1 or abs(n_sub - round(n_sub)) > 1e-6):
        raise ValueError(f"control_dt must be a multiple of {PHYSICS_TIMESTEP} s for physics")
    for name, v in (("width", width), ("height", height)):
        if isinstance(v, bool) or not (isinstance(v, int) and 16 <= v <= 4096):
            raise ValueError(f"{name} must be an int in [16, 4096] px, got {v!r}")
    for name, v in (("pos_weight", pos_weight), ("rot_weight", rot_weight)):
        if isinstance(v, bool) or not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
