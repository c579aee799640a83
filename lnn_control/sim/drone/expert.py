"""The demonstrator: privileged pursuit of the target with obstacle avoidance and altitude hold.

:meth:`DroneExpert.label` is a pure function of a :class:`~lnn_control.sim.drone.state.DroneState`, so it labels
any state the drone can reach (DAgger):

- **goal**: a point ``standoff`` metres short of the target on the line from the drone (``track``: the task's
  following distance, with the target's velocity fed forward);
- **avoidance**: candidate headings fan out from the goal's direction in ``fan_step_deg`` steps up to
  ``fan_max_deg``; of those whose look-ahead segment keeps ``clearance`` beyond every trunk (and the target), the
  one nearest the goal's direction is flown, a turn away from the current velocity counting half (so the choice
  does not flip sides from frame to frame); the speed shrinks near obstacles; inside the clearance of an obstacle
  a push away is added;
- **altitude**: a P loop to the target's height; **yaw**: a P loop turning the camera to the target.

The world velocity is expressed in the heading frame (the command's FLU frame).

**Imperfection** (off by default) is added to the *executed* command only, the label stays clean (DART-style noise
injection, as the car's demonstrator): Ornstein-Uhlenbeck noise per field, and drifts (a random bias on ``vy`` and
``yaw_rate`` held for a random time), after which the clean controller recovers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lnn_control.command import DRONE, Command
from lnn_control.sim.drone.airframe import Airframe
from lnn_control.sim.drone.state import DroneState


@dataclass(frozen=True)
class DroneExpertConfig:
    """Gains, limits and imperfection of :class:`DroneExpert`."""

    max_speed: float = 2.0
    """Horizontal speed limit, m/s."""
    position_gain: float = 0.9
    """Goal distance -> speed, 1/s."""
    standoff: float = 1.3
    """Distance short of a static target to stop at, m."""
    clearance: float = 0.45
    """Free space kept beyond the drone's collision radius around obstacles, m."""
    lookahead: float = 3.5
    """Length of the segment checked along a candidate heading, m."""
    fan_step_deg: float = 10.0
    fan_max_deg: float = 100.0
    slow_zone: float = 1.2
    """Beyond the clearance, the distance over which the speed is reduced near an obstacle, m."""
    min_speed_fraction: float = 0.35
    altitude_gain: float = 1.5
    """Height error -> vz, 1/s."""
    max_vz: float = 0.8
    yaw_gain: float = 2.0
    """Bearing -> yaw rate, 1/s."""
    max_yaw_rate: float = 1.0
    target_footprint: float = 0.45
    """Radius treated as obstacle around the target, m."""
    drone_radius: float = Airframe().collision_radius
    # imperfection (executed command only)
    noise_std: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    """Std of the Ornstein-Uhlenbeck noise on ``vx, vy, vz, yaw_rate``; zeros: off."""
    noise_tau_s: float = 0.6
    drift_rate_hz: float = 0.0
    """Mean drifts per second; 0: off."""
    drift_duration_s: tuple[float, float] = (0.5, 1.2)
    drift_vy: float = 0.5
    """Bias on ``vy`` during a drift, m/s (random sign)."""
    drift_yaw_rate: float = 0.3
    """Bias on ``yaw_rate`` during a drift, rad/s (random sign)."""

    @classmethod
    def imperfect(cls, **overrides: float) -> DroneExpertConfig:
        """A configuration with moderate noise and drifts, for recordings that show recoveries."""
        values = {"noise_std": (0.25, 0.25, 0.08, 0.15), "drift_rate_hz": 0.15, **overrides}
        return cls(**values)


@dataclass(frozen=True)
class DroneExpertAction:
    """One decision: the executed command and the clean label."""

    command: Command
    label: Command
    drifting: bool = False


def _free_headings(pos: np.ndarray, headings: np.ndarray, obstacles: np.ndarray, length: float, keep: float):
    """Smallest clearance margin of each heading's segment (negative: blocked), shape (K,)."""
    if len(obstacles) == 0:
        return np.full(len(headings), np.inf)
    dirs = np.stack([np.cos(headings), np.sin(headings)], axis=1)  # (K, 2)
    rel = obstacles[:, :2] - pos  # (N, 2)
    along = np.clip(dirs @ rel.T, 0.0, length)  # (K, N)
    closest = along[..., None] * dirs[:, None, :]  # (K, N, 2)
    dist = np.linalg.norm(rel[None] - closest, axis=2)
    return np.min(dist - obstacles[None, :, 2] - keep, axis=1)


class DroneExpert:
    """The demonstrator as a controller: ``reset()`` / ``observe(frame, stamp_ns) -> Command`` on a
    :class:`~lnn_control.sim.drone.backend.DroneSim` (it reads ``sim.state``, never the frame)."""

    def __init__(self, sim=None, config: DroneExpertConfig | None = None, seed: int | None = None):
        self.sim = sim
        self.config = config or DroneExpertConfig()
        self._seeds = np.random.SeedSequence(seed)
        self._rng = np.random.default_rng(self._seeds.spawn(1)[0])
        self.last_action: DroneExpertAction | None = None
        self._reset_noise()

    def _reset_noise(self) -> None:
        self._noise = np.zeros(4)
        self._drift_left_s = 0.0
        self._drift_bias = np.zeros(4)
        self._last_stamp: int | None = None

    def reset(self) -> None:
        """New episode; the imperfection draws from the next seed of the sequence started by ``seed``."""
        self._rng = np.random.default_rng(self._seeds.spawn(1)[0])
        self._reset_noise()
        self.last_action = None

    # -- the clean policy ------------------------------------------------------------------------------------------
    def label(self, state: DroneState, stamp_ns: int = 0) -> Command:
        """The clean command for ``state`` (pure: no memory, any reachable state)."""
        c = self.config
        pos = np.asarray(state.position, dtype=float)
        target = np.asarray(state.target, dtype=float)
        task = state.task
        to_target = target[:2] - pos[:2]
        dist_t = float(np.hypot(*to_target))
        unit_t = to_target / dist_t if dist_t > 1e-6 else np.array([math.cos(state.yaw), math.sin(state.yaw)])
        standoff = task.track_distance if task.moving else c.standoff
        goal = target[:2] - standoff * unit_t
        to_goal = goal - pos[:2]
        dist_g = float(np.hypot(*to_goal))
        feed = np.asarray(state.target_velocity[:2], dtype=float) if task.moving else np.zeros(2)

        obstacles = np.vstack([state.obstacles.reshape(-1, 3), [[target[0], target[1], c.target_footprint]]])
        keep = c.drone_radius + c.clearance
        near = obstacles[np.hypot(*(obstacles[:, :2] - pos[:2]).T) < c.lookahead + obstacles[:, 2] + keep + 1.0]
        wanted = feed + min(c.max_speed, c.position_gain * dist_g) * (to_goal / max(dist_g, 1e-9))
        limit = c.max_speed + float(np.hypot(*feed))
        velocity = self._avoid(pos[:2], wanted, dist_g, near, keep, limit, np.asarray(state.velocity[:2], float))
        velocity = velocity + self._push(pos[:2], near, keep)
        speed = float(np.hypot(*velocity))
        if speed > limit:
            velocity *= limit / speed

        vz = min(c.max_vz, max(-c.max_vz, c.altitude_gain * (float(target[2]) - float(pos[2]))))
        bearing = math.remainder(math.atan2(unit_t[1], unit_t[0]) - state.yaw, math.tau) if dist_t > 0.3 else 0.0
        yaw_rate = min(c.max_yaw_rate, max(-c.max_yaw_rate, c.yaw_gain * bearing))
        cy, sy = math.cos(state.yaw), math.sin(state.yaw)
        vx = cy * velocity[0] + sy * velocity[1]
        vy = -sy * velocity[0] + cy * velocity[1]
        return DRONE.command((vx, vy, vz, yaw_rate), stamp_ns)

    def _avoid(self, pos: np.ndarray, wanted: np.ndarray, dist_g: float, near: np.ndarray, keep: float,
               limit: float, velocity: np.ndarray) -> np.ndarray:
        """World-frame horizontal velocity like ``wanted`` but around obstacles."""
        c = self.config
        speed = min(limit, float(np.hypot(*wanted)))
        if speed < 1e-3:
            return np.zeros(2)
        base = math.atan2(wanted[1], wanted[0])
        steps = np.arange(0.0, c.fan_max_deg + 1e-9, c.fan_step_deg)
        offsets = np.radians(np.concatenate([[0.0], np.stack([steps[1:], -steps[1:]], axis=1).ravel()]))
        length = min(c.lookahead, dist_g + 0.3)
        margins = _free_headings(pos, base + offsets, near, length, keep)
        free = np.flatnonzero(margins >= 0.0)
        if len(free):
            # the free heading nearest the goal's, ties (within a fan step) going the way the drone already moves
            moving = float(np.hypot(*velocity))
            cost = np.abs(offsets[free])
            if moving > 0.2:
                turn = np.abs(np.remainder(base + offsets[free] - math.atan2(velocity[1], velocity[0]) + math.pi,
                                           2 * math.pi) - math.pi)
                cost = cost + 0.5 * turn
            pick = int(free[np.argmin(cost)])
        else:
            pick = int(np.argmax(margins))
            speed *= c.min_speed_fraction
        heading = base + float(offsets[pick])
        if len(near):
            gap = float(np.min(np.hypot(*(near[:, :2] - pos).T) - near[:, 2] - keep))
            speed *= min(1.0, max(c.min_speed_fraction, gap / c.slow_zone + c.min_speed_fraction))
        return speed * np.array([math.cos(heading), math.sin(heading)])

    def _push(self, pos: np.ndarray, near: np.ndarray, keep: float) -> np.ndarray:
        """Away from obstacles whose clearance the drone is inside."""
        if len(near) == 0:
            return np.zeros(2)
        rel = pos - near[:, :2]
        dist = np.hypot(*rel.T)
        depth = near[:, 2] + keep - dist
        inside = depth > 0
        if not inside.any():
            return np.zeros(2)
        away = rel[inside] / np.maximum(dist[inside], 1e-6)[:, None]
        return 1.5 * (away * depth[inside, None]).sum(axis=0)

    # -- the controller interface ----------------------------------------------------------------------------------
    def act(self, state: DroneState, stamp_ns: int = 0) -> DroneExpertAction:
        """Executed command (with the imperfection) and clean label for ``state``."""
        label = self.label(state, stamp_ns)
        executed, drifting = self._imperfect(label, stamp_ns)
        return DroneExpertAction(executed, label, drifting)

    def observe(self, frame: np.ndarray, stamp_ns: int) -> Command:
        if self.sim is None:
            raise RuntimeError("DroneExpert needs the simulator to observe (or call label(state) directly)")
        self.last_action = self.act(self.sim.state, stamp_ns)
        return self.last_action.command

    @property
    def last_label(self) -> Command | None:
        """The clean command of the latest :meth:`observe`."""
        return None if self.last_action is None else self.last_action.label

    def _imperfect(self, label: Command, stamp_ns: int) -> tuple[Command, bool]:
        c = self.config
        std = np.asarray(c.noise_std, dtype=float)
        if not std.any() and c.drift_rate_hz <= 0:
            return label, False
        dt = 0.07 if self._last_stamp is None else max(0.0, (stamp_ns - self._last_stamp) * 1e-9)
        self._last_stamp = stamp_ns
        values = np.asarray(label.values, dtype=float)
        if std.any() and dt > 0:
            a = math.exp(-dt / c.noise_tau_s)
            self._noise = a * self._noise + std * math.sqrt(1.0 - a * a) * self._rng.standard_normal(4)
            values = values + self._noise
        drifting = False
        if c.drift_rate_hz > 0:
            if self._drift_left_s <= 0 and self._rng.random() < 1.0 - math.exp(-c.drift_rate_hz * dt):
                self._drift_left_s = float(self._rng.uniform(*c.drift_duration_s))
                signs = np.where(self._rng.random(2) < 0.5, -1.0, 1.0)
                self._drift_bias = np.array([0.0, signs[0] * c.drift_vy, 0.0, signs[1] * c.drift_yaw_rate])
            if self._drift_left_s > 0:
                values = values + self._drift_bias
                self._drift_left_s -= dt
                drifting = True
        return DRONE.command(values, label.stamp_ns), drifting
