"""Seeded scene geometry: obstacles (trees), start, targets, the moving target's path, the distractor's place, bounds.

The geometry depends only on the seed and the task, never on the domain (a domain restyles it, see
:mod:`~lnn_control.sim.drone.domains`), so one seed gives the same obstacle positions and sizes, start and targets
in every domain. The layout is generated in a *layout frame* (start at the origin, the first target roughly along
+x) and turned by a seeded angle into the world, so the sun and the ground texture fall differently per seed.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from lnn_control.sim.drone.tasks import TaskSpec

TARGET_HALF = 0.3
"""Half the edge of the red target box, m."""
STAND_RADIUS = 0.03
"""Radius of the post the target stands on, m."""
DISTRACTOR_RADIUS = 0.28
"""Radius of the distractor sphere, m."""


@dataclass(frozen=True)
class Obstacle:
    """One tree (or, in ``urban``, the building at its place): footprint, height and canopy."""

    x: float
    y: float
    radius: float
    """Trunk radius, m (a building's half-width is the same)."""
    height: float
    """Top of the tree or building, m."""
    canopy_base: float
    """Height where the canopy starts, m."""
    canopy_radius: float
    """Horizontal radius of the canopy, m."""
    pine: bool
    """Canopy of stacked cones (pine) rather than one round crown."""


@dataclass(frozen=True)
class ForestParams:
    """Ranges the seed draws the forest from."""

    spacing: tuple[float, float] = (2.2, 3.2)
    """Smallest distance between two trunks, m."""
    density: tuple[float, float] = (0.05, 0.11)
    """Trees per m^2 wanted (fewer when the spacing does not allow them)."""
    trunk_radius: tuple[float, float] = (0.12, 0.35)
    height: tuple[float, float] = (5.0, 11.0)
    canopy_base: tuple[float, float] = (2.9, 4.0)
    canopy_radius: tuple[float, float] = (1.0, 2.0)
    margin: float = 6.0
    """Forest beyond the start and targets, m."""
    max_trees: int = 120
    clear_start: float = 2.0
    """No trunk nearer than this to the start, m."""
    clear_target: float = 2.5
    """No trunk nearer than this to a target or the distractor, m."""
    clear_path: float = 2.0
    """No trunk nearer than this to the moving target's path, m."""
    flight_height: tuple[float, float] = (1.2, 1.8)
    """Range of the start's and the targets' heights, m."""


@dataclass(frozen=True)
class Scene:
    """One episode's geometry in world coordinates (z up)."""

    seed: int
    task: str
    obstacles: tuple[Obstacle, ...]
    start: tuple[float, float, float]
    start_yaw: float
    targets: tuple[tuple[float, float, float], ...]
    """Target positions (box centres) in visiting order; ``track``: the start of the path."""
    path: tuple[tuple[float, float, float], ...]
    """Waypoints of the moving target (``track``), else empty."""
    target_speed: float
    distractor: tuple[float, float, float]
    """Where the distractor stands (only the ``distractor`` domain shows one; the place is kept clear in all)."""
    layout_yaw: float
    """Rotation of the layout frame in the world, rad."""
    bounds: tuple[float, float, float, float]
    """``(xmin, xmax, ymin, ymax)`` of the allowed area, in the layout frame, m."""
    max_height: float = 6.0
    """Highest allowed altitude, m."""

    def to_layout(self, x: float, y: float) -> tuple[float, float]:
        """World ``(x, y)`` in the layout frame."""
        c, s = math.cos(self.layout_yaw), math.sin(self.layout_yaw)
        return c * x + s * y, -s * x + c * y

    def in_bounds(self, position: tuple[float, float, float] | np.ndarray) -> bool:
        """Whether ``position`` lies inside the allowed area."""
        lx, ly = self.to_layout(float(position[0]), float(position[1]))
        xmin, xmax, ymin, ymax = self.bounds
        return xmin <= lx <= xmax and ymin <= ly <= ymax and float(position[2]) <= self.max_height

    @property
    def path_length(self) -> float:
        """Length of the moving target's path, m."""
        if len(self.path) < 2:
            return 0.0
        return float(np.linalg.norm(np.diff(np.asarray(self.path)[:, :2], axis=0), axis=1).sum())

    @property
    def path_duration_s(self) -> float:
        """Time the moving target needs for its path, s (inf without one)."""
        return self.path_length / self.target_speed if self.target_speed > 0 else math.inf

    def target_at(self, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Position and velocity of the moving target at time ``t_s`` (it stops at the end of its path)."""
        p = np.asarray(self.path)
        seg = np.diff(p, axis=0)
        lengths = np.linalg.norm(seg[:, :2], axis=1)
        s = max(0.0, t_s * self.target_speed)
        for i, length in enumerate(lengths):
            if s <= length or i == len(lengths) - 1:
                f = min(1.0, s / length) if length > 0 else 1.0
                moving = s < length
                velocity = seg[i] / length * self.target_speed if moving and length > 0 else np.zeros(3)
                return p[i] + f * seg[i], velocity
            s -= length
        return p[-1].copy(), np.zeros(3)

    def obstacle_array(self) -> np.ndarray:
        """``(N, 3)`` of ``x, y, trunk radius``."""
        if not self.obstacles:
            return np.zeros((0, 3))
        return np.array([(o.x, o.y, o.radius) for o in self.obstacles])


def _rng(seed: int, task: str) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(task.encode())])


def _layout_points(rng: np.random.Generator, spec: TaskSpec, forest: ForestParams) -> dict:
    """Start, targets, path and distractor in the layout frame."""
    h_lo, h_hi = forest.flight_height
    d0 = rng.uniform(*spec.start_distance)
    lateral = rng.uniform(-0.15, 0.15) * d0
    targets = [(d0, lateral)]
    heights = [rng.uniform(h_lo, h_hi)]
    for _ in range(spec.n_targets - 1):
        heading = rng.uniform(-0.7, 0.7)
        leg = rng.uniform(*spec.leg_distance)
        px, py = targets[-1]
        targets.append((px + leg * math.cos(heading), py + leg * math.sin(heading)))
        heights.append(rng.uniform(h_lo, h_hi))
    to_target = math.atan2(lateral, d0)
    start_yaw = to_target + math.radians(rng.uniform(-spec.start_bearing_deg, spec.start_bearing_deg))
    start_z = rng.uniform(h_lo, h_hi)
    speed = rng.uniform(*spec.target_speed) if spec.moving else 0.0
    path = np.zeros((0, 3))
    if spec.moving:
        length = speed * max(1.0, spec.time_limit_s - 4.0)
        n_seg = 5
        heading = to_target
        pts = [(d0 * math.cos(to_target), d0 * math.sin(to_target))]
        for _ in range(n_seg):
            heading += rng.uniform(-0.35, 0.35)
            step = length / n_seg
            pts.append((pts[-1][0] + step * math.cos(heading), pts[-1][1] + step * math.sin(heading)))
        path = np.array([(x, y, heights[0]) for x, y in pts])
        targets = [pts[0]]
    side = 1.0 if rng.random() < 0.5 else -1.0
    angle = to_target + side * math.radians(rng.uniform(25.0, 40.0))
    dist = d0 * rng.uniform(0.7, 1.0)
    distractor = (dist * math.cos(angle), dist * math.sin(angle), rng.uniform(h_lo, h_hi))
    return {
        "targets": [(x, y, z) for (x, y), z in zip(targets, heights)],
        "start": (0.0, 0.0, start_z),
        "start_yaw": start_yaw,
        "path": path,
        "speed": speed,
        "distractor": distractor,
    }


def _clear(x: float, y: float, zones: list[tuple[float, float, float]], segments: list, clear_path: float) -> bool:
    for zx, zy, r in zones:
        if (x - zx) ** 2 + (y - zy) ** 2 < r * r:
            return False
    for (ax, ay), (bx, by) in segments:
        dx, dy = bx - ax, by - ay
        t = max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / max(dx * dx + dy * dy, 1e-12)))
        if (x - ax - t * dx) ** 2 + (y - ay - t * dy) ** 2 < clear_path * clear_path:
            return False
    return True


def _forest(rng: np.random.Generator, pts: dict, forest: ForestParams, rect: tuple[float, float, float, float]):
    xmin, xmax, ymin, ymax = rect
    spacing = rng.uniform(*forest.spacing)
    density = rng.uniform(*forest.density)
    wanted = min(forest.max_trees, int(round((xmax - xmin) * (ymax - ymin) * density)))
    zones = [(pts["start"][0], pts["start"][1], forest.clear_start)]
    zones += [(x, y, forest.clear_target) for x, y, _ in pts["targets"]]
    zones.append((pts["distractor"][0], pts["distractor"][1], forest.clear_target))
    path = pts["path"]
    segments = [((path[i, 0], path[i, 1]), (path[i + 1, 0], path[i + 1, 1])) for i in range(len(path) - 1)]
    if len(path):
        segments.append(((pts["start"][0], pts["start"][1]), (path[0, 0], path[0, 1])))
    candidates = rng.uniform((xmin, ymin), (xmax, ymax), size=(wanted * 40, 2))
    trunks = np.zeros((0, 2))
    for x, y in candidates:
        if len(trunks) >= wanted:
            break
        if len(trunks) and np.min(np.sum((trunks - (x, y)) ** 2, axis=1)) < spacing * spacing:
            continue
        if _clear(x, y, zones, segments, forest.clear_path):
            trunks = np.vstack([trunks, (x, y)])
    n = len(trunks)
    radius = rng.uniform(*forest.trunk_radius, size=n)
    height = rng.uniform(*forest.height, size=n)
    base = rng.uniform(*forest.canopy_base, size=n)
    crown = rng.uniform(*forest.canopy_radius, size=n)
    pine = rng.random(n) < 0.5
    return spacing, [
        (float(x), float(y), float(r), float(h), float(min(b, 0.6 * h)), float(c), bool(p))
        for (x, y), r, h, b, c, p in zip(trunks, radius, height, base, crown, pine)
    ]


def generate_scene(seed: int, spec: TaskSpec, forest: ForestParams | None = None) -> Scene:
    """The scene of ``seed`` for the task ``spec`` (independent of the domain)."""
    forest = forest or ForestParams()
    rng = _rng(seed, spec.name)
    layout_yaw = float(rng.uniform(-math.pi, math.pi))
    pts = _layout_points(rng, spec, forest)
    key = [pts["start"][:2], pts["distractor"][:2]] + [t[:2] for t in pts["targets"]]
    key += [tuple(p[:2]) for p in pts["path"]]
    xs, ys = [p[0] for p in key], [p[1] for p in key]
    m = forest.margin
    rect = (float(min(xs)) - m, float(max(xs)) + m, float(min(ys)) - m, float(max(ys)) + m)
    _spacing, trees = _forest(rng, pts, forest, rect)
    c, s = math.cos(layout_yaw), math.sin(layout_yaw)

    def world(x: float, y: float) -> tuple[float, float]:
        return c * x - s * y, s * x + c * y

    obstacles = tuple(Obstacle(*world(x, y), r, h, b, cr, p) for x, y, r, h, b, cr, p in trees)
    targets = tuple((*world(x, y), float(z)) for x, y, z in pts["targets"])
    path = tuple((*world(x, y), float(z)) for x, y, z in pts["path"])
    dx, dy, dz = pts["distractor"]
    return Scene(
        seed=int(seed),
        task=spec.name,
        obstacles=obstacles,
        start=(*world(*pts["start"][:2]), float(pts["start"][2])),
        start_yaw=math.remainder(pts["start_yaw"] + layout_yaw, math.tau),
        targets=targets,
        path=path,
        target_speed=float(pts["speed"]),
        distractor=(*world(dx, dy), float(dz)),
        layout_yaw=layout_yaw,
        bounds=(rect[0] - 2.0, rect[1] + 2.0, rect[2] - 2.0, rect[3] + 2.0),
    )
