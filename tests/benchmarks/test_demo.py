"""The demo's manipulation part: the scripted-expert episode and the zoo policies on the task."""

from __future__ import annotations

import numpy as np
import pytest

from ampczoo.benchmarks.demo import DemoConfig, _manipulation_episode


def test_manipulation_episode_writes_its_video_and_reports_success(tmp_path):
    pytest.importorskip("gym_pusht")
    summary = _manipulation_episode(tmp_path, "PushT-v0", seed=0, video=True)
    assert summary is not None and summary["env"] == "PushT-v0"
    assert summary["steps"] > 0 and isinstance(summary["success"], bool)
    assert (tmp_path / "manipulation.mp4").stat().st_size > 0 or (
        tmp_path / "manipulation.gif"
    ).stat().st_size > 0
    assert not (tmp_path / "episode.mp4").exists()  # the KUKA video's name stays free


def test_demo_default_manipulation_task_has_a_scripted_expert():
    from ampczoo.experts.scripted import SCRIPTED_CONTROLLERS

    assert DemoConfig().manipulation_env in SCRIPTED_CONTROLLERS


def test_side_by_side_joins_frames_and_holds_the_shorter_episode():
    from ampczoo.benchmarks.demo import side_by_side

    left = [np.full((2, 3, 3), i, np.uint8) for i in range(2)]
    right = [np.full((2, 4, 3), 10 + i, np.uint8) for i in range(4)]
    frames = side_by_side(left, right)
    assert len(frames) == 4 and frames[0].shape == (2, 7, 3)
    assert (frames[3][:, :3] == 1).all() and (frames[3][:, 3:] == 13).all()
    with pytest.raises(ValueError, match="frame"):
        side_by_side([], right)


def test_action_change_columns_use_the_suite_bound_without_the_gripper():
    from ampczoo.benchmarks.demo import action_change_columns

    a = np.zeros((3, 7))
    a[1, 0] = 0.3  # arm change 0.3 then -0.3: over robomimic's 0.1
    a[2, 6] = 1.0  # the gripper (not in S) jumps: ignored
    cols = action_change_columns("Robomimic-Lift-v0", object(), a)
    assert cols["change max"] == pytest.approx(0.3)
    assert cols["steps over 0.1 [%]"] == pytest.approx(100.0)
    assert action_change_columns("DAMPC-KukaTrack-v0", object(), a) == {}


@pytest.mark.slow
def test_manipulation_policies_run_the_zoo_base_and_its_refiner(tmp_path):
    pytest.importorskip("robosuite")
    from ampczoo.benchmarks.demo import _manipulation_policies

    rows = _manipulation_policies(tmp_path, "Robomimic-Lift-v0", seed=100000, video=False)
    labels = [r["policy"] for r in rows]
    assert labels == ["dp-lift", "dp-lift + diffog-dp-lift"]
    refined = rows[1]
    assert refined["change max"] <= 0.1 + 1e-6 and refined["steps over 0.1 [%]"] == 0.0
    assert (tmp_path / "manipulation_policies.md").exists()


def test_demo_runs_each_zoo_policy_at_the_control_rate_of_its_card():
    from ampczoo.benchmarks.demo import CONTROL_DT, trained_control_dt, zoo_policies

    names = zoo_policies("DAMPC-KukaTrackObstacle-v0")
    assert "residual-ppo-kuka-obstacle" in names and "lsm-kuka-obstacle" in names
    # the residual was trained in closed loop at 0.02 s, its base imitates 0.1 s MPC data
    assert trained_control_dt("residual-ppo-kuka-obstacle") == pytest.approx(0.02)
    assert trained_control_dt("lsm-kuka-obstacle") == pytest.approx(CONTROL_DT)


def test_tracking_error_plot_takes_one_control_period_per_method(tmp_path, monkeypatch):
    import matplotlib.axes

    from ampczoo.benchmarks.common import EpisodeResult, plot_tracking_errors

    def episode(T: int) -> EpisodeResult:
        e = np.linspace(0.1, 0.01, T)
        z = np.zeros(T)
        return EpisodeResult(0, True, 0.01, 0.01, 0.0, 0.0, False, e, e, z, np.zeros((T, 7)))

    ends = []
    plot = matplotlib.axes.Axes.plot
    monkeypatch.setattr(
        matplotlib.axes.Axes,
        "plot",
        lambda ax, t, *a, **k: ends.append(t[-1]) or plot(ax, t, *a, **k),
    )
    per_method = {"slow": [episode(10)], "fast": [episode(50)]}
    plot_tracking_errors(per_method, {"slow": 0.1, "fast": 0.02}, tmp_path / "e.png")
    assert (tmp_path / "e.png").stat().st_size > 0
    assert ends == pytest.approx([1.0, 1.0, 1.0, 1.0])  # both span 1 s, at their own rates
