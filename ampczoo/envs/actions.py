"""Validation of actions for continuous (Box) action spaces and of reset options, shared by
the envs."""

from __future__ import annotations

from collections.abc import Set
from typing import Any

import numpy as np
from gymnasium import spaces


def clip_box_action(action: Any, box: spaces.Box) -> tuple[np.ndarray, int]:
    """(``action`` as float64 clipped to ``box``, number of clipped components).

    ValueError for a non-numeric, mis-shaped or non-finite action, raised before anything is
    changed, so the caller's env state stays as it was."""
    try:
        u = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"action must be {box.shape} numbers, got {action!r}") from exc
    if u.shape != box.shape:
        raise ValueError(f"action must have shape {box.shape}, got {u.shape}")
    if not np.all(np.isfinite(u)):
        raise ValueError(f"action contains NaN/inf: {u}")
    clipped = np.clip(u, box.low, box.high)
    return clipped, int(np.count_nonzero(clipped != u))


def checked_reset_options(options: dict[str, Any] | None, allowed: Set[str]) -> dict[str, Any]:
    """A copy of ``reset(options=...)`` (``{}`` for None); ValueError naming any key not in
    ``allowed``."""
    options = dict(options or {})
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(f"unknown reset options {sorted(unknown)}; allowed: {sorted(allowed)}")
    return options
