"""MuJoCo rendering helpers for the ampczoo envs (offscreen ``rgb_array`` and ``human``).

Headless machines need an offscreen OpenGL backend, chosen by MuJoCo from the ``MUJOCO_GL``
environment variable *when ``mujoco`` is first imported*. :func:`configure_mujoco_gl` sets a
default (``egl`` where a GPU device node exists, else ``osmesa``) only if the user has not set
``MUJOCO_GL`` and ``mujoco`` is not imported yet. Importing this module does not import mujoco.
"""

from __future__ import annotations

import glob
import os
import sys
from typing import Any

import numpy as np

#: Fixed camera looking at the robot (MjvCamera free-camera parameters; lengths in metres).
CAMERA = {"lookat": (0.3, 0.0, 0.5), "distance": 2.2, "azimuth": 135.0, "elevation": -20.0}


def has_gpu() -> bool:
    """True when an NVIDIA device or a DRI render node exists and libEGL can be loaded (EGL
    can be used). A GPU machine without libEGL (e.g. a bare CUDA image) gets False: MuJoCo
    with ``MUJOCO_GL=egl`` fails at ``import mujoco`` there."""
    import ctypes.util

    device = os.path.exists("/dev/nvidia0") or bool(glob.glob("/dev/dri/renderD*"))
    return device and ctypes.util.find_library("EGL") is not None


def has_display() -> bool:
    """True when a window can be opened (X11/Wayland display on Linux; assumed elsewhere)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def configure_mujoco_gl() -> str | None:
    """Default ``MUJOCO_GL`` to ``egl`` (GPU present) or ``osmesa`` for offscreen rendering.

    Does nothing when the user set ``MUJOCO_GL`` or ``mujoco`` is already imported (the
    backend is fixed at import). Returns the value now in the environment, or None."""
    if not os.environ.get("MUJOCO_GL") and "mujoco" not in sys.modules:
        os.environ["MUJOCO_GL"] = "egl" if has_gpu() else "osmesa"
    return os.environ.get("MUJOCO_GL")


def rotation_to_quat(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix -> (4,) unit quaternion (w, x, y, z), MuJoCo convention."""
    import mujoco

    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(R, dtype=float).ravel())
    return quat


class MujocoRenderer:
    """Renders an ``MjModel``/``MjData`` pair from :data:`CAMERA`.

    mode: "rgb_array" (offscreen, ``render()`` returns (height, width, 3) uint8) or "human"
    (``mujoco.viewer.launch_passive`` window, ``render()`` returns None)."""

    def __init__(self, model: Any, data: Any, mode: str, width: int, height: int):
        import mujoco

        self.model, self.data, self.mode = model, data, mode
        self.camera = mujoco.MjvCamera()
        self.camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        self.camera.lookat[:] = CAMERA["lookat"]
        self.camera.distance = CAMERA["distance"]
        self.camera.azimuth = CAMERA["azimuth"]
        self.camera.elevation = CAMERA["elevation"]
        self._renderer: Any = None
        self._viewer: Any = None
        if mode == "rgb_array":
            self._renderer = _make_offscreen(model, width, height)
        elif mode == "human":
            self._viewer = _launch_viewer(model, data, self.camera)
        else:
            raise ValueError(f"unknown render mode {mode!r}")

    def render(self) -> np.ndarray | None:
        """Draw the current ``data`` (kinematics must be up to date)."""
        if self._renderer is not None:
            self._renderer.update_scene(self.data, camera=self.camera)
            return self._renderer.render().copy()
        if self._viewer is not None and self._viewer.is_running():
            self._viewer.sync()
        return None

    def close(self) -> None:
        """Free the GL context / close the window (idempotent)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None


def _make_offscreen(model: Any, width: int, height: int) -> Any:
    import mujoco

    try:
        return mujoco.Renderer(model, height=height, width=width)
    except Exception as exc:  # re-raised with the fix: no silent fallback
        raise RuntimeError(
            f"offscreen MuJoCo rendering failed ({exc}). On a headless machine install OSMesa "
            "(apt-get install libosmesa6) or use a GPU with EGL, and set MUJOCO_GL=osmesa|egl "
            f"before mujoco is imported (current MUJOCO_GL={os.environ.get('MUJOCO_GL')!r})."
        ) from exc


def _launch_viewer(model: Any, data: Any, camera: Any) -> Any:
    if not has_display():
        raise RuntimeError(
            "render_mode='human' needs a display (DISPLAY/WAYLAND_DISPLAY unset); "
            "use render_mode='rgb_array' on headless machines"
        )
    import mujoco.viewer

    viewer = mujoco.viewer.launch_passive(model, data, show_left_ui=False, show_right_ui=False)
    with viewer.lock():
        viewer.cam.lookat[:] = camera.lookat
        viewer.cam.distance = camera.distance
        viewer.cam.azimuth = camera.azimuth
        viewer.cam.elevation = camera.elevation
    return viewer
