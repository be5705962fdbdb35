"""Policy contract, toy learning, save/load, refusal, registry and selection rules."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import ampczoo
from ampczoo.policies.dampc import DAMPCConfig, DAMPCPolicy, constraint_violation
from ampczoo.policies.lsm import LSMPolicy
from ampczoo.robots.kuka import make_observation


def test_import_ampczoo_stays_light():
    import subprocess

    code = "import sys, ampczoo; ampczoo.list_policies(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_registry():
    from ampczoo.core.registry import ZOO_DIR

    names = ampczoo.list_policies()  # the shipped checkpoints, sorted, each complete
    assert names == sorted(names)
    assert all((ZOO_DIR / n / "model.safetensors").is_file() for n in names)
    assert {"lsm-kuka-obstacle", "dampc-kuka-obstacle"} <= set(ampczoo.list_policies())
    p = ampczoo.make_policy("dampc", hidden_dim=32, num_layers=2)
    assert isinstance(p, DAMPCPolicy) and p.config.hidden_dim == 32
    assert isinstance(ampczoo.make_policy("lsm", num_layers=1), LSMPolicy)
    with pytest.raises(ValueError, match="unknown policy type"):
        ampczoo.make_policy("nope")
    with pytest.raises(TypeError):
        ampczoo.make_policy("lsm", hiden_dim=3)  # typo is not swallowed
    with pytest.raises(ValueError, match="sampler"):
        DAMPCConfig(sampler="euler")
    with pytest.raises(FileNotFoundError, match="neither"):
        ampczoo.load_policy("no-such-policy")


def test_toy_modes(toy_dampc, toy_lsm):
    """DAMPC covers both modes (+1 / -1); LSM regresses to their mean (near 0)."""
    obs = np.random.default_rng(0).normal(size=(3, toy_dampc.config.obs_dim))
    for o in obs:
        means = toy_dampc.sample(o, 200, generator=torch.Generator().manual_seed(0)).mean((1, 2))
        assert np.mean(means > 0.5) > 0.25 and np.mean(means < -0.5) > 0.25
        assert np.mean(np.abs(np.abs(means) - 1) < 0.3) > 0.9
        assert np.all(np.abs(toy_lsm.sample(o)) < 0.35)


def test_act_shapes_memory_and_bad_input(toy_dampc, toy_lsm):
    D = toy_dampc.config.obs_dim
    toy_dampc.reset(seed=1)
    a = toy_dampc.act(np.zeros(D))
    assert a.shape == (7,) and toy_dampc.prev_sequence is not None
    toy_dampc.reset()
    assert toy_dampc.prev_sequence is None
    assert toy_dampc.act(np.zeros((5, D))).shape == (5, 7)
    assert toy_dampc.prev_sequence is None  # batched act keeps no memory
    assert toy_dampc.act(np.zeros(D), selection="cluster", num_samples=20).shape == (7,)
    assert toy_lsm.act(np.zeros((3, D))).shape == (3, 7)
    for policy in (toy_dampc, toy_lsm):
        for bad in (np.full(D, np.nan), np.zeros(D + 1), np.zeros((2, 2, D)), np.inf * np.ones(D)):
            with pytest.raises(ValueError):
                policy.act(bad)


@pytest.mark.parametrize("fixture", ["toy_dampc", "toy_lsm"])
def test_save_load_round_trip(fixture, tmp_path, request):
    policy = request.getfixturevalue(fixture)
    policy.save_pretrained(tmp_path / "p")
    loaded = ampczoo.load_policy(tmp_path / "p", device="cpu")
    assert type(loaded) is type(policy) and loaded.config == policy.config
    obs = np.random.default_rng(0).normal(size=(4, policy.config.obs_dim))
    if isinstance(policy, DAMPCPolicy):
        for p in (policy, loaded):
            p.reset(seed=7)
        np.testing.assert_array_equal(loaded.act(obs), policy.act(obs))
    else:
        np.testing.assert_array_equal(loaded.act(obs), policy.act(obs))
    assert torch.equal(loaded.normalizer.u_std, policy.normalizer.u_std)


def test_refuses_foreign_or_broken_checkpoints(toy_dampc, tmp_path):
    d = toy_dampc.save_pretrained(tmp_path / "d")
    with pytest.raises(ValueError, match="is a 'dampc' policy, not 'lsm'"):
        LSMPolicy.from_pretrained(d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["hidden_dim"] = 48  # config no longer matches the tensors
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="do not match"):
        ampczoo.load_policy(d)
    cfg["hidden_dim"], cfg["bogus"] = toy_dampc.config.hidden_dim, 1
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="unknown config fields"):
        ampczoo.load_policy(d)
    del cfg["bogus"]
    (d / "config.json").write_text(json.dumps(cfg))
    tensors = load_file(str(d / "model.safetensors"))
    tensors["net.out.weight"] = tensors["net.out.weight"][:-1]
    save_file(tensors, str(d / "model.safetensors"))
    with pytest.raises(ValueError, match="net.out.weight"):
        ampczoo.load_policy(d)
    (d / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="corrupt"):
        ampczoo.load_policy(d)
    (d / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        ampczoo.load_policy(d)
    (d / "config.json").write_text("{")
    with pytest.raises(ValueError, match="corrupt JSON"):
        ampczoo.load_policy(d)


def _kuka_obs() -> np.ndarray:
    q = np.array([0.0, 0.5, 0.0, -1.2, 0.0, 0.8, 0.0])
    return make_observation(q, np.array([0.5, 0.1, 0.6]), np.eye(3), None).astype(np.float32)


def test_selection_safe_and_cost():
    policy = DAMPCPolicy(DAMPCConfig(hidden_dim=16, num_layers=1))
    obs = _kuka_obs()
    rng = np.random.default_rng(0)
    seqs = rng.uniform(-2.3, 2.3, size=(30, 20, 7))
    seqs[:, :, 1] = 2.3  # joint 2 driven past its limit within the horizon: all infeasible
    seqs[17] = 0.01 * rng.normal(size=(20, 7))  # the one feasible sample
    viol = constraint_violation(obs, seqs, 0.1)
    assert viol[17] == 0 and np.all(np.delete(viol, 17) > 0)
    policy.reset(seed=0)
    assert policy.select(obs, seqs, "safe") == 17
    infeasible = np.delete(seqs, 17, axis=0)
    assert policy.select(obs, infeasible, "safe") == int(np.argmin(np.delete(viol, 17)))
    costs = policy.cost_expert().cost_batch(obs, seqs)
    assert policy.select(obs, seqs, "cost") == int(np.argmin(costs))
    g = torch.Generator().manual_seed(5)
    sampled = policy.sample(obs, 10, generator=g)
    policy.reset()
    action = policy.act(
        obs, selection="cost", num_samples=10, generator=torch.Generator().manual_seed(5)
    )
    best = sampled[np.argmin(policy.cost_expert().cost_batch(obs, sampled))]
    np.testing.assert_allclose(action, best[0], rtol=1e-6)
