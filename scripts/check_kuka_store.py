r"""Row alignment and reach of a KUKA demonstration store (kinematic collection).

Checks, per stored episode, what the collection guarantees for every pair of consecutive
stored rows of one episode (rows dropped for output error / failed solves leave gaps, which
are skipped): x[t+1] = clip(x[t] + control_dt * action[t], joint limits) (kinematic env), and
``target`` = the observation's target. A store whose columns were shifted against each other
(the 2026-12-03 truncation, docs/data.md "One writer at a time") fails both from the broken
episode on. Also prints the end-effector error of each episode's last stored row [mm].

    python scripts/check_kuka_store.py data/kuka_multimodal_v2.zarr
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--tol", type=float, default=1e-6, help="[rad]")
    args = ap.parse_args()

    from ampczoo.data.store import EpisodeStore
    from ampczoo.robots.kuka import OBS_TARGET, kuka_chain

    s = EpisodeStore(args.store, mode="r")
    dt = float(s.attrs["env_kwargs"]["control_dt"])
    ends, ids = s.episode_ends, s.episode_ids()
    starts = np.r_[0, ends[:-1]]
    x, a, t, o = s.read("x"), s.read("action"), s.read("target"), s.read("obs")
    ch = kuka_chain()
    step_ok = np.abs(x[1:] - np.clip(x[:-1] + dt * a[:-1], ch.lower, ch.upper)).max(1) < args.tol
    target_ok = np.abs(t - o[:, OBS_TARGET]).max(1) < 1e-9
    p, _ = ch.batch_ee_pose(x)
    err = np.linalg.norm(p - t[:, :3], axis=1)
    bad = []
    for j, (s0, e) in enumerate(zip(starts, ends, strict=True)):
        if e - s0 < 2:
            continue
        consistent = step_ok[s0 : e - 1].mean() > 0.5 and target_ok[s0:e].all()
        if not consistent:
            bad.append(int(ids[j]))
    last = err[ends[ends > starts] - 1]
    print(f"{args.store}: {s.n_episodes} episodes, {s.n_samples} rows, control_dt {dt} s")
    print(f"  misaligned episodes: {len(bad)}" + (f" (ids {bad[0]}..{bad[-1]})" if bad else ""))
    print(
        "  last stored row's position error [mm] p10/50/90: "
        + "/".join(f"{v:.0f}" for v in np.percentile(1e3 * last, [10, 50, 90]))
    )


if __name__ == "__main__":
    main()
