"""``ampczoo train`` on a fraction of the training episodes, same validation episodes.

For data-amount curves: the trainer's split (``split_episodes``) is computed as usual, then
only the first ``ceil(fraction * n)`` of the train episodes, in a permutation seeded by
``--subset-seed``, are kept. The val / test episodes are unchanged, and smaller fractions are
subsets of larger ones (same permutation). Everything after ``--`` is passed to
``ampczoo train`` as is (``--resume`` included; the subset is deterministic, so a resumed run
sees the same episodes). The normalisation statistics come from the kept episodes.

Usage:
    python scripts/train_subset.py --fraction 0.25 -- dampc --data data/kuka_multimodal_v2.zarr \
        --out runs/train-dampc-mm-25pct --epochs 100000 --max-steps 8000 --batch-size 1024 \
        --policy.obs-dim 20 --device cpu
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

import ampczoo.data.dataset as dataset
from ampczoo.cli import main as cli_main


def subset_split(fraction: float, subset_seed: int):  # type: ignore[no-untyped-def]
    """A ``split_episodes`` that keeps ``fraction`` of the train episodes."""
    full = dataset.split_episodes

    def split(ids, val_fraction, seed, test_fraction=0.0):  # type: ignore[no-untyped-def]
        out = full(ids, val_fraction, seed, test_fraction)
        train = np.random.default_rng(subset_seed).permutation(sorted(out["train"]))
        out["train"] = set(train[: math.ceil(fraction * len(train))].tolist())
        return out

    return split


def main() -> int:
    argv = sys.argv[1:]
    if "--" not in argv:
        raise SystemExit("usage: train_subset.py --fraction F [--subset-seed S] -- POLICY ...")
    cut = argv.index("--")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fraction", type=float, required=True)
    ap.add_argument("--subset-seed", type=int, default=0)
    args = ap.parse_args(argv[:cut])
    if not 0.0 < args.fraction <= 1.0:
        raise SystemExit(f"--fraction must be in (0, 1], got {args.fraction}")
    dataset.split_episodes = subset_split(args.fraction, args.subset_seed)
    return cli_main(["train", *argv[cut + 1 :]])


if __name__ == "__main__":
    raise SystemExit(main())
