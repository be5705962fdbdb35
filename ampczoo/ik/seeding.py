"""Seeds for numerical IK: uniform within the joint limits, or diverse samples of IKDiffuser.

:func:`ik_seeds` is what the numerical solvers (:mod:`ampczoo.ik.numerical`), the benchmark
(``ampczoo bench ik``) and the experts (``IKMPCConfig(ik_seed="ikdiffuser")``) draw their
initial guesses from. ``source="ikdiffuser"`` asks a generative IK model for ``num_seeds``
samples per target: anything with the :class:`IKSampler` protocol (IKDiffuser, or a test
sampler), by default the zoo model ``ikdiffuser-<robot>``.

Position-only targets (``(B, N_ee, 3)``, e.g. the 3-DOF arm's reaching goals, whose
orientation is implied by the unknown solution) are completed into poses with orientations
drawn from the forward kinematics of uniformly random configurations, one per seed: each seed
is then the model's answer for "this position, roughly this orientation", and the set of seeds
covers the solutions' modes (elbow up / down, ...).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import numpy as np
import torch

from ampczoo.ik.numerical import as_robot, check_mask, check_poses
from ampczoo.ik.robots import POSE_DIM, IKRobot

SeedSource = Literal["random", "ikdiffuser"]
SEED_SOURCES: tuple[str, ...] = ("random", "ikdiffuser")


class IKSampler(Protocol):
    """A generative IK model: ``sample(poses (B, N_ee, 7), num_samples=K) -> (B, K, dof)``
    joint configurations [rad] (torch or numpy); ``robot`` is its :class:`IKRobot`."""

    robot: Any

    def sample(
        self,
        poses: Any,
        num_samples: int,
        mask: Any = None,
        guidance: Any = None,
        generator: torch.Generator | None = None,
    ) -> Any: ...


def zoo_model_name(robot: IKRobot | str) -> str:
    """Name of the zoo IKDiffuser of ``robot`` (``ikdiffuser-<robot>``)."""
    return f"ikdiffuser-{as_robot(robot).name}"


def load_ik_sampler(robot: IKRobot | str, model: Any = None) -> Any:
    """The IK sampler for ``robot``: ``model`` itself if it has ``sample``, else
    ``IKDiffuser.from_pretrained(model or "ikdiffuser-<robot>")`` (a zoo name or a checkpoint
    folder). ValueError naming the missing model, or a model made for another robot."""
    robot = as_robot(robot)
    if model is not None and hasattr(model, "sample"):
        sampler = model
    else:
        name = str(model) if model else zoo_model_name(robot)
        sampler = _from_pretrained(name, robot.name)
    _check_sampler_robot(sampler, robot)
    return sampler


def _from_pretrained(name: str, robot_name: str) -> Any:
    hint = (
        f"train one (`ampczoo train ikdiffuser --robot {robot_name}`) or pass a model / "
        "checkpoint folder"
    )
    try:
        from ampczoo.ik.diffuser import IKDiffuser
    except ImportError as err:
        raise ValueError(
            f"IKDiffuser model {name!r} is not available: ampczoo.ik.diffuser cannot be "
            f"imported ({err}); {hint}"
        ) from err
    try:
        return IKDiffuser.from_pretrained(name)
    except (FileNotFoundError, KeyError, OSError) as err:
        raise ValueError(f"no IKDiffuser model {name!r} in the zoo or on disk; {hint}") from err


def _check_sampler_robot(sampler: Any, robot: IKRobot) -> None:
    own = getattr(sampler, "robot", None)
    own_name = getattr(own, "name", own)
    if isinstance(own_name, str) and own_name != robot.name:
        raise ValueError(f"the IK model is for robot {own_name!r}, not {robot.name!r}")


def random_orientation_poses(
    robot: IKRobot, positions: np.ndarray, num: int, generator: torch.Generator | None = None
) -> np.ndarray:
    """(B, N_ee, 3) positions [m] -> (B * num, N_ee, 7) poses, each with the EE orientations
    of one configuration uniform within the limits (row b * num + k: target b, draw k)."""
    u = torch.rand((len(positions) * num, robot.dof), generator=generator, dtype=torch.float64)
    q = torch.as_tensor(robot.lower) + u * torch.as_tensor(robot.upper - robot.lower)
    quats = robot.forward_kinematics(q)[..., 3:].numpy()
    pos = np.repeat(positions, num, axis=0)
    return np.concatenate([pos, quats], axis=-1)


def ik_seeds(
    robot: IKRobot | str,
    poses: Any,
    num_seeds: int,
    source: str = "random",
    model: Any = None,
    generator: torch.Generator | None = None,
    mask: Any = None,
) -> np.ndarray:
    """Seeds (B, num_seeds, dof) [rad / m] within the joint limits, float64.

    poses: (B, N_ee, 7) target poses (or (B, N_ee, 3) positions, see the module docstring);
    source: "random" (uniform within the limits; the poses only give B) or "ikdiffuser"
    (``model``'s samples, clipped into the limits; ``model``: an :class:`IKSampler`, a zoo
    name or a checkpoint folder, None = ``ikdiffuser-<robot>``); mask: (B, N_ee) bool, the
    constrained end-effectors (passed to the sampler)."""
    robot = as_robot(robot)
    if source not in SEED_SOURCES:
        raise ValueError(f"unknown seed source {source!r}; choose from {SEED_SOURCES}")
    if num_seeds < 1:
        raise ValueError(f"num_seeds must be >= 1, got {num_seeds}")
    arr = np.asarray(poses.detach().cpu() if isinstance(poses, torch.Tensor) else poses, float)
    position_only = arr.ndim == 3 and arr.shape[-1] == 3
    if position_only:
        if arr.shape[1] != robot.num_ee or not np.all(np.isfinite(arr)):
            raise ValueError(
                f"{robot.name}: positions must be finite (B, {robot.num_ee}, 3), got {arr.shape}"
            )
    else:
        arr = check_poses(robot, arr)
    batch = len(arr)
    mask_arr = None if mask is None else check_mask(robot, mask, batch)
    if source == "random":
        u = torch.rand((batch, num_seeds, robot.dof), generator=generator, dtype=torch.float64)
        return robot.lower + u.numpy() * (robot.upper - robot.lower)
    sampler = load_ik_sampler(robot, model)
    if position_only:
        full = random_orientation_poses(robot, arr, num_seeds, generator)
        full_mask = None if mask_arr is None else np.repeat(mask_arr, num_seeds, axis=0)
        q = _sample(sampler, full, 1, full_mask, generator).reshape(batch, num_seeds, -1)
    else:
        q = _sample(sampler, arr, num_seeds, mask_arr, generator)
    if q.shape != (batch, num_seeds, robot.dof):
        raise ValueError(
            f"the IK model returned {q.shape}, expected {(batch, num_seeds, robot.dof)}"
        )
    return np.clip(q, robot.lower, robot.upper)


def _sample(
    sampler: Any,
    poses: np.ndarray,
    num: int,
    mask: np.ndarray | None,
    generator: torch.Generator | None,
) -> np.ndarray:
    """``sampler.sample`` on float32 torch poses (the models' dtype) -> float64 numpy."""
    t_poses = torch.as_tensor(poses, dtype=torch.float32)
    t_mask = None if mask is None else torch.as_tensor(mask)
    with torch.no_grad():
        q = sampler.sample(t_poses, num_samples=num, mask=t_mask, generator=generator)
    q = q.detach().cpu().numpy() if isinstance(q, torch.Tensor) else np.asarray(q)
    if not np.all(np.isfinite(q)):
        raise ValueError("the IK model returned NaN or inf configurations")
    return q.astype(np.float64)


class OracleSampler:
    """A stand-in generative IK model with a known error: every sample is a numerical solution
    (random-restart DLS, :func:`~ampczoo.ik.numerical.solve_random_restart`) plus Gaussian
    joint noise of std ``noise`` [rad]. With a warm-start guidance (an object with a
    ``q_prior`` attribute, (dof,) or (B, dof)) DLS starts from the prior instead, the numerical
    analogue of warm-starting. Used by the tests and ``ampczoo bench ik --model oracle[:NOISE]``
    to check the benchmark's metrics against known answers; it is no learned model."""

    def __init__(
        self,
        robot: IKRobot | str,
        noise: float = 0.0,
        max_restarts: int = 3,
        max_iters: int = 100,
    ):
        if not noise >= 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.robot = as_robot(robot)
        self.noise = float(noise)
        self.max_restarts, self.max_iters = max_restarts, max_iters

    def sample(
        self,
        poses: Any,
        num_samples: int = 1,
        mask: Any = None,
        guidance: Any = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """(B, num_samples, dof) float64 configurations for poses (B, N_ee, 7)."""
        from ampczoo.ik.numerical import solve_dls, solve_random_restart

        robot = self.robot
        p = check_poses(robot, poses)
        batch, k = len(p), int(num_samples)
        flat = np.repeat(p, k, axis=0)
        m = None if mask is None else np.repeat(check_mask(robot, mask, batch), k, axis=0)
        prior = getattr(guidance, "q_prior", None)
        if prior is not None:
            prior_arr = np.broadcast_to(np.asarray(prior, float), (batch, robot.dof))
            seeds = np.repeat(prior_arr, k, axis=0)
            q = solve_dls(robot, flat, seeds, mask=m, max_iters=self.max_iters).q
        else:
            q = solve_random_restart(
                robot, flat, self.max_restarts, generator, mask=m, max_iters=self.max_iters
            ).q
        noise = torch.randn(q.shape, generator=generator, dtype=torch.float64).numpy()
        q = np.clip(q + self.noise * noise, robot.lower, robot.upper)
        return torch.as_tensor(q).view(batch, k, robot.dof)


__all__ = [
    "IKSampler",
    "OracleSampler",
    "POSE_DIM",
    "SEED_SOURCES",
    "ik_seeds",
    "load_ik_sampler",
    "random_orientation_poses",
    "zoo_model_name",
]
