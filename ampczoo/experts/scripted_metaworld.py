"""Scripted experts of the Meta-World tasks: Meta-World's own heuristic policies
(``metaworld.policies``) made to look like human demonstrations.

Per episode (drawn at ``reset(seed)``, spread scaled by ``config.diversity``):

* an approach via-point: the hand first goes to a random point near its start
  (±:data:`VIA_XY` m sideways, 0 – :data:`VIA_Z` m up) before the task policy takes over, so
  approaches differ in shape and direction;
* a start delay (0 – :data:`MAX_DELAY` steps of hovering) and a speed factor
  (:data:`MIN_SPEED` – 1) on the position action away from the first object (near it the
  policies' grasp timing needs their own speed), so timing and speed vary;
* smoothing of the position action (a first-order low-pass with a per-episode factor) and
  temporally correlated (Ornstein–Uhlenbeck) action noise of std :data:`NOISE_STD`.

Diversity 0 reproduces Meta-World's policy exactly, but for one fix (:data:`CORRECTIONS`):
in stick-pull's last phase the hand aims past the goal by the distance the thermos trails
it, since Meta-World's policy stops the hand at the goal and leaves the thermos 2 – 4 cm
short on about one placement in ten (100 held-out seeds: 89 % -> see docs/results). The
gripper command is the policy's.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

#: Meta-World task of every registered id with a scripted expert.
TASK_OF_ENV: dict[str, str] = {
    "MetaWorld-PickPlaceWall-v0": "pick-place-wall-v3",
    "MetaWorld-ShelfPlace-v0": "shelf-place-v3",
    "MetaWorld-Disassemble-v0": "disassemble-v3",
    "MetaWorld-StickPush-v0": "stick-push-v3",
    "MetaWorld-StickPull-v0": "stick-pull-v3",
}
#: Half-width of the sideways (x, y) via-point offset at diversity 1 [m].
VIA_XY = 0.06
#: Largest upward via-point offset at diversity 1 [m].
VIA_Z = 0.06
#: Distance at which the via-point counts as reached [m].
VIA_TOLERANCE = 0.015
#: Most steps spent going to the via-point.
VIA_MAX_STEPS = 40
#: Longest start delay at diversity 1 [steps of 0.0125 s].
MAX_DELAY = 12
#: Slowest speed factor at diversity 1 (the position action is scaled by U(MIN_SPEED, 1)).
MIN_SPEED = 0.6
#: Distance from the first object within which the policy runs at full speed [m].
FULL_SPEED_RADIUS = 0.15
#: Distance over which the speed factor blends in beyond that radius [m].
SPEED_BLEND = 0.05
#: Largest low-pass factor at diversity 1 (a = f a_prev + (1 - f) a_policy).
MAX_SMOOTHING = 0.5
#: Stationary std of the action noise at diversity 1 (action units, 1 = 1 cm per step).
NOISE_STD = 0.08
#: Correlation of the noise from one step to the next.
NOISE_CORRELATION = 0.8
#: Proportional gain toward the via-point (Meta-World's policies use 10 – 25).
VIA_GAIN = 10.0


def _stick_pull_correction(obs: np.ndarray, action: np.ndarray) -> np.ndarray:
    """Stick-pull, pulling phase (stick end at the thermos, Meta-World's own test): aim the
    hand at the goal shifted by the thermos's lag behind the hand in y."""
    from metaworld.policies.policy import move

    hand, stick_x, thermos, goal = obs[:3], obs[4], obs[11:14], obs[36:39]
    if abs(stick_x - thermos[0]) > 0.04:  # not pulling yet (offsets of x cancel)
        return action
    target = goal + np.array([-0.05, 0.0, 0.0])  # Meta-World's target ...
    target[1] -= thermos[1] - hand[1]  # ... moved by the lag
    out = action.copy()
    out[:3] = move(hand, target, p=25.0)
    return out


#: task -> fix applied to Meta-World's action (obs (39,), action (4,)) -> action (4,).
CORRECTIONS = {"stick-pull-v3": _stick_pull_correction}


def metaworld_policy(task: str) -> Any:
    """Meta-World's scripted policy object for ``task`` (e.g. "shelf-place-v3")."""
    from ampczoo.envs.metaworld import INSTALL_HINT

    try:
        from metaworld.policies import ENV_POLICY_MAP
    except ImportError as exc:
        raise ImportError(f"the Meta-World experts need metaworld; {INSTALL_HINT}") from exc
    if task not in ENV_POLICY_MAP:
        raise ValueError(f"Meta-World has no scripted policy for task {task!r}")
    return ENV_POLICY_MAP[task]()


class MetaWorldScripted:
    """Meta-World's policy for the task of ``config.env_id`` (or ``task``), with per-episode
    human-like variation (module docstring). ``act(obs)``: obs (39,) Meta-World's
    observation -> action (4,) [dx, dy, dz (cm), gripper]."""

    obs_dim = 39
    action_dim = 4

    def __init__(self, config: Any, task: str | None = None):
        self.config = config
        self.diversity = float(getattr(config, "diversity", 1.0))
        env_id = getattr(config, "env_id", None)
        if task is None:
            if env_id not in TASK_OF_ENV:
                raise ValueError(f"no Meta-World task known for env {env_id!r}")
            task = TASK_OF_ENV[env_id]
        self.task = task
        self.policy = metaworld_policy(task)
        self.reset(getattr(config, "seed", None))

    def reset(self, seed: int | None = None) -> None:
        """Draw this episode's via-point, delay, speed, smoothing and noise from ``seed``."""
        rng = np.random.default_rng(seed)
        d = self.diversity
        self._rng = rng
        self.via_offset = np.array(
            [
                rng.uniform(-VIA_XY, VIA_XY) * d,
                rng.uniform(-VIA_XY, VIA_XY) * d,
                rng.uniform(0.0, VIA_Z) * d,
            ]
        )
        self.delay = int(rng.integers(0, round(MAX_DELAY * min(d, 1.0)) + 1))
        self.speed = float(rng.uniform(1.0 - (1.0 - MIN_SPEED) * min(d, 1.0), 1.0))
        self.smoothing = float(rng.uniform(0.0, MAX_SMOOTHING * min(d, 1.0)))
        self.noise_std = NOISE_STD * d
        self._noise = np.zeros(3)
        self._prev = np.zeros(3)
        self._via: np.ndarray | None = None
        self._via_done = bool(np.linalg.norm(self.via_offset) < VIA_TOLERANCE)
        self._t = 0

    def _speed_near(self, hand: np.ndarray, obj: np.ndarray) -> float:
        """The episode's speed factor in free space, 1 within :data:`FULL_SPEED_RADIUS` of
        the first object (the task policies time their grasps for full speed), blended
        linearly over the next :data:`SPEED_BLEND` m."""
        dist = float(np.linalg.norm(hand - obj))
        w = np.clip((dist - FULL_SPEED_RADIUS) / SPEED_BLEND, 0.0, 1.0)
        return float(1.0 + w * (self.speed - 1.0))

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, np.float64)
        if obs.shape != (self.obs_dim,):
            raise ValueError(f"obs must have shape ({self.obs_dim},), got {obs.shape}")
        if not np.all(np.isfinite(obs)):
            raise ValueError("obs contains NaN/inf")
        hand = obs[:3]
        if self._via is None:
            self._via = hand + self.via_offset
        with warnings.catch_warnings():  # "Constant(s) may be too high": they are clipped
            warnings.simplefilter("ignore", UserWarning)
            action = np.asarray(self.policy.get_action(obs), np.float64).copy()
            if self.task in CORRECTIONS:
                action = CORRECTIONS[self.task](obs, action)
        if self._t < self.delay:
            action[:3] = 0.0
        elif not self._via_done:
            to_via = self._via - hand
            if np.linalg.norm(to_via) < VIA_TOLERANCE or self._t >= self.delay + VIA_MAX_STEPS:
                self._via_done = True
            else:
                action[:3] = VIA_GAIN * to_via
                action[3] = -1.0  # open, as every task policy starts
        self._t += 1
        xyz = np.clip(action[:3], -1.0, 1.0) * self._speed_near(hand, obs[4:7])
        xyz = self.smoothing * self._prev + (1.0 - self.smoothing) * xyz
        self._prev = xyz
        self._noise = NOISE_CORRELATION * self._noise + self.noise_std * np.sqrt(
            1 - NOISE_CORRELATION**2
        ) * self._rng.standard_normal(3)
        action[:3] = np.clip(xyz + self._noise, -1.0, 1.0)
        action[3] = np.clip(action[3], -1.0, 1.0)
        return action
