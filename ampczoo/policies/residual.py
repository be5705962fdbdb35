"""Residual policy with a smoothness penalty (the DiffOG paper's §IV-F baseline).

An MLP predicts a correction of the base chunk, y = a + MLP(a) (chunks normalised to
[-1, 1], flattened, n = T_p D_a), trained with
``||y - target||^2 + (alpha/2) ||A_diff S y||^2`` (differences per step, mean over the
batch; targets and the two training modes as in :mod:`ampczoo.policies.refiner`). Unlike
DiffOG it cannot guarantee the change bounds: ``bound`` only describes the benchmark's
constraint and is not enforced.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ampczoo.core.onnx import GraphModule, GraphRunner, OnnxGraph
from ampczoo.nn import qp
from ampczoo.policies.lsm import mlp
from ampczoo.policies.refiner import ChunkRefiner, RefinerConfig


@dataclass(frozen=True)
class ResidualConfig(RefinerConfig):
    """Residual refiner (the DiffOG paper's §IV-F baseline): a "lightweight MLP" predicts a
    correction of the base chunk, trained with a smoothness penalty (shared fields:
    :class:`~ampczoo.policies.refiner.RefinerConfig`; ``bound`` is not enforced here)."""

    type: str = "residual"
    alpha: float = 0.01
    """smoothing weight of the penalty (alpha/2)||A_diff S y||^2 (differences per step, in
    normalised units)"""
    hidden_dim: int = 256
    """width of each hidden layer of the MLP"""
    num_layers: int = 2
    """number of hidden layers of the MLP"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hidden_dim <= 0 or self.num_layers <= 0:
            raise ValueError("hidden_dim and num_layers must be > 0")


class ResidualRefiner(ChunkRefiner):
    """y = a + MLP(a); see the module docstring."""

    name = "residual"
    config_class = ResidualConfig
    config: ResidualConfig

    def __init__(self, config: ResidualConfig | None = None):
        super().__init__(config or ResidualConfig())
        c = self.config
        n = c.chunk_len * c.action_dim
        self.net = mlp(n, c.hidden_dim, c.num_layers, n)
        nn.init.zeros_(self.net[-1].weight)  # start at the identity y = a
        nn.init.zeros_(self.net[-1].bias)
        S = qp.block_diag_repeat(
            qp.selection_matrix(c.action_dim, self.dim_index.tolist()), c.chunk_len
        )
        D = qp.diff_matrix(c.chunk_len, len(self.dim_index)) @ S
        self.register_buffer("D", D.float(), persistent=False)

    @classmethod
    def example_config(cls) -> ResidualConfig:
        """4-step chunks of 7 actions, one hidden layer of 16 (tests and docs)."""
        return ResidualConfig(horizon=4, chunk_len=4, hidden_dim=16, num_layers=1)

    def refine_normalized(self, a, prev=None, bounds=None):
        """a (B, T_p, D_a) -> a + MLP(a); prev and bounds are ignored (no constraints)."""
        if not torch.isfinite(a).all():
            raise ValueError("chunk contains NaN/inf")
        return self._corrected(a)

    def _corrected(self, a: torch.Tensor) -> torch.Tensor:
        """a (B, T_p, D_a) -> a + MLP(a) (the graph of :meth:`onnx_graph`)."""
        flat = a.flatten(1)
        return (flat + self.net(flat)).view_as(a)

    def onnx_graph(self) -> OnnxGraph:
        """a (B, T_p, D_a) normalised float32 -> ``y`` = a + MLP(a) (B, T_p, D_a): the whole
        refinement."""
        c = self.config
        example = torch.zeros(2, c.chunk_len, c.action_dim)
        axes = {"a": {0: "B"}, "y": {0: "B"}}
        module = GraphModule(self, self._corrected)
        return OnnxGraph(module, (example,), ["a"], ["y"], axes)

    def refine_normalized_onnx(self, run: GraphRunner, a, prev=None, bounds=None):
        """:meth:`refine_normalized` with its graph run by ``run`` (a float32 array)."""
        if not np.isfinite(a).all():
            raise ValueError("chunk contains NaN/inf")
        return torch.from_numpy(run({"a": a})[0])

    def extra_loss(self, y):
        smooth = 0.5 * self.config.alpha * ((y.reshape(len(y), -1) @ self.D.T) ** 2).sum(1)
        smooth = smooth.mean()
        return smooth, {"smoothness": float(smooth.detach())}
