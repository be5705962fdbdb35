"""ampczoo.policies: the learned policies and refiners, one file per model (config + model
+ loss + act). Each is registered in :mod:`ampczoo.core.registry`; importing this package is
light (no torch)."""

from ampczoo.core import Policy, list_policies, load_policy, make_policy, policy_types

__all__ = ["Policy", "list_policies", "load_policy", "make_policy", "policy_types"]
