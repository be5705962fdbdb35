"""The demo's manipulation episode: one scripted-expert episode rendered to its own video."""

from __future__ import annotations

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
