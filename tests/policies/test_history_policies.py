"""FFN / LSTM / GRU / Transformer history policies of the 3-DOF arm."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import ampczoo
from ampczoo.cli import main
from ampczoo.core.registry import make_policy
from ampczoo.data.dataset import DemonstrationDataset
from ampczoo.data.store import Episode, EpisodeStore

ARCHS = ["ffn", "lstm", "gru", "transformer"]
SMALL = {
    "ffn": {"hidden_dim": 64, "num_layers": 2},
    "lstm": {"hidden_dim": 32},
    "gru": {"hidden_dim": 32},
    "transformer": {"d_model": 32, "ff_dim": 64},
}
H = 3
LIMIT = np.array([6.0, 10.0, 4.0])


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models train fastest on one thread (and do not fight other jobs for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def toy_windows(n: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """Histories (n, H, 9) whose target torque needs the history: τ = 2 (q_t − q_{t−2})."""
    hist = rng.normal(size=(n, H, 9)).astype(np.float32)
    tau = 2.0 * (hist[:, -1, :3] - hist[:, 0, :3])
    u_seq = np.repeat(tau[:, None], 4, axis=1)
    return {"obs_history": torch.from_numpy(hist), "u_seq": torch.from_numpy(u_seq)}


@pytest.mark.parametrize("arch", ARCHS)
def test_overfits_a_tiny_data_set(arch):
    torch.manual_seed(0)
    policy = make_policy(arch, history=H, horizon=4, **SMALL[arch])
    batch = toy_windows(128, np.random.default_rng(0))
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
    first = float(policy.loss(batch)[0].detach())
    for _ in range(300):
        loss, _ = policy.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.05 * first, (first, float(loss.detach()))


@pytest.mark.parametrize("arch", ARCHS)
def test_history_buffer_padding_and_reset(arch):
    torch.manual_seed(0)
    policy = make_policy(arch, history=H, **SMALL[arch]).eval()
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(5, 9)) * 0.3
    policy.reset()
    a0 = policy.act(obs[0])
    with torch.no_grad():  # first-state padding: the window is obs[0] repeated
        ref = policy(torch.tensor(np.repeat(obs[:1], H, 0)[None], dtype=torch.float32))[0]
    np.testing.assert_allclose(a0, np.clip(ref.numpy(), -LIMIT, LIMIT), atol=1e-5)
    actions = [a0] + [policy.act(o) for o in obs[1:]]
    with torch.no_grad():  # later steps see the last H observations, oldest first
        ref = policy(torch.tensor(obs[None, 2:5], dtype=torch.float32))[0].numpy()
    np.testing.assert_allclose(actions[-1], np.clip(ref, -LIMIT, LIMIT), atol=1e-5)
    policy.reset()  # a new episode does not see the old one
    np.testing.assert_allclose(policy.act(obs[0]), a0, atol=1e-6)
    with pytest.raises(ValueError):
        policy.act(np.full(9, np.nan))
    with pytest.raises(ValueError):
        policy.act(np.zeros(6))


def test_stateful_recurrent_mode_carries_the_hidden_state():
    torch.manual_seed(0)
    policy = make_policy("gru", history=H, recurrent_mode="stateful", hidden_dim=16).eval()
    obs = np.random.default_rng(2).normal(size=(6, 9)) * 0.3
    policy.reset()
    actions = [policy.act(o) for o in obs]
    with torch.no_grad():  # = the RNN run over the whole episode so far
        full = policy(torch.tensor(obs[None], dtype=torch.float32))[0].numpy()
    np.testing.assert_allclose(actions[-1], full, atol=1e-5)
    policy.reset()
    np.testing.assert_allclose(policy.act(obs[0]), actions[0], atol=1e-6)


def test_post_hoc_saturation():
    policy = make_policy("ffn", history=2, hidden_dim=8, num_layers=1).eval()
    policy.tau_mean.fill_(100.0)
    policy.reset()
    np.testing.assert_allclose(policy.act(np.zeros(9)), [6.0, 10.0, 4.0])


@pytest.mark.parametrize("arch", ARCHS)
def test_checkpoint_round_trip(arch, tmp_path):
    policy = make_policy(arch, history=H, **SMALL[arch]).eval()
    policy.tau_std.fill_(2.0)
    policy.save_pretrained(tmp_path / arch)
    loaded = ampczoo.load_policy(tmp_path / arch, device="cpu")
    assert type(loaded) is type(policy) and loaded.config == policy.config
    obs = np.random.default_rng(3).normal(size=(4, 9)) * 0.3
    for o in obs:
        np.testing.assert_allclose(loaded.act(o), policy.act(o), atol=1e-6)
    assert loaded.name == arch  # lstm and gru are one class; the config picks the cell
    other = "ffn" if arch != "ffn" else "transformer"
    with pytest.raises(ValueError):
        make_policy(other).from_pretrained(tmp_path / arch)


def test_config_validation():
    with pytest.raises(ValueError):
        make_policy("ffn", history=0)
    with pytest.raises(ValueError):
        make_policy("transformer", d_model=30, num_heads=4)
    with pytest.raises(ValueError):
        make_policy("lstm", recurrent_mode="bidirectional")
    with pytest.raises(TypeError):
        make_policy("gru", hiden_dim=3)


# ----------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def arm_store(tmp_path_factory):
    """12 episodes of 30 steps shaped like ThreeDOF data: τ*_0 = q_t − q_{t−1} (needs H>=2)."""
    path = tmp_path_factory.mktemp("arm") / "arm.zarr"
    store = EpisodeStore(path)
    rng = np.random.default_rng(0)
    episodes = []
    for e in range(12):
        q = np.cumsum(rng.normal(scale=0.2, size=(30, 3)), axis=0)
        obs = np.concatenate(
            [q, rng.normal(size=(30, 3)), np.tile(rng.normal(size=3), (30, 1))], axis=1
        )
        tau = np.diff(q, axis=0, prepend=q[:1])
        episodes.append(
            Episode(e, e, 30, data={"obs": obs, "u_seq": np.repeat(tau[:, None], 5, axis=1)})
        )
    store.add_episodes(episodes)
    return path


def test_dataset_history_windows(arm_store):
    ds = DemonstrationDataset(arm_store, "train", 0.2, 0, history=4, test_fraction=0.2)
    b = ds.batch(slice(0, 31))
    hist = b["obs_history"]
    assert hist.shape == (31, 4, 9)
    np.testing.assert_array_equal(hist[:, -1], b["obs"])
    np.testing.assert_array_equal(hist[0], b["obs"][0].expand(4, 9))  # first-state padding
    np.testing.assert_array_equal(hist[2, :2], b["obs"][0].expand(2, 9))
    np.testing.assert_array_equal(hist[30, -1], b["obs"][30])  # next episode starts fresh
    np.testing.assert_array_equal(hist[30, 0], b["obs"][30])
    splits = [
        set(DemonstrationDataset(arm_store, s, 0.2, 0, test_fraction=0.2).episode_ids)
        for s in ("train", "val", "test")
    ]
    assert sum(map(len, splits)) == 12 and not (splits[0] & splits[1] | splits[0] & splits[2])
    val_only = DemonstrationDataset(arm_store, "val", 0.2, 0)  # val unchanged by a test split
    assert set(val_only.episode_ids) == splits[1]


@pytest.mark.parametrize("arch", ["gru", "transformer"])
def test_cli_train_history_policy_with_early_stopping(arch, arm_store, tmp_path):
    out = tmp_path / arch
    size = "--policy.d-model" if arch == "transformer" else "--policy.hidden-dim"
    args = [
        "train",
        arch,
        "--data",
        str(arm_store),
        "--out",
        str(out),
        "--policy.history",
        "3",
        "--epochs",
        "40",
        "--batch-size",
        "64",
        "--no-cosine",
        "--val-fraction",
        "0.2",
        "--test-fraction",
        "0.2",
        "--patience",
        "2",
        size,
        "32",
    ]
    assert main(args) == 0
    test = json.loads((out / "test_loss.json").read_text())
    assert np.isfinite(test["test_loss"]) and test["test_episodes"] > 0
    state = json.loads((out / "last" / "train_state.json").read_text())
    assert state["stale_epochs"] <= 2
    policy = ampczoo.load_policy(out / "best", device="cpu")
    assert policy.config.history == 3 and policy.config.horizon == 5
    policy.reset()
    assert policy.act(np.zeros(9)).shape == (3,)
