"""ampczoo.wrappers: Gymnasium and policy wrappers.

:class:`~ampczoo.wrappers.history.HistoryObservation` stacks the last H states of an env's
observation. The constraint filters for actions and action chunks are each a policy wrapper
(receding horizon over a base policy's chunks) and a ``gymnasium.ActionWrapper`` on the change
between consecutive env actions: :class:`~ampczoo.wrappers.clipping.ClippingPolicy` /
``ClipActionChange`` (greedy clipping) and :class:`~ampczoo.wrappers.penalty.PenaltyPolicy` /
``PenaltyActionChange`` (penalty-based trajectory optimisation). The learned filters (DiffOG,
residual) are policy types of :mod:`ampczoo.core.registry` (``DiffOG.wrap(base, ...)``).

:data:`WRAPPERS` names every wrapper class (:func:`register_wrapper` adds one). Each declares
a small working instance (``example_kwargs``) and its own invalid cases (``invalid_kwargs``)
next to it; the contract tests build and break every registered wrapper from them.
"""

from __future__ import annotations

from ampczoo.wrappers.chunk import ActionChangeWrapper, InterventionStats, action_chunk
from ampczoo.wrappers.clipping import ClipActionChange, ClippingPolicy, clip_chunk
from ampczoo.wrappers.history import HistoryObservation
from ampczoo.wrappers.penalty import PenaltyActionChange, PenaltyPolicy, penalty_chunk

#: wrapper name -> class. Policy wrappers take the base policy first, gymnasium wrappers
#: (subclasses of ``gymnasium.Wrapper``) the env.
WRAPPERS: dict[str, type] = {
    "clipping": ClippingPolicy,
    "penalty": PenaltyPolicy,
    "clip-action-change": ClipActionChange,
    "penalty-action-change": PenaltyActionChange,
    "history": HistoryObservation,
}


def register_wrapper(name: str, cls: type) -> None:
    """Add a wrapper class under ``name`` (re-registering a name with another class is a
    ValueError). It should declare ``example_kwargs`` and ``invalid_kwargs``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"wrapper name must be a non-empty string, got {name!r}")
    if not isinstance(cls, type):
        raise ValueError(f"wrapper must be a class, got {cls!r}")
    if WRAPPERS.get(name, cls) is not cls:
        raise ValueError(f"wrapper {name!r} is already registered as {WRAPPERS[name]!r}")
    WRAPPERS[name] = cls


def wrapper_names() -> list[str]:
    """Names of the registered wrappers, sorted."""
    return sorted(WRAPPERS)


__all__ = [
    "WRAPPERS",
    "ActionChangeWrapper",
    "ClipActionChange",
    "ClippingPolicy",
    "HistoryObservation",
    "InterventionStats",
    "PenaltyActionChange",
    "PenaltyPolicy",
    "action_chunk",
    "clip_chunk",
    "penalty_chunk",
    "register_wrapper",
    "wrapper_names",
]
