"""ampczoo environments: every registered id in one place.

Entry points are lazy strings, so ``import ampczoo`` loads neither MuJoCo nor Pinocchio; an
env's module is imported by ``gym.make``. Variants are constructor keywords of one class.

========================================  ======================================  ==========
id                                        description                             max steps
========================================  ======================================  ==========
``DAMPC-KukaTrack-v0``                    KUKA iiwa pose tracking, self-collision  250 (5 s)
``DAMPC-KukaTrackObstacle-v0``            same, around a 0.2 m spherical obstacle  250 (5 s)
========================================  ======================================  ==========
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

#: Steps of the 5 s episode at the default control period of 0.02 s.
KUKA_MAX_EPISODE_STEPS = 250

_ENVS = {
    "DAMPC-KukaTrack-v0": {"obstacle": False},
    "DAMPC-KukaTrackObstacle-v0": {"obstacle": True},
}

for _env_id, _kwargs in _ENVS.items():
    if _env_id not in registry:  # re-importing must not warn about overriding
        register(
            id=_env_id,
            entry_point="ampczoo.envs.kuka_track:KukaTrackEnv",
            max_episode_steps=KUKA_MAX_EPISODE_STEPS,
            kwargs=_kwargs,
        )

__all__ = ["KUKA_MAX_EPISODE_STEPS"]
