"""robomimic HDF5 interop: a file written by plain h5py in robomimic's layout imports into an
episode store (flat obs in the env's obs_layout order), trains a policy, and exports back to
identical datasets and attributes; collected stores export too; bad files are refused by name.

The env is the toy of ``tests/toy_manip.py`` (obs_layout, env_args, sim states); the test on
``Robomimic-Lift-v0`` runs once that env is registered (the robosuite suite)."""

from __future__ import annotations

import json

import gymnasium as gym
import h5py
import numpy as np
import pytest
import toy_manip

import ampczoo.envs  # noqa: F401
from ampczoo.data import EpisodeStore, export_robomimic, import_robomimic
from ampczoo.data import robomimic as rm

LAYOUT = toy_manip.LAYOUT
#: the file's obs keys in another order than the env's layout (import must reorder)
FILE_KEYS = ("robot0_eef_pos", "object", "robot0_gripper_qpos", "robot0_joint_pos")


def write_robomimic_file(path, n_demos: int = 3, env_name: str = toy_manip.ENV_ID, **changes):
    """A robomimic-layout file, written the way robomimic's scripts write one (plain h5py)."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.attrs["creator"] = "test"
        data = f.create_group("data")
        total = 0
        for i in range(n_demos):
            T = 5 + 2 * i
            demo = data.create_group(f"demo_{i}")
            for group in ("obs", "next_obs"):
                g = demo.create_group(group)
                g.create_dataset("object", data=rng.normal(size=(T, 2)))
                g.create_dataset("robot0_eef_pos", data=rng.normal(size=(T, 2)).astype(np.float32))
                g.create_dataset("robot0_gripper_qpos", data=rng.normal(size=(T, 1)))
                g.create_dataset("robot0_joint_pos", data=rng.normal(size=(T, 7)))
                g.create_dataset(
                    "agentview_image", data=rng.integers(0, 255, (T, 4, 4, 3), dtype=np.uint8)
                )
            demo.create_dataset("actions", data=rng.uniform(-1, 1, (T, 3)))
            demo.create_dataset("rewards", data=rng.normal(size=T))
            demo.create_dataset("dones", data=(np.arange(T) == T - 1).astype(np.int64))
            demo.create_dataset("states", data=rng.normal(size=(T, 6)))
            demo.create_dataset("action_dict/abs_pos", data=rng.normal(size=(T, 2)))
            demo.attrs["num_samples"] = T
            demo.attrs["model_file"] = f"<mujoco model='demo{i}'/>"
            total += T
        data.attrs["total"] = total
        env_args = {"env_name": env_name, "type": 2, "env_kwargs": {"obs_mode": "low_dim"}}
        data.attrs["env_args"] = json.dumps(env_args)
        mask = f.create_group("mask")
        names = [f"demo_{i}".encode() for i in range(n_demos)]
        mask.create_dataset("train", data=np.array(names[1:], dtype="S"))
        mask.create_dataset("valid", data=np.array(names[:1], dtype="S"))
    for key, value in changes.items():  # breakages: "delete:<path>" / "rows:<path>"
        with h5py.File(path, "a") as f:
            if key == "delete":
                del f[value]
            elif key == "truncate":
                arr = np.asarray(f[value])[:-1]
                del f[value]
                f.create_dataset(value, data=arr)
    return path


@pytest.fixture
def toy(monkeypatch):
    toy_manip.install(monkeypatch)
    rm.env_info.cache_clear()
    yield toy_manip.ENV_ID
    rm.env_info.cache_clear()


def read_all(path) -> tuple[dict, dict]:
    """{dataset path: array}, {object path: {attr: value}} of a whole HDF5 file."""
    datasets, attrs = {}, {"/": dict(h5py.File(path, "r").attrs)}
    with h5py.File(path, "r") as f:
        attrs["/"] = dict(f.attrs)

        def visit(name, obj):
            attrs[name] = dict(obj.attrs)
            if isinstance(obj, h5py.Dataset):
                datasets[name] = obj[()]

        f.visititems(visit)
    return datasets, attrs


def assert_same_attr(a, b, where):
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert a == b, where


def assert_same_files(p, q):
    da, aa = read_all(p)
    db, ab = read_all(q)
    assert sorted(da) == sorted(db)
    for name in da:
        assert da[name].dtype == db[name].dtype, name
        assert da[name].shape == db[name].shape, name
        np.testing.assert_array_equal(da[name], db[name], err_msg=name)
    assert sorted(aa) == sorted(ab)
    for where in aa:
        assert sorted(aa[where]) == sorted(ab[where]), where
        for key in aa[where]:
            assert_same_attr(aa[where][key], ab[where][key], f"{where}@{key}")


# ----------------------------------------------------------------------------- round trip
def test_import_then_export_is_lossless(toy, tmp_path):
    src = write_robomimic_file(tmp_path / "low_dim.hdf5")
    store = import_robomimic(src, tmp_path / "s.zarr")
    assert store.n_episodes == 3 and store.n_samples == 5 + 7 + 9
    assert store.attrs["env"] == toy
    obs = store.read("obs")
    with h5py.File(src, "r") as f:
        o = f["data/demo_1/obs"]
        expected = np.concatenate([o["object"], o["robot0_eef_pos"], o["robot0_gripper_qpos"]], 1)
        rows = slice(5, 12)  # demo_1 is the second episode
        np.testing.assert_array_equal(obs[rows], expected)  # env's layout order, not the file's
        np.testing.assert_array_equal(store.read("sim_state")[rows], f["data/demo_1/states"])
        np.testing.assert_array_equal(store.read("action")[rows], f["data/demo_1/actions"])
    assert store.read("obs.robot0_joint_pos").shape == (21, 7)
    assert store.read("next_obs.agentview_image").dtype == np.uint8
    out = export_robomimic(store, tmp_path / "back.hdf5")
    assert_same_files(src, out)
    with pytest.raises(FileExistsError, match="overwrite"):
        export_robomimic(store, out)
    export_robomimic(tmp_path / "s.zarr", out, overwrite=True)
    assert_same_files(src, out)


def test_obs_keys_choose_the_flat_observation(toy, tmp_path):
    src = write_robomimic_file(tmp_path / "f.hdf5")
    keys = ["robot0_joint_pos", "object"]
    store = import_robomimic(src, tmp_path / "s.zarr", obs_keys=keys)
    with h5py.File(src, "r") as f:
        o = f["data/demo_0/obs"]
        np.testing.assert_array_equal(
            store.read("obs")[:5], np.concatenate([o["robot0_joint_pos"], o["object"]], 1)
        )
    assert store.attrs["obs_layout"] == {"robot0_joint_pos": [0, 7], "object": [7, 9]}
    assert_same_files(src, export_robomimic(store, tmp_path / "back.hdf5"))


def test_robosuite_env_name_maps_to_our_id(toy, tmp_path, monkeypatch):
    monkeypatch.setitem(rm.ROBOSUITE_ENVS, "ToyLift", toy)
    src = write_robomimic_file(tmp_path / "f.hdf5", env_name="ToyLift")
    assert import_robomimic(src, tmp_path / "s.zarr", env_id=toy).attrs["env"] == toy


def test_imported_store_trains_a_small_lsm(toy, tmp_path):
    from ampczoo import cli, load_policy
    from ampczoo.data import DemonstrationDataset

    src = write_robomimic_file(tmp_path / "f.hdf5", n_demos=4)
    import_robomimic(src, tmp_path / "s.zarr")
    run = tmp_path / "run"
    args = ["train", "lsm", "--data", str(tmp_path / "s.zarr"), "--out", str(run)]
    args += ["--epochs", "2", "--batch-size", "8", "--val-fraction", "0.25"]
    args += ["--policy.obs-features", "raw", "--policy.horizon", "4"]
    args += ["--policy.hidden-dim", "16", "--policy.num-layers", "1"]
    assert cli.main(args) == 0
    policy = load_policy(run / "last", device="cpu")
    assert (policy.config.obs_dim, policy.config.action_dim, policy.config.horizon) == (5, 3, 4)
    assert policy.act(np.zeros(5)).shape == (3,)
    train = DemonstrationDataset(tmp_path / "s.zarr", "train", 0.25, 0, action_horizon=4)
    assert train.u_seq.shape[1:] == (4, 3) and len(train.episode_ids) == 3
    state = json.loads((run / "last" / "train_state.json").read_text())
    assert state["step"] == 2 * -(-len(train) // 8)  # two epochs of batches of 8


def test_cli_import_export_round_trip(toy, tmp_path, capsys):
    from ampczoo import cli

    src = write_robomimic_file(tmp_path / "f.hdf5")
    store, back = str(tmp_path / "s.zarr"), str(tmp_path / "back.hdf5")
    assert cli.main(["data", "import-robomimic", str(src), store, "--env", toy]) == 0
    assert "imported 3 demos (21 samples)" in capsys.readouterr().out
    assert cli.main(["data", "export-robomimic", store, back]) == 0
    assert f"exported 3 demos (21 samples) from {store}" in capsys.readouterr().out
    assert_same_files(src, back)
    assert cli.main(["data", "export-robomimic", store, back]) == 2
    assert "exists; pass overwrite=True (--overwrite)" in capsys.readouterr().err
    assert cli.main(["data", "export-robomimic", store, back, "--overwrite"]) == 0
    args = ["data", "import-robomimic", str(src), str(tmp_path / "x.zarr"), "--env", "Other-v0"]
    assert cli.main(args) == 2
    assert "expected Other-v0" in capsys.readouterr().err


# ----------------------------------------------------------------------------- collected
def test_collected_store_exports_in_the_env_layout(toy, tmp_path):
    from ampczoo.data.collect import CollectConfig, collect

    cfg = CollectConfig(env=toy_manip.GYM_ID, episodes=6, out=str(tmp_path / "c.zarr"))
    report = collect(cfg, progress=False)
    store = EpisodeStore(report.path, "r")
    out = export_robomimic(store, tmp_path / "c.hdf5")
    kept = [ep for ep in store.episodes_sorted() if ep.n_kept]
    with h5py.File(out, "r") as f:
        env_args = json.loads(f["data"].attrs["env_args"])
        assert env_args["env_name"] == toy and env_args["type"] == 2
        assert int(f["data"].attrs["total"]) == store.n_samples
        demos = sorted(f["data"], key=lambda n: int(n.split("_")[1]))
        assert demos == [f"demo_{i}" for i in range(len(kept))]
        for name, ep in zip(demos, kept, strict=True):
            demo = f["data"][name]
            assert int(demo.attrs["num_samples"]) == ep.n_kept
            for key, (a, b) in LAYOUT.items():
                np.testing.assert_array_equal(demo["obs"][key], ep.data["obs"][:, a:b])
                np.testing.assert_array_equal(demo["next_obs"][key], ep.data["next_obs"][:, a:b])
            np.testing.assert_array_equal(demo["states"], ep.data["sim_state"])
            np.testing.assert_array_equal(demo["actions"], ep.data["action"])
            assert demo["dones"][-1] == 1
        masks = {m: sorted(x.decode() for x in f["mask"][m]) for m in ("train", "valid")}
    assert sorted(masks["train"] + masks["valid"]) == sorted(demos) and masks["valid"]
    # and the exported file imports back to the same rows
    again = import_robomimic(out, tmp_path / "again.zarr", env_id=toy)
    for name in ("obs", "next_obs", "action", "reward", "done", "sim_state"):
        np.testing.assert_array_equal(again.read(name), store.read(name), err_msg=name)


# ----------------------------------------------------------------------------- bad files
@pytest.mark.parametrize(
    "changes,message",
    [
        ({"delete": "data/demo_1/actions"}, "demo_1 lacks actions"),
        ({"delete": "data/demo_2/obs/object"}, "demo_2 lacks obs/object"),
        ({"delete": "data/demo_0/obs"}, "demo_0 lacks obs"),
        ({"truncate": "data/demo_1/rewards"}, "demo_1: rewards has 6 rows, actions has 7"),
        ({"truncate": "data/demo_2/next_obs/robot0_eef_pos"}, "next_obs/robot0_eef_pos has 8"),
        ({"truncate": "data/demo_0/actions"}, "num_samples 5 != 4 actions"),
        ({"delete": "data/demo_0/rewards"}, "demo_0 lacks rewards"),
    ],
)
def test_bad_files_are_refused_by_name(toy, tmp_path, changes, message):
    src = write_robomimic_file(tmp_path / "bad.hdf5", **changes)
    with pytest.raises(ValueError, match=message):
        import_robomimic(src, tmp_path / "s.zarr")


def test_other_env_missing_env_args_and_foreign_files_are_refused(toy, tmp_path):
    src = write_robomimic_file(tmp_path / "f.hdf5")
    with pytest.raises(ValueError, match="names env 'ToyManip-v0'.*expected DAMPC-KukaTrack-v0"):
        import_robomimic(src, tmp_path / "a.zarr", env_id="DAMPC-KukaTrack-v0")
    unknown = write_robomimic_file(tmp_path / "u.hdf5", env_name="NoSuchTask")
    with pytest.raises(ValueError, match="'NoSuchTask', which maps to no registered"):
        import_robomimic(unknown, tmp_path / "b.zarr")
    assert import_robomimic(unknown, tmp_path / "c.zarr", obs_keys=["object"]).n_episodes == 3
    with h5py.File(src, "a") as f:
        del f["data"].attrs["env_args"]
    with pytest.raises(ValueError, match="lack env_args; pass obs_keys"):
        import_robomimic(src, tmp_path / "d.zarr")
    (tmp_path / "text.hdf5").write_text("not hdf5")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        import_robomimic(tmp_path / "text.hdf5", tmp_path / "e.zarr")
    with h5py.File(tmp_path / "other.hdf5", "w") as f:
        f.create_dataset("x", data=[1])
    with pytest.raises(ValueError, match="not a robomimic file"):
        import_robomimic(tmp_path / "other.hdf5", tmp_path / "f.zarr")
    with pytest.raises(FileNotFoundError):
        import_robomimic(tmp_path / "missing.hdf5", tmp_path / "g.zarr")
    import_robomimic(src, tmp_path / "h.zarr", obs_keys=["object"])
    with pytest.raises(FileExistsError):
        import_robomimic(src, tmp_path / "h.zarr", obs_keys=["object"])


# ----------------------------------------------------------------------------- the real env
@pytest.mark.skipif(
    "Robomimic-Lift-v0" not in gym.registry, reason="Robomimic-Lift-v0 is not registered yet"
)
def test_robomimic_lift_collect_export_import(tmp_path):
    """The real env: a collected Lift store exports with robosuite's env_args and reimports."""
    from ampczoo.data.collect import CollectConfig, collect

    cfg = CollectConfig(
        env="Robomimic-Lift-v0",
        episodes=1,
        steps=30,  # a short, probably unfinished episode: kept with keep_failed
        out=str(tmp_path / "lift.zarr"),
        keep_failed=True,
    )
    store = EpisodeStore(collect(cfg, progress=False).path, "r")
    assert "sim_state" in store.keys and store.attrs["env_args"]["env_name"] == "Lift"
    out = export_robomimic(store, tmp_path / "lift.hdf5")
    with h5py.File(out, "r") as f:
        assert json.loads(f["data"].attrs["env_args"])["type"] == 1
        assert set(store.attrs["obs_layout"]) <= set(f["data/demo_0/obs"])
    back = import_robomimic(out, tmp_path / "back.zarr", env_id="Robomimic-Lift-v0")
    np.testing.assert_array_equal(back.read("obs"), store.read("obs"))
    np.testing.assert_array_equal(back.read("sim_state"), store.read("sim_state"))
