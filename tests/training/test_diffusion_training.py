"""Diffusion Policy through the one training loop: the windows the dataset serves (T_o
observations, T_p actions from the first of them, DP's padding, camera arrays), ``ampczoo
train diffusion_policy`` end to end, the data-parallel loss split, and (slow) the same loss
curve under ``torchrun`` with 2 gloo processes as with one process at equal global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import ampczoo
from ampczoo.cli import main
from ampczoo.data.dataset import DemonstrationDataset
from ampczoo.data.store import Episode, EpisodeStore
from ampczoo.policies.diffusion_policy import DiffusionPolicy, DiffusionPolicyConfig
from ampczoo.training.supervised import DistContext

LAYOUT = {"object": [0, 2], "robot0_eef_pos": [2, 4], "robot0_gripper_qpos": [4, 5]}
SMALL = [
    "--policy.down-dims",
    "16",
    "32",
    "--policy.pred-horizon",
    "8",
    "--policy.action-horizon",
    "4",
    "--policy.step-embed-dim",
    "16",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """6 episodes of 10-14 steps: obs (5,) = row id in obs[0], action (3,) = row id in a[0],
    an 6x6 camera per step; the toy env's layout and id in the attrs."""
    path = tmp_path_factory.mktemp("data") / "dp.zarr"
    st = EpisodeStore(path)
    rng = np.random.default_rng(0)
    episodes, row = [], 0
    for e in range(6):
        n = 10 + e % 5
        ids = np.arange(row, row + n, dtype=np.float64)
        obs = np.column_stack([ids, rng.normal(size=(n, 4))])
        act = np.column_stack([ids, np.tanh(obs[:, 1]), np.ones(n)])
        cam = rng.integers(0, 255, (n, 6, 6, 3), dtype=np.uint8)
        data = {"obs": obs, "action": act, "obs.cam": cam}
        episodes.append(Episode(e, e, n, data=data))
        row += n
    st.add_episodes(episodes)
    st.update_attrs({"env": "ToyManip-v0", "obs_layout": LAYOUT})
    return path


def test_dataset_serves_dp_windows_with_dp_padding(store):
    ds = DemonstrationDataset(
        store, "train", 0.0, 0, history=2, action_horizon=6, action_lead=1, image_keys=("cam",)
    )
    st = EpisodeStore(store, "r")
    ends = st.episode_ends
    first, last = 0, int(ends[0]) - 1  # rows of the first episode
    b = ds.batch(torch.tensor([first, first + 3, last]))
    # history: [o_{t-1}, o_t], the first observation repeated at the episode start
    np.testing.assert_array_equal(b["obs_history"][:, :, 0], [[0, 0], [2, 3], [last - 1, last]])
    # actions A_{t-1} .. A_{t+4}: first action before the start, last one past the end
    np.testing.assert_array_equal(b["u_seq"][0, :, 0], [0, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(b["u_seq"][1, :, 0], [2, 3, 4, 5, 6, 7])
    np.testing.assert_array_equal(b["u_seq"][2, :, 0], [last - 1, last] + [last] * 4)
    cams = st.read("obs.cam")
    assert b["images.cam"].dtype == torch.uint8 and b["images.cam"].shape == (3, 2, 6, 6, 3)
    np.testing.assert_array_equal(b["images.cam"][1].numpy(), cams[[2, 3]])
    with pytest.raises(ValueError, match="obs.nope"):
        DemonstrationDataset(store, image_keys=("nope",))
    with pytest.raises(ValueError, match="action_lead"):
        DemonstrationDataset(store, action_lead=-1)


def test_train_cli_builds_from_the_store_and_saves_ema_weights(store, tmp_path):
    out = tmp_path / "run"
    args = ["train", "diffusion_policy", "--data", str(store), "--out", str(out)]
    args += ["--max-steps", "4", "--batch-size", "8", "--warmup-steps", "1", *SMALL]
    assert main(args) == 0
    policy = ampczoo.load_policy(out / "last", device="cpu")
    c = policy.config
    assert isinstance(policy, DiffusionPolicy)
    assert (c.obs_dim, c.action_dim, c.env_id) == (5, 3, "ToyManip-v0")
    assert c.obs_layout == tuple((k, a, b) for k, (a, b) in LAYOUT.items())
    # min-max normalisation over the train split's actions (the default val_fraction 0.1)
    train = DemonstrationDataset(store, "train", 0.1, 0, history=2, action_horizon=8)
    lo, hi = train.u_seq.min((0, 1)), train.u_seq.max((0, 1))
    np.testing.assert_allclose(policy.action_norm.center.numpy(), (lo + hi) / 2, rtol=1e-5)
    np.testing.assert_allclose(policy.action_norm.half_range.numpy()[:2], ((hi - lo) / 2)[:2], 1e-5)
    # the saved policy is the EMA (it differs from the raw weights after a few steps)
    state = load_file(str(out / "last" / "train_state.safetensors"))
    raw, ema = state["model.model.final.1.weight"], state["ema.model.final.1.weight"]
    assert not torch.equal(raw, ema)
    torch.testing.assert_close(policy.model.final[1].weight, ema)
    policy.reset(seed=0)
    assert policy.act(np.zeros(5)).shape == (3,)


def test_train_cli_with_a_camera(store, tmp_path):
    out = tmp_path / "cam"
    args = ["train", "diffusion_policy", "--data", str(store), "--out", str(out)]
    args += ["--max-steps", "2", "--batch-size", "4", *SMALL, "--policy.image-keys", "cam"]
    args += ["--policy.image-shape", "6", "6", "3", "--policy.image-channels", "8"]
    assert main(args) == 0
    policy = ampczoo.load_policy(out / "last", device="cpu")
    obs = {"object": np.zeros(2), "robot0_eef_pos": np.zeros(2), "robot0_gripper_qpos": [0.0]}
    policy.reset(seed=0)
    assert policy.act({**obs, "cam": np.zeros((6, 6, 3), np.uint8)}).shape == (3,)


def test_shard_losses_recombine_to_the_global_batch_loss(store):
    """What each DDP process computes: its shard's loss with the global batch's noise rows;
    weighted by the shard shares they give the one-process loss and gradient."""
    ds = DemonstrationDataset(store, history=2, action_horizon=8, action_lead=1)
    torch.manual_seed(0)
    config = DiffusionPolicyConfig(
        obs_dim=5, action_dim=3, pred_horizon=8, action_horizon=4, down_dims=(8, 16)
    )
    p = DiffusionPolicy(config)
    p.set_normalization(ds.normalization_stats())
    p.double()  # exact up to float64 round-off

    def batch_of(rows: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v.double() for k, v in ds.batch(rows).items()}

    idx = torch.arange(7)
    torch.manual_seed(1)
    full, _ = p.loss(batch_of(idx))
    full.backward()
    want = [q.grad.clone() for q in p.parameters()]
    p.zero_grad()
    total = 0.0
    for rank in range(2):
        ctx = DistContext(world=2, rank=rank)
        shard, rows = ctx.shard(idx)
        batch = {**batch_of(shard), "global_rows": rows, "global_size": torch.tensor(7)}
        torch.manual_seed(1)  # every process has the same RNG state
        loss, _ = p.loss(batch)
        (loss * len(shard) / len(idx)).backward()  # DDP: world * share, averaged over world
        total += float(loss.detach()) * len(shard) / len(idx)
    assert total == pytest.approx(float(full.detach()), rel=1e-12)
    for q, g in zip(p.parameters(), want, strict=True):
        torch.testing.assert_close(q.grad, g, rtol=1e-9, atol=1e-12)


def _tb_losses(run: Path) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    return [e.value for e in acc.Scalars("train/loss")]


@pytest.mark.slow
def test_torchrun_two_gloo_processes_match_one_process(store, tmp_path):
    """torchrun --nproc-per-node 2 (gloo, CPU) gives the loss curve of one process at the same
    global batch (both draw the global batch's noise; DDP averages the shard gradients)."""
    args = ["train", "diffusion_policy", "--data", str(store), "--max-steps", "6"]
    args += ["--batch-size", "10", "--warmup-steps", "2", "--lr", "1e-3", *SMALL]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(ampczoo.__file__).parents[1]),
    }
    one = [sys.executable, "-m", "ampczoo", *args, "--out", str(tmp_path / "one")]
    ddp = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    ddp += ["-m", "ampczoo", *args, "--out", str(tmp_path / "ddp")]
    for cmd in (one, ddp):
        subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=300)
    a, b = _tb_losses(tmp_path / "one"), _tb_losses(tmp_path / "ddp")
    assert len(a) == len(b) == 6
    np.testing.assert_allclose(b, a, rtol=1e-4)
    # and the trained weights agree
    wa = load_file(str(tmp_path / "one" / "last" / "model.safetensors"))
    wb = load_file(str(tmp_path / "ddp" / "last" / "model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-3, atol=1e-5)
