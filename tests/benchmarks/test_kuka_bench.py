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
from ampczoo.benchmarks.kuka import (
    METHODS,
    KukaBenchConfig,
    load_checkpoints,
    run_kuka_benchmark,
    selected_methods,
)
from ampczoo.benchmarks.modes import chosen_mode_labels, cluster_sequences, count_label_switches


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


def test_jerk_of_cubic_position_at_two_rates():
    """q(t) = t^3 on every joint: u = dq/dt = 3 t^2, jerk d^3q/dt^3 = 6 rad/s^3 per joint at
    50 and at 250 Hz; a velocity step of 1 rad/s is 1/dt^2 (25x more at 250 Hz than at 50)."""
    for dt in (1 / 50, 1 / 250):
        t = dt * np.arange(round(2.0 / dt))
        u = np.repeat((3.0 * t**2)[:, None], 7, axis=1)
        j = jerk_norms(u, dt)
        assert j.shape == (len(t) - 2,)
        np.testing.assert_allclose(j, 6.0 * np.sqrt(7), rtol=1e-6)
    step = np.zeros((4, 7))
    step[2:, 0] = 1.0
    np.testing.assert_allclose(jerk_norms(step, 1 / 250)[0], 250.0**2)
    np.testing.assert_allclose(jerk_norms(step, 1 / 250)[0] / jerk_norms(step, 1 / 50)[0], 25.0)


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


def test_count_label_switches():
    assert count_label_switches([0, 0, 1, 1, 0, 2, 2]) == 3
    assert count_label_switches([0, 0, 0]) == 0
    assert count_label_switches([]) == 0
    # invalid steps (-1: no sequence) are skipped: 0 -> 0 is no swap, 0 -> 1 is one
    assert count_label_switches([0, -1, 0, -1, -1, 1]) == 1


def test_cluster_sequences_threshold():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(10, 7))
    near_a = a + 0.01 * rng.normal(size=(5, 10, 7))
    near_b = -a + 0.01 * rng.normal(size=(3, 10, 7))
    seqs = np.concatenate([near_a, near_b])
    lab = cluster_sequences(seqs, 0.25)
    assert len(set(lab[:5])) == 1 and len(set(lab[5:])) == 1 and lab[0] != lab[5]
    assert len(set(cluster_sequences(seqs, 10.0))) == 1  # above the modes' distance: one mode
    assert cluster_sequences(seqs[:1], 0.25).tolist() == [0]
    with pytest.raises(ValueError, match="threshold"):
        cluster_sequences(seqs, 0.0)
    with pytest.raises(ValueError, match="linkage"):
        cluster_sequences(seqs, 0.25, "ward-ish")
    with pytest.raises(ValueError, match="NaN"):
        cluster_sequences(np.full((2, 10, 7), np.nan), 0.25)


def _two_mode_loop(pattern, rng, noise=0.01):
    """Selected sequences following ``pattern`` (0 = mode A, 1 = mode B = -A), each mode
    receding-horizon consistent (advanced one step per evaluated step), and per-step
    candidates: 4 noisy samples of each mode."""
    A = rng.normal(size=(12, 7))
    selected, candidates = [], []
    for j, m in enumerate(pattern):
        cur = [shift_sequence(M, float(j)) for M in (A, -A)]
        selected.append(cur[m] + noise * rng.normal(size=A.shape))
        candidates.append(np.stack([c + noise * rng.normal(size=A.shape) for c in cur * 4]))
    return selected, candidates


def test_chosen_mode_labels_counts_known_switches():
    rng = np.random.default_rng(0)
    pattern = [0, 0, 0, 1, 1, 0, 0, 0, 1, 0]  # swaps at steps 3, 5, 8, 9
    selected, candidates = _two_mode_loop(pattern, rng)
    labels = chosen_mode_labels(selected, candidates, shift=1.0, threshold=0.25)
    assert count_label_switches(labels) == 4
    # a return to mode A is recognised as A: two distinct modes chosen, not five
    assert labels.tolist() == pattern
    # without candidates a state has one mode: no swap however far the plan jumps (LSM)
    labels = chosen_mode_labels(selected, [np.zeros((0, 12, 7))] * 10, 1.0, 0.25)
    assert count_label_switches(labels) == 0
    # a plan that drifts by more than the threshold within one mode is no swap either;
    # the same drift with the other mode present, the selection taking it, is one
    sel = [np.zeros((12, 7)), np.full((12, 7), 0.5)]
    one_mode = [np.zeros((0, 12, 7)), np.full((4, 12, 7), 0.5)]
    assert count_label_switches(chosen_mode_labels(sel, one_mode, 1.0, 0.25)) == 0
    two_modes = [np.zeros((0, 12, 7)), np.concatenate([one_mode[1], np.zeros((4, 12, 7))])]
    assert count_label_switches(chosen_mode_labels(sel, two_modes, 1.0, 0.25)) == 1
    # a consistent loop: no swaps with noise below the threshold
    selected, candidates = _two_mode_loop([1] * 8, rng, noise=0.03)
    assert count_label_switches(chosen_mode_labels(selected, candidates, 1.0, 0.25)) == 0
    # a failed step (None) is skipped: the swap across it counts once
    selected, candidates = _two_mode_loop([0, 0, 1, 1], rng)
    selected[2] = None
    labels = chosen_mode_labels(selected, candidates, 1.0, 0.25)
    assert labels[2] == -1 and count_label_switches(labels) == 1
    with pytest.raises(ValueError, match="length"):
        chosen_mode_labels(selected, candidates[:2], 1.0, 0.25)


def test_rows_are_the_papers():
    """Table I / III rows and their DAMPC settings as in the paper (vanilla where it is)."""
    by = {m.key: m for m in METHODS}
    paper = [m for m in METHODS if "tracking" in m.paper]
    assert [m.name for m in paper] == [
        "MPC",
        "LSM",
        "DDPM-5 +∇G+ES",
        "DDPM-5 +∇G",
        "DDPM-40",
        "DDPM-5",
        "DDIM-5",
    ]
    assert [m.key for m in METHODS if "smoothness" in m.paper] == [m.key for m in paper]
    cfg = KukaBenchConfig(guidance_scale=0.3)
    settings = {
        # key: (checkpoint, sampler, guided, early stop, all N_I steps)
        "ddpm5-g-es": ("dampc", "ddpm", True, True, False),
        "ddpm5-g": ("dampc", "ddpm", True, False, False),
        "ddpm40": ("dampc40", "ddpm", False, False, True),
        "ddpm5": ("dampc", "ddpm", False, False, False),
        "ddim5": ("dampc", "ddim", False, False, False),
    }
    for key, (ckpt, sampler, guided, es, all_steps) in settings.items():
        m = by[key]
        kw = m.act_kwargs(cfg)
        got = (m.checkpoint, kw["sampler"], kw["guidance_scale"] > 0, kw["early_stop"])
        assert got + (m.all_steps,) == (ckpt, sampler, guided, es, all_steps), key
        assert kw["guidance_scale"] in (0.0, 0.3)
        assert kw["selection"] == "none" and kw["num_samples"] is None
    assert by["mpc"].act_kwargs(cfg) == {} and by["lsm"].act_kwargs(cfg) == {}
    # our extra rows are marked in the tables where the paper has no such row
    assert by["ddpm5-es"].label("tracking") == "DDPM-5 +ES (ours)"
    assert by["ddpm40-g-es"].label("tracking") == "DDPM-40 +∇G+ES (ours)"
    assert by["ddpm40-g-es"].label("timing") == "DDPM-40 +∇G+ES"  # Table IV has it
    assert by["ddim5-g-es"].label("smoothness") == "DDIM-5 +∇G+ES (ours)"
    assert by["ddpm5-g-es"].label("tracking") == "DDPM-5 +∇G+ES"
    for sel in ("cluster", "cost", "safe"):
        assert by[sel].selection == sel and by[sel].guidance and by[sel].early_stop
    # row selection from the CLI
    picked = selected_methods(KukaBenchConfig(methods=("ddim5", "mpc")))
    assert [m.key for m in picked] == ["mpc", "ddim5"]
    with pytest.raises(ValueError, match="unknown methods"):
        KukaBenchConfig(methods=("ddpm7",))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        {"mode_threshold": 0.0},
        {"mode_every": 0},
        {"mode_samples": 0},
        {"mode_guesses": -1},
        {"jerk_rate_hz": -1.0},
        {"jerk_rate_hz": float("nan")},
    ],
)
def test_bad_mode_options(bad):
    with pytest.raises(ValueError):
        KukaBenchConfig(**bad)


def test_bad_obstacle_placement():
    with pytest.raises(ValueError, match="obstacle_placement"):
        KukaBenchConfig(obstacle_placement="left")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs the obstacle env"):
        KukaBenchConfig(envs=("free",), obstacle_placement="between")


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
        mode_every=2,
        mode_samples=4,
        mode_guesses=2,
        jerk_rate_hz=20.0,
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
    assert "DDPM-40 +∇G+ES" in printed and "skipped" in printed  # missing checkpoint: a note
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
        "DDPM-5 +∇G+ES",
        "DDPM-5 +∇G",
        "DDPM-5",
        "DDIM-5",
        "DDPM-5 +ES (ours)",
        "DDIM-5 +∇G+ES (ours)",
    ]
    by1 = {r["method"]: r for r in t1}
    assert (by1["DDPM-5 +∇G"]["∇G"], by1["DDPM-5 +∇G"]["ES"]) == ("yes", "-")
    assert (by1["DDIM-5"]["∇G"], by1["DDIM-5"]["ES"]) == ("-", "-")
    for col in ("ATE [mm]", "ARE [deg]", "SR [%]", "SR 95% CI", "TRT [s]", "N_I", "∇G", "ES"):
        assert col in t1[0]
    for r in t1:
        lo, hi = (float(x) for x in r["SR 95% CI"].strip("[]").split(","))
        assert lo <= float(r["SR [%]"]) <= hi

    t3 = read_csv(out / "table3_smoothness.csv")
    assert [r["method"] for r in t3] == [r["method"] for r in t1]
    for col in (
        "mode swaps / episode",
        "mode swaps [% of transitions]",
        "modes chosen / episode",
        "median jerk @10 Hz [rad/s^3]",
        "median jerk @20 Hz [rad/s^3]",
        "RMS-jump swaps / episode (ours)",
    ):
        assert col in t3[0], col
    for r in t3:
        assert float(r["modes chosen / episode"]) >= 1.0
        assert float(r["mode swaps / episode"]) <= float(r["modes chosen / episode"]) * 3
        assert float(r["median jerk @20 Hz [rad/s^3]"]) >= 0.0

    t5 = read_csv(out / "table5_sampling.csv")
    assert [(r["method"], r["sampling"]) for r in t5] == [
        ("MPC", "-"),
        ("LSM", "-"),
        ("DDPM-5 +∇G+ES", "none"),
        ("DDPM-5 +∇G+ES", "cluster"),
        ("DDPM-5 +∇G+ES", "cost"),
        ("DDPM-5 +∇G+ES", "safe"),
    ]
    for r in t5:
        for tol in ("10%", "1%"):
            lo, hi = (float(x) for x in r[f"{tol} pen. 95% CI"].strip("[]").split(","))
            assert lo <= float(r[f"{tol} pen. SR [%]"]) <= hi

    t4 = read_csv(out / "table4_timing.csv")
    assert t4[0]["method"] == "MPC (warm solve)"
    by = {r["method"]: r for r in t4}
    assert by["DDPM-5 +∇G+ES cost"]["samples"] == "4" and by["DDPM-5 +∇G+ES"]["samples"] == "1"
    assert "LSM (ours)" in by and "DDPM-5 (ours)" in by  # not rows of the paper's Table IV
    assert all(float(r["speed-up p95"]) > 0 for r in t4)

    gap = read_csv(out / "optimality_gap.csv")
    assert {"gap mean", "gap median"} <= set(gap[0]) and int(gap[0]["states"]) >= 1

    data = json.loads((out / "episodes.json").read_text())
    eps = data["episodes"]
    assert len(eps) == len(METHODS) - 2  # minus the skipped DDPM-40 rows
    seeds = {k: [e["seed"] for e in v] for k, v in eps.items()}
    assert all(s == [1000, 1001] for s in seeds.values())
    assert {"mode_swaps", "rms_jump_swaps", "median_jerk", "success", "max_penetration"} <= set(
        eps["obstacle/MPC"][0]
    )
    assert len(eps["obstacle/MPC"][0]["mode_labels"]) == 3  # steps 0, 2, 4 of 6


def test_missing_checkpoint_is_a_note(tmp_path, checkpoints):
    cfg = tiny_config(tmp_path, {**checkpoints, "lsm": str(tmp_path / "nope")})
    policies, notes = load_checkpoints(cfg, "obstacle", 20)
    assert set(policies) == {"dampc"}
    assert len(notes) == 2 and any("--lsm" in n for n in notes)
    assert any("--dampc40" in n for n in notes)
    # a checkpoint for the other env (obs_dim 20 vs 16) is skipped too, not a crash
    policies, notes = load_checkpoints(cfg, "free", 16, needed=("dampc",))
    assert not policies and "obs_dim" in notes[0]


def test_obstacle_placement_reaches_every_env_of_the_run(tmp_path, checkpoints, monkeypatch):
    """--obstacle-placement between: the closed-loop and jerk-rate envs are made with it, and
    the sphere of the run's episodes sits between start and target (not the fixed one)."""
    import gymnasium as gym

    made = []
    make = gym.make

    def spy(env_id, **kw):
        env = make(env_id, **kw)
        made.append((kw, env))
        return env

    monkeypatch.setattr(gym, "make", spy)
    cfg = tiny_config(tmp_path, checkpoints, methods=("lsm",), episodes=1)
    cfg = KukaBenchConfig(**{**cfg.__dict__, "obstacle_placement": "between"})
    run_kuka_benchmark(cfg)
    assert len(made) >= 2  # the closed loop's env and the jerk-rate env
    fixed = make("DAMPC-KukaTrackObstacle-v0").unwrapped
    fixed.reset(seed=cfg.seed)
    for kw, env in made:
        assert kw["obstacle_placement"] == "between"
        ob = env.unwrapped
        assert ob.obstacle_placement == "between"
        ob.reset(seed=cfg.seed)
        assert not np.allclose(ob.obstacle.centre, fixed.obstacle.centre)


def test_default_checkpoints_follow_the_obstacle_placement():
    """The fixed-sphere zoo checkpoints stay the defaults of the paper's env; the multi-modal
    scenario gets the ones trained on it (or a name that is skipped with a note)."""
    from ampczoo.benchmarks.kuka import default_checkpoint

    assert default_checkpoint("dampc", "obstacle") == "dampc-kuka-obstacle"
    assert default_checkpoint("lsm", "obstacle") == "lsm-kuka-obstacle"
    assert default_checkpoint("dampc", "free") == "dampc-kuka"
    for kind in ("lsm", "dampc"):
        name = default_checkpoint(kind, "obstacle", "between")
        assert name == f"{kind}-kuka-multimodal"
        if name in ampczoo.list_policies():
            assert ampczoo.zoo_card(name)["env_kwargs"]["obstacle_placement"] == "between"
    cfg = KukaBenchConfig(obstacle_placement="between")
    assert cfg.checkpoint("dampc", "obstacle") == "dampc-kuka-multimodal"
    assert cfg.checkpoint("dampc", "free") == "dampc-kuka"
