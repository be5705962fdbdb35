"""`ampczoo bench constraints` end to end on one short episode per row (no trained refiners:
the rows that need checkpoints are skipped and noted)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ampczoo.benchmarks.constraints import ConstraintsBenchConfig, _qp_layer_rows
from ampczoo.cli import main


def _store(path):
    from ampczoo.data.store import Episode, EpisodeStore

    st = EpisodeStore(path)
    rng = np.random.default_rng(0)
    st.add_episodes(
        [
            Episode(
                e,
                e,
                6,
                data={
                    "obs": rng.normal(size=(6, 20)).astype(np.float32),
                    "u_seq": np.cumsum(0.3 * rng.normal(size=(6, 20, 7)), axis=1).astype(
                        np.float32
                    ),
                },
            )
            for e in range(4)
        ]
    )
    return path


def test_bench_constraints_runs_and_writes_tables(tmp_path):
    data = _store(tmp_path / "d.zarr")
    rc = main(
        [
            "bench",
            "constraints",
            "--episodes",
            "1",
            "--bases",
            "lsm",
            "--checkpoints",
            str(tmp_path / "none"),
            "--speed-batch",
            "2",
            "--speed-data",
            str(data),
            "--control-dt",
            "0.5",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    (run,) = tmp_path.glob("bench-constraints-*")
    table = (run / "constraints.md").read_text()
    for row in ("| lsm | base |", "| lsm | clipping |", "| lsm | penalty |", "| lsm | static Q |"):
        assert row in table
    episodes = json.loads((run / "episodes.json").read_text())["episodes"]
    assert episodes["lsm/clipping"][0]["viol"] == 0.0
    assert episodes["lsm/static Q"][0]["viol max"] < 1e-6  # QP output satisfies the bound
    with open(run / "constraints.csv") as f:
        by_method = {r["method"]: r for r in csv.DictReader(f)}
    assert 0.0 <= float(by_method["static Q"]["QP solver runs [%]"]) <= 100.0
    assert by_method["clipping"]["QP solver runs [%]"] in ("", "nan")  # no QP solved
    assert (run / "constraints.png").is_file() and (run / "training_speed.csv").is_file()
    speed = (run / "training_speed.md").read_text()
    assert "| QP layer | proxsuite |" in speed and "| QP layer | cvxpylayers |" in speed
    assert "no checkpoint" in (run / "README.md").read_text()
    fidelity = (run / "fidelity.md").read_text()
    assert "| demonstrations |" in fidelity and "| static Q |" in fidelity


QPTH_PYTHON = Path(__file__).resolve().parents[2] / ".venv-qpth" / "bin" / "python"


@pytest.mark.skipif(not QPTH_PYTHON.exists(), reason="no qpth side environment (.venv-qpth)")
def test_qpth_side_environment_row(tmp_path):
    """qpth (numpy<2) runs in its own venv on the same problems; it must match ProxSuite."""
    cfg = ConstraintsBenchConfig(speed_batch=2, qpth_python=str(QPTH_PYTHON))
    rows = _qp_layer_rows(cfg, tmp_path, {"u_seq": 0.1 * torch.randn(2, 20, 7)})
    qpth = rows[-1]
    assert qpth["backend"].startswith("qpth") and qpth["max abs dz"] < 1e-5
