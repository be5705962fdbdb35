"""Registry of policy types (lazy string entry points) and the index of the shipped zoo.

``make_policy("dampc", hidden_dim=256)`` builds a fresh policy from config overrides;
``load_policy("runs/x/best")`` or ``load_policy("<zoo name>")`` loads a saved one.

The zoo: every folder ``ampczoo/zoo/<name>/`` holds ``config.json`` + ``model.safetensors`` +
``card.json``, and the cards are its only index. ``list_policies(env="DAMPC-KukaTrack-v0")``
names the checkpoints made for one env (``model="dampc"``: of one policy type) and
:func:`zoo_card` returns what a checkpoint's card records (schema and validation:
:mod:`ampczoo.core.card`)::

    env         registered env id it was trained for        model   policy type (= config.json's)
    base        refiners: the zoo checkpoint they run on    env_kwargs  gym.make kwargs (control_dt)
    data        {path, command, episodes, samples}          command  the command that trained it
    date        training date                                selection  "last" | "best"
    result      {success_rate [%], ci95 [lo, hi], episodes, date, benchmark, page, row,
                 criterion, base, note} or null             size_bytes, parameters, demo, note

The demo, the benchmarks' default checkpoints and the golden-action test
(:mod:`ampczoo.benchmarks.golden`) read this index, so shipping a checkpoint is one folder
with its card. Reading this file tells you every policy type; torch and the policy modules
load only when used. A new type is one class plus one line here (or a
:func:`register_policy` call).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ampczoo.core.card import CARD_NAME, read_card

#: policy type -> "module:Class". The class has ``config_class`` (a frozen dataclass) and is
#: built as ``Class(config_class(**overrides))``.
POLICY_TYPES: dict[str, str] = {
    # experts
    "mpc": "ampczoo.experts.mpc:MPCExpert",
    "ikmpc": "ampczoo.experts.ikmpc:IKMPCExpert",
    "scripted": "ampczoo.experts.scripted:ScriptedExpert",
    # KUKA approximate MPC
    "lsm": "ampczoo.policies.lsm:LSMPolicy",
    "dampc": "ampczoo.policies.dampc:DAMPCPolicy",
    "leto": "ampczoo.policies.leto:LeTOPolicy",
    # 3-DOF history policies
    "ffn": "ampczoo.policies.ffn:FFNPolicy",
    "lstm": "ampczoo.policies.recurrent:RecurrentPolicy",
    "gru": "ampczoo.policies.recurrent:RecurrentPolicy",
    "transformer": "ampczoo.policies.transformer:TransformerPolicy",
    # manipulation
    "diffusion_policy": "ampczoo.policies.diffusion_policy:DiffusionPolicy",
    # chunk refiners (wrap any base policy)
    "diffog": "ampczoo.policies.diffog:DiffOG",
    "residual": "ampczoo.policies.residual:ResidualRefiner",
    # RL fine-tuned (frozen base + learned residual)
    "residual_rl": "ampczoo.policies.residual_rl:ResidualRLPolicy",
}
#: Folder of the shipped checkpoints.
ZOO_DIR = Path(__file__).resolve().parent.parent / "zoo"
#: zoo folders of IK models (ampczoo.ik.IKDiffuser), not policies: left out of the policy index
IK_ZOO_PREFIX = "ikdiffuser-"


def register_policy(policy_type: str, entry_point: str | type) -> None:
    """Add a policy type: ``entry_point`` is "module:Class" or the class itself. Re-registering
    a name with another entry point is an error (no silent override)."""
    if not isinstance(policy_type, str) or not policy_type:
        raise ValueError(f"policy type must be a non-empty string, got {policy_type!r}")
    if isinstance(entry_point, type):
        entry_point = f"{entry_point.__module__}:{entry_point.__qualname__}"
    if ":" not in entry_point:
        raise ValueError(f"entry point must be 'module:Class', got {entry_point!r}")
    if POLICY_TYPES.get(policy_type, entry_point) != entry_point:
        raise ValueError(
            f"policy type {policy_type!r} is already registered as {POLICY_TYPES[policy_type]!r}"
        )
    POLICY_TYPES[policy_type] = entry_point


def policy_types() -> list[str]:
    """Names accepted by :func:`make_policy` (and by ``ampczoo train``)."""
    return sorted(POLICY_TYPES)


def policy_class(policy_type: str) -> Any:
    """The class registered under ``policy_type``."""
    if policy_type not in POLICY_TYPES:
        raise ValueError(f"unknown policy type {policy_type!r}; choose from {policy_types()}")
    module, attr = POLICY_TYPES[policy_type].split(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def config_class(policy_type: str) -> Any:
    """The config dataclass of ``policy_type``."""
    return policy_class(policy_type).config_class


def make_config(policy_type: str, **overrides: Any) -> Any:
    """The config of ``policy_type`` with ``overrides`` applied (unknown fields raise
    TypeError, bad values ValueError). Its ``type`` field, where it has one, is set."""
    import dataclasses

    cfg_class = config_class(policy_type)
    if "type" in {f.name for f in dataclasses.fields(cfg_class)}:
        overrides = {**overrides, "type": policy_type}
    return cfg_class(**overrides)


def make_policy(policy_type: str, **config_overrides: Any) -> Any:
    """A fresh (untrained) policy: the type's config with ``config_overrides`` applied."""
    return policy_class(policy_type)(make_config(policy_type, **config_overrides))


# ----------------------------------------------------------------------------- the zoo
def list_policies(env: str | None = None, model: str | None = None) -> list[str]:
    """Names of the checkpoints shipped in the package (folders of ``ampczoo/zoo/`` with a
    config.json), sorted; with ``env`` only those whose card names that env id, with
    ``model`` only those of that policy type. An ``env`` that is not a registered Gymnasium
    env id or a ``model`` that is not a policy type raises ValueError (a registered env
    without zoo checkpoints gives [])."""
    if env is not None:
        _check_env_id(env)
    if model is not None and model not in POLICY_TYPES:
        raise ValueError(f"unknown policy type {model!r}; choose from {policy_types()}")
    names = _zoo_names()
    if env is not None:
        names = [n for n in names if zoo_card(n)["env"] == env]
    if model is not None:
        names = [n for n in names if zoo_card(n)["model"] == model]
    return names


def _zoo_names() -> list[str]:
    if not ZOO_DIR.is_dir():
        return []
    return sorted(
        p.name
        for p in ZOO_DIR.iterdir()
        if (p / "config.json").is_file() and not p.name.startswith(IK_ZOO_PREFIX)
    )


def zoo_card(name: str) -> dict[str, Any]:
    """The card of zoo checkpoint ``name`` (its ``card.json``; fields in the module docstring
    and :mod:`ampczoo.core.card`). ValueError when ``name`` is not shipped, has no card or
    its card is malformed: not the schema, an env id that is not registered, a model other
    than config.json's type, or a base that is not another shipped checkpoint of that env."""
    from ampczoo.core.checkpoint import read_config

    if name not in _zoo_names():
        raise ValueError(f"{name!r} is not a zoo policy (zoo: {_zoo_names() or 'empty'})")
    path = ZOO_DIR / name
    card = read_card(path)
    if card is None:
        raise ValueError(f"{path}: no {CARD_NAME} (every zoo checkpoint needs one)")
    where = f"{path / CARD_NAME}: malformed card"
    if card["env"] is None:
        raise ValueError(f"{where}: env must name a registered env id, got null")
    try:
        _check_env_id(card["env"])
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    config_type = read_config(path)["type"]
    if card["model"] != config_type:
        raise ValueError(f"{where}: model {card['model']!r} != config.json type {config_type!r}")
    if card["model"] not in POLICY_TYPES:
        raise ValueError(f"{where}: model {card['model']!r} is not a registered policy type")
    if "base" in card:
        _check_base(name, card, where)
    return card


def _check_base(name: str, card: dict[str, Any], where: str) -> None:
    """A refiner's base is another shipped checkpoint with a card of the same env."""
    base = card["base"]
    if base == name or base not in _zoo_names():
        raise ValueError(f"{where}: base {base!r} is not another zoo checkpoint")
    base_card = read_card(ZOO_DIR / base)
    if base_card is None or base_card.get("env") != card["env"]:
        raise ValueError(f"{where}: base {base!r} is not a zoo checkpoint of {card['env']!r}")


def _check_env_id(env: str) -> None:
    """ValueError unless ``env`` is a registered Gymnasium env id."""
    import gymnasium as gym

    if not isinstance(env, str) or env not in gym.registry:
        raise ValueError(f"{env!r} is not a registered Gymnasium env id (import ampczoo first)")


def resolve_checkpoint(path_or_name: str | Path) -> Path:
    """The folder of a checkpoint given as a path or a zoo name."""
    path = Path(path_or_name)
    if path.exists():
        return path
    if str(path_or_name) in list_policies():
        return ZOO_DIR / str(path_or_name)
    raise FileNotFoundError(
        f"{path_or_name!r} is neither a checkpoint folder nor a zoo "
        f"policy (zoo: {list_policies() or 'empty'})"
    )


def load_policy(
    path_or_name: str | Path,
    device: Any = None,
    backend: str = "torch",
    num_threads: int = 1,
) -> Any:
    """Load a checkpoint folder (config.json + model.safetensors) or a zoo checkpoint by
    name; the class is chosen by the config's ``type``.

    backend: "torch" (default) or "onnxruntime": the policy's inference graph (see
    :mod:`ampczoo.core.onnx`) runs in an ONNX Runtime session with ``num_threads`` intra-op
    threads on the CPU (``device`` must then be None or "cpu"); act()/reset() behave as the
    torch policy's. The ONNX file is exported on first use and cached by a hash of the
    checkpoint. ValueError for a type that cannot be exported (naming the reason),
    ImportError when onnxruntime is missing."""
    from ampczoo.core.checkpoint import read_config
    from ampczoo.core.onnx import check_backend

    check_backend(backend)
    path = resolve_checkpoint(path_or_name)
    policy_type = read_config(path)["type"]
    cls = policy_class(policy_type)
    if not hasattr(cls, "from_pretrained"):
        raise ValueError(f"policy type {policy_type!r} cannot be loaded from a checkpoint")
    if backend == "torch":
        return cls.from_pretrained(path, device=device)
    return _load_onnxruntime(cls, path, device, num_threads)


def _load_onnxruntime(cls: Any, path: Path, device: Any, num_threads: int) -> Any:
    """The checkpoint at ``path`` with its graph in ONNX Runtime (see :func:`load_policy`)."""
    import torch

    from ampczoo.core.onnx import OnnxRuntimePolicy, cached_onnx, require_onnxruntime

    if device is not None and torch.device(device).type != "cpu":
        raise ValueError(f"backend='onnxruntime' runs on the CPU; got device={device!r}")
    require_onnxruntime()
    policy = cls.from_pretrained(path, device="cpu")
    policy.onnx_graph()  # ValueError naming the reason, before anything is written
    return OnnxRuntimePolicy(policy, cached_onnx(policy, path), num_threads)
