r"""Where LeTO's first action loses magnitude on the KUKA task (issue 15 item 5).

On the held-out episodes of a demonstration store (the trainer's split: ``--val-fraction``,
seed 0), with the chunk y* = u*_{0..T_p-1} / scale normalised as LeTO trains it:

* **data vs the DTO layer's constraints** (no model needed): the share of demonstrated
  chunks outside LeTO's feasible set (|y| <= v_bound, per-step change <= a_bound, joint limits
  with terminal braking; training has no continuity row), the MSE of their projection onto it
  (a floor under LeTO's training loss) and the first action's magnitude after projection;
* **the linear term's range**: LeTO's output is y = argmin 1/2 y^T Q y - tanh(e)^T y, so an
  unconstrained target needs tanh(e) = Q y*; the share of chunks needing a component
  |Q y*|_i >= 0.95 (tanh'(e) <= 0.1: hardly learnable) at the checkpoint's Q (or at the
  initial L = ``--l-init`` I when no checkpoint is given);
* **checkpoints** (``--policies``; LeTO or any chunk policy): first-action RMSE [rad/s] and
  magnitude ratio |u_0| / |u*_0| (ratio of means over held-out samples), overall and on the
  samples whose demonstrated first action has a component at >= 95 % of the scale
  (saturated starts). LeTO runs as deployed: each held-out episode in consecutive pieces of
  T_s samples, the LSTM from a zero state at each piece (no continuity row).

    python scripts/leto_diagnosis.py --data data/kuka_obstacle_300.zarr \
        --policies runs/leto-a/last runs/lsm-a/last
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch


def held_out(data: str, val_fraction: float, horizon_needed: int):
    """(val dataset, normalisation stats of the train split)."""
    from ampczoo.data.dataset import DemonstrationDataset

    val = DemonstrationDataset(data, split="val", val_fraction=val_fraction, seed=0)
    if val.horizon < horizon_needed:
        raise ValueError(f"store horizon {val.horizon} < chunk length {horizon_needed}")
    return val, val.normalization_stats()


def leto_for(stats: dict, obs_dim: int, horizon: int, l_init: float):
    """A fresh LeTO (default config, L = l_init I) normalised on ``stats``."""
    from ampczoo.policies.leto import LeTOConfig, LeTOPolicy

    pol = LeTOPolicy(LeTOConfig(obs_dim=obs_dim, horizon=horizon))
    pol.set_normalization(stats)
    with torch.no_grad():
        pol.L.mul_(l_init)
    return pol


def constraint_report(pol, obs: np.ndarray, u_seq: np.ndarray) -> dict:
    """Projection of the demonstrated chunks onto the DTO feasible set (training rows)."""
    from ampczoo.nn import qp

    c = pol.config
    scale = pol.action_scale.double().numpy()
    y_star = u_seq[:, : c.chunk_len] / scale  # (M, T_p, 7)
    M, n = len(obs), c.chunk_len * c.action_dim
    out = np.zeros_like(y_star)
    for s in range(0, M, 512):
        o = torch.as_tensor(obs[s : s + 512], dtype=torch.float32)
        G, lo, hi = pol.constraint_rows(o)
        target = torch.as_tensor(y_star[s : s + 512].reshape(len(o), n))
        eye = torch.eye(n, dtype=torch.float64).expand(len(o), n, n)
        proj = qp.solve_qp(eye, -target, G, lo, hi, check_inputs=False)
        out[s : s + 512] = proj.numpy().reshape(len(o), c.chunk_len, c.action_dim)
    err = ((out - y_star) ** 2).mean(axis=(1, 2))
    d_star = np.abs(np.diff(y_star, axis=1)).max(axis=(1, 2))
    first = np.linalg.norm(y_star[:, 0], axis=1)
    return {
        "samples": M,
        "infeasible_share": float((err > 1e-8).mean()),
        "change_bound_violated_share": float((d_star > c.accel_bound + 1e-9).mean()),
        "max_step_change_median": float(np.median(d_star)),
        "projection_mse_floor": float(err.mean()),
        "first_action_ratio_after_projection": float(
            np.linalg.norm(out[:, 0], axis=1).mean() / first.mean()
        ),
        "saturated_first_share": float((np.abs(y_star[:, 0]).max(axis=1) >= 0.95).mean()),
    }


def linear_term_report(pol, u_seq: np.ndarray) -> dict:
    """Share of chunks whose unconstrained optimum needs |tanh(e)| >= 0.95 / >= 1."""
    c = pol.config
    scale = pol.action_scale.double().numpy()
    y_star = (u_seq[:, : c.chunk_len] / scale).reshape(len(u_seq), -1)
    with torch.no_grad():
        Q = pol.qp_matrix().numpy()
    b = np.abs(y_star @ Q.T).max(axis=1)
    eig = np.linalg.eigvalsh(Q)
    return {
        "Q_eig_min_max": [float(eig[0]), float(eig[-1])],
        "needs_tanh_ge_0.95_share": float((b >= 0.95).mean()),
        "needs_tanh_ge_1_share": float((b >= 1.0).mean()),
    }


def first_actions(policy, val, T_s: int) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, demonstrated) first actions (M, 7) [rad/s] at held-out samples."""
    obs, u = val.obs, val.u_seq
    if getattr(policy, "name", "") == "leto":  # deployment: zero state every T_s steps
        ep = np.asarray(val.sample_episode)
        pred = np.zeros_like(u[:, 0])
        with torch.no_grad():
            for e in np.unique(ep):
                rows = np.flatnonzero(ep == e)
                for k in range(0, len(rows), T_s):
                    r = rows[k : k + T_s]
                    o = torch.as_tensor(obs[r], dtype=torch.float32)[None]
                    z, _ = policy.encode(o)
                    y = policy.dto(z[0], o[0])
                    pred[r] = (y[:, 0] * policy.action_scale).numpy()
        return pred, u[:, 0]
    from ampczoo.wrappers.chunk import action_chunk

    pred = np.stack([np.asarray(action_chunk(policy, o))[0] for o in obs])
    return pred, u[:, 0]


def policy_report(path: str, val, T_s: int) -> dict:
    from ampczoo.core.registry import load_policy

    policy = load_policy(path, device="cpu")
    pred, target = first_actions(policy, val, T_s)
    scale = np.abs(val.u_seq).max(axis=(0, 1))
    sat = (np.abs(target) >= 0.95 * scale).any(axis=1)

    def stats(m: np.ndarray) -> dict:
        return {
            "n": int(m.sum()),
            "rmse": float(np.sqrt(((pred[m] - target[m]) ** 2).mean())),
            "magnitude_ratio": float(
                np.linalg.norm(pred[m], axis=1).mean() / np.linalg.norm(target[m], axis=1).mean()
            ),
        }

    rep = {"policy": path, "all": stats(np.ones(len(pred), bool)), "saturated": stats(sat)}
    rep["unsaturated"] = stats(~sat)
    if getattr(policy, "name", "") == "leto":
        rep["linear_term"] = linear_term_report(policy, val.u_seq)
    return rep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--l-init", type=float, default=1.0, help="L = l_init I of the fresh LeTO")
    ap.add_argument("--policies", nargs="*", default=[])
    ap.add_argument("--seq-len", type=int, default=12, help="LeTO window T_s")
    args = ap.parse_args()
    val, stats = held_out(args.data, args.val_fraction, 6)
    pol = leto_for(stats, val.obs_dim, val.horizon, args.l_init)
    rep = {
        "data": args.data,
        "constraints": constraint_report(pol, val.obs, val.u_seq),
        "linear_term_at_init": linear_term_report(pol, val.u_seq),
        "policies": [policy_report(p, val, args.seq_len) for p in args.policies],
    }
    print(json.dumps(rep, indent=1))


if __name__ == "__main__":
    main()
