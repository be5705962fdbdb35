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

import numpy as np
import torch
from torch import nn

from ampczoo.robots.kuka import kuka_chain

NQ = 7
FEATURE_DIM = 2 * NQ + 3 + 3 + 1 + 3 + 1 + NQ + NQ + 3 * NQ
OBS_FEATURES = ("raw", "kinematic")


def skew(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrices."""
    zero = torch.zeros_like(v[..., 0])
    return torch.stack([torch.stack([zero, -v[..., 2], v[..., 1]], -1),
                        torch.stack([v[..., 2], zero, -v[..., 0]], -1),
                        torch.stack([-v[..., 1], v[..., 0], zero], -1)], -2)


def rotation_from_6d(r6: torch.Tensor) -> torch.Tensor:
    """(B, 6) first two columns -> (B, 3, 3) rotation (Gram-Schmidt, as the env's parser)."""
    a, b = r6[:, :3], r6[:, 3:6]
    c1 = a / a.norm(dim=-1, keepdim=True)
    b = b - c1 * (c1 * b).sum(-1, keepdim=True)
    c2 = b / b.norm(dim=-1, keepdim=True)
    return torch.stack([c1, c2, torch.linalg.cross(c1, c2)], dim=-1)


class KukaFeatures(nn.Module):
    """obs (B, D >= 16) raw flat KUKA observation -> (B, FEATURE_DIM) kinematic features.

    The kinematic constants are float32 buffers (agreement with Pinocchio ~1e-8 m).

    damping: lambda of the damped least-squares step [m^2]."""

    def __init__(self, damping: float = 0.01):
        super().__init__()
        chain = kuka_chain()
        self.damping = damping
        buffers = {
            "joint_R": torch.tensor(np.array([R for R, _ in chain.placements])),  # (7, 3, 3)
            "joint_p": torch.tensor(np.array([p for _, p in chain.placements])),  # (7, 3)
            "axes": torch.tensor(np.array(chain.axes)),  # (7, 3) in joint frames
            "ee_R": torch.tensor(chain.ee_offset[0]),
            "ee_p": torch.tensor(chain.ee_offset[1]),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value.float(), persistent=False)
        K = skew(self.axes)
        self.register_buffer("axis_K", K, persistent=False)
        self.register_buffer("axis_KK", K @ K, persistent=False)

    def kinematics(self, q: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """q (B, 7) -> p_ee (B, 3), R_ee (B, 3, 3), joint origins (B, 7, 3), world joint
        axes (B, 7, 3)."""
        B = q.shape[0]
        R = torch.eye(3, dtype=q.dtype, device=q.device).expand(B, 3, 3)
        p = torch.zeros(B, 3, dtype=q.dtype, device=q.device)
        s, c = torch.sin(q)[..., None, None], torch.cos(q)[..., None, None]
        eye = torch.eye(3, dtype=q.dtype, device=q.device)
        origins, axes = [], []
        for i in range(NQ):
            p = p + R @ self.joint_p[i]
            R = R @ self.joint_R[i]
            origins.append(p)
            axes.append(R @ self.axes[i])
            R = R @ (eye + s[:, i] * self.axis_K[i] + (1 - c[:, i]) * self.axis_KK[i])
        return p + R @ self.ee_p, R @ self.ee_R, torch.stack(origins, 1), torch.stack(axes, 1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        q, p_d, R_d = obs[:, :NQ], obs[:, 7:10], rotation_from_6d(obs[:, 10:16])
        p_ee, R_ee, origins, axes = self.kinematics(q)
        e_p = p_d - p_ee
        E = R_d @ R_ee.transpose(1, 2)
        e_r = 0.5 * torch.stack([E[:, 2, 1] - E[:, 1, 2], E[:, 0, 2] - E[:, 2, 0],
                                 E[:, 1, 0] - E[:, 0, 1]], dim=-1)
        cos_theta = 0.5 * (E.diagonal(dim1=1, dim2=2).sum(-1, keepdim=True) - 1.0)
        jac = torch.cat([torch.linalg.cross(axes, p_ee[:, None] - origins, dim=-1), axes],
                        dim=-1).transpose(1, 2)  # (B, 6, 7)
        e = torch.cat([e_p, e_r], dim=-1)
        jte = (jac.transpose(1, 2) @ e[..., None])[..., 0]
        jjt = jac @ jac.transpose(1, 2) + self.damping * torch.eye(6, dtype=q.dtype,
                                                                    device=q.device)
        dls = (jac.transpose(1, 2) @ torch.linalg.solve(jjt, e[..., None]))[..., 0]
        return torch.cat([torch.sin(q), torch.cos(q), p_ee, e_p, e_p.norm(dim=-1, keepdim=True),
                          e_r, cos_theta, jte, dls, origins.flatten(1)], dim=-1)


def check_obs_features(kind: str, obs_dim: int) -> None:
    """ValueError unless ``kind`` is in OBS_FEATURES and fits the observation size."""
    if kind not in OBS_FEATURES:
        raise ValueError(f"obs_features must be one of {OBS_FEATURES}, got {kind!r}")
    if kind == "kinematic" and obs_dim not in (16, 20):
        raise ValueError(f"obs_features='kinematic' needs a KUKA observation (16 or 20), "
                         f"got obs_dim={obs_dim}")


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
