"""ampczoo environments: every registered id in one place.

Entry points are lazy strings, so ``import ampczoo`` loads neither MuJoCo nor Pinocchio; an
env's module is imported by ``gym.make``. Variants are constructor keywords of one class.

========================================  ======================================  ==========
id                                        description                             max steps
========================================  ======================================  ==========
``DAMPC-KukaTrack-v0``                    KUKA iiwa pose tracking, self-collision  250 (5 s)
``DAMPC-KukaTrackObstacle-v0``            same, around a 0.2 m spherical obstacle  250 (5 s)
``ThreeDOF-Reach-v0``                     3-DOF arm, torque control, reach a point  200 (4 s)
``Robomimic-Lift-v0``                     robomimic Lift: lift the cube           400 (20 s)
``Robomimic-Can-v0``                      robomimic Can: can into its bin         400 (20 s)
``Robomimic-Square-v0``                   robomimic Square: nut onto its peg      400 (20 s)
``Robomimic-ToolHang-v0``                 robomimic Tool Hang: frame, hang tool   700 (35 s)
``Robomimic-Transport-v0``                robomimic Transport: two-arm hand-over  700 (35 s)
``MetaWorld-PickPlaceWall-v0``            Meta-World pick-place-wall-v3            500
``MetaWorld-ShelfPlace-v0``               Meta-World shelf-place-v3                500
``MetaWorld-Disassemble-v0``              Meta-World disassemble-v3                500
``MetaWorld-StickPush-v0``                Meta-World stick-push-v3                 500
``MetaWorld-StickPull-v0``                Meta-World stick-pull-v3                 500
``MetaWorld-v0``                          any Meta-World v3 task (``task=``)       500
``PushT-v0``                              Push-T (gym-pusht), push the T to a pose 300 (30 s)
========================================  ======================================  ==========

A new env is one class plus one :func:`register_env` line; :func:`env_ids` lists every id
registered through it (also by users, after import), and the contract tests
(:mod:`ampczoo.envs.checks`) run over all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gymnasium.envs.registration import register, registry

#: Steps of the 5 s episode at the default control period of 0.02 s.
KUKA_MAX_EPISODE_STEPS = 250
#: Steps of the 4 s episode of ThreeDOF-Reach-v0 at its default control period of 0.02 s.
THREEDOF_MAX_EPISODE_STEPS = 200

#: Steps of a Meta-World episode (its ``max_path_length``, 0.0125 s each).
METAWORLD_MAX_EPISODE_STEPS = 500
#: Steps of a Push-T episode (0.1 s each), as gym-pusht and Diffusion Policy.
PUSHT_MAX_EPISODE_STEPS = 300

#: env id -> the arguments it was registered with (entry point and gymnasium's keywords).
ENVS: dict[str, dict[str, Any]] = {}


def _entry_point_name(entry_point: str | Callable[..., Any]) -> str:
    if isinstance(entry_point, str):
        return entry_point
    return f"{entry_point.__module__}:{entry_point.__qualname__}"


def register_env(env_id: str, entry_point: str | Callable[..., Any], **kwargs: Any) -> None:
    """Register ``env_id`` with Gymnasium (``gymnasium.register(env_id, entry_point,
    **kwargs)``: ``max_episode_steps``, ``kwargs`` for the constructor, ...) and list it in
    :func:`env_ids`.

    entry_point: "module:Class" (lazy: imported by ``gym.make``) or a callable returning an
    env. Registering the same id again with the same arguments does nothing (re-import, a
    re-run notebook cell); with other arguments it is a ValueError (no silent override), as
    is an id Gymnasium already holds from elsewhere with another entry point."""
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env id must be a non-empty string, got {env_id!r}")
    if not (isinstance(entry_point, str) and ":" in entry_point) and not callable(entry_point):
        raise ValueError(f"entry point must be 'module:Class' or a callable, got {entry_point!r}")
    spec = {"entry_point": _entry_point_name(entry_point), **kwargs}
    if env_id in ENVS:
        if ENVS[env_id] != spec:
            raise ValueError(f"env {env_id!r} is already registered with {ENVS[env_id]}")
        return
    if env_id in registry:
        existing = registry[env_id].entry_point
        if existing is None or _entry_point_name(existing) != spec["entry_point"]:
            raise ValueError(f"env {env_id!r} is already registered in gymnasium as {existing!r}")
    else:
        register(id=env_id, entry_point=entry_point, **kwargs)
    ENVS[env_id] = spec


def env_ids() -> list[str]:
    """Every env id registered through :func:`register_env` (the package's and any added
    later), sorted."""
    return sorted(ENVS)


for _env_id, _obstacle in (("DAMPC-KukaTrack-v0", False), ("DAMPC-KukaTrackObstacle-v0", True)):
    register_env(
        _env_id,
        "ampczoo.envs.kuka_track:KukaTrackEnv",
        max_episode_steps=KUKA_MAX_EPISODE_STEPS,
        kwargs={"obstacle": _obstacle},
    )
register_env(
    "ThreeDOF-Reach-v0",
    "ampczoo.envs.threedof_reach:ThreeDOFReachEnv",
    max_episode_steps=THREEDOF_MAX_EPISODE_STEPS,
)

# Meta-World (metaworld 3.x; ids and tasks: ampczoo.envs.metaworld.VERY_HARD_TASKS)
for _env_id, _task in (
    ("MetaWorld-PickPlaceWall-v0", "pick-place-wall-v3"),
    ("MetaWorld-ShelfPlace-v0", "shelf-place-v3"),
    ("MetaWorld-Disassemble-v0", "disassemble-v3"),
    ("MetaWorld-StickPush-v0", "stick-push-v3"),
    ("MetaWorld-StickPull-v0", "stick-pull-v3"),
):
    register_env(
        _env_id,
        "ampczoo.envs.metaworld:MetaWorldEnv",
        max_episode_steps=METAWORLD_MAX_EPISODE_STEPS,
        kwargs={"task": _task},
    )
register_env(
    "MetaWorld-v0",
    "ampczoo.envs.metaworld:MetaWorldEnv",
    max_episode_steps=METAWORLD_MAX_EPISODE_STEPS,
)
# Push-T (gym-pusht)
register_env("PushT-v0", "ampczoo.envs.pusht:PushTEnv", max_episode_steps=PUSHT_MAX_EPISODE_STEPS)
# robomimic tasks (robosuite 1.5, ampczoo.envs.robomimic.RobomimicEnv); horizons: robomimic's.
for _task, _horizon in (
    ("Lift", 400),
    ("Can", 400),
    ("Square", 400),
    ("ToolHang", 700),
    ("Transport", 700),
):
    register_env(
        f"Robomimic-{_task}-v0",
        "ampczoo.envs.robomimic:RobomimicEnv",
        max_episode_steps=_horizon,
        kwargs={"task": _task},
    )

__all__ = [
    "ENVS",
    "KUKA_MAX_EPISODE_STEPS",
    "METAWORLD_MAX_EPISODE_STEPS",
    "PUSHT_MAX_EPISODE_STEPS",
    "THREEDOF_MAX_EPISODE_STEPS",
    "env_ids",
    "register_env",
]
