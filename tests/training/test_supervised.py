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
def test_train_checkpoints_and_resume(policy, store, tmp_path):
    out = tmp_path / "run"
    assert _train(policy, store, out, 1) == 0
    meta1 = json.loads((out / "last" / "train_state.json").read_text())
    assert meta1["epoch"] == 1 and meta1["step"] == 3  # ceil(4 train episodes x 20 / 32)
    assert (out / "best" / "model.safetensors").is_file()
    assert any((out / "tb").iterdir())
    assert _train(policy, store, out, 2) == 2  # refuses to overwrite without --resume
    assert _train(policy, store, out, 2, "--resume") == 0
    meta2 = json.loads((out / "last" / "train_state.json").read_text())
    assert meta2["epoch"] == 2 and meta2["step"] == 6 and np.isfinite(meta2["val_loss"])
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
