"""History of states as the observation: the last H states stacked, plus the target."""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

PADDINGS = ("first", "zero")


class HistoryObservation(gym.ObservationWrapper):
    """Observation ``X ∈ R^{H×d}`` of the last H states plus the current target, flattened.

    The wrapped env's flat observation is split into a state part (the first ``state_dim``
    entries; default 6 = [q, q̇] of ``ThreeDOF-Reach-v0``) and the rest (the target). The
    wrapper returns ``concat(X.ravel(), rest)`` of shape (H·state_dim + rest,), where row
    H−1 of X is the newest state and row 0 the oldest (time order, as the paper's
    X_i = [x_{i−H+1}, …, x_i]); ``unflatten(obs)`` gives (X (H, state_dim), rest).

    Padding at reset: ``"first"`` (default) fills all H rows with the first state; ``"zero"``
    fills the H−1 older rows with zeros. The learned history policies keep the same buffer
    with first-state padding internally, so they take the plain env observation.

    Args:
        env: a gymnasium env with a flat Box observation space.
        history: H >= 1 (int).
        state_dim: 1 .. obs size (int).
        padding: "first" or "zero".
    """

    #: constructor arguments (besides the env) of a small working instance, for tests/docs
    example_kwargs: ClassVar[dict[str, Any]] = {"history": 2, "state_dim": 2}
    #: argument sets (over ``example_kwargs``) the constructor refuses with ValueError
    invalid_kwargs: ClassVar[tuple[dict[str, Any], ...]] = (
        {"history": 1.5},
        {"history": True},
        {"state_dim": 2.5},
        {"state_dim": 10**6},
        {"padding": "none"},
    )
    per_dimension_parameters: ClassVar[tuple[str, ...]] = ()

    def __init__(self, env: gym.Env, history: int, state_dim: int = 6, padding: str = "first"):
        if not isinstance(env, gym.Env):
            raise ValueError(f"env must be a gymnasium.Env, got {type(env).__name__}")
        for name, value in (("history", history), ("state_dim", state_dim)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        box = env.observation_space
        if not isinstance(box, spaces.Box) or len(box.shape) != 1:
            raise ValueError("HistoryObservation needs a flat Box observation space")
        if state_dim > box.shape[0]:
            raise ValueError(f"state_dim must be in 1..{box.shape[0]}, got {state_dim}")
        super().__init__(env)
        self.history, self.state_dim, self.padding = int(history), int(state_dim), padding
        s_lo, s_hi = box.low[:state_dim], box.high[:state_dim]
        if padding == "zero":
            s_lo, s_hi = np.minimum(s_lo, 0.0), np.maximum(s_hi, 0.0)
        low = np.concatenate([np.tile(s_lo, self.history), box.low[state_dim:]])
        high = np.concatenate([np.tile(s_hi, self.history), box.high[state_dim:]])
        self.observation_space = spaces.Box(low, high, dtype=box.dtype)
        self._states: deque[np.ndarray] = deque(maxlen=self.history)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the env and refill the history with the padding."""
        obs, info = self.env.reset(**kwargs)
        state = np.asarray(obs[: self.state_dim], dtype=np.float64)
        pad = state if self.padding == "first" else np.zeros_like(state)
        self._states.clear()
        self._states.extend([pad.copy() for _ in range(self.history - 1)] + [state.copy()])
        return self._stack(obs), info

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """Append the new state and return the stacked observation."""
        self._states.append(np.asarray(observation[: self.state_dim], dtype=np.float64))
        return self._stack(observation)

    def _stack(self, obs: np.ndarray) -> np.ndarray:
        rest = np.asarray(obs[self.state_dim :], dtype=np.float64)
        return np.concatenate([np.concatenate(list(self._states)), rest])

    def unflatten(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stacked observation -> (X (H, state_dim), rest)."""
        n = self.history * self.state_dim
        return np.asarray(obs[:n]).reshape(self.history, self.state_dim), np.asarray(obs[n:])
