"""IK (damped least squares) and the IK + MPC expert of the 3-DOF arm."""

import gymnasium as gym
import numpy as np
import pytest

import ampczoo  # noqa: F401
from ampczoo.experts.ikmpc import IKMPCConfig, IKMPCExpert
from ampczoo.robots.threedof import LOWER, TORQUE_LIMIT, UPPER, forward_kinematics
from ampczoo.robots.threedof_ik import DampedLeastSquaresIK, DLSConfig


def test_ik_converges_on_reachable_targets():
    ik = DampedLeastSquaresIK()
    rng = np.random.default_rng(0)
    for q_true in rng.uniform(LOWER * 0.9, UPPER * 0.9, size=(30, 3)):
        res = ik.solve(forward_kinematics(q_true), rng.uniform(LOWER, UPPER))
        assert res.converged, res
        assert np.linalg.norm(forward_kinematics(res.q) - forward_kinematics(q_true)) < 1e-4
        assert np.all(res.q >= LOWER) and np.all(res.q <= UPPER)


def test_ik_reports_unreachable_targets():
    ik = DampedLeastSquaresIK(DLSConfig(max_iter=50))
    res = ik.solve(np.array([0.0, 0.0, 1.5]), np.zeros(3))  # 1.2 m above the shoulder
    assert not res.converged and res.error > 0.5
    assert res.iterations == 50 * 3  # the seed and both restarts ran to I_max
    with pytest.raises(ValueError):
        ik.solve(np.array([np.nan, 0, 0]), np.zeros(3))


@pytest.mark.parametrize("solver", ["osqp", "proxqp", "ipopt"])
def test_mpc_respects_torque_bounds_and_agrees_across_solvers(solver):
    expert = IKMPCExpert(IKMPCConfig(solver=solver))
    obs = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.3, 0.3, 0.6])  # far: bounds active
    sol = expert.solve(obs)
    assert sol.success and sol.ik_converged
    assert np.all(np.abs(sol.tau) <= TORQUE_LIMIT + 1e-9)
    assert np.any(np.isclose(np.abs(sol.tau[0]), TORQUE_LIMIT, atol=1e-4))
    reference = IKMPCExpert(IKMPCConfig(solver="osqp")).solve(obs)
    np.testing.assert_allclose(sol.tau, reference.tau, atol=2e-3)
    # the predicted states follow the double integrator
    dt = expert.config.dt
    np.testing.assert_allclose(sol.x[1:, :3], sol.x[:-1, :3] + dt * sol.x[:-1, 3:], atol=1e-9)
    np.testing.assert_allclose(sol.x[1:, 3:], sol.x[:-1, 3:] + dt * sol.tau, atol=1e-9)


def test_mpc_config_rejects_torque_bound_beyond_the_sim():
    with pytest.raises(ValueError, match="clipped"):
        IKMPCConfig(torque_limit=(6.0, 20.0, 4.0))
    with pytest.raises(ValueError):
        IKMPCConfig(solver="cplex")
    with pytest.raises(ValueError):
        IKMPCExpert().act(np.zeros(8))


def test_closed_loop_reaches_the_target():
    env = gym.make("ThreeDOF-Reach-v0")
    expert = IKMPCExpert()
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        expert.reset()
        for _ in range(150):
            obs, _, _, _, info = env.step(expert.act(obs))
            assert info["action_clipped"] == 0 and info["actuator_saturated"] == 0
        assert info["success"], info
    assert expert.n_failures == 0 and expert.n_ik_failures == 0
