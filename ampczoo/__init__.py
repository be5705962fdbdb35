"""ampczoo: imitating model predictive control and constraining learned robot policies.

Importing the package registers its Gymnasium environments (lazily: no MuJoCo/Pinocchio
import happens until an env is made)."""

__version__ = "0.1.0"

from ampczoo import envs  # noqa: E402,F401  (registers the envs)

_LAZY = {"make_policy", "load_policy", "list_policies", "zoo_card", "register_policy"}


def __getattr__(name: str):
    """Lazy exports of :mod:`ampczoo.core.registry` (``make_policy``, ``load_policy``,
    ``list_policies``, ``zoo_card``, ``register_policy``)."""
    if name in _LAZY:
        from ampczoo.core import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'ampczoo' has no attribute {name!r}")
