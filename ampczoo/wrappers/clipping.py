"""Greedy constraint clipping of action chunks (DiffOG appendix A-1; LeTO's clipping).

Starting from the last executed action, each step's change c_k - c*_{k-1} is clipped
element-wise into [d_min dt, d_max dt] and accumulated: c*_k = c*_{k-1} + clip(...). Without a
previous action (first step of an episode) c*_0 = c_0. With a magnitude bound ``max_abs``
(DiffOG Table X's velocity bound) each c*_k is then clipped into [-max_abs, max_abs]; that only
shrinks the step from a c*_{k-1} inside the interval, so the change bounds still hold.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from ampczoo.wrappers.chunk import (
    FILTER_ONLY,
    POLICY_ONLY_PARAMETERS,
    ActionChangeWrapper,
    ChangeBoundFilter,
    env_action_dim,
)


def clip_chunk(
    c: np.ndarray,
    prev: np.ndarray | None,
    lo: np.ndarray,
    hi: np.ndarray,
    max_abs: float | None = None,
) -> np.ndarray:
    """c (T, D) -> greedily clipped chunk (T, D); lo/hi (T, D) bounds of c_k - c_{k-1}
    (row 0 against ``prev``, ignored when prev is None); max_abs: |c_k| <= max_abs too
    (None: no magnitude bound; ``prev`` must then lie within it)."""
    out = np.array(c, dtype=np.float64)
    last = prev
    for k in range(len(out)):
        if last is not None:
            out[k] = last + np.clip(out[k] - last, lo[k], hi[k])
        if max_abs is not None:
            out[k] = np.clip(out[k], -max_abs, max_abs)
        last = out[k]
    return out


class ClippingPolicy(ChangeBoundFilter):
    """Policy wrapper: greedy clipping of the base chunk, receding horizon (see
    :class:`~ampczoo.wrappers.chunk.ChangeBoundFilter` for the arguments)."""

    name = "clipping"

    def filter_selected(self, c, prev, lo, hi):
        return clip_chunk(c, prev, lo, hi, self.max_abs)


class ClipActionChange(ActionChangeWrapper):
    """``gymnasium.ActionWrapper`` clipping the change between consecutive env actions to
    [min_delta, max_delta] (raw units, > 0 / < 0; min_delta defaults to -max_delta) on the
    action dimensions ``dims`` (None = all)."""

    example_kwargs: ClassVar[dict[str, Any]] = {"max_delta": 0.1}
    invalid_kwargs = tuple(
        c
        for c in ClippingPolicy.invalid_kwargs
        if not set(c) & {"action_scale", *POLICY_ONLY_PARAMETERS}
    )
    per_dimension_parameters: ClassVar[tuple[str, ...]] = ("max_delta",)

    def __init__(self, env: gym.Env, max_delta: Any, min_delta: Any = None, dims: Any = None):
        action_dim = env_action_dim(env)
        self.filter = ClippingPolicy(FILTER_ONLY, max_delta, min_delta, dims)
        self.filter.check_action_dim(action_dim)
        super().__init__(env, self.filter.refine)
