"""DiffOG: QP refinement of chunks, Algorithm 1, training modes, wrap, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ampczoo
from ampczoo.cli import main
from ampczoo.data.store import Episode, EpisodeStore
from ampczoo.nn import qp
from ampczoo.policies.diffog import DiffOG, DiffOGConfig, spd_from_tril
from ampczoo.policies.lsm import LSMConfig, LSMPolicy

SMALL = dict(
    chunk_len=4,
    horizon=5,
    action_dim=3,
    embed_dim=32,
    num_heads=2,
    ff_dim=32,
    dropout=0.0,
    obs_dim=4,
)


def _chunks(B: int, T: int = 4, D: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.5 * torch.randn(B, T, D, generator=g)


def test_algorithm1_gives_spd():
    """Algorithm 1 on tril entries == Algorithm 1 on a full raw matrix, written out."""
    n, eps = 6, 1e-4
    g = torch.Generator().manual_seed(0)
    raw = 30.0 * torch.randn(5, n, n, generator=g, dtype=torch.float64)
    i, j = torch.tril_indices(n, n)
    Q = spd_from_tril(raw[:, i, j], n, eps, 10.0)
    eye = torch.eye(n, dtype=torch.float64)
    L = raw * (1 - eye) + (torch.exp(torch.diagonal(raw, dim1=-2, dim2=-1)) + eps).diag_embed()
    L = torch.tril(L.clamp(-10.0, 10.0))
    assert torch.allclose(Q, L @ L.transpose(1, 2) + eps * eye)
    assert torch.allclose(Q, Q.transpose(1, 2))
    assert (torch.linalg.eigvalsh(Q) > 0).all()
    tri = 4.0 * raw[:, i, j].float()  # off-diagonal entries up to ~+-300, diagonal ~N(0, 1)
    tri[:, i == j] /= 120.0
    tri.requires_grad_()
    assert not torch.isfinite(torch.exp(tri)).all()  # exp of every entry would overflow...
    spd_from_tril(tri, n, eps, 10.0).sum().backward()
    assert torch.isfinite(tri.grad).all()  # ...exp only on the diagonal: no inf * 0


def test_fused_inference_encoder_equals_the_library_layers():
    """The no-grad eval path (fused kernel) gives what nn.TransformerEncoder gives, for both
    activations, with and without norm_first."""
    torch.manual_seed(0)
    m = DiffOG(DiffOGConfig(**SMALL)).eval()
    enc = m.q_encoder
    torch.nn.init.normal_(enc.head.weight, std=0.1)
    a = _chunks(3)
    for activation, norm_first in (("relu", False), ("gelu", True)):
        for layer in enc.encoder.layers:
            layer.activation_relu_or_gelu = 2 if activation == "gelu" else 1
            layer.activation = (
                torch.nn.functional.gelu if activation == "gelu" else torch.nn.functional.relu
            )
            layer.norm_first = norm_first
        with torch.no_grad():
            fused = enc(a)
        # grad enabled and weights requiring grad: nn.TransformerEncoder's unfused path
        ref = enc.head(enc.norm(enc.encoder(enc.proj(a) + enc.pe).mean(dim=1)))
        assert ref.requires_grad
        assert torch.allclose(fused, ref.detach(), atol=1e-5)


def test_static_q_inactive_bounds_is_closed_form_and_bounds_hold():
    m = DiffOG(DiffOGConfig(q_mode="static", bound=100.0, alpha=2.0, **SMALL))
    a = _chunks(2)
    y = m.refine_normalized(a)
    n = 12
    M = torch.eye(n, dtype=torch.float64) + m.smooth
    closed = torch.linalg.solve(M, a.reshape(2, n).double().T).T
    assert torch.allclose(y.reshape(2, n).double(), closed, atol=1e-5)
    tight = DiffOG(DiffOGConfig(q_mode="static", bound=0.05, **SMALL))
    prev = torch.full((2, 3), 0.3)
    y = tight.refine_normalized(3 * a, prev)
    steps = torch.diff(torch.cat([prev[:, None], y], 1), dim=1)
    assert steps.abs().max() <= 0.05 + 1e-6


@pytest.mark.parametrize(("q_mode", "lr"), [("transformer", 1e-3), ("matrix", 1e-2)])
def test_gradients_flow_and_dataset_training_reduces_loss(q_mode, lr):
    torch.manual_seed(0)
    m = DiffOG(DiffOGConfig(q_mode=q_mode, bound=0.3, **SMALL))
    u = torch.cumsum(0.2 * torch.randn(8, 5, 3), dim=1)  # demonstrated chunks (N = 5)
    batch = {"obs": torch.zeros(8, 4), "u_seq": u}
    opt = torch.optim.Adam(m.parameters(), lr=lr)
    losses = []
    for _ in range(20):
        loss, info = m.loss(batch)
        opt.zero_grad()
        loss.backward()
        losses.append(float(loss))
        opt.step()
    grads = [p.grad for p in m.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    assert losses[-1] < 0.85 * losses[0]
    assert all(np.isfinite(losses)) and "mse" in info


def test_refine_continuity_time_varying_bounds_and_errors():
    m = DiffOG(DiffOGConfig(**SMALL)).eval()
    m.action_scale.copy_(torch.tensor([2.0, 1.0, 0.5]))
    rng = np.random.default_rng(0)
    chunk = rng.normal(size=(5, 3))  # longer than chunk_len: the tail is kept
    prev = np.array([0.5, -0.2, 0.1])
    y = m.refine(chunk, prev)
    norm = np.concatenate([prev[None], y[:4]]) / np.array([2.0, 1.0, 0.5])
    assert np.abs(np.diff(norm, axis=0)).max() <= 0.1 + 1e-6
    assert np.allclose(y[4], chunk[4])
    bounds = np.array([[0.01] * 3, [0.2] * 3, [0.2] * 3, [0.05] * 3])  # per row, per call
    y2 = m.refine(chunk, prev, bound=bounds)
    d2 = np.abs(np.diff(np.concatenate([prev[None], y2[:4]]) / [2.0, 1.0, 0.5], axis=0))
    assert (d2 <= bounds + 1e-6).all() and np.isclose(d2[0].max(), 0.01, atol=1e-6)
    free = m.refine(chunk, None)  # first step of an episode: no continuity row
    assert not np.allclose(free[0], y[0])
    with pytest.raises(ValueError, match="finite"):
        m.refine(np.full((4, 3), np.nan), prev)
    with pytest.raises(ValueError, match="infeasible"):
        m.refine(chunk, prev, bound=-0.1)


def test_wrap_callable_and_sb3_model_and_single_step():
    cfg = DiffOGConfig(q_mode="static", chunk_len=4, horizon=4, action_dim=1, obs_dim=3)
    rng = np.random.default_rng(0)
    pol = DiffOG.wrap(lambda obs: rng.uniform(-1, 1, size=(4, 1)), cfg)
    pol.reset()
    acts = np.array([pol.act(np.zeros(3))[0] for _ in range(15)])
    assert np.abs(np.diff(acts)).max() <= 0.1 + 1e-6
    assert pol.stats.calls == 15 and pol.stats.as_dict()["refine mean [ms]"] > 0
    import gymnasium as gym
    from stable_baselines3 import PPO

    env = gym.make("Pendulum-v1")
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=32, seed=0, device="cpu")
    wrapped = DiffOG.wrap(model, cfg)
    obs, _ = env.reset(seed=0)
    wrapped.reset()
    prev = None
    for _ in range(5):
        a = wrapped.act(obs)
        assert a.shape == (1,)
        if prev is not None:
            assert abs(a[0] - prev[0]) <= 0.1 + 1e-6
        prev = a
        obs, *_ = env.step(a.astype(np.float32))


def test_save_load_and_foreign_checkpoint(tmp_path):
    m = DiffOG(DiffOGConfig(q_mode="matrix", **SMALL))
    with torch.no_grad():
        m.L_raw.normal_()
    m.save_pretrained(tmp_path / "d")
    loaded = ampczoo.load_policy(tmp_path / "d", device="cpu")
    assert isinstance(loaded, DiffOG) and torch.equal(loaded.L_raw, m.L_raw)
    LSMPolicy(
        LSMConfig(obs_dim=4, horizon=2, hidden_dim=8, num_layers=1, obs_features="raw")
    ).save_pretrained(tmp_path / "lsm")
    with pytest.raises(ValueError, match="not 'diffog'"):
        DiffOG.from_pretrained(tmp_path / "lsm")
    with pytest.raises(ValueError, match="not a DiffOG"):
        DiffOG.wrap(lambda o: np.zeros(3), tmp_path / "lsm")
    with pytest.raises(ValueError, match="use DiffOG.wrap"):
        loaded.act(np.zeros(4))


def _kuka_like_store(path, episodes=4, T=12, N=6):
    st = EpisodeStore(path)
    rng = np.random.default_rng(0)
    eps = []
    for e in range(episodes):
        obs = rng.normal(size=(T, 16)).astype(np.float32)
        u = np.cumsum(0.2 * rng.normal(size=(T, N, 7)), axis=1).astype(np.float32)
        eps.append(Episode(e, e, T, data={"obs": obs, "u_seq": u}))
    st.add_episodes(eps)
    return path


def test_cli_train_dataset_and_refine_modes(tmp_path):
    store = _kuka_like_store(tmp_path / "d.zarr")
    base = LSMPolicy(
        LSMConfig(obs_dim=16, horizon=6, hidden_dim=8, num_layers=1, obs_features="raw")
    )
    base.save_pretrained(tmp_path / "base")
    common = [
        "--data",
        str(store),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--val-fraction",
        "0.25",
        "--policy.chunk-len",
        "4",
        "--policy.embed-dim",
        "16",
        "--policy.num-heads",
        "2",
        "--policy.ff-dim",
        "16",
    ]
    assert main(["train", "diffog", "--out", str(tmp_path / "a"), *common]) == 0
    assert (
        main(
            [
                "train",
                "diffog",
                "--policy.mode",
                "refine",
                "--policy.base",
                str(tmp_path / "base"),
                "--out",
                str(tmp_path / "b"),
                *common,
            ]
        )
        == 0
    )
    refined = ampczoo.load_policy(tmp_path / "b" / "last", device="cpu")
    assert refined.config.mode == "refine" and refined.config.horizon == 6
    assert "base" not in " ".join(refined.state_dict())  # the base is not saved
    assert refined.act(np.zeros(16)).shape == (7,)  # runs through its base
    assert refined.action_scale.min() > 0.2  # joint-range scale from the data
    assert qp.NAN_GRADIENTS["proxsuite"] == 0


def test_warm_started_refine_equals_cold_and_reset_starts_cold():
    """Receding-horizon refinement warm-starts each QP from the previous chunk's solution:
    the same actions as cold solves (a fresh refiner per step), and after reset the episode
    repeats exactly."""
    torch.manual_seed(0)
    m = DiffOG(DiffOGConfig(**SMALL, bound=0.02)).eval()
    torch.nn.init.normal_(m.q_encoder.head.weight, std=0.1)
    chunks = [np.cumsum(c.numpy(), axis=0) for c in _chunks(6, T=5, seed=3)]
    wrapped = DiffOG.wrap(lambda obs: chunks[int(obs[0])], m)

    def episode():
        wrapped.reset()
        return np.stack([wrapped.act(np.full(4, k)) for k in range(len(chunks))])

    first = episode()
    assert len(m.qp_workspace._solvers) == 2  # without and with the continuity row
    np.testing.assert_array_equal(episode(), first)
    cold = []
    prev = None
    for chunk in chunks:
        m.clear_warm_start()
        cold.append(m.refine(chunk, prev)[0])
        prev = cold[-1]
    np.testing.assert_allclose(first, np.stack(cold), atol=1e-8, rtol=0)


def _far_from_identity(m: DiffOG) -> DiffOG:
    """m with a Q head drawn far from its zero init (Q far from I)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        head = m.q_encoder.head
        head.weight.copy_(0.3 * torch.randn(head.weight.shape, generator=g))
        head.bias.copy_(0.3 * torch.randn(head.bias.shape, generator=g))
    return m.eval()


def test_q_dims_constrained_leaves_the_other_dims_alone():
    """q_dims=(0, 1) (S's dims): Q is learned over them only (the encoder still reads every
    dim); the other dim passes through unchanged, no Q entry couples it to the constrained
    ones (a full learned Q changes it too)."""
    torch.manual_seed(0)
    part = _far_from_identity(DiffOG(DiffOGConfig(dims=(0, 1), q_dims=(0, 1), **SMALL)))
    full = _far_from_identity(DiffOG(DiffOGConfig(dims=(0, 1), **SMALL)))
    assert part.q_encoder.head.out_features == 8 * 9 // 2  # T_p D_c = 8 learned entries
    a = _chunks(3)
    Q = part.cost_matrix(a)
    other = torch.arange(4) * 3 + 2
    kept = torch.tensor([i for i in range(12) if i % 3 != 2])
    assert torch.equal(Q[:, other][:, :, other], torch.eye(4).expand(3, 4, 4))
    assert torch.equal(Q[:, kept][:, :, other], torch.zeros(3, 8, 4))
    assert not torch.allclose(Q[:, kept][:, :, kept], torch.eye(8), atol=0.1)
    y = part.refine_normalized(a)
    assert torch.equal(y[..., 2], a[..., 2])
    assert not torch.allclose(full.refine_normalized(a)[..., 2], a[..., 2], atol=1e-3)
    with torch.no_grad():  # the exportable ops give the same Q
        assert torch.allclose(part.cost_matrix(a, fused=False), Q, atol=1e-5)


def test_q_reg_adds_the_mean_squared_distance_of_q_to_the_identity():
    torch.manual_seed(0)
    plain = _far_from_identity(DiffOG(DiffOGConfig(**SMALL)))
    reg = DiffOG(DiffOGConfig(q_reg=0.5, **SMALL)).eval()
    reg.load_state_dict(plain.state_dict())
    batch = {"obs": torch.zeros(2, 4), "u_seq": _chunks(2, T=5)}
    (l0, i0), (l1, i1) = plain.loss(batch), reg.loss(batch)
    Q = plain.cost_matrix(batch["u_seq"][:, :4])  # dataset mode: a = the target chunk
    dev = float(torch.mean((Q - torch.eye(12)) ** 2))
    assert dev > 0.01 and np.isclose(i1["q_dev"], dev, rtol=1e-4)
    assert np.isclose(float(l1) - float(l0), 0.5 * dev, rtol=1e-3)
    assert np.isclose(i0["mse"], i1["mse"]) and "q_dev" not in i0
    l1.backward()  # the penalty has gradients on the Q head
    assert float(reg.q_encoder.head.weight.grad.abs().sum()) > 0


@pytest.mark.parametrize(
    "bad",
    [
        {"q_dims": (0, 0)},
        {"q_dims": (3,)},
        {"q_reg": -0.1},
        {"q_reg": float("nan")},
        {"q_reg": np.inf},
    ],
)
def test_invalid_q_dims_and_q_reg(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        DiffOGConfig(**{**SMALL, **bad})
