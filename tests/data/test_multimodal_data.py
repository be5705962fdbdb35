"""Multi-modal demonstrations: the branch label in the store and the dataset (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest

from ampczoo.data.collect import CollectConfig, collect
from ampczoo.data.dataset import DemonstrationDataset
from ampczoo.data.store import Episode, EpisodeStore


def test_branch_collection_stores_the_label(tmp_path):
    cfg = CollectConfig(
        env="DAMPC-KukaTrackObstacle-v0",
        out=str(tmp_path / "mm.zarr"),
        episodes=2,
        steps=2,
        compile=False,
        cold_start="branches",
        reference_branches=3,
        env_kwargs={"obstacle_placement": "between"},
        flush_interval_s=0.0,
    )
    report = collect(cfg, progress=False)
    assert not report.errors and report.samples_kept > 0
    store = EpisodeStore(cfg.out, "r")
    assert store.attrs["env_kwargs"]["obstacle_placement"] == "between"
    assert store.attrs["expert_config"]["cold_start"] == "branches"
    branch, ends = store.read("branch"), store.episode_ends
    assert branch.shape == (store.n_samples,) and np.all((branch >= 0) & (branch < 3))
    for lo, hi in zip(np.concatenate([[0], ends[:-1]]), ends, strict=True):
        assert len(set(branch[lo:hi])) == 1  # one branch per episode
    data = DemonstrationDataset(cfg.out, "train", val_fraction=0.0, branch_labels=True)
    assert data.batch(slice(None))["branch"].tolist() == branch.tolist()


def test_single_mode_store_refused_where_the_label_is_needed(tmp_path):
    store = EpisodeStore(tmp_path / "single.zarr")
    obs, u = np.zeros((4, 16)), np.zeros((4, 5, 7))
    store.add_episodes([Episode(0, 0, 4, data={"obs": obs, "u_seq": u})])
    store.update_attrs({"expert_config": {"cold_start": "state"}})
    plain = DemonstrationDataset(tmp_path / "single.zarr", "train", val_fraction=0.0)
    assert "branch" not in plain[0]
    with pytest.raises(ValueError, match="no branch labels.*'state'"):
        DemonstrationDataset(
            tmp_path / "single.zarr", "train", val_fraction=0.0, branch_labels=True
        )


def test_reference_branches_validated():
    with pytest.raises(ValueError, match="reference_branches"):
        CollectConfig(reference_branches=0)
