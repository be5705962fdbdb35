"""The env contract (:mod:`ampczoo.envs.checks`) over every id of the ampczoo registry,
including ids registered later: a toy env registered here passes the same checks, broken
toys fail them."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import ampczoo.envs
from ampczoo.envs import env_ids, register_env
from ampczoo.envs.checks import CHECKS, check_env_contract, invalid_actions


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("env_id", env_ids())
def test_registered_env_keeps_the_contract(env_id, check):
    CHECKS[check](env_id)


def test_package_envs_are_registered():
    assert {
        "DAMPC-KukaTrack-v0",
        "DAMPC-KukaTrackObstacle-v0",
        "ThreeDOF-Reach-v0",
    } <= set(env_ids())


# ----------------------------------------------------------------- toy envs
class ToyEnv(gym.Env):
    """A point x (2,) moved by velocity actions toward a random goal (2,); obs [x, goal]."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    #: deliberate defects of the broken variants
    accepts_nan = False
    moves_before_checking = False

    def __init__(self, render_mode: str | None = None, width: int = 8, height: int = 8):
        self.render_mode, self.width, self.height = render_mode, width, height
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float64)
        self.observation_space = spaces.Box(-10.0, 10.0, (4,), np.float64)
        self._x, self._goal = np.zeros(2), np.zeros(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._x = self.np_random.uniform(-1, 1, 2)
        self._goal = self.np_random.uniform(-1, 1, 2)
        return self._obs(), {"distance": self._distance()}

    def step(self, action: Any):
        u = np.asarray(action, dtype=np.float64)
        if self.moves_before_checking and u.shape == (2,):
            self._x = self._x + 0.1 * np.nan_to_num(u)
        if u.shape != (2,):
            raise ValueError(f"action must have shape (2,), got {u.shape}")
        if not self.accepts_nan and not np.all(np.isfinite(u)):
            raise ValueError("action contains NaN/inf")
        if not self.moves_before_checking:
            self._x = np.clip(self._x + 0.1 * np.clip(u, -1, 1), -5, 5)
        distance = self._distance()
        return self._obs(), -distance, False, False, {"distance": distance}

    def render(self):
        frame = np.zeros((self.height, self.width, 3), np.uint8)
        frame[..., 0] = np.uint8(127 + 60 * np.tanh(self._x[0]))
        frame[self.height // 2 :, :, 1] = 255
        return frame

    def _obs(self) -> np.ndarray:
        return np.clip(np.concatenate([self._x, self._goal]), -10, 10)

    def _distance(self) -> float:
        return float(np.linalg.norm(self._x - self._goal))


class NaNAcceptingToyEnv(ToyEnv):
    accepts_nan = True


class FixedSizeRenderToyEnv(ToyEnv):
    """Renders but has no width/height keywords (as the robomimic env once had)."""

    def __init__(self, render_mode: str | None = None):
        super().__init__(render_mode)


class StateLosingToyEnv(ToyEnv):
    """Moves the point before it refuses the action (the refusal loses the state)."""

    moves_before_checking = True


@pytest.fixture
def register_toys():
    """Register the toy envs through ampczoo's registry; unregister them afterwards."""
    ids = {
        "AmpczooToy-v0": ToyEnv,
        "AmpczooToyNaN-v0": NaNAcceptingToyEnv,
        "AmpczooToyLosing-v0": StateLosingToyEnv,
        "AmpczooToyFixedRender-v0": FixedSizeRenderToyEnv,
    }
    for env_id, cls in ids.items():
        register_env(env_id, cls, max_episode_steps=20)
    yield ids
    for env_id in ids:
        ampczoo.envs.ENVS.pop(env_id, None)
        gym.registry.pop(env_id, None)


def test_toy_env_registered_later_is_listed_and_keeps_the_contract(register_toys):
    assert "AmpczooToy-v0" in env_ids()
    check_env_contract("AmpczooToy-v0")


def test_env_accepting_nan_actions_breaks_the_contract(register_toys):
    with pytest.raises(AssertionError, match="nan action .* was accepted"):
        CHECKS["invalid_actions"]("AmpczooToyNaN-v0")
    with pytest.raises(AssertionError):
        check_env_contract("AmpczooToyNaN-v0")


def test_env_without_width_height_render_keywords_breaks_the_contract(register_toys):
    # `ampczoo eval` records videos with gym.make(..., width=, height=)
    with pytest.raises(AssertionError, match="width= / height="):
        CHECKS["render"]("AmpczooToyFixedRender-v0")


def test_env_losing_state_on_a_refused_action_breaks_the_contract(register_toys):
    with pytest.raises(AssertionError, match="rejected action changed the env"):
        CHECKS["invalid_actions"]("AmpczooToyLosing-v0")


def test_register_env_is_idempotent_and_refuses_overrides(register_toys):
    register_env("AmpczooToy-v0", ToyEnv, max_episode_steps=20)  # same arguments: no-op
    assert env_ids().count("AmpczooToy-v0") == 1
    with pytest.raises(ValueError, match="already registered"):
        register_env("AmpczooToy-v0", ToyEnv, max_episode_steps=30)
    with pytest.raises(ValueError, match="already registered"):
        register_env("AmpczooToy-v0", NaNAcceptingToyEnv, max_episode_steps=20)
    with pytest.raises(ValueError, match="entry point"):
        register_env("AmpczooToyBad-v0", "no_colon_here")
    with pytest.raises(ValueError, match="non-empty"):
        register_env("", ToyEnv)
    assert "AmpczooToyBad-v0" not in env_ids()


def test_reimporting_the_package_registers_nothing_twice():
    import importlib
    import warnings

    before = env_ids()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gymnasium warns when an id is overridden
        importlib.reload(ampczoo.envs)
    assert env_ids() == before


def test_invalid_actions_cover_nan_inf_and_shapes():
    cases = invalid_actions(spaces.Box(-1.0, 1.0, (3,), np.float64))
    assert set(cases) == {
        "nan",
        "+inf",
        "-inf",
        "too short",
        "too long",
        "batch axis",
        "scalar",
        "None",
        "text",
    }
    assert cases["too short"].shape == (2,) and cases["too long"].shape == (4,)
    assert cases["batch axis"].shape == (1, 3) and cases["scalar"].shape == ()
    assert invalid_actions(spaces.Discrete(3)) == {}
