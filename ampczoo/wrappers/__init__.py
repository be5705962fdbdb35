"""ampczoo.wrappers: constraint filters for actions and action chunks.

Each is a policy wrapper (receding horizon over a base policy's chunks) and a
``gymnasium.ActionWrapper`` on the change between consecutive env actions:
:class:`~ampczoo.wrappers.clipping.ClippingPolicy` / ``ClipActionChange`` (greedy clipping) and
:class:`~ampczoo.wrappers.penalty.PenaltyPolicy` / ``PenaltyActionChange`` (penalty-based
trajectory optimisation). The learned filters (DiffOG, residual) live in ampczoo.policies.
"""

from ampczoo.wrappers.chunk import ActionChangeWrapper, InterventionStats, action_chunk
from ampczoo.wrappers.clipping import ClipActionChange, ClippingPolicy, clip_chunk
from ampczoo.wrappers.penalty import PenaltyActionChange, PenaltyPolicy, penalty_chunk

__all__ = ["ActionChangeWrapper", "ClipActionChange", "ClippingPolicy", "InterventionStats",
           "PenaltyActionChange", "PenaltyPolicy", "action_chunk", "clip_chunk",
           "penalty_chunk"]
