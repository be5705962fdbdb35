r"""Where LeTO's first action loses magnitude on the KUKA task (issue 15 item 5) or a
manipulation suite's store (issue 12: the suite's settings, as the trainer takes them).

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

    val = DemonstrationDataset(
        data, split="val", val_fraction=val_fraction, seed=0, action_horizon=horizon_needed
    )
    if val.horizon < horizon_needed:
        raise ValueError(f"store horizon {val.horizon} < chunk length {horizon_needed}")
    return val, val.normalization_stats()


def leto_for(stats: dict, obs_dim: int, horizon: int, l_init: float, attrs: dict | None = None):
    """A fresh LeTO (default config with the settings the trainer takes from a store with
    attributes ``attrs``, L = l_init I) normalised on ``stats``."""
    from ampczoo.policies.leto import LeTOConfig, LeTOPolicy

    action_dim = int(np.asarray(stats["u_seq"]["max"]).shape[-1])
    fields = LeTOPolicy.config_from_data({"action_dim": action_dim}, attrs or {})
    config = LeTOConfig(obs_dim=obs_dim, horizon=horizon, action_dim=action_dim, **fields)
    pol = LeTOPolicy(config)
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
    dims = pol.selected_dims()
    d_star = np.abs(np.diff(y_star[:, :, dims], axis=1)).max(axis=(1, 2))
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


def first_actions(policy, val, T_s: int, chunks: list | None = None):
    """(predicted, demonstrated) first actions (M, D_y) (raw units: KUKA [rad/s]) at held-out
    samples; LeTO's normalised planned chunks (T_p, D_y) are appended to ``chunks``."""
    obs, u = val.obs, val.u_seq
    if getattr(policy, "name", "") == "leto":  # deployment: zero state every T_s steps
        ep = np.asarray(val.sample_episode)
        pred = np.zeros_like(u[:, 0])
        chunks = [] if chunks is None else chunks
        with torch.no_grad():
            for e in np.unique(ep):
                rows = np.flatnonzero(ep == e)
                for k in range(0, len(rows), T_s):
                    r = rows[k : k + T_s]
                    o = torch.as_tensor(obs[r], dtype=torch.float32)[None]
                    z, _ = policy.encode(o)
                    y = policy.dto(z[0], o[0])
                    pred[r] = (y[:, 0] * policy.action_scale).numpy()
                    chunks.extend(y.numpy())
        return pred, u[:, 0]
    if getattr(policy, "name", "") == "diffusion_policy":  # open loop from the stored history
        return dp_first_actions(policy, val), u[:, 0]
    from ampczoo.wrappers.chunk import action_chunk

    pred = np.stack([np.asarray(action_chunk(policy, o))[0] for o in obs])
    return pred, u[:, 0]


def dp_first_actions(policy, val) -> np.ndarray:
    """A Diffusion Policy's first actions (M, D_y) at held-out samples, each from its T_o
    stored observations (the episode's first repeated before it, as the dataset pads)."""
    t_o = int(policy.config.obs_horizon)
    ep = np.asarray(val.sample_episode)
    idx = np.arange(len(ep))
    start = np.maximum.accumulate(np.where(np.r_[True, ep[1:] != ep[:-1]], idx, 0))
    rows = np.maximum(idx[:, None] - np.arange(t_o - 1, -1, -1)[None], start[:, None])
    policy.reset(0)
    hist = val.obs[rows]
    out = [policy.sample(hist[s : s + 256])[:, t_o - 1] for s in range(0, len(hist), 256)]
    return np.concatenate(out)


def policy_report(path: str, val, T_s: int) -> dict:
    from ampczoo.core.registry import load_policy

    policy = load_policy(path, device="cpu")
    chunks: list = []
    pred, target = first_actions(policy, val, T_s, chunks)
    scale = np.abs(val.u_seq).max(axis=(0, 1))
    # dims with more than two values (a +-1 gripper is always "saturated")
    cont = [j for j in range(target.shape[1]) if len(np.unique(np.abs(target[:, j]))) > 2]
    sat = (np.abs(target[:, cont]) >= 0.95 * scale[cont]).any(axis=1)

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
    rep["first_action_rmse_per_dim"] = np.sqrt(((pred - target) ** 2).mean(0)).round(4).tolist()
    if getattr(policy, "name", "") == "leto":
        rep["linear_term"] = linear_term_report(policy, val.u_seq)
        rep["constraint_activity"] = activity_report(policy, np.asarray(chunks))
    return rep


def activity_report(policy, y: np.ndarray) -> dict:
    """Share of LeTO's planned chunks y (M, T_p, D_y) normalised (no continuity row) with a
    per-step change / a velocity at its bound (within 1e-4) on a constrained dim."""
    c = policy.config
    y = y[:, :, policy.selected_dims()]
    d = np.abs(np.diff(y, axis=1))
    return {
        "chunks": len(y),
        "change_bound_active_share": float((d.max(axis=(1, 2)) >= c.accel_bound - 1e-4).mean()),
        "change_bound_active_rows_share": float((d >= c.accel_bound - 1e-4).mean()),
        "vel_bound_active_share": float((np.abs(y).max(axis=(1, 2)) >= c.vel_bound - 1e-4).mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--l-init", type=float, default=1.0, help="L = l_init I of the fresh LeTO")
    ap.add_argument("--policies", nargs="*", default=[])
    ap.add_argument("--seq-len", type=int, default=12, help="LeTO window T_s")
    args = ap.parse_args()
    val, stats = held_out(args.data, args.val_fraction, 6)
    pol = leto_for(stats, val.obs_dim, val.horizon, args.l_init, val.attrs)
    rep = {
        "data": args.data,
        "constraints": constraint_report(pol, val.obs, val.u_seq),
        "linear_term_at_init": linear_term_report(pol, val.u_seq),
        "policies": [policy_report(p, val, args.seq_len) for p in args.policies],
    }
    print(json.dumps(rep, indent=1))


if __name__ == "__main__":
    main()
