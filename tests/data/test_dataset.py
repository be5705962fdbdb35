"""DemonstrationDataset: episode split, item shapes/dtypes, normalisation statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ampczoo.data.dataset import DemonstrationDataset, split_episodes
from ampczoo.data.store import Episode, EpisodeStore

N = 4


@pytest.fixture
def store_path(tmp_path):
    store = EpisodeStore(tmp_path / "d.zarr")
    eps = []
    for idx in (5, 2, 7, 0, 1, 3, 4, 6, 8, 9):  # stored out of order
        n = 3 + idx % 4
        obs = np.full((n, 16), float(idx))
        obs[:, 15] = 1.0  # a constant entry
        eps.append(
            Episode(idx, idx, n, data={"obs": obs, "u_seq": np.full((n, N, 7), -float(idx))})
        )
    store.add_episodes(eps)
    return tmp_path / "d.zarr"


def test_split_by_episode(store_path):
    train = DemonstrationDataset(store_path, "train", val_fraction=0.2, seed=1)
    val = DemonstrationDataset(store_path, "val", val_fraction=0.2, seed=1)
    assert len(val.episode_ids) == 2 and len(train.episode_ids) == 8
    assert not set(train.episode_ids) & set(val.episode_ids)
    assert len(train) + len(val) == EpisodeStore(store_path, "r").n_samples
    assert set(np.unique(val.obs[:, 0])) == set(val.episode_ids.astype(float))
    item = train[0]
    assert item["obs"].dtype == torch.float32 and item["obs"].shape == (16,)
    assert item["u_seq"].dtype == torch.float32 and item["u_seq"].shape == (N, 7)
    assert train.obs_dim == 16 and train.horizon == N
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=5)))
    assert batch["u_seq"].shape == (5, N, 7)


def test_split_independent_of_storage_order():
    a = split_episodes(np.array([3, 1, 2, 0, 4]), 0.4, seed=0)
    b = split_episodes(np.array([0, 1, 2, 3, 4]), 0.4, seed=0)
    assert a == b and len(a["val"]) == 2
    assert split_episodes(np.array([0, 1]), 0.01, 0)["val"]  # at least one val episode


def test_normalization_stats_from_train(store_path):
    train = DemonstrationDataset(store_path, "train", val_fraction=0.2, seed=1)
    val = DemonstrationDataset(store_path, "val", val_fraction=0.2, seed=1)
    stats = train.normalization_stats()
    assert stats["obs"]["mean"].shape == (16,) and stats["u_seq"]["std"].shape == (N, 7)
    assert stats["obs"]["mean"].dtype == np.float64
    np.testing.assert_allclose(stats["obs"]["mean"][0], train.obs[:, 0].mean())
    assert stats["obs"]["std"][15] == pytest.approx(1e-6)  # floored constant entry
    assert stats["u_seq"]["min"].max() == -train.episode_ids.max()
    for key in ("obs", "u_seq"):  # val reports the train statistics
        for k, v in val.normalization_stats()[key].items():
            np.testing.assert_array_equal(v, stats[key][k])


def test_bad_arguments(store_path):
    with pytest.raises(ValueError, match="split"):
        DemonstrationDataset(store_path, "holdout")
    with pytest.raises(ValueError, match="val_fraction"):
        DemonstrationDataset(store_path, val_fraction=1.0)
