"""Decorations in rendered frames: the target pose and an optional predicted path are drawn
as MuJoCo user geoms (headless: MUJOCO_GL from tests/conftest.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import ampczoo.envs  # noqa: F401
from ampczoo.envs.rendering import Marker, check_path, path_markers, target_frame_markers

ENV_IDS = ("DAMPC-KukaTrack-v0", "ThreeDOF-Reach-v0")


def make(env_id: str) -> gym.Env:
    return gym.make(env_id, render_mode="rgb_array", width=240, height=180)


def changed_pixels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.argwhere((a != b).any(axis=-1))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_target_marker_is_drawn_and_can_be_switched_off(env_id):
    env = make(env_id)
    try:
        env.reset(seed=1)
        with_target = env.render()
        env.unwrapped.render_target = False
        without = env.render()
        env.unwrapped.render_target = True
        again = env.render()
    finally:
        env.close()
    assert with_target.shape == (180, 240, 3) and with_target.dtype == np.uint8
    np.testing.assert_array_equal(with_target, again)  # drawing is deterministic
    assert len(changed_pixels(with_target, without)) > 20


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_marker_follows_the_target(env_id):
    """The changed pixels are where the target is: moving the target moves them."""
    env = make(env_id)
    u = env.unwrapped
    try:
        centres = []
        for seed in (1, 2):
            env.reset(seed=seed)
            u.render_target = True
            on = env.render()
            u.render_target = False
            centres.append(changed_pixels(on, env.render()).mean(axis=0))
    finally:
        env.close()
    assert np.linalg.norm(centres[0] - centres[1]) > 5.0  # [px]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_render_path_drawn_validated_and_cleared_by_reset(env_id):
    env = make(env_id)
    u = env.unwrapped
    try:
        env.reset(seed=3)
        u.render_target = False
        plain = env.render()
        p = u.target_pos
        u.set_render_path(np.linspace(p + np.array([0.0, 0.15, 0.15]), p, 8))
        with_path = env.render()
        assert len(changed_pixels(with_path, plain)) > 20
        for bad in (np.zeros((4, 2)), np.full((3, 3), np.nan), np.zeros((0, 3))):
            with pytest.raises(ValueError):
                u.set_render_path(bad)
        env.reset(seed=3)
        u.render_target = False
        np.testing.assert_array_equal(env.render(), plain)  # reset cleared the path
        u.set_render_path(p[None])
        u.set_render_path(None)
        np.testing.assert_array_equal(env.render(), plain)
    finally:
        env.close()


def test_marker_builders():
    R = np.eye(3)
    markers = target_frame_markers(np.array([0.1, 0.2, 0.3]), R, length=0.1)
    arrows = [m for m in markers if m.kind == "arrow"]
    assert len(arrows) == 3
    ends = np.array([m.to for m in arrows]) - np.array([0.1, 0.2, 0.3])
    np.testing.assert_allclose(ends, 0.1 * R.T, atol=1e-12)  # one arrow per frame axis
    path = path_markers(np.cumsum(np.ones((200, 3)) * 0.01, axis=0))
    assert sum(m.kind == "sphere" for m in path) == 64  # subsampled to MAX_PATH_POINTS
    assert check_path(None) is None
    with pytest.raises(ValueError):
        Marker("cube", (0, 0, 0), 0.1, (1, 0, 0, 1))
    with pytest.raises(ValueError):
        Marker("arrow", (0, 0, 0), 0.1, (1, 0, 0, 1))  # a connector needs `to`
    with pytest.raises(ValueError):
        Marker("sphere", (0, 0, 0), 0.0, (1, 0, 0, 1))
