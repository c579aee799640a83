"""Offscreen rendering of one camera with one GL context per renderer, reused across episodes' models.

Making a GL context costs far more than a MuJoCo render context, and each episode compiles a new model, so the GL
context is kept and only the :class:`mujoco.MjrContext` is rebuilt per model.
"""

from __future__ import annotations

import mujoco
import numpy as np

_current: list[object] = [None]
"""The renderer whose GL context was made current last (several may live in one process)."""


class CameraRenderer:
    """Renders a named camera of the current model into ``(height, width, 3)`` uint8 RGB."""

    def __init__(self, height: int, width: int):
        self.height, self.width = int(height), int(width)
        self._gl = mujoco.GLContext(self.width, self.height)
        self._make_current()
        self._ctx: mujoco.MjrContext | None = None
        self._scene: mujoco.MjvScene | None = None
        self._model: mujoco.MjModel | None = None
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._option = mujoco.MjvOption()
        self._perturb = mujoco.MjvPerturb()
        self._viewport = mujoco.MjrRect(0, 0, self.width, self.height)
        self._buffer = np.zeros((self.height, self.width, 3), np.uint8)
        self.flags: dict[int, bool] = {}
        """Scene render flags (``mujoco.mjtRndFlag``) applied at every render."""

    def _make_current(self) -> None:
        if _current[0] is not self:
            self._gl.make_current()
            _current[0] = self

    def set_model(self, model: mujoco.MjModel, camera: str, flags: dict[int, bool] | None = None) -> None:
        """Render ``camera`` of ``model`` from now on (uploads its textures)."""
        self._make_current()
        if self._ctx is not None:
            self._ctx.free()
        self._ctx = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_50)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._ctx)
        self._scene = mujoco.MjvScene(model, maxgeom=model.ngeom + 16)
        self._model = model
        self._camera.fixedcamid = model.camera(camera).id
        self.flags = dict(flags or {})

    def render(self, data: mujoco.MjData) -> np.ndarray:
        """A new frame of the current camera."""
        if self._ctx is None or self._scene is None:
            raise RuntimeError("set_model() before render()")
        self._make_current()
        mujoco.mjv_updateScene(self._model, data, self._option, self._perturb, self._camera,
                               mujoco.mjtCatBit.mjCAT_ALL, self._scene)
        for flag, on in self.flags.items():
            self._scene.flags[flag] = on
        mujoco.mjr_render(self._viewport, self._scene, self._ctx)
        mujoco.mjr_readPixels(self._buffer, None, self._viewport, self._ctx)
        return np.ascontiguousarray(self._buffer[::-1])

    def close(self) -> None:
        """Free the render and GL contexts."""
        if self._ctx is not None:
            self._make_current()
            self._ctx.free()
            self._ctx = None
        if self._gl is not None:
            self._gl.free()
            self._gl = None
            if _current[0] is self:
                _current[0] = None
