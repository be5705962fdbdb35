"""DiffOG: differentiable policy trajectory optimisation with a transformer-parameterised QP
(Xu et al.; paper Eq. 6-7, Algorithm 1, Table XII; the issue's facts from the authors' code).

For a base chunk a (T_p x D_a, normalised to [-1, 1], flattened time-major, n = T_p D_a)::

    y* = argmin_y 1/2 y^T (Q + alpha S^T A_diff^T A_diff S) y - a^T y
         s.t. -bound <= c_{k+1} - c_k <= bound,  k = 0..T_p-2,   c = S y   (per step, D_c dims)
              -bound <= c_j - c_prev <= bound                   (inference, when c_prev known)
              -max_abs <= c_k <= max_abs                        (optional, Table X's velocity)

The continuity row j is the chunk's current row (``chunk_offset``: 0, or T_o − 1 on Diffusion
Policy's chunks) and c_prev the last executed action.

Linear term -a: with Q = I and no constraints y* = (I + alpha ...)^-1 a (the static-Q
ablation, ||y - a||^2 + smoothing). Q by ``q_mode``, over the whole chunk (``q_dims`` None,
the paper's) or over the action dimensions ``q_dims`` only (the others get the identity: e.g.
the gripper passes through unchanged; a full learned Q lets the gripper's ±1 act as an offset
channel on the arm's actions, docs/results/manipulation.md):

* "transformer" (DiffOG): tokens a_k (D_a) -> Linear(D_a, 256) (+ sinusoidal positional
  encoding, ``positional_encoding``; the authors' code had none: the ablation) -> 2-layer
  transformer encoder (4 heads, FFN 256, dropout 0.1) -> mean pool -> LayerNorm -> Linear to
  the n (n + 1) / 2 entries of tril(L) (Algorithm 1 discards the rest) -> L; Algorithm 1:
  exp on the diagonal + eps, clamp to [-10, 10], tril, Q = L L^T + eps I, symmetrised;
* "matrix": one learned L (n x n) through the same steps (matrix-learning ablation);
* "static": Q = I, nothing learned.

Bounds are in normalised units per step (paper: bound 0.1, alpha 4); the QP layer is
:func:`ampczoo.nn.qp.solve_qp` (ProxSuite by default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from ampczoo.core.onnx import GraphModule, GraphRunner, OnnxGraph
from ampczoo.nn import qp
from ampczoo.policies.refiner import ChunkRefiner, RefinerConfig
from ampczoo.wrappers.chunk import select_dims

Q_MODES = ("transformer", "matrix", "static")


@dataclass(frozen=True)
class DiffOGConfig(RefinerConfig):
    """DiffOG configuration: a QP whose quadratic term Q is learned by a transformer over the
    chunk (Xu et al.; paper Eq. 6-7, Algorithm 1, Table XII; shared fields:
    :class:`~ampczoo.policies.refiner.RefinerConfig`)."""

    type: str = "diffog"
    q_mode: Literal["transformer", "matrix", "static"] = "transformer"
    """how Q is made: "transformer" (DiffOG), "matrix" (one learned L, the matrix-learning
    ablation) or "static" (Q = I, nothing learned)"""
    positional_encoding: bool = True
    """sinusoidal encoding of the token index (False = the authors' encoder, the ablation)"""
    embed_dim: int = 256
    """token embedding width of the encoder (paper Table XII: 256)"""
    num_heads: int = 4
    """attention heads of the encoder (paper: 4)"""
    num_layers: int = 2
    """encoder layers (paper: 2)"""
    ff_dim: int = 256
    """feed-forward width of the encoder layers (paper: 256)"""
    dropout: float = 0.1
    """dropout of the encoder layers, in [0, 1) (paper: 0.1)"""
    eps: float = 1e-4
    """epsilon of Algorithm 1 (added to the diagonal of L and to Q)"""
    clamp: float = 10.0
    """entries of L are clamped to [-clamp, clamp] (Algorithm 1: 10)"""
    backend: Literal["proxsuite", "cvxpylayers"] = "proxsuite"
    """QP backend (see :mod:`ampczoo.nn.qp`)"""
    q_dims: tuple[int, ...] | None = None
    """action dimensions the learned Q acts on (None: all, the paper's Q over the whole chunk);
    the others get the identity: without constraints on them (outside ``dims``, e.g. the
    gripper) they pass through unchanged, and no Q entry couples them to the learned ones"""
    q_reg: float = 0.0
    """training penalty weight on mean((Q − I)²) over the n x n entries of the learned Q
    (pulls it toward the static Q = I; 0: none, the paper's)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.q_mode not in Q_MODES:
            raise ValueError(f"q_mode must be one of {Q_MODES}, got {self.q_mode!r}")
        if self.backend not in qp.BACKENDS:
            raise ValueError(f"backend must be one of {qp.BACKENDS}, got {self.backend!r}")
        for name in ("embed_dim", "num_heads", "num_layers", "ff_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.embed_dim % self.num_heads:
            raise ValueError("embed_dim must be divisible by num_heads")
        if not (0 <= self.dropout < 1 and self.eps > 0 and self.clamp > 0):
            raise ValueError("need 0 <= dropout < 1, eps > 0, clamp > 0")
        if self.q_dims is not None:
            try:
                select_dims(self.action_dim, self.q_dims)
            except ValueError as exc:
                raise ValueError(f"q_dims: {exc}") from exc
        if not 0 <= self.q_reg < math.inf:
            raise ValueError(f"q_reg must be a finite number >= 0, got {self.q_reg}")


def sinusoidal_positions(T: int, dim: int) -> torch.Tensor:
    """(T, dim) sinusoidal position encoding (Vaswani et al.)."""
    pos = torch.arange(T, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    pe = torch.zeros(T, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe


def spd_from_tril(tri: torch.Tensor, n: int, eps: float, clamp: float) -> torch.Tensor:
    """Algorithm 1 steps 2-7 on the entries of tril(L): tri (B, n (n + 1) / 2), row-major
    with the diagonal (``torch.tril_indices`` order) -> symmetric positive definite Q
    (B, n, n): exp on the diagonal + eps, clamp, L L^T + eps I, symmetrised."""
    i, j = torch.tril_indices(n, n, device=tri.device)
    on_diag = torch.nonzero(i == j).flatten()
    v = tri.index_copy(-1, on_diag, torch.exp(tri.index_select(-1, on_diag)) + eps)
    L = tri.new_zeros(*tri.shape[:-1], n, n)
    L[..., i, j] = v.clamp(-clamp, clamp)
    Q = L @ L.transpose(-1, -2) + eps * torch.eye(n, dtype=tri.dtype, device=tri.device)
    return 0.5 * (Q + Q.transpose(-1, -2))


def spd_from_tril_gathered(tri: torch.Tensor, n: int, eps: float, clamp: float) -> torch.Tensor:
    """:func:`spd_from_tril` written with a mask and one gather instead of index_copy and an
    indexed assignment (which the ONNX exporter does not translate): the same values, for
    the ONNX graph."""
    i, j = np.tril_indices(n)  # numpy: constants of the traced graph
    on_diag = torch.from_numpy(i == j).to(tri.device)
    v = torch.where(on_diag, torch.exp(torch.where(on_diag, tri, 0.0)) + eps, tri)
    # L.flatten()[r * n + c] = v[k] for the k-th (r, c) of tril_indices, else the zero slot
    index_np = np.full(n * n, len(i), dtype=np.int64)
    index_np[i * n + j] = np.arange(len(i))
    index = torch.from_numpy(index_np)
    padded = torch.cat([v.clamp(-clamp, clamp), torch.zeros_like(v[..., :1])], dim=-1)
    L = padded[..., index.to(tri.device)].reshape(*tri.shape[:-1], n, n)
    Q = L @ L.transpose(-1, -2) + eps * torch.eye(n, dtype=tri.dtype, device=tri.device)
    return 0.5 * (Q + Q.transpose(-1, -2))


def fused_encoder_layer(layer: nn.TransformerEncoderLayer, h: torch.Tensor) -> torch.Tensor:
    """Inference (eval, no grad, no mask) through the fused kernel that
    ``nn.TransformerEncoderLayer.forward`` itself calls on its fast path, without that
    forward's per-call Python checks (~0.15-0.3 ms per layer at batch 1 on our 2-core CPU, a
    quarter of the layer). Same output as ``layer(h)`` (tests/policies/test_diffog.py)."""
    sa = layer.self_attn
    return torch._transformer_encoder_layer_fwd(
        h,
        sa.embed_dim,
        sa.num_heads,
        sa.in_proj_weight,
        sa.in_proj_bias,
        sa.out_proj.weight,
        sa.out_proj.bias,
        layer.activation_relu_or_gelu == 2,
        layer.norm_first,
        layer.norm1.eps,
        layer.norm1.weight,
        layer.norm1.bias,
        layer.norm2.weight,
        layer.norm2.bias,
        layer.linear1.weight,
        layer.linear1.bias,
        layer.linear2.weight,
        layer.linear2.bias,
        None,
        None,
    )


class QEncoder(nn.Module):
    """Transformer encoder of a chunk (B, T_p, D_a) -> entries of tril(L) (B, n (n + 1) / 2),
    n the size of the learned Q (T_p D_a, or T_p len(q_dims))."""

    def __init__(self, c: DiffOGConfig, n: int):
        super().__init__()
        self.n = n
        self.proj = nn.Linear(c.action_dim, c.embed_dim)
        self.use_pe = c.positional_encoding
        self.register_buffer("pe", sinusoidal_positions(c.chunk_len, c.embed_dim), persistent=False)
        layer = nn.TransformerEncoderLayer(
            c.embed_dim, c.num_heads, c.ff_dim, c.dropout, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, c.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.embed_dim)
        # Algorithm 1 keeps only tril(L): the head outputs the n (n + 1) / 2 lower-triangle
        # entries (row-major, diagonal included), not n^2 of which half are discarded.
        self.head = nn.Linear(c.embed_dim, n * (n + 1) // 2)
        nn.init.zeros_(self.head.weight)  # start at L = I (Q ~ I): the static-Q solution
        nn.init.zeros_(self.head.bias)

    def forward(self, a: torch.Tensor, fused: bool = True) -> torch.Tensor:
        """a (B, T_p, D_a) -> entries of tril(L) (B, n (n + 1) / 2), ``torch.tril_indices``
        order. fused=False: never the fused kernel (it has no ONNX form; the ONNX graph
        traces the library layers' plain ops, the same function)."""
        h = self.proj(a)
        if self.use_pe:
            h = h + self.pe
        # the conditions of nn.TransformerEncoderLayer's own fast path that can apply here
        fused = (
            fused
            and not (self.training or torch.is_grad_enabled())
            and self.encoder.layers[0].self_attn.num_heads % 2 == 0
        )
        for layer in self.encoder.layers:  # = self.encoder(h): no mask, no final norm
            h = fused_encoder_layer(layer, h) if fused else layer(h)
        return self.head(self.norm(h.mean(dim=1)))


class DiffOG(ChunkRefiner):
    """DiffOG refiner (see the module docstring). ``DiffOG.wrap(base, checkpoint)`` runs any
    base policy through it."""

    name = "diffog"
    config_class = DiffOGConfig
    config: DiffOGConfig

    def __init__(self, config: DiffOGConfig | None = None):
        super().__init__(config or DiffOGConfig())
        c = self.config
        n, T, Dc = c.chunk_len * c.action_dim, c.chunk_len, len(self.dim_index)
        learned = select_dims(c.action_dim, c.q_dims).tolist()
        #: size of the learned Q: the whole chunk, or its entries of ``q_dims``
        self.q_size = T * len(learned)
        if c.q_mode == "transformer":
            self.q_encoder = QEncoder(c, self.q_size)
        elif c.q_mode == "matrix":
            self.L_raw = nn.Parameter(torch.zeros(self.q_size, self.q_size))
        S = qp.block_diag_repeat(qp.selection_matrix(c.action_dim, self.dim_index.tolist()), T)
        # q_dims: Q = P^T Q_learned P + (I − P^T P), the identity on the other dims
        P = qp.block_diag_repeat(qp.selection_matrix(c.action_dim, learned), T).float()
        self.register_buffer("Q_embed", P, persistent=False)
        self.register_buffer("Q_rest", torch.eye(n) - P.T @ P, persistent=False)
        D = qp.diff_matrix(T, Dc) @ S  # ((T-1) Dc, n): per-step differences of c = S y
        self.register_buffer("G_diff", D, persistent=False)
        self.register_buffer("G_first", S[:Dc], persistent=False)  # c_0
        # the rows with the continuity row first (inference): built once, not per call
        self.register_buffer("G_continuity", torch.cat([S[:Dc], D]), persistent=False)
        #: the selection rows of every step (the magnitude bound max_abs)
        self.register_buffer("G_select", S, persistent=False)
        self.register_buffer("smooth", c.alpha * D.T @ D, persistent=False)
        #: ProxQP solvers reused across inference solves, warm-started from the previous
        #: chunk's solution (cleared by :meth:`clear_warm_start`, e.g. at an episode start)
        self.qp_workspace = qp.ProxQPWorkspace()

    @classmethod
    def example_config(cls) -> DiffOGConfig:
        """4-step chunks of 7 actions, one encoder block of width 16 (tests and docs)."""
        return DiffOGConfig(
            horizon=4, chunk_len=4, embed_dim=16, num_heads=2, num_layers=1, ff_dim=16
        )

    @property
    def device(self) -> torch.device:
        return self.action_scale.device

    def cost_matrix(self, a: torch.Tensor, fused: bool = True) -> torch.Tensor:
        """a (B, T_p, D_a) normalised -> Q (B, n, n) (without the smoothing term).
        fused=False: the exportable ops (:meth:`QEncoder.forward`,
        :func:`spd_from_tril_gathered`), the same function."""
        c, B = self.config, a.shape[0]
        n, m = c.chunk_len * c.action_dim, self.q_size
        spd = spd_from_tril if fused else spd_from_tril_gathered
        if c.q_mode == "transformer":
            Q = spd(self.q_encoder(a, fused), m, c.eps, c.clamp)
        elif c.q_mode == "matrix":
            i, j = torch.tril_indices(m, m, device=a.device)
            Q = spd(self.L_raw[i, j], m, c.eps, c.clamp).expand(B, m, m)
        else:
            return torch.eye(n, device=a.device).expand(B, n, n)
        if m == n:
            return Q
        return self.Q_embed.T @ Q @ self.Q_embed + self.Q_rest

    def refine_normalized(self, a, prev=None, bounds=None):
        return self._refine_and_cost(a, prev, bounds)[0]

    def _refine_and_cost(
        self,
        a: torch.Tensor,
        prev: torch.Tensor | None = None,
        bounds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`refine_normalized` and the Q (B, n, n) it used (without smoothing)."""
        self._check_chunks(a)
        Q = self.cost_matrix(a)
        y = self.solve(Q.double() + self.smooth, -a.reshape(len(a), -1).double(), prev, bounds)
        return y.to(a.dtype).view(a.shape), Q

    def refine_for_loss(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Training refine: y and, with ``q_reg`` > 0, the penalty q_reg mean((Q − I)²)
        (pulls the learned Q toward the static Q = I)."""
        if self.config.q_reg == 0 or self.config.q_mode == "static":
            return super().refine_for_loss(a)
        y, Q = self._refine_and_cost(a)
        eye = torch.eye(Q.shape[-1], dtype=Q.dtype, device=Q.device)
        dev = torch.mean((Q - eye) ** 2)
        return y, self.config.q_reg * dev, {"q_dev": float(dev.detach())}

    def _check_chunks(self, a: torch.Tensor) -> None:
        c = self.config
        if tuple(a.shape[1:]) != (c.chunk_len, c.action_dim):
            raise ValueError(
                f"chunks must be (B, {c.chunk_len}, {c.action_dim}), got {tuple(a.shape)}"
            )
        if not torch.isfinite(a).all():
            raise ValueError("chunk contains NaN/inf")

    def _refine_checked(self, a, prev, bounds, run):
        """As :meth:`ChunkRefiner._refine_checked`, without the QP's input checks (the
        chunk, continuity row and bounds are validated by :meth:`refine`; Q is the graph's
        symmetric positive definite matrix of a finite chunk; the shapes are this
        refiner's): the solution is still checked against the constraints."""
        a_t = torch.from_numpy(a)
        self._check_chunks(a_t)
        if run is None:
            Q = self.cost_matrix(a_t.to(self.device)).double() + self.smooth
            p = -a_t.reshape(len(a_t), -1).double().to(self.device)
        else:
            Q, p = (torch.from_numpy(x) for x in run({"a": a}))
        y = self.solve(Q, p, prev, bounds, check_inputs=False)
        return y.to(a_t.dtype).view(a_t.shape)

    def solve(
        self,
        Q: torch.Tensor,
        p: torch.Tensor,
        prev: torch.Tensor | None = None,
        bounds: torch.Tensor | None = None,
        check_inputs: bool = True,
    ) -> torch.Tensor:
        """The QP of the module docstring: Q (B, n, n) with the smoothing term, p (B, n)
        float64, prev (B, D_c) or None, bounds (T_p, D_c) or None -> y (B, n) float64.
        check_inputs: see :func:`~ampczoo.nn.qp.solve_qp`."""
        c, B = self.config, len(p)
        b = self.bounds_tensor(None, c.chunk_len) if bounds is None else bounds.double().cpu()
        b = b.to(p.device)
        G, lower, upper = self.constraint_rows(b, prev, B)
        return qp.solve_qp(
            Q,
            p,
            G,
            lower,
            upper,
            backend=c.backend,
            workspace=self.qp_workspace,
            check_inputs=check_inputs,
        )

    def constraint_rows(
        self, b: torch.Tensor, prev: torch.Tensor | None, B: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(G, lower, upper) of the QP: change rows with bounds ``b`` (T_p, D_c) (row k bounds
        c_k − c_{k−1}), the continuity row on row ``_continuity_row`` against ``prev``
        (B, D_c) (bound of that row) and the magnitude rows of ``config.max_abs``."""
        j, Dc = self._continuity_row, len(self.dim_index)
        G, hi = self.G_diff, b[1:].reshape(-1)
        lower, upper = -hi, hi
        if prev is not None:
            G = (
                self.G_continuity
                if j == 0
                else torch.cat([self.G_select[j * Dc : (j + 1) * Dc], G])
            )
            hi_b = hi.expand(B, -1)
            lower = torch.cat([prev.double() - b[j], -hi_b], dim=1)
            upper = torch.cat([prev.double() + b[j], hi_b], dim=1)
        if self.config.max_abs is not None:
            v = torch.full((self.G_select.shape[0],), self.config.max_abs, dtype=b.dtype)
            v = v.to(b.device)
            G = torch.cat([G, self.G_select])
            if lower.ndim == 2:
                v = v.expand(B, -1)
            lower, upper = torch.cat([lower, -v], dim=-1), torch.cat([upper, v], dim=-1)
        return G, lower, upper

    def clear_warm_start(self) -> None:
        """The next inference QP starts cold (see :attr:`qp_workspace`)."""
        self.qp_workspace.clear()

    # ------------------------------------------------------------------ ONNX
    def onnx_graph(self) -> OnnxGraph:
        """a (B, T_p, D_a) normalised float32 -> the QP's ``Q`` (B, n, n) float64 (encoder,
        Q head, Algorithm 1, + the smoothing term) and ``p`` = -a flattened (B, n) float64;
        the QP itself is solved in Python (:meth:`solve`)."""

        def graph(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            Q = self.cost_matrix(a, fused=False).double() + self.smooth
            return Q, -a.reshape(a.shape[0], -1).double()

        c = self.config
        example = torch.zeros(2, c.chunk_len, c.action_dim)
        axes = {"a": {0: "B"}, "Q": {0: "B"}, "p": {0: "B"}}
        return OnnxGraph(GraphModule(self, graph), (example,), ["a"], ["Q", "p"], axes)

    def refine_normalized_onnx(
        self,
        run: GraphRunner,
        a: np.ndarray,
        prev: torch.Tensor | None = None,
        bounds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:meth:`refine_normalized` with the graph of :meth:`onnx_graph` run by ``run``:
        a (B, T_p, D_a) float32 array -> refined (B, T_p, D_a) float32 tensor."""
        self._check_chunks(torch.from_numpy(a))
        Q, p = run({"a": a})
        y = self.solve(torch.from_numpy(Q), torch.from_numpy(p), prev, bounds)
        return y.float().view(a.shape)
