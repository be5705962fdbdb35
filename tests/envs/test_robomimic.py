"""The robomimic envs (robosuite 1.5): observation layout, seeded resets, sim-state restore,
success flag, refused actions, robomimic's env_args. The contract tests
(tests/envs/test_env_contract.py) cover the Gymnasium / SB3 checkers for all five ids."""

import sys

import gymnasium as gym
import numpy as np
import pytest

import ampczoo.envs  # noqa: F401  (registers the envs)
from ampczoo.envs.robomimic import (
    ROBOMIMIC_OSC_POSE,
    TASKS,
    RobomimicEnv,
    import_robosuite,
    low_dim_keys,
    make_layout,
    quaternion_starts,
)

pytest.importorskip("robosuite")

LIFT = "Robomimic-Lift-v0"


@pytest.fixture(scope="module")
def lift():
    env = gym.make(LIFT)
    yield env
    env.close()


def steps(env, n, seed=0):
    """Observations after reset(seed) and ``n`` fixed random actions."""
    rng = np.random.default_rng(seed)
    obs = [env.reset(seed=seed)[0]]
    for _ in range(n):
        obs.append(env.step(rng.uniform(-1, 1, env.action_space.shape))[0])
    return obs


@pytest.mark.parametrize(
    "task, dims",
    [("Lift", (10, 19, 7)), ("Can", (14, 23, 7)), ("Square", (14, 23, 7)),
     ("ToolHang", (44, 53, 7)), ("Transport", (41, 59, 14))],
)  # fmt: skip
def test_layout_is_robomimics(task, dims):
    layout = make_layout(TASKS[task])
    assert list(layout) == low_dim_keys(TASKS[task])
    assert list(layout)[:4] == [
        "object",
        "robot0_eef_pos",
        "robot0_eef_quat",
        "robot0_gripper_qpos",
    ]
    object_dim, obs_dim, _ = dims
    assert layout["object"] == (0, object_dim)
    assert max(stop for _, stop in layout.values()) == obs_dim
    starts = sorted(layout.values())
    assert all(a[1] == b[0] for a, b in zip(starts, starts[1:], strict=False))  # contiguous


@pytest.mark.parametrize(
    "task, starts",
    [("Lift", (3, 13)), ("Can", (3, 10, 17)), ("Square", (3, 10, 17)),
     ("ToolHang", (3, 10, 17, 24, 31, 38, 47)), ("Transport", (3, 10, 17, 44, 53))],
)  # fmt: skip
def test_quaternion_starts(task, starts):
    assert quaternion_starts(TASKS[task]) == starts
    layout = make_layout(TASKS[task])
    for key in [k for k in layout if k.endswith("_quat")]:
        assert layout[key][0] in starts


def test_quaternion_starts_point_at_unit_quaternions_of_the_live_obs(lift):
    for obs in steps(lift, 5):
        for a in quaternion_starts(TASKS["Lift"]):
            assert abs(np.linalg.norm(obs[a : a + 4]) - 1.0) < 1e-4


def test_registration_horizons_and_spaces(lift):
    assert gym.spec(LIFT).max_episode_steps == 400
    assert gym.spec("Robomimic-ToolHang-v0").max_episode_steps == 700
    assert gym.spec("Robomimic-Transport-v0").max_episode_steps == 700
    assert lift.observation_space.shape == (19,)
    assert lift.action_space.shape == (7,)
    assert np.all(lift.action_space.low == -1) and np.all(lift.action_space.high == 1)


def test_low_dim_vector_matches_dict_obs_and_the_sim(lift):
    env_d = gym.make(LIFT, obs_mode="dict")
    try:
        flat, d = steps(lift, 3)[-1], steps(env_d, 3)[-1]
        layout = lift.unwrapped.obs_layout
        for key, (start, stop) in layout.items():
            np.testing.assert_array_equal(flat[start:stop], d[key])
        sim, cube = lift.unwrapped.suite_env.sim, lift.unwrapped.suite_env.cube
        cube_pos = sim.data.body_xpos[sim.model.body_name2id(cube.root_body)]
        eef = flat[slice(*layout["robot0_eef_pos"])]
        np.testing.assert_allclose(flat[0:3], cube_pos)
        # robomimic's (robosuite <= 1.4) sign: gripper minus cube
        np.testing.assert_allclose(flat[7:10], eef - cube_pos)
        assert abs(np.linalg.norm(flat[3:7]) - 1) < 1e-9
    finally:
        env_d.close()


def test_can_object_keeps_robomimics_order():
    env = gym.make("Robomimic-Can-v0")
    try:
        obs, _ = env.reset(seed=0)
        raw = env.unwrapped._raw
        np.testing.assert_allclose(obs[0:3], raw["Can_pos"])
        np.testing.assert_allclose(obs[3:7], raw["Can_quat"])
        np.testing.assert_allclose(obs[7:10], raw["Can_to_robot0_eef_pos"])
        np.testing.assert_allclose(obs[10:14], raw["Can_to_robot0_eef_quat"])
    finally:
        env.close()


def test_seeded_reset_is_deterministic_and_seeds_differ(lift):
    a = steps(lift, 4, seed=3)
    steps(lift, 2, seed=9)  # some history
    b = steps(lift, 4, seed=3)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(lift.reset(seed=4)[0][:3], a[0][:3])  # the cube moved


def test_reset_leaves_numpys_global_generator_alone(lift):
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    lift.reset(seed=0)
    assert np.random.rand() == expected


def test_sim_state_restore_gives_the_same_obs(lift):
    env = lift.unwrapped
    obs = steps(lift, 6, seed=2)
    state = env.get_sim_state()
    assert state.dtype == np.float64 and state.ndim == 1
    np.testing.assert_array_equal(state, env.suite_env.sim.get_state().flatten())
    restored, info = lift.reset(seed=7, options={"sim_state": state})
    np.testing.assert_array_equal(restored, obs[-1])
    np.testing.assert_array_equal(env.get_sim_state(), state)
    assert info == {"success": False}


@pytest.mark.parametrize(
    "options, match",
    [({"sim_state": np.zeros(3)}, "shape"), ({"sim_state": "x"}, "numbers"),
     ({"qpos": np.zeros(3)}, "unknown reset options")],
)  # fmt: skip
def test_bad_reset_options_are_refused(lift, options, match):
    with pytest.raises(ValueError, match=match):
        lift.reset(seed=0, options=options)
    state = lift.unwrapped.get_sim_state()
    state[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        lift.reset(seed=0, options={"sim_state": state})


def lifted_cube_state(env: RobomimicEnv) -> np.ndarray:
    """The current sim state with Lift's cube raised 0.1 m (flat state: time, qpos, qvel)."""
    se = env.suite_env
    address = se.sim.model.get_joint_qpos_addr(se.cube.joints[0])[0]
    state = env.get_sim_state()
    state[1 + address + 2] += 0.1
    return state


@pytest.mark.parametrize("terminate", [True, False])
def test_success_flag_and_termination(terminate):
    env = gym.make(LIFT, terminate_on_success=terminate)
    try:
        _, info = env.reset(seed=0)
        assert info["success"] is False
        _, info = env.reset(seed=0, options={"sim_state": lifted_cube_state(env.unwrapped)})
        assert info["success"] is True
        _, reward, terminated, truncated, info = env.step(np.zeros(7))
        assert info["success"] is True and reward == 1.0
        assert terminated is terminate and truncated is False
    finally:
        env.close()


@pytest.mark.parametrize(
    "action", [np.full(7, np.nan), np.zeros(6), np.zeros(8), np.zeros((1, 7)), None, "up"]
)
def test_bad_actions_are_refused_before_stepping(lift, action):
    lift.reset(seed=0)
    before = lift.unwrapped.get_sim_state()
    with pytest.raises(ValueError):
        lift.step(action)
    np.testing.assert_array_equal(lift.unwrapped.get_sim_state(), before)


def test_transport_has_two_arms_and_refuses_one_arm_actions():
    env = gym.make("Robomimic-Transport-v0")
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == (59,) and env.action_space.shape == (14,)
        assert env.unwrapped.suite_env.env_configuration == "opposed"
        with pytest.raises(ValueError, match="shape"):
            env.step(np.zeros(7))
    finally:
        env.close()


def test_env_args_are_robomimics(lift):
    args = lift.unwrapped.env_args()
    assert args["env_name"] == "Lift" and args["type"] == 1
    kwargs = args["env_kwargs"]
    assert kwargs["control_freq"] == 20 and kwargs["reward_shaping"] is False
    assert kwargs["ignore_done"] is True and kwargs["use_object_obs"] is True
    arm = kwargs["controller_configs"]["body_parts"]["right"]
    assert arm == ROBOMIMIC_OSC_POSE
    assert arm["kp"] == 150 and arm["output_max"] == [0.05] * 3 + [0.5] * 3
    assert arm["uncouple_pos_ori"] and arm["input_type"] == "delta" and arm["ramp_ratio"] == 0.2
    kwargs["control_freq"] = 1  # a copy
    assert lift.unwrapped.env_args()["env_kwargs"]["control_freq"] == 20


def test_image_obs_and_render():
    env = gym.make(LIFT, obs_mode="image", render_mode="rgb_array")
    try:
        obs, _ = env.reset(seed=0)
        assert set(obs) == {
            *make_layout(TASKS["Lift"]),
            "agentview_image",
            "robot0_eye_in_hand_image",
        }
        for key in ("agentview_image", "robot0_eye_in_hand_image"):
            image = obs[key]
            assert image.shape == (84, 84, 3) and image.dtype == np.uint8
            assert image.std() > 5  # not blank
        assert env.observation_space.contains(obs)
        frame = env.render()
        assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8
        # upright: robosuite's frames are bottom-up, robomimic flips them
        raw = env.unwrapped._raw["agentview_image"]
        np.testing.assert_array_equal(obs["agentview_image"], raw[::-1])
    finally:
        env.close()


@pytest.mark.parametrize(
    "kwargs, match",
    [({"task": "Stack"}, "unknown robomimic task"), ({"obs_mode": "rgb"}, "obs_mode"),
     ({"render_mode": "human"}, "render_mode"), ({"image_size": 0}, "image_size")],
)  # fmt: skip
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RobomimicEnv(**kwargs)


def test_missing_robosuite_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "robosuite", None)
    with pytest.raises(ImportError, match=r"pip install 'ampczoo\[robosuite\]'"):
        import_robosuite()
