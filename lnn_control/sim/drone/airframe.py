"""Physical parameters of the simulated quadrotor, shared by the MJCF writer and the flight controller.

Built on public facts of the Skydio X2: 1.325 kg, rotors at (+-0.14, +-0.18) m, 0-13 N per rotor and a yaw
reaction moment of 0.0201 N m per N of thrust. The inertia and drag are our own estimates for a body of that size.

Body frame: FLU (x forward, y left, z up, REP 103). Rotors are numbered front-left, rear-left, rear-right,
front-right; diagonal rotors spin the same way, so front-left and rear-right share a spin sign and the other
diagonal has the opposite one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

GRAVITY = 9.81
"""m/s^2."""


def _default_rotors() -> tuple[tuple[float, float, float], ...]:
    # (x, y, spin): spin +1 means the rotor's reaction torque on the body is counter-clockwise (+z) per N of thrust
    return ((0.14, 0.18, -1.0), (-0.14, 0.18, 1.0), (-0.14, -0.18, -1.0), (0.14, -0.18, 1.0))


@dataclass(frozen=True)
class Airframe:
    """Mass, inertia, rotor layout and limits of the vehicle."""

    mass: float = 1.325
    """kg."""
    inertia: tuple[float, float, float] = (0.030, 0.025, 0.050)
    """Principal moments about body x, y, z, kg m^2."""
    rotors: tuple[tuple[float, float, float], ...] = field(default_factory=_default_rotors)
    """``(x, y, spin)`` per rotor, m; ``spin`` is the sign of the yaw reaction torque (+z) of its thrust."""
    max_thrust: float = 13.0
    """Largest thrust of one rotor, N (the smallest is 0)."""
    yaw_moment: float = 0.0201
    """Yaw reaction moment per N of rotor thrust, N m / N."""
    rotor_height: float = 0.05
    """Height of the rotor discs above the body origin, m."""
    rotor_radius: float = 0.09
    """Propeller radius (visual), m."""
    drag: tuple[float, float, float] = (0.30, 0.30, 0.45)
    """Linear drag per axis of the body frame, N per m/s."""
    angular_drag: float = 0.004
    """Rotational drag, N m per rad/s."""
    motor_tau: float = 0.02
    """First-order time constant of a rotor's thrust, s (0: instantaneous)."""
    collision_radius: float = 0.30
    """Radius of the sphere used for collisions, m."""

    def __post_init__(self) -> None:
        if len(self.rotors) != 4:
            raise ValueError("the airframe needs exactly four rotors")
        spins = [r[2] for r in self.rotors]
        if sorted(spins) != [-1.0, -1.0, 1.0, 1.0]:
            raise ValueError("two rotors must spin each way")

    @property
    def hover_thrust(self) -> float:
        """Thrust of one rotor in hover, N."""
        return self.mass * GRAVITY / 4.0

    def allocation(self) -> np.ndarray:
        """The 4x4 map from rotor thrusts to ``[collective thrust, roll torque, pitch torque, yaw torque]``."""
        a = np.zeros((4, 4))
        for i, (x, y, spin) in enumerate(self.rotors):
            a[0, i] = 1.0
            a[1, i] = y  # thrust along +z at (x, y): torque r x F = (y F, -x F, 0)
            a[2, i] = -x
            a[3, i] = spin * self.yaw_moment
        return a
