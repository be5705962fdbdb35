"""``ampczoo finetune``: a short residual run (evaluations, checkpoints, exports), resume after
an interruption, the BC-initialised actor-critic, and refused inputs."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

import ampczoo.envs  # noqa: F401
from ampczoo.cli import main
from ampczoo.core.card import read_card
from ampczoo.core.registry import load_policy
from ampczoo.data.store import Episode, EpisodeStore
from ampczoo.finetune import bc, train
from ampczoo.finetune.bc import BCRunConfig, run_bc
from ampczoo.finetune.train import ResidualRunConfig, run_residual

ENV = "ThreeDOF-Reach-v0"
TINY = dict(
    steps=300,
    hidden_dim=16,
    eval_every=150,
    eval_episodes=2,
    checkpoint_every=150,
    learning_starts=50,
    batch_size=32,
    norm_episodes=1,
    success_pos_error=0.02,
    progress=False,
)


def evals(out) -> list[dict]:
    return [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]


def test_short_residual_run_writes_policies_curves_and_checkpoint(tmp_path):
    out = run_residual(ResidualRunConfig(out=str(tmp_path / "run"), **TINY))
    history = evals(out)
    assert [h["steps"] for h in history] == [0, 150, 300]
    assert all(0 <= h["ci95"][0] <= h["success_rate"] <= h["ci95"][1] <= 100 for h in history)
    for folder in ("best", "last"):
        policy = load_policy(out / folder, device="cpu")
        assert policy.config.base == "threedof-ffn-h10"
        assert read_card(out / folder)["model"] == "residual_rl"
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["steps"] == 300
    assert (out / "learning_curve.png").stat().st_size > 0
    assert any((out / "tb").glob("events.out.tfevents.*"))
    # step 0 evaluated the base itself: same episodes as the zoo FFN alone
    base = load_policy("threedof-ffn-h10", device="cpu")
    env = gym.make(ENV)
    from ampczoo.finetune.evaluation import evaluate_policy

    alone = evaluate_policy(env, base, range(TINY_EVAL_SEED, TINY_EVAL_SEED + 2), 0.02)
    assert history[0]["final_error_mean"] == pytest.approx(alone.final_error_mean, abs=1e-6)


TINY_EVAL_SEED = ResidualRunConfig().eval_seed


def test_interrupted_run_resumes_from_its_last_checkpoint(tmp_path, monkeypatch):
    cfg = ResidualRunConfig(out=str(tmp_path / "run"), **TINY)
    real = train._checkpoint
    calls = []

    def checkpoint_then_die(run, model, algo):
        real(run, model, algo)
        calls.append(model.num_timesteps)
        if model.num_timesteps >= 150:
            raise KeyboardInterrupt  # killed right after the checkpoint at 150 steps

    monkeypatch.setattr(train, "_checkpoint", checkpoint_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_residual(cfg)
    monkeypatch.setattr(train, "_checkpoint", real)
    assert calls == [0, 150]
    with pytest.raises(FileExistsError, match="--resume"):
        run_residual(cfg)
    out = run_residual(ResidualRunConfig(out=str(tmp_path / "run"), resume=True, **TINY))
    steps = [h["steps"] for h in evals(out)]
    assert steps == [0, 150, 300]  # continued at 150, nothing evaluated twice
    assert json.loads((out / "checkpoint" / "state.json").read_text())["steps"] == 300
    with pytest.raises(ValueError, match="another config"):
        run_residual(ResidualRunConfig(out=str(out), resume=True, **{**TINY, "hidden_dim": 8}))


def tiny_store(path, env_id: str = ENV, episodes: int = 2, steps: int = 40):
    """A demonstration store of a joint-space PD controller towards q = 0.5 rad (obs, u_seq,
    action)."""
    env = gym.make(ENV)
    store = EpisodeStore(path, mode="a")
    eps = []
    for k in range(episodes):
        obs, _ = env.reset(seed=k)
        rows = {"obs": [], "u_seq": [], "action": []}
        for _ in range(steps):
            action = np.clip(4.0 * (0.5 - obs[:3]) - 0.5 * obs[3:6], -4, 4)
            rows["obs"].append(obs)
            rows["u_seq"].append(action[None])
            rows["action"].append(action)
            obs, *_ = env.step(action)
        eps.append(Episode(k, k, steps, data={n: np.array(v) for n, v in rows.items()}))
    store.add_episodes(eps)
    store.update_attrs({"env": env_id})
    return path


@pytest.mark.parametrize("algo,preload", [("sac", True), ("ppo", False)])
def test_bc_initialised_actor_critic_run(tmp_path, algo, preload, capsys):
    data = tiny_store(tmp_path / "demos.zarr")
    extra = {"n_steps": 64} if algo == "ppo" else {}
    cfg = BCRunConfig(
        out=str(tmp_path / "run"),
        data=str(data),
        algo=algo,
        bc_epochs=5,
        preload=preload,
        **{**TINY, "steps": 128, "eval_every": 1000, **extra},
    )
    out = run_bc(cfg)
    assert "behaviour cloning: 5 epochs on 80 samples" in capsys.readouterr().out
    assert [h["steps"] for h in evals(out)] == [0, 128]
    policy = load_policy(out / "last", device="cpu")
    assert policy.config.base == "" and policy.config.scale == (6.0, 10.0, 4.0)


@pytest.mark.parametrize("algo", ["sac", "ppo"])
def test_behaviour_cloning_fits_the_demonstrations(tmp_path, algo):
    from ampczoo.finetune import sb3
    from ampczoo.finetune.residual_env import ResidualPolicyEnv

    data = tiny_store(tmp_path / "demos.zarr")
    obs, expert, _ = bc.read_demonstrations(data, ENV)
    env = ResidualPolicyEnv(gym.make(ENV), None, HALF_RANGE)
    inputs = np.concatenate([obs, np.zeros((len(obs), 3))], axis=1)
    mean, std = inputs.mean(0), inputs.std(0)
    kwargs = sb3.policy_kwargs(algo, 9, 3, 32, 2, "none", mean, std)
    model = sb3.make_model(algo, env, kwargs, {"n_steps": 64} if algo == "ppo" else {})
    targets = bc.bc_targets(expert, np.zeros(3), HALF_RANGE)
    before = np.mean(
        (bc.deterministic_output(model, algo, _t(inputs)).detach().numpy() - targets) ** 2
    )
    loss = bc.behaviour_cloning(model, algo, inputs, targets, 200, 3e-3, 32)
    policy = sb3.export_policy(model, algo, "", HALF_RANGE, -HALF_RANGE, HALF_RANGE)
    acts = np.array([policy.act(o) for o in obs])
    assert loss < 0.1 * before
    assert np.mean(np.abs(acts - expert)) < 0.2 * np.mean(np.abs(expert))


HALF_RANGE = np.array([6.0, 10.0, 4.0])


def _t(x):
    import torch

    return torch.as_tensor(x, dtype=torch.float32)


def test_preload_replays_demonstrations_into_the_replay_buffer(tmp_path):
    from ampczoo.finetune import sb3
    from ampczoo.finetune.residual_env import ResidualPolicyEnv

    data = tiny_store(tmp_path / "demos.zarr", episodes=2, steps=30)
    _, _, store = bc.read_demonstrations(data, ENV)
    env = ResidualPolicyEnv(gym.make(ENV), None, [6.0, 10.0, 4.0])
    kwargs = sb3.policy_kwargs("sac", 9, 3, 8, 1, "none", np.zeros(12), np.ones(12))
    model = sb3.make_model("sac", env, kwargs, {"learning_starts": 10})
    assert bc.preload_demonstrations(model, env, store, 5) == 60
    buffer = model.replay_buffer
    assert buffer.size() == 60
    first = store.episodes_sorted()[0].data
    np.testing.assert_allclose(buffer.observations[:30, 0, :9], first["obs"], atol=1e-5)
    np.testing.assert_allclose(
        buffer.actions[:30, 0], first["action"] / np.array([6.0, 10.0, 4.0]), atol=1e-6
    )


def test_bc_store_of_another_env_is_refused(tmp_path):
    data = tiny_store(tmp_path / "kuka.zarr", env_id="DAMPC-KukaTrack-v0", episodes=1, steps=3)
    with pytest.raises(ValueError, match="collected on 'DAMPC-KukaTrack-v0', not 'ThreeDOF"):
        run_bc(BCRunConfig(out=str(tmp_path / "run"), data=str(data), **TINY))


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"algo": "a2c"}, "unknown algorithm"),
        ({"scale": (0.0,)}, "scale"),
        ({"scale": (-1.0, 1.0, 1.0)}, "scale"),
        ({"steps": 0}, "steps"),
        ({"features": "kuka"}, "features"),
        ({"success_pos_error": -0.1}, "success_pos_error"),
        ({"penetration_penalty": -1.0}, "penetration_penalty"),
        ({"penetration_penalty": float("nan")}, "penetration_penalty"),
    ],
)
def test_bad_config_is_refused(changes, match):
    with pytest.raises(ValueError, match=match):
        ResidualRunConfig(**changes)


def test_bad_scale_length_and_base_are_refused(tmp_path):
    with pytest.raises(ValueError, match="scale"):
        run_residual(ResidualRunConfig(out=str(tmp_path / "a"), scale=(1.0, 2.0), **TINY))
    with pytest.raises(ValueError, match="base policy does not fit"):
        run_residual(ResidualRunConfig(out=str(tmp_path / "b"), base="lsm-kuka", **TINY))


def test_cli(tmp_path, capsys):
    assert main(["finetune", "--help"]) == 0
    assert "residual" in capsys.readouterr().out
    assert main(["finetune", "residual", "--algo", "a2c", "--out", str(tmp_path / "x")]) == 2
    assert "unknown algorithm 'a2c'" in capsys.readouterr().err
    assert main(["finetune", "nope"]) == 2
    assert main(["finetune", "bc", "--out", str(tmp_path / "y")]) == 2
    assert "--data" in capsys.readouterr().err


def test_best_checkpoint_score_ignores_a_missing_final_error():
    from ampczoo.finetune.train import eval_score

    # manipulation envs report no position error: success alone decides, NaN never wins or loses
    assert eval_score(55.0, float("nan")) == 55.0
    assert eval_score(55.0, float("nan")) > -1.0  # beats the initial best of a run
    assert eval_score(50.0, 0.02) > eval_score(50.0, 0.03)  # ties: the lower final error
    assert eval_score(55.0, 0.5) > eval_score(50.0, 0.0)


def test_feature_choices_are_the_policys_features_and_auto():
    from ampczoo.finetune.train import FEATURE_CHOICES
    from ampczoo.policies.residual_rl import FEATURES

    assert FEATURE_CHOICES == ("auto", *FEATURES)
