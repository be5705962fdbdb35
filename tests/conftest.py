"""Test-session setup and shared tiny models.

MuJoCo's offscreen GL backend is chosen before any test imports mujoco, and torch runs on one
thread (two threads on a shared 2-core machine can be 10-40x slower for small nets; set
AMPCZOO_TEST_THREADS to change it)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from ampczoo.envs.rendering import configure_mujoco_gl
from ampczoo.policies.dampc import DAMPCConfig, DAMPCPolicy
from ampczoo.policies.lsm import LSMConfig, LSMPolicy

configure_mujoco_gl()
torch.set_num_threads(int(os.environ.get("AMPCZOO_TEST_THREADS", "1")))

TOY_OBS_DIM, TOY_N = 4, 2


def toy_batch(n: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """2-mode toy data: u_seq is all +1 or all -1 with probability 1/2, whatever the obs."""
    obs = rng.normal(size=(n, TOY_OBS_DIM)).astype(np.float32)
    sign = rng.choice([-1.0, 1.0], size=(n, 1, 1)).astype(np.float32)
    return {
        "obs": torch.from_numpy(obs),
        "u_seq": torch.from_numpy(np.ones((n, TOY_N, 7), np.float32) * sign),
    }


def fit(policy, steps: int, lr: float = 3e-3, seed: int = 0):
    """A few hundred Adam steps on fresh toy batches."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    for _ in range(steps):
        loss, _ = policy.loss(toy_batch(256, rng))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return policy.eval()


@pytest.fixture(scope="session")
def toy_dampc() -> DAMPCPolicy:
    cfg = DAMPCConfig(
        obs_dim=TOY_OBS_DIM,
        horizon=TOY_N,
        hidden_dim=64,
        num_layers=2,
        time_hidden_dim=32,
        obs_hidden_dim=32,
        obs_features="raw",
    )
    torch.manual_seed(0)  # the initial weights must not depend on which tests ran before
    return fit(DAMPCPolicy(cfg), 400)


@pytest.fixture(scope="session")
def toy_lsm() -> LSMPolicy:
    cfg = LSMConfig(
        obs_dim=TOY_OBS_DIM, horizon=TOY_N, hidden_dim=32, num_layers=2, obs_features="raw"
    )
    torch.manual_seed(0)
    return fit(LSMPolicy(cfg), 200)
