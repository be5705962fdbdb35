"""Hierarchical IK + MPC expert of the 3-DOF arm (the paper's Sec. 3).

1. IK (pluggable, default :class:`~ampczoo.robots.threedof_ik.DampedLeastSquaresIK`): q_ref with
   p(q_ref) = p_des, seeded by the previous reference (the current q after ``reset``). With
   ``ik_seed="ikdiffuser"`` a new target is instead seeded by samples of an IKDiffuser
   (:func:`ampczoo.ik.seeding.ik_seeds`) drawn from the seed of ``reset(seed)``, so episodes
   reach their goals in different IK modes (elbow up / down) on purpose.
2. MPC on the double-integrator model x = [q, q̇] (paper Eq. 5-9)::

       min_{τ_0..τ_{N-1}}  Σ_{k<N} ||x_k − x_ref||²_Q + ||τ_k||²_R + ||x_N − x_ref||²_{Q_N}
       s.t.  x_{k+1} = x_k + Δt [q̇_k, τ_k],   x_0 = x(t),   −τ_max ≤ τ_k ≤ τ_max

   with x_ref = [q_ref, 0]. The states are eliminated (condensed form), which leaves a convex
   QP in the 3N torques with box bounds only. It is built once with CasADi and solved by a
   conic solver (``ca.qpsol``: "osqp" default, "proxqp", "qpoases", "hpipm", ...), warm-
   started from the previous solution shifted by one step; ``solver="ipopt"`` solves the same
   problem with ``ca.nlpsol`` (the paper's set-up, for comparison).

τ_max is the env's corrective-torque bound (``robots.threedof.TORQUE_LIMIT``): the env adds
gravity compensation, and its motor ranges are sized for τ_max + max |τ_g|, so the applied
τ_0 is never clipped. The yaw error q_ref,1 − q_1 is wrapped to [−π, π] only when both ends
lie inside the joint range (they always do: the range is ±π).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ampczoo.core.policy import Policy
from ampczoo.robots.threedof import LOWER, OBS_Q, OBS_QD, OBS_TARGET, TORQUE_LIMIT, UPPER
from ampczoo.robots.threedof_ik import DampedLeastSquaresIK, IKSolver, best_of_seeds

IK_SEEDS = ("previous", "ikdiffuser")
CONIC_SOLVERS = ("osqp", "proxqp", "qpoases", "hpipm", "qrqp")
SOLVERS = (*CONIC_SOLVERS, "ipopt")
OBS_DIM = 9


@dataclass(frozen=True)
class IKMPCConfig:
    """Configuration of :class:`IKMPCExpert`, the 3-DOF arm's IK + MPC expert (paper Sec. 3,
    Eq. 5-9; see the module docstring for the problem)."""

    horizon: int = 20
    """N, prediction horizon [steps]"""
    dt: float = 0.02
    """Δt of the prediction model [s] (= the env's control period)"""
    q_weight: float = 20.0
    """diagonal of Q on the joint positions [1/rad²]"""
    qd_weight: float = 2.0
    """diagonal of Q on the joint velocities [s²/rad²]"""
    r_weight: float = 0.2
    """diagonal of R [1/(N m)²]. The defaults give a feedback gain of about 10 N m/rad (1 N m
    per 0.1 rad of joint error); with Q = 100, R = 0.01 the gain is 10x higher, the expert is
    as accurate but saturates within 0.1 rad of the goal, and an imitating network has to
    reproduce that step to hold the target."""
    terminal_factor: float = 10.0
    """Q_N = terminal_factor · Q"""
    solver: str = "osqp"
    """QP solver: a conic solver of ``ca.qpsol`` (osqp, proxqp, qpoases, hpipm, qrqp) or
    "ipopt" (the same problem through ``ca.nlpsol``)"""
    torque_limit: tuple[float, float, float] = tuple(TORQUE_LIMIT.tolist())
    """τ_max, bound of the corrective torque, (3,) [N m] (at most the env's bound)"""
    warm_start: bool = True
    """seed each solve with the previous solution shifted by one step"""
    max_iter: int = 4000
    """solver iteration cap"""
    eps: float = 1e-6
    """OSQP absolute/relative tolerance"""
    ik_seed: Literal["previous", "ikdiffuser"] = "previous"
    """seed of the IK at a new target: "previous" = the previous reference, the current q
    after ``reset`` (deterministic); "ikdiffuser" = ``ik_num_seeds`` samples of an IKDiffuser
    of the 3-DOF arm, tried in the drawn order until one converges (drawn from the seed of
    ``reset(seed)``: different episodes, different IK modes)"""
    ik_num_seeds: int = 4
    """IKDiffuser samples per new target (ik_seed="ikdiffuser")"""
    ik_seed_model: str = ""
    """IKDiffuser for ik_seed="ikdiffuser": zoo name or checkpoint folder ("" =
    ikdiffuser-threedof)"""

    def __post_init__(self) -> None:
        if self.horizon < 1 or not self.dt > 0:
            raise ValueError("horizon must be >= 1 and dt > 0")
        for name in ("q_weight", "qd_weight", "r_weight", "terminal_factor"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 (Q, R, Q_N positive definite)")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if len(self.torque_limit) != 3 or not all(t > 0 for t in self.torque_limit):
            raise ValueError(f"torque_limit must be 3 positive values, got {self.torque_limit}")
        if np.any(np.asarray(self.torque_limit) > TORQUE_LIMIT + 1e-12):
            raise ValueError(
                f"torque_limit {self.torque_limit} exceeds the env's corrective "
                f"bound {TORQUE_LIMIT.tolist()}: τ_0 would be clipped by the sim"
            )
        if self.ik_seed not in IK_SEEDS:
            raise ValueError(f"ik_seed must be one of {IK_SEEDS}, got {self.ik_seed!r}")
        if self.ik_num_seeds < 1:
            raise ValueError(f"ik_num_seeds must be >= 1, got {self.ik_num_seeds}")


@dataclass
class IKMPCSolution:
    """tau: (N, 3) optimal corrective torques [N m]; x: (N+1, 6) predicted states; q_ref (3,)
    [rad]; ik_converged / ik_error [m] / ik_iterations; cost; success (solver status ok);
    status; iterations (QP); solve_time / ik_time [s]."""

    tau: np.ndarray
    x: np.ndarray
    q_ref: np.ndarray
    ik_converged: bool
    ik_error: float
    ik_iterations: int
    cost: float
    success: bool
    status: str
    iterations: int
    solve_time: float
    ik_time: float
    extras: dict[str, Any] = field(default_factory=dict)


class IKMPCExpert(Policy):
    """``act(obs) -> τ_0`` on the flat observation [q, q̇, p_des] (9,) of ThreeDOF-Reach-v0.

    A failed QP solve returns zero torque (the env's gravity compensation holds the arm) and
    is counted in ``n_failures``; an IK that does not converge (unreachable target) tracks the
    closest configuration found and is counted in ``n_ik_failures``."""

    name = "ikmpc"
    config_class = IKMPCConfig
    #: ``act`` takes one observation at a time (a batch is a ValueError).
    batched = False
    #: [q, q̇, p_des] of ThreeDOF-Reach-v0 -> corrective torque (3,) [N m].
    obs_dim = OBS_DIM
    action_dim = 3

    @classmethod
    def example_config(cls) -> IKMPCConfig:
        """A 5-step horizon (tests and docs)."""
        return IKMPCConfig(horizon=5)

    def __init__(
        self,
        config: IKMPCConfig | None = None,
        ik: IKSolver | None = None,
        seed_model: Any = None,
    ):
        """seed_model: the IK sampler of ik_seed="ikdiffuser" (an object with ``sample``;
        None = ``config.ik_seed_model`` loaded with :func:`ampczoo.ik.seeding.load_ik_sampler`,
        ValueError naming the model if it is missing)."""
        self.config = config or IKMPCConfig()
        self.ik = ik or DampedLeastSquaresIK()
        self._seed_model = None
        if self.config.ik_seed == "ikdiffuser":
            from ampczoo.ik.seeding import load_ik_sampler

            self._seed_model = load_ik_sampler(
                "threedof", seed_model or self.config.ik_seed_model or None
            )
        self._build()
        self.n_failures = self.n_ik_failures = 0
        self.reset()

    # ------------------------------------------------------------------ problem
    def _build(self) -> None:
        import casadi as ca

        c = self.config
        N = c.horizon
        tau = ca.SX.sym("tau", 3 * N)
        p = ca.SX.sym("p", 12)  # x0 (6), x_ref (6)
        x, x_ref = p[:6], p[6:]
        Q = ca.diag(ca.vertcat(*([c.q_weight] * 3), *([c.qd_weight] * 3)))
        cost, xs = 0, [x]
        for k in range(N):
            u = tau[3 * k : 3 * k + 3]
            e = x - x_ref
            cost += ca.mtimes([e.T, Q, e]) + c.r_weight * ca.sumsqr(u)
            x = ca.vertcat(x[:3] + c.dt * x[3:], x[3:] + c.dt * u)
            xs.append(x)
        e = x - x_ref
        cost += c.terminal_factor * ca.mtimes([e.T, Q, e])
        self._problem = {"x": tau, "p": p, "f": cost}
        self._make_solver()
        self._predict = ca.Function("predict", [tau, p], [ca.horzcat(*xs).T])
        self._lb = -np.tile(np.asarray(c.torque_limit), N)
        self._ub = np.tile(np.asarray(c.torque_limit), N)

    def _make_solver(self) -> None:
        """A fresh solver instance (its internal state, e.g. OSQP's adapted ρ, starts over)."""
        import casadi as ca

        c = self.config
        if c.solver == "ipopt":
            opts = {
                "print_time": False,
                "ipopt": {"print_level": 0, "max_iter": c.max_iter, "sb": "yes", "tol": 1e-8},
            }
            self._solver = ca.nlpsol("ikmpc", "ipopt", self._problem, opts)
        else:
            self._solver = ca.qpsol("ikmpc", c.solver, self._problem, self._conic_options())
        self._dirty = False

    def _conic_options(self) -> dict[str, Any]:
        c = self.config
        opts: dict[str, Any] = {"print_time": False, "error_on_fail": False}
        if c.solver == "osqp":
            opts["osqp"] = {
                "verbose": False,
                "eps_abs": c.eps,
                "eps_rel": c.eps,
                "max_iter": c.max_iter,
                "polish": False,
                # a fixed interval: OSQP's default (0) adapts rho on wall time,
                # which makes the solution depend on machine load
                "adaptive_rho_interval": 25,
            }
            opts["warm_start_primal"] = c.warm_start
            opts["warm_start_dual"] = c.warm_start
        elif c.solver == "proxqp":
            opts["proxqp"] = {"eps_abs": c.eps, "max_iter": c.max_iter}
            opts["warm_start_primal"] = c.warm_start
        elif c.solver == "qpoases":
            opts["printLevel"] = "none"
        elif c.solver == "qrqp":
            opts["print_iter"] = False
            opts["print_header"] = False
        return opts

    # ------------------------------------------------------------------ policy
    def reset(self, seed: int | None = None) -> None:
        """Forget the warm start and the previous IK reference, and start a fresh solver
        instance (~10 ms) if the current one has solved anything, so an episode's solutions
        do not depend on the episodes before it. ``seed`` seeds the IKDiffuser samples of
        ik_seed="ikdiffuser" (None = 0); with the default seeding it is unused (the expert is
        deterministic)."""
        if getattr(self, "_dirty", False):
            self._make_solver()
        self._seed_generator = None
        if self._seed_model is not None:
            import torch

            self._seed_generator = torch.Generator().manual_seed(0 if seed is None else seed)
        self._q_ref: np.ndarray | None = None
        self._target: np.ndarray | None = None
        self._tau_prev: np.ndarray | None = None
        self._lam_prev: np.ndarray | None = None

    def reference(self, q: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, Any, float]:
        """IK step: (q_ref (3,), IKResult, time [s]); seeded by the previous reference for
        the same target, by q otherwise."""
        t0 = time.perf_counter()
        same = self._target is not None and np.array_equal(target, self._target)
        if same and self._q_ref is not None:
            res = self.ik.solve(target, self._q_ref)
        elif self._seed_model is not None:
            res = self._solve_from_model_seeds(target)
        else:
            res = self.ik.solve(target, q)
        self._q_ref, self._target = res.q, target.copy()
        return res.q, res, time.perf_counter() - t0

    def _solve_from_model_seeds(self, target: np.ndarray) -> Any:
        """IK from IKDiffuser seeds, in the drawn order until one converges (the result with
        the smallest error otherwise; iterations summed over the seeds tried)."""
        from ampczoo.ik.seeding import ik_seeds

        seeds = ik_seeds(
            "threedof",
            target.reshape(1, 1, 3),
            self.config.ik_num_seeds,
            source="ikdiffuser",
            model=self._seed_model,
            generator=self._seed_generator,
        )[0]
        return best_of_seeds(lambda seed: self.ik.solve(target, seed), seeds)

    def solve(self, obs: Any) -> IKMPCSolution:
        """IK + one MPC solve at observation ``obs`` (9,) = [q, q̇, p_des]."""
        obs = _check_obs(obs)
        q, qd, target = obs[OBS_Q], obs[OBS_QD], obs[OBS_TARGET]
        q_ref, ik, ik_time = self.reference(q, target)
        if not ik.converged:
            self.n_ik_failures += 1
        x_ref = np.concatenate([_unwrap_yaw(q_ref, q), np.zeros(3)])
        params = np.concatenate([q, qd, x_ref])
        args: dict[str, Any] = {"p": params, "lbx": self._lb, "ubx": self._ub}
        if self.config.warm_start and self._tau_prev is not None:
            args["x0"] = np.concatenate([self._tau_prev[3:], self._tau_prev[-3:]])
            if self._lam_prev is not None:
                args["lam_x0"] = np.concatenate([self._lam_prev[3:], self._lam_prev[-3:]])
        self._dirty = True
        t0 = time.perf_counter()
        out = self._solver(**args)
        solve_time = time.perf_counter() - t0
        stats = self._solver.stats()
        tau = np.asarray(out["x"], float).ravel()
        ok = bool(stats.get("success", False)) and bool(np.all(np.isfinite(tau)))
        if ok:
            tau = np.clip(tau, self._lb, self._ub)  # solver tolerance (~eps) only
            self._tau_prev, self._lam_prev = tau, np.asarray(out["lam_x"], float).ravel()
        else:
            self._tau_prev = self._lam_prev = None
        x_pred = np.asarray(self._predict(tau if ok else np.zeros_like(tau), params), float)
        return IKMPCSolution(
            tau=tau.reshape(-1, 3),
            x=x_pred,
            q_ref=q_ref,
            ik_converged=ik.converged,
            ik_error=ik.error,
            ik_iterations=ik.iterations,
            cost=float(out["f"]),
            success=ok,
            status=str(stats.get("return_status", stats.get("unified_return_status", ""))),
            iterations=int(stats.get("iter_count", stats.get("iter", -1)) or -1),
            solve_time=solve_time,
            ik_time=ik_time,
        )

    def act(self, obs: Any) -> np.ndarray:
        """τ_0 (3,) [N m], zero torque (counted in ``n_failures``) if the solve failed."""
        sol = self.solve(obs)
        if not sol.success:
            self.n_failures += 1
            return np.zeros(3)
        return sol.tau[0].copy()


def _unwrap_yaw(q_ref: np.ndarray, q: np.ndarray) -> np.ndarray:
    """q_ref with its yaw moved by ±2π toward q when that stays in the joint range."""
    out = q_ref.copy()
    for shift in (-2 * np.pi, 2 * np.pi):
        cand = q_ref[0] + shift
        if LOWER[0] <= cand <= UPPER[0] and abs(cand - q[0]) < abs(out[0] - q[0]):
            out[0] = cand
    return out


def _check_obs(obs: Any) -> np.ndarray:
    arr = np.asarray(obs, dtype=np.float64)
    if arr.shape != (OBS_DIM,):
        raise ValueError(
            f"observation must have shape ({OBS_DIM},) = [q, q̇, p_des], got {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"observation contains NaN/inf: {arr}")
    return arr
