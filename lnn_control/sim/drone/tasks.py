"""The tasks a drone episode can pose, selectable by name, and the per-frame judge of success and failure.

- ``fly-to-target``: start 6-15 m from the red box with it within +-30 degrees of the camera axis; success: within
  2 m of it and centred (bearing and elevation within +-10 degrees) for 1 s;
- ``range``: the same from 15-30 m;
- ``hike``: three targets one after another; reaching one (as above) moves the box to the next place;
- ``track``: the box moves at 0.3-1 m/s along a path; keep 3 m (+-1.5 m) behind it with it within +-30 degrees;
  success when it reaches the end of its path having been tracked for at least ``track_fraction`` of the time;
  failure when it gets farther than ``lost_distance``.

Any collision fails; leaving the bounded area ends the episode (terminated); the time limit truncates it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    """What one task asks for; the scene generator reads the start and target layout from it."""

    name: str
    start_distance: tuple[float, float] = (6.0, 15.0)
    """Range of the start's distance to the (first) target, m."""
    start_bearing_deg: float = 30.0
    """Largest angle between the camera axis at the start and the direction to the target, degrees."""
    n_targets: int = 1
    """Targets visited one after another (``hike``)."""
    leg_distance: tuple[float, float] = (6.0, 12.0)
    """Range of the distance between consecutive targets, m (``hike``)."""
    target_speed: tuple[float, float] = (0.0, 0.0)
    """Range of the target's speed, m/s (``track``: > 0)."""
    time_limit_s: float = 30.0
    success_distance: float = 2.0
    """Largest distance to the target that counts as reached, m."""
    success_angle_deg: float = 10.0
    """Largest bearing and elevation of the target from the camera axis that count as centred, degrees."""
    hold_s: float = 1.0
    """How long the target must stay reached and centred, s."""
    track_distance: float = 3.0
    """Distance to keep from a moving target, m."""
    track_tolerance: float = 1.5
    """Allowed deviation from ``track_distance``, m."""
    track_angle_deg: float = 30.0
    """Largest bearing of a tracked target, degrees."""
    track_fraction: float = 0.8
    """Fraction of the time the target must be tracked for success."""
    lost_distance: float = 10.0
    """A moving target farther than this is lost (failure), m."""

    @property
    def moving(self) -> bool:
        """Whether the target moves."""
        return self.target_speed[1] > 0


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec("fly-to-target"),
        TaskSpec("range", start_distance=(15.0, 30.0), time_limit_s=60.0),
        TaskSpec("hike", n_targets=3, time_limit_s=90.0),
        TaskSpec("track", start_distance=(3.0, 3.0), start_bearing_deg=10.0, target_speed=(0.3, 1.0),
                 time_limit_s=30.0),
    )
}


def task_spec(name: str | TaskSpec) -> TaskSpec:
    """The task called ``name`` (or ``name`` itself if it is a spec); ``ValueError`` naming the known ones."""
    if isinstance(name, TaskSpec):
        return name
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown drone task {name!r} (known: {', '.join(TASKS)})") from None


@dataclass(frozen=True)
class TargetView:
    """Where the target is seen from the drone: distance (m) and bearing/elevation from the camera axis (rad)."""

    distance: float
    bearing: float
    """Counter-clockwise positive (target to the left)."""
    elevation: float
    """Positive above the camera axis."""


def target_view(position: tuple[float, float, float], yaw: float, target: tuple[float, float, float]) -> TargetView:
    """The target as seen from ``position`` with the camera facing ``yaw`` (a level camera)."""
    dx, dy, dz = target[0] - position[0], target[1] - position[1], target[2] - position[2]
    horizontal = math.hypot(dx, dy)
    bearing = math.remainder(math.atan2(dy, dx) - yaw, math.tau) if horizontal > 1e-9 else 0.0
    return TargetView(math.sqrt(horizontal * horizontal + dz * dz), bearing, math.atan2(dz, horizontal))


@dataclass(frozen=True)
class Verdict:
    """The judge's word on one frame."""

    success: bool = False
    """The task was accomplished (the episode terminates)."""
    failure: str | None = None
    """Why the episode failed (``"lost_target"``), else None."""
    target_reached: bool = False
    """A target of ``hike`` was reached in this frame (the next one appears)."""


class TaskJudge:
    """Success, hike progress and tracking statistics, updated once per camera frame."""

    def __init__(self, spec: TaskSpec, n_targets: int, path_duration_s: float = math.inf):
        self.spec = spec
        self.n_targets = n_targets
        self.path_duration_s = path_duration_s
        self.reset()

    def reset(self) -> None:
        """A new episode."""
        self.target_index = 0
        self.hold_s = 0.0
        self.tracked_s = 0.0
        self.elapsed_s = 0.0
        self.time_to_target_s = math.nan

    @property
    def tracked_fraction(self) -> float:
        """Fraction of the episode's time the moving target was tracked."""
        return self.tracked_s / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def update(self, view: TargetView, dt_s: float, t_s: float) -> Verdict:
        """Judge the frame at sim time ``t_s`` (``dt_s`` after the previous one) with the target at ``view``."""
        spec = self.spec
        self.elapsed_s += dt_s
        if spec.moving:
            return self._update_tracking(view, dt_s, t_s)
        angle = math.radians(spec.success_angle_deg)
        reached = view.distance <= spec.success_distance and abs(view.bearing) <= angle and abs(view.elevation) <= angle
        self.hold_s = self.hold_s + dt_s if reached else 0.0
        if self.hold_s + 1e-9 < spec.hold_s:
            return Verdict()
        self.hold_s = 0.0
        self.target_index += 1
        if self.target_index >= self.n_targets:
            self.time_to_target_s = t_s
            return Verdict(success=True, target_reached=True)
        return Verdict(target_reached=True)

    def _update_tracking(self, view: TargetView, dt_s: float, t_s: float) -> Verdict:
        spec = self.spec
        if (abs(view.distance - spec.track_distance) <= spec.track_tolerance
                and abs(view.bearing) <= math.radians(spec.track_angle_deg)):
            self.tracked_s += dt_s
        if view.distance > spec.lost_distance:
            return Verdict(failure="lost_target")
        if t_s >= self.path_duration_s:
            if self.tracked_fraction >= spec.track_fraction:
                self.time_to_target_s = t_s
                return Verdict(success=True)
            return Verdict(failure="tracking_poor")
        return Verdict()
