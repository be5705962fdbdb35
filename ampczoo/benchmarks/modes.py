"""Mode swaps as the DAMPC paper defines them (Table III): changes of the local minimum chosen.

At a visited state a controller can produce several open-loop input sequences (the MPC from
different initial guesses, the diffusion model's samples); hierarchical clustering of them
together with the selected sequence (distance: RMS over the horizon and joints [rad/s],
:func:`cluster_sequences`) gives the state's modes, and the step *chooses* the cluster its
selected sequence falls in. The previous step's mode continues as the cluster of the point
nearest to the previously selected sequence advanced by the elapsed time; the chosen mode is
*kept* when that is the chosen cluster and *swapped* otherwise (:func:`chosen_mode_labels`).
A state with one cluster therefore has no swap, however much the plan moved (a single-output
policy such as LSM never swaps), and a swap needs two modes at the state with the selection
leaving the one the previous plan continues into. The swaps of an episode are the label
changes between consecutive evaluated steps (:func:`count_label_switches`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ampczoo.nn.sequence import shift_sequence

LINKAGES = ("average", "single", "complete")


def cluster_sequences(seqs: np.ndarray, threshold: float, linkage: str = "average") -> np.ndarray:
    """Hierarchical clustering of open-loop sequences (M, N, nq) [rad/s] -> labels (M,) int.

    Distance between two sequences: RMS over the N*nq entries [rad/s]; clusters are cut
    where the ``linkage`` distance ("average" | "single" | "complete") exceeds ``threshold``
    (scipy ``fcluster(..., criterion="distance")``). Labels are 0-based."""
    from scipy.cluster.hierarchy import fcluster
    from scipy.cluster.hierarchy import linkage as scipy_linkage

    if linkage not in LINKAGES:
        raise ValueError(f"linkage must be one of {LINKAGES}, got {linkage!r}")
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    seqs = np.asarray(seqs, float)
    if seqs.ndim != 3:
        raise ValueError(f"seqs must be (M, N, nq), got shape {seqs.shape}")
    if not np.isfinite(seqs).all():
        raise ValueError("seqs contain NaN or inf")
    if len(seqs) == 1:
        return np.zeros(1, int)
    flat = seqs.reshape(len(seqs), -1) / np.sqrt(seqs[0].size)
    return fcluster(scipy_linkage(flat, method=linkage), t=threshold, criterion="distance") - 1


def count_label_switches(labels: Sequence[int] | np.ndarray) -> int:
    """Changes of the chosen mode label between consecutive valid steps; labels < 0 (no
    sequence at that step, e.g. a failed MPC solve) are skipped."""
    valid = np.asarray(labels, int)
    valid = valid[valid >= 0]
    return int(np.sum(valid[1:] != valid[:-1]))


def chosen_mode_labels(
    selected: Sequence[np.ndarray | None],
    candidates: Sequence[np.ndarray],
    shift: float,
    threshold: float,
    linkage: str = "average",
) -> np.ndarray:
    """Mode label of each evaluated step of one closed loop -> (J,) int (-1: no sequence).

    selected[j]: (N, nq) sequence the controller executed at evaluated step j (None or NaN:
    none); candidates[j]: (M_j, N, nq) other sequences it can produce at that state (M_j may
    be 0); shift: sequence steps between consecutive evaluated steps (elapsed time /
    sequence step). candidates[j] and selected[j] are clustered; step j keeps the label of
    the last valid step when that step's selection, advanced by the elapsed time, is nearest
    (RMS) to a point of selected[j]'s cluster; otherwise it takes the label of the most recent
    earlier mode whose last selection (advanced likewise) is, or a new label. Label changes
    are mode swaps; the number of distinct labels is the number of different local minima
    chosen. Without candidates (M_j = 0) a step has one mode and keeps its label."""
    if len(selected) != len(candidates):
        raise ValueError(
            f"selected and candidates differ in length: {len(selected)} vs {len(candidates)}"
        )
    labels = np.full(len(selected), -1, int)
    memory: dict[int, tuple[np.ndarray, int]] = {}  # label -> (last selection, its step)
    last = -1
    for j, sel in enumerate(selected):
        if sel is None or not np.isfinite(sel).all():
            continue
        sel = np.asarray(sel, float)
        if last < 0:
            label = 0
        else:
            label = _match_mode(sel, j, memory, last, candidates[j], shift, threshold, linkage)
        labels[j], last = label, label
        memory[label] = (sel, j)
    return labels


def _match_mode(
    sel: np.ndarray,
    j: int,
    memory: dict[int, tuple[np.ndarray, int]],
    last: int,
    cand: np.ndarray,
    shift: float,
    threshold: float,
    linkage: str,
) -> int:
    """Label of ``sel`` at step j given the modes chosen before (see chosen_mode_labels)."""
    keys = sorted(memory, key=lambda k: -memory[k][1])  # most recently chosen first
    cand = np.asarray(cand, float).reshape(-1, *sel.shape)
    points = np.concatenate([cand[np.isfinite(cand).all(axis=(1, 2))], sel[None]])
    lab = cluster_sequences(points, threshold, linkage)
    mine = lab[-1]

    def continues_into(k: int) -> int:
        """Cluster of the point nearest to mode k's last selection advanced to step j."""
        ref = shift_sequence(memory[k][0], shift * (j - memory[k][1]))
        return int(lab[np.argmin(np.sum((points - ref) ** 2, axis=(1, 2)))])

    if continues_into(last) == mine:
        return last
    for k in keys:
        if k != last and continues_into(k) == mine:
            return k
    return max(memory) + 1
