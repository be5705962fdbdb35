"""`ampczoo bench threedof` on two targets with a tiny untrained checkpoint."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from ampczoo.benchmarks.threedof import (
    ThreeDOFBenchConfig,
    run_threedof_bench,
    settling_time,
    summarize,
)
from ampczoo.core.registry import make_policy


def test_settling_time():
    e = np.array([1.0, 0.5, 0.04, 0.06, 0.04, 0.01])
    assert settling_time(e, 1.0, 0.1) == pytest.approx(0.5)  # inside from step 5 on
    assert np.isnan(settling_time(np.array([1.0, 0.2]), 1.0, 0.1))


def test_bench_writes_tables_plot_and_episodes(tmp_path):
    ckpt = make_policy("ffn", history=2, hidden_dim=8, num_layers=1).save_pretrained(
        tmp_path / "ffn"
    )
    gru = make_policy("gru", history=2, hidden_dim=8, num_layers=1).save_pretrained(
        tmp_path / "gru"
    )
    cfg = ThreeDOFBenchConfig(
        episodes=2,
        ood_episodes=1,
        experts=("osqp",),
        policies=(str(ckpt), str(gru), str(tmp_path / "missing")),
        ablation=(f"2={ckpt}",),
        stateful=True,
        out=str(tmp_path / "runs"),
    )
    out = run_threedof_bench(cfg)
    for name in ("table_main", "table_ablation", "table_ood"):
        assert (out / f"{name}.md").is_file() and (out / f"{name}.csv").is_file()
    assert (out / "error_vs_time.png").stat().st_size > 0
    rows = {r["method"]: r for r in csv.DictReader(open(out / "table_main.csv"))}
    # the missing checkpoint is skipped; the GRU also runs with its state carried
    assert set(rows) == {"IK-MPC (OSQP)", "FFN H=2", "GRU H=2", "GRU H=2 stateful"}
    assert float(rows["IK-MPC (OSQP)"]["SR@2cm [%]"]) == 100.0
    assert float(rows["FFN H=2"]["speed-up vs OSQP"]) > 0
    episodes = json.loads((out / "episodes.json").read_text())["episodes"]
    assert [e["seed"] for e in episodes["IK-MPC (OSQP)"]] == [100_000, 100_001]
    assert len(episodes["FFN H=2 @ood"]) == 1


def test_summarize_success_thresholds():
    from ampczoo.benchmarks.threedof import ReachEpisode

    eps = [
        ReachEpisode(0, f, f, 1.0, False, 0.3, np.array([0.3, f]), np.array([1e-3, 1e-3]))
        for f in (0.01, 0.025, 0.04, 0.2)
    ]
    row = summarize(eps)
    assert (row["SR@2cm [%]"], row["SR@3cm [%]"], row["SR@5cm [%]"]) == (25.0, 50.0, 75.0)
    assert row["act mean [ms]"] == pytest.approx(1.0)
