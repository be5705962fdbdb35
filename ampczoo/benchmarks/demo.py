"""The main job of ``make demo``: the MPC expert and the shipped policies on both KUKA envs.

Runs a few closed-loop episodes per env with the MPC expert and with the zoo checkpoints of
that env (:func:`zoo_policies`: read from the zoo index, ``ampczoo.list_policies(env=...)``;
a short leaderboard on the same start/goal pairs) and with the shipped refiners on the base
their card names (:func:`zoo_refined`: the constraint layer, DiffOG), prints the metrics
table (with the change between consecutive commands: du/dt max and the share of steps above
:data:`MAX_DELTA`) and writes into ``runs/demo-<date>/``: ``metrics.md/.csv``,
``episodes.json``, ``tracking_error.png`` and an MP4 (GIF if ffmpeg is unavailable) of one
episode of the obstacle env, and ``manipulation.mp4``: one scripted-expert episode of a
manipulation task (``--manipulation-env``, the scripted experts of
:mod:`ampczoo.experts.scripted`). On that task the zoo's policies and refiners (Lift:
``dp-lift`` and ``dp-lift + diffog-dp-lift``) then run from the same reset seed:
``manipulation_policies.md/.csv`` (success, steps, the change between consecutive actions
against the suite's bound) and ``manipulation_policies.mp4`` (the base and its first refined
version side by side).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ampczoo.benchmarks.common import (
    command_line,
    make_run_dir,
    plot_tracking_errors,
    rollout,
    run_episode,
    single_thread,
    smoothness,
    smoothness_summary,
    summarize_episodes,
    write_episodes_json,
    write_table,
    write_video,
)

DEMO_ENVS = ("DAMPC-KukaTrack-v0", "DAMPC-KukaTrackObstacle-v0")
CONTROL_DT = 0.1  # the MPC's own rate [s]: one solve per step
#: per-step change bound of the shipped refiners [rad/s] (0.1 normalised x 2.3 rad/s)
MAX_DELTA = 0.23


def zoo_policies(env_id: str) -> tuple[str, ...]:
    """Zoo checkpoints the demo runs on ``env_id``: those whose card names the env, except
    refiners (cards with a ``base``) and cards marked ``"demo": false``; in name order."""
    from ampczoo.core.registry import list_policies, zoo_card

    cards = {name: zoo_card(name) for name in list_policies(env=env_id)}
    return tuple(n for n, c in cards.items() if "base" not in c and c.get("demo", True))


def zoo_refined(env_id: str) -> tuple[tuple[str, str], ...]:
    """(base, refiner) pairs the demo runs on ``env_id``: every zoo refiner of the env on the
    base its card names (cards marked ``"demo": false`` left out); in refiner name order."""
    from ampczoo.core.registry import list_policies, zoo_card

    cards = {name: zoo_card(name) for name in list_policies(env=env_id)}
    return tuple((c["base"], n) for n, c in cards.items() if "base" in c and c.get("demo", True))


@dataclass(frozen=True)
class DemoConfig:
    """``ampczoo demo``: the MPC expert and the shipped policies on both KUKA envs."""

    episodes: int = 3
    """closed-loop episodes per env and policy (reset seeds seed .. seed+episodes-1)"""
    seed: int = 0
    """reset seed of the first episode"""
    solver: Literal["ipopt", "fatrop"] = "ipopt"
    """NLP solver of the MPC expert"""
    out: str = "runs"
    """parent folder of the run folder runs/demo-<date>/"""
    video: bool = True
    """render one obstacle-env episode to MP4 (GIF without ffmpeg)"""
    manipulation_env: str = "Robomimic-Lift-v0"
    """manipulation task of the scripted-expert episode and video ("" to skip)"""

    def __post_init__(self) -> None:
        if self.episodes <= 0:
            raise ValueError(f"episodes must be > 0, got {self.episodes}")
        if self.solver not in ("ipopt", "fatrop"):
            raise ValueError(f"solver must be 'ipopt' or 'fatrop', got {self.solver!r}")


def run_demo(cfg: DemoConfig | None = None) -> Path:
    """Run the demo and return its run folder."""
    cfg = cfg or DemoConfig()
    episodes, seed, solver, out_root, video = (
        cfg.episodes,
        cfg.seed,
        cfg.solver,
        cfg.out,
        cfg.video,
    )
    import gymnasium as gym

    import ampczoo  # noqa: F401  (registers the envs)
    from ampczoo.experts import MPCConfig, MPCExpert

    out = make_run_dir("demo", out_root)
    rows, per_method, dts = [], {}, {}
    for env_id in DEMO_ENVS:
        obstacle = "Obstacle" in env_id
        envs = {CONTROL_DT: gym.make(env_id, control_dt=CONTROL_DT)}
        contenders = [
            (f"MPC ({solver})", MPCExpert(MPCConfig(solver=solver, obstacle=obstacle)), CONTROL_DT)
        ]
        for name in zoo_policies(env_id):
            dt = trained_control_dt(name)
            contenders.append((name, _load_zoo_policy(name, dt), dt))
        contenders += [
            (f"{base} + {refiner}", _refined(base, refiner), CONTROL_DT)
            for base, refiner in zoo_refined(env_id)
        ]
        for label, policy, dt in contenders:
            if dt not in envs:
                envs[dt] = gym.make(env_id, control_dt=dt)
            if dt != CONTROL_DT:
                label = f"{label} (control_dt {dt} s)"
            with single_thread():
                results = [
                    run_episode(envs[dt], policy, seed=seed + i)
                    for i in _progress(range(episodes), f"{label} on {env_id}")
                ]
            per_method[f"{env_id} | {label}"] = results
            dts[f"{env_id} | {label}"] = dt
            rows.append(
                {
                    "env": env_id,
                    "policy": label,
                    **summarize_episodes(results),
                    **_smoothness_columns(results),
                }
            )
        for env in envs.values():
            env.close()
    table = write_table(
        rows,
        out,
        "metrics",
        title="closed loop, kinematic sim, "
        f"control_dt {CONTROL_DT} s, reset seeds {seed}..{seed + episodes - 1}; "
        f"violation = change between commands > {MAX_DELTA} rad/s",
    )
    write_episodes_json(
        out / "episodes.json",
        per_method,
        {"solver": solver, "seed": seed, "control_dt": CONTROL_DT},
    )
    plot_tracking_errors(per_method, dts, out / "tracking_error.png", title="end-effector error")
    if video:
        _record_video(out, solver, seed)
    if cfg.manipulation_env:
        _manipulation_episode(out, cfg.manipulation_env, seed, video)
        _manipulation_policies(out, cfg.manipulation_env, seed, video)
    print(table)
    print(f"wrote {out}  (command: {command_line()})")
    return out


def trained_control_dt(name: str) -> float:
    """Control period [s] the demo runs zoo policy ``name`` at: its card's
    ``env_kwargs.control_dt`` (the rate of its data, or of its closed-loop training for a
    ``residual_rl`` card, whose residual is held a number of env steps and only means what it
    learned at that rate), :data:`CONTROL_DT` when the card names none."""
    from ampczoo.core.registry import zoo_card

    return float(zoo_card(name).get("env_kwargs", {}).get("control_dt", CONTROL_DT))


def _load_zoo_policy(name: str, control_dt: float = CONTROL_DT):
    """A zoo checkpoint on CPU, its guidance target advanced at ``control_dt`` [s]."""
    import ampczoo

    policy = ampczoo.load_policy(name, device="cpu").eval()
    if hasattr(policy, "control_dt"):
        policy.control_dt = control_dt
    return policy


def _refined(base: str, refiner: str):
    """Zoo base ``base`` behind zoo refiner ``refiner`` (receding horizon, ChunkRefiner.wrap)."""
    from ampczoo.policies.refiner import ChunkRefiner

    return ChunkRefiner.wrap(_load_zoo_policy(base), refiner, device="cpu")


def _smoothness_columns(results) -> dict[str, float]:
    """du/dt and the steps whose change exceeds :data:`MAX_DELTA` ("violation")."""
    return smoothness_summary(
        [smoothness(r.actions, CONTROL_DT, np.full(7, MAX_DELTA)) for r in results]
    )


def _progress(it, desc: str):
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, unit="episode")


def _record_video(out: Path, solver: str, seed: int) -> Path | None:
    """One obstacle-env episode rendered offscreen, with the end-effector path the expert's
    plan predicts; returns the file written or None."""
    import gymnasium as gym

    from ampczoo.benchmarks.evaluate import PlanPathWrapper
    from ampczoo.experts import MPCConfig, MPCExpert

    try:
        env = gym.make(
            "DAMPC-KukaTrackObstacle-v0",
            control_dt=CONTROL_DT,
            render_mode="rgb_array",
            width=480,
            height=360,
        )
        frames: list[np.ndarray] = []
        expert = MPCExpert(MPCConfig(solver=solver, obstacle=True))
        run_episode(PlanPathWrapper(env, expert), expert, seed=seed, frame_callback=frames.append)
        env.close()
    except Exception as exc:  # rendering needs OSMesa/EGL; the demo's numbers stand without it
        print(f"video skipped: rendering unavailable ({exc})")
        return None
    return write_video(frames, out, CONTROL_DT)


def _manipulation_episode(out: Path, env_id: str, seed: int, video: bool) -> dict | None:
    """One episode of ``env_id``'s scripted expert (rendered to ``manipulation.mp4`` when
    ``video``); prints and returns {env, success, steps, video} or None when the suite is not
    installed (the message names the extra)."""
    import gymnasium as gym

    from ampczoo.core.registry import make_policy

    try:
        env = gym.make(env_id, render_mode="rgb_array" if video else None)
    except ImportError as exc:
        print(f"manipulation episode skipped: {exc}")
        return None
    frames: list[np.ndarray] = []
    expert = make_policy("scripted", env_id=env_id)
    try:
        r = rollout(env, expert, seed, frame_callback=frames.append if video else None)
    finally:
        env.close()
    dt = 1.0 / float(env.metadata.get("render_fps") or 20)
    path = write_video(frames, out, dt, name="manipulation") if video and frames else None
    summary = {
        "env": env_id,
        "success": bool(r.infos[-1].get("success", False)),
        "steps": len(r.actions),
        "video": str(path) if path else None,
    }
    print(f"scripted expert on {env_id} (seed {seed}): {summary}")
    return summary


def _manipulation_policies(out: Path, env_id: str, seed: int, video: bool) -> list[dict]:
    """The zoo policies of ``env_id`` and each behind the zoo refiners whose card names it
    (:func:`zoo_policies`, :func:`zoo_refined`), one episode each from reset seed ``seed``:
    writes ``manipulation_policies.md/.csv`` and (``video``) the first base beside its first
    refined version in ``manipulation_policies.mp4``; returns the table rows (none when the
    suite is not installed or the env has no zoo policy)."""
    import gymnasium as gym

    from ampczoo.policies.constrained import make_constrained

    try:
        env = gym.make(env_id, render_mode="rgb_array" if video else None)
    except ImportError as exc:
        print(f"manipulation policies skipped: {exc}")
        return []
    contenders = [(name, _load_zoo_policy(name)) for name in zoo_policies(env_id)]
    bases = dict(contenders)
    contenders += [
        (f"{b} + {r}", make_constrained("diffog", bases[b], env_id, checkpoint=r))
        for b, r in zoo_refined(env_id)
        if b in bases
    ]
    rows, videos = [], {}
    try:
        for label, policy in contenders:
            frames: list[np.ndarray] = []
            with single_thread():
                r = rollout(env, policy, seed, frame_callback=frames.append if video else None)
            rows.append(
                {
                    "policy": label,
                    "success": bool(r.infos[-1].get("success", False)),
                    "steps": len(r.actions),
                    **action_change_columns(env_id, policy, np.asarray(r.actions)),
                }
            )
            videos[label] = frames
    finally:
        env.close()
    if not rows:
        return []
    print(write_table(rows, out, "manipulation_policies", title=f"{env_id}, reset seed {seed}"))
    pair = next((label for label in videos if " + " in label), None)
    if video and pair:
        dt = 1.0 / float(env.metadata.get("render_fps") or 20)
        frames = side_by_side(videos[pair.split(" + ")[0]], videos[pair])
        write_video(frames, out, dt, name="manipulation_policies")
    return rows


def action_change_columns(env_id: str, policy: Any, actions: np.ndarray) -> dict[str, float]:
    """Change between consecutive actions (T, A) on the suite's constrained dims, in its
    normalised units (:func:`ampczoo.wrappers.presets.suite_preset`): max |.|, std and the
    share of steps over the suite's bound [%]; {} for an env of no suite or < 2 actions."""
    from ampczoo.wrappers.presets import suite_preset

    preset = suite_preset(env_id)
    if preset is None or len(actions) < 2:
        return {}
    dims = list(preset.dims(actions.shape[1]))
    scale = preset.raw_scale(getattr(policy, "action_scale", None), actions.shape[1])
    d = np.diff(actions, axis=0)[:, dims] / scale[dims]
    return {
        "change max": float(np.abs(d).max()),
        "change std": float(d.std()),
        f"steps over {preset.bound} [%]": 100.0
        * float((np.abs(d) > preset.bound + 1e-6).any(1).mean()),
    }


def side_by_side(left: list[np.ndarray], right: list[np.ndarray]) -> list[np.ndarray]:
    """Frames (H, W, 3) of two episodes joined left | right; the shorter one holds its last
    frame."""
    if not left or not right:
        raise ValueError("side_by_side needs at least one frame on each side")
    n = max(len(left), len(right))
    return [
        np.concatenate([left[min(i, len(left) - 1)], right[min(i, len(right) - 1)]], axis=1)
        for i in range(n)
    ]
