"""Test-session setup: choose MuJoCo's offscreen GL backend before any test imports mujoco."""

from ampczoo.envs.rendering import configure_mujoco_gl

configure_mujoco_gl()
