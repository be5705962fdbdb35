"""Scripted experts of the manipulation suites, one registered policy type for all tasks.

``make_policy("scripted", env_id="Robomimic-Lift-v0", diversity=1.0)`` builds the task's
controller (a phase / waypoint controller on the low-dim observation, Meta-World's own
policy, a pushing controller for Push-T). Each suite's module adds its tasks to
:data:`SCRIPTED_CONTROLLERS` (env id -> "module:Class"); the class is built as
``Class(config)`` and follows the :class:`~ampczoo.core.policy.Policy` protocol on the env's
flat ``obs_mode="low_dim"`` observation.

``diversity`` scales what makes demonstrations look human rather than replayed: randomised
approach poses, timing and speed per episode and small action noise, all drawn at
``reset(seed)`` from the episode's seed (0: the same motion every episode, up to the
scene's randomisation; 1: the default spread).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ampczoo.core.policy import Policy

#: env id -> "module:Class" of its scripted controller, one line per task.
SCRIPTED_CONTROLLERS: dict[str, str] = {
    # robomimic tasks (robosuite): ampczoo.experts.scripted_robomimic
    "Robomimic-Lift-v0": "ampczoo.experts.scripted_robomimic:LiftController",
    "Robomimic-Can-v0": "ampczoo.experts.scripted_robomimic:CanController",
    "Robomimic-Square-v0": "ampczoo.experts.scripted_robomimic:SquareController",
    "Robomimic-Transport-v0": "ampczoo.experts.scripted_robomimic:TransportController",
    "Robomimic-ToolHang-v0": "ampczoo.experts.scripted_robomimic:ToolHangController",
    #
    # Meta-World very-hard tasks: ampczoo.experts.scripted_metaworld
    "MetaWorld-PickPlaceWall-v0": "ampczoo.experts.scripted_metaworld:MetaWorldScripted",
    "MetaWorld-ShelfPlace-v0": "ampczoo.experts.scripted_metaworld:MetaWorldScripted",
    "MetaWorld-Disassemble-v0": "ampczoo.experts.scripted_metaworld:MetaWorldScripted",
    "MetaWorld-StickPush-v0": "ampczoo.experts.scripted_metaworld:MetaWorldScripted",
    "MetaWorld-StickPull-v0": "ampczoo.experts.scripted_metaworld:MetaWorldScripted",
    # Push-T: ampczoo.experts.scripted_pusht
    "PushT-v0": "ampczoo.experts.scripted_pusht:PushTScripted",
}


@dataclass(frozen=True)
class ScriptedConfig:
    """Configuration of :class:`ScriptedExpert`."""

    env_id: str = "Robomimic-Lift-v0"
    """registered env id whose scripted controller to build"""
    diversity: float = 1.0
    """spread of per-episode approach poses, timing, speed and action noise (0: none)"""
    seed: int | None = None
    """seed of the first episode's randomisation when ``reset`` gets none"""

    def __post_init__(self) -> None:
        if self.env_id not in SCRIPTED_CONTROLLERS:
            raise ValueError(
                f"no scripted expert for env {self.env_id!r}; "
                f"choose from {sorted(SCRIPTED_CONTROLLERS) or 'none registered'}"
            )
        if not (np.isfinite(self.diversity) and self.diversity >= 0):
            raise ValueError(f"diversity must be finite and >= 0, got {self.diversity}")


def controller_class(env_id: str) -> Any:
    """The controller class registered for ``env_id`` (ValueError if none)."""
    if env_id not in SCRIPTED_CONTROLLERS:
        raise ValueError(
            f"no scripted expert for env {env_id!r}; choose from {sorted(SCRIPTED_CONTROLLERS)}"
        )
    module, attr = SCRIPTED_CONTROLLERS[env_id].split(":")
    return getattr(importlib.import_module(module), attr)


class ScriptedExpert(Policy):
    """The registered ``scripted`` type: builds and delegates to the controller of
    ``config.env_id``; ``act(obs)`` takes the env's flat low-dim observation."""

    name = "scripted"
    config_class = ScriptedConfig
    batched = False

    @classmethod
    def example_config(cls) -> ScriptedConfig:
        return ScriptedConfig(env_id=sorted(SCRIPTED_CONTROLLERS)[0])

    def __init__(self, config: ScriptedConfig | None = None):
        self.config = config or ScriptedConfig()
        self.controller = controller_class(self.config.env_id)(self.config)
        self.obs_dim = getattr(self.controller, "obs_dim", None)
        self.action_dim = getattr(self.controller, "action_dim", None)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.controller.act(obs)

    def reset(self, seed: int | None = None) -> None:
        self.controller.reset(seed if seed is not None else self.config.seed)
