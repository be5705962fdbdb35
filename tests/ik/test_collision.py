"""Self-collision checks of the IK robots (Pinocchio + coal)."""

from __future__ import annotations

import numpy as np
import pytest

from ampczoo.ik.collision import SelfCollision, self_collision
from ampczoo.robots.kuka import kuka_chain, kuka_collision_model, self_collision_gaps


def test_panda_folded_onto_itself_collides_and_home_does_not() -> None:
    checker = self_collision("panda")
    home = np.array([[0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785]])
    # shoulder and elbow folded so the hand reaches back into the base
    folded = np.array([[0.0, 1.7, 0.0, -3.0, 0.0, 0.0, 0.0]])
    assert not checker.in_collision(home)[0]
    assert checker.in_collision(folded)[0]
    assert checker.colliding_pairs(folded[0])


def test_adjacent_and_always_touching_pairs_are_not_checked() -> None:
    checker = self_collision("panda")
    objects = checker.geometry.geometryObjects
    parents = checker.model.parents
    for pair in checker.geometry.collisionPairs:
        a, b = objects[pair.first].parentJoint, objects[pair.second].parentJoint
        assert a != b and parents[a] != b and parents[b] != a
    reference = np.zeros((1, 7)).clip(checker.robot.lower, checker.robot.upper)
    assert not checker.in_collision(reference)[0]


def test_kuka_agrees_with_the_package_sphere_model() -> None:
    checker = self_collision("kuka")
    q = checker.robot.sample_q(3000, np.random.default_rng(3))
    model = kuka_collision_model()
    gaps = self_collision_gaps(kuka_chain().batch_sphere_centres(q), model)
    ours = checker.in_collision(q)
    theirs = gaps[:, : len(model.pairs)].min(axis=1) < 0
    # the package model adds a safety margin, so it may flag a few more near-contacts
    assert (ours & ~theirs).sum() == 0
    assert (theirs & ~ours).sum() <= max(3, theirs.sum() // 2)


def test_threedof_has_no_collision_geometry() -> None:
    checker = SelfCollision("threedof")
    assert checker.num_pairs == 0
    assert not checker.in_collision(np.zeros((4, 3))).any()


def test_bad_configurations_are_refused() -> None:
    checker = self_collision("panda")
    with pytest.raises(ValueError, match=r"\(B, 7\)"):
        checker.in_collision(np.zeros((2, 6)))
    with pytest.raises(ValueError, match="NaN"):
        checker.in_collision(np.full((1, 7), np.nan))
