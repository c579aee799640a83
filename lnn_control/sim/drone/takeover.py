"""When the drone's demonstrator takes over from a flying policy (DAgger with interventions, as in HG-DAgger, Kelly
et al. 2019), on the privileged state alone: near an obstacle, the target lost from view, too low or too high.

:class:`DroneTakeover` holds the hysteresis: once it took over it hands back only when the drone is clear again, the
target near the camera axis and within the altitude band, and at least ``min_takeover_s`` of sim time have passed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lnn_control.sim.drone.airframe import Airframe
from lnn_control.sim.drone.state import DroneState


@dataclass(frozen=True)
class TakeoverConfig:
    """Thresholds of :class:`DroneTakeover` (m, degrees, s)."""

    clearance: float = 0.5
    """Take over when the drone's sphere is closer than this to an obstacle's footprint."""
    bearing_deg: float = 50.0
    """... or the target is more than this off the camera axis (horizontally)."""
    min_altitude: float = 0.6
    max_altitude: float = 5.0
    release_clearance: float = 1.0
    release_bearing_deg: float = 15.0
    min_takeover_s: float = 1.0
    drone_radius: float = Airframe().collision_radius


def clearance(state: DroneState, drone_radius: float) -> float:
    """Distance from the drone's sphere to the nearest obstacle footprint (m; inf without obstacles)."""
    obstacles = np.asarray(state.obstacles, dtype=float).reshape(-1, 3)
    if not len(obstacles):
        return math.inf
    gaps = np.hypot(obstacles[:, 0] - state.position[0], obstacles[:, 1] - state.position[1]) - obstacles[:, 2]
    return float(gaps.min()) - drone_radius


def target_bearing(state: DroneState) -> float:
    """Horizontal angle of the target from the heading, rad, positive to the left."""
    dx, dy = state.target[0] - state.position[0], state.target[1] - state.position[1]
    return math.remainder(math.atan2(dy, dx) - state.yaw, math.tau)


class DroneTakeover:
    """Whether the demonstrator flies each state (see the module docstring); counts takeovers and states flown."""

    def __init__(self, config: TakeoverConfig | None = None) -> None:
        self.config = config or TakeoverConfig()
        self.active = False
        self.since_s = 0.0
        self.takeovers = 0
        self.states = 0
        self.reason = ""

    def reset(self) -> None:
        """A new episode starts with the policy flying."""
        self.active = False
        self.reason = ""

    def update(self, state: DroneState) -> bool:
        """Whether the demonstrator flies ``state``."""
        c = self.config
        gap = clearance(state, c.drone_radius)
        bearing = math.degrees(abs(target_bearing(state)))
        height = float(state.position[2])
        if not self.active:
            why = ("near an obstacle" if gap < c.clearance else "target lost" if bearing > c.bearing_deg
                   else "too low" if height < c.min_altitude else "too high" if height > c.max_altitude else "")
            if why:
                self.active, self.since_s, self.reason = True, state.time_s, why
                self.takeovers += 1
        elif (state.time_s - self.since_s >= c.min_takeover_s and gap >= c.release_clearance
              and bearing <= c.release_bearing_deg and c.min_altitude <= height <= c.max_altitude):
            self.active = False
        self.states += int(self.active)
        return self.active
