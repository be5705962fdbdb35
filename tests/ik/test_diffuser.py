"""IKDiffuser: shapes, masking, guidance gradients, save/load, bad input, learning."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ampczoo.ik.diffuser import (
    Guidance,
    IKDiffuser,
    IKDiffuserConfig,
    warm_start_gradient,
)
from ampczoo.ik.robots import load_robot

TINY = dict(width=32, depth=1, heads=2, ffn=64, query_blocks=1)


def tiny(robot: str, seed: int = 0, **kw) -> IKDiffuser:
    """A tiny untrained model whose output layer is not zero (so it depends on its inputs)."""
    torch.manual_seed(seed)
    model = IKDiffuser(IKDiffuserConfig(robot=robot, **{**TINY, **kw}))
    torch.nn.init.normal_(model.net.out.weight, std=0.5)
    return model.eval()


def targets(robot: str, n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    r = load_robot(robot)
    q = r.sample_q(n, np.random.default_rng(seed))
    return q, r.forward_kinematics(torch.as_tensor(q)).numpy()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_sample_and_solve_shapes_limits_and_order():
    model = tiny("panda")
    _, poses = targets("panda", 3)
    q = model.sample(poses, num_samples=5, generator=gen())
    assert q.shape == (3, 5, 7)
    lower, upper = model.joint_limits
    assert np.all(q.numpy() >= lower - 1e-6) and np.all(q.numpy() <= upper + 1e-6)
    sol = model.solve(poses, num_samples=6, generator=gen())
    assert sol.q.shape == (3, 6, 7) and sol.best.shape == (3, 7)
    assert sol.position_error.shape == sol.angle_error.shape == sol.success.shape == (3, 6)
    score = sol.position_error + 0.1 * sol.angle_error
    assert np.all(np.diff(score, axis=1) >= -1e-6)
    # the errors are those of the returned configurations
    fk = load_robot("panda").forward_kinematics(torch.as_tensor(sol.q[:, 0], dtype=torch.float64))
    np.testing.assert_allclose(
        np.linalg.norm(fk[:, 0, :3].numpy() - poses[:, 0, :3], axis=-1),
        sol.position_error[:, 0],
        rtol=1e-4,
        atol=1e-6,
    )


def test_unreachable_pose_returns_nearest_samples_not_a_solution():
    model = tiny("threedof")
    far = np.array([[[5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]]])  # 5 m away: out of reach
    sol = model.solve(far, num_samples=4, generator=gen())
    assert sol.q.shape == (1, 4, 3)
    assert not sol.success.any() and np.all(sol.position_error > 3.0)


def test_same_generator_same_samples():
    model = tiny("kuka")
    _, poses = targets("kuka", 2)
    a = model.sample(poses, 3, generator=gen(5))
    b = model.sample(poses, 3, generator=gen(5))
    c = model.sample(poses, 3, generator=gen(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    as_tensor = torch.tensor(poses, requires_grad=True)  # e.g. straight from a differentiable FK
    assert torch.equal(model.sample(as_tensor, 3, generator=gen(5)), a)


def test_masked_pose_is_ignored_and_unmasked_one_is_not():
    model = tiny("baxter")
    _, poses = targets("baxter", 2)
    mask = np.array([[True, False], [True, False]])
    moved = poses.copy()
    moved[:, 1, :3] += 0.3  # change the masked (second) EE's position
    a = model.sample(poses, 4, mask=mask, generator=gen())
    b = model.sample(moved, 4, mask=mask, generator=gen())
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    c = model.sample(moved, 4, mask=None, generator=gen())  # now it counts
    assert not torch.allclose(a, c)
    moved_kept = poses.copy()
    moved_kept[:, 0, :3] += 0.3
    d = model.sample(moved_kept, 4, mask=mask, generator=gen())
    assert not torch.allclose(a, d)


def test_flat_conditioning_masks_too():
    model = tiny("baxter", conditioning="flat")
    _, poses = targets("baxter", 2)
    moved = poses.copy()
    moved[:, 0, :3] -= 0.2
    mask = np.array([False, True])
    a = model.sample(poses, 2, mask=mask, generator=gen())
    b = model.sample(moved, 2, mask=mask, generator=gen())
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert model.net.ee_embed.shape[0] == 1  # one token


@pytest.mark.parametrize("robot", ["panda", "threedof", "baxter"])
def test_manipulability_gradient_matches_finite_differences(robot):
    model = tiny(robot)
    x = torch.tensor(
        np.random.default_rng(3).uniform(-0.8, 0.8, (3, model.dof)), dtype=torch.float64
    )
    grad = model.manipulability_gradient(x).double()

    def objective(xn: torch.Tensor) -> torch.Tensor:
        return model.manipulability(model.unnormalize_q(xn.float()).double())

    lower, upper = (torch.tensor(v) for v in model.joint_limits)

    def objective64(xn: torch.Tensor) -> torch.Tensor:
        return model.manipulability(lower + (xn + 1) * (upper - lower) / 2)

    h = 1e-6
    fd = torch.zeros_like(x)
    for j in range(model.dof):
        e = torch.zeros_like(x)
        e[:, j] = h
        fd[:, j] = (objective64(x + e) - objective64(x - e)) / (2 * h)
    assert torch.all(objective(x) > 0)
    torch.testing.assert_close(grad, fd, rtol=1e-4, atol=1e-7)


def test_warm_start_gradient_matches_autograd():
    x = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
    prior = torch.randn(4, 7, dtype=torch.float64)
    (auto,) = torch.autograd.grad(-((x - prior) ** 2).sum(), x)
    torch.testing.assert_close(warm_start_gradient(x.detach(), prior), auto)


def test_guidance_moves_samples_toward_the_prior_and_up_the_manipulability():
    model = tiny("panda")
    _, poses = targets("panda", 4)
    prior = np.zeros(7)
    plain = model.sample(poses, 8, generator=gen())
    warm = model.sample(poses, 8, guidance=Guidance(q_prior=prior), generator=gen())
    assert (warm - torch.tensor(prior)).norm(dim=-1).mean() < (plain - 0).norm(dim=-1).mean()
    strong = Guidance(manipulability=True, manipulability_scale=0.3)
    manip = model.sample(poses, 8, guidance=strong, generator=gen())
    m_plain = model.manipulability(plain.reshape(-1, 7).double()).mean()
    m_guided = model.manipulability(manip.reshape(-1, 7).double()).mean()
    assert m_guided > m_plain


def test_save_load_round_trip_gives_equal_samples(tmp_path):
    model = tiny("kuka")
    model.set_position_stats(targets("kuka", 50)[1])
    _, poses = targets("kuka", 3)
    model.save_pretrained(tmp_path / "ck")
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["type"] == "ikdiffuser"
    loaded = IKDiffuser.from_pretrained(tmp_path / "ck", robot="kuka")
    torch.testing.assert_close(loaded.pos_mean, model.pos_mean)
    torch.testing.assert_close(
        loaded.sample(poses, 4, generator=gen(2)), model.sample(poses, 4, generator=gen(2))
    )
    with pytest.raises(ValueError, match="robot 'kuka', not 'panda'"):
        IKDiffuser.from_pretrained(tmp_path / "ck", robot="panda")


def test_foreign_corrupt_and_missing_checkpoints_are_refused(tmp_path):
    (tmp_path / "policy").mkdir()
    (tmp_path / "policy" / "config.json").write_text(json.dumps({"type": "lsm"}))
    with pytest.raises(ValueError, match="not 'ikdiffuser'"):
        IKDiffuser.from_pretrained(tmp_path / "policy")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt JSON"):
        IKDiffuser.from_pretrained(tmp_path / "bad")
    tiny("threedof").save_pretrained(tmp_path / "ck")
    (tmp_path / "ck" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt safetensors"):
        IKDiffuser.from_pretrained(tmp_path / "ck")
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    (tmp_path / "ck" / "config.json").write_text(json.dumps({**cfg, "widht": 3}))
    with pytest.raises(ValueError, match="unknown config fields"):
        IKDiffuser.from_pretrained(tmp_path / "ck")
    with pytest.raises(FileNotFoundError, match="neither a checkpoint folder"):
        IKDiffuser.from_pretrained("ikdiffuser-nosuchrobot")


def test_bad_input_is_refused_with_a_named_problem():
    model = tiny("baxter")
    _, poses = targets("baxter", 2)
    nan = poses.copy()
    nan[0, 0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.sample(nan)
    scaled = poses.copy()
    scaled[..., 3:] *= 1.1
    with pytest.raises(ValueError, match="unit"):
        model.sample(scaled)
    with pytest.raises(ValueError, match="2 end-effectors"):
        model.sample(poses[:, :1])
    with pytest.raises(ValueError, match="drops every end-effector"):
        model.sample(poses, mask=np.array([[True, False], [False, False]]))
    with pytest.raises(ValueError, match="q_prior"):
        model.sample(poses, guidance=Guidance(q_prior=np.zeros(7)))
    with pytest.raises(ValueError, match="unknown robot"):
        IKDiffuserConfig(robot="r2d2")
    with pytest.raises(ValueError, match="heads"):
        IKDiffuserConfig(width=30, heads=4)
    almost = poses.copy()
    almost[..., 3:] *= 1 + 5e-4  # within 1e-3: normalised, not refused
    assert model.sample(almost, generator=gen()).shape == (2, 1, 14)


def test_paper_size_is_reachable_by_config():
    model = IKDiffuser(IKDiffuserConfig(robot="panda", width=512, depth=8, heads=8, ffn=1024))
    assert len(model.net.blocks) == 8 and model.net.blocks[0].heads == 8
    assert model.net.blocks[0].ffn.fc1.out_features == 1024


def test_training_lowers_the_error_on_a_few_poses():
    """A tiny model fitted to 8 poses of the 3-DOF arm reaches them much better than before."""
    torch.manual_seed(0)
    model = IKDiffuser(IKDiffuserConfig(robot="threedof", width=32, depth=1, heads=2, ffn=64))
    q, poses = targets("threedof", 8, seed=4)
    model.set_position_stats(poses)
    q_t = torch.tensor(q, dtype=torch.float32)
    p_t = torch.tensor(poses, dtype=torch.float32)

    def median_error() -> float:
        model.eval()
        sol = model.solve(poses, num_samples=1, generator=gen(9))
        return float(np.median(sol.position_error))

    before = median_error()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = gen(1)
    model.train()
    for _ in range(300):
        loss = model.loss(q_t.repeat(8, 1), p_t.repeat(8, 1, 1), g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = median_error()
    assert after < 0.3 * before, (before, after)
