"""The vehicle's speed controller: target velocity (m/s) -> gas and brake. Only this touches gas and brake.

A PI controller on the speed error ``e = target - measured`` (m/s):

    u = kp * e + ki * integral(e dt),   u in [-1, 1]
    gas   = min(u, gas_max)                  if u > 0
    brake = min(-u * brake_gain, brake_max)  if u < 0 and -u > brake_deadband

Anti-windup: conditional integration (the integral stops growing while the output is saturated in the direction
the error pushes) and a hard clamp ``|ki * integral| <= i_max``.

Why these gains (measured on CarRacing-v3, see ``test/test_sim_speed.py`` and the notes in the report): the car has
no drag or rolling resistance (it coasts at constant speed) and a powerful, traction-limited rear-wheel drive
(about 40 m/s^2 at full gas; the rear wheels spin up and keep pushing for a while after the gas is released), so the
plant is an integrator with a lag. Small gas already accelerates hard, hence a small ``kp`` and ``gas_max``; braking
is even stronger (brake 0.2 decelerates about 50 m/s^2; 0.9 and above locks the wheels), hence ``brake_gain`` < 1
and ``brake_max`` < 0.9. A P term alone reaches the target on this plant; the small I term removes the error where a
backend has drag or a slope, and the anti-windup keeps it from overshooting after long saturations (a standing
start, a hard braking zone).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SpeedControllerConfig:
    """Gains and limits of :class:`SpeedController` (units: error in m/s, time in s)."""

    kp: float = 0.05
    """Proportional gain, 1/(m/s): an error of 10 m/s asks for u = 0.5."""
    ki: float = 0.02
    """Integral gain, 1/(m/s * s)."""
    i_max: float = 0.3
    """Largest magnitude of the integral term's contribution to u."""
    i_band: float = 5.0
    """The integral only accumulates while ``|error| < i_band`` m/s (integral separation: no wind-up during the
    large errors of a standing start or a braking zone, where P alone saturates the output anyway)."""
    gas_max: float = 1.0
    """Largest gas (CarRacing: 0..1, ramped by the env at +0.1 per step)."""
    brake_gain: float = 0.5
    """Brake per unit of negative u."""
    brake_max: float = 0.8
    """Largest brake (CarRacing locks the wheels at 0.9)."""
    brake_deadband: float = 0.02
    """Negative u smaller than this coasts instead of braking (the car has no drag, so coasting holds speed)."""


class SpeedController:
    """PI speed controller with anti-windup; one instance per vehicle, :meth:`reset` per episode."""

    def __init__(self, config: SpeedControllerConfig | None = None):
        self.config = config or SpeedControllerConfig()
        self.integral = 0.0
        self.last_u = 0.0

    def reset(self) -> None:
        """Clear the integral."""
        self.integral = 0.0
        self.last_u = 0.0

    def update(self, target: float, measured: float, dt: float) -> tuple[float, float]:
        """One control step: ``(gas, brake)`` for a ``target`` and ``measured`` forward speed (m/s) over ``dt`` s."""
        c = self.config
        error = target - measured
        p = c.kp * error
        u_unsat = p + c.ki * self.integral
        saturated_high = u_unsat >= 1.0 and error > 0
        saturated_low = u_unsat <= -1.0 and error < 0
        if abs(error) < c.i_band and not (saturated_high or saturated_low):
            self.integral += error * dt
            if c.ki > 0:
                limit = c.i_max / c.ki
                self.integral = min(limit, max(-limit, self.integral))
        u = min(1.0, max(-1.0, p + c.ki * self.integral))
        self.last_u = u
        if u > 0:
            return min(u, c.gas_max), 0.0
        if -u > c.brake_deadband:
            return 0.0, min(-u * c.brake_gain, c.brake_max)
        return 0.0, 0.0
