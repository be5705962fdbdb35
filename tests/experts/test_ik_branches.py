"""Distinct IK branches of a KUKA target and the MPC expert's ``cold_start="branches"``."""

import numpy as np
import pytest

from ampczoo.experts import MPCConfig, MPCExpert
from ampczoo.experts.ik_branches import cluster_configurations, ik_branches, pose_errors
from ampczoo.robots.kinematics import geodesic_angle
from ampczoo.robots.kuka import batch_collision_free, kuka_chain, make_observation

Q_START = np.array([0.3, 0.5, -0.2, -1.2, 0.4, 0.8, 0.1])
Q_TARGET = np.array([-0.6, 0.9, 0.4, -0.8, -0.3, 1.0, 0.5])


@pytest.fixture(scope="module")
def target():
    return kuka_chain().ee_pose(Q_TARGET)


@pytest.mark.parametrize("k", [1, 3])
def test_branches_are_distinct_and_reach_the_target(target, k):
    threshold = 1.0
    branches = ik_branches(*target, k, np.random.default_rng(0), q_near=Q_START)
    assert branches.shape == (k, 7)
    chain = kuka_chain()
    for q in branches:  # FK of every branch is the target pose
        p, R = chain.ee_pose(q)
        assert np.linalg.norm(p - target[0]) < 1e-4 and geodesic_angle(target[1], R) < 1e-3
    assert np.all(batch_collision_free(branches, None))
    assert np.all((branches >= chain.lower) & (branches <= chain.upper))
    d = np.linalg.norm(branches[:, None] - branches[None], axis=-1)
    assert np.all(d[np.triu_indices(k, 1)] >= threshold)
    near = np.linalg.norm(branches - Q_START, axis=-1)
    assert np.all(np.diff(near) >= 0)  # nearest first
    again = ik_branches(*target, k, np.random.default_rng(0), q_near=Q_START)
    np.testing.assert_array_equal(branches, again)


def test_pose_errors_vanish_at_the_target(target):
    e_p, e_r = pose_errors(Q_TARGET[None], *target)
    assert np.abs(e_p).max() < 1e-12 and np.abs(e_r).max() < 1e-6


def test_clustering_threshold():
    q = np.zeros((4, 7))
    q[2:, 0] = 2.0
    q[1, 1] = q[3, 1] = 0.3
    assert len(np.unique(cluster_configurations(q, 1.0))) == 2
    assert len(np.unique(cluster_configurations(q, 0.1))) == 4


@pytest.mark.parametrize("k", [0, -1, 1.5])
def test_branch_count_below_one_rejected(target, k):
    with pytest.raises(ValueError, match="branch count"):
        ik_branches(*target, k, np.random.default_rng(0))
    with pytest.raises(ValueError, match="reference_branches"):
        MPCConfig(cold_start="branches", reference_branches=k)


def test_bad_branch_config_rejected():
    with pytest.raises(ValueError, match="branch_source"):
        MPCConfig(branch_source="magic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="branch_threshold"):
        MPCConfig(branch_threshold=0.0)
    with pytest.raises(ValueError, match="cold_start"):
        MPCConfig(cold_start="branch")  # type: ignore[arg-type]


def test_ikdiffuser_source_names_what_is_missing(target, monkeypatch):
    import ampczoo.ik.seeding as seeding

    def missing(name, robot_name):
        raise ValueError(f"no IKDiffuser model {name!r} in the zoo or on disk")

    monkeypatch.setattr(seeding, "_from_pretrained", missing)
    with pytest.raises(ValueError, match="ikdiffuser-kuka"):
        ik_branches(*target, 2, np.random.default_rng(0), source="ikdiffuser")


def test_ikdiffuser_source_seeds_from_the_ik_sampler(target, monkeypatch):
    """source="ikdiffuser" goes through ampczoo.ik.seeding (here with the oracle sampler)."""
    import ampczoo.ik.seeding as seeding

    calls = []

    def oracle(name, robot_name):
        calls.append(name)
        return seeding.OracleSampler(robot_name, noise=0.02, max_restarts=2, max_iters=60)

    monkeypatch.setattr(seeding, "_from_pretrained", oracle)
    branches = ik_branches(*target, 2, np.random.default_rng(0), n_seeds=8, source="ikdiffuser")
    assert calls == ["ikdiffuser-kuka"] and 1 <= len(branches) <= 2


@pytest.fixture(scope="module")
def branch_expert():
    return MPCExpert(MPCConfig(compile=False, cold_start="branches", reference_branches=3))


def test_expert_pins_the_reference_to_the_drawn_branch(branch_expert, target):
    obs = make_observation(Q_START, *target, None)
    drawn, refs = [], []
    for seed in range(3):
        branch_expert.reset(seed=seed)
        sol = branch_expert.solve(obs)
        assert sol.success, sol.status
        assert sol.branch == branch_expert.branch and 0 <= sol.branch < 3
        np.testing.assert_allclose(sol.x_ref, branch_expert._branch_ref, atol=1e-6)
        drawn.append(sol.branch)
        refs.append(sol.x_ref)
        branch_expert.reset(seed=seed)
        assert branch_expert.solve(obs).branch == sol.branch  # drawn from the seed
    for i in range(3):
        for j in range(i):
            if drawn[i] != drawn[j]:
                assert np.linalg.norm(refs[i] - refs[j]) >= 1.0
    warm = branch_expert.solve(obs)  # later solves warm-start, keep the label
    assert warm.success and warm.branch == drawn[-1]
