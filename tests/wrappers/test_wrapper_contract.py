"""The wrapper contract over every registered wrapper (``ampczoo.wrappers.WRAPPERS``) and
every refiner policy type (types of the policy registry with ``wrap``): a small working
instance from the wrapper's own ``example_kwargs``, and ValueError at construction for

* a base that is not a policy / callable (policy wrappers) or not a suitable env (env
  wrappers);
* zero, negative, NaN and infinite values of every positive parameter of ``example_kwargs``;
* per-dimension parameters with one value too many for the base's action size;
* the wrapper's own ``invalid_kwargs`` (declared next to it);
* refiners: non-positive or non-finite ``bound`` (config and per call).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import ampczoo.wrappers
from ampczoo.core.checkpoint import check_obs
from ampczoo.core.registry import policy_class, policy_types
from ampczoo.policies.diffog import DiffOG, DiffOGConfig
from ampczoo.wrappers import WRAPPERS, ClippingPolicy, register_wrapper, wrapper_names
from ampczoo.wrappers.chunk import ChunkFilterPolicy, check_positive

OBS_DIM, ACTION_DIM, CHUNK_LEN = 4, 3, 5


class ChunkBase:
    """A tiny deterministic chunk policy: obs (4,) -> chunk (5, 3)."""

    obs_dim, action_dim = OBS_DIM, ACTION_DIM

    def __init__(self, action_dim: int = ACTION_DIM):
        self.action_dim = action_dim
        rng = np.random.default_rng(0)
        self.weights = rng.normal(size=(CHUNK_LEN * action_dim, OBS_DIM))

    def act_chunk(self, obs: Any) -> np.ndarray:
        arr, _ = check_obs(obs, OBS_DIM)
        return np.tanh(self.weights @ arr[0].astype(np.float64)).reshape(CHUNK_LEN, -1)

    def reset(self, seed: int | None = None) -> None:
        """Stateless."""


class BoxEnv(gym.Env):
    """Random walk: obs (6,), action (3,)."""

    def __init__(self):
        self.observation_space = spaces.Box(-10.0, 10.0, (6,), np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float64)
        self._obs = np.zeros(6)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._obs = self.np_random.uniform(-1, 1, 6)
        return self._obs.copy(), {}

    def step(self, action):
        self._obs[:ACTION_DIM] += 0.1 * np.asarray(action, dtype=np.float64)
        return self._obs.copy(), 0.0, False, False, {}


class DiscreteEnv(gym.Env):
    """Neither a Box observation nor a Box action: no continuous wrapper fits."""

    observation_space = spaces.Discrete(4)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return 0, {}

    def step(self, action):
        return 0, 0.0, False, False, {}


# ----------------------------------------------------------------- building blocks
def is_env_wrapper(cls: type) -> bool:
    return issubclass(cls, gym.Wrapper)


def target(cls: type) -> Any:
    """What the wrapper wraps: a BoxEnv (gymnasium wrappers) or a ChunkBase."""
    return BoxEnv() if is_env_wrapper(cls) else ChunkBase()


def bad_targets(cls: type) -> dict[str, Any]:
    common = {"int": 42, "str": "policy", "object": object(), "None": None}
    if is_env_wrapper(cls):
        return {**common, "policy": ChunkBase(), "discrete env": DiscreteEnv()}
    return {**common, "env": BoxEnv()}


def _positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def invalid_cases(cls: type) -> dict[str, dict[str, Any]]:
    """Argument overrides the constructor must refuse: derived from ``example_kwargs``
    (positive parameters at 0, -1, NaN, inf; per-dimension parameters with a value too
    many) plus the wrapper's own ``invalid_kwargs``."""
    cases: dict[str, dict[str, Any]] = {}
    for name, value in cls.example_kwargs.items():
        if _positive_number(value):
            for bad in (0, -1, float("nan"), float("inf")):
                cases[f"{name}={bad}"] = {name: bad}
    for name in cls.per_dimension_parameters:
        if name in cls.example_kwargs:
            vector = np.full(ACTION_DIM + 1, cls.example_kwargs[name])
            cases[f"{name} with {ACTION_DIM + 1} values"] = {name: vector}
    for i, kwargs in enumerate(cls.invalid_kwargs):
        cases[f"declared {i}: {kwargs}"] = kwargs
    return cases


_TARGET: Any = object()


def build(cls: type, wrapped: Any = _TARGET, **overrides: Any) -> Any:
    """``cls(wrapped, **example_kwargs, **overrides)``; wrapped defaults to :func:`target`."""
    wrapped = target(cls) if wrapped is _TARGET else wrapped
    return cls(wrapped, **{**cls.example_kwargs, **overrides})


# ----------------------------------------------------------------- the checks
def check_example_works(name: str) -> None:
    """The example instance wraps and runs."""
    cls = WRAPPERS[name]
    wrapper = build(cls)
    if is_env_wrapper(cls):
        obs, _ = wrapper.reset(seed=0)
        assert wrapper.observation_space.contains(obs)
        wrapper.action_space.seed(0)
        obs, *_ = wrapper.step(wrapper.action_space.sample())
        assert wrapper.observation_space.contains(obs)
    else:
        wrapper.reset(seed=0)
        obs = np.random.default_rng(0).normal(size=OBS_DIM)
        action = wrapper.act(obs)
        assert action.shape == (ACTION_DIM,) and action.dtype == np.float64
        assert np.all(np.isfinite(action))


def check_bad_target_refused(name: str) -> None:
    cls = WRAPPERS[name]
    for what, bad in bad_targets(cls).items():
        with pytest.raises(ValueError):
            build(cls, bad)
            pytest.fail(f"{name} accepted a {what} to wrap")


def check_invalid_parameters_refused(name: str) -> None:
    cls = WRAPPERS[name]
    cases = invalid_cases(cls)
    assert cases, f"{name}: no invalid cases (declare example_kwargs / invalid_kwargs)"
    for what, overrides in cases.items():
        with pytest.raises(ValueError):
            build(cls, **overrides)
            pytest.fail(f"{name} accepted {what}")


CHECKS = {
    "example_works": check_example_works,
    "bad_target_refused": check_bad_target_refused,
    "invalid_parameters_refused": check_invalid_parameters_refused,
}


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("name", wrapper_names())
def test_registered_wrapper_keeps_the_contract(name, check):
    CHECKS[check](name)


def test_the_bad_inputs_of_the_issue_are_refused():
    with pytest.raises(ValueError, match="max_delta must be > 0"):
        ClippingPolicy(ChunkBase(), max_delta=-1.0)
    with pytest.raises(ValueError, match="base"):
        DiffOG.wrap(42, DiffOGConfig())


def test_bounds_of_a_plain_callable_are_checked_at_its_first_act():
    """A callable declares no action size: a bound vector of the wrong length fails at the
    first act (ValueError), not later."""
    pol = ClippingPolicy(ChunkBase().act_chunk, max_delta=np.full(ACTION_DIM + 1, 0.1))
    with pytest.raises(ValueError, match="broadcast"):
        pol.act(np.zeros(OBS_DIM))


# ----------------------------------------------------------------- refiners
REFINER_TYPES = [t for t in policy_types() if hasattr(policy_class(t), "wrap")]


@pytest.mark.parametrize("policy_type", REFINER_TYPES)
def test_refiner_bounds_are_checked(policy_type):
    """``bound`` (the per-step change bound) must be finite and > 0, in the config and per
    call; a per-call vector must fit the constrained dimensions. (A bad base and
    mismatching action dims: tests/core/test_policy_contract.py.)"""
    cls = policy_class(policy_type)
    config = dataclasses.replace(cls.example_config(), action_dim=ACTION_DIM, obs_dim=OBS_DIM)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="bound"):
            dataclasses.replace(config, bound=bad)
    policy = cls.wrap(ChunkBase(), config)
    obs = np.zeros(OBS_DIM)
    for bad in (-1.0, 0.0, float("nan"), np.full(ACTION_DIM + 1, 0.1)):
        with pytest.raises(ValueError):
            policy.act(obs, bound=bad)
    assert policy.act(obs, bound=0.2).shape == (ACTION_DIM,)


# ----------------------------------------------------------------- a wrapper added later
class ScalePolicy(ChunkFilterPolicy):
    """Multiplies the base's chunk by ``gain`` (> 0)."""

    name = "toy-scale"
    example_kwargs: ClassVar[dict[str, Any]] = {"gain": 0.5}
    invalid_kwargs: ClassVar[tuple[dict[str, Any], ...]] = ({"gain": "half"},)

    def __init__(self, base: Any, gain: float):
        super().__init__(base)
        check_positive("gain", gain)
        self.gain = gain

    def refine(self, chunk, prev_action, **kwargs):
        return self.gain * np.asarray(chunk)


class UncheckedScalePolicy(ScalePolicy):
    """Broken: accepts any gain."""

    def __init__(self, base: Any, gain: float):
        ChunkFilterPolicy.__init__(self, base)
        self.gain = gain


def test_wrapper_registered_later_keeps_the_contract(monkeypatch):
    monkeypatch.setitem(WRAPPERS, "toy-scale", ScalePolicy)
    register_wrapper("toy-scale", ScalePolicy)  # same class again: accepted
    assert "toy-scale" in ampczoo.wrappers.wrapper_names()
    for check in CHECKS.values():
        check("toy-scale")
    with pytest.raises(ValueError, match="already registered"):
        register_wrapper("toy-scale", UncheckedScalePolicy)


def test_wrapper_accepting_a_negative_gain_breaks_the_contract(monkeypatch):
    monkeypatch.setitem(WRAPPERS, "toy-unchecked", UncheckedScalePolicy)
    check_example_works("toy-unchecked")
    with pytest.raises(pytest.fail.Exception, match="accepted gain="):
        check_invalid_parameters_refused("toy-unchecked")
