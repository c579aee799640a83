"""The drone output adapter without ROS: frame conversions for MAVROS and PX4, and the safety rules.

drone_adapter_node (:mod:`lnn_control.nodes.drone_adapter`) turns the stack's :data:`~lnn_control.command.DRONE`
command (``vx, vy, vz`` m/s in body FLU, ``yaw_rate`` rad/s counter-clockwise, REP 103) into an autopilot
setpoint. Everything it decides lives here, on plain numbers and integer nanoseconds of the node clock, so the tests
run it in simulated time.

Frames (the sources read are cited where the conversions are):

- odometry is a ``nav_msgs/Odometry`` in a REP 105 world frame, ENU (x east, y north, z up), orientation of the
  body FLU frame: what MAVROS publishes on ``/mavros/local_position/odom``. :class:`Pose` keeps its position and yaw
  (counter-clockwise from east).
- MAVROS, ``mavros_frame: local_enu``: the setpoint_velocity plugin reads ``~/cmd_vel`` (TwistStamped) as a world
  ENU velocity and an ENU yaw rate, and converts both to NED itself, unless its ``mav_frame`` parameter says
  otherwise (default ``LOCAL_NED``). The body command is rotated by the odometry yaw (:func:`body_to_enu`).
- MAVROS, ``mavros_frame: body``: with the plugin's ``mav_frame`` set to ``BODY_NED`` it reads the twist as body
  FLU (base_link) and converts it to FRD; the command then goes out as it is and needs no odometry.
- PX4 over uXRCE-DDS: ``px4_msgs/TrajectorySetpoint`` has velocity in the NED local world frame and ``yawspeed``
  about NED's z axis (down), so clockwise-positive: :func:`body_to_ned` with the NED heading from
  :func:`ned_yaw_from_enu`. Fields that are not controlled are NaN.

The rules (:class:`DroneRules`), evaluated on every timer tick (:meth:`DroneRules.step`); any of the first four
gives a hover (zero velocity and yaw rate), in this order:

1. ``e_stop``: engaged by the topic or the service, **latched**: only the service releases it; the command held
   before it is dropped, so only a command that arrives after the release moves the vehicle again;
2. ``invalid_command``: the latest command had a NaN or infinite value, a value outside the schema's hard bounds,
   a roll or pitch rate (not a drone command), or a stamped frame other than ``command_frame``;
3. ``no_command``: no command for ``timeout`` seconds (or none yet);
4. ``no_odometry``: odometry is needed (a geofence, or a setpoint in a world frame) and none arrived within
   ``odom_timeout``;
5. otherwise the command is limited: horizontal speed (the vector's norm, direction kept), climb and descent
   speeds, yaw rate; then a rate limit on each against what went out last (horizontal and vertical acceleration,
   yaw acceleration); the geofence removes the velocity components pointing out of the fence (radius around the
   home point, floor, ceiling) once the vehicle is within ``geofence_margin`` of it or outside, and keeps those
   pointing back in. The fence acts before the rate limit (the ramp heads for what the fence allows) and again
   after it, so that no ramp carries an outward part over the fence. A hover is immediate (the autopilot's own
   acceleration limits shape the stop) and the rate limit starts again from zero.

Nothing here arms the vehicle or changes its flight mode.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

from lnn_control.command import DRONE, Command
from lnn_control.ros.node_util import param

MAVROS, PX4 = "mavros", "px4"
OUTPUTS = (MAVROS, PX4)
LOCAL_ENU, BODY = "local_enu", "body"
MAVROS_FRAMES = (LOCAL_ENU, BODY)

OK, E_STOP, INVALID, NO_COMMAND, NO_ODOMETRY = "ok", "e_stop", "invalid_command", "no_command", "no_odometry"
#: Every state a step can end in; all but ``ok`` are a hover.
STATES = (OK, E_STOP, INVALID, NO_COMMAND, NO_ODOMETRY)

#: The names of the limits that may act on a command, in :attr:`Decision.acting`.
SPEED, CLIMB, DESCENT, YAW_RATE = "speed", "climb", "descent", "yaw_rate"
ACCEL, VERTICAL_ACCEL, YAW_ACCEL = "accel", "vertical_accel", "yaw_accel"
FENCE_RADIUS, FENCE_CEILING, FENCE_FLOOR = "fence_radius", "fence_ceiling", "fence_floor"

#: A rate limit never allows more than this many timer periods of change at once (a stalled timer).
MAX_STEP_PERIODS = 2.0


# ---------------------------------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BodyVelocity:
    """A velocity in body FLU (m/s: forward, left, up) with a yaw rate (rad/s, counter-clockwise)."""

    vx: float = 0.0
    vy: float = 0.0
    vz: float = 0.0
    yaw_rate: float = 0.0

    @classmethod
    def of(cls, command: Command | Sequence[float]) -> BodyVelocity:
        """From a DRONE :class:`Command` or its four values in schema order."""
        values = command.values if isinstance(command, Command) else tuple(command)
        return cls(*(float(v) for v in values))

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.vx, self.vy, self.vz, self.yaw_rate)

    @property
    def is_zero(self) -> bool:
        return not any(self.as_tuple())


#: Zero velocity and yaw rate.
HOVER = BodyVelocity()


@dataclass(frozen=True)
class Pose:
    """Where the vehicle is, in the odometry's ENU world frame: position (m) and yaw (rad, CCW from east)."""

    x: float
    y: float
    z: float
    yaw: float

    def is_finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.x, self.y, self.z, self.yaw))


@dataclass(frozen=True)
class WorldVelocity:
    """A velocity in an ENU world frame (m/s: east, north, up) with a yaw rate about up (rad/s, CCW)."""

    east: float
    north: float
    up: float
    yaw_rate: float


@dataclass(frozen=True)
class NedVelocity:
    """A velocity in the NED world frame (m/s: north, east, down) with a yaw rate about down (rad/s, clockwise)."""

    north: float
    east: float
    down: float
    yawspeed: float


# ---------------------------------------------------------------------------------------------------------------------
# Conversions
#
# Sources read:
# - MAVROS 2.12.0 (mavlink/mavros, ros2 branch), mavros/src/plugins/setpoint_velocity.cpp: the plugin declares the
#   parameter mav_frame (default "LOCAL_NED") and subscribes ~/cmd_vel (TwistStamped) and ~/cmd_vel_unstamped
#   (Twist) with sensor-data QoS. For LOCAL_NED it converts the linear part with ftf::transform_frame_enu_ned (the
#   twist is a world ENU velocity) and the yaw rate with the ENU<->NED reflection (angular.z is CCW about up);
#   for BODY_NED or BODY_OFFSET_NED it converts both with transform_frame_baselink_aircraft (the twist is body
#   FLU, sent as FRD). So local_enu here rotates by the odometry yaw, body sends FLU and needs mav_frame:=BODY_NED.
# - Same repository, mavros/src/plugins/local_position.cpp: ~/odom is a nav_msgs/Odometry (sensor-data QoS) in
#   frame_id "map" (ENU) with child base_link (FLU): the pose this adapter reads.
# - PX4/px4_msgs main, msg/TrajectorySetpoint.msg: position, velocity, acceleration in the NED local world frame,
#   yawspeed about the NED z axis, NaN for what is not controlled, timestamp in microseconds; msg/
#   OffboardControlMode.msg: the position/velocity/... flags.
# - PX4 user guide, "Offboard Mode" (docs.px4.io): the OffboardControlMode stream is the proof of life, needed
#   before switching to offboard and kept above 2 Hz; "ROS 2 Offboard Control Example" and px4_ros_com's
#   offboard_control.py: no implicit ENU/NED conversion, /fmu/in topics with best-effort, transient-local QoS of
#   depth 1, timestamps from the node clock in microseconds.
# ---------------------------------------------------------------------------------------------------------------------


def wrap_angle(angle: float) -> float:
    """``angle`` in [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def yaw_from_quaternion(x: float, y: float, z: float, w: float) -> float:
    """The yaw (rotation about z, rad) of a unit quaternion, as in a ZYX (yaw, pitch, roll) decomposition."""
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def ned_yaw_from_enu(yaw_enu: float) -> float:
    """The NED heading (clockwise from north) of an ENU yaw (counter-clockwise from east)."""
    return wrap_angle(math.pi / 2.0 - yaw_enu)


def body_to_enu(v: BodyVelocity, yaw: float) -> WorldVelocity:
    """A body FLU velocity in the ENU world frame of a vehicle whose ENU yaw is ``yaw``.

    Forward points along ``(cos yaw, sin yaw)`` and left along ``(-sin yaw, cos yaw)``; up and the yaw rate are
    the same in both frames for a level vehicle (roll and pitch are the autopilot's business).
    """
    c, s = math.cos(yaw), math.sin(yaw)
    return WorldVelocity(v.vx * c - v.vy * s, v.vx * s + v.vy * c, v.vz, v.yaw_rate)


def enu_to_body(w: WorldVelocity, yaw: float) -> BodyVelocity:
    """The inverse of :func:`body_to_enu`."""
    c, s = math.cos(yaw), math.sin(yaw)
    return BodyVelocity(w.east * c + w.north * s, -w.east * s + w.north * c, w.up, w.yaw_rate)


def body_to_ned(v: BodyVelocity, heading: float) -> NedVelocity:
    """A body FLU velocity in the NED world frame of a vehicle whose NED heading is ``heading``.

    In FRD the command is ``(vx, -vy, -vz)``; rotating FRD by the heading about down gives
    ``north = f cos h - r sin h`` and ``east = f sin h + r cos h`` with ``r = -vy``, so
    ``north = vx cos h + vy sin h``, ``east = vx sin h - vy cos h``, ``down = -vz``; the yaw rate changes sign
    (about down instead of up).
    """
    c, s = math.cos(heading), math.sin(heading)
    return NedVelocity(v.vx * c + v.vy * s, v.vx * s - v.vy * c, -v.vz, -v.yaw_rate)


@dataclass(frozen=True)
class MavrosSetpoint:
    """What goes into the ``geometry_msgs/TwistStamped`` on MAVROS's ``setpoint_velocity/cmd_vel``."""

    linear: tuple[float, float, float]
    angular_z: float
    frame_id: str


def mavros_setpoint(v: BodyVelocity, mavros_frame: str, yaw: float | None = None) -> MavrosSetpoint:
    """The MAVROS twist of a body command: rotated into ENU by the odometry ``yaw`` for ``local_enu`` (the plugin's
    default ``mav_frame: LOCAL_NED``), unchanged for ``body`` (``mav_frame: BODY_NED``). A hover needs no yaw."""
    if mavros_frame == BODY:
        return MavrosSetpoint((v.vx, v.vy, v.vz), v.yaw_rate, "base_link")
    if mavros_frame != LOCAL_ENU:
        raise ValueError(f"mavros_frame must be one of {', '.join(MAVROS_FRAMES)}, got {mavros_frame!r}")
    if yaw is None:
        if not v.is_zero:
            raise ValueError("a local_enu setpoint other than hover needs the vehicle's yaw")
        yaw = 0.0
    w = body_to_enu(v, yaw)
    return MavrosSetpoint((w.east, w.north, w.up), w.yaw_rate, "map")


@dataclass(frozen=True)
class Px4Setpoint:
    """The fields of a ``px4_msgs/TrajectorySetpoint`` for velocity control (NaN: not controlled)."""

    timestamp: int
    position: tuple[float, float, float]
    velocity: tuple[float, float, float]
    acceleration: tuple[float, float, float]
    yaw: float
    yawspeed: float


#: The ``px4_msgs/OffboardControlMode`` flags of velocity control (the heartbeat PX4 needs at more than 2 Hz).
PX4_OFFBOARD_MODE = {
    "position": False,
    "velocity": True,
    "acceleration": False,
    "attitude": False,
    "body_rate": False,
    "thrust_and_torque": False,
    "direct_actuator": False,
}


def px4_setpoint(v: BodyVelocity, yaw_enu: float | None, timestamp_us: int) -> Px4Setpoint:
    """The PX4 trajectory setpoint of a body command, given the ENU yaw from odometry (a hover needs none)."""
    if yaw_enu is None:
        if not v.is_zero:
            raise ValueError("a PX4 setpoint other than hover needs the vehicle's yaw")
        yaw_enu = 0.0
    ned = body_to_ned(v, ned_yaw_from_enu(yaw_enu))
    nan3 = (math.nan, math.nan, math.nan)
    return Px4Setpoint(int(timestamp_us), nan3, (ned.north, ned.east, ned.down), nan3, math.nan, ned.yawspeed)


# ---------------------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DroneAdapterConfig:
    """Parameters of drone_adapter_node (config/drone_adapter.yaml)."""

    output: str = param(MAVROS, "the autopilot interface the setpoints go to", choices=OUTPUTS)
    mavros_frame: str = param(
        LOCAL_ENU,
        "MAVROS only: local_enu rotates the command into ENU with the odometry yaw (setpoint_velocity's default "
        "mav_frame LOCAL_NED); body sends it in base_link FLU unrotated (needs mav_frame BODY_NED)",
        choices=MAVROS_FRAMES,
    )
    mavros_topic: str = param("/mavros/setpoint_velocity/cmd_vel", "MAVROS: the TwistStamped setpoint topic")
    px4_namespace: str = param(
        "/fmu/in", "PX4: the namespace of trajectory_setpoint and offboard_control_mode (uXRCE-DDS)"
    )
    stamped: bool = param(True, "the cmd_vel input is geometry_msgs/TwistStamped (false: Twist)")
    command_frame: str = param(
        "base_link", "the only header frame_id a stamped command may carry (an empty one is taken as this)"
    )
    odom_topic: str = param("/mavros/local_position/odom", "nav_msgs/Odometry in an ENU world frame (REP 105)")
    rate: float = param(20.0, "Hz at which the setpoint (and PX4's heartbeat) is published", min=5.0, max=200.0)
    timeout: float = param(0.5, "seconds without a command before the vehicle is told to hover", min=0.01, max=10.0)
    odom_timeout: float = param(
        0.5, "seconds without odometry before it counts as stale (hover, when odometry is needed)", min=0.01, max=10.0
    )
    max_speed: float = param(2.0, "m/s: largest horizontal speed (norm of vx, vy; the direction is kept)",
                             min=0.0, max=10.0)
    max_climb: float = param(1.0, "m/s: largest upward speed", min=0.0, max=5.0)
    max_descent: float = param(1.0, "m/s: largest downward speed", min=0.0, max=5.0)
    max_yaw_rate: float = param(1.0, "rad/s: largest yaw rate either way", min=0.0, max=math.pi)
    max_accel: float = param(2.0, "m/s^2: largest change of the horizontal velocity per second; 0: none",
                             min=0.0, max=50.0)
    max_vertical_accel: float = param(1.0, "m/s^2: largest change of the vertical speed per second; 0: none",
                                      min=0.0, max=50.0)
    max_yaw_accel: float = param(2.0, "rad/s^2: largest change of the yaw rate per second; 0: none",
                                 min=0.0, max=50.0)
    geofence: bool = param(True, "keep the vehicle inside the fence below (needs odometry)")
    home_x: float = param(0.0, "m: x (east) of the fence's centre in the odometry frame", min=-1e6, max=1e6)
    home_y: float = param(0.0, "m: y (north) of the fence's centre in the odometry frame", min=-1e6, max=1e6)
    geofence_radius: float = param(20.0, "m: horizontal radius of the fence around home", min=0.5, max=1e5)
    geofence_floor: float = param(0.3, "m: lowest z (up) in the odometry frame", min=-1e4, max=1e4)
    geofence_ceiling: float = param(10.0, "m: highest z (up) in the odometry frame", min=-1e4, max=1e4)
    geofence_margin: float = param(
        0.5, "m: the fence acts this far inside its bounds (leave the braking distance)", min=0.0, max=100.0
    )
    e_stop_on_start: bool = param(False, "start with the emergency stop engaged (released only by the service)")
    status_period: float = param(1.0, "seconds between repeats of ~/status (it is also sent on change)",
                                 min=0.05, max=3600.0)

    def __post_init__(self) -> None:
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {self.output!r}")
        if self.mavros_frame not in MAVROS_FRAMES:
            raise ValueError(f"mavros_frame must be one of {', '.join(MAVROS_FRAMES)}, got {self.mavros_frame!r}")
        low, high = self.geofence_floor + self.geofence_margin, self.geofence_ceiling - self.geofence_margin
        if self.geofence and not low < high:
            raise ValueError(
                f"geofence: floor + margin ({self.geofence_floor:g} + {self.geofence_margin:g}) must be below "
                f"ceiling - margin ({self.geofence_ceiling:g} - {self.geofence_margin:g})"
            )
        if self.geofence and self.geofence_margin >= self.geofence_radius:
            raise ValueError(
                f"geofence_margin ({self.geofence_margin:g}) must be smaller than geofence_radius "
                f"({self.geofence_radius:g})"
            )

    @property
    def needs_yaw(self) -> bool:
        """Whether the setpoint is in a world frame (PX4, or MAVROS ``local_enu``): moving needs the yaw."""
        return self.output == PX4 or self.mavros_frame == LOCAL_ENU

    @property
    def needs_odometry(self) -> bool:
        """Whether moving needs fresh odometry (a geofence or a world-frame setpoint)."""
        return self.geofence or self.needs_yaw

    def replace(self, **changes: object) -> DroneAdapterConfig:
        """A copy with some fields changed (checked again)."""
        return DroneAdapterConfig(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **changes})


# ---------------------------------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------------------------------


def command_problem(
    values: Sequence[float], *, frame_id: str = "", command_frame: str = "base_link", unused: Sequence[float] = ()
) -> str | None:
    """Why a command must not fly (a sentence), or None when it may.

    ``values`` are the four DRONE fields; ``unused`` the Twist fields a drone command leaves at zero (roll and pitch
    rates); ``frame_id`` the header frame of a stamped command ("" for Twist).
    """
    if len(values) != len(DRONE):
        return f"a drone command has {len(DRONE)} values ({', '.join(DRONE.names)}), got {len(values)}"
    every = (*values, *unused)
    if not all(math.isfinite(v) for v in every):
        return f"non-finite value in the command ({', '.join(f'{v:g}' for v in every)})"
    for f, v in zip(DRONE.fields, values):
        lo, hi = f.bounds
        if not lo <= v <= hi:
            return f"{f.name} = {v:g} {f.unit} is outside its bounds [{lo:g}, {hi:g}]"
    if any(v != 0.0 for v in unused):
        return f"roll/pitch rates ({', '.join(f'{v:g}' for v in unused)}) are not drone commands"
    if frame_id and frame_id != command_frame:
        return f"command in frame {frame_id!r}, expected {command_frame!r} (body FLU)"
    return None


def clamp_velocity(v: BodyVelocity, config: DroneAdapterConfig) -> tuple[BodyVelocity, tuple[str, ...]]:
    """The command within the speed, climb, descent and yaw-rate limits, and the names of those that acted."""
    acting = []
    vx, vy, vz, yaw_rate = v.as_tuple()
    speed = math.hypot(vx, vy)
    if speed > config.max_speed:
        scale = config.max_speed / speed
        vx, vy = vx * scale, vy * scale
        acting.append(SPEED)
    if vz > config.max_climb:
        vz = config.max_climb
        acting.append(CLIMB)
    elif vz < -config.max_descent:
        vz = -config.max_descent
        acting.append(DESCENT)
    if abs(yaw_rate) > config.max_yaw_rate:
        yaw_rate = math.copysign(config.max_yaw_rate, yaw_rate)
        acting.append(YAW_RATE)
    return BodyVelocity(vx, vy, vz, yaw_rate), tuple(acting)


def _step_towards(previous: float, target: float, max_change: float) -> float:
    return previous + max(-max_change, min(max_change, target - previous))


def rate_limit(
    target: BodyVelocity, previous: BodyVelocity, dt: float, config: DroneAdapterConfig
) -> tuple[BodyVelocity, tuple[str, ...]]:
    """``target`` reached from ``previous`` within ``dt`` seconds of the acceleration limits (0: none), and the
    names of those that acted. The horizontal change is limited as a vector (its direction kept)."""
    acting = []
    vx, vy, vz, yaw_rate = target.as_tuple()
    if config.max_accel > 0:
        dx, dy = vx - previous.vx, vy - previous.vy
        change, allowed = math.hypot(dx, dy), config.max_accel * dt
        if change > allowed:
            scale = allowed / change
            vx, vy = previous.vx + dx * scale, previous.vy + dy * scale
            acting.append(ACCEL)
    if config.max_vertical_accel > 0 and abs(vz - previous.vz) > config.max_vertical_accel * dt:
        vz = _step_towards(previous.vz, vz, config.max_vertical_accel * dt)
        acting.append(VERTICAL_ACCEL)
    if config.max_yaw_accel > 0 and abs(yaw_rate - previous.yaw_rate) > config.max_yaw_accel * dt:
        yaw_rate = _step_towards(previous.yaw_rate, yaw_rate, config.max_yaw_accel * dt)
        acting.append(YAW_ACCEL)
    return BodyVelocity(vx, vy, vz, yaw_rate), tuple(acting)


def apply_geofence(
    v: BodyVelocity, pose: Pose, config: DroneAdapterConfig
) -> tuple[BodyVelocity, tuple[str, ...]]:
    """The command without its components pointing out of the fence, where the vehicle is within the margin of a
    bound or beyond it, and the names of the bounds that acted. Components pointing back in are kept."""
    w = body_to_enu(v, pose.yaw)
    east, north, up = w.east, w.north, w.up
    acting = []
    dx, dy = pose.x - config.home_x, pose.y - config.home_y
    distance = math.hypot(dx, dy)
    if distance > 0 and distance >= config.geofence_radius - config.geofence_margin:
        nx, ny = dx / distance, dy / distance
        outward = east * nx + north * ny
        if outward > 0:
            east, north = east - outward * nx, north - outward * ny
            acting.append(FENCE_RADIUS)
    if up > 0 and pose.z >= config.geofence_ceiling - config.geofence_margin:
        up = 0.0
        acting.append(FENCE_CEILING)
    elif up < 0 and pose.z <= config.geofence_floor + config.geofence_margin:
        up = 0.0
        acting.append(FENCE_FLOOR)
    if not acting:
        return v, ()
    return enu_to_body(WorldVelocity(east, north, up, w.yaw_rate), pose.yaw), tuple(acting)


@dataclass(frozen=True)
class Decision:
    """What one step decided: the body velocity to send, why (``state``), which limits acted, the pose it used
    (None without fresh odometry), the step's time and the state before it."""

    velocity: BodyVelocity
    state: str
    acting: tuple[str, ...]
    pose: Pose | None
    stamp_ns: int
    previous: str

    @property
    def hover(self) -> bool:
        return self.state != OK

    @property
    def changed(self) -> bool:
        """The state differs from the previous step's (the first step counts as a change)."""
        return self.state != self.previous

    @property
    def yaw(self) -> float | None:
        return None if self.pose is None else self.pose.yaw


class DroneRules:
    """The adapter's rules on plain values; see the module docstring. Times are integer ns of the node clock."""

    def __init__(self, config: DroneAdapterConfig) -> None:
        self.config = config
        self.timeout_ns = int(config.timeout * 1e9)
        self.odom_timeout_ns = int(config.odom_timeout * 1e9)
        self.period_s = 1.0 / config.rate
        self.e_stop = bool(config.e_stop_on_start)
        self.latest: BodyVelocity | None = None
        self.latest_ns: int | None = None
        self.problem: str | None = None  # why the latest command was refused
        self.pose: Pose | None = None
        self.pose_ns: int | None = None
        self.last_output = HOVER
        self.last_step_ns: int | None = None
        self.state = ""
        self.commands = 0
        self.refused = 0

    # -- inputs -------------------------------------------------------------------------------------------------------

    def on_command(
        self,
        command: Command | Sequence[float],
        now_ns: int,
        *,
        frame_id: str = "",
        unused: Sequence[float] = (),
    ) -> str | None:
        """A command arrived; the reason it is refused (then the vehicle hovers until a good one), else None."""
        values = command.values if isinstance(command, Command) else tuple(float(v) for v in command)
        self.commands += 1
        problem = command_problem(values, frame_id=frame_id, command_frame=self.config.command_frame, unused=unused)
        self.latest_ns = now_ns
        if problem is not None:
            self.refused += 1
            self.latest, self.problem = None, problem
            return problem
        self.latest, self.problem = BodyVelocity.of(values), None
        return None

    def on_odometry(self, pose: Pose, now_ns: int) -> str | None:
        """Odometry arrived; the reason it is ignored (not finite), else None."""
        if not pose.is_finite():
            return f"non-finite odometry ignored ({pose})"
        self.pose, self.pose_ns = pose, now_ns
        return None

    def e_stop_topic(self, engaged: bool) -> str:
        """The e_stop topic said ``engaged``: true engages (latched); false releases nothing. What happened."""
        if not engaged:
            return ("e_stop false on the topic ignored: the emergency stop is released only by the service"
                    if self.e_stop else "e_stop false on the topic: the emergency stop was not engaged")
        return self._engage()

    def e_stop_service(self, engaged: bool) -> str:
        """The service asked to engage or release the emergency stop. What happened."""
        if engaged:
            return self._engage()
        if not self.e_stop:
            return "emergency stop released (it already was)"
        self.e_stop = False
        self.latest = None  # what was commanded before or during it never flies
        return "emergency stop released; the vehicle hovers until a new command arrives"

    def _engage(self) -> str:
        if self.e_stop:
            return "emergency stop engaged (it already was)"
        self.e_stop = True
        return "emergency stop engaged"

    # -- the tick -----------------------------------------------------------------------------------------------------

    def fresh_pose(self, now_ns: int) -> Pose | None:
        """The latest odometry if it is at most ``odom_timeout`` old, else None."""
        if self.pose is None or self.pose_ns is None or not 0 <= now_ns - self.pose_ns <= self.odom_timeout_ns:
            return None
        return self.pose

    def hover_reason(self, now_ns: int, pose: Pose | None) -> str:
        """The state at ``now_ns``: the first hover rule that holds, else ``ok``."""
        if self.e_stop:
            return E_STOP
        if self.problem is not None and self._recent(now_ns):
            return INVALID
        if self.latest is None or not self._recent(now_ns):
            return NO_COMMAND
        if self.config.needs_odometry and pose is None:
            return NO_ODOMETRY
        return OK

    def _recent(self, now_ns: int) -> bool:
        return self.latest_ns is not None and 0 <= now_ns - self.latest_ns <= self.timeout_ns

    def step(self, now_ns: int) -> Decision:
        """A timer tick: the velocity to send now and why."""
        pose = self.fresh_pose(now_ns)
        state = self.hover_reason(now_ns, pose)
        dt = self.period_s if self.last_step_ns is None else (now_ns - self.last_step_ns) / 1e9
        dt = max(0.0, min(dt, MAX_STEP_PERIODS * self.period_s))
        self.last_step_ns = now_ns
        previous, self.state = self.state, state
        if state != OK:
            self.last_output = HOVER
            return Decision(HOVER, state, (), pose, now_ns, previous)
        assert self.latest is not None
        velocity, acting = clamp_velocity(self.latest, self.config)
        fenced: tuple[str, ...] = ()
        if self.config.geofence:  # the ramp heads for what the fence allows ...
            assert pose is not None
            velocity, fenced = apply_geofence(velocity, pose, self.config)
        velocity, ramped = rate_limit(velocity, self.last_output, dt, self.config)
        if self.config.geofence:  # ... and never carries an outward part over the fence
            assert pose is not None
            velocity, again = apply_geofence(velocity, pose, self.config)
            fenced += tuple(a for a in again if a not in fenced)
        self.last_output = velocity
        return Decision(velocity, OK, acting + ramped + fenced, pose, now_ns, previous)
