"""Contract tests of the KUKA tracking envs (DAMPC-KukaTrack-v0, DAMPC-KukaTrackObstacle-v0)."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import ampczoo  # noqa: F401  (registers the envs)
from ampczoo.envs.kuka_track import SUCCESS_ROT, KukaTrackEnv
from ampczoo.robots.kinematics import EE_FRAME, load_pinocchio_model
from ampczoo.robots.kuka import (
    OBS_DIM,
    OBS_DIM_OBSTACLE,
    Obstacle,
    batch_collision_free,
    build_mujoco_spec,
    kuka_chain,
    obstacle_penetration,
    parse_observation,
    self_collision_gaps,
)

ENV_IDS = ["DAMPC-KukaTrack-v0", "DAMPC-KukaTrackObstacle-v0"]
Q_HOME = np.array([0.0, -0.3, 0.0, 1.2, 0.0, -0.8, 0.0])  # clear of the obstacle
Q_OTHER = np.array([0.4, 0.3, -0.2, -1.0, 0.3, 1.0, 0.5])


def random_q(n: int, seed: int = 0) -> np.ndarray:
    chain = kuka_chain()
    return np.random.default_rng(seed).uniform(chain.lower, chain.upper, size=(n, chain.nq))


def colliding_q() -> np.ndarray:
    """A configuration in self/floor collision (the first one of a fixed random sample)."""
    chain = kuka_chain()
    for q in random_q(200, seed=3):
        if self_collision_gaps(chain.sphere_centres_np(q)).min() < 0:
            return q
    raise AssertionError("no colliding configuration in the sample")


def rollout(env: gym.Env, seed: int, steps: int = 30) -> tuple[np.ndarray, np.ndarray]:
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    traj, rewards = [obs], []
    for _ in range(steps):
        obs, reward, _, _, _ = env.step(env.action_space.sample())
        traj.append(obs)
        rewards.append(reward)
    return np.array(traj), np.array(rewards)


# ----------------------------------------------------------------- registry contract
# Env checkers, seeded determinism, NaN/inf/mis-shaped actions and headless rgb_array
# rendering of every registered id: tests/envs/test_env_contract.py.
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spaces_and_spec(env_id):
    env = gym.make(env_id)
    obstacle = "Obstacle" in env_id
    assert env.spec.max_episode_steps == 250
    assert env.action_space == gym.spaces.Box(-2.3, 2.3, (7,), np.float64)
    assert env.observation_space.shape == ((OBS_DIM_OBSTACLE,) if obstacle else (OBS_DIM,))
    assert env.observation_space.dtype == np.float64
    obs, _ = env.reset(seed=1)
    parsed = parse_observation(obs)
    u = env.unwrapped
    np.testing.assert_array_equal(parsed.q, u.q)
    np.testing.assert_array_equal(parsed.target_pos, u.target_pos)
    np.testing.assert_allclose(parsed.target_rot, u.target_rot, atol=1e-12)
    assert parsed.obstacle == u.obstacle == (Obstacle() if obstacle else None)
    assert u.control_dt == 0.02 and u.chain is kuka_chain()
    p, R = u.ee_pose()
    assert p.shape == (3,) and R.shape == (3, 3)
    env.close()


def test_make_with_module_prefix_in_fresh_interpreter():
    code = (
        "import sys, gymnasium as gym\n"
        "env = gym.make('ampczoo:DAMPC-KukaTrack-v0')\n"
        "obs, _ = env.reset(seed=0)\n"
        "assert obs.shape == (16,)\n"
        "import ampczoo; assert ampczoo.__version__ == '0.1.0'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_import_is_light():
    code = (
        "import sys, ampczoo, gymnasium as gym\n"
        "assert 'DAMPC-KukaTrackObstacle-v0' in gym.registry\n"
        "heavy = {'mujoco', 'pinocchio', 'casadi', 'torch'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ----------------------------------------------------------------- kinematics
def test_fk_mujoco_pinocchio_chain_agree():
    import mujoco
    import pinocchio as pin

    chain = kuka_chain()
    model = build_mujoco_spec(None, actuated=False).compile()
    data = mujoco.MjData(model)
    site = model.site("ee").id
    pmodel = load_pinocchio_model()
    pdata = pmodel.createData()
    fid = pmodel.getFrameId(EE_FRAME)
    for q in random_q(50, seed=11):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        pin.framesForwardKinematics(pmodel, pdata, q)
        p, R = chain.ee_pose(q)
        np.testing.assert_allclose(p, pdata.oMf[fid].translation, atol=1e-12)
        np.testing.assert_allclose(R, pdata.oMf[fid].rotation, atol=1e-12)
        np.testing.assert_allclose(data.site_xpos[site], p, atol=1e-9)
        np.testing.assert_allclose(data.site_xmat[site].reshape(3, 3), R, atol=1e-9)


def test_batch_collision_check_matches_kuka_functions():
    chain = kuka_chain()
    qs = random_q(300, seed=5)
    obstacle = Obstacle()
    for obs in (None, obstacle):
        free = batch_collision_free(qs, obs)
        for q, f in zip(qs, free, strict=True):
            c = chain.sphere_centres_np(q)
            expected = self_collision_gaps(c).min() > 0
            if obs is not None:
                expected &= obstacle_penetration(c, obs) == 0
            assert f == expected
        assert 0 < free.sum() < len(qs)


# ----------------------------------------------------------------- reset
@pytest.mark.parametrize("obstacle", [False, True])
def test_reset_samples_collision_free_start_and_target(obstacle):
    env = KukaTrackEnv(obstacle=obstacle)
    chain = env.chain
    for seed in range(25):
        _, info = env.reset(seed=seed)
        c = chain.sphere_centres_np(env.q)
        assert self_collision_gaps(c).min() > 0 and not info["self_collision"]
        assert np.all(env.q >= chain.lower) and np.all(env.q <= chain.upper)
        if obstacle:
            assert info["penetration"] == 0.0 == obstacle_penetration(c, env.obstacle)
            d = np.linalg.norm(env.target_pos - np.array(env.obstacle.centre))
            assert d > env.obstacle.radius
        else:
            assert info["penetration"] == 0.0


def test_reset_options_honoured():
    env = KukaTrackEnv(obstacle=True)
    obs, info = env.reset(seed=0, options={"q0": Q_HOME, "target_q": Q_OTHER})
    np.testing.assert_array_equal(env.q, Q_HOME)
    p, R = env.chain.ee_pose(Q_OTHER)
    np.testing.assert_allclose(env.target_pos, p)
    np.testing.assert_allclose(env.target_rot, R)
    env.reset(seed=0, options={"q0": Q_HOME, "target_pos": p, "target_rot": R})
    np.testing.assert_allclose(env.target_pos, p)
    # q0 alone: target still sampled, deterministic under the seed
    env.reset(seed=4, options={"q0": Q_OTHER})
    t1 = env.target_pos
    env.reset(seed=4, options={"q0": Q_OTHER})
    np.testing.assert_array_equal(env.target_pos, t1)
    np.testing.assert_array_equal(env.q, Q_OTHER)


@pytest.mark.parametrize(
    "options",
    [
        {"q0": np.full(7, np.nan)},
        {"q0": np.ones(6)},
        {"q0": np.full(7, 3.5)},
        {"target_q": np.array([0, 0, 0, 0, 0, 0, np.inf])},
        {"bogus": 1},
        {"target_q": Q_OTHER, "target_pos": np.zeros(3), "target_rot": np.eye(3)},
        {"target_pos": np.array([0.5, 0.0, 0.5])},
        {"target_pos": np.array([3.0, 0.0, 0.5]), "target_rot": np.eye(3)},
        {"target_pos": np.array([0.5, 0.0, -0.1]), "target_rot": np.eye(3)},
        {"target_pos": np.array([0.5, 0.0, 0.5]), "target_rot": 2 * np.eye(3)},
        {"target_pos": np.array([0.5, 0.0, 0.5]), "target_rot": np.diag([1.0, 1.0, -1.0])},
        {"target_pos": np.array([0.55, 0.0, 0.45]), "target_rot": np.eye(3)},  # obstacle centre
    ],
)
def test_bad_reset_options_rejected(options):
    env = KukaTrackEnv(obstacle=True)
    with pytest.raises(ValueError):
        env.reset(seed=0, options=options)


def test_colliding_configurations_rejected():
    env = KukaTrackEnv()
    q = colliding_q()
    with pytest.raises(ValueError, match="collision"):
        env.reset(options={"q0": q})
    with pytest.raises(ValueError, match="collision"):
        env.reset(options={"target_q": q})
    chain = kuka_chain()
    inside = next(
        q
        for q in random_q(500, seed=9)
        if obstacle_penetration(chain.sphere_centres_np(q), Obstacle()) > 0
        and self_collision_gaps(chain.sphere_centres_np(q)).min() > 0
    )
    env.reset(options={"q0": inside})  # fine without the obstacle
    with pytest.raises(ValueError):
        KukaTrackEnv(obstacle=True).reset(options={"q0": inside})


# ----------------------------------------------------------------- step
def test_out_of_range_actions_clipped_and_counted():
    env = KukaTrackEnv()
    env.reset(seed=0, options={"q0": Q_HOME, "target_q": Q_OTHER})
    u = np.array([5.0, -5.0, 1.0, 0.0, 0.0, 0.0, 2.3])
    _, _, _, _, info = env.step(u)
    assert info["action_clipped"] == 2 and info["action_clipped_total"] == 2
    expected = Q_HOME + 0.02 * np.clip(u, -2.3, 2.3)
    np.testing.assert_allclose(env.q, expected)
    _, _, _, _, info = env.step(u)
    assert info["action_clipped_total"] == 4


def test_kinematic_step_clips_to_joint_limits():
    env = KukaTrackEnv()
    env.reset(seed=0, options={"q0": Q_HOME, "target_q": Q_OTHER})
    for _ in range(100):
        env.step(np.array([2.3, 0, 0, 0, 0, 0, 0]))
    assert env.q[0] == env.chain.upper[0]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reward_terms_sum_and_info(env_id):
    env = gym.make(env_id)
    _, info = env.reset(seed=2)
    keys = {
        "pos_error",
        "rot_error",
        "penetration",
        "self_collision",
        "success",
        "reward_pos",
        "reward_rot",
    }
    assert keys <= set(info)
    for _ in range(10):
        _, reward, terminated, _, info = env.step(env.action_space.sample())
        assert reward == pytest.approx(info["reward_pos"] + info["reward_rot"], abs=1e-12)
        assert info["reward_pos"] == pytest.approx(-1.0 * info["pos_error"])
        assert info["reward_rot"] == pytest.approx(-0.1 * info["rot_error"])
        assert not terminated


def test_success_when_start_equals_target():
    env = KukaTrackEnv(obstacle=True)
    _, info = env.reset(options={"q0": Q_HOME, "target_q": Q_HOME})
    assert info["success"] and info["pos_error"] < 1e-12 and info["rot_error"] < 1e-6
    _, reward, _, _, info = env.step(np.zeros(7))
    assert info["success"] and reward == pytest.approx(0.0, abs=1e-6)
    _, _, _, _, info = env.step(np.full(7, 2.3))
    assert not info["success"] and info["rot_error"] > SUCCESS_ROT


def _first_truncation(env: gym.Env, steps: int) -> int:
    env.reset(seed=0)
    flags = [env.step(np.zeros(7))[3] for _ in range(steps)]
    return flags.index(True) + 1


def test_truncation_after_five_seconds():
    env = gym.make("DAMPC-KukaTrack-v0")
    env.reset(seed=0)
    for t in range(250):
        _, _, terminated, truncated, _ = env.step(np.zeros(7))
        assert not terminated
        assert truncated == (t == 249)
    assert _first_truncation(gym.make("DAMPC-KukaTrack-v0", control_dt=0.1), 60) == 50
    assert _first_truncation(KukaTrackEnv(control_dt=0.05), 120) == 100
    longer = gym.make(
        "DAMPC-KukaTrack-v0", control_dt=0.1, episode_seconds=8.0, max_episode_steps=80
    )
    assert _first_truncation(longer, 80) == 80


def test_physics_mode_tracks_constant_velocity():
    env = gym.make("DAMPC-KukaTrack-v0", simulation="physics")
    env.reset(seed=0, options={"q0": Q_HOME, "target_q": Q_OTHER})
    u = np.array([0.3, -0.2, 0.4, 0.5, -0.3, 0.2, 0.6])
    for _ in range(25):  # 0.5 s
        env.step(u)
    moved = env.unwrapped.q - Q_HOME
    np.testing.assert_allclose(moved, 0.5 * u, rtol=0.05)


def test_physics_mode_deterministic_and_checked():
    env = KukaTrackEnv(simulation="physics", obstacle=True)
    gym_check_env(env, skip_render_check=True)
    a, _ = rollout(KukaTrackEnv(simulation="physics"), seed=3, steps=10)
    b, _ = rollout(KukaTrackEnv(simulation="physics"), seed=3, steps=10)
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------- variants and kwargs
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_dict_observation_mode(env_id):
    env = gym.make(env_id, obs_mode="dict")
    assert isinstance(env.observation_space, gym.spaces.Dict)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    flat = KukaTrackEnv(obstacle="Obstacle" in env_id)
    flat_obs, _ = flat.reset(seed=0)
    np.testing.assert_array_equal(np.concatenate(list(obs.values())), flat_obs)
    expected = {"q", "target_pos", "target_rot6d"}
    if "Obstacle" in env_id:
        expected |= {"obstacle_centre", "obstacle_radius"}
    assert set(obs) == expected
    gym_check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"simulation": "dynamic"},
        {"obs_mode": "image"},
        {"render_mode": "rgb"},
        {"control_dt": 0.0},
        {"control_dt": float("nan")},
        {"control_dt": -0.02},
        {"simulation": "physics", "control_dt": 0.003},
        {"episode_seconds": 0.01},
        {"width": 0},
        {"height": 10.5},
        {"obstacle": "yes"},
        {"pos_weight": -1.0},
        {"control_dt": True},
        {"rot_weight": float("inf")},
    ],
)
def test_bad_kwargs_rejected(kwargs):
    with pytest.raises(ValueError):
        KukaTrackEnv(**kwargs)


def test_unknown_kwarg_rejected():
    with pytest.raises(TypeError):
        gym.make("DAMPC-KukaTrack-v0", obstacles=True)


# ----------------------------------------------------------------- rendering
def _osmesa_or_egl_available() -> bool:
    import ctypes.util
    import os

    backend = os.environ.get("MUJOCO_GL", "")
    lib = {"osmesa": "OSMesa", "egl": "EGL"}.get(backend)
    return lib is not None and ctypes.util.find_library(lib) is not None


@pytest.mark.parametrize("simulation", ["kinematic", "physics"])
def test_rgb_array_render(simulation):
    if not _osmesa_or_egl_available():
        pytest.skip("no offscreen GL: install libosmesa6 (MUJOCO_GL=osmesa) or use EGL")
    env = gym.make(
        "DAMPC-KukaTrackObstacle-v0",
        render_mode="rgb_array",
        width=160,
        height=120,
        simulation=simulation,
    )
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8
    assert frame.std() > 5
    env.step(np.full(7, 2.3))
    for _ in range(5):
        env.step(np.full(7, 2.3))
    assert not np.array_equal(env.render(), frame)  # the robot moved
    env.close()
    assert env.unwrapped._renderer is None


def test_human_render_without_display_raises(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if sys.platform.startswith("linux"):
        with pytest.raises(RuntimeError, match="display"):
            KukaTrackEnv(render_mode="human")


def test_render_without_mode_warns():
    env = KukaTrackEnv()
    env.reset(seed=0)
    with pytest.warns(UserWarning):
        assert env.render() is None


def test_gpu_without_libegl_defaults_to_osmesa(monkeypatch):
    """A CUDA machine without libEGL must not get MUJOCO_GL=egl (import mujoco fails there)."""
    import ctypes.util

    from ampczoo.envs import rendering

    monkeypatch.setattr(rendering.os.path, "exists", lambda p: p == "/dev/nvidia0")
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert not rendering.has_gpu()
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: f"lib{name}.so.1")
    assert rendering.has_gpu()
