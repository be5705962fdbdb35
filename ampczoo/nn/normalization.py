"""Normalisation of observations and input sequences, kept as buffers.

Observations: per-element z-scores. Input sequences (``action_normalization``):
"joint_range" (default) divides joint j at every horizon step by max |u_j| over the training
sequences (zero-preserving, into [-1, 1], the usual diffusion-policy scaling); "element_zscore"
z-scores every (step, joint) element -- this inflates the late horizon steps, whose spread is
~1e-2 of the first step's, to the same weight as u_0.

The statistics travel with the weights in model.safetensors (``normalizer.obs_mean`` ...),
so a loaded policy accepts the env's raw flat observation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

ACTION_NORMALIZATIONS = ("joint_range", "element_zscore")


def check_action_normalization(mode: str) -> None:
    """ValueError unless ``mode`` is one of ACTION_NORMALIZATIONS."""
    if mode not in ACTION_NORMALIZATIONS:
        raise ValueError(
            f"action_normalization must be one of {ACTION_NORMALIZATIONS}, got {mode!r}"
        )


def action_scale(u_stats: dict[str, np.ndarray], mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) arrays (N, 7) of the input-sequence normalisation ``mode``."""
    check_action_normalization(mode)
    if mode == "element_zscore":
        return np.asarray(u_stats["mean"]), np.asarray(u_stats["std"])
    lo, hi = np.asarray(u_stats["min"]), np.asarray(u_stats["max"])
    scale = np.maximum(np.abs(lo), np.abs(hi)).max(axis=0, keepdims=True)  # (1, 7)
    scale = np.maximum(scale, 1e-6)
    return np.zeros_like(lo), np.broadcast_to(scale, lo.shape).copy()


class Normalizer(nn.Module):
    """z-scores for obs (obs_dim,) and u_seq (N, 7) [rad/s].

    Buffers: obs_mean, obs_std (obs_dim,); u_mean, u_std (N, 7). Defaults are the identity
    (mean 0, std 1) until :meth:`set_stats` is called with train-split statistics."""

    obs_mean: torch.Tensor
    obs_std: torch.Tensor
    u_mean: torch.Tensor
    u_std: torch.Tensor

    def __init__(self, obs_dim: int, horizon: int, action_dim: int = 7):
        super().__init__()
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        self.register_buffer("u_mean", torch.zeros(horizon, action_dim))
        self.register_buffer("u_std", torch.ones(horizon, action_dim))

    def set_stats(
        self, stats: dict[str, dict[str, np.ndarray]], action_normalization: str = "element_zscore"
    ) -> None:
        """stats: {"obs": {"mean", "std"}, "u_seq": {"mean", "std"[, "min", "max"]}} of
        matching shapes (``DemonstrationDataset.normalization_stats()``);
        action_normalization: one of ACTION_NORMALIZATIONS (see the module docstring)."""
        u_mean, u_std = action_scale(stats["u_seq"], action_normalization)
        pairs = (
            ("obs_mean", stats["obs"]["mean"]),
            ("obs_std", stats["obs"]["std"]),
            ("u_mean", u_mean),
            ("u_std", u_std),
        )
        copy_stats(self, pairs)

    def obs(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, obs_dim) raw -> normalised."""
        return (obs - self.obs_mean) / self.obs_std

    def u(self, u_seq: torch.Tensor) -> torch.Tensor:
        """(B, N, 7) raw [rad/s] -> (B, N*7) normalised, flattened."""
        return ((u_seq - self.u_mean) / self.u_std).flatten(1)

    def u_inverse(self, x: torch.Tensor) -> torch.Tensor:
        """(..., N*7) normalised -> (..., N, 7) raw [rad/s]."""
        shape = (*x.shape[:-1], *self.u_mean.shape)
        return x.reshape(shape) * self.u_std + self.u_mean


def copy_stats(module: torch.nn.Module, pairs: tuple[tuple[str, Any], ...]) -> None:
    """Copy normalisation statistics into ``module``'s buffers of the same names, checking
    shapes and that every ``*std`` is > 0 (ValueError otherwise)."""
    for name, value in pairs:
        buf = getattr(module, name)
        t = torch.as_tensor(np.asarray(value), dtype=buf.dtype)
        if t.shape != buf.shape:
            raise ValueError(
                f"normalisation stat {name}: expected shape "
                f"{tuple(buf.shape)}, got {tuple(t.shape)}"
            )
        if name.endswith("std") and not bool(torch.all(t > 0)):
            raise ValueError(f"normalisation stat {name} must be > 0")
        buf.copy_(t)


class MinMaxNormalizer(nn.Module):
    """Per-element min-max scaling to [-1, 1] (Diffusion Policy's normaliser):
    x_n = (x - center) / half_range with center = (max + min) / 2, half_range = (max - min) / 2.
    Elements whose range is below ``min_range`` (constant in the data) are only centred
    (half_range 1), so they map to 0 instead of dividing by ~0.

    Buffers ``center`` and ``half_range`` of ``shape`` (identity until :meth:`set_range`);
    they are saved with the weights."""

    center: torch.Tensor
    half_range: torch.Tensor

    def __init__(self, shape: tuple[int, ...] | int, min_range: float = 1e-4):
        super().__init__()
        self.min_range = float(min_range)
        self.register_buffer("center", torch.zeros(shape))
        self.register_buffer("half_range", torch.ones(shape))

    def set_range(self, lo: Any, hi: Any) -> None:
        """Set the statistics from element-wise min ``lo`` and max ``hi`` (shape of the
        buffers; ValueError on a shape mismatch, NaN/inf or lo > hi)."""
        lo_a, hi_a = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        if not (np.all(np.isfinite(lo_a)) and np.all(np.isfinite(hi_a))):
            raise ValueError("normalisation range contains NaN/inf")
        if np.any(lo_a > hi_a):
            raise ValueError("normalisation range: min > max somewhere")
        half = (hi_a - lo_a) / 2.0
        half = np.where(2.0 * half < self.min_range, 1.0, half)
        copy_stats(self, (("center", (hi_a + lo_a) / 2.0), ("half_range", half)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., *shape) raw -> normalised ([-1, 1] over the data it was fitted on)."""
        return (x - self.center) / self.half_range

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """(..., *shape) normalised -> raw."""
        return x * self.half_range + self.center
