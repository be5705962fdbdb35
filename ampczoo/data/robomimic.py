"""robomimic HDF5 files <-> ampczoo episode stores, with plain h5py (robomimic not needed).

robomimic's layout (``low_dim.hdf5``, ``image.hdf5`` and what robomimic trains on)::

    data/                       attrs: total (samples of all demos), env_args (JSON string:
                                {"env_name", "type", "env_kwargs"})
      demo_<i>/                 attrs: num_samples (T)[, model_file (MJCF XML)]
        obs/<key>      (T, ...) observation keys (object, robot0_eef_pos, ..., images)
        next_obs/<key> (T, ...) the observation after each step
        actions (T, A), rewards (T,), dones (T,), states (T, S) flat MuJoCo states
    mask/train, mask/valid      demo names (byte strings)

:func:`import_robomimic` writes an :class:`~ampczoo.data.store.EpisodeStore` (one episode per
demo, in demo-number order) whose rows are what ``ampczoo collect`` stores for the manipulation
envs: ``obs`` / ``next_obs`` the low-dim keys concatenated in the env's ``obs_layout`` order
(or a given ``obs_keys`` order), ``obs.<key>`` / ``next_obs.<key>`` every other key (images),
``action``, ``reward``, ``done``, ``sim_state``; so an imported file trains a policy with
``ampczoo train`` like a collected store. Everything else the file holds -- per-key dtypes and
shapes, demo names and attributes (``model_file``), file / ``data`` attributes, masks, further
per-step datasets -- is recorded in the store's ``robomimic`` attribute, and
:func:`export_robomimic` writes it back: import then export gives the same datasets (values,
dtypes, shapes) and attributes.

:func:`export_robomimic` also writes stores collected by ``ampczoo collect`` (splitting ``obs``
by the ``obs_layout`` recorded at collection, or the env's); their masks are the episode split of
:class:`~ampczoo.data.DemonstrationDataset` (10 % valid, seed 0).

The env: ``env_args["env_name"]`` is a robosuite env name (``ROBOSUITE_ENVS``: "Lift" ->
``Robomimic-Lift-v0`` ...) or a registered id. A file that is not robomimic's, lacks a key,
names another env than ``env_id``, or holds rows of different lengths is refused with a
ValueError naming the problem.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ampczoo.data.store import Episode, EpisodeStore, is_episode_store

#: robosuite env names of robomimic's tasks -> ampczoo env ids.
ROBOSUITE_ENVS = {
    "Lift": "Robomimic-Lift-v0",
    "PickPlaceCan": "Robomimic-Can-v0",
    "NutAssemblySquare": "Robomimic-Square-v0",
    "ToolHang": "Robomimic-ToolHang-v0",
    "TwoArmTransport": "Robomimic-Transport-v0",
}
#: robomimic dataset name in a demo -> store array name.
FIELDS = {"actions": "action", "rewards": "reward", "dones": "done", "states": "sim_state"}
#: datasets every demo must have (besides obs/<key>).
REQUIRED = ("actions", "rewards", "dones")
#: store attribute holding what the export needs to write the file back.
ATTR = "robomimic"
#: demo masks written for stores without any (the dataset's split: 10 % valid, seed 0).
VALID_FRACTION, MASK_SEED = 0.1, 0


# ----------------------------------------------------------------------------- attributes
def encode_attr(value: Any) -> dict[str, Any]:
    """An HDF5 attribute value as tagged JSON, so :func:`decode_attr` restores its type."""
    if isinstance(value, str):
        return {"t": "str", "v": value}
    if isinstance(value, bytes | np.bytes_):
        return {"t": "bytes", "v": base64.b64encode(bytes(value)).decode()}
    arr = np.asarray(value)
    if arr.dtype.kind in "SO" or arr.dtype.kind == "U":
        items = [x.decode("latin-1") if isinstance(x, bytes) else str(x) for x in arr.ravel()]
        return {"t": "strings", "dtype": arr.dtype.str, "shape": list(arr.shape), "v": items}
    if isinstance(value, np.ndarray):
        return {"t": "array", "dtype": arr.dtype.str, "shape": list(arr.shape), "v": arr.tolist()}
    return {"t": "scalar", "dtype": arr.dtype.str, "v": arr.item()}


def decode_attr(tagged: dict[str, Any]) -> Any:
    """Inverse of :func:`encode_attr`."""
    kind = tagged["t"]
    if kind == "str":
        return tagged["v"]
    if kind == "bytes":
        return np.bytes_(base64.b64decode(tagged["v"]))
    if kind == "strings":
        items = tagged["v"]
        if tagged["dtype"].startswith("|S"):
            raw = [s.encode("latin-1") for s in items]
            return np.array(raw, dtype=tagged["dtype"]).reshape(tagged["shape"])
        return np.array(items, dtype=object).reshape(tagged["shape"])
    if kind == "array":
        return np.array(tagged["v"], dtype=tagged["dtype"]).reshape(tagged["shape"])
    return np.array(tagged["v"], dtype=tagged["dtype"])[()]


def _encode_attrs(attrs: Any) -> dict[str, Any]:
    return {k: encode_attr(v) for k, v in attrs.items()}


def _decode_into(target: Any, tagged: dict[str, Any]) -> None:
    for name, value in tagged.items():
        target[name] = decode_attr(value)


# ----------------------------------------------------------------------------- env lookup
def env_id_of(env_args: dict[str, Any]) -> str | None:
    """The ampczoo env id named by robomimic ``env_args`` (robosuite name or registered id),
    None when it names no env we have."""
    import gymnasium as gym

    import ampczoo.envs  # noqa: F401  (registers the env ids)

    name = str(env_args.get("env_name", ""))
    if name in ROBOSUITE_ENVS:
        return ROBOSUITE_ENVS[name]
    return name if name in gym.registry else None


@functools.lru_cache(maxsize=16)
def env_info(env_id: str) -> tuple[dict[str, tuple[int, int]] | None, dict[str, Any] | None]:
    """(``obs_layout``, robomimic ``env_args()``) of a registered env (made once with its
    defaults, low-dim); None for what it lacks."""
    import gymnasium as gym

    import ampczoo.envs  # noqa: F401

    env = gym.make(env_id)
    try:
        base: Any = env.unwrapped
        layout = getattr(base, "obs_layout", None)
        env_args = base.env_args() if callable(getattr(base, "env_args", None)) else None
    finally:
        env.close()
    if layout:
        layout = {k: (int(a), int(b)) for k, (a, b) in layout.items()}
    return layout or None, env_args


def env_obs_layout(env_id: str) -> dict[str, tuple[int, int]]:
    """``obs_layout`` of a registered env; ValueError when it has none."""
    layout = env_info(env_id)[0]
    if not layout:
        raise ValueError(f"env {env_id} has no obs_layout; pass obs_keys")
    return dict(layout)


# ----------------------------------------------------------------------------- import
def _open_h5(path: str | Path, mode: str) -> Any:
    import h5py

    if mode == "r" and not Path(path).is_file():
        raise FileNotFoundError(f"no file {path}")
    try:
        return h5py.File(path, mode)
    except OSError as exc:
        raise ValueError(f"{path}: not an HDF5 file ({exc})") from exc


def _demo_names(f: Any, path: str | Path) -> list[str]:
    import h5py

    data = f.get("data")
    if not isinstance(data, h5py.Group):
        raise ValueError(f"{path}: not a robomimic file (no 'data' group)")
    names = [n for n in data if isinstance(data[n], h5py.Group) and re.fullmatch(r"demo_\d+", n)]
    if not names:
        raise ValueError(f"{path}: not a robomimic file (no demo_<i> groups under 'data')")
    return sorted(names, key=lambda n: int(n.split("_")[1]))


def _env_args(f: Any, path: str | Path) -> dict[str, Any] | None:
    raw = f["data"].attrs.get("env_args")
    if raw is None:
        return None
    try:
        env_args = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: data attr env_args is not JSON ({exc})") from exc
    if not isinstance(env_args, dict) or "env_name" not in env_args:
        raise ValueError(f"{path}: data attr env_args has no env_name: {raw!r}")
    return env_args


def _resolve_layout(
    f: Any,
    path: str | Path,
    first_demo: str,
    env_id: str | None,
    obs_keys: Sequence[str] | None,
) -> tuple[str | None, dict[str, tuple[int, int]]]:
    """(env id, flat layout key -> (start, stop)) of the file (see :func:`import_robomimic`)."""
    env_args = _env_args(f, path)
    named = env_id_of(env_args) if env_args is not None else None
    if env_id is not None and env_args is not None and named != env_id:
        raise ValueError(
            f"{path}: env_args names env {env_args['env_name']!r} "
            f"({named or 'no ampczoo env'}), expected {env_id}"
        )
    env = env_id or named
    if obs_keys:
        obs = f["data"][first_demo].get("obs")
        if obs is None:
            raise ValueError(f"{path}: {first_demo} lacks obs")
        layout, start = {}, 0
        for key in obs_keys:
            if key not in obs:
                raise ValueError(f"{path}: {first_demo} lacks obs/{key}")
            width = int(np.prod(obs[key].shape[1:], dtype=np.int64))
            layout[key] = (start, start + width)
            start += width
        return env, layout
    if env_args is None:
        raise ValueError(f"{path}: data attrs lack env_args; pass obs_keys (or env_id)")
    if env is None:
        raise ValueError(
            f"{path}: env_args names env {env_args['env_name']!r}, which maps to no registered "
            f"ampczoo env (robosuite names: {sorted(ROBOSUITE_ENVS)}); pass obs_keys"
        )
    return env, env_obs_layout(env)


def _collect_dataset(datasets: dict[str, Any], path: str, obj: Any) -> None:
    import h5py

    if isinstance(obj, h5py.Dataset):
        datasets[path] = obj


def _read_demo(
    demo: Any, name: str, path: str | Path, layout: dict[str, tuple[int, int]]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(store rows, per-demo record: obs key dtypes/shapes and extra dataset paths) of one
    demo; ValueError for a missing key or mismatched lengths."""
    import h5py

    where = f"{path}: {name}"
    for key in REQUIRED:
        if not isinstance(demo.get(key), h5py.Dataset):
            raise ValueError(f"{where} lacks {key}")
    if not isinstance(demo.get("obs"), h5py.Group):
        raise ValueError(f"{where} lacks obs")
    n = int(demo["actions"].shape[0]) if demo["actions"].ndim else -1
    if "num_samples" in demo.attrs and int(demo.attrs["num_samples"]) != n:
        raise ValueError(f"{where}: num_samples {int(demo.attrs['num_samples'])} != {n} actions")
    datasets: dict[str, Any] = {}
    demo.visititems(lambda p, obj: _collect_dataset(datasets, p, obj))
    for p, ds in datasets.items():
        if p in FIELDS or p.startswith(("obs/", "next_obs/")):
            length = ds.shape[0] if ds.ndim else None
            if length != n:
                raise ValueError(f"{where}: {p} has {length} rows, actions has {n}")
    rows: dict[str, np.ndarray] = {}
    record: dict[str, Any] = {"keys": {}, "extra": {}}
    for group in ("obs", "next_obs"):
        if group not in demo:
            continue
        missing = [k for k in layout if k not in demo[group]]
        if missing:
            raise ValueError(f"{where} lacks {group}/{missing[0]}")
        parts = []
        for key, (start, stop) in layout.items():
            arr = np.asarray(demo[group][key])
            if int(np.prod(arr.shape[1:], dtype=np.int64)) != stop - start:
                raise ValueError(
                    f"{where}: {group}/{key} has {int(np.prod(arr.shape[1:]))} values per row, "
                    f"the layout expects {stop - start}"
                )
            record["keys"][f"{group}/{key}"] = {"dtype": arr.dtype.str, "shape": arr.shape[1:]}
            parts.append(arr.reshape(n, -1))
        rows[group] = np.concatenate(parts, axis=1) if parts else np.zeros((n, 0))
        for key in demo[group]:
            if key not in layout:
                rows[f"{group}.{key}"] = np.asarray(demo[group][key])
    for p, ds in datasets.items():
        if p in FIELDS:
            rows[FIELDS[p]] = np.asarray(ds)
        elif not p.startswith(("obs/", "next_obs/")):
            if ds.ndim and ds.shape[0] == n:
                store_name = "h5." + p.replace("/", ".")
                rows[store_name] = np.asarray(ds)
                record["extra"][store_name] = p
            else:
                warnings.warn(
                    f"{where}: {p} is not per-step ({ds.shape}); not imported", stacklevel=3
                )
    return rows, record


def import_robomimic(
    hdf5: str | Path,
    out_zarr: str | Path,
    env_id: str | None = None,
    obs_keys: Sequence[str] | None = None,
) -> EpisodeStore:
    """Import a robomimic HDF5 file into a new episode store at ``out_zarr``.

    env_id: the env the file must be for (ValueError if its env_args name another; None =
    whatever it names). obs_keys: the low-dim keys of the flat ``obs``, in order (None = the
    env's ``obs_layout``). Returns the store (read-only). See the module docstring."""
    out = Path(out_zarr)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists; choose another output")
    with _open_h5(hdf5, "r") as f:
        demos = _demo_names(f, hdf5)
        env, layout = _resolve_layout(f, hdf5, demos[0], env_id, obs_keys)
        episodes, records = [], []
        for i, name in enumerate(demos):
            rows, record = _read_demo(f["data"][name], name, hdf5, layout)
            record["attrs"] = _encode_attrs(f["data"][name].attrs)
            records.append(record)
            episodes.append(Episode(i, -1, len(rows["action"]), data=rows))
        first_keys = sorted(episodes[0].data)
        for name, ep in zip(demos, episodes, strict=True):
            if sorted(ep.data) != first_keys:
                raise ValueError(
                    f"{hdf5}: {name} holds {sorted(ep.data)}, {demos[0]} holds {first_keys}"
                )
        meta = {
            "obs_layout": {k: list(v) for k, v in layout.items()},
            "demos": demos,
            "demo_records": records,
            "file_attrs": _encode_attrs(f.attrs),
            "data_attrs": _encode_attrs(f["data"].attrs),
            "masks": _read_masks(f),
            "source": str(hdf5),
        }
        env_args = _env_args(f, hdf5)
    store = EpisodeStore(out, mode="a")
    store.add_episodes(episodes)
    store.update_attrs(
        {
            "env": env,
            "obs_layout": meta["obs_layout"],
            "env_args": env_args,
            "imported_from": str(hdf5),
            ATTR: meta,
        }
    )
    store.close()
    return EpisodeStore(out, mode="r")


def _read_masks(f: Any) -> dict[str, Any] | None:
    import h5py

    mask = f.get("mask")
    if not isinstance(mask, h5py.Group):
        return None
    return {name: encode_attr(np.asarray(mask[name])) for name in mask}


# ----------------------------------------------------------------------------- export
def _store_layout(store: EpisodeStore) -> dict[str, tuple[int, int]]:
    attrs = store.attrs
    layout = attrs.get("obs_layout") or (attrs.get(ATTR) or {}).get("obs_layout")
    if layout:
        return {k: (int(a), int(b)) for k, (a, b) in layout.items()}
    env = attrs.get("env")
    if not env:
        raise ValueError(f"{store.path}: no obs_layout and no env id in its metadata")
    return env_obs_layout(str(env))


def _store_env_args(store: EpisodeStore) -> dict[str, Any]:
    attrs = store.attrs
    if attrs.get("env_args"):
        return dict(attrs["env_args"])
    env = attrs.get("env")
    if not env:
        raise ValueError(f"{store.path}: no env_args and no env id in its metadata")
    env_args = env_info(str(env))[1]
    if env_args is None:
        raise ValueError(f"{store.path}: env {env} has no env_args()")
    return env_args


def _split_obs(
    flat: np.ndarray, layout: dict[str, tuple[int, int]], group: str, record: dict[str, Any]
) -> dict[str, np.ndarray]:
    """obs/<key> arrays of a flat (T, D) block, with the dtypes / shapes the import recorded."""
    out = {}
    for key, (start, stop) in layout.items():
        info = record.get("keys", {}).get(f"{group}/{key}")
        arr = flat[:, start:stop]
        if info is not None:
            arr = arr.astype(info["dtype"]).reshape(len(flat), *info["shape"])
        out[key] = arr
    return out


def export_robomimic(
    store: str | Path | EpisodeStore, hdf5: str | Path, overwrite: bool = False
) -> Path:
    """Write an episode store (imported or collected) as a robomimic HDF5 file; returns its
    path. Episodes stored without rows (failed ones of a collection) are left out."""
    store = store if isinstance(store, EpisodeStore) else _open_store(store)
    out = Path(hdf5)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite)")
    if "obs" not in store.keys or "action" not in store.keys:
        raise ValueError(f"{store.path}: needs obs and action arrays; stored: {store.keys}")
    layout = _store_layout(store)
    meta = store.attrs.get(ATTR) or {}
    episodes = [ep for ep in store.episodes_sorted() if ep.n_kept]
    names = meta.get("demos") or [f"demo_{i}" for i in range(len(episodes))]
    records = meta.get("demo_records") or [{} for _ in episodes]
    if len(names) != len(episodes):
        raise ValueError(f"{store.path}: {len(episodes)} episodes but {len(names)} demo names")
    with _open_h5(out, "w") as f:
        _decode_into(f.attrs, meta.get("file_attrs", {}))
        data = f.create_group("data")
        for name, ep, record in zip(names, episodes, records, strict=True):
            _write_demo(data.create_group(name), ep, layout, record)
        _write_data_attrs(data, meta, episodes, store)
        _write_masks(f, meta, names, episodes)
    return out


def _open_store(path: str | Path) -> EpisodeStore:
    if not is_episode_store(path):
        raise ValueError(f"{path} is not an episode store")
    return EpisodeStore(path, mode="r")


def _write_demo(
    group: Any, ep: Episode, layout: dict[str, tuple[int, int]], record: dict[str, Any]
) -> None:
    data, n = ep.data, ep.n_kept
    for prefix in ("obs", "next_obs"):
        if prefix not in data:
            continue
        sub = group.create_group(prefix)
        for key, arr in _split_obs(data[prefix], layout, prefix, record).items():
            sub.create_dataset(key, data=arr)
        for name in sorted(data):
            if name.startswith(prefix + "."):
                sub.create_dataset(name[len(prefix) + 1 :], data=data[name])
    if "next_obs" not in data:  # a store without next_obs: obs shifted, last repeated
        shifted = np.concatenate([data["obs"][1:], data["obs"][-1:]])
        sub = group.create_group("next_obs")
        for key, arr in _split_obs(shifted, layout, "obs", record).items():
            sub.create_dataset(key, data=arr)
    inverse = {v: k for k, v in FIELDS.items()}
    for name, h5_name in inverse.items():
        if name in data:
            group.create_dataset(h5_name, data=data[name])
    if "reward" not in data:
        group.create_dataset("rewards", data=np.zeros(n))
    if "done" not in data:
        group.create_dataset("dones", data=(np.arange(n) == n - 1).astype(np.int64))
    for name, path in record.get("extra", {}).items():
        group.create_dataset(path, data=data[name])
    if record.get("attrs"):
        _decode_into(group.attrs, record["attrs"])
    else:
        group.attrs["num_samples"] = np.int64(n)


def _write_data_attrs(
    data: Any, meta: dict[str, Any], episodes: list[Episode], store: EpisodeStore
) -> None:
    if meta.get("data_attrs"):
        _decode_into(data.attrs, meta["data_attrs"])
        return
    data.attrs["total"] = np.int64(sum(ep.n_kept for ep in episodes))
    data.attrs["env_args"] = json.dumps(_store_env_args(store))


def _write_masks(f: Any, meta: dict[str, Any], names: list[str], episodes: list[Episode]) -> None:
    import h5py

    masks = meta.get("masks")
    group = f.create_group("mask")
    if masks:
        for name, tagged in masks.items():
            arr = decode_attr(tagged)
            kind = h5py.string_dtype() if arr.dtype == object else None
            group.create_dataset(name, data=arr, dtype=kind)
        return
    from ampczoo.data.dataset import split_episodes

    ids = np.array([ep.episode_index for ep in episodes])
    split = split_episodes(ids, VALID_FRACTION, MASK_SEED)
    by_id = dict(zip(ids.tolist(), names, strict=True))
    for mask_name, part in (("train", "train"), ("valid", "val")):
        chosen = [by_id[i].encode() for i in sorted(split[part])]
        group.create_dataset(mask_name, data=np.array(chosen, dtype="S"))


# ----------------------------------------------------------------------------- CLI
@dataclass(frozen=True)
class ImportRobomimicConfig:
    """``ampczoo data import-robomimic FILE.hdf5 OUT.zarr``: a robomimic HDF5 file into a new
    Zarr episode store (trainable with ``ampczoo train``)."""

    file: str
    """robomimic HDF5 file (e.g. a low_dim.hdf5 or image.hdf5)"""
    out: str
    """Zarr episode store to create"""
    env: str | None = None
    """env id the file must be for (None = the env its env_args name)"""
    obs_keys: tuple[str, ...] = ()
    """low-dim obs keys of the flat observation, in this order (empty = the env's obs_layout)"""

    def __post_init__(self) -> None:
        if not self.file or not self.out:
            raise ValueError("file and out are required")


@dataclass(frozen=True)
class ExportRobomimicConfig:
    """``ampczoo data export-robomimic STORE.zarr FILE.hdf5``: an episode store (imported or
    collected) as a robomimic HDF5 file."""

    store: str
    """Zarr episode store to export"""
    file: str
    """robomimic HDF5 file to write"""
    overwrite: bool = False
    """replace an existing file"""

    def __post_init__(self) -> None:
        if not self.store or not self.file:
            raise ValueError("store and file are required")


def run_import(cfg: ImportRobomimicConfig) -> int:
    """``ampczoo data import-robomimic``: import, print what was stored."""
    store = import_robomimic(cfg.file, cfg.out, cfg.env, cfg.obs_keys or None)
    layout = store.attrs["obs_layout"]
    print(
        f"imported {store.n_episodes} demos ({store.n_samples} samples) from {cfg.file} into "
        f"{cfg.out}\n  env {store.attrs['env']}; obs = {' + '.join(layout)} "
        f"({max(b for _, b in layout.values())} values); arrays {store.keys}"
    )
    return 0


def run_export(cfg: ExportRobomimicConfig) -> int:
    """``ampczoo data export-robomimic``: export, print the file written."""
    out = export_robomimic(cfg.store, cfg.file, overwrite=cfg.overwrite)
    import h5py

    with h5py.File(out, "r") as f:
        n, total = len(f["data"]), int(f["data"].attrs["total"])
    print(f"exported {n} demos ({total} samples) from {cfg.store} to {out}")
    return 0
