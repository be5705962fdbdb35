"""Training data of IKDiffuser: configurations uniform within the joint limits, the poses of
every end-effector (batched torch forward kinematics), self-colliding ones rejected, written in
chunks to a Zarr v3 store that resumes where an interrupted run stopped.

Store layout::

    attrs   {"kind": "ikdiffuser-data", "robot", "dof", "num_ee", "ee_names",
             "seed", "chunk", "reject_collisions", "rows", "seconds"}
            rows = complete rows; seconds = generation time over all (resumed) runs [s]
    q       (N, dof) float32 joint positions [rad]
    poses   (N, N_ee, 7) float32 position [m] + unit quaternion (qx, qy, qz, qw), qw >= 0

Chunk c is drawn from ``np.random.default_rng([seed, c])``, so a resumed store equals an
uninterrupted one. Rows beyond ``attrs["rows"]`` (a chunk whose write was interrupted) are
dropped on opening.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ampczoo.ik.robots import POSE_DIM, IKRobot, load_robot

STORE_KIND = "ikdiffuser-data"
DEFAULT_CHUNK = 65536


@dataclass(frozen=True)
class IKData:
    """Arrays of a store in memory: q (N, dof) float32 [rad], poses (N, N_ee, 7) float32."""

    q: np.ndarray
    poses: np.ndarray


def collision_filter(robot_name: str) -> Any:
    """``in_collision(q (B, dof)) -> (B,) bool`` of ``ampczoo.ik.collision.SelfCollision``."""
    from ampczoo.ik.collision import SelfCollision

    return SelfCollision(robot_name).in_collision


def draw_chunk(
    robot: IKRobot,
    n: int,
    rng: np.random.Generator,
    in_collision: Any = None,
    max_batches: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """n collision-free configurations (n, dof) and their poses (n, N_ee, 7), float32.

    in_collision: None (keep all) or a function (B, dof) -> (B,) bool. ValueError when
    ``max_batches`` batches do not yield n free configurations."""
    kept: list[np.ndarray] = []
    count = 0
    for _ in range(max_batches):
        q = robot.sample_q(n, rng)
        if in_collision is not None:
            q = q[~np.asarray(in_collision(q), dtype=bool)]
        kept.append(q)
        count += len(q)
        if count >= n:
            break
    if count < n:
        raise ValueError(
            f"{robot.name}: fewer than {n} collision-free samples in {max_batches} batches"
        )
    q = np.concatenate(kept)[:n]
    with torch.no_grad():
        poses = robot.forward_kinematics(torch.as_tensor(q)).numpy()
    return q.astype(np.float32), poses.astype(np.float32)


def open_store(
    path: str | Path, robot: IKRobot, seed: int, chunk: int, reject_collisions: bool
) -> Any:
    """The Zarr group at ``path`` (created if missing), truncated to its complete rows.
    ValueError when it holds another robot's data, another seed / chunk / rejection, or is
    not an IKDiffuser data store."""
    import zarr

    attrs: dict[str, Any] = {
        "kind": STORE_KIND,
        "robot": robot.name,
        "dof": robot.dof,
        "num_ee": robot.num_ee,
        "ee_names": list(robot.ee_names),
        "seed": int(seed),
        "chunk": int(chunk),
        "reject_collisions": bool(reject_collisions),
    }
    path = Path(path)
    if not path.exists():
        group = zarr.open_group(str(path), mode="w")
        group.create_array("q", shape=(0, robot.dof), chunks=(chunk, robot.dof), dtype="float32")
        group.create_array(
            "poses",
            shape=(0, robot.num_ee, POSE_DIM),
            chunks=(chunk, robot.num_ee, POSE_DIM),
            dtype="float32",
        )
        group.attrs.update({**attrs, "rows": 0})
        return group
    group = _open_existing(path)
    stored = dict(group.attrs)
    if stored.get("robot") != robot.name:
        raise ValueError(f"{path}: data store of robot {stored.get('robot')!r}, not {robot.name!r}")
    diff = [k for k, v in attrs.items() if stored.get(k) != v]
    if diff:
        raise ValueError(
            f"{path}: store made with other settings ({', '.join(diff)}); "
            "use another path or the same settings"
        )
    rows = int(stored.get("rows", 0))
    for name in ("q", "poses"):
        arr = group[name]
        if arr.shape[0] != rows:
            arr.resize((rows, *arr.shape[1:]))
    return group


def _open_existing(path: Path) -> Any:
    import zarr

    try:
        group = zarr.open_group(str(path), mode="r+")
    except (FileNotFoundError, ValueError, zarr.errors.GroupNotFoundError) as exc:
        raise ValueError(f"{path}: not an IKDiffuser data store ({exc})") from exc
    if group.attrs.get("kind") != STORE_KIND or not {"q", "poses"} <= set(group.array_keys()):
        raise ValueError(f"{path}: not an IKDiffuser data store (kind {group.attrs.get('kind')!r})")
    return group


def generate(
    path: str | Path,
    robot: str,
    num_samples: int,
    seed: int = 0,
    chunk: int = DEFAULT_CHUNK,
    reject_collisions: bool = True,
    log: Any = print,
) -> dict[str, Any]:
    """Fill the store at ``path`` up to ``num_samples`` rows (rounded up to whole chunks),
    resuming an interrupted one. Returns {"rows", "added", "seconds"}."""
    if num_samples < 1 or chunk < 1:
        raise ValueError(f"num_samples and chunk must be >= 1, got {num_samples}, {chunk}")
    ik_robot = load_robot(robot)
    group = open_store(path, ik_robot, seed, chunk, reject_collisions)
    in_collision = collision_filter(robot) if reject_collisions else None
    rows = int(group.attrs["rows"])
    start, t0 = rows, time.perf_counter()
    spent = float(group.attrs.get("seconds", 0.0))
    while rows < num_samples:
        c = rows // chunk
        q, poses = draw_chunk(ik_robot, chunk, np.random.default_rng([seed, c]), in_collision)
        for name, block in (("q", q), ("poses", poses)):
            arr = group[name]
            arr.resize((rows + chunk, *arr.shape[1:]))
            arr[rows:] = block
        rows += chunk
        group.attrs.update({"rows": rows, "seconds": spent + time.perf_counter() - t0})
        if log is not None:
            log(f"{robot}: {rows}/{num_samples} samples ({time.perf_counter() - t0:.0f} s)")
    return {"rows": rows, "added": rows - start, "seconds": time.perf_counter() - t0}


def load(path: str | Path, robot: str | None = None, max_rows: int | None = None) -> IKData:
    """The complete rows of a store (ValueError when it is another robot's)."""
    group = _open_existing(Path(path))
    if robot is not None and group.attrs.get("robot") != robot:
        raise ValueError(f"{path}: data store of robot {group.attrs.get('robot')!r}, not {robot!r}")
    rows = int(group.attrs["rows"])
    if max_rows is not None:
        rows = min(rows, int(max_rows))
    return IKData(q=np.asarray(group["q"][:rows]), poses=np.asarray(group["poses"][:rows]))
