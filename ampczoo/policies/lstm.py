"""LSTM history policy: stacked LSTM over the history, last hidden state -> τ (Eq. 12-13)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ampczoo.policies.history import RecurrentConfig, RecurrentPolicy


@dataclass(frozen=True)
class LSTMConfig(RecurrentConfig):
    """LSTM (fields: :class:`~ampczoo.policies.history.RecurrentConfig`)."""

    type: str = "lstm"


class LSTMPolicy(RecurrentPolicy):
    """Stacked LSTM (see :mod:`ampczoo.policies.history`)."""

    name = "lstm"
    config_class = LSTMConfig

    @staticmethod
    def rnn_class() -> type[nn.RNNBase]:
        return nn.LSTM

    def __init__(self, config: LSTMConfig | None = None):
        super().__init__(config or LSTMConfig())
