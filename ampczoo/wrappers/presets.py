"""Per-suite constraint settings of the DiffOG paper (Table IX bounds and alpha, Table XI
penalty parameters, Table VIII's time-varying schedule, Table X's velocity bound), in one
place for the trainer, the CLI and the benchmarks.

``suite_preset(env_id)`` maps an env id to its suite's :class:`SuitePreset` (None for envs
of no suite of the paper, e.g. the KUKA tasks)::

    suite      bound  alpha  scale     S (constrained dims)    penalty (eta, tol, iters)  dt
    robomimic  0.1    4      unit      all but the gripper(s)  0.03, 0.004, 10000         0.05 s
    metaworld  0.6    4      min_max   all but the gripper     0.1, 0.05, 1000            0.0125 s
    push-t     0.05   1      min_max   all (no gripper)        0.1, 0.1, 1000             0.1 s

``bound`` is the per-step change bound d_max dt on the normalised scale: robomimic's actions
already lie in [-1, 1], so there the bound is the raw one ("unit" scale, as the paper); on
Meta-World and Push-T actions are normalised per dimension by half their data range
("min_max", Diffusion Policy's normalisation), so the raw bound is ``bound * scale``.
Clipping and penalty get the same constraints in raw units (the paper: "equivalent to those
imposed by DiffOG but applied directly as unnormalized constraints"), with Table XI's
step size and tolerance in raw units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: how a refiner normalises actions (see :class:`~ampczoo.policies.refiner.RefinerConfig`)
SCALE_MODES = ("max_abs", "min_max", "unit")
#: DiffOG Table VIII: bounds of phases P1-P4 [normalised], each 40 env steps
TABLE_VIII_BOUNDS = (0.05, 0.1, 0.2, 0.3)
TABLE_VIII_PHASE_STEPS = 40
#: DiffOG Table X: velocity (action magnitude) bound on robomimic Square [normalised]
TABLE_X_MAX_ABS = 0.5


@dataclass(frozen=True)
class SuitePreset:
    """Constraint settings of one suite (DiffOG Tables IX and XI)."""

    suite: str
    """"robomimic", "metaworld" or "push-t\""""
    bound: float
    """per-step change bound d_max dt [normalised units] (Table IX "Bound")"""
    alpha: float
    """DiffOG smoothing weight (Table IX)"""
    scale_mode: str
    """action normalisation of ``bound`` (see :data:`SCALE_MODES`)"""
    gripper_dims: tuple[int, ...]
    """action dimensions left out of S (grippers), per arm of ``arm_action_dim`` actions"""
    arm_action_dim: int
    """actions per arm (the gripper indices repeat per arm: robomimic Transport has 2)"""
    penalty_step: float
    """penalty step size eta (Table XI)"""
    penalty_tol: float
    """penalty violation tolerance eps^V [raw units] (Table XI)"""
    penalty_iters: int
    """penalty maximum iterations (Table XI)"""
    dt: float
    """control step [s] (Table IX)"""

    def dims(self, action_dim: int) -> tuple[int, ...]:
        """Constrained dimensions S of ``action_dim`` actions: all but the grippers."""
        grip = {
            arm + g
            for arm in range(0, action_dim, self.arm_action_dim)
            for g in self.gripper_dims
            if arm + g < action_dim
        }
        return tuple(i for i in range(action_dim) if i not in grip)

    def refiner_fields(self, action_dim: int) -> dict[str, Any]:
        """DiffOG / refiner config fields: bound, alpha, dims (S), scale_mode."""
        return {
            "bound": self.bound,
            "alpha": self.alpha,
            "dims": self.dims(action_dim),
            "scale_mode": self.scale_mode,
        }

    def raw_scale(self, action_scale: Any, action_dim: int) -> np.ndarray:
        """(action_dim,) raw size of one normalised unit: 1 for "unit" suites, else
        ``action_scale`` (the data's half range per dimension; ValueError if missing)."""
        if self.scale_mode == "unit":
            return np.ones(action_dim)
        if action_scale is None:
            raise ValueError(
                f"the {self.suite} preset bounds actions normalised by their data range: pass "
                "action_scale (e.g. a Diffusion Policy base's, or a refiner's)"
            )
        scale = np.broadcast_to(np.asarray(action_scale, dtype=np.float64), (action_dim,))
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise ValueError(f"action_scale must be finite and > 0, got {action_scale!r}")
        return scale.copy()

    def filter_kwargs(self, kind: str, action_dim: int, action_scale: Any = None) -> dict:
        """Constructor arguments (besides the base) of ``ClippingPolicy`` ("clipping") or
        ``PenaltyPolicy`` ("penalty") for this suite: raw bounds ``bound * scale`` on S,
        ``bound_unit`` = scale (so a normalised bound schedule becomes raw), Table XI."""
        if kind not in ("clipping", "penalty"):
            raise ValueError(f"kind must be 'clipping' or 'penalty', got {kind!r}")
        dims = self.dims(action_dim)
        scale = self.raw_scale(action_scale, action_dim)[list(dims)]
        out: dict[str, Any] = {"max_delta": self.bound * scale, "dims": dims, "bound_unit": scale}
        if kind == "penalty":
            out.update(
                step_size=self.penalty_step, tol=self.penalty_tol, max_iter=self.penalty_iters
            )
        return out


PRESETS = {
    "robomimic": SuitePreset("robomimic", 0.1, 4.0, "unit", (6,), 7, 0.03, 0.004, 10000, 0.05),
    "metaworld": SuitePreset("metaworld", 0.6, 4.0, "min_max", (3,), 4, 0.1, 0.05, 1000, 0.0125),
    "push-t": SuitePreset("push-t", 0.05, 1.0, "min_max", (), 2, 0.1, 0.1, 1000, 0.1),
}


def suite_of(env_id: str) -> str | None:
    """The suite of an env id ("Robomimic-*", "MetaWorld-*", "PushT-*"), None for others."""
    for prefix, suite in (("Robomimic-", "robomimic"), ("MetaWorld-", "metaworld")):
        if env_id.startswith(prefix):
            return suite
    return "push-t" if env_id.startswith("PushT-") else None


def suite_preset(env_id: str) -> SuitePreset | None:
    """The DiffOG paper's constraint settings for ``env_id``'s suite (see the module
    docstring); None for an env of no suite of the paper."""
    if not isinstance(env_id, str):
        raise ValueError(f"env_id must be a string, got {env_id!r}")
    suite = suite_of(env_id)
    return None if suite is None else PRESETS[suite]
