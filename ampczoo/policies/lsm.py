"""LSM: least-squares (L2) regression of the full MPC input sequence from the observation.

The paper's baseline (Sec. V-C): an MLP maps the observation (x_t, target position, 6D target
rotation[, obstacle]) to u*_{.|t} (N x 7) and is run receding-horizon (u_0 is applied). The
paper's network has 6 layers and 2.8 M parameters; here width and depth are config fields
with default 6 hidden layers x 512 (1.39 M parameters for N = 20, obs 16; 6 x 740 gives
the paper's 2.8 M). With ``action_dim`` (nu, default 7) and ``obs_features="raw"`` it is a
generic chunk regressor, obs -> N x nu, e.g. on a store of manipulation demonstrations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ampczoo.core.checkpoint import PolicyConfig, PretrainedPolicy, check_obs
from ampczoo.core.onnx import GraphModule, GraphRunner, OnnxGraph
from ampczoo.nn.features import ObservationInput, check_obs_features, unrolled_solves
from ampczoo.nn.normalization import Normalizer, check_action_normalization

ACTION_DIM = 7


def mlp(in_dim: int, hidden_dim: int, num_layers: int, out_dim: int) -> nn.Sequential:
    """``num_layers`` hidden layers of width ``hidden_dim`` with SiLU, then a linear output."""
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_layers):
        layers += [nn.Linear(dim, hidden_dim), nn.SiLU()]
        dim = hidden_dim
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class LSMConfig(PolicyConfig):
    """LSM configuration: the paper's least-squares baseline (Sec. V-C), an MLP from the
    observation to the full MPC input sequence."""

    type: str = "lsm"
    obs_dim: int = 16
    """flat env observation size (16, or 20 with the obstacle)"""
    obs_features: Literal["kinematic", "raw"] = "kinematic"
    """network input: "kinematic" (normalised observation + FK/pose-error/Jacobian features,
    see :mod:`ampczoo.nn.features`) or "raw" (normalised observation only)"""
    action_normalization: Literal["joint_range", "element_zscore"] = "joint_range"
    """normalisation of the predicted inputs: "joint_range" or "element_zscore" (see
    :mod:`ampczoo.nn.normalization`)"""
    horizon: int = 20
    """N, length of the predicted input sequence [steps]"""
    action_dim: int = ACTION_DIM
    """size of one input (7 KUKA joint velocities; from the data when trained, e.g. a
    manipulation store's action size with ``obs_features="raw"``)"""
    hidden_dim: int = 512
    """MLP width (units per hidden layer)"""
    num_layers: int = 6
    """number of hidden layers of the MLP"""

    def __post_init__(self) -> None:
        for name in ("obs_dim", "horizon", "action_dim", "hidden_dim", "num_layers"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        check_obs_features(self.obs_features, self.obs_dim)
        check_action_normalization(self.action_normalization)


class LSMPolicy(PretrainedPolicy):
    """Deterministic sequence regressor; ``act(obs)`` returns u_0 of the predicted sequence."""

    name = "lsm"
    config_class = LSMConfig
    config: LSMConfig

    def __init__(self, config: LSMConfig | None = None):
        super().__init__(config or LSMConfig())
        c = self.config
        self.normalizer = Normalizer(c.obs_dim, c.horizon, c.action_dim)
        self.obs_input = ObservationInput(c.obs_dim, c.obs_features)
        self.net = mlp(self.obs_input.dim, c.hidden_dim, c.num_layers, c.horizon * c.action_dim)

    @classmethod
    def example_config(cls) -> LSMConfig:
        """A 2 x 32 MLP predicting 4 steps (tests and docs)."""
        return LSMConfig(horizon=4, hidden_dim=32, num_layers=2)

    @property
    def action_dim(self) -> int:
        return int(self.config.action_dim)

    def reset(self, seed: int | None = None) -> None:
        """Stateless: nothing to clear (``seed`` accepted for the common interface)."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """obs (B, obs_dim) raw -> predicted sequences (B, N, nu) [KUKA: rad/s]."""
        return self.normalizer.u_inverse(self.net(self.encode(obs)))

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """obs (B, obs_dim) raw -> (B, obs_input.dim) network input."""
        return self.obs_input(obs, self.normalizer.obs(obs))

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean squared error in normalised input space."""
        pred = self.net(self.encode(batch["obs"]))
        loss = torch.mean((pred - self.normalizer.u(batch["u_seq"])) ** 2)
        return loss, {"mse": float(loss.detach())}

    @torch.inference_mode()
    def sample(self, obs: Any) -> np.ndarray:
        """obs (D,) -> (N, nu) or (B, D) -> (B, N, nu) predicted sequences [rad/s]."""
        arr, batched = check_obs(obs, self.config.obs_dim)
        seq = self(torch.from_numpy(arr).to(self.device)).cpu().numpy().astype(np.float64)
        return seq if batched else seq[0]

    def act_chunk(self, obs: Any) -> np.ndarray:
        """The whole predicted chunk: obs (D,) -> (N, nu) or (B, D) -> (B, N, nu) [rad/s]."""
        return self.sample(obs)

    def act(self, obs: Any) -> np.ndarray:
        """obs (D,) -> u_0 (nu,), or (B, D) -> (B, nu) [rad/s]."""
        return self.sample(obs)[..., 0, :]

    # ------------------------------------------------------------------ ONNX
    def onnx_graph(self) -> OnnxGraph:
        """obs (B, obs_dim) raw -> seq (B, N, nu) [rad/s]: features, normalisation, MLP."""

        def graph(obs: torch.Tensor) -> torch.Tensor:
            with unrolled_solves(self):
                return self(obs)

        example = self.normalizer.obs_mean.expand(2, -1).clone()
        return OnnxGraph(
            GraphModule(self, graph),
            (example,),
            ["obs"],
            ["seq"],
            {"obs": {0: "B"}, "seq": {0: "B"}},
        )

    def act_onnx(self, run: GraphRunner, obs: Any) -> np.ndarray:
        """:meth:`act` with the graph of :meth:`onnx_graph` run by ``run``."""
        arr, batched = check_obs(obs, self.config.obs_dim)
        seq = run({"obs": arr})[0].astype(np.float64)[:, 0]
        return seq if batched else seq[0]
