"""One constructor for a base policy behind any constraint layer, with the DiffOG paper's
per-suite settings (:func:`ampczoo.wrappers.presets.suite_preset`): what the manipulation
benchmark and scripts call.

    from ampczoo.policies.constrained import make_constrained
    base = ampczoo.load_policy("dp-lift")
    clipped = make_constrained("clipping", base, "Robomimic-Lift-v0")
    penal = make_constrained("penalty", base, "Robomimic-Lift-v0")
    refined = make_constrained("diffog", base, "Robomimic-Lift-v0", checkpoint="diffog-dp-lift")
    varying = make_constrained("clipping", base, "Robomimic-Lift-v0", bound_schedule="table8")

Every wrapper executes the base's ``action_horizon`` refined actions per chunk (Diffusion
Policy: T_a = 8) unless ``execute_steps`` is given; keyword ``overrides`` replace preset
values (e.g. ``max_abs=0.5``, ``execute_steps=1``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ampczoo.wrappers.chunk import BoundSchedule, base_action_dim
from ampczoo.wrappers.presets import (
    TABLE_VIII_BOUNDS,
    TABLE_VIII_PHASE_STEPS,
    suite_preset,
)

#: constraint layers of :func:`make_constrained`
KINDS = ("none", "clipping", "penalty", "diffog")


def table8_schedule() -> BoundSchedule:
    """DiffOG Table VIII's schedule: 0.05 / 0.1 / 0.2 / 0.3 over 40-step phases."""
    return BoundSchedule(TABLE_VIII_BOUNDS, TABLE_VIII_PHASE_STEPS)


def make_constrained(
    kind: str,
    base: Any,
    env_id: str,
    checkpoint: Any = None,
    bound_schedule: BoundSchedule | str | Any = None,
    **overrides: Any,
) -> Any:
    """``base`` behind the constraint layer ``kind`` ("none": the base itself; "clipping",
    "penalty": Table IX bounds and Table XI parameters of ``env_id``'s suite, raw units;
    "diffog": ``DiffOG.wrap(base, checkpoint)``, the refiner's own trained bound).
    bound_schedule: a BoundSchedule, a sequence of phase bounds, or "table8" [normalised].
    ValueError for an unknown kind, an env of no suite of the paper, a base that declares
    no action size, or a refiner that does not fit the base."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "none":
        return base
    if isinstance(bound_schedule, str):
        if bound_schedule != "table8":
            raise ValueError(f'bound_schedule must be "table8" or bounds, got {bound_schedule!r}')
        bound_schedule = table8_schedule()
    if kind == "diffog":
        return _diffog(base, checkpoint, bound_schedule, overrides)
    preset = suite_preset(env_id)
    if preset is None:
        raise ValueError(f"{env_id!r} belongs to no suite of the DiffOG paper (no preset)")
    action_dim = base_action_dim(base)
    if action_dim is None:
        raise ValueError(f"the base ({type(base).__name__}) declares no action_dim")
    scale = getattr(base, "action_scale", None)
    kwargs = preset.filter_kwargs(kind, action_dim, None if scale is None else np.asarray(scale))
    kwargs.update(overrides)
    if kind == "clipping":
        from ampczoo.wrappers.clipping import ClippingPolicy

        return ClippingPolicy(base, bound_schedule=bound_schedule, **kwargs)
    from ampczoo.wrappers.penalty import PenaltyPolicy

    return PenaltyPolicy(base, bound_schedule=bound_schedule, **kwargs)


def _diffog(base: Any, checkpoint: Any, schedule: Any, overrides: dict[str, Any]) -> Any:
    """``DiffOG.wrap``; a ``max_abs`` override is set on the refiner's config (the QP reads it
    per solve: the magnitude bound of Table X at inference, beside the one it was trained
    with, if any)."""
    import dataclasses

    from ampczoo.core.registry import load_policy
    from ampczoo.policies.diffog import DiffOG, DiffOGConfig

    if "max_abs" in overrides:
        max_abs = overrides.pop("max_abs")
        if isinstance(checkpoint, DiffOGConfig) or checkpoint is None:
            checkpoint = DiffOG(checkpoint or DiffOGConfig()).eval()
        elif not isinstance(checkpoint, DiffOG):
            checkpoint = load_policy(checkpoint)
        if not isinstance(checkpoint, DiffOG):
            raise ValueError(f"checkpoint is a {type(checkpoint).__name__}, not a DiffOG")
        checkpoint.config = dataclasses.replace(checkpoint.config, max_abs=max_abs)
    return DiffOG.wrap(base, checkpoint, bound_schedule=schedule, **overrides)
