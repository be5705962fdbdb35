"""Held-out errors of an IKDiffuser and the shipped IK zoo (``ampczoo/zoo/ikdiffuser-<robot>``).

Held-out poses: configurations drawn uniformly within the joint limits from
``np.random.default_rng(HELD_OUT_SEED)`` (a seed neither the data, chunk c = [seed, c], nor
the training's validation uses), self-colliding ones rejected like the data's, and their
forward kinematics. ``python -m ampczoo.ik.evaluate ROBOT RUN_FOLDER`` ships a trained run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ampczoo.ik import data as ikdata
from ampczoo.ik.diffuser import ZOO_DIR, ZOO_PREFIX, IKDiffuser
from ampczoo.ik.robots import load_robot

HELD_OUT_SEED = 20261203
GOLDEN_PATH = Path(__file__).resolve().parents[2] / "tests/ik/golden/ikdiffuser.json"
#: the golden error bound: this factor times the error measured when shipping
BOUND_FACTOR = 1.25


def held_out_poses(robot: str, n: int = 200, seed: int = HELD_OUT_SEED) -> np.ndarray:
    """(n, N_ee, 7) poses of collision-free configurations unseen in training."""
    _, poses = ikdata.draw_chunk(
        load_robot(robot), n, np.random.default_rng(seed), ikdata.collision_filter(robot)
    )
    return poses


def held_out_errors(model: IKDiffuser, n: int = 200, num_samples: int = 1) -> dict[str, float]:
    """Median position error [mm] and angle error [deg] over n held-out poses of the best of
    ``num_samples`` samples each (generator seed 0)."""
    poses = held_out_poses(model.robot.name, n)
    sol = model.solve(poses, num_samples=num_samples, generator=torch.Generator().manual_seed(0))
    return {
        "position_mm": float(np.median(sol.position_error[:, 0]) * 1000),
        "angle_deg": float(np.degrees(np.median(sol.angle_error[:, 0]))),
    }


def golden_samples(model: IKDiffuser) -> dict[str, Any]:
    """Two held-out poses (seed 7) and 2 samples each with generator seed 0."""
    poses = held_out_poses(model.robot.name, 2, seed=7)
    q = model.sample(poses, 2, generator=torch.Generator().manual_seed(0))
    return {"poses": poses.tolist(), "q": q.numpy().tolist()}


def ship(robot: str, run: Path, selection: str, note: str, command: str) -> Path:
    """Copy ``run/<selection>`` to the zoo, write its card.json, record its golden entry."""
    src = run / selection
    dst = ZOO_DIR / f"{ZOO_PREFIX}{robot}"
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(src / name, dst / name)
    torch.set_num_threads(1)
    model = IKDiffuser.from_pretrained(dst, robot=robot)
    errors = held_out_errors(model)
    best16 = held_out_errors(model, num_samples=16)
    state = json.loads((run / "last" / "train_state.json").read_text())
    train_cfg = json.loads((run / "train_config.json").read_text())
    rows = (run / "log.csv").read_text().splitlines()
    card = {
        "model": "ikdiffuser",
        "robot": robot,
        "data": {
            "path": train_cfg["data"] or f"data/ik/{robot}.zarr",
            "samples": train_cfg["samples"],
            "reject_collisions": train_cfg["reject_collisions"],
        },
        "command": command,
        "date": dt.date.today().isoformat(),
        "selection": selection,
        "steps": state["step"],
        "wall_s": _wall_seconds(rows),
        "result": {
            **errors,
            "poses": 200,
            "samples_per_pose": 1,
            "criterion": "median over 200 held-out poses (seed 20261203) of 1-sample solves",
            "best_of_16": best16,
        },
        "size_bytes": (dst / "model.safetensors").stat().st_size,
        "parameters": model.num_parameters(),
        "note": note,
    }
    (dst / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    golden = json.loads(GOLDEN_PATH.read_text()) if GOLDEN_PATH.is_file() else {}
    golden[dst.name] = {
        **golden_samples(model),
        "position_mm_bound": round(errors["position_mm"] * BOUND_FACTOR, 2),
        "angle_deg_bound": round(errors["angle_deg"] * BOUND_FACTOR, 3),
    }
    GOLDEN_PATH.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN_PATH.write_text(json.dumps(dict(sorted(golden.items())), indent=1) + "\n")
    print(json.dumps({"shipped": str(dst), **errors}))
    return dst


def _wall_seconds(rows: list[str]) -> float:
    """Training wall time [s] summed over the (resumed) runs of a log.csv."""
    walls = [float(r.split(",")[-1]) for r in rows[1:]]
    total, last = 0.0, 0.0
    for w in walls:
        if w < last:  # a resumed run restarts its clock
            total += last
        last = w
    return total + last


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ship a trained IKDiffuser run into the zoo")
    parser.add_argument("robot")
    parser.add_argument("run", type=Path)
    parser.add_argument("--selection", default="last", choices=["best", "last"])
    parser.add_argument("--note", default="")
    parser.add_argument("--command", default="")
    args = parser.parse_args(argv)
    ship(args.robot, args.run, args.selection, args.note, args.command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
