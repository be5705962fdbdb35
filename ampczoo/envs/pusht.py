"""Push-T (gym-pusht, pymunk 2-D physics) as an ampczoo env."""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ampczoo.envs.actions import checked_reset_options, clip_box_action

#: Side of the square workspace [pixels]; positions and actions lie in [0, WORKSPACE].
WORKSPACE = 512.0
#: Goal pose of the T: x, y [pixels], angle [rad] (fixed in Push-T).
GOAL_POSE = (256.0, 256.0, np.pi / 4)
#: Coverage of the goal region above which the episode counts as a success.
SUCCESS_COVERAGE = 0.95
#: Control period [s]: 10 pymunk steps of 0.01 s per action.
CONTROL_DT = 0.1
OBS_MODES = ("low_dim", "dict", "image")
#: smallest ``width`` / ``height`` of ``render()`` frames [px] gym-pusht can draw
MIN_RENDER_SIZE = 96
RESET_OPTIONS = frozenset({"sim_state"})
#: Flat (5,) observation: name -> (start, stop).
OBS_LAYOUT: OrderedDict[str, tuple[int, int]] = OrderedDict(
    [("agent_pos", (0, 2)), ("block_pos", (2, 4)), ("block_angle", (4, 5))]
)
#: Length of the exact sim state; the 5-long legacy state of Push-T datasets is accepted too.
SIM_STATE_DIM = 10
LEGACY_STATE_DIM = 5
INSTALL_HINT = "pip install 'ampczoo[pusht]'"


def import_gym_pusht() -> Any:
    """gym-pusht's env module (ImportError naming the extra to install when missing).

    Frames are drawn on pygame surfaces, never in a window, so no display and no
    ``SDL_VIDEODRIVER`` are needed (checked headless)."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        from gym_pusht.envs import pusht
    except ImportError as exc:
        raise ImportError(
            f"the Push-T env needs gym-pusht ({exc}); install it with {INSTALL_HINT}"
        ) from exc
    return pusht


class PushTEnv(gym.Env):
    """Push-T: a disc (the agent, radius 15 px) pushes a T-shaped block (bar 120 x 30 px,
    stem 30 x 90 px) onto a fixed goal pose in a 512 x 512 px arena (gym-pusht 0.1, the
    Diffusion Policy task). Registered as ``PushT-v0``: 300 steps of 0.1 s (10 Hz).

    **Action** ``Box(0, 512, (2,), float64)``: target position (x, y) [px] of the agent,
    tracked by a PD law (k_p = 100, k_v = 20) over ten 0.01 s physics steps. NaN/inf or a
    shape other than (2,) raise ``ValueError``; values outside [0, 512] are clipped and counted
    in ``info["action_clipped"]``.

    **Observation** (``obs_mode="low_dim"``, default) ``Box`` float64 (5,):

    =====  ===========  ===================================================  =====  ========
    index  name         quantity                                             unit   bounds
    =====  ===========  ===================================================  =====  ========
    0 – 1  agent_pos    agent centre (x, y)                                  px     0 – 512
    2 – 3  block_pos    T's body origin (x, y): middle of the bar's far edge  px     0 – 512
    4      block_angle  T's angle, wrapped to [0, 2 pi)                       rad    0 – 2 pi
    =====  ===========  ===================================================  =====  ========

    (y grows downward in rendered frames; the goal pose is (256, 256, pi/4).)
    ``obs_mode="dict"``: the entries of ``obs_layout``; ``"image"``: the dict plus ``image``
    (96 x 96 x 3 uint8, HWC: the top view Diffusion Policy learns from).

    **Reward** gym-pusht's: coverage / 0.95 clipped to [0, 1], where coverage is the
    fraction of the goal T's area covered by the block. **Info**: gym-pusht's
    (``pos_agent``, ``vel_agent``, ``block_pose``, ``goal_pose``, ``n_contacts``,
    ``coverage``, ``is_success``) with ``success`` (coverage > 0.95) on reset too; steps add
    ``action_clipped``.

    **Episode end**: truncated after 300 steps (``max_episode_steps``); terminated at the
    first success when ``terminate_on_success`` (default True, as gym-pusht and Diffusion
    Policy's evaluation).

    **Reset**: ``reset(seed=s)``: agent and block positions and the block angle drawn from
    ``s`` (gym-pusht's ranges; deterministic). ``options={"sim_state": v}``: v (10,) from
    :meth:`get_sim_state` restores the state exactly (the next steps agree bit for bit when
    the agent does not touch the block; in contact to a fraction of a pixel, as pymunk's
    cached contact impulses are not part of the state); a legacy (5,) state of the Push-T
    datasets [agent x, y, block x, y, angle] is set as gym-pusht's ``reset_to_state`` does
    (positions, then one 0.01 s physics step).

    **Sim state** (10,): agent x, y [px], vx, vy [px/s], block x, y [px], angle [rad, not
    wrapped], vx, vy [px/s], angular velocity [rad/s].

    **Rendering**: ``render_mode="rgb_array"``: (height, width, 3) uint8 with the last target
    as a red cross (gym-pusht's visualisation), drawn offscreen by pygame.

    Args:
        obs_mode: "low_dim", "dict" or "image".
        terminate_on_success: end the episode at the first success.
        image_size: side of the image observation [px].
        render_mode: None or "rgb_array".
        width, height: size of ``render()`` frames [px], at least :data:`MIN_RENDER_SIZE`.

    Exposed (``env.unwrapped``): ``suite_env`` (gym-pusht's env), ``obs_layout``,
    ``control_dt`` [s], ``coverage()``, :meth:`get_sim_state`, :meth:`env_args`.

    Version history:
        v0: initial release (gym-pusht 0.1.8).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        obs_mode: str = "low_dim",
        terminate_on_success: bool = True,
        image_size: int = 96,
        render_mode: str | None = None,
        width: int = 512,
        height: int = 512,
    ):
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {OBS_MODES}, got {obs_mode!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if not (isinstance(image_size, int) and 8 <= image_size <= 4096):
            raise ValueError(f"image_size must be an int in [8, 4096], got {image_size!r}")
        for name, v in (("width", width), ("height", height)):
            # gym-pusht draws the action marker int(size / 96) px thick: 0 (a cv2 error) below 96
            if not (isinstance(v, int) and MIN_RENDER_SIZE <= v <= 4096):
                raise ValueError(
                    f"{name} must be an int in [{MIN_RENDER_SIZE}, 4096] (gym-pusht's render "
                    f"needs >= {MIN_RENDER_SIZE} px), got {v!r}"
                )
        pusht = import_gym_pusht()
        self.obs_mode, self.terminate_on_success = obs_mode, bool(terminate_on_success)
        self.image_size, self.render_mode = int(image_size), render_mode
        self.width, self.height = int(width), int(height)
        self.suite_env = pusht.PushTEnv(
            obs_type="state",
            render_mode="rgb_array",
            observation_width=self.image_size,
            observation_height=self.image_size,
            visualization_width=self.width,
            visualization_height=self.height,
        )
        self.control_dt = CONTROL_DT
        self.obs_layout = OrderedDict(OBS_LAYOUT)
        self.action_space = spaces.Box(0.0, WORKSPACE, (2,), np.float64)
        high = np.array([WORKSPACE] * 4 + [2 * np.pi])
        self._low_dim_space = spaces.Box(np.zeros(5), high, dtype=np.float64)
        self.observation_space = self._make_observation_space()
        self._started = False

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """New episode drawn from ``seed``, or the state ``options["sim_state"]``."""
        super().reset(seed=seed)
        options = checked_reset_options(options, RESET_OPTIONS)
        inner_seed = int(self.np_random.integers(2**31 - 1))
        state = options.get("sim_state")
        if state is None:
            _, info = self.suite_env.reset(seed=inner_seed)
        else:
            state = _check_sim_state(state)
            if len(state) == LEGACY_STATE_DIM:
                _, info = self.suite_env.reset(seed=inner_seed, options={"reset_to_state": state})
            else:
                _, info = self.suite_env.reset(seed=inner_seed)
                self._set_exact_state(state)
                info = self.suite_env._get_info()
        self._started = True
        coverage = self.coverage()
        info["coverage"] = coverage
        info["is_success"] = info["success"] = bool(coverage > SUCCESS_COVERAGE)
        return self._format_obs(), info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Track the target position ``action`` (2,) [px] for 0.1 s."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        assert isinstance(self.action_space, spaces.Box)
        u, n_clipped = clip_box_action(action, self.action_space)
        state, reward, _, _, info = self.suite_env.step(u)
        info["success"] = bool(info["is_success"])
        info["coverage"] = float(info["coverage"])
        info["action_clipped"] = n_clipped
        terminated = bool(self.terminate_on_success and info["success"])
        return self._format_obs(state), float(reward), terminated, False, info

    # gymnasium annotates Env.render with an unbound TypeVar (RenderFrame): a stub bug
    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """(height, width, 3) uint8 top view (``render_mode="rgb_array"``)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; pass render_mode to make()")
            return None
        return np.asarray(self.suite_env.render(), np.uint8)

    def close(self) -> None:
        self.suite_env.close()
        super().close()

    # ------------------------------------------------------------------ protocol
    def coverage(self) -> float:
        """Fraction of the goal T's area covered by the block (0 – 1)."""
        return float(self.suite_env._get_coverage())

    def get_sim_state(self) -> np.ndarray:
        """(10,) float64: agent x, y, vx, vy; block x, y, angle, vx, vy, angular velocity."""
        if not self._started:
            raise RuntimeError("call reset() before get_sim_state()")
        agent, block = self.suite_env.agent, self.suite_env.block
        return np.array(
            [
                *agent.position,
                *agent.velocity,
                *block.position,
                block.angle,
                *block.velocity,
                block.angular_velocity,
            ],
            dtype=np.float64,
        )

    def env_args(self) -> dict[str, Any]:
        """robomimic's ``env_args``: type 2 (a gym env: ``gym.make(env_name, **env_kwargs)``)."""
        return {
            "env_name": self.spec.id if self.spec is not None else "PushT-v0",
            "type": 2,
            "env_kwargs": {
                "obs_mode": self.obs_mode,
                "terminate_on_success": self.terminate_on_success,
                "image_size": self.image_size,
            },
        }

    # ------------------------------------------------------------------ internals
    def _set_exact_state(self, s: np.ndarray) -> None:
        agent, block = self.suite_env.agent, self.suite_env.block
        agent.position, agent.velocity = (s[0], s[1]), (s[2], s[3])
        block.angle = s[6]  # before the position: pymunk turns a body about its CoG
        block.position = (s[4], s[5])
        block.velocity, block.angular_velocity = (s[7], s[8]), s[9]
        self.suite_env.space.reindex_shapes_for_body(block)

    def _low_dim_obs(self, state: np.ndarray | None = None) -> np.ndarray:
        """(5,) observation: gym-pusht's ``state`` observation (read from the bodies when
        None), clipped to the bounds."""
        if state is None:
            agent, block = self.suite_env.agent, self.suite_env.block
            state = np.array([*agent.position, *block.position, block.angle % (2 * np.pi)])
        return np.clip(state, self._low_dim_space.low, self._low_dim_space.high)

    def _make_observation_space(self) -> spaces.Space:
        if self.obs_mode == "low_dim":
            return self._low_dim_space
        low, high = self._low_dim_space.low, self._low_dim_space.high
        entries: dict[str, spaces.Space] = {
            key: spaces.Box(low[a:b], high[a:b], dtype=np.float64)
            for key, (a, b) in self.obs_layout.items()
        }
        if self.obs_mode == "image":
            side = self.image_size
            entries["image"] = spaces.Box(0, 255, (side, side, 3), np.uint8)
        return spaces.Dict(entries)

    def _format_obs(self, state: np.ndarray | None = None) -> Any:
        obs = self._low_dim_obs(state)
        if self.obs_mode == "low_dim":
            return obs
        out: dict[str, np.ndarray] = {
            key: obs[a:b].copy() for key, (a, b) in self.obs_layout.items()
        }
        if self.obs_mode == "image":
            out["image"] = np.asarray(self.suite_env._render(), np.uint8).copy()
        return out


def _check_sim_state(state: Any) -> np.ndarray:
    try:
        s = np.asarray(state, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"sim_state must be a flat float array, got {state!r}") from exc
    if s.shape not in ((SIM_STATE_DIM,), (LEGACY_STATE_DIM,)):
        raise ValueError(
            f"Push-T sim_state must have shape ({SIM_STATE_DIM},) or the legacy "
            f"({LEGACY_STATE_DIM},), got {s.shape}"
        )
    if not np.all(np.isfinite(s)):
        raise ValueError("sim_state contains NaN/inf")
    return s
