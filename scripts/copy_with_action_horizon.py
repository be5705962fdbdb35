"""Copy a Diffusion Policy checkpoint folder, or every ``step-*/`` snapshot and ``last/`` of a
training run folder, with another executed action horizon T_a (``action_horizon`` in
config.json; the weights are unchanged). ``last/train_state.json`` is copied too, so that
``bench manipulation --checkpoints last:K`` still sees which snapshot ``last/`` is.

Usage: python scripts/copy_with_action_horizon.py SRC DST T_A
(e.g. the shipped T_a = 4 of dp-square / dp-can: docs/results/manipulation.md)
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path


def copy_checkpoint(src: Path, dst: Path, action_horizon: int) -> None:
    """config.json (with the new action_horizon), model.safetensors and card.json of ``src``."""
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "card.json"):
        if (src / name).is_file():
            shutil.copy(src / name, dst / name)
    config = json.loads((dst / "config.json").read_text())
    if not 1 <= action_horizon <= config["pred_horizon"]:
        raise ValueError(f"T_a must be in [1, {config['pred_horizon']}], got {action_horizon}")
    config["action_horizon"] = action_horizon
    (dst / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def main(src: Path, dst: Path, action_horizon: int) -> None:
    if (src / "config.json").is_file():
        copy_checkpoint(src, dst, action_horizon)
        return
    if not (src / "last" / "config.json").is_file():
        raise ValueError(f"{src} is neither a checkpoint folder nor a training run folder")
    for folder in [*sorted(src.glob("step-*")), src / "last"]:
        copy_checkpoint(folder, dst / folder.name, action_horizon)
    state = src / "last" / "train_state.json"
    if state.is_file():
        shutil.copy(state, dst / "last" / state.name)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
