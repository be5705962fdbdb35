"""Collection engine: noise, seeding, dropping, parallel backends, kill + resume.

Most tests use a deterministic fake env/expert (``FAKE*`` builders below) that goes through
the same code path as the MPC expert; one test runs the real expert on tiny settings.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from ampczoo.data.collect import (
    CollectConfig,
    collect,
    episode_seed,
    noisy_action,
)
from ampczoo.data.store import EpisodeStore

HERE = Path(__file__).resolve().parent
N = 5  # fake horizon


# ----------------------------------------------------------------------------- fakes
@dataclass
class FakeSolution:
    u: np.ndarray
    x: np.ndarray
    x_ref: np.ndarray
    cost: float
    output_error: float
    status: str
    success: bool
    iterations: int
    solve_time: float
    output_error_avg: float


class FakeEnv:
    """q' = q + dt a; obs = [q (7), target pos (3), rot 6D (6)] like the KUKA env."""

    def __init__(self, dt: float, sleep: float):
        self.dt, self.sleep = dt, sleep

    def reset(self, seed: int | None = None, options: dict | None = None):
        rng = np.random.default_rng(seed)
        self.q = rng.uniform(-1, 1, 7)
        self.target = np.concatenate([rng.uniform(-0.5, 0.5, 3), [1, 0, 0, 0, 1, 0]])
        return self._obs(), {}

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.q, self.target])

    def step(self, action: np.ndarray):
        assert np.all(np.abs(action) <= 2.3), action
        time.sleep(self.sleep)
        self.q = self.q + self.dt * action
        return self._obs(), 0.0, False, False, {}

    def close(self) -> None:
        pass


class FakeExpert:
    """Proportional control towards a mode drawn from the random guess after reset (so the
    data depend on the reset seed); every 7th solve fails (NaN), every 5th has a large d_y."""

    def __init__(self, fail_seed: int | None = None):
        self.fail_seed = fail_seed

    def reset(self, seed: int | None = None) -> None:
        if seed is not None and seed == self.fail_seed:
            raise RuntimeError("fake expert exploded")
        self.mode = np.random.default_rng(seed).choice([-1.0, 1.0], 7)
        self.k = 0

    def solve(self, obs: np.ndarray) -> FakeSolution:
        self.k += 1
        q = obs[:7]
        x_ref = 0.5 * self.mode
        u = np.tile(np.clip(3.0 * (x_ref - q), -2.3, 2.3), (N, 1))
        if self.k % 7 == 0:
            u[0, 0] = np.nan
        dy = 0.05 if self.k % 5 == 0 else 0.001
        return FakeSolution(
            u,
            np.tile(q, (N + 1, 1)),
            x_ref,
            float(np.sum(u**2)),
            dy,
            "Solve_Succeeded",
            True,
            self.k,
            1e-3,
            dy,
        )


class FakeBuilder:
    def __init__(self, sleep: float = 0.0, fail_episode: int | None = None):
        self.sleep, self.fail_episode = sleep, fail_episode

    def build(self, config: CollectConfig):
        fail = None if self.fail_episode is None else episode_seed(config.seed, self.fail_episode)
        return FakeEnv(config.control_dt, self.sleep), FakeExpert(fail)

    def describe(self, config: CollectConfig) -> dict:
        return {
            "env_kwargs": {"control_dt": config.control_dt},
            "expert_config": {"horizon": N, "fake": True},
        }


FAKE = FakeBuilder()
FAKE_SLOW = FakeBuilder(sleep=0.02)
FAKE_FAILING = FakeBuilder(fail_episode=2)


def fake_config(tmp_path: Path, name: str = "s.zarr", **kw) -> CollectConfig:
    kw = {
        "episodes": 6,
        "steps": 20,
        "builder": "test_collect:FAKE",
        "flush_interval_s": 0.0,
        "env": "Fake-v0",
        **kw,
    }
    return CollectConfig(out=str(tmp_path / name), **kw)


def assert_same_episodes(a: EpisodeStore, b: EpisodeStore) -> None:
    ea, eb = a.episodes_sorted(), b.episodes_sorted()
    assert [e.episode_index for e in ea] == [e.episode_index for e in eb]
    for x, y in zip(ea, eb, strict=True):
        assert (x.seed, x.n_steps, x.n_failed, x.n_dropped_output_error) == (
            y.seed,
            y.n_steps,
            y.n_failed,
            y.n_dropped_output_error,
        )
        assert x.data.keys() == y.data.keys()
        for k in x.data:
            if not k.endswith("_time"):  # wall times
                np.testing.assert_array_equal(x.data[k], y.data[k], err_msg=k)


# ----------------------------------------------------------------------------- unit tests
def test_noisy_action_follows_eq5_and_clips():
    rng = np.random.default_rng(0)
    u0 = np.array([0.0, 0.1, 1.0, -1.0, 2.0, -2.2, 0.5])
    draws = np.stack([noisy_action(u0, rng, 0.8, 0.35) for _ in range(20000)])
    assert np.all(np.abs(draws) <= 2.3)
    sigma = np.maximum(np.abs(u0) / 0.8, 0.35)
    for j in (0, 1):  # |u0| small, clipping rare: std matches Eq. 5
        assert abs(draws[:, j].std() - sigma[j]) < 0.05 * sigma[j] + 0.02


def test_episode_seeds_depend_only_on_seed_and_index():
    seeds = [episode_seed(0, i) for i in range(100)]
    assert len(set(seeds)) == 100
    assert seeds[5] == episode_seed(0, 5) != episode_seed(1, 5)


def test_cli_round_trip():
    from ampczoo.cli import parse_config

    args = ["--episodes", "3", "--no-compile", "--snr", "0.5", "--backend", "ray", "--resume"]
    cfg = parse_config(CollectConfig, args)
    assert (cfg.episodes, cfg.compile, cfg.snr, cfg.backend, cfg.resume) == (
        3,
        False,
        0.5,
        "ray",
        True,
    )
    assert (cfg.steps, cfg.sigma_min, cfg.max_output_error, cfg.control_dt) == (80, 0.35, 0.01, 0.1)


def test_bad_config_rejected():
    with pytest.raises(ValueError, match="episodes"):
        CollectConfig(episodes=0)
    with pytest.raises(ValueError, match="backend"):
        CollectConfig(backend="mpi")


# ----------------------------------------------------------------------------- fake runs
def test_collect_counts_drops_and_failures(tmp_path):
    report = collect(fake_config(tmp_path), progress=False)
    store = EpisodeStore(report.path, mode="r")
    assert store.n_episodes == 6 and report.episodes == 6 and not report.errors
    # per 20 steps: solves 7, 14 fail (NaN); 5, 10, 15, 20 have d_y > 0.01
    assert report.n_failed == 6 * 2 and report.n_dropped_output_error == 6 * 4
    assert report.samples_kept == store.n_samples == 6 * 14
    counts = store.attrs["counts"]
    assert counts["n_samples_total"] == 120 and counts["n_failed"] == 12
    data = store.read_all()
    assert data["u_seq"].shape == (84, N, 7) and data["obs"].shape == (84, 16)
    assert np.all(np.isfinite(data["u_seq"])) and np.all(data["output_error"] <= 0.01)
    np.testing.assert_array_equal(data["x"], data["obs"][:, :7])
    np.testing.assert_array_equal(data["target"], data["obs"][:, 7:16])
    assert set(data["status"].tolist()) == {"Solve_Succeeded"}
    attrs = store.attrs
    assert attrs["env"] == "Fake-v0" and attrs["seed"] == 0 and attrs["steps"] == 20
    assert attrs["expert_config"] == {"horizon": N, "fake": True}
    assert "created" in attrs and "ampczoo_version" in attrs


def test_parallel_equals_serial(tmp_path):
    serial = collect(fake_config(tmp_path, "a.zarr"), progress=False)
    par = collect(fake_config(tmp_path, "b.zarr", workers=2), progress=False)
    assert_same_episodes(EpisodeStore(serial.path, "r"), EpisodeStore(par.path, "r"))


def test_refuses_overwrite_and_checks_metadata_on_resume(tmp_path):
    cfg = fake_config(tmp_path, episodes=2)
    collect(cfg, progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        collect(cfg, progress=False)
    with pytest.raises(ValueError, match="seed"):
        collect(replace(cfg, resume=True, seed=1), progress=False)
    with pytest.raises(ValueError, match="steps"):
        collect(replace(cfg, resume=True, steps=21), progress=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not an episode store"):
        collect(replace(cfg, out=str(tmp_path / "junk")), progress=False)
    # resume with more episodes extends the run
    report = collect(replace(cfg, resume=True, episodes=4), progress=False)
    assert report.episodes == 2 and report.episodes_skipped == 2
    assert sorted(EpisodeStore(cfg.out, "r").episode_ids()) == [0, 1, 2, 3]


def test_worker_exception_keeps_other_episodes(tmp_path):
    cfg = fake_config(tmp_path, builder="test_collect:FAKE_FAILING", workers=2)
    report = collect(cfg, progress=False)
    assert len(report.errors) == 1 and "episode 2" in report.errors[0]
    assert "exploded" in report.errors[0]
    store = EpisodeStore(cfg.out, "r")
    assert sorted(store.episode_ids()) == [0, 1, 3, 4, 5]


def test_cli_collect_exits_nonzero_on_failed_episode(tmp_path):
    proc = _run_cli(
        tmp_path / "f.zarr", "--builder", "test_collect:FAKE_FAILING", "--episodes", "3"
    )
    assert proc.wait(60) == 1
    assert "episode 2" in proc.stderr.read() + proc.stdout.read()


def _run_cli(out: Path, *extra: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    args = [
        sys.executable,
        "-m",
        "ampczoo",
        "collect",
        "--out",
        str(out),
        "--env",
        "Fake-v0",
        "--steps",
        "20",
        "--flush-interval-s",
        "0",
        *extra,
    ]
    return subprocess.Popen(
        args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    out = tmp_path / "killed.zarr"
    common = ["--builder", "test_collect:FAKE_SLOW", "--episodes", "8", "--workers", "2"]
    proc = _run_cli(out, *common)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if out.exists() and _n_episodes(out) >= 1:
            break
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # parent and workers, mid-episode
    proc.wait()
    n_before = _n_episodes(out)
    assert 0 < n_before < 8
    resumed = _run_cli(out, *common, "--resume")
    assert resumed.wait(60) == 0, resumed.stderr.read()
    reference = collect(
        fake_config(tmp_path, "ref.zarr", episodes=8, steps=20, builder="test_collect:FAKE_SLOW"),
        progress=False,
    )
    assert_same_episodes(EpisodeStore(out, "r"), EpisodeStore(reference.path, "r"))


def _n_episodes(path: Path) -> int:
    try:
        return EpisodeStore(path, mode="r").n_episodes
    except Exception:  # being created right now
        return 0


def test_ray_backend_matches_serial(tmp_path):
    ray = pytest.importorskip("ray")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        report = collect(
            fake_config(tmp_path, "ray.zarr", episodes=2, backend="ray", workers=2), progress=False
        )
    finally:
        ray.shutdown()
    assert report.episodes == 2 and not report.errors
    serial = collect(fake_config(tmp_path, "ser.zarr", episodes=2), progress=False)
    assert_same_episodes(EpisodeStore(report.path, "r"), EpisodeStore(serial.path, "r"))


# ----------------------------------------------------------------------------- real expert
def test_real_expert_tiny_run(tmp_path):
    pytest.importorskip("ampczoo.envs.kuka_track")
    pytest.importorskip("ampczoo.experts.mpc")
    cfg = CollectConfig(
        out=str(tmp_path / "real.zarr"),
        episodes=2,
        steps=15,
        workers=1,
        compile=False,
        flush_interval_s=0.0,
    )
    report = collect(cfg, progress=False)
    assert not report.errors and report.n_solves == 30
    assert report.samples_kept + report.n_dropped_output_error + report.n_failed == 30
    assert report.samples_kept > 0
    store = EpisodeStore(cfg.out, "r")
    data = store.read_all()
    assert data["u_seq"].shape[1:] == (20, 7) and data["obs"].shape[1:] == (16,)
    assert np.all(np.abs(data["u_seq"]) <= 2.3 + 1e-6)
    assert np.all(data["output_error_avg"] <= cfg.max_output_error)
    w = store.attrs["expert_config"]
    np.testing.assert_allclose(
        data["output_error_avg"], data["output_error"] / (w["w_pos"] + w["w_rot"])
    )
    assert store.attrs["expert_config"]["horizon"] == 20
    again = collect(replace(cfg, out=str(tmp_path / "real2.zarr")), progress=False)
    assert_same_episodes(store, EpisodeStore(again.path, "r"))


# ----------------------------------------------------------------------------- 3-DOF arm
def test_threedof_defaults_and_tiny_run(tmp_path):
    cfg = CollectConfig(
        env="ThreeDOF-Reach-v0",
        out=str(tmp_path / "arm.zarr"),
        episodes=3,
        steps=40,
        flush_interval_s=0.0,
    )
    assert (cfg.control_dt, cfg.solver, cfg.builder) == (
        0.02,
        "osqp",
        "ampczoo.data.collect:IKMPC_BUILDER",
    )
    report = collect(cfg, progress=False)
    assert not report.errors and report.n_failed == 0
    store = EpisodeStore(cfg.out, "r")
    data = store.read_all()
    assert data["obs"].shape[1:] == (9,) and data["u_seq"].shape[1:] == (20, 3)
    assert np.all(np.abs(data["u_seq"]) <= np.array([6.0, 10.0, 4.0]) + 1e-9)
    np.testing.assert_array_equal(data["target"], data["obs"][:, 6:9])
    assert store.attrs["env_kwargs"]["terminate_on_success"] is True
    # resumable: a second call with more episodes only runs the missing ones, same data
    more = collect(replace(cfg, episodes=4, resume=True), progress=False)
    assert more.episodes == 1 and more.episodes_skipped == 3
    fresh = collect(replace(cfg, episodes=4, out=str(tmp_path / "b.zarr")), progress=False)
    assert_same_episodes(EpisodeStore(cfg.out, "r"), EpisodeStore(fresh.path, "r"))
