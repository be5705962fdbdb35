"""Input-sequence normalisation modes of the Normalizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ampczoo.nn.normalization import MinMaxNormalizer, Normalizer, action_scale


def stats_of(u_seq: np.ndarray, obs: np.ndarray) -> dict:
    def s(a):
        return {"mean": a.mean(0), "std": a.std(0) + 1e-6, "min": a.min(0), "max": a.max(0)}

    return {"obs": s(obs), "u_seq": s(u_seq)}


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    decay = 0.7 ** np.arange(5)[:, None]  # late steps ~100x smaller, like MPC sequences
    u = np.clip(rng.normal(size=(500, 5, 7)) * 2.0, -2.3, 2.3) * decay
    return u, rng.normal(size=(500, 3))


def test_joint_range_maps_into_unit_interval_and_keeps_zero(data):
    u, obs = data
    norm = Normalizer(3, 5)
    norm.set_stats(stats_of(u, obs), "joint_range")
    x = norm.u(torch.tensor(u, dtype=torch.float32)).reshape(-1, 5, 7).numpy()
    assert np.abs(x).max() <= 1.0 + 1e-6
    np.testing.assert_allclose(np.abs(x).max(axis=(0, 1)), 1.0, atol=1e-6)  # per joint
    zero = norm.u(torch.zeros(1, 5, 7))
    np.testing.assert_allclose(zero.numpy(), 0.0)
    # one scale per joint: the late steps keep their small magnitude
    assert np.abs(x[:, -1]).mean() < 0.5 * np.abs(x[:, 0]).mean()
    back = norm.u_inverse(torch.tensor(x.reshape(500, -1)))
    np.testing.assert_allclose(back.numpy(), u, atol=1e-5)


def test_element_zscore_gives_unit_variance_per_element(data):
    u, obs = data
    norm = Normalizer(3, 5)
    norm.set_stats(stats_of(u, obs), "element_zscore")
    x = norm.u(torch.tensor(u, dtype=torch.float32)).reshape(-1, 5, 7).numpy()
    np.testing.assert_allclose(x.std(0), 1.0, atol=1e-3)


def test_unknown_mode_raises(data):
    u, obs = data
    with pytest.raises(ValueError, match="action_normalization"):
        action_scale(stats_of(u, obs)["u_seq"], "minmax")


def test_min_max_normalizer_round_trip():
    """Data map into [-1, 1] (min -> -1, max -> +1), the inverse recovers them, constant
    elements map to 0, and bad ranges are refused."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)) * [1.0, 10.0, 0.0] + [0.0, -5.0, 2.5]
    norm = MinMaxNormalizer(3)
    norm.set_range(x.min(0), x.max(0))
    t = torch.as_tensor(x, dtype=torch.float32)
    y = norm(t)
    torch.testing.assert_close(y[:, :2].min(0).values, torch.tensor([-1.0, -1.0]))
    torch.testing.assert_close(y[:, :2].max(0).values, torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(y[:, 2], torch.zeros(50))
    torch.testing.assert_close(norm.inverse(y), t, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="min > max"):
        norm.set_range([0.0, 1.0, 0.0], [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="NaN"):
        norm.set_range([0.0, np.nan, 0.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="shape"):
        norm.set_range([0.0, 0.0], [1.0, 1.0])
