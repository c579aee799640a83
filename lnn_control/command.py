"""The command every controller produces: the policy, the demonstrator, a person at the keyboard.

Units, stated once for the whole project:

- ``steering``: normalised steering in [-1, 1]; **positive turns left** (REP 103 sign). It travels in
  ``geometry_msgs/Twist.angular.z``. It is a steering command, not a yaw rate: the vehicle adapter (or the simulator
  backend) maps +1 to its full-left steering angle.
- ``velocity``: target forward speed in m/s (``Twist.linear.x``); the vehicle's speed controller turns it into
  throttle and brake.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """A steering and velocity command with the stamp (ns) of the frame it answers."""

    steering: float
    velocity: float
    stamp_ns: int = 0

    def is_finite(self) -> bool:
        """True if both fields are finite numbers."""
        return math.isfinite(self.steering) and math.isfinite(self.velocity)


STOP = Command(0.0, 0.0)
