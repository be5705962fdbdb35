"""ampczoo.core: the bottom layer. The policy protocol (:mod:`~ampczoo.core.policy`), the
checkpoint format (:mod:`~ampczoo.core.checkpoint`, needs torch) and the policy registry with
the zoo index (:mod:`~ampczoo.core.registry`). Nothing here imports another ampczoo layer."""

from ampczoo.core.policy import Policy
from ampczoo.core.registry import (
    list_policies,
    load_policy,
    make_policy,
    policy_types,
    register_policy,
    zoo_card,
)

__all__ = [
    "Policy",
    "list_policies",
    "load_policy",
    "make_policy",
    "policy_types",
    "register_policy",
    "zoo_card",
]
