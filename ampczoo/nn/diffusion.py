"""Noise schedules: a fast, vectorised x0-prediction sampler (DDPM / DDIM) for DAMPC, and
Diffusion Policy's epsilon-prediction schedulers (:func:`make_epsilon_scheduler`).

The schedule comes from ``diffusers`` (cosine "squaredcos_cap_v2" betas, rescaled to zero
terminal SNR after Lin et al. 2024, ``prediction_type="sample"``). Calling the schedulers'
``step()`` in the control loop costs tens of microseconds of Python per step, so
:func:`step_tables` reads the coefficients once and :func:`denoise` runs the loop itself.
``tests/policies/test_diffusion.py`` checks that the loop equals diffusers' ``step()``.

Every step of both samplers has the form (K = number of inference steps, k = 0..K-1, t_k the
training timestep of step k, a = alphas_cumprod)::

    x_{k+1} = c_x0[k] * x0_hat(x_k, t_k) + c_xt[k] * x_k + sigma[k] * z_k,   z_k ~ N(0, I)

DDPM (variance "fixed_small"): c_x0 = sqrt(a_prev) beta_t / (1 - a_t), c_xt = sqrt(alpha_t)
(1 - a_prev) / (1 - a_t), sigma = sqrt((1 - a_prev) / (1 - a_t) beta_t) with
alpha_t = a_t / a_prev, beta_t = 1 - alpha_t (paper Eq. 8). DDIM: with
d = sqrt(1 - a_prev - sigma^2) and sigma = eta sqrt((1 - a_prev)/(1 - a_t) (1 - a_t/a_prev)),
c_xt = d / sqrt(1 - a_t), c_x0 = sqrt(a_prev) - d sqrt(a_t) / sqrt(1 - a_t).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

SAMPLERS = ("ddpm", "ddim")
BETA_SCHEDULE = "squaredcos_cap_v2"


def make_scheduler(
    sampler: str,
    num_train_timesteps: int,
    clip_sample: bool = False,
    clip_sample_range: float = 1.0,
):
    """The diffusers scheduler DAMPC trains with / samples from (diffusers imported here)."""
    from diffusers.schedulers.scheduling_ddim import DDIMScheduler
    from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    kwargs = dict(
        num_train_timesteps=num_train_timesteps,
        beta_schedule=BETA_SCHEDULE,
        rescale_betas_zero_snr=True,
        prediction_type="sample",
        clip_sample=clip_sample,
        clip_sample_range=clip_sample_range,
        timestep_spacing="trailing",
    )
    if sampler == "ddpm":
        return DDPMScheduler(variance_type="fixed_small", **kwargs)
    return DDIMScheduler(set_alpha_to_one=True, **kwargs)


def make_epsilon_scheduler(sampler: str, num_train_timesteps: int = 100, clip_sample: bool = True):
    """Diffusion Policy's scheduler (Chi et al. 2023): epsilon prediction, squared-cosine
    betas (no zero-SNR rescaling), DDPM variance "fixed_small", predicted x0 clipped to
    [-1, 1] (actions are min-max normalised), DDIM with ``set_alpha_to_one`` and "leading"
    timestep spacing; the samplers' ``step()`` is used as is (diffusers imported here)."""
    from diffusers.schedulers.scheduling_ddim import DDIMScheduler
    from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    kwargs = dict(
        num_train_timesteps=num_train_timesteps,
        beta_schedule=BETA_SCHEDULE,
        prediction_type="epsilon",
        clip_sample=clip_sample,
        clip_sample_range=1.0,
        timestep_spacing="leading",
    )
    if sampler == "ddpm":
        return DDPMScheduler(variance_type="fixed_small", **kwargs)
    return DDIMScheduler(set_alpha_to_one=True, steps_offset=0, **kwargs)


def alphas_cumprod(num_train_timesteps: int) -> torch.Tensor:
    """(T,) float32 cumulative alpha products; index T-1 is exactly 0 (zero terminal SNR)."""
    return _alphas_cumprod(num_train_timesteps).clone()


@functools.lru_cache(maxsize=8)
def _alphas_cumprod(num_train_timesteps: int) -> torch.Tensor:
    return make_scheduler("ddpm", num_train_timesteps).alphas_cumprod.clone().float()


def min_snr_weight(a: torch.Tensor, gamma: float, floor: float = 0.0) -> torch.Tensor:
    """Min-SNR-gamma weight of an x0-prediction loss: max(min(SNR, gamma), floor) with
    SNR = a / (1 - a). The raw weight is 0 at the zero-SNR terminal step, which would leave
    the first denoising step untrained; ``floor`` keeps it learning."""
    snr = a / (1.0 - a).clamp_min(1e-12)
    return snr.clamp(max=gamma).clamp(min=floor)


@dataclass(frozen=True)
class StepTables:
    """Per inference step k (python floats, cheap to use in the loop): training timestep
    ``t``, ``a`` = alphas_cumprod[t], coefficients ``c_x0``, ``c_xt``, noise std ``sigma``
    (before early stopping) and the paper's step number ``i`` = K - k (K..1)."""

    t: tuple[int, ...]
    a: tuple[float, ...]
    c_x0: tuple[float, ...]
    c_xt: tuple[float, ...]
    sigma: tuple[float, ...]
    i: tuple[int, ...]

    @property
    def num_steps(self) -> int:
        return len(self.t)


@functools.lru_cache(maxsize=32)
def step_tables(
    sampler: str, num_train_timesteps: int, num_inference_steps: int, eta: float = 0.0
) -> StepTables:
    """Coefficient tables read from the diffusers scheduler (``eta``: DDIM only)."""
    sched = make_scheduler(sampler, num_train_timesteps)
    sched.set_timesteps(num_inference_steps)
    ac = sched.alphas_cumprod.double()
    ts = [int(t) for t in sched.timesteps]
    stride = num_train_timesteps // num_inference_steps
    rows = []
    for t in ts:
        prev = t - stride
        a_t, a_p = float(ac[t]), float(ac[prev]) if prev >= 0 else 1.0
        rows.append((_ddpm_coefs if sampler == "ddpm" else _ddim_coefs)(a_t, a_p, eta))
    c_x0, c_xt, sigma = (tuple(r[j] for r in rows) for j in range(3))
    K = len(ts)
    return StepTables(
        tuple(ts),
        tuple(float(ac[t]) for t in ts),
        c_x0,
        c_xt,
        sigma,
        tuple(K - k for k in range(K)),
    )


def _ddpm_coefs(a_t: float, a_p: float, eta: float) -> tuple[float, float, float]:
    alpha, beta_t = a_t / a_p, 1.0 - a_t
    beta = 1.0 - alpha
    var = max((1.0 - a_p) / beta_t * beta, 1e-20) if a_p < 1.0 else 0.0
    return math.sqrt(a_p) * beta / beta_t, math.sqrt(alpha) * (1.0 - a_p) / beta_t, math.sqrt(var)


def _ddim_coefs(a_t: float, a_p: float, eta: float) -> tuple[float, float, float]:
    sigma = eta * math.sqrt((1.0 - a_p) / (1.0 - a_t) * (1.0 - a_t / a_p))
    d = math.sqrt(max(1.0 - a_p - sigma**2, 0.0))
    return (
        math.sqrt(a_p) - d * math.sqrt(a_t) / math.sqrt(1.0 - a_t),
        d / math.sqrt(1.0 - a_t),
        sigma,
    )


def early_stop_min_step(num_steps: int, fraction: float = 0.75) -> int:
    """i_min = floor(fraction * N_I) of paper Eq. 14: no noise at steps i <= i_min."""
    return int(math.floor(fraction * num_steps))


def denoise(
    model: Callable[[torch.Tensor, int], torch.Tensor],
    tables: StepTables,
    x: torch.Tensor,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    x_prev: torch.Tensor | None = None,
    guidance_scale: float = 0.0,
    early_stop: bool = False,
    early_stop_fraction: float = 0.75,
    clip: float | None = None,
) -> torch.Tensor:
    """Run the reverse process from x (B, P) = x_{N_I} (pure noise) to x_0 (B, P).

    model(x_k (B, P), k) -> x0 prediction (B, P) at inference step k (the caller binds the
    conditioning). noise: optional (K, B, P) per-step noise (else drawn from ``generator``,
    in step order, only for steps with sigma > 0). x_prev: (B, P) or (P,) previous sequence
    (already shifted and normalised) for gradient guidance, see :func:`guide_x0`. early_stop:
    no noise at steps i <= floor(early_stop_fraction * K) (paper Eq. 14). clip: clamp x0
    predictions to [-clip, clip] (diffusers' clip_sample)."""
    i_min = early_stop_min_step(tables.num_steps, early_stop_fraction) if early_stop else 0
    for k in range(tables.num_steps):
        x0 = model(x, k)
        if x_prev is not None and guidance_scale != 0.0:
            x0 = guide_x0(x0, x, x_prev, tables.a[k], guidance_scale)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        out = torch.add(x0 * tables.c_x0[k], x, alpha=tables.c_xt[k])
        sigma = tables.sigma[k] if tables.i[k] > i_min else 0.0
        if sigma > 0.0:
            z = (
                noise[k]
                if noise is not None
                else torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            )
            out = out + sigma * z
        x = out
    return x


def guide_x0(
    x0: torch.Tensor, x: torch.Tensor, x_prev: torch.Tensor, a: float, scale: float
) -> torch.Tensor:
    """Gradient guidance toward the previous sequence (paper Eq. 11-13), in x0 form.

    Derivation. The score of the noised sample is grad log p(x_i) = -eps / sqrt(1 - a_i)
    (Eq. 10), so adding a log-prior log p(o | x_i) to it (Eq. 11-12) changes the noise
    prediction by -sqrt(1 - a_i) grad log p(o | x_i). As prior we take the forward-process
    marginal of the previous solution, p(o | x_i) = N(x_i; sqrt(a_i) x_prev, (1 - a_i) I)
    (Eq. 13 writes mean x_prev; the sqrt(a_i) factor makes it the density of x_i given
    x_0 = x_prev, which is what x_i is compared to at step i), whose gradient is analytic:
    -(x_i - sqrt(a_i) x_prev) / (1 - a_i). Hence, with scale s,

        eps_g = eps_theta + s (x_i - sqrt(a_i) x_prev) / sqrt(1 - a_i)

    and, mapping back with Eq. 9 (x0 = (x_i - sqrt(1 - a_i) eps) / sqrt(a_i)),

        x0_g = x0_theta + s (x_prev - x_i / sqrt(a_i)).

    At the zero-SNR step (a_i = 0) the prior's mean is 0 for any x_prev: it carries no
    information about x_prev, so the step is left unguided (no division by zero). No
    autograd is needed. The deviations from Eq. 13 (prior mean, sqrt(1 - a_i) factor, scale,
    zero-SNR step, shifted target) are tabulated in docs/results/kuka.md.
    x0, x: (B, P); x_prev: (B, P) or (P,); returns (B, P)."""
    if a <= 1e-8:
        return x0
    return x0 + scale * (x_prev - x / math.sqrt(a))
