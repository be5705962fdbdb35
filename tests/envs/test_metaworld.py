"""Meta-World envs: ids, observation layout and modes, seeded resets, sim-state restore,
success flag, refused inputs, the missing-package message."""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("metaworld")

import ampczoo.envs  # noqa: E402,F401  (registers the ids)
from ampczoo.envs.checks import same  # noqa: E402
from ampczoo.envs.metaworld import OBS_LAYOUT, VERY_HARD_TASKS, MetaWorldEnv  # noqa: E402


def _steps(env, n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        out.append(env.step(rng.uniform(-1, 1, 4)))
    return out


@pytest.mark.parametrize("env_id", sorted(VERY_HARD_TASKS))
def test_very_hard_ids_make_their_task(env_id):
    env = gym.make(env_id)
    obs, info = env.reset(seed=0)
    assert env.unwrapped.task == VERY_HARD_TASKS[env_id]
    assert obs.shape == (39,) and obs.dtype == np.float64
    assert env.spec.max_episode_steps == 500
    assert info["success"] is False
    assert env.unwrapped.suite_env.__class__.__name__.startswith("Sawyer")
    env.close()


def test_obs_layout_covers_the_vector_in_order():
    bounds = list(OBS_LAYOUT.values())
    assert bounds[0][0] == 0 and bounds[-1][1] == 39
    assert all(a[1] == b[0] for a, b in zip(bounds[:-1], bounds[1:], strict=True))


def test_obs_entries_mean_what_the_layout_says():
    env = gym.make("MetaWorld-ShelfPlace-v0")
    obs, _ = env.reset(seed=3)
    inner = env.unwrapped.suite_env
    lay = env.unwrapped.obs_layout
    np.testing.assert_allclose(obs[slice(*lay["hand_pos"])], inner.get_endeff_pos())
    np.testing.assert_allclose(obs[slice(*lay["goal_pos"])], inner._target_pos)
    np.testing.assert_allclose(obs[slice(*lay["obj1_pos"])], inner._get_pos_objects()[:3])
    assert np.array_equal(obs[:18], obs[18:36])  # at reset the previous frame is the current
    new, *_ = env.step(np.array([1.0, 0.0, 0.0, -1.0]))
    assert np.array_equal(new[18:36], obs[:18])  # then it is the last step's
    assert new[0] > obs[0]  # the hand moved along +x
    env.close()


def test_seed_draws_the_placement_and_ignores_history():
    a, b = gym.make("MetaWorld-StickPush-v0"), gym.make("MetaWorld-StickPush-v0")
    a.reset(seed=1)
    _steps(a, 5)
    first, _ = a.reset(seed=7)
    second, _ = b.reset(seed=7)
    other, _ = b.reset(seed=8)
    assert np.array_equal(first, second)
    assert not np.allclose(first[36:], other[36:]) or not np.allclose(first[4:7], other[4:7])
    a.close()
    b.close()


@pytest.mark.parametrize("env_id", ["MetaWorld-ShelfPlace-v0", "MetaWorld-Disassemble-v0"])
def test_sim_state_restores_the_observation_and_the_future(env_id):
    env = gym.make(env_id)
    env.reset(seed=4)
    obs = _steps(env, 15)[-1][0]
    state = env.unwrapped.get_sim_state()
    assert state.dtype == np.float64 and state.shape == (env.unwrapped.sim_state_size(),)
    future = _steps(env, 10, seed=1)
    env.reset(seed=99)  # another scene in between
    restored, info = env.reset(options={"sim_state": state})
    assert same(restored, obs)
    assert isinstance(info["success"], bool)
    replay = _steps(env, 10, seed=1)
    for (o1, r1, *_), (o2, r2, *_) in zip(future, replay, strict=True):
        np.testing.assert_allclose(o2, o1, atol=1e-9)
        assert r2 == pytest.approx(r1, abs=1e-6)
    # a fresh env restores it too
    fresh = gym.make(env_id)
    again, _ = fresh.reset(options={"sim_state": state})
    assert same(again, obs)
    env.close()
    fresh.close()


def test_bad_sim_states_and_options_are_refused():
    env = gym.make("MetaWorld-PickPlaceWall-v0")
    env.reset(seed=0)
    state = env.unwrapped.get_sim_state()
    with pytest.raises(ValueError, match="shape"):
        env.reset(options={"sim_state": state[:-1]})
    bad = state.copy()
    bad[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        env.reset(options={"sim_state": bad})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"qpos": state})
    env.close()


def test_episodes_longer_than_metaworlds_500_steps_run():
    env = gym.make("MetaWorld-Disassemble-v0", max_episode_steps=502)
    env.reset(seed=0)
    out = _steps(env, 502)
    assert out[-1][3] and not any(step[3] for step in out[:-1])  # truncated at 502 only
    env.close()


def test_out_of_range_actions_are_clipped_and_counted():
    env = gym.make("MetaWorld-ShelfPlace-v0")
    env.reset(seed=0)
    *_, info = env.step(np.array([3.0, 0.0, -2.0, 0.5]))
    assert info["action_clipped"] == 2
    with pytest.raises(ValueError):
        env.step(np.zeros(3))
    env.close()


def test_dict_and_image_modes_hold_the_same_numbers():
    low = gym.make("MetaWorld-StickPull-v0")
    img = gym.make("MetaWorld-StickPull-v0", obs_mode="image", cameras=("corner2", "topview"))
    flat, _ = low.reset(seed=2)
    obs, _ = img.reset(seed=2)
    assert img.observation_space.contains(obs)
    for key, (a, b) in OBS_LAYOUT.items():
        assert np.array_equal(obs[key], flat[a:b])
    for cam in ("corner2", "topview"):
        frame = obs[f"{cam}_image"]
        assert frame.shape == (84, 84, 3) and frame.dtype == np.uint8 and frame.std() > 5
    low.close()
    img.close()


def test_any_task_by_name_and_env_args_rebuild_the_env():
    env = gym.make("MetaWorld-v0", task="door-open-v3")
    obs, _ = env.reset(seed=5)
    args = env.unwrapped.env_args()
    assert args["type"] == 2 and args["env_name"] == "MetaWorld-v0"
    assert args["env_kwargs"]["task"] == "door-open-v3"
    again = gym.make(args["env_name"], **args["env_kwargs"])
    assert same(again.reset(seed=5)[0], obs)
    env.close()
    again.close()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"task": "fly-v3"}, "unknown Meta-World task"),
        ({"obs_mode": "pixels"}, "obs_mode"),
        ({"cameras": ("nowhere",)}, "cameras"),
        ({"image_size": 0}, "image_size"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
def test_bad_constructor_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MetaWorldEnv(**kwargs)


def test_missing_metaworld_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "metaworld", None)
    with pytest.raises(ImportError, match=r"pip install 'ampczoo\[metaworld\]'"):
        MetaWorldEnv(task="reach-v3")
