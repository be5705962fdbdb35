"""robomimic's five simulated tasks on robosuite 1.5 (Lift, Can, Square, Tool Hang, Transport)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ampczoo.envs.actions import checked_reset_options, clip_box_action

#: robomimic's OSC_POSE settings (its datasets' ``env_args``; robosuite 1.5's Panda default):
#: a 6-D action in [-1, 1] scales to a pose change of at most 0.05 m / 0.5 rad per step.
ROBOMIMIC_OSC_POSE: dict[str, Any] = {
    "type": "OSC_POSE",
    "input_max": 1,
    "input_min": -1,
    "output_max": [0.05, 0.05, 0.05, 0.5, 0.5, 0.5],
    "output_min": [-0.05, -0.05, -0.05, -0.5, -0.5, -0.5],
    "kp": 150,
    "damping_ratio": 1,
    "impedance_mode": "fixed",
    "kp_limits": [0, 300],
    "damping_ratio_limits": [0, 10],
    "position_limits": None,
    "orientation_limits": None,
    "uncouple_pos_ori": True,
    "input_type": "delta",
    "input_ref_frame": "base",
    "interpolation": None,
    "ramp_ratio": 0.2,
    "gripper": {"type": "GRIP"},
}
#: Control frequency [Hz] of every task (one step = 0.05 s).
CONTROL_FREQ = 20
OBS_MODES = ("low_dim", "dict", "image")
#: Seed of numpy's global generator while robosuite builds the model (draws made then, such as
#: Lift's cube size, are the same in every instance).
MODEL_SEED = 0
RESET_OPTIONS = frozenset({"sim_state"})
#: robomimic's low-dim keys of one arm, in robomimic's order after "object".
ARM_KEYS = ("eef_pos", "eef_quat", "gripper_qpos")
ARM_KEY_SIZES = {"eef_pos": 3, "eef_quat": 4, "gripper_qpos": 2}


def _object_sensors(name: str, eef: str = "robot0_eef") -> tuple[str, ...]:
    """robosuite ≤ 1.4's four sensors of one object (robomimic's order): world position,
    quaternion, position and quaternion in the gripper frame."""
    return (f"{name}_pos", f"{name}_quat", f"{name}_to_{eef}_pos", f"{name}_to_{eef}_quat")


@dataclass(frozen=True)
class RobomimicTask:
    """One robomimic task: its robosuite env and robomimic's evaluation settings."""

    env_name: str
    """robosuite environment class name"""
    horizon: int
    """robomimic's rollout horizon (its DATASET_REGISTRY, proficient-human datasets) [steps]"""
    object_sensors: tuple[str, ...]
    """robosuite observables making robomimic's "object" vector, in robomimic's order"""
    robots: tuple[str, ...] = ("Panda",)
    """robosuite robot names"""
    cameras: tuple[str, ...] = ("agentview", "robot0_eye_in_hand")
    """cameras of ``obs_mode="image"`` (keys ``<camera>_image``)"""
    extra_kwargs: dict[str, Any] = field(default_factory=dict)
    """further robosuite.make keywords (Transport: the two-arm setup)"""
    negated_sensors: tuple[str, ...] = ()
    """sensors whose sign robosuite 1.5 flipped against robomimic's data (Lift's gripper-to-
    cube vector: robosuite 1.5 gives cube - eef, robomimic's files eef - cube)"""


#: task name (the registered ``task`` keyword) -> settings. The "object" vectors follow
#: robomimic's datasets (robosuite ≤ 1.4.1): robosuite 1.5 reorders its "object-state".
TASKS: dict[str, RobomimicTask] = {
    "Lift": RobomimicTask(
        "Lift",
        400,
        ("cube_pos", "cube_quat", "gripper_to_cube_pos"),
        negated_sensors=("gripper_to_cube_pos",),
    ),
    "Can": RobomimicTask("PickPlaceCan", 400, _object_sensors("Can")),
    "Square": RobomimicTask("NutAssemblySquare", 400, _object_sensors("SquareNut")),
    "ToolHang": RobomimicTask(
        "ToolHang",
        700,
        (
            *_object_sensors("base"),
            *_object_sensors("frame"),
            *_object_sensors("tool"),
            "frame_is_assembled",
            "tool_on_frame",
        ),
    ),
    "Transport": RobomimicTask(
        "TwoArmTransport",
        700,
        (
            "payload_pos",
            "payload_quat",
            "trash_pos",
            "trash_quat",
            "lid_handle_pos",
            "lid_handle_quat",
            "target_bin_pos",
            "trash_bin_pos",
            "gripper0_to_payload",
            "gripper0_to_lid_handle",
            "gripper1_to_payload",
            "gripper1_to_trash",
            "payload_in_target_bin",
            "trash_in_trash_bin",
        ),
        robots=("Panda", "Panda"),
        cameras=("agentview", "robot0_eye_in_hand", "robot1_eye_in_hand"),
        extra_kwargs={"env_configuration": "opposed"},
    ),
}
#: The 0/1 flags among the object observables (one entry each).
FLAG_SENSORS = frozenset(
    {"frame_is_assembled", "tool_on_frame", "payload_in_target_bin", "trash_in_trash_bin"}
)


def sensor_size(name: str) -> int:
    """Entries of robosuite observable ``name``: 4 (quaternions), 1 (flags), else 3."""
    if name.endswith("quat"):
        return 4
    return 1 if name in FLAG_SENSORS else 3


def import_robosuite() -> Any:
    """``robosuite``, with the offscreen GL backend chosen first; ImportError naming the extra
    when it is missing."""
    from ampczoo.envs.rendering import configure_mujoco_gl

    configure_mujoco_gl()  # robosuite picks EGL at import unless MUJOCO_GL is set
    try:
        import robosuite
    except ImportError as exc:
        raise ImportError(
            "the Robomimic-* envs need robosuite 1.5: pip install 'ampczoo[robosuite]'"
        ) from exc
    return robosuite


#: Bound of every position, relative vector and finger position in the observation [m] (the
#: scene spans ~2 m; quaternions are bounded by 1, flags lie in [0, 1]).
POS_BOUND = 10.0


def sensor_bounds(name: str) -> tuple[float, float]:
    """(low, high) of every entry of observable / arm key ``name``."""
    if name.endswith("quat"):
        return -1.0, 1.0
    if name in FLAG_SENSORS:
        return 0.0, 1.0
    return -POS_BOUND, POS_BOUND


def low_dim_bounds(task: RobomimicTask) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) arrays of the flat low-dim vector of ``task``, entry by entry."""
    names = [(n, sensor_size(n)) for n in task.object_sensors]
    names += [(k, ARM_KEY_SIZES[k.split("_", 1)[1]]) for k in low_dim_keys(task)[1:]]
    low = np.concatenate([np.full(size, sensor_bounds(n)[0]) for n, size in names])
    high = np.concatenate([np.full(size, sensor_bounds(n)[1]) for n, size in names])
    return low, high


def low_dim_keys(task: RobomimicTask) -> list[str]:
    """robomimic's low-dim observation keys of ``task`` in robomimic's order: "object", then
    per arm ``robot<i>_eef_pos``, ``robot<i>_eef_quat``, ``robot<i>_gripper_qpos``."""
    arms = [f"robot{i}_{k}" for i in range(len(task.robots)) for k in ARM_KEYS]
    return ["object", *arms]


def make_layout(task: RobomimicTask) -> dict[str, tuple[int, int]]:
    """robomimic key -> (start, stop) into the flat low-dim vector of ``task``."""
    layout, start = {}, 0
    for key in low_dim_keys(task):
        if key == "object":
            size = sum(sensor_size(name) for name in task.object_sensors)
        else:
            size = ARM_KEY_SIZES[key.split("_", 1)[1]]
        layout[key] = (start, start + size)
        start += size
    return layout


def quaternion_starts(task: RobomimicTask) -> tuple[int, ...]:
    """Start index of every (x, y, z, w) quaternion in the flat low-dim vector of ``task``
    (object sensors named ``*quat``, each arm's ``eef_quat``), in order."""
    starts, start = [], 0
    for name in task.object_sensors:
        if sensor_size(name) == 4:
            starts.append(start)
        start += sensor_size(name)
    layout = make_layout(task)
    starts += [a for key, (a, _) in layout.items() if key.endswith("_quat")]
    return tuple(sorted(starts))


@contextmanager
def global_numpy_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global generator (robosuite's placement samplers and initial-joint noise
    draw from it) inside the block; its previous state is restored afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


class RobomimicEnv(gym.Env):
    """robomimic's simulated benchmark tasks (Mandlekar et al. 2021) on robosuite 1.5, with
    robomimic's controller, control rate, observation keys and rollout horizons.

    ==========================  =======================  ===========  =======  ==========
    id                          robosuite env            robots       horizon  obs (low)
    ==========================  =======================  ===========  =======  ==========
    ``Robomimic-Lift-v0``       ``Lift``                 Panda        400      19
    ``Robomimic-Can-v0``        ``PickPlaceCan``         Panda        400      23
    ``Robomimic-Square-v0``     ``NutAssemblySquare``    Panda        400      23
    ``Robomimic-ToolHang-v0``   ``ToolHang``             Panda        700      53
    ``Robomimic-Transport-v0``  ``TwoArmTransport``      2 × Panda    700      59
    ==========================  =======================  ===========  =======  ==========

    The variants are the ``task`` keyword (``"Lift"``, ``"Can"``, ``"Square"``,
    ``"ToolHang"``, ``"Transport"``); the horizon is the registration's
    ``max_episode_steps`` (robomimic's DATASET_REGISTRY horizons for its proficient-human
    datasets; Gymnasium's ``TimeLimit`` truncates). Transport's two Pandas face each other
    across the table (robosuite ``env_configuration="opposed"``, robomimic's setup).

    **Control**: robosuite's OSC_POSE with robomimic's settings (:data:`ROBOMIMIC_OSC_POSE`:
    kp 150, damping ratio 1, deltas in the robot base frame, position and orientation
    uncoupled, ramp ratio 0.2) at 20 Hz (one step = 0.05 s of simulated time, 25 physics
    steps of 2 ms); ``lite_physics=False`` as for robomimic's v1.4.1 datasets.

    **Action** ``Box(-1, 1, (7,), float64)`` per arm (Transport: (14,), robot0's 7 then
    robot1's 7):

    =====  ==============================================================  ===============
    index  meaning                                                         scale at ±1
    =====  ==============================================================  ===============
    0 – 2  end-effector position change x, y, z (robot base frame)         ±0.05 m / step
    3 – 5  end-effector rotation change, axis-angle (robot base frame)     ±0.5 rad / step
    6      gripper: -1 open, +1 close (robosuite GRIP)                     –
    =====  ==============================================================  ===============

    Components outside [-1, 1] are clipped; an action that is not (7,) / (14,) numbers or
    holds NaN/inf raises ``ValueError`` before anything is simulated.

    **Observation** ``obs_mode="low_dim"`` (default): float64 vector of robomimic's low-dim
    keys in robomimic's order (``env.unwrapped.obs_layout``: key -> (start, stop)); all
    positions in the world frame [m], quaternions (x, y, z, w) as robosuite gives them:

    ===========  ========================  ==================================================
    index        key                       meaning
    ===========  ========================  ==================================================
    0 – d-1      ``object``                the task's object state (below), d = object dim
    d – d+2      ``robot0_eef_pos``        end-effector (grip site) position [m]
    d+3 – d+6    ``robot0_eef_quat``       end-effector orientation, quaternion (x, y, z, w)
    d+7 – d+8    ``robot0_gripper_qpos``   finger joint positions [m] (≈ ±0.04 open, 0 shut)
    d+9 – d+17   ``robot1_*``              Transport only: the same three keys for robot1
    ===========  ========================  ==================================================

    ``object`` per task (robosuite's "object-state"; "to_eef" entries are the object's pose
    in the gripper frame, "gripper_to_X" the vector from gripper to X [m]):

    * Lift (d = 10): 0–2 cube position, 3–6 cube quaternion, 7–9 gripper minus cube position.
    * Can (d = 14): 0–2 can position, 3–6 can quaternion, 7–9 can position and 10–13 can
      quaternion relative to the end effector.
    * Square (d = 14): the same for the square nut (position = nut centre, not handle).
    * ToolHang (d = 44): base (0–2 pos, 3–6 quat, 7–9 / 10–13 relative to the eef), frame
      (14–27, same layout), tool (28–41, same layout), 42 frame-is-assembled flag,
      43 tool-on-frame flag.
    * Transport (d = 41): 0–2 payload position, 3–6 payload quaternion, 7–9 trash position,
      10–13 trash quaternion, 14–16 lid-handle position, 17–20 lid-handle quaternion, 21–23
      target-bin position, 24–26 trash-bin position, 27–29 gripper0-to-payload, 30–32
      gripper0-to-lid-handle, 33–35 gripper1-to-payload, 36–38 gripper1-to-trash, 39
      payload-in-target-bin flag, 40 trash-in-trash-bin flag.

    ``obs_mode="dict"``: ``Dict`` of the same keys (float64 arrays; ``object`` (d,)).
    ``obs_mode="image"``: the dict plus ``<camera>_image`` uint8 (image_size, image_size, 3)
    per camera (``agentview`` and ``robot0_eye_in_hand``; Transport adds
    ``robot1_eye_in_hand``), upright (robomimic flips robosuite's bottom-up frames too),
    rendered offscreen (``MUJOCO_GL=osmesa`` or ``egl`` on headless machines).

    **Reward**: robosuite's sparse reward: 1.0 on a step whose state passes the success check,
    else 0.0 (``reward_shaping=False``).

    **Success** (``info["success"]``, robosuite's ``_check_success()``, at reset and every
    step): Lift: cube more than 0.04 m above the table; Can: can centre inside its
    compartment of the target bin (x 0.1–0.295 m, y 0.28–0.525 m, below 0.9 m) and the
    gripper more than ~0.042 m from it; Square: nut centre within 0.03 m of the square peg in
    x and y and below 0.85 m; ToolHang: frame upright in the stand and the tool hanging on
    the frame hook, untouched by the gripper; Transport: hammer touching the target bin's
    floor and trash touching the trash bin's floor.

    **Episode end**: ``terminated`` on success when ``terminate_on_success`` (default, as in
    robomimic's and the papers' evaluation rollouts); truncated at the horizon by
    ``TimeLimit``. robosuite's own horizon is off (``ignore_done=True``).

    **Reset**: robosuite's placement samplers and initial joint noise (``hard_reset=False``:
    the model is kept, ~5 ms), drawn from a seed taken from the env's generator, so
    ``reset(seed=s)`` is deterministic and independent of history (numpy's global generator
    is seeded for the reset only and restored afterwards). ``options={"sim_state": s}``
    restores a flat MuJoCo state ``s`` as :meth:`get_sim_state` returns it and robomimic
    stores it in ``data/demo_i/states``.

    **Rendering**: ``render_mode="rgb_array"``: (height, width, 3) uint8 from
    ``render_camera`` (default ``agentview``).

    Exposed (``env.unwrapped``): ``suite_env`` (the robosuite env), ``obs_layout``,
    ``task``, :meth:`get_sim_state`, :meth:`env_args`.

    Args:
        task: one of :data:`TASKS`.
        obs_mode: ``"low_dim"``, ``"dict"`` or ``"image"``.
        terminate_on_success: end the episode on the first successful step.
        render_mode: None or ``"rgb_array"``.
        image_size: camera image side [px] of ``obs_mode="image"``.
        width, height: frame size of ``render()`` [px] (Gymnasium's MuJoCo names, as
            the other ampczoo envs).
        render_camera: camera of ``render()``.

    Version history:
        v0: initial release (robosuite 1.5.1).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_FREQ}

    def __init__(
        self,
        task: str = "Lift",
        obs_mode: str = "low_dim",
        terminate_on_success: bool = True,
        render_mode: str | None = None,
        image_size: int = 84,
        width: int = 256,
        height: int = 256,
        render_camera: str = "agentview",
    ):
        if task not in TASKS:
            raise ValueError(f"unknown robomimic task {task!r}; choose from {sorted(TASKS)}")
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {OBS_MODES}, got {obs_mode!r}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        for name, size in (
            ("image_size", image_size),
            ("width", width),
            ("height", height),
        ):
            if not (isinstance(size, int) and size > 0):
                raise ValueError(f"{name} must be a positive integer, got {size!r}")
        self.task, self.spec_task = task, TASKS[task]
        self.obs_mode, self.render_mode = obs_mode, render_mode
        self.terminate_on_success = bool(terminate_on_success)
        self.image_size, self.render_camera = image_size, render_camera
        self.width, self.height = width, height
        self.obs_layout = make_layout(self.spec_task)
        self._low, self._high = low_dim_bounds(self.spec_task)
        self._arm_keys = low_dim_keys(self.spec_task)[1:]
        self._env_kwargs = self._suite_kwargs()
        robosuite = import_robosuite()
        with global_numpy_seed(MODEL_SEED):  # e.g. Lift's cube size is drawn at build time
            self.suite_env = robosuite.make(self.spec_task.env_name, **self._env_kwargs)
        self.action_space: spaces.Box = spaces.Box(
            -1.0, 1.0, (self.suite_env.action_dim,), np.float64
        )
        self.observation_space = self._make_observation_space()
        self._raw: dict[str, Any] | None = None

    # ----------------------------------------------------------------- settings
    def _suite_kwargs(self) -> dict[str, Any]:
        task = self.spec_task
        images = self.obs_mode == "image"
        offscreen = images or self.render_mode == "rgb_array"
        kwargs: dict[str, Any] = {
            "robots": list(task.robots),
            "controller_configs": {
                "type": "BASIC",
                "body_parts": {"right": copy.deepcopy(ROBOMIMIC_OSC_POSE)},
            },
            "has_renderer": False,
            "has_offscreen_renderer": offscreen,
            "ignore_done": True,
            "use_object_obs": True,
            "use_camera_obs": images,
            "camera_names": list(task.cameras),
            "camera_heights": self.image_size,
            "camera_widths": self.image_size,
            "camera_depths": False,
            "reward_shaping": False,
            "control_freq": CONTROL_FREQ,
            "hard_reset": False,
            "lite_physics": False,
            **copy.deepcopy(task.extra_kwargs),
        }
        return kwargs

    def env_args(self) -> dict[str, Any]:
        """robomimic's ``env_args`` (``data`` attribute of its HDF5 files): ``{"env_name",
        "type": 1 (robosuite), "env_kwargs"}``, the keywords of ``robosuite.make``."""
        kwargs = copy.deepcopy(self._env_kwargs)
        return {"env_name": self.spec_task.env_name, "type": 1, "env_kwargs": kwargs}

    def _make_observation_space(self) -> spaces.Space:
        low, high = low_dim_bounds(self.spec_task)
        if self.obs_mode == "low_dim":
            return spaces.Box(low, high, dtype=np.float64)
        items: dict[str, spaces.Space] = {
            key: spaces.Box(low[start:stop], high[start:stop], dtype=np.float64)
            for key, (start, stop) in self.obs_layout.items()
        }
        if self.obs_mode == "image":
            side = self.image_size
            for camera in self.spec_task.cameras:
                items[f"{camera}_image"] = spaces.Box(0, 255, (side, side, 3), np.uint8)
        return spaces.Dict(items)

    # ----------------------------------------------------------------- observation
    def _low_dim_vector(self, raw: dict[str, Any]) -> np.ndarray:
        """(obs_dim,) robomimic's low-dim vector from robosuite's observations ``raw``."""
        task = self.spec_task
        parts = [
            (-1.0 if name in task.negated_sensors else 1.0)
            * np.asarray(raw[name], dtype=np.float64).reshape(-1)
            for name in task.object_sensors
        ]
        parts += [np.asarray(raw[key], dtype=np.float64).reshape(-1) for key in self._arm_keys]
        return np.clip(np.concatenate(parts), self._low, self._high)  # quaternions: 1 + 1e-16

    def _observation(self, raw: dict[str, Any]) -> Any:
        flat = self._low_dim_vector(raw)
        if self.obs_mode == "low_dim":
            return flat
        obs = {key: flat[start:stop].copy() for key, (start, stop) in self.obs_layout.items()}
        if self.obs_mode == "image":
            for camera in self.spec_task.cameras:
                key = f"{camera}_image"
                obs[key] = np.ascontiguousarray(raw[key][::-1], dtype=np.uint8)
        return obs

    def _observables_from_state(self, images: bool) -> dict[str, Any]:
        """robosuite's observations recomputed from the current MuJoCo state: ``forward``,
        then every low-dim observable twice (robosuite 1.5's object-in-gripper sensors read
        the cached gripper pose before it is updated in the same pass), cameras once when
        ``images``. Makes the observation a function of the sim state alone, as robomimic's
        ``dataset_states_to_obs`` computes it (after a step robosuite reports positions
        from before the last 2 ms physics substep)."""
        env = self.suite_env
        env.sim.forward()
        cache = env._obs_cache
        observables = env._observables
        if images:
            for observable in observables.values():
                if observable.modality == "image":
                    observable.update(timestep=0.0, obs_cache=cache, force=True)
        low_dim = [name for name, o in observables.items() if o.modality != "image"]
        # the second pass only for the relative ("X_to_Y") sensors that read the cache: the
        # others read the sim (Tool Hang's two assembly flags cost ~1 ms each)
        relative = [name for name in low_dim if "_to_" in name]
        for name in low_dim + relative:
            observables[name].update(timestep=0.0, obs_cache=cache, force=True)
        return env._get_observations()

    def _info(self) -> dict[str, Any]:
        return {"success": bool(self.suite_env._check_success())}

    # ----------------------------------------------------------------- sim state
    def get_sim_state(self) -> np.ndarray:
        """Flat MuJoCo state (time, qpos, qvel) as robomimic stores it: ``sim.get_state()
        .flatten()``, float64 of shape (1 + nq + nv,)."""
        return np.asarray(self.suite_env.sim.get_state().flatten(), dtype=np.float64).copy()

    def _set_sim_state(self, state: Any) -> None:
        expected = self.get_sim_state().shape
        try:
            s = np.asarray(state, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"sim_state must be {expected} numbers, got {state!r}") from exc
        if s.shape != expected:
            raise ValueError(f"sim_state must have shape {expected}, got {s.shape}")
        if not np.all(np.isfinite(s)):
            raise ValueError("sim_state contains NaN/inf")
        sim = self.suite_env.sim
        sim.set_state_from_flattened(s)
        sim.forward()
        for robot in self.suite_env.robots:
            for controller in robot.part_controllers.values():
                controller.update(force=True)
                if hasattr(controller, "reset_goal"):
                    controller.reset_goal()

    # ----------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Sample a new initial scene (or restore ``options["sim_state"]``)."""
        super().reset(seed=seed)
        options = checked_reset_options(options, RESET_OPTIONS)
        with global_numpy_seed(int(self.np_random.integers(2**32))):
            self.suite_env.reset()
        if options.get("sim_state") is not None:
            self._set_sim_state(options["sim_state"])
        self._raw = self._observables_from_state(images=self.obs_mode == "image")
        return self._observation(self._raw), self._info()

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Send ``action`` (see the class docstring) for one 0.05 s control step."""
        if self._raw is None:
            raise RuntimeError("call reset() before step()")
        u, _ = clip_box_action(action, self.action_space)
        _, reward, _, _ = self.suite_env.step(u)
        self._raw = self._observables_from_state(images=False)
        info = self._info()
        terminated = self.terminate_on_success and info["success"]
        return self._observation(self._raw), float(reward), terminated, False, info

    # gymnasium annotates Env.render with an unbound TypeVar (RenderFrame): a stub bug
    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """(height, width, 3) uint8 frame from ``render_camera`` for
        ``"rgb_array"``; None (with a gymnasium warning) without a render mode."""
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; pass render_mode to make()")
            return None
        if self._raw is None:
            raise RuntimeError("call reset() before render()")
        frame = self.suite_env.sim.render(
            width=self.width, height=self.height, camera_name=self.render_camera
        )
        return np.ascontiguousarray(frame[::-1], dtype=np.uint8)

    def close(self) -> None:
        if getattr(self, "suite_env", None) is not None:
            self.suite_env.close()
