"""Helpers on input sequences u: (N, nq) [rad/s] sampled every dt seconds."""

from __future__ import annotations

import numpy as np


def shift_sequence(seq: np.ndarray, shift: float) -> np.ndarray:
    """An input sequence (N, nq) advanced by ``shift`` of its own steps (fractional shifts
    interpolate linearly; the last input is held), i.e. what it predicts from ``shift`` steps
    later on. shift = 1 drops u_0 and repeats u_{N-1}."""
    seq = np.asarray(seq, float)
    n = len(seq)
    pos = np.minimum(np.arange(n) + shift, n - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    w = (pos - lo)[:, None]
    return (1.0 - w) * seq[lo] + w * seq[hi]
