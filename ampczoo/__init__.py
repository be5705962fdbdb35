"""ampczoo: imitating model predictive control and constraining learned robot policies.

Importing the package registers its Gymnasium environments (lazily: no MuJoCo/Pinocchio
import happens until an env is made)."""

__version__ = "0.1.0"

from ampczoo import envs  # noqa: E402,F401  (registers the envs)
