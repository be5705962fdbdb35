"""1-D temporal conditional U-Net with FiLM conditioning (the noise model of Diffusion Policy,
Chi et al. 2023, "ConditionalUnet1D"); diffusers ships no conditional 1-D U-Net.

The network maps a noisy action sequence x_t (B, T, A), the diffusion step t (B,) and a
global conditioning vector c (B, C) (the flattened observation features of the last T_o
steps) to the predicted noise (B, T, A). Convolutions run over time; every residual block is
FiLM-conditioned on [step embedding, c]: out = scale(cond) * h + bias(cond) after its first
convolution. The encoder halves T at every level but the last (T must be divisible by
2^(levels - 1)); the decoder mirrors it with skip connections.

Sizes: ``down_dims`` (channels per level, the paper's (256, 512, 1024)), ``kernel_size``
(5), ``n_groups`` (GroupNorm groups, 8), ``step_embed_dim`` (sinusoidal diffusion-step
embedding width, 256 in the paper).
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn


class SinusoidalPosEmb(nn.Module):
    """t (B,) -> (B, dim) sinusoidal embedding [sin | cos] of the diffusion step."""

    def __init__(self, dim: int):
        super().__init__()
        if dim < 4 or dim % 2:
            raise ValueError(f"step embedding dim must be an even number >= 4, got {dim}")
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        t = t if t.is_floating_point() else t.float()
        freq = torch.exp(
            torch.arange(half, device=t.device, dtype=t.dtype) * (-math.log(10000.0) / (half - 1))
        )
        arg = t[:, None] * freq[None]
        return torch.cat([arg.sin(), arg.cos()], dim=-1)


class Conv1dBlock(nn.Sequential):
    """Conv1d (same padding) -> GroupNorm -> Mish, on (B, C, T)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, n_groups: int):
        super().__init__(
            nn.Conv1d(in_ch, out_ch, kernel_size, padding=kernel_size // 2),
            nn.GroupNorm(n_groups, out_ch),
            nn.Mish(),
        )


class ConditionalResidualBlock1D(nn.Module):
    """Two conv blocks with FiLM (per-channel scale and bias from ``cond``) between them and a
    residual 1x1 convolution where the channel count changes. x (B, in, T), cond (B, C) ->
    (B, out, T)."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int, kernel_size: int, n_groups: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                Conv1dBlock(in_ch, out_ch, kernel_size, n_groups),
                Conv1dBlock(out_ch, out_ch, kernel_size, n_groups),
            ]
        )
        self.out_ch = out_ch
        self.cond_encoder = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * out_ch))
        self.residual = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.blocks[0](x)
        scale, bias = self.cond_encoder(cond)[:, :, None].chunk(2, dim=1)
        h = scale * h + bias
        return self.blocks[1](h) + self.residual(x)


class ConditionalUnet1D(nn.Module):
    """The FiLM-conditioned temporal U-Net (see the module docstring).

    input_dim: A, action size; cond_dim: C, global conditioning size; down_dims: channels per
    level; kernel_size, n_groups: as the paper; step_embed_dim: diffusion-step embedding."""

    def __init__(
        self,
        input_dim: int,
        cond_dim: int,
        down_dims: tuple[int, ...] = (64, 128, 256),
        kernel_size: int = 5,
        n_groups: int = 8,
        step_embed_dim: int = 128,
    ):
        super().__init__()
        if not down_dims or any(d % n_groups for d in down_dims):
            raise ValueError(
                f"down_dims must be non-empty multiples of n_groups={n_groups}, got {down_dims}"
            )
        self.levels = len(down_dims)
        self.step_encoder = nn.Sequential(
            SinusoidalPosEmb(step_embed_dim),
            nn.Linear(step_embed_dim, 4 * step_embed_dim),
            nn.Mish(),
            nn.Linear(4 * step_embed_dim, step_embed_dim),
        )
        c = step_embed_dim + cond_dim
        dims = [input_dim, *down_dims]
        pairs = list(zip(dims[:-1], dims[1:], strict=True))

        def block(i: int, o: int) -> ConditionalResidualBlock1D:
            return ConditionalResidualBlock1D(i, o, c, kernel_size, n_groups)

        self.down = nn.ModuleList()
        for level, (i, o) in enumerate(pairs):
            last = level == len(pairs) - 1
            down = nn.Identity() if last else nn.Conv1d(o, o, 3, stride=2, padding=1)
            self.down.append(nn.ModuleList([block(i, o), block(o, o), down]))
        mid = down_dims[-1]
        self.mid = nn.ModuleList([block(mid, mid), block(mid, mid)])
        self.up = nn.ModuleList()
        for i, o in reversed(pairs[1:]):  # every decoder level upsamples (as the paper's)
            up = nn.ConvTranspose1d(i, i, 4, stride=2, padding=1)
            self.up.append(nn.ModuleList([block(2 * o, i), block(i, i), up]))
        self.final = nn.Sequential(
            Conv1dBlock(down_dims[0], down_dims[0], kernel_size, n_groups),
            nn.Conv1d(down_dims[0], input_dim, 1),
        )

    def check_horizon(self, horizon: int) -> None:
        """ValueError unless the sequence length survives the down/up sampling."""
        factor = 2 ** (self.levels - 1)
        if horizon % factor:
            raise ValueError(
                f"sequence length {horizon} must be divisible by 2^(levels-1) = {factor} "
                f"for {self.levels} U-Net levels"
            )

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x (B, T, A) noisy actions, t (B,) diffusion steps, cond (B, C) -> (B, T, A)."""
        cond = torch.cat([self.step_encoder(t.to(x.dtype)), cond], dim=-1)
        h = x.transpose(1, 2)
        skips = []  # the first level's output is not used (as in the paper's code)
        for level in self.down:
            res1, res2, down = cast(nn.ModuleList, level)
            h = res2(res1(h, cond), cond)
            skips.append(h)
            h = down(h)
        for res in self.mid:
            h = res(h, cond)
        for level in self.up:
            res1, res2, up = cast(nn.ModuleList, level)
            h = torch.cat([h, skips.pop()], dim=1)
            h = up(res2(res1(h, cond), cond))
        return self.final(h).transpose(1, 2)
