"""ampczoo.policies: the Policy protocol, trainable policies (LSM, DAMPC) and their registry.

Importing this package is light (no torch); see :mod:`ampczoo.policies.registry`.
"""

from ampczoo.policies.base import Policy
from ampczoo.policies.registry import list_policies, load_policy, make_policy, policy_types

__all__ = ["Policy", "list_policies", "load_policy", "make_policy", "policy_types"]
