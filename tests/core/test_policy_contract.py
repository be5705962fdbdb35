"""The policy contract over every type of the registry (``policy_types()``), each built from
its class's ``example_config()`` (config defaults where a class has none), so a new type is
covered without new test code:

* ``act`` returns float64 (action_dim,) for one observation and (B, action_dim) for a batch
  where the type is ``batched`` (a batch is a ValueError otherwise);
* NaN/inf or mis-shaped observations raise ValueError and lose nothing; ``reset(seed)``
  makes the actions reproducible;
* checkpointable types: save_pretrained / load_policy round trip with equal weights and
  actions; checkpoints of another type, with mismatching tensors or corrupt files refused;
* refiners (types with ``wrap``) act behind a tiny base policy; a base that is not a
  policy or acts in other dimensions is refused by ``wrap`` right away.

A toy type registered inside the test is picked up by the same checks; broken toys fail.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from ampczoo.core import registry
from ampczoo.core.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    PolicyConfig,
    PretrainedPolicy,
    check_obs,
)
from ampczoo.core.registry import load_policy, policy_class, policy_types, register_policy
from ampczoo.envs import env_ids

#: actions of every policy in the zoo are float64 (the envs' action dtype)
ACTION_DTYPE = np.float64
#: exact up to solver / BLAS round-off
ATOL = 1e-9


# ----------------------------------------------------------------- building blocks
def example_config(policy_type: str) -> Any:
    """The type's ``example_config()`` (or its config defaults), ``type`` set to the name."""
    cls = policy_class(policy_type)
    factory = getattr(cls, "example_config", None)
    config = factory() if factory is not None else cls.config_class()
    fields = {f.name for f in dataclasses.fields(config)}
    if "type" in fields and config.type != policy_type:
        config = dataclasses.replace(config, type=policy_type)
    return config


def build(policy_type: str) -> Any:
    """A fresh policy of the example config (torch modules in eval mode)."""
    policy = policy_class(policy_type)(example_config(policy_type))
    return policy.eval() if isinstance(policy, nn.Module) else policy


def is_refiner(policy: Any) -> bool:
    return hasattr(type(policy), "wrap")


def is_checkpointable(policy_type: str) -> bool:
    return hasattr(policy_class(policy_type), "from_pretrained")


class LinearChunkBase:
    """A tiny deterministic base for refiners: obs (obs_dim,) -> chunk (T, action_dim) =
    tanh(W obs)."""

    def __init__(self, obs_dim: int, action_dim: int, chunk_len: int = 3, seed: int = 0):
        self.obs_dim, self.action_dim, self.chunk_len = obs_dim, action_dim, chunk_len
        rng = np.random.default_rng(seed)
        self.weights = rng.normal(scale=0.3, size=(chunk_len * action_dim, obs_dim))

    def act_chunk(self, obs: Any) -> np.ndarray:
        arr, batched = check_obs(obs, self.obs_dim)
        if batched:
            raise ValueError("one observation at a time")
        chunk = np.tanh(self.weights @ arr[0].astype(np.float64))
        return chunk.reshape(self.chunk_len, self.action_dim)

    def reset(self, seed: int | None = None) -> None:
        """Stateless."""


def runner(policy: Any) -> Any:
    """What acts: the policy itself, or a refiner behind a :class:`LinearChunkBase`."""
    if is_refiner(policy):
        base = LinearChunkBase(policy.obs_dim, policy.action_dim)
        return type(policy).wrap(base, policy)
    return policy


@functools.cache
def _env_observations(obs_dim: int, n: int) -> np.ndarray | None:
    for env_id in env_ids():
        env = gym.make(env_id)
        try:
            if env.observation_space.shape == (obs_dim,):
                return np.stack([env.reset(seed=seed)[0] for seed in range(n)])
        finally:
            env.close()
    return None


def observations(obs_dim: int, n: int = 3) -> np.ndarray:
    """(n, obs_dim): resets of the first registered env with this observation size (the
    observations the policy is made for), else standard normal draws."""
    obs = _env_observations(obs_dim, n)
    if obs is None:
        obs = np.random.default_rng(0).normal(size=(n, obs_dim))
    return obs.copy()


def bad_observations(obs: np.ndarray) -> dict[str, Any]:
    """Observations every policy refuses, from a valid one (obs_dim,)."""
    cases: dict[str, Any] = {}
    for name, value in (("nan", np.nan), ("+inf", np.inf), ("-inf", -np.inf)):
        bad = obs.copy()
        bad[0] = value
        cases[name] = bad
    cases["too short"] = obs[:-1]
    cases["too long"] = np.append(obs, 0.0)
    cases["extra axes"] = obs[None, None]
    cases["scalar"] = np.float64(obs[0])
    return cases


def act_sequence(policy: Any, obs: np.ndarray, bad: Any = None) -> list[np.ndarray]:
    """reset(seed=0), then act on obs[0] and obs[1]; ``bad`` observations are sent between
    the two (each must raise ValueError)."""
    policy.reset(seed=0)
    actions = [policy.act(obs[0])]
    for name, value in (bad or {}).items():
        with pytest.raises(ValueError):
            policy.act(value)
            pytest.fail(f"{name} observation accepted")
    actions.append(policy.act(obs[1]))
    return actions


def perturb(policy: Any, seed: int = 0) -> None:
    """Move every parameter away from its initial value (zero-initialised heads included)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def assert_same_actions(a: list[np.ndarray], b: list[np.ndarray], what: str) -> None:
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=ATOL, err_msg=what)


def edit_config(path: Path, **changes: Any) -> None:
    file = path / CONFIG_NAME
    data = json.loads(file.read_text())
    data.update(changes)
    file.write_text(json.dumps(data))


def assert_refused(policy_type: str, path: Path, error: type[Exception] = ValueError) -> None:
    """The type's class and load_policy both refuse the checkpoint folder."""
    with pytest.raises(error):
        policy_class(policy_type).from_pretrained(path, device="cpu")
    with pytest.raises(error):
        load_policy(path, device="cpu")


# ----------------------------------------------------------------- the checks
def check_act(policy_type: str, tmp_path: Path) -> None:
    """float64 (action_dim,) per observation; (B, action_dim) for a batch where batched."""
    policy = runner(build(policy_type))
    dim = policy.action_dim
    obs = observations(policy.obs_dim)
    for action in act_sequence(policy, obs):
        assert isinstance(action, np.ndarray), type(action)
        assert action.shape == (dim,) and action.dtype == ACTION_DTYPE, (action.shape, action.dtype)
        assert np.all(np.isfinite(action))
    policy.reset(seed=0)
    if getattr(policy, "batched", False):
        actions = policy.act(obs)
        assert actions.shape == (len(obs), dim) and actions.dtype == ACTION_DTYPE
        assert np.all(np.isfinite(actions))
    else:
        with pytest.raises(ValueError):
            policy.act(obs)


def check_bad_observations(policy_type: str, tmp_path: Path) -> None:
    """reset(seed) reproduces the actions; NaN/inf/mis-shaped observations raise ValueError
    and change nothing (the next action is the one without them)."""
    policy = runner(build(policy_type))
    obs = observations(policy.obs_dim)
    reference = act_sequence(policy, obs)
    assert_same_actions(reference, act_sequence(policy, obs), "reset(seed) not reproducible")
    after_bad = act_sequence(policy, obs, bad=bad_observations(obs[0]))
    assert_same_actions(reference, after_bad, "a refused observation changed the policy")


def check_round_trip(policy_type: str, tmp_path: Path) -> None:
    """save_pretrained -> load_policy gives the same class, config, tensors and actions."""
    if not is_checkpointable(policy_type):
        pytest.skip(f"{policy_type} has no checkpoints")
    policy = build(policy_type)
    perturb(policy)
    path = policy.save_pretrained(tmp_path / policy_type)
    loaded = load_policy(path, device="cpu")
    assert type(loaded) is type(policy) and loaded.config == policy.config
    want, got = policy.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key].cpu(), got[key].cpu()), key
    obs = observations(policy.obs_dim)
    a, b = act_sequence(runner(policy), obs), act_sequence(runner(loaded), obs)
    assert_same_actions(a, b, "loaded policy acts differently")


def _other_type(policy_type: str) -> str:
    accepted = policy_class(policy_type).accepted_types()
    return next(t for t in policy_types() if t not in accepted and is_checkpointable(t))


def check_other_type_refused(policy_type: str, tmp_path: Path) -> None:
    """A checkpoint of another type (saved by it, or relabelled) is refused."""
    if not is_checkpointable(policy_type):
        pytest.skip(f"{policy_type} has no checkpoints")
    other = _other_type(policy_type)
    foreign = build(other).save_pretrained(tmp_path / "foreign")
    with pytest.raises(ValueError, match="checkpoint is a"):
        policy_class(policy_type).from_pretrained(foreign, device="cpu")
    path = build(policy_type).save_pretrained(tmp_path / "relabelled")
    edit_config(path, type=other)
    with pytest.raises(ValueError, match="checkpoint is a"):
        policy_class(policy_type).from_pretrained(path, device="cpu")
    with pytest.raises(ValueError):
        load_policy(path, device="cpu")  # built as `other`: fields or tensors do not fit


def _shape_changing_field(policy: Any) -> tuple[str, int] | None:
    """A size field of the config whose increment still validates but changes the tensors."""
    config, cls = policy.config, type(policy)
    shapes = {k: tuple(v.shape) for k, v in policy.state_dict().items()}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        try:
            changed = cls(dataclasses.replace(config, **{f.name: value + 1}))
        except (ValueError, TypeError):
            continue
        if {k: tuple(v.shape) for k, v in changed.state_dict().items()} != shapes:
            return f.name, value + 1
    return None


def check_mismatching_tensors_refused(policy_type: str, tmp_path: Path) -> None:
    """A config.json whose sizes do not fit the tensors, a missing tensor and a tensor of
    another dtype are refused."""
    if not is_checkpointable(policy_type):
        pytest.skip(f"{policy_type} has no checkpoints")
    from safetensors.torch import load_file, save_file

    policy = build(policy_type)
    field = _shape_changing_field(policy)
    assert field is not None, "no size field of the example config changes the tensors"
    path = policy.save_pretrained(tmp_path / "resized")
    edit_config(path, **{field[0]: field[1]})
    with pytest.raises(ValueError, match="do not match"):
        policy_class(policy_type).from_pretrained(path, device="cpu")
    for name, edit in (
        ("missing", lambda t, k: t.pop(k)),
        ("dtype", lambda t, k: t.__setitem__(k, t[k].to(torch.float16))),
    ):
        path = policy.save_pretrained(tmp_path / name)
        tensors = load_file(str(path / WEIGHTS_NAME))
        key = next(k for k, v in tensors.items() if v.is_floating_point())
        edit(tensors, key)
        save_file(tensors, str(path / WEIGHTS_NAME))
        with pytest.raises(ValueError, match="do not match"):
            load_policy(path, device="cpu")


def check_corrupt_files_refused(policy_type: str, tmp_path: Path) -> None:
    """Corrupt or incomplete config.json / model.safetensors: ValueError (FileNotFoundError
    when missing), from the class and from load_policy."""
    if not is_checkpointable(policy_type):
        pytest.skip(f"{policy_type} has no checkpoints")
    saved = build(policy_type).save_pretrained(tmp_path / "saved")
    weights = (saved / WEIGHTS_NAME).read_bytes()
    cases: dict[str, Callable[[Path], None]] = {
        "config not JSON": lambda p: (p / CONFIG_NAME).write_text("{ not json"),
        "config a list": lambda p: (p / CONFIG_NAME).write_text("[1, 2]"),
        "config binary": lambda p: (p / CONFIG_NAME).write_bytes(b"\xff\xfe\x00"),
        "unknown field": lambda p: edit_config(p, no_such_field=1),
        "weights garbage": lambda p: (p / WEIGHTS_NAME).write_bytes(b"garbage" * 10),
        "weights truncated": lambda p: (p / WEIGHTS_NAME).write_bytes(weights[: len(weights) // 2]),
    }
    for name, corrupt in cases.items():
        path = tmp_path / name.replace(" ", "_")
        shutil.copytree(saved, path)
        corrupt(path)
        assert_refused(policy_type, path)
    for file in (CONFIG_NAME, WEIGHTS_NAME):
        path = tmp_path / f"no_{file}"
        shutil.copytree(saved, path)
        (path / file).unlink()
        assert_refused(policy_type, path, FileNotFoundError)


def check_refiner_wrap(policy_type: str, tmp_path: Path) -> None:
    """Refiners: ``wrap`` refuses a base that is not a policy, or acts in other dimensions,
    right away; a plain callable base of the wrong size fails at its first act."""
    refiner = build(policy_type)
    if not is_refiner(refiner):
        pytest.skip(f"{policy_type} is not a refiner")
    cls, config = type(refiner), refiner.config
    for base in (42, "lsm", None, object(), gym.make("ThreeDOF-Reach-v0")):
        with pytest.raises(ValueError, match="base"):
            cls.wrap(base, config)
    wrong = LinearChunkBase(refiner.obs_dim, refiner.action_dim + 1)
    with pytest.raises(ValueError, match="dimensions"):
        cls.wrap(wrong, config)
    wrapped = cls.wrap(wrong.act_chunk, config)  # a callable declares no size
    with pytest.raises(ValueError):
        wrapped.act(observations(refiner.obs_dim)[0])


CHECKS: dict[str, Callable[[str, Path], None]] = {
    "act": check_act,
    "bad_observations": check_bad_observations,
    "round_trip": check_round_trip,
    "other_type_refused": check_other_type_refused,
    "mismatching_tensors_refused": check_mismatching_tensors_refused,
    "corrupt_files_refused": check_corrupt_files_refused,
    "refiner_wrap": check_refiner_wrap,
}


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("policy_type", policy_types())
def test_registered_policy_type_keeps_the_contract(policy_type, check, tmp_path):
    CHECKS[check](policy_type, tmp_path)


def test_every_package_type_is_covered():
    assert {
        "mpc",
        "ikmpc",
        "lsm",
        "dampc",
        "leto",
        "ffn",
        "lstm",
        "gru",
        "transformer",
        "diffog",
        "residual",
    } <= set(policy_types())


def test_example_configs_are_small():
    """The examples are tiny (fast tests, readable docs): under 50 k parameters each."""
    for policy_type in policy_types():
        policy = build(policy_type)
        if isinstance(policy, nn.Module):
            assert sum(p.numel() for p in policy.parameters()) < 50_000, policy_type


# ----------------------------------------------------------------- toy types
@dataclasses.dataclass(frozen=True)
class ToyConfig(PolicyConfig):
    """obs_dim -> hidden_dim tanh -> action_dim."""

    type: str = "toy-contract"
    obs_dim: int = 3
    action_dim: int = 2
    hidden_dim: int = 4

    def __post_init__(self) -> None:
        for name in ("obs_dim", "action_dim", "hidden_dim"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")


class ToyPolicy(PretrainedPolicy):
    """A one-hidden-layer MLP, deterministic and batched."""

    name = "toy-contract"
    config_class = ToyConfig
    checks_observations = True

    def __init__(self, config: ToyConfig | None = None):
        super().__init__(config or ToyConfig())
        c = self.config
        self.net = nn.Sequential(
            nn.Linear(c.obs_dim, c.hidden_dim), nn.Tanh(), nn.Linear(c.hidden_dim, c.action_dim)
        )

    def loss(self, batch):
        loss = self.net(batch["obs"]).pow(2).mean()
        return loss, {"mse": float(loss.detach())}

    def reset(self, seed: int | None = None) -> None:
        """Stateless."""

    @torch.no_grad()
    def act(self, obs: Any) -> np.ndarray:
        if self.checks_observations:
            arr, batched = check_obs(obs, self.config.obs_dim)
        else:
            arr = np.atleast_2d(np.asarray(obs, dtype=np.float32))
            batched = np.ndim(obs) == 2
        out = self.net(torch.from_numpy(arr)).numpy().astype(np.float64)
        return out if batched else out[0]


class NaNAcceptingToyPolicy(ToyPolicy):
    """Broken: acts on any observation."""

    name = "toy-contract-nan"
    checks_observations = False

    def __init__(self, config: ToyConfig | None = None):
        super().__init__(config or ToyConfig(type="toy-contract-nan"))

    @classmethod
    def example_config(cls) -> ToyConfig:
        return ToyConfig(type="toy-contract-nan")


def _register(monkeypatch, cls: type) -> None:
    """register_policy, undone after the test (monkeypatch.setitem on POLICY_TYPES)."""
    monkeypatch.setitem(registry.POLICY_TYPES, cls.name, f"{cls.__module__}:{cls.__qualname__}")
    register_policy(cls.name, cls)  # the same entry point: accepted, nothing changes


def test_toy_type_registered_later_keeps_the_contract(monkeypatch, tmp_path):
    _register(monkeypatch, ToyPolicy)
    assert "toy-contract" in policy_types()
    for name, check in CHECKS.items():
        if name == "refiner_wrap":
            continue  # not a refiner
        check("toy-contract", tmp_path / name)


def test_toy_type_accepting_nan_breaks_the_contract(monkeypatch, tmp_path):
    _register(monkeypatch, NaNAcceptingToyPolicy)
    check_act("toy-contract-nan", tmp_path)  # acting on valid observations is fine
    with pytest.raises(pytest.fail.Exception):
        check_bad_observations("toy-contract-nan", tmp_path)


def test_registered_types_are_cleaned_up():
    assert "toy-contract" not in policy_types()
    assert "toy-contract-nan" not in policy_types()
