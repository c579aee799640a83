"""Closed-track geometry shared by track backends (ground truth) and the demonstrator (pure pursuit).

- :class:`Track`: a closed centreline sampled in driving order, with arc length, tangents and curvature.
- :class:`TrackLocator`: where a vehicle is on the track. The nearest-point search is local (a window around the
  last point, cheap and immune to jumping across a hairpin) and falls back to a global search when the vehicle is
  far from its last point, so any reachable state is located, also far off the road (DAgger).
- :class:`LapCounter`: laps and lap progress from the located index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TrackPoint:
    """Where a position lies relative to the centreline."""

    index: int
    """Index of the nearest centreline sample."""
    s: float
    """Arc length of the projection onto the centreline, m, in [0, length)."""
    offset: float
    """Signed lateral distance, m, positive to the left of the driving direction."""
    distance: float
    """Unsigned distance to the centreline, m."""
    global_search: bool
    """True if this lookup needed the global search."""


class Track:
    """A closed centreline, ``points[i]`` in driving order (``points[0]`` is the start), and its half width."""

    def __init__(self, points: np.ndarray, half_width: float):
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 4:
            raise ValueError(f"track points must be an (N>=4, 2) array, got shape {pts.shape}")
        self.points = pts
        self.half_width = float(half_width)
        self.n = len(pts)
        nxt = np.roll(pts, -1, axis=0)
        seg = nxt - pts  # segment i runs from point i to point i+1 (the last one closes the loop)
        self.seg_len = np.hypot(seg[:, 0], seg[:, 1])
        self.seg_dir = seg / np.maximum(self.seg_len, 1e-9)[:, None]
        self.s = np.concatenate([[0.0], np.cumsum(self.seg_len)[:-1]])
        self.length = float(self.seg_len.sum())
        self.tangent_angle = np.arctan2(self.seg_dir[:, 1], self.seg_dir[:, 0])
        # Curvature at point i from the turn between segment i-1 and segment i over their mean length.
        turn = np.angle(np.exp(1j * (self.tangent_angle - np.roll(self.tangent_angle, 1))))
        ds = 0.5 * (self.seg_len + np.roll(self.seg_len, 1))
        self.curvature = turn / np.maximum(ds, 1e-9)
        self._pts_list = pts.tolist()

    def wrap_index(self, i: int) -> int:
        """``i`` modulo the number of points."""
        return i % self.n

    def point_at(self, s: float) -> tuple[float, float]:
        """The centreline point at arc length ``s`` (wrapped), linearly interpolated."""
        s = s % self.length
        i = int(np.searchsorted(self.s, s, side="right")) - 1
        t = (s - self.s[i]) / max(self.seg_len[i], 1e-9)
        x0, y0 = self._pts_list[i]
        dx, dy = self.seg_dir[i] * self.seg_len[i]
        return x0 + t * dx, y0 + t * dy

    def _project(self, x: float, y: float, i: int) -> tuple[float, float, float]:
        """Project (x, y) onto the segments around point i: (s, signed offset, distance)."""
        best = None
        for j in (i - 1, i):
            j %= self.n
            x0, y0 = self._pts_list[j]
            ux, uy = self.seg_dir[j]
            rx, ry = x - x0, y - y0
            t = min(max(rx * ux + ry * uy, 0.0), self.seg_len[j])
            px, py = rx - t * ux, ry - t * uy
            d = math.hypot(px, py)
            if best is None or d < best[2]:
                cross = ux * ry - uy * rx  # > 0: left of the driving direction
                best = ((self.s[j] + t) % self.length, math.copysign(d, cross) if d > 0 else 0.0, d)
        assert best is not None
        return best

    def nearest_global(self, x: float, y: float) -> int:
        """Index of the nearest centreline point, searching all points."""
        d2 = (self.points[:, 0] - x) ** 2 + (self.points[:, 1] - y) ** 2
        return int(np.argmin(d2))

    def nearest_local(self, x: float, y: float, hint: int, window: int) -> tuple[int, float]:
        """Index of the nearest point within ``hint +- window`` and its distance."""
        idx = np.arange(hint - window, hint + window + 1) % self.n
        d2 = (self.points[idx, 0] - x) ** 2 + (self.points[idx, 1] - y) ** 2
        k = int(np.argmin(d2))
        return int(idx[k]), math.sqrt(float(d2[k]))

    def locate(
        self, x: float, y: float, hint: int | None = None, window: int = 12, far: float | None = None
    ) -> TrackPoint:
        """Locate (x, y): a local search around ``hint``, global when there is no hint or the local best point is
        farther than ``far`` (default: twice the half width, i.e. clearly off the road)."""
        far = 2.0 * self.half_width if far is None else far
        used_global = hint is None
        if hint is not None:
            i, d = self.nearest_local(x, y, hint, window)
            if d > far:
                used_global = True
        if used_global:
            i = self.nearest_global(x, y)
        s, offset, dist = self._project(x, y, i)
        return TrackPoint(i, s, offset, dist, used_global)


class TrackLocator:
    """A stateful :meth:`Track.locate` that remembers the last index (call :meth:`reset` on a new episode)."""

    def __init__(self, track: Track, window: int = 12, far: float | None = None):
        self.track = track
        self.window = window
        self.far = far
        self._last: int | None = None

    def reset(self, track: Track | None = None) -> None:
        """Forget the last index (and switch track if given)."""
        if track is not None:
            self.track = track
        self._last = None

    def locate(self, x: float, y: float) -> TrackPoint:
        """Locate (x, y) near the previous result, globally when far from it."""
        point = self.track.locate(x, y, self._last, self.window, self.far)
        self._last = point.index
        return point


class LapCounter:
    """Counts laps from the track index of each step.

    A lap counts when the vehicle, having been on the road at no less than ``complete_fraction`` of the centreline
    points since the last lap, reaches the last ``finish_window`` points before the start or crosses the start
    forwards (from the last quarter of the track to the first). Shortcuts across the infield therefore do not count,
    and one missed tile does not lose a lap (CarRacing itself only ends the episode when every tile is visited, so a
    lap with a missed tile runs on to the time limit; when it does end on the last tile, the car is still just
    short of the start line, hence the finish window).
    """

    def __init__(self, n_points: int, complete_fraction: float = 0.95, finish_window: int = 3):
        self.n = n_points
        self.complete_fraction = complete_fraction
        self.finish_window = finish_window
        self.visited = np.zeros(n_points, dtype=bool)
        self.laps = 0
        self._count = 0
        self._prev: int | None = None

    def reset(self, n_points: int | None = None) -> None:
        """Start counting from zero."""
        if n_points is not None and n_points != self.n:
            self.n = n_points
            self.visited = np.zeros(n_points, dtype=bool)
        self.visited[:] = False
        self.laps = 0
        self._count = 0
        self._prev = None

    @property
    def progress(self) -> float:
        """Fraction of the centreline covered on the road in the current lap, 0..1."""
        return self._count / self.n

    def complete(self) -> None:
        """Count a lap the backend itself declared finished (e.g. CarRacing's every-tile-visited) and start the next."""
        self.laps += 1
        self.visited[:] = False
        self._count = 0

    def update(self, index: int, on_road: bool) -> bool:
        """Record one step at ``index``; True if this step completed a lap."""
        lap = False
        quarter = self.n // 4
        if on_road and not self.visited[index]:
            self.visited[index] = True
            self._count += 1
        crossed = self._prev is not None and self._prev >= self.n - quarter and index < quarter
        at_finish = on_road and index >= self.n - self.finish_window
        if (crossed or at_finish) and self._count >= self.complete_fraction * self.n:
            self.laps += 1
            lap = True
            self.visited[:] = False
            self._count = 0
        self._prev = index
        return lap
