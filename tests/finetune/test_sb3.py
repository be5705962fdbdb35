"""SB3 models of residual RL: the zero-residual start, the export into a ``residual_rl`` zoo
policy (save / load offline, DiffOG on top) and refused algorithms."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")

import ampczoo.envs  # noqa: F401
from ampczoo.core.registry import load_policy
from ampczoo.finetune import sb3
from ampczoo.finetune.residual_env import ResidualPolicyEnv
from ampczoo.finetune.train import input_statistics

ENV = "ThreeDOF-Reach-v0"
BASE = "threedof-ffn-h10"
SCALE = np.array([1.5, 2.5, 1.0])
LOW, HIGH = np.array([-6.0, -10.0, -4.0]), np.array([6.0, 10.0, 4.0])


def residual_env():
    return ResidualPolicyEnv(gym.make(ENV), load_policy(BASE, device="cpu"), SCALE)


def model_for(algo: str, env, features: str = "threedof_ee"):
    mean, std = input_statistics(env, 1)
    kwargs = sb3.policy_kwargs(algo, 9, 3, 16, 2, features, mean, std)
    extra = {"n_steps": 64, "batch_size": 32} if algo == "ppo" else {"learning_starts": 10}
    return sb3.make_model(algo, env, kwargs, extra, seed=0)


def recorded_observations(env, n: int = 30) -> np.ndarray:
    """Wrapped observations along an episode of the base (zero residual)."""
    obs, _ = env.reset(seed=11)
    rows = [obs]
    for _ in range(n - 1):
        obs, *_ = env.step(np.zeros(3))
        rows.append(obs)
    return np.array(rows)


@pytest.mark.parametrize("algo", sb3.ALGOS)
def test_initial_policy_is_the_base(algo):
    env = residual_env()
    model = model_for(algo, env)
    obs = recorded_observations(env)
    residual = sb3.deterministic_residual(model, obs)
    np.testing.assert_array_equal(residual, 0.0)
    # the composed action the wrapper executes equals the base action it observed
    env.reset(seed=11)
    for row in obs[:5]:
        executed, _ = env.compose(sb3.deterministic_residual(model, row[None])[0])
        np.testing.assert_allclose(executed, row[9:], atol=1e-6)
        env.step(np.zeros(3))
    # and so does the exported zoo policy, acting on the raw observations
    policy = sb3.export_policy(model, algo, BASE, SCALE, LOW, HIGH)
    policy.reset(seed=11)
    for row in obs:
        np.testing.assert_allclose(policy.act(row[:9].astype(np.float64)), row[9:], atol=1e-5)


def perturbed_sac(env):
    model = model_for("sac", env)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.policy.actor.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))
    return model


def test_export_acts_as_the_sb3_actor_and_round_trips(tmp_path):
    env = residual_env()
    model = perturbed_sac(env)
    obs = recorded_observations(env, 20)
    want_residual = sb3.deterministic_residual(model, obs)
    assert np.abs(want_residual).max() > 1e-3  # the residual is no longer zero
    policy = sb3.export_policy(model, "sac", BASE, SCALE, LOW, HIGH)
    for row, r in zip(obs, want_residual, strict=True):
        got = policy.residual(row[:9].astype(np.float64), row[9:].astype(np.float64))
        np.testing.assert_allclose(got, SCALE * r, atol=1e-5)
    path = policy.save_pretrained(tmp_path / "residual")
    loaded = load_policy(path, device="cpu")
    assert loaded.config == policy.config and loaded.config.base == BASE
    raw = gym.make(ENV)
    o, _ = raw.reset(seed=5)
    policy.reset(seed=5)
    loaded.reset(seed=5)
    for _ in range(10):
        a, b = policy.act(o), loaded.act(o)
        np.testing.assert_allclose(a, b, atol=1e-9)
        assert np.all(a >= LOW) and np.all(a <= HIGH)
        o, *_ = raw.step(a)


def test_exported_policy_is_wrappable_by_diffog():
    from ampczoo.policies.diffog import DiffOG, DiffOGConfig

    env = residual_env()
    policy = sb3.export_policy(perturbed_sac(env), "sac", BASE, SCALE, LOW, HIGH)
    config = DiffOGConfig(
        obs_dim=9,
        action_dim=3,
        horizon=1,
        chunk_len=1,
        embed_dim=16,
        num_heads=2,
        num_layers=1,
        ff_dim=16,
    )
    wrapped = DiffOG.wrap(policy, config)
    raw = gym.make(ENV)
    o, _ = raw.reset(seed=2)
    wrapped.reset(seed=2)
    for _ in range(3):
        a = wrapped.act(o)
        assert a.shape == (3,) and np.all(np.isfinite(a))
        o, *_ = raw.step(a)


def test_unknown_algorithm_is_refused():
    with pytest.raises(ValueError, match="unknown algorithm 'a2c'"):
        sb3.check_algo("a2c")
    with pytest.raises(ValueError, match="unknown algorithm"):
        sb3.make_model("ddpg", residual_env(), {}, {})


def test_critic_burn_in_keeps_the_actor_at_the_base():
    env = ResidualPolicyEnv(gym.make(ENV), lambda o: np.zeros(3), 0.5)
    kwargs = sb3.policy_kwargs("sac", 9, 3, 16, 1, "none", np.zeros(12), np.ones(12))
    extra = {"learning_starts": 20, "batch_size": 16}
    model = sb3.make_model("sac", env, kwargs, extra, actor_delay=120, actor_lr_scale=0.5)
    actor0 = [p.clone() for p in model.actor.parameters()]
    critic0 = model.critic.qf0[0].weight.clone()
    model.learn(110)
    assert all(torch.equal(a, b) for a, b in zip(actor0, model.actor.parameters(), strict=True))
    assert not torch.equal(critic0, model.critic.qf0[0].weight)
    model.learn(60, reset_num_timesteps=False)
    assert not torch.equal(actor0[-1], list(model.actor.parameters())[-1])
    critic_lr = model.critic.optimizer.param_groups[0]["lr"]
    assert model.actor.optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * critic_lr)


def test_threedof_joint_space_error_feature_is_jacobian_transpose_error():
    from ampczoo.policies.residual_rl import threedof_jacobian_t_error
    from ampczoo.robots.threedof import forward_kinematics

    gen = torch.Generator().manual_seed(0)
    q = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    e = 0.05 * torch.randn(5, 3, generator=gen, dtype=torch.float64)
    for qi, ei in zip(q, e, strict=True):
        J = torch.autograd.functional.jacobian(lambda x: forward_kinematics(x, xp=torch), qi)
        torch.testing.assert_close(threedof_jacobian_t_error(qi, ei), J.T @ ei)


def _td3(residual_l2: float):
    env = ResidualPolicyEnv(gym.make(ENV), lambda o: np.zeros(3), 0.5)
    kwargs = sb3.policy_kwargs("td3", 9, 3, 16, 1, "none", np.zeros(12), np.ones(12))
    extra = {"learning_starts": 20, "batch_size": 32, "policy_delay": 1}
    return sb3.make_model("td3", env, kwargs, extra, seed=3, residual_l2=residual_l2), env


def test_residual_l2_pulls_the_td3_actor_toward_zero_residual():
    free, env = _td3(0.0)
    pulled, _ = _td3(50.0)
    # a strong pull on a fixed batch: the mean square residual falls, the critic still learns
    free.learn(400)
    pulled.learn(400)
    obs = recorded_observations(env, 50)
    sq_free = np.mean(sb3.deterministic_residual(free, obs) ** 2)
    sq_pulled = np.mean(sb3.deterministic_residual(pulled, obs) ** 2)
    assert sq_free > 0.01
    assert sq_pulled < 0.1 * sq_free
    assert pulled.logger.name_to_value.get("train/residual_sq", 0.0) >= 0.0
    with pytest.raises(ValueError, match="residual_l2"):
        _td3(-1.0)
    with pytest.raises(ValueError, match="residual_l2 is a TD3 option"):
        sb3.make_model("sac", env, {}, {}, residual_l2=1.0)


def test_gsde_exploration_is_smooth_in_time_and_starts_at_the_base():
    from ampczoo.finetune.train import ResidualRunConfig, algo_kwargs

    cfg = ResidualRunConfig(algo="ppo", sde_sample_freq=40, init_std=0.3)
    env = residual_env()
    mean, std = input_statistics(env, 1)
    kwargs = sb3.policy_kwargs("ppo", 9, 3, 16, 2, "threedof_ee", mean, std)
    extra = {**algo_kwargs(cfg), "n_steps": 64, "batch_size": 32}
    model = sb3.make_model("ppo", env, kwargs, extra, init_std=cfg.init_std)
    assert model.use_sde and model.sde_sample_freq == 40
    obs = recorded_observations(env, 40)
    np.testing.assert_array_equal(sb3.deterministic_residual(model, obs), 0.0)
    model.policy.reset_noise()
    noisy = np.array([model.predict(o[None], deterministic=False)[0][0] for o in obs])
    assert noisy.std() > 0.01
    # one noise draw along 40 steps of a slowly changing state: neighbours nearly equal
    lag1 = np.mean(np.abs(np.diff(noisy, axis=0))) / np.mean(np.abs(noisy - noisy.mean(0)))
    assert lag1 < 0.5


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"algo": "sac", "sde_sample_freq": 10}, "PPO option"),
        ({"algo": "ppo", "sde_sample_freq": -1}, "sde_sample_freq"),
        ({"algo": "sac", "residual_l2": 1.0}, "TD3 option"),
        ({"algo": "td3", "residual_l2": float("nan")}, "residual_l2"),
        ({"algo": "td3", "target_noise": -0.1}, "target_noise"),
        ({"gradient_steps": 0}, "gradient_steps"),
        ({"error_shaping": -1.0}, "error_shaping"),
        ({"hold": 0}, "hold"),
    ],
)
def test_bad_exploration_options_are_refused(changes, match):
    from ampczoo.finetune.train import ResidualRunConfig

    with pytest.raises(ValueError, match=match):
        ResidualRunConfig(**changes)


def test_options_reach_the_sb3_model():
    from ampczoo.finetune.train import ResidualRunConfig, algo_kwargs

    kw = algo_kwargs(ResidualRunConfig(algo="td3", target_noise=0.05, gradient_steps=3))
    assert kw["target_policy_noise"] == 0.05 and kw["target_noise_clip"] == 0.125
    assert kw["gradient_steps"] == 3
    assert "use_sde" not in algo_kwargs(ResidualRunConfig(algo="ppo"))


def test_exported_policy_holds_its_residual_for_hold_steps():
    env = residual_env()
    model = model_for("sac", env)
    with torch.no_grad():  # a residual that differs from step to step
        sb3.actor_parts(model, "sac")[2].weight.normal_(0, 0.1)
    policy = sb3.export_policy(model, "sac", BASE, SCALE, LOW, HIGH, hold=3)
    assert policy.config.hold == 3
    policy.set_base(lambda obs: np.zeros(3))  # act() = the residual alone (no clipping)
    raw = gym.make(ENV)
    o, _ = raw.reset(seed=2)
    policy.reset(seed=2)
    residuals = []
    for _ in range(7):
        a = policy.act(o)
        residuals.append(a)
        o, *_ = raw.step(a)
    r = np.array(residuals)
    np.testing.assert_allclose(r[1], r[0], atol=1e-5)
    np.testing.assert_allclose(r[2], r[0], atol=1e-5)
    np.testing.assert_allclose(r[4], r[3], atol=1e-5)
    assert not np.allclose(r[3], r[0], atol=1e-3)
    policy.reset(seed=2)  # reset drops the held residual
    assert policy._held is None
