"""``ampczoo bench manipulation``: rows on the same initial states, metrics, bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from ampczoo.benchmarks.manipulation import (
    ManipulationBenchConfig,
    constrained_dims,
    episode_metrics,
    resolve_checkpoints,
    run_manipulation_bench,
)
from ampczoo.wrappers.presets import PRESETS, suite_preset


def test_quick_run_writes_every_row_on_the_same_states(tmp_path):
    out = run_manipulation_bench(ManipulationBenchConfig(quick=True, out=str(tmp_path)))
    with open(out / "table.csv") as fh:
        rows = {r["method"]: r for r in csv.DictReader(fh)}
    assert list(rows) == ["base", "clipping", "penalty", "diffog (static Q)"]
    bound = PRESETS["robomimic"].bound
    for method in ("clipping", "diffog (static Q)"):  # hard bounds: no step over them
        assert float(rows[method]["over bound [% steps]"]) == 0.0
        assert float(rows[method]["d max"]) <= bound + 1e-6
        assert float(rows[method]["refine [ms/call]"]) > 0
    assert rows["base"]["refine [ms/call]"] == "nan"
    payload = json.loads((out / "episodes.json").read_text())
    seeds = {m: [e["seed"] for e in payload["episodes"] if e["row"] == m] for m in rows}
    assert all(s == [100000, 100001] for s in seeds.values())
    states = np.load(out / "initial_states-Robomimic-Lift-v0.npz")
    assert states["states"].shape[0] == 2 and list(states["seeds"]) == [100000, 100001]
    assert "row leto skipped" in (out / "table.md").read_text()
    assert (out / "fig8.png").stat().st_size > 0


@pytest.mark.slow
def test_workers_give_the_same_rows(tmp_path):
    kwargs = dict(episodes=2, max_steps=12, methods=("base", "clipping"), out=str(tmp_path))
    one = run_manipulation_bench(ManipulationBenchConfig(**kwargs))
    two = run_manipulation_bench(ManipulationBenchConfig(workers=2, **kwargs))
    drop = ("act [ms/step]", "refine [ms/call]")
    tables = []
    for out in (one, two):
        with open(out / "table.csv") as fh:
            tables.append(
                [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(fh)]
            )
    assert tables[0] == tables[1]


def test_metrics_of_known_actions():
    preset = suite_preset("Robomimic-Can-v0")
    actions = np.zeros((4, 7))
    actions[1, 0] = 0.05  # within the bound
    actions[2, 0] = 0.35  # a change of 0.3 > 0.1
    actions[3, 6] = 1.0  # the gripper is not constrained
    m = episode_metrics(actions, np.ones(7), preset, constrained_dims(preset, 7))
    assert m["d max"] == pytest.approx(0.35)  # 0.35 -> 0 at the last step
    assert m["over bound [%]"] == pytest.approx(100 * 2 / 3)
    assert m["excess"] == pytest.approx(0.25)
    assert m["max [m/s^2]"] == pytest.approx(20 * 0.35)
    assert m["max [rad/s^2]"] == 0.0
    # half range 2: the same raw actions are half as large in normalised units
    m2 = episode_metrics(actions, 2 * np.ones(7), preset, constrained_dims(preset, 7))
    assert m2["d max"] == pytest.approx(0.175)
    assert constrained_dims(preset, 14) == (0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12)
    assert constrained_dims(suite_preset("MetaWorld-StickPush-v0"), 4) == (0, 1, 2)
    assert constrained_dims(suite_preset("PushT-v0"), 2) == (0, 1)


def test_checkpoints_last_k(tmp_path):
    run = tmp_path / "run"
    for name in ("last", "best", "step-200", "step-100"):
        (run / name).mkdir(parents=True)
        (run / name / "config.json").write_text("{}")
    assert resolve_checkpoints(str(run), 1) == [str(run / "last")]
    assert resolve_checkpoints(str(run), 3) == [
        str(run / n) for n in ("step-100", "step-200", "last")
    ]
    with pytest.raises(ValueError, match="keeps 3 checkpoint"):
        resolve_checkpoints(str(run), 4)
    with pytest.raises(ValueError, match="single checkpoint"):
        resolve_checkpoints(str(run / "last"), 2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"base": ("Robomimic-Lift-v0",)}, "TASK=SPEC"),
        ({"base": ("Robomimic-Lift-v0=dp-lift", "Robomimic-Lift-v0=x")}, "twice"),
        ({"base": ("DAMPC-KukaTrack-v0=dampc-kuka",)}, "not a manipulation env"),
        ({"diffog": ("Robomimic-Can-v0=static",)}, "without a base"),
        ({"checkpoints": "best"}, "last:K"),
        ({"checkpoints": "last:0"}, "last:K"),
        ({"methods": ("base", "dagger")}, "methods"),
        ({"episodes": 0}, "episodes"),
        ({"workers": 0}, "workers"),
        ({"max_steps": 0}, "max_steps"),
    ],
)
def test_config_refuses_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ManipulationBenchConfig(**kwargs)


def test_dp_on_another_layout_is_refused_naming_both(tmp_path):
    cfg = ManipulationBenchConfig(base=("Robomimic-Can-v0=dp-lift",), out=str(tmp_path))
    with pytest.raises(ValueError, match="Robomimic-Lift-v0.*Robomimic-Can-v0") as err:
        run_manipulation_bench(cfg)
    assert "obs layout" in str(err.value)
    assert not list(tmp_path.iterdir())  # refused before any run folder or episode


def test_eval_refuses_dp_on_another_layout(tmp_path):
    """A checkpoint folder without a card: the policy's own layout check refuses it."""
    import shutil

    from ampczoo.benchmarks.evaluate import EvalConfig, run_eval
    from ampczoo.core.registry import resolve_checkpoint

    folder = tmp_path / "dp"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(resolve_checkpoint("dp-lift") / name, folder / name)
    cfg = EvalConfig(policy=str(folder), env="Robomimic-Can-v0", video=False, out=str(tmp_path))
    with pytest.raises(ValueError, match="Robomimic-Lift-v0.*obs layout.*Robomimic-Can-v0"):
        run_eval(cfg)


def test_initial_states_of_an_earlier_run(tmp_path):
    from ampczoo.benchmarks.manipulation import initial_states, states_path

    states = np.arange(6.0).reshape(2, 3)
    np.savez(tmp_path / "initial_states-Robomimic-Can-v0.npz", seeds=[7, 9], states=states)
    path = states_path(str(tmp_path), "Robomimic-Can-v0")
    seeds, loaded = initial_states(None, [1, 2, 3], path)  # the file's seeds win
    assert seeds == [7, 9] and np.array_equal(np.stack(loaded), states)
    assert states_path("", "Robomimic-Can-v0") == ""
    with pytest.raises(ValueError, match="no initial states file"):
        states_path(str(tmp_path), "Robomimic-Square-v0")
    np.savez(tmp_path / "bad.npz", x=[1])
    with pytest.raises(ValueError, match="not an initial_states"):
        initial_states(None, [1], str(tmp_path / "bad.npz"))
