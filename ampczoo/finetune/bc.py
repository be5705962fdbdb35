"""``ampczoo finetune bc``: an SB3 actor-critic whose actor is first trained by behaviour
cloning on a demonstration store (:mod:`ampczoo.data`), then fine-tuned online.

The agent acts through :class:`~ampczoo.finetune.residual_env.ResidualPolicyEnv` with no base
(the centre c of the action range) and scale s = half the range, so its action r in
[-1, 1]^n is the env action c + s r, and the trained policy is a ``residual_rl`` checkpoint
with ``base=""``. Behaviour cloning: MSE between the actor's deterministic output and the
expert's first input u*_0 (``u_seq[:, 0]`` of the store) mapped to (u*_0 - c) / s (clipped to
±0.98), over ``bc_epochs`` passes; the input statistics are the demonstrations'.

``preload`` (SAC / TD3): before online training, up to ``preload_episodes`` stored episodes
are replayed in the env from their reset seed with their stored applied actions (``action``,
else u*_0), and every transition (with the env's own reward) goes into the replay buffer; an
episode whose replayed observations leave the stored ones (atol 1e-6) is cut there.

A store collected on another env than ``--env`` is a ValueError.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ampczoo.finetune.train import (
    RLConfig,
    Run,
    make_base_env,
    prepare_out,
    residual_env,
    train_online,
)

#: targets of behaviour cloning are clipped to this (tanh saturates at ±1)
BC_TARGET_LIMIT = 0.98


@dataclass(frozen=True)
class BCRunConfig(RLConfig):
    """``ampczoo finetune bc``: SB3 actor-critic initialised by behaviour cloning on a
    demonstration store, then fine-tuned online (see :mod:`ampczoo.finetune.bc`)."""

    data: str = ""
    """episode store (Zarr) of demonstrations collected on ``env``"""
    bc_epochs: int = 20
    """passes of behaviour cloning over the demonstrations"""
    bc_learning_rate: float = 1e-3
    """Adam learning rate of behaviour cloning"""
    preload: bool = False
    """replay the demonstrations into the replay buffer before online training (SAC, TD3)"""
    preload_episodes: int = 100
    """most demonstration episodes replayed by ``preload``"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.data:
            raise ValueError("data must name a demonstration store (--data PATH)")
        if self.bc_epochs < 0 or not 0 < self.bc_learning_rate < 1:
            raise ValueError("bc_epochs must be >= 0 and bc_learning_rate in (0, 1)")
        if self.preload and self.algo == "ppo":
            raise ValueError("preload needs a replay buffer: algo sac or td3, not ppo")
        if self.preload_episodes <= 0:
            raise ValueError(f"preload_episodes must be > 0, got {self.preload_episodes}")


def read_demonstrations(path: str | Path, env_id: str) -> tuple[np.ndarray, np.ndarray, Any]:
    """(obs (T, obs_dim), u*_0 (T, action_dim), store) of a store collected on ``env_id``;
    ValueError when it was collected on another env, FileNotFoundError when absent."""
    from ampczoo.data.store import EpisodeStore

    store = EpisodeStore(path, mode="r")
    recorded = store.attrs.get("env")
    if recorded != env_id:
        raise ValueError(
            f"demonstration store {path} was collected on {recorded!r}, not {env_id!r}"
        )
    if store.n_samples == 0:
        raise ValueError(f"demonstration store {path} holds no samples")
    return store.read("obs"), store.read("u_seq")[:, 0], store


def bc_targets(actions: np.ndarray, centre: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Expert actions (T, n) in env units -> agent actions (T, n) in [-0.98, 0.98]."""
    return np.clip((actions - centre) / scale, -BC_TARGET_LIMIT, BC_TARGET_LIMIT)


def deterministic_output(model: Any, algo: str, x: Any) -> Any:
    """The actor's deterministic output in [-1, 1] for wrapped observations ``x`` (B, D)
    (a differentiable torch tensor)."""
    import torch

    from ampczoo.finetune.sb3 import SQUASH, actor_parts

    extractor, body, head = actor_parts(model, algo)
    out = head(body(extractor(x)))
    return torch.tanh(out) if SQUASH[algo] == "tanh" else torch.clamp(out, -1.0, 1.0)


def behaviour_cloning(
    model: Any,
    algo: str,
    inputs: np.ndarray,
    targets: np.ndarray,
    epochs: int,
    learning_rate: float,
    batch_size: int = 256,
    seed: int = 0,
) -> float:
    """Fit the actor's deterministic output to ``targets`` (T, n) on ``inputs`` (T, D) with
    Adam (MSE); returns the last epoch's mean loss. TD3's target actor is synchronised."""
    import torch

    from ampczoo.finetune.sb3 import actor_parts

    _, body, head = actor_parts(model, algo)
    params = list(body.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=learning_rate)
    x = torch.as_tensor(inputs, dtype=torch.float32)
    y = torch.as_tensor(targets, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    loss_mean = float("nan")
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        losses = []
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            loss = torch.mean((deterministic_output(model, algo, x[idx]) - y[idx]) ** 2)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        loss_mean = float(np.mean(losses))
    if algo == "td3":
        model.policy.actor_target.load_state_dict(model.policy.actor.state_dict())
    return loss_mean


def preload_demonstrations(model: Any, env: Any, store: Any, max_episodes: int) -> int:
    """Replay stored episodes in ``env`` (a no-base :class:`ResidualPolicyEnv`) into the
    model's replay buffer; returns the number of transitions added."""
    added = 0
    for episode in store.episodes_sorted()[:max_episodes]:
        data = episode.data
        actions = data["action"] if "action" in data else data["u_seq"][:, 0]
        obs, _ = env.reset(seed=episode.seed)
        if not np.allclose(obs[: data["obs"].shape[1]], data["obs"][0], atol=1e-6):
            continue
        for k, action in enumerate(actions):
            agent_action = np.clip((action - env.base.constant) / env.scale, -1.0, 1.0)
            next_obs, reward, terminated, truncated, info = env.step(agent_action)
            info = {**info, "TimeLimit.truncated": bool(truncated and not terminated)}
            model.replay_buffer.add(
                obs[None],
                next_obs[None],
                agent_action[None].astype(np.float32),
                np.array([reward]),
                np.array([terminated or truncated]),
                [info],
            )
            added += 1
            obs = next_obs
            following = data["obs"][k + 1] if k + 1 < len(actions) else None
            if terminated or truncated or following is None:
                break
            if not np.allclose(obs[: len(following)], following, atol=1e-6):
                break
    return added


def run_bc(cfg: BCRunConfig) -> Path:
    """BC-initialise, then train online; returns the run folder (as ``finetune residual``)."""
    obs, expert, store = read_demonstrations(cfg.data, cfg.env)
    out, resuming = prepare_out(cfg, "bc")
    probe = residual_env(cfg.env, None, 1.0, 0.0, monitor=False)
    low, high = probe.low, probe.high
    centre, scale = (low + high) / 2, (high - low) / 2
    probe.scale = scale
    if obs.shape[1] + len(low) != probe.observation_space.shape[0]:
        raise ValueError(
            f"demonstration observations have {obs.shape[1]} values, the env {cfg.env} "
            f"{probe.observation_space.shape[0] - len(low)}"
        )
    inputs = np.concatenate([obs, np.broadcast_to(centre, (len(obs), len(centre)))], axis=1)
    stats = (inputs.mean(0), inputs.std(0))
    run = Run(out, "", scale, low, high, make_base_env(cfg.env), None)

    def initialise(model: Any) -> None:
        loss = behaviour_cloning(
            model,
            cfg.algo,
            inputs,
            bc_targets(expert, centre, scale),
            cfg.bc_epochs,
            cfg.bc_learning_rate,
            cfg.batch_size,
            cfg.seed,
        )
        print(f"behaviour cloning: {cfg.bc_epochs} epochs on {len(inputs)} samples, MSE {loss:.4g}")
        if cfg.preload:
            n = preload_demonstrations(model, probe, store, cfg.preload_episodes)
            print(f"preloaded {n} demonstration transitions into the replay buffer")

    return train_online(cfg, run, resuming, initialise, stats_env=probe, stats=stats)
