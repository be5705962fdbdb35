"""Recurrent history policy: a stacked LSTM or GRU over the history, the last hidden state
mapped linearly to τ (3-DOF paper Eq. 12-13). One class, registered as ``lstm`` and ``gru``;
the config's ``type`` picks the cell."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from ampczoo.policies.history import HistoryPolicy, HistoryPolicyConfig

#: registry name -> torch recurrent module
CELLS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU}
RECURRENT_MODES = ("window", "stateful")


@dataclass(frozen=True)
class RecurrentConfig(HistoryPolicyConfig):
    """Stacked LSTM/GRU history policy (paper Eq. 12-13; shared fields:
    :class:`~ampczoo.policies.history.HistoryPolicyConfig`)."""

    type: Literal["lstm", "gru"] = "lstm"
    """the cell: "lstm" or "gru" (also the registry name)"""
    hidden_dim: int = 128
    """hidden size of each recurrent layer"""
    num_layers: int = 2
    """number of stacked recurrent layers"""
    recurrent_mode: Literal["window", "stateful"] = "window"
    """"window": every ``act`` runs the stack over the buffered H observations from a zero
    state, exactly as in training, so the history is never dropped between steps;
    "stateful": the hidden state is carried from step to step and only the newest
    observation is fed (zeroed by ``reset``)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.type not in CELLS:
            raise ValueError(f"recurrent type must be one of {sorted(CELLS)}, got {self.type!r}")
        if self.recurrent_mode not in RECURRENT_MODES:
            raise ValueError(
                f"recurrent_mode must be one of {RECURRENT_MODES}, got {self.recurrent_mode!r}"
            )


class RecurrentPolicy(HistoryPolicy):
    """Stacked RNN over the history (see :mod:`ampczoo.policies.history`)."""

    name = "lstm"
    types: ClassVar[tuple[str, ...]] = tuple(CELLS)
    config_class = RecurrentConfig
    config: RecurrentConfig

    def __init__(self, config: RecurrentConfig | None = None):
        config = config or RecurrentConfig()
        self.name = config.type  # this instance's registry name (lstm | gru)
        super().__init__(config)

    @classmethod
    def example_config(cls) -> RecurrentConfig:
        """One LSTM layer of 16 over 3 past observations (tests and docs; ``type="gru"``
        for the GRU)."""
        return RecurrentConfig(history=3, hidden_dim=16, num_layers=1)

    def _build_body(self) -> None:
        c = self.config
        self.rnn = CELLS[c.type](self.token_dim, c.hidden_dim, c.num_layers, batch_first=True)
        self.head = nn.Linear(c.hidden_dim, c.action_dim)
        self._hidden: Any = None

    def encode_history(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(tokens)
        return self.head(out[:, -1])

    def reset(self, seed: int | None = None) -> None:
        """Clear the buffer and the carried hidden state."""
        super().reset(seed)
        self._hidden = None

    @torch.inference_mode()
    def act(self, obs: Any) -> np.ndarray:
        """As :meth:`HistoryPolicy.act`; in "stateful" mode one RNN step per call."""
        if self.config.recurrent_mode == "window":
            return super().act(obs)
        hist, batched = self.push(obs)
        token = self.tokens(torch.from_numpy(hist[:, -1:]).to(self.device))
        out, self._hidden = self.rnn(token, self._hidden)
        tau = self.head(out[:, -1]) * self.tau_std + self.tau_mean
        tau = torch.maximum(torch.minimum(tau, self.tau_limit), -self.tau_limit)
        res = tau.cpu().numpy().astype(np.float64)
        return res if batched else res[0]

    def onnx_graph(self) -> Any:
        """As :meth:`HistoryPolicy.onnx_graph` in "window" mode; ValueError in "stateful" mode
        (its RNN state carried across calls is not part of the exported graph yet)."""
        if self.config.recurrent_mode != "window":
            raise ValueError(
                f"{self.name!r} policies in recurrent_mode={self.config.recurrent_mode!r} "
                "cannot be exported to ONNX: the RNN state carried across act() calls is not "
                "part of the graph (use recurrent_mode='window')"
            )
        return super().onnx_graph()
