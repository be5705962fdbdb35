"""Diffusion Policy (Chi et al. 2023, the CNN-based variant; DiffOG's base policy).

The policy denoises an action sequence of T_p = ``pred_horizon`` steps conditioned on the last
T_o = ``obs_horizon`` observations and executes T_a = ``action_horizon`` of them before it
plans again (receding horizon over chunks):

* noise model: the FiLM-conditioned temporal U-Net of :mod:`ampczoo.nn.unet1d`; the
  conditioning is the flattened T_o-step observation feature (the min-max normalised low-dim
  observation, plus a small CNN feature per camera of ``image_keys``, :mod:`ampczoo.nn.vision`)
  and the diffusion-step embedding;
* training: epsilon prediction, DDPM with the squared-cosine schedule and
  ``num_train_timesteps`` (100) steps: loss = MSE(eps_theta(x_t, t, obs), eps) at a uniformly
  drawn t; actions and low-dim observations min-max normalised to [-1, 1] per dimension (the
  statistics live in the checkpoint); the training loop keeps an EMA of the weights
  (``default_ema_decay``), which is what gets saved and acts;
* inference: diffusers' DDIM (default, ``num_inference_steps`` = 10) or DDPM sampler
  (:func:`ampczoo.nn.diffusion.make_epsilon_scheduler`), x0 clipped to [-1, 1].

Chunk semantics (as the paper): the predicted sequence A_{t-T_o+1} .. A_{t-T_o+T_p} starts at
the first observation of the history; the action for "now" is index T_o − 1, and ``act``
executes indices T_o − 1 .. T_o + T_a − 2 one per call. ``act(obs)`` keeps the history of the
last T_o observations (after ``reset()`` padded with the first observation) and the queue of
planned actions; it samples a new chunk when the queue is empty. ``act_chunk(obs)`` observes
and plans now, returning the executable chunk (T_p − T_o + 1, A) whose first row is the
action for this step (the refiners' chunk API: :class:`ampczoo.wrappers.chunk.
ChunkFilterPolicy` re-plans through it every step); a later ``act`` continues that plan.
``act_chunk`` of explicit histories (B, T_o, D) is stateless. ``planned_inputs()`` returns
the rest of the current plan, from the action returned last. The chunk filters (DiffOG,
clipping, penalty: :class:`ampczoo.wrappers.chunk.ChunkFilterPolicy`) use ``predict_chunk(obs)``
(the full T_p sequence, ``chunk_offset`` = T_o − 1 the current row; the policy's own queue is
emptied) every T_a steps and ``observe(obs)`` on the steps between, and execute T_a refined
actions themselves.

Observations: the env's flat low-dim vector (D,) / (B, D); a policy with cameras takes a dict
holding the ``obs_layout`` keys and the ``image_keys`` images (H, W, C) uint8 (or with a
leading batch axis). Training batches (the one loop, ``ampczoo train diffusion_policy --data
STORE``) are windows {"obs_history": (B, T_o, D), "u_seq": (B, T_p, A)[, "images.<key>":
(B, T_o, H, W, C)]} served by :class:`~ampczoo.data.DemonstrationDataset` (``action_lead`` =
T_o − 1, padding with the episode's first/last action as the paper).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from ampczoo.core.checkpoint import PolicyConfig, PretrainedPolicy, check_obs
from ampczoo.nn.diffusion import SAMPLERS, make_epsilon_scheduler
from ampczoo.nn.features import quaternion_to_rot6d
from ampczoo.nn.normalization import MinMaxNormalizer
from ampczoo.nn.unet1d import ConditionalUnet1D
from ampczoo.nn.vision import ImageEncoder

ROTATION_FEATURES = ("quat", "rot6d")
_POSITIVE_INTS = (
    "obs_dim",
    "action_dim",
    "obs_horizon",
    "pred_horizon",
    "action_horizon",
    "kernel_size",
    "n_groups",
    "step_embed_dim",
    "num_train_timesteps",
    "num_inference_steps",
    "image_feature_dim",
)


@dataclass(frozen=True)
class DiffusionPolicyConfig(PolicyConfig):
    """Diffusion Policy (Chi et al. 2023): a FiLM-conditioned 1-D U-Net denoises T_p actions
    from T_o observations; T_a of them are executed per plan (see the module docstring)."""

    type: str = "diffusion_policy"
    obs_dim: int = 10
    """D, size of the flat low-dim observation (set from the data by the trainer)"""
    action_dim: int = 7
    """A, action size (set from the data by the trainer)"""
    obs_horizon: int = 2
    """T_o, observations the policy conditions on [steps] (>= 1)"""
    pred_horizon: int = 16
    """T_p, predicted actions per plan [steps]; divisible by 2^(len(down_dims) - 1)"""
    action_horizon: int = 8
    """T_a, actions executed per plan [steps] (<= T_p − T_o + 1)"""
    obs_layout: tuple[tuple[str, int, int], ...] = ()
    """(key, start, stop) of each part of the flat observation, in order: the env's
    ``obs_layout`` the data were recorded with (set from the store by the trainer; checked
    against the env's by :meth:`DiffusionPolicy.check_env`). Empty = unknown"""
    env_id: str = ""
    """env id of the training data (set from the store by the trainer; informational)"""
    image_keys: tuple[str, ...] = ()
    """camera observation keys (e.g. "agentview_image"); each gets its own CNN encoder"""
    image_shape: tuple[int, int, int] = (84, 84, 3)
    """(H, W, C) of every camera image"""
    image_feature_dim: int = 64
    """features per camera and step"""
    image_channels: tuple[int, ...] = (32, 64, 64)
    """channels of the stride-2 convolutions of each camera encoder"""
    image_crop_ratio: float = 0.9
    """side of the crop of every camera image / the image's side, in (0, 1]: a random crop in
    training (augmentation), the centre crop at inference; 0.9 gives the paper's 76 x 76 of
    84 x 84; 1 = the whole image"""
    down_dims: tuple[int, ...] = (32, 64, 128)
    """U-Net channels per level (default sized for CPU training, 1.2M parameters; the
    paper: (256, 512, 1024) with step_embed_dim 256, 65M)"""
    kernel_size: int = 5
    """U-Net temporal convolution kernel"""
    n_groups: int = 8
    """GroupNorm groups (down_dims and image_channels must be multiples)"""
    step_embed_dim: int = 64
    """diffusion-step embedding width (the paper: 256); even"""
    num_train_timesteps: int = 100
    """DDPM training steps (squared-cosine schedule)"""
    sampler: Literal["ddim", "ddpm"] = "ddim"
    """inference sampler (diffusers' DDIMScheduler, eta 0, or DDPMScheduler)"""
    num_inference_steps: int = 10
    """denoising steps at inference (<= num_train_timesteps)"""
    control_dt: float = 0.05
    """env step [s] the plan is drawn with (``planned_inputs``; robomimic 20 Hz)"""
    rotation_features: Literal["quat", "rot6d"] = "quat"
    """how the observation's quaternions enter the conditioning: "quat" as stored (x, y, z,
    w; the paper's), "rot6d" the first two columns of their rotation matrix (continuous, the
    same for q and −q; Zhou et al. 2019). robomimic's object-to-gripper quaternions flip sign
    within episodes and an object's yaw is a half-angle in its quaternion, so "rot6d" makes
    the orientation-dependent actions (Square's grasp and insertion) easier to learn"""
    quat_starts: tuple[int, ...] = ()
    """start index of every (x, y, z, w) quaternion in the flat observation ("rot6d" only;
    set from the data by the trainer for robomimic stores)"""
    angle_dims: tuple[int, ...] = ()
    """indices of observation entries that are angles [rad] (Push-T's block angle, 4): each
    enters the conditioning as (cos, sin) instead of its min-max normalised value, which jumps
    from −1 to 1 where the angle wraps (2π -> 0); () = none"""
    obs_encoder_dims: tuple[int, ...] = ()
    """hidden widths of an MLP (Linear + Mish per layer, shared over the T_o steps) applied
    to each step's low-dim features before the FiLM conditioning; () = none (the paper's:
    the observation reaches each FiLM layer through one linear map)"""

    def __post_init__(self) -> None:
        for name in _POSITIVE_INTS:
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.action_horizon > self.pred_horizon - self.obs_horizon + 1:
            raise ValueError(
                f"action_horizon T_a={self.action_horizon} must be <= pred_horizon − "
                f"obs_horizon + 1 = {self.pred_horizon - self.obs_horizon + 1} (T_p="
                f"{self.pred_horizon}, T_o={self.obs_horizon})"
            )
        levels = len(self.down_dims)
        if not levels or any(not isinstance(d, int) or d <= 0 for d in self.down_dims):
            raise ValueError(f"down_dims must be positive integers, got {self.down_dims}")
        if any(d % self.n_groups for d in (*self.down_dims, *self.image_channels)):
            raise ValueError(
                f"down_dims {self.down_dims} and image_channels {self.image_channels} must be "
                f"multiples of n_groups={self.n_groups}"
            )
        if self.pred_horizon % 2 ** (levels - 1):
            raise ValueError(
                f"pred_horizon {self.pred_horizon} must be divisible by 2^(len(down_dims)-1) = "
                f"{2 ** (levels - 1)}"
            )
        if self.step_embed_dim % 2 or self.step_embed_dim < 4:
            raise ValueError(f"step_embed_dim must be even and >= 4, got {self.step_embed_dim}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.num_inference_steps > self.num_train_timesteps:
            raise ValueError(
                f"num_inference_steps {self.num_inference_steps} > num_train_timesteps "
                f"{self.num_train_timesteps}"
            )
        if not 0 < self.control_dt < np.inf:
            raise ValueError(f"control_dt must be a finite number > 0, got {self.control_dt}")
        self._check_layout()
        self._check_rotation_features()
        self._check_angle_dims()
        dims = tuple(self.obs_encoder_dims)
        object.__setattr__(self, "obs_encoder_dims", dims)
        if any(not isinstance(d, int | np.integer) or isinstance(d, bool) or d <= 0 for d in dims):
            raise ValueError(f"obs_encoder_dims must be positive integers, got {dims}")
        if self.image_keys:
            if len(set(self.image_keys)) != len(self.image_keys) or not all(self.image_keys):
                raise ValueError(f"image_keys must be distinct names, got {self.image_keys}")
            if not self.obs_layout:
                raise ValueError("a policy with image_keys needs obs_layout (the low-dim keys)")
            if len(self.image_shape) != 3 or any(int(s) <= 0 for s in self.image_shape):
                raise ValueError(f"image_shape must be (H, W, C) > 0, got {self.image_shape}")
            if not self.image_channels:
                raise ValueError("image_channels must not be empty")
            self._check_crop()

    def _check_crop(self) -> None:
        """image_crop_ratio in (0, 1]."""
        if not 0.0 < float(self.image_crop_ratio) <= 1.0:
            raise ValueError(f"image_crop_ratio must be in (0, 1], got {self.image_crop_ratio}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiffusionPolicyConfig:
        """:meth:`PolicyConfig.from_dict`, also reading configs saved before 2026-12-03's
        ``image_crop_ratio``: their ``image_crop`` ([h, w] px or None) becomes the ratio
        h / H of ``image_shape`` (None: 1.0, no crop), so those checkpoints and training runs
        still load and resume with the same crop."""
        data = dict(data)
        if "image_crop" in data and "image_crop_ratio" not in data:
            crop = data.pop("image_crop")
            height = int((data.get("image_shape") or cls.image_shape)[0])
            data["image_crop_ratio"] = 1.0 if crop is None else float(crop[0]) / height
        config = super().from_dict(data)
        assert isinstance(config, DiffusionPolicyConfig)
        return config

    @property
    def image_crop(self) -> tuple[int, int] | None:
        """(h, w) [pixels] of the camera crop (None = no crop), from ``image_crop_ratio``."""
        if self.image_crop_ratio >= 1.0:
            return None
        H, W = (int(v) for v in self.image_shape[:2])
        return (max(1, round(self.image_crop_ratio * H)), max(1, round(self.image_crop_ratio * W)))

    def _check_angle_dims(self) -> None:
        """angle_dims: distinct indices in [0, obs_dim), none inside a quaternion."""
        dims = tuple(self.angle_dims)
        object.__setattr__(self, "angle_dims", dims)
        ints = all(isinstance(i, int | np.integer) and not isinstance(i, bool) for i in dims)
        quat_rows = {a + k for a in self.quat_starts for k in range(4)}
        if not ints or len(set(dims)) != len(dims) or any(not 0 <= i < self.obs_dim for i in dims):
            raise ValueError(
                f"angle_dims must be distinct indices in [0, obs_dim={self.obs_dim}), got {dims}"
            )
        if quat_rows & set(dims):
            raise ValueError(f"angle_dims {dims} overlap the quaternions at {self.quat_starts}")

    def _check_rotation_features(self) -> None:
        """rotation_features "quat" | "rot6d"; quat_starts: distinct, non-overlapping 4-wide
        slices inside [0, obs_dim), given exactly when "rot6d"."""
        starts = tuple(self.quat_starts)
        object.__setattr__(self, "quat_starts", starts)
        if self.rotation_features not in ROTATION_FEATURES:
            raise ValueError(
                f"rotation_features must be one of {ROTATION_FEATURES}, got "
                f"{self.rotation_features!r}"
            )
        if self.rotation_features == "quat":
            if starts:
                raise ValueError("quat_starts is only used with rotation_features='rot6d'")
            return
        if not starts:
            raise ValueError(
                "rotation_features='rot6d' needs quat_starts (the start index of each "
                "quaternion in the observation)"
            )
        ints = all(isinstance(a, int | np.integer) and not isinstance(a, bool) for a in starts)
        ordered = ints and all(b - a >= 4 for a, b in zip(starts, starts[1:], strict=False))
        if not (ordered and starts[0] >= 0 and starts[-1] + 4 <= self.obs_dim):
            raise ValueError(
                f"quat_starts must be increasing integers at least 4 apart with each "
                f"quaternion inside obs_dim={self.obs_dim}, got {starts}"
            )

    def feature_dim(self) -> int:
        """Low-dim conditioning features per step: obs_dim, plus 2 per quaternion with
        "rot6d" (4 entries become 6); the last ``obs_encoder_dims`` width with an encoder."""
        if self.obs_encoder_dims:
            return int(self.obs_encoder_dims[-1])
        return self.low_dim_width()

    def low_dim_width(self) -> int:
        """Low-dim features per step before any encoder: obs_dim, plus 2 per quaternion
        with "rot6d" (4 entries become 6), plus 1 per angle (1 entry becomes cos, sin)."""
        return self.obs_dim + 2 * len(self.quat_starts) + len(self.angle_dims)

    def _check_layout(self) -> None:
        """obs_layout: (key, start, stop) triples tiling [0, obs_dim) in order."""
        layout = tuple(tuple(entry) for entry in self.obs_layout)
        object.__setattr__(self, "obs_layout", layout)
        end = 0
        for entry in layout:
            if len(entry) != 3 or not isinstance(entry[0], str) or entry[1] != end:
                raise ValueError(
                    f"obs_layout must be (key, start, stop) triples tiling [0, obs_dim), got "
                    f"{self.obs_layout}"
                )
            end = int(entry[2])
        if layout and end != self.obs_dim:
            raise ValueError(f"obs_layout covers {end} values, obs_dim is {self.obs_dim}")


class DiffusionPolicy(PretrainedPolicy):
    """Diffusion Policy: conditional 1-D U-Net denoiser of action chunks, receding horizon
    over T_a executed actions (see the module docstring)."""

    name = "diffusion_policy"
    config_class = DiffusionPolicyConfig
    config: DiffusionPolicyConfig
    default_ema_decay: ClassVar[float] = 0.999
    onnx_unsupported: ClassVar[str] = (
        "its inference is an iterative diffusers sampler (no single graph)"
    )

    def __init__(self, config: DiffusionPolicyConfig | None = None):
        super().__init__(config or DiffusionPolicyConfig())
        c = self.config
        self.obs_norm = MinMaxNormalizer(c.obs_dim)
        self.action_norm = MinMaxNormalizer(c.action_dim)
        self.image_encoders = nn.ModuleDict(
            {
                key: ImageEncoder(
                    c.image_shape[2],
                    c.image_feature_dim,
                    c.image_channels,
                    c.n_groups,
                    crop=c.image_crop,
                )
                for key in c.image_keys
            }
        )
        quat_rows = [a + k for a in c.quat_starts for k in range(4)]
        kept = [i for i in range(c.obs_dim) if i not in {*quat_rows, *c.angle_dims}]
        self.register_buffer("_kept_rows", torch.tensor(kept, dtype=torch.long), persistent=False)
        self.register_buffer(
            "_quat_rows", torch.tensor(quat_rows, dtype=torch.long).view(-1, 4), persistent=False
        )
        self.register_buffer(
            "_angle_rows", torch.tensor(c.angle_dims, dtype=torch.long), persistent=False
        )
        layers: list[nn.Module] = []
        width = c.low_dim_width()
        for hidden in c.obs_encoder_dims:
            layers += [nn.Linear(width, hidden), nn.Mish()]
            width = hidden
        self.obs_encoder = nn.Sequential(*layers)  # identity without obs_encoder_dims
        feature = c.feature_dim() + len(c.image_keys) * c.image_feature_dim
        self.model = ConditionalUnet1D(
            c.action_dim,
            c.obs_horizon * feature,
            tuple(c.down_dims),
            c.kernel_size,
            c.n_groups,
            c.step_embed_dim,
        )
        self.model.check_horizon(c.pred_horizon)
        self.scheduler = make_epsilon_scheduler(c.sampler, c.num_train_timesteps)
        train_sched = make_epsilon_scheduler("ddpm", c.num_train_timesteps)
        a = train_sched.alphas_cumprod.float()
        self.register_buffer("sqrt_alpha", a.sqrt(), persistent=False)
        self.register_buffer("sqrt_one_minus_alpha", (1.0 - a).sqrt(), persistent=False)
        self._generator: torch.Generator | None = None
        self._seed: int | None = None
        self._obs_buf: np.ndarray | None = None  # (B, T_o, D) raw low-dim observations
        self._img_buf: dict[str, np.ndarray] = {}  # key -> (B, T_o, H, W, C)
        self._plan: np.ndarray | None = None  # (B, T_p − T_o + 1, A) executable chunk
        self._pos = 0  # index into _plan of the next action to execute

    @classmethod
    def example_config(cls) -> DiffusionPolicyConfig:
        """A tiny U-Net over 8 predicted steps (tests and docs)."""
        return DiffusionPolicyConfig(
            obs_dim=4,
            action_dim=2,
            pred_horizon=8,
            action_horizon=4,
            down_dims=(8, 16),
            step_embed_dim=8,
            num_inference_steps=3,
        )

    @staticmethod
    def config_from_data(fields: dict[str, Any], attrs: dict[str, Any]) -> dict[str, Any]:
        """Fields from the store (trainer hook): ``quat_starts`` of a robomimic store's env
        when ``rotation_features`` is "rot6d" and none were given."""
        if fields.get("rotation_features") != "rot6d" or fields.get("quat_starts"):
            return {}
        env_id = str(attrs.get("env", ""))
        name = env_id.removeprefix("Robomimic-").removesuffix("-v0")
        from ampczoo.envs.robomimic import TASKS, quaternion_starts

        if not env_id.startswith("Robomimic-") or name not in TASKS:
            raise ValueError(
                f"rotation_features='rot6d' needs --policy.quat-starts for data of env "
                f"{env_id or 'unknown'} (set automatically only for Robomimic-* stores)"
            )
        return {"quat_starts": quaternion_starts(TASKS[name])}

    @staticmethod
    def dataset_kwargs(fields: dict[str, Any]) -> dict[str, Any]:
        """The :class:`~ampczoo.data.DemonstrationDataset` windows of a config with these
        ``fields`` (defaults and overrides): T_o observations, T_p actions starting at the
        first of them, the camera arrays."""
        t_o = int(fields["obs_horizon"])
        return {
            "history": t_o,
            "action_horizon": int(fields["pred_horizon"]),
            "action_lead": t_o - 1,
            "image_keys": tuple(fields.get("image_keys", ())),
        }

    # ------------------------------------------------------------------ normalisation
    def set_normalization(self, stats: dict[str, dict[str, np.ndarray]]) -> None:
        """Per-dimension min/max of the train split (``DemonstrationDataset.
        normalization_stats()``): observations (D,), actions over every chunk step."""
        u = stats["u_seq"]
        self.obs_norm.set_range(stats["obs"]["min"], stats["obs"]["max"])
        lo, hi = np.asarray(u["min"]), np.asarray(u["max"])
        self.action_norm.set_range(
            lo.reshape(-1, lo.shape[-1]).min(0), hi.reshape(-1, hi.shape[-1]).max(0)
        )

    # ------------------------------------------------------------------ network
    def encode(self, obs_history: torch.Tensor, images: dict[str, torch.Tensor]) -> torch.Tensor:
        """obs_history (B, T_o, D) raw, images {key: (B, T_o, H, W, C)} -> (B, T_o * F)
        conditioning (normalised low-dim obs and camera features per step, flattened)."""
        B, T = obs_history.shape[:2]
        parts = [self.obs_encoder(self.low_dim_features(obs_history))]
        for key, encoder in self.image_encoders.items():
            img = images[key]
            parts.append(encoder(img.reshape(B * T, *img.shape[2:])).view(B, T, -1))
        return torch.cat(parts, dim=-1).flatten(1)

    def low_dim_features(self, obs: torch.Tensor) -> torch.Tensor:
        """(..., D) raw observations -> (..., F) conditioning features: min-max normalised
        observation; with ``rotation_features="rot6d"`` its quaternions are replaced by their
        rotation-matrix columns, and the ``angle_dims`` entries by (cos, sin) of the angle
        (appended after the other normalised entries, in that order)."""
        x = self.obs_norm(obs)
        c = self.config
        if not c.quat_starts and not c.angle_dims:
            return x
        parts = [x[..., self._kept_rows]]
        if c.quat_starts:
            parts.append(quaternion_to_rot6d(obs[..., self._quat_rows]).flatten(-2))
        if c.angle_dims:
            angle = obs[..., self._angle_rows]  # (..., n_angle) [rad]
            parts += [torch.cos(angle), torch.sin(angle)]
        return torch.cat(parts, dim=-1)

    def _check_batch(self, batch: dict[str, torch.Tensor]) -> None:
        c = self.config
        hist, u = batch["obs_history"], batch["u_seq"]
        if hist.ndim != 3 or tuple(hist.shape[1:]) != (c.obs_horizon, c.obs_dim):
            raise ValueError(
                f"obs_history must be (B, T_o={c.obs_horizon}, D={c.obs_dim}), got "
                f"{tuple(hist.shape)}"
            )
        if u.ndim != 3 or tuple(u.shape[1:]) != (c.pred_horizon, c.action_dim):
            raise ValueError(
                f"u_seq must be (B, T_p={c.pred_horizon}, A={c.action_dim}), got {tuple(u.shape)}"
            )
        for key in c.image_keys:
            if f"images.{key}" not in batch:
                raise ValueError(f"batch lacks camera images 'images.{key}'")

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Epsilon-prediction MSE at a uniformly drawn diffusion step (global torch RNG;
        with ``global_rows`` / ``global_size`` in the batch, the draws of a global batch of
        that size are made and this shard's rows taken, so data-parallel shards see the
        noise one process would)."""
        self._check_batch(batch)
        x0 = self.action_norm(batch["u_seq"])
        images = {k: batch[f"images.{k}"] for k in self.config.image_keys}
        cond = self.encode(batch["obs_history"], images)
        noise, t = self._draw(x0, batch)
        x_t = self.sqrt_alpha[t, None, None] * x0 + self.sqrt_one_minus_alpha[t, None, None] * noise
        loss = torch.mean((self.model(x_t, t, cond) - noise) ** 2)
        return loss, {"mse": float(loss.detach())}

    def _draw(
        self, x0: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(noise like x0, steps (B,)) from the global RNG (see :meth:`loss`)."""
        rows = batch.get("global_rows")
        n = len(x0) if rows is None else int(batch["global_size"])
        noise = torch.randn((n, *x0.shape[1:]), device=x0.device, dtype=x0.dtype)
        t = torch.randint(0, self.config.num_train_timesteps, (n,), device=x0.device)
        if rows is None:
            return noise, t
        return noise[rows], t[rows]

    # ------------------------------------------------------------------ sampling
    def generator(self) -> torch.Generator:
        """The acting generator on the policy's device (seeded by ``reset(seed)``)."""
        if self._generator is None or self._generator.device != self.device:
            self._generator = torch.Generator(self.device)
            if self._seed is None:
                self._generator.seed()
            else:
                self._generator.manual_seed(self._seed)
        return self._generator

    @torch.inference_mode()
    def sample(
        self, obs_history: np.ndarray, images: dict[str, np.ndarray] | None = None
    ) -> np.ndarray:
        """obs_history (B, T_o, D) raw (images {key: (B, T_o, H, W, C)}) -> predicted action
        sequences (B, T_p, A) float64 raw, index T_o − 1 = the current step."""
        c, dev = self.config, self.device
        hist = torch.as_tensor(obs_history, dtype=torch.float32, device=dev)
        imgs = {k: torch.as_tensor(v, device=dev) for k, v in (images or {}).items()}
        cond = self.encode(hist, imgs)
        gen = self.generator()
        x = torch.randn(
            (len(hist), c.pred_horizon, c.action_dim), generator=gen, device=dev, dtype=cond.dtype
        )
        self.scheduler.set_timesteps(c.num_inference_steps, device=dev)
        for t in self.scheduler.timesteps:
            eps = self.model(x, t.expand(len(x)).to(dev), cond)
            x = self.scheduler.step(eps, t, x, generator=gen).prev_sample
        return self.action_norm.inverse(x).double().cpu().numpy()

    # ------------------------------------------------------------------ acting
    def reset(self, seed: int | None = None) -> None:
        """Clear the observation history and the action queue; reseed the sampler."""
        self._obs_buf, self._img_buf = None, {}
        self._plan, self._pos = None, 0
        self._seed = None if seed is None else int(seed)
        self._generator = None

    def split_obs(self, obs: Any) -> tuple[np.ndarray, dict[str, np.ndarray], bool]:
        """Validate an observation: (low-dim (B, D) float32, images {key: (B, H, W, C)},
        batched). Flat arrays for low-dim policies; dicts (``obs_layout`` keys + cameras) for
        any. ValueError naming what is wrong (shape, NaN/inf, missing key)."""
        c = self.config
        if isinstance(obs, dict):
            missing = [k for k, *_ in c.obs_layout if k not in obs] if c.obs_layout else ["?"]
            missing += [k for k in c.image_keys if k not in obs]
            if missing:
                raise ValueError(
                    f"dict observation lacks {missing} (needs obs_layout keys "
                    f"{[k for k, *_ in c.obs_layout]} and cameras {list(c.image_keys)})"
                )
            parts = [np.asarray(obs[k], np.float32) for k, *_ in c.obs_layout]
            batched = parts[0].ndim == 2
            flat = np.concatenate([p if batched else p.reshape(-1) for p in parts], axis=-1)
        elif c.image_keys:
            raise ValueError(f"this policy needs a dict observation with cameras {c.image_keys}")
        else:
            flat = obs
        arr, batched = check_obs(flat, c.obs_dim)
        images = {}
        for key in c.image_keys:
            img = np.asarray(obs[key])
            want = tuple(c.image_shape)
            if img.shape[-3:] != want or img.ndim != (4 if batched else 3):
                raise ValueError(f"camera {key!r} must be {want} per observation, got {img.shape}")
            if img.dtype != np.uint8 and not np.all(np.isfinite(img)):
                raise ValueError(f"camera {key!r} contains NaN/inf")
            images[key] = img if batched else img[None]
        return arr, images, batched

    def _observe(self, obs: Any) -> bool:
        """Validate ``obs`` and push it into the history (first-observation padding after a
        reset); returns whether it is a batch."""
        arr, images, batched = self.split_obs(obs)
        T = self.config.obs_horizon
        if self._obs_buf is not None and self._obs_buf.shape[0] != arr.shape[0]:
            raise ValueError(
                f"batch size changed from {self._obs_buf.shape[0]} to {arr.shape[0]} "
                "without reset()"
            )
        if self._obs_buf is None:
            self._obs_buf = np.repeat(arr[:, None], T, axis=1)
            self._img_buf = {k: np.repeat(v[:, None], T, axis=1) for k, v in images.items()}
        else:
            self._obs_buf = np.concatenate([self._obs_buf[:, 1:], arr[:, None]], axis=1)
            self._img_buf = {
                k: np.concatenate([self._img_buf[k][:, 1:], v[:, None]], axis=1)
                for k, v in images.items()
            }
        return batched

    def _replan(self) -> np.ndarray:
        """Sample from the current history: the executable chunk (B, T_p − T_o + 1, A)."""
        assert self._obs_buf is not None
        seqs = self.sample(self._obs_buf, self._img_buf)
        self._plan, self._pos = seqs[:, self.config.obs_horizon - 1 :], 0
        return self._plan

    def act(self, obs: Any) -> np.ndarray:
        """obs (D,) -> action (A,) float64, or a batch (B, D) -> (B, A): the next action of
        the queue, planning T_p actions when the T_a of the last plan are used up."""
        batched = self._observe(obs)
        if self._plan is None or self._pos >= self.config.action_horizon:
            self._replan()
        assert self._plan is not None
        action = self._plan[:, self._pos].copy()
        self._pos += 1
        return action if batched else action[0]

    def act_chunk(self, obs: Any) -> np.ndarray:
        """Observe ``obs`` (D,) / (B, D) and plan now: the executable chunk (T_p − T_o + 1, A)
        / (B, ...), row 0 the action for this step; the queue continues from row 1 (a
        following ``act`` executes row 1 unless T_a rows are used). An explicit history
        (B, T_o, D) is sampled without touching the policy's state."""
        arr = obs if isinstance(obs, dict) else np.asarray(obs)
        if not isinstance(arr, dict) and arr.ndim == 3 and not self.config.image_keys:
            return self.sample(self._check_histories(arr))[:, self.chunk_offset :]
        batched = self._observe(obs)
        chunk = self._replan().copy()
        self._pos = 1
        return chunk if batched else chunk[0]

    # ------------------------------------------------------------------ chunk API
    @property
    def chunk_len(self) -> int:
        """Length of :meth:`predict_chunk`'s chunks: T_p."""
        return int(self.config.pred_horizon)

    @property
    def chunk_offset(self) -> int:
        """Row of :meth:`predict_chunk`'s chunks that is the action for "now": T_o − 1 (the
        rows before it belong to the older observations of the history)."""
        return int(self.config.obs_horizon) - 1

    @property
    def action_horizon(self) -> int:
        """T_a, actions executed per plan (the chunk filters execute as many)."""
        return int(self.config.action_horizon)

    @property
    def action_scale(self) -> np.ndarray:
        """(A,) half the data range of each action dimension (its [-1, 1] normalisation):
        the raw size of one normalised unit of a constraint bound."""
        return self.action_norm.half_range.detach().double().cpu().numpy().copy()

    def observe(self, obs: Any) -> None:
        """Push ``obs`` (D,) / (B, D) into the observation history without planning: what a
        chunk filter calls on the steps it executes from its own queue, so the history the
        next :meth:`predict_chunk` conditions on holds the last T_o observations."""
        self._observe(obs)

    def predict_chunk(self, obs: Any) -> np.ndarray:
        """The full predicted sequence (T_p, A) (or (B, T_p, A)); row ``chunk_offset`` =
        T_o − 1 is the action for this step. ``obs`` (D,) / (B, D): observed into the
        history first; the policy's own action queue is emptied (a chunk filter executes
        the chunk, so a later :meth:`act` plans anew instead of executing it twice). An
        explicit history (B, T_o, D) is sampled without touching the policy's state."""
        arr = obs if isinstance(obs, dict) else np.asarray(obs)
        if not isinstance(arr, dict) and arr.ndim == 3 and not self.config.image_keys:
            return self.sample(self._check_histories(arr))
        batched = self._observe(obs)
        assert self._obs_buf is not None
        seqs = self.sample(self._obs_buf, self._img_buf)
        self._plan, self._pos = None, 0
        return seqs if batched else seqs[0]

    def _check_histories(self, arr: np.ndarray) -> np.ndarray:
        """Explicit observation histories (B, T_o, D) -> float32; ValueError otherwise."""
        c = self.config
        if arr.shape[1:] != (c.obs_horizon, c.obs_dim) or not np.all(np.isfinite(arr)):
            raise ValueError(
                f"observation histories must be finite (B, {c.obs_horizon}, {c.obs_dim}), "
                f"got {arr.shape}"
            )
        return arr.astype(np.float32)

    def planned_inputs(self) -> tuple[np.ndarray, float] | None:
        """The rest of the current plan (T, A), from the action returned last, and
        ``config.control_dt`` [s]; None before the first act after reset or for a batch."""
        if self._plan is None or self._plan.shape[0] != 1:
            return None
        return self._plan[0, max(self._pos - 1, 0) :].copy(), float(self.config.control_dt)

    # ------------------------------------------------------------------ env check
    def check_env(self, env: Any) -> None:
        """ValueError naming both layouts unless ``env`` (a gymnasium env) gives the
        observation layout and takes the action size this checkpoint was trained with."""
        c = self.config
        base = env.unwrapped
        env_layout = getattr(base, "obs_layout", None)
        layout = (
            tuple((k, int(a), int(b)) for k, (a, b) in env_layout.items()) if env_layout else None
        )
        space = env.observation_space
        shape = getattr(space, "shape", None)
        env_obs_dim = (
            int(shape[0]) if shape and len(shape) == 1 else (layout[-1][2] if layout else None)
        )
        act_shape = getattr(env.action_space, "shape", None) or ()
        env_action_dim = int(act_shape[0]) if len(act_shape) == 1 else None
        problems = env_obs_dim != c.obs_dim or env_action_dim != c.action_dim
        problems = problems or bool(c.obs_layout and layout and layout != c.obs_layout)
        if problems:
            env_id = getattr(getattr(env, "spec", None), "id", None) or type(base).__name__
            raise ValueError(
                f"checkpoint trained on {c.env_id or 'an unnamed env'} (obs layout "
                f"{_layout_str(c.obs_layout)}, obs_dim {c.obs_dim}, action_dim {c.action_dim}) "
                f"does not fit env {env_id} (obs layout {_layout_str(layout)}, obs_dim "
                f"{env_obs_dim}, action_dim {env_action_dim})"
            )


def _layout_str(layout: Any) -> str:
    if not layout:
        return "unknown"
    return "[" + ", ".join(f"{k}:{a}-{b}" for k, a, b in layout) + "]"
