"""Contract tests of ThreeDOF-Reach-v0 and of the shipped 3-DOF model."""

import gymnasium as gym
import numpy as np
import pytest

import ampczoo  # noqa: F401  (registers the envs)
from ampczoo.envs.threedof_reach import ThreeDOFReachEnv
from ampczoo.robots.threedof import (
    ACTUATOR_LIMIT,
    LOWER,
    NOMINAL_WORKSPACE,
    TORQUE_LIMIT,
    UPPER,
    PinocchioKinematics,
    forward_kinematics,
    in_workspace,
    load_mujoco_spec,
    scale_dynamics,
)

ENV_ID = "ThreeDOF-Reach-v0"


# Env checkers, seeded determinism, NaN/inf/mis-shaped actions and headless rendering:
# tests/envs/test_env_contract.py (every registered id).
def test_spec_and_spaces():
    env = gym.make(ENV_ID)
    assert env.spec.max_episode_steps == 200
    assert env.observation_space.shape == (9,)
    np.testing.assert_array_equal(env.action_space.high, TORQUE_LIMIT)


def test_fk_agrees_across_mujoco_pinocchio_and_closed_form():
    import mujoco

    model = load_mujoco_spec().compile()
    data = mujoco.MjData(model)
    kin = PinocchioKinematics()
    for q in np.random.default_rng(0).uniform(LOWER, UPPER, size=(20, 3)):
        data.qpos[:] = q
        mujoco.mj_forward(model, data)
        np.testing.assert_allclose(kin.fk(q), data.site("ee").xpos, atol=1e-12)
        np.testing.assert_allclose(forward_kinematics(q), data.site("ee").xpos, atol=1e-12)
        data.qvel[:] = 0
        mujoco.mj_forward(model, data)
        np.testing.assert_allclose(kin.gravity(q), data.qfrc_bias, atol=1e-10)


def test_gravity_compensation_holds_the_arm_and_can_be_switched_off():
    env = ThreeDOFReachEnv()
    q0 = np.array([0.3, 0.4, -0.5])
    env.reset(seed=0, options={"q0": q0})
    for _ in range(50):
        obs, *_ = env.step(np.zeros(3))
    np.testing.assert_allclose(obs[:3], q0, atol=1e-9)
    env = ThreeDOFReachEnv(gravity_compensation=False)
    env.reset(seed=0, options={"q0": q0})
    for _ in range(50):
        obs, *_ = env.step(np.zeros(3))
    assert obs[1] < q0[1] - 0.1  # the arm falls


def test_actuator_headroom_covers_gravity_under_randomisation():
    """Corrective bound + max |τ_g| stays inside the motor ranges, even with every link
    mass and length scaled by 1.25 (the largest randomisation)."""
    spec = load_mujoco_spec()
    scale_dynamics(spec, np.full(3, 1.25), np.full(3, 1.25), np.full(3, 1.25))
    import mujoco

    model = spec.compile()
    data = mujoco.MjData(model)
    worst = np.zeros(3)
    for q in np.random.default_rng(1).uniform(LOWER, UPPER, size=(2000, 3)):
        data.qpos[:] = q
        mujoco.mj_forward(model, data)
        worst = np.maximum(worst, np.abs(data.qfrc_bias))
    assert np.all(TORQUE_LIMIT + worst <= ACTUATOR_LIMIT)


def test_targets_reachable_and_in_workspace():
    env = ThreeDOFReachEnv()
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        assert in_workspace(obs[6:9], NOMINAL_WORKSPACE)
    env = ThreeDOFReachEnv(target_region="ood")
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        assert not in_workspace(obs[6:9], NOMINAL_WORKSPACE)


def test_info_reward_terms_and_success():
    env = ThreeDOFReachEnv(terminate_on_success=True)
    q = np.array([0.2, 0.3, -0.4])
    target = forward_kinematics(q)
    obs, info = env.reset(seed=0, options={"q0": q, "target_pos": target})
    assert info["pos_error"] < 1e-9 and info["success"]
    obs, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0, 0.0]))
    assert reward == pytest.approx(info["reward_pos"] + info["reward_ctrl"])
    assert info["reward_ctrl"] == pytest.approx(-1e-3)
    assert terminated == info["success"]
    assert info["joint_speed"] > 0


def test_bad_inputs_raise():
    env = ThreeDOFReachEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(7))
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([np.nan, 0, 0]))
    with pytest.raises(ValueError, match="not reachable"):
        env.reset(options={"target_pos": [0.9, 0.0, 0.3]})
    with pytest.raises(ValueError, match="joint limits"):
        env.reset(options={"q0": [0.0, 3.0, 0.0]})
    with pytest.raises(ValueError, match="unknown"):
        env.reset(options={"goal": 1})
    with pytest.raises(ValueError):
        ThreeDOFReachEnv(randomize_dynamics=0.5)
    with pytest.raises(ValueError):
        ThreeDOFReachEnv(control_dt=0.003)
    _, _, _, _, info = env.step(np.array([100.0, 0.0, 0.0]))
    assert info["action_clipped"] == 1 and info["actuator_saturated"] == 0


def test_dynamics_randomisation_changes_the_model_per_episode():
    env = ThreeDOFReachEnv(randomize_dynamics=0.2)
    _, info_a = env.reset(seed=0)
    mass_a = env.model.body_mass.copy()
    _, info_b = env.reset(seed=1)
    assert not np.allclose(info_a["dynamics_scale"], info_b["dynamics_scale"])
    assert not np.allclose(mass_a, env.model.body_mass)
    assert np.all(np.abs(info_b["dynamics_scale"] - 1) <= 0.2)
    obs, *_ = env.step(np.zeros(3))  # compensation uses the randomised model
    assert np.linalg.norm(obs[3:6]) < 1e-6


def test_render_rgb_array():
    env = ThreeDOFReachEnv(render_mode="rgb_array", width=64, height=48)
    env.reset(seed=0)
    try:
        frame = env.render()
    except RuntimeError as exc:  # no offscreen GL on this machine
        pytest.skip(str(exc))
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8 and frame.std() > 0
    env.close()
