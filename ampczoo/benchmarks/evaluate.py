"""``ampczoo eval``: run one policy in closed loop on one registered env (LeRobot's
``lerobot-eval`` for ampczoo).

The policy is any of:

- a zoo name (``ampczoo.list_policies()``) or a checkpoint folder (config.json +
  model.safetensors), loaded with :func:`ampczoo.load_policy`; a chunk refiner (DiffOG,
  residual) runs on a base policy (``base``, default: the one its zoo card names);
- an expert registry type (``"mpc"``, ``"ikmpc"``), built for the env (the MPC's obstacle
  constraints on for the obstacle env; the IK-MPC's model step = the env's control period);
- a stable-baselines3 model ``.zip`` (``model.predict(obs, deterministic=True)``).

A policy that does not fit the env is refused with a ValueError before any episode runs:
its observation or action size differs from the env's spaces, its zoo card names another
env, or a probe ``act`` on the first reset observation fails or returns another shape.

Episode ``i`` uses reset seed ``seed + i``; every episode runs through the one closed-loop
runner :func:`ampczoo.benchmarks.common.rollout` with torch on one thread (``act()`` timed
alone). Success is the env's own ``info["success"]`` at the last step (None where the env
does not report it), errors are its ``info["pos_error"]`` [m] and ``info["rot_error"]`` [rad]
where present. The env is made with the keywords the policy's card records for it (e.g. a
zoo policy's control period), overridden by the config. The run folder ``<out>/eval-<date>/`` holds:

- ``eval_info.json``: env, policy, command, date, config; ``aggregate`` (n_episodes,
  n_success, success_rate with its 95 % Wilson interval ``success_ci95`` (fractions), mean
  final errors, mean return and length, act() time mean / p95 [ms], policy failures) and
  ``per_episode`` (seed, success, final errors, return, length, ...);
- ``episodes.json``: every episode's error, reward and action traces;
- ``error.png``: the error over time of every episode (position; rotation where reported);
- ``summary.md`` / ``summary.csv``: the one-row table that is printed;
- ``episode.mp4`` (GIF without ffmpeg): the first ``max_videos`` episodes, when ``video``;
  on the KUKA envs with ``draw_plan`` a yellow path shows the end-effector positions that
  the plan of the last ``act`` predicts (:class:`PlanPathWrapper`, for policies exposing
  ``planned_inputs()``, see :class:`ampczoo.core.policy.PlansInputs`).

Example::

    ampczoo eval --policy threedof-gru-h10 --env ThreeDOF-Reach-v0 --episodes 20
    ampczoo eval --policy mpc --env DAMPC-KukaTrackObstacle-v0 --episodes 5 --control-dt 0.1
"""

from __future__ import annotations

import ast
import datetime as _dt
import json
import math
import time
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from ampczoo.benchmarks.common import (
    Rollout,
    command_line,
    make_run_dir,
    rollout,
    single_thread,
    wilson_interval,
    write_table,
    write_video,
)
from ampczoo.core.policy import Policy
from ampczoo.envs.rendering import configure_mujoco_gl

#: Expert registry types ``ampczoo eval`` builds for an env.
EXPERTS = ("mpc", "ikmpc")
#: Size of the rendered video frames [px].
VIDEO_SIZE = (480, 360)
#: SB3 algorithm used to load a model whose policy class lives in
#: ``stable_baselines3.<module>.policies`` (on-policy models share ``common.policies``).
SB3_ALGO_BY_MODULE = {"sac": "SAC", "td3": "TD3", "dqn": "DQN", "common": "PPO"}


@dataclass(frozen=True)
class EvalConfig:
    """``ampczoo eval``: closed-loop episodes of one policy on one env, with success rate,
    Wilson interval, per-episode JSON, error plot and video."""

    policy: str
    """zoo name (see ampczoo.list_policies()), checkpoint folder, expert type ("mpc",
    "ikmpc") or stable-baselines3 model .zip"""
    env: str
    """registered env id, e.g. DAMPC-KukaTrack-v0, DAMPC-KukaTrackObstacle-v0,
    ThreeDOF-Reach-v0"""
    episodes: int = 10
    """closed-loop episodes (episode i uses reset seed seed + i)"""
    seed: int = 0
    """reset seed of the first episode"""
    base: str = ""
    """base policy (zoo name or folder) of a chunk refiner; default: the refiner card's base"""
    control_dt: float | None = None
    """env control period [s] (None: the env's default); chunk policies advance their
    guidance target by it"""
    max_episode_steps: int | None = None
    """truncate episodes after this many steps (None: the env's registered limit)"""
    env_kwargs: tuple[str, ...] = ()
    """further gym.make keywords as KEY=VALUE (VALUE a Python literal or a string), e.g.
    target_region=ood"""
    device: str = "cpu"
    """torch device of checkpoint policies"""
    sb3_algo: str = "auto"
    """stable-baselines3 algorithm class of a .zip model (PPO, SAC, ...); auto: from the
    saved policy class"""
    out: str = "runs"
    """parent folder of the run folder <out>/eval-<date>/"""
    video: bool = True
    """render the first max_videos episodes to episode.mp4 (GIF without ffmpeg)"""
    max_videos: int = 1
    """episodes rendered into the video"""
    draw_plan: bool = True
    """KUKA envs: draw in the video the end-effector path the policy's own plan predicts
    after each act (DAMPC, chunk filters / refiners, MPC expert; rendering only, the actions
    are the same)"""

    def __post_init__(self) -> None:
        if not self.policy:
            raise ValueError("policy must name a zoo policy, checkpoint, expert or SB3 .zip")
        check_env_id(self.env)
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if self.max_videos < 0:
            raise ValueError(f"max_videos must be >= 0, got {self.max_videos}")
        if self.control_dt is not None and not (
            math.isfinite(self.control_dt) and self.control_dt > 0
        ):
            raise ValueError(f"control_dt must be a positive number [s], got {self.control_dt}")
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {self.max_episode_steps}")
        parse_env_kwargs(self.env_kwargs)

    def make_kwargs(self) -> dict[str, Any]:
        """The ``gym.make`` keywords of this run (without the render settings)."""
        kwargs = parse_env_kwargs(self.env_kwargs)
        if self.control_dt is not None:
            kwargs["control_dt"] = self.control_dt
        if self.max_episode_steps is not None:
            kwargs["max_episode_steps"] = self.max_episode_steps
        return kwargs


# ----------------------------------------------------------------------------- env
def check_env_id(env_id: str) -> None:
    """ValueError (listing ampczoo's env ids) unless ``env_id`` is registered with gymnasium."""
    import gymnasium as gym

    from ampczoo.envs import env_ids

    if env_id not in gym.registry:
        raise ValueError(f"unknown env id {env_id!r}; ampczoo's envs: {env_ids()}")


def parse_env_kwargs(entries: Sequence[str]) -> dict[str, Any]:
    """``("KEY=VALUE", ...)`` -> dict; VALUE is a Python literal (number, bool, tuple, ...)
    or else kept as a string. ValueError on an entry without ``=``."""
    out: dict[str, Any] = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"env_kwargs entries are KEY=VALUE, got {entry!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def env_kwargs_for(cfg: EvalConfig) -> dict[str, Any]:
    """The ``gym.make`` keywords of the run: those the policy's card records for this env
    (``env_kwargs``, e.g. the control period a zoo policy was measured at), overridden by
    the config's ``control_dt``, ``max_episode_steps`` and ``env_kwargs``."""
    card = policy_card(cfg.policy)
    recorded = card.get("env_kwargs") or {} if card.get("env") == cfg.env else {}
    return {**recorded, **cfg.make_kwargs()}


def make_env(cfg: EvalConfig, render: bool) -> Any:
    """``gym.make`` of the run's env with :func:`env_kwargs_for` (``render_mode="rgb_array"``
    when ``render``); a bad keyword becomes a ValueError."""
    import gymnasium as gym

    kwargs = env_kwargs_for(cfg)
    if render:
        kwargs.update(render_mode="rgb_array", width=VIDEO_SIZE[0], height=VIDEO_SIZE[1])
    try:
        return gym.make(cfg.env, **kwargs)
    except TypeError as exc:
        raise ValueError(f"{cfg.env} does not accept these keywords {kwargs}: {exc}") from exc


# ----------------------------------------------------------------------------- policies
class SB3Policy(Policy):
    """A stable-baselines3 model as an ampczoo policy: ``act(obs)`` is
    ``model.predict(obs, deterministic=True)[0]``."""

    name = "sb3"

    def __init__(self, model: Any):
        self.model = model

    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(obs, deterministic=True)[0], dtype=np.float64)

    def reset(self, seed: int | None = None) -> None:
        """Stateless (feed-forward SB3 policies)."""


def load_sb3(path: str | Path, algo: str = "auto", device: str = "cpu") -> SB3Policy:
    """An SB3 model .zip as a :class:`SB3Policy`; ``algo`` names its algorithm class
    ("auto": from the policy class saved in the zip)."""
    try:
        import stable_baselines3 as sb3
    except ImportError as exc:
        raise ValueError(
            f"{path} is a stable-baselines3 model, but stable-baselines3 is not installed "
            "(pip install stable-baselines3, or the dev extra: pip install -e '.[dev]')"
        ) from exc
    name = _sb3_algo_name(Path(path)) if algo == "auto" else algo.upper()
    cls = getattr(sb3, name, None)
    if cls is None:
        raise ValueError(f"stable-baselines3 has no algorithm {name!r} (sb3_algo)")
    return SB3Policy(cls.load(str(path), device=device))


def _sb3_algo_name(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            data = json.loads(zf.read("data"))
        module = data["policy_class"]["__module__"]
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a stable-baselines3 model .zip ({exc})") from exc
    parts = module.split(".")
    algo = SB3_ALGO_BY_MODULE.get(parts[1] if len(parts) > 1 else "")
    if parts[0] != "stable_baselines3" or algo is None:
        raise ValueError(f"{path}: cannot tell the SB3 algorithm of {module}; pass sb3_algo")
    return algo


@dataclass
class LoadedPolicy:
    """A policy ready to run and what is known about it before running."""

    policy: Any
    kind: str  # "zoo", "checkpoint", "expert" or "sb3"
    label: str
    obs_shape: tuple[int, ...] | None = None  # declared observation shape, None = unknown
    action_shape: tuple[int, ...] | None = None
    card_env: str | None = None  # env id named by its zoo card
    base: str | None = None  # base policy of a chunk refiner


def load_eval_policy(cfg: EvalConfig, env: Any) -> LoadedPolicy:
    """Resolve ``cfg.policy`` (see the module docstring) for ``env``."""
    spec = cfg.policy
    if spec.endswith(".zip"):
        if not Path(spec).is_file():
            raise ValueError(f"SB3 model {spec!r} does not exist")
        policy = load_sb3(spec, cfg.sb3_algo, cfg.device)
        space_obs, space_act = policy.model.observation_space, policy.model.action_space
        return LoadedPolicy(policy, "sb3", spec, space_obs.shape, space_act.shape)
    if spec in EXPERTS:
        return LoadedPolicy(_make_expert(spec, env), "expert", spec)
    return _load_checkpoint(cfg, env)


def _make_expert(name: str, env: Any) -> Any:
    from ampczoo.core.registry import make_policy, policy_class

    if name == "mpc":
        try:
            return policy_class("mpc").for_env(env)
        except ValueError as exc:
            raise ValueError(f"expert 'mpc' does not fit {env.spec.id}: {exc}") from exc
    return make_policy(name, dt=float(getattr(env.unwrapped, "control_dt", 0.02)))


def _load_checkpoint(cfg: EvalConfig, env: Any) -> LoadedPolicy:
    import ampczoo
    from ampczoo.policies.refiner import ChunkRefiner

    spec = cfg.policy
    in_zoo = spec in ampczoo.list_policies() and not Path(spec).exists()
    if not in_zoo and not (Path(spec) / "config.json").is_file():
        raise ValueError(
            f"policy {spec!r} is neither a zoo name ({ampczoo.list_policies()}), a checkpoint "
            f"folder (config.json + model.safetensors), an expert {EXPERTS} nor an SB3 .zip"
        )
    card = policy_card(spec)
    policy = ampczoo.load_policy(spec, device=cfg.device).eval()
    obs_dim = getattr(policy.config, "obs_dim", None)
    action_dim = getattr(policy.config, "action_dim", None)
    is_refiner = isinstance(policy, ChunkRefiner)
    if cfg.base and not is_refiner:
        raise ValueError(f"base is only for chunk refiners; {spec} is a {type(policy).__name__}")
    base = None
    if is_refiner:
        base = cfg.base or policy.config.base or card.get("base")
        if not base:
            raise ValueError(
                f"{spec} is a chunk refiner without a base: pass base=<zoo name or folder>"
            )
        base_policy = _set_control_dt(ampczoo.load_policy(base, device=cfg.device).eval(), env)
        policy = type(policy).wrap(base_policy, spec, device=cfg.device)
    return LoadedPolicy(
        _set_control_dt(policy, env),
        "zoo" if in_zoo else "checkpoint",
        spec,
        None if obs_dim is None else (int(obs_dim),),
        None if action_dim is None else (int(action_dim),),
        card.get("env"),
        base,
    )


def policy_card(spec: str) -> dict[str, Any]:
    """The card of a zoo name or of a checkpoint folder (its card.json); {} for anything
    else or a checkpoint without a card."""
    import ampczoo
    from ampczoo.core.registry import CARD_NAME, zoo_card

    if not Path(spec).exists():
        return zoo_card(spec) if spec in ampczoo.list_policies() else {}
    file = Path(spec) / CARD_NAME
    if not file.is_file():
        return {}
    try:
        card = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{file}: corrupt JSON ({exc})") from exc
    return card if isinstance(card, dict) else {}


def _set_control_dt(policy: Any, env: Any) -> Any:
    """Chunk policies advance their guidance target by the env's control period."""
    if hasattr(policy, "control_dt") and hasattr(env.unwrapped, "control_dt"):
        policy.control_dt = env.unwrapped.control_dt
    return policy


def check_shapes(loaded: LoadedPolicy, env: Any, what: str) -> None:
    """ValueError unless the policy's declared observation / action shapes are the env's."""
    obs_shape, act_shape = env.observation_space.shape, env.action_space.shape
    if loaded.obs_shape is not None and tuple(loaded.obs_shape) != tuple(obs_shape or ()):
        raise ValueError(
            f"{what}: it takes observations of shape {loaded.obs_shape}, the env gives {obs_shape}"
        )
    if loaded.action_shape is not None and tuple(loaded.action_shape) != tuple(act_shape or ()):
        raise ValueError(
            f"{what}: it outputs actions of shape {loaded.action_shape}, the env takes {act_shape}"
        )


def check_fit(loaded: LoadedPolicy, env: Any, env_id: str, seed: int) -> None:
    """ValueError unless the policy fits the env: card env, declared observation / action
    sizes (or the policy's own ``check_env(env)``, e.g. Diffusion Policy's layout check), and
    one probe ``act`` on the reset observation of ``seed``."""
    what = f"policy {loaded.label!r} does not fit {env_id}"
    if loaded.card_env is not None and loaded.card_env != env_id:
        raise ValueError(f"{what}: its zoo card names env {loaded.card_env}")
    check_env = getattr(loaded.policy, "check_env", None)
    if callable(check_env):  # the policy's own layout check (Diffusion Policy)
        try:
            check_env(env)
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from None
    else:
        check_shapes(loaded, env, what)
    act_shape = env.action_space.shape
    obs, _ = env.reset(seed=seed)
    try:
        loaded.policy.reset(seed=seed)
        action = np.asarray(loaded.policy.act(obs))
    except (ValueError, RuntimeError, TypeError, IndexError, KeyError) as exc:
        raise ValueError(f"{what}: act() on its first observation failed: {exc}") from exc
    if action.shape != act_shape:
        raise ValueError(f"{what}: act() returned shape {action.shape}, the env takes {act_shape}")


# ----------------------------------------------------------------------------- the run
def run_eval(cfg: EvalConfig) -> Path:
    """Evaluate ``cfg.policy`` on ``cfg.env``; returns the run folder (see the module
    docstring). ValueError before any episode if the policy does not fit the env."""
    with single_thread():
        env, render = _make_env_for(cfg)
        try:
            loaded = load_eval_policy(cfg, env)
            check_fit(loaded, env, cfg.env, cfg.seed)
            out = make_run_dir("eval", cfg.out)
            t0 = time.perf_counter()
            rollouts, frames = _run_episodes(cfg, env, loaded, render)
            eval_s = time.perf_counter() - t0
        finally:
            env.close()
    info = eval_info(cfg, loaded, rollouts, eval_s)
    (out / "eval_info.json").write_text(json.dumps(info, indent=1))
    write_traces(out / "episodes.json", rollouts)
    plot_errors(rollouts, out / "error.png", f"{loaded.label} on {cfg.env}")
    if frames:
        video = write_video(frames, out, rollouts[0].control_dt)
        info["video"], info["video_frames"] = video.name, len(frames)
        (out / "eval_info.json").write_text(json.dumps(info, indent=1))
    table = write_table([summary_row(info)], out, "summary", f"eval: {cfg.policy} on {cfg.env}")
    print(table)
    print(f"wrote {out}\ncommand: {command_line()}")
    return out


def _make_env_for(cfg: EvalConfig) -> tuple[Any, bool]:
    """The env, rendering when a video is asked for and offscreen rendering works."""
    if not (cfg.video and cfg.max_videos > 0):
        return make_env(cfg, render=False), False
    configure_mujoco_gl()  # effective only if mujoco is not imported yet
    env = make_env(cfg, render=True)
    try:
        env.reset(seed=cfg.seed)
        env.render()
        return env, True
    except Exception as exc:  # no OSMesa/EGL: the numbers stand without a video
        env.close()
        print(f"video skipped: rendering unavailable ({exc})")
        return make_env(cfg, render=False), False


def _run_episodes(
    cfg: EvalConfig, env: Any, loaded: LoadedPolicy, render: bool
) -> tuple[list[Rollout], list[np.ndarray]]:
    from tqdm.auto import tqdm

    rollouts: list[Rollout] = []
    frames: list[np.ndarray] = []
    drawing_env = (
        PlanPathWrapper(env, loaded.policy) if cfg.draw_plan and can_draw_plan(env) else env
    )
    bar = tqdm(range(cfg.episodes), desc=f"{loaded.label} on {cfg.env}", unit="episode")
    for i in bar:
        recorded = render and i < cfg.max_videos
        record = frames.append if recorded else None
        run_env = drawing_env if recorded else env
        rollouts.append(rollout(run_env, loaded.policy, cfg.seed + i, frame_callback=record))
        n_ok = sum(bool(r.env_success()) for r in rollouts)
        bar.set_postfix(success=f"{n_ok}/{len(rollouts)}")
    return rollouts, frames


def can_draw_plan(env: Any) -> bool:
    """Whether ``env`` draws paths (``set_render_path``) and has KUKA observations."""
    from ampczoo.robots.kuka import OBS_DIM, OBS_DIM_OBSTACLE

    shape = getattr(env.observation_space, "shape", None)
    has_path = callable(getattr(env.unwrapped, "set_render_path", None))
    return has_path and shape in ((OBS_DIM,), (OBS_DIM_OBSTACLE,))


def plan_path(policy: Any, obs: np.ndarray) -> np.ndarray | None:
    """End-effector positions (N+1, 3) [m] that the plan of the policy's last ``act(obs)``
    predicts from the KUKA observation ``obs`` (see
    :func:`ampczoo.robots.kuka.planned_ee_path`); None if the policy exposes no plan
    (:func:`ampczoo.core.policy.planned_inputs`) or one of another input size."""
    from ampczoo.core.policy import planned_inputs
    from ampczoo.robots.kuka import OBS_Q, planned_ee_path

    plan = planned_inputs(policy)
    if plan is None:
        return None
    inputs, dt = plan
    q = np.asarray(obs, float)[OBS_Q]
    if np.ndim(inputs) != 2 or np.shape(inputs)[1] != len(q):
        return None
    return planned_ee_path(q, inputs, dt)


class PlanPathWrapper(gym.Wrapper):
    """Draws the end-effector path of ``policy``'s current plan on a KUKA env: before each
    ``step`` it sets ``set_render_path(plan_path(policy, obs))`` for the observation the
    action was chosen on (cleared where the policy exposes no plan). Rendering only: it reads
    the plan (``planned_inputs()``, a copy) and never calls the policy, so the actions are
    the same with and without it. ValueError for an env that cannot draw a KUKA path."""

    def __init__(self, env: Any, policy: Any):
        if not can_draw_plan(env):
            raise ValueError(f"{env} cannot draw a KUKA end-effector path (set_render_path)")
        super().__init__(env)
        self.policy = policy
        self._obs: np.ndarray | None = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._obs = obs
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self._obs is not None:
            self.env.unwrapped.set_render_path(plan_path(self.policy, self._obs))
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._obs = obs
        return obs, float(reward), terminated, truncated, info


# ----------------------------------------------------------------------------- outputs
def episode_summary(r: Rollout) -> dict[str, Any]:
    """Per-episode scalars of ``eval_info.json``: errors in [m] / [rad], act() in [ms]."""
    final = r.final_info
    return {
        "seed": r.seed,
        "success": r.env_success(),
        "final_pos_error_m": _float_or_none(final.get("pos_error")),
        "final_rot_error_rad": _float_or_none(final.get("rot_error")),
        "return": r.episode_return,
        "length": r.length,
        "terminated": r.terminated,
        "truncated": r.truncated,
        "policy_failures": int(r.policy_failures),
        "act_mean_ms": 1000.0 * float(np.mean(r.act_times)) if r.length else None,
    }


def eval_info(
    cfg: EvalConfig, loaded: LoadedPolicy, rollouts: Sequence[Rollout], eval_s: float
) -> dict[str, Any]:
    """The content of ``eval_info.json``."""
    per = [episode_summary(r) for r in rollouts]
    reported = [p["success"] for p in per if p["success"] is not None]
    n_ok = sum(reported)
    lo, hi = wilson_interval(n_ok, len(reported))
    times = np.concatenate([r.act_times for r in rollouts])
    aggregate = {
        "n_episodes": len(per),
        "n_success": n_ok if reported else None,
        "success_rate": n_ok / len(reported) if reported else None,
        "success_ci95": [lo, hi] if reported else None,
        "mean_final_pos_error_m": _mean_of(per, "final_pos_error_m"),
        "mean_final_rot_error_rad": _mean_of(per, "final_rot_error_rad"),
        "mean_return": float(np.mean([p["return"] for p in per])),
        "mean_length": float(np.mean([p["length"] for p in per])),
        "act_mean_ms": 1000.0 * float(np.mean(times)),
        "act_p95_ms": 1000.0 * float(np.percentile(times, 95)),
        "policy_failures": int(sum(p["policy_failures"] for p in per)),
        "eval_s": eval_s,
    }
    return {
        "env": cfg.env,
        "policy": cfg.policy,
        "policy_kind": loaded.kind,
        "base": loaded.base,
        "command": command_line(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "control_dt": rollouts[0].control_dt if math.isfinite(rollouts[0].control_dt) else None,
        "env_kwargs": env_kwargs_for(cfg),
        "seeds": [r.seed for r in rollouts],
        "config": asdict(cfg),
        "aggregate": aggregate,
        "per_episode": per,
    }


def summary_row(info: dict[str, Any]) -> dict[str, Any]:
    """The printed markdown row: success [%] with CI, final errors [mm] / [deg], act [ms]."""
    a = info["aggregate"]
    row: dict[str, Any] = {"policy": info["policy"], "env": info["env"]}
    row["episodes"] = a["n_episodes"]
    if a["success_rate"] is not None:
        lo, hi = a["success_ci95"]
        row["success [%]"] = 100.0 * a["success_rate"]
        row["95% CI"] = f"[{100 * lo:.1f}, {100 * hi:.1f}]"
    if a["mean_final_pos_error_m"] is not None:
        row["final pos err [mm]"] = 1000.0 * a["mean_final_pos_error_m"]
    if a["mean_final_rot_error_rad"] is not None:
        row["final rot err [deg]"] = math.degrees(a["mean_final_rot_error_rad"])
    row["return"] = a["mean_return"]
    row["act mean [ms]"] = a["act_mean_ms"]
    row["act p95 [ms]"] = a["act_p95_ms"]
    row["failures"] = a["policy_failures"]
    return row


def write_traces(path: Path, rollouts: Sequence[Rollout]) -> None:
    """``episodes.json``: per episode its seed, control period [s] and the traces after
    every step: pos_error [m], rot_error [rad] (where reported), reward, action."""
    episodes = []
    for r in rollouts:
        entry: dict[str, Any] = {"seed": r.seed, "control_dt": r.control_dt}
        for key in ("pos_error", "rot_error"):
            if r.infos and key in r.infos[0]:
                entry[key] = r.info_series(key).tolist()
        entry["reward"] = r.rewards.tolist()
        entry["action"] = r.actions.tolist()
        episodes.append(entry)
    path.write_text(json.dumps({"command": command_line(), "episodes": episodes}))


def plot_errors(rollouts: Sequence[Rollout], path: Path, title: str) -> None:
    """Error over time of every episode from the reset on (one thin line each: green
    success, red failure, blue when the env reports no success): position [mm] and, where
    the env reports it, rotation [deg]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        (key, label, scale)
        for key, label, scale in (
            ("pos_error", "position error [mm]", 1000.0),
            ("rot_error", "rotation error [deg]", 180.0 / math.pi),
        )
        if rollouts and rollouts[0].infos and key in rollouts[0].infos[0]
    ]
    if not panels:
        return
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False, constrained_layout=True
    )
    colours = {True: "tab:green", False: "tab:red", None: "tab:blue"}
    for ax, (key, label, scale) in zip(axes[0], panels, strict=True):
        for r in rollouts:
            dt = r.control_dt if math.isfinite(r.control_dt) else 1.0
            errors = r.info_series(key)
            if key in r.reset_info:  # the error at the reset, t = 0
                errors = np.concatenate([[r.reset_info[key]], errors])
            t = dt * np.arange(r.length + 1 - len(errors), r.length + 1)
            ax.plot(t, scale * errors, lw=0.8, alpha=0.7, c=colours[r.env_success()])
        ax.set(xlabel="time [s]" if math.isfinite(rollouts[0].control_dt) else "step")
        ax.set(ylabel=label, yscale="log")
        ax.grid(alpha=0.3, which="both")
    handles = [
        plt.Line2D([], [], c=c, label=f"success: {k}")
        for k, c in colours.items()
        if any(r.env_success() is k for r in rollouts)
    ]
    axes[0][0].legend(handles=handles, fontsize=8, loc="best")
    fig.suptitle(f"{title}: {len(rollouts)} episodes")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _float_or_none(v: Any) -> float | None:
    return None if v is None else float(v)


def _mean_of(per: Sequence[dict[str, Any]], key: str) -> float | None:
    vals = [p[key] for p in per if p[key] is not None]
    return float(np.mean(vals)) if vals else None
