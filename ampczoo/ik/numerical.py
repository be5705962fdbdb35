"""Numerical IK baselines for kinematic trees: batched damped least squares, Pink, random restarts.

All solvers take the pose convention of :mod:`ampczoo.ik.robots` (``poses: (B, N_ee, 7)`` =
position [m] + unit quaternion (qx, qy, qz, qw)) and a seed per problem (``seeds: (B, dof)``),
and return an :class:`IKSolveResult`. A problem is solved when every constrained end-effector
is within ``pos_tol`` [m] and ``rot_tol`` [rad] of its target (the IKDiffuser paper's Task 2:
0.1 mm and 0.01 rad within 200 iterations); an unsolved problem returns its last iterate with
its errors, never a silent "solution".

- :func:`solve_dls` -- damped least squares on all end-effectors stacked, vectorised over the
  batch in torch float64::

      e_i = [p_i* - p_i(q),  log3(R_i* R_i(q)ᵀ)]        (6-D world-frame error of EE i)
      Δq  = (Jᵀ J + λ I)⁻¹ Jᵀ e                         (J: (6 N_ee, dof), masked EEs' rows 0)
      q   ← clip(q + s Δq, lower, upper),  s = min(1, max_step / ||Δq||_∞)

- :func:`solve_pink` -- Pink (``pin-pink``, the paper's Table III baseline): one ``FrameTask``
  per constrained end-effector, a ``ConfigurationLimit``, a QP per iteration solved by a
  ``qpsolvers`` backend (``proxqp`` by default), ``configuration.integrate_inplace(v, dt)``
  until the same tolerances or ``max_iters``. Pink is not batched: problems run one by one.
- :func:`solve_random_restart` -- DLS from seeds uniform within the joint limits, restarted with
  fresh seeds until solved or ``max_restarts`` (the paper's Table I reference for diversity).

``mask: (B, N_ee)`` bool, True = the end-effector is constrained (None = all); masked
end-effectors are ignored by the solvers and the errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ampczoo.ik.robots import POSE_DIM, IKRobot, load_robot, matrix_to_quaternion

#: the paper's Task 2 success thresholds
POS_TOL = 1e-4  # [m]
ROT_TOL = 0.01  # [rad]
MAX_ITERS = 200


@dataclass(frozen=True)
class IKSolveResult:
    """Outcome of a batch of IK problems (B = batch size).

    q: (B, dof) final iterate [rad / m]; success: (B,) bool, every constrained EE within the
    tolerances; iterations: (B,) int, updates made until success (the cap when unsolved;
    summed over restarts); position_error: (B,) [m] and angle_error: (B,) [rad], the largest
    over the constrained end-effectors at ``q``."""

    q: np.ndarray
    success: np.ndarray
    iterations: np.ndarray
    position_error: np.ndarray
    angle_error: np.ndarray

    def __len__(self) -> int:
        return len(self.q)

    @property
    def success_rate(self) -> float:
        """Fraction of problems solved."""
        return float(np.mean(self.success)) if len(self.success) else float("nan")


# ----------------------------------------------------------------------------- checks
def as_robot(robot: IKRobot | str) -> IKRobot:
    """An :class:`IKRobot` from itself or its name."""
    return load_robot(robot) if isinstance(robot, str) else robot


def check_poses(robot: IKRobot, poses: Any) -> np.ndarray:
    """``poses`` as (B, N_ee, 7) float64 with unit quaternions (qw >= 0).

    Raises ValueError on a wrong shape (or number of end-effectors), NaN/inf, or a quaternion
    whose norm is off by more than 1e-3 (those are refused, not normalised: such a pose is
    likely in another convention). Quaternions within 1e-3 of unit norm are renormalised."""
    arr = np.asarray(poses.detach().cpu() if isinstance(poses, torch.Tensor) else poses, float)
    if arr.ndim != 3 or arr.shape[1:] != (robot.num_ee, POSE_DIM):
        raise ValueError(
            f"{robot.name}: poses must be (B, {robot.num_ee}, {POSE_DIM}) "
            f"(one position + quaternion per end-effector), got {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{robot.name}: poses contain NaN or inf")
    norms = np.linalg.norm(arr[..., 3:], axis=-1, keepdims=True)
    if np.any(np.abs(norms - 1) > 1e-3):
        raise ValueError(
            f"{robot.name}: pose quaternions must be unit (qx, qy, qz, qw); "
            f"norms range {norms.min():.3g}..{norms.max():.3g}"
        )
    arr = arr.copy()
    arr[..., 3:] /= norms
    arr[..., 3:] *= np.where(arr[..., 6:7] < 0, -1.0, 1.0)
    return arr


def check_seeds(robot: IKRobot, seeds: Any, batch: int) -> np.ndarray:
    """``seeds`` as (B, dof) float64 clipped into the joint limits; ValueError otherwise."""
    arr = np.asarray(seeds.detach().cpu() if isinstance(seeds, torch.Tensor) else seeds, float)
    if arr.shape != (batch, robot.dof):
        raise ValueError(f"{robot.name}: seeds must be ({batch}, {robot.dof}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{robot.name}: seeds contain NaN or inf")
    return np.clip(arr, robot.lower, robot.upper)


def check_mask(robot: IKRobot, mask: Any, batch: int) -> np.ndarray:
    """``mask`` as (B, N_ee) bool (None = every EE constrained); ValueError if a row drops
    every end-effector or the shape is wrong."""
    if mask is None:
        return np.ones((batch, robot.num_ee), dtype=bool)
    arr = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask)
    if arr.ndim == 1 and arr.shape == (robot.num_ee,):
        arr = np.broadcast_to(arr, (batch, robot.num_ee))
    if arr.shape != (batch, robot.num_ee):
        raise ValueError(f"{robot.name}: mask must be ({batch}, {robot.num_ee}), got {arr.shape}")
    arr = arr.astype(bool)
    if not arr.any(axis=1).all():
        raise ValueError(f"{robot.name}: mask drops every end-effector of some problem")
    return arr.copy()


def check_tolerances(max_iters: int, pos_tol: float, rot_tol: float) -> None:
    if max_iters < 0:
        raise ValueError(f"max_iters must be >= 0, got {max_iters}")
    if not (pos_tol > 0 and rot_tol > 0):
        raise ValueError(f"pos_tol and rot_tol must be > 0, got {pos_tol}, {rot_tol}")


# ----------------------------------------------------------------------------- errors
def quaternion_to_matrix(quat: torch.Tensor) -> torch.Tensor:
    """Unit quaternions (..., 4) as (qx, qy, qz, qw) -> rotation matrices (..., 3, 3)."""
    x, y, z, w = quat.unbind(-1)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


def log3(rot: torch.Tensor) -> torch.Tensor:
    """Rotation vectors (..., 3) [rad] of rotation matrices (..., 3, 3), angle in [0, π]
    (through the quaternion, accurate near 0 and π)."""
    quat = matrix_to_quaternion(rot)  # qw >= 0
    vec, w = quat[..., :3], quat[..., 3:]
    sin_half = vec.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(sin_half, w)
    scale = torch.where(
        sin_half > 1e-12, angle / sin_half.clamp_min(1e-12), 2.0 / w.clamp_min(1e-12)
    )
    return vec * scale


def pose_errors(
    robot: IKRobot | str, q: Any, poses: Any, mask: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Position error [m] and geodesic angle [rad] of every end-effector, each (B, N_ee), of
    configurations ``q: (B, dof)`` against target ``poses: (B, N_ee, 7)``; masked EEs are NaN."""
    robot = as_robot(robot)
    target = check_poses(robot, poses)
    q_t = robot.check_q(torch.as_tensor(np.asarray(q, float)))
    if q_t.shape[0] != len(target):
        raise ValueError(f"q has {q_t.shape[0]} rows but poses {len(target)}")
    rot, pos = robot.ee_transforms(q_t)
    t = torch.as_tensor(target)
    pos_err = (t[..., :3] - pos).norm(dim=-1)
    ang_err = log3(quaternion_to_matrix(t[..., 3:]) @ rot.transpose(-1, -2)).norm(dim=-1)
    m = check_mask(robot, mask, len(target))
    return (
        np.where(m, pos_err.numpy(), np.nan),
        np.where(m, ang_err.numpy(), np.nan),
    )


def ee_poses_and_jacobians(
    robot: IKRobot, q: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """End-effector rotations (B, N_ee, 3, 3), positions (B, N_ee, 3) [m] and world-aligned
    Jacobians (B, N_ee, 6, dof) from one pass over the joints (what ``robot.ee_transforms``
    and ``robot.jacobians`` give; :meth:`IKRobot.ee_transforms_and_jacobians`)."""
    return robot.ee_transforms_and_jacobians(q)


def _worst(err: np.ndarray) -> np.ndarray:
    """(B, N_ee) errors (NaN = masked) -> (B,) the largest constrained one."""
    return np.nanmax(err, axis=1)


# ----------------------------------------------------------------------------- DLS
def solve_dls(
    robot: IKRobot | str,
    poses: Any,
    seeds: Any,
    max_iters: int = MAX_ITERS,
    pos_tol: float = POS_TOL,
    rot_tol: float = ROT_TOL,
    mask: Any = None,
    damping: float = 1e-4,
    max_step: float = 0.5,
    rotation_weight: float = 1.0,
) -> IKSolveResult:
    """Batched damped least-squares IK (module docstring), torch float64 on the CPU.

    poses: (B, N_ee, 7); seeds: (B, dof) (clipped into the limits); mask: (B, N_ee) bool or
    None; damping: λ [m² ~ rad²] of the normal equations; max_step: largest joint change per
    iteration [rad]; rotation_weight: [m/rad] weight of the rotation error rows. Problems that
    converge stop iterating (the rest go on as a smaller batch)."""
    robot = as_robot(robot)
    check_tolerances(max_iters, pos_tol, rot_tol)
    if not (damping >= 0 and max_step > 0 and rotation_weight > 0):
        raise ValueError("damping must be >= 0, max_step and rotation_weight > 0")
    target = check_poses(robot, poses)
    batch = len(target)
    q = torch.as_tensor(check_seeds(robot, seeds, batch))
    m = torch.as_tensor(check_mask(robot, mask, batch))
    t_pos = torch.as_tensor(target[..., :3])
    t_rot = quaternion_to_matrix(torch.as_tensor(target[..., 3:]))
    lower, upper = torch.as_tensor(robot.lower), torch.as_tensor(robot.upper)
    iterations = torch.full((batch,), max_iters, dtype=torch.long)
    success = torch.zeros(batch, dtype=torch.bool)
    active = torch.arange(batch)
    eye = torch.eye(robot.dof, dtype=torch.float64)
    for it in range(max_iters + 1):
        qa, ma = q[active], m[active]
        rot, pos, jac = ee_poses_and_jacobians(robot, qa)
        e_pos = t_pos[active] - pos
        e_rot = log3(t_rot[active] @ rot.transpose(-1, -2))
        ok = (e_pos.norm(dim=-1) < pos_tol) & (e_rot.norm(dim=-1) < rot_tol)
        done = (ok | ~ma).all(dim=1)
        success[active[done]] = True
        iterations[active[done]] = it
        active, qa, ma = active[~done], qa[~done], ma[~done]
        if it == max_iters or len(active) == 0:
            break
        err = torch.cat([e_pos[~done], rotation_weight * e_rot[~done]], dim=-1)  # (A, N, 6)
        jac = jac[~done]  # (A, N, 6, dof)
        jac = torch.cat([jac[..., :3, :], rotation_weight * jac[..., 3:, :]], dim=-2)
        weight = ma.to(err.dtype).unsqueeze(-1)
        err = (err * weight).flatten(1)
        jac = (jac * weight.unsqueeze(-1)).flatten(1, 2)  # (A, 6N, dof)
        jt = jac.transpose(1, 2)
        dq = torch.linalg.solve(jt @ jac + damping * eye, (jt @ err.unsqueeze(-1))).squeeze(-1)
        scale = (max_step / dq.abs().amax(dim=1).clamp_min(1e-12)).clamp(max=1.0)
        q[active] = torch.minimum(torch.maximum(qa + scale.unsqueeze(1) * dq, lower), upper)
    q_np = q.numpy()
    pos_err, ang_err = pose_errors(robot, q_np, target, m.numpy())
    return IKSolveResult(
        q=q_np,
        success=success.numpy(),
        iterations=iterations.numpy(),
        position_error=_worst(pos_err),
        angle_error=_worst(ang_err),
    )


# ----------------------------------------------------------------------------- Pink
def pink_qp_solvers() -> list[str]:
    """QP backends qpsolvers has in this installation (Pink's ``solver`` argument)."""
    import qpsolvers

    return list(qpsolvers.available_solvers)


def solve_pink(
    robot: IKRobot | str,
    poses: Any,
    seeds: Any,
    max_iters: int = MAX_ITERS,
    pos_tol: float = POS_TOL,
    rot_tol: float = ROT_TOL,
    mask: Any = None,
    solver: str = "proxqp",
    dt: float = 1.0,
    damping: float = 1e-6,
    lm_damping: float = 1e-3,
    orientation_cost: float = 1.0,
    limit_gain: float = 0.5,
) -> IKSolveResult:
    """Pink differential IK from each seed, one problem at a time (module docstring).

    One ``FrameTask(frame, position_cost=1, orientation_cost, lm_damping)`` per constrained
    end-effector, ``ConfigurationLimit(model, limit_gain)`` as the only limit; each iteration
    solves Pink's QP with ``solver`` and integrates the velocity over ``dt`` [s] (dt = 1: the
    QP's step is the joint displacement); damping: Pink's Tikhonov weight."""
    robot = as_robot(robot)
    check_tolerances(max_iters, pos_tol, rot_tol)
    if solver not in pink_qp_solvers():
        raise ValueError(
            f"QP solver {solver!r} is not available; qpsolvers has {pink_qp_solvers()}"
        )
    if not (dt > 0 and damping >= 0 and lm_damping >= 0 and 0 < limit_gain <= 1):
        raise ValueError("dt must be > 0, damping/lm_damping >= 0, limit_gain in (0, 1]")
    target = check_poses(robot, poses)
    batch = len(target)
    seeds_np = check_seeds(robot, seeds, batch)
    m = check_mask(robot, mask, batch)
    runner = _PinkRunner(robot, solver, dt, damping, lm_damping, orientation_cost, limit_gain)
    q_out = np.empty_like(seeds_np)
    success = np.zeros(batch, dtype=bool)
    iterations = np.full(batch, max_iters, dtype=np.int64)
    for b in range(batch):
        q_out[b], success[b], iterations[b] = runner.solve(
            target[b], seeds_np[b], m[b], max_iters, pos_tol, rot_tol
        )
    pos_err, ang_err = pose_errors(robot, q_out, target, m)
    return IKSolveResult(q_out, success, iterations, _worst(pos_err), _worst(ang_err))


class _PinkRunner:
    """Pink tasks and configuration of one robot, reused across problems."""

    def __init__(
        self,
        robot: IKRobot,
        solver: str,
        dt: float,
        damping: float,
        lm_damping: float,
        orientation_cost: float,
        limit_gain: float,
    ):
        import pinocchio as pin
        from pink import Configuration
        from pink.limits import ConfigurationLimit
        from pink.tasks import FrameTask

        self.pin, self.robot = pin, robot
        self.solver, self.dt, self.damping = solver, dt, damping
        self.model = robot.model
        self.data = self.model.createData()
        self.tasks = [
            FrameTask(
                f, position_cost=1.0, orientation_cost=orientation_cost, lm_damping=lm_damping
            )
            for f in robot.ee_names
        ]
        self.limits = [ConfigurationLimit(self.model, config_limit_gain=limit_gain)]
        self.frame_ids = [self.model.getFrameId(f) for f in robot.ee_names]
        self.config = Configuration(self.model, self.data, pin.neutral(self.model), copy_data=False)

    def _errors(self, targets: list[Any], active: np.ndarray) -> tuple[float, float]:
        data = self.config.data
        pos, ang = 0.0, 0.0
        for i in np.flatnonzero(active):
            cur = data.oMf[self.frame_ids[i]]
            pos = max(pos, float(np.linalg.norm(targets[i].translation - cur.translation)))
            rel = targets[i].rotation @ cur.rotation.T
            ang = max(ang, float(np.linalg.norm(self.pin.log3(rel))))
        return pos, ang

    def solve(
        self,
        pose: np.ndarray,
        seed: np.ndarray,
        active: np.ndarray,
        max_iters: int,
        pos_tol: float,
        rot_tol: float,
    ) -> tuple[np.ndarray, bool, int]:
        """One problem: (q, success, iterations)."""
        from pink import solve_ik
        from pink.exceptions import NoSolutionFound

        pin = self.pin
        targets = [pin.XYZQUATToSE3(p) for p in pose]
        tasks = [t for t, a in zip(self.tasks, active, strict=True) if a]
        for task, tgt in zip(self.tasks, targets, strict=True):
            task.set_target(tgt)
        self.config.update(seed.copy())
        lower, upper = self.robot.lower, self.robot.upper
        for it in range(max_iters + 1):
            pos, ang = self._errors(targets, active)
            if pos < pos_tol and ang < rot_tol:
                return self.config.q.copy(), True, it
            if it == max_iters:
                break
            try:
                v = solve_ik(
                    self.config,
                    tasks,
                    self.dt,
                    solver=self.solver,
                    damping=self.damping,
                    limits=self.limits,
                    safety_break=False,
                )
            except NoSolutionFound:
                break
            q_next = pin.integrate(self.model, self.config.q, v * self.dt)
            self.config.update(np.clip(q_next, lower, upper))
        return self.config.q.copy(), False, max_iters


# ----------------------------------------------------------------------------- restarts
def uniform_seeds(
    robot: IKRobot | str, n: int, generator: torch.Generator | None = None
) -> np.ndarray:
    """(n, dof) configurations uniform within the joint limits (float64)."""
    robot = as_robot(robot)
    u = torch.rand((n, robot.dof), generator=generator, dtype=torch.float64).numpy()
    return robot.lower + u * (robot.upper - robot.lower)


def solve_random_restart(
    robot: IKRobot | str,
    poses: Any,
    max_restarts: int = 10,
    generator: torch.Generator | None = None,
    mask: Any = None,
    **dls_kwargs: Any,
) -> IKSolveResult:
    """DLS from uniform random seeds, restarted with fresh seeds for the unsolved problems
    until every problem is solved or ``max_restarts`` restarts were made (max_restarts + 1
    attempts in all). The result of an unsolved problem is its attempt with the smallest
    position error; ``iterations`` sums the iterations of all its attempts.
    dls_kwargs: passed to :func:`solve_dls` (max_iters, pos_tol, rot_tol, damping, ...)."""
    robot = as_robot(robot)
    if max_restarts < 0:
        raise ValueError(f"max_restarts must be >= 0, got {max_restarts}")
    target = check_poses(robot, poses)
    batch = len(target)
    m = check_mask(robot, mask, batch)
    res = solve_dls(robot, target, uniform_seeds(robot, batch, generator), mask=m, **dls_kwargs)
    q, success = res.q.copy(), res.success.copy()
    iterations, pos_err, ang_err = (
        res.iterations.copy(),
        res.position_error.copy(),
        res.angle_error.copy(),
    )
    for _ in range(max_restarts):
        todo = np.flatnonzero(~success)
        if len(todo) == 0:
            break
        seeds = uniform_seeds(robot, len(todo), generator)
        r = solve_dls(robot, target[todo], seeds, mask=m[todo], **dls_kwargs)
        iterations[todo] += r.iterations
        better = r.success | (r.position_error < pos_err[todo])
        idx = todo[better]
        q[idx], success[idx] = r.q[better], r.success[better]
        pos_err[idx], ang_err[idx] = r.position_error[better], r.angle_error[better]
    return IKSolveResult(q, success, iterations, pos_err, ang_err)
