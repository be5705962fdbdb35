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
    # last/ at the newest snapshot's step is that snapshot, not one more checkpoint
    (run / "last" / "train_state.json").write_text('{"step": 200}')
    assert resolve_checkpoints(str(run), 2) == [str(run / n) for n in ("step-100", "step-200")]
    with pytest.raises(ValueError, match="keep-checkpoints 3"):
        resolve_checkpoints(str(run), 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"base": ("Robomimic-Lift-v0",)}, "TASK=SPEC"),
        ({"base": ("Robomimic-Lift-v0=dp-lift", "Robomimic-Lift-v0=x")}, "twice"),
        ({"base": ("DAMPC-KukaTrack-v0=dampc-kuka",)}, "not a manipulation env"),
        ({"diffog": ("Robomimic-Can-v0=static",)}, "without a base"),
        ({"diffog": ("Robomimic-Lift-v0=static:-1",)}, "ALPHA"),
        ({"diffog": ("Robomimic-Lift-v0=static:x",)}, "ALPHA"),
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


# ------------------------------------------------------- Tables VIII and X: constraint variants
SCHEDULE = (0.05, 0.1, 0.2)  # bounds of 10-step phases (Table VIII's shape, shorter phases)


def test_bench_under_a_schedule_and_a_magnitude_bound(tmp_path):
    cfg = ManipulationBenchConfig(
        quick=True,
        methods=("base", "clipping", "penalty", "diffog"),
        bound_schedule=SCHEDULE,
        phase_steps=10,
        max_abs=0.5,
        out=str(tmp_path),
    )
    out = run_manipulation_bench(cfg)
    with open(out / "table.csv") as fh:
        rows = {r["method"]: r for r in csv.DictReader(fh)}
    for method in ("clipping", "diffog (static Q)"):  # hard bounds: none over, per phase
        row = rows[method]
        assert float(row["over bound [% steps]"]) == 0.0
        assert float(row["max excess"]) <= 1e-6
        for i, bound in enumerate(SCHEDULE, start=1):
            assert float(row[f"P{i} over [% steps]"]) == 0.0
            assert float(row[f"P{i} d max"]) <= bound + 1e-6
        assert float(row["over |a| bound [% steps]"]) == 0.0
        assert float(row["|a| max"]) <= 0.5 + 1e-6
    tol = PRESETS["robomimic"].penalty_tol  # penalty stops within its tolerance
    assert float(rows["penalty"]["max excess"]) <= tol
    assert float(rows["penalty"]["max |a| excess"]) <= tol
    # the unconstrained base goes over the first phase's 0.05 (it is measured, not bounded)
    assert float(rows["base"]["P1 over [% steps]"]) > 0
    text = (out / "table.md").read_text()
    assert "0.05 / 0.1 / 0.2 per 10-step phase" in text and "|a| <= 0.5" in text
    payload = json.loads((out / "episodes.json").read_text())
    assert payload["constraints"] == {
        "bound_schedule": list(SCHEDULE),
        "phase_steps": 10,
        "max_abs": 0.5,
    }


def test_every_executed_action_keeps_its_phase_bound_and_magnitude():
    """Straight from the rollouts (not the table): each action a_t of the QP rows changes by
    at most the bound of step t's phase and stays within |a| <= max_abs on the arm dims."""
    import gymnasium as gym

    import ampczoo.envs  # noqa: F401
    from ampczoo.benchmarks.manipulation import Constraints, RowSpec, row_policy, run_rollout
    from ampczoo.wrappers.chunk import BoundSchedule

    variant = Constraints(SCHEDULE, 10, 0.4)
    env = gym.make("Robomimic-Lift-v0", max_episode_steps=35)
    try:
        for method, refiner in (("diffog", "static"), ("clipping", "")):
            policy = row_policy(
                RowSpec(method, "dp-lift", refiner, variant), "Robomimic-Lift-v0", 7
            )
            a = run_rollout(env, policy, 100000, None)["actions"][:, :6]  # gripper: free
            steps = np.arange(1, len(a))
            bound = BoundSchedule(SCHEDULE, 10).at(steps)[:, None]
            assert len(a) > 30 and set(steps // 10) == {0, 1, 2, 3}
            assert np.all(np.abs(np.diff(a, axis=0)) <= bound + 1e-6), method
            assert np.all(np.abs(a) <= 0.4 + 1e-6), method
    finally:
        env.close()


def test_phase_metrics_of_known_actions():
    from ampczoo.benchmarks.manipulation import Constraints

    preset = suite_preset("Robomimic-Can-v0")
    actions = np.zeros((25, 7))
    actions[5, 0] = 0.08  # step 5 (phase 1, bound 0.05): over, and back at step 6
    actions[15:, 1] = 0.15  # step 15 (phase 2, bound 0.1): over once
    actions[22:, 1] = 0.3  # step 22 (phase 3, bound 0.2): a change of 0.15, within
    variant = Constraints(SCHEDULE, 10, 0.2)
    m = episode_metrics(actions, np.ones(7), preset, constrained_dims(preset, 7), variant)
    assert m["P1 transitions"] == 9 and m["P2 transitions"] == 10 and m["P3 transitions"] == 5
    assert m["P1 d max"] == pytest.approx(0.08)
    assert m["P1 over [%]"] == pytest.approx(100 * 2 / 9)
    assert m["P2 over [%]"] == pytest.approx(10.0)
    assert m["P3 d max"] == pytest.approx(0.15) and m["P3 over [%]"] == 0.0
    assert m["over bound [%]"] == pytest.approx(100 * 3 / 24)
    assert m["excess"] == pytest.approx(0.05)  # 0.15 over phase 2's 0.1
    assert m["|a| max"] == pytest.approx(0.3)
    assert m["over |a| [%]"] == pytest.approx(100 * 3 / 25)  # |0.3| > 0.2 at steps 22-24
    assert m["|a| excess"] == pytest.approx(0.1)
    # no schedule: the suite's static bound 0.1 (the 0.15 changes are over it, 0.08 not)
    static = episode_metrics(actions, np.ones(7), preset, constrained_dims(preset, 7))
    assert static["over bound [%]"] == pytest.approx(100 * 2 / 24)
    assert "P1 d max" not in static and "over |a| [%]" not in static


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"bound_schedule": (0.05, 0.0)}, "bounds"),
        ({"bound_schedule": (-0.1,)}, "bounds"),
        ({"bound_schedule": (0.1, float("nan"))}, "bounds"),
        ({"bound_schedule": (0.1,), "phase_steps": 0}, "phase_steps"),
        ({"phase_steps": -40}, "phase_steps"),
        ({"max_abs": 0.0}, "max_abs"),
        ({"max_abs": -0.5}, "max_abs"),
        ({"max_abs": float("inf")}, "max_abs"),
        ({"max_abs": float("nan")}, "max_abs"),
    ],
)
def test_config_refuses_bad_constraint_variants(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ManipulationBenchConfig(**kwargs)


def test_cli_flags_of_the_constraint_variants(capsys):
    from ampczoo import cli

    flags = ["--bound-schedule", "0.05", "0.1", "0.2", "0.3", "--phase-steps", "40"]
    cfg = cli.parse_config(ManipulationBenchConfig, [*flags, "--max-abs", "0.5"])
    assert cfg.bound_schedule == (0.05, 0.1, 0.2, 0.3) and cfg.max_abs == 0.5
    assert cfg.schedule() is not None and cfg.schedule().at(
        np.array([0, 40, 80, 500])
    ).tolist() == [
        0.05,
        0.1,
        0.2,
        0.3,
    ]
    assert cli.main(["bench", "manipulation", "--max-abs", "0"]) == 2
    assert "max_abs must be a finite number > 0" in capsys.readouterr().err


def test_static_diffog_spec_sets_the_smoothing_weight_and_the_row_label():
    from ampczoo.benchmarks.manipulation import RowSpec, row_label, row_policy

    default = row_policy(RowSpec("diffog", "dp-lift", "static"), "Robomimic-Lift-v0", 7)
    zero = row_policy(RowSpec("diffog", "dp-lift", "static:0"), "Robomimic-Lift-v0", 7)
    assert default.refiner.config.alpha == suite_preset("Robomimic-Lift-v0").alpha == 4
    assert zero.refiner.config.alpha == 0.0
    assert row_label(RowSpec("diffog", "dp-lift", "static:0")) == "diffog (static Q, alpha 0)"
    assert row_label(RowSpec("diffog", "dp-lift", "static")) == "diffog (static Q)"


def test_success_per_checkpoint_keeps_the_order_and_the_spread():
    from ampczoo.benchmarks.manipulation import success_per_checkpoint

    episodes = [
        {"checkpoint": c, "success": s} for c, s in [("b", 1), ("a", 0), ("b", 1), ("a", 1)]
    ]
    out = success_per_checkpoint(episodes)
    assert out["SR per checkpoint [%]"] == "100 / 50"
    assert out["SR std over checkpoints"] == pytest.approx(25.0)
    assert success_per_checkpoint(episodes[:1])["SR std over checkpoints"] == 0.0
