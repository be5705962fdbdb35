"""Collection with an ``act(obs)`` policy (the :class:`PolicyBuilder`): the env's scripted
expert by default, on the toy manipulation env of ``tests/toy_manip.py``: per-step rows
(obs, next_obs, action, reward, done, success, sim state), only successful episodes kept by
default and the failed ones counted, env kwargs passed through, workers and resume giving the
same data, and the action chunks the dataset serves for training."""

from __future__ import annotations

from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import toy_manip

from ampczoo.data.collect import (
    POLICY_BUILDER_SPEC,
    CollectConfig,
    collect,
    episode_seed,
)
from ampczoo.data.store import EpisodeStore

ROWS = {"obs", "next_obs", "action", "reward", "done", "success", "sim_state"}


@pytest.fixture
def toy(monkeypatch):
    return toy_manip.install(monkeypatch)


def toy_config(tmp_path, name="s.zarr", **kw) -> CollectConfig:
    kw = {"env": toy_manip.GYM_ID, "episodes": 10, "flush_interval_s": 0.0, **kw}
    return CollectConfig(out=str(tmp_path / name), **kw)


def assert_same_stores(a: EpisodeStore, b: EpisodeStore) -> None:
    ea, eb = a.episodes_sorted(), b.episodes_sorted()
    assert [(e.episode_index, e.seed, e.n_steps, e.n_failed) for e in ea] == [
        (e.episode_index, e.seed, e.n_steps, e.n_failed) for e in eb
    ]
    for x, y in zip(ea, eb, strict=True):
        assert x.data.keys() == y.data.keys()
        for k in x.data:
            np.testing.assert_array_equal(x.data[k], y.data[k], err_msg=k)


def test_defaults_pick_the_policy_builder_and_the_env_horizon(toy):
    cfg = CollectConfig(env=toy)
    assert cfg.builder == POLICY_BUILDER_SPEC and cfg.steps == toy_manip.MAX_STEPS
    assert cfg.out == "data/toymanip.zarr"  # not the KUKA default
    assert (cfg.snr, cfg.solver, cfg.control_dt) == (None, None, None)  # MPC-only fields
    kuka = CollectConfig()
    assert (kuka.builder, kuka.steps, kuka.snr) == ("ampczoo.data.collect:MPC_BUILDER", 80, 0.8)
    assert kuka.out == CollectConfig(env="ThreeDOF-Reach-v0").out == "data/kuka_track.zarr"
    with pytest.raises(ValueError, match="not registered"):
        CollectConfig(env="NoSuchEnv-v0", policy="scripted")
    with pytest.raises(ValueError, match="env_kwargs must be a dict"):
        CollectConfig(env=toy, env_kwargs="obs_mode=image")  # type: ignore[arg-type]


def test_scripted_episodes_store_steps_and_drop_failures(toy, tmp_path):
    report = collect(toy_config(tmp_path), progress=False)
    store = EpisodeStore(report.path, "r")
    assert set(store.keys) == ROWS and not report.errors
    failed = store.meta("n_failed")
    kept_rows = np.diff(np.concatenate([[0], store.episode_ends]))
    assert 0 < report.episodes_failed == failed.sum() < 10  # the toy fails ~40 % of seeds
    assert np.all(kept_rows[failed == 1] == 0) and np.all(kept_rows[failed == 0] > 0)
    assert store.attrs["episodes_failed"] == failed.sum()
    assert store.attrs["episodes_successful"] == 10 - failed.sum()
    assert store.attrs["obs_layout"] == {k: list(v) for k, v in toy_manip.LAYOUT.items()}
    assert store.attrs["env_args"]["env_name"] == toy_manip.ENV_ID
    assert store.attrs["expert_config"]["policy"] == "scripted"
    assert store.attrs["expert_config"]["config"]["env_id"] == toy_manip.ENV_ID
    assert "successful" in str(report) and "not stored" in str(report)
    # every kept episode replays from its first sim state with its actions
    env = gym.make(toy_manip.GYM_ID)
    for ep in store.episodes_sorted():
        if not ep.n_kept:
            continue
        assert ep.data["success"][-1] and ep.data["done"][-1] == 1
        assert not ep.data["success"][:-1].any()  # terminate_on_success
        obs, _ = env.reset(options={"sim_state": ep.data["sim_state"][0]})
        np.testing.assert_array_equal(obs, ep.data["obs"][0])
        for t, action in enumerate(ep.data["action"]):
            obs, *_ = env.step(action)
            np.testing.assert_array_equal(obs, ep.data["next_obs"][t])
        np.testing.assert_array_equal(ep.data["next_obs"][:-1], ep.data["obs"][1:])
        assert ep.seed == episode_seed(0, ep.episode_index) & 0x7FFFFFFF


def test_keep_failed_env_kwargs_and_diversity_pass_through(toy, tmp_path):
    cfg = toy_config(
        tmp_path,
        keep_failed=True,
        env_kwargs={"obs_mode": "image", "terminate_on_success": False},
        policy_kwargs={"diversity": 0.0},
        steps=12,
    )
    report = collect(cfg, progress=False)
    store = EpisodeStore(report.path, "r")
    assert report.samples_kept == store.n_samples == 10 * 12  # no early ends, all kept
    assert store.read("obs.agentview_image").shape == (120, 8, 8, 3)
    assert store.read("obs").shape == (120, 5)  # the layout keys, flat
    assert store.attrs["env_kwargs"] == {"obs_mode": "image", "terminate_on_success": False}
    assert store.attrs["expert_config"]["config"]["diversity"] == 0.0
    assert store.attrs["keep_failed"] is True
    ends = store.episode_ends
    success_last = store.read("success")[ends - 1]
    np.testing.assert_array_equal(store.meta("n_failed"), (~success_last).astype(int))


def test_workers_and_resume_give_the_same_data(toy, tmp_path):
    serial = collect(toy_config(tmp_path, "a.zarr", episodes=6), progress=False)
    parallel = collect(toy_config(tmp_path, "b.zarr", episodes=6, workers=2), progress=False)
    assert_same_stores(EpisodeStore(serial.path, "r"), EpisodeStore(parallel.path, "r"))
    part = toy_config(tmp_path, "c.zarr", episodes=3)
    collect(part, progress=False)
    with pytest.raises(ValueError, match="keep_failed"):
        collect(replace(part, resume=True, keep_failed=True), progress=False)
    more = collect(replace(part, episodes=6, resume=True), progress=False)
    assert more.episodes == 3 and more.episodes_skipped == 3  # failed ones are not re-run
    assert_same_stores(EpisodeStore(serial.path, "r"), EpisodeStore(part.out, "r"))


def test_cli_flags_of_the_policy_builder():
    from ampczoo.cli import parse_config

    args = ["--env", "DAMPC-KukaTrack-v0", "--policy", "mpc", "--keep-failed"]
    args += ["--env-kwargs", "obs_mode", "image", "terminate_on_success", "False"]
    args += ["--policy-kwargs", "diversity", "0.5", "--steps", "5"]
    cfg = parse_config(CollectConfig, args)
    assert cfg.env_kwargs == {"obs_mode": "image", "terminate_on_success": False}
    assert cfg.policy_kwargs == {"diversity": 0.5} and cfg.keep_failed
    assert cfg.builder == POLICY_BUILDER_SPEC  # --policy: an act(obs) policy in the env


def test_dataset_serves_action_chunks(toy, tmp_path):
    from ampczoo.data.dataset import DemonstrationDataset

    report = collect(toy_config(tmp_path, episodes=4), progress=False)
    ds = DemonstrationDataset(report.path, "train", 0.0, 0, action_horizon=3)
    store = EpisodeStore(report.path, "r")
    actions, ends = store.read("action"), store.episode_ends
    assert ds.u_seq.shape == (store.n_samples, 3, 3)
    np.testing.assert_array_equal(ds.u_seq[:, 0], actions)
    last = ends[ends > 0][0] - 1  # the last row of the first stored episode
    np.testing.assert_array_equal(ds.u_seq[last - 1], actions[[last - 1, last, last]])
    with pytest.raises(ValueError, match="action_horizon"):
        DemonstrationDataset(report.path, action_horizon=0)


def test_a_package_env_without_an_expert_needs_a_policy():
    with pytest.raises(ValueError, match="no scripted expert.*--policy"):
        CollectConfig(env="MetaWorld-v0")
    given = CollectConfig(env="MetaWorld-v0", policy="dp-metaworld")
    assert given.builder == POLICY_BUILDER_SPEC
