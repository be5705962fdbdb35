"""ampczoo.experts: optimisation-based expert policies."""

from ampczoo.experts.mpc import MPCConfig, MPCExpert, MPCSolution

__all__ = ["MPCConfig", "MPCExpert", "MPCSolution"]
