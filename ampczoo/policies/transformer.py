"""Transformer history policy: embedded states + positional encoding, L encoder blocks,
mean pooling, linear projection to τ (paper Eq. 14)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ampczoo.policies.history import HistoryPolicy, HistoryPolicyConfig


@dataclass(frozen=True)
class TransformerConfig(HistoryPolicyConfig):
    """Transformer history policy (paper Eq. 14): embedded states plus the fixed sinusoidal
    positional encoding of Vaswani et al. over the H history positions, L encoder blocks, mean
    pooling, a linear projection to τ (shared fields:
    :class:`~ampczoo.policies.history.HistoryPolicyConfig`)."""

    type: str = "transformer"
    d_model: int = 64
    """embedding width (divisible by num_heads)"""
    num_heads: int = 4
    """attention heads per encoder block"""
    num_layers: int = 2
    """L, number of encoder blocks"""
    ff_dim: int = 128
    """feed-forward width of each encoder block"""
    dropout: float = 0.0
    """dropout of the encoder blocks, in [0, 1)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model {self.d_model} must be divisible by num_heads {self.num_heads}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def sinusoidal_encoding(length: int, dim: int) -> torch.Tensor:
    """(length, dim) fixed positional encoding P."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(1e4) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return pe


class TransformerPolicy(HistoryPolicy):
    """Transformer encoder over the history (see :mod:`ampczoo.policies.history`)."""

    name = "transformer"
    config_class = TransformerConfig
    config: TransformerConfig

    def __init__(self, config: TransformerConfig | None = None):
        super().__init__(config or TransformerConfig())

    @classmethod
    def example_config(cls) -> TransformerConfig:
        """One encoder block of width 16 (2 heads) over 3 past observations (tests, docs)."""
        return TransformerConfig(history=3, d_model=16, num_heads=2, num_layers=1, ff_dim=16)

    def _build_body(self) -> None:
        c = self.config
        self.embed = nn.Linear(self.token_dim, c.d_model)
        self.register_buffer("pos", sinusoidal_encoding(c.history, c.d_model), persistent=False)
        layer = nn.TransformerEncoderLayer(
            c.d_model, c.num_heads, c.ff_dim, c.dropout, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, c.num_layers, enable_nested_tensor=False)
        self.head = nn.Linear(c.d_model, c.action_dim)

    def encode_history(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(tokens) + self.pos)
        return self.head(h.mean(dim=1))
