"""Meta-World v3 tasks (Sawyer arm, MuJoCo) as ampczoo envs: the five "very hard" tasks of
DiffOG / DP3 under their own ids, any other task by ``task=``."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ampczoo.envs.actions import checked_reset_options, clip_box_action

#: registered id -> Meta-World task name (the very-hard tasks of DiffOG's Table IX).
VERY_HARD_TASKS: dict[str, str] = {
    "MetaWorld-PickPlaceWall-v0": "pick-place-wall-v3",
    "MetaWorld-ShelfPlace-v0": "shelf-place-v3",
    "MetaWorld-Disassemble-v0": "disassemble-v3",
    "MetaWorld-StickPush-v0": "stick-push-v3",
    "MetaWorld-StickPull-v0": "stick-pull-v3",
}
#: Task of the generic id ``MetaWorld-v0`` when ``task`` is not given.
DEFAULT_TASK = "reach-v3"
#: Steps per episode (Meta-World's ``max_path_length``), 0.0125 s each.
MAX_EPISODE_STEPS = 500
OBS_MODES = ("low_dim", "dict", "image")
#: Cameras of Meta-World's scene usable for ``image`` observations and ``render``.
CAMERAS = ("topview", "corner", "corner2", "corner3", "corner4", "behindGripper", "gripperPOV")
#: Cameras mounted rolled by 180 degrees in Meta-World's scene: their frames are turned.
UPSIDE_DOWN_CAMERAS = frozenset({"corner", "corner2", "corner3", "corner4"})
#: Side of the shadow map of the offscreen renderers [px] (Meta-World's model: 4096).
SHADOW_MAP_SIZE = 1024
RESET_OPTIONS = frozenset({"sim_state"})
#: Flat 39-D observation: name -> (start, stop); see the class docstring.
OBS_LAYOUT: OrderedDict[str, tuple[int, int]] = OrderedDict(
    [
        ("hand_pos", (0, 3)),
        ("gripper_distance", (3, 4)),
        ("obj1_pos", (4, 7)),
        ("obj1_quat", (7, 11)),
        ("obj2_pos", (11, 14)),
        ("obj2_quat", (14, 18)),
        ("prev_hand_pos", (18, 21)),
        ("prev_gripper_distance", (21, 22)),
        ("prev_obj1_pos", (22, 25)),
        ("prev_obj1_quat", (25, 29)),
        ("prev_obj2_pos", (29, 32)),
        ("prev_obj2_quat", (32, 36)),
        ("goal_pos", (36, 39)),
    ]
)
OBS_DIM = 39
#: Bound of the object positions in the observation [m] (Meta-World leaves them unbounded).
OBJECT_POS_BOUND = 10.0
#: Length of one frame of the observation (hand, gripper, two object poses).
FRAME_DIM = 18
INSTALL_HINT = "pip install 'ampczoo[metaworld]'"


def import_metaworld() -> Any:
    """``metaworld.env_dict`` (ImportError naming the extra to install when missing)."""
    try:
        from metaworld import env_dict
    except ImportError as exc:
        raise ImportError(
            f"the Meta-World envs need the metaworld package ({exc}); install it with "
            f"{INSTALL_HINT}"
        ) from exc
    return env_dict


def metaworld_tasks() -> list[str]:
    """Every Meta-World v3 task name (``reach-v3``, ``shelf-place-v3``, ...)."""
    return sorted(import_metaworld().ALL_V3_ENVIRONMENTS)


class MetaWorldEnv(gym.Env):
    """A Meta-World v3 task (metaworld 3.x, goal observable, object and goal positions
    randomised at every reset) behind the ampczoo env protocol.

    Registered ids: ``MetaWorld-PickPlaceWall-v0``, ``MetaWorld-ShelfPlace-v0``,
    ``MetaWorld-Disassemble-v0``, ``MetaWorld-StickPush-v0``, ``MetaWorld-StickPull-v0``
    (:data:`VERY_HARD_TASKS`) and ``MetaWorld-v0``, which takes any task name
    (``gym.make("MetaWorld-v0", task="door-open-v3")``; :func:`metaworld_tasks` lists them;
    default ``reach-v3``). 500 steps of 0.0125 s (5 MuJoCo steps of 2.5 ms) per episode.

    **Action** ``Box(-1, 1, (4,), float64)``: end-effector (mocap) position change
    ``[dx, dy, dz]`` in units of 1 cm (Meta-World's ``action_scale`` 0.01 m; the hand is kept
    in Meta-World's workspace box) and the gripper effort (-1 open, +1 closed). NaN/inf or a
    shape other than (4,) raise ``ValueError``; finite values outside [-1, 1] are clipped and
    counted in ``info["action_clipped"]``.

    **Observation** (``obs_mode="low_dim"``, default) ``Box`` float64 (39,), Meta-World's own
    vector (``obs_layout`` maps the names to index ranges):

    =======  =======================  ====================================================  ====
    index    name                     quantity                                              unit
    =======  =======================  ====================================================  ====
    0 – 2    hand_pos                 end-effector (``hand`` body) position, world frame    m
    3        gripper_distance         finger distance / 0.1 m, clipped to [0, 1] (1 open)   –
    4 – 6    obj1_pos                 first object's position (task-specific, e.g. block)   m
    7 – 10   obj1_quat                its orientation, quaternion (w, x, y, z)               –
    11 – 13  obj2_pos                 second object's position (zeros if the task has one)  m
    14 – 17  obj2_quat                its orientation (zeros if none)                        –
    18 – 35  prev_*                   indices 0 – 17 of the previous step (at reset: the
                                      current ones)                                         m, –
    36 – 38  goal_pos                 goal position of the task                             m
    =======  =======================  ====================================================  ====

    Bounds: the hand within Meta-World's hand box, the gripper in [-1, 1], object positions
    ±10 m and quaternions ±1 (Meta-World: unbounded), the goal within the task's goal box
    (observations are clipped to these bounds, as Meta-World does after every step).

    ``obs_mode="dict"``: a ``Dict`` of the entries of ``obs_layout`` (same values).
    ``obs_mode="image"``: the dict plus ``<camera>_image`` (``image_size`` x ``image_size`` x
    3 uint8, HWC) for each of ``cameras`` (default the 84 x 84 ``corner2`` view that DP3
    renders its Meta-World observations from; DiffOG's Table IX feeds DP3 a 3 x 512 point
    cloud made from that camera's depth, which is not produced here), rendered offscreen
    (``MUJOCO_GL=osmesa`` or ``egl``).

    **Reward** Meta-World's v2 dense reward of the task (0 – 10). **Info**: Meta-World's
    (``near_object``, ``grasp_success``, ``grasp_reward``, ``in_place_reward``,
    ``obj_to_target``, ``unscaled_reward``) with ``success`` as bool (the task's own
    check, e.g. object within 7 cm of the goal), on reset too; steps add ``action_clipped``.

    **Episode end**: truncated after 500 steps (``max_episode_steps``); terminated at the
    first success when ``terminate_on_success`` (default True: DiffOG's evaluation ends
    rollouts on task completion).

    **Reset**: ``reset(seed=s)`` draws the task's object / goal positions from ``s``
    (deterministic; independent of earlier episodes). ``options={"sim_state": v}`` restores a
    state from :meth:`get_sim_state` (the observation equals the one at storing time; the
    steps after it agree with the original ones to about 1e-12).

    **Sim state** (:meth:`get_sim_state`, flat float64): the task's random vector (object and
    goal placement, Meta-World's ``_last_rand_vec``), MuJoCo's full integration state
    (``mj_getState(mjSTATE_INTEGRATION)``: time, qpos, qvel, act, warm start, ctrl, mocap
    pose, ...) and the previous frame (18) of the observation.

    **Rendering**: ``render_mode="rgb_array"`` returns (height, width, 3) uint8 from
    ``render_camera``. The ``corner*`` cameras are mounted upside down in Meta-World's scene;
    their frames (observations and renders) are turned by 180 degrees, floor down. The shadow
    map is 1024 px (Meta-World's 4096 doubles the frame cost of software GL).

    Args:
        task: Meta-World v3 task name.
        obs_mode: "low_dim", "dict" or "image".
        terminate_on_success: end the episode at the first success.
        cameras: cameras of the image observation (names in :data:`CAMERAS`).
        image_size: side of the image observations [pixels].
        render_mode: None or "rgb_array".
        render_camera, width, height: camera and size [pixels] of ``render()`` (256 x 256).

    Exposed (``env.unwrapped``): ``suite_env`` (the Meta-World env object), ``obs_layout``,
    ``task``, ``control_dt`` [s], :meth:`get_sim_state`, :meth:`env_args`.

    Version history:
        v0: initial release (metaworld 3.1).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}

    def __init__(
        self,
        task: str = DEFAULT_TASK,
        obs_mode: str = "low_dim",
        terminate_on_success: bool = True,
        cameras: tuple[str, ...] | list[str] = ("corner2",),
        image_size: int = 84,
        render_mode: str | None = None,
        render_camera: str = "corner2",
        width: int = 256,
        height: int = 256,
    ):
        from ampczoo.envs.rendering import configure_mujoco_gl

        _validate_kwargs(task, obs_mode, cameras, image_size, render_mode, render_camera)
        _validate_kwargs_size(width, height)
        configure_mujoco_gl()  # before metaworld imports mujoco (fixes the GL backend)
        env_dict = import_metaworld()
        if task not in env_dict.ALL_V3_ENVIRONMENTS:
            raise ValueError(
                f"unknown Meta-World task {task!r}; choose from "
                f"{sorted(env_dict.ALL_V3_ENVIRONMENTS)}"
            )
        self.task, self.obs_mode = task, obs_mode
        self.terminate_on_success = bool(terminate_on_success)
        self.cameras, self.image_size = tuple(cameras), int(image_size)
        self.render_mode, self.render_camera = render_mode, render_camera
        self.width, self.height = int(width), int(height)
        self.suite_env = _make_suite_env(env_dict.ALL_V3_ENVIRONMENTS[task])
        self.control_dt = float(self.suite_env.dt)
        self.obs_layout = OrderedDict(OBS_LAYOUT)
        self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float64)
        self._low_dim_space = _low_dim_space(self.suite_env)
        self.observation_space = self._make_observation_space()
        self._renderers: dict[tuple[str, int, int], Any] = {}
        self._last_obs = np.zeros(OBS_DIM)
        self._started = False

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """New episode: object / goal placement drawn from ``seed``, or the state of
        ``options["sim_state"]``."""
        super().reset(seed=seed)
        options = checked_reset_options(options, RESET_OPTIONS)
        if options.get("sim_state") is not None:
            obs = self._restore(self._check_sim_state(options["sim_state"]))
        else:
            obs = self._fresh_episode()
        self._last_obs, self._started = obs, True
        _, info = self.suite_env.evaluate_state(obs, np.zeros(4))
        return self._format_obs(obs), _clean_info(info)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Move the hand by ``action[:3]`` cm and set the gripper effort ``action[3]``."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        assert isinstance(self.action_space, spaces.Box)
        u, n_clipped = clip_box_action(action, self.action_space)
        obs, reward, _, _, info = self.suite_env.step(u)
        obs = np.asarray(obs, np.float64)
        self._last_obs = obs
        info = _clean_info(info)
        info["action_clipped"] = n_clipped
        terminated = bool(self.terminate_on_success and info["success"])
        return self._format_obs(obs), float(reward), terminated, False, info

    # gymnasium annotates Env.render with an unbound TypeVar (RenderFrame): a stub bug
    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """(height, width, 3) uint8 from ``render_camera`` (``render_mode="rgb_array"``)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; pass render_mode to make()")
            return None
        return self._camera_image(self.render_camera, self.width, self.height)

    def close(self) -> None:
        """Free the offscreen renderers and Meta-World's env."""
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers = {}
        self.suite_env.close()
        super().close()

    # ------------------------------------------------------------------ protocol
    def get_sim_state(self) -> np.ndarray:
        """Flat float64 state: [task random vector, MuJoCo integration state, previous
        frame (18)]; ``reset(options={"sim_state": ...})`` restores it."""
        import mujoco

        if not self._started:
            raise RuntimeError("call reset() before get_sim_state()")
        env = self.suite_env
        physics = np.zeros(mujoco.mj_stateSize(env.model, _INTEGRATION()))
        mujoco.mj_getState(env.model, env.data, physics, _INTEGRATION())
        rand_vec = np.asarray(env._last_rand_vec, np.float64)
        prev = self._last_obs[FRAME_DIM : 2 * FRAME_DIM]
        return np.concatenate([rand_vec, physics, prev])

    def sim_state_size(self) -> int:
        """Length of :meth:`get_sim_state`'s vector for this task."""
        import mujoco

        env = self.suite_env
        n_rand = env._random_reset_space.low.size
        return int(n_rand + mujoco.mj_stateSize(env.model, _INTEGRATION()) + FRAME_DIM)

    def env_args(self) -> dict[str, Any]:
        """robomimic's ``env_args``: type 2 (a gym env: ``gym.make(env_name, **env_kwargs)``)."""
        env_id = self.spec.id if self.spec is not None else "MetaWorld-v0"
        return {
            "env_name": env_id,
            "type": 2,
            "env_kwargs": {
                "task": self.task,
                "obs_mode": self.obs_mode,
                "terminate_on_success": self.terminate_on_success,
                "cameras": list(self.cameras),
                "image_size": self.image_size,
            },
        }

    # ------------------------------------------------------------------ internals
    def _fresh_episode(self) -> np.ndarray:
        from gymnasium.utils import seeding

        env = self.suite_env
        # Meta-World draws placements from its own generator: seed it from ours
        env.np_random, _ = seeding.np_random(int(self.np_random.integers(2**63 - 1)))
        env._freeze_rand_vec = False
        obs, _ = env.reset()
        return self._clip(obs)

    def _restore(self, state: np.ndarray) -> np.ndarray:
        import mujoco

        env = self.suite_env
        n_rand = env._random_reset_space.low.size
        n_phys = mujoco.mj_stateSize(env.model, _INTEGRATION())
        env._last_rand_vec = state[:n_rand].copy()
        env._freeze_rand_vec = True
        try:
            env.reset()  # rebuilds the scene (shelf, peg, goal site ...) from the vector
        finally:
            env._freeze_rand_vec = False
        mujoco.mj_setState(env.model, env.data, state[n_rand : n_rand + n_phys], _INTEGRATION())
        mujoco.mj_forward(env.model, env.data)
        for site in env._target_site_config:
            env._set_pos_site(*site)
        env._prev_obs = state[n_rand + n_phys :].copy()
        return self._clip(env._get_obs())

    def _check_sim_state(self, state: Any) -> np.ndarray:
        try:
            s = np.asarray(state, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"sim_state must be a flat float array, got {state!r}") from exc
        n = self.sim_state_size()
        if s.shape != (n,):
            raise ValueError(f"sim_state of {self.task} must have shape ({n},), got {s.shape}")
        if not np.all(np.isfinite(s)):
            raise ValueError("sim_state contains NaN/inf")
        return s

    def _clip(self, obs: np.ndarray) -> np.ndarray:
        space = self._low_dim_space
        return np.clip(np.asarray(obs, np.float64), space.low, space.high)

    def _make_observation_space(self) -> spaces.Space:
        if self.obs_mode == "low_dim":
            return self._low_dim_space
        entries: dict[str, spaces.Space] = {
            key: spaces.Box(
                self._low_dim_space.low[a:b], self._low_dim_space.high[a:b], dtype=np.float64
            )
            for key, (a, b) in self.obs_layout.items()
        }
        if self.obs_mode == "image":
            side = self.image_size
            for cam in self.cameras:
                entries[f"{cam}_image"] = spaces.Box(0, 255, (side, side, 3), np.uint8)
        return spaces.Dict(entries)

    def _format_obs(self, obs: np.ndarray) -> Any:
        if self.obs_mode == "low_dim":
            return obs.copy()
        out: dict[str, np.ndarray] = {
            key: obs[a:b].copy() for key, (a, b) in self.obs_layout.items()
        }
        if self.obs_mode == "image":
            for cam in self.cameras:
                out[f"{cam}_image"] = self._camera_image(cam, self.image_size, self.image_size)
        return out

    def _camera_image(self, camera: str, width: int, height: int) -> np.ndarray:
        key = (camera, width, height)
        if key not in self._renderers:
            from ampczoo.envs.rendering import _make_offscreen

            model = self.suite_env.model
            vis = model.vis.global_
            vis.offwidth, vis.offheight = max(vis.offwidth, width), max(vis.offheight, height)
            quality = model.vis.quality  # Meta-World's 4096 shadow map halves software GL
            quality.shadowsize = min(quality.shadowsize, SHADOW_MAP_SIZE)
            self._renderers[key] = _make_offscreen(self.suite_env.model, width, height)
        renderer = self._renderers[key]
        renderer.update_scene(self.suite_env.data, camera=camera)
        frame = np.asarray(renderer.render(), np.uint8)
        if camera in UPSIDE_DOWN_CAMERAS:
            frame = frame[::-1, ::-1]
        return frame.copy()


# ---------------------------------------------------------------------- helpers
def _INTEGRATION() -> Any:
    import mujoco

    return mujoco.mjtState.mjSTATE_INTEGRATION


def _make_suite_env(env_cls: type) -> Any:
    """Meta-World's task env made goal-observable with per-reset randomisation drawn from
    its (seedable) ``np_random``, as Meta-World's ``*-goal-observable`` classes, without
    touching the global numpy generator."""
    env = env_cls()
    env._partially_observable = False
    del env.sawyer_observation_space  # cached property: recomputed with the goal bounds
    env.observation_space = env.sawyer_observation_space
    env._set_task_called = True
    env._freeze_rand_vec = False
    env.seeded_rand_vec = True
    # the episode length is gymnasium's max_episode_steps (500 registered), not Meta-World's
    # hard stop, so longer episodes (gym.make(..., max_episode_steps=1000)) run too
    env.max_path_length = 2**62
    return env


def _low_dim_space(env: Any) -> spaces.Box:
    """Meta-World's observation bounds with the unbounded object entries bounded:
    positions to ±:data:`OBJECT_POS_BOUND` m, quaternions to ±1."""
    space = env.sawyer_observation_space
    low, high = np.array(space.low, np.float64), np.array(space.high, np.float64)
    for key, (a, b) in OBS_LAYOUT.items():
        if "obj" in key:
            bound = OBJECT_POS_BOUND if key.endswith("pos") else 1.0
            low[a:b], high[a:b] = -bound, bound
    return spaces.Box(low, high, dtype=np.float64)


def _clean_info(info: dict[str, Any]) -> dict[str, Any]:
    """Meta-World's info with ``success`` as bool and numbers as Python floats."""
    out = {k: float(v) if isinstance(v, int | float | np.number) else v for k, v in info.items()}
    out["success"] = bool(info.get("success", False))
    return out


def _validate_kwargs(
    task: Any,
    obs_mode: Any,
    cameras: Any,
    image_size: Any,
    render_mode: Any,
    render_camera: Any,
) -> None:
    if not isinstance(task, str):
        raise ValueError(f"task must be a Meta-World task name, got {task!r}")
    if obs_mode not in OBS_MODES:
        raise ValueError(f"obs_mode must be one of {OBS_MODES}, got {obs_mode!r}")
    if isinstance(cameras, str) or not all(c in CAMERAS for c in cameras) or not cameras:
        raise ValueError(f"cameras must be a non-empty list of {CAMERAS}, got {cameras!r}")
    if render_camera not in CAMERAS:
        raise ValueError(f"render_camera must be one of {CAMERAS}, got {render_camera!r}")
    if not (isinstance(image_size, int) and 8 <= image_size <= 1024):
        raise ValueError(f"image_size must be an int in [8, 1024], got {image_size!r}")
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")


def _validate_kwargs_size(width: Any, height: Any) -> None:
    for name, v in (("width", width), ("height", height)):
        if not (isinstance(v, int) and 8 <= v <= 4096):
            raise ValueError(f"{name} must be an int in [8, 4096], got {v!r}")
