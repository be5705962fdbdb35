"""DAMPC: diffusion-based approximate MPC (paper Sec. IV-B, IV-C, V-C).

A denoiser f_theta^{x0}(x_i, i, obs) predicts the clean, normalised input sequence x_0
(N*7 flattened) from a noised one. Architecture: sinusoidal step embedding -> MLP (temporal
encoder), observation -> MLP (observation encoder), then an MLP trunk whose first layer adds
both encodings to a projection of x_i (equivalent to concatenating them, but the conditioning
part is computed once per ``act`` for all steps). Paper: trunk 7 x 1000 (6.6 M parameters,
reproduced by ``hidden_dim=1000, num_layers=7``); default here 3 x 256 (0.31 M) so that
``act`` at batch 1 with 5 steps stays around 1 ms on a CPU (4 x 512: 1.1 M, ~1.4 ms).
With few CPU cores shared with other work, run ``torch.set_num_threads(1)`` in the control
process: intra-op threads at batch 1 only add contention.

Training: DDPM, cosine schedule rescaled to zero terminal SNR, N_I = 5 steps, x0 ("sample")
prediction, Min-SNR-gamma weighting (gamma = 5; weight min(SNR, gamma), floored so the zero-
SNR step still learns), EMA of the weights (the training loop's job).

Inference (all per-call options of :meth:`DAMPCPolicy.act` / :meth:`DAMPCPolicy.sample`):
DDPM or DDIM, gradient guidance toward the previous sequence (see
:func:`~ampczoo.nn.diffusion.guide_x0`), early stopping of the noise (Eq. 14), L
parallel samples with selection "none" | "cost" (lowest MPC cost) | "safe" (random
constraint-satisfying sample) | "cluster" (densest cluster of the samples).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ampczoo.core.checkpoint import PolicyConfig, PretrainedPolicy, check_obs
from ampczoo.core.onnx import GraphModule, GraphRunner, OnnxGraph
from ampczoo.nn import diffusion
from ampczoo.nn.features import ObservationInput, check_obs_features, unrolled_solves
from ampczoo.nn.normalization import Normalizer, check_action_normalization
from ampczoo.nn.sequence import shift_sequence

ACTION_DIM = 7
SELECTIONS = ("none", "cost", "safe", "cluster")
_UNSET: Any = object()


@dataclass(frozen=True)
class DAMPCConfig(PolicyConfig):
    """DAMPC configuration: the diffusion-based approximate MPC of the paper (Sec. IV-B, IV-C,
    V-C), a denoiser of the MPC input sequence conditioned on the observation."""

    type: str = "dampc"
    obs_dim: int = 16
    """flat observation size (16, or 20 with obstacle)"""
    obs_features: Literal["kinematic", "raw"] = "kinematic"
    """network input: "kinematic" (the normalised observation plus
    :class:`~ampczoo.nn.features.KukaFeatures`, FK, pose error and Jacobian terms) or "raw"
    (the paper's input, the normalised observation only)"""
    action_normalization: Literal["joint_range", "element_zscore"] = "joint_range"
    """normalisation of the input sequence: "joint_range" or "element_zscore" (see
    :mod:`~ampczoo.nn.normalization`)"""
    horizon: int = 20
    """N, length of the predicted input sequence [steps]"""
    hidden_dim: int = 256
    """trunk MLP width (paper 1000)"""
    num_layers: int = 3
    """number of hidden layers of the trunk MLP (paper 7)"""
    time_embed_dim: int = 32
    """size of the sinusoidal step embedding (even)"""
    time_hidden_dim: int = 128
    """width of the temporal encoder (2-layer MLP)"""
    obs_hidden_dim: int = 128
    """width of the observation encoder (2-layer MLP)"""
    num_train_timesteps: int = 5
    """N_I, diffusion steps of training (paper 5; 40 also supported)"""
    num_inference_steps: int = 5
    """steps used to sample (divides num_train_timesteps)"""
    sampler: Literal["ddpm", "ddim"] = "ddpm"
    """sampling method of inference: "ddpm" or "ddim" (DDIM noise: ddim_eta)"""
    ddim_eta: float = 0.0
    """DDIM noise (0 = deterministic DDIM)"""
    clip_sample: bool = False
    """clamp x0 predictions to +-clip_sample_range"""
    clip_sample_range: float = 5.0
    """clamp range of the x0 predictions (normalised units)"""
    snr_gamma: float = 5.0
    """Min-SNR gamma of the loss weight min(SNR, gamma)"""
    snr_weight_floor: float = 0.1
    """lower bound of the loss weight (the raw Min-SNR weight is 0 at the zero-SNR step)"""
    guidance_scale: float = 0.3
    """scale s of the gradient guidance toward the previous sequence (0 = off)"""
    early_stop: bool = True
    """early stopping of the noise (Eq. 14): no noise for steps i <= floor(early_stop_fraction
    * K)"""
    early_stop_fraction: float = 0.75
    """fraction of the K sampling steps without noise when early_stop is on, in [0, 1]"""
    num_samples: int = 100
    """L, samples drawn when a selection other than "none" is used (and the default of
    :meth:`DAMPCPolicy.sample`)"""
    selection: Literal["none", "cost", "safe", "cluster"] = "none"
    """default selection rule among the L samples: "none", "cost" (lowest MPC cost), "safe"
    (random constraint-satisfying sample) or "cluster" (densest cluster of the samples)"""
    num_clusters: int = 4
    """clusters of the "cluster" selection rule"""
    dt: float = 0.1
    """step of the predicted sequence (Euler step of the kinematic rollout for "safe"/"cost")
    [s]"""
    control_dt: float | None = None
    """period between act() calls [s] (None = dt); the guidance target is the previous
    sequence advanced by control_dt / dt steps. Change it on a loaded policy through the
    ``control_dt`` attribute."""

    def __post_init__(self) -> None:
        for name in (
            "obs_dim",
            "horizon",
            "hidden_dim",
            "num_layers",
            "time_embed_dim",
            "time_hidden_dim",
            "obs_hidden_dim",
            "num_train_timesteps",
            "num_inference_steps",
            "num_samples",
            "num_clusters",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        check_obs_features(self.obs_features, self.obs_dim)
        check_action_normalization(self.action_normalization)
        if self.time_embed_dim % 2:
            raise ValueError("time_embed_dim must be even")
        if self.num_train_timesteps % self.num_inference_steps:
            raise ValueError("num_inference_steps must divide num_train_timesteps")
        _check_choice("sampler", self.sampler, diffusion.SAMPLERS)
        _check_choice("selection", self.selection, SELECTIONS)
        if not 0.0 <= self.early_stop_fraction <= 1.0:
            raise ValueError(
                f"early_stop_fraction must be in [0, 1], got {self.early_stop_fraction}"
            )
        for name in ("ddim_eta", "snr_weight_floor", "guidance_scale"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.control_dt is not None and not self.control_dt > 0:
            raise ValueError(f"control_dt must be > 0 or None, got {self.control_dt}")
        for name in ("clip_sample_range", "snr_gamma", "dt"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """t (B,) step indices -> (B, dim) [sin | cos] features."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    arg = t.float()[:, None] * freqs[None]
    return torch.cat([arg.sin(), arg.cos()], dim=-1)


class Denoiser(nn.Module):
    """f_theta^{x0}: (x_i (B, P), i (B,), obs_n (B, D)) -> x0 (B, P), P = N * 7."""

    def __init__(self, c: DAMPCConfig, obs_in_dim: int):
        super().__init__()
        P = c.horizon * ACTION_DIM
        self.time_dim = c.time_embed_dim
        self.time_mlp = nn.Sequential(
            nn.Linear(c.time_embed_dim, c.time_hidden_dim),
            nn.SiLU(),
            nn.Linear(c.time_hidden_dim, c.time_hidden_dim),
            nn.SiLU(),
        )
        self.obs_mlp = nn.Sequential(
            nn.Linear(obs_in_dim, c.obs_hidden_dim),
            nn.SiLU(),
            nn.Linear(c.obs_hidden_dim, c.obs_hidden_dim),
            nn.SiLU(),
        )
        self.in_x = nn.Linear(P, c.hidden_dim)
        self.in_time = nn.Linear(c.time_hidden_dim, c.hidden_dim, bias=False)
        self.in_obs = nn.Linear(c.obs_hidden_dim, c.hidden_dim, bias=False)
        self.hidden = nn.ModuleList(
            nn.Linear(c.hidden_dim, c.hidden_dim) for _ in range(c.num_layers - 1)
        )
        self.out = nn.Linear(c.hidden_dim, P)

    def time_features(self, t: torch.Tensor) -> torch.Tensor:
        """t (K,) -> (K, H) time part of the first layer's pre-activation."""
        return self.in_time(self.time_mlp(sinusoidal_embedding(t, self.time_dim)))

    def obs_features(self, obs_n: torch.Tensor) -> torch.Tensor:
        """obs_n (B, D) -> (B, H) observation part of the first layer's pre-activation."""
        return self.in_obs(self.obs_mlp(obs_n))

    def trunk_params(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight, bias) of the trunk layers, in order (fetched once per sampling call)."""
        return [(m.weight, m.bias) for m in (self.in_x, *self.hidden, self.out)]

    def trunk(
        self,
        x: torch.Tensor,
        cond: torch.Tensor,
        params: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """x (B, P), cond (B, H) or (H,) -> x0 prediction (B, P). F.linear on pre-fetched
        parameters skips nn.Module call and attribute overhead in the sampling loop."""
        (w0, b0), *rest = params or self.trunk_params()
        h = F.silu(F.linear(x, w0, b0) + cond)
        for w, b in rest[:-1]:
            h = F.silu(F.linear(h, w, b))
        return F.linear(h, *rest[-1])

    def forward(self, x: torch.Tensor, t: torch.Tensor, obs_n: torch.Tensor) -> torch.Tensor:
        return self.trunk(x, self.time_features(t) + self.obs_features(obs_n))


class DAMPCPolicy(PretrainedPolicy):
    """Diffusion approximate MPC. ``act(obs)`` applies u_0 of a sampled sequence and keeps
    the sequence for gradient guidance at the next call; ``reset()`` forgets it."""

    name = "dampc"
    config_class = DAMPCConfig
    default_ema_decay = 0.995
    config: DAMPCConfig

    def __init__(self, config: DAMPCConfig | None = None):
        super().__init__(config or DAMPCConfig())
        c = self.config
        self.normalizer = Normalizer(c.obs_dim, c.horizon, ACTION_DIM)
        self.obs_input = ObservationInput(c.obs_dim, c.obs_features)
        self.net = Denoiser(c, self.obs_input.dim)
        self.register_buffer(
            "alphas_cumprod", diffusion.alphas_cumprod(c.num_train_timesteps), persistent=False
        )
        self.prev_sequence: np.ndarray | None = None
        self.control_dt = c.dt if c.control_dt is None else c.control_dt
        self.rng = np.random.default_rng()
        self._generator: torch.Generator | None = None
        self._seed: int | None = None
        self._cost_expert: Any = None
        self._noise_buffer: torch.Tensor | None = None
        self._draw_rows: list[int] | None = None

    @classmethod
    def example_config(cls) -> DAMPCConfig:
        """A 2 x 32 denoiser over 4 steps, 4 samples for the selection rules (tests, docs)."""
        return DAMPCConfig(
            horizon=4,
            hidden_dim=32,
            num_layers=2,
            time_embed_dim=8,
            time_hidden_dim=16,
            obs_hidden_dim=16,
            num_samples=4,
            num_clusters=2,
        )

    @property
    def action_dim(self) -> int:
        return ACTION_DIM

    # ------------------------------------------------------------------ state
    def reset(self, seed: int | None = None) -> None:
        """Forget the previous sequence (no guidance at the next act); reseed if given."""
        self.prev_sequence = None
        if seed is not None:
            self.rng = np.random.default_rng(seed)
            self._seed = int(seed)
            self._generator = None

    def planned_inputs(self) -> tuple[np.ndarray, float] | None:
        """The sequence (N, 7) [rad/s] chosen at the last single-observation act and its step
        ``config.dt`` [s] (a copy of ``prev_sequence``); None after :meth:`reset`
        (:class:`~ampczoo.core.policy.PlansInputs`)."""
        if self.prev_sequence is None:
            return None
        return self.prev_sequence.copy(), float(self.config.dt)

    def _device(self) -> torch.device:
        return self.normalizer.obs_mean.device

    def generator(self) -> torch.Generator:
        """The policy's torch generator on its device (seeded by ``reset(seed)``)."""
        if self._generator is None or self._generator.device != self._device():
            self._generator = torch.Generator(self._device())
            if self._seed is None:
                self._generator.seed()
            else:
                self._generator.manual_seed(self._seed)
        return self._generator

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """obs (B, obs_dim) raw -> (B, obs_input.dim) network input."""
        return self.obs_input(obs, self.normalizer.obs(obs))

    # ------------------------------------------------------------------ training
    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Min-SNR-weighted x0 regression at a uniformly drawn step (global torch RNG)."""
        x0 = self.normalizer.u(batch["u_seq"])
        obs_n = self.encode(batch["obs"])
        t = torch.randint(0, self.config.num_train_timesteps, (len(x0),), device=x0.device)
        a = self.alphas_cumprod[t][:, None]
        x_t = a.sqrt() * x0 + (1.0 - a).sqrt() * torch.randn_like(x0)
        err = ((self.net(x_t, t, obs_n) - x0) ** 2).mean(dim=-1)
        w = diffusion.min_snr_weight(a[:, 0], self.config.snr_gamma, self.config.snr_weight_floor)
        loss = (w * err).mean()
        return loss, {"mse": float(err.detach().mean())}

    # ------------------------------------------------------------------ sampling
    @torch.inference_mode()
    def sample(
        self,
        obs: Any,
        num_samples: int | None = None,
        *,
        sampler: str | None = None,
        guidance_scale: float | None = None,
        early_stop: bool | None = None,
        prev_sequence: Any = _UNSET,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> np.ndarray:
        """Open-loop sequences: obs (D,) -> (L, N, 7), or (B, D) -> (B, L, N, 7) [rad/s].

        num_samples: L (default ``config.num_samples``). prev_sequence: (N, 7) [rad/s] to
        guide toward, used as is (default: the stored sequence of the last :meth:`act`,
        shifted by one step; None = no guidance). noise: optional (K+1, B*L, N*7) standard
        normal draws (x_{N_I} first, then one per step) instead of ``generator``."""
        arr, batched = check_obs(obs, self.config.obs_dim)
        L = int(num_samples or self.config.num_samples)
        if prev_sequence is _UNSET:
            prev_sequence = None if batched else self._shifted_prev()
        x = self._sample_normalized(
            torch.from_numpy(arr).to(self._device()),
            L,
            sampler,
            guidance_scale,
            early_stop,
            prev_sequence,
            generator,
            noise,
        )
        seqs = self.normalizer.u_inverse(x).cpu().numpy().astype(np.float64)
        seqs = seqs.reshape(len(arr), L, self.config.horizon, ACTION_DIM)
        return seqs if batched else seqs[0]

    def _shifted_prev(self) -> np.ndarray | None:
        """Previous executed sequence advanced by the time since it was chosen
        (``control_dt / dt`` steps, linear interpolation, last input held)."""
        if self.prev_sequence is None:
            return None
        return shift_sequence(self.prev_sequence, self.control_dt / self.config.dt)

    def _sample_normalized(
        self,
        obs: torch.Tensor,
        L: int,
        sampler: str | None,
        guidance_scale: float | None,
        early_stop: bool | None,
        prev: np.ndarray | None,
        generator: torch.Generator | None,
        noise: torch.Tensor | None,
    ) -> torch.Tensor:
        """obs (B, D) raw -> (B*L, N*7) normalised samples (row b*L + l)."""
        c, device = self.config, obs.device
        sampler = sampler or c.sampler
        _check_choice("sampler", sampler, diffusion.SAMPLERS)
        tables = diffusion.step_tables(
            sampler,
            c.num_train_timesteps,
            c.num_inference_steps,
            c.ddim_eta if sampler == "ddim" else 0.0,
        )
        t = torch.tensor(tables.t, device=device)
        obs_f = self.net.obs_features(self.encode(obs))  # (B, H)
        if L > 1:
            obs_f = obs_f.repeat_interleave(L, dim=0)
        cond = self.net.time_features(t)[:, None] + obs_f[None]  # (K, B*L, H)
        P, params = c.horizon * ACTION_DIM, self.net.trunk_params()
        gen = generator or self.generator()
        if noise is None:
            x = torch.randn((len(obs_f), P), generator=gen, device=device)
        else:
            x, noise = noise[0].to(device), noise[1:].to(device)
        x_prev = None
        if prev is not None:
            prev_t = torch.as_tensor(np.asarray(prev), dtype=torch.float32, device=device)
            x_prev = self.normalizer.u(prev_t.reshape(1, c.horizon, ACTION_DIM))[0]
        return diffusion.denoise(
            lambda xk, k: self.net.trunk(xk, cond[k], params),
            tables,
            x,
            noise=noise,
            generator=gen,
            x_prev=x_prev,
            guidance_scale=c.guidance_scale if guidance_scale is None else guidance_scale,
            early_stop=c.early_stop if early_stop is None else early_stop,
            early_stop_fraction=c.early_stop_fraction,
            clip=c.clip_sample_range if c.clip_sample else None,
        )

    # ------------------------------------------------------------------ acting
    def act(
        self,
        obs: Any,
        *,
        sampler: str | None = None,
        guidance_scale: float | None = None,
        early_stop: bool | None = None,
        num_samples: int | None = None,
        selection: str | None = None,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """obs (D,) -> u_0 (7,) [rad/s]; or (B, D) -> (B, 7) (no guidance memory).

        selection "none" draws one sample (unless num_samples is given: then the first);
        other rules draw num_samples (default ``config.num_samples``) and pick one, see
        :meth:`select`. A single observation's chosen sequence is stored for guidance."""
        chunk = self.act_chunk(
            obs,
            sampler=sampler,
            guidance_scale=guidance_scale,
            early_stop=early_stop,
            num_samples=num_samples,
            selection=selection,
            generator=generator,
        )
        return chunk[..., 0, :].copy()

    def act_chunk(
        self,
        obs: Any,
        *,
        sampler: str | None = None,
        guidance_scale: float | None = None,
        early_stop: bool | None = None,
        num_samples: int | None = None,
        selection: str | None = None,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """Like :meth:`act` but returns the whole chosen sequence: obs (D,) -> (N, 7), or
        (B, D) -> (B, N, 7) [rad/s]. A single observation's sequence is stored for guidance."""
        selection = selection or self.config.selection
        _check_choice("selection", selection, SELECTIONS)
        L = num_samples or (1 if selection == "none" else self.config.num_samples)
        seqs = self.sample(
            obs,
            L,
            sampler=sampler,
            guidance_scale=guidance_scale,
            early_stop=early_stop,
            generator=generator,
        )
        if seqs.ndim == 4:  # batched
            arr, _ = check_obs(obs, self.config.obs_dim)
            idx = [self.select(o, s, selection) for o, s in zip(arr, seqs, strict=True)]
            return np.stack([s[i] for s, i in zip(seqs, idx, strict=True)])
        chosen = seqs[self.select(obs, seqs, selection)]
        self.prev_sequence = chosen
        return chosen

    # ------------------------------------------------------------------ selection
    def select(self, obs: np.ndarray, seqs: np.ndarray, selection: str) -> int:
        """Index of the chosen sequence among seqs (L, N, 7) for one observation (D,)."""
        _check_choice("selection", selection, SELECTIONS)
        if selection == "none" or len(seqs) == 1:
            return 0
        if selection == "cost":
            return int(np.argmin(self.cost_expert().cost_batch(np.asarray(obs, float), seqs)))
        if selection == "safe":
            viol = constraint_violation(obs, seqs, self.config.dt)
            feasible = np.flatnonzero(viol <= 0.0)
            return int(self.rng.choice(feasible)) if len(feasible) else int(np.argmin(viol))
        return densest_cluster_pick(seqs, self.config.num_clusters, self.rng)

    def cost_expert(self) -> Any:
        """MPCExpert with this policy's horizon/dt/obstacle, built once (compile=False); only
        its ``cost_batch`` is used (no NLP solve)."""
        if self._cost_expert is None:
            from ampczoo.experts.mpc import MPCConfig, MPCExpert

            self._cost_expert = MPCExpert(
                MPCConfig(
                    horizon=self.config.horizon,
                    dt=self.config.dt,
                    compile=False,
                    obstacle=self.config.obs_dim == 20,
                )
            )
        return self._cost_expert

    # ------------------------------------------------------------------ ONNX
    def _graph_tables(self) -> tuple[diffusion.StepTables, tuple[float, ...]]:
        """Step tables of the configured sampler and the per-step noise std after early
        stopping (0 where no noise is added: the steps the graph takes no noise for)."""
        c = self.config
        tables = diffusion.step_tables(
            c.sampler,
            c.num_train_timesteps,
            c.num_inference_steps,
            c.ddim_eta if c.sampler == "ddim" else 0.0,
        )
        i_min = (
            diffusion.early_stop_min_step(tables.num_steps, c.early_stop_fraction)
            if c.early_stop
            else 0
        )
        sigma = tuple(s if i > i_min else 0.0 for s, i in zip(tables.sigma, tables.i, strict=True))
        return tables, sigma

    def onnx_graph(self) -> OnnxGraph:
        """The whole sampling path of the configured sampler, steps, early stopping and
        clipping, unrolled: inputs obs (B, D) raw, noise (K+1, B, L, N*7) standard normal
        draws (x_{N_I}, then one per step; steps without noise ignore theirs),
        prev_sequence (N, 7) [rad/s] the guidance target (already shifted) and
        guidance_scale () (0 = unguided) -> seqs (B, L, N, 7) [rad/s]. Gradient guidance is
        analytic (:func:`~ampczoo.nn.diffusion.guide_x0`), so it is part of the graph."""
        c = self.config
        tables, sigma = self._graph_tables()
        clip = c.clip_sample_range if c.clip_sample else None

        def graph(obs, noise, prev_sequence, guidance_scale):  # type: ignore[no-untyped-def]
            with unrolled_solves(self):
                obs_f = self.net.obs_features(self.encode(obs))[:, None]  # (B, 1, H)
            time_f = self.net.time_features(torch.tensor(tables.t))  # (K, H)
            x_prev = self.normalizer.u(prev_sequence[None])[0]  # (P,)
            params = self.net.trunk_params()
            x = noise[0]
            for k in range(tables.num_steps):
                x0 = self.net.trunk(x, time_f[k] + obs_f, params)
                if tables.a[k] > 1e-8:  # as guide_x0: the zero-SNR step is unguided
                    x0 = x0 + guidance_scale * (x_prev - x / math.sqrt(tables.a[k]))
                if clip is not None:
                    x0 = x0.clamp(-clip, clip)
                out = x0 * tables.c_x0[k] + x * tables.c_xt[k]
                if sigma[k] > 0.0:
                    out = out + sigma[k] * noise[k + 1]
                x = out
            return self.normalizer.u_inverse(x)

        P = c.horizon * ACTION_DIM
        example = (
            self.normalizer.obs_mean.expand(2, -1).clone(),
            torch.zeros(tables.num_steps + 1, 2, 3, P),
            torch.zeros(c.horizon, ACTION_DIM),
            torch.tensor(c.guidance_scale, dtype=torch.float32),
        )
        axes = {"obs": {0: "B"}, "noise": {1: "B", 2: "L"}, "seqs": {0: "B", 1: "L"}}
        names = ["obs", "noise", "prev_sequence", "guidance_scale"]
        return OnnxGraph(GraphModule(self, graph), example, names, ["seqs"], axes)

    def act_onnx(self, run: GraphRunner, obs: Any, **kwargs: Any) -> np.ndarray:
        """:meth:`act` with the graph of :meth:`onnx_graph` run by ``run`` (see
        :meth:`act_chunk_onnx`)."""
        return self.act_chunk_onnx(run, obs, **kwargs)[..., 0, :].copy()

    def act_chunk_onnx(
        self,
        run: GraphRunner,
        obs: Any,
        *,
        guidance_scale: float | None = None,
        num_samples: int | None = None,
        selection: str | None = None,
        generator: torch.Generator | None = None,
        **fixed: Any,
    ) -> np.ndarray:
        """:meth:`act_chunk` with the graph of :meth:`onnx_graph` run by ``run``: the same
        noise draws from the same generator, guidance memory and selection. ``sampler`` and
        ``early_stop`` are fixed in the graph: other values than the config's raise
        ValueError."""
        c = self.config
        for name, value in fixed.items():
            if name not in ("sampler", "early_stop"):
                raise TypeError(f"act() got an unexpected keyword argument {name!r}")
            if value is not None and value != getattr(c, name):
                raise ValueError(
                    f"the ONNX graph is built for {name}={getattr(c, name)!r}; load the policy "
                    f"with backend='torch' to sample with {name}={value!r}"
                )
        selection = selection or c.selection
        _check_choice("selection", selection, SELECTIONS)
        L = num_samples or (1 if selection == "none" else c.num_samples)
        arr, batched = check_obs(obs, c.obs_dim)
        prev = None if batched else self._shifted_prev()
        scale = c.guidance_scale if guidance_scale is None else guidance_scale
        seqs = run(
            {
                "obs": arr,
                "noise": self._graph_noise(len(arr), int(L), generator),
                "prev_sequence": np.zeros((c.horizon, ACTION_DIM)) if prev is None else prev,
                "guidance_scale": np.asarray(0.0 if prev is None else scale),
            }
        )[0].astype(np.float64)
        if batched:
            idx = [self.select(o, s, selection) for o, s in zip(arr, seqs, strict=True)]
            return np.stack([s[i] for s, i in zip(seqs, idx, strict=True)])
        chosen = seqs[0][self.select(obs, seqs[0], selection)]
        self.prev_sequence = chosen
        return chosen

    def _graph_noise(self, B: int, L: int, generator: torch.Generator | None) -> np.ndarray:
        """(K+1, B, L, N*7) noise drawn as the torch path draws it: x_{N_I} first, then one
        draw per step with noise, in order, from ``generator`` (default: the policy's).

        On the CPU the draws go into one buffer kept across calls of the same size (rows of
        steps without noise stay zero): the returned array is overwritten by the next call."""
        gen = generator or self.generator()
        shape = (B * L, self.config.horizon * ACTION_DIM)
        device = self._device()
        buf = self._noise_buffer
        if device.type != "cpu" or buf is None or buf.shape[1:] != shape:
            buf = torch.zeros((self._graph_steps() + 1, *shape))
            self._noise_buffer = buf if device.type == "cpu" else None
        for k in self._noise_draws():
            if device.type == "cpu":
                torch.randn(shape, generator=gen, out=buf[k])
            else:
                buf[k] = torch.randn(shape, generator=gen, device=device).cpu()
        return buf.numpy().reshape(len(buf), B, L, -1)

    def _noise_draws(self) -> list[int]:
        """Rows of the graph's noise input that get a draw: 0 (x_{N_I}) and k + 1 for every
        step k with noise (cached: the config is frozen)."""
        if self._draw_rows is None:
            _, sigma = self._graph_tables()
            self._draw_rows = [0] + [k + 1 for k, s in enumerate(sigma) if s > 0.0]
        return self._draw_rows

    def _graph_steps(self) -> int:
        return self._graph_tables()[0].num_steps


def rollout(q: np.ndarray, U: np.ndarray, dt: float) -> np.ndarray:
    """Euler rollout x_{k+1} = x_k + dt u_k: q (7,) [rad], U (L, N, 7) [rad/s] -> states
    x_1..x_N (L, N, 7) [rad]."""
    return np.asarray(q, float) + dt * np.cumsum(U, axis=1)


def constraint_violation(obs: np.ndarray, U: np.ndarray, dt: float) -> np.ndarray:
    """Total constraint violation (L,) >= 0 of sequences U (L, N, 7) from a KUKA observation:
    joint limits [rad] and velocity limit [rad/s] exceedances, self/floor collision depths [m]
    and obstacle penetration (fraction of its radius), summed over the horizon (batch FK)."""
    from ampczoo.robots.kuka import (
        VELOCITY_LIMIT,
        kuka_chain,
        obstacle_penetration,
        parse_observation,
        self_collision_gaps,
    )

    ob = parse_observation(obs)
    chain = kuka_chain()
    U = np.asarray(U, float)
    X = rollout(ob.q, U, dt)
    viol = (np.maximum(X - chain.upper, 0) + np.maximum(chain.lower - X, 0)).sum(axis=(1, 2))
    viol += np.maximum(np.abs(U) - VELOCITY_LIMIT, 0).sum(axis=(1, 2))
    centres = chain.batch_sphere_centres(X.reshape(-1, X.shape[-1]))  # (L*N, S, 3)
    gaps = self_collision_gaps(centres).reshape(len(U), -1)
    viol += np.maximum(-gaps, 0).sum(axis=1)
    if ob.obstacle is not None:
        viol += obstacle_penetration(centres, ob.obstacle).reshape(len(U), -1).sum(axis=1)
    return viol


def densest_cluster_pick(seqs: np.ndarray, num_clusters: int, rng: np.random.Generator) -> int:
    """Ward-linkage clustering of the flattened sequences (L, N*7) into at most
    ``num_clusters`` clusters; a random member of the largest cluster."""
    from scipy.cluster.hierarchy import fcluster, linkage

    flat = np.asarray(seqs, float).reshape(len(seqs), -1)
    labels = fcluster(linkage(flat, method="ward"), t=num_clusters, criterion="maxclust")
    values, counts = np.unique(labels, return_counts=True)
    members = np.flatnonzero(labels == values[np.argmax(counts)])
    return int(rng.choice(members))
