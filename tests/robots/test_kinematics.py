"""The serial-chain FK (numpy and CasADi) agrees with Pinocchio on the shipped URDF."""

import casadi as ca
import numpy as np
import pinocchio as pin
import pytest

from ampczoo.robots.kinematics import (
    EE_FRAME,
    geodesic_angle,
    load_pinocchio_model,
    rotation_6d,
    rotation_from_6d,
)
from ampczoo.robots.kuka import (
    Obstacle,
    kuka_chain,
    kuka_collision_model,
    make_observation,
    obstacle_penetration,
    parse_observation,
    self_collision_gaps,
)


@pytest.fixture(scope="module")
def chain():
    return kuka_chain()


def random_q(chain, n, seed=0):
    return np.random.default_rng(seed).uniform(chain.lower, chain.upper, size=(n, chain.nq))


def test_numpy_and_batch_fk_match_pinocchio(chain):
    model = load_pinocchio_model()
    data = model.createData()
    fid = model.getFrameId(EE_FRAME)
    qs = random_q(chain, 50)
    batch_p, batch_R = chain.batch_ee_pose(qs)
    for q, bp, bR in zip(qs, batch_p, batch_R, strict=True):
        pin.framesForwardKinematics(model, data, q)
        p, R = chain.ee_pose(q)
        np.testing.assert_allclose(p, data.oMf[fid].translation, atol=1e-12)
        np.testing.assert_allclose(R, data.oMf[fid].rotation, atol=1e-12)
        np.testing.assert_allclose(bp, p, atol=1e-12)
        np.testing.assert_allclose(bR, R, atol=1e-12)


def test_casadi_fk_matches_numpy(chain):
    q = ca.SX.sym("q", chain.nq)
    p, R = chain.ee_pose(q, backend=ca)
    centres = ca.horzcat(*chain.sphere_centres(q, backend=ca))
    f = ca.Function("fk", [q], [p, R, centres])
    for qv in random_q(chain, 20, seed=1):
        pv, Rv, cv = (np.array(v) for v in f(qv))
        p_np, R_np = chain.ee_pose(qv)
        np.testing.assert_allclose(pv.ravel(), p_np, atol=1e-12)
        np.testing.assert_allclose(Rv, R_np, atol=1e-12)
        np.testing.assert_allclose(cv.T, chain.sphere_centres_np(qv), atol=1e-12)


def test_collision_spheres_are_parsed_from_every_link(chain):
    links = {s.link for s in chain.spheres}
    assert links == set(range(chain.nq + 1))
    assert all(s.radius > 0 for s in chain.spheres)


def test_collision_model_flags_folded_arm(chain):
    model = kuka_collision_model()
    assert len(model.pairs) > 0
    home = np.zeros(chain.nq)
    assert self_collision_gaps(chain.sphere_centres_np(home)).min() > 0
    n_pairs = len(model.pairs)
    # the wrist swung back into the base sphere (found by random search, checked by hand below)
    folded = np.array([-2.03, -1.79, 2.91, -2.09, -2.81, -1.73, 1.25])
    centres = chain.sphere_centres_np(folded)
    assert self_collision_gaps(centres)[:n_pairs].min() < -0.05
    base, wrist = 0, len(chain.spheres) - 1
    assert [base, wrist] in model.pairs.tolist()
    radii = chain.spheres[base].radius + chain.spheres[wrist].radius
    assert np.linalg.norm(centres[base] - centres[wrist]) < radii
    arm_down = np.array([0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0])  # through the mounting plane
    assert self_collision_gaps(chain.sphere_centres_np(arm_down))[n_pairs:].min() < 0


def test_obstacle_penetration_fraction(chain):
    centres = chain.sphere_centres_np(np.zeros(chain.nq))
    far = Obstacle((3.0, 3.0, 3.0), 0.2)
    assert obstacle_penetration(centres, far) == 0.0
    ee_sphere = centres[-1]
    inside = Obstacle(tuple(ee_sphere), 0.2)
    assert obstacle_penetration(centres, inside) > 1.0


def test_rotation_6d_round_trip_and_geodesic():
    rng = np.random.default_rng(2)
    for _ in range(10):
        A = np.linalg.qr(rng.normal(size=(3, 3)))[0]
        R = A * np.sign(np.linalg.det(A))
        np.testing.assert_allclose(rotation_from_6d(rotation_6d(R)), R, atol=1e-12)
        assert geodesic_angle(R, R) == pytest.approx(0.0, abs=1e-7)
    Rz = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    assert geodesic_angle(np.eye(3), Rz) == pytest.approx(np.pi / 2)


def test_observation_round_trip_and_validation(chain):
    q = np.linspace(-0.5, 0.5, 7)
    p, R = chain.ee_pose(q)
    obs = make_observation(q, p, R, Obstacle())
    parsed = parse_observation(obs)
    np.testing.assert_allclose(parsed.q, q)
    np.testing.assert_allclose(parsed.target_rot, R, atol=1e-12)
    assert parsed.obstacle == Obstacle()
    with pytest.raises(ValueError, match="shape"):
        parse_observation(obs[:-1])
    bad = obs.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        parse_observation(bad)
