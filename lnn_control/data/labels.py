"""Human commands in a bag -> :class:`lnn_control.command.Command` of the run's action schema (``action``).

Supported message types, with how each maps onto the schema's fields (see ``lnn_control/command.py``):

- ``geometry_msgs/Twist`` and ``TwistStamped``, for every schema: each field from the Twist field its schema names
  (the drone: ``linear.x/y/z`` and ``angular.z``); for the car, ``steering = angular.z * twist_steering_scale``,
  ``velocity = linear.x * twist_velocity_scale`` (scales 1.0 by default: the teleop topics already carry normalised
  steering in ``angular.z`` and m/s in ``linear.x``).
- the car only, ``sensor_msgs/Joy``: ``steering = axes[joy_steering_axis] * joy_steering_scale``,
  ``velocity = axes[joy_velocity_axis] * joy_velocity_scale`` (joy axes are +1 left / up, so the default scales
  of +1 give left-positive steering and forward-positive velocity on the usual left stick).
- the car only, ``ackermann_msgs/AckermannDriveStamped`` and ``AckermannDrive`` (types read from the bag's own
  definitions):
  ``steering = steering_angle / ackermann_max_steering_angle`` (radians, left positive as in REP 103),
  ``velocity = speed``.

Steering is clipped to [-1, 1] unless ``clip_steering`` is off. A message whose values are not finite, a Joy
message without the configured axis, or a car-only type for another schema raises :class:`CommandError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lnn_control.command import CAR, ActionSchema, Command, schema_from
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
    """How command messages map onto the fields of ``action`` (see the module doc)."""

    action: str | Mapping[str, Any] = CAR.name
    """The action schema: a known name (``car``, ``drone``) or a schema in full (its ``to_dict`` form)."""
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
        schema_from(self.action)  # ValueError naming an unknown action
        if not self.ackermann_max_steering_angle > 0:
            raise ValueError(
                f"commands.ackermann_max_steering_angle must be > 0, got {self.ackermann_max_steering_angle}"
            )
        for name in ("joy_steering_axis", "joy_velocity_axis"):
            if getattr(self, name) < 0:
                raise ValueError(f"commands.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def schema(self) -> ActionSchema:
        """The action schema the labels are commands of."""
        return schema_from(self.action)


def command_from_msg(
    msg: object, msgtype: str | None = None, config: CommandConfig | None = None, stamp_ns: int = 0
) -> Command:
    """The command a command message gives, in the fields of ``config.action``.

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
    schema = cfg.schema
    try:
        if kind in (TWIST, TWIST_STAMPED):
            twist = msg.twist if kind == TWIST_STAMPED else msg  # type: ignore[attr-defined]
            command = _from_twist(twist, schema, cfg, stamp_ns)
        elif kind in (JOY, ACKERMANN, ACKERMANN_STAMPED):
            if schema.names != CAR.names:
                raise CommandError(f"{msgtype} commands map onto the car's steering and velocity; the {schema.name} "
                                   f"action ({', '.join(schema.names)}) is read from Twist or TwistStamped")
            steering, velocity = _car_values(msg, kind, cfg)
            command = CAR.of(int(stamp_ns), steering=steering, velocity=velocity)
        else:
            raise CommandError(f"unsupported command type {msgtype!r} (supported: {', '.join(COMMAND_TYPES)})")
    except AttributeError as exc:
        raise CommandError(f"{msgtype} message lacks a field: {exc}") from exc
    if not command.is_finite():
        raise CommandError(f"{msgtype} gives a non-finite command: {command.describe()}")
    if cfg.clip_steering and "steering" in schema.names:
        command = command.replace(steering=max(-1.0, min(1.0, command.steering)))
    return command


def _from_twist(twist: Any, schema: ActionSchema, cfg: CommandConfig, stamp_ns: int) -> Command:
    command = schema.from_twist(twist, int(stamp_ns))
    scales = {"steering": cfg.twist_steering_scale, "velocity": cfg.twist_velocity_scale}
    scaled = {name: command.get(name) * scale for name, scale in scales.items() if name in schema.names}
    return command.replace(**scaled) if scaled else command


def _car_values(msg: Any, kind: str, cfg: CommandConfig) -> tuple[float, float]:
    """Steering and velocity of a Joy or Ackermann message."""
    if kind == JOY:
        axes = list(msg.axes)
        for name in ("joy_steering_axis", "joy_velocity_axis"):
            if getattr(cfg, name) >= len(axes):
                raise CommandError(f"Joy message has {len(axes)} axes; {name} {getattr(cfg, name)} is out of range")
        return (float(axes[cfg.joy_steering_axis]) * cfg.joy_steering_scale,
                float(axes[cfg.joy_velocity_axis]) * cfg.joy_velocity_scale)
    drive = msg.drive if kind == ACKERMANN_STAMPED else msg
    return float(drive.steering_angle) / cfg.ackermann_max_steering_angle, float(drive.speed)
