"""DiffOG refine mode on a Diffusion Policy base through the one training loop: the store
serves the base's observation windows and the demonstrated chunks aligned with its chunks,
the config takes the base's chunk layout and the suite's Table IX preset, and the frozen base
draws fresh stochastic chunks every batch (reproducible from the torch seed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import tiny_diffusion_policy

import ampczoo
from ampczoo.cli import main
from ampczoo.data.dataset import DemonstrationDataset
from ampczoo.data.store import Episode, EpisodeStore
from ampczoo.policies.diffog import DiffOG
from ampczoo.policies.diffusion_policy import DiffusionPolicy

SMALL = [
    "--policy.embed-dim",
    "16",
    "--policy.num-heads",
    "2",
    "--policy.num-layers",
    "1",
    "--policy.ff-dim",
    "16",
]


@pytest.fixture(scope="module")
def store_and_base(tmp_path_factory) -> tuple[Path, Path]:
    """A store of 5 episodes (obs (4,), action (7,) with obs[0] = action[0] = row id, env
    Robomimic-Lift-v0) and a tiny Diffusion Policy checkpoint (T_o 2, T_p 8, T_a 4) fit to its
    normalisation."""
    root = tmp_path_factory.mktemp("refine")
    path = root / "lift.zarr"
    st = EpisodeStore(path)
    rng = np.random.default_rng(0)
    episodes, row = [], 0
    for e in range(5):
        n = 12 + e
        ids = np.arange(row, row + n, dtype=np.float64)
        obs = np.column_stack([ids, rng.normal(size=(n, 3))])
        act = np.column_stack([ids / 100.0, rng.uniform(-1, 1, size=(n, 5)), np.sign(obs[:, 1])])
        episodes.append(Episode(e, e, n, data={"obs": obs, "action": act}))
        row += n
    st.add_episodes(episodes)
    st.update_attrs({"env": "Robomimic-Lift-v0"})
    dp = tiny_diffusion_policy()
    ds = DemonstrationDataset(
        path,
        "train",
        0.2,
        0,
        **DiffusionPolicy.dataset_kwargs({"obs_horizon": 2, "pred_horizon": 8}),
    )
    dp.set_normalization(ds.normalization_stats())
    dp.save_pretrained(root / "dp")
    return path, root / "dp"


def test_refine_mode_on_a_diffusion_policy_trains_through_the_cli(store_and_base, tmp_path):
    store, dp_dir = store_and_base
    out = tmp_path / "run"
    args = [
        "train",
        "diffog",
        "--data",
        str(store),
        "--out",
        str(out),
        "--max-steps",
        "2",
        "--batch-size",
        "8",
        "--warmup-steps",
        "1",
        "--val-fraction",
        "0.2",
        "--policy.mode",
        "refine",
        "--policy.base",
        str(dp_dir),
        *SMALL,
    ]
    assert main(args) == 0
    refiner = ampczoo.load_policy(out / "last", device="cpu")
    c = refiner.config
    assert isinstance(refiner, DiffOG)
    # the base's chunk layout and the robomimic preset (Table IX, S without the gripper)
    assert (c.chunk_len, c.chunk_offset, c.mode) == (8, 1, "refine")
    assert (c.bound, c.alpha, c.dims, c.scale_mode) == (0.1, 4.0, (0, 1, 2, 3, 4, 5), "unit")
    np.testing.assert_array_equal(refiner.action_scale.numpy(), np.ones(7))
    # a refine-mode checkpoint acts on its own through its base: T_a = 4 actions per chunk
    refiner.reset(seed=0)
    actions = np.array([refiner.act(np.full(4, 0.1 * t)) for t in range(6)])
    assert actions.shape == (6, 7) and refiner._runner.execute_steps == 4
    assert np.abs(np.diff(actions[:, :6], axis=0)).max() <= 0.1 + 1e-6
    # a command-line field beats the preset
    out2 = tmp_path / "run2"
    assert main([*args[:5], str(out2), *args[6:], "--policy.bound", "0.2"]) == 0
    assert ampczoo.load_policy(out2 / "last", device="cpu").config.bound == 0.2


def test_the_batches_are_the_bases_windows_and_its_chunks_are_fresh_draws(store_and_base):
    store, dp_dir = store_and_base
    fields = {"mode": "refine", "base": str(dp_dir), "horizon": 20, "chunk_offset": 0}
    kw = DiffOG.dataset_kwargs(fields)
    assert kw == {"history": 2, "action_horizon": 20, "action_lead": 1}
    ds = DemonstrationDataset(store, "train", 0.2, 0, **kw)
    batch = ds.batch(slice(0, 6))
    # targets start one step before the sample (row T_o - 1 = now), as the base's chunks
    ids = batch["obs_history"][:, -1, 0].numpy()
    u0 = batch["u_seq"][:, 1, 0].numpy() * 100.0
    np.testing.assert_allclose(u0, ids, atol=1e-3)
    cfg = {**DiffOG.config_from_data({**fields, "action_dim": 7}, {"env": "Robomimic-Lift-v0"})}
    refiner = DiffOG(
        DiffOG.config_class(
            action_dim=7,
            obs_dim=4,
            mode="refine",
            base=str(dp_dir),
            horizon=20,
            embed_dim=16,
            num_heads=2,
            num_layers=1,
            ff_dim=16,
            **cfg,
        )
    )
    torch.manual_seed(3)
    a = refiner.base_chunks(batch)
    b = refiner.base_chunks(batch)
    torch.manual_seed(3)
    a2 = refiner.base_chunks(batch)
    assert a.shape == (6, 8, 7)
    assert not np.allclose(a, b)  # a fresh stochastic draw every batch
    np.testing.assert_array_equal(a, a2)  # reproducible from the global torch seed
    loss, info = refiner.loss(batch)
    loss.backward()
    assert np.isfinite(info["mse"])
