"""The MPC expert's joint-limit dead ends and their fix (issue 15): re-seeding the artificial
reference from another IK branch when the closed loop stalls off the target.

The dead end is a recorded one: the final configuration of ``DAMPC-KukaTrack-v0`` reset seed
1000 under the expert before the fix (fatrop, ``cold_start="state"``, control_dt 0.02 s; joint
7 at its lower limit, 44 mm / 10 deg off the target), rounded to 1 mrad, with the target
moved to the FK of a nearby rounded configuration on the reachable branch. ``compile=False``
as in test_mpc.py.
"""

import numpy as np
import pytest

from ampczoo.experts import MPCConfig, MPCExpert
from ampczoo.experts.mpc import RESEED_TRIED_TOL, reference_pose_errors, target_ik_solutions
from ampczoo.robots.kuka import (
    Obstacle,
    kuka_chain,
    make_observation,
    obstacle_penetration,
    parse_observation,
    self_collision_gaps,
)

Q_DEAD = np.array([0.234, -0.901, 0.692, -1.357, 1.571, -1.564, -3.054])
Q_TARGET = np.array([-0.72, -1.11, -0.16, -1.19, 0.06, 1.01, -0.86])


def dead_end_obs(q: np.ndarray = Q_DEAD, obstacle: Obstacle | None = None) -> np.ndarray:
    p, R = kuka_chain().ee_pose(Q_TARGET)
    return make_observation(q, p, R, obstacle)


def expert(**overrides) -> MPCExpert:
    return MPCExpert(MPCConfig(compile=False, cold_start="state", seed=0, **overrides))


def closed_loop(e: MPCExpert, steps: int) -> tuple[np.ndarray, float, float]:
    """``steps`` solves at 0.1 s from Q_DEAD (kinematic plant): final q, pos [m], rot [rad]."""
    e.reset(seed=0)
    q = Q_DEAD.copy()
    for _ in range(steps):
        q = q + 0.1 * e.act(dead_end_obs(q))
    pos, rot = reference_pose_errors(q, *kuka_chain().ee_pose(Q_TARGET))
    return q, float(pos[0]), float(rot[0])


def test_dead_end_is_detected():
    """The first solve at the dead end keeps a reference at joint 7's limit that misses the
    target; the loop sits on it, so it is stalled. From a far start it is not (yet)."""
    e = expert(reseed_on_stall=False)
    e.reset(seed=0)
    obs = dead_end_obs()
    sol = e.solve(obs)
    assert sol.success
    assert sol.x_ref[6] - kuka_chain().lower[6] < 1e-3  # joint 7 at its lower limit
    pos, _ = reference_pose_errors(sol.x_ref, *kuka_chain().ee_pose(Q_TARGET))
    assert pos[0] > 0.02
    assert e.misses_target(obs, sol) and e.settled(obs, sol) and e.is_stalled(obs, sol)
    e.reset(seed=0)
    far = dead_end_obs(np.zeros(7))
    assert not e.is_stalled(far, e.solve(far))


def test_reference_on_target_is_never_a_stall():
    """Next to the target the reference reaches it (FK errors inside the stall bounds, which
    the d_y shortcut of misses_target must agree with): settled, yet not stalled."""
    e = expert()
    e.reset(seed=0)
    obs = dead_end_obs(Q_TARGET + 0.02)
    sol = e.solve(obs)
    pos, rot = reference_pose_errors(sol.x_ref, *kuka_chain().ee_pose(Q_TARGET))
    assert pos[0] < e.config.stall_pos_error and rot[0] < e.config.stall_rot_error
    assert e.settled(obs, sol)
    assert not e.misses_target(obs, sol) and not e.is_stalled(obs, sol)
    e._ref_errors = [sol.output_error] * 20  # flat, but on target
    assert not e.is_stalled(obs, sol)


def test_flat_reference_error_is_a_stall():
    """Before settling: a reference that misses the target and whose output error fell by
    less than stall_progress over stall_window solves is a stall; a falling one is not."""
    e = expert(stall_window=4, stall_progress=0.05)
    e.reset(seed=0)
    obs = dead_end_obs(Q_DEAD + np.array([0.0, 0.0, 0.0, 0.3, 0.0, 0.0, 0.3]))
    sol = e.solve(obs, initial_guess={"u": np.zeros((20, 7)), "x_ref": Q_DEAD})
    assert e.misses_target(obs, sol) and not e.settled(obs, sol)
    e._ref_errors = [1.0, 0.99, 0.98, 0.97, 0.96]
    assert e.is_stalled(obs, sol)
    e._ref_errors = [1.0, 0.9, 0.8, 0.7, 0.6]
    assert not e.is_stalled(obs, sol)
    e._ref_errors = [1.0] * 4  # too short a history
    assert not e.is_stalled(obs, sol)


def test_dead_end_kept_without_reseeding_left_with_it():
    """4 s of closed loop from the dead end: the paper's expert stays > 20 mm off; the default
    expert re-seeds once and reaches the target (< 2 mm, < 1 deg)."""
    _, pos_off, _ = closed_loop(expert(reseed_on_stall=False), 40)
    assert pos_off > 0.02
    e = MPCExpert(MPCConfig(compile=False, cold_start="state", seed=0))
    assert e.config.reseed_on_stall  # the default has the fix
    q, pos, rot = closed_loop(e, 40)
    assert pos < 2e-3 and rot < np.radians(1.0)
    assert e.n_reseeds == 1 and e.n_reseed_attempts == 1
    ch = kuka_chain()
    assert np.all(q >= ch.lower - 1e-6) and np.all(q <= ch.upper + 1e-6)


def test_target_ik_solutions_reach_the_target_collision_free():
    obstacle = Obstacle()
    ob = parse_observation(dead_end_obs(obstacle=obstacle))
    sols = target_ik_solutions(ob, np.random.default_rng(0), 6, 5e-3, 0.035)
    assert len(sols) >= 2
    ch = kuka_chain()
    pos, rot = reference_pose_errors(sols, ob.target_pos, ob.target_rot)
    assert np.all(pos <= 5e-3) and np.all(rot <= 0.035)
    assert np.all(sols >= ch.lower) and np.all(sols <= ch.upper)
    dist = np.linalg.norm(sols - ob.q, axis=1)
    assert np.all(np.diff(dist) >= 0)  # nearest first
    for q in sols:
        centres = ch.sphere_centres_np(q)
        assert self_collision_gaps(centres).min() >= -1e-6
        assert obstacle_penetration(centres, obstacle) <= 1e-6


def test_reseed_tries_a_new_branch_each_time():
    """The accepted re-seed leaves the dead end (its solution is not stalled); a second one in
    the same episode only tries references farther than RESEED_TRIED_TOL from those tried
    before; reset forgets them."""
    e = expert()
    e.reset(seed=0)
    obs = dead_end_obs()
    e.solve(obs)
    first = e.reseed_reference(obs)
    assert first is not None and first.success and not e.is_stalled(obs, first)
    assert e.last_solution is first
    before = list(e._tried_refs)
    e.reseed_reference(obs)
    for q in e._tried_refs[len(before) :]:
        assert all(np.max(np.abs(q - t)) > RESEED_TRIED_TOL for t in before)
    e.reset(seed=0)
    assert e._tried_refs == [] and e._reseed_wait == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stall_gap": 0.0},
        {"stall_gap": float("nan")},
        {"stall_pos_error": -1e-3},
        {"stall_pos_error": float("inf")},
        {"stall_rot_error": 0},
        {"stall_rot_error": "0.1"},
        {"stall_progress": 1.0},
        {"stall_progress": 0.0},
        {"stall_window": 0},
        {"reseed_ik_seeds": 0},
        {"reseed_ik_seeds": 2.5},
        {"reseed_ik_seeds": True},
        {"reseed_cooldown": -1},
        {"reseed_on_stall": "yes"},
    ],
)
def test_bad_reseed_config_raises(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        MPCConfig(**kwargs)
