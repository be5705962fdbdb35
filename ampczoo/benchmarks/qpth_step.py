"""Time one qpth QP-layer step (forward + backward) on problems saved by
``ampczoo bench constraints``; runs in a side environment (qpth pins numpy<2).

Standalone on purpose: it imports only numpy, torch and qpth, so it runs in a venv without
ampczoo's dependencies::

    python ampczoo/benchmarks/qpth_step.py problems.npz result.json [repeats]

``problems.npz`` holds Q (B, n, n), p (B, n), G (m, n), lower / upper (B, m) and the weights
w (B, n) of the scalar loss sum(w * z). The two-sided rows become qpth's G z <= h form
[G; -G] z <= [upper; -lower] (every matrix expanded to the batch: qpth averages the gradient
of an unbatched parameter). Writes {"step_s": [...], "z": [[...]], "grad_p": [[...]],
"versions": {...}}.
"""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> int:
    import numpy as np
    import qpth
    import torch
    from qpth.qp import QPFunction, QPSolvers

    src, dst = argv[0], argv[1]
    repeats = int(argv[2]) if len(argv) > 2 else 3
    torch.set_num_threads(1)
    data = np.load(src)
    Q = torch.from_numpy(data["Q"])
    p0 = torch.from_numpy(data["p"])
    B = len(p0)
    G = torch.from_numpy(data["G"])
    G2 = torch.cat([G, -G]).expand(B, -1, -1).contiguous()
    h = torch.cat([torch.from_numpy(data["upper"]), -torch.from_numpy(data["lower"])], 1)
    w = torch.from_numpy(data["w"])
    empty = torch.empty(0, dtype=Q.dtype)
    times, z, p = [], None, None
    for _ in range(repeats):
        Qr, p = Q.clone().requires_grad_(), p0.clone().requires_grad_()
        t0 = time.perf_counter()
        z = QPFunction(
            verbose=-1,
            check_Q_spd=False,  # qpth defaults: eps 1e-12, 20 its
            solver=QPSolvers.PDIPM_BATCHED,
        )(Qr, p, G2, h, empty, empty)
        (w * z).sum().backward()
        times.append(time.perf_counter() - t0)
    result = {
        "step_s": times,
        "z": z.detach().tolist(),
        "grad_p": p.grad.tolist(),
        "versions": {
            "qpth": getattr(qpth, "__version__", "0.0.18"),
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
    }
    with open(dst, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
