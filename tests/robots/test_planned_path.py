"""The end-effector path of a planned joint-velocity sequence (drawn in eval videos)."""

from __future__ import annotations

import numpy as np
import pytest

from ampczoo.robots.kuka import kuka_chain, planned_ee_path


def test_path_starts_at_the_current_pose_and_follows_the_inputs():
    chain = kuka_chain()
    rng = np.random.default_rng(0)
    q0 = rng.uniform(0.5 * chain.lower, 0.5 * chain.upper)
    u = rng.uniform(-0.5, 0.5, size=(6, 7))
    path = planned_ee_path(q0, u, 0.1)
    assert path.shape == (7, 3)
    np.testing.assert_allclose(path[0], chain.ee_pose(q0)[0], atol=1e-12)
    q3 = q0 + 0.1 * u[:3].sum(axis=0)  # inside the limits: the plain Euler rollout
    np.testing.assert_allclose(path[3], chain.ee_pose(q3)[0], atol=1e-12)
    np.testing.assert_allclose(planned_ee_path(q0, np.zeros((4, 7)), 0.1), np.tile(path[0], (5, 1)))


def test_path_stops_at_the_joint_limits():
    chain = kuka_chain()
    q0 = chain.upper - 0.01
    path = planned_ee_path(q0, np.full((5, 7), 2.0), 0.1)  # every joint pushed past its limit
    np.testing.assert_allclose(path[1:], np.tile(chain.ee_pose(chain.upper)[0], (5, 1)))


@pytest.mark.parametrize(
    ("q0", "u", "dt"),
    [
        (np.zeros(6), np.zeros((3, 7)), 0.1),
        (np.zeros(7), np.zeros(7), 0.1),
        (np.zeros(7), np.zeros((3, 6)), 0.1),
        (np.zeros(7), np.full((3, 7), np.nan), 0.1),
        (np.zeros(7), np.zeros((3, 7)), 0.0),
        (np.zeros(7), np.zeros((3, 7)), float("inf")),
    ],
)
def test_bad_input_is_refused(q0, u, dt):
    with pytest.raises(ValueError):
        planned_ee_path(q0, u, dt)
