"""``ampczoo bench kuka`` on tiny untrained checkpoints (a few closed-loop steps), plus the
jerk / mode-swap metrics on synthetic sequences with known answers."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import ampczoo
from ampczoo.benchmarks.common import (
    count_mode_swaps,
    jerk_norms,
    sequence_jumps,
    shift_sequence,
)
from ampczoo.benchmarks.kuka import KukaBenchConfig, load_checkpoints, run_kuka_benchmark


# ----------------------------------------------------------------------------- metrics
def test_jerk_of_quadratic_velocity():
    dt = 0.02
    t = dt * np.arange(50)
    u = np.stack([0.5 * 3.0 * t**2] + [np.zeros_like(t)] * 6, axis=1)  # u'' = 3 rad/s^3
    j = jerk_norms(u, dt)
    assert j.shape == (48,)
    np.testing.assert_allclose(j, 3.0, rtol=1e-9)
    np.testing.assert_allclose(jerk_norms(np.ones((10, 7)), dt), 0.0)
    assert jerk_norms(np.ones((2, 7)), dt).size == 0
    # one velocity step of 1 rad/s on one joint: jerk 1/dt^2 twice, then 0
    step = np.zeros((5, 7))
    step[2:, 0] = 1.0
    np.testing.assert_allclose(jerk_norms(step, 0.1), [100.0, 100.0, 0.0])


def test_shift_sequence():
    seq = np.arange(5.0)[:, None] * np.ones((1, 7))
    np.testing.assert_allclose(shift_sequence(seq, 1.0)[:, 0], [1, 2, 3, 4, 4])
    np.testing.assert_allclose(shift_sequence(seq, 0.2)[:, 0], [0.2, 1.2, 2.2, 3.2, 4])
    np.testing.assert_allclose(shift_sequence(seq, 0.0), seq)


def test_mode_swaps_counts_far_jumps_only():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(10, 7))
    # a receding-horizon-consistent loop: each sequence is the previous one shifted
    seqs = [base]
    for _ in range(9):
        seqs.append(shift_sequence(seqs[-1], 1.0))
    seqs = np.stack(seqs)
    np.testing.assert_allclose(sequence_jumps(seqs, 1.0), 0.0, atol=1e-12)
    assert count_mode_swaps(seqs, 0.25) == 0
    # flip to the "other mode" (negated) at steps 4 and 7: exactly two swaps
    swapped = seqs.copy()
    swapped[4:7] *= -1.0
    assert count_mode_swaps(swapped, 0.25) == 2
    # small noise below the threshold is not a swap; a NaN step (failed solve) is ignored
    noisy = seqs + 0.01 * rng.normal(size=seqs.shape)
    assert count_mode_swaps(noisy, 0.25) == 0
    noisy[5] = np.nan
    assert count_mode_swaps(noisy, 0.25) == 0
    assert count_mode_swaps(seqs[:1], 0.25) == 0


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    lsm = ampczoo.make_policy("lsm", obs_dim=20, hidden_dim=16, num_layers=1)
    dampc = ampczoo.make_policy(
        "dampc",
        obs_dim=20,
        hidden_dim=16,
        num_layers=1,
        time_embed_dim=8,
        time_hidden_dim=8,
        obs_hidden_dim=8,
    )
    return {
        "lsm": str(lsm.save_pretrained(root / "lsm")),
        "dampc": str(dampc.save_pretrained(root / "dampc")),
        "dampc40": str(root / "missing-dampc40"),
    }


def tiny_config(tmp_path, checkpoints, **kw) -> KukaBenchConfig:
    base = dict(
        envs=("obstacle",),
        episodes=2,
        control_dt=0.1,
        episode_seconds=0.6,
        mpc_solver="ipopt",
        mpc_compile=False,
        num_samples=4,
        gap_episodes=1,
        gap_every=3,
        heatmap_guesses=2,
        heatmap_samples=8,
        cuda=False,
        out=str(tmp_path),
        **checkpoints,
    )
    base.update(kw)
    return KukaBenchConfig(**base)


def read_csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_bench_kuka_end_to_end(tmp_path, checkpoints, capsys):
    out = run_kuka_benchmark(tiny_config(tmp_path, checkpoints))
    printed = capsys.readouterr().out
    assert "DDPM-40 +G+ES" in printed and "skipped" in printed  # missing checkpoint: a note
    for name in (
        "table1_tracking",
        "table3_smoothness",
        "table5_sampling",
        "table4_timing",
        "optimality_gap",
    ):
        assert (out / f"{name}.md").is_file() and (out / f"{name}.csv").is_file()
    for png in ("tracking_error_obstacle", "penetration_cdf_obstacle", "heatmap_obstacle"):
        assert (out / f"{png}.png").stat().st_size > 1000
    assert "Skipped" in (out / "README.md").read_text()

    t1 = read_csv(out / "table1_tracking.csv")
    assert [r["method"] for r in t1] == [
        "MPC",
        "LSM",
        "DDPM-5",
        "DDPM-5 +ES",
        "DDPM-5 +G+ES",
        "DDIM-5 +G+ES",
    ]
    for col in ("ATE [mm]", "ARE [deg]", "SR [%]", "SR 95% CI", "TRT [s]", "N_I", "∇G", "ES"):
        assert col in t1[0]
    for r in t1:
        lo, hi = (float(x) for x in r["SR 95% CI"].strip("[]").split(","))
        assert lo <= float(r["SR [%]"]) <= hi

    t3 = read_csv(out / "table3_smoothness.csv")
    assert len(t3) == 6 and "mode swaps / episode" in t3[0] and "median jerk [rad/s^3]" in t3[0]

    t5 = read_csv(out / "table5_sampling.csv")
    assert [(r["method"], r["sampling"]) for r in t5] == [
        ("MPC", "-"),
        ("LSM", "-"),
        ("DDPM-5 +G+ES", "none"),
        ("DDPM-5 +G+ES", "cluster"),
        ("DDPM-5 +G+ES", "cost"),
        ("DDPM-5 +G+ES", "safe"),
    ]
    for r in t5:
        for tol in ("10%", "1%"):
            lo, hi = (float(x) for x in r[f"{tol} pen. 95% CI"].strip("[]").split(","))
            assert lo <= float(r[f"{tol} pen. SR [%]"]) <= hi

    t4 = read_csv(out / "table4_timing.csv")
    assert t4[0]["method"] == "MPC (warm solve)"
    by = {r["method"]: r for r in t4}
    assert by["DDPM-5 +G+ES cost"]["samples"] == "4" and by["DDPM-5 +G+ES"]["samples"] == "1"
    assert all(float(r["speed-up p95"]) > 0 for r in t4)

    gap = read_csv(out / "optimality_gap.csv")
    assert {"gap mean", "gap median"} <= set(gap[0]) and int(gap[0]["states"]) >= 1

    data = json.loads((out / "episodes.json").read_text())
    eps = data["episodes"]
    assert len(eps) == 9  # 10 methods minus the skipped DDPM-40
    seeds = {k: [e["seed"] for e in v] for k, v in eps.items()}
    assert all(s == [1000, 1001] for s in seeds.values())
    assert {"mode_swaps", "median_jerk", "success", "max_penetration"} <= set(
        eps["obstacle/MPC"][0]
    )


def test_missing_checkpoint_is_a_note(tmp_path, checkpoints):
    cfg = tiny_config(tmp_path, {**checkpoints, "lsm": str(tmp_path / "nope")})
    policies, notes = load_checkpoints(cfg, "obstacle", 20)
    assert set(policies) == {"dampc"}
    assert len(notes) == 2 and any("--lsm" in n for n in notes)
    assert any("--dampc40" in n for n in notes)
    # a checkpoint for the other env (obs_dim 20 vs 16) is skipped too, not a crash
    policies, notes = load_checkpoints(cfg, "free", 16, needed=("dampc",))
    assert not policies and "obs_dim" in notes[0]
