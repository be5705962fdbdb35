"""Tiny, seeded models shared by tests of several layers (import as ``tiny_models``)."""

from __future__ import annotations

import torch

from ampczoo.policies.diffusion_policy import DiffusionPolicy, DiffusionPolicyConfig


def tiny_diffusion_policy(action_dim: int = 7, obs_dim: int = 4) -> DiffusionPolicy:
    """An untrained Diffusion Policy small enough for unit tests (T_p 8, T_a 4, 3 DDIM
    steps), its weights seeded with 0; in train mode (call ``.eval()`` to act)."""
    torch.manual_seed(0)
    cfg = DiffusionPolicyConfig(
        obs_dim=obs_dim,
        action_dim=action_dim,
        pred_horizon=8,
        action_horizon=4,
        down_dims=(8, 16),
        step_embed_dim=8,
        num_inference_steps=3,
    )
    return DiffusionPolicy(cfg)
