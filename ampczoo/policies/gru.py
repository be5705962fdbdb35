"""GRU history policy: stacked GRU over the history, last hidden state -> τ (Eq. 12-13)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ampczoo.policies.history import RecurrentConfig, RecurrentPolicy


@dataclass(frozen=True)
class GRUConfig(RecurrentConfig):
    """GRU (fields: :class:`~ampczoo.policies.history.RecurrentConfig`)."""

    type: str = "gru"


class GRUPolicy(RecurrentPolicy):
    """Stacked GRU (see :mod:`ampczoo.policies.history`)."""

    name = "gru"
    config_class = GRUConfig

    @staticmethod
    def rnn_class() -> type[nn.RNNBase]:
        return nn.GRU

    def __init__(self, config: GRUConfig | None = None):
        super().__init__(config or GRUConfig())
