"""Self-collision checking of the IK robots with Pinocchio + coal (the robots' collision meshes).

Which link pairs are checked follows MoveIt's setup assistant: all pairs of collision geometries,
minus

* pairs on the same joint or on a parent/child joint pair (adjacent links always touch),
* the pairs the robot's SRDF disables, where the description ships one (Panda, Baxter),
* pairs in contact at the reference configuration (every joint at 0, clipped into its limits),
* pairs in contact in at least :data:`ALWAYS_FRACTION` of 1000 configurations drawn uniformly
  within the joint limits (fixed seed), i.e. geometry that overlaps by construction.

The 3-DOF arm has no collision geometry (its simulation disables contacts), so it is never in
collision. The KUKA uses the spheres of its URDF (those the MPC and the envs check); contacts
with the floor are not self-collisions.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ampczoo.ik.robots import (
    build_full_model,
    clip_wide_limits,
    description_path,
    example_robot_data_dir,
    load_robot,
    locked_joint_ids,
    reference_configuration,
    robot_spec,
)

#: a pair colliding in at least this share of random configurations overlaps by construction
ALWAYS_FRACTION = 0.9
FILTER_SAMPLES = 1000
SRDF = {
    "panda": "panda_description/srdf/panda.srdf",
    "baxter": "baxter_description/srdf/baxter_manipulation.srdf",
}


class SelfCollision:
    """Self-collision test of one robot's configurations.

    ``q: (B, dof)`` in the joint order of :func:`ampczoo.ik.robots.load_robot` ``(name)``.
    """

    def __init__(self, robot_name: str):
        import pinocchio as pin

        self.robot = load_robot(robot_name)
        self.model, self.geometry = _reduced_collision_model(robot_name)
        self._data = self.model.createData()
        self._pin = pin
        self._filter_pairs(robot_name)
        self._geometry_data = pin.GeometryData(self.geometry)

    @property
    def num_pairs(self) -> int:
        """Number of geometry pairs checked."""
        return len(self.geometry.collisionPairs)

    def _filter_pairs(self, robot_name: str) -> None:
        pin = self._pin
        self.geometry.addAllCollisionPairs()
        if robot_name in SRDF:
            srdf = example_robot_data_dir() / SRDF[robot_name]
            pin.removeCollisionPairs(self.model, self.geometry, str(srdf))
        keep = [p for p in self.geometry.collisionPairs if not self._adjacent(p)]
        self._set_pairs(keep)
        rng = np.random.default_rng(0)
        samples = self.robot.sample_q(FILTER_SAMPLES, rng)
        hits = np.zeros(len(keep))
        for q in samples:
            hits += self._pair_hits(q)
        at_reference = self._pair_hits(self._reference_q())
        drop = (hits >= ALWAYS_FRACTION * FILTER_SAMPLES) | at_reference
        self._set_pairs([p for p, d in zip(keep, drop, strict=True) if not d])

    def _reference_q(self) -> np.ndarray:
        return np.clip(np.zeros(self.model.nq), self.robot.lower, self.robot.upper)

    def _adjacent(self, pair: Any) -> bool:
        objects = self.geometry.geometryObjects
        a, b = objects[pair.first].parentJoint, objects[pair.second].parentJoint
        parents = self.model.parents
        return a == b or parents[a] == b or parents[b] == a

    def _set_pairs(self, pairs: list[Any]) -> None:
        self.geometry.removeAllCollisionPairs()
        for pair in pairs:
            self.geometry.addCollisionPair(pair)

    def _pair_hits(self, q: np.ndarray) -> np.ndarray:
        """(num_pairs,) bool: which checked pairs collide at ``q``."""
        pin = self._pin
        data = pin.GeometryData(self.geometry)
        pin.computeCollisions(self.model, self._data, self.geometry, data, q, False)
        return np.array([r.isCollision() for r in data.collisionResults], dtype=bool)

    def in_collision(self, q: np.ndarray) -> np.ndarray:
        """(B,) bool: whether each configuration ``q: (B, dof)`` [rad] is in self-collision."""
        q = np.asarray(q, dtype=np.float64)
        if q.ndim != 2 or q.shape[1] != self.robot.dof:
            raise ValueError(f"{self.robot.name}: q must be (B, {self.robot.dof}), got {q.shape}")
        if not np.isfinite(q).all():
            raise ValueError(f"{self.robot.name}: q contains NaN or inf")
        if self.num_pairs == 0:
            return np.zeros(len(q), dtype=bool)
        pin, model, data, gdata = self._pin, self.model, self._data, self._geometry_data
        return np.array(
            [pin.computeCollisions(model, data, self.geometry, gdata, qb, True) for qb in q]
        )

    def colliding_pairs(self, q: np.ndarray) -> list[tuple[str, str]]:
        """Names of the geometry pairs in contact at one configuration ``q: (dof,)``."""
        hits = self._pair_hits(np.asarray(q, dtype=np.float64))
        objects = self.geometry.geometryObjects
        pairs = self.geometry.collisionPairs
        return [
            (objects[p.first].name, objects[p.second].name)
            for p, hit in zip(pairs, hits, strict=True)
            if hit
        ]


def _reduced_collision_model(name: str) -> tuple[Any, Any]:
    """(reduced Pinocchio model, its collision GeometryModel), joints as in the IK robot."""
    import pinocchio as pin

    spec = robot_spec(name)
    full, geometry = build_full_model(spec, with_geometry=True)
    lock_ids = locked_joint_ids(spec, full)
    if lock_ids:
        q_ref = reference_configuration(full)
        full, geometry = pin.buildReducedModel(full, geometry, lock_ids, q_ref)
    clip_wide_limits(full)
    names = tuple(full.names[i] for i in range(1, full.njoints))
    if names != load_robot(name).joint_names:
        raise ValueError(f"{name}: collision model joints differ from {description_path(spec)}")
    return full, geometry


@functools.lru_cache(maxsize=8)
def self_collision(robot_name: str) -> SelfCollision:
    """The (cached) checker of ``robot_name``; building it filters pairs (about a second)."""
    return SelfCollision(robot_name)
