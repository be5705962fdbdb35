"""Kinematic observation features: torch FK/Jacobian against the numpy chain and Pinocchio."""

from __future__ import annotations

import numpy as np
import pinocchio as pin
import pytest
import torch

from ampczoo.nn.features import (
    FEATURE_DIM,
    KukaFeatures,
    ObservationInput,
    check_obs_features,
)
from ampczoo.robots.kinematics import EE_FRAME, load_pinocchio_model, rotation_from_6d
from ampczoo.robots.kuka import Obstacle, kuka_chain, make_observation


@pytest.fixture(scope="module")
def sample():
    chain = kuka_chain()
    rng = np.random.default_rng(0)
    q = rng.uniform(chain.lower, chain.upper, (6, 7))
    q_target = rng.uniform(chain.lower, chain.upper, (6, 7))
    obs = np.stack(
        [make_observation(q[i], *chain.ee_pose(q_target[i]), Obstacle()) for i in range(6)]
    )
    feats = KukaFeatures().double()(torch.from_numpy(obs)).numpy()
    return chain, q, obs, feats


def test_forward_kinematics_matches_numpy_chain(sample):
    chain, q, obs, feats = sample
    assert feats.shape == (6, FEATURE_DIM)
    p_ee, _ = chain.batch_ee_pose(q)
    np.testing.assert_allclose(feats[:, 14:17], p_ee, atol=1e-6)
    np.testing.assert_allclose(feats[:, 17:20], obs[:, 7:10] - p_ee, atol=1e-6)
    _, origins = chain.batch_link_transforms(q)
    np.testing.assert_allclose(feats[:, -21:].reshape(6, 7, 3), origins[:, 1:], atol=1e-6)


def test_rotation_error_and_jacobian_terms_match_pinocchio(sample):
    chain, q, obs, feats = sample
    model = load_pinocchio_model()
    data = model.createData()
    frame = model.getFrameId(EE_FRAME)
    for i in range(len(q)):
        J = pin.computeFrameJacobian(model, data, q[i], frame, pin.LOCAL_WORLD_ALIGNED)
        pin.framesForwardKinematics(model, data, q[i])
        E = rotation_from_6d(obs[i, 10:16]) @ data.oMf[frame].rotation.T
        theta = np.linalg.norm(pin.log3(E))
        np.testing.assert_allclose(feats[i, 24], np.cos(theta), atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(feats[i, 21:24]), np.sin(theta), atol=1e-6)
        e = np.concatenate([feats[i, 17:20], feats[i, 21:24]])
        np.testing.assert_allclose(feats[i, 25:32], J.T @ e, atol=1e-6)
        dls = J.T @ np.linalg.solve(J @ J.T + 0.01 * np.eye(6), e)
        np.testing.assert_allclose(feats[i, 32:39], dls, atol=1e-6)


def test_zero_error_at_the_target():
    chain = kuka_chain()
    q = np.array([0.3, 0.5, -0.2, -1.2, 0.4, 0.8, 0.1])
    obs = make_observation(q, *chain.ee_pose(q), None)[None]
    f = KukaFeatures().double()(torch.from_numpy(obs))[0].numpy()
    np.testing.assert_allclose(f[17:24], 0.0, atol=1e-6)
    np.testing.assert_allclose(f[24], 1.0, atol=1e-6)
    np.testing.assert_allclose(f[25:39], 0.0, atol=1e-6)


def test_observation_input_widths_and_errors():
    assert ObservationInput(16, "raw").dim == 16
    assert ObservationInput(20, "kinematic").dim == 20 + FEATURE_DIM
    with pytest.raises(ValueError, match="KUKA observation"):
        check_obs_features("kinematic", 4)
    with pytest.raises(ValueError, match="obs_features"):
        check_obs_features("fourier", 16)


def test_features_have_finite_gradients(sample):
    _, _, obs, _ = sample
    x = torch.tensor(obs, dtype=torch.float32, requires_grad=True)
    KukaFeatures()(x).sum().backward()
    assert torch.all(torch.isfinite(x.grad))


def test_quaternion_to_rot6d_inverts_rotation_from_6d_and_ignores_the_sign():
    from ampczoo.nn.features import quaternion_to_rot6d, rotation_from_6d

    q = torch.randn(32, 4, dtype=torch.float64)
    r6 = quaternion_to_rot6d(3.0 * q)  # any norm
    torch.testing.assert_close(quaternion_to_rot6d(-q), r6)
    R = rotation_from_6d(r6)
    torch.testing.assert_close(R[..., :2].transpose(1, 2).reshape(32, 6), r6)
    eye = torch.eye(3, dtype=torch.float64).expand(32, 3, 3)
    torch.testing.assert_close(R @ R.transpose(1, 2), eye)
    # a rotation by a about z: columns (cos a, sin a, 0), (-sin a, cos a, 0)
    a = torch.tensor(0.7, dtype=torch.float64)
    qz = torch.stack([a * 0, a * 0, torch.sin(a / 2), torch.cos(a / 2)])
    want = torch.stack([a.cos(), a.sin(), a * 0, -a.sin(), a.cos(), a * 0])
    torch.testing.assert_close(quaternion_to_rot6d(qz), want)
