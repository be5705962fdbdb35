"""ampczoo environments: every registered id in one place.

Entry points are lazy strings, so ``import ampczoo`` loads neither MuJoCo nor Pinocchio; an
env's module is imported by ``gym.make``. Variants are constructor keywords of one class.

========================================  ======================================  ==========
id                                        description                             max steps
========================================  ======================================  ==========
``DAMPC-KukaTrack-v0``                    KUKA iiwa pose tracking, self-collision  250 (5 s)
``DAMPC-KukaTrackObstacle-v0``            same, around a 0.2 m spherical obstacle  250 (5 s)
``ThreeDOF-Reach-v0``                     3-DOF arm, torque control, reach a point  200 (4 s)
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

#: Steps of the 4 s episode of ThreeDOF-Reach-v0 at its default control period of 0.02 s.
THREEDOF_MAX_EPISODE_STEPS = 200

if "ThreeDOF-Reach-v0" not in registry:
    register(
        id="ThreeDOF-Reach-v0",
        entry_point="ampczoo.envs.threedof_reach:ThreeDOFReachEnv",
        max_episode_steps=THREEDOF_MAX_EPISODE_STEPS,
    )

__all__ = ["KUKA_MAX_EPISODE_STEPS", "THREEDOF_MAX_EPISODE_STEPS"]
