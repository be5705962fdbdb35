"""``ampczoo bench multimodal``: mode counting and the nearest-mode error."""

import numpy as np
import pytest

from ampczoo.benchmarks.multimodal import (
    MultimodalBenchConfig,
    count_modes,
    first_action_errors,
    mode_means,
)


def sequences(centres, per_mode=3, noise=0.01, seed=0):
    """per_mode noisy copies (N=4, nu=2) of each constant sequence in centres."""
    rng = np.random.default_rng(seed)
    return np.stack(
        [
            np.full((4, 2), c) + noise * rng.standard_normal((4, 2))
            for c in centres
            for _ in range(per_mode)
        ]
    )


def test_count_modes_separates_distinct_sequences():
    U = sequences([0.0, 1.0, -1.0])
    n, labels = count_modes(U, threshold=0.3)
    assert n == 3
    assert len(set(labels[:3])) == 1 and len(set(labels)) == 3
    assert count_modes(U, threshold=10.0)[0] == 1  # threshold is an option
    assert count_modes(U[:1], 0.3)[0] == 1 and count_modes(U[:0], 0.3)[0] == 0


def test_nearest_mode_and_mean_errors():
    U = sequences([1.0, -1.0], noise=0.0)
    modes = mode_means(U, count_modes(U, 0.3)[1])
    nearest, to_mean = first_action_errors(np.array([1.0, 1.0]), modes)
    assert nearest == pytest.approx(0.0) and to_mean == pytest.approx(np.sqrt(2))
    nearest, to_mean = first_action_errors(np.zeros(2), modes)  # the L2 regressor's answer
    assert nearest == pytest.approx(np.sqrt(2)) and to_mean == pytest.approx(0.0)


def test_bad_config_rejected():
    with pytest.raises(ValueError, match="runs"):
        MultimodalBenchConfig(runs=0)
    with pytest.raises(ValueError, match="threshold"):
        MultimodalBenchConfig(threshold=0.0)
    with pytest.raises(ValueError, match="branches"):
        MultimodalBenchConfig(cold_starts=("state",), policies=("lsm-kuka-obstacle",))
    with pytest.raises(ValueError):
        count_modes(np.zeros((3, 4)), 0.3)


def test_branch_sources_give_one_row_each():
    from ampczoo.benchmarks.multimodal import branch_label

    cfg = MultimodalBenchConfig(
        cold_starts=("state", "branches"), branch_sources=("dls", "ikdiffuser")
    )
    assert cfg.expert_labels() == [
        ("state", "state", "dls"),
        ("branches", "branches", "dls"),
        ("branches (ikdiffuser)", "branches", "ikdiffuser"),
    ]
    assert branch_label("random", "ikdiffuser") == "random"  # only branches use a source
    with pytest.raises(ValueError, match="branch source"):
        MultimodalBenchConfig(branch_sources=("magic",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="branch_sources"):
        MultimodalBenchConfig(branch_sources=())


def test_uncapped_ik_branch_count_covers_the_experts_branch_set():
    """The ``IK branches`` column: every branch the K-capped expert can use, and more."""
    from types import SimpleNamespace

    import gymnasium as gym

    import ampczoo.envs  # noqa: F401
    from ampczoo.benchmarks.multimodal import ENV_ID, count_ik_branches
    from ampczoo.experts import MPCConfig
    from ampczoo.experts.ik_branches import ik_branches
    from ampczoo.experts.mpc import BRANCH_IK_SEED, parse_observation

    env = gym.make(ENV_ID, control_dt=0.1, obstacle_placement="between")
    obs, _ = env.reset(seed=50_000)
    env.close()
    expert = SimpleNamespace(config=MPCConfig(obstacle=True), _parse=parse_observation)
    ob = parse_observation(obs)
    capped = ik_branches(
        ob.target_pos, ob.target_rot, 2, np.random.default_rng(BRANCH_IK_SEED), q_near=ob.q,
        obstacle=ob.obstacle,
    )  # fmt: skip
    found = count_ik_branches(expert, obs)
    assert len(capped) == 2 and found > expert.config.reference_branches  # not capped at K
