"""FFN history policy: the flattened history X ∈ R^{H·F} through a ReLU MLP (paper Eq. 11)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ampczoo.policies.history import HistoryPolicy, HistoryPolicyConfig


@dataclass(frozen=True)
class FFNConfig(HistoryPolicyConfig):
    """FFN history policy (paper Eq. 11): the flattened history through a ReLU MLP (shared
    fields: :class:`~ampczoo.policies.history.HistoryPolicyConfig`)."""

    type: str = "ffn"
    hidden_dim: int = 256
    """width of each hidden ReLU layer"""
    num_layers: int = 3
    """number of hidden ReLU layers"""


class FFNPolicy(HistoryPolicy):
    """Feed-forward network over the flattened history (see :mod:`ampczoo.policies.history`)."""

    name = "ffn"
    config_class = FFNConfig
    config: FFNConfig

    def __init__(self, config: FFNConfig | None = None):
        super().__init__(config or FFNConfig())

    @classmethod
    def example_config(cls) -> FFNConfig:
        """One hidden layer of 16 over 3 past observations (tests and docs)."""
        return FFNConfig(history=3, hidden_dim=16, num_layers=1)

    def _build_body(self) -> None:
        c = self.config
        layers: list[nn.Module] = []
        dim = c.history * self.token_dim
        for _ in range(c.num_layers):
            layers += [nn.Linear(dim, c.hidden_dim), nn.ReLU()]
            dim = c.hidden_dim
        layers.append(nn.Linear(dim, c.action_dim))
        self.net = nn.Sequential(*layers)

    def encode_history(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(tokens.flatten(1))
