"""Registry of policy types (lazy string entry points) and the index of the shipped zoo.

``make_policy("dampc", hidden_dim=256)`` builds a fresh policy from config overrides;
``load_policy("runs/x/best")`` or ``load_policy("<zoo name>")`` loads a saved one;
``list_policies(env="DAMPC-KukaTrack-v0")`` names the checkpoints shipped under
``ampczoo/zoo/<name>/`` (optionally those made for one env) and :func:`zoo_card` reads what a
checkpoint's ``card.json`` records about it (env, data, training command, measured result).

Reading this file tells you every policy type; torch and the policy modules load only when
used. A new type is one class plus one line here (or a :func:`register_policy` call).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

#: policy type -> "module:Class". The class has ``config_class`` (a frozen dataclass) and is
#: built as ``Class(config_class(**overrides))``.
POLICY_TYPES: dict[str, str] = {
    # experts
    "mpc": "ampczoo.experts.mpc:MPCExpert",
    "ikmpc": "ampczoo.experts.ikmpc:IKMPCExpert",
    # KUKA approximate MPC
    "lsm": "ampczoo.policies.lsm:LSMPolicy",
    "dampc": "ampczoo.policies.dampc:DAMPCPolicy",
    "leto": "ampczoo.policies.leto:LeTOPolicy",
    # 3-DOF history policies
    "ffn": "ampczoo.policies.ffn:FFNPolicy",
    "lstm": "ampczoo.policies.recurrent:RecurrentPolicy",
    "gru": "ampczoo.policies.recurrent:RecurrentPolicy",
    "transformer": "ampczoo.policies.transformer:TransformerPolicy",
    # chunk refiners (wrap any base policy)
    "diffog": "ampczoo.policies.diffog:DiffOG",
    "residual": "ampczoo.policies.residual:ResidualRefiner",
}
#: Folder of the shipped checkpoints.
ZOO_DIR = Path(__file__).resolve().parent.parent / "zoo"
#: Per-checkpoint metadata file of the zoo (next to config.json + model.safetensors).
CARD_NAME = "card.json"


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
def list_policies(env: str | None = None) -> list[str]:
    """Names of the checkpoints shipped in the package (folders of ``ampczoo/zoo/`` with a
    config.json); with ``env``, only those whose card names that env id."""
    if not ZOO_DIR.is_dir():
        return []
    names = sorted(p.name for p in ZOO_DIR.iterdir() if (p / "config.json").is_file())
    if env is None:
        return names
    return [n for n in names if zoo_card(n).get("env") == env]


def zoo_card(name: str) -> dict[str, Any]:
    """The metadata of zoo checkpoint ``name`` (``card.json``; {} when it has none): ``env``
    (env id), ``model`` (policy type), ``base`` (refiners: the zoo base they were trained on),
    ``data``, ``command``, ``result`` (success rate, CI, episodes, results page)."""
    path = ZOO_DIR / name
    if not (path / "config.json").is_file():
        raise ValueError(f"{name!r} is not a zoo policy (zoo: {list_policies() or 'empty'})")
    file = path / CARD_NAME
    if not file.is_file():
        return {}
    try:
        card = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{file}: corrupt JSON ({exc})") from exc
    if not isinstance(card, dict):
        raise ValueError(f"{file}: expected a JSON object")
    return card


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


def load_policy(path_or_name: str | Path, device: Any = None) -> Any:
    """Load a checkpoint folder (config.json + model.safetensors) or a zoo checkpoint by
    name; the class is chosen by the config's ``type``."""
    from ampczoo.core.checkpoint import read_config

    path = resolve_checkpoint(path_or_name)
    policy_type = read_config(path)["type"]
    cls = policy_class(policy_type)
    if not hasattr(cls, "from_pretrained"):
        raise ValueError(f"policy type {policy_type!r} cannot be loaded from a checkpoint")
    return cls.from_pretrained(path, device=device)
