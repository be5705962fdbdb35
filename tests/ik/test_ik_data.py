"""IKDiffuser data store (resume, refusal) and training loop (resume, CLI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ampczoo.cli import main
from ampczoo.ik import data as ikdata
from ampczoo.ik.diffuser import IKDiffuser, IKDiffuserConfig
from ampczoo.ik.robots import load_robot
from ampczoo.ik.training import IKTrainConfig, IKTrainer, train


def test_store_resumes_after_an_interrupted_chunk_and_equals_one_run(tmp_path):
    one = tmp_path / "one.zarr"
    two = tmp_path / "two.zarr"
    ikdata.generate(one, "threedof", 192, seed=3, chunk=64, reject_collisions=False, log=None)
    ikdata.generate(two, "threedof", 64, seed=3, chunk=64, reject_collisions=False, log=None)
    import zarr

    group = zarr.open_group(str(two), mode="r+")  # a crash in the middle of the next chunk
    group["q"].resize((100, 3))
    group["q"][64:] = 7.0
    out = ikdata.generate(two, "threedof", 192, seed=3, chunk=64, reject_collisions=False, log=None)
    assert out == {**out, "rows": 192, "added": 128}
    a, b = ikdata.load(one), ikdata.load(two)
    np.testing.assert_array_equal(a.q, b.q)
    np.testing.assert_array_equal(a.poses, b.poses)
    fk = load_robot("threedof").forward_kinematics(torch.as_tensor(a.q[:5], dtype=torch.float64))
    np.testing.assert_allclose(a.poses[:5], fk.numpy(), atol=1e-5)
    lower, upper = load_robot("threedof").joint_limits
    assert np.all(a.q >= lower - 1e-6) and np.all(a.q <= upper + 1e-6)


def test_store_of_another_robot_or_settings_is_refused(tmp_path):
    path = tmp_path / "s.zarr"
    ikdata.generate(path, "threedof", 8, chunk=8, reject_collisions=False, log=None)
    with pytest.raises(ValueError, match="robot 'threedof', not 'kuka'"):
        ikdata.generate(path, "kuka", 8, chunk=8, reject_collisions=False, log=None)
    with pytest.raises(ValueError, match="seed"):
        ikdata.generate(path, "threedof", 8, seed=1, chunk=8, reject_collisions=False, log=None)
    with pytest.raises(ValueError, match="not 'kuka'"):
        ikdata.load(path, robot="kuka")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "zarr.json").write_text("{}")
    with pytest.raises(ValueError, match="not an IKDiffuser data store"):
        ikdata.load(tmp_path / "junk")


def test_rejection_drops_configurations_the_checker_flags():
    robot = load_robot("kuka")
    q, poses = ikdata.draw_chunk(
        robot, 50, np.random.default_rng(0), in_collision=lambda q: q[:, 0] > 0
    )
    assert q.shape == (50, 7) and poses.shape == (50, 1, 7) and np.all(q[:, 0] <= 0)


def test_rejection_with_the_self_collision_checker():
    from ampczoo.ik.collision import SelfCollision

    q, _ = ikdata.draw_chunk(
        load_robot("panda"), 40, np.random.default_rng(1), ikdata.collision_filter("panda")
    )
    assert not SelfCollision("panda").in_collision(q.astype(np.float64)).any()


def _cfg(tmp_path, steps: int) -> IKTrainConfig:
    return IKTrainConfig(
        robot="threedof",
        data=str(tmp_path / "d.zarr"),
        samples=1,
        reject_collisions=False,
        out=str(tmp_path / "run"),
        steps=steps,
        batch_size=16,
        warmup_steps=2,
        checkpoint_every=2,
        val_poses=4,
        model=IKDiffuserConfig(robot="threedof", width=16, depth=1, heads=2, ffn=16),
    )


@pytest.mark.slow  # ~15 s: three tiny trainings
def test_training_resumes_like_an_uninterrupted_run(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    whole = train(_cfg(tmp_path / "a", 6))
    step = IKTrainer.train_step

    def interrupted(self):
        if self.step == 4:  # after the checkpoint of step 4
            raise KeyboardInterrupt
        return step(self)

    monkeypatch.setattr(IKTrainer, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tmp_path / "b", 6))
    monkeypatch.setattr(IKTrainer, "train_step", step)
    resumed = train(_cfg(tmp_path / "b", 6))
    assert whole["step"] == resumed["step"] == 6
    a = IKDiffuser.from_pretrained(tmp_path / "a" / "run" / "last", robot="threedof")
    b = IKDiffuser.from_pretrained(tmp_path / "b" / "run" / "last", robot="threedof")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(x, y, msg=name)
    log = (tmp_path / "b" / "run" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,lr,train_loss,val_pos_mm") and len(log) == 4
    assert (tmp_path / "b" / "run" / "best" / "model.safetensors").is_file()


def test_cli_trains_ikdiffuser_and_refuses_bad_flags(tmp_path, capsys):
    assert main(["train", "ikdiffuser", "--robot", "r2d2"]) == 2
    assert "unknown robot 'r2d2'" in capsys.readouterr().err
    assert main(["train", "ikdiffuser", "--robot", "threedof", "--steps", "0"]) == 2
    assert "steps must be >= 1" in capsys.readouterr().err
