"""The KUKA MPC expert: convergence, constraints, multi-modality, failure handling.

All tests use ``compile=False`` (building the C code takes about a minute) and fixed seeds.
"""

import numpy as np
import pytest

from ampczoo.experts import MPCConfig, MPCExpert, MPCSolution
from ampczoo.experts.mpc import symbolic_sphere_function
from ampczoo.robots.kinematics import geodesic_angle
from ampczoo.robots.kuka import (
    VELOCITY_LIMIT,
    Obstacle,
    kuka_chain,
    make_observation,
    obstacle_penetration,
    self_collision_gaps,
)

Q_START = np.array([0.3, 0.5, -0.2, -1.2, 0.4, 0.8, 0.1])
OBSTACLE = Obstacle()


@pytest.fixture(scope="module")
def chain():
    return kuka_chain()


def random_free_q(chain, rng, margin=0.03):
    """A joint configuration with every self-collision/floor clearance above ``margin``."""
    while True:
        q = rng.uniform(0.8 * chain.lower, 0.8 * chain.upper)
        if self_collision_gaps(chain.sphere_centres_np(q)).min() > margin:
            return q


def target_obs(chain, q, q_target, obstacle=None):
    p, R = chain.ee_pose(q_target)
    return make_observation(q, p, R, obstacle)


@pytest.fixture(scope="module")
def expert():
    return MPCExpert(MPCConfig(compile=False, seed=0))


@pytest.fixture(scope="module")
def q_goal(chain):
    return random_free_q(chain, np.random.default_rng(3))


def check_solution(chain, sol: MPCSolution, obstacle=None):
    assert sol.success, sol.status
    assert np.all(np.abs(sol.u) <= VELOCITY_LIMIT + 1e-6)
    for q in [*sol.x[1:], sol.x_ref]:
        assert np.all(q >= chain.lower - 1e-6) and np.all(q <= chain.upper + 1e-6)
        centres = chain.sphere_centres_np(q)
        assert self_collision_gaps(centres).min() >= -1e-4
        if obstacle is not None:
            assert obstacle_penetration(centres, obstacle) <= 1e-4
    np.testing.assert_allclose(sol.x[1:], sol.x[:-1] + 0.1 * sol.u, atol=1e-6)


def test_symbolic_fk_matches_numpy(chain):
    fk = symbolic_sphere_function()
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.uniform(chain.lower, chain.upper)
        centres, p, R = (np.asarray(a) for a in fk(q))
        np.testing.assert_allclose(centres, chain.sphere_centres_np(q), atol=1e-12)
        p_np, R_np = chain.ee_pose(q)
        np.testing.assert_allclose(p.ravel(), p_np, atol=1e-12)
        np.testing.assert_allclose(R, R_np, atol=1e-12)


def test_closed_loop_converges(chain, expert, q_goal):
    """Seed 0, start Q_START, target = FK of a random free q (rng 3): 4 s of closed loop."""
    expert.reset(seed=0)
    q = Q_START.copy()
    p_d, R_d = chain.ee_pose(q_goal)
    for _ in range(40):
        sol = expert.solve(target_obs(chain, q, q_goal))
        check_solution(chain, sol)
        q = q + 0.1 * sol.u[0]
    p, R = chain.ee_pose(q)
    assert np.linalg.norm(p - p_d) < 0.02
    assert geodesic_angle(R_d, R) < np.radians(5.7)


def test_warm_start_reduces_iterations(chain, expert, q_goal):
    expert.reset(seed=1)
    obs = target_obs(chain, Q_START, q_goal)
    cold = expert.solve(obs)
    q = Q_START + 0.1 * cold.u[0]
    warm = expert.solve(target_obs(chain, q, q_goal))
    assert cold.success and warm.success
    assert warm.iterations < cold.iterations
    # the warm-started plan continues the cold one
    np.testing.assert_allclose(warm.x_ref, cold.x_ref, atol=0.05)


def test_obstacle_variant_respects_obstacle(chain):
    expert = MPCExpert(MPCConfig(compile=False, obstacle=True, seed=0))
    q0 = np.array([-0.9, 0.6, 0.0, -1.0, 0.0, 0.8, 0.0])
    q_goal = np.array([0.9, 0.6, 0.0, -1.0, 0.0, 0.8, 0.0])  # other side of the obstacle
    q = q0.copy()
    for _ in range(30):  # the straight joint-space path would cut through the obstacle
        sol = expert.solve(target_obs(chain, q, q_goal, OBSTACLE))
        check_solution(chain, sol, OBSTACLE)
        q = q + 0.1 * sol.u[0]
        assert obstacle_penetration(chain.sphere_centres_np(q), OBSTACLE) <= 1e-4
    assert np.linalg.norm(chain.ee_pose(q)[0] - chain.ee_pose(q_goal)[0]) < 0.02
    with pytest.raises(ValueError, match="obstacle"):
        expert.solve(target_obs(chain, q, q_goal))


def test_multiple_local_optima(chain, expert, q_goal):
    obs = target_obs(chain, Q_START, q_goal)
    sols = []
    for seed in range(10):
        expert.reset(seed=seed)
        sol = expert.solve(obs, initial_guess="random")
        if sol.success:
            sols.append(sol)
    assert len(sols) >= 5
    refs = np.array([s.x_ref for s in sols])
    dist = np.linalg.norm(refs[:, None] - refs[None], axis=-1)
    assert dist.max() > 0.5, "all random guesses converged to the same optimum"
    for s in sols:
        check_solution(chain, s)


def test_state_cold_start_is_deterministic_and_local(chain, expert, q_goal):
    """cold_start="state": the first solve ignores the seed and its artificial reference is
    nearer the start configuration than the random-guess optima (median)."""
    obs = target_obs(chain, Q_START, q_goal)
    local = MPCExpert(MPCConfig(compile=False, cold_start="state"))
    sols = []
    for seed in (0, 1):
        local.reset(seed=seed)
        sols.append(local.solve(obs))
    check_solution(chain, sols[0])
    np.testing.assert_allclose(sols[0].u, sols[1].u, atol=1e-9)
    random_refs = []
    for seed in range(6):
        expert.reset(seed=seed)
        sol = expert.solve(obs, initial_guess="random")
        if sol.success:
            random_refs.append(np.linalg.norm(sol.x_ref - Q_START))
    assert np.linalg.norm(sols[0].x_ref - Q_START) < np.median(random_refs)


def test_formulations_both_solve(chain, q_goal):
    for form in ("steady_state", "virtual_trajectory"):
        e = MPCExpert(MPCConfig(compile=False, formulation=form, seed=0))
        q = Q_START.copy()
        for _ in range(3):
            sol = e.solve(target_obs(chain, q, q_goal))
            check_solution(chain, sol)
            q = q + 0.1 * sol.u[0]
        assert sol.x_ref.shape == (7,) and sol.u.shape == (20, 7) and sol.x.shape == (21, 7)


def test_fatrop_solves(chain, q_goal):
    e = MPCExpert(MPCConfig(compile=False, solver="fatrop", seed=0))
    q = Q_START.copy()
    for _ in range(3):
        sol = e.solve(target_obs(chain, q, q_goal))
        check_solution(chain, sol)
        q = q + 0.1 * sol.u[0]


def test_forced_failure_is_safe(chain, q_goal):
    e = MPCExpert(MPCConfig(compile=False, max_iter=1, seed=0))
    obs = target_obs(chain, Q_START, q_goal)
    sol = e.solve(obs)
    assert not sol.success
    for a in (sol.u, sol.x, sol.x_ref):
        assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(sol.u, 0.0)
    action = e.act(obs)
    np.testing.assert_array_equal(action, np.zeros(7))
    assert e.n_failures == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"linear_solver": "ma27"},
        {"linear_solver": "MA57"},
        {"solver": "snopt"},
        {"formulation": "literal"},
        {"horizon": 0},
        {"dt": -0.1},
        {"max_iter": 0},
        {"cold_start": "zero"},
    ],
)
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError):
        MPCConfig(**kwargs)


def test_bad_observation_raises(chain, expert, q_goal):
    obs = target_obs(chain, Q_START, q_goal)
    bad = obs.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError):
        expert.solve(bad)
    with pytest.raises(ValueError):
        expert.act(obs[:10])


def test_cost_batch_matches_solution(chain, expert, q_goal):
    expert.reset(seed=0)
    obs = target_obs(chain, Q_START, q_goal)
    sol = expert.solve(obs)
    U = np.stack([sol.u, np.zeros_like(sol.u), np.random.default_rng(0).normal(size=sol.u.shape)])
    costs = expert.cost_batch(obs, U)
    assert costs.shape == (3,)
    assert costs[0] == pytest.approx(sol.cost, rel=1e-4)
    assert expert.cost(obs, sol.u) == pytest.approx(costs[0])
    assert costs[0] < costs[1] and costs[0] < costs[2]


def test_for_env_and_reset_reproducible(chain, q_goal):
    e = MPCExpert.for_env(20, compile=False, seed=5)
    assert e.config.obstacle
    e = MPCExpert.for_env(16, compile=False)
    obs = target_obs(chain, Q_START, q_goal)
    e.reset(seed=7)
    a = e.solve(obs)
    e.reset(seed=7)
    b = e.solve(obs)
    np.testing.assert_allclose(a.u, b.u, atol=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("solver", ["ipopt", "fatrop"])
def test_compiled_matches_interpreted(chain, q_goal, solver, tmp_path, monkeypatch):
    """Builds the C library once (about 1-2 min) into a fresh cache and reuses it."""
    from ampczoo.experts import mpc

    monkeypatch.setenv("AMPCZOO_CACHE", str(tmp_path))
    cfg = MPCConfig(compile=True, solver=solver, seed=0)
    compiled = MPCExpert(cfg)
    libs = list(tmp_path.glob("*.so"))
    assert len(libs) == 1
    mtime = libs[0].stat().st_mtime
    assert mpc.compiled_library(cfg, None) == libs[0]  # cached: no rebuild
    assert libs[0].stat().st_mtime == mtime
    plain = MPCExpert(MPCConfig(compile=False, solver=solver, seed=0))
    obs = target_obs(chain, Q_START, q_goal)
    a, b = compiled.solve(obs), plain.solve(obs)
    check_solution(chain, a)
    np.testing.assert_allclose(a.u, b.u, atol=1e-5)


def test_array_initial_guess(chain, expert, q_goal):
    expert.reset(seed=0)
    obs = target_obs(chain, Q_START, q_goal)
    ref = expert.solve(obs)
    again = expert.solve(obs, initial_guess=ref.u)
    assert again.success
    np.testing.assert_allclose(again.u, ref.u, atol=1e-4)
    expert.reset()
    with pytest.raises(ValueError):
        expert.solve(obs, initial_guess="warm")
    with pytest.raises(ValueError):
        expert.solve(obs, initial_guess="bogus")
