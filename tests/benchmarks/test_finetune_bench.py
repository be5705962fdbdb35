"""``ampczoo bench finetune``: base and fine-tuned rows on the same episodes, run curves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ampczoo.benchmarks.finetune import FinetuneBenchConfig, run_finetune_bench
from ampczoo.policies.residual_rl import ResidualRLConfig, ResidualRLPolicy


def test_bench_finetune_rows_and_curves(tmp_path):
    policy = ResidualRLPolicy(ResidualRLConfig(base="threedof-ffn-h10", hidden_dim=8))
    folder = policy.save_pretrained(tmp_path / "ckpt")  # zero residual: acts as its base
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"algo": "sac", "base": "b", "seed": 0}))
    records = [
        {"steps": s, "wall_s": 10.0 * s, "episodes": 5, "success_rate": r, "ci95": [r - 5, r + 5]}
        for s, r in ((0, 40.0), (100, 80.0), (200, 60.0))
    ]
    (run / "eval.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    cfg = FinetuneBenchConfig(
        policies=(str(folder),),
        runs=(str(run),),
        env="ThreeDOF-Reach-v0",
        episodes=2,
        out=str(tmp_path / "out"),
    )
    out = run_finetune_bench(cfg)
    table = (out / "table_finetune.csv").read_text().splitlines()
    assert len(table) == 3 and "base threedof-ffn-h10" in table[1]
    assert "vs base won/lost" in table[0] and table[2].endswith("+0/-0,1.0")
    episodes = json.loads((out / "episodes.json").read_text())["episodes"]
    base, tuned = episodes.values()
    # a zero residual acts exactly as its base on the same episodes
    np.testing.assert_allclose([e["final_error"] for e in base], [e["final_error"] for e in tuned])
    runs = (out / "table_runs.csv").read_text()
    assert "80.0" in runs and (out / "curves.png").stat().st_size > 0


def test_bench_finetune_refuses_bad_input(tmp_path):
    with pytest.raises(ValueError, match="episodes"):
        FinetuneBenchConfig(policies=("x",), episodes=0)
    with pytest.raises(ValueError, match="nothing to benchmark"):
        FinetuneBenchConfig(policies=(), runs=())


def test_runs_are_labelled_by_method_and_drawn_side_by_side(tmp_path):
    from ampczoo.benchmarks.finetune import plot_curves, run_label, run_rows

    configs = {
        "sac": {"kind": "residual", "algo": "sac", "base": "threedof-ffn-h10"},
        "bcppo": {"kind": "bc", "algo": "ppo", "data": "d.zarr", "bc_epochs": 50},
        "ppo": {"kind": "bc", "algo": "ppo", "data": "d.zarr", "bc_epochs": 0},
    }
    folders = []
    for name, config in configs.items():
        run = tmp_path / name
        run.mkdir()
        (run / "run.json").write_text(json.dumps(config))
        record = {"steps": 0, "wall_s": 0.0, "episodes": 5, "success_rate": 20.0, "ci95": [5, 50]}
        (run / "eval.jsonl").write_text(json.dumps(record) + "\n")
        folders.append(str(run))
    labels = [run_label(c) for c in configs.values()]
    assert labels == ["residual SAC on threedof-ffn-h10", "BC-init PPO", "PPO from scratch"]
    assert [r["method"] for r in run_rows(tuple(folders))] == labels
    plot_curves(tuple(folders), tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0
    import matplotlib.image

    # no run records a final position error (a manipulation env): no error panel
    width = matplotlib.image.imread(tmp_path / "curves.png").shape[1]
    for folder in folders:
        record = {"steps": 0, "wall_s": 0.0, "episodes": 5, "success_rate": 20.0, "ci95": [5, 50]}
        record["final_error_mean"] = 0.03
        (Path(folder) / "eval.jsonl").write_text(json.dumps(record) + "\n")
    plot_curves(tuple(folders), tmp_path / "curves3.png")
    assert matplotlib.image.imread(tmp_path / "curves3.png").shape[1] == width * 3 // 2


def test_runs_with_held_actions_report_env_steps(tmp_path):
    from ampczoo.benchmarks.finetune import run_rows

    records = [
        {"steps": s, "wall_s": 0.0, "episodes": 5, "success_rate": r, "ci95": [5, 50]}
        for s, r in ((0, 20.0), (400, 60.0), (800, 40.0))
    ]
    folders = []
    for name, hold in (("held", 5), ("plain", None)):
        run = tmp_path / name
        run.mkdir()
        config = {"kind": "residual", "algo": "sac", "base": "b"}
        if hold:
            config["hold"] = hold
        (run / "run.json").write_text(json.dumps(config))
        (run / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        folders.append(str(run))
    held, plain = run_rows(tuple(folders))
    assert (held["env steps"], held["best at [env steps]"]) == (4000, 2000)
    assert (plain["env steps"], plain["best at [env steps]"]) == (800, 400)


def fake_rollout(seed: int, steps: int, success: bool | None):
    """A Rollout of ``steps`` steps whose last info reports ``success`` (None: no key)."""
    from ampczoo.benchmarks.common import Rollout

    info = {} if success is None else {"success": success}
    return Rollout(
        seed=seed,
        observations=[np.zeros(2)] * (steps + 1),
        actions=np.zeros((steps, 2)),
        rewards=np.ones(steps),
        reset_info={},
        infos=[{}] * (steps - 1) + [info],
        act_times=np.full(steps, 1e-3),
        terminated=bool(success),
        truncated=not success,
        policy_failures=0,
        control_dt=float("nan"),
    )


def test_success_row_judges_by_the_envs_success():
    from ampczoo.benchmarks.finetune import success_episode, success_row

    rollouts = [fake_rollout(0, 10, True), fake_rollout(1, 30, True), fake_rollout(2, 50, False)]
    row = success_row(rollouts)
    assert row["SR [%]"] == pytest.approx(200 / 3) and row["episodes"] == 3
    assert row["steps of successes"] == 20.0 and row["return"] == 30.0
    assert row["SR 95% CI"] == "[20.8, 93.9]"
    assert success_episode(rollouts[2]) == {
        "seed": 2,
        "success": False,
        "steps": 50,
        "return": 50.0,
        "policy_failures": 0,
    }
    with pytest.raises(ValueError, match="success"):
        success_row([fake_rollout(0, 5, None)])


def test_bench_finetune_on_a_manipulation_env_pairs_base_and_residual(tmp_path):
    pytest.importorskip("metaworld")
    config = ResidualRLConfig(
        base="dp-pickplacewall",
        obs_dim=39,
        action_dim=4,
        scale=(0.5,) * 4,
        action_low=(-1.0,) * 4,
        action_high=(1.0,) * 4,
        num_layers=0,
        features="metaworld_grasp",
    )
    folder = ResidualRLPolicy(config).save_pretrained(tmp_path / "ckpt")  # zero residual
    cfg = FinetuneBenchConfig(
        policies=(str(folder),),
        env="MetaWorld-PickPlaceWall-v0",
        episodes=2,
        seed=100000,
        out=str(tmp_path / "out"),
    )
    out = run_finetune_bench(cfg)
    header = (out / "table_finetune.csv").read_text().splitlines()[0]
    assert "steps of successes" in header and "ATE" not in header
    base, tuned = json.loads((out / "episodes.json").read_text())["episodes"].values()
    assert [e["seed"] for e in base] == [100000, 100001]
    # the seeded DP base and the zero residual on it act alike on the same episodes
    assert [(e["success"], e["steps"]) for e in base] == [(e["success"], e["steps"]) for e in tuned]


def test_paired_columns_count_wins_and_losses_on_the_same_seeds():
    from ampczoo.benchmarks.finetune import paired_columns

    base = [{"seed": i, "success": i < 1} for i in range(16)]  # only seed 0 succeeds
    tuned = [{"seed": i, "success": 1 <= i < 15} for i in range(16)]  # wins 14, loses seed 0
    cols = paired_columns("MetaWorld-PickPlaceWall-v0", base, tuned)
    assert cols["vs base won/lost"] == "+14/-1"
    # exact two-sided binomial: 2 * (C(15,0) + C(15,1)) / 2**15
    assert cols["McNemar p"] == pytest.approx(2 * 16 / 2**15)
    # the 3-DOF arm is judged at 2 cm of final error
    near = [{"seed": 0, "final_error": 0.019}, {"seed": 1, "final_error": 0.021}]
    far = [{"seed": 0, "final_error": 0.03}, {"seed": 1, "final_error": 0.01}]
    assert paired_columns("ThreeDOF-Reach-v0", far, near)["vs base won/lost"] == "+1/-1"
    with pytest.raises(ValueError, match="same seeds"):
        paired_columns("MetaWorld-PickPlaceWall-v0", base, tuned[::-1])
