"""Human commands in a bag -> :class:`lnn_control.command.Command` (normalised steering, velocity in m/s).

Supported message types, with how each maps onto the project's units (see ``lnn_control/command.py``):

- ``geometry_msgs/Twist`` and ``TwistStamped``: ``steering = angular.z * twist_steering_scale``,
  ``velocity = linear.x * twist_velocity_scale`` (scales 1.0 by default: the teleop topics already carry normalised
  steering in ``angular.z`` and m/s in ``linear.x``).
- ``sensor_msgs/Joy``: ``steering = axes[joy_steering_axis] * joy_steering_scale``,
  ``velocity = axes[joy_velocity_axis] * joy_velocity_scale`` (joy axes are +1 left / up, so the default scales
  of +1 give left-positive steering and forward-positive velocity on the usual left stick).
- ``ackermann_msgs/AckermannDriveStamped`` and ``AckermannDrive`` (types read from the bag's own definitions):
  ``steering = steering_angle / ackermann_max_steering_angle`` (radians, left positive as in REP 103),
  ``velocity = speed``.

Steering is clipped to [-1, 1] unless ``clip_steering`` is off. A message whose values are not finite, or a Joy
message without the configured axis, raises :class:`CommandError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lnn_control.command import Command
from lnn_control.data.bags import normalize_msgtype

TWIST = "geometry_msgs/msg/Twist"
TWIST_STAMPED = "geometry_msgs/msg/TwistStamped"
JOY = "sensor_msgs/msg/Joy"
ACKERMANN = "ackermann_msgs/msg/AckermannDrive"
ACKERMANN_STAMPED = "ackermann_msgs/msg/AckermannDriveStamped"

COMMAND_TYPES: tuple[str, ...] = (TWIST, TWIST_STAMPED, JOY, ACKERMANN, ACKERMANN_STAMPED)
"""Message types :func:`command_from_msg` understands."""


class CommandError(ValueError):
    """A command message that cannot be turned into a Command (what is wrong is in the message)."""


@dataclass(frozen=True)
class CommandConfig:
    """How command messages map onto steering and velocity (see the module doc)."""

    twist_steering_scale: float = 1.0
    twist_velocity_scale: float = 1.0
    joy_steering_axis: int = 0
    joy_velocity_axis: int = 1
    joy_steering_scale: float = 1.0
    joy_velocity_scale: float = 1.0
    ackermann_max_steering_angle: float = 0.5
    """Radians of ``steering_angle`` that mean full lock (steering 1.0)."""
    clip_steering: bool = True

    def __post_init__(self) -> None:
        if not self.ackermann_max_steering_angle > 0:
            raise ValueError(
                f"commands.ackermann_max_steering_angle must be > 0, got {self.ackermann_max_steering_angle}"
            )
        for name in ("joy_steering_axis", "joy_velocity_axis"):
            if getattr(self, name) < 0:
                raise ValueError(f"commands.{name} must be >= 0, got {getattr(self, name)}")


def command_from_msg(
    msg: object, msgtype: str | None = None, config: CommandConfig | None = None, stamp_ns: int = 0
) -> Command:
    """Steering and velocity from a command message.

    ``msgtype`` (``"geometry_msgs/msg/Twist"`` or ``"geometry_msgs/Twist"``) picks the mapping; when None it is read
    from the message's ``__msgtype__`` (rosbags messages carry it).

    Raises:
        CommandError: an unsupported type, a missing Joy axis, or values that are not finite.
    """
    cfg = config or CommandConfig()
    if msgtype is None:
        msgtype = getattr(msg, "__msgtype__", None)
        if msgtype is None:
            raise CommandError(f"cannot tell the type of a {type(msg).__name__}; pass msgtype")
    kind = normalize_msgtype(msgtype)
    try:
        if kind in (TWIST, TWIST_STAMPED):
            twist = msg.twist if kind == TWIST_STAMPED else msg  # type: ignore[attr-defined]
            steering = float(twist.angular.z) * cfg.twist_steering_scale
            velocity = float(twist.linear.x) * cfg.twist_velocity_scale
        elif kind == JOY:
            axes = list(msg.axes)  # type: ignore[attr-defined]
            for field in ("joy_steering_axis", "joy_velocity_axis"):
                if getattr(cfg, field) >= len(axes):
                    raise CommandError(
                        f"Joy message has {len(axes)} axes; {field} {getattr(cfg, field)} is out of range"
                    )
            steering = float(axes[cfg.joy_steering_axis]) * cfg.joy_steering_scale
            velocity = float(axes[cfg.joy_velocity_axis]) * cfg.joy_velocity_scale
        elif kind in (ACKERMANN, ACKERMANN_STAMPED):
            drive = msg.drive if kind == ACKERMANN_STAMPED else msg  # type: ignore[attr-defined]
            steering = float(drive.steering_angle) / cfg.ackermann_max_steering_angle
            velocity = float(drive.speed)
        else:
            raise CommandError(f"unsupported command type {msgtype!r} (supported: {', '.join(COMMAND_TYPES)})")
    except AttributeError as exc:
        raise CommandError(f"{msgtype} message lacks a field: {exc}") from exc
    if not (math.isfinite(steering) and math.isfinite(velocity)):
        raise CommandError(f"{msgtype} gives non-finite steering {steering} / velocity {velocity}")
    if cfg.clip_steering:
        steering = max(-1.0, min(1.0, steering))
    return Command(steering=steering, velocity=velocity, stamp_ns=int(stamp_ns))
