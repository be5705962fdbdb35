"""DAMPC-KukaTrackObstacle-v0 with ``obstacle_placement="between"`` (issue 15)."""

import gymnasium as gym
import numpy as np
import pytest

import ampczoo.envs  # noqa: F401  (registers the env ids)
from ampczoo.envs.kuka_track import BETWEEN_CLEARANCE, BETWEEN_FRACTION
from ampczoo.robots.kuka import OBSTACLE_CENTRE, batch_collision_free

#: Documented tolerance of "on the segment" [m].
ON_SEGMENT_TOL = 1e-9


def segment_fraction_and_distance(start, end, point):
    """(fraction t of the projection on start -> end, distance of point to that segment)."""
    d = end - start
    t = float(np.dot(point - start, d) / np.dot(d, d))
    return t, float(np.linalg.norm(start + np.clip(t, 0, 1) * d - point))


def test_between_places_the_centre_on_the_start_target_segment():
    env = gym.make("DAMPC-KukaTrackObstacle-v0", obstacle_placement="between")
    base = env.unwrapped
    centres = []
    for seed in range(8):
        obs, _ = env.reset(seed=seed)
        start, target = base.ee_pose()[0], base.target_pos
        centre = np.asarray(base.obstacle.centre)
        t, dist = segment_fraction_and_distance(start, target, centre)
        assert dist < ON_SEGMENT_TOL
        assert BETWEEN_FRACTION[0] - 1e-9 <= t <= BETWEEN_FRACTION[1] + 1e-9
        clear = base.obstacle.radius + BETWEEN_CLEARANCE
        assert min(np.linalg.norm(start - centre), np.linalg.norm(target - centre)) > clear
        assert batch_collision_free(base.q[None], base.obstacle)[0]
        np.testing.assert_allclose(obs[16:19], centre)  # the observation carries it
        centres.append(centre)
    assert len({tuple(np.round(c, 6)) for c in centres}) == len(centres)  # drawn per reset
    obs_a, _ = env.reset(seed=3)
    obs_b, _ = env.reset(seed=3)
    np.testing.assert_array_equal(obs_a, obs_b)


def test_default_placement_is_the_fixed_sphere():
    env = gym.make("DAMPC-KukaTrackObstacle-v0")
    for seed in range(3):
        env.reset(seed=seed)
        assert tuple(env.unwrapped.obstacle.centre) == tuple(OBSTACLE_CENTRE)


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("DAMPC-KukaTrackObstacle-v0", {"obstacle_placement": "left"}),
        ("DAMPC-KukaTrackObstacle-v0", {"obstacle_placement": None}),
        ("DAMPC-KukaTrack-v0", {"obstacle_placement": "between"}),
        ("DAMPC-KukaTrackObstacle-v0", {"obstacle_placement": "between", "simulation": "physics"}),
    ],
)
def test_bad_placement_rejected(env_id, kwargs):
    with pytest.raises(ValueError, match="obstacle_placement"):
        gym.make(env_id, **kwargs)


def test_given_pair_without_room_for_the_obstacle_rejected():
    env = gym.make("DAMPC-KukaTrackObstacle-v0", obstacle_placement="between")
    q0 = np.array([0.3, 0.5, -0.2, -1.2, 0.4, 0.8, 0.1])
    with pytest.raises(ValueError, match="no obstacle between"):
        env.reset(seed=0, options={"q0": q0, "target_q": q0 + 0.01})
