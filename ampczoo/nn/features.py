"""Kinematic observation features of the KUKA tracking envs, computed in torch.

The paper's observation encoder sees the raw observation (q, target position, 6D target
rotation[, obstacle]). With a few thousand demonstration episodes instead of the paper's
~700 k, a network fed only that has to learn the arm's forward kinematics and Jacobian from
data; it memorises the training targets and does not generalise (ampczoo measurement, see the
README). :class:`KukaFeatures` adds what the MPC itself computes from the same observation:
forward kinematics, the pose error and the Jacobian. It is a fixed (parameter-free) function
of the observation, batched, differentiable and device-agnostic, so it sits inside a policy
like any other encoder layer; the kinematic constants come from the shipped URDF and are
rebuilt at load time (not stored in checkpoints).

Features (B, FEATURE_DIM), all O(1) in SI units:
    sin q, cos q (14); end-effector position p_ee (3) [m]; position error p_d - p_ee (3) [m]
    and its norm (1); rotation error sin(theta) * axis of R_d R_ee^T (3) and cos(theta) (1);
    J^T e (7) and the damped least-squares step J^T (J J^T + lambda I)^-1 e (7), e = the
    stacked position/rotation error, J the 6 x 7 world-frame geometric Jacobian; the world
    positions of the 7 joint origins (21) [m].
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from ampczoo.robots.kuka import OBS_Q, OBS_TARGET_POS, OBS_TARGET_ROT6D, kuka_chain

NQ = 7
FEATURE_DIM = 2 * NQ + 3 + 3 + 1 + 3 + 1 + NQ + NQ + 3 * NQ
OBS_FEATURES = ("raw", "kinematic")


def skew(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrices."""
    zero = torch.zeros_like(v[..., 0])
    return torch.stack(
        [
            torch.stack([zero, -v[..., 2], v[..., 1]], -1),
            torch.stack([v[..., 2], zero, -v[..., 0]], -1),
            torch.stack([-v[..., 1], v[..., 0], zero], -1),
        ],
        -2,
    )


def rotation_from_6d(r6: torch.Tensor) -> torch.Tensor:
    """(B, 6) first two columns -> (B, 3, 3) rotation (Gram-Schmidt, as the env's parser)."""
    a, b = r6[:, :3], r6[:, 3:6]
    c1 = a / a.norm(dim=-1, keepdim=True)
    b = b - c1 * (c1 * b).sum(-1, keepdim=True)
    c2 = b / b.norm(dim=-1, keepdim=True)
    return torch.stack([c1, c2, torch.linalg.cross(c1, c2)], dim=-1)


def quaternion_to_rot6d(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternions (x, y, z, w), any norm > 0 -> (..., 6) the first two columns of
    their rotation matrix (the inverse of :func:`rotation_from_6d`): a continuous rotation
    feature (Zhou et al. 2019) that is the same for q and -q."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    x, y, z, w = q.unbind(-1)
    col0 = (1 - 2 * (y * y + z * z), 2 * (x * y + z * w), 2 * (x * z - y * w))
    col1 = (2 * (x * y - z * w), 1 - 2 * (x * x + z * z), 2 * (y * z + x * w))
    return torch.stack((*col0, *col1), dim=-1)


def cholesky_solve_unrolled(A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solve A x = b for symmetric positive definite A (B, n, n), b (B, n, 1) -> x (B, n, 1)
    by a Cholesky factorisation written out in elementwise ops (n small and fixed). Used in
    exported ONNX graphs, which have no linear-solve operator; equal to
    ``torch.linalg.solve`` to float32 rounding for the well-conditioned damped systems of
    :class:`KukaFeatures`."""
    dtype, A, b = A.dtype, A.double(), b.double()  # float64: nearer LAPACK's float32 result
    n = A.shape[-1]
    L: list[list[torch.Tensor]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            s = A[:, i, j]
            for k in range(j):
                s = s - L[i][k] * L[j][k]
            L[i].append(torch.sqrt(s) if i == j else s / L[j][j])
    y: list[torch.Tensor] = []
    for i in range(n):  # forward substitution L y = b
        s = b[:, i, 0]
        for k in range(i):
            s = s - L[i][k] * y[k]
        y.append(s / L[i][i])
    x: list[torch.Tensor] = [y[0]] * n
    for i in reversed(range(n)):  # back substitution L^T x = y
        s = y[i]
        for k in range(i + 1, n):
            s = s - L[k][i] * x[k]
        x[i] = s / L[i][i]
    return torch.stack(x, dim=-1)[..., None].to(dtype)


class KukaFeatures(nn.Module):
    """obs (B, D >= 16) raw flat KUKA observation -> (B, FEATURE_DIM) kinematic features.

    The kinematic constants are float32 buffers (agreement with Pinocchio ~1e-8 m).

    damping: lambda of the damped least-squares step [m^2]."""

    # float32 buffers (not persistent: rebuilt from the URDF at load time)
    joint_R: torch.Tensor  # (7, 3, 3) joint placement rotations in parent frames
    joint_p: torch.Tensor  # (7, 3) joint placement translations [m]
    parent_axes: torch.Tensor  # (7, 3) joint axes in parent frames
    axis_K: torch.Tensor  # (7, 3, 3) cross-product matrices of the joint axes
    axis_KK: torch.Tensor  # (7, 3, 3) axis_K @ axis_K (Rodrigues' second-order term)
    ee_R: torch.Tensor  # (3, 3) end-effector offset rotation
    ee_p: torch.Tensor  # (3,) end-effector offset translation [m]
    eye6: torch.Tensor  # (6, 6) damping * identity
    #: linear solve of the damped 6 x 6 system (A (B, 6, 6), b (B, 6, 1)) -> (B, 6, 1);
    #: the ONNX export replaces it by :func:`cholesky_solve_unrolled` (ONNX has no solve op)
    solve: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = staticmethod(torch.linalg.solve)

    def __init__(self, damping: float = 0.01):
        super().__init__()
        chain = kuka_chain()
        self.damping = damping
        joint_R = np.array([R for R, _ in chain.placements])  # (7, 3, 3)
        axes = np.array(chain.axes)  # (7, 3) in joint frames
        K = np.array([[[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]] for a in axes])
        buffers = {
            "joint_R": joint_R,
            "joint_p": np.array([p for _, p in chain.placements]),  # (7, 3)
            "parent_axes": np.einsum("kij,kj->ki", joint_R, axes),  # axes in parent frames
            "axis_K": K,
            "axis_KK": K @ K,
            "ee_R": chain.ee_offset[0],
            "ee_p": chain.ee_offset[1],
            "eye6": damping * np.eye(6),
        }
        for name, value in buffers.items():
            self.register_buffer(name, torch.tensor(value, dtype=torch.float32), persistent=False)

    def kinematics(self, q: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """q (B, 7) -> p_ee (B, 3), R_ee (B, 3, 3), joint origins (B, 7, 3), world joint
        axes (B, 7, 3). Few, batched torch ops (this runs at every ``act``)."""
        s, c = torch.sin(q)[..., None, None], torch.cos(q)[..., None, None]
        eye = torch.eye(3, dtype=q.dtype, device=q.device)
        # local (B, 7, 3, 3): parent frame -> joint frame after rotating by q_i
        local = self.joint_R @ (eye + s * self.axis_K + (1 - c) * self.axis_KK)
        R = eye.expand(q.shape[0], 3, 3)
        parents = []
        for i in range(NQ):
            parents.append(R)
            R = R @ local[:, i]
        R_par = torch.stack(parents, 1)  # (B, 7, 3, 3) frame of each joint's parent link
        origins = torch.cumsum((R_par @ self.joint_p[..., None])[..., 0], dim=1)
        axes = (R_par @ self.parent_axes[..., None])[..., 0]
        return origins[:, -1] + R @ self.ee_p, R @ self.ee_R, origins, axes

    @staticmethod
    def jacobian_t(p_ee: torch.Tensor, origins: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
        """J^T (B, 7, 6) of the world-frame geometric Jacobian (linear rows [m/rad] first,
        then angular [rad/rad]) from :meth:`kinematics`' p_ee (B, 3), joint origins and
        world axes (B, 7, 3)."""
        return torch.cat([torch.linalg.cross(axes, p_ee[:, None] - origins, dim=-1), axes], -1)

    def damped_least_squares(self, jac_t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """J^T (J J^T + damping I)^-1 v (B, 7) for J^T (B, 7, 6) and task-space vectors v
        (B, 6) (a pose error [m, rad] -> joint step [rad]; a twist [m/s, rad/s] -> joint
        velocities [rad/s])."""
        solved = self.solve(jac_t.transpose(1, 2) @ jac_t + self.eye6, v[..., None])
        return (jac_t @ solved)[..., 0]

    def twist_to_joint_velocity(self, q: torch.Tensor, twist: torch.Tensor) -> torch.Tensor:
        """q (B, 7) [rad], end-effector twist (B, 6) (linear [m/s], angular [rad/s], world
        frame) -> joint velocities (B, 7) [rad/s] by the damped least-squares inverse of the
        Jacobian at q."""
        p_ee, _, origins, axes = self.kinematics(q)
        return self.damped_least_squares(self.jacobian_t(p_ee, origins, axes), twist)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        q, p_d = obs[:, OBS_Q], obs[:, OBS_TARGET_POS]
        R_d = rotation_from_6d(obs[:, OBS_TARGET_ROT6D])
        p_ee, R_ee, origins, axes = self.kinematics(q)
        e_p = p_d - p_ee
        E = R_d @ R_ee.transpose(1, 2)
        A = E - E.transpose(1, 2)
        e_r = 0.5 * torch.stack([A[:, 2, 1], A[:, 0, 2], A[:, 1, 0]], dim=-1)
        cos_theta = 0.5 * (E.diagonal(dim1=1, dim2=2).sum(-1, keepdim=True) - 1.0)
        jac_t = self.jacobian_t(p_ee, origins, axes)  # (B, 7, 6)
        e = torch.cat([e_p, e_r], dim=-1)
        jte = (jac_t @ e[..., None])[..., 0]
        dls = self.damped_least_squares(jac_t, e)
        return torch.cat(
            [
                torch.sin(q),
                torch.cos(q),
                p_ee,
                e_p,
                e_p.norm(dim=-1, keepdim=True),
                e_r,
                cos_theta,
                jte,
                dls,
                origins.flatten(1),
            ],
            dim=-1,
        )


def check_obs_features(kind: str, obs_dim: int) -> None:
    """ValueError unless ``kind`` is in OBS_FEATURES and fits the observation size."""
    if kind not in OBS_FEATURES:
        raise ValueError(f"obs_features must be one of {OBS_FEATURES}, got {kind!r}")
    if kind == "kinematic" and obs_dim not in (16, 20):
        raise ValueError(
            f"obs_features='kinematic' needs a KUKA observation (16 or 20), got obs_dim={obs_dim}"
        )


class ObservationInput(nn.Module):
    """The network input of an observation: the z-scored raw observation, followed by
    :class:`KukaFeatures` when ``kind == "kinematic"``. ``dim`` is the input width."""

    def __init__(self, obs_dim: int, kind: str):
        super().__init__()
        check_obs_features(kind, obs_dim)
        self.features = KukaFeatures() if kind == "kinematic" else None
        self.dim = obs_dim + (FEATURE_DIM if self.features is not None else 0)

    def forward(self, obs: torch.Tensor, obs_n: torch.Tensor) -> torch.Tensor:
        """obs (B, D) raw, obs_n (B, D) normalised -> (B, dim)."""
        if self.features is None:
            return obs_n
        return torch.cat([obs_n, self.features(obs)], dim=-1)


@contextlib.contextmanager
def unrolled_solves(module: nn.Module) -> Iterator[None]:
    """Within the block, every :class:`KukaFeatures` inside ``module`` solves its damped
    system with :func:`cholesky_solve_unrolled` (for ONNX export: no solve operator)."""
    features = [m for m in module.modules() if isinstance(m, KukaFeatures)]
    for m in features:
        m.solve = cholesky_solve_unrolled
    try:
        yield
    finally:
        for m in features:
            del m.solve
