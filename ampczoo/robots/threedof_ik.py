"""Position inverse kinematics for the 3-DOF arm; pluggable behind :class:`IKSolver`.

:class:`DampedLeastSquaresIK` is the paper's Eq. 3-4::

    e = p_des - p(q),   Δq = Jᵀ (J Jᵀ + λ I)⁻¹ e,   q ← clip(q + α Δq, lower, upper)

until ||e|| < ε_tol or I_max iterations, with FK and Jacobian from Pinocchio. Any object
with ``solve(p_des, q_seed) -> IKResult`` can replace it (a later issue seeds it with a
diffusion model).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ampczoo.robots.threedof import LOWER, UPPER, PinocchioKinematics, check_vector3


@dataclass(frozen=True)
class IKResult:
    """q: (3,) [rad] the last iterate (the solution when converged); converged: ||e|| <
    tol; error: final ||e|| [m]; iterations: updates made (over all seeds tried)."""

    q: np.ndarray
    converged: bool
    error: float
    iterations: int


class IKSolver(Protocol):
    """Anything that maps a target position (3,) [m] and a seed (3,) [rad] to an IKResult."""

    def solve(self, p_des: np.ndarray, q_seed: np.ndarray) -> IKResult: ...


@dataclass(frozen=True)
class DLSConfig:
    """damping: λ [m²]; step: α in (0, 1]; tol: ε_tol [m]; max_iter: I_max per seed;
    restarts: extra seeds tried after a non-converged run (elbow-up / elbow-down poses
    pointing at the target; 0 = only the given seed)."""

    damping: float = 1e-3
    step: float = 1.0
    tol: float = 1e-4
    max_iter: int = 100
    restarts: int = 2

    def __post_init__(self) -> None:
        if not self.damping > 0:
            raise ValueError(f"damping must be > 0, got {self.damping}")
        if not 0 < self.step <= 1:
            raise ValueError(f"step must be in (0, 1], got {self.step}")
        if not self.tol > 0:
            raise ValueError(f"tol must be > 0, got {self.tol}")
        if self.max_iter < 1 or self.restarts < 0:
            raise ValueError("max_iter must be >= 1 and restarts >= 0")


def best_of_seeds(solve: Callable[[np.ndarray], Any], seeds: Iterable[np.ndarray]) -> Any:
    """Solve from each seed in order until one converges; the result with the smallest error
    otherwise, with the iterations summed over the seeds tried (same result type as
    ``solve``'s). ValueError when ``seeds`` is empty."""
    best, total = None, 0
    for seed in seeds:
        res = solve(seed)
        total += res.iterations
        if best is None or res.error < best.error:
            best = res
        if res.converged:
            break
    if best is None:
        raise ValueError("best_of_seeds needs at least one seed")
    return type(best)(best.q, best.converged, best.error, total)


class DampedLeastSquaresIK:
    """Damped least-squares IK (see the module docstring); joint limits are enforced by
    clipping every iterate. ``solve`` raises ValueError on a non-finite or mis-shaped input;
    an unreachable target returns ``converged=False`` with the closest iterate found."""

    def __init__(self, config: DLSConfig | None = None, kinematics: Any = None):
        self.config = config or DLSConfig()
        self.kin = kinematics or PinocchioKinematics()

    def solve(self, p_des: np.ndarray, q_seed: np.ndarray) -> IKResult:
        """p_des (3,) [m], q_seed (3,) [rad] -> :class:`IKResult`."""
        p_des = check_vector3(p_des, "p_des")
        q_seed = np.clip(check_vector3(q_seed, "q_seed"), LOWER, UPPER)
        seeds = [q_seed, *self._restart_seeds(p_des)[: self.config.restarts]]
        return best_of_seeds(lambda seed: self._iterate(p_des, seed), seeds)

    def _iterate(self, p_des: np.ndarray, q: np.ndarray) -> IKResult:
        c = self.config
        q = q.copy()
        for it in range(c.max_iter + 1):
            p, J = self.kin.fk_jacobian(q)
            e = p_des - p
            err = float(np.linalg.norm(e))
            if err < c.tol or it == c.max_iter:
                return IKResult(q, err < c.tol, err, it)
            dq = J.T @ np.linalg.solve(J @ J.T + c.damping * np.eye(3), e)
            q = np.clip(q + c.step * dq, LOWER, UPPER)
        raise AssertionError("unreachable")

    @staticmethod
    def _restart_seeds(p_des: np.ndarray) -> list[np.ndarray]:
        yaw = float(np.arctan2(p_des[1], p_des[0]))
        return [np.array([yaw, 0.3, 1.2]), np.array([yaw, 1.2, -1.2])]
