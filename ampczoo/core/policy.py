"""The one small protocol every policy in the zoo follows (experts included).

``act(obs) -> action`` and ``reset(seed=None)``. Trainable policies add
``save_pretrained`` / ``from_pretrained`` (config.json + model.safetensors); see the
approximate-MPC issue.

Policies that act on a plan (an input sequence of which ``act`` applies the first input)
may also expose that plan: ``planned_inputs() -> (inputs (N, nu), dt [s]) | None``, see
:class:`PlansInputs` (DAMPC, the chunk filters and refiners, the MPC expert). ``ampczoo
eval`` draws it in its video.
"""

from __future__ import annotations

import abc
from typing import Any, Protocol, runtime_checkable

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


@runtime_checkable
class PlansInputs(Protocol):
    """A policy that exposes the plan of its last ``act``."""

    def planned_inputs(self) -> tuple[np.ndarray, float] | None:
        """The input sequence (N, nu) chosen at the last single-observation ``act`` (u_0
        first, the action it returned) and its time step dt [s]; None before the first
        ``act`` after ``reset`` or without a plan (e.g. a failed solve). A copy: computes
        nothing, draws no random numbers and leaves the policy's state (and therefore its
        next actions) unchanged."""


def planned_inputs(policy: Any) -> tuple[np.ndarray, float] | None:
    """``policy.planned_inputs()`` for a :class:`PlansInputs` policy, else None."""
    return policy.planned_inputs() if isinstance(policy, PlansInputs) else None
