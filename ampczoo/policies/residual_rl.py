"""Residual RL policy: a frozen base policy plus a learned residual (``residual_rl`` type).

``act(obs)`` = clip(base(obs) + scale * r(obs, base(obs)), action_low, action_high), where
``r`` is a small actor network with output in [-1, 1]^n (deterministic; the mean of the
stochastic policy it was trained as). The actor is the one trained by
:mod:`ampczoo.finetune` with stable-baselines3 (SAC / TD3: the actor's ``latent_pi`` + ``mu``
squashed by tanh; PPO: ``policy_net`` + ``action_net`` clipped to [-1, 1]), its weights
exported into :class:`ResidualActor` (no SB3 zip, no pickle).

The base is referenced by ``config.base`` (zoo name or checkpoint folder; loaded lazily,
offline) or set in memory with :meth:`ResidualRLPolicy.set_base` (any ``act(obs)`` policy,
an SB3 model or a callable; see :class:`BaseRunner`). ``base=""``: no base, the actor's
output is the whole action around the centre of the action range (``scale`` = half the
range; the BC-initialised actor-critic of :mod:`ampczoo.finetune.bc`).

Actor input: the flat env observation (obs_dim,) and the base action (action_dim,),
z-scored with fixed statistics (buffers ``in_mean``, ``in_std``, measured on base rollouts
before training), plus optional kinematic features of the observation (``features``):

* ``"none"``: nothing added;
* ``"threedof_ee"`` (ThreeDOF-Reach-v0): end-effector position p(q), the error
  e = p_des - p(q) (both / 0.3 m) and tanh(e / 0.02 m), the history policies' token
  features (:mod:`ampczoo.policies.history`), plus the joint-space direction of the error
  g = J(q)^T e [m^2/rad] (J the position Jacobian) as g / 0.09 and tanh(g / 0.005): the
  direction of the torque that pulls the end effector to the target. All from the
  observation alone.
* ``"kuka_kinematic"`` (the KUKA tracking envs, obs (16,) or (20,)): the
  :class:`~ampczoo.nn.features.KukaFeatures` of the observation (forward kinematics, pose
  error, J^T e, the damped least-squares step, joint origins; 60 values) plus the fine-scale
  tanh(e_p / 0.02 m) (3) and tanh(dls / 0.05 rad) (7) of the position error e_p and the
  damped least-squares step dls: the joint-space direction that closes the pose error.
* ``"kuka_error"`` (the KUKA envs): *only* the pose error, in place of everything else
  (no raw observation, no base action): e_p / 0.1 m, tanh(e_p / 0.02 m), e_r / 0.3 and
  tanh(e_r / 0.05) (12 values; e_r = sin(theta) * axis of R_d R_ee^T). With a linear actor
  (``num_layers`` 0) and a task-space residual it is a saturated proportional feedback on
  the pose error, the family of the hand-made task-space P residual, with 78 parameters.
* ``"metaworld_grasp"`` (the Meta-World envs, obs (39,), action (4,)): *only* the grasp
  error, in place of everything else: e = object - hand + (0, 0, 0.04 m) (the object's
  position relative to where it sits when held: the hand 4 cm above its centre, the median
  over the lifted steps of the Pick Place Wall demonstrations), as e / 0.1 m, tanh(e / 0.02 m)
  and tanh(|e| / 0.02 m), the gripper opening (observation index 3) and the base's gripper
  action (9 values). With a linear actor in action space it is a saturated feedback that
  pulls the hand onto the object and opens the gripper while the hand is away from it;
  held, e is about 0 and the residual leaves the base alone.

Residual space (``residual_space``): ``"joint"`` (default): the actor's output r in
[-1, 1]^action_dim is the residual in action units, ``scale * r``. ``"task"`` (the KUKA
envs, whose action is the joint velocity [rad/s]): r in [-1, 1]^6 is an end-effector twist
v = ``twist_scale`` * r (linear [m/s], angular [rad/s], world frame), mapped to joint
velocities by the damped least-squares inverse of the arm's Jacobian at the observed q
(:meth:`~ampczoo.nn.features.KukaFeatures.twist_to_joint_velocity`) and clipped to
+-``scale`` [rad/s]; ``"task_position"``: the same with r in [-1, 1]^3 the linear part only
(angular twist 0: hold the orientation). r = 0 is the residual 0 in every space
(:class:`TaskSpaceResidual`, shared with :class:`~ampczoo.finetune.residual_env.
ResidualPolicyEnv`). ``"task_force"`` (ThreeDOF-Reach-v0, whose action is the joint torque
[N m]): r in [-1, 1]^3 is an end-effector force f = ``twist_scale`` * r [N] (the field
holds the force per actor unit here), mapped to joint torques J(q)^T f and clipped to
+-``scale`` [N m].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ampczoo.core.checkpoint import PolicyConfig, PretrainedPolicy, check_obs
from ampczoo.robots.threedof import OBS_Q, OBS_QD, OBS_TARGET, forward_kinematics

FEATURES = (
    "none",
    "threedof_ee",
    "threedof_error",
    "kuka_kinematic",
    "kuka_error",
    "metaworld_grasp",
)
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}
SQUASHES = ("tanh", "clip")
#: Length scales of the 3-DOF end-effector features [m] (as the history policies').
EE_SCALE, EE_FINE_SCALE = 0.3, 0.02
#: Scales of the joint-space error feature J^T e [m^2/rad].
JTE_SCALE, JTE_FINE_SCALE = 0.09, 0.005
#: Fine scales of the KUKA position error [m] and damped least-squares step [rad].
KUKA_POS_FINE_SCALE, KUKA_DLS_FINE_SCALE = 0.02, 0.05
#: Slices of the position error and the damped least-squares step in KukaFeatures' output.
KUKA_EP, KUKA_DLS = slice(17, 20), slice(32, 39)
#: Slice of the rotation error sin(theta) * axis in KukaFeatures' output.
KUKA_ER = slice(21, 24)
#: Coarse / fine scales of the ``kuka_error`` features: position [m], rotation [rad].
KUKA_ERR_POS_SCALES, KUKA_ERR_ROT_SCALES = (0.1, 0.02), (0.3, 0.05)
#: Scale of the 3-DOF end-effector velocity feature of ``threedof_error`` [m/s].
EE_VELOCITY_SCALE = 0.3
#: residual spaces and the agent's action size in each (None: the env's action size)
RESIDUAL_SPACES: dict[str, int | None] = {
    "joint": None,
    "task": 6,
    "task_position": 3,
    "task_force": 3,
}
#: observation sizes of the envs each task space is defined on (KUKA: 16 / 20; 3-DOF: 9)
TASK_SPACE_OBS = {"task": (16, 20), "task_position": (16, 20), "task_force": (9,)}
#: features that replace the observation and base action (error features alone)
ERROR_ONLY_FEATURES = ("kuka_error", "threedof_error", "metaworld_grasp")
#: Meta-World's flat observation: hand position, gripper opening, first object's position.
MW_HAND, MW_GRIPPER, MW_OBJECT = slice(0, 3), 3, slice(4, 7)
#: Object centre relative to the hand when it is held: the hand 4 cm above it [m].
MW_GRASP_OFFSET = (0.0, 0.0, 0.04)
#: Coarse / fine scales of the ``metaworld_grasp`` error [m].
MW_GRASP_SCALES = (0.1, 0.02)


def feature_dim(features: str) -> int:
    """Number of kinematic features added to the actor input."""
    if features == "kuka_kinematic":
        from ampczoo.nn.features import FEATURE_DIM

        return FEATURE_DIM + 3 + 7
    sizes = {"none": 0, "threedof_ee": 15, "threedof_error": 9, "kuka_error": 12}
    return {**sizes, "metaworld_grasp": 9}[features]


def threedof_jacobian(q: torch.Tensor) -> torch.Tensor:
    """Position Jacobian J(q) (..., 3, 3) [m/rad] of the 3-DOF arm (closed form of
    :func:`~ampczoo.robots.threedof.forward_kinematics`): rows x, y, z; columns joints."""
    from ampczoo.robots.threedof import LINK_LENGTHS

    l2, l3 = LINK_LENGTHS
    q1, q2, q3 = q[..., 0], q[..., 1], q[..., 2]
    c1, s1 = torch.cos(q1), torch.sin(q1)
    r = l2 * torch.cos(q2) + l3 * torch.cos(q2 + q3)
    dr2 = -l2 * torch.sin(q2) - l3 * torch.sin(q2 + q3)
    dz2 = l2 * torch.cos(q2) + l3 * torch.cos(q2 + q3)
    dr3, dz3 = -l3 * torch.sin(q2 + q3), l3 * torch.cos(q2 + q3)
    zero = torch.zeros_like(q1)
    rows = [
        torch.stack([-r * s1, dr2 * c1, dr3 * c1], -1),
        torch.stack([r * c1, dr2 * s1, dr3 * s1], -1),
        torch.stack([zero, dz2, dz3], -1),
    ]
    return torch.stack(rows, -2)


def threedof_jacobian_t_error(q: torch.Tensor, err: torch.Tensor) -> torch.Tensor:
    """J(q)^T e (..., 3) [m^2/rad] of the 3-DOF arm's position Jacobian and errors e (..., 3)
    [m] (also: joint torques [N m] of an end-effector force e [N])."""
    return (threedof_jacobian(q).transpose(-1, -2) @ err[..., None])[..., 0]


@dataclass(frozen=True)
class ResidualRLConfig(PolicyConfig):
    """Residual RL policy: frozen base + scale * actor(obs, base action) (see the module
    docstring)."""

    type: str = "residual_rl"
    base: str = ""
    """zoo name or checkpoint folder of the frozen base policy ("" = no base: the actor
    acts alone around the centre of the action range)"""
    obs_dim: int = 9
    """size of the env's flat observation"""
    action_dim: int = 3
    """size of the env's action"""
    scale: tuple[float, ...] = (1.5, 2.5, 1.0)
    """residual scale per action dimension, in the env's action units (residual in [-1, 1]
    times this)"""
    action_low: tuple[float, ...] = (-6.0, -10.0, -4.0)
    """lower bound of the env's action space (the composed action is clipped to it)"""
    action_high: tuple[float, ...] = (6.0, 10.0, 4.0)
    """upper bound of the env's action space"""
    hidden_dim: int = 256
    """width of each hidden layer of the actor"""
    num_layers: int = 2
    """number of hidden layers of the actor"""
    activation: str = "relu"
    """hidden activation: "relu" (SB3's SAC / TD3 default) or "tanh" (PPO's)"""
    squash: str = "tanh"
    """output map to [-1, 1]: "tanh" (SAC / TD3) or "clip" (PPO's Gaussian mean)"""
    features: str = "none"
    """kinematic features of the observation added to the actor input: "none",
    "threedof_ee", "threedof_error", "kuka_kinematic", "kuka_error" or "metaworld_grasp"
    (see the module docstring)"""
    hold: int = 1
    """env steps an actor output is held: the actor is queried at the first step after
    ``reset`` and every ``hold`` steps after it, its output held in between and added to the
    base's (fresh) action at each step (task spaces: mapped to joints at each step's q; the
    agent's action repeat of ``ampczoo finetune --hold``)"""
    residual_space: str = "joint"
    """what the actor outputs: "joint" (the residual in action units), "task" (an
    end-effector twist, 6) or "task_position" (its linear part, 3) mapped to joint
    velocities (KUKA), "task_force" (an end-effector force, 3, mapped to joint torques by
    J^T; the 3-DOF arm; see the module docstring)"""
    twist_scale: tuple[float, ...] = ()
    """task spaces: the twist per actor unit, linear [m/s] (3) then angular [rad/s] (3;
    "task" only); "task_force": the force per actor unit [N] (3); empty for "joint" """

    def __post_init__(self) -> None:
        for name in ("obs_dim", "action_dim", "hidden_dim", "hold"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        layers = self.num_layers
        if not isinstance(layers, int | np.integer) or isinstance(layers, bool) or layers < 0:
            raise ValueError(f"num_layers must be an integer >= 0 (0: linear), got {layers!r}")
        check_residual_space(self.residual_space, self.twist_scale, self.obs_dim)
        for name in ("scale", "action_low", "action_high"):
            values = getattr(self, name)
            if len(values) != self.action_dim or not np.all(np.isfinite(values)):
                raise ValueError(f"{name} must be {self.action_dim} finite numbers, got {values}")
        if not all(s > 0 for s in self.scale):
            raise ValueError(f"residual scale must be > 0, got {self.scale}")
        if not all(lo < hi for lo, hi in zip(self.action_low, self.action_high, strict=True)):
            raise ValueError("action_low must be < action_high in every dimension")
        choices = (("activation", ACTIVATIONS), ("squash", SQUASHES), ("features", FEATURES))
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {tuple(allowed)}, got {getattr(self, name)!r}"
                )
        if self.features in ("threedof_ee", "threedof_error") and self.obs_dim != 9:
            raise ValueError(
                f"features {self.features!r} needs the 3-DOF observation (9,), got {self.obs_dim}"
            )
        if self.features in ("kuka_kinematic", "kuka_error") and self.obs_dim not in (16, 20):
            raise ValueError(
                f"features {self.features!r} needs a KUKA observation (16,) or (20,), "
                f"got {self.obs_dim}"
            )
        if self.features == "metaworld_grasp" and (self.obs_dim, self.action_dim) != (39, 4):
            raise ValueError(
                "features 'metaworld_grasp' needs a Meta-World observation (39,) and action "
                f"(4,), got ({self.obs_dim},) and ({self.action_dim},)"
            )


def check_residual_space(space: str, twist_scale: Any, obs_dim: int | None = None) -> None:
    """ValueError unless ``space`` is one of :data:`RESIDUAL_SPACES`, ``twist_scale`` has its
    size (empty for "joint") with finite entries > 0, and a task space has its env's
    observation (:data:`TASK_SPACE_OBS`: KUKA (16,) or (20,), 3-DOF (9,); when ``obs_dim``
    is given)."""
    if space not in RESIDUAL_SPACES:
        raise ValueError(f"residual_space must be one of {tuple(RESIDUAL_SPACES)}, got {space!r}")
    dim = RESIDUAL_SPACES[space]
    values = np.asarray(twist_scale, dtype=np.float64).reshape(-1)
    if dim is None:
        if values.size:
            raise ValueError(f"twist_scale is for the task spaces, not {space!r}: {twist_scale}")
        return
    units = "[N]" if space == "task_force" else "([m/s] then [rad/s])"
    if values.size != dim or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(
            f"residual_space {space!r} needs twist_scale of {dim} finite numbers > 0 "
            f"{units}, got {twist_scale!r}"
        )
    if obs_dim is not None and obs_dim not in TASK_SPACE_OBS[space]:
        arm = "3-DOF" if space == "task_force" else "KUKA"
        raise ValueError(
            f"residual_space {space!r} needs a {arm} observation of size "
            f"{' or '.join(map(str, TASK_SPACE_OBS[space]))}, got {obs_dim}"
        )


def residual_dim(space: str, action_dim: int) -> int:
    """Size of the agent's action (the actor's output) in residual space ``space``."""
    return RESIDUAL_SPACES[space] or action_dim


class TaskSpaceResidual(nn.Module):
    """Agent action r (B, d) in [-1, 1] -> joint residual, clipped to +-``joint_scale``.
    KUKA (d = 6: a twist ``twist_scale`` * r, linear [m/s] + angular [rad/s]; d = 3: linear
    only, angular 0) -> (B, 7) [rad/s] by the damped least-squares inverse of the Jacobian
    at the observation's q (:class:`~ampczoo.nn.features.KukaFeatures`); 3-DOF arm
    (``space`` "task_force", d = 3: an end-effector force ``twist_scale`` * r [N]) -> (B, 3)
    joint torques J(q)^T f [N m]. r = 0 -> 0. Parameter-free; float32."""

    def __init__(self, twist_scale: Any, joint_scale: Any, space: str = "task"):
        super().__init__()
        twist = torch.as_tensor(np.asarray(twist_scale, np.float32).reshape(-1))
        self.register_buffer("twist_scale", twist, persistent=False)
        joint = torch.as_tensor(np.asarray(joint_scale, np.float32).reshape(-1))
        self.register_buffer("joint_scale", joint, persistent=False)
        self.kuka: nn.Module | None = None
        if space != "task_force":
            from ampczoo.nn.features import KukaFeatures

            self.kuka = KukaFeatures()

    def forward(self, obs: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """obs (B, >= 7) raw observations (q first), r (B, d) -> (B, n) joint residual."""
        scaled = r.clamp(-1.0, 1.0) * self.twist_scale
        if self.kuka is None:
            joint = threedof_jacobian_t_error(obs[:, OBS_Q], scaled)
        else:
            from ampczoo.robots.kuka import OBS_Q as KUKA_Q

            if scaled.shape[-1] == 3:
                scaled = torch.cat([scaled, torch.zeros_like(scaled)], dim=-1)
            joint = self.kuka.twist_to_joint_velocity(obs[:, KUKA_Q], scaled)
        return torch.maximum(torch.minimum(joint, self.joint_scale), -self.joint_scale)

    @torch.no_grad()
    def numpy(self, obs: np.ndarray, r: np.ndarray) -> np.ndarray:
        """The map of one observation (obs_dim,) and agent action (d,) -> (n,) float64."""
        obs_t = torch.as_tensor(np.asarray(obs, np.float32)[None])
        r_t = torch.as_tensor(np.asarray(r, np.float32)[None])
        return self(obs_t, r_t)[0].numpy().astype(np.float64)


class ResidualInput(nn.Module):
    """[obs, base action] (B, obs_dim + action_dim) raw -> actor input (B, input_dim): the
    z-scored input and the kinematic features (``kuka_error``: the pose error features
    alone). Parameter-free (buffers only); also the features extractor of the SB3 networks
    during training."""

    def __init__(self, obs_dim: int, action_dim: int, features: str = "none"):
        super().__init__()
        self.obs_dim, self.action_dim, self.features = obs_dim, action_dim, features
        n = obs_dim + action_dim
        self.register_buffer("in_mean", torch.zeros(n))
        self.register_buffer("in_std", torch.ones(n))
        self.output_dim = (0 if features in ERROR_ONLY_FEATURES else n) + feature_dim(features)
        self.kuka: nn.Module | None = None
        if features in ("kuka_kinematic", "kuka_error"):
            from ampczoo.nn.features import KukaFeatures

            self.kuka = KukaFeatures()  # parameter-free, buffers not stored in checkpoints

    def set_stats(self, mean: Any, std: Any, min_std: float = 1e-3) -> None:
        """Fixed z-score statistics of the raw input (n,); std floored at ``min_std``."""
        mean_t = torch.as_tensor(np.asarray(mean, np.float32)).reshape(self.in_mean.shape)
        std_t = torch.as_tensor(np.maximum(np.asarray(std, np.float32), min_std))
        self.in_mean.copy_(mean_t)
        self.in_std.copy_(std_t.reshape(self.in_std.shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.features == "kuka_error":
            kin = self._kuka_features(x)
            e_p, e_r = kin[..., KUKA_EP], kin[..., KUKA_ER]
            (p_coarse, p_fine), (r_coarse, r_fine) = KUKA_ERR_POS_SCALES, KUKA_ERR_ROT_SCALES
            pos = [e_p / p_coarse, torch.tanh(e_p / p_fine)]
            return torch.cat([*pos, e_r / r_coarse, torch.tanh(e_r / r_fine)], dim=-1)
        if self.features == "threedof_error":
            return self._threedof_error(x[..., : self.obs_dim])
        if self.features == "metaworld_grasp":
            return self._metaworld_grasp(x[..., : self.obs_dim], x[..., self.obs_dim :])
        parts = [(x - self.in_mean) / self.in_std]
        if self.features == "threedof_ee":
            obs = x[..., : self.obs_dim]
            ee = forward_kinematics(obs[..., OBS_Q], xp=torch)
            err = obs[..., OBS_TARGET] - ee
            parts += [ee / EE_SCALE, err / EE_SCALE, torch.tanh(err / EE_FINE_SCALE)]
            g = threedof_jacobian_t_error(obs[..., OBS_Q], err)
            parts += [g / JTE_SCALE, torch.tanh(g / JTE_FINE_SCALE)]
        if self.kuka is not None:
            kin = self._kuka_features(x)
            fine_p = torch.tanh(kin[..., KUKA_EP] / KUKA_POS_FINE_SCALE)
            parts += [kin, fine_p, torch.tanh(kin[..., KUKA_DLS] / KUKA_DLS_FINE_SCALE)]
        return torch.cat(parts, dim=-1)

    @staticmethod
    def _threedof_error(obs: torch.Tensor) -> torch.Tensor:
        """e / 0.3 m, tanh(e / 0.02 m), v / 0.3 m/s (..., 9) of 3-DOF observations."""
        q = obs[..., OBS_Q]
        err = obs[..., OBS_TARGET] - forward_kinematics(q, xp=torch)
        vel = (threedof_jacobian(q) @ obs[..., OBS_QD, None])[..., 0]
        scaled = [err / EE_SCALE, torch.tanh(err / EE_FINE_SCALE), vel / EE_VELOCITY_SCALE]
        return torch.cat(scaled, dim=-1)

    @staticmethod
    def _metaworld_grasp(obs: torch.Tensor, base_action: torch.Tensor) -> torch.Tensor:
        """e / 0.1 m, tanh(e / 0.02 m), tanh(|e| / 0.02 m), gripper opening, base gripper
        action (..., 9) of Meta-World observations (..., 39) and base actions (..., 4);
        e = object - hand + :data:`MW_GRASP_OFFSET` [m]."""
        offset = torch.as_tensor(MW_GRASP_OFFSET, dtype=obs.dtype, device=obs.device)
        err = obs[..., MW_OBJECT] - obs[..., MW_HAND] + offset
        coarse, fine = MW_GRASP_SCALES
        dist = torch.tanh(err.norm(dim=-1, keepdim=True) / fine)
        grip = [obs[..., MW_GRIPPER, None], base_action[..., -1:]]
        return torch.cat([err / coarse, torch.tanh(err / fine), dist, *grip], dim=-1)

    #: the last inputs and their KukaFeatures, shared by all instances: the actor, critic
    #: and target critic of one SAC update see the same two batch tensors (identity checked
    #: while the cache holds them, so a freed tensor's address is never mistaken)
    _kuka_cache: list[tuple[torch.Tensor, torch.Tensor]] = []

    def _kuka_features(self, x: torch.Tensor) -> torch.Tensor:
        """KukaFeatures (..., 60) of the observation part of ``x`` (cached by identity)."""
        for seen, kin in ResidualInput._kuka_cache:
            if seen is x:
                return kin
        assert self.kuka is not None
        with torch.no_grad():  # parameter-free: no gradient to carry
            obs = x[..., : self.obs_dim].reshape(-1, self.obs_dim)
            kin = self.kuka(obs).reshape(*x.shape[:-1], -1)
        if x.shape[0] > 1:  # only batches (act() builds a new tensor every call)
            ResidualInput._kuka_cache = [(x, kin), *ResidualInput._kuka_cache[:1]]
        return kin


def mlp_body(in_dim: int, hidden_dim: int, num_layers: int, activation: str) -> nn.Sequential:
    """Linear + activation, ``num_layers`` times (SB3's ``create_mlp`` layout)."""
    layers: list[nn.Module] = []
    for _ in range(num_layers):
        layers += [nn.Linear(in_dim, hidden_dim), ACTIVATIONS[activation]()]
        in_dim = hidden_dim
    return nn.Sequential(*layers)


class ResidualActor(nn.Module):
    """[obs, base action] (B, obs_dim + action_dim) -> agent action (B, d) in [-1, 1]
    (d = action_dim, or the twist size of a task space): ``inputs`` -> ``body`` (MLP; no
    layer: a linear actor) -> ``head`` (Linear) -> squash."""

    def __init__(self, config: ResidualRLConfig):
        super().__init__()
        c = config
        self.inputs = ResidualInput(c.obs_dim, c.action_dim, c.features)
        self.body = mlp_body(self.inputs.output_dim, c.hidden_dim, c.num_layers, c.activation)
        head_in = c.hidden_dim if c.num_layers else self.inputs.output_dim
        self.head = nn.Linear(head_in, residual_dim(c.residual_space, c.action_dim))
        self.squash = c.squash
        nn.init.zeros_(self.head.weight)  # start at the base: zero residual
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.body(self.inputs(x)))
        return torch.tanh(out) if self.squash == "tanh" else torch.clamp(out, -1.0, 1.0)


class BaseRunner:
    """Actions (action_dim,) of any base, one per env step: an ampczoo policy or object with
    ``act`` (its own receding-horizon execution, as in evaluation), an SB3 model (``predict``,
    deterministic) or a callable. A base that returns a chunk (T, action_dim) (``act_chunk``
    only, or a callable) has its chunk executed as a queue: one action per step, queried
    again when the queue is empty. ``None``: a constant action (``constant``)."""

    def __init__(self, base: Any, action_dim: int, constant: Any = None):
        if base is None and constant is None:
            raise ValueError("a base policy or a constant base action is needed")
        if base is not None and not _is_policy_like(base):
            raise ValueError(
                "base must be a policy (act / act_chunk / SB3 model) or a callable obs -> "
                f"action, got {type(base).__name__}"
            )
        self.base, self.action_dim = base, int(action_dim)
        self.constant = None if constant is None else np.asarray(constant, np.float64)
        self._queue: list[np.ndarray] = []

    def reset(self, seed: int | None = None) -> None:
        """Reset the base (``reset(seed)`` where it has one) and drop the queue."""
        self._queue = []
        reset = getattr(self.base, "reset", None)
        if callable(reset) and not _is_sb3(self.base):
            reset(seed=seed)

    def act(self, obs: Any) -> np.ndarray:
        """The base action (action_dim,) float64 for ``obs``; ValueError for a base action
        of another size or NaN/inf."""
        if self.base is None:
            assert self.constant is not None
            return self.constant.copy()
        if not self._queue:
            self._queue = list(self._query(obs))
        action = self._queue.pop(0)
        if action.shape != (self.action_dim,):
            raise ValueError(
                f"base action has shape {action.shape}, the env's action space ({self.action_dim},)"
            )
        if not np.all(np.isfinite(action)):
            raise ValueError("base policy returned NaN/inf actions")
        return action

    def _query(self, obs: Any) -> np.ndarray:
        base = self.base
        if _is_sb3(base):
            out = base.predict(obs, deterministic=True)[0]
        elif hasattr(base, "act"):
            out = base.act(obs)
        elif hasattr(base, "act_chunk"):
            out = base.act_chunk(obs)
        else:
            out = base(obs)
        arr = np.asarray(out, dtype=np.float64)
        if arr.ndim not in (1, 2) or arr.size == 0:
            raise ValueError(
                f"base returned an action of shape {arr.shape}; expected (D,) or (T, D)"
            )
        return arr[None] if arr.ndim == 1 else arr


def _is_sb3(base: Any) -> bool:
    return hasattr(base, "predict") and hasattr(base, "policy") and not hasattr(base, "act")


def _is_policy_like(base: Any) -> bool:
    return _is_sb3(base) or hasattr(base, "act") or hasattr(base, "act_chunk") or callable(base)


class ResidualRLPolicy(PretrainedPolicy):
    """base + scale * actor (see the module docstring). One observation at a time (the base
    may carry state: history buffers, warm starts)."""

    name = "residual_rl"
    config_class = ResidualRLConfig
    config: ResidualRLConfig
    batched = False
    onnx_unsupported = "the base policy runs in Python beside the actor"

    def __init__(self, config: ResidualRLConfig | None = None):
        super().__init__(config or ResidualRLConfig())
        c = self.config
        self.actor = ResidualActor(c)
        self.register_buffer("scale", torch.tensor(c.scale, dtype=torch.float32), persistent=False)
        self._low, self._high = np.array(c.action_low), np.array(c.action_high)
        self.task_map: TaskSpaceResidual | None = None
        if c.residual_space != "joint":
            self.task_map = TaskSpaceResidual(c.twist_scale, c.scale, c.residual_space)
        self._runner: BaseRunner | None = None
        self._held: np.ndarray | None = None
        self._since = 0

    @classmethod
    def example_config(cls) -> ResidualRLConfig:
        """A 16-wide one-layer residual on the shipped 3-DOF FFN (tests and docs)."""
        return ResidualRLConfig(base="threedof-ffn-h10", hidden_dim=16, num_layers=1)

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        raise ValueError("residual_rl policies are trained with `ampczoo finetune`, not `train`")

    # ------------------------------------------------------------------ the base
    def set_base(self, base: Any) -> None:
        """Use ``base`` (a policy, SB3 model or callable) in memory instead of
        ``config.base``."""
        self._runner = BaseRunner(base, self.action_dim)

    def base_runner(self) -> BaseRunner:
        """The runner of the base (``config.base`` loaded on first use, on the CPU)."""
        if self._runner is None:
            if self.config.base:
                from ampczoo.core.registry import load_policy

                self._runner = BaseRunner(
                    load_policy(self.config.base, device="cpu"), self.action_dim
                )
            else:
                self._runner = BaseRunner(None, self.action_dim, (self._low + self._high) / 2)
        return self._runner

    # ------------------------------------------------------------------ acting
    def reset(self, seed: int | None = None) -> None:
        """Reset the base (history, warm starts) and drop the held residual."""
        self.base_runner().reset(seed)
        self._held, self._since = None, 0

    @torch.inference_mode()
    def agent_action(self, obs: np.ndarray, base_action: np.ndarray) -> np.ndarray:
        """actor([obs, base action]) (d,) in [-1, 1] (the agent's action in its space)."""
        x = np.concatenate([obs, base_action]).astype(np.float32)[None]
        return self.actor(torch.from_numpy(x).to(self.device))[0].cpu().numpy().astype(np.float64)

    def residual_of(self, obs: np.ndarray, r: np.ndarray) -> np.ndarray:
        """The residual (action_dim,) [action units] of agent action r at observation obs:
        scale * r ("joint") or the mapped twist (task spaces, :class:`TaskSpaceResidual`)."""
        if self.task_map is not None:
            return self.task_map.numpy(obs, r)
        r_t = torch.as_tensor(np.clip(r, -1.0, 1.0), dtype=torch.float32)
        return (r_t * self.scale.cpu()).numpy().astype(np.float64)  # float32, as trained

    def residual(self, obs: np.ndarray, base_action: np.ndarray) -> np.ndarray:
        """The residual (action_dim,) [action units] of the actor at obs."""
        return self.residual_of(obs, self.agent_action(obs, base_action))

    def act(self, obs: Any) -> np.ndarray:
        """obs (obs_dim,) -> clip(base + residual) (action_dim,) float64; a batch, NaN/inf or
        a wrong shape raise ValueError."""
        arr, batched = check_obs(obs, self.obs_dim)
        if batched:
            raise ValueError("residual_rl acts on one observation at a time (obs_dim,)")
        flat = arr[0].astype(np.float64)
        base_action = self.base_runner().act(flat)
        if self._held is None or self._since >= self.config.hold:
            self._held, self._since = self.agent_action(flat, base_action), 0
        self._since += 1
        return np.clip(base_action + self.residual_of(flat, self._held), self._low, self._high)
