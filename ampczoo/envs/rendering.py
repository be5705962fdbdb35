"""MuJoCo rendering helpers for the ampczoo envs (offscreen ``rgb_array`` and ``human``).

Decorations that are not part of the model (the target pose, a policy's predicted path) are
:class:`Marker` s added to MuJoCo's scene as user geoms (``mjv_initGeom`` after
``update_scene``, before ``render``): :func:`target_frame_markers`, :func:`target_point_markers`
and :func:`path_markers` build them, :meth:`MujocoRenderer.render` draws them.

Headless machines need an offscreen OpenGL backend, chosen by MuJoCo from the ``MUJOCO_GL``
environment variable *when ``mujoco`` is first imported*. :func:`configure_mujoco_gl` sets a
default (``egl`` where a GPU device node exists, else ``osmesa``) only if the user has not set
``MUJOCO_GL`` and ``mujoco`` is not imported yet. Importing this module does not import mujoco.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Fixed camera looking at the robot (MjvCamera free-camera parameters; lengths in metres).
CAMERA = {"lookat": (0.3, 0.0, 0.5), "distance": 2.2, "azimuth": 135.0, "elevation": -20.0}
#: Marker kinds: "sphere" (centre ``pos``, radius ``size``) and the connectors "arrow",
#: "capsule" (from ``pos`` to ``to``, radius ``size``).
MARKER_KINDS = ("sphere", "arrow", "capsule")
#: Most points of a predicted path drawn (longer paths are subsampled).
MAX_PATH_POINTS = 64


@dataclass(frozen=True)
class Marker:
    """A decoration drawn into rendered frames, not part of the simulated model.

    kind: one of :data:`MARKER_KINDS`; pos: (3,) [m] centre (sphere) or start (connectors);
    to: (3,) [m] end of a connector (None for a sphere); size: radius [m]; rgba: colour and
    opacity in [0, 1]."""

    kind: str
    pos: tuple[float, float, float]
    size: float
    rgba: tuple[float, float, float, float]
    to: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.kind not in MARKER_KINDS:
            raise ValueError(f"marker kind must be one of {MARKER_KINDS}, got {self.kind!r}")
        if (self.to is None) != (self.kind == "sphere"):
            raise ValueError("a sphere marker has no `to`; a connector marker needs one")
        if not self.size > 0:
            raise ValueError(f"marker size must be > 0, got {self.size}")


def target_frame_markers(
    pos: np.ndarray, rot: np.ndarray, length: float = 0.15, radius: float = 0.012
) -> list[Marker]:
    """A target pose: a small white sphere at ``pos`` (3,) [m] and the axes of the target
    frame ``rot`` (3, 3) (columns x, y, z) as red, green and blue arrows of ``length`` [m]."""
    pos, rot = np.asarray(pos, float), np.asarray(rot, float)
    markers = [Marker("sphere", _xyz(pos), 1.6 * radius, (1.0, 1.0, 1.0, 0.9))]
    for axis, rgb in zip(rot.T, ((1.0, 0.1, 0.1), (0.1, 0.9, 0.1), (0.1, 0.3, 1.0)), strict=True):
        markers.append(Marker("arrow", _xyz(pos), radius, (*rgb, 0.9), _xyz(pos + length * axis)))
    return markers


def target_point_markers(pos: np.ndarray, radius: float = 0.03) -> list[Marker]:
    """A target position ``pos`` (3,) [m]: a red sphere of ``radius`` [m]."""
    return [Marker("sphere", _xyz(np.asarray(pos, float)), radius, (1.0, 0.1, 0.1, 0.8))]


def check_path(points: Any) -> np.ndarray | None:
    """Validate a path to draw: None (no path) or (K, 3) finite positions [m], K >= 1."""
    if points is None:
        return None
    arr = np.asarray(points, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 3 or len(arr) == 0:
        raise ValueError(f"path points must have shape (K, 3) with K >= 1, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("path points contain NaN/inf")
    return arr.copy()


def path_markers(points: np.ndarray, radius: float = 0.005) -> list[Marker]:
    """A predicted path (K, 3) [m]: yellow capsules between consecutive points and a small
    sphere at each point (at most :data:`MAX_PATH_POINTS` points, evenly subsampled)."""
    pts = np.asarray(points, float)
    if len(pts) > MAX_PATH_POINTS:
        pts = pts[np.linspace(0, len(pts) - 1, MAX_PATH_POINTS).round().astype(int)]
    rgba = (1.0, 0.85, 0.1, 0.9)
    markers = [Marker("sphere", _xyz(p), 1.5 * radius, rgba) for p in pts]
    markers += [
        Marker("capsule", _xyz(a), radius, rgba, _xyz(b))
        for a, b in zip(pts[:-1], pts[1:], strict=True)
        if np.linalg.norm(b - a) > 1e-9
    ]
    return markers


def add_markers(scene: Any, markers: Sequence[Marker]) -> int:
    """Append ``markers`` to an ``MjvScene`` as user geoms; returns how many were added
    (stops when the scene's ``maxgeom`` is reached)."""
    import mujoco

    kinds = {
        "sphere": mujoco.mjtGeom.mjGEOM_SPHERE,
        "arrow": mujoco.mjtGeom.mjGEOM_ARROW,
        "capsule": mujoco.mjtGeom.mjGEOM_CAPSULE,
    }
    added = 0
    for m in markers:
        if scene.ngeom >= scene.maxgeom:
            break
        geom = scene.geoms[scene.ngeom]
        size = np.array([m.size, m.size, m.size])
        mujoco.mjv_initGeom(
            geom,
            kinds[m.kind],
            size,
            np.asarray(m.pos, float),
            np.eye(3).ravel(),
            np.asarray(m.rgba, np.float32),
        )
        if m.to is not None:
            mujoco.mjv_connector(
                geom, kinds[m.kind], m.size, np.asarray(m.pos, float), np.asarray(m.to, float)
            )
        geom.category = mujoco.mjtCatBit.mjCAT_DECOR
        scene.ngeom += 1
        added += 1
    return added


def _xyz(v: np.ndarray) -> tuple[float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]))


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

    def render(self, markers: Sequence[Marker] = ()) -> np.ndarray | None:
        """Draw the current ``data`` (kinematics must be up to date) and ``markers``."""
        if self._renderer is not None:
            self._renderer.update_scene(self.data, camera=self.camera)
            add_markers(self._renderer.scene, markers)
            return self._renderer.render().copy()
        if self._viewer is not None and self._viewer.is_running():
            with self._viewer.lock():
                self._viewer.user_scn.ngeom = 0
                add_markers(self._viewer.user_scn, markers)
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
