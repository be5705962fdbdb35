"""Diffusion Policy: config validation, the schedulers against diffusers' reference, the action
queue of ``act`` (T_a actions per plan, history padding, reset), the chunk API, a two-mode toy
fit, save/load, cameras, env-layout checks and training through ``ampczoo train``."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

import ampczoo
from ampczoo.policies.diffusion_policy import DiffusionPolicy, DiffusionPolicyConfig

TINY = dict(
    obs_dim=4,
    action_dim=2,
    pred_horizon=8,
    action_horizon=4,
    down_dims=(16, 32),
    step_embed_dim=16,
    num_inference_steps=5,
)


def tiny(**kw) -> DiffusionPolicy:
    torch.manual_seed(0)
    return DiffusionPolicy(DiffusionPolicyConfig(**{**TINY, **kw})).eval()


# ----------------------------------------------------------------- config
@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(action_horizon=8), "action_horizon"),  # T_a > T_p - T_o + 1
        (dict(action_horizon=20), "action_horizon"),  # T_a > T_p
        (dict(obs_horizon=0), "obs_horizon"),
        (dict(pred_horizon=10, action_horizon=4, down_dims=(8, 16, 32)), "divisible"),
        (dict(down_dims=(12, 24)), "n_groups"),
        (dict(sampler="euler"), "sampler"),
        (dict(num_inference_steps=200), "num_inference_steps"),
        (dict(step_embed_dim=7), "step_embed_dim"),
        (dict(obs_layout=(("a", 0, 2), ("b", 2, 3))), "obs_layout covers"),
        (dict(obs_layout=(("a", 0, 2), ("b", 3, 4))), "tiling"),
        (dict(image_keys=("cam",)), "obs_layout"),
        (dict(control_dt=0.0), "control_dt"),
        (dict(rotation_features="euler"), "rotation_features"),
        (dict(rotation_features="rot6d"), "needs quat_starts"),
        (dict(quat_starts=(0,)), "only used with"),
        (dict(obs_dim=8, rotation_features="rot6d", quat_starts=(0, 2)), "4 apart"),
        (dict(obs_dim=8, rotation_features="rot6d", quat_starts=(5,)), "inside obs_dim"),
        (dict(obs_encoder_dims=(16, 0)), "obs_encoder_dims"),
        (dict(angle_dims=(4,)), "angle_dims"),  # outside obs_dim = 4
        (dict(angle_dims=(1, 1)), "angle_dims"),
        (dict(obs_dim=9, rotation_features="rot6d", quat_starts=(2,), angle_dims=(3,)), "overlap"),
    ],
)
def test_invalid_configs_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        DiffusionPolicyConfig(**{**TINY, **bad})


def test_defaults_are_the_papers_horizons():
    c = DiffusionPolicyConfig()
    assert (c.obs_horizon, c.pred_horizon, c.action_horizon) == (2, 16, 8)
    assert c.num_train_timesteps == 100 and c.kernel_size == 5 and c.n_groups == 8
    # the paper's U-Net is available by config (the size of its 65M-parameter model)
    big = dataclasses.replace(c, down_dims=(256, 512, 1024), step_embed_dim=256)
    with torch.device("meta"):  # sizes only, no memory
        n = DiffusionPolicy(big).num_parameters()
    assert 60e6 < n < 70e6


# ----------------------------------------------------------------- schedulers
def squared_cosine_alphas_cumprod(n: int) -> np.ndarray:
    """Nichol & Dhariwal 2021: betas from cos^2 with s = 0.008, clipped at 0.999."""

    def f(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = np.array([min(1 - f((i + 1) / n) / f(i / n), 0.999) for i in range(n)])
    return np.cumprod(1.0 - betas)


def test_training_noise_is_diffusers_ddpm_add_noise():
    """The forward process the loss uses equals the reference scheduler's add_noise (the
    paper's DDPMScheduler config) and the squared-cosine formula."""
    from diffusers import DDPMScheduler

    ref = DDPMScheduler(
        num_train_timesteps=100,
        beta_schedule="squaredcos_cap_v2",
        clip_sample=True,
        prediction_type="epsilon",
        variance_type="fixed_small",
    )
    p = tiny()
    a = squared_cosine_alphas_cumprod(100)
    np.testing.assert_allclose(p.sqrt_alpha.numpy() ** 2, a, rtol=1e-5, atol=1e-7)
    x0, noise = torch.randn(6, 8, 2), torch.randn(6, 8, 2)
    t = torch.tensor([0, 1, 17, 50, 98, 99])
    ours = p.sqrt_alpha[t, None, None] * x0 + p.sqrt_one_minus_alpha[t, None, None] * noise
    torch.testing.assert_close(ours, ref.add_noise(x0, noise, t))


class OracleEps(torch.nn.Module):
    """The exact noise predictor of data concentrated on one sequence x* (normalised)."""

    def __init__(self, target: torch.Tensor, sqrt_alpha: torch.Tensor):
        super().__init__()
        self.target, self.a = target, sqrt_alpha**2
        self.unused = torch.nn.Parameter(torch.zeros(1))  # gives the policy a device

    def forward(self, x, t, cond):
        a = self.a[t][:, None, None]
        return (x - a.sqrt() * self.target) / (1 - a).sqrt()


@pytest.mark.parametrize("sampler, steps", [("ddim", 10), ("ddpm", 100), ("ddpm", 20)])
def test_sampler_recovers_a_point_mass(sampler, steps):
    """With the exact noise model of a single target sequence, both samplers (diffusers'
    step, the paper's config) end on the target, whatever the initial noise."""
    p = tiny(sampler=sampler, num_inference_steps=steps)
    target = torch.linspace(-0.9, 0.9, 16).reshape(8, 2)
    p.model = OracleEps(target, p.sqrt_alpha)
    p.action_norm.set_range([-2.0, 0.0], [2.0, 10.0])
    p.reset(seed=3)
    out = p.sample(np.zeros((4, 2, 4), np.float32))
    want = p.action_norm.inverse(target).double().numpy()
    np.testing.assert_allclose(out, np.broadcast_to(want, out.shape), atol=1e-4)
    if sampler == "ddim":
        assert [int(t) for t in p.scheduler.timesteps] == list(range(90, -1, -10))


# ----------------------------------------------------------------- acting
class CountingSampler:
    """Wraps policy.sample: records the histories it is called with."""

    def __init__(self, policy: DiffusionPolicy):
        self.policy, self.inner, self.calls = policy, policy.sample, []
        policy.sample = self  # type: ignore[method-assign]

    def __call__(self, obs_history, images=None):
        self.calls.append(np.array(obs_history))
        return self.inner(obs_history, images)


def test_act_executes_t_a_actions_per_plan_from_index_t_o_minus_1():
    p = tiny(obs_horizon=3, pred_horizon=16, action_horizon=5)
    spy = CountingSampler(p)
    obs = np.arange(12 * 4, dtype=np.float64).reshape(12, 4) / 10
    p.reset(seed=0)
    actions = [p.act(o) for o in obs[:11]]
    assert len(spy.calls) == 3  # steps 0, 5, 10
    # first plan: history padded with the first observation
    np.testing.assert_allclose(spy.calls[0][0], obs[[0, 0, 0]], rtol=1e-6)
    np.testing.assert_allclose(spy.calls[1][0], obs[[3, 4, 5]], rtol=1e-6)
    # the executed actions are rows T_o - 1 .. T_o + T_a - 2 of the sampled sequence
    p2 = tiny(obs_horizon=3, pred_horizon=16, action_horizon=5)
    p2.reset(seed=0)
    seq = p2.sample(spy.calls[0])[0]
    np.testing.assert_allclose(np.stack(actions[:5]), seq[2:7])
    plan, dt = p.planned_inputs()
    assert plan.shape == (16 - 3 + 1, 2) and dt == p.config.control_dt
    np.testing.assert_array_equal(plan[0], actions[10])
    # reset clears history and queue: the next act plans again from a padded history
    p.reset(seed=0)
    assert p.planned_inputs() is None
    p.act(obs[7])
    assert len(spy.calls) == 4
    np.testing.assert_allclose(spy.calls[3][0], obs[[7, 7, 7]], rtol=1e-6)


def test_act_chunk_plans_now_and_the_queue_continues():
    p = tiny()
    obs = np.random.default_rng(0).normal(size=(3, 4))
    p.reset(seed=1)
    chunk = p.act_chunk(obs[0])
    assert chunk.shape == (8 - 2 + 1, 2) and chunk.dtype == np.float64
    np.testing.assert_array_equal(p.act(obs[1]), chunk[1])  # queue continues the plan
    # explicit histories: stateless and batched
    hist = np.stack([obs[:2], obs[1:]]).astype(np.float32)
    out = p.act_chunk(hist)
    assert out.shape == (2, 7, 2)
    np.testing.assert_array_equal(p.act(obs[2]), chunk[2])  # state untouched
    with pytest.raises(ValueError, match="histories"):
        p.act_chunk(np.zeros((2, 3, 4)))
    # batched acting keeps one history and queue per row
    p.reset(seed=1)
    assert p.act(obs).shape == (3, 2)
    with pytest.raises(ValueError, match="batch size changed"):
        p.act(obs[:2])


def test_refiner_chunk_api_runs_on_it():
    """A chunk filter (the refiners' receding-horizon runner) gets its chunks from act_chunk."""
    from ampczoo.wrappers.clipping import ClippingPolicy

    p = tiny()
    runner = ClippingPolicy(p, max_delta=0.05)
    runner.reset(seed=0)
    a0 = runner.act(np.zeros(4))
    a1 = runner.act(np.ones(4))
    assert a0.shape == a1.shape == (2,)
    assert np.max(np.abs(a1 - a0)) <= 0.05 + 1e-9


# ----------------------------------------------------------------- learning
def two_mode_batch(n: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """Chunks all +1 or all -1 with probability 1/2, whatever the observations."""
    sign = rng.choice([-1.0, 1.0], size=(n, 1, 1))
    return {
        "obs_history": torch.as_tensor(0.1 * rng.normal(size=(n, 2, 4)), dtype=torch.float32),
        "u_seq": torch.as_tensor(np.ones((n, 8, 2)) * sign, dtype=torch.float32),
    }


def test_learns_both_modes_where_mse_averages():
    """300 steps on two-mode data: samples land on either mode, both often; the MSE-optimal
    prediction (the mean, 0) would sit between them."""
    p = tiny(down_dims=(32,), num_inference_steps=10).train()
    p.action_norm.set_range([-1.0, -1.0], [1.0, 1.0])
    rng = np.random.default_rng(0)
    opt = torch.optim.AdamW(p.parameters(), lr=1e-2)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 300)
    torch.manual_seed(0)
    for _ in range(300):
        loss, _ = p.loss(two_mode_batch(64, rng))
        opt.zero_grad()
        loss.backward()
        opt.step()
        cosine.step()
    p.eval().reset(seed=0)
    hist = np.repeat(0.1 * rng.normal(size=(1, 2, 4)), 200, axis=0).astype(np.float32)
    means = p.act_chunk(hist).mean(axis=(1, 2))
    near_plus, near_minus = np.mean(np.abs(means - 1) < 0.4), np.mean(np.abs(means + 1) < 0.4)
    assert near_plus > 0.25 and near_minus > 0.25, (near_plus, near_minus)
    assert near_plus + near_minus > 0.9, (near_plus, near_minus)
    mse_optimum = two_mode_batch(10_000, rng)["u_seq"].mean().item()
    assert abs(mse_optimum) < 0.05  # between the modes, far from both


def test_loss_refuses_wrong_windows():
    p = tiny()
    batch = two_mode_batch(4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="obs_history"):
        p.loss({**batch, "obs_history": batch["obs_history"][:, :1]})
    with pytest.raises(ValueError, match="u_seq"):
        p.loss({**batch, "u_seq": batch["u_seq"][:, :4]})


def test_save_load_gives_the_same_actions_and_stats(tmp_path):
    p = tiny()
    p.set_normalization(
        {
            "obs": {"min": -np.arange(4.0), "max": np.arange(4.0) + 1},
            "u_seq": {"min": np.full((8, 2), -3.0), "max": np.full((8, 2), 2.0)},
        }
    )
    path = p.save_pretrained(tmp_path / "dp")
    q = ampczoo.load_policy(path, device="cpu")
    torch.testing.assert_close(q.action_norm.half_range, torch.tensor([2.5, 2.5]))
    obs = np.random.default_rng(1).normal(size=(10, 4))
    for policy in (p, q):
        policy.reset(seed=5)
    np.testing.assert_array_equal([p.act(o) for o in obs], [q.act(o) for o in obs])


# ----------------------------------------------------------------- rotation features
def random_quats(rng: np.random.Generator, n: int) -> np.ndarray:
    q = rng.normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_rot6d_conditioning_is_the_same_for_q_and_minus_q():
    """robomimic's object-to-gripper quaternion flips sign within an episode (Square: 2 632
    flips in 199 of 207 demonstrations) for the same physical state: with "rot6d" the
    policy's plan must not change; with raw quaternions it does."""
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(6, 2, 9)).astype(np.float32)
    obs[..., 2:6] = random_quats(rng, 12).reshape(6, 2, 4)
    flipped = obs.copy()
    flipped[..., 2:6] *= -1
    samples = {}
    for rf, starts in (("rot6d", (2,)), ("quat", ())):
        p = tiny(obs_dim=9, rotation_features=rf, quat_starts=starts)
        p.set_normalization(
            {"obs": {"min": -np.ones(9), "max": np.ones(9)},
             "u_seq": {"min": -np.ones((8, 2)), "max": np.ones((8, 2))}}
        )  # fmt: skip
        pair = []
        for o in (obs, flipped):
            p.reset(seed=3)
            pair.append(p.sample(o))
        samples[rf] = pair
    np.testing.assert_allclose(*samples["rot6d"], atol=1e-6)
    assert np.abs(samples["quat"][0] - samples["quat"][1]).max() > 1e-3


def test_rot6d_features_replace_each_quaternion_by_its_matrix_columns():
    from ampczoo.experts.scripted_robomimic import quat_to_mat

    p = tiny(obs_dim=9, rotation_features="rot6d", quat_starts=(5,))
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(3, 9))
    obs[:, 5:9] = random_quats(rng, 3) * 2.0  # not unit: normalised first
    feats = p.low_dim_features(torch.tensor(obs, dtype=torch.float32)).numpy()
    assert feats.shape == (3, 11) == (3, p.config.feature_dim())
    np.testing.assert_allclose(feats[:, :5], obs[:, :5], atol=1e-6)  # identity normaliser
    for f, o in zip(feats, obs, strict=True):
        R = quat_to_mat(o[5:9])
        np.testing.assert_allclose(f[5:], np.concatenate([R[:, 0], R[:, 1]]), atol=1e-5)


def test_angle_dims_enter_as_cos_sin_continuous_across_the_wrap(tmp_path):
    """Push-T's block angle is stored in [0, 2π): min-max normalised it jumps from 1 to −1
    where the block turns past 0; as (cos, sin) the conditioning is continuous there."""
    p = tiny(obs_dim=5, angle_dims=(4,))
    p.set_normalization(
        {
            "obs": {"min": np.zeros(5), "max": np.r_[np.ones(4), 2 * np.pi]},
            "u_seq": {"min": -np.ones((8, 2)), "max": np.ones((8, 2))},
        }
    )
    obs = torch.tensor([[0.1, 0.2, 0.3, 0.4, 2 * np.pi - 1e-3], [0.1, 0.2, 0.3, 0.4, 1e-3]])
    feats = p.low_dim_features(obs)
    assert feats.shape == (2, 6) == (2, p.config.feature_dim())
    np.testing.assert_allclose(feats[:, 4:].numpy(), [[1, -1e-3], [1, 1e-3]], atol=1e-5)
    np.testing.assert_allclose(feats[:, :4].numpy(), 2 * obs[:, :4].numpy() - 1, atol=1e-6)
    assert (feats[0] - feats[1]).abs().max() < 3e-3  # the raw normalised angle: 2 apart
    raw = tiny(obs_dim=5)
    raw.set_normalization(
        {
            "obs": {"min": np.zeros(5), "max": np.r_[np.ones(4), 2 * np.pi]},
            "u_seq": {"min": -np.ones((8, 2)), "max": np.ones((8, 2))},
        }
    )
    assert (raw.low_dim_features(obs)[0] - raw.low_dim_features(obs)[1]).abs().max() > 1.99
    q = ampczoo.load_policy(p.save_pretrained(tmp_path / "dp"), device="cpu")
    assert q.config.angle_dims == (4,)
    torch.testing.assert_close(q.low_dim_features(obs), feats)


def test_rot6d_quat_starts_come_from_a_robomimic_store_and_survive_save_load(tmp_path):
    fields = {"rotation_features": "rot6d", "quat_starts": ()}
    got = DiffusionPolicy.config_from_data(fields, {"env": "Robomimic-Square-v0"})
    assert got == {"quat_starts": (3, 10, 17)}  # nut, nut-to-gripper, gripper
    assert DiffusionPolicy.config_from_data({"rotation_features": "quat"}, {}) == {}
    with pytest.raises(ValueError, match="quat-starts"):
        DiffusionPolicy.config_from_data(fields, {"env": "MetaWorld-ShelfPlace-v0"})
    p = tiny(obs_dim=23, rotation_features="rot6d", **got)
    q = ampczoo.load_policy(p.save_pretrained(tmp_path / "dp"), device="cpu")
    assert (q.config.rotation_features, q.config.quat_starts) == ("rot6d", (3, 10, 17))


def test_obs_encoder_mlp_feeds_the_film_conditioning_and_survives_save_load(tmp_path):
    p = tiny(obs_dim=9, rotation_features="rot6d", quat_starts=(2,), obs_encoder_dims=(24, 12))
    assert [m.out_features for m in p.obs_encoder if isinstance(m, torch.nn.Linear)] == [24, 12]
    assert p.obs_encoder[0].in_features == 11  # 5 entries + 6 rotation features
    hist = torch.randn(3, 2, 9)
    assert p.encode(hist, {}).shape == (3, 2 * 12)
    batch = {"obs_history": hist, "u_seq": torch.randn(3, 8, 2)}
    p.train().loss(batch)[0].backward()
    assert p.obs_encoder[0].weight.grad.abs().sum() > 0  # trained with the U-Net
    q = ampczoo.load_policy(p.save_pretrained(tmp_path / "dp"), device="cpu")
    obs = np.random.default_rng(2).normal(size=(5, 9))
    for policy in (p.eval(), q):
        policy.reset(seed=1)
    np.testing.assert_array_equal([p.act(o) for o in obs], [q.act(o) for o in obs])
    assert len(tiny().obs_encoder) == 0  # default: the paper's (no encoder, no parameters)


# ----------------------------------------------------------------- cameras
def image_policy() -> DiffusionPolicy:
    layout = (("object", 0, 2), ("eef", 2, 4))
    return tiny(
        obs_layout=layout,
        image_keys=("cam",),
        image_shape=(8, 8, 3),
        image_crop_ratio=0.75,
        image_feature_dim=8,
        image_channels=(8, 8),
    )


def test_camera_policy_trains_a_few_steps_and_acts_on_dict_observations():
    p = image_policy().train()
    rng = np.random.default_rng(0)
    batch = two_mode_batch(8, rng)
    batch["images.cam"] = torch.as_tensor(rng.integers(0, 255, (8, 2, 8, 8, 3), dtype=np.uint8))
    opt = torch.optim.AdamW(p.parameters(), lr=1e-3)
    torch.manual_seed(0)
    for _ in range(3):
        loss, _ = p.loss(batch)
        opt.zero_grad()
        loss.backward()
        grad = p.image_encoders["cam"].convs[0].weight.grad
        assert grad is not None and grad.abs().sum() > 0
        opt.step()
        assert torch.isfinite(loss)
    p.eval().reset(seed=0)
    obs = {"object": np.zeros(2), "eef": np.ones(2), "cam": np.zeros((8, 8, 3), np.uint8)}
    assert p.act(obs).shape == (2,)
    with pytest.raises(ValueError, match="lacks"):
        p.act({"object": np.zeros(2), "eef": np.ones(2)})
    with pytest.raises(ValueError, match="camera"):
        p.act({**obs, "cam": np.zeros((8, 8, 4), np.uint8)})
    with pytest.raises(ValueError, match="dict observation"):
        p.act(np.zeros(4))
    with pytest.raises(ValueError, match="images.cam"):
        p.loss(two_mode_batch(2, rng))


def test_camera_crop_follows_the_ratio_and_is_validated():
    assert image_policy().image_encoders["cam"].crop == (6, 6)  # 0.75 of 8 x 8
    for ratio in (0.0, 1.5):
        with pytest.raises(ValueError, match="image_crop_ratio"):
            tiny(
                obs_layout=(("object", 0, 2), ("eef", 2, 4)),
                image_keys=("cam",),
                image_shape=(8, 8, 3),
                image_crop_ratio=ratio,
                image_channels=(8, 8),
            )
    assert DiffusionPolicyConfig().image_crop == (76, 76)  # the paper's, of 84 x 84
    assert DiffusionPolicyConfig(image_crop_ratio=1.0).image_crop is None


def test_configs_saved_with_the_old_pixel_crop_still_load():
    old = DiffusionPolicyConfig().to_dict()
    del old["image_crop_ratio"]
    for crop, expected in (([76, 76], (76, 76)), ([60, 60], (60, 60)), (None, None)):
        config = DiffusionPolicyConfig.from_dict({**old, "image_crop": crop})
        assert config.image_crop == expected
    with pytest.raises(ValueError, match="unknown config fields"):  # typos are still refused
        DiffusionPolicyConfig.from_dict({**old, "image_crp": [76, 76]})


# ----------------------------------------------------------------- env layout
def test_checkpoint_on_another_env_layout_is_refused():
    import gymnasium as gym
    import toy_manip

    env = gym.make(toy_manip.GYM_ID)
    layout = tuple((k, a, b) for k, (a, b) in toy_manip.LAYOUT.items())
    good = tiny(obs_dim=5, action_dim=3, obs_layout=layout, env_id="ToyManip-v0")
    good.check_env(env)
    other = (("object", 0, 3), ("robot0_eef_pos", 3, 5))
    with pytest.raises(ValueError, match=r"object:0-3.*object:0-2"):
        tiny(obs_dim=5, action_dim=3, obs_layout=other).check_env(env)
    with pytest.raises(ValueError, match=r"action_dim 2.*action_dim 3"):
        tiny(obs_dim=5, action_dim=2).check_env(env)
    with pytest.raises(ValueError, match=r"obs_dim 4.*obs_dim 5"):
        tiny().check_env(env)
    env.close()


def test_eval_refuses_a_checkpoint_of_another_layout():
    """``ampczoo eval``'s fit check runs the policy's layout check (both layouts named) and
    accepts a matching checkpoint (its probe act runs)."""
    import gymnasium as gym
    import toy_manip

    from ampczoo.benchmarks.evaluate import LoadedPolicy, check_fit

    env = gym.make(toy_manip.GYM_ID)
    layout = tuple((k, a, b) for k, (a, b) in toy_manip.LAYOUT.items())
    good = tiny(obs_dim=5, action_dim=3, obs_layout=layout)
    check_fit(LoadedPolicy(good, "checkpoint", "dp", (5,), (3,)), env, toy_manip.GYM_ID, 0)
    other = (("object", 0, 3), ("robot0_eef_pos", 3, 5))
    bad = tiny(obs_dim=5, action_dim=3, obs_layout=other, env_id="Robomimic-Can-v0")
    with pytest.raises(
        ValueError, match=r"does not fit .*Robomimic-Can-v0.*object:0-3.*object:0-2"
    ):
        check_fit(LoadedPolicy(bad, "checkpoint", "dp", (5,), (3,)), env, toy_manip.GYM_ID, 0)
    env.close()
