"""`ampczoo train` on a tiny synthetic Zarr store: runs, checkpoints, resumes bit for bit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.torch import load_file

import ampczoo
from ampczoo.cli import main
from ampczoo.data.store import Episode, EpisodeStore

N = 3


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "toy.zarr"
    st = EpisodeStore(path)
    rng = np.random.default_rng(0)
    episodes = []
    for e in range(6):
        obs = rng.normal(size=(20, 16)).astype(np.float32)
        u = np.tanh(obs[:, :7])[:, None, :] * np.ones((1, N, 1), np.float32)
        episodes.append(Episode(e, e, 20, data={"obs": obs, "u_seq": u.astype(np.float32)}))
    st.add_episodes(episodes)
    return path


def _train(policy, store, out, epochs, *extra):
    return main(
        [
            "train",
            policy,
            "--data",
            str(store),
            "--out",
            str(out),
            "--epochs",
            str(epochs),
            "--batch-size",
            "32",
            "--policy.hidden-dim",
            "16",
            "--policy.num-layers",
            "2",
            "--warmup-steps",
            "2",
            "--val-fraction",
            "0.34",
            *extra,
        ]
    )


@pytest.mark.parametrize("policy", ["lsm", "dampc"])
def test_train_checkpoints_and_resume(policy, store, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(policy, store, out, 1) == 0
    meta1 = json.loads((out / "last" / "train_state.json").read_text())
    assert meta1["epoch"] == 1 and meta1["step"] == 3  # ceil(4 train episodes x 20 / 32)
    assert meta1["schedule_total"] == 3
    assert (out / "best" / "model.safetensors").is_file()
    assert any((out / "tb").iterdir())
    assert _train(policy, store, out, 2) == 2  # refuses to overwrite without --resume
    capsys.readouterr()
    assert _train(policy, store, out, 2, "--resume") == 0
    # the longer run follows the 6-step schedule from step 3 on, and says so
    notice = capsys.readouterr().err
    assert "now 6 optimizer steps long (was 3)" in notice and "step 3 goes from 0 to" in notice
    meta2 = json.loads((out / "last" / "train_state.json").read_text())
    assert meta2["epoch"] == 2 and meta2["step"] == 6 and np.isfinite(meta2["val_loss"])
    assert meta2["schedule_total"] == 6
    # the resumed run equals an uninterrupted 2-epoch run bit for bit
    straight = tmp_path / "straight"
    assert _train(policy, store, straight, 2) == 0
    a = load_file(str(out / "last" / "train_state.safetensors"))
    b = load_file(str(straight / "last" / "train_state.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] == b[k]).all(), k
    loaded = ampczoo.load_policy(out / "best", device="cpu")
    assert loaded.act(np.zeros(16)).shape == (7,)
    assert loaded.config.horizon == N and loaded.config.hidden_dim == 16


def test_keep_checkpoints_snapshots_the_last_k(store, tmp_path):
    out = tmp_path / "run"
    assert _train("lsm", store, out, 4, "--keep-checkpoints", "2") == 0
    snaps = sorted(p.name for p in out.glob("step-*"))
    assert snaps == ["step-0000009", "step-0000012"]  # 3 steps per epoch, epochs 3 and 4
    last = load_file(str(out / "last" / "model.safetensors"))
    newest = load_file(str(out / "step-0000012" / "model.safetensors"))
    older = load_file(str(out / "step-0000009" / "model.safetensors"))
    assert all((last[k] == newest[k]).all() for k in last)
    assert any((last[k] != older[k]).any() for k in last)
    assert json.loads((out / "step-0000009" / "card.json").read_text())["selection"] == "snapshot"
    assert ampczoo.load_policy(out / "step-0000009", device="cpu").act(np.zeros(16)).shape == (7,)
    # every 2nd epoch; a resumed run keeps pruning
    every = tmp_path / "every"
    assert _train("lsm", store, every, 2, "--keep-checkpoints", "3", "--checkpoint-every", "2") == 0
    assert (
        _train(
            "lsm", store, every, 6, "--keep-checkpoints", "3", "--checkpoint-every", "2", "--resume"
        )
        == 0
    )
    assert sorted(p.name for p in every.glob("step-*")) == [
        "step-0000006",
        "step-0000012",
        "step-0000018",
    ]


@pytest.mark.parametrize("flag, value", [("--keep-checkpoints", "-1"), ("--checkpoint-every", "0")])
def test_snapshot_options_are_validated(store, tmp_path, flag, value):
    assert _train("lsm", store, tmp_path / "bad", 1, flag, value) != 0
