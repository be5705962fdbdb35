"""Training loop of IKDiffuser (``ampczoo train ikdiffuser --robot panda ...``).

Generates (or resumes) the robot's data store (:mod:`ampczoo.ik.data`), then AdamW on the
epsilon loss with linear warm-up + cosine decay, optional EMA of the weights, validation and
checkpoints every N steps. Output folder (``--out``, default ``runs/ik/<robot>``)::

    train_config.json     the IKTrainConfig of the first run
    log.csv               step, lr, train loss (mean since the last row), validation median
                          position error [mm] / angle error [deg], wall time [s]
    tb/                   TensorBoard scalars (train/loss, train/lr, val/pos_mm, val/ang_deg)
    last/                 the model to use (EMA weights when EMA is on; config.json +
                          model.safetensors) + train_state.safetensors (raw weights, EMA,
                          optimizer tensors) + train_state.json (step, optimizer scalars)
    best/                 the model with the lowest validation position error so far

Validation: median errors of 1-sample solves (fixed generator) on ``val_poses`` poses of
configurations drawn with a seed the data never uses. The batch of step s is drawn from
``np.random.default_rng([seed, s])``, so a resumed run continues the same data order. This
module does not import ``ampczoo.training`` (a higher layer); its loop is the same shape.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ampczoo.core.checkpoint import optimizer_from_flat, optimizer_to_flat
from ampczoo.ik import data as ikdata
from ampczoo.ik.diffuser import IKDiffuser, IKDiffuserConfig
from ampczoo.ik.robots import list_robots, load_robot

STATE_TENSORS = "train_state.safetensors"
STATE_JSON = "train_state.json"
VAL_SEED = 987_654_321


@dataclass(frozen=True)
class IKTrainConfig:
    """One IKDiffuser training run."""

    robot: str = "panda"
    """robot (``ampczoo.ik.robots.list_robots()``); sets ``model.robot``"""
    data: str = ""
    """Zarr data store, generated / extended to ``samples`` rows when short ("" =
    data/ik/<robot>.zarr)"""
    samples: int = 1_048_576
    """training samples to generate (whole chunks of 65 536)"""
    reject_collisions: bool = True
    """drop self-colliding configurations from the data (ampczoo.ik.collision)"""
    out: str = ""
    """run folder ("" = runs/ik/<robot>); an existing run resumes from its last/"""
    steps: int = 20_000
    """optimizer steps in total"""
    batch_size: int = 512
    """samples per optimizer step"""
    lr: float = 1e-3
    """AdamW peak learning rate"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    warmup_steps: int = 200
    """linear warm-up [steps]"""
    cosine: bool = True
    """cosine decay of the learning rate to 0 at ``steps`` (else constant after warm-up)"""
    grad_clip: float = 1.0
    """max global gradient norm (0 = off)"""
    ema_decay: float = 0.999
    """EMA decay of the weights, warmed up as min(decay, (1 + step) / (10 + step)) (0 = off)"""
    checkpoint_every: int = 500
    """validate and write last/ (and best/) every this many steps"""
    val_poses: int = 200
    """held-out poses of the validation"""
    seed: int = 0
    """seeds the data, the batches, the model initialisation and the diffusion noise"""
    threads: int = 1
    """torch CPU threads"""
    model: IKDiffuserConfig = field(default_factory=IKDiffuserConfig)
    """architecture (its robot is replaced by ``robot``)"""

    def __post_init__(self) -> None:
        if self.robot not in list_robots():
            raise ValueError(f"unknown robot {self.robot!r}; choose from {list_robots()}")
        for name in ("samples", "steps", "batch_size", "checkpoint_every", "val_poses", "threads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_steps < 0 or self.grad_clip < 0:
            raise ValueError("need lr > 0, weight_decay >= 0, warmup_steps >= 0, grad_clip >= 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.model.robot != self.robot:
            object.__setattr__(self, "model", dataclasses.replace(self.model, robot=self.robot))

    @property
    def data_path(self) -> Path:
        return Path(self.data or f"data/ik/{self.robot}.zarr")

    @property
    def out_path(self) -> Path:
        return Path(self.out or f"runs/ik/{self.robot}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model"] = self.model.to_dict()
        return d


def validation_poses(robot: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Held-out (q (n, dof), poses (n, N_ee, 7)) drawn with a seed the data never uses."""
    q, poses = ikdata.draw_chunk(load_robot(robot), n, np.random.default_rng(VAL_SEED))
    return q, poses


def median_errors(model: IKDiffuser, poses: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Median position error [mm] and angle error [deg] of 1-sample solves of ``poses``."""
    sol = model.solve(poses, num_samples=1, generator=torch.Generator().manual_seed(seed))
    return (
        float(np.median(sol.position_error[:, 0]) * 1000),
        float(np.degrees(np.median(sol.angle_error[:, 0]))),
    )


class IKTrainer:
    """Holds the model, optimizer, EMA and data of one run (see the module docstring)."""

    def __init__(self, cfg: IKTrainConfig, log: Any = print):
        self.cfg, self.log = cfg, log
        self.out = cfg.out_path
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.model = IKDiffuser(cfg.model)
        self.ema = IKDiffuser(cfg.model, robot=self.model.robot).eval().requires_grad_(False)
        self.ema.load_state_dict(self.model.state_dict())
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.step, self.best = 0, math.inf
        self.data: ikdata.IKData | None = None

    def prepare_data(self) -> None:
        cfg = self.cfg
        ikdata.generate(
            cfg.data_path,
            cfg.robot,
            cfg.samples,
            cfg.seed,
            reject_collisions=cfg.reject_collisions,
            log=self.log,
        )
        self.data = ikdata.load(cfg.data_path, cfg.robot, cfg.samples)
        self.q = torch.from_numpy(self.data.q)
        self.poses = torch.from_numpy(self.data.poses)
        if self.step == 0:
            self.model.set_position_stats(self.data.poses)
            self.ema.pos_mean.copy_(self.model.pos_mean)
            self.ema.pos_std.copy_(self.model.pos_std)

    def lr_at(self, step: int) -> float:
        cfg = self.cfg
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        if not cfg.cosine:
            return cfg.lr
        frac = min((step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1), 1.0)
        return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * frac))

    def train_step(self) -> float:
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, self.step])
        idx = torch.from_numpy(rng.integers(0, len(self.q), cfg.batch_size))
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.step)
        self.model.train()
        loss = self.model.loss(self.q[idx], self.poses[idx], gen)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        self._update_ema()
        self.step += 1
        return float(loss.detach())

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.cfg.ema_decay
        d = min(decay, (1.0 + self.step) / (10.0 + self.step)) if decay > 0 else 0.0
        for s, p in zip(self.ema.parameters(), self.model.parameters(), strict=True):
            s.lerp_(p.detach(), 1.0 - d)

    def evaluated(self) -> IKDiffuser:
        """The model to validate and ship: EMA weights when EMA is on."""
        return self.ema if self.cfg.ema_decay > 0 else self.model

    # ------------------------------------------------------------- checkpoints
    def save(self, val_pos: float) -> None:
        from safetensors.torch import save_file

        last = self.out / "last"
        self.evaluated().save_pretrained(last)
        tensors = {f"model.{k}": v.contiguous() for k, v in self.model.state_dict().items()}
        tensors.update({f"ema.{k}": v.contiguous() for k, v in self.ema.state_dict().items()})
        opt_tensors, opt_meta = optimizer_to_flat(self.opt)
        tensors.update(opt_tensors)
        save_file(tensors, str(last / STATE_TENSORS))
        if val_pos < self.best:
            self.best = val_pos
            self.evaluated().save_pretrained(self.out / "best")
        state = {"step": self.step, "best_val_pos_mm": self.best, "optimizer": opt_meta}
        (last / STATE_JSON).write_text(json.dumps(state) + "\n")

    def restore(self) -> bool:
        """Continue from last/ when it has a train state; True when it did."""
        from safetensors.torch import load_file

        last = self.out / "last"
        if not (last / STATE_JSON).is_file():
            return False
        state = json.loads((last / STATE_JSON).read_text())
        tensors = load_file(str(last / STATE_TENSORS))
        self.model.load_state_dict(_strip("model.", tensors))
        self.ema.load_state_dict(_strip("ema.", tensors))
        optimizer_from_flat(self.opt, tensors, state["optimizer"])
        self.step, self.best = int(state["step"]), float(state["best_val_pos_mm"])
        return True

    # ------------------------------------------------------------- loop
    def run(self) -> dict[str, Any]:
        from torch.utils.tensorboard import SummaryWriter

        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        config_file = self.out / "train_config.json"
        if self.restore():
            previous = json.loads(config_file.read_text())
            if _trained_fields(previous["model"]) != _trained_fields(cfg.model.to_dict()):
                raise ValueError(f"{self.out}: resumes a run of another model config")
            self.log(f"resumed {self.out} at step {self.step}")
        else:
            config_file.write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        self.prepare_data()
        _, val_targets = validation_poses(cfg.robot, cfg.val_poses)
        writer = SummaryWriter(str(self.out / "tb"), purge_step=self.step or None)
        csv_file = self.out / "log.csv"
        new_csv = not csv_file.exists()
        t0, losses, result = time.perf_counter(), [], {}
        with csv_file.open("a", newline="") as fh:
            rows = csv.writer(fh)
            if new_csv:
                rows.writerow(["step", "lr", "train_loss", "val_pos_mm", "val_ang_deg", "wall_s"])
            try:
                while self.step < cfg.steps:
                    losses.append(self.train_step())
                    if self.step % cfg.checkpoint_every and self.step < cfg.steps:
                        continue
                    pos, ang = median_errors(self.evaluated(), val_targets)
                    loss = float(np.mean(losses))
                    losses = []
                    wall = time.perf_counter() - t0
                    rows.writerow(
                        [
                            self.step,
                            f"{self.lr_at(self.step - 1):.3g}",
                            f"{loss:.5f}",
                            f"{pos:.2f}",
                            f"{ang:.2f}",
                            f"{wall:.0f}",
                        ]
                    )
                    fh.flush()
                    for tag, value in (
                        ("train/loss", loss),
                        ("train/lr", self.lr_at(self.step - 1)),
                        ("val/pos_mm", pos),
                        ("val/ang_deg", ang),
                    ):
                        writer.add_scalar(tag, value, self.step)
                    self.save(pos)
                    result = {"step": self.step, "val_pos_mm": pos, "val_ang_deg": ang}
                    self.log(f"step {self.step}: loss {loss:.4f}, val {pos:.1f} mm {ang:.2f} deg")
            finally:
                writer.close()
        return {**result, "best_val_pos_mm": self.best, "out": str(self.out)}


def train(cfg: IKTrainConfig) -> dict[str, Any]:
    """Run (or resume) one training; returns the last validation and the run folder."""
    return IKTrainer(cfg).run()


def run_training(cfg: IKTrainConfig) -> int:
    """CLI entry of ``ampczoo train ikdiffuser``."""
    print(json.dumps(train(cfg), indent=2))
    return 0


#: config fields that only set sampling defaults: a resumed run may change them
SAMPLING_FIELDS = ("inference_steps", "clip_x0", "warm_start_scale", "manipulability_scale")


def _trained_fields(model_config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in model_config.items() if k not in SAMPLING_FIELDS}


def _strip(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
