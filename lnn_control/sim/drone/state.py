"""What the simulator knows and a camera policy does not: the privileged state a demonstrator reads, and the
ground truth of each observation (:class:`DroneTruth`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lnn_control.sim.base import Truth
from lnn_control.sim.drone.scene import Scene
from lnn_control.sim.drone.tasks import TaskSpec

NAN3 = (math.nan, math.nan, math.nan)


@dataclass(frozen=True)
class DroneTruth(Truth):
    """Ground truth of one drone observation (SI units, world frame z up, angles counter-clockwise).

    The car's fields keep their defaults except the generic ones: ``speed`` (forward speed, m/s), ``position``
    (x, y), ``heading`` (yaw), ``yaw_rate``, ``reward`` and ``total_reward``.
    """

    position_3d: tuple[float, float, float] = NAN3
    """Drone position, m."""
    attitude: tuple[float, float, float] = NAN3
    """Roll, pitch, yaw, rad (ZYX Euler angles)."""
    body_velocity: tuple[float, float, float] = NAN3
    """Velocity in the heading frame (the command's frame: forward, left, up), m/s."""
    target_position: tuple[float, float, float] = NAN3
    """Centre of the current target, m."""
    target_distance: float = math.nan
    """Distance from the drone to the target's centre, m."""
    target_bearing: float = math.nan
    """Bearing of the target from the camera axis, rad, positive to the left."""
    target_elevation: float = math.nan
    """Elevation of the target above the camera axis, rad."""
    target_index: int = 0
    """Targets reached so far (``hike``)."""
    collided: bool = False
    """The drone touched an obstacle, the target or the ground."""
    success: bool = False
    """The task was accomplished."""
    time_to_target: float = math.nan
    """Sim time of the success, s (NaN until then)."""


@dataclass(frozen=True)
class DroneState:
    """The privileged state a demonstrator's label is computed from (any state the drone can reach)."""

    time_s: float
    position: np.ndarray
    """World position, m, (3,)."""
    velocity: np.ndarray
    """World velocity, m/s, (3,)."""
    yaw: float
    yaw_rate: float
    target: np.ndarray
    """Current target's centre, m, (3,)."""
    target_velocity: np.ndarray
    """m/s, (3,) (zero unless the task moves it)."""
    obstacles: np.ndarray
    """``(N, 3)``: x, y and the radius of a circle around each static obstacle's footprint (trunks or buildings, the
    distractor where there is one; not the target), m."""
    task: TaskSpec
    scene: Scene


def state_from_row(
    row: dict[str, float], task: TaskSpec, obstacles: np.ndarray, target_velocity: np.ndarray | None = None
) -> DroneState:
    """The privileged state of one ``sim/truth`` row of the drone (:mod:`lnn_control.sim.truth_rows`), with the
    episode's task and obstacles (from its start event): what a demonstrator in another process labels.

    The row's velocity is in the heading frame; it is turned into the world's by the yaw. ``target_velocity``
    (world, m/s) is the caller's estimate from consecutive rows (zero when None)."""
    yaw = float(row["attitude_2"])
    c, s = math.cos(yaw), math.sin(yaw)
    forward, left, up = (float(row[f"body_velocity_{i}"]) for i in range(3))
    return DroneState(
        time_s=float(row["time"]),
        position=np.array([row["position_3d_0"], row["position_3d_1"], row["position_3d_2"]], dtype=float),
        velocity=np.array([c * forward - s * left, s * forward + c * left, up]),
        yaw=yaw,
        yaw_rate=float(row["yaw_rate"]),
        target=np.array([row["target_position_0"], row["target_position_1"], row["target_position_2"]], dtype=float),
        target_velocity=np.zeros(3) if target_velocity is None else np.asarray(target_velocity, dtype=float),
        obstacles=np.asarray(obstacles, dtype=float).reshape(-1, 3),
        task=task,
        scene=None,  # type: ignore[arg-type]  # labels read no scene; the row does not carry one
    )
