"""EpisodeStore on foreign or corrupt Zarr groups and unknown names: clear ValueErrors."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from ampczoo.data.store import Episode, EpisodeStore, is_episode_store


def small_store(path) -> EpisodeStore:
    store = EpisodeStore(path)
    data = {"obs": np.arange(6.0).reshape(3, 2)}
    store.add_episodes([Episode(0, 7, 3, data=data)])
    return store


def test_meta_node_of_the_wrong_kind_is_not_a_store(tmp_path):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_group("meta/episode_ends")  # a group where the array belongs
    assert not is_episode_store(tmp_path / "g.zarr")
    with pytest.raises(FileNotFoundError):
        EpisodeStore(tmp_path / "g.zarr", mode="r")
    with pytest.raises(ValueError, match="expected a Zarr array at 'meta/episode_ends'"):
        EpisodeStore(tmp_path / "g.zarr", mode="a")


@pytest.mark.parametrize("mode", ["r", "a"])
def test_missing_meta_array_is_reported(tmp_path, mode):
    small_store(tmp_path / "s.zarr")
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="a")
    del group["meta/n_failed"]
    group.create_group("meta/n_failed")
    with pytest.raises(ValueError, match="'meta/n_failed', found a Zarr group .*corrupt"):
        EpisodeStore(tmp_path / "s.zarr", mode=mode)


def test_data_node_that_is_an_array_is_reported(tmp_path):
    store = small_store(tmp_path / "s.zarr")
    del store.group["data"]
    store.group.create_array("data", shape=(3,), dtype="int64")
    with pytest.raises(ValueError, match="expected a Zarr group at 'data', found a Zarr array"):
        EpisodeStore(tmp_path / "s.zarr", mode="r")


def test_unknown_names_are_refused_and_known_ones_read(tmp_path):
    store = small_store(tmp_path / "s.zarr")
    np.testing.assert_array_equal(store.read("obs"), np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(store.meta("episode_seed"), [7])
    with pytest.raises(ValueError, match="no data array 'act'.*stored: \\['obs'\\]"):
        store.read("act")
    with pytest.raises(ValueError, match="no meta array 'seed'"):
        store.meta("seed")
