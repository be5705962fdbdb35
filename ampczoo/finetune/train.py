"""``ampczoo finetune residual``: residual RL on a frozen base policy with stable-baselines3.

A run folder ``--out`` holds::

    run.json            the config of the run (a resumed run must be given the same one)
    tb/                 TensorBoard scalars (SB3's logger + eval/success_rate, eval/ci95_*)
    checkpoint/         model.zip + replay_buffer.pkl + state.json: the resume state, in
                        SB3's own format (only ever read back by ``--resume`` of this run)
    eval.jsonl          one line per evaluation (steps, wall_s, success_rate, ci95, ...)
    learning_curve.png  held-out success rate vs env steps
    best/, last/        the composed policy (``residual_rl``: config.json +
                        model.safetensors + card.json) of the best evaluation and of the end

Evaluations run the deterministic composed policy on the fixed held-out reset seeds
``eval_seed .. eval_seed + eval_episodes - 1`` (step 0 = the base itself: the residual starts
at zero). Success: the env's ``info["success"]`` at the last step, or final
``info["pos_error"] < success_pos_error`` when given (the 3-DOF benchmark's SR@2cm).
Reward: the env's own reward, plus ``success_bonus`` at every step where the env reports
``info["success"]`` (default 0).

Interrupted (Ctrl-C, killed): rerun the same command with ``--resume``; the run continues
from ``checkpoint/`` (written every ``checkpoint_every`` env steps and at the end), with its
replay buffer, step count and evaluation history.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ampczoo.finetune.evaluation import EvalResult, evaluate_policy, plot_learning_curve

#: ``--features`` choices: "auto" and residual_rl's FEATURES (a literal: importing that module
#: imports torch, which the CLI's --help should not; tests/finetune/test_train.py ties them)
FEATURE_CHOICES = (
    "auto",
    "none",
    "threedof_ee",
    "threedof_error",
    "kuka_kinematic",
    "kuka_error",
    "metaworld_grasp",
)
#: env id -> actor input features of ``features="auto"``
AUTO_FEATURES = {
    "ThreeDOF-Reach-v0": "threedof_ee",
    "DAMPC-KukaTrack-v0": "kuka_kinematic",
    "DAMPC-KukaTrackObstacle-v0": "kuka_kinematic",
}


@dataclass(frozen=True)
class RLConfig:
    """Fields shared by ``ampczoo finetune residual`` and ``ampczoo finetune bc``."""

    env: str = "ThreeDOF-Reach-v0"
    """registered env id"""
    algo: str = "sac"
    """RL algorithm: "sac", "td3" or "ppo" (stable-baselines3)"""
    steps: int = 100_000
    """env steps of online training (all envs together)"""
    out: str = "runs/finetune"
    """run folder (see the module docstring)"""
    resume: bool = False
    """continue the interrupted run in ``out`` from its last checkpoint"""
    seed: int = 0
    """training seed (networks, exploration, the envs' first reset)"""
    n_envs: int = 1
    """parallel envs (SubprocVecEnv when > 1)"""
    hidden_dim: int = 64
    """width of the hidden layers of actor and critic"""
    num_layers: int = 2
    """hidden layers of actor and critic"""
    actor_layers: int | None = None
    """hidden layers of the actor alone (None: ``num_layers``; 0: a linear actor on the
    input features, the critic keeps ``num_layers``)"""
    features: str = "auto"
    """actor/critic input features: "none", "threedof_ee", "threedof_error" (the 3-DOF
    end-effector error and velocity alone), "kuka_kinematic", "kuka_error" (the KUKA pose
    error alone), "metaworld_grasp" (the Meta-World grasp error alone) or "auto" (threedof_ee
    on ThreeDOF-Reach-v0,
    kuka_kinematic on the KUKA tracking envs, else none)"""
    learning_rate: float = 3e-4
    """Adam learning rate of actor and critic"""
    batch_size: int = 256
    """minibatch size"""
    buffer_size: int = 300_000
    """replay buffer size [transitions] (SAC / TD3)"""
    learning_starts: int = 1_000
    """env steps before the first gradient step (SAC / TD3; SB3 acts uniformly at random
    in [-1, 1] until then)"""
    gamma: float = 0.98
    """discount factor"""
    n_steps: int = 1024
    """rollout length per env of PPO"""
    init_std: float = 0.3
    """initial exploration std of the residual (in [-1, 1] units)"""
    actor_delay: int = 10_000
    """SAC / TD3: env steps during which only the critic learns (the actor stays at the
    initial policy: the base with zero residual; critic burn-in)"""
    n_step: int = 10
    """SAC / TD3: n-step returns of the critic's target (1 = the one-step TD target; larger
    values let the small per-step effect of a residual reach the critic sooner: on the 3-DOF
    arm only 10 learned, docs/results/finetune.md)"""
    actor_lr_scale: float = 0.3
    """SAC / TD3: the actor's learning rate relative to ``learning_rate`` (< 1: the actor
    follows the critic more slowly)"""
    residual_l2: float = 0.0
    """TD3: weight of the pull of the actor toward zero residual, TD3+BC style: actor loss
    -Q/mean|Q| + residual_l2 * mean(residual^2) in [-1, 1] units (0: SB3's own loss;
    :class:`~ampczoo.finetune.sb3.ResidualTD3`)"""
    target_noise: float = 0.2
    """TD3: std of the target policy smoothing noise (residual units; clipped at 2.5 x)"""
    gradient_steps: int = 1
    """SAC / TD3: gradient steps per env step (the update-to-data ratio)"""
    sde_sample_freq: int = 0
    """PPO: > 0 explores with generalized state-dependent exploration (gSDE, Raffin et al.
    2022; SB3's ``use_sde``): the noise is a random linear function of the actor's last
    hidden layer, redrawn every ``sde_sample_freq`` env steps, so it is smooth in time
    (a random feedback term) instead of white; its std per action is ``init_std`` times
    the norm of the hidden layer (64 tanh units: a few times ``init_std``). 0: white noise"""
    """SAC / TD3: gradient steps per env step (the update-to-data ratio)"""
    ent_coef: float = 0.01
    """SAC: initial entropy coefficient (tuned automatically from there; small, because the
    envs' rewards are small numbers per step)"""
    hold: int = 1
    """env steps each residual is held (the agent's action repeat; its reward = the sum over
    them). With ``hold`` > 1, ``steps``, ``learning_starts``, ``actor_delay``, ``n_steps``,
    ``eval_every`` and ``checkpoint_every`` count agent steps (``hold`` env steps each);
    the exported policy holds its residual the same way"""
    success_bonus: float = 0.0
    """reward added at every step where the env reports info["success"]"""
    error_shaping: float = 0.0
    """reward plus this times the decrease of info["pos_error"] [m] at every step
    (potential-based shaping; 0: off; see ResidualPolicyEnv)"""
    penetration_penalty: float = 0.0
    """reward minus this times info["penetration"] (the robot's deepest penetration into
    the observed obstacle, as a fraction of its radius) at every step (0: off)"""
    success_pos_error: float | None = None
    """evaluation success = final info["pos_error"] < this [m]; None: the env's success"""
    eval_every: int = 10_000
    """env steps between evaluations"""
    eval_episodes: int = 50
    """held-out episodes per evaluation"""
    eval_seed: int = 300_000
    """reset seed of the first held-out evaluation episode"""
    checkpoint_every: int = 20_000
    """env steps between resume checkpoints"""
    norm_episodes: int = 5
    """base rollouts (zero residual) that measure the input statistics"""
    threads: int = 1
    """torch threads"""
    progress: bool = True
    """show a progress bar"""

    def __post_init__(self) -> None:
        from ampczoo.finetune.sb3 import ALGOS

        if self.algo not in ALGOS:
            raise ValueError(f"unknown algorithm {self.algo!r}; choose from {ALGOS}")
        if self.features not in FEATURE_CHOICES:
            raise ValueError(f"features must be one of {FEATURE_CHOICES}, got {self.features!r}")
        positive = (
            "steps n_envs hidden_dim num_layers batch_size buffer_size n_steps eval_every "
            "gradient_steps hold "
            "eval_episodes checkpoint_every norm_episodes threads"
        ).split()
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.learning_starts < 0 or self.actor_delay < 0:
            raise ValueError("learning_starts and actor_delay must be >= 0")
        layers = self.actor_layers
        if layers is not None and (isinstance(layers, bool) or not isinstance(layers, int)):
            raise ValueError(f"actor_layers must be an integer >= 0 or None, got {layers!r}")
        if layers is not None and layers < 0:
            raise ValueError(f"actor_layers must be >= 0 (0: linear), got {layers}")
        if not 0 < self.learning_rate < 1 or not 0 < self.gamma <= 1 or not self.init_std > 0:
            raise ValueError("learning_rate in (0, 1), gamma in (0, 1], init_std > 0 required")
        if self.n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {self.n_step}")
        if not 0 < self.actor_lr_scale <= 10:
            raise ValueError(f"actor_lr_scale must be in (0, 10], got {self.actor_lr_scale}")
        if not (np.isfinite(self.residual_l2) and self.residual_l2 >= 0):
            raise ValueError(f"residual_l2 must be finite and >= 0, got {self.residual_l2}")
        if self.residual_l2 and self.algo != "td3":
            raise ValueError(f"residual_l2 is a TD3 option, not one of {self.algo!r}")
        if not (np.isfinite(self.target_noise) and self.target_noise >= 0):
            raise ValueError(f"target_noise must be finite and >= 0, got {self.target_noise}")
        if self.sde_sample_freq < 0 or (self.sde_sample_freq and self.algo != "ppo"):
            raise ValueError(
                f"sde_sample_freq must be >= 0 and is a PPO option, got {self.sde_sample_freq}"
            )
        if not self.ent_coef > 0:
            raise ValueError(f"ent_coef must be > 0, got {self.ent_coef}")
        if not np.isfinite(self.success_bonus):
            raise ValueError(f"success_bonus must be finite, got {self.success_bonus}")
        if not (np.isfinite(self.penetration_penalty) and self.penetration_penalty >= 0):
            raise ValueError(
                f"penetration_penalty must be finite and >= 0, got {self.penetration_penalty}"
            )
        if not (np.isfinite(self.error_shaping) and self.error_shaping >= 0):
            raise ValueError(f"error_shaping must be finite and >= 0, got {self.error_shaping}")
        if self.success_pos_error is not None and not self.success_pos_error > 0:
            raise ValueError(f"success_pos_error must be > 0, got {self.success_pos_error}")

    def resolved_features(self) -> str:
        """``features`` with "auto" resolved for ``env``."""
        return AUTO_FEATURES.get(self.env, "none") if self.features == "auto" else self.features


@dataclass(frozen=True)
class ResidualRunConfig(RLConfig):
    """``ampczoo finetune residual``: residual RL (SAC / TD3 / PPO) on a frozen base policy
    (see :mod:`ampczoo.finetune.train`)."""

    base: str = "threedof-ffn-h10"
    """zoo name or checkpoint folder of the frozen base policy"""
    scale: tuple[float, ...] = ()
    """residual scale in env action units, one number or one per action dimension
    (default: a tenth of the half range of the action space); task spaces: the bound of
    the joint residual the twist maps to [rad/s]"""
    residual_space: str = "joint"
    """"joint": the agent's action is the residual in action units; "task": an
    end-effector twist (6) mapped to joint velocities by the damped least-squares inverse
    of the Jacobian, then clipped to +-scale; "task_position": its linear part only (3)
    (the KUKA envs); "task_force": an end-effector force (3) mapped to joint torques by
    J(q)^T, then clipped to +-scale (ThreeDOF-Reach-v0; :mod:`ampczoo.finetune.residual_env`)"""
    twist_scale: tuple[float, ...] = ()
    """task spaces: twist per unit of agent action, linear [m/s] then angular [rad/s]; one
    number each (2: linear, angular) or one per axis (6; "task_position": 1 or 3);
    "task_force": force per unit [N], 1 or 3 numbers"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.base:
            raise ValueError("base must name a zoo policy or a checkpoint folder")
        if any(not np.isfinite(s) or s <= 0 for s in self.scale):
            raise ValueError(f"residual scale must be finite and > 0, got {self.scale}")
        from ampczoo.policies.residual_rl import check_residual_space

        if self.residual_space != "joint" and not self.twist_scale:
            raise ValueError(f"residual_space {self.residual_space!r} needs --twist-scale")
        check_residual_space(self.residual_space, self.resolved_twist_scale())

    def resolved_twist_scale(self) -> tuple[float, ...]:
        """``twist_scale`` per axis: (linear, angular) -> 3 + 3 values ("task"), one
        linear value -> 3 ("task_position"), one force -> 3 ("task_force"); as given
        otherwise."""
        t = tuple(float(v) for v in self.twist_scale)
        if self.residual_space == "task" and len(t) == 2:
            return (t[0],) * 3 + (t[1],) * 3
        if self.residual_space in ("task_position", "task_force") and len(t) == 1:
            return t * 3
        return t


# ----------------------------------------------------------------------------- envs
def make_base_env(env_id: str) -> Any:
    """``gym.make(env_id)`` (ValueError for an unregistered id)."""
    import gymnasium as gym

    import ampczoo.envs  # noqa: F401  (registers the envs)

    if env_id not in gym.registry:
        raise ValueError(f"{env_id!r} is not a registered Gymnasium env id")
    return gym.make(env_id)


def load_base(base: str) -> Any:
    """The base policy of a zoo name or folder (CPU, torch on one thread)."""
    from ampczoo.core.registry import load_policy

    return load_policy(base, device="cpu")


def resolve_scale(scale: tuple[float, ...], low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(n,) residual scale: ``scale`` broadcast, or a tenth of the half range."""
    from ampczoo.finetune.residual_env import check_scale

    if not scale:
        return 0.1 * (high - low) / 2
    return check_scale(scale[0] if len(scale) == 1 else scale, len(low))


def residual_env(
    env_id: str,
    base: str | None,
    scale: Any,
    success_bonus: float,
    monitor: bool = True,
    penetration_penalty: float = 0.0,
    hold: int = 1,
    error_shaping: float = 0.0,
    residual_space: str = "joint",
    twist_scale: Any = (),
) -> Any:
    """A :class:`ResidualPolicyEnv` on ``gym.make(env_id)`` with the base loaded from
    ``base`` (None: no base, the centre of the action range) inside SB3's Monitor."""
    from ampczoo.finetune.residual_env import ResidualPolicyEnv

    env = make_base_env(env_id)
    wrapped = ResidualPolicyEnv(
        env,
        load_base(base) if base else None,
        scale,
        success_bonus,
        penetration_penalty,
        hold,
        error_shaping,
        residual_space,
        twist_scale,
    )
    if monitor:
        from stable_baselines3.common.monitor import Monitor

        return Monitor(wrapped)
    return wrapped


def _single_thread_env(*args: Any) -> Any:
    import torch

    torch.set_num_threads(1)
    return residual_env(*args)


def make_vec_env(
    env_id: str,
    base: str | None,
    scale: Any,
    success_bonus: float,
    n_envs: int,
    penetration_penalty: float = 0.0,
    hold: int = 1,
    error_shaping: float = 0.0,
    residual_space: str = "joint",
    twist_scale: Any = (),
) -> Any:
    """DummyVecEnv of one env, SubprocVecEnv of ``n_envs`` > 1 (each process loads the base)."""
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    factory = functools.partial(
        _single_thread_env,
        env_id,
        base,
        scale,
        success_bonus,
        True,
        penetration_penalty,
        hold,
        error_shaping,
        residual_space,
        twist_scale,
    )
    if n_envs == 1:
        return DummyVecEnv([factory])
    return SubprocVecEnv([factory] * n_envs)


def input_statistics(env: Any, episodes: int, seed: int = 500_000) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of the wrapped observations [obs, base action] over ``episodes`` episodes
    with zero residual (the base alone)."""
    rows = []
    zero = np.zeros(env.action_space.shape)
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        rows.append(obs)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(zero)
            rows.append(obs)
            done = terminated or truncated
    data = np.asarray(rows, dtype=np.float64)
    return data.mean(0), data.std(0)


# ----------------------------------------------------------------------------- the run
@dataclass
class Run:
    """What a training run needs besides its config: the folder, the base spec ("" = none),
    the scale and action bounds of the composed policy, the held-out evaluation env."""

    out: Path
    base: str
    scale: np.ndarray
    low: np.ndarray
    high: np.ndarray
    eval_env: Any
    eval_base: Any
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    wall_s: float = 0.0
    best: float = -1.0
    residual_space: str = "joint"
    twist_scale: tuple[float, ...] = ()


def prepare_out(cfg: RLConfig, kind: str) -> tuple[Path, bool]:
    """(run folder, resuming). FileExistsError when it holds a run and ``resume`` is off;
    ValueError when resuming with another config."""
    out = Path(cfg.out)
    record = {"kind": kind, **_jsonable(dataclasses.asdict(cfg))}
    record.pop("resume")
    resuming = cfg.resume and (out / "checkpoint" / "model.zip").is_file()
    if (out / "run.json").is_file():
        if not cfg.resume:
            raise FileExistsError(f"{out} holds a run; pass --resume to continue it")
        saved = json.loads((out / "run.json").read_text())
        free = ("steps", "out", "progress", "threads")  # may change between the parts of a run
        changed = sorted(k for k in saved if k not in free and saved[k] != record.get(k))
        if changed:
            raise ValueError(f"--resume with another config than {out}/run.json: {changed}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    return out, resuming


def _jsonable(obj: Any) -> Any:
    return json.loads(
        json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    )


def algo_kwargs(cfg: RLConfig) -> dict[str, Any]:
    """SB3 constructor arguments of the config."""
    common = {"learning_rate": cfg.learning_rate, "batch_size": cfg.batch_size, "gamma": cfg.gamma}
    if cfg.algo == "ppo":
        sde = (
            {"use_sde": True, "sde_sample_freq": cfg.sde_sample_freq} if cfg.sde_sample_freq else {}
        )
        return {**common, "n_steps": cfg.n_steps, **sde}
    off_policy = {
        **common,
        "buffer_size": cfg.buffer_size,
        "learning_starts": cfg.learning_starts,
        "gradient_steps": cfg.gradient_steps,
    }
    if cfg.n_step > 1:
        off_policy["n_steps"] = cfg.n_step
    if cfg.algo == "sac":
        off_policy["ent_coef"] = f"auto_{cfg.ent_coef}"
    if cfg.algo == "td3":
        off_policy["target_policy_noise"] = cfg.target_noise
        off_policy["target_noise_clip"] = 2.5 * cfg.target_noise
    return off_policy


def run_residual(cfg: ResidualRunConfig) -> Path:
    """Train residual RL on ``cfg.base``; returns the run folder (see the module docstring)."""
    out, resuming = prepare_out(cfg, "residual")
    twist = cfg.resolved_twist_scale()
    probe = residual_env(cfg.env, cfg.base, 1.0, 0.0, False, 0.0, 1, 0.0, cfg.residual_space, twist)
    low, high = probe.low, probe.high
    scale = resolve_scale(cfg.scale, low, high)
    probe.scale = scale  # (the probe measures input statistics at zero residual only)
    run = Run(out, cfg.base, scale, low, high, make_base_env(cfg.env), load_base(cfg.base))
    run.residual_space, run.twist_scale = cfg.residual_space, twist
    return train_online(cfg, run, resuming, lambda model: None, stats_env=probe)


def train_online(
    cfg: RLConfig,
    run: Run,
    resuming: bool,
    before_training: Any,
    stats_env: Any,
    stats: tuple[np.ndarray, np.ndarray] | None = None,
) -> Path:
    """Build (or resume) the SB3 model and train it to ``cfg.steps`` env steps with
    evaluations, checkpoints, TensorBoard, progress bar and learning curve.
    ``before_training(model)`` runs on a fresh model (BC initialisation); ``stats``: the
    (mean, std) of the actor input (default: measured on ``stats_env`` with zero residual)."""
    import torch

    from ampczoo.finetune import sb3

    torch.set_num_threads(cfg.threads)
    venv = make_vec_env(
        cfg.env,
        run.base or None,
        run.scale,
        cfg.success_bonus,
        cfg.n_envs,
        cfg.penetration_penalty,
        cfg.hold,
        cfg.error_shaping,
        run.residual_space,
        run.twist_scale,
    )
    tb = str(run.out / "tb")
    ckpt = run.out / "checkpoint"
    if resuming:
        model = sb3.algo_class(cfg.algo).load(ckpt / "model.zip", env=venv, device="cpu")
        model.tensorboard_log = tb
        if (ckpt / "replay_buffer.pkl").is_file() and cfg.algo != "ppo":
            model.load_replay_buffer(ckpt / "replay_buffer.pkl")
        state = json.loads((ckpt / "state.json").read_text())
        run.history, run.wall_s, run.best = state["history"], state["wall_s"], state["best"]
        print(f"resuming {run.out} at {model.num_timesteps} env steps")
    else:
        mean, std = stats or input_statistics(stats_env, cfg.norm_episodes)
        kwargs = sb3.policy_kwargs(
            cfg.algo,
            stats_env.observation_space.shape[0] - len(run.low),
            len(run.low),
            cfg.hidden_dim,
            cfg.num_layers,
            cfg.resolved_features(),
            mean,
            std,
            cfg.actor_layers,
        )
        model = sb3.make_model(
            cfg.algo,
            venv,
            kwargs,
            algo_kwargs(cfg),
            cfg.seed,
            tb,
            cfg.init_std,
            cfg.actor_delay,
            cfg.actor_lr_scale,
            cfg.residual_l2,
        )
        before_training(model)
    from stable_baselines3.common.logger import configure

    model.set_logger(configure(tb, ["tensorboard", "csv"]))
    callback = _Callbacks(cfg, run)
    if not resuming:
        _evaluate(cfg, run, model, 0.0)  # step 0: the initial policy (the base)
        _checkpoint(run, model, cfg.algo)
    remaining = cfg.steps - model.num_timesteps
    if remaining > 0:
        model.learn(
            remaining,
            callback=callback,
            reset_num_timesteps=not resuming,
        )
        callback.finish(model)
    _evaluate(cfg, run, model, 0.0, force=True)
    export(cfg, run, model).save_pretrained(run.out / "last")
    _write_card(cfg, run, run.out / "last", "last")
    _checkpoint(run, model, cfg.algo)
    venv.close()
    print(f"wrote {run.out}")
    return run.out


class _Callbacks:
    """Progress bar, periodic evaluation and checkpoints, as an SB3 callback (built lazily so
    this module imports without SB3)."""

    def __new__(cls, cfg: RLConfig, run: Run) -> Any:
        from stable_baselines3.common.callbacks import BaseCallback

        class Callback(BaseCallback):
            def __init__(self) -> None:
                super().__init__()
                self.bar: Any = None
                self.t0 = time.perf_counter()
                self.last_eval = self.last_ckpt = 0

            def _on_training_start(self) -> None:
                self.t0 = time.perf_counter()
                self.last_eval = self.last_ckpt = self.num_timesteps
                if cfg.progress:
                    from tqdm import tqdm

                    self.bar = tqdm(
                        total=cfg.steps, initial=self.num_timesteps, unit="step", smoothing=0.05
                    )

            def _on_step(self) -> bool:
                n = self.num_timesteps
                if self.bar is not None:
                    self.bar.update(n - self.bar.n)
                if n - self.last_eval >= cfg.eval_every:
                    self.last_eval = n
                    self._flush_time()
                    result = _evaluate(cfg, run, self.model, 0.0)
                    if self.bar is not None:
                        self.bar.set_postfix(success=f"{result.success_rate:.0f}%")
                if n - self.last_ckpt >= cfg.checkpoint_every:
                    self.last_ckpt = n
                    self._flush_time()
                    _checkpoint(run, self.model, cfg.algo)
                return True

            def _flush_time(self) -> None:
                now = time.perf_counter()
                run.wall_s += now - self.t0
                self.t0 = now

            def finish(self, model: Any) -> None:
                self._flush_time()
                if self.bar is not None:
                    self.bar.close()

        return Callback()


def export(cfg: RLConfig, run: Run, model: Any) -> Any:
    """The composed ``residual_rl`` policy of ``model`` (base = the run's base spec)."""
    from ampczoo.finetune.sb3 import export_policy

    return export_policy(
        model,
        cfg.algo,
        run.base,
        run.scale,
        run.low,
        run.high,
        hold=cfg.hold,
        residual_space=run.residual_space,
        twist_scale=run.twist_scale,
    )


def eval_score(success_rate: float, final_error_mean: float) -> float:
    """Score that picks ``best/``: the success rate [%], ties broken by the lower mean final
    error [m] where the env reports one (NaN on envs without a position error, e.g. the
    manipulation suites: the success rate alone)."""
    if not math.isfinite(final_error_mean):
        return float(success_rate)
    return float(success_rate) - 1e-3 * float(final_error_mean)


def _evaluate(
    cfg: RLConfig, run: Run, model: Any, extra_s: float, force: bool = False
) -> EvalResult:
    """Evaluate the current policy on the held-out seeds; log, record, keep the best."""
    steps = int(model.num_timesteps)
    if not force or not run.history or run.history[-1]["steps"] != steps:
        policy = export(cfg, run, model)
        if run.eval_base is not None:
            policy.set_base(run.eval_base)
        seeds = range(cfg.eval_seed, cfg.eval_seed + cfg.eval_episodes)
        result = evaluate_policy(
            run.eval_env, policy, seeds, cfg.success_pos_error, steps, run.wall_s + extra_s
        )
        run.history.append(result.to_json())
        with open(run.out / "eval.jsonl", "a") as f:
            f.write(json.dumps(result.to_json()) + "\n")
        model.logger.record("eval/success_rate", result.success_rate)
        model.logger.record("eval/ci95_low", result.ci95[0])
        model.logger.record("eval/ci95_high", result.ci95[1])
        model.logger.record("eval/final_error_mean", result.final_error_mean)
        model.logger.dump(steps)
        score = eval_score(result.success_rate, result.final_error_mean)
        if score > run.best:
            run.best = score
            policy.save_pretrained(run.out / "best")
            _write_card(cfg, run, run.out / "best", "best")
        plot_learning_curve(run.history, run.out / "learning_curve.png", f"{cfg.env}: {cfg.algo}")
        print(
            f"eval @ {steps} steps: success {result.success_rate:.1f} % "
            f"[{result.ci95[0]:.1f}, {result.ci95[1]:.1f}], final error "
            f"{result.final_error_mean:.4f}",
            flush=True,
        )
    return EvalResult(**{**run.history[-1], "ci95": tuple(run.history[-1]["ci95"])})


def _checkpoint(run: Run, model: Any, algo: str) -> None:
    """Write the resume state atomically (a temporary folder renamed over the old one)."""
    tmp = run.out / "checkpoint.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save(tmp / "model.zip")
    if algo != "ppo":
        model.save_replay_buffer(tmp / "replay_buffer.pkl")
    state = {
        "steps": int(model.num_timesteps),
        "history": run.history,
        "wall_s": run.wall_s,
        "best": run.best,
    }
    (tmp / "state.json").write_text(json.dumps(state) + "\n")
    final = run.out / "checkpoint"
    old = run.out / "checkpoint.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _write_card(cfg: RLConfig, run: Run, folder: Path, selection: str) -> None:
    """A card for a run's policy (no benchmark result: ``ampczoo bench finetune`` measures)."""
    import datetime as _dt

    from ampczoo.core.card import command_line, write_card

    steps = run.history[-1]["steps"] if run.history else 0
    held = f" ({steps * cfg.hold} env steps, each action held {cfg.hold})" if cfg.hold > 1 else ""
    unit = "agent" if held else "env"
    card = {
        "env": cfg.env,
        "model": "residual_rl",
        "data": {"path": "online RL (no demonstrations)", "command": None},
        "command": command_line(),
        "date": _dt.date.today().isoformat(),
        "selection": selection,
        "result": None,
        "note": (
            f"{cfg.algo} on base {run.base or '(none)'}, {steps} {unit} steps{held}; "
            "held-out evaluations in eval.jsonl"
        ),
    }
    write_card(folder, card)
