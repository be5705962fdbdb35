"""The checkpoints shipped in the package load offline, drive their env and still give their
golden actions; every checkpoint is found through the zoo index (its card), so a newly
shipped one is covered here without editing this file."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import ampczoo
from ampczoo.benchmarks import golden
from ampczoo.benchmarks.demo import DEMO_ENVS, MAX_DELTA, zoo_policies, zoo_refined

ENTRIES = golden.golden_entries()
PLAIN = [e for e in ENTRIES if not e.refiner]
REFINED = [e for e in ENTRIES if e.refiner]


def test_golden_entries_cover_the_whole_zoo():
    """Every shipped checkpoint is in a golden entry: alone, or as a refiner on its base."""
    covered = {e.policy for e in PLAIN} | {e.refiner for e in REFINED}
    assert covered == set(ampczoo.list_policies())
    assert {e.policy for e in REFINED} <= {e.policy for e in PLAIN}


def test_demo_rows_come_from_the_index():
    """The demo runs the non-refiner checkpoints of each KUKA env (not those marked
    "demo": false) and every refiner on the base its card names."""
    for env_id in DEMO_ENVS:
        names = zoo_policies(env_id)
        assert names and set(names) <= set(ampczoo.list_policies(env=env_id))
        for name in ampczoo.list_policies(env=env_id):
            card = ampczoo.zoo_card(name)
            in_demo = name in names or (card.get("base"), name) in zoo_refined(env_id)
            assert in_demo == card.get("demo", True), name
        for base, refiner in zoo_refined(env_id):
            assert ampczoo.zoo_card(refiner)["base"] == base
            assert base in names


@pytest.mark.parametrize("entry", PLAIN, ids=lambda e: e.name)
def test_shipped_policy_acts_in_its_env(entry):
    policy = ampczoo.load_policy(entry.policy, device="cpu")
    env = gym.make(entry.env, **entry.env_kwargs)
    obs, _ = env.reset(seed=0)
    policy.reset(seed=0)
    assert policy.config.obs_dim == obs.shape[0]
    high = env.action_space.high
    for _ in range(3):
        action = policy.act(obs)
        assert action.shape == env.action_space.shape and np.all(np.isfinite(action))
        assert np.all(np.abs(action) <= 1.5 * high)
        obs, *_ = env.step(action)
    env.close()


def test_shipped_actions_match_golden():
    """Backward compatibility: the shipped weights, features and samplers still give the
    recorded actions (``python -m ampczoo.benchmarks.golden --write`` after retraining on
    purpose, ``--add`` after shipping a new checkpoint)."""
    recorded = golden.read_golden()
    problems = golden.compare_golden(recorded, golden.compute_golden(ENTRIES))
    assert not problems, "\n".join(problems)


def test_compare_golden_reports_every_difference():
    recorded = {"a": [[0.0, 1.0]], "b": [[0.0]], "gone": [[1.0]]}
    actual = {"a": [[0.0, 1.0 + 2 * golden.ATOL]], "b": [[0.0], [0.0]], "new": [[0.0]]}
    problems = "\n".join(golden.compare_golden(recorded, actual))
    for expected in ("a: actions differ", "b: actions of shape", "gone: recorded but", "new: no"):
        assert expected in problems
    assert golden.compare_golden(recorded, {"a": [[0.0, 1.0 + golden.ATOL / 2]]}) == [
        "b: recorded but no longer in the zoo",
        "gone: recorded but no longer in the zoo",
    ]


def test_write_golden_only_missing_keeps_recorded_entries(tmp_path, monkeypatch):
    """``--add`` computes only the entries missing from the file and keeps the others."""
    entries = PLAIN[:2]
    monkeypatch.setattr(golden, "golden_entries", lambda: entries)
    path = tmp_path / "golden.json"
    kept = [[123.0] * 7]
    path.write_text(json.dumps({entries[0].name: kept}))
    table = golden.write_golden(path, only_missing=True)
    assert list(table) == [e.name for e in entries]
    assert table[entries[0].name] == kept
    np.testing.assert_array_equal(table[entries[1].name], golden.golden_actions(entries[1]))
    assert golden.read_golden(path) == table


@pytest.mark.parametrize("entry", REFINED, ids=lambda e: e.name)
def test_shipped_refiner_keeps_the_change_bound_on_its_base(entry):
    from ampczoo.policies.refiner import ChunkRefiner
    from ampczoo.wrappers.presets import suite_preset

    policy = ChunkRefiner.wrap(ampczoo.load_policy(entry.policy, device="cpu"), entry.refiner)
    refiner, preset = policy.refiner, suite_preset(entry.env)
    dims = list(refiner.dim_index)
    if preset is None:  # the KUKA refiners: every joint, 0.23 rad/s per step
        np.testing.assert_allclose(refiner.raw_bound(), MAX_DELTA, rtol=1e-6)
    else:  # the suite's Table IX preset (S without the gripper)
        assert refiner.config.bound == preset.bound and refiner.config.alpha == preset.alpha
        assert tuple(dims) == preset.dims(refiner.config.action_dim)
    env = gym.make(entry.env, **entry.env_kwargs)
    obs, _ = env.reset(seed=0)
    policy.reset(seed=0)
    actions = []
    for _ in range(8):
        actions.append(policy.act(obs))
        obs, *_ = env.step(actions[-1])
    changes = np.abs(np.diff(actions, axis=0))[:, dims]
    assert np.all(changes <= refiner.raw_bound() + 1e-6)
    assert policy.stats.calls == 8 and policy.stats.interventions > 0


@pytest.mark.parametrize("name", ampczoo.list_policies(env="ThreeDOF-Reach-v0"))
def test_threedof_policy_acts_within_torque_bounds(name):
    policy = ampczoo.load_policy(name, device="cpu")
    if policy.config.type != "residual_rl":  # RL fine-tuned: a base + residual, no history
        assert policy.config.history == 10
    env = gym.make("ThreeDOF-Reach-v0")
    obs, _ = env.reset(seed=0)
    policy.reset(seed=0)
    for _ in range(5):
        action = policy.act(obs)
        assert action.shape == (3,) and np.all(np.abs(action) <= env.action_space.high)
        obs, _, _, _, info = env.step(action)
        assert info["action_clipped"] == 0


def test_the_four_threedof_architectures_are_shipped():
    from ampczoo.benchmarks.threedof import ARCHS, zoo_name

    names = [zoo_name(arch) for arch in ARCHS]
    shipped = {n for a in ARCHS for n in ampczoo.list_policies(env="ThreeDOF-Reach-v0", model=a)}
    assert set(names) == shipped
    assert [ampczoo.zoo_card(n)["model"] for n in names] == list(ARCHS)
