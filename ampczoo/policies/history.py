"""History-aware policies of the 3-DOF arm (FFN, LSTM, GRU, Transformer): the shared part.

Each policy maps the last H observations [q, q̇, p_des] (H, 9) of ``ThreeDOF-Reach-v0`` to
the corrective torque τ (3,) [N m] of the IK-MPC expert (gravity compensation excluded), as
the paper's π_θ: R^{H×6} → R³ (the target rides along with every state).

* ``act(obs)`` takes the env's flat observation (9,) (or a batch (B, 9)); the policy keeps
  its own buffer of the last H observations, filled with the first observation after
  ``reset()`` (first-state padding, the same as :class:`ampczoo.wrappers.HistoryObservation`
  and the training windows of :class:`ampczoo.data.DemonstrationDataset`).
* Outputs are saturated to ±``torque_limit`` (the paper's post-hoc saturation).
* Training (``loss``): MSE between the normalised prediction and the expert's τ*_0, on
  batches {"obs_history": (B, H, 9), "u_seq": (B, N, 3)} built by the one training loop.

Token features (``ee_features=True``, default): each history step is the z-scored
observation plus the end-effector position p(q) and the error e = p_des − p(q), computed in
torch from the arm's closed-form kinematics (:func:`ampczoo.robots.threedof.
forward_kinematics`) and scaled by 1/0.3 m, plus tanh(e / 0.02 m), which resolves the last
centimetres (where the expert's torque is a steep function of e and a network fed only e/0.3
leaves a steady-state offset of a few cm). This is the same kind of kinematic input as the
KUKA policies' ``obs_features="kinematic"``; ``ee_features=False`` is the paper's raw input.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ampczoo.core.checkpoint import PolicyConfig, PretrainedPolicy, check_obs
from ampczoo.core.onnx import GraphModule, GraphRunner, OnnxGraph
from ampczoo.nn.normalization import copy_stats
from ampczoo.robots.threedof import OBS_Q, OBS_TARGET, TORQUE_LIMIT, forward_kinematics

#: Length scale of the end-effector features [m].
EE_SCALE = 0.3
#: Length scale of the fine error feature tanh(e / EE_FINE_SCALE) [m].
EE_FINE_SCALE = 0.02


@dataclass(frozen=True)
class HistoryPolicyConfig(PolicyConfig):
    """Fields shared by the history policies of the 3-DOF arm (FFN, LSTM, GRU, Transformer):
    the last H observations of ``ThreeDOF-Reach-v0`` -> the IK-MPC expert's corrective torque
    (see the module docstring)."""

    obs_dim: int = 9
    """env observation size (9 = [q, q̇, p_des])"""
    action_dim: int = 3
    """torque size"""
    horizon: int = 20
    """N of the expert sequences in the data [steps] (only τ*_0 is learned; recorded for
    reference)"""
    history: int = 10
    """H, number of past observations the policy sees"""
    torque_limit: tuple[float, ...] = tuple(TORQUE_LIMIT.tolist())
    """post-hoc saturation bound of the output, (3,) [N m]"""
    ee_features: bool = True
    """add p(q) and p_des − p(q) to every history step (see the module docstring)"""

    def __post_init__(self) -> None:
        for name in ("obs_dim", "action_dim", "horizon", "history"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.obs_dim != 9 or self.action_dim != 3:
            raise ValueError(
                "history policies are built for ThreeDOF-Reach-v0: obs_dim 9, "
                f"action_dim 3 (got {self.obs_dim}, {self.action_dim})"
            )
        if len(self.torque_limit) != self.action_dim or not all(
            np.isfinite(t) and t > 0 for t in self.torque_limit
        ):
            raise ValueError(
                f"torque_limit must be {self.action_dim} positive numbers, got {self.torque_limit}"
            )
        _check_positive_ints(self)


def _check_positive_ints(config: Any) -> None:
    """ValueError unless the subclass's size fields are positive integers."""
    for name in ("hidden_dim", "num_layers", "d_model", "num_heads", "ff_dim"):
        value = getattr(config, name, 1)
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


class HistoryPolicy(PretrainedPolicy):
    """Base of the history policies; subclasses build ``self.body`` in ``_build_body`` and
    implement :meth:`encode_history` ((B, H, F) tokens -> (B, 3) normalised torque)."""

    config: HistoryPolicyConfig

    def __init__(self, config: HistoryPolicyConfig):
        super().__init__(config)
        c = self.config
        self.register_buffer("obs_mean", torch.zeros(c.obs_dim))
        self.register_buffer("obs_std", torch.ones(c.obs_dim))
        self.register_buffer("tau_mean", torch.zeros(c.action_dim))
        self.register_buffer("tau_std", torch.ones(c.action_dim))
        self.register_buffer("tau_limit", torch.tensor(c.torque_limit, dtype=torch.float32))
        self.token_dim = c.obs_dim + (9 if c.ee_features else 0)
        self._build_body()
        self._buffer: np.ndarray | None = None  # (B, H, obs_dim) raw observations

    @abc.abstractmethod
    def _build_body(self) -> None:
        """Create the network modules (uses ``self.token_dim``)."""

    @abc.abstractmethod
    def encode_history(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, H, token_dim) -> normalised torque (B, action_dim)."""

    # ------------------------------------------------------------------ normalisation
    def set_normalization(self, stats: dict[str, dict[str, np.ndarray]]) -> None:
        """Train-split statistics of ``DemonstrationDataset.normalization_stats()``: obs
        z-scores and the z-score of τ*_0 (the first row of the stored sequences)."""
        pairs = (
            ("obs_mean", stats["obs"]["mean"]),
            ("obs_std", stats["obs"]["std"]),
            ("tau_mean", np.asarray(stats["u_seq"]["mean"])[0]),
            ("tau_std", np.asarray(stats["u_seq"]["std"])[0]),
        )
        copy_stats(self, pairs)

    def tokens(self, obs_history: torch.Tensor) -> torch.Tensor:
        """(B, H, 9) raw observations -> (B, H, token_dim) network input."""
        parts = [(obs_history - self.obs_mean) / self.obs_std]
        if self.config.ee_features:
            ee = forward_kinematics(obs_history[..., OBS_Q], xp=torch)
            err = obs_history[..., OBS_TARGET] - ee
            parts += [ee / EE_SCALE, err / EE_SCALE, torch.tanh(err / EE_FINE_SCALE)]
        return torch.cat(parts, dim=-1)

    def forward(self, obs_history: torch.Tensor) -> torch.Tensor:
        """(B, H, 9) raw observations -> unsaturated torque (B, 3) [N m]."""
        return self.encode_history(self.tokens(obs_history)) * self.tau_std + self.tau_mean

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """MSE in normalised torque space between π(X) and τ*_0 (paper Eq. 10)."""
        hist = batch["obs_history"]
        if hist.shape[1] != self.config.history:
            raise ValueError(
                f"batch history {hist.shape[1]} != policy history {self.config.history}"
            )
        pred = self.encode_history(self.tokens(hist))
        target = (batch["u_seq"][:, 0] - self.tau_mean) / self.tau_std
        loss = torch.mean((pred - target) ** 2)
        return loss, {"mse": float(loss.detach())}

    # ------------------------------------------------------------------ acting
    def reset(self, seed: int | None = None) -> None:
        """Clear the history buffer (and recurrent state); ``seed`` is unused."""
        self._buffer = None

    def push(self, obs: Any) -> tuple[np.ndarray, bool]:
        """Validate obs (9,) / (B, 9), append it to the buffer (first-state padding after
        a reset) and return (buffer (B, H, 9) float32, batched)."""
        arr, batched = check_obs(obs, self.config.obs_dim)
        if self._buffer is None:
            self._buffer = np.repeat(arr[:, None], self.config.history, axis=1)
        elif self._buffer.shape[0] != arr.shape[0]:
            raise ValueError(
                f"batch size changed from {self._buffer.shape[0]} to {arr.shape[0]} without reset()"
            )
        else:
            self._buffer = np.concatenate([self._buffer[:, 1:], arr[:, None]], axis=1)
        return self._buffer, batched

    @torch.inference_mode()
    def act(self, obs: Any) -> np.ndarray:
        """obs (9,) -> τ (3,) [N m], or (B, 9) -> (B, 3); saturated to ±torque_limit."""
        hist, batched = self.push(obs)
        tau = self(torch.from_numpy(hist).to(self.device))
        tau = torch.maximum(torch.minimum(tau, self.tau_limit), -self.tau_limit)
        out = tau.cpu().numpy().astype(np.float64)
        return out if batched else out[0]

    # ------------------------------------------------------------------ ONNX
    def onnx_graph(self) -> OnnxGraph:
        """obs_history (B, H, 9) raw -> tau (B, 3) [N m] saturated: token features,
        normalisation, network (the history buffer stays in Python, :meth:`push`)."""

        def graph(obs_history: torch.Tensor) -> torch.Tensor:
            tau = self(obs_history)
            return torch.maximum(torch.minimum(tau, self.tau_limit), -self.tau_limit)

        c = self.config
        example = self.obs_mean.expand(2, c.history, -1).clone()
        axes = {"obs_history": {0: "B"}, "tau": {0: "B"}}
        return OnnxGraph(GraphModule(self, graph), (example,), ["obs_history"], ["tau"], axes)

    def act_onnx(self, run: GraphRunner, obs: Any) -> np.ndarray:
        """:meth:`act` with the graph of :meth:`onnx_graph` run by ``run``."""
        hist, batched = self.push(obs)
        out = run({"obs_history": hist})[0].astype(np.float64)
        return out if batched else out[0]
