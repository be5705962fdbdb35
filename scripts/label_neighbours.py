"""How far is a demonstration's label from the nearest training sample's label, per episode row?

For the validation episodes of the trainer's split (``split_episodes``: same
``--val-fraction`` / ``--seed`` as ``ampczoo train``), at each chosen row r of an episode (the
r-th stored sample), compares the stored expert sequence ``u_seq`` (N, nu) with

- the label of the nearest *training* sample at the same row r of its episode, nearest in the
  observation normalised by the train split's mean / std ("nn label"); also restricted to
  training samples of the same IK branch where the store has ``branch`` labels;
- optionally the predictions of trained checkpoints (``--policies``): an LSM's one sequence,
  a DAMPC's ``--samples`` unguided samples (its default sampler, no ∇G); with
  ``--fit-episodes M`` also on the same rows of M training episodes (the training fit).

A ``--k``-nearest-neighbour mean label (a local average, what a regression could reach by
interpolating the training labels) is reported beside the nearest neighbour's, and the label
of a random training sample of the same row as the no-information baseline.

Errors are RMS over the horizon and joints [rad/s], averaged over the validation episodes
(DAMPC: over samples too). A nearest neighbour whose label is as far as the label's own size
means the observation -> sequence map is not sampled densely enough at that row (or not a
function of the observation there). Prints a markdown table; ``--json`` writes the numbers.

Usage:
    python scripts/label_neighbours.py data/kuka_multimodal_v2.zarr --rows 0 10 20 40 \
        --policies lsm-kuka-multimodal dampc-kuka-multimodal [--json out.json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from ampczoo.core.registry import load_policy
from ampczoo.data.dataset import DemonstrationDataset
from ampczoo.data.store import EpisodeStore


def episode_rows(sample_episode: np.ndarray) -> np.ndarray:
    """(T,) position of every sample within its episode (samples of an episode contiguous)."""
    starts = np.flatnonzero(np.r_[True, sample_episode[1:] != sample_episode[:-1]])
    lengths = np.diff(np.r_[starts, len(sample_episode)])
    return np.arange(len(sample_episode)) - np.repeat(starts, lengths)


def rms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., N, nu) pairs -> (...) RMS over horizon and joints."""
    return np.sqrt(np.mean((a - b) ** 2, axis=(-2, -1)))


def nearest_label_error(
    q_obs: np.ndarray, q_u: np.ndarray, ref_obs: np.ndarray, ref_u: np.ndarray, k: int = 1
) -> np.ndarray:
    """(Q,) RMS error between each query label and the mean label of its k nearest
    reference observations."""
    d = torch.cdist(torch.from_numpy(q_obs), torch.from_numpy(ref_obs))
    idx = d.topk(min(k, d.shape[1]), dim=1, largest=False).indices.numpy()  # (Q, k)
    return rms(q_u, ref_u[idx].mean(axis=1))


def policy_error(path: str, obs: np.ndarray, u: np.ndarray, samples: int, seed: int) -> float:
    """Mean RMS error of a checkpoint's sequence(s) at ``obs`` (Q, D) against ``u`` (Q, N, nu)."""
    policy = load_policy(path, device="cpu")
    if "num_inference_steps" in type(policy.config).__dataclass_fields__:  # diffusion
        gen = torch.Generator().manual_seed(seed)
        seqs = policy.sample(obs, samples, prev_sequence=None, generator=gen)  # (Q, L, N, nu)
        return float(rms(seqs, u[:, None]).mean())
    return float(rms(policy.sample(obs), u).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store")
    ap.add_argument("--rows", type=int, nargs="+", default=[0, 10, 20, 40])
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--policies", nargs="*", default=[])
    ap.add_argument("--samples", type=int, default=8, help="DAMPC samples per observation")
    ap.add_argument("--k", type=int, default=10, help="neighbours of the k-NN mean column")
    ap.add_argument(
        "--fit-episodes",
        type=int,
        default=0,
        help="also score the policies on this many training episodes (training fit)",
    )
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    has_branch = "branch" in EpisodeStore(args.store, mode="r").keys
    kw = {"val_fraction": args.val_fraction, "seed": args.seed, "branch_labels": has_branch}
    train = DemonstrationDataset(args.store, "train", **kw)
    val = DemonstrationDataset(args.store, "val", **kw)
    train_b, val_b = train.branch, val.branch
    stats = train.normalization_stats()["obs"]
    norm = lambda o: ((o - stats["mean"]) / stats["std"]).astype(np.float64)  # noqa: E731
    t_rows, v_rows = episode_rows(train.sample_episode), episode_rows(val.sample_episode)
    results = []
    for r in args.rows:
        ti, vi = np.flatnonzero(t_rows == r), np.flatnonzero(v_rows == r)
        v_obs, v_u = val.obs[vi], val.u_seq[vi].astype(np.float64)
        t_obs, t_u = train.obs[ti], train.u_seq[ti].astype(np.float64)
        row = {
            "row": r,
            "val_episodes": len(vi),
            "train_episodes": len(ti),
            "label_rms": float(rms(v_u, np.zeros_like(v_u)).mean()),
            "random_label_error": float(
                rms(
                    v_u, t_u[np.random.default_rng(args.seed).integers(len(ti), size=len(vi))]
                ).mean()
            ),
            "nn_label_error": float(nearest_label_error(norm(v_obs), v_u, norm(t_obs), t_u).mean()),
            f"{args.k}nn_mean_error": float(
                nearest_label_error(norm(v_obs), v_u, norm(t_obs), t_u, args.k).mean()
            ),
        }
        if train_b is not None and val_b is not None:
            errs = []
            for b in np.unique(val_b[vi]):
                q, ref = vi[val_b[vi] == b], ti[train_b[ti] == b]
                if len(ref):
                    errs.append(
                        nearest_label_error(
                            norm(val.obs[q]),
                            val.u_seq[q].astype(np.float64),
                            norm(train.obs[ref]),
                            train.u_seq[ref].astype(np.float64),
                        )
                    )
            row["nn_same_branch_error"] = float(np.concatenate(errs).mean())
        for p in args.policies:
            row[p] = policy_error(p, v_obs, v_u, args.samples, args.seed)
            if args.fit_episodes:
                fit = ti[: args.fit_episodes]
                row[f"{p} (train)"] = policy_error(
                    p, train.obs[fit], train.u_seq[fit].astype(np.float64), args.samples, args.seed
                )
        results.append(row)
    cols = list(results[0])
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for row in results:
        print(
            "| "
            + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values())
            + " |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
