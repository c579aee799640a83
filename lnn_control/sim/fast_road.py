"""A faster, pixel-identical ``_render_road`` for gymnasium's CarRacing.

CarRacing redraws about 760 polygons per frame (background, 400 grass squares, ~300 road tiles), and for each one
rotates its vertices with ``pygame.math.Vector2`` in Python before testing whether any vertex lies near the screen;
only about 110 are drawn. In one profile here that Python loop was 11 of a 15.6 ms step. :func:`install` replaces the
env's ``_render_road`` with one that transforms every vertex of the frame in one numpy pass, applies the same
visibility test to all polygons at once, and hands the same float coordinates to the same ``pygame.gfxdraw`` calls
for the survivors, so the picture does not change: test/test_sim_carracing.py compares every pixel with the
original over whole drives.

The rotation repeats pygame's ``Vector2.rotate_rad`` arithmetic exactly: the angle reduced with ``fmod`` into
``[0, 2 pi)``, exact results at multiples of 90 degrees, then ``x cos - y sin`` and ``x sin + y cos`` in double
precision.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: pygame's tolerance for its special-cased right angles (``VECTOR_EPSILON``).
_EPSILON = 1e-6
_TWO_PI = 2.0 * math.pi


def _sin_cos(angle: float) -> tuple[float, float]:
    """``(sin, cos)`` of a rotation by ``angle`` rad, as ``pygame.math.Vector2.rotate_rad`` computes them."""
    angle = math.fmod(angle, _TWO_PI)
    if angle < 0:
        angle += _TWO_PI
    if math.fmod(angle + _EPSILON, math.pi / 2) < 2 * _EPSILON:
        quadrant = int((angle + _EPSILON) / (math.pi / 2)) % 4
        return ((0.0, 1.0), (1.0, 0.0), (0.0, -1.0), (-1.0, 0.0))[quadrant]
    return math.sin(angle), math.cos(angle)


class RoadRenderer:
    """The road and grass of one CarRacing env as vertex arrays, redrawn per frame with one numpy transform."""

    def __init__(self, env: Any) -> None:
        from gymnasium.envs.box2d import car_racing

        self.env = env
        self.window = (car_racing.WINDOW_W, car_racing.WINDOW_H)
        self.margin = car_racing.MAX_SHAPE_DIM
        b = car_racing.PLAYFIELD
        self.field = [(b, b), (b, -b), (-b, -b), (-b, b)]
        g = car_racing.GRASS_DIM
        grass = [
            [(g * x + g, g * y), (g * x, g * y), (g * x, g * y + g), (g * x + g, g * y + g)]
            for x in range(-20, 20, 2)
            for y in range(-20, 20, 2)
        ]
        self.grass = np.asarray(grass, dtype=np.float64)  # (400, 4, 2)
        self._road_source: list | None = None
        self._road: list[np.ndarray] = []
        self._road_colors: list[Any] = []

    def _sync_road(self) -> None:
        """Rebuild the road arrays when the env made a new track (``road_poly`` is a new list per reset)."""
        road_poly = self.env.road_poly
        if road_poly is self._road_source and len(self._road) == len(road_poly):
            return
        self._road = [np.asarray([(p[0], p[1]) for p in poly], dtype=np.float64) for poly, _c in road_poly]
        self._road_colors = [color for _p, color in road_poly]  # live: a tile's colour changes when first driven on
        self._road_source = road_poly  # held, so a later list cannot reuse its id

    def _transform(self, vertices: np.ndarray, sin: float, cos: float, zoom: float, trans: Any) -> np.ndarray:
        x, y = vertices[..., 0], vertices[..., 1]
        out = np.empty_like(vertices)
        out[..., 0] = (cos * x - sin * y) * zoom + trans[0]
        out[..., 1] = (sin * x + cos * y) * zoom + trans[1]
        return out

    def _visible(self, pts: np.ndarray) -> np.ndarray:
        w, h = self.window
        m = self.margin
        inside = (pts[..., 0] >= -m) & (pts[..., 0] <= w + m) & (pts[..., 1] >= -m) & (pts[..., 1] <= h + m)
        return inside.any(axis=-1)

    def render(self, zoom: float, translation: Any, angle: float) -> None:
        """Draw the background, the grass and the road onto ``env.surf`` (``_render_road``'s contract)."""
        from pygame import gfxdraw

        env = self.env
        surf = env.surf
        sin, cos = _sin_cos(angle)
        field = self._transform(np.asarray(self.field, dtype=np.float64), sin, cos, zoom, translation)
        _draw(gfxdraw, surf, field, env.bg_color)
        grass = self._transform(self.grass, sin, cos, zoom, translation)
        for i in np.flatnonzero(self._visible(grass)):
            _draw(gfxdraw, surf, grass[i], env.grass_color)
        self._sync_road()
        if not self._road:
            return
        lengths = {len(p) for p in self._road}
        if len(lengths) == 1:  # CarRacing's tiles are all quads: one array, one transform
            road = self._transform(np.stack(self._road), sin, cos, zoom, translation)
            for i in np.flatnonzero(self._visible(road)):
                _draw(gfxdraw, surf, road[i], [int(c) for c in self._road_colors[i]])
            return
        for poly, color in zip(self._road, self._road_colors):
            pts = self._transform(poly, sin, cos, zoom, translation)
            if self._visible(pts[None])[0]:
                _draw(gfxdraw, surf, pts, [int(c) for c in color])


def _draw(gfxdraw: Any, surf: Any, pts: np.ndarray, color: Any) -> None:
    poly = [tuple(p) for p in pts.tolist()]
    gfxdraw.aapolygon(surf, poly, color)
    gfxdraw.filled_polygon(surf, poly, color)


def install(env: Any) -> bool:
    """Give the unwrapped CarRacing ``env`` the fast road renderer; False (and no change) if its internals differ."""
    if not all(hasattr(env, name) for name in ("_render_road", "bg_color", "grass_color")):
        return False
    try:
        renderer = RoadRenderer(env)
    except (ImportError, AttributeError):
        return False
    env._render_road = renderer.render
    env._lnn_fast_road = renderer
    return True
