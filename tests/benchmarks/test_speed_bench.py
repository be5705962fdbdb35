"""`ampczoo bench speed` on three small zoo checkpoints (a 3-DOF history policy, DAMPC and a
DiffOG refiner on it) with a few calls: the tables' rows and columns, speed-ups computed from
the expert's warm solves of the same run, onnxruntime actions equal to torch's."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from ampczoo import cli
from ampczoo.benchmarks.speed import (
    ENV_EXPERTS,
    Recording,
    SpeedBenchConfig,
    batch1_calls,
    batch_obs,
    run_speed_bench,
    zoo_names,
)
from ampczoo.core.registry import list_policies, zoo_card

POLICIES = ("threedof-gru-h10", "dampc-kuka-obstacle", "diffog-matrix-kuka-obstacle")


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("speed")
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp / "cache"))  # ONNX exports of this run only
    cfg = SpeedBenchConfig(
        policies=POLICIES,
        batch_sizes=(1, 8),
        threads=(1,),
        episodes=1,
        calls=6,
        batch_calls=3,
        warmup=1,
        cuda=False,
        out=str(tmp / "runs"),
    )
    try:
        out = run_speed_bench(cfg)
    finally:
        mp.undo()
    return cfg, out


def test_writes_tables_plot_and_command(run):
    _, out = run
    for name in ("speed.md", "speed.csv", "experts.md", "experts.csv", "speed_p95.png"):
        assert (out / name).is_file(), name
    readme = (out / "README.md").read_text()
    assert readme.startswith("Command: `")
    assert "not timed" not in readme  # every variant ran, the refiner's onnxruntime too


def test_rows_and_columns(run):
    cfg, out = run
    rows = read_csv(out / "speed.csv")
    keys = {(r["policy"].split()[0], r["timed"], r["backend"], r["batch"]) for r in rows}
    expected = {
        (p, "act()", b, B)
        for p in POLICIES[:2]
        for b in ("torch", "onnxruntime")
        for B in ("1", "8")
    }
    expected |= {
        (POLICIES[2], part, b, "1")
        for part in ("act()", "refine()")
        for b in ("torch", "onnxruntime")
    }
    assert keys == expected
    assert len(rows) == len(expected)
    for r in rows:
        assert r["calls"] == str(cfg.calls if r["batch"] == "1" else cfg.batch_calls)
        assert r["threads"] == "1" and r["device"] == "cpu"
        mean, p95, mx = (float(r[k]) for k in ("mean [ms]", "p95 [ms]", "max [ms]"))
        assert 0 < mean <= mx and 0 < p95 <= mx
    over = {r["policy"].split()[0]: r["batched over"] for r in rows if r["batch"] == "8"}
    assert over == {POLICIES[0]: "observations", POLICIES[1]: "samples (cost)"}
    refiner = [r for r in rows if r["policy"].startswith(POLICIES[2])]
    assert all(r["policy"] == f"{POLICIES[2]} on dampc-kuka-obstacle" for r in refiner)
    act, refine = (next(r for r in refiner if r["timed"] == p) for p in ("act()", "refine()"))
    assert float(refine["mean [ms]"]) < float(act["mean [ms]"])  # refine is part of act


def test_speedups_from_the_same_run(run):
    _, out = run
    experts = {r["env"]: r for r in read_csv(out / "experts.csv")}
    assert set(experts) == {"ThreeDOF-Reach-v0", "DAMPC-KukaTrackObstacle-v0"}
    assert experts["ThreeDOF-Reach-v0"]["expert"] == "ikmpc (osqp)"
    assert experts["DAMPC-KukaTrackObstacle-v0"]["expert"] == "mpc (fatrop)"
    assert int(experts["DAMPC-KukaTrackObstacle-v0"]["warm solves"]) == 49  # 50 steps - cold
    for r in read_csv(out / "speed.csv"):
        e = experts[r["env"]]
        for stat in ("p95", "max"):
            ratio = float(e[f"{stat} [ms]"]) / float(r[f"{stat} [ms]"])
            assert float(r[f"speed-up {stat}"]) == pytest.approx(ratio, rel=1e-9)


def test_onnxruntime_actions_equal_torch(run):
    _, out = run
    rows = read_csv(out / "speed.csv")
    ort = [r for r in rows if r["backend"] == "onnxruntime"]
    assert len(ort) == 6  # the refiner's act() and refine() too
    for r in ort:
        assert float(r["max |Δa| vs torch"]) <= 1e-4, r
    assert all(r["max |Δa| vs torch"] == "-" for r in rows if r["backend"] == "torch")


def test_replay_order():
    obs = [np.arange(3.0)[:, None] + 10 * e for e in range(2)]
    rec = Recording("x", "mpc", [(7, obs[0]), (8, obs[1])], np.ones(3))
    calls = list(batch1_calls(rec, 7))
    assert [s for s, _ in calls] == [7, None, None, 8, None, None, 7]  # reset per episode
    assert [float(o[0]) for _, o in calls] == [0, 1, 2, 10, 11, 12, 0]
    pool = rec.pool
    assert batch_obs(pool, 1, 2)[:, 0].tolist() == [1.0, 11.0]  # rows P / B apart


def test_every_timed_zoo_env_has_an_expert():
    kuka_and_arm = [n for n in list_policies() if zoo_card(n)["env"] in ENV_EXPERTS]
    assert kuka_and_arm and set(zoo_names()) == set(kuka_and_arm)
    others = set(list_policies()) - set(kuka_and_arm)  # e.g. dp-lift: no MPC to time against
    for name in others:
        with pytest.raises(ValueError, match="MPC / IK-MPC"):
            SpeedBenchConfig(policies=(name,))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"policies": ("no-such-policy",)},
        {"backends": ()},
        {"backends": ("tensorrt",)},
        {"batch_sizes": (0,)},
        {"batch_sizes": ()},
        {"threads": (-1,)},
        {"calls": 0},
        {"batch_calls": 0},
        {"episodes": 0},
        {"warmup": -1},
        {"sample_selection": "best"},
        {"mpc_solver": "osqp"},
    ],
)
def test_invalid_config(kwargs):
    with pytest.raises(ValueError):
        SpeedBenchConfig(**kwargs)


def test_defaults_and_quick():
    cfg = SpeedBenchConfig()
    assert cfg.selected() == tuple(n for n in list_policies() if zoo_card(n)["env"] in ENV_EXPERTS)
    assert cfg.batch_sizes == (1, 100) and cfg.backends == ("torch", "onnxruntime")
    quick = SpeedBenchConfig(quick=True)
    assert (quick.episodes, quick.calls, quick.batch_calls) == (1, 20, 5)
    assert SpeedBenchConfig(threads=(1, 0, 1)).thread_counts()[0] == 1


def test_cli_help_lists_the_fields(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert cli.main(["bench", "speed", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--policies", "--backends", "--batch-sizes", "--threads", "--calls"):
        assert flag in text, flag
    assert "--sample-selection" in text and "--mpc-solver" in text and "--quick" in text
    assert cli.main(["bench", "speed", "--calls", "0"]) == 2
    assert "calls" in capsys.readouterr().err


def test_variants_add_gpu_rows_only_with_cuda(monkeypatch):
    import torch

    from ampczoo.benchmarks import speed

    cfg = SpeedBenchConfig(threads=(1,))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu = speed.variants(cfg)
    assert {(v.backend, v.device) for v in cpu} == {("torch", "cpu"), ("onnxruntime", "cpu")}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(speed, "ort_cuda_available", lambda: False)
    assert speed.variants(cfg) == [*cpu, speed.Variant("torch", "cuda", 1)]
    monkeypatch.setattr(speed, "ort_cuda_available", lambda: True)
    assert speed.variants(cfg)[-1] == speed.Variant("onnxruntime", "cuda", 1)
    assert all(v.device == "cpu" for v in speed.variants(SpeedBenchConfig(cuda=False)))
