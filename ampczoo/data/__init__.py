"""ampczoo.data: demonstration collection (noisy MPC expert), Zarr episode store, datasets.

Submodules load lazily (collection, e.g. ``ampczoo collect`` / ``python -m ampczoo collect``,
must not import torch): :mod:`ampczoo.data.collect` (``collect``, ``CollectConfig``,
``CollectReport``), :mod:`ampczoo.data.store` (``EpisodeStore``, ``Episode``),
:mod:`ampczoo.data.dataset` (``DemonstrationDataset``, needs torch),
:mod:`ampczoo.data.robomimic` (``import_robomimic``, ``export_robomimic``: robomimic HDF5
files, via h5py).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CollectConfig": "collect",
    "CollectReport": "collect",
    "collect": "collect",
    "EpisodeStore": "store",
    "Episode": "store",
    "DemonstrationDataset": "dataset",
    "import_robomimic": "robomimic",
    "export_robomimic": "robomimic",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ampczoo.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ampczoo.data.{_EXPORTS[name]}"), name)
