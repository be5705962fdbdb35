"""Trainable policies: config dataclass + torch model, saved as config.json + safetensors.

A folder written by :meth:`PretrainedPolicy.save_pretrained` holds::

    config.json          {"type": <policy name>, <every config field>}
    model.safetensors    the module's state dict (weights AND normalisation buffers)

No pickle anywhere. :meth:`PretrainedPolicy.from_pretrained` refuses a folder whose config
names another policy type, has unknown fields, or whose tensors do not match the model built
from that config (missing/unexpected keys, shape or dtype mismatch), with a ValueError naming
the problem; a missing file raises FileNotFoundError.
"""

from __future__ import annotations

import abc
import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ampczoo.core.policy import Policy, is_abstract

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    """Base of every policy config. ``type`` names the policy (registry key); subclasses set
    its default and validate their fields in ``__post_init__`` (ValueError)."""

    type: str = ""
    """registry name of the policy type (the key of ``POLICY_TYPES``; stored in config.json,
    it picks the class a checkpoint loads into)"""

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict of all fields (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (no silently ignored typos)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown config fields {unknown}")
        kwargs: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
        }
        return cls(**kwargs)


def default_device() -> torch.device:
    """CUDA when present, CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_obs(obs: Any, obs_dim: int) -> tuple[np.ndarray, bool]:
    """Validate a flat observation (obs_dim,) or a batch (B, obs_dim).

    Returns (obs as float32 (B, obs_dim), batched). Raises ValueError on a wrong shape or
    NaN/inf (no silent clipping)."""
    arr = np.asarray(obs, dtype=np.float32)
    if arr.ndim not in (1, 2) or arr.shape[-1] != obs_dim or arr.size == 0:
        raise ValueError(
            f"observation must have shape ({obs_dim},) or (B, {obs_dim}), got {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("observation contains NaN/inf")
    return (arr if arr.ndim == 2 else arr[None]), arr.ndim == 2


class PretrainedPolicy(Policy, nn.Module):
    """A policy that is a torch module with a config; subclasses set ``name`` and
    ``config_class`` and implement :meth:`loss`, :meth:`act` and :meth:`reset`.

    Observations are the env's flat observation; normalisation lives inside the module as
    buffers (see :class:`~ampczoo.nn.normalization.Normalizer`)."""

    config_class: ClassVar[type[PolicyConfig]] = PolicyConfig
    #: config types (registry names) this class builds; empty = just ``name``. One class may
    #: serve several registry names (the recurrent policy: ``lstm`` and ``gru``).
    types: ClassVar[tuple[str, ...]] = ()
    #: EMA decay the training loop uses unless told otherwise (0 = no EMA).
    default_ema_decay: ClassVar[float] = 0.0
    #: ``act`` also takes a batch (B, obs_dim) -> (B, action_dim) (False: one observation
    #: at a time, e.g. recurrent deployment; a batch is then a ValueError).
    batched: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if not is_abstract(cls) and cls.config_class is PolicyConfig:
            raise TypeError(f"{cls.__name__} must define `config_class`")

    def __init__(self, config: PolicyConfig):
        nn.Module.__init__(self)
        if not isinstance(config, self.config_class):
            raise TypeError(
                f"{type(self).__name__} needs a {self.config_class.__name__}, "
                f"got {type(config).__name__}"
            )
        if config.type not in self.accepted_types():
            raise ValueError(f"config type {config.type!r} is not {self.name!r}")
        self.config = config

    @classmethod
    def example_config(cls) -> PolicyConfig:
        """The smallest config of this policy, for tests and docs (tiny networks where the
        defaults are big; default: the config class's defaults). The contract tests build
        every registered type from it."""
        return cls.config_class()

    @property
    def obs_dim(self) -> int:
        """Size of the flat observation ``act`` takes."""
        return int(self.config.obs_dim)  # type: ignore[attr-defined]

    @property
    def action_dim(self) -> int:
        """Size of the action ``act`` returns."""
        return int(self.config.action_dim)  # type: ignore[attr-defined]

    @classmethod
    def accepted_types(cls) -> tuple[str, ...]:
        """Config ``type`` values this class builds and loads."""
        return cls.types or (cls.name,)

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return next(self.parameters()).device

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @abc.abstractmethod
    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """batch: {"obs": (B, obs_dim), "u_seq": (B, N, 7)} raw (unnormalised) tensors on the
        policy's device -> (scalar loss, info dict of floats)."""

    # ------------------------------------------------------------------ ONNX
    #: why this type has no ONNX graph (the ValueError of :meth:`onnx_graph`); a type that
    #: can be exported overrides :meth:`onnx_graph` and :meth:`act_onnx` instead.
    onnx_unsupported: ClassVar[str] = "no ONNX graph is defined for this policy type yet"

    def onnx_graph(self) -> Any:
        """The inference path as an :class:`~ampczoo.core.onnx.OnnxGraph` (module, example
        inputs, input/output names, dynamic axes) for :meth:`export_onnx`. ValueError naming
        the reason for a type that cannot be exported."""
        raise ValueError(
            f"{self.name!r} policies cannot be exported to ONNX: {self.onnx_unsupported}"
        )

    def act_onnx(self, run: Any, obs: Any, **kwargs: Any) -> np.ndarray:
        """``act`` with the graph of :meth:`onnx_graph` run by ``run`` (inputs {name: float32
        array} -> outputs); used by ``load_policy(..., backend="onnxruntime")``."""
        raise ValueError(
            f"{self.name!r} policies cannot be exported to ONNX: {self.onnx_unsupported}"
        )

    def export_onnx(self, path: str | Path) -> Path:
        """Write the inference graph (:meth:`onnx_graph`) to the ONNX file ``path``, traced
        on the CPU in eval mode (a policy on another device is copied; this one's device and
        training mode are left as they are). ValueError naming the reason for a type that
        cannot be exported."""
        from ampczoo.core.onnx import export_onnx

        self.onnx_graph()  # the reason, before copying anything
        if self.device.type != "cpu":
            return export_onnx(_cpu_copy(self), path)
        training = self.training
        try:
            return export_onnx(self.eval(), path)
        finally:
            self.train(training)

    def set_normalization(self, stats: dict[str, dict[str, np.ndarray]]) -> None:
        """Store train-split statistics (``DemonstrationDataset.normalization_stats()``)."""
        mode = getattr(self.config, "action_normalization", "element_zscore")
        normalizer: Any = self.normalizer
        normalizer.set_stats(stats, mode)

    # ------------------------------------------------------------------ save / load
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config.json + model.safetensors into ``directory`` (created)."""
        from safetensors.torch import save_file

        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(path / WEIGHTS_NAME), metadata={"type": self.name})
        return path

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        device: str | torch.device | None = None,
    ) -> PretrainedPolicy:
        """Load a folder written by :meth:`save_pretrained` (see the module docstring for
        what is refused). device: None = CUDA when present, else CPU."""
        path = Path(directory)
        config = read_config(path)
        if config.get("type") not in cls.accepted_types():
            raise ValueError(
                f"{path}: checkpoint is a {config.get('type')!r} policy, not {cls.name!r}"
            )
        policy = cls(cls.config_class.from_dict(config))
        policy.load_state_dict(read_weights(path, policy.state_dict()))
        return policy.to(device or default_device()).eval()


def _cpu_copy(policy: PretrainedPolicy) -> PretrainedPolicy:
    """A deep copy of ``policy`` on the CPU in eval mode (for tracing)."""
    import copy

    return copy.deepcopy(policy).cpu().eval()


def read_config(path: Path) -> dict[str, Any]:
    """The dict in ``path/config.json``; FileNotFoundError / ValueError when absent/corrupt."""
    file = path / CONFIG_NAME
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no {CONFIG_NAME} (not a policy checkpoint folder)")
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{file}: corrupt JSON ({exc})") from exc
    if not isinstance(data, dict) or "type" not in data:
        raise ValueError(f"{file}: expected a JSON object with a 'type' field")
    return data


def read_weights(path: Path, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors of ``path/model.safetensors``, checked against ``expected`` (names, shapes,
    dtypes); ValueError listing every mismatch."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    file = path / WEIGHTS_NAME
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no {WEIGHTS_NAME}")
    try:
        tensors = load_file(str(file))
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise ValueError(f"{file}: corrupt safetensors file ({exc})") from exc
    problems = [f"missing {k}" for k in sorted(set(expected) - set(tensors))]
    problems += [f"unexpected {k}" for k in sorted(set(tensors) - set(expected))]
    for k in sorted(set(expected) & set(tensors)):
        want, got = expected[k], tensors[k]
        if want.shape != got.shape or want.dtype != got.dtype:
            problems.append(
                f"{k}: expected {tuple(want.shape)} {want.dtype}, "
                f"got {tuple(got.shape)} {got.dtype}"
            )
    if problems:
        raise ValueError(f"{file}: tensors do not match the config: " + "; ".join(problems))
    return tensors


def optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer state -> ({"optim.<param id>.<key>": tensor}, JSON-able rest)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict
) -> None:
    """Inverse of :func:`optimizer_to_flat`."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for pid, st in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(st)
    groups = [
        {k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]
    ]
    opt.load_state_dict({"state": state, "param_groups": groups})
