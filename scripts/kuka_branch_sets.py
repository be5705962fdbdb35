"""Do IKDiffuser seeds change the KUKA expert's IK branches? For the 20 held-out start/target
pairs of ``ampczoo bench multimodal`` (reset seeds 50000-50019), the K = 3 branches of
``cold_start="branches"`` from uniform seeds ("dls") and from ``ikdiffuser-kuka`` samples; a
branch of the IKDiffuser set is *new* when every uniform-seeded branch is >= 1 rad from it.
Usage: python scripts/kuka_branch_sets.py"""

import gymnasium as gym
import numpy as np

import ampczoo.envs  # noqa: F401  (registers the env ids)
from ampczoo.experts.ik_branches import ik_branches
from ampczoo.experts.mpc import BRANCH_IK_SEED, parse_observation

K, THRESHOLD, PAIRS = 3, 1.0, range(50000, 50020)
env = gym.make("DAMPC-KukaTrackObstacle-v0", control_dt=0.1, obstacle_placement="between")
new = []
for seed in PAIRS:
    ob = parse_observation(env.reset(seed=seed)[0])
    sets = {
        src: ik_branches(
            ob.target_pos,
            ob.target_rot,
            K,
            np.random.default_rng(BRANCH_IK_SEED),
            q_near=ob.q,
            obstacle=ob.obstacle,
            threshold=THRESHOLD,
            source=src,
        )  # fmt: skip
        for src in ("dls", "ikdiffuser")
    }
    d = np.linalg.norm(sets["ikdiffuser"][:, None] - sets["dls"][None], axis=-1).min(axis=1)
    new.append(int((d >= THRESHOLD).sum()))
    print(f"pair {seed}: distance of each IKDiffuser branch to the nearest DLS one {d.round(2)}")
print(f"pairs with >= 1 new branch: {sum(n > 0 for n in new)} / {len(new)}; "
      f"new branches per pair, mean: {np.mean(new):.2f} of {K}")  # fmt: skip
