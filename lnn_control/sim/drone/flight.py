"""The vehicle's autopilot: body-frame velocity command -> rotor thrusts, pure numpy (no MuJoCo).

Cascade, run at the physics rate:

1. **velocity**: the command ``(vx, vy, vz, yaw_rate)`` is read in the heading frame (the body frame without roll
   and pitch; FLU, REP 103) and turned into a world velocity; a PI loop with drag feed-forward gives the wanted
   acceleration, clipped per axis;
2. **thrust and attitude**: the wanted force ``m (a + g z)`` gives the collective thrust (projected on the current
   body z axis) and the wanted body z axis, tilted at most ``max_tilt_deg``; the wanted yaw is the integral of
   the commanded yaw rate, kept near the actual yaw;
3. **attitude -> rate -> torque**: the SO(3) attitude error (Lee et al. 2010) gives wanted body rates (plus the
   yaw-rate feed-forward), and a P loop on the rates gives the body torque, with the gyroscopic term;
4. **mixer** (:class:`Mixer`): thrust and torque -> four rotor thrusts in ``[0, max_thrust]``; on saturation the yaw
   torque gives way first, then the collective, then roll and pitch are scaled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lnn_control.sim.drone.airframe import GRAVITY, Airframe


@dataclass(frozen=True)
class FlightGains:
    """Gains and limits of :class:`FlightController`."""

    vel_p: tuple[float, float, float] = (2.0, 2.0, 3.0)
    """Velocity error -> acceleration, 1/s (world x, y, z)."""
    vel_i: tuple[float, float, float] = (0.3, 0.3, 1.0)
    """Integral gain, 1/s^2."""
    vel_i_limit: float = 2.0
    """Largest integral contribution per axis, m/s^2."""
    max_accel_xy: float = 4.0
    """m/s^2."""
    max_accel_z: float = 4.0
    """m/s^2."""
    max_tilt_deg: float = 35.0
    """Largest tilt of the thrust axis from vertical, degrees."""
    att_p: tuple[float, float, float] = (10.0, 10.0, 4.0)
    """Attitude error -> body rate, rad/s per rad."""
    rate_p: tuple[float, float, float] = (28.0, 28.0, 14.0)
    """Rate error -> angular acceleration, 1/s."""
    max_rate: tuple[float, float, float] = (5.0, 5.0, 3.0)
    """Largest wanted body rates, rad/s."""
    max_yaw_error: float = 0.6
    """Largest lead of the wanted yaw over the actual yaw, rad (no wind-up when the yaw torque saturates)."""


@dataclass
class FlightState:
    """What the autopilot measures: world velocity, orientation (world-from-body) and body rates."""

    velocity: np.ndarray
    """World-frame linear velocity, m/s, shape (3,)."""
    rotation: np.ndarray
    """World-from-body rotation matrix, shape (3, 3)."""
    omega: np.ndarray
    """Body-frame angular velocity, rad/s, shape (3,)."""


def yaw_of(rotation: np.ndarray) -> float:
    """Yaw of the body's forward axis in the world frame, rad."""
    return math.atan2(float(rotation[1, 0]), float(rotation[0, 0]))


def _vee_antisym(m: np.ndarray) -> np.ndarray:
    return np.array([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]]) * 0.5


class Mixer:
    """Collective thrust and body torque -> rotor thrusts for an :class:`Airframe`."""

    def __init__(self, airframe: Airframe):
        self.airframe = airframe
        inv = np.linalg.inv(airframe.allocation())
        self._per_thrust = inv[:, 0]
        self._roll_pitch = inv[:, 1:3]
        self._yaw = inv[:, 3]
        self.max_thrust = airframe.max_thrust

    def mix(self, thrust: float, torque: np.ndarray) -> np.ndarray:
        """Rotor thrusts in ``[0, max_thrust]`` for ``thrust`` (N) and body ``torque`` (N m, shape (3,))."""
        top = self.max_thrust
        rp = self._roll_pitch @ torque[:2]
        span = float(rp.max() - rp.min())
        if span > top:
            rp *= top / span
        base = self._per_thrust * thrust
        base = np.clip(base, -rp.min(), top - rp.max())  # all entries equal: the collective that fits
        u = base + rp
        yaw = self._yaw * float(torque[2])
        scale = 1.0
        for lo_room, hi_room, dy in zip(u, top - u, yaw):
            if dy > 0 and dy * scale > hi_room:
                scale = max(0.0, hi_room / dy)
            elif dy < 0 and -dy * scale > lo_room:
                scale = max(0.0, lo_room / -dy)
        return np.clip(u + scale * yaw, 0.0, top)


@dataclass
class FlightController:
    """Velocity-command autopilot; call :meth:`reset` at the start of a flight and :meth:`update` every physics step."""

    airframe: Airframe = field(default_factory=Airframe)
    gains: FlightGains = field(default_factory=FlightGains)

    def __post_init__(self) -> None:
        self.mixer = Mixer(self.airframe)
        self._inertia = np.asarray(self.airframe.inertia, dtype=float)
        self._drag = np.asarray(self.airframe.drag, dtype=float)
        g = self.gains
        self._vel_p = np.asarray(g.vel_p, dtype=float)
        self._vel_i = np.asarray(g.vel_i, dtype=float)
        self._att_p = np.asarray(g.att_p, dtype=float)
        self._rate_p = np.asarray(g.rate_p, dtype=float)
        self._max_rate = np.asarray(g.max_rate, dtype=float)
        self._tan_tilt = math.tan(math.radians(g.max_tilt_deg))
        self._max_collective = 4.0 * self.airframe.max_thrust
        self.reset()

    def reset(self, yaw: float = 0.0) -> None:
        """Forget the integrator; the wanted yaw starts at ``yaw``."""
        self._integral = np.zeros(3)
        self._yaw_sp = float(yaw)
        self.last_thrust = 0.0
        self.last_torque = np.zeros(3)
        self.last_accel = np.zeros(3)

    def world_velocity(self, command: np.ndarray, yaw: float) -> np.ndarray:
        """The commanded ``(vx, vy, vz)`` of the heading frame as a world velocity."""
        c, s = math.cos(yaw), math.sin(yaw)
        return np.array([c * command[0] - s * command[1], s * command[0] + c * command[1], command[2]])

    def update(self, command: np.ndarray, state: FlightState, dt: float) -> np.ndarray:
        """Rotor thrusts (N, shape (4,)) for ``command = (vx, vy, vz, yaw_rate)`` and the measured ``state``."""
        g = self.gains
        af = self.airframe
        rot = state.rotation
        yaw = yaw_of(rot)
        v_sp = self.world_velocity(command, yaw)
        err = v_sp - state.velocity
        self._integral = np.clip(self._integral + self._vel_i * err * dt, -g.vel_i_limit, g.vel_i_limit)
        accel = self._vel_p * err + self._integral + self._drag * v_sp / af.mass
        accel[:2] = _clip_norm(accel[:2], g.max_accel_xy)
        accel[2] = min(g.max_accel_z, max(-g.max_accel_z, accel[2]))
        self.last_accel = accel

        force = af.mass * accel
        force[2] = max(force[2] + af.mass * GRAVITY, 0.1 * af.mass * GRAVITY)
        force[:2] = _clip_norm(force[:2], force[2] * self._tan_tilt)
        b3 = rot[:, 2]
        thrust = min(self._max_collective, max(0.0, float(force @ b3)))

        rate_cmd = float(command[3])
        self._yaw_sp += rate_cmd * dt
        lead = math.remainder(self._yaw_sp - yaw, math.tau)
        lead = min(g.max_yaw_error, max(-g.max_yaw_error, lead))
        self._yaw_sp = yaw + lead
        r_sp = _attitude(force, self._yaw_sp)
        e_rot = _vee_antisym(r_sp.T @ rot)  # = 0.5 vee(Rd^T R - R^T Rd)
        omega_sp = -self._att_p * e_rot
        omega_sp[2] += rate_cmd * float(rot[2, 2])
        omega_sp = np.clip(omega_sp, -self._max_rate, self._max_rate)
        omega = state.omega
        torque = self._inertia * (self._rate_p * (omega_sp - omega)) + np.cross(omega, self._inertia * omega)
        self.last_thrust = thrust
        self.last_torque = torque
        return self.mixer.mix(thrust, torque)


def _clip_norm(v: np.ndarray, limit: float) -> np.ndarray:
    n = float(math.hypot(v[0], v[1]))
    return v * (limit / n) if n > limit else v


def _attitude(force: np.ndarray, yaw: float) -> np.ndarray:
    """World-from-body rotation whose z axis is along ``force`` and whose forward axis points at ``yaw``."""
    b3 = force / np.linalg.norm(force)
    b1c = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    b2 = np.cross(b3, b1c)
    b2 /= np.linalg.norm(b2)
    b1 = np.cross(b2, b3)
    return np.column_stack((b1, b2, b3))
