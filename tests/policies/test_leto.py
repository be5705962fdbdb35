"""LeTO: LSTM + DTO layer; constraints, overfitting a tiny set, receding-horizon deployment."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ampczoo
from ampczoo.policies.leto import KUKA_LOWER, KUKA_UPPER, LeTOConfig, LeTOPolicy

SMALL = dict(
    obs_dim=16,
    horizon=6,
    chunk_len=4,
    seq_len=3,
    hidden_dim=32,
    num_layers=1,
    obs_features="raw",
    accel_bound=0.2,
    vel_bound=1.0,
    dt=0.1,
)


def _data(B=4, T=3, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(B, T, 16)).astype(np.float32)
    obs[..., :7] = rng.uniform(-1.0, 1.0, size=(B, T, 7))
    obs[0, 0, 0] = KUKA_UPPER[0]  # a joint exactly at its limit stays feasible
    u = np.cumsum(0.1 * rng.normal(size=(B, T, 6, 7)), axis=2).astype(np.float32)
    return {"obs": torch.from_numpy(obs), "u_seq": torch.from_numpy(u)}


def _check_bounds(policy, y_norm, obs):
    c = policy.config
    assert y_norm.abs().max() <= c.vel_bound + 1e-5
    assert torch.diff(y_norm, dim=1).abs().max() <= c.accel_bound + 1e-5
    v = y_norm.double() * policy.action_scale.double()
    q = obs[:, :7].double()[:, None] + c.dt * torch.cumsum(v, dim=1)  # steps 1..T_p
    lo, hi = (
        torch.tensor(KUKA_LOWER, dtype=torch.float64),
        torch.tensor(KUKA_UPPER, dtype=torch.float64),
    )
    assert (q >= lo - 1e-6).all() and (q <= hi + 1e-6).all()
    k = c.dt * max(c.vel_bound / c.accel_bound - 1, 1)  # terminal braking reserve
    q_brake = q[:, -1] + k * v[:, -1]
    assert (q_brake >= lo - 1e-6).all() and (q_brake <= hi + 1e-6).all()


def test_kuka_limits_match_the_urdf():
    from ampczoo.robots.kuka import kuka_chain

    chain = kuka_chain()
    assert np.allclose(chain.lower, KUKA_LOWER) and np.allclose(chain.upper, KUKA_UPPER)


def test_overfits_tiny_set_and_outputs_satisfy_bounds():
    torch.manual_seed(0)
    pol = LeTOPolicy(LeTOConfig(**SMALL))
    pol.action_scale.fill_(2.0)
    batch = _data()
    opt = torch.optim.Adam(pol.parameters(), lr=3e-2)
    losses = []
    for _ in range(25):
        loss, _ = pol.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.3 * losses[0]
    with torch.no_grad():
        obs = batch["obs"].reshape(-1, 16)
        e, _ = pol.encode(batch["obs"])
        y = pol.dto(e.reshape(len(obs), -1), obs)
    _check_bounds(pol, y, obs)
    # a joint at its upper limit cannot move further up
    q0 = obs[0, 0]
    assert float(y[0, 0, 0]) * 2.0 * 0.1 + q0 <= KUKA_UPPER[0] + 1e-6


@pytest.mark.parametrize("terminal_braking", [True, False])
def test_terminal_braking_makes_plans_recursively_feasible(terminal_braking):
    """Drive joint 0 at full speed into its upper limit with exact integration: with the
    terminal braking rows the continuity row never becomes infeasible; without them it does
    (the failure our first benchmark measured)."""
    pol = LeTOPolicy(
        LeTOConfig(**{**SMALL, "terminal_braking": terminal_braking, "accel_bound": 0.1})
    ).eval()
    pol.action_scale.fill_(2.0)
    obs = torch.zeros(1, 16)
    obs[0, 0] = KUKA_UPPER[0] - 1.5
    e = torch.zeros(1, 4 * 7)
    e[0, 0::7] = 10.0  # tanh -> 1: the cost pulls joint 0 up as fast as allowed
    prev, infeasible = None, 0
    with torch.no_grad():
        for _ in range(40):
            try:
                y = pol.dto(e, obs, prev)
            except ValueError:
                infeasible += 1
                y = pol.dto(e, obs, None)
            if terminal_braking:
                _check_bounds(pol, y, obs)
            obs[0, :7] += 0.1 * 2.0 * y[0, 0]  # exact integration of the executed action
            prev = y[:, 0]
    assert float(obs[0, 0]) <= KUKA_UPPER[0] + 1e-6
    assert (infeasible == 0) if terminal_braking else (infeasible > 0)


def test_deployment_continuity_hidden_refresh_and_errors(tmp_path):
    pol = LeTOPolicy(LeTOConfig(**SMALL)).eval()
    rng = np.random.default_rng(1)
    obs = np.zeros(16)
    pol.reset()
    actions = []
    for t in range(7):
        obs[:7] = rng.uniform(-0.5, 0.5, size=7)
        actions.append(pol.act(obs))
        if t % 3 == 2:
            assert pol._steps % 3 == 0  # state is refreshed at the next call
    steps = np.abs(np.diff(np.array(actions), axis=0))  # action_scale 1
    assert steps.max() <= SMALL["accel_bound"] + 1e-6
    bad = obs.copy()
    bad[0] = 4.0  # outside the joint limit: infeasible
    pol.reset()
    with pytest.raises(ValueError, match="outside the position bounds"):
        pol.act(bad)
    with pytest.raises(ValueError, match="NaN"):
        pol.act(np.full(16, np.nan))
    pol.save_pretrained(tmp_path / "leto")
    loaded = ampczoo.load_policy(tmp_path / "leto", device="cpu")
    assert isinstance(loaded, LeTOPolicy) and torch.equal(loaded.L, pol.L)
    with pytest.raises(ValueError, match="position_lower"):
        LeTOConfig(**{**SMALL, "position_lower": (0.0,)})


def test_cli_train_leto_on_windows(tmp_path):
    from ampczoo.cli import main
    from ampczoo.data.dataset import DemonstrationDataset
    from ampczoo.data.store import Episode, EpisodeStore

    st = EpisodeStore(tmp_path / "d.zarr")
    rng = np.random.default_rng(0)
    eps = []
    for e in range(3):
        obs = rng.normal(size=(8, 16)).astype(np.float32)
        obs[:, :7] = rng.uniform(-1, 1, size=(8, 7))
        u = np.cumsum(0.1 * rng.normal(size=(8, 6, 7)), axis=1).astype(np.float32)
        eps.append(Episode(e, e, 8, data={"obs": obs, "u_seq": u}))
    st.add_episodes(eps)
    ds = DemonstrationDataset(tmp_path / "d.zarr", "train", val_fraction=0.0)
    starts = ds.window_starts(3)
    assert len(starts) == 3 * 6 and all(
        ds.sample_episode[s] == ds.sample_episode[s + 2] for s in starts
    )
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "leto",
                "--data",
                str(tmp_path / "d.zarr"),
                "--out",
                str(out),
                "--epochs",
                "1",
                "--batch-size",
                "4",
                "--val-fraction",
                "0.34",
                "--policy.hidden-dim",
                "16",
                "--policy.num-layers",
                "1",
                "--policy.chunk-len",
                "4",
                "--policy.seq-len",
                "3",
                "--policy.obs-features",
                "raw",
            ]
        )
        == 0
    )
    loaded = ampczoo.load_policy(out / "last", device="cpu")
    assert loaded.act(ds.obs[0]).shape == (7,)


def test_l_init_gives_tanh_room_for_saturated_chunks():
    """A demonstrated chunk at the velocity bound (|y| = 1, constant) needs tanh(e) = Q y;
    at L = I that is >= 1 (unreachable), at l_init = 0.3 it is inside (-1, 1) and the DTO
    layer returns the chunk from a finite e."""
    torch.manual_seed(0)
    y = torch.ones(SMALL["chunk_len"] * 7, dtype=torch.float64)
    needed = {}
    for l_init in (1.0, 0.3):
        pol = LeTOPolicy(LeTOConfig(**SMALL, l_init=l_init))
        assert torch.allclose(pol.L.detach(), l_init * torch.eye(len(y)))
        needed[l_init] = float((pol.qp_matrix() @ y).abs().max())
    assert needed[1.0] >= 1.0 > 0.95 > needed[0.3]
    pol = LeTOPolicy(LeTOConfig(**SMALL, l_init=0.3))
    obs = _data(B=1, T=1)["obs"][:, 0]
    obs[:, :7] = 0.0  # mid-range joints: no position row is active
    e = torch.atanh(pol.qp_matrix() @ y).float()[None]
    out = pol.dto(e, obs)
    torch.testing.assert_close(out.double().reshape(-1), y, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="l_init"):
        LeTOConfig(**SMALL, l_init=0.0)


# ---------------------------------------------------------------- manipulation suites


def _action_store(path, env="Robomimic-Can-v0", obs_dim=23, scale=1.0, n_eps=3, T=10):
    """A store of per-step robomimic-like actions: 6 smooth pose dims in [-1, 1] and a +-1
    gripper; observations whose first entries are far outside the KUKA joint limits."""
    from ampczoo.data.store import Episode, EpisodeStore

    st = EpisodeStore(path)
    rng = np.random.default_rng(0)
    eps = []
    for e in range(n_eps):
        obs = rng.normal(size=(T, obs_dim)).astype(np.float32)
        obs[:, 0] = 5.0 + e  # an object coordinate, not a joint position
        pose = np.clip(np.cumsum(0.05 * rng.normal(size=(T, 6)), axis=0), -1, 1)
        grip = np.where(np.arange(T) < T // 2, -1.0, 1.0)[:, None]
        action = (scale * np.concatenate([pose, grip], 1)).astype(np.float32)
        eps.append(Episode(e, e, T, data={"obs": obs, "action": action}))
    st.add_episodes(eps)
    st.update_attrs({"env": env})
    return path


def test_config_from_data_gives_the_suite_settings_and_keeps_kuka_defaults():
    fields = {"action_dim": 7}
    got = LeTOPolicy.config_from_data(fields, {"env": "Robomimic-Square-v0"})
    assert got["dims"] == (0, 1, 2, 3, 4, 5) and got["accel_bound"] == 0.1
    assert got["scale_mode"] == "unit" and got["position_index"] is None
    assert got["obs_features"] == "raw"
    mw = LeTOPolicy.config_from_data({"action_dim": 4}, {"env": "MetaWorld-ShelfPlace-v0"})
    assert mw["dims"] == (0, 1, 2) and mw["scale_mode"] == "min_max" and mw["accel_bound"] == 0.6
    assert LeTOPolicy.config_from_data(fields, {"env": "DAMPC-KukaTrack-v0"}) == {}
    assert LeTOPolicy.config_from_data(fields, {}) == {}
    assert LeTOConfig().position_index == 0 and LeTOConfig().scale_mode == "max_abs"


def test_cli_train_leto_on_a_robomimic_store(tmp_path):
    """`ampczoo train leto` on a store of 7-D robomimic actions: the suite's settings, unit
    scale, T_p-action chunks; the deployed plans keep the 0.1 change bound on the 6 pose dims
    and leave the gripper free."""
    from ampczoo.cli import main

    data = _action_store(tmp_path / "can.zarr")
    out = tmp_path / "run"
    args = ["train", "leto", "--data", str(data), "--out", str(out), "--epochs", "1"]
    args += ["--batch-size", "4", "--val-fraction", "0.34", "--policy.hidden-dim", "16"]
    args += ["--policy.num-layers", "1", "--policy.seq-len", "3", "--policy.l-init", "0.3"]
    assert main(args) == 0
    pol = ampczoo.load_policy(out / "last", device="cpu")
    c = pol.config
    assert c.position_index is None and c.dims == (0, 1, 2, 3, 4, 5)
    assert c.accel_bound == 0.1 and c.scale_mode == "unit" and c.obs_dim == 23
    assert c.horizon == c.chunk_len == 6
    assert torch.equal(pol.action_scale, torch.ones(7))
    rng = np.random.default_rng(1)
    actions = np.array([pol.act(rng.normal(size=23).astype(np.float32)) for _ in range(8)])
    assert np.abs(actions[:, :6]).max() <= 1 + 1e-5
    assert np.abs(np.diff(actions[:, :6], axis=0)).max() <= 0.1 + 1e-5  # continuity row
    assert pol.n_continuity_dropped == 0


def test_configs_that_cannot_work_on_a_store_are_refused(tmp_path):
    from ampczoo.training.supervised import TrainConfig, train

    data = _action_store(tmp_path / "can.zarr")
    small = {"hidden_dim": 8, "num_layers": 1, "seq_len": 2}
    # KUKA joint-limit rows on an observation that holds no joint positions
    cfg = TrainConfig(
        "leto",
        str(data),
        str(tmp_path / "a"),
        epochs=1,
        policy_overrides={
            **small,
            "position_index": 0,
            "position_lower": KUKA_LOWER,
            "position_upper": KUKA_UPPER,
            "dims": None,
        },
    )
    with pytest.raises(ValueError, match="not the bounded positions"):
        train(cfg)
    # raw ("unit") bounds on actions that are not normalised to [-1, 1]
    big = _action_store(tmp_path / "big.zarr", scale=3.0)
    cfg = TrainConfig("leto", str(big), str(tmp_path / "b"), epochs=1, policy_overrides=small)
    with pytest.raises(ValueError, match="scale_mode 'unit'"):
        train(cfg)
    # kinematic features need a KUKA observation
    cfg = TrainConfig(
        "leto",
        str(data),
        str(tmp_path / "c"),
        epochs=1,
        policy_overrides={**small, "obs_features": "kinematic"},
    )
    with pytest.raises(ValueError, match="kinematic"):
        train(cfg)
