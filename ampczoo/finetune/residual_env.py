"""``ResidualPolicyEnv``: a Gymnasium wrapper whose action is a residual on a frozen base.

The agent's action r in [-1, 1]^n is scaled by ``scale`` (env action units, per dimension or
one number) and added to the base policy's action a_b(obs); the env executes
a = clip(a_b + scale * r, low, high). The agent observes [obs, a_b] (a Box of
obs_dim + action_dim) and ``info`` reports ``base_action``, ``residual`` (scale * r) and
``executed_action``. The base (any zoo policy, ``act(obs)`` object, SB3 model or callable;
chunked bases execute their queue, :class:`~ampczoo.policies.residual_rl.BaseRunner`) is
reset with the env's reset seed at every ``reset``; ``base=None``: no base, the centre of
the action range (the BC-initialised actor-critic of :mod:`ampczoo.finetune.bc`).

``success_bonus`` (default 0) adds that amount to the reward at every step where the env's
own ``info["success"]`` is true (a documented shaping term); ``penetration_penalty``
(default 0) subtracts that amount times the env's ``info["penetration"]`` (the deepest
penetration into the observed obstacle as a fraction of its radius) at every step.

``error_shaping`` k (default 0) adds k * (e_prev - e) at every env step, e = the env's
``info["pos_error"]`` [m] (computed from the observation: end effector vs target) and e_prev
its value one step before: potential-based shaping (Ng et al. 1999, potential -k * e, no
discount) that rewards closing the error now rather than its level, so a critic need not
learn the large state-dependent level of the error to see what an action changes.

``hold`` (default 1) is the agent's action repeat: one agent step executes its residual on
``hold`` consecutive env steps (the base acting afresh at each), returns the sum of their
rewards and the last observation (fewer steps at the episode's end); ``info["env_steps"]``
counts them. The composed ``residual_rl`` policy holds its residual the same way
(:class:`~ampczoo.policies.residual_rl.ResidualRLConfig` ``hold``).

``residual_space`` (default "joint": the above) "task" or "task_position" (the KUKA
tracking envs only, whose action is the joint velocity [rad/s]; any other env: ValueError
naming it): the agent's action r in [-1, 1]^6 (or ^3) is an end-effector twist
``twist_scale`` * r (linear [m/s], angular [rad/s]; "task_position": linear only), mapped
to joint velocities by the damped least-squares inverse of the Jacobian at the current q
and clipped to +-``scale`` [rad/s] (:class:`~ampczoo.policies.residual_rl.
TaskSpaceResidual`, the map of the exported policy); r = 0 is the residual 0. A held twist
is mapped afresh at every env step. "task_force" (ThreeDOF-Reach-v0 only, whose action is
the joint torque [N m]): r in [-1, 1]^3 is an end-effector force ``twist_scale`` * r [N],
mapped to torques J(q)^T f and clipped to +-``scale`` [N m].
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ampczoo.policies.residual_rl import (
    TASK_SPACE_OBS,
    BaseRunner,
    TaskSpaceResidual,
    check_residual_space,
    residual_dim,
)


def check_scale(scale: Any, action_dim: int) -> np.ndarray:
    """The residual scale as (action_dim,) float64; ValueError unless every entry is finite
    and > 0 and the shape is a scalar or (action_dim,)."""
    try:
        arr = np.asarray(scale, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"residual scale must be numbers, got {scale!r}") from exc
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != action_dim):
        raise ValueError(
            f"residual scale must be a number or ({action_dim},) values, got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"residual scale must be finite and > 0, got {scale!r}")
    return np.broadcast_to(arr, (action_dim,)).copy()


def box_action_space(env: gym.Env) -> spaces.Box:
    """The env's flat, bounded Box action space; ValueError for anything else."""
    space = env.action_space
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"residual RL needs a flat Box action space, got {space}")
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise ValueError("residual RL needs a bounded action space (finite low/high)")
    return space


def check_task_space_env(env: gym.Env, space: str) -> None:
    """ValueError naming the env unless it provides the kinematics of a task-space residual:
    "task" / "task_position" a KUKA tracking env with its flat observation and
    joint-velocity action, "task_force" the 3-DOF arm (flat observation, joint torques)."""
    from ampczoo.envs.kuka_track import KukaTrackEnv
    from ampczoo.envs.threedof_reach import ThreeDOFReachEnv

    obs_shape = getattr(env.observation_space, "shape", None)
    sizes = [(n,) for n in TASK_SPACE_OBS[space]]
    if space == "task_force":
        env_class, names = ThreeDOFReachEnv, "the 3-DOF arm (ThreeDOF-Reach-v0"
    else:
        env_class = KukaTrackEnv
        names = "the KUKA kinematics (DAMPC-KukaTrack-v0, DAMPC-KukaTrackObstacle-v0"
    if not isinstance(env.unwrapped, env_class) or obs_shape not in sizes:
        name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        raise ValueError(
            f"residual_space {space!r} needs an env with {names}, flat observation); "
            f"{name} has none: use residual_space='joint'"
        )


class ResidualPolicyEnv(gym.Wrapper):
    """Action: residual r in [-1, 1]^n on the frozen ``base``'s action (see the module
    docstring). ValueError for a scale <= 0 or of the wrong size, an env without a flat
    bounded Box action space or observation space, a base that is not a policy, and (at
    construction, from one reset) a base whose action shape is not the env's."""

    def __init__(
        self,
        env: gym.Env,
        base: Any,
        scale: Any = 1.0,
        success_bonus: float = 0.0,
        penetration_penalty: float = 0.0,
        hold: int = 1,
        error_shaping: float = 0.0,
        residual_space: str = "joint",
        twist_scale: Any = (),
    ) -> None:
        super().__init__(env)
        check_residual_space(residual_space, twist_scale)
        self.residual_space = residual_space
        if residual_space != "joint":
            check_task_space_env(env, residual_space)
        shaping_ok = isinstance(error_shaping, int | float) and np.isfinite(error_shaping)
        if not shaping_ok or error_shaping < 0:
            raise ValueError(f"error_shaping must be a finite number >= 0, got {error_shaping!r}")
        self.error_shaping = float(error_shaping)
        self._error: float | None = None
        if isinstance(hold, bool) or not isinstance(hold, int | np.integer) or hold < 1:
            raise ValueError(f"hold must be a positive integer, got {hold!r}")
        self.hold = int(hold)
        space = box_action_space(env)
        obs_space = env.observation_space
        if not isinstance(obs_space, spaces.Box) or len(obs_space.shape) != 1:
            raise ValueError(f"residual RL needs a flat Box observation space, got {obs_space}")
        if not (isinstance(success_bonus, int | float) and np.isfinite(success_bonus)):
            raise ValueError(f"success_bonus must be a finite number, got {success_bonus!r}")
        penalty_ok = isinstance(penetration_penalty, int | float) and np.isfinite(
            penetration_penalty
        )
        if not penalty_ok or penetration_penalty < 0:
            raise ValueError(
                f"penetration_penalty must be a finite number >= 0, got {penetration_penalty!r}"
            )
        self.penetration_penalty = float(penetration_penalty)
        n = space.shape[0]
        self.scale = check_scale(scale, n)
        self.task_map = None
        if residual_space != "joint":
            self.task_map = TaskSpaceResidual(twist_scale, self.scale, residual_space)
        self.success_bonus = float(success_bonus)
        self.low, self.high = space.low.astype(np.float64), space.high.astype(np.float64)
        centre = (self.low + self.high) / 2
        self.base = BaseRunner(base, n, constant=centre if base is None else None)
        self.agent_dim = residual_dim(residual_space, n)
        self.action_space = spaces.Box(-1.0, 1.0, (self.agent_dim,), dtype=np.float32)
        self.observation_space = spaces.Box(
            np.concatenate([obs_space.low, self.low]).astype(np.float32),
            np.concatenate([obs_space.high, self.high]).astype(np.float32),
            dtype=np.float32,
        )
        self._base_action = np.zeros(n)
        self._obs = np.zeros(obs_space.shape, np.float64)
        self._check_base_shape()

    def _check_base_shape(self) -> None:
        """One reset + base query: ValueError naming both shapes when they differ."""
        obs, _ = self.env.reset(seed=0)
        self.base.reset(seed=0)
        try:
            self.base.act(obs)
        except ValueError as exc:
            raise ValueError(f"base policy does not fit the env: {exc}") from exc

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        self._obs = np.asarray(obs, np.float64)
        self._base_action = self.base.act(obs)
        return np.concatenate([obs, self._base_action]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset the env and the base (with the same seed)."""
        obs, info = self.env.reset(seed=seed, options=options)
        self.base.reset(seed=seed)
        self._error = info.get("pos_error")
        wrapped = self._observe(obs)
        info["base_action"] = self._base_action.copy()
        return wrapped, info

    def compose(self, residual: Any) -> tuple[np.ndarray, np.ndarray]:
        """(executed action, residual in action units) of agent action ``residual`` in
        [-1, 1]^d on the current base action (task spaces: mapped at the current
        observation's q); ValueError for a wrong shape or NaN/inf."""
        r = np.asarray(residual, dtype=np.float64)
        if r.shape != (self.agent_dim,) or not np.all(np.isfinite(r)):
            raise ValueError(
                f"residual must be finite with shape ({self.agent_dim},), got {r.shape}"
            )
        if self.task_map is not None:
            scaled = self.task_map.numpy(self._obs, r)
        else:
            scaled = self.scale * np.clip(r, -1.0, 1.0)
        return np.clip(self._base_action + scaled, self.low, self.high), scaled

    def step(self, action: Any):
        """Execute base + scale * action (on ``hold`` env steps); info adds base_action,
        residual, executed_action (of the last env step) and env_steps."""
        total, env_steps = 0.0, 0
        for _ in range(self.hold):
            env_steps += 1
            executed, scaled = self.compose(action)
            base_action = self._base_action.copy()
            obs, reward, terminated, truncated, info = self.env.step(executed)
            total += self._shaped(float(reward), info)
            wrapped = self._observe(obs)
            if terminated or truncated:
                break
        info.update(
            base_action=base_action, residual=scaled, executed_action=executed, env_steps=env_steps
        )
        return wrapped, total, terminated, truncated, info

    def _shaped(self, reward: float, info: dict[str, Any]) -> float:
        """The env's reward plus the success bonus minus the penetration penalty plus the
        error shaping."""
        if self.error_shaping:
            if "pos_error" not in info or self._error is None:
                raise ValueError("error_shaping needs an env that reports info['pos_error']")
            error = float(info["pos_error"])
            reward += self.error_shaping * (self._error - error)
            self._error = error
        if self.success_bonus and info.get("success"):
            reward += self.success_bonus
        if self.penetration_penalty:
            reward -= self.penetration_penalty * float(info.get("penetration", 0.0))
        return reward
