"""Schedule, sampling loop vs diffusers, early stopping and gradient guidance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ampczoo.nn import diffusion


@pytest.mark.parametrize("T", [5, 40])
def test_schedule_zero_terminal_snr_and_monotone(T):
    a = diffusion.alphas_cumprod(T)
    assert a.shape == (T,)
    assert float(a[-1]) == 0.0
    assert torch.all(a[1:] < a[:-1]) and 0 < float(a[0]) < 1
    w = diffusion.min_snr_weight(a, gamma=5.0)
    assert float(w.max()) <= 5.0 and float(w[-1]) == 0.0
    assert float(diffusion.min_snr_weight(a, 5.0, floor=0.1)[-1]) == pytest.approx(0.1)


def _toy_model(x: torch.Tensor, t: int) -> torch.Tensor:
    return torch.tanh(1.3 * x + 0.1 * t) - 0.2


@pytest.mark.parametrize("T", [5, 40])
def test_ddpm_loop_equals_diffusers(T):
    sched = diffusion.make_scheduler("ddpm", T)
    sched.set_timesteps(T)
    tables = diffusion.step_tables("ddpm", T, T)
    g = torch.Generator().manual_seed(3)
    x = torch.randn((6, 14), generator=g)
    ref = x.clone()
    for t in sched.timesteps:
        ref = sched.step(_toy_model(ref, int(t)), t, ref, generator=g).prev_sample
    g2 = torch.Generator().manual_seed(3)
    x = torch.randn((6, 14), generator=g2)
    ours = diffusion.denoise(lambda xk, k: _toy_model(xk, tables.t[k]), tables, x, generator=g2)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_loop_equals_diffusers(eta):
    T, K = 40, 5
    sched = diffusion.make_scheduler("ddim", T)
    sched.set_timesteps(K)
    tables = diffusion.step_tables("ddim", T, K, eta)
    g = torch.Generator().manual_seed(4)
    x = torch.randn((6, 14), generator=g)
    noise = torch.randn((K, 6, 14), generator=g)
    ref = x.clone()
    for k, t in enumerate(sched.timesteps):
        ref = sched.step(
            _toy_model(ref, int(t)), t, ref, eta=eta, variance_noise=noise[k]
        ).prev_sample
    ours = diffusion.denoise(lambda xk, k: _toy_model(xk, tables.t[k]), tables, x, noise=noise)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_early_stop_makes_late_steps_deterministic():
    """With ES (N_I = 5, i_min = 3) the noise of steps i <= 3 has no effect at all; without
    ES it changes the result."""
    K = 5
    tables = diffusion.step_tables("ddpm", K, K)
    assert diffusion.early_stop_min_step(K) == 3
    g = torch.Generator().manual_seed(0)
    x, noise = torch.randn((4, 14), generator=g), torch.randn((K, 4, 14), generator=g)
    other = noise.clone()
    late = [k for k in range(K) if tables.i[k] <= 3]
    assert late == [2, 3, 4]
    other[late] = torch.randn((len(late), 4, 14), generator=g)

    def run(n, es):
        return diffusion.denoise(lambda xk, k: _toy_model(xk, k), tables, x, noise=n, early_stop=es)

    assert torch.equal(run(noise, True), run(other, True))
    assert not torch.allclose(run(noise, False), run(other, False))
    # the early, noisy steps still inject noise under ES
    early = noise.clone()
    early[0] += 1.0
    assert not torch.allclose(run(noise, True), run(early, True))


def test_guidance_formula_is_eps_shift():
    """x0_g = x0 + s (x_prev - x / sqrt(a)) is the x0 form of eps + s eps_prev."""
    g = torch.Generator().manual_seed(1)
    x0, x, prev = (torch.randn(3, 8, generator=g) for _ in range(3))
    a, s = 0.4, 0.7
    eps = (x - a**0.5 * x0) / (1 - a) ** 0.5
    eps_g = eps + s * (x - a**0.5 * prev) / (1 - a) ** 0.5
    expected = (x - (1 - a) ** 0.5 * eps_g) / a**0.5
    torch.testing.assert_close(diffusion.guide_x0(x0, x, prev, a, s), expected)
    assert diffusion.guide_x0(x0, x, prev, 0.0, s) is x0  # zero SNR: unguided


def test_guidance_pulls_toward_previous_sequence(toy_dampc):
    obs = np.zeros(toy_dampc.config.obs_dim, np.float32)
    prev = np.ones((toy_dampc.config.horizon, 7))

    def dist(scale):
        g = torch.Generator().manual_seed(0)
        seqs = toy_dampc.sample(obs, 200, prev_sequence=prev, guidance_scale=scale, generator=g)
        return float(np.mean(np.linalg.norm((seqs - prev).reshape(200, -1), axis=1)))

    assert dist(0.3) < 0.5 * dist(0.0)
