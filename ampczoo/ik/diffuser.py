"""IKDiffuser (paper §III, App. A): a conditional diffusion model of joint configurations q given
the poses of a kinematic tree's end-effectors.

Model (:class:`IKDiffuserNet`)::

    pose tokens   x_i (7,) -> normalise position -> MLP -> + learned embedding of EE i
                  masked EE: learned null embedding (+ the EE's embedding) instead of the pose
                  ("flat" ablation, App. A: all N_ee poses + mask bits -> one token)
    query token   MLP(q_t normalised to [-1, 1]) + MLP(sinusoidal(t)), then residual MLP blocks
    depth x       h += CrossAttn(RMSNorm(h), RMSNorm(tokens));  h += FFN_GeLU(RMSNorm(h))
    output        Linear(RMSNorm(h)) -> epsilon (dof,)

Diffusion: epsilon-prediction DDPM, linear betas 1e-4..0.04, T = 100 (diffusers'
``DDPMScheduler`` for ``add_noise``); sampling with DPM-Solver++ (diffusers'
``DPMSolverMultistepScheduler``, 5 steps), batched over targets x samples, results clamped to
the joint limits.

Guidance (paper Eq. 14-15; its Eq. 16-18 and the scale are not in the text we have, so this is
our choice): at each solver step (training step t, a_t = alphas_cumprod[t]) the clean estimate
x0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t) (normalised q) is clipped to [-1, 1] and shifted
along the gradient of the objective J at x0, weighted by the noise variance 1 - a_t::

    x0 <- x0 + (1 - a_t) [w_warm grad J_warm(x0) + w_manip grad J_manip(x0) / max(1, |grad|)]

and the shifted x0 is handed to the solver (as the equivalent epsilon). DPM-Solver++ updates
are linear in x0, so this is a first-order shift of the denoising mean by c_t (1 - a_t) w g
(Eq. 15, the variance-scaled shift mu + s Sigma g of classifier guidance), with g evaluated at
the clean estimate instead of at mu_t. The factor 1 - a_t (0.87 at the first of the 5 steps,
0.08 at the last) lets the late, low-noise steps restore the pose accuracy the shift costs.
J_warm = -||x0 - x_prior||^2 in normalised coordinates (Eq. 19-20: g = -2 (x0 - x_prior));
J_manip = sum_i sqrt(det G_i) (Eq. 21) with G_i the smaller Gram matrix of the Jacobian J_i
restricted to EE i's joints (J_i J_i^T when it has >= 6 joints, else J_i^T J_i, so fingers
and the 3-DOF arm are not identically 0), differentiated by autograd through
:meth:`IKRobot.jacobians` and normalised to at most unit length (its scale differs by orders
of magnitude between robots).

Quaternions: a target quaternion with | |q| - 1 | < 1e-3 is normalised, any other is refused
(ValueError), as are NaN/inf poses, a wrong N_ee and masks that keep no end-effector.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ampczoo.core.checkpoint import CONFIG_NAME, WEIGHTS_NAME, read_config, read_weights
from ampczoo.ik.robots import POSE_DIM, IKRobot, list_robots, load_robot, quaternion_geodesic

MODEL_TYPE = "ikdiffuser"
ZOO_DIR = Path(__file__).resolve().parent.parent / "zoo"
ZOO_PREFIX = "ikdiffuser-"
#: a target quaternion whose norm is within this of 1 is normalised; others are refused
QUAT_NORM_TOL = 1e-3


@dataclass(frozen=True)
class IKDiffuserConfig:
    """Architecture, noise schedule and sampling defaults of one IKDiffuser (config.json).

    Paper size: ``width=512, depth=8, heads=8, ffn=1024`` (19.7 M parameters here; the paper
    counts 27.2 M, its encoders are not fully specified). The default is CPU-sized (width 128,
    4 blocks, 4 heads, FFN 256; 0.7 M parameters, 2.9 MB): one training step of batch 512
    takes 115 ms on one core of the 2-core VM vs 490 ms for width 256 / 6 blocks (3.9 M
    parameters, 16 MB), and the zoo keeps each model under ~5 MB."""

    robot: str = "panda"
    """robot name (``ampczoo.ik.robots.list_robots()``)"""
    width: int = 128
    """token width (paper: 512)"""
    depth: int = 4
    """number of cross-attention Transformer blocks (paper: 8)"""
    heads: int = 4
    """attention heads (paper: 8); must divide width"""
    ffn: int = 256
    """hidden size of each block's GeLU feed-forward network (paper: 1024)"""
    query_blocks: int = 2
    """residual MLP blocks embedding the noisy q and the diffusion step"""
    p_drop: float = 0.1
    """conditioning dropout: probability that a pose token is replaced by the null embedding
    in training (at least one EE is always kept, so it does nothing for one-EE robots)"""
    conditioning: Literal["sequence", "flat"] = "sequence"
    """"sequence": one token per EE pose (the paper's); "flat": all poses (and mask bits)
    concatenated into one token (the App. A ablation)"""
    num_train_timesteps: int = 100
    """diffusion steps T"""
    beta_start: float = 1e-4
    """first beta of the linear schedule"""
    beta_end: float = 0.04
    """last beta of the linear schedule"""
    inference_steps: int = 5
    """DPM-Solver++ steps when sampling"""
    clip_x0: bool = True
    """clip the clean estimate to the joint limits at every solver step"""
    warm_start_scale: float = 0.2
    """default guidance weight w_warm of the warm-start objective (per solver step)"""
    manipulability_scale: float = 0.5
    """default guidance weight w_manip of the manipulability objective (per solver step,
    on a gradient normalised to at most unit length)"""

    def __post_init__(self) -> None:
        if self.robot not in list_robots():
            raise ValueError(f"unknown robot {self.robot!r}; choose from {list_robots()}")
        for name in ("width", "depth", "heads", "ffn", "num_train_timesteps", "inference_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.query_blocks < 0:
            raise ValueError(f"query_blocks must be >= 0, got {self.query_blocks}")
        if self.width % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide width ({self.width})")
        if not 0.0 <= self.p_drop < 1.0:
            raise ValueError(f"p_drop must be in [0, 1), got {self.p_drop}")
        if self.conditioning not in ("sequence", "flat"):
            raise ValueError(
                f"conditioning must be 'sequence' or 'flat', got {self.conditioning!r}"
            )
        if not 0.0 < self.beta_start < self.beta_end < 1.0:
            raise ValueError(
                f"need 0 < beta_start < beta_end < 1, got {self.beta_start}, {self.beta_end}"
            )
        if self.inference_steps > self.num_train_timesteps:
            raise ValueError("inference_steps must not exceed num_train_timesteps")
        if self.warm_start_scale < 0 or self.manipulability_scale < 0:
            raise ValueError("guidance scales must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        """config.json content: {"type": "ikdiffuser", <every field>}."""
        return {"type": MODEL_TYPE, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IKDiffuserConfig:
        """Inverse of :meth:`to_dict`; ValueError on another type or unknown fields."""
        data = dict(data)
        kind = data.pop("type", None)
        if kind != MODEL_TYPE:
            raise ValueError(f"config type {kind!r} is not {MODEL_TYPE!r}")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"IKDiffuserConfig: unknown config fields {unknown}")
        return cls(**data)


@dataclass(frozen=True)
class Guidance:
    """Objectives that steer sampling (see the module docstring for the formula).

    q_prior: (dof,) or (B, dof) prior configuration [rad] for the warm start (None = off);
    manipulability: maximise sum_i sqrt(det G_i); scales: None = the model config's defaults."""

    q_prior: Any = None
    manipulability: bool = False
    warm_start_scale: float | None = None
    manipulability_scale: float | None = None


@dataclass(frozen=True)
class IKSolution:
    """Result of :meth:`IKDiffuser.solve`, samples sorted best first per target.

    q: (B, K, dof) [rad]; position_error: (B, K) [m] and angle_error: (B, K) [rad] = the
    worst constrained end-effector's; success: (B, K) errors below the tolerances. A target
    nobody reaches (unreachable pose) still gets its nearest samples, with success False."""

    q: np.ndarray
    position_error: np.ndarray
    angle_error: np.ndarray
    success: np.ndarray

    @property
    def best(self) -> np.ndarray:
        """(B, dof) the best sample of every target."""
        return self.q[:, 0]


# ----------------------------------------------------------------------------- network
class ResidualMLP(nn.Module):
    """h + W2 GeLU(W1 RMSNorm(h))."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.norm = nn.RMSNorm(width)
        self.fc1, self.fc2 = nn.Linear(width, hidden), nn.Linear(hidden, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(F.gelu(self.fc1(self.norm(h))))


class CrossAttentionBlock(nn.Module):
    """Pre-norm residual block: cross-attention of the query token to the pose tokens, then
    a GeLU feed-forward network."""

    def __init__(self, width: int, heads: int, ffn: int):
        super().__init__()
        self.heads = heads
        self.norm_q, self.norm_kv = nn.RMSNorm(width), nn.RMSNorm(width)
        self.q_proj = nn.Linear(width, width)
        self.kv_proj = nn.Linear(width, 2 * width)
        self.out_proj = nn.Linear(width, width)
        self.ffn = ResidualMLP(width, ffn)

    def forward(self, h: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """h: (B, W) query; tokens: (B, N, W) -> (B, W)."""
        b, n, w = tokens.shape
        d = w // self.heads
        q = self.q_proj(self.norm_q(h)).view(b, self.heads, 1, d)
        k, v = self.kv_proj(self.norm_kv(tokens)).view(b, n, 2, self.heads, d).unbind(2)
        att = F.scaled_dot_product_attention(q, k.transpose(1, 2), v.transpose(1, 2))
        h = h + self.out_proj(att.reshape(b, w))
        return self.ffn(h)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (B, dim) of integer steps t: (B,)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = t.float().unsqueeze(-1) * freqs
    return torch.cat([torch.sin(args), torch.cos(args)], -1)


class IKDiffuserNet(nn.Module):
    """epsilon_theta(q_t, t, poses, mask): see the module docstring."""

    def __init__(self, config: IKDiffuserConfig, dof: int, num_ee: int):
        super().__init__()
        w = config.width
        self.flat = config.conditioning == "flat"
        self.num_ee, self.dof = num_ee, dof
        pose_in = num_ee * (POSE_DIM + 1) if self.flat else POSE_DIM
        self.pose_embed = nn.Sequential(nn.Linear(pose_in, w), nn.GELU(), nn.Linear(w, w))
        self.ee_embed = nn.Parameter(torch.randn(1 if self.flat else num_ee, w) * 0.02)
        self.null_embed = nn.Parameter(torch.randn(w) * 0.02)
        self.q_embed = nn.Linear(dof, w)
        self.t_embed = nn.Sequential(nn.Linear(w, w), nn.GELU(), nn.Linear(w, w))
        self.query = nn.Sequential(
            *[ResidualMLP(w, config.ffn) for _ in range(config.query_blocks)]
        )
        self.blocks = nn.ModuleList(
            CrossAttentionBlock(w, config.heads, config.ffn) for _ in range(config.depth)
        )
        self.norm_out = nn.RMSNorm(w)
        self.out = nn.Linear(w, dof)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def encode(self, poses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Pose tokens (B, N_ee, W) (flat: (B, 1, W)) from normalised poses (B, N_ee, 7) and
        mask (B, N_ee) bool True = constrained."""
        if self.flat:
            kept = torch.where(mask.unsqueeze(-1), poses, torch.zeros_like(poses))
            flat = torch.cat([kept.flatten(1), mask.to(poses.dtype)], -1)
            return (self.pose_embed(flat) + self.ee_embed).unsqueeze(1)
        emb = self.pose_embed(poses)
        emb = torch.where(mask.unsqueeze(-1), emb, self.null_embed.expand_as(emb))
        return emb + self.ee_embed

    def forward(self, x: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """x: (B, dof) noisy normalised q; t: (B,) steps; tokens: (B, N, W) -> eps (B, dof)."""
        h = self.q_embed(x) + self.t_embed(timestep_embedding(t, self.q_embed.out_features))
        h = self.query(h)
        for block in self.blocks:
            h = block(h, tokens)
        return self.out(self.norm_out(h))


# ----------------------------------------------------------------------------- IKDiffuser
class IKDiffuser(nn.Module):
    """Diffusion IK for one robot: ``loss`` to train, ``sample`` / ``solve`` to query."""

    q_lower: torch.Tensor  # (dof,) joint limits [rad]
    q_upper: torch.Tensor
    pos_mean: torch.Tensor  # (N_ee, 3) training position mean [m]
    pos_std: torch.Tensor  # (N_ee, 3) training position std [m]
    alphas_cumprod: torch.Tensor  # (T,)

    def __init__(self, config: IKDiffuserConfig, robot: IKRobot | None = None):
        super().__init__()
        if not isinstance(config, IKDiffuserConfig):
            raise TypeError(f"IKDiffuser needs an IKDiffuserConfig, got {type(config).__name__}")
        self.config = config
        self.robot = robot if robot is not None else load_robot(config.robot)
        if self.robot.name != config.robot:
            raise ValueError(f"robot {self.robot.name!r} != config robot {config.robot!r}")
        dof, n = self.robot.dof, self.robot.num_ee
        self.net = IKDiffuserNet(config, dof, n)
        lower, upper = self.robot.joint_limits
        self.register_buffer("q_lower", torch.tensor(lower, dtype=torch.float32))
        self.register_buffer("q_upper", torch.tensor(upper, dtype=torch.float32))
        self.register_buffer("pos_mean", torch.zeros(n, 3))
        self.register_buffer("pos_std", torch.ones(n, 3))
        self._train_scheduler = _ddpm_scheduler(config)
        self.register_buffer("alphas_cumprod", self._train_scheduler.alphas_cumprod.clone().float())

    # ---------------------------------------------------------------- properties
    @property
    def dof(self) -> int:
        return self.robot.dof

    @property
    def num_ee(self) -> int:
        return self.robot.num_ee

    @property
    def joint_limits(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower (dof,), upper (dof,)) [rad or m]."""
        return self.robot.joint_limits

    def forward_kinematics(self, q: Any) -> torch.Tensor:
        """Poses (B, N_ee, 7) of q (B, dof): position [m] + unit quaternion (qx, qy, qz, qw)."""
        return self.robot.forward_kinematics(q)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @property
    def device(self) -> torch.device:
        return self.q_lower.device

    # ---------------------------------------------------------------- normalisation
    def normalize_q(self, q: torch.Tensor) -> torch.Tensor:
        """q [rad] (..., dof) -> [-1, 1] by the joint limits."""
        return 2 * (q - self.q_lower) / (self.q_upper - self.q_lower) - 1

    def unnormalize_q(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize_q`."""
        return self.q_lower + (x + 1) * (self.q_upper - self.q_lower) / 2

    def normalize_poses(self, poses: torch.Tensor) -> torch.Tensor:
        """(B, N_ee, 7): positions z-scored by the stored stats, quaternions as they are."""
        pos = (poses[..., :3] - self.pos_mean) / self.pos_std
        return torch.cat([pos, poses[..., 3:]], -1)

    def set_position_stats(self, poses: Any) -> None:
        """Store the mean / std (N_ee, 3) of the training positions (saved with the model)."""
        pos = torch.as_tensor(np.asarray(poses)[..., :3], dtype=torch.float32)
        self.pos_mean.copy_(pos.mean(0))
        self.pos_std.copy_(pos.std(0, correction=0).clamp_min(1e-3))

    # ---------------------------------------------------------------- input checks
    def check_poses(self, poses: Any) -> torch.Tensor:
        """Target poses as a float32 (B, N_ee, 7) tensor on the model's device (one pose
        set (N_ee, 7) is taken as B = 1). ValueError on a wrong shape, NaN/inf or a
        quaternion whose norm is off by 1e-3 or more (smaller deviations are normalised)."""
        if isinstance(poses, torch.Tensor):
            p = poses.detach().to("cpu", torch.float64)
        else:
            p = torch.as_tensor(np.asarray(poses, dtype=np.float64))
        if p.ndim == 2:
            p = p.unsqueeze(0)
        if p.ndim != 3 or p.shape[-1] != POSE_DIM:
            raise ValueError(
                f"poses must be (B, {self.num_ee}, 7) (position + quaternion), got {tuple(p.shape)}"
            )
        if p.shape[1] != self.num_ee:
            raise ValueError(
                f"{self.robot.name} has {self.num_ee} end-effectors {self.robot.ee_names}, "
                f"poses have {p.shape[1]}"
            )
        if p.shape[0] == 0:
            raise ValueError("poses: empty batch")
        if not torch.isfinite(p).all():
            raise ValueError("poses contain NaN or inf")
        norm = p[..., 3:].norm(dim=-1, keepdim=True)
        if ((norm - 1).abs() >= QUAT_NORM_TOL).any():
            worst = float((norm - 1).abs().max())
            raise ValueError(
                f"pose quaternions must be unit (|norm - 1| < {QUAT_NORM_TOL}); "
                f"found one off by {worst:.3g}"
            )
        p = torch.cat([p[..., :3], p[..., 3:] / norm], -1)
        return p.to(device=self.device, dtype=torch.float32)

    def check_mask(self, mask: Any, batch: int) -> torch.Tensor:
        """(B, N_ee) bool (True = constrained; None = all); ValueError on a wrong shape or a
        row that constrains no end-effector. A (N_ee,) mask applies to every target."""
        if mask is None:
            return torch.ones(batch, self.num_ee, dtype=torch.bool, device=self.device)
        m = torch.as_tensor(np.asarray(mask))
        if m.dtype != torch.bool:
            raise ValueError(f"mask must be boolean (True = constrained), got {m.dtype}")
        if m.ndim == 1:
            m = m.unsqueeze(0).expand(batch, -1)
        if tuple(m.shape) != (batch, self.num_ee):
            raise ValueError(f"mask must be ({batch}, {self.num_ee}), got {tuple(m.shape)}")
        if not m.any(-1).all():
            raise ValueError("mask drops every end-effector of some target (keep at least one)")
        return m.to(self.device)

    def check_prior(self, q_prior: Any, batch: int) -> torch.Tensor:
        """(B, dof) prior [rad]; ValueError on a wrong dof or NaN."""
        if isinstance(q_prior, torch.Tensor):
            q = q_prior.detach().to("cpu", torch.float64)
        else:
            q = torch.as_tensor(np.asarray(q_prior, dtype=np.float64))
        if q.ndim == 1:
            q = q.unsqueeze(0).expand(batch, -1)
        if q.ndim != 2 or q.shape[-1] != self.dof or q.shape[0] != batch:
            raise ValueError(
                f"q_prior must be ({self.dof},) or ({batch}, {self.dof}) for {self.robot.name}, "
                f"got {tuple(q.shape)}"
            )
        if not torch.isfinite(q).all():
            raise ValueError("q_prior contains NaN or inf")
        return q.to(device=self.device, dtype=torch.float32)

    # ---------------------------------------------------------------- training
    def loss(
        self,
        q: torch.Tensor,
        poses: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Epsilon-prediction loss of a batch: q (B, dof) [rad], poses (B, N_ee, 7) (their
        forward kinematics). Each pose token is dropped with probability p_drop (at least one
        kept). generator draws the steps, the noise and the dropout."""
        b = q.shape[0]
        dev = self.device
        x0 = self.normalize_q(q.to(dev, torch.float32))
        t = torch.randint(0, self.config.num_train_timesteps, (b,), generator=generator)
        noise = torch.randn(x0.shape, generator=generator).to(dev)
        keep = torch.rand(b, self.num_ee, generator=generator) >= self.config.p_drop
        forced = torch.randint(0, self.num_ee, (b,), generator=generator)
        keep[torch.arange(b), forced] |= ~keep.any(-1)
        t, keep = t.to(dev), keep.to(dev)
        xt = self._train_scheduler.add_noise(x0, noise, t)
        tokens = self.net.encode(self.normalize_poses(poses.to(dev, torch.float32)), keep)
        return F.mse_loss(self.net(xt, t, tokens), noise)

    # ---------------------------------------------------------------- sampling
    def sample(
        self,
        poses: Any,
        num_samples: int = 1,
        mask: Any = None,
        guidance: Guidance | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Joint configurations (B, K, dof) [rad] for target poses (B, N_ee, 7), K =
        num_samples each, clamped to the joint limits. mask: (B, N_ee) or (N_ee,) bool,
        True = constrained (None = every EE). guidance: :class:`Guidance` or None.
        generator: torch.Generator (CPU) for the initial noise (the solver is
        deterministic)."""
        p = self.check_poses(poses)
        b, k = p.shape[0], int(num_samples)
        if k < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        m = self.check_mask(mask, b)
        prior = None
        if guidance is not None and guidance.q_prior is not None:
            prior = self.check_prior(guidance.q_prior, b)
            prior = self.normalize_q(prior).repeat_interleave(k, 0)
        x = torch.randn(b * k, self.dof, generator=generator).to(self.device)
        with torch.no_grad():
            tokens = self.net.encode(self.normalize_poses(p), m).repeat_interleave(k, 0)
        x = self._denoise(x, tokens, guidance, prior)
        return self.unnormalize_q(x.clamp(-1, 1)).view(b, k, self.dof)

    def _denoise(
        self,
        x: torch.Tensor,
        tokens: torch.Tensor,
        guidance: Guidance | None,
        prior: torch.Tensor | None,
    ) -> torch.Tensor:
        sched = _dpm_scheduler(self.config)
        sched.set_timesteps(self.config.inference_steps, device=x.device)
        ac = self.alphas_cumprod
        for t in sched.timesteps:
            tt = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
            with torch.no_grad():
                eps = self.net(x, tt, tokens)
            a = ac[int(t)]
            x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
            if self.config.clip_x0:
                x0 = x0.clamp(-1, 1)
            if guidance is not None:
                x0 = x0 + (1 - a) * self.guidance_shift(x0, guidance, prior)
            eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
            x = sched.step(eps, t, x).prev_sample
        return x

    def guidance_shift(
        self, x0: torch.Tensor, guidance: Guidance, prior: torch.Tensor | None
    ) -> torch.Tensor:
        """The shift (B, dof) of the normalised clean estimate x0 (module docstring)."""
        shift = torch.zeros_like(x0)
        if prior is not None:
            w = _or(guidance.warm_start_scale, self.config.warm_start_scale)
            shift = shift + w * warm_start_gradient(x0, prior)
        if guidance.manipulability:
            w = _or(guidance.manipulability_scale, self.config.manipulability_scale)
            g = self.manipulability_gradient(x0)
            shift = shift + w * g / g.norm(dim=-1, keepdim=True).clamp_min(1.0)
        return shift

    def manipulability(self, q: torch.Tensor) -> torch.Tensor:
        """sum_i sqrt(det G_i) (B,) of q (B, dof) [rad] (Eq. 21; G_i: module docstring)."""
        jac = self.robot.jacobians(q)
        total = torch.zeros(q.shape[0], dtype=q.dtype, device=q.device)
        for i in range(self.num_ee):
            cols = self.robot.ancestors[i].nonzero().squeeze(-1).to(q.device)
            ji = jac[:, i][:, :, cols]
            gram = ji @ ji.transpose(-1, -2) if len(cols) >= 6 else ji.transpose(-1, -2) @ ji
            total = total + torch.linalg.det(gram).clamp_min(1e-12).sqrt()
        return total

    def manipulability_gradient(self, x0: torch.Tensor) -> torch.Tensor:
        """d manipulability / d x0 (B, dof) in normalised coordinates (autograd)."""
        with torch.enable_grad():
            x = x0.detach().double().requires_grad_(True)
            lower, upper = self.q_lower.double(), self.q_upper.double()
            q = lower + (x + 1) * (upper - lower) / 2
            (grad,) = torch.autograd.grad(self.manipulability(q).sum(), x)
        return grad.to(x0.dtype)

    def solve(
        self,
        poses: Any,
        num_samples: int = 16,
        mask: Any = None,
        guidance: Guidance | None = None,
        generator: torch.Generator | None = None,
        position_tolerance: float = 0.01,
        angle_tolerance: float = 0.05,
    ) -> IKSolution:
        """:meth:`sample`, then forward kinematics of every sample: samples sorted best first
        by position error [m] + 0.1 m/rad x angle error [rad] of the worst constrained EE.
        Tolerances [m], [rad] only set ``success``; every sample is returned either way."""
        p = self.check_poses(poses)
        m = self.check_mask(mask, p.shape[0])
        q = self.sample(p, num_samples, m, guidance, generator)
        pos_err, ang_err = self.pose_errors(q, p, m)
        order = torch.argsort(pos_err + 0.1 * ang_err, dim=1)
        q = torch.gather(q, 1, order.unsqueeze(-1).expand_as(q))
        pos_err, ang_err = torch.gather(pos_err, 1, order), torch.gather(ang_err, 1, order)
        return IKSolution(
            q=q.cpu().numpy(),
            position_error=pos_err.cpu().numpy(),
            angle_error=ang_err.cpu().numpy(),
            success=((pos_err < position_tolerance) & (ang_err < angle_tolerance)).cpu().numpy(),
        )

    def pose_errors(
        self, q: torch.Tensor, poses: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Position [m] and geodesic angle [rad] errors (B, K) of q (B, K, dof) to poses
        (B, N_ee, 7): the worst over the constrained (mask True) end-effectors."""
        b, k, _ = q.shape
        fk = self.robot.forward_kinematics(q.reshape(b * k, -1).double()).view(b, k, -1, POSE_DIM)
        target = poses.double().unsqueeze(1)
        pos = (fk[..., :3] - target[..., :3]).norm(dim=-1)
        ang = quaternion_geodesic(fk[..., 3:], target[..., 3:].expand_as(fk[..., 3:]))
        m = mask.unsqueeze(1)
        zero = torch.zeros((), dtype=pos.dtype, device=pos.device)
        pos = torch.where(m, pos, zero).amax(-1)
        ang = torch.where(m, ang, zero).amax(-1)
        return pos.float(), ang.float()

    # ---------------------------------------------------------------- save / load
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config.json + model.safetensors (weights and normalisation buffers)."""
        from safetensors.torch import save_file

        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(path / WEIGHTS_NAME), metadata={"type": MODEL_TYPE})
        return path

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        robot: str | None = None,
        device: str | torch.device = "cpu",
    ) -> IKDiffuser:
        """Load a folder written by :meth:`save_pretrained`, or a zoo model by name
        (``"ikdiffuser-panda"`` -> ampczoo/zoo/ikdiffuser-panda/). robot: the robot the
        caller expects (ValueError when the checkpoint is another's). ValueError for a
        foreign or corrupt folder, FileNotFoundError for a missing one."""
        path = resolve_ik_checkpoint(name_or_path)
        data = read_config(path)
        try:
            config = IKDiffuserConfig.from_dict(data)
        except TypeError as exc:
            raise ValueError(f"{path}: bad IKDiffuser config ({exc})") from exc
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc
        if robot is not None and config.robot != robot:
            raise ValueError(f"{path}: checkpoint is for robot {config.robot!r}, not {robot!r}")
        model = cls(config)
        model.load_state_dict(read_weights(path, model.state_dict()))
        return model.to(device).eval()


def resolve_ik_checkpoint(name_or_path: str | Path) -> Path:
    """Folder of a checkpoint given as a path or a zoo name (``ikdiffuser-<robot>``)."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    zoo = ZOO_DIR / str(name_or_path)
    if str(name_or_path).startswith(ZOO_PREFIX) and zoo.is_dir():
        return zoo
    raise FileNotFoundError(
        f"{name_or_path!r} is neither a checkpoint folder nor a shipped IK model "
        f"({list_ik_models() or 'none shipped'})"
    )


def list_ik_models() -> list[str]:
    """Names of the shipped IKDiffuser models (ampczoo/zoo/ikdiffuser-*)."""
    if not ZOO_DIR.is_dir():
        return []
    return sorted(p.name for p in ZOO_DIR.glob(ZOO_PREFIX + "*") if (p / CONFIG_NAME).is_file())


def warm_start_gradient(x0: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """Gradient of -||x0 - prior||^2 (Eq. 20), normalised coordinates: -2 (x0 - prior)."""
    return -2 * (x0 - prior)


def _or(value: float | None, default: float) -> float:
    return default if value is None else float(value)


def _ddpm_scheduler(config: IKDiffuserConfig) -> Any:
    from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=config.num_train_timesteps,
        beta_start=config.beta_start,
        beta_end=config.beta_end,
        beta_schedule="linear",
        prediction_type="epsilon",
        clip_sample=False,
    )


def _dpm_scheduler(config: IKDiffuserConfig) -> Any:
    from diffusers.schedulers.scheduling_dpmsolver_multistep import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler(
        num_train_timesteps=config.num_train_timesteps,
        beta_start=config.beta_start,
        beta_end=config.beta_end,
        beta_schedule="linear",
        prediction_type="epsilon",
        algorithm_type="dpmsolver++",
        solver_order=2,
    )
