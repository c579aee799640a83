"""The car's output adapter without ROS: the stack's CAR command -> what a real car's controller reads.

vehicle_adapter_node (:mod:`lnn_control.nodes.vehicle_adapter`) reads the mux's :data:`~lnn_control.command.CAR`
command: ``steering`` normalised to [-1, 1], positive left (REP 103), and ``velocity``, the target forward speed in
m/s. ``cmd_vel`` carries the steering in ``Twist.angular.z``, where every other Twist consumer (ros2_controllers'
diff_drive and steering controllers, nav2, Gazebo's plugins) reads a yaw rate in rad/s: so the stack's ``cmd_vel``
must never go to a vehicle unconverted. ``mode`` says what the vehicle wants (the sources are cited by
:func:`setpoint`):

- ``ackermann``: ``ackermann_msgs/AckermannDriveStamped`` (F1TENTH, VESC drivers, CARLA): the steering angle of a
  virtual front wheel in rad, ``steering * max_steering_angle``, positive left, and the speed in m/s;
- ``twist_yaw_rate``: a Twist whose ``linear.x`` is the speed and ``angular.z`` the yaw rate of a kinematic
  bicycle with that steering angle, ``v * tan(delta) / wheelbase`` (rad/s): for diff-drive and nav2-style consumers;
- ``normalised``: the command as it is (``linear.x`` = speed, ``angular.z`` = normalised steering), for the
  simulators, which map +1 to full lock themselves.

The rules (:class:`VehicleRules`), on plain numbers and integer nanoseconds of the node clock, so the tests run them
in simulated time; every one fails towards a stop (speed 0, wheels straight):

1. ``invalid_command``: the latest command had a NaN or infinite value; the car stops until a finite one arrives;
2. ``no_command``: no command for ``timeout`` seconds (or none yet): the car stops;
3. otherwise the command goes out: steering clamped to [-1, 1], speed to ``[-max_speed, max_speed]`` (the names of
   the limits that acted are in :attr:`Decision.acting`).

Each command is converted and sent when it arrives; the timer (``rate`` Hz) repeats the last one when nothing was
sent since its previous tick, and sends the stop once the timeout has passed, so a controller with a watchdog of
its own keeps being fed and a vanished stack stops the car.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from lnn_control.ros.node_util import param

ACKERMANN, TWIST_YAW_RATE, NORMALISED = "ackermann", "twist_yaw_rate", "normalised"
MODES = (ACKERMANN, TWIST_YAW_RATE, NORMALISED)

OK, INVALID, NO_COMMAND = "ok", "invalid_command", "no_command"
#: Every state a step can end in; all but ``ok`` send the stop.
STATES = (OK, INVALID, NO_COMMAND)
#: The limits that may act on a command, in :attr:`Decision.acting`.
STEERING_LIMIT, SPEED_LIMIT = "steering", "speed"

#: What a stopped state says, for logs.
STOP_REASONS = {
    INVALID: "the latest command was refused (not finite)",
    NO_COMMAND: "no command within the timeout",
}


# ---------------------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VehicleAdapterConfig:
    """Parameters of vehicle_adapter_node (config/vehicle_adapter.yaml)."""

    mode: str = param(
        ACKERMANN,
        "what the vehicle reads: ackermann (AckermannDriveStamped on drive: steering angle rad, speed m/s), "
        "twist_yaw_rate (Twist on vehicle/cmd_vel: linear.x m/s, angular.z = v tan(delta) / wheelbase rad/s) or "
        "normalised (Twist on vehicle/cmd_vel: the command as it is, for simulators)",
        choices=MODES,
    )
    stamped: bool = param(True, "the cmd_vel input is geometry_msgs/TwistStamped, as the mux sends it (false: Twist)")
    output_stamped: bool = param(
        True, "twist modes: vehicle/cmd_vel is TwistStamped (Jazzy's diff_drive_controller reads only that) or Twist"
    )
    frame_id: str = param("base_link", "header frame_id of what the node sends")
    wheelbase: float = param(0.33, "m: front to rear axle (F1TENTH: 0.33); twist_yaw_rate only", min=0.01, max=20.0)
    max_steering_angle: float = param(
        0.4, "rad: the virtual front wheel's angle at steering +1 (full left lock; F1TENTH about 0.4)",
        min=0.01, max=1.5,
    )
    max_speed: float = param(2.0, "m/s: largest speed either way; faster commands are clamped", min=0.0, max=100.0)
    steering_angle_velocity: float = param(
        0.0, "ackermann: rad/s sent as steering_angle_velocity (0: as fast as the controller can)", min=0.0, max=100.0
    )
    acceleration: float = param(
        0.0, "ackermann: m/s^2 sent as acceleration (0: as fast as the controller can)", min=0.0, max=100.0
    )
    jerk: float = param(0.0, "ackermann: m/s^3 sent as jerk (0: as fast as the controller can)", min=0.0, max=1000.0)
    rate: float = param(20.0, "Hz: the last command is repeated (or the stop sent) this often", min=1.0, max=200.0)
    timeout: float = param(0.5, "s without a command before the car is told to stop", min=0.01, max=10.0)
    status_period: float = param(1.0, "s between repeats of ~/status (it is also sent on change)",
                                 min=0.05, max=3600.0)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"parameter 'mode' must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not (math.isfinite(self.wheelbase) and self.wheelbase > 0):
            raise ValueError(f"parameter 'wheelbase' must be > 0 m, got {self.wheelbase!r}")
        if not 0 < self.max_steering_angle < math.pi / 2:
            raise ValueError(
                f"parameter 'max_steering_angle' must be in (0, pi/2) rad, got {self.max_steering_angle!r}"
            )
        for name in ("max_speed", "steering_angle_velocity", "acceleration", "jerk"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"parameter {name!r} must be a finite number >= 0, got {value!r}")
        for name in ("rate", "timeout", "status_period"):
            if not getattr(self, name) > 0:
                raise ValueError(f"parameter {name!r} must be > 0, got {getattr(self, name)!r}")

    def replace(self, **changes: object) -> VehicleAdapterConfig:
        """A copy with some fields changed (checked again)."""
        return VehicleAdapterConfig(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **changes})


# ---------------------------------------------------------------------------------------------------------------------
# Conversions
#
# Sources read:
# - ros-drivers/ackermann_msgs (ros2 branch), msg/AckermannDrive.msg: steering_angle is the yaw of a virtual wheel at
#   the centre of the front axle, rad, positive left; speed in m/s, negative reverses; steering_angle_velocity,
#   acceleration and jerk are limits where 0 means "as fast as possible". AckermannDriveStamped adds a Header.
# - f1tenth/f1tenth_system (humble), vesc_ackermann's ackermann_to_vesc: reads AckermannDriveStamped on
#   ackermann_cmd (the F1TENTH stack's mux publishes it from drive), speed in m/s, steering_angle in rad.
# - ros-controls/ros2_controllers (jazzy), diff_drive_controller: ~/cmd_vel is geometry_msgs/TwistStamped only,
#   linear.x m/s and angular.z rad/s; steering_controllers_library reads the same twist as a body velocity and a
#   yaw rate (bicycle model), which is what twist_yaw_rate sends.
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setpoint:
    """What goes to the vehicle, in every mode's terms: speed (m/s), steering angle (rad, + left), the normalised
    steering it came from, and the bicycle yaw rate (rad/s) at that speed and angle."""

    speed: float
    steering_angle: float
    steering: float
    yaw_rate: float

    def twist(self, mode: str) -> tuple[float, float]:
        """``(linear.x, angular.z)`` of a twist mode: the yaw rate for ``twist_yaw_rate``, the normalised steering
        for ``normalised``."""
        if mode == TWIST_YAW_RATE:
            return self.speed, self.yaw_rate
        if mode == NORMALISED:
            return self.speed, self.steering
        raise ValueError(f"mode {mode!r} sends no twist (twist modes: {TWIST_YAW_RATE}, {NORMALISED})")

    @property
    def is_stop(self) -> bool:
        return self.speed == 0.0 and self.steering == 0.0


#: Speed 0, wheels straight.
STOP = Setpoint(0.0, 0.0, 0.0, 0.0)


def steering_angle(steering: float, max_steering_angle: float) -> float:
    """The virtual front wheel's angle (rad, + left) of a normalised steering in [-1, 1]."""
    return steering * max_steering_angle


def bicycle_yaw_rate(speed: float, angle: float, wheelbase: float) -> float:
    """The yaw rate (rad/s, counter-clockwise) of a kinematic bicycle: ``speed * tan(angle) / wheelbase``; negative
    speed (reversing) turns the other way."""
    return speed * math.tan(angle) / wheelbase


def setpoint(steering: float, velocity: float, config: VehicleAdapterConfig) -> tuple[Setpoint, tuple[str, ...]]:
    """The vehicle setpoint of a finite CAR command within the limits, and the names of the limits that acted."""
    acting = []
    if abs(steering) > 1.0:
        steering = math.copysign(1.0, steering)
        acting.append(STEERING_LIMIT)
    if abs(velocity) > config.max_speed:
        velocity = math.copysign(config.max_speed, velocity)
        acting.append(SPEED_LIMIT)
    angle = steering_angle(steering, config.max_steering_angle)
    speed = velocity + 0.0  # -0.0 -> 0.0
    return Setpoint(speed, angle, steering + 0.0, bicycle_yaw_rate(speed, angle, config.wheelbase)), tuple(acting)


# ---------------------------------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What one step decided: the setpoint to send, why (``state``), the limits that acted, the header stamp (ns)
    to send it with, and the state before it."""

    setpoint: Setpoint
    state: str
    acting: tuple[str, ...]
    stamp_ns: int
    previous: str

    @property
    def stopped(self) -> bool:
        return self.state != OK

    @property
    def changed(self) -> bool:
        """The state differs from the previous step's (the first step counts as a change)."""
        return self.state != self.previous


class VehicleRules:
    """The adapter's rules on plain values; see the module docstring. Times are integer ns of the node clock."""

    def __init__(self, config: VehicleAdapterConfig) -> None:
        self.config = config
        self.timeout_ns = int(config.timeout * 1e9)
        self.latest: tuple[float, float] | None = None  # (steering, velocity) of the latest finite command
        self.latest_ns: int | None = None  # node time it arrived
        self.latest_stamp_ns = 0  # its header stamp (0: none)
        self.problem: str | None = None
        self.state = ""
        self.commands = 0
        self.refused = 0
        self._sent_since_tick = False

    def on_command(self, steering: float, velocity: float, now_ns: int, stamp_ns: int = 0) -> str | None:
        """A command arrived at ``now_ns`` (header stamp ``stamp_ns``, 0 for a Twist); why it is refused (the car
        then stops until a finite one arrives), else None."""
        self.commands += 1
        self.latest_ns = int(now_ns)
        if not (math.isfinite(steering) and math.isfinite(velocity)):
            self.refused += 1
            self.latest = None
            self.problem = f"non-finite value in the command (steering {steering}, velocity {velocity})"
            return self.problem
        self.latest, self.problem, self.latest_stamp_ns = (float(steering), float(velocity)), None, int(stamp_ns)
        return None

    def reason(self, now_ns: int) -> str:
        """The state at ``now_ns``: ``invalid_command``, ``no_command`` or ``ok``."""
        age = None if self.latest_ns is None else now_ns - self.latest_ns
        fresh = age is not None and 0 <= age <= self.timeout_ns  # a clock that went back counts as stale
        if self.problem is not None and fresh:
            return INVALID
        if self.latest is None or not fresh:
            return NO_COMMAND
        return OK

    def step(self, now_ns: int) -> Decision:
        """What to send at ``now_ns`` (the node sends it at once): the command's setpoint, or the stop. A setpoint
        carries its command's header stamp where it had one, the stop and unstamped commands ``now_ns``."""
        previous, state = self.state, self.reason(now_ns)
        self.state = state
        if state != OK:
            return Decision(STOP, state, (), int(now_ns), previous)
        assert self.latest is not None
        point, acting = setpoint(*self.latest, self.config)
        return Decision(point, state, acting, self.latest_stamp_ns or int(now_ns), previous)

    def stop_decision(self, now_ns: int) -> Decision:
        """The stop, stamped ``now_ns``, whatever the state (the node sends it once more when it shuts down)."""
        return Decision(STOP, self.state or NO_COMMAND, (), int(now_ns), self.state)

    def on_command_step(self, now_ns: int) -> Decision:
        """:meth:`step` for the answer to a command that just arrived (it counts as sent for the next tick)."""
        self._sent_since_tick = True
        return self.step(now_ns)

    def tick(self, now_ns: int) -> Decision | None:
        """The timer's step: None when a command's answer went out since the previous tick and the state holds (no
        repeat needed), else what to send (the last command again, or the stop)."""
        sent, self._sent_since_tick = self._sent_since_tick, False
        if sent and self.reason(now_ns) == self.state:
            return None
        return self.step(now_ns)
