"""EpisodeStore: append, read back sorted, crash recovery of partial appends."""

from __future__ import annotations

import numpy as np
import pytest

from ampczoo.data.store import Episode, EpisodeStore, is_episode_store


def make_episode(idx: int, n: int, obs_dim: int = 4) -> Episode:
    rng = np.random.default_rng(idx)
    data = {
        "obs": rng.normal(size=(n, obs_dim)),
        "u_seq": rng.normal(size=(n, 3, 7)),
        "cost": rng.normal(size=n),
        "status": np.array(["ok"] * n),
    }
    return Episode(idx, 1000 + idx, n + 2, n_dropped_output_error=1, n_failed=1, data=data)


def test_append_and_read_sorted(tmp_path):
    store = EpisodeStore(tmp_path / "s.zarr", chunk_len=4)
    store.add_episodes([make_episode(3, 5)])
    store.add_episodes([make_episode(0, 0), make_episode(1, 7)])  # an all-dropped episode
    assert store.n_episodes == 3 and store.n_samples == 12
    np.testing.assert_array_equal(store.episode_ends, [5, 5, 12])
    reopened = EpisodeStore(tmp_path / "s.zarr", mode="r")
    eps = reopened.episodes_sorted()
    assert [e.episode_index for e in eps] == [0, 1, 3]
    assert eps[0].n_kept == 0 and eps[2].seed == 1003
    for ep in eps[1:]:
        ref = make_episode(ep.episode_index, ep.n_kept)
        for k, v in ref.data.items():
            np.testing.assert_array_equal(ep.data[k], v)
    assert reopened.counts() == {
        "n_episodes": 3,
        "n_samples_total": 18,
        "n_kept": 12,
        "n_dropped_output_error": 3,
        "n_failed": 3,
    }
    assert reopened.attrs["counts"]["n_kept"] == 12
    assert reopened.group["data/u_seq"].chunks == (4, 3, 7)
    with pytest.raises(PermissionError):
        reopened.add_episodes([make_episode(5, 1)])


def test_rejects_mismatched_fields(tmp_path):
    store = EpisodeStore(tmp_path / "s.zarr")
    store.add_episodes([make_episode(0, 3)])
    with pytest.raises(ValueError, match="row shape"):
        store.add_episodes([make_episode(1, 3, obs_dim=5)])
    bad = make_episode(2, 3)
    del bad.data["cost"]
    with pytest.raises(ValueError, match="fields"):
        store.add_episodes([bad])


@pytest.mark.parametrize("stage", ["data", "meta", "ends_resized"])
def test_partial_append_is_truncated(tmp_path, stage):
    """Simulate a kill at each point of an append: the store reopens with the old episodes."""
    path = tmp_path / "s.zarr"
    store = EpisodeStore(path, chunk_len=4)
    store.add_episodes([make_episode(0, 5)])
    ep = make_episode(1, 6)
    for k, v in ep.data.items():  # data rows written ...
        EpisodeStore._append(store.group[f"data/{k}"], v)
    if stage in ("meta", "ends_resized"):  # ... meta rows written ...
        for k, v in ep.meta().items():
            EpisodeStore._append(store.group[f"meta/{k}"], np.array([v]))
    if stage == "ends_resized":  # ... episode_ends resized but its value not yet written
        store.group["meta/episode_ends"].resize((2,))
    (path / "data" / "obs" / "c" / "x.partial").write_bytes(b"junk")  # an interrupted write
    store.close()  # the killed writer's lock goes with its process
    ro = EpisodeStore(path, mode="r")
    assert ro.n_episodes == 1 and ro.n_samples == 5 and len(ro.read("obs")) == 5
    rw = EpisodeStore(path, mode="a")
    assert rw.group["data/obs"].shape[0] == 5 and rw.group["meta/n_steps"].shape[0] == 1
    assert not list(path.rglob("*.partial"))
    rw.add_episodes([make_episode(2, 3)])
    eps = EpisodeStore(path, mode="r").episodes_sorted()
    assert [e.episode_index for e in eps] == [0, 2]
    np.testing.assert_array_equal(eps[1].data["obs"], make_episode(2, 3).data["obs"])


def test_is_episode_store(tmp_path):
    assert not is_episode_store(tmp_path / "missing")
    EpisodeStore(tmp_path / "s.zarr")
    assert is_episode_store(tmp_path / "s.zarr")
    with pytest.raises(FileNotFoundError):
        EpisodeStore(tmp_path / "missing", mode="r")


def test_second_writer_is_refused_while_one_appends(tmp_path):
    """A second writer (e.g. ``collect --resume`` started while a collection runs) used to
    truncate the arrays the first had already extended in a half-done append, leaving the
    later columns one episode behind the first ones. Now it is refused; readers still open."""
    path = tmp_path / "s.zarr"
    writer = EpisodeStore(path, chunk_len=4)
    writer.add_episodes([make_episode(0, 5)])
    ep = make_episode(1, 6)
    EpisodeStore._append(writer.group["data/obs"], ep.data["obs"])  # half-done append
    with pytest.raises(RuntimeError, match="open for writing by another process"):
        EpisodeStore(path, mode="a")
    assert writer.group["data/obs"].shape[0] == 11  # not truncated under the writer
    assert EpisodeStore(path, mode="r").n_episodes == 1
    for k in ("u_seq", "cost", "status"):  # the writer finishes its append
        EpisodeStore._append(writer.group[f"data/{k}"], ep.data[k])
    for k, v in ep.meta().items():
        EpisodeStore._append(writer.group[f"meta/{k}"], np.array([v]))
    EpisodeStore._append(writer.group["meta/episode_ends"], np.array([11]))
    writer.close()
    with pytest.raises(PermissionError):
        writer.add_episodes([make_episode(2, 1)])
    resumed = EpisodeStore(path, mode="a")  # the lock is free again
    resumed.add_episodes([make_episode(2, 3)])
    eps = EpisodeStore(path, mode="r").episodes_sorted()
    assert [e.n_kept for e in eps] == [5, 6, 3]
    for e in eps:
        for k, v in make_episode(e.episode_index, e.n_kept).data.items():
            np.testing.assert_array_equal(e.data[k], v)
