"""HistoryObservation: padding, order, spaces."""

import gymnasium as gym
import numpy as np
import pytest

import ampczoo  # noqa: F401
from ampczoo.wrappers import HistoryObservation


@pytest.mark.parametrize("padding", ["first", "zero"])
def test_padding_and_order(padding):
    env = HistoryObservation(gym.make("ThreeDOF-Reach-v0"), history=4, padding=padding)
    assert env.observation_space.shape == (4 * 6 + 3,)
    obs, _ = env.reset(seed=0)
    X, target = env.unflatten(obs)
    first = X[-1].copy()
    pad = first if padding == "first" else np.zeros(6)
    np.testing.assert_array_equal(X[:-1], np.tile(pad, (3, 1)))
    states = [first]
    for _ in range(5):
        raw, *_ = env.step(np.array([1.0, -2.0, 1.0]))
        X, target = env.unflatten(raw)
        states.append(X[-1].copy())
    np.testing.assert_array_equal(X, np.array(states[-4:]))  # oldest first, newest last
    np.testing.assert_array_equal(target, env.unwrapped.target_pos)
    assert env.observation_space.contains(raw)
    obs, _ = env.reset(seed=1)  # reset clears the history
    X, _ = env.unflatten(obs)
    assert not np.any(np.all(X == states[-1], axis=1))


def test_bad_arguments():
    with pytest.raises(ValueError):
        HistoryObservation(gym.make("ThreeDOF-Reach-v0"), history=0)
    with pytest.raises(ValueError):
        HistoryObservation(gym.make("ThreeDOF-Reach-v0"), history=2, padding="mean")
