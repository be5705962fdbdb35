"""Learned refiners of action chunks (DiffOG and the residual baseline): shared config fields,
normalisation, the two training modes, receding-horizon inference and ``wrap``.

A refiner maps a base chunk a (T_p x D_a, actions divided per dimension by ``action_scale`` so
the data lie in [-1, 1]) to a refined chunk y. Training (through the one training loop,
``ampczoo train diffog|residual``) on batches {"obs", "u_seq"} of a demonstration store:

* mode "dataset": input a = the demonstrated chunk, target = the same chunk;
* mode "refine": input a = the chunk of the frozen base policy ``config.base`` (zoo name or
  checkpoint folder, evaluated on the batch's observations), target = the demonstrated chunk.
  A Diffusion Policy base (``predict_chunk``, T_o observations) is evaluated on the batch's
  observation windows (``obs_history`` (B, T_o, D)) and draws fresh stochastic chunks every
  batch (its sampler seeded from the global torch RNG, so a resumed run draws the same): the
  paper's multi-modal input/target setting. Its chunks are its full T_p sequences, whose row
  T_o − 1 is "now" (``chunk_offset``); the demonstrated targets are the same windows
  (:meth:`ChunkRefiner.dataset_kwargs` asks the store for them).

Inference: :meth:`ChunkRefiner.wrap` puts a refiner behind any base (ampczoo policy, SB3 model,
plain callable); it refines one base chunk with a continuity constraint to the last executed
action on the chunk's current row (none at the first step of an episode) and executes
``execute_steps`` of its actions (default: the base's ``action_horizon`` where it declares
one, Diffusion Policy's T_a = 8; else 1). A single-step base's action is held for T_p steps to
form a chunk. A base of full chunks (``predict_chunk``, Diffusion Policy) must match the
refiner's ``chunk_len`` and ``chunk_offset`` with its own (ValueError at wrap time naming both);
the chunks of other bases are padded / cut to ``chunk_len`` as before.

Per-suite settings of DiffOG's Table IX (bound, alpha, S without the gripper, scale) come from
:func:`ampczoo.wrappers.presets.suite_preset`; the trainer applies the preset of the store's
env (:meth:`ChunkRefiner.config_from_data`) unless the command line sets a field.
"""

from __future__ import annotations

import abc
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from ampczoo.core.checkpoint import PolicyConfig, PretrainedPolicy
from ampczoo.core.onnx import GraphRunner, OnnxRuntimePolicy
from ampczoo.nn.normalization import action_scale
from ampczoo.wrappers.chunk import (
    BoundSchedule,
    ChunkFilterPolicy,
    base_action_dim,
    base_chunk_layout,
    check_base,
    resolve_bounds,
    select_dims,
)
from ampczoo.wrappers.presets import SCALE_MODES, suite_preset

MODES = ("dataset", "refine")


@dataclass(frozen=True)
class RefinerConfig(PolicyConfig):
    """Fields shared by the chunk refiners (DiffOG, residual): a base chunk, normalised per
    dimension to [-1, 1], is refined to a smooth chunk within per-step change bounds (see the
    module docstring)."""

    obs_dim: int = 20
    """observation size of the training data (set by the trainer)"""
    horizon: int = 20
    """stored sequence length N of the training data [steps] (set by the trainer)"""
    chunk_len: int = 16
    """T_p, refined steps (the first T_p of a chunk; <= horizon)"""
    action_dim: int = 7
    """D_a, action size"""
    dims: tuple[int, ...] | None = None
    """constrained/smoothed action dimensions, the selection matrix S (None = all)"""
    alpha: float = 4.0
    """smoothing weight of (alpha/2)||A_diff S y||^2 (differences per step, in normalised
    units)"""
    bound: float = 0.1
    """per-step change bound d_max dt in normalised units (symmetric)"""
    chunk_offset: int = 0
    """row of a chunk that is the action for "now" (Diffusion Policy: T_o − 1, its chunks
    start at its oldest observation): the continuity row and the first executed row;
    training windows start this many steps before the sample (set from a refine-mode base)"""
    max_abs: float | None = None
    """optional magnitude bound |S y| <= max_abs in normalised units, in the same QP (DiffOG
    Table X: velocity bound 0.5 on robomimic's velocity actions); None = none"""
    scale_mode: Literal["max_abs", "min_max", "unit"] = "max_abs"
    """action normalisation the bounds are in: "max_abs" (per dimension max |u| of the data),
    "min_max" (half the data range, Diffusion Policy's [-1, 1]) or "unit" (actions already in
    [-1, 1], robomimic: the paper's bound is the raw one)"""
    mode: Literal["dataset", "refine"] = "dataset"
    """training mode: "dataset" (input and target the demonstrated chunk) or "refine" (input
    the chunk of the frozen ``base`` policy, target the demonstrated chunk)"""
    base: str = ""
    """the frozen base policy of refine mode (zoo name or checkpoint folder)"""

    def __post_init__(self) -> None:
        for name in ("obs_dim", "horizon", "chunk_len", "action_dim"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.chunk_len > self.horizon:
            raise ValueError(f"chunk_len {self.chunk_len} > horizon {self.horizon}")
        offset = self.chunk_offset
        if not isinstance(offset, int | np.integer) or not 0 <= offset < self.chunk_len:
            raise ValueError(f"chunk_offset must be an integer in [0, chunk_len), got {offset!r}")
        if self.max_abs is not None and not 0 < self.max_abs < np.inf:
            raise ValueError(f"max_abs must be None or a finite number > 0, got {self.max_abs}")
        if self.scale_mode not in SCALE_MODES:
            raise ValueError(f"scale_mode must be one of {SCALE_MODES}, got {self.scale_mode!r}")
        select_dims(self.action_dim, self.dims)
        if not 0 <= self.alpha < np.inf:
            raise ValueError(f"alpha must be a finite number >= 0, got {self.alpha}")
        if not 0 < self.bound < np.inf:
            raise ValueError(f"bound must be a finite number > 0, got {self.bound}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "refine" and not self.base:
            raise ValueError("mode 'refine' needs `base` (zoo name or checkpoint folder)")


class ChunkRefiner(PretrainedPolicy):
    """Base of the learned chunk refiners; subclasses implement :meth:`refine_normalized`."""

    config: RefinerConfig
    #: ``act`` runs one observation at a time (receding horizon through the base)
    batched: ClassVar[bool] = False

    def __init__(self, config: RefinerConfig):
        super().__init__(config)
        c = config
        self.register_buffer("action_scale", torch.ones(c.action_dim))
        self.dim_index = select_dims(c.action_dim, c.dims)
        self._base: Any = None
        self._base_onnx: Any = None
        self._default_bounds: dict[tuple[int, float], torch.Tensor] = {}
        self._runner: RefinedPolicy | None = None
        #: row the continuity constraint of the current :meth:`refine` applies to
        self._continuity_row = 0

    # ------------------------------------------------------------------ interface
    @abc.abstractmethod
    def refine_normalized(
        self, a: torch.Tensor, prev: torch.Tensor | None = None, bounds: torch.Tensor | None = None
    ) -> torch.Tensor:
        """a (B, T_p, D_a) normalised chunks -> refined (B, T_p, D_a). prev (B, D_c)
        normalised last executed action (continuity row) or None; bounds (T_p, D_c)
        normalised per-step change bounds (row 0: continuity) or None = config.bound."""

    def extra_loss(self, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Added to the fidelity loss (residual: smoothness penalty); default none."""
        return y.new_zeros(()), {}

    # ------------------------------------------------------------------ data
    @staticmethod
    def dataset_kwargs(fields: dict[str, Any]) -> dict[str, Any]:
        """The :class:`~ampczoo.data.DemonstrationDataset` windows of a config with these
        ``fields``: chunks of ``horizon`` actions starting ``chunk_offset`` steps before the
        sample; with a refine-mode base that conditions on T_o observations (Diffusion
        Policy), its observation windows and its chunk layout (T_p rows from T_o − 1 before)."""
        horizon, offset = fields.get("horizon", 1), fields.get("chunk_offset", 0)
        history = 0
        layout = refine_base_layout(fields)
        if layout is not None:
            history, length, offset = layout
            horizon = max(int(horizon), length) if isinstance(horizon, int) else length
        return {
            "history": history,
            "action_horizon": int(horizon) if isinstance(horizon, int) else 1,
            "action_lead": int(offset),
        }

    @classmethod
    def config_from_data(cls, fields: dict[str, Any], attrs: dict[str, Any]) -> dict[str, Any]:
        """Config fields the trainer takes from the data (before the command line's): the
        Table IX preset of the store's env (``suite_preset``: bound, alpha, S without the
        gripper, scale) and, in refine mode, the base's chunk layout (chunk_len = T_p,
        chunk_offset = T_o − 1 for Diffusion Policy)."""
        out: dict[str, Any] = {}
        env_id = attrs.get("env")
        preset = suite_preset(env_id) if isinstance(env_id, str) else None
        action_dim = fields.get("action_dim")
        if preset is not None and isinstance(action_dim, int):
            out.update(preset.refiner_fields(action_dim))
        layout = refine_base_layout(fields)
        if layout is not None:
            _, out["chunk_len"], out["chunk_offset"] = layout
        return out

    # ------------------------------------------------------------------ normalisation
    def set_normalization(self, stats: dict[str, dict[str, np.ndarray]]) -> None:
        """Per-dimension action scale of the train split by ``config.scale_mode``: max |u_j|
        ("max_abs"), (max_j − min_j) / 2 ("min_max") or 1 ("unit")."""
        mode = self.config.scale_mode
        lo = np.asarray(stats["u_seq"]["min"]).reshape(-1, self.config.action_dim).min(0)
        hi = np.asarray(stats["u_seq"]["max"]).reshape(-1, self.config.action_dim).max(0)
        if mode == "max_abs":
            std = action_scale(stats["u_seq"], "joint_range")[1][0]
        elif mode == "min_max":
            std = np.maximum((hi - lo) / 2.0, 1e-6)
        else:
            std = np.ones_like(lo)
        scale = torch.as_tensor(np.asarray(std), dtype=self.action_scale.dtype)
        if scale.shape != self.action_scale.shape:
            raise ValueError(
                f"action scale shape {tuple(scale.shape)} != ({self.config.action_dim},)"
            )
        self.action_scale.copy_(scale)

    def raw_bound(self) -> np.ndarray:
        """config.bound in raw action units per constrained dimension (D_c,)."""
        return self.config.bound * self.action_scale.cpu().numpy()[self.dim_index]

    # ------------------------------------------------------------------ training
    def base_policy(self) -> Any:
        """The frozen base of refine mode, loaded once (not part of the state dict)."""
        if self._base is None:
            from ampczoo.core.registry import load_policy

            # fork_rng: building the network draws from the global RNG; loading must not
            # change the training's draws (a resumed run draws what an uninterrupted one does)
            with torch.random.fork_rng(devices=[]):
                base = load_policy(self.config.base, device="cpu")
            # object.__setattr__: the base must not become a submodule (state dict)
            object.__setattr__(self, "_base", base)
        return self._base

    def base_policy_onnx(self, num_threads: int = 1) -> Any:
        """The frozen base of refine mode loaded with ``backend="onnxruntime"`` (its chunks
        through its graph), loaded once; the torch base (:meth:`base_policy`) when its type
        has no graph."""
        if self._base_onnx is None:
            from ampczoo.core.registry import load_policy

            try:
                base = load_policy(self.config.base, backend="onnxruntime", num_threads=num_threads)
            except ValueError:  # a base type without a graph: its torch network
                base = self.base_policy()
            object.__setattr__(self, "_base_onnx", base)
        return self._base_onnx

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean squared error between the refined chunk and the demonstrated chunk
        (normalised), plus :meth:`extra_loss`."""
        c = self.config
        target = batch["u_seq"][:, : c.chunk_len] / self.action_scale
        if c.mode == "dataset":
            a = target
        else:
            chunks = self.base_chunks(batch)[:, : c.chunk_len]
            a = torch.as_tensor(chunks, dtype=target.dtype, device=target.device)
            a = a / self.action_scale
        y, penalty, info = self.refine_for_loss(a)
        fidelity = torch.mean((y - target) ** 2)
        extra, extra_info = self.extra_loss(y)
        return fidelity + penalty + extra, {"mse": float(fidelity.detach()), **info, **extra_info}

    def refine_for_loss(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """The training refine of :meth:`loss`: a (B, T_p, D_a) normalised -> (y, a penalty
        on the refiner's own parameters (scalar), its logged values); default
        :meth:`refine_normalized`, no penalty."""
        return self.refine_normalized(a), a.new_zeros(()), {}

    def base_chunks(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """Chunks (B, T, D_a) raw of the frozen base on the batch: a base with
        ``predict_chunk`` (Diffusion Policy) on the observation windows ``obs_history``,
        its sampler reseeded from the global torch RNG (fresh stochastic chunks every batch);
        any other base through ``act_chunk`` on ``obs``."""
        base = self.base_policy()
        if hasattr(base, "predict_chunk") and "obs_history" in batch:
            base.reset(seed=int(torch.randint(0, 2**31 - 1, ()).item()))
            return np.asarray(base.predict_chunk(batch["obs_history"].detach().cpu().numpy()))
        return np.asarray(base.act_chunk(batch["obs"].detach().cpu().numpy()))

    # ------------------------------------------------------------------ inference
    def bounds_tensor(self, bound: Any, rows: int) -> torch.Tensor:
        """Per-call bounds (scalar, (D_c,) or (rows, D_c), normalised) -> (rows, D_c)."""
        if bound is None:  # the config's: the same tensor every call (not written to)
            key = (rows, self.config.bound)
            cached = self._default_bounds.get(key)
            if cached is None:
                cached = self._default_bounds[key] = self.bounds_tensor(self.config.bound, rows)
            return cached
        lo, hi = resolve_bounds(bound, None, rows, len(self.dim_index))
        return torch.as_tensor(hi, dtype=torch.float64)

    @torch.no_grad()
    def refine(
        self,
        chunk: np.ndarray,
        prev_action: np.ndarray | None = None,
        bound: Any = None,
        run: GraphRunner | None = None,
        continuity_row: int = 0,
    ) -> np.ndarray:
        """chunk (T, D_a) raw -> refined (T, D_a) raw. The first T_p steps are refined (a
        shorter chunk is padded by holding its last action and cut back; steps beyond T_p are
        returned unchanged). prev_action (D_a,) raw: continuity constraint on row
        ``continuity_row`` (None: dropped). bound: per-step change bound in normalised units
        for this call (scalar, (D_c,) or (T_p, D_c); row k bounds c_k − c_{k−1}, row
        ``continuity_row`` also the continuity row), default config.bound. run: the graph of
        :meth:`onnx_graph` (ONNX Runtime, see :meth:`wrap`) instead of torch."""
        chunk = np.asarray(chunk, dtype=np.float64)
        c, T = self.config, len(chunk)
        if chunk.ndim != 2 or chunk.shape[1] != c.action_dim or not np.isfinite(chunk).all():
            raise ValueError(f"chunk must be finite (T, {c.action_dim}), got {chunk.shape}")
        Tp = c.chunk_len
        padded = np.concatenate([chunk[:Tp], np.repeat(chunk[-1:], max(Tp - T, 0), axis=0)])
        scale = self.action_scale.cpu().double().numpy()
        a = (padded / scale).astype(np.float32)[None]
        prev = None
        if prev_action is not None:
            p = np.asarray(prev_action, dtype=np.float64)
            if p.shape != (c.action_dim,) or not np.isfinite(p).all():
                raise ValueError(f"prev_action must be finite ({c.action_dim},), got {p.shape}")
            prev = torch.as_tensor((p / scale)[self.dim_index], device=self.device)[None]
        if not 0 <= continuity_row < Tp:
            raise ValueError(f"continuity_row must be in [0, {Tp}), got {continuity_row}")
        self._continuity_row = int(continuity_row)
        bounds = self.bounds_tensor(bound, Tp)
        y = self._refine_checked(a, prev, bounds, run)[0]
        out = chunk.copy()
        n = min(T, Tp)
        out[:n] = y.double().cpu().numpy()[:n] * scale
        return out

    def _refine_checked(
        self,
        a: np.ndarray,
        prev: torch.Tensor | None,
        bounds: torch.Tensor,
        run: GraphRunner | None,
    ) -> torch.Tensor:
        """:meth:`refine`'s normalised step on inputs it has validated: a (1, T_p, D_a)
        float32 array, prev (1, D_c) or None, bounds (T_p, D_c) -> refined (1, T_p, D_a)
        tensor, with torch (``run`` None) or the graph. A refiner may skip its own input
        checks here (DiffOG: the QP's)."""
        if run is None:
            return self.refine_normalized(torch.as_tensor(a, device=self.device), prev, bounds)
        return self.refine_normalized_onnx(run, a, prev, bounds)

    def refine_normalized_onnx(
        self,
        run: GraphRunner,
        a: np.ndarray,
        prev: torch.Tensor | None = None,
        bounds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:meth:`refine_normalized` with the graph of :meth:`onnx_graph` run by ``run``:
        a (B, T_p, D_a) float32 array -> refined (B, T_p, D_a) float32 tensor."""
        raise ValueError(
            f"{self.name!r} policies cannot be exported to ONNX: {self.onnx_unsupported}"
        )

    @classmethod
    def wrap(
        cls,
        base: Any,
        checkpoint: str | Path | RefinerConfig | ChunkRefiner | None = None,
        device: Any = "cpu",
        backend: str = "torch",
        num_threads: int = 1,
        precision: str = "float32",
        execute_steps: int | None = None,
        bound_schedule: BoundSchedule | Any = None,
    ) -> RefinedPolicy:
        """A policy running ``base`` (ampczoo policy with predict_chunk/act_chunk/act, SB3
        model, callable) through this refiner, executing ``execute_steps`` refined actions per
        chunk (None: the base's ``action_horizon``, else 1) with an optional
        :class:`~ampczoo.wrappers.chunk.BoundSchedule` (normalised units): ``checkpoint`` is a
        folder / zoo name of a trained refiner, a refiner instance, or a config (fresh,
        untrained; useful for the static-Q DiffOG).
        backend "onnxruntime": the refiner's graph (:meth:`onnx_graph`) runs in ONNX Runtime
        with ``num_threads`` intra-op threads (CPU; the QP stays in Python); a checkpoint's
        graph is cached as in ``load_policy(..., backend="onnxruntime")``, an instance's or
        config's is exported anew. The base runs on its own backend.
        precision (onnxruntime only): "float32" (default, the method) or "int8": the graph's
        weight matrices quantised to int8 (:func:`~ampczoo.core.onnx.quantized_onnx`), an
        option that changes Q and so the actions (the constraints still hold: they are the
        QP's); docs/results/speed.md measures it.
        ValueError right away for a base that is neither a policy nor a callable, or whose
        declared action size differs from the refiner's ``action_dim``."""
        from ampczoo.core.onnx import check_backend, check_precision

        check_backend(backend)
        check_precision(precision)
        if precision != "float32" and backend != "onnxruntime":
            raise ValueError(f"precision={precision!r} needs backend='onnxruntime'")
        check_base(base)
        if backend == "onnxruntime" and torch.device(device).type != "cpu":
            raise ValueError(f"backend='onnxruntime' runs on the CPU; got device={device!r}")
        if isinstance(checkpoint, cls):
            refiner = checkpoint
        elif isinstance(checkpoint, RefinerConfig) or checkpoint is None:
            refiner = cls(checkpoint or cls.config_class()).eval()  # type: ignore[arg-type]
        else:
            from ampczoo.core.registry import load_policy

            refiner = load_policy(checkpoint, device=device)
            if not isinstance(refiner, cls):
                raise ValueError(f"{checkpoint}: a {type(refiner).__name__}, not a {cls.__name__}")
        steps = {"execute_steps": execute_steps, "bound_schedule": bound_schedule}
        if backend == "torch":
            return RefinedPolicy(base, refiner, **steps)
        folder = checkpoint if isinstance(checkpoint, str | Path) else None
        runtime = refiner_runtime(refiner, folder, num_threads, precision)
        return RefinedPolicy(base, refiner, run=runtime.run, **steps)

    def clear_warm_start(self) -> None:
        """Forget any state carried from the previous chunk's solve (DiffOG: the QP's warm
        start); called when a runner starts an episode. Default: nothing carried."""

    def reset(self, seed: int | None = None) -> None:
        """Reset the refine-mode base runner (see :meth:`act`)."""
        if self._runner is not None:
            self._runner.reset(seed)

    def planned_inputs(self) -> tuple[np.ndarray, float] | None:
        """The refined chunk of the last :meth:`act` through ``config.base`` and its step
        (see :meth:`ChunkFilterPolicy.planned_inputs`); None before it."""
        return None if self._runner is None else self._runner.planned_inputs()

    def act(self, obs: Any) -> np.ndarray:
        """Receding-horizon action through ``config.base`` (refine-mode checkpoints); other
        refiners are used through :meth:`wrap`."""
        if not self.config.base:
            raise ValueError(
                f"{self.name} has no base policy: use {type(self).__name__}.wrap(base, checkpoint)"
            )
        if self._runner is None or self._runner.run is not None:
            self._runner = RefinedPolicy(self.base_policy(), self)
        return self._runner.act(obs)

    def act_onnx(self, run: GraphRunner, obs: Any) -> np.ndarray:
        """:meth:`act` with the refiner's graph run by ``run`` and the base loaded with
        ``backend="onnxruntime"`` too (:meth:`base_policy_onnx`), with the refiner
        session's number of threads."""
        if not self.config.base:
            return self.act(obs)  # the ValueError
        if self._runner is None or self._runner.run != run:
            threads = getattr(getattr(run, "__self__", None), "num_threads", 1)
            self._runner = RefinedPolicy(self.base_policy_onnx(threads), self, run=run)
        return self._runner.act(obs)


class RefinedPolicy(ChunkFilterPolicy):
    """A base policy behind a learned refiner (see :meth:`ChunkRefiner.wrap`). ``act(obs,
    bound=...)`` accepts time-varying bounds (normalised units) per call."""

    name = "refined"

    def __init__(
        self,
        base: Any,
        refiner: ChunkRefiner,
        run: GraphRunner | None = None,
        execute_steps: int | None = None,
        bound_schedule: BoundSchedule | Any = None,
    ):
        super().__init__(base, execute_steps, bound_schedule)
        if not isinstance(refiner, ChunkRefiner):
            raise ValueError(f"refiner must be a ChunkRefiner, got {type(refiner).__name__}")
        c = refiner.config
        dim = base_action_dim(base)
        if dim is not None and dim != c.action_dim:
            raise ValueError(
                f"the base acts in {dim} dimensions, the {refiner.name} refiner in {c.action_dim}"
            )
        length, offset = base_chunk_layout(base)
        full = hasattr(base, "predict_chunk")  # a base of full chunks (others are padded)
        if full and length is not None and (length, offset) != (c.chunk_len, c.chunk_offset):
            raise ValueError(
                f"the base's chunks have {length} rows with the current one at row {offset}; "
                f"the {refiner.name} refiner's have chunk_len {c.chunk_len}, chunk_offset "
                f"{c.chunk_offset}"
            )
        self.refiner = refiner
        #: the refiner's graph in ONNX Runtime (see :meth:`ChunkRefiner.wrap`); None: torch
        self.run = run

    @property
    def action_dim(self) -> int:
        """The refiner's (and base's) action size."""
        return self.refiner.config.action_dim

    def reset(self, seed: int | None = None) -> None:
        """As :meth:`ChunkFilterPolicy.reset`; the refiner's next solve starts cold, so an
        episode's actions do not depend on the previous episode."""
        super().reset(seed)
        self.refiner.clear_warm_start()

    def refine(
        self,
        chunk: np.ndarray,
        prev_action: np.ndarray | None,
        bound: Any = None,
    ) -> np.ndarray:
        return self.refiner.refine(chunk, prev_action, bound, run=self.run)

    def refine_chunk(
        self,
        chunk: np.ndarray,
        prev_action: np.ndarray | None,
        offset: int = 0,
        bound: Any = None,
    ) -> np.ndarray:
        """The whole chunk through the refiner (it was trained on the base's full chunks),
        the continuity row on row ``offset``."""
        return self.refiner.refine(chunk, prev_action, bound, run=self.run, continuity_row=offset)

    def schedule_kwargs(self, bounds: np.ndarray, offset: int) -> dict[str, Any]:
        """Row bounds (T,) normalised -> ``bound`` (T_p, 1) of :meth:`refine_chunk`."""
        T = self.refiner.config.chunk_len
        rows = np.asarray(bounds, dtype=np.float64)[:T]
        rows = np.concatenate([rows, np.repeat(rows[-1:], T - len(rows))])
        return {"bound": rows[:, None]}


def refiner_runtime(
    refiner: ChunkRefiner,
    checkpoint: str | Path | None,
    num_threads: int = 1,
    precision: str = "float32",
) -> OnnxRuntimePolicy:
    """``refiner`` with its graph in an ONNX Runtime session: the cached file of the
    checkpoint folder / zoo name ``checkpoint``, or (None) a file exported now (its own
    temporary folder, removed once the session has read it); ``precision`` "int8": its
    quantised copy (:func:`~ampczoo.core.onnx.quantized_onnx`, cached beside it)."""
    from ampczoo.core.onnx import cached_onnx, quantized_onnx, require_onnxruntime
    from ampczoo.core.registry import resolve_checkpoint

    require_onnxruntime()
    refiner.onnx_graph()  # ValueError naming the reason, before anything is written
    if checkpoint is not None:
        path = quantized_onnx(cached_onnx(refiner, resolve_checkpoint(checkpoint)), precision)
        return OnnxRuntimePolicy(refiner, path, num_threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = quantized_onnx(refiner.export_onnx(Path(tmp) / "refiner.onnx"), precision)
        return OnnxRuntimePolicy(refiner, path, num_threads)


def refine_base_layout(fields: dict[str, Any]) -> tuple[int, int, int] | None:
    """(T_o, chunk length, chunk offset) of a refine-mode base that conditions on an
    observation history and exposes its full chunks (Diffusion Policy: T_o, T_p, T_o − 1),
    read from its config; None for other bases / dataset mode."""
    if fields.get("mode") != "refine" or not fields.get("base"):
        return None
    from ampczoo.core.registry import load_policy

    base = load_policy(str(fields["base"]), device="cpu")
    if not hasattr(base, "predict_chunk"):
        return None
    length, offset = base_chunk_layout(base)
    history = int(getattr(base.config, "obs_horizon", offset + 1))
    return history, int(length if length is not None else fields.get("chunk_len", 1)), offset
