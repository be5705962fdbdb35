"""3-DOF arm reaching random Cartesian targets under torque control (MuJoCo)."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ampczoo.envs.actions import checked_reset_options, clip_box_action
from ampczoo.robots.threedof import (
    ACTUATOR_LIMIT,
    EE_SITE,
    LOWER,
    NOMINAL_WORKSPACE,
    OOD_AXIS_HALF_ANGLE,
    OOD_INNER,
    OOD_OUTER,
    SHOULDER_HEIGHT,
    SUCCESS_POS,
    SUCCESS_VEL,
    TORQUE_LIMIT,
    UPPER,
    VELOCITY_BOUND,
    check_vector3,
    load_mujoco_spec,
    sample_in_workspace,
    scale_dynamics,
)

#: MuJoCo integration step [s].
PHYSICS_TIMESTEP = 0.002
#: Bound of the target position in the observation [m].
TARGET_BOUND = 1.0
TARGET_REGIONS = ("nominal", "ood")
RESET_OPTIONS = frozenset({"q0", "qd0", "target_pos"})
#: Margin [rad] kept from the joint limits when sampling the initial configuration.
Q0_MARGIN = 0.1
#: Target candidates tried (each validated by IK convergence) before giving up.
MAX_TARGET_TRIES = 100


class ThreeDOFReachEnv(gym.Env):
    """Drive the end effector of a 3-DOF arm (yaw + two pitch joints, ``robots/threedof.xml``)
    to a random reachable 3D target with joint torques; gravity acts and is compensated by
    the env's actuation, so the action is the *corrective* torque (the paper's set-up).

    Registered as ``ThreeDOF-Reach-v0`` (200 steps of 0.02 s = 4 s).

    **Action** ``Box(-τ_max, τ_max, (3,), float64)``, τ_max = (6, 10, 4) N m
    (``robots.threedof.TORQUE_LIMIT``): corrective torques of ``joint1`` … ``joint3``.
    NaN/inf or a shape other than (3,) raise ``ValueError``; finite values outside the bounds
    are clipped and counted in ``info["action_clipped"]``.

    **Actuation**: every 2 ms physics step the motors receive τ + τ_g(q), where τ_g(q) is
    the gravity torque of the *simulated* model (MuJoCo ``qfrc_bias`` at zero velocity, so it
    stays exact under dynamics randomisation). Motor ranges (6, 22, 8) N m leave headroom for
    τ_g, so the total is never clipped in practice (``info["actuator_saturated"]`` counts the
    physics steps where it was). ``gravity_compensation=False`` sends τ alone.

    **Observation** ``Box`` float64 (9,):

    =====  ============================================  =====  ==================
    index  quantity                                      unit   bounds
    =====  ============================================  =====  ==================
    0 – 2  q, ``joint1`` (yaw), ``joint2``, ``joint3``   rad    joint limits
    3 – 5  q̇                                             rad/s  ±50 (clipped)
    6 – 8  target end-effector position p_des (world)    m      ±1
    =====  ============================================  =====  ==================

    The history of states is added by :class:`ampczoo.wrappers.HistoryObservation`.

    **Reward** ``= reward_pos + reward_ctrl``: ``reward_pos = -||p_EE - p_des||`` [m] and
    ``reward_ctrl = -ctrl_weight · ||τ||²`` (ctrl_weight 1e-3 per N² m²); both in ``info``.

    **Info**: ``pos_error`` [m], ``ee_pos`` (3,) [m], ``joint_speed`` ||q̇|| [rad/s],
    ``success`` (pos_error < ``success_pos`` = 0.02 m and joint_speed < ``success_vel`` =
    0.1 rad/s by default), ``reward_pos``,
    ``reward_ctrl``, ``gravity_torque`` (3,) [N m] applied at the last physics step; steps add
    ``action_clipped`` and ``actuator_saturated``. Reset adds ``dynamics_scale`` (the mass,
    length and inertia factors (3, 3) of this episode).

    **Episode end**: truncated after ``episode_seconds`` (4 s); terminated on success only
    with ``terminate_on_success=True`` (data collection runs "until success or T_max").

    **Contacts** are disabled (the floor is drawn only): links may pass through each other
    and the floor, e.g. from a start configuration pointing down; targets stay >= 5 cm above
    the floor.

    **Reset**: q0 uniform within the joint limits (0.1 rad margin), q̇0 = 0; the target is
    drawn from the ``target_region`` ("nominal": 0.20–0.55 m from the shoulder, elevation
    −0.9…1.3 rad, any azimuth, ≥ 5 cm above the floor; "ood": near full stretch (0.56–0.63 m),
    near the folded inner boundary (0.10–0.19 m) or within 0.12 rad of the vertical through
    the base, one of the three at random) and kept only if damped least-squares IK on the
    nominal model converges (``ampczoo.robots.threedof_ik``). Deterministic under ``seed``.
    ``options``: ``q0`` (3,), ``qd0`` (3,), ``target_pos`` (3,); bad values (non-finite,
    wrong shape, outside the joint limits, target not reachable by IK) raise ``ValueError``.

    **Dynamics randomisation** ``randomize_dynamics=f`` (0 = off): at every reset each
    link's mass, length and inertia are scaled by independent factors U(1 − f, 1 + f)
    (at most f = 0.25); the model is rebuilt from the MJCF spec. Targets are still validated
    on the nominal kinematics.

    **Rendering**: ``"rgb_array"`` ((height, width, 3) uint8, offscreen) or ``"human"``, as
    the KUKA envs (:mod:`ampczoo.envs.rendering`); the target p_des is a red sphere (off with
    ``env.unwrapped.render_target = False``); ``env.unwrapped.set_render_path(points)`` adds
    a predicted end-effector path (K, 3) [m] in yellow (cleared by ``reset``).

    Args:
        control_dt: control period [s], a multiple of 0.002.
        episode_seconds: T_max [s].
        gravity_compensation: add τ_g(q) to the commanded torque.
        randomize_dynamics: f in [0, 0.25], see above.
        target_region: "nominal" or "ood".
        terminate_on_success: end the episode (terminated=True) at the first success.
        success_pos, success_vel: the success region δ: position error [m], joint speed
        [rad/s].
        ctrl_weight: reward weight of ||τ||² (>= 0).
        render_mode, width, height: as the KUKA envs.

    Exposed state (``env.unwrapped``): ``q``, ``qd`` (3,), ``target_pos`` (3,), ``ee_pos()``,
    ``gravity_torque(q)``, ``control_dt``, ``model`` / ``data`` (MuJoCo).

    Version history:
        v0: initial release.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 50}

    def __init__(
        self,
        control_dt: float = 0.02,
        episode_seconds: float = 4.0,
        gravity_compensation: bool = True,
        randomize_dynamics: float = 0.0,
        target_region: str = "nominal",
        terminate_on_success: bool = False,
        success_pos: float = SUCCESS_POS,
        success_vel: float = SUCCESS_VEL,
        ctrl_weight: float = 1e-3,
        render_mode: str | None = None,
        width: int = 640,
        height: int = 480,
    ):
        _validate_kwargs(
            control_dt,
            episode_seconds,
            randomize_dynamics,
            target_region,
            ctrl_weight,
            render_mode,
            width,
            height,
        )
        for name, v in (("success_pos", success_pos), ("success_vel", success_vel)):
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        self.success_pos, self.success_vel = float(success_pos), float(success_vel)
        self.control_dt, self.episode_seconds = float(control_dt), float(episode_seconds)
        self.n_substeps = round(self.control_dt / PHYSICS_TIMESTEP)
        self.max_steps = max(1, round(self.episode_seconds / self.control_dt))
        self.gravity_compensation = bool(gravity_compensation)
        self.randomize_dynamics = float(randomize_dynamics)
        self.target_region, self.terminate_on_success = target_region, terminate_on_success
        self.ctrl_weight = float(ctrl_weight)
        self.render_mode, self.width, self.height = render_mode, int(width), int(height)
        self.metadata = {**self.metadata, "render_fps": 1.0 / self.control_dt}
        self.action_space = spaces.Box(-TORQUE_LIMIT, TORQUE_LIMIT, dtype=np.float64)
        low = np.concatenate([LOWER, np.full(3, -VELOCITY_BOUND), np.full(3, -TARGET_BOUND)])
        high = np.concatenate([UPPER, np.full(3, VELOCITY_BOUND), np.full(3, TARGET_BOUND)])
        self.observation_space = spaces.Box(low, high, dtype=np.float64)
        self._ik: Any = None
        self._renderer: Any = None
        #: draw the target p_des (red sphere) into rendered frames
        self.render_target = True
        self._render_path: np.ndarray | None = None
        self._scale = np.ones((3, 3))
        self._build_model(self._scale)
        self._target = np.zeros(3)
        self._steps, self._started = 0, False
        self._tau_g = np.zeros(3)
        if render_mode == "rgb_array":
            from ampczoo.envs.rendering import configure_mujoco_gl

            configure_mujoco_gl()

    # ------------------------------------------------------------------ state
    @property
    def q(self) -> np.ndarray:
        """Joint positions (3,) [rad] (a copy)."""
        return self.data.qpos.copy()

    @property
    def qd(self) -> np.ndarray:
        """Joint velocities (3,) [rad/s] (a copy)."""
        return self.data.qvel.copy()

    @property
    def target_pos(self) -> np.ndarray:
        """Target end-effector position (3,) [m] (a copy)."""
        return self._target.copy()

    def ee_pos(self) -> np.ndarray:
        """End-effector position (3,) [m] of the simulated (possibly randomised) model."""
        return self.data.site(EE_SITE).xpos.copy()

    def gravity_torque(self, q: np.ndarray) -> np.ndarray:
        """τ_g(q) (3,) [N m] of the simulated model: the joint torque that holds q still."""
        import mujoco

        g = self._gdata
        g.qpos[:] = q
        g.qvel[:] = 0.0
        mujoco.mj_fwdPosition(self.model, g)
        mujoco.mj_fwdVelocity(self.model, g)
        return g.qfrc_bias.copy()

    # ------------------------------------------------------------------ gym API
    def reset(
        self,
        *,
        seed: int | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Sample (or take from ``options``) the start state and the target."""
        super().reset(seed=seed)
        options = checked_reset_options(options, RESET_OPTIONS)
        q0 = (
            _check_q(options["q0"])
            if options.get("q0") is not None
            else self.np_random.uniform(LOWER + Q0_MARGIN, UPPER - Q0_MARGIN)
        )
        qd0 = (
            check_vector3(options["qd0"], "qd0") if options.get("qd0") is not None else np.zeros(3)
        )
        target = (
            self._check_target(options["target_pos"])
            if options.get("target_pos") is not None
            else self._sample_target()
        )
        if self.randomize_dynamics > 0:
            f = self.randomize_dynamics
            self._build_model(self.np_random.uniform(1 - f, 1 + f, size=(3, 3)))
        import mujoco

        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:], self.data.qvel[:] = q0, qd0
        self._target = target
        self.data.mocap_pos[0] = target
        mujoco.mj_forward(self.model, self.data)
        self._tau_g = self.gravity_torque(q0) if self.gravity_compensation else np.zeros(3)
        self._steps, self._started = 0, True
        self._render_path = None
        info = self._get_info(np.zeros(3))
        info["dynamics_scale"] = self._scale.copy()
        if self.render_mode == "human":
            self.render()
        return self._get_obs(), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply corrective torque ``action`` (3,) [N m] (+ τ_g) for ``control_dt`` seconds."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        tau, n_clipped = self._check_action(action)
        saturated = self._simulate(tau)
        self._steps += 1
        info = self._get_info(tau)
        info["action_clipped"], info["actuator_saturated"] = n_clipped, saturated
        reward = info["reward_pos"] + info["reward_ctrl"]
        terminated = bool(self.terminate_on_success and info["success"])
        truncated = self._steps >= self.max_steps
        if self.render_mode == "human":
            self.render()
        return self._get_obs(), float(reward), terminated, truncated, info

    # gymnasium annotates Env.render with an unbound TypeVar (RenderFrame): a stub bug
    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """(height, width, 3) uint8 for ``"rgb_array"``; draws the window for ``"human"``."""
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; pass render_mode to make()")
            return None
        if self._renderer is None:
            from ampczoo.envs.rendering import MujocoRenderer

            self._renderer = MujocoRenderer(
                self.model, self.data, self.render_mode, self.width, self.height
            )
            self._renderer.camera.lookat[:] = (0.0, 0.0, SHOULDER_HEIGHT)
            self._renderer.camera.distance = 1.8
        return self._renderer.render(self._render_markers())

    def set_render_path(self, points: Any) -> None:
        """Draw ``points`` (K, 3) [m] (e.g. end-effector positions predicted from a policy's
        planned torque sequence) as a yellow path in rendered frames until the next call;
        None clears it. Rendering only. Non-finite points or another shape raise ValueError."""
        from ampczoo.envs.rendering import check_path

        self._render_path = check_path(points)

    def _render_markers(self) -> list[Any]:
        from ampczoo.envs.rendering import path_markers, target_point_markers

        markers = []
        if self.render_target and self._started:
            markers += target_point_markers(self._target)
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
    def _build_model(self, scale: np.ndarray) -> None:
        """(Re)compile the MuJoCo model with per-link (mass, length, inertia) factors
        ``scale`` (3 links, 3 factors)."""
        import mujoco

        spec = load_mujoco_spec()
        spec.option.timestep = PHYSICS_TIMESTEP
        spec.visual.global_.offwidth = max(self.width, 640)
        spec.visual.global_.offheight = max(self.height, 480)
        if not np.all(scale == 1.0):
            scale_dynamics(spec, scale[:, 0], scale[:, 1], scale[:, 2])
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self._gdata = mujoco.MjData(self.model)
        self._scale = np.asarray(scale, float).copy()
        if self._renderer is not None:  # the renderer holds the old model
            self._renderer.close()
            self._renderer = None

    def _simulate(self, tau: np.ndarray) -> int:
        """Integrate ``control_dt``; returns the number of physics steps whose total torque
        hit a motor range."""
        import mujoco

        saturated = 0
        for _ in range(self.n_substeps):
            if self.gravity_compensation:
                self._tau_g = self.gravity_torque(self.data.qpos)
            total = tau + self._tau_g
            saturated += int(np.any(np.abs(total) > ACTUATOR_LIMIT))
            self.data.ctrl[:] = np.clip(total, -ACTUATOR_LIMIT, ACTUATOR_LIMIT)
            mujoco.mj_step(self.model, self.data)
        return saturated

    def _check_action(self, action: Any) -> tuple[np.ndarray, int]:
        """(torque clipped to ±TORQUE_LIMIT, number of clipped components); ValueError for a
        non-numeric, mis-shaped or non-finite action (the state is not touched)."""
        assert isinstance(self.action_space, spaces.Box)
        return clip_box_action(action, self.action_space)

    def _ik_solver(self) -> Any:
        if self._ik is None:
            from ampczoo.robots.threedof_ik import DampedLeastSquaresIK

            self._ik = DampedLeastSquaresIK()
        return self._ik

    def _reachable(self, p: np.ndarray) -> bool:
        seed = np.array([math.atan2(p[1], p[0]), 0.3, 0.6])
        return self._ik_solver().solve(p, seed).converged

    def _check_target(self, p: Any) -> np.ndarray:
        p = check_vector3(p, "target_pos")
        if np.any(np.abs(p) > TARGET_BOUND) or not self._reachable(p):
            raise ValueError(f"target_pos {p} is not reachable (IK did not converge)")
        return p

    def _sample_target(self) -> np.ndarray:
        rng = self.np_random
        for _ in range(MAX_TARGET_TRIES):
            if self.target_region == "nominal":
                p = sample_in_workspace(rng, NOMINAL_WORKSPACE)
            else:
                p = _sample_ood(rng)
            if self._reachable(p):
                return p
        raise RuntimeError("no reachable target found (IK never converged)")

    def _get_obs(self) -> np.ndarray:
        qd = np.clip(self.data.qvel, -VELOCITY_BOUND, VELOCITY_BOUND)
        return np.concatenate([self.data.qpos, qd, self._target]).astype(np.float64)

    def _get_info(self, tau: np.ndarray) -> dict[str, Any]:
        ee = self.ee_pos()
        err = float(np.linalg.norm(ee - self._target))
        speed = float(np.linalg.norm(self.data.qvel))
        return {
            "pos_error": err,
            "ee_pos": ee,
            "joint_speed": speed,
            "success": bool(err < self.success_pos and speed < self.success_vel),
            "reward_pos": -err,
            "reward_ctrl": -self.ctrl_weight * float(tau @ tau),
            "gravity_torque": self._tau_g.copy(),
        }


def _sample_ood(rng: np.random.Generator) -> np.ndarray:
    """A target of one of the three OOD regions (chosen uniformly)."""
    kind = rng.integers(3)
    if kind == 0:
        return sample_in_workspace(rng, OOD_OUTER)
    if kind == 1:
        return sample_in_workspace(rng, OOD_INNER)
    r = rng.uniform(0.2, 0.55)
    tilt, az = rng.uniform(0.0, OOD_AXIS_HALF_ANGLE), rng.uniform(-np.pi, np.pi)
    return np.array(
        [
            r * np.sin(tilt) * np.cos(az),
            r * np.sin(tilt) * np.sin(az),
            SHOULDER_HEIGHT + r * np.cos(tilt),
        ]
    )


def _check_q(q: Any) -> np.ndarray:
    q = check_vector3(q, "q0")
    if np.any(q < LOWER) or np.any(q > UPPER):
        raise ValueError(f"q0 {q} is outside the joint limits {LOWER} .. {UPPER}")
    return q


def _validate_kwargs(
    control_dt: Any,
    episode_seconds: Any,
    randomize: Any,
    region: Any,
    ctrl_weight: Any,
    render_mode: Any,
    width: Any,
    height: Any,
) -> None:
    """Raise ValueError on a bad constructor argument."""
    for name, v in (("control_dt", control_dt), ("episode_seconds", episode_seconds)):
        if isinstance(v, bool) or not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive finite number [s], got {v!r}")
    n_sub = control_dt / PHYSICS_TIMESTEP
    if round(n_sub) < 1 or abs(n_sub - round(n_sub)) > 1e-6:
        raise ValueError(f"control_dt must be a multiple of {PHYSICS_TIMESTEP} s")
    if episode_seconds < control_dt:
        raise ValueError("episode_seconds must be at least one control_dt")
    if not (isinstance(randomize, int | float) and 0.0 <= randomize <= 0.25):
        raise ValueError(f"randomize_dynamics must be in [0, 0.25], got {randomize!r}")
    if region not in TARGET_REGIONS:
        raise ValueError(f"target_region must be one of {TARGET_REGIONS}, got {region!r}")
    if not (
        isinstance(ctrl_weight, int | float) and math.isfinite(ctrl_weight) and ctrl_weight >= 0
    ):
        raise ValueError(f"ctrl_weight must be a finite number >= 0, got {ctrl_weight!r}")
    if render_mode not in (None, *ThreeDOFReachEnv.metadata["render_modes"]):
        raise ValueError(f"render_mode must be None, 'rgb_array' or 'human', got {render_mode!r}")
    for name, v in (("width", width), ("height", height)):
        if isinstance(v, bool) or not (isinstance(v, int) and 16 <= v <= 4096):
            raise ValueError(f"{name} must be an int in [16, 4096] px, got {v!r}")
