"""The one training loop of every trainable policy: data -> model -> loss -> step -> log.

Policies supply ``loss(batch) -> (loss, info)``; this module owns AdamW, the optional
warm-up + cosine learning rate, EMA of the weights, validation each epoch, TensorBoard
scalars and checkpoints. Output folder (``TrainConfig.out``)::

    train_config.json        the TrainConfig of the first run
    tb/                      TensorBoard event files (train/loss, train/lr, val/loss, ...)
    last/                    the policy to evaluate (EMA weights if EMA is on), loadable with
                             ``ampczoo.load_policy``, plus train_state.safetensors (raw
                             weights, EMA weights, optimizer tensors, RNG state) and
                             train_state.json (step, epoch, optimizer scalars, best loss)
    best/                    the policy with the lowest validation loss so far
    step-NNNNNNN/            with ``keep_checkpoints`` K > 0: the policy (EMA weights if EMA
                             is on) every ``checkpoint_every`` epochs, the last K kept (the
                             DiffOG paper evaluates the last 10: ``ampczoo bench manipulation
                             --checkpoints last:K``)
    last/, best/ card.json   what it is: env id, data, command line, date (ampczoo.core.card)

No pickle: optimizer state tensors go to safetensors, its scalars to JSON. ``resume`` restarts
from ``last/`` at the next epoch; on CPU the continued run equals an uninterrupted one
bit for bit (data order is seeded per epoch, the global torch RNG state is restored).
The learning rate is a function of the step and of the run's configured length, so a run
resumed with another ``epochs`` / ``max_steps`` follows the schedule of a run configured that
way from the start (the rate jumps to it at the resume step; a notice says so).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import random
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ampczoo.core.checkpoint import (
    PretrainedPolicy,
    default_device,
    optimizer_from_flat,
    optimizer_to_flat,
)
from ampczoo.core.registry import make_policy, policy_class, policy_types

STATE_TENSORS = "train_state.safetensors"
STATE_JSON = "train_state.json"
SNAPSHOT_PREFIX = "step-"


def snapshot_folders(out: str | Path) -> list[Path]:
    """The ``step-NNNNNNN/`` policy snapshots of a run folder, oldest first."""
    found = []
    for path in Path(out).glob(f"{SNAPSHOT_PREFIX}*"):
        step = path.name[len(SNAPSHOT_PREFIX) :]
        if path.is_dir() and step.isdigit() and (path / "config.json").is_file():
            found.append((int(step), path))
    return [path for _, path in sorted(found)]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (``ampczoo train POLICY``)."""

    policy: str
    """policy type: a trainable name of the registry (:func:`trainable_policy_types`)"""
    data: str
    """Zarr episode store to train on (written by ``ampczoo collect``)"""
    out: str = "runs/train"
    """run folder: train_config.json, tb/, last/, best/"""
    epochs: int = 10
    """passes over the train split"""
    max_steps: int | None = None
    """stop after this many optimizer steps in total (None = no cap)"""
    batch_size: int = 256
    """samples (or windows) per optimizer step"""
    lr: float = 1e-3
    """AdamW learning rate (peak of the cosine schedule)"""
    weight_decay: float = 1e-4
    """AdamW weight decay"""
    cosine: bool = True
    """linear warm-up, then cosine decay of the learning rate to 0 over the run (else
    constant)"""
    warmup_steps: int = 100
    """length of the linear warm-up [optimizer steps]"""
    grad_clip: float = 1.0
    """max global gradient norm (0 = off)"""
    ema_decay: float | None = None
    """decay of the EMA of the weights, warmed up as min(decay, (1 + step) / (10 + step))
    (None = the policy's default: 0.995 for DAMPC, off for LSM; 0 = off)"""
    seed: int = 0
    """seeds everything, including the episode split"""
    val_fraction: float = 0.1
    """fraction of episodes held out for validation (model selection: best/)"""
    test_fraction: float = 0.0
    """fraction of further episodes held out for a final test loss of best/ (reported, never
    used for selection)"""
    patience: int | None = None
    """stop when the validation loss has not improved for this many epochs (None = train all
    epochs)"""
    device: str | None = None
    """torch device, "cuda" | "cpu" (None = cuda if available)"""
    resume: bool = False
    """continue from out/last (else an existing run folder is refused)"""
    keep_checkpoints: int = 0
    """also save the policy as out/step-NNNNNNN/ every ``checkpoint_every`` epochs and keep
    the last this many (0 = only last/ and best/)"""
    checkpoint_every: int = 1
    """epochs between two step-NNNNNNN/ snapshots (with keep_checkpoints > 0)"""
    policy_overrides: dict[str, Any] = field(default_factory=dict, hash=False)
    """config fields of the policy that differ from its defaults (obs_dim, horizon and, where
    the config has it, action_dim come from the data unless given; a ``history`` field makes
    the datasets serve history windows of that length). A diffusion policy given
    num_train_timesteps N but not num_inference_steps samples with min(N, its default) steps."""

    def __post_init__(self) -> None:
        if self.policy not in trainable_policy_types():
            policy_class(self.policy)  # unknown type: lists every registered one
            raise ValueError(
                f"policy type {self.policy!r} is not trainable (an expert?); choose from "
                f"{trainable_policy_types()}"
            )
        if not self.data:
            raise ValueError("data (path of a Zarr episode store) is required")
        for name in ("epochs", "batch_size", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps <= 0:
            raise ValueError(f"max_steps must be > 0, got {self.max_steps}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.patience is not None and self.patience <= 0:
            raise ValueError(f"patience must be > 0, got {self.patience}")
        if self.keep_checkpoints < 0:
            raise ValueError(f"keep_checkpoints must be >= 0, got {self.keep_checkpoints}")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {self.test_fraction}")
        overrides = with_derived_fields(self.policy, dict(self.policy_overrides))
        object.__setattr__(self, "policy_overrides", overrides)


def trainable_policy_types() -> list[str]:
    """Registered policy types that this loop can train: subclasses of
    :class:`~ampczoo.core.checkpoint.PretrainedPolicy` (they have ``loss``; experts do not)."""
    return [
        name
        for name in policy_types()
        if isinstance(cls := policy_class(name), type) and issubclass(cls, PretrainedPolicy)
    ]


def with_derived_fields(policy: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` plus the policy config fields that follow from them: a diffusion policy
    trained with N = ``num_train_timesteps`` steps samples with min(N, default
    num_inference_steps) steps unless ``num_inference_steps`` is given (it must divide N)."""
    defaults = config_fields(policy)
    if (
        "num_train_timesteps" in overrides
        and "num_inference_steps" in defaults
        and "num_inference_steps" not in overrides
    ):
        n = int(overrides["num_train_timesteps"])
        overrides["num_inference_steps"] = min(n, int(defaults["num_inference_steps"]))
    return overrides


def config_fields(policy: str) -> dict[str, Any]:
    """Field name -> default of the config class of policy type ``policy`` ({} for types
    without a config class)."""
    config_class = getattr(policy_class(policy), "config_class", None)
    if config_class is None:
        return {}
    return {f.name: f.default for f in dataclasses.fields(config_class)}


def dataset_kwargs(policy: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The :class:`~ampczoo.data.DemonstrationDataset` arguments a policy type trains on: its
    class's ``dataset_kwargs(fields)`` where it has one (Diffusion Policy: observation and
    action windows), else ``history`` and ``action_horizon`` = the config's ``horizon``."""
    fields = {**config_fields(policy), **overrides}
    hook = getattr(policy_class(policy), "dataset_kwargs", None)
    if hook is not None:
        return dict(hook(fields))
    history = fields.get("history", 0)
    horizon = fields.get("horizon", 1)
    return {
        "history": int(history) if isinstance(history, int) else 0,
        "action_horizon": int(horizon) if isinstance(horizon, int) else 1,
    }


class _LossModule(nn.Module):
    """forward(batch) = policy.loss(batch), so DDP can wrap the loss of any policy."""

    def __init__(self, policy: nn.Module):
        super().__init__()
        self.policy = policy

    def forward(self, batch: dict[str, torch.Tensor]) -> Any:
        return self.policy.loss(batch)  # type: ignore[operator]


@dataclass(frozen=True)
class DistContext:
    """Data-parallel training under ``torchrun`` (torch DDP; gloo on CPU, NCCL on CUDA).

    Every process holds the whole model and the same data order; each optimizer step's global
    batch (``batch_size`` rows) is split into ``world`` contiguous shards, one per process,
    and DDP averages the gradients, each shard's loss weighted by its share of the batch, so
    the update equals one process's on the whole batch. Only rank 0 writes files."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @classmethod
    def from_env(cls, device: torch.device) -> DistContext:
        """From torchrun's WORLD_SIZE / RANK / LOCAL_RANK (one process without them); joins
        the process group."""
        import os

        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_world_size(), dist.get_rank(), local_rank)

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run folder."""
        return self.rank == 0

    def wrap(self, policy: nn.Module) -> Any:
        """batch -> (loss, info): ``policy.loss``, through DDP when world > 1."""
        if self.world == 1:
            return policy.loss  # type: ignore[operator]
        from torch.nn.parallel import DistributedDataParallel

        cuda = next(policy.parameters()).device.type == "cuda"
        return DistributedDataParallel(
            _LossModule(policy),
            device_ids=[self.local_rank] if cuda else None,
            broadcast_buffers=False,
        )

    def shard(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(this process's rows of the global batch ``idx``, their positions in it)."""
        if self.world == 1:
            return idx, torch.arange(len(idx))
        rows = torch.arange(len(idx)).tensor_split(self.world)[self.rank]
        return idx[rows], rows

    def global_mean(self, loss: torch.Tensor, share: float) -> torch.Tensor:
        """The global batch's mean loss from this shard's mean and its ``share`` of it."""
        if self.world == 1:
            return loss
        import torch.distributed as dist

        total = (loss * share).clone()
        dist.all_reduce(total)
        return total


class _NullWriter:
    """TensorBoard writer of the processes that do not write (rank > 0)."""

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class EMA:
    """Exponential moving average of a module's parameters (buffers are copied)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Blend in ``model`` with decay min(decay, (1 + step) / (10 + step))."""
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        for s, p in zip(self.model.parameters(), model.parameters(), strict=True):
            s.lerp_(p.detach(), 1.0 - d)
        for s, b in zip(self.model.buffers(), model.buffers(), strict=True):
            s.copy_(b)


# ----------------------------------------------------------------------------- state i/o
def _prefixed(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def _unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


# ----------------------------------------------------------------------------- trainer
class Trainer:
    """Runs :class:`TrainConfig`; see the module docstring for what it writes."""

    def __init__(self, cfg: TrainConfig):
        from ampczoo.data.dataset import DemonstrationDataset

        self.cfg, self.out = cfg, Path(cfg.out)
        self.device = torch.device(cfg.device) if cfg.device else default_device()
        self.dist = DistContext.from_env(self.device)
        if self.dist.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        seed_everything(cfg.seed)
        kw = {
            **dataset_kwargs(cfg.policy, cfg.policy_overrides),
            "test_fraction": cfg.test_fraction,
        }
        self.train_ds = DemonstrationDataset(cfg.data, "train", cfg.val_fraction, cfg.seed, **kw)
        self.val_ds = DemonstrationDataset(cfg.data, "val", cfg.val_fraction, cfg.seed, **kw)
        self.test_ds = DemonstrationDataset(cfg.data, "test", cfg.val_fraction, cfg.seed, **kw)
        if len(self.train_ds) == 0:
            raise ValueError(f"no training samples in {cfg.data}")
        self.step, self.epoch, self.best, self.stale = 0, 0, math.inf, 0
        last = self.out / "last"
        if cfg.resume and (last / STATE_JSON).is_file():
            self._restore(last)
        else:
            if (last / STATE_JSON).exists():
                raise FileExistsError(
                    f"{last} exists: pass resume=True (--resume) or use another output folder"
                )
            self._build()

    # ------------------------------------------------------------------ setup
    def _build(self) -> None:
        cfg = self.cfg
        overrides = self.data_fields()
        overrides.update(cfg.policy_overrides)
        self.policy: PretrainedPolicy = make_policy(cfg.policy, **overrides)
        self.policy.set_normalization(self.train_ds.normalization_stats())
        self.policy.to(self.device)
        self._make_optim()
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            cfg_json = json.dumps(dataclasses.asdict(cfg), indent=2, default=str)
            (self.out / "train_config.json").write_text(cfg_json + "\n")

    def data_fields(self) -> dict[str, Any]:
        """Config fields that come from the data: obs_dim, horizon and, where the config has
        them, action_dim, the env id and the env's obs_layout recorded in the store."""
        fields = config_fields(self.cfg.policy)
        out: dict[str, Any] = {"obs_dim": self.train_ds.obs_dim}
        if "horizon" in fields:
            out["horizon"] = self.train_ds.horizon
        if "action_dim" in fields:
            out["action_dim"] = int(self.train_ds.u_seq.shape[2])
        attrs = self.train_ds.attrs
        if "env_id" in fields and isinstance(attrs.get("env"), str):
            out["env_id"] = attrs["env"]
        if "obs_layout" in fields and isinstance(attrs.get("obs_layout"), dict):
            out["obs_layout"] = tuple(
                (k, int(a), int(b)) for k, (a, b) in attrs["obs_layout"].items()
            )
        hook = getattr(policy_class(self.cfg.policy), "config_from_data", None)
        if hook is not None:  # refiners: the suite's preset, a refine-mode base's layout
            out.update(hook({**fields, **out, **self.cfg.policy_overrides}, attrs))
        return out

    def _make_optim(self) -> None:
        cfg = self.cfg
        self.opt = torch.optim.AdamW(
            self.policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        decay = cfg.ema_decay if cfg.ema_decay is not None else self.policy.default_ema_decay
        self.ema = EMA(self.policy, decay) if decay > 0 else None
        self.loss_fn = self.dist.wrap(self.policy)

    def _restore(self, last: Path) -> None:
        from safetensors.torch import load_file

        meta = json.loads((last / STATE_JSON).read_text())
        cls = policy_class(self.cfg.policy)
        self.policy = cls.from_pretrained(last, device="cpu")
        tensors = load_file(str(last / STATE_TENSORS))
        self.policy.load_state_dict(_unprefixed("model", tensors))
        self.policy.to(self.device).train()
        self._make_optim()
        if self.ema is not None:
            self.ema.model.load_state_dict(_unprefixed("ema", tensors))
        optimizer_from_flat(self.opt, tensors, meta["optimizer"])
        torch.set_rng_state(tensors["rng.torch"])
        if torch.cuda.is_available() and "rng.cuda" in meta:
            torch.cuda.set_rng_state_all([tensors[f"rng.cuda.{i}"] for i in meta["rng.cuda"]])
        self.step, self.epoch, self.best = meta["step"], meta["epoch"], meta["best_val"]
        self.stale = meta.get("stale_epochs", 0)
        self._notice_schedule_change(meta.get("schedule_total"))

    def _notice_schedule_change(self, saved_total: int | None) -> None:
        """Say so on stderr when the resumed run's length differs from the saved one's: the
        cosine then continues on the new length's curve, not the old one's."""
        total = self.total_steps()
        if not self.cfg.cosine or saved_total in (None, total) or not self.dist.is_main:
            return
        before, after = self._lr_for(saved_total, self.step), self.lr_at(self.step)
        print(
            f"resume: the run is now {total} optimizer steps long (was {saved_total}); the "
            f"learning rate at step {self.step} goes from {before:.3g} to {after:.3g} (the "
            f"schedule of a {total}-step run)",
            file=sys.stderr,
        )

    # ------------------------------------------------------------------ loop
    # ------------------------------------------------------------------ batches
    def sequence_length(self) -> int:
        """Window length of recurrent policies (``policy.sequence_length``, e.g. LeTO's T_s);
        1 = independent samples."""
        return int(getattr(self.policy, "sequence_length", 1))

    def rows(self, ds: Any) -> torch.Tensor:
        """The sample (or window start) indices an epoch iterates over."""
        L = self.sequence_length()
        return torch.arange(len(ds)) if L == 1 else torch.from_numpy(ds.window_starts(L))

    def batch(self, ds: Any, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"obs": (B, obs_dim), "u_seq": (B, N, 7)}, or (B, L, ...) windows for L > 1."""
        L = self.sequence_length()
        if L == 1:  # the dataset's own batch (adds "obs_history" for history policies)
            return {k: v.to(self.device) for k, v in ds.batch(idx).items()}
        return {k: v.to(self.device) for k, v in ds.window_batch(idx, L).items()}

    def total_steps(self) -> int:
        per_epoch = math.ceil(len(self.rows(self.train_ds)) / self.cfg.batch_size)
        total = per_epoch * self.cfg.epochs
        return min(total, self.cfg.max_steps) if self.cfg.max_steps else total

    def lr_at(self, step: int) -> float:
        """Warm-up then cosine to 0 (or constant when ``cosine`` is off)."""
        return self._lr_for(self.total_steps(), step)

    def _lr_for(self, total: int, step: int) -> float:
        """The learning rate at ``step`` of a ``total``-step run."""
        cfg = self.cfg
        if not cfg.cosine:
            return cfg.lr
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        span = max(total - cfg.warmup_steps, 1)
        return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * min((step - cfg.warmup_steps) / span, 1.0)))

    def run(self) -> dict[str, Any]:
        """Train to ``epochs`` (or ``max_steps``); returns a summary dict."""
        from torch.utils.tensorboard import SummaryWriter

        writer: Any = (
            SummaryWriter(str(self.out / "tb"), purge_step=self.step or None)
            if self.dist.is_main
            else _NullWriter()
        )
        val = math.nan
        try:
            while (
                self.epoch < self.cfg.epochs
                and not self._steps_done()
                and not self._patience_done()
            ):
                train_loss = self._train_epoch(writer)
                val = self.validate()
                writer.add_scalar("val/loss", val, self.step)
                writer.add_scalar("train/epoch_loss", train_loss, self.step)
                self.epoch += 1
                self._checkpoint(val)
        finally:
            writer.close()
        summary = {
            "step": self.step,
            "epoch": self.epoch,
            "val_loss": val,
            "best_val_loss": self.best,
            "stopped_early": self._patience_done(),
            "out": str(self.out),
        }
        if self.dist.is_main and len(self.test_ds) and (self.out / "best").is_dir():
            best = policy_class(self.cfg.policy).from_pretrained(
                self.out / "best", device=self.device
            )
            summary["test_loss"] = self.evaluate(best, self.test_ds)
            (self.out / "test_loss.json").write_text(
                json.dumps(
                    {
                        "test_loss": summary["test_loss"],
                        "best_val_loss": self.best,
                        "test_episodes": len(self.test_ds.episode_ids),
                    },
                    indent=2,
                )
                + "\n"
            )
        return summary

    def _patience_done(self) -> bool:
        return self.cfg.patience is not None and self.stale >= self.cfg.patience

    def _steps_done(self) -> bool:
        return self.cfg.max_steps is not None and self.step >= self.cfg.max_steps

    def _train_epoch(self, writer: Any) -> float:
        from tqdm.auto import tqdm

        rows = self.rows(self.train_ds)
        cfg, n = self.cfg, len(rows)
        perm = torch.randperm(
            n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + self.epoch)
        )
        self.policy.train()
        losses = []
        bar = tqdm(
            range(0, n, cfg.batch_size),
            desc=f"epoch {self.epoch}",
            leave=False,
            disable=None if self.dist.is_main else True,
        )
        for start in bar:
            if self._steps_done():
                break
            idx = rows[perm[start : start + cfg.batch_size]]
            if len(idx) < self.dist.world:  # too few rows to give every process one
                continue
            loss, info = self._train_step(idx)
            losses.append(loss)
            bar.set_postfix(loss=f"{loss:.4g}")
            writer.add_scalar("train/loss", loss, self.step)
            writer.add_scalar("train/lr", self.opt.param_groups[0]["lr"], self.step)
            for key, value in info.items():
                writer.add_scalar(f"train/{key}", value, self.step)
        return float(np.mean(losses)) if losses else math.nan

    def _train_step(self, idx: torch.Tensor) -> tuple[float, dict[str, float]]:
        shard, rows = self.dist.shard(idx)
        batch = self.batch(self.train_ds, shard)
        if self.dist.world > 1:
            batch["global_rows"] = rows.to(self.device)
            batch["global_size"] = torch.tensor(len(idx))
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.step)
        loss, info = self.loss_fn(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {float(loss)} at step {self.step}")
        self.opt.zero_grad(set_to_none=True)
        # DDP averages gradients over processes: weighting each shard's mean loss by its
        # share of the global batch gives the gradient of the global batch mean
        (loss * (self.dist.world * len(shard) / len(idx))).backward()
        loss = self.dist.global_mean(loss.detach(), len(shard) / len(idx))
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.policy.parameters(), self.cfg.grad_clip)
        self.opt.step()
        if self.ema is not None:
            self.ema.update(self.policy, self.step)
        self.step += 1
        return float(loss.detach()), info

    def eval_policy(self) -> PretrainedPolicy:
        """The weights to evaluate and ship: EMA if on, else the raw ones."""
        return self.ema.model if self.ema is not None else self.policy  # type: ignore

    def validate(self) -> float:
        """Mean loss over the val split (the train split if val is empty)."""
        ds = self.val_ds if len(self.rows(self.val_ds)) else self.train_ds
        return self.evaluate(self.eval_policy(), ds)

    @torch.no_grad()
    def evaluate(self, model: PretrainedPolicy, ds: Any) -> float:
        """Mean loss of ``model`` over dataset ``ds``, with a fixed RNG so epochs are
        comparable and training randomness is untouched."""
        was_training = model.training
        model.eval()
        total, count = 0.0, 0
        with torch.random.fork_rng(devices=[] if self.device.type == "cpu" else None):
            torch.manual_seed(self.cfg.seed)
            rows = self.rows(ds)
            for start in range(0, len(rows), self.cfg.batch_size):
                batch = self.batch(ds, rows[start : start + self.cfg.batch_size])
                loss, _ = model.loss(batch)
                total += float(loss) * len(batch["obs"])
                count += len(batch["obs"])
        model.train(was_training)
        return total / count

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint(self, val: float) -> None:
        from safetensors.torch import save_file

        if not self.dist.is_main:  # the same bookkeeping, no files
            self.stale = 0 if val < self.best else self.stale + 1
            self.best = min(self.best, val)
            return
        tmp = self.out / "last.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.eval_policy().save_pretrained(tmp)
        self._write_card(tmp, "last")
        tensors = _prefixed("model", self.policy)
        if self.ema is not None:
            tensors.update(_prefixed("ema", self.ema.model))
        opt_tensors, opt_meta = optimizer_to_flat(self.opt)
        tensors.update(opt_tensors)
        tensors["rng.torch"] = torch.get_rng_state()
        self.stale = 0 if val < self.best else self.stale + 1
        meta: dict[str, Any] = {
            "step": self.step,
            "epoch": self.epoch,
            "val_loss": val,
            "best_val": min(self.best, val),
            "stale_epochs": self.stale,
            "schedule_total": self.total_steps(),
            "optimizer": opt_meta,
        }
        if torch.cuda.is_available():
            states = torch.cuda.get_rng_state_all()
            tensors.update({f"rng.cuda.{i}": s for i, s in enumerate(states)})
            meta["rng.cuda"] = list(range(len(states)))
        save_file(tensors, str(tmp / STATE_TENSORS))
        (tmp / STATE_JSON).write_text(json.dumps(meta, indent=2) + "\n")
        _replace_dir(tmp, self.out / "last")
        if val < self.best:
            self.best = val
            best_tmp = self.out / "best.tmp"
            shutil.rmtree(best_tmp, ignore_errors=True)
            self.eval_policy().save_pretrained(best_tmp)
            self._write_card(best_tmp, "best")
            _replace_dir(best_tmp, self.out / "best")
        if self.cfg.keep_checkpoints and self.epoch % self.cfg.checkpoint_every == 0:
            self._snapshot()

    def _snapshot(self) -> None:
        """out/step-NNNNNNN/: the policy of last/ (no train state), then drop all but the
        newest ``keep_checkpoints`` of them."""
        name = f"{SNAPSHOT_PREFIX}{self.step:07d}"
        tmp = self.out / f"{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.eval_policy().save_pretrained(tmp)
        self._write_card(tmp, "snapshot")
        _replace_dir(tmp, self.out / name)
        for old in snapshot_folders(self.out)[: -self.cfg.keep_checkpoints]:
            shutil.rmtree(old)

    def _write_card(self, folder: Path, selection: str) -> None:
        """card.json beside a saved checkpoint (:mod:`ampczoo.core.card`): env id and counts
        of the store, data path, this command line, date, no result yet."""
        from ampczoo.core.card import training_card, write_card

        config = self.policy.config
        base = config.base if getattr(config, "mode", "") == "refine" else ""
        card = training_card(
            self.cfg.policy,
            self.cfg.data,
            self.train_ds.attrs,
            base=base,
            selection=selection,
            parameters=self.policy.num_parameters(),
        )
        write_card(folder, card)


def _replace_dir(src: Path, dst: Path) -> None:
    """Move src over dst (old dst removed after the move, so one of them always exists)."""
    old = dst.with_name(dst.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        dst.rename(old)
    src.rename(dst)
    shutil.rmtree(old, ignore_errors=True)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Build a :class:`Trainer` and run it."""
    return Trainer(cfg).run()
