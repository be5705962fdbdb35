"""ampczoo.wrappers: Gymnasium and policy wrappers.

:class:`~ampczoo.wrappers.history.HistoryObservation` stacks the last H states of an env's
observation. The constraint filters for actions and action chunks are each a policy wrapper
(receding horizon over a base policy's chunks) and a ``gymnasium.ActionWrapper`` on the change
between consecutive env actions: :class:`~ampczoo.wrappers.clipping.ClippingPolicy` /
``ClipActionChange`` (greedy clipping) and :class:`~ampczoo.wrappers.penalty.PenaltyPolicy` /
``PenaltyActionChange`` (penalty-based trajectory optimisation). The learned filters (DiffOG,
residual) live in ampczoo.policies.
"""

from ampczoo.wrappers.chunk import ActionChangeWrapper, InterventionStats, action_chunk
from ampczoo.wrappers.clipping import ClipActionChange, ClippingPolicy, clip_chunk
from ampczoo.wrappers.history import HistoryObservation
from ampczoo.wrappers.penalty import PenaltyActionChange, PenaltyPolicy, penalty_chunk

__all__ = [
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
]
