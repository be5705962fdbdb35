"""Append-only Zarr v3 store of demonstration episodes (after diffusion_policy's ReplayBuffer).

Layout (T = stored samples, E = stored episodes)::

    <path>/                      group attrs: env id, env kwargs, expert config, collection
                                 config, fingerprint, ampczoo version, git commit, created, counts
    data/<name>   (T, ...)       one row per kept sample, chunked along time (``chunk_len``)
    meta/episode_ends   (E,)     exclusive end row of each episode in ``data/*`` (fill -1)
    meta/episode_index  (E,)     episode id (0 .. N_e-1) of each stored episode
    meta/episode_seed   (E,)     seed used for env.reset / expert.reset of that episode
    meta/n_steps, meta/n_dropped_output_error, meta/n_failed  (E,)  per-episode counts

One writer at a time: mode "a" takes an exclusive lock (``flock`` on ``<path>/.writer.lock``,
held until :meth:`EpisodeStore.close` or the process ends); a second writer -- another
``ampczoo collect --resume`` on the same path while one runs -- gets a RuntimeError instead of
truncating the running writer's half-written append (the truncation below would cut the
arrays it had already extended and leave the data columns misaligned by an episode).

Crash safety: an append writes the data rows first, then the per-episode meta rows, and the
``episode_ends`` entries LAST. Every file write of zarr's LocalStore is atomic (temp file +
rename), so after a kill at any moment the store holds a valid prefix: on opening for
writing, rows beyond the last valid episode end (a partial append) are truncated. Opening
read-only applies the same truncation to what is read, without modifying the files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import zarr

#: Per-episode integer meta arrays, written before ``episode_ends``.
META_FIELDS = ("episode_index", "episode_seed", "n_steps", "n_dropped_output_error", "n_failed")
#: Default chunk length along the sample axis.
CHUNK_LEN = 4096
_ENDS = "meta/episode_ends"
#: Access modes of :class:`EpisodeStore`: read-only, or read/write creating the store if missing.
StoreMode = Literal["r", "a"]
_Node = TypeVar("_Node", zarr.Array, zarr.Group)


@dataclass
class Episode:
    """One collected episode.

    episode_index: id in 0..N_e-1; seed: its reset seed; n_steps: expert solves run;
    n_dropped_output_error / n_failed: solves not stored (d_y too large / failed or NaN).
    data: name -> (T_kept, ...) arrays, all with the same first dimension.
    """

    episode_index: int
    seed: int
    n_steps: int
    n_dropped_output_error: int = 0
    n_failed: int = 0
    data: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_kept(self) -> int:
        """Number of stored samples."""
        return len(next(iter(self.data.values()))) if self.data else 0

    def meta(self) -> dict[str, int]:
        """The per-episode integer meta values, keyed like :data:`META_FIELDS`."""
        return {
            "episode_index": self.episode_index,
            "episode_seed": self.seed,
            "n_steps": self.n_steps,
            "n_dropped_output_error": self.n_dropped_output_error,
            "n_failed": self.n_failed,
        }


def jsonable(obj: Any) -> Any:
    """``obj`` round-tripped through JSON (tuples -> lists), as zarr attrs store it."""
    return json.loads(json.dumps(obj, default=_json_default))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def is_episode_store(path: str | Path) -> bool:
    """Whether ``path`` holds a Zarr group with an ``meta/episode_ends`` array."""
    try:
        group = zarr.open_group(str(path), mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError):
        return False
    meta = group.get("meta")
    return isinstance(meta, zarr.Group) and isinstance(meta.get("episode_ends"), zarr.Array)


def _node(group: zarr.Group, key: str, kind: type[_Node], where: Path) -> _Node:
    """``group[key]``, checked to be a ``kind``: ValueError when it is missing or of the other
    kind (a foreign or corrupt store; ``where`` names the store in the message)."""
    node = group.get(key)
    if not isinstance(node, kind):
        found = "nothing" if node is None else f"a Zarr {type(node).__name__.lower()}"
        raise ValueError(
            f"episode store {where}: expected a Zarr {kind.__name__.lower()} at {key!r}, found "
            f"{found} (corrupt store, or not written by ampczoo)"
        )
    return node


#: Lock file of the writer of a store (inside the store's directory; zarr ignores it).
WRITER_LOCK = ".writer.lock"


def _writer_lock(path: Path) -> Any:
    """Open file object holding an exclusive ``flock`` on ``path/WRITER_LOCK`` (the folder is
    created); RuntimeError naming the holder's pid when another writer has it. Where ``fcntl``
    does not exist (Windows) there is no lock (None)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    path.mkdir(parents=True, exist_ok=True)
    f = (path / WRITER_LOCK).open("a+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        raise RuntimeError(
            f"episode store {path} is open for writing by another process (pid {holder}); "
            "stop it before resuming, or open the store read-only (mode='r')"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


class EpisodeStore:
    """Episodes appended to a Zarr v3 group; see the module docstring for the layout.

    mode: "r" (read-only), "a" (read/write, create if missing). ``chunk_len`` is the chunk
    length along the sample axis of arrays created by this instance.
    """

    def __init__(self, path: str | Path, mode: StoreMode = "a", chunk_len: int = CHUNK_LEN):
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        self.path = Path(path)
        self.mode: StoreMode = mode
        self.chunk_len = int(chunk_len)
        if mode == "r" and not is_episode_store(self.path):
            raise FileNotFoundError(f"no episode store at {self.path}")
        self._lock: Any = None
        if mode == "a":
            self._lock = _writer_lock(self.path)
        self.group = zarr.open_group(str(self.path), mode=mode)
        if mode == "a":
            self._create_meta()
        self._n_episodes, self._n_samples = self._valid_prefix()
        if mode == "a":
            self._truncate()

    def close(self) -> None:
        """Release the writer lock (mode "a"); the store is read-only afterwards."""
        if self._lock is not None:
            self._lock.close()  # closing the file descriptor releases the flock
            self._lock = None
        self.mode = "r"

    # ----------------------------------------------------------------- structure
    def _array(self, key: str) -> zarr.Array:
        """The array at ``key``; ValueError when it is missing or a group."""
        return _node(self.group, key, zarr.Array, self.path)

    def _group(self, key: str) -> zarr.Group:
        """The sub-group at ``key``; ValueError when it is missing or an array."""
        return _node(self.group, key, zarr.Group, self.path)

    def _read(self, key: str, n_rows: int | None = None) -> np.ndarray:
        """The first ``n_rows`` rows (all when None) of the array at ``key``, in memory."""
        return np.asarray(self._array(key)[:n_rows])

    def _create_meta(self) -> None:
        for name in ("episode_ends", *META_FIELDS):
            if f"meta/{name}" not in self.group:
                self.group.create_array(
                    f"meta/{name}", shape=(0,), chunks=(1024,), dtype="int64", fill_value=-1
                )

    def _valid_prefix(self) -> tuple[int, int]:
        """(E, T) of the longest consistent prefix: ends written (not fill), non-decreasing,
        and all meta / data arrays at least that long."""
        ends = self._read(_ENDS)
        n = len(ends)
        bad = np.flatnonzero((ends < 0) | (np.diff(ends, prepend=0) < 0))
        if bad.size:
            n = int(bad[0])
        for name in META_FIELDS:
            n = min(n, self._array(f"meta/{name}").shape[0])
        while n > 0 and any(a.shape[0] < ends[n - 1] for a in self._data_arrays().values()):
            n -= 1
        return n, int(ends[n - 1]) if n else 0

    def _truncate(self) -> None:
        """Drop rows of a partial (crashed) append beyond the valid prefix."""
        for name in ("episode_ends", *META_FIELDS):
            arr = self._array(f"meta/{name}")
            if arr.shape[0] != self._n_episodes:
                arr.resize((self._n_episodes,))
        for arr in self._data_arrays().values():
            if arr.shape[0] != self._n_samples:
                arr.resize((self._n_samples, *arr.shape[1:]))
        for partial in self.path.rglob("*.partial"):  # temp files of interrupted writes
            partial.unlink(missing_ok=True)

    def _data_arrays(self) -> dict[str, zarr.Array]:
        if "data" not in self.group:
            return {}
        return dict(self._group("data").arrays())

    # ----------------------------------------------------------------- reading
    @property
    def n_episodes(self) -> int:
        """Number of complete stored episodes E."""
        return self._n_episodes

    @property
    def n_samples(self) -> int:
        """Number of stored samples T."""
        return self._n_samples

    @property
    def attrs(self) -> dict[str, Any]:
        """The group attributes (a copy)."""
        return dict(self.group.attrs)

    @property
    def keys(self) -> list[str]:
        """Names of the ``data/*`` arrays."""
        return sorted(self._data_arrays())

    def meta(self, name: str) -> np.ndarray:
        """(E,) int64 array ``meta/<name>`` (``episode_ends`` or one of :data:`META_FIELDS`)."""
        if name not in ("episode_ends", *META_FIELDS):
            raise ValueError(
                f"no meta array {name!r}: one of episode_ends, {', '.join(META_FIELDS)}"
            )
        return self._read(f"meta/{name}", self._n_episodes)

    @property
    def episode_ends(self) -> np.ndarray:
        """(E,) exclusive end rows of the stored episodes, in storage order."""
        return self.meta("episode_ends")

    def episode_ids(self) -> np.ndarray:
        """(E,) episode ids in storage order."""
        return self.meta("episode_index")

    def read(self, name: str) -> np.ndarray:
        """The whole ``data/<name>`` array, (T, ...), loaded into memory."""
        if f"data/{name}" not in self.group:
            raise ValueError(f"no data array {name!r} in {self.path}; stored: {self.keys}")
        return self._read(f"data/{name}", self._n_samples)

    def read_all(self) -> dict[str, np.ndarray]:
        """All ``data/*`` arrays, name -> (T, ...)."""
        return {name: self.read(name) for name in self.keys}

    def episodes_sorted(self) -> list[Episode]:
        """All stored episodes sorted by episode id (independent of completion order)."""
        data = self.read_all()
        metas = {name: self.meta(name) for name in META_FIELDS}
        ends = self.episode_ends
        starts = np.concatenate([[0], ends[:-1]]).astype(int)
        out = []
        for k in np.argsort(metas["episode_index"], kind="stable"):
            rows = slice(starts[k], ends[k])
            out.append(
                Episode(
                    int(metas["episode_index"][k]),
                    int(metas["episode_seed"][k]),
                    int(metas["n_steps"][k]),
                    int(metas["n_dropped_output_error"][k]),
                    int(metas["n_failed"][k]),
                    {name: arr[rows] for name, arr in data.items()},
                )
            )
        return out

    def counts(self) -> dict[str, int]:
        """Totals over stored episodes: n_episodes, n_samples_total (solves), n_kept,
        n_dropped_output_error, n_failed."""
        return {
            "n_episodes": self._n_episodes,
            "n_samples_total": int(self.meta("n_steps").sum()),
            "n_kept": self._n_samples,
            "n_dropped_output_error": int(self.meta("n_dropped_output_error").sum()),
            "n_failed": int(self.meta("n_failed").sum()),
        }

    # ----------------------------------------------------------------- writing
    def update_attrs(self, attrs: Mapping[str, Any]) -> None:
        """Merge ``attrs`` (made JSON-compatible) into the group attributes."""
        self._check_writable()
        self.group.attrs.update(jsonable(dict(attrs)))

    def add_episodes(self, episodes: Sequence[Episode]) -> None:
        """Append episodes atomically w.r.t. interruption (data, meta, then episode_ends)."""
        self._check_writable()
        if not episodes:
            return
        self._check_fields(episodes)
        kept = [ep for ep in episodes if ep.n_kept]
        for name in kept[0].data if kept else {}:
            rows = np.concatenate([ep.data[name] for ep in kept])
            self._append(self._data_array(name, rows), rows)
        for name in META_FIELDS:
            self._append(
                self._array(f"meta/{name}"),
                np.array([ep.meta()[name] for ep in episodes], dtype=np.int64),
            )
        ends = self._n_samples + np.cumsum([ep.n_kept for ep in episodes])
        self._append(self._array(_ENDS), ends.astype(np.int64))  # the commit point
        self._n_episodes += len(episodes)
        self._n_samples = int(ends[-1])
        self.group.attrs.update({"counts": self.counts()})

    def _check_writable(self) -> None:
        if self.mode == "r":
            raise PermissionError(f"episode store {self.path} is open read-only")

    def _check_fields(self, episodes: Sequence[Episode]) -> None:
        existing = set(self._data_arrays()) if self._n_samples else None
        for ep in episodes:
            if not ep.n_kept:
                continue
            names = set(ep.data)
            lengths = {len(v) for v in ep.data.values()}
            if len(lengths) != 1:
                raise ValueError(f"episode {ep.episode_index}: data arrays differ in length")
            if existing is None:
                existing = names
            if names != existing:
                raise ValueError(
                    f"episode {ep.episode_index}: data fields {sorted(names)} "
                    f"differ from the store's {sorted(existing)}"
                )

    def _data_array(self, name: str, rows: np.ndarray) -> zarr.Array:
        key = f"data/{name}"
        if key in self.group:
            arr = self._array(key)
            if arr.shape[1:] != rows.shape[1:]:
                raise ValueError(
                    f"data/{name}: row shape {rows.shape[1:]} != stored {arr.shape[1:]}"
                )
            return arr
        dtype = str if rows.dtype.kind in "UOT" else rows.dtype
        return self.group.create_array(
            key, shape=(0, *rows.shape[1:]), dtype=dtype, chunks=(self.chunk_len, *rows.shape[1:])
        )

    @staticmethod
    def _append(arr: zarr.Array, rows: np.ndarray) -> None:
        n = arr.shape[0]
        arr.resize((n + len(rows), *arr.shape[1:]))
        arr[n:] = rows
