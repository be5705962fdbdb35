"""Scripted experts of the robomimic tasks: scene constants, per-episode randomisation from
the seed, refusal of bad observations, and closed-loop success (Lift here; Can and Square
marked slow)."""

import gymnasium as gym
import numpy as np
import pytest

import ampczoo.envs  # noqa: F401  (registers the envs)
from ampczoo.core.registry import make_policy
from ampczoo.experts import scripted_robomimic as sr
from ampczoo.experts.scripted import SCRIPTED_CONTROLLERS, ScriptedConfig

pytest.importorskip("robosuite")


def solve(env_id: str, seeds, diversity: float = 1.0) -> list[tuple[bool, int]]:
    """(success, steps) of the scripted expert on each reset seed."""
    env = gym.make(env_id)
    expert = make_policy("scripted", env_id=env_id, diversity=diversity)
    out = []
    try:
        for seed in seeds:
            obs, info = env.reset(seed=seed)
            expert.reset(seed=seed)
            done, n = False, 0
            while not done:
                obs, _, terminated, truncated, info = env.step(expert.act(obs))
                done, n = terminated or truncated, n + 1
            out.append((info["success"], n))
    finally:
        env.close()
    return out


def test_every_robomimic_id_has_a_controller_class():
    for task in ("Lift", "Can", "Square", "ToolHang", "Transport"):
        env_id = f"Robomimic-{task}-v0"
        controller = make_policy("scripted", env_id=env_id).controller
        assert type(controller).__name__ == f"{task}Controller"
    lift = make_policy("scripted", env_id="Robomimic-Lift-v0")
    assert (lift.obs_dim, lift.action_dim) == (19, 7)
    for env_id in SCRIPTED_CONTROLLERS:
        if env_id.startswith("Robomimic-"):
            sr_class = getattr(sr, SCRIPTED_CONTROLLERS[env_id].split(":")[1])
            assert issubclass(sr_class, sr.RobomimicScriptedController)


def test_scene_constants_match_robosuite():
    can = gym.make("Robomimic-Can-v0").unwrapped
    se = can.suite_env
    bin_id = se.object_to_id["can"]
    inside = np.array([*sr.CAN_TARGET_XY, se.bin2_pos[2] + 0.05])
    assert not se.not_in_bin(inside, bin_id)
    low = np.array([*sr.CAN_BIN_LOW, 0.85])
    assert se.not_in_bin(low - [0.005, 0, 0], bin_id) and se.not_in_bin(low - [0, 0.005, 0], bin_id)
    can.close()
    square = gym.make("Robomimic-Square-v0").unwrapped
    square.reset(seed=0)
    se = square.suite_env
    np.testing.assert_allclose(se.sim.data.body_xpos[se.peg1_body_id], sr.SQUARE_PEG)
    nut = se.nuts[0]
    centre = se.sim.data.body_xpos[se.obj_body_id[nut.name]]
    R = se.sim.data.body_xmat[se.obj_body_id[nut.name]].reshape(3, 3)
    handle = se.sim.data.site_xpos[se.sim.model.site_name2id(nut.important_sites["handle"])]
    np.testing.assert_allclose(R.T @ (handle - centre), sr.SQUARE_HANDLE, atol=2e-3)
    square.close()


def test_transport_bases_and_actions():
    env = gym.make("Robomimic-Transport-v0")
    try:
        obs, _ = env.reset(seed=0)
        for robot, rot in zip(env.unwrapped.suite_env.robots, sr.TRANSPORT_BASE_ROT, strict=True):
            np.testing.assert_allclose(robot.base_ori, rot, atol=1e-9)
        expert = make_policy("scripted", env_id="Robomimic-Transport-v0")
        expert.reset(seed=0)
        action = expert.act(obs)
        assert action.shape == (14,) and np.all(np.abs(action) <= 1)
        assert action[6] == action[13] == sr.OPEN  # both arms approach open
    finally:
        env.close()


@pytest.fixture(scope="module")
def toolhang_env():
    env = gym.make("Robomimic-ToolHang-v0")
    yield env
    env.close()


def test_toolhang_constants_match_robosuite(toolhang_env):
    obs, _ = toolhang_env.reset(seed=0)
    se = toolhang_env.unwrapped.suite_env
    ctrl = sr.ToolHangController(ScriptedConfig(env_id="Robomimic-ToolHang-v0"))
    site = lambda name: se.sim.data.site_xpos[se.sim.model.site_name2id(name)]  # noqa: E731
    geom = lambda name: se.sim.data.geom_xpos[se.sim.model.geom_name2id(name)]  # noqa: E731
    p, R = ctrl.frame(obs)
    np.testing.assert_allclose(p + R @ sr.FRAME_TIP, site("frame_tip_site"), atol=1e-3)
    np.testing.assert_allclose(p + R @ sr.FRAME_BAR_END, site("frame_hang_site"), atol=1e-3)
    hook = p + R @ (sr.FRAME_HOOK + [0.0, 0.0, 0.0097])  # the hook block's centre
    np.testing.assert_allclose(hook, geom("frame_hook_frame"), atol=1e-3)
    p, R = ctrl.tool(obs)
    np.testing.assert_allclose(p + R @ sr.TOOL_HOLE, site("tool_hole1_center"), atol=1e-3)
    walls = np.mean([geom(f"stand_wall{i}") for i in range(4)], axis=0)
    np.testing.assert_allclose(ctrl.hole(obs)[:2], walls[:2], atol=1e-3)


def test_toolhang_actions_are_valid_and_come_from_the_seed(toolhang_env):
    expert = make_policy("scripted", env_id="Robomimic-ToolHang-v0")

    def actions(seed: int, n: int = 40) -> np.ndarray:
        obs, _ = toolhang_env.reset(seed=0)
        expert.reset(seed=seed)
        out = []
        for _ in range(n):
            out.append(expert.act(obs))
            obs, *_ = toolhang_env.step(out[-1])
        return np.array(out)

    a, b, c = actions(3), actions(3), actions(4)
    assert a.shape == (40, 7) and np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert set(np.unique(a[:, 6])) <= {sr.OPEN, sr.CLOSE}
    assert np.linalg.norm(a[:, :3], axis=1).mean() > 0.1  # it moves toward the frame


def test_rotation_helpers_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        R = sr.quat_to_mat(q)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        v = sr.rotation_vector(R)
        angle = np.linalg.norm(v)
        axis = v / angle
        K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        np.testing.assert_allclose(
            np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K, R, atol=1e-9
        )
    assert sr.gripper_yaw(sr.rot_z(0.3) @ sr.R_DOWN) == pytest.approx(0.3)
    assert sr.nearest_yaw(0.1, 3.0, np.pi / 2) == pytest.approx(0.1 + np.pi)
    axis = np.array([1.0, 2.0, -0.5])
    R = sr.rot_axis(axis, 0.7)
    np.testing.assert_allclose(sr.rotation_vector(R), 0.7 * axis / np.linalg.norm(axis))


def test_style_comes_from_the_seed_and_diversity():
    a, b = (sr.LiftController(ScriptedConfig(env_id="Robomimic-Lift-v0")) for _ in range(2))
    a.reset(5)
    b.reset(5)
    obs = gym.make("Robomimic-Lift-v0").reset(seed=0)[0]
    np.testing.assert_array_equal(a.act(obs), b.act(obs))
    b.reset(6)
    assert a.style.speed != b.style.speed
    nominal = [
        sr.LiftController(ScriptedConfig(env_id="Robomimic-Lift-v0", diversity=0.0))
        for _ in range(2)
    ]
    nominal[0].reset(1)
    nominal[1].reset(2)
    assert nominal[0].style.speed == nominal[1].style.speed == 0.75
    assert nominal[0].style.noise_std == 0.0
    np.testing.assert_array_equal(nominal[0].act(obs), nominal[1].act(obs))


def test_bad_observations_are_refused():
    lift = make_policy("scripted", env_id="Robomimic-Lift-v0")
    with pytest.raises(ValueError, match=r"\(19,\)"):
        lift.act(np.zeros(18))
    with pytest.raises(ValueError, match="NaN"):
        lift.act(np.full(19, np.nan))
    with pytest.raises(ValueError, match="no scripted expert"):
        make_policy("scripted", env_id="Robomimic-Stack-v0")


def test_expert_solves_lift():
    results = solve("Robomimic-Lift-v0", [0, 1])
    assert all(ok for ok, _ in results)
    assert all(n < 150 for _, n in results)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["Robomimic-Can-v0", "Robomimic-Square-v0"])
def test_expert_solves_can_and_square(env_id):
    assert all(ok for ok, _ in solve(env_id, [0, 1, 2]))


@pytest.mark.slow
def test_expert_solves_transport():
    assert all(ok for ok, _ in solve("Robomimic-Transport-v0", [0, 1]))


@pytest.mark.slow
def test_expert_solves_toolhang():
    assert sum(ok for ok, _ in solve("Robomimic-ToolHang-v0", [0, 1, 2])) >= 2
