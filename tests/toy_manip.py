"""A toy manipulation env with the manipulation suites' protocol, for the data and bench tests.

A point "end effector" in the plane reaches an object (success: distance < 5 cm). It has
what the robomimic / Meta-World envs expose: ``obs_mode`` ("low_dim" flat, "dict", "image"
with a tiny 8x8 camera), ``obs_layout``, ``get_sim_state()`` and ``reset(options={"sim_state":
s})``, ``env_args()``, ``suite_env`` (the bare dynamics) and ``info["success"]``. Objects
outside the reachable square [-1, 1]^2 (about 40 % of the seeds) make episodes fail.

Registered with Gymnasium only (not :func:`ampczoo.envs.register_env`, so the env contract
tests never see it) as ``ToyManip-v0``; ``gym.make("toy_manip:ToyManip-v0")`` imports this
module in a worker process, which also adds the toy's scripted controller to
:data:`ampczoo.experts.scripted.SCRIPTED_CONTROLLERS` there. Tests add it in their own
process with ``monkeypatch`` (see :func:`install`).
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import gymnasium as gym
import numpy as np

from ampczoo.experts.scripted import SCRIPTED_CONTROLLERS

ENV_ID = "ToyManip-v0"
GYM_ID = f"toy_manip:{ENV_ID}"
CONTROLLER = "toy_manip:ToyController"
MAX_STEPS = 40
LAYOUT = {"object": (0, 2), "robot0_eef_pos": (2, 4), "robot0_gripper_qpos": (4, 5)}
STEP = 0.1  # eef displacement per unit action [m]


class ToySuite:
    """The bare dynamics (what ``suite_env`` is for the real suites)."""

    def __init__(self) -> None:
        self.t, self.eef, self.obj, self.grip = 0, np.zeros(2), np.zeros(2), 0.0

    def state(self) -> np.ndarray:
        return np.array([self.t, *self.eef, *self.obj, self.grip], np.float64)

    def set_state(self, s: np.ndarray) -> None:
        self.t, self.eef, self.obj, self.grip = int(s[0]), s[1:3].copy(), s[3:5].copy(), s[5]

    def step(self, action: np.ndarray) -> float:
        a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        self.eef = np.clip(self.eef + STEP * a[:2], -1.0, 1.0)
        self.grip = float(a[2])
        self.t += 1
        return -float(np.linalg.norm(self.eef - self.obj))

    def success(self) -> bool:
        return bool(np.linalg.norm(self.eef - self.obj) < 0.05)


class ToyManipEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, obs_mode: str = "low_dim", terminate_on_success: bool = True):
        if obs_mode not in ("low_dim", "dict", "image"):
            raise ValueError(f"obs_mode must be low_dim, dict or image, got {obs_mode!r}")
        self.obs_mode, self.terminate_on_success = obs_mode, terminate_on_success
        self.suite_env = ToySuite()
        self.obs_layout = dict(LAYOUT)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float64)
        flat = gym.spaces.Box(-np.inf, np.inf, (5,), np.float64)
        if obs_mode == "low_dim":
            self.observation_space = flat
        else:
            spaces: dict[str, gym.Space] = {
                k: gym.spaces.Box(-np.inf, np.inf, (b - a,), np.float64)
                for k, (a, b) in LAYOUT.items()
            }
            if obs_mode == "image":
                spaces["agentview_image"] = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
            self.observation_space = gym.spaces.Dict(spaces)

    def env_args(self) -> dict[str, Any]:
        return {"env_name": ENV_ID, "type": 2, "env_kwargs": {"obs_mode": self.obs_mode}}

    def get_sim_state(self) -> np.ndarray:
        return self.suite_env.state()

    def _obs(self) -> Any:
        s = self.suite_env
        flat = np.array([*s.obj, *s.eef, s.grip], np.float64)
        if self.obs_mode == "low_dim":
            return flat
        out: dict[str, np.ndarray] = {k: flat[a:b] for k, (a, b) in LAYOUT.items()}
        if self.obs_mode == "image":
            img = np.zeros((8, 8, 3), np.uint8)
            i, j = ((np.clip(s.eef, -1, 1) + 1) * 3.5).astype(int)
            img[i, j] = 255
            out["agentview_image"] = img
        return out

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if options and "sim_state" in options:
            self.suite_env.set_state(np.asarray(options["sim_state"], np.float64))
        else:
            self.suite_env.set_state(
                np.array(
                    [
                        0,
                        *self.np_random.uniform(-0.5, 0.5, 2),
                        *self.np_random.uniform(-1.4, 1.4, 2),
                        0.0,
                    ]
                )
            )
        return self._obs(), {"success": self.suite_env.success()}

    def step(self, action: np.ndarray):
        reward = self.suite_env.step(action)
        success = self.suite_env.success()
        terminated = bool(success and self.terminate_on_success)
        return self._obs(), reward, terminated, False, {"success": success}


class ToyController:
    """Scripted reach: proportional step towards the object, gain and noise drawn per episode
    from the seed (scaled by ``diversity``)."""

    obs_dim, action_dim = 5, 3

    def __init__(self, config: Any):
        self.diversity = float(config.diversity)
        self.reset(config.seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.gain = 4.0 + 3.0 * self.diversity * self.rng.uniform(-0.5, 0.5)

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, np.float64)
        move = self.gain * (obs[0:2] - obs[2:4]) + 0.05 * self.diversity * self.rng.normal(size=2)
        return np.clip(np.array([*move, 1.0]), -1.0, 1.0)


def install(monkeypatch: Any) -> str:
    """Add the toy's controller to SCRIPTED_CONTROLLERS for one test (undone after it);
    returns the id to pass to gym.make / collect."""
    monkeypatch.setitem(SCRIPTED_CONTROLLERS, ENV_ID, CONTROLLER)
    return GYM_ID


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=ToyManipEnv, max_episode_steps=MAX_STEPS)
if multiprocessing.parent_process() is not None:  # a collection worker (see the docstring)
    SCRIPTED_CONTROLLERS.setdefault(ENV_ID, CONTROLLER)
