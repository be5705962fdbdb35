"""ONNX export of a policy's inference graph and the ONNX Runtime inference backend.

A policy that can be exported defines :meth:`~ampczoo.core.checkpoint.PretrainedPolicy.
onnx_graph` (the module, example inputs and input/output names of the whole inference path
that can be a graph: observation features, normalisation, for DAMPC the unrolled sampling
loop) and :meth:`~ampczoo.core.checkpoint.PretrainedPolicy.act_onnx` (its ``act`` with the
graph run by a callable; the Python-side state, e.g. the history buffer or the previous
sequence of the guidance, stays in the policy). :func:`export_onnx` writes the graph with
the TorchScript-based exporter (``dynamo=False``: offline and deterministic).

``load_policy(name, backend="onnxruntime")`` returns an :class:`OnnxRuntimePolicy`: the
loaded torch policy for the Python-side logic plus an ``onnxruntime.InferenceSession`` (one
intra-op thread by default) for the graph. The ONNX file is produced on demand and cached in
``$XDG_CACHE_HOME/ampczoo/onnx/`` (default ``~/.cache/ampczoo/onnx/``), named by a hash of
the checkpoint's config.json and model.safetensors (and of :data:`EXPORT_VERSION`), so a
changed checkpoint gets a new file and a stale one is never used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

#: Bumped whenever the exported graphs change, so cached files of an older export are not
#: reused.
EXPORT_VERSION = "1"
#: ONNX opset of the exported graphs.
OPSET = 17
BACKENDS = ("torch", "onnxruntime")
#: weight precisions of a graph run by ONNX Runtime: "float32" (the exported graph, the
#: default) or "int8" (:func:`quantized_onnx`: an option for the refiners, see
#: ``ChunkRefiner.wrap``; it changes the actions, which tests and docs measure)
PRECISIONS = ("float32", "int8")

#: run(inputs {name: float32 array}) -> outputs, in the graph's output order.
GraphRunner = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


@dataclasses.dataclass
class OnnxGraph:
    """What :func:`export_onnx` traces: ``module(*example_inputs)`` with named inputs and
    outputs; ``dynamic_axes`` maps a name to {axis: symbolic name} (e.g. the batch)."""

    module: nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]]


def check_backend(backend: str) -> None:
    """ValueError unless ``backend`` is one of BACKENDS."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def export_onnx(policy: Any, path: str | Path) -> Path:
    """Write ``policy``'s inference graph to ``path`` (an .onnx file, parent created).

    ValueError naming the reason when the policy type cannot be exported."""
    if not hasattr(policy, "onnx_graph"):
        raise ValueError(
            f"{type(policy).__name__} cannot be exported to ONNX: it is not a network "
            "policy (no onnx_graph)"
        )
    graph: OnnxGraph = policy.onnx_graph()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    # the fused transformer-encoder kernel of eval mode has no ONNX form: trace the plain ops
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        _trace(graph, path)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return path


def _trace(graph: OnnxGraph, path: Path) -> None:
    """torch.onnx.export of ``graph`` to ``path`` (TorchScript-based exporter)."""
    with torch.no_grad():
        torch.onnx.export(
            graph.module.eval(),
            graph.example_inputs,
            str(path),
            dynamo=False,
            input_names=graph.input_names,
            output_names=graph.output_names,
            dynamic_axes=graph.dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=True,
        )


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ampczoo/onnx`` (default ``~/.cache/ampczoo/onnx``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ampczoo" / "onnx"


def checkpoint_hash(checkpoint: str | Path) -> str:
    """sha256 (hex) of a checkpoint folder's config.json and model.safetensors bytes and of
    :data:`EXPORT_VERSION` and the torch version (the exporter)."""
    from ampczoo.core.checkpoint import CONFIG_NAME, WEIGHTS_NAME

    digest = hashlib.sha256(f"ampczoo-onnx-{EXPORT_VERSION}-torch-{torch.__version__}".encode())
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        digest.update(name.encode())
        digest.update((Path(checkpoint) / name).read_bytes())
    return digest.hexdigest()


def cached_onnx(policy: Any, checkpoint: str | Path) -> Path:
    """The cached ONNX file of ``policy`` loaded from ``checkpoint``, exported now if absent
    (written to a temporary file and renamed, so a reader never sees half a file)."""
    directory = cache_dir()
    path = directory / f"{policy.name}-{checkpoint_hash(checkpoint)[:32]}.onnx"
    if path.is_file():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx.tmp", dir=directory)
    os.close(fd)
    try:
        export_onnx(policy, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def check_precision(precision: str) -> None:
    """ValueError unless ``precision`` is one of PRECISIONS."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")


def quantized_onnx(path: str | Path, precision: str = "int8") -> Path:
    """``path`` for "float32"; for "int8" the graph with every weight matrix (MatMul / Gemm
    with a constant operand) quantised to int8 by ONNX Runtime's dynamic quantisation
    (``onnxruntime.quantization.quantize_dynamic``; activations quantised per call, every
    other operator, e.g. the products of two activations, left in float), written once
    next to it as ``<stem>-int8.onnx``."""
    check_precision(precision)
    path = Path(path)
    if precision == "float32":
        return path
    out = path.with_name(f"{path.stem}-{precision}.onnx")
    if out.is_file():
        return out
    require_onnxruntime()
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(path))
    weights = {init.name for init in model.graph.initializer}
    nodes = [
        n.name
        for n in model.graph.node
        if n.op_type in ("MatMul", "Gemm") and any(i in weights for i in n.input)
    ]
    fd, tmp = tempfile.mkstemp(suffix=".onnx.tmp", dir=out.parent)
    os.close(fd)
    try:
        logging.disable(logging.WARNING)  # its advice to pre-process (shape inference)
        quantize_dynamic(path, tmp, weight_type=QuantType.QInt8, nodes_to_quantize=nodes)
        os.replace(tmp, out)
    finally:
        logging.disable(logging.NOTSET)
        if os.path.exists(tmp):
            os.remove(tmp)
    return out


def require_onnxruntime() -> Any:
    """The onnxruntime module; ImportError naming the package when it is not installed."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            "backend='onnxruntime' needs the onnxruntime package: pip install onnxruntime "
            "(a dependency of ampczoo; reinstall ampczoo to get it)"
        ) from exc
    return onnxruntime


def inference_session(path: str | Path, num_threads: int = 1) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU with ``num_threads`` intra-op threads
    (one inter-op thread, sequential execution). ImportError naming the package when
    onnxruntime is not installed."""
    ort = require_onnxruntime()
    if not isinstance(num_threads, int) or isinstance(num_threads, bool) or num_threads <= 0:
        raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxRuntimePolicy:
    """A loaded policy whose network runs in ONNX Runtime: ``act`` / ``reset`` behave as the
    torch policy's (same Python-side state, same seeded noise); every other attribute
    (``config``, ``obs_dim``, ``name`` ...) is the torch policy's.

    policy: the torch policy (CPU); onnx_path: its exported graph."""

    backend = "onnxruntime"

    def __init__(self, policy: Any, onnx_path: str | Path, num_threads: int = 1):
        self.policy = policy
        self.onnx_path = Path(onnx_path)
        self.num_threads = num_threads
        self.session = inference_session(onnx_path, num_threads)
        self._output_names = [o.name for o in self.session.get_outputs()]

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the graph on named float32 inputs -> outputs in the graph's order."""
        feeds = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}
        return list(self.session.run(self._output_names, feeds))

    def act(self, obs: Any, **kwargs: Any) -> np.ndarray:
        """As the torch policy's ``act``, with the graph run by ONNX Runtime."""
        return np.asarray(self.policy.act_onnx(self.run, obs, **kwargs))

    def reset(self, seed: int | None = None) -> None:
        """As the torch policy's ``reset``."""
        self.policy.reset(seed)

    def _act_chunk(self, obs: Any, **kwargs: Any) -> np.ndarray:
        """As the torch policy's ``act_chunk`` (the whole chunk), with the graph run by ONNX
        Runtime (the chunk refiners take their base's chunk from it)."""
        return np.asarray(self.policy.act_chunk_onnx(self.run, obs, **kwargs))

    def __getattr__(self, name: str) -> Any:
        if name == "policy":  # not yet set (during unpickling / __init__ errors)
            raise AttributeError(name)
        if name == "act_chunk" and hasattr(self.policy, "act_chunk"):
            # never the torch network's chunk behind an onnxruntime policy's back
            return self._act_chunk if hasattr(self.policy, "act_chunk_onnx") else self._no_chunk
        return getattr(self.policy, name)

    def _no_chunk(self, obs: Any, **kwargs: Any) -> np.ndarray:
        raise ValueError(
            f"{type(self.policy).__name__} has no act_chunk through its ONNX graph "
            "(act_chunk_onnx); load it with backend='torch' for its chunks"
        )

    def __repr__(self) -> str:
        return f"OnnxRuntimePolicy({self.policy.name!r}, {self.onnx_path.name})"


class GraphModule(nn.Module):
    """The module :func:`export_onnx` traces: ``fn(*inputs)`` with ``owner``'s parameters and
    buffers as the graph's weights (owner is a submodule, so they are named in the file)."""

    def __init__(self, owner: nn.Module, fn: Callable[..., Any]):
        super().__init__()
        self.owner = owner
        self.fn = fn

    def forward(self, *inputs: torch.Tensor) -> Any:
        return self.fn(*inputs)
