"""Distinct inverse-kinematics branches of a KUKA target pose (issue 15, multi-modal data).

The 7-joint KUKA reaches a 6-DoF pose on a continuum of configurations (a one-dimensional
self-motion set per discrete elbow/wrist branch). :func:`ik_branches` turns that into a small
set of K *distinct* configurations: damped-least-squares (DLS) IK from ``n_seeds`` seeds
spread uniformly over the joint limits, collision-free solutions kept, clustered by joint
distance (complete linkage, ``threshold`` [rad]: two solutions closer than it are one
branch; a cluster is represented by its member nearest ``q_near``), and the K representatives
nearest ``q_near`` (the current configuration) that are pairwise at least ``threshold``
apart, nearest first: branch 0 is the solution a state cold start would tend to find, the
others the next-shortest distinct motions (short motions keep the demonstrations learnable
and away from the joint limits, where farthest-point choices end up).

``source="ikdiffuser"`` takes the seeds from IKDiffuser instead
(:func:`ampczoo.ik.seeding.ik_seeds` with the zoo model ``ikdiffuser-kuka``; ValueError naming
that model when it is not there) and refines them with the same DLS iterations.

The MPC expert uses a branch as the artificial reference and the initial guess of an
episode's first solve (``MPCConfig(cold_start="branches")``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ampczoo.robots.kuka import Obstacle, batch_collision_free, kuka_chain

BRANCH_SOURCES = ("dls", "ikdiffuser")
BranchSource = Literal["dls", "ikdiffuser"]
#: Convergence of an IK solution: position error [m] and rotation error [rad].
IK_POS_TOL, IK_ROT_TOL = 1e-4, 1e-3
#: DLS damping λ (dq = Jᵀ (J Jᵀ + λ² I)⁻¹ e), maximum joint step per iteration [rad], iterations.
DLS_DAMPING, DLS_MAX_STEP, DLS_ITERATIONS = 0.05, 0.3, 150


def _rotvec(R: np.ndarray) -> np.ndarray:
    """Rotation vectors (M, 3) [rad] of rotations (M, 3, 3) (log map)."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(R).as_rotvec()


def pose_errors(
    qs: np.ndarray, target_pos: np.ndarray, target_rot: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Position error (M, 3) [m] (p_d - p) and world-frame rotation error (M, 3) [rad]
    (log(R_d Rᵀ)) of configurations qs (M, 7)."""
    p, R = kuka_chain().batch_ee_pose(qs)
    return target_pos - p, _rotvec(np.asarray(target_rot)[None] @ np.swapaxes(R, 1, 2))


def geometric_jacobian(qs: np.ndarray) -> np.ndarray:
    """End-effector geometric Jacobians (M, 6, 7): rows linear velocity [m/rad], then angular
    velocity [1], world frame."""
    chain = kuka_chain()
    Rs, ps = chain.batch_link_transforms(qs)
    Re, pe = chain.ee_offset
    p_ee = ps[:, -1] + Rs[:, -1] @ pe
    axes = np.einsum("mjab,jb->mja", Rs[:, 1:], np.asarray(chain.axes, float))  # (M, 7, 3)
    lin = np.cross(axes, p_ee[:, None] - ps[:, 1:])
    return np.concatenate([lin, axes], axis=-1).transpose(0, 2, 1)


def dls_ik(
    seeds: np.ndarray,
    target_pos: np.ndarray,
    target_rot: np.ndarray,
    iterations: int = DLS_ITERATIONS,
) -> tuple[np.ndarray, np.ndarray]:
    """Batched damped-least-squares IK within the joint limits.

    seeds: (M, 7) [rad] -> (solutions (M, 7) [rad], converged (M,) bool: position error
    < IK_POS_TOL and rotation error < IK_ROT_TOL)."""
    chain = kuka_chain()
    q = np.clip(np.asarray(seeds, float).copy(), chain.lower, chain.upper)
    eye = DLS_DAMPING**2 * np.eye(6)
    for _ in range(iterations):
        e_p, e_r = pose_errors(q, target_pos, target_rot)
        e = np.concatenate([e_p, e_r], axis=-1)
        J = geometric_jacobian(q)
        dq = np.einsum(
            "mji,mj->mi", J, np.linalg.solve(J @ J.transpose(0, 2, 1) + eye, e[..., None])[..., 0]
        )
        scale = np.minimum(1.0, DLS_MAX_STEP / (np.abs(dq).max(axis=-1, keepdims=True) + 1e-12))
        q = np.clip(q + scale * dq, chain.lower, chain.upper)
    e_p, e_r = pose_errors(q, target_pos, target_rot)
    ok = (np.linalg.norm(e_p, axis=-1) < IK_POS_TOL) & (np.linalg.norm(e_r, axis=-1) < IK_ROT_TOL)
    return q, ok


def _seeds(
    source: BranchSource,
    n: int,
    target_pos: np.ndarray,
    target_rot: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """(n, 7) IK seeds [rad]: uniform in the joint limits ("dls") or IKDiffuser samples."""
    if source == "dls":
        chain = kuka_chain()
        return rng.uniform(chain.lower, chain.upper, size=(n, chain.nq))
    import torch

    from ampczoo.ik.robots import matrix_to_quaternion
    from ampczoo.ik.seeding import ik_seeds

    quat = matrix_to_quaternion(torch.as_tensor(target_rot, dtype=torch.float64)).numpy()
    pose = np.concatenate([target_pos, quat]).reshape(1, 1, 7)
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    return ik_seeds("kuka", pose, n, source="ikdiffuser", generator=generator)[0]


def cluster_configurations(qs: np.ndarray, threshold: float) -> np.ndarray:
    """Cluster labels (M,) of configurations qs (M, 7): complete linkage on the Euclidean
    joint distance [rad], clusters cut at ``threshold`` (members of one cluster are all closer
    than it to each other)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(qs) == 1:
        return np.zeros(1, dtype=int)
    return fcluster(linkage(qs, method="complete"), t=threshold, criterion="distance") - 1


def nearest_distinct(points: np.ndarray, near: np.ndarray, k: int, min_dist: float) -> list[int]:
    """Up to k indices into points (M, D), greedily by distance to ``near`` (D,): a point is
    taken when it is at least ``min_dist`` from every point taken before."""
    chosen: list[int] = []
    for i in np.argsort(np.linalg.norm(points - near, axis=-1), kind="stable"):
        if all(np.linalg.norm(points[i] - points[j]) >= min_dist for j in chosen):
            chosen.append(int(i))
            if len(chosen) == k:
                break
    return chosen


def ik_branches(
    target_pos: np.ndarray,
    target_rot: np.ndarray,
    k: int,
    rng: np.random.Generator,
    q_near: np.ndarray | None = None,
    obstacle: Obstacle | None = None,
    threshold: float = 1.0,
    n_seeds: int = 48,
    source: BranchSource = "dls",
) -> np.ndarray:
    """Up to k distinct collision-free IK solutions (K', 7) [rad], 1 <= K' <= k, of the pose
    (target_pos (3,) [m], target_rot (3, 3)); pairwise joint distances >= ``threshold`` [rad].

    Solutions inside ``obstacle`` are dropped unless every solution is (then the self-collision
    free ones are kept: the MPC's constraints move the reference off the obstacle). Branches
    are ordered by distance to ``q_near`` (7,) [rad] (default: the joint-range
    centre).
    Deterministic given ``rng``'s state. RuntimeError when no seed converges to a
    self-collision-free solution; ValueError on bad arguments."""
    if int(k) != k or k < 1:
        raise ValueError(f"branch count k must be an integer >= 1, got {k}")
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0 [rad], got {threshold}")
    if source not in BRANCH_SOURCES:
        raise ValueError(f"unknown branch source {source!r}; choose {BRANCH_SOURCES}")
    target_pos, target_rot = np.asarray(target_pos, float), np.asarray(target_rot, float)
    if target_pos.shape != (3,) or target_rot.shape != (3, 3):
        raise ValueError(
            f"target must be (3,) and (3, 3), got {target_pos.shape}, {target_rot.shape}"
        )
    if not (np.all(np.isfinite(target_pos)) and np.all(np.isfinite(target_rot))):
        raise ValueError("target pose contains NaN/inf")
    chain = kuka_chain()
    near = 0.5 * (chain.lower + chain.upper) if q_near is None else np.asarray(q_near, float)
    seeds = _seeds(source, n_seeds, target_pos, target_rot, rng)
    if q_near is not None:
        seeds = np.vstack([near, seeds])  # the nearest branch is found reliably
    sols, ok = dls_ik(seeds, target_pos, target_rot)
    sols = sols[ok]
    if len(sols):
        free = batch_collision_free(sols, obstacle)
        sols = sols[free] if free.any() else sols[batch_collision_free(sols, None)]
    if not len(sols):
        raise RuntimeError("no collision-free IK solution of the target from any seed")
    labels = cluster_configurations(sols, threshold)
    reps = np.stack([_representative(sols[labels == c], near) for c in np.unique(labels)])
    return reps[nearest_distinct(reps, near, int(k), threshold)]


def _representative(members: np.ndarray, near: np.ndarray) -> np.ndarray:
    """The cluster member (7,) nearest ``near`` (7,) [rad]."""
    return members[int(np.argmin(np.linalg.norm(members - near, axis=-1)))]
