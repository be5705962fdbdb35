"""The one small protocol every policy in the zoo follows (experts included).

``act(obs) -> action`` and ``reset(seed=None)``. Trainable policies add
``save_pretrained`` / ``from_pretrained`` (config.json + model.safetensors); see the
approximate-MPC issue.
"""

from __future__ import annotations

import abc

import numpy as np


def is_abstract(cls: type) -> bool:
    """Whether ``cls`` still has abstract methods. Works inside ``__init_subclass__``, where
    ``cls.__abstractmethods__`` is not set yet (ABCMeta sets it after the class is built)."""
    return any(getattr(getattr(cls, n, None), "__isabstractmethod__", False) for n in dir(cls))


class Policy(abc.ABC):
    """Base class: a policy maps a flat env observation to an action.

    Subclasses must set ``name`` (registry key) and implement :meth:`act` and :meth:`reset`.
    """

    name: str = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not is_abstract(cls) and not cls.name:
            raise TypeError(f"{cls.__name__} must define a non-empty class attribute `name`")

    @abc.abstractmethod
    def act(self, obs: np.ndarray) -> np.ndarray:
        """obs: (obs_dim,) flat env observation -> action: (action_dim,)."""

    @abc.abstractmethod
    def reset(self, seed: int | None = None) -> None:
        """Clear internal state (warm starts, previous actions, RNN memory); reseed if given."""
