"""stable-baselines3 glue: the models of residual RL, their zero-residual start and the export
of the trained actor into a ``residual_rl`` zoo policy.

* :class:`ResidualFeatures`: SB3 features extractor = :class:`~ampczoo.policies.
  residual_rl.ResidualInput` (fixed z-score + kinematic features, no parameters), so the
  trained networks map one to one onto :class:`~ampczoo.policies.residual_rl.ResidualActor`.
* :func:`make_model`: SAC (default), TD3 or PPO on a :class:`~ampczoo.finetune.residual_env.
  ResidualPolicyEnv`, with the final layer of the actor's mean zeroed
  (:func:`zero_residual`): the initial deterministic policy IS the base.
* :func:`export_policy`: the deterministic actor as a :class:`~ampczoo.policies.residual_rl.
  ResidualRLPolicy` (config.json + model.safetensors with ``save_pretrained``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from ampczoo.policies.residual_rl import ResidualInput, ResidualRLConfig, ResidualRLPolicy

ALGOS = ("sac", "td3", "ppo")
#: hidden activation of each algorithm's networks (SB3's defaults)
ACTIVATION = {"sac": "relu", "td3": "relu", "ppo": "tanh"}
SQUASH = {"sac": "tanh", "td3": "tanh", "ppo": "clip"}


try:
    import stable_baselines3 as _sb3
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
except ModuleNotFoundError as _exc:  # pragma: no cover - the extra is installed in dev
    raise ImportError("RL fine-tuning needs stable-baselines3: pip install 'ampczoo[rl]'") from _exc


def check_algo(algo: str) -> str:
    """``algo`` if it is one of :data:`ALGOS`; ValueError naming the choices otherwise."""
    if algo not in ALGOS:
        raise ValueError(f"unknown algorithm {algo!r}; choose from {ALGOS}")
    return algo


class ResidualFeatures(BaseFeaturesExtractor):
    """SB3 features extractor: [obs, base action] -> :class:`ResidualInput` features (fixed
    statistics ``mean``/``std``, no parameters)."""

    def __init__(
        self,
        observation_space: Any,
        obs_dim: int,
        action_dim: int,
        features: str = "none",
        mean: list[float] | None = None,
        std: list[float] | None = None,
    ):
        inputs = ResidualInput(obs_dim, action_dim, features)
        super().__init__(observation_space, features_dim=inputs.output_dim)
        self.inputs = inputs
        if mean is not None and std is not None:
            inputs.set_stats(mean, std)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.inputs(observations)


def policy_kwargs(
    algo: str,
    obs_dim: int,
    action_dim: int,
    hidden_dim: int,
    num_layers: int,
    features: str,
    mean: np.ndarray,
    std: np.ndarray,
    actor_layers: int | None = None,
) -> dict[str, Any]:
    """SB3 ``policy_kwargs``: the extractor, ``hidden_dim`` x ``num_layers`` for actor and
    critic (the actor: ``actor_layers`` hidden layers when given; 0 = a linear actor), SB3's
    default activation of the algorithm."""
    arch = [int(hidden_dim)] * int(num_layers)
    pi = arch if actor_layers is None else [int(hidden_dim)] * int(actor_layers)
    kwargs: dict[str, Any] = {
        "features_extractor_class": ResidualFeatures,
        "features_extractor_kwargs": {
            "obs_dim": int(obs_dim),
            "action_dim": int(action_dim),
            "features": features,
            "mean": [float(v) for v in mean],
            "std": [float(v) for v in std],
        },
        "activation_fn": nn.ReLU if ACTIVATION[algo] == "relu" else nn.Tanh,
    }
    if algo == "ppo":
        kwargs["net_arch"] = {"pi": pi, "vf": arch}
    else:
        kwargs["net_arch"] = arch if pi == arch else {"pi": pi, "qf": arch}
    return kwargs


def make_model(
    algo: str,
    env: Any,
    kwargs: dict[str, Any],
    algo_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    tensorboard_log: str | None = None,
    init_std: float = 0.3,
    actor_delay: int = 0,
    actor_lr_scale: float = 1.0,
    residual_l2: float = 0.0,
) -> Any:
    """A fresh SB3 ``algo`` model on ``env`` (a VecEnv or env of :class:`ResidualPolicyEnv`)
    with ``policy_kwargs`` ``kwargs``, the residual zeroed (:func:`zero_residual`), the
    exploration std set to ``init_std`` (in residual units) and, for SAC / TD3, the actor
    frozen for the first ``actor_delay`` env steps (critic burn-in), then learning at
    ``actor_lr_scale`` times the learning rate. TD3: ``residual_l2`` > 0 pulls the actor
    toward zero residual (:class:`ResidualTD3`)."""
    if residual_l2 < 0 or not math.isfinite(residual_l2):
        raise ValueError(f"residual_l2 must be finite and >= 0, got {residual_l2}")
    if residual_l2 and algo != "td3":
        raise ValueError(f"residual_l2 is a TD3 option, not one of {algo!r}")
    cls = algo_class(algo)
    extra = dict(algo_kwargs or {})
    if algo == "ppo":
        kwargs = {**kwargs, "log_std_init": math.log(init_std)}
    if algo == "td3" and "action_noise" not in extra:
        from stable_baselines3.common.noise import NormalActionNoise

        n = env.action_space.shape[0]
        extra["action_noise"] = NormalActionNoise(np.zeros(n), init_std * np.ones(n))
    model = cls(
        "MlpPolicy",
        env,
        policy_kwargs=kwargs,
        seed=seed,
        verbose=0,
        tensorboard_log=tensorboard_log,
        device="cpu",
        **extra,
    )
    zero_residual(model, algo, init_std)
    if algo != "ppo":
        model.actor_delay = int(actor_delay)
        model.actor_lr_scale = float(actor_lr_scale)
    if algo == "td3":
        model.residual_l2 = float(residual_l2)
    return model


class _CriticFirst:
    """Mixin of SAC / TD3: during the first ``actor_delay`` env steps only the critic learns
    (the actor's learning rate is 0, so the policy stays the base plus exploration noise
    while the critic learns the base's values; residual RL's critic burn-in); afterwards the
    actor learns at ``actor_lr_scale`` times the critic's rate."""

    actor_delay: int = 0
    actor_lr_scale: float = 1.0

    def _update_learning_rate(self, optimizers: Any) -> None:
        super()._update_learning_rate(optimizers)  # type: ignore[misc]
        frozen = self.num_timesteps < self.actor_delay  # type: ignore[attr-defined]
        for group in self.actor.optimizer.param_groups:  # type: ignore[attr-defined]
            group["lr"] = 0.0 if frozen else group["lr"] * self.actor_lr_scale


class ResidualSAC(_CriticFirst, _sb3.SAC):
    """SAC with critic burn-in (:class:`_CriticFirst`)."""


class ResidualTD3(_CriticFirst, _sb3.TD3):
    """TD3 with critic burn-in (:class:`_CriticFirst`) and, when ``residual_l2`` > 0, an
    actor loss that keeps the residual near zero, as TD3+BC (Fujimoto & Gu 2021) keeps its
    actor near the data with the base's action (zero residual) as the target::

        loss = -Q1(s, pi(s)) / mean|Q1| + residual_l2 * mean(pi(s)^2)

    (pi(s) in [-1, 1] residual units, means over the batch; the Q term normalised by its
    batch's mean magnitude, not differentiated, so ``residual_l2`` does not depend on the
    reward's scale). ``residual_l2`` = 0: SB3's own TD3 loss."""

    residual_l2: float = 0.0

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        if not self.residual_l2:
            super().train(gradient_steps, batch_size)
            return
        self._train_regularised(gradient_steps, batch_size)

    def _train_regularised(self, gradient_steps: int, batch_size: int) -> None:
        """SB3 2.x ``TD3.train`` with the regularised actor loss (see the class docstring)."""
        from stable_baselines3.common.utils import polyak_update
        from torch.nn import functional as F  # noqa: N812

        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])
        actor_losses, critic_losses, residual_sq = [], [], []
        for _ in range(gradient_steps):
            self._n_updates += 1
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            discounts = data.discounts if data.discounts is not None else self.gamma
            with torch.no_grad():
                noise = data.actions.clone().normal_(0, self.target_policy_noise)
                noise = noise.clamp(-self.target_noise_clip, self.target_noise_clip)
                next_actions = (self.actor_target(data.next_observations) + noise).clamp(-1, 1)
                next_q = torch.cat(self.critic_target(data.next_observations, next_actions), 1)
                next_q, _ = torch.min(next_q, dim=1, keepdim=True)
                target_q = data.rewards + (1 - data.dones) * discounts * next_q
            current_q = self.critic(data.observations, data.actions)
            critic_loss = sum(F.mse_loss(q, target_q) for q in current_q)
            critic_losses.append(float(critic_loss.detach()))  # type: ignore[union-attr]
            self.critic.optimizer.zero_grad()
            critic_loss.backward()  # type: ignore[union-attr]
            self.critic.optimizer.step()
            if self._n_updates % self.policy_delay == 0:
                action = self.actor(data.observations)
                q = self.critic.q1_forward(data.observations, action)
                penalty = action.pow(2).mean()
                actor_loss = -q.mean() / q.abs().mean().detach().clamp_min(1e-6)
                actor_loss = actor_loss + self.residual_l2 * penalty
                actor_losses.append(float(actor_loss.detach()))
                residual_sq.append(float(penalty.detach()))
                self.actor.optimizer.zero_grad()
                actor_loss.backward()
                self.actor.optimizer.step()
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.actor.parameters(), self.actor_target.parameters(), self.tau)
                polyak_update(
                    self.critic_batch_norm_stats, self.critic_batch_norm_stats_target, 1.0
                )
                polyak_update(self.actor_batch_norm_stats, self.actor_batch_norm_stats_target, 1.0)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if actor_losses:
            self.logger.record("train/actor_loss", np.mean(actor_losses))
            self.logger.record("train/residual_sq", np.mean(residual_sq))
        self.logger.record("train/critic_loss", np.mean(critic_losses))


def algo_class(algo: str) -> Any:
    """The SB3 class of ``algo`` (ValueError for an unknown one)."""
    check_algo(algo)
    return {"sac": ResidualSAC, "td3": ResidualTD3, "ppo": _sb3.PPO}[algo]


def actor_parts(model: Any, algo: str) -> tuple[nn.Module, nn.Sequential, nn.Linear]:
    """(features extractor, hidden body, final mean layer) of an SB3 model's actor."""
    policy = model.policy
    if algo == "sac":
        return policy.actor.features_extractor, policy.actor.latent_pi, policy.actor.mu
    if algo == "td3":
        mu = policy.actor.mu
        return policy.actor.features_extractor, nn.Sequential(*list(mu)[:-2]), mu[-2]
    if algo == "ppo":
        return policy.pi_features_extractor, policy.mlp_extractor.policy_net, policy.action_net
    raise ValueError(f"unknown algorithm {algo!r}; choose from {ALGOS}")


@torch.no_grad()
def zero_residual(model: Any, algo: str, init_std: float = 0.3) -> None:
    """Zero the final layer of the actor's mean (the residual is 0 at every input) and, for
    SAC, set the initial exploration std to ``init_std`` (log-std layer: zero weights, bias
    log(init_std)). TD3's target actor is synchronised."""
    _, _, head = actor_parts(model, algo)
    head.weight.zero_()
    head.bias.zero_()
    if algo == "sac":
        log_std = model.policy.actor.log_std
        log_std.weight.zero_()
        log_std.bias.fill_(math.log(init_std))
    if algo == "td3":
        model.policy.actor_target.load_state_dict(model.policy.actor.state_dict())


def deterministic_residual(model: Any, obs: np.ndarray) -> np.ndarray:
    """The model's deterministic action (residual in [-1, 1]) for wrapped observations
    (B, obs_dim + action_dim)."""
    action, _ = model.predict(np.asarray(obs, np.float32), deterministic=True)
    return np.asarray(action, np.float64)


def export_config(
    model: Any,
    algo: str,
    base: str,
    scale: Any,
    low: Any,
    high: Any,
    hold: int = 1,
    residual_space: str = "joint",
    twist_scale: Any = (),
) -> ResidualRLConfig:
    """The :class:`ResidualRLConfig` of a trained model (sizes read from its networks; a
    linear actor: ``num_layers`` 0)."""
    extractor, body, head = actor_parts(model, algo)
    linears = [m for m in body if isinstance(m, nn.Linear)]
    action_dim = extractor.inputs.action_dim
    return ResidualRLConfig(
        base=base,
        obs_dim=extractor.inputs.obs_dim,
        action_dim=action_dim,
        scale=tuple(float(s) for s in np.broadcast_to(scale, (action_dim,))),
        action_low=tuple(float(v) for v in low),
        action_high=tuple(float(v) for v in high),
        hidden_dim=linears[0].out_features if linears else head.in_features,
        num_layers=len(linears),
        activation=ACTIVATION[algo],
        squash=SQUASH[algo],
        features=extractor.inputs.features,
        hold=hold,
        residual_space=residual_space,
        twist_scale=tuple(float(v) for v in np.asarray(twist_scale, np.float64).reshape(-1)),
    )


@torch.no_grad()
def export_policy(
    model: Any,
    algo: str,
    base: str,
    scale: Any,
    low: Any,
    high: Any,
    base_object: Any = None,
    hold: int = 1,
    residual_space: str = "joint",
    twist_scale: Any = (),
) -> ResidualRLPolicy:
    """The deterministic actor of ``model`` as a ``residual_rl`` policy on ``base`` (zoo
    name / folder; ``base_object``: use this in-memory base instead of loading it; ``hold``:
    env steps each residual is held; ``residual_space`` / ``twist_scale``: the env's
    residual space, see :class:`~ampczoo.policies.residual_rl.ResidualRLConfig`)."""
    config = export_config(model, algo, base, scale, low, high, hold, residual_space, twist_scale)
    policy = ResidualRLPolicy(config)
    extractor, body, head = actor_parts(model, algo)
    policy.actor.inputs.load_state_dict(extractor.inputs.state_dict())
    policy.actor.body.load_state_dict(body.state_dict())
    policy.actor.head.load_state_dict(head.state_dict())
    if base_object is not None:
        policy.set_base(base_object)
    return policy.eval()
