"""``ampczoo bench envs --quick`` on the toy manipulation env (obs modes, a bare suite, a
scripted expert) and the 3-DOF arm (one mode, no suite, the IK-MPC expert): the tables' rows,
the ours / bare ratio from the same run, collection throughput with 1 and 2 workers."""

from __future__ import annotations

import csv
import math

import pytest
import toy_manip

from ampczoo import cli
from ampczoo.benchmarks.envs import EnvBenchConfig, run_env_bench


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    toy_manip.install(mp)
    cfg = EnvBenchConfig(
        envs=(toy_manip.GYM_ID, "ThreeDOF-Reach-v0"),
        quick=True,
        out=str(tmp_path_factory.mktemp("envs")),
    )
    try:
        yield cfg, run_env_bench(cfg)
    finally:
        mp.undo()


def test_step_table_has_each_mode_and_the_bare_ratio(run):
    cfg, result = run
    rows = {(r["env"], r["obs mode"]): r for r in result["steps"]}
    assert set(rows) == {
        (toy_manip.GYM_ID, "low_dim"),
        (toy_manip.GYM_ID, "image"),
        ("ThreeDOF-Reach-v0", "default"),  # no low_dim / image modes: its default
    }
    for (env, _), row in rows.items():
        for key in ("step mean [ms]", "step p95 [ms]", "reset mean [ms]", "reset p95 [ms]"):
            assert 0 < row[key] < 1e4, key  # (a mean may exceed the p95 after one spike)
        if env == toy_manip.GYM_ID:  # has a suite_env: timed in the same run
            assert row["bare step mean [ms]"] > 0
            ratio = row["step mean [ms]"] / row["bare step mean [ms]"]
            assert row["ours / bare"] == pytest.approx(ratio)
        else:
            assert math.isnan(row["ours / bare"])
    assert not result["notes"]
    written = read_csv(result["out"] / "step.csv")
    assert [(r["env"], r["obs mode"]) for r in written] == list(rows)


def test_collection_rows_for_each_worker_count(run, capsys):
    cfg, result = run
    rows = result["collection"]
    assert [(r["env"], r["workers"]) for r in rows] == [
        (toy_manip.GYM_ID, 1),
        (toy_manip.GYM_ID, 2),
        ("ThreeDOF-Reach-v0", 1),
        ("ThreeDOF-Reach-v0", 2),
    ]
    for row in rows:
        assert row["episodes"] == cfg.collect_episodes == 2 and row["errors"] == 0
        assert 0 < row["steps"] <= 2 * cfg.collect_steps
        assert row["episodes/min"] == pytest.approx(60 * 2 / row["wall [s]"])
    assert [r["expert"] for r in rows] == ["scripted", "scripted", "ikmpc", "ikmpc"]
    # the same seeds with 1 and 2 workers: the same episodes
    assert rows[0]["steps"] == rows[1]["steps"] and rows[0]["successful"] == rows[1]["successful"]
    assert (result["out"] / "collection.md").read_text().count("\n| ") == 1 + 4


def test_quick_config_and_cli_flags():
    cfg = cli.parse_config(EnvBenchConfig, ["--quick", "--envs", "A-v0", "--workers", "1"])
    assert (cfg.steps, cfg.resets, cfg.collect_episodes, cfg.collect_steps) == (30, 3, 2, 20)
    assert cfg.envs == ("A-v0",) and cfg.workers == (1,)
    cfg = cli.parse_config(EnvBenchConfig, ["--collect-kwargs", "compile", "False"])
    assert cfg.collect_kwargs == {"compile": False}
    for bad in ({"steps": 0}, {"workers": ()}, {"obs_modes": ("rgb",)}, {"collect_episodes": -1}):
        with pytest.raises(ValueError):
            EnvBenchConfig(**bad)


def test_an_env_that_cannot_be_made_is_a_note_not_a_crash(tmp_path):
    result = run_env_bench(
        EnvBenchConfig(envs=("NoSuchEnv-v0",), quick=True, out=str(tmp_path), collect_episodes=0)
    )
    assert result["steps"] == [] and result["collection"] == []
    assert "NoSuchEnv-v0: cannot make the env" in result["notes"][0]
    assert (result["out"] / "envs.json").is_file()


def test_an_env_without_an_expert_gets_one_note_and_no_collection(tmp_path):
    from ampczoo.benchmarks.envs import has_collector

    notes: list[str] = []
    assert not has_collector("MetaWorld-v0", EnvBenchConfig(quick=True), tmp_path, notes)
    assert len(notes) == 1 and "no collection rows" in notes[0] and "--policy" in notes[0]
    assert has_collector("Robomimic-Lift-v0", EnvBenchConfig(quick=True), tmp_path, [])
