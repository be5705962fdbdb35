"""The ONNX Runtime backend: ``load_policy(..., backend="onnxruntime")`` acts as the torch
policy (actions within 1e-5 on recorded env observations, DAMPC with the same seeded noise
and guidance memory), for every exportable registry type (built from ``example_config()``;
the refiners in refine mode on a tiny LSM base) and the shipped lsm-kuka-obstacle,
dampc-kuka-obstacle and threedof-gru-h10; ``DiffOG.wrap(..., backend="onnxruntime")`` with
the shipped diffog-kuka-obstacle and diffog-matrix-kuka-obstacle on dampc-kuka-obstacle
acts as the torch wrap; the cached graph is rebuilt when the checkpoint changes; types
without a graph name the reason."""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import ampczoo
from ampczoo.core.checkpoint import WEIGHTS_NAME
from ampczoo.core.onnx import OnnxRuntimePolicy, cache_dir, export_onnx
from ampczoo.core.registry import ZOO_DIR, policy_class, policy_types
from ampczoo.nn import qp
from ampczoo.policies.diffog import DiffOG
from ampczoo.policies.refiner import ChunkRefiner, RefinedPolicy
from ampczoo.policies.residual import ResidualRefiner

pytest.importorskip("onnxruntime")

#: float32 graph vs eager torch (different kernels, the unrolled 6 x 6 solve)
ATOL = 1e-5
#: KUKA policies with obs_features="kinematic": a 1-ulp float32 change of one joint angle
#: already moves the action by up to 1.1e-5 (lsm-kuka-obstacle) and 5.5e-5
#: (dampc-kuka-obstacle) [rad/s], measured (the damped least-squares feature, lambda = 0.01,
#: and for DAMPC five denoising steps), so float32 kernels of ONNX Runtime and eager torch
#: cannot agree to 1e-5 there; they agree to ~3e-5, checked at 1e-4
KINEMATIC_ATOL = 1e-4
#: registry types that must have an ONNX graph (one dropping out is a regression; a new
#: type with a graph is checked without being listed)
EXPORTABLE = {"lsm", "dampc", "leto", "ffn", "lstm", "gru", "transformer", "diffog", "residual"}
ENV_OF_OBS_DIM = {
    9: "ThreeDOF-Reach-v0",
    16: "DAMPC-KukaTrack-v0",
    20: "DAMPC-KukaTrackObstacle-v0",
}


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test writes its ONNX files under its own XDG_CACHE_HOME."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return cache_dir()


@functools.cache
def recorded_observations(env_id: str, n: int = 4) -> np.ndarray:
    """(n, obs_dim) observations of a short episode under small random actions."""
    env = gym.make(env_id)
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(3)
    out = [obs]
    for _ in range(n - 1):
        action = 0.1 * rng.uniform(env.action_space.low, env.action_space.high)
        obs, *_ = env.step(action.astype(env.action_space.dtype))
        out.append(obs)
    env.close()
    return np.asarray(out)


def example_policy(policy_type: str, **overrides: Any) -> Any:
    """The type's example policy (config ``overrides`` applied) with non-trivial
    normalisation statistics."""
    config = dataclasses.replace(policy_class(policy_type).example_config(), **overrides)
    if "type" in {f.name for f in dataclasses.fields(config)}:
        config = dataclasses.replace(config, type=policy_type)
    torch.manual_seed(0)
    policy = policy_class(policy_type)(config)
    with torch.no_grad():
        for name, buf in policy.named_buffers():
            if name.endswith(("obs_mean", "u_mean", "tau_mean")):
                buf.add_(0.05 * torch.randn_like(buf))
            elif name.endswith(("obs_std", "u_std", "tau_std", "action_scale")):
                buf.mul_(1.0 + 0.5 * torch.rand_like(buf))
        if isinstance(policy, ChunkRefiner):
            # the refiners start at the identity (zero output layers): leave it
            for param in policy.parameters():
                if not param.any():
                    param.normal_(std=0.05)
    return policy.eval()


def tiny_base(directory: Path) -> Path:
    """A saved example LSM of the obstacle env (raw features), the refiners' test base."""
    base = example_policy("lsm", obs_dim=20, obs_features="raw")
    return base.save_pretrained(directory)


def assert_same_actions(path: Path | str, observations: np.ndarray) -> None:
    """Torch and onnxruntime backends of one checkpoint: equal actions along the recorded
    observations (one at a time, with the policies' state), then on the batch."""
    torch_policy = ampczoo.load_policy(path, device="cpu")
    kinematic = getattr(torch_policy.config, "obs_features", "raw") == "kinematic"
    atol = KINEMATIC_ATOL if kinematic else ATOL
    ort_policy = ampczoo.load_policy(path, backend="onnxruntime")
    assert isinstance(ort_policy, OnnxRuntimePolicy)
    for policy in (torch_policy, ort_policy):
        policy.reset(seed=7)
    for obs in observations:
        a, b = torch_policy.act(obs), ort_policy.act(obs)
        assert b.shape == a.shape == (torch_policy.action_dim,) and b.dtype == np.float64
        np.testing.assert_allclose(b, a, atol=atol, rtol=0)
    if torch_policy.batched:
        for policy in (torch_policy, ort_policy):
            policy.reset(seed=8)
        np.testing.assert_allclose(
            ort_policy.act(observations), torch_policy.act(observations), atol=atol, rtol=0
        )
    assert_same_chunks(torch_policy, ort_policy, observations, atol)


def counting_runs(ort_policy: OnnxRuntimePolicy) -> list[int]:
    """Count the graph runs of ``ort_policy`` from now on (one entry per run)."""
    calls: list[int] = []
    run = ort_policy.run

    def counted(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        calls.append(1)
        return run(inputs)

    ort_policy.run = counted  # type: ignore[method-assign]
    return calls


def assert_same_chunks(
    torch_policy: Any, ort_policy: OnnxRuntimePolicy, observations: np.ndarray, atol: float
) -> None:
    """A policy with ``act_chunk`` (the chunk refiners' base) has it through its graph too:
    one graph run per chunk, equal chunks; one without has none behind the backend either."""
    if not hasattr(torch_policy, "act_chunk"):
        assert not hasattr(ort_policy, "act_chunk")
        return
    calls = counting_runs(ort_policy)
    for policy in (torch_policy, ort_policy):
        policy.reset(seed=9)
    for obs in observations:
        a, b = torch_policy.act_chunk(obs), ort_policy.act_chunk(obs)
        assert b.shape == a.shape and b.ndim == 2
        np.testing.assert_allclose(b, a, atol=atol, rtol=0)
    assert len(calls) == len(observations)


@pytest.mark.parametrize("policy_type", policy_types())
def test_every_registry_type_exports_and_acts_the_same_or_names_why(
    policy_type: str, tmp_path: Path
) -> None:
    """The registry contract of the backend: a type with a graph (its example policy, saved
    and loaded both ways) acts as the torch one; any other raises a ValueError naming itself
    and the reason, and writes nothing. The types of EXPORTABLE must have a graph."""
    cls = policy_class(policy_type)
    overrides: dict[str, Any] = {}
    if issubclass(cls, ChunkRefiner):  # acts through its base: refine mode on a tiny one
        # bounds tight enough that DiffOG's QPs have active constraints (ProxQP runs)
        overrides = {"mode": "refine", "base": str(tiny_base(tmp_path / "base")), "bound": 0.005}
    # experts are not torch modules: an instance without building the NLP suffices
    policy = (
        example_policy(policy_type, **overrides) if hasattr(cls, "onnx_graph") else cls.__new__(cls)
    )
    try:
        path = export_onnx(policy, tmp_path / "graph.onnx")
    except ValueError as err:
        assert policy_type not in EXPORTABLE, f"{policy_type} lost its ONNX graph: {err}"
        assert "cannot be exported to ONNX: " in str(err)
        if hasattr(cls, "onnx_graph"):
            assert repr(policy_type) in str(err)
        assert not (tmp_path / "graph.onnx").exists()
        return
    assert path.stat().st_size > 0
    policy.save_pretrained(tmp_path / "ckpt")
    assert_same_actions(tmp_path / "ckpt", recorded_observations(ENV_OF_OBS_DIM[policy.obs_dim]))


def test_non_exportable_checkpoint_refused_by_load_policy(tmp_path: Path) -> None:
    example_policy("gru", recurrent_mode="stateful").save_pretrained(tmp_path / "gru")
    with pytest.raises(ValueError, match="'gru' policies in recurrent_mode='stateful' cannot"):
        ampczoo.load_policy(tmp_path / "gru", backend="onnxruntime")
    with pytest.raises(ValueError, match="backend must be one of"):
        ampczoo.load_policy(tmp_path / "gru", backend="tensorrt")
    assert not list(cache_dir().glob("*.onnx"))


def test_stateful_recurrent_mode_names_the_reason() -> None:
    policy = policy_class("gru")(
        dataclasses.replace(
            policy_class("gru").example_config(), type="gru", recurrent_mode="stateful"
        )
    )
    with pytest.raises(ValueError, match="recurrent_mode='stateful' cannot be exported"):
        policy.onnx_graph()


@pytest.mark.parametrize("name", ["lsm-kuka-obstacle", "dampc-kuka-obstacle", "threedof-gru-h10"])
def test_zoo_checkpoints_act_the_same(name: str) -> None:
    env_id = json.loads((ZOO_DIR / name / "card.json").read_text())["env"]
    assert_same_actions(name, recorded_observations(env_id, n=5))


def test_dampc_graph_fixes_sampler_and_early_stop() -> None:
    policy = ampczoo.load_policy("dampc-kuka-obstacle", backend="onnxruntime")
    obs = recorded_observations("DAMPC-KukaTrackObstacle-v0")[0]
    policy.act(obs, early_stop=True, sampler="ddpm")  # the configured values are fine
    with pytest.raises(ValueError, match="built for early_stop=True"):
        policy.act(obs, early_stop=False)


def test_stale_cache_is_rebuilt(tmp_path: Path, onnx_cache: Path) -> None:
    policy = example_policy("lsm")
    ckpt = policy.save_pretrained(tmp_path / "lsm")
    obs = recorded_observations("DAMPC-KukaTrack-v0")
    before = ampczoo.load_policy(ckpt, backend="onnxruntime").act(obs)
    assert len(list(onnx_cache.glob("*.onnx"))) == 1
    ampczoo.load_policy(ckpt, backend="onnxruntime")  # same checkpoint: reused
    assert len(list(onnx_cache.glob("*.onnx"))) == 1
    tensors = load_file(str(ckpt / WEIGHTS_NAME))
    tensors["net.2.bias"] = tensors["net.2.bias"] + 0.5  # the output layer
    save_file(tensors, str(ckpt / WEIGHTS_NAME), metadata={"type": "lsm"})
    after = ampczoo.load_policy(ckpt, backend="onnxruntime").act(obs)
    assert len(list(onnx_cache.glob("*.onnx"))) == 2
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(
        after, ampczoo.load_policy(ckpt, device="cpu").act(obs), atol=KINEMATIC_ATOL
    )


def test_dampc_samples_and_selection_the_same(tmp_path: Path) -> None:
    """L samples per observation (one noise row each) and the "cluster" rule's draw."""
    example_policy("dampc").save_pretrained(tmp_path / "dampc")
    torch_policy = ampczoo.load_policy(tmp_path / "dampc", device="cpu")
    ort_policy = ampczoo.load_policy(tmp_path / "dampc", backend="onnxruntime")
    observations = recorded_observations("DAMPC-KukaTrack-v0")
    for policy in (torch_policy, ort_policy):
        policy.reset(seed=11)
    for obs in observations[:2]:
        a = torch_policy.act(obs, num_samples=4, selection="cluster")
        b = ort_policy.act(obs, num_samples=4, selection="cluster")
        np.testing.assert_allclose(b, a, atol=KINEMATIC_ATOL, rtol=0)
    np.testing.assert_allclose(
        ort_policy.act(observations, num_samples=3, guidance_scale=0.0),
        torch_policy.act(observations, num_samples=3, guidance_scale=0.0),
        atol=KINEMATIC_ATOL,
        rtol=0,
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"sampler": "ddim", "ddim_eta": 0.5, "obs_features": "raw"},
        {"early_stop": False, "clip_sample": True, "clip_sample_range": 0.5},
        {"num_train_timesteps": 8, "num_inference_steps": 4, "obs_features": "raw"},
    ],
)
def test_dampc_sampler_variants_act_the_same(overrides: dict[str, Any], tmp_path: Path) -> None:
    """The unrolled loop follows the configured sampler, schedule, early stopping, clipping."""
    policy = example_policy("dampc", **overrides)
    policy.save_pretrained(tmp_path / "dampc")
    assert_same_actions(tmp_path / "dampc", recorded_observations("DAMPC-KukaTrack-v0"))


def assert_same_refined_actions(
    torch_wrap: RefinedPolicy, ort_wrap: RefinedPolicy, observations: np.ndarray
) -> None:
    """The torch and onnxruntime wraps (separate refiners and bases, reset alike) act the
    same along the observations, with the continuity row from the second step on."""
    assert ort_wrap.run is not None and torch_wrap.run is None
    for policy in (torch_wrap, ort_wrap):
        policy.reset(seed=7)
    for obs in observations:
        a, b = torch_wrap.act(obs), ort_wrap.act(obs)
        assert b.shape == a.shape == (7,)
        np.testing.assert_allclose(b, a, atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    "overrides",
    [
        {"q_mode": "matrix", "bound": 0.005},
        {"q_mode": "static", "bound": 0.005},
        {"positional_encoding": False, "dims": (0, 2, 5), "bound": 0.02},
        {"q_dims": (0, 2, 5), "dims": (0, 2, 5), "bound": 0.02},
    ],
)
def test_diffog_variants_wrap_the_same(overrides: dict[str, Any], tmp_path: Path) -> None:
    """DiffOG.wrap(base, folder, backend="onnxruntime") for each way of making Q, with a
    subset of constrained dimensions; bounds tight enough that every QP goes to ProxQP."""
    example_policy("diffog", **overrides).save_pretrained(tmp_path / "diffog")
    base = ampczoo.load_policy(tiny_base(tmp_path / "base"), device="cpu")
    torch_wrap = DiffOG.wrap(base, tmp_path / "diffog")
    ort_wrap = DiffOG.wrap(base, tmp_path / "diffog", backend="onnxruntime")
    observations = recorded_observations("DAMPC-KukaTrackObstacle-v0")
    before = qp.UNCONSTRAINED_SOLVES["proxqp"]
    assert_same_refined_actions(torch_wrap, ort_wrap, observations)
    assert qp.UNCONSTRAINED_SOLVES["proxqp"] - before == 2 * len(observations)


def test_refiner_instance_wraps_without_cache(tmp_path: Path, onnx_cache: Path) -> None:
    """A refiner instance (no checkpoint) gets its graph exported anew, nothing cached; a
    base on another device or a refiner type mismatch is refused."""
    refiner = example_policy("residual")
    base = ampczoo.load_policy(tiny_base(tmp_path / "base"), device="cpu")
    ort_wrap = ResidualRefiner.wrap(base, refiner, backend="onnxruntime")
    assert_same_refined_actions(
        ResidualRefiner.wrap(base, refiner),
        ort_wrap,
        recorded_observations("DAMPC-KukaTrackObstacle-v0"),
    )
    assert not onnx_cache.exists() or not list(onnx_cache.glob("*.onnx"))
    with pytest.raises(ValueError, match="runs on the CPU"):
        DiffOG.wrap(base, None, device="meta", backend="onnxruntime")
    with pytest.raises(ValueError, match="backend must be one of"):
        DiffOG.wrap(base, None, backend="tensorrt")


def test_refiner_without_base_names_wrap() -> None:
    policy = ampczoo.load_policy("diffog-matrix-kuka-obstacle", backend="onnxruntime")
    obs = recorded_observations("DAMPC-KukaTrackObstacle-v0")[0]
    with pytest.raises(ValueError, match=r"has no base policy: use DiffOG.wrap"):
        policy.act(obs)


@pytest.mark.parametrize("name", ["diffog-kuka-obstacle", "diffog-matrix-kuka-obstacle"])
def test_zoo_refiners_on_dampc_wrap_the_same(name: str) -> None:
    """The shipped refiners on the shipped DAMPC (torch, seeded alike) over a few steps."""
    observations = recorded_observations("DAMPC-KukaTrackObstacle-v0", n=5)
    torch_wrap = DiffOG.wrap(ampczoo.load_policy("dampc-kuka-obstacle", device="cpu"), name)
    ort_wrap = DiffOG.wrap(
        ampczoo.load_policy("dampc-kuka-obstacle", device="cpu"), name, backend="onnxruntime"
    )
    before = qp.UNCONSTRAINED_SOLVES["proxqp"]
    assert_same_refined_actions(torch_wrap, ort_wrap, observations)
    assert qp.UNCONSTRAINED_SOLVES["proxqp"] > before  # active change bounds


def test_zoo_refiner_on_onnxruntime_base_takes_its_chunk_from_the_graph() -> None:
    """DiffOG.wrap of a base loaded with backend="onnxruntime": the base's chunk comes from
    its graph (one run per step), the actions equal the all-torch wrap's (kinematic-feature
    tolerance: the base's chunk is the DAMPC graph's)."""
    name, observations = (
        "diffog-kuka-obstacle",
        recorded_observations("DAMPC-KukaTrackObstacle-v0", n=5),
    )
    torch_wrap = DiffOG.wrap(ampczoo.load_policy("dampc-kuka-obstacle", device="cpu"), name)
    base = ampczoo.load_policy("dampc-kuka-obstacle", backend="onnxruntime")
    calls = counting_runs(base)
    ort_wrap = DiffOG.wrap(base, name, backend="onnxruntime")
    for policy in (torch_wrap, ort_wrap):
        policy.reset(seed=7)
    for obs in observations:
        np.testing.assert_allclose(
            ort_wrap.act(obs), torch_wrap.act(obs), atol=KINEMATIC_ATOL, rtol=0
        )
    assert len(calls) == len(observations)


def test_int8_refiner_is_an_option_that_keeps_the_bounds(tmp_path: Path, onnx_cache: Path) -> None:
    """precision="int8" (quantised weight matrices) runs its own cached graph, moves the
    actions a little and keeps every change bound (the QP's); float32 stays the default and
    the option needs the onnxruntime backend."""
    example_policy("diffog", bound=0.005).save_pretrained(tmp_path / "diffog")
    base = ampczoo.load_policy(tiny_base(tmp_path / "base"), device="cpu")
    wraps = {
        p: DiffOG.wrap(base, tmp_path / "diffog", backend="onnxruntime", precision=p)
        for p in ("float32", "int8")
    }
    assert len(list(onnx_cache.glob("*-int8.onnx"))) == 1
    observations = recorded_observations("DAMPC-KukaTrackObstacle-v0")
    actions = {}
    for p, policy in wraps.items():
        policy.reset(seed=7)
        actions[p] = np.stack([policy.act(obs) for obs in observations])
    step = np.abs(np.diff(actions["int8"], axis=0))
    assert np.all(step <= wraps["int8"].refiner.raw_bound() + 1e-6)
    difference = np.abs(actions["int8"] - actions["float32"]).max()
    assert 0 < difference < 0.05 * np.abs(actions["float32"]).max()
    with pytest.raises(ValueError, match="needs backend='onnxruntime'"):
        DiffOG.wrap(base, tmp_path / "diffog", precision="int8")
    with pytest.raises(ValueError, match="precision must be one of"):
        DiffOG.wrap(base, tmp_path / "diffog", backend="onnxruntime", precision="fp8")


def test_qp_fast_path_skips_only_the_input_checks() -> None:
    """solve_qp(check_inputs=False) (DiffOG's validated refine) gives the checked solve's
    solution and still refuses a solution that violates the constraints."""
    g = torch.Generator().manual_seed(0)
    A = torch.randn(1, 6, 6, generator=g, dtype=torch.float64)
    Q = A @ A.transpose(1, 2) + torch.eye(6, dtype=torch.float64)
    p = torch.randn(1, 6, generator=g, dtype=torch.float64)
    G = torch.eye(6, dtype=torch.float64)
    lo, up = -0.05 * torch.ones(6, dtype=torch.float64), 0.05 * torch.ones(6, dtype=torch.float64)
    with torch.no_grad():
        checked = qp.solve_qp(Q, p, G, lo, up)
        fast = qp.solve_qp(Q, p, G, lo, up, check_inputs=False)
        assert torch.equal(fast, checked) and float(checked.abs().max()) == pytest.approx(0.05)
        with pytest.raises(ValueError, match="infeasible, lower"):
            qp.solve_qp(Q, p, G, up, lo)
        with pytest.raises(
            ValueError, match="infeasible or not solved"
        ):  # the same rows, unchecked
            qp.solve_qp(Q, p, G, up, lo, check_inputs=False)
