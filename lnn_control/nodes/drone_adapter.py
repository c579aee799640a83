"""drone_adapter_node: the stack's drone command -> a velocity setpoint for a real autopilot (MAVROS or PX4).

**It never arms the vehicle and never changes its flight mode**: it has no arming or mode service clients and sends
no vehicle commands. A person (or a mission script of their own) arms and switches to OFFBOARD/GUIDED; this node
only streams setpoints, hovering whenever a rule below says so.

Inputs (topic names relative unless a parameter gives them, so remappable):

- ``cmd_vel``: the :data:`~lnn_control.command.DRONE` command, ``geometry_msgs/TwistStamped`` (header frame
  ``command_frame``; ``Twist`` with ``stamped:=false``): ``linear`` = body FLU velocity (m/s), ``angular.z`` = yaw
  rate (rad/s, counter-clockwise, REP 103); ``angular.x/y`` must be zero;
- ``odom_topic`` (``nav_msgs/Odometry``, default ``/mavros/local_position/odom``): position and yaw in an ENU world
  frame (REP 105), best-effort QoS like MAVROS publishes it;
- ``e_stop`` (``std_msgs/Bool``): ``true`` engages the emergency stop, **latched**; ``false`` releases nothing;
- ``~/e_stop`` (``std_srvs/SetBool``): engages (true) or releases (false) the emergency stop.

Outputs, at ``rate`` Hz on the node clock (``use_sim_time`` makes it sim time):

- ``output: mavros``: ``geometry_msgs/TwistStamped`` on ``mavros_topic`` (default
  ``/mavros/setpoint_velocity/cmd_vel``). With ``mavros_frame: local_enu`` the command is rotated into ENU by the
  odometry yaw, as MAVROS's setpoint_velocity plugin reads it by default (``mav_frame: LOCAL_NED``); with
  ``mavros_frame: body`` it goes out in base_link FLU and the plugin's ``mav_frame`` must be ``BODY_NED``.
- ``output: px4``: ``px4_msgs/TrajectorySetpoint`` (NED velocity, clockwise yawspeed, the rest NaN) on
  ``<px4_namespace>/trajectory_setpoint`` and the ``OffboardControlMode`` heartbeat (``velocity: true``) on
  ``<px4_namespace>/offboard_control_mode``, both every tick (PX4 leaves offboard below 2 Hz). px4_msgs is imported
  only then; without it the node stops at start with an error saying so.
- ``~/status`` (``std_msgs/String``, latched): a JSON summary (``state``, the limits ``acting``, counters, the
  setpoint) on every change and every ``status_period`` seconds; state changes are logged too.
- ``/diagnostics`` (diagnostic_msgs/DiagnosticArray, every ``diagnostics_period`` s and at once when the e-stop
  changes; :mod:`lnn_control.ros.diagnostics`): ``drone_adapter_node: output`` (the state, the limits acting,
  counters; OK while following, WARN while hovering), ``drone_adapter_node: odometry`` (node-clock age; ERROR when
  it is needed and missing or older than ``odom_timeout``) and ``drone_adapter_node: e-stop`` (ERROR while engaged).

The rules (hover on e-stop, refused or missing commands, missing odometry; speed, climb, yaw-rate and acceleration
limits; the geofence) live, free of ROS, in :mod:`lnn_control.drone_output`, tested in simulated time; this node
feeds them the node clock and publishes what they decide.
"""

from __future__ import annotations

import json
from typing import Any

from geometry_msgs.msg import TwistStamped
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool

from lnn_control.drone_output import (
    E_STOP,
    MAVROS,
    NO_COMMAND,
    OK,
    PX4,
    PX4_OFFBOARD_MODE,
    Decision,
    DroneAdapterConfig,
    DroneRules,
    Pose,
    Px4Setpoint,
    mavros_setpoint,
    px4_setpoint,
    yaw_from_quaternion,
)
from lnn_control.health import Level, Report, age_report
from lnn_control.ros.diagnostics import Diagnostics
from lnn_control.ros.msgs import twist_type
from lnn_control.ros.node_util import Throttle, declare_config, run_node
from lnn_control.ros.qos import COMMAND, LATCHED, SENSOR
from lnn_control.ros.stamps import ns_to_stamp

COMMAND_TOPIC = "cmd_vel"
E_STOP_TOPIC = "e_stop"
STATUS_TOPIC = "~/status"

#: What PX4's ROS 2 examples (px4_ros_com) use for /fmu/in: best effort, transient local, keep last 1.
PX4_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

HOVER_REASONS = {
    E_STOP: "the emergency stop is engaged",
    "invalid_command": "the latest command was refused",
    NO_COMMAND: "no command within the timeout",
    "no_odometry": "no fresh odometry",
}


def px4_message_types() -> tuple[type, type]:
    """``(TrajectorySetpoint, OffboardControlMode)`` from px4_msgs; ``ValueError`` saying what to install."""
    try:
        from px4_msgs.msg import OffboardControlMode, TrajectorySetpoint
    except ImportError as exc:
        raise ValueError(
            f"output:=px4 needs the px4_msgs interface package ({exc}): build PX4/px4_msgs (the branch of your "
            "PX4 release) in a colcon workspace and source it, or use output:=mavros"
        ) from exc
    return TrajectorySetpoint, OffboardControlMode


def px4_messages(setpoint_type: type, mode_type: type, sp: Px4Setpoint) -> tuple[Any, Any]:
    """The ``TrajectorySetpoint`` of ``sp`` and its ``OffboardControlMode`` heartbeat (velocity control), both
    stamped ``sp.timestamp`` (microseconds)."""
    setpoint = setpoint_type(
        timestamp=sp.timestamp, position=list(sp.position), velocity=list(sp.velocity),
        acceleration=list(sp.acceleration), yaw=sp.yaw, yawspeed=sp.yawspeed,
    )
    mode = mode_type(timestamp=sp.timestamp)
    for name, value in PX4_OFFBOARD_MODE.items():
        if hasattr(mode, name):  # older px4_msgs lack some flags
            setattr(mode, name, value)
    return setpoint, mode


class DroneAdapterNode(Node):
    """See the module docstring; the rules are :class:`~lnn_control.drone_output.DroneRules`."""

    def __init__(self, node_name: str = "drone_adapter_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.config = declare_config(self, DroneAdapterConfig)
        self.rules = DroneRules(self.config)
        self.throttle = Throttle(2.0)
        self._last_status: tuple[str, tuple[str, ...]] | None = None
        self._last_status_ns: int | None = None
        self._last_acting: tuple[str, ...] = ()
        self._setpoint: list[float] = []
        self._make_outputs()
        self.status_publisher = self.create_publisher(String, STATUS_TOPIC, LATCHED)
        self.create_subscription(twist_type(self.config.stamped), COMMAND_TOPIC, self._on_command, COMMAND)
        self.create_subscription(Odometry, self.config.odom_topic, self._on_odometry, SENSOR)
        self.create_subscription(Bool, E_STOP_TOPIC, self._on_e_stop_topic, COMMAND)
        self.create_service(SetBool, "~/e_stop", self._on_e_stop_service)
        self.create_timer(1.0 / self.config.rate, self._on_timer)
        self.diagnostics = Diagnostics(self, hardware_id=self.config.output)
        self.diagnostics.add("output", self._output_report)
        self.diagnostics.add("odometry", self._odometry_report)
        self.diagnostics.add("e-stop", self._e_stop_report)
        self.get_logger().info(f"ready: {self.describe()}")

    def _make_outputs(self) -> None:
        if self.config.output == PX4:
            setpoint_type, mode_type = px4_message_types()
            namespace = self.config.px4_namespace.rstrip("/")
            self._px4_types = (setpoint_type, mode_type)
            self.setpoint_publisher = self.create_publisher(setpoint_type, f"{namespace}/trajectory_setpoint", PX4_QOS)
            self.mode_publisher = self.create_publisher(mode_type, f"{namespace}/offboard_control_mode", PX4_QOS)
        else:
            self.setpoint_publisher = self.create_publisher(TwistStamped, self.config.mavros_topic, COMMAND)

    def describe(self) -> str:
        """One line: what the node reads, what it sends where, its limits and fence."""
        c = self.config
        kind = "TwistStamped" if c.stamped else "Twist"
        if c.output == MAVROS:
            how = (f"rotated into ENU by the yaw of {c.odom_topic}" if c.mavros_frame == "local_enu"
                   else "in base_link FLU (MAVROS setpoint_velocity mav_frame must be BODY_NED)")
            out = f"{c.mavros_topic} (TwistStamped, {how})"
        else:
            out = (f"{c.px4_namespace.rstrip('/')}/trajectory_setpoint (NED, yaw from {c.odom_topic}) + "
                   "offboard_control_mode heartbeat")
        fence = (f"geofence {c.geofence_radius:g} m around ({c.home_x:g}, {c.home_y:g}), z in "
                 f"[{c.geofence_floor:g}, {c.geofence_ceiling:g}] m, margin {c.geofence_margin:g} m"
                 if c.geofence else "no geofence")
        return (
            f"{self.resolve_topic_name(COMMAND_TOPIC)} ({kind}) -> {out} at {c.rate:g} Hz; hover after "
            f"{c.timeout:g} s without a command; limits {c.max_speed:g} m/s horizontal, +{c.max_climb:g}/"
            f"-{c.max_descent:g} m/s vertical, {c.max_yaw_rate:g} rad/s yaw; {fence}; e_stop "
            f"{'engaged' if self.rules.e_stop else 'released'}; never arms or changes the flight mode"
        )

    # -- inputs -------------------------------------------------------------------------------------------------------

    def _now(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_command(self, msg: Any) -> None:
        twist, frame_id = (msg.twist, msg.header.frame_id) if self.config.stamped else (msg, "")
        values = (twist.linear.x, twist.linear.y, twist.linear.z, twist.angular.z)
        problem = self.rules.on_command(values, self._now(), frame_id=frame_id,
                                        unused=(twist.angular.x, twist.angular.y))
        if problem is not None and self.throttle("command"):
            more = self.throttle.take_suppressed("command")
            self.get_logger().warning(f"command refused, hovering: {problem}"
                                      + (f" ({more} more refused since the last warning)" if more else ""))

    def _on_odometry(self, msg: Any) -> None:
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        pose = Pose(p.x, p.y, p.z, yaw_from_quaternion(q.x, q.y, q.z, q.w))
        problem = self.rules.on_odometry(pose, self._now())
        if problem is not None and self.throttle("odometry"):
            self.get_logger().warning(problem)

    def _on_e_stop_topic(self, msg: Bool) -> None:
        was = self.rules.e_stop
        message = self.rules.e_stop_topic(bool(msg.data))
        how = f"topic {self.resolve_topic_name(E_STOP_TOPIC)}"
        if self.rules.e_stop and not was:
            self.get_logger().warning(f"emergency stop ENGAGED by {how}")
        elif not msg.data and self.throttle("e_stop_false"):
            self.get_logger().info(f"{message} ({how})")
        self._on_timer()  # answer at once
        if self.rules.e_stop != was:
            self.diagnostics.publish()

    def _on_e_stop_service(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        was = self.rules.e_stop
        response.message = self.rules.e_stop_service(bool(request.data))
        response.success = True
        if self.rules.e_stop and not was:
            self.get_logger().warning("emergency stop ENGAGED by service ~/e_stop")
        elif was and not self.rules.e_stop:
            self.get_logger().info("emergency stop released by service ~/e_stop")
        self._on_timer()
        if self.rules.e_stop != was:
            self.diagnostics.publish()
        return response

    # -- output -------------------------------------------------------------------------------------------------------

    def _on_timer(self) -> None:
        decision = self.rules.step(self._now())
        self._publish(decision)
        self._report(decision)

    def _publish(self, decision: Decision) -> None:
        v = decision.velocity
        if self.config.output == PX4:
            sp = px4_setpoint(v, decision.yaw, decision.stamp_ns // 1000)
            setpoint, mode = px4_messages(*self._px4_types, sp)
            self.mode_publisher.publish(mode)
            self.setpoint_publisher.publish(setpoint)
            self._setpoint = [*sp.velocity, sp.yawspeed]
            return
        sp = mavros_setpoint(v, self.config.mavros_frame, decision.yaw)
        msg = TwistStamped()
        msg.header.stamp = ns_to_stamp(decision.stamp_ns)
        msg.header.frame_id = sp.frame_id
        msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = sp.linear
        msg.twist.angular.z = sp.angular_z
        self.setpoint_publisher.publish(msg)
        self._setpoint = [*sp.linear, sp.angular_z]

    def _report(self, decision: Decision) -> None:
        """Log state and fence changes; publish ~/status on change and every status_period."""
        log = self.get_logger()
        if decision.changed:
            if decision.state == OK:
                log.info(f"following {self.resolve_topic_name(COMMAND_TOPIC)}")
            elif decision.previous == "" and decision.state == NO_COMMAND:
                log.info(f"hover: {HOVER_REASONS[NO_COMMAND]}")
            else:
                log.warning(f"hover: {HOVER_REASONS[decision.state]}")
        fence = tuple(a for a in decision.acting if a.startswith("fence"))
        if fence != self._last_acting:
            if fence:
                log.warning(f"geofence acting: {', '.join(fence)}")
            else:
                log.info("geofence no longer acting")
            self._last_acting = fence
        key = (decision.state, decision.acting)
        last = self._last_status_ns
        due = last is None or not 0 <= decision.stamp_ns - last < int(self.config.status_period * 1e9)
        if key != self._last_status or due:
            self._last_status, self._last_status_ns = key, decision.stamp_ns
            self.status_publisher.publish(String(data=json.dumps(self.status(decision))))

    def status(self, decision: Decision) -> dict[str, Any]:
        """The ~/status document of a decision."""
        return {
            "state": decision.state,
            "stamp_ns": decision.stamp_ns,
            "output": self.config.output,
            "acting": list(decision.acting),
            "e_stop": self.rules.e_stop,
            "odometry": decision.pose is not None,
            "commands": self.rules.commands,
            "refused": self.rules.refused,
            "command": list(decision.velocity.as_tuple()),
            "setpoint": self._setpoint,
        }

    # -- diagnostics --------------------------------------------------------------------------------------------------

    def _output_report(self) -> Report:
        rules, c = self.rules, self.config
        values = {"state": rules.state or "starting", "output": c.output, "rate (Hz)": c.rate,
                  "commands": rules.commands, "refused": rules.refused, "setpoint": self._setpoint}
        if rules.state == OK:
            return Report.ok(f"following {self.resolve_topic_name(COMMAND_TOPIC)}", **values)
        reason = HOVER_REASONS.get(rules.state, "starting")
        return Report.warn(f"hovering: {reason}", **values)

    def _odometry_report(self) -> Report:
        c = self.config
        if not c.needs_odometry:
            report = age_report("odometry", self.rules.pose_ns, self._now(), missing=Level.OK)
            return Report.ok("not needed (no geofence, body frame): " + report.message, **report.values)
        report = age_report("odometry", self.rules.pose_ns, self._now(), error_s=c.odom_timeout, missing=Level.ERROR)
        return report.with_values(topic=c.odom_topic)

    def _e_stop_report(self) -> Report:
        if self.rules.e_stop:
            return Report.error("emergency stop ENGAGED: hovering; release with the service ~/e_stop (false)",
                                engaged=True)
        return Report.ok("released", engaged=False)

    def close(self) -> None:
        """Log a summary (run_node calls it before destroying the node)."""
        self.get_logger().info(
            f"stopping: {self.rules.commands} command(s), {self.rules.refused} refused, last state "
            f"{self.rules.state or 'none'}"
        )


def main(args: list[str] | None = None) -> int:
    """Entry point of ``drone_adapter_node``."""
    return run_node(DroneAdapterNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
