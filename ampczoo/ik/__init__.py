"""Inverse kinematics for kinematic trees: robot models and IKDiffuser (diffusion IK).

``from ampczoo.ik import IKDiffuser`` loads lazily (torch / diffusers only when used)."""

from __future__ import annotations

from typing import Any

__all__ = ["Guidance", "IKDiffuser", "IKDiffuserConfig", "IKSolution", "list_ik_models"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ampczoo.ik import diffuser

        return getattr(diffuser, name)
    raise AttributeError(f"module 'ampczoo.ik' has no attribute {name!r}")
