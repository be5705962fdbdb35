"""Registry of policy types (lazy string entry points) and of the checkpoints in the zoo.

``make_policy("dampc", hidden_dim=256)`` builds a fresh policy from config overrides;
``load_policy("runs/x/best")`` or ``load_policy("<zoo name>")`` loads a saved one;
``list_policies()`` names the checkpoints shipped under ``ampczoo/zoo/<name>/``. Reading
this file tells you every policy type; torch and the policy modules load only when used.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

#: policy type -> "module:attribute" of its class (or of a factory taking **overrides).
POLICY_TYPES: dict[str, str] = {
    "lsm": "ampczoo.policies.lsm:LSMPolicy",
    "dampc": "ampczoo.policies.dampc:DAMPCPolicy",
    "mpc": "ampczoo.policies.registry:_make_mpc",
    "diffog": "ampczoo.policies.diffog:DiffOG",
    "residual": "ampczoo.policies.residual:ResidualRefiner",
    "leto": "ampczoo.policies.leto:LeTOPolicy",
    "ffn": "ampczoo.policies.ffn:FFNPolicy",
    "lstm": "ampczoo.policies.lstm:LSTMPolicy",
    "gru": "ampczoo.policies.gru:GRUPolicy",
    "transformer": "ampczoo.policies.transformer:TransformerPolicy",
    "ikmpc": "ampczoo.policies.registry:_make_ikmpc",
}
#: Folder of the shipped checkpoints.
ZOO_DIR = Path(__file__).resolve().parent.parent / "zoo"


def policy_types() -> list[str]:
    """Names accepted by :func:`make_policy`."""
    return sorted(POLICY_TYPES)


def policy_class(policy_type: str) -> Any:
    """The class (or factory) registered under ``policy_type``."""
    if policy_type not in POLICY_TYPES:
        raise ValueError(f"unknown policy type {policy_type!r}; choose from {policy_types()}")
    module, attr = POLICY_TYPES[policy_type].split(":")
    return getattr(importlib.import_module(module), attr)


def _make_mpc(**overrides: Any) -> Any:
    from ampczoo.experts.mpc import MPCConfig, MPCExpert

    return MPCExpert(MPCConfig(**overrides))


def _make_ikmpc(**overrides: Any) -> Any:
    from ampczoo.experts.ikmpc import IKMPCConfig, IKMPCExpert

    return IKMPCExpert(IKMPCConfig(**overrides))


def make_policy(policy_type: str, **config_overrides: Any) -> Any:
    """A fresh (untrained) policy: the type's config with ``config_overrides`` applied
    (unknown fields raise TypeError, bad values ValueError)."""
    cls = policy_class(policy_type)
    config_class = getattr(cls, "config_class", None)
    if config_class is None:
        return cls(**config_overrides)
    return cls(config_class(**config_overrides))


def list_policies() -> list[str]:
    """Names of the checkpoints shipped in the package (folders of ampczoo/zoo/ with a
    config.json); empty when none are shipped."""
    if not ZOO_DIR.is_dir():
        return []
    return sorted(p.name for p in ZOO_DIR.iterdir() if (p / "config.json").is_file())


def load_policy(path_or_name: str | Path, device: Any = None) -> Any:
    """Load a checkpoint folder (config.json + model.safetensors) or a zoo checkpoint by
    name; the class is chosen by the config's ``type``."""
    from ampczoo.policies.pretrained import read_config

    path = Path(path_or_name)
    if not path.exists():
        if str(path_or_name) in list_policies():
            path = ZOO_DIR / str(path_or_name)
        else:
            raise FileNotFoundError(f"{path_or_name!r} is neither a checkpoint folder nor a zoo "
                                    f"policy (zoo: {list_policies() or 'empty'})")
    policy_type = read_config(path)["type"]
    cls = policy_class(policy_type)
    if not hasattr(cls, "from_pretrained"):
        raise ValueError(f"policy type {policy_type!r} cannot be loaded from a checkpoint")
    return cls.from_pretrained(path, device=device)
