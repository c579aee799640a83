"""vehicle_adapter_node: the stack's car command -> what a real car's controller reads.

The stack's ``cmd_vel`` carries the **normalised** steering in ``Twist.angular.z``, which every other Twist consumer
reads as a yaw rate in rad/s; this node is what stands between the command mux and the vehicle. Topics (all
relative, so remappable):

- in: ``cmd_vel``, the :data:`~lnn_control.command.CAR` command, ``geometry_msgs/TwistStamped`` as the mux sends
  it (``Twist`` with ``stamped:=false``): ``linear.x`` = speed (m/s), ``angular.z`` = steering in [-1, 1], positive
  left;
- out, by ``mode``:

  - ``ackermann``: ``drive``, ``ackermann_msgs/AckermannDriveStamped``: ``steering_angle = steering *
    max_steering_angle`` (rad), ``speed`` (m/s), the ``steering_angle_velocity``, ``acceleration`` and ``jerk``
    parameters; header stamp from a stamped command, else the node clock; ``frame_id`` from the parameter. F1TENTH
    reads ``drive`` (its mux forwards it to the VESC driver's ``ackermann_cmd``); remap it elsewhere;
  - ``twist_yaw_rate``: ``vehicle/cmd_vel``, ``linear.x`` = speed, ``angular.z = v tan(delta) / wheelbase``
    (rad/s): for diff_drive_controller (remap to ``/diff_drive_controller/cmd_vel``), nav2-style consumers,
    Gazebo's plugins. ``TwistStamped`` unless ``output_stamped:=false``: Jazzy's diff_drive_controller reads only
    ``TwistStamped``;
  - ``normalised``: ``vehicle/cmd_vel`` as ``twist_yaw_rate`` but with the command unchanged (``angular.z`` = the
    normalised steering), for simulators that map +1 to full lock themselves;

- ``~/status`` (``std_msgs/String``, latched): a JSON summary (``state``, ``acting`` limits, counters, what went
  out) on every change and every ``status_period`` seconds; state changes are logged too;
- ``/diagnostics`` (diagnostic_msgs/DiagnosticArray, every ``diagnostics_period`` s and at once when the state
  changes; :mod:`lnn_control.ros.diagnostics`; hardware id: the mode): ``vehicle_adapter_node: output`` (the mode,
  the state, the limits acting, counters, what went out; OK while following, WARN while stopped for want of a
  command within ``timeout``, ERROR while stopped by a refused NaN or infinite command) and ``vehicle_adapter_node:
  command`` (node-clock age of the latest command; WARN when none came yet or it is older than ``timeout``).

Each command is converted and sent at once; with no new one the last is repeated at ``rate`` Hz, and after
``timeout`` s without a command (or on a NaN or infinite one) the node sends the stop (speed 0, wheels straight)
at that rate. The rules live, free of ROS, in :mod:`lnn_control.vehicle_output`.

``mode: ackermann`` needs the ``ackermann_msgs`` Python package, which the ROS 2 pip wheels lack: ``lnn-control
build-msgs`` builds it (found by itself afterwards), a ROS install has it as ``ros-jazzy-ackermann-msgs``. It is
imported only in that mode; without it the node **stops at start with exit status 2** and says so, rather than
running idle: a missing output must not look like a working adapter (the car's own watchdog then holds it).
"""

from __future__ import annotations

import json
from typing import Any

from geometry_msgs.msg import Twist, TwistStamped
from rclpy.node import Node
from std_msgs.msg import String

from lnn_control.health import Report, age_report
from lnn_control.ros.diagnostics import Diagnostics
from lnn_control.ros.msgs import twist_type
from lnn_control.ros.node_util import Throttle, declare_config, run_node
from lnn_control.ros.qos import COMMAND, LATCHED
from lnn_control.ros.stamps import ns_to_stamp, stamp_to_ns
from lnn_control.vehicle_output import (
    ACKERMANN,
    INVALID,
    NO_COMMAND,
    OK,
    STOP_REASONS,
    Decision,
    VehicleAdapterConfig,
    VehicleRules,
)

COMMAND_TOPIC = "cmd_vel"
DRIVE_TOPIC = "drive"
TWIST_TOPIC = "vehicle/cmd_vel"
STATUS_TOPIC = "~/status"


def ackermann_type() -> type:
    """``ackermann_msgs/AckermannDriveStamped``; ``ValueError`` saying how to get it."""
    try:
        from ackermann_msgs.msg import AckermannDriveStamped
    except ImportError as exc:
        raise ValueError(
            f"mode:=ackermann needs the ackermann_msgs interface package ({exc}): build it with `lnn-control "
            "build-msgs` (the pip wheels have none), or install ros-jazzy-ackermann-msgs and source ROS; or use "
            "mode:=twist_yaw_rate"
        ) from exc
    return AckermannDriveStamped


class VehicleAdapterNode(Node):
    """See the module docstring; the rules are :class:`~lnn_control.vehicle_output.VehicleRules`."""

    def __init__(self, node_name: str = "vehicle_adapter_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.config = declare_config(self, VehicleAdapterConfig)
        self.rules = VehicleRules(self.config)
        self.throttle = Throttle(2.0)
        self._last_status: tuple[str, tuple[str, ...]] | None = None
        self._last_status_ns: int | None = None
        self._sent: dict[str, float] = {}
        self._acting: tuple[str, ...] = ()  # the limits acting on what went out last
        if self.config.mode == ACKERMANN:
            self._out_type = ackermann_type()
            self._out_topic = DRIVE_TOPIC
        else:
            self._out_type = TwistStamped if self.config.output_stamped else Twist
            self._out_topic = TWIST_TOPIC
        self.publisher = self.create_publisher(self._out_type, self._out_topic, COMMAND)
        self.status_publisher = self.create_publisher(String, STATUS_TOPIC, LATCHED)
        self.create_subscription(twist_type(self.config.stamped), COMMAND_TOPIC, self._on_command, COMMAND)
        self.create_timer(1.0 / self.config.rate, self._on_timer)
        self.diagnostics = Diagnostics(self, hardware_id=self.config.mode)
        self.diagnostics.add("output", self._output_report)
        self.diagnostics.add("command", self._command_report)
        self.get_logger().info(f"ready: {self.describe()}")

    def describe(self) -> str:
        """One line: what the node reads, what it sends where, with which conversion and limits."""
        c = self.config
        kind = "TwistStamped" if c.stamped else "Twist"
        out = f"{self.resolve_topic_name(self._out_topic)} ({self._out_type.__name__})"
        if c.mode == ACKERMANN:
            how = f"steering_angle = steering * {c.max_steering_angle:g} rad, speed m/s"
        elif c.mode == "twist_yaw_rate":
            how = f"angular.z = v tan(steering * {c.max_steering_angle:g} rad) / {c.wheelbase:g} m (rad/s)"
        else:
            how = "the command unchanged (angular.z = normalised steering)"
        return (
            f"{self.resolve_topic_name(COMMAND_TOPIC)} ({kind}) -> {out}, mode {c.mode}: {how}; speed within "
            f"+-{c.max_speed:g} m/s; repeated at {c.rate:g} Hz; stop after {c.timeout:g} s without a command"
        )

    # -- input --------------------------------------------------------------------------------------------------------

    def _now(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_command(self, msg: Any) -> None:
        twist, stamp_ns = (msg.twist, stamp_to_ns(msg.header.stamp)) if self.config.stamped else (msg, 0)
        problem = self.rules.on_command(twist.angular.z, twist.linear.x, self._now(), stamp_ns)
        if problem is not None and self.throttle("command"):
            more = self.throttle.take_suppressed("command")
            self.get_logger().warning(f"command on {self.resolve_topic_name(COMMAND_TOPIC)} refused, stopping: "
                                      f"{problem}" + (f" ({more} more refused since the last warning)" if more else ""))
        self._send(self.rules.on_command_step(self._now()))

    def _on_timer(self) -> None:
        decision = self.rules.tick(self._now())
        if decision is not None:
            self._send(decision)

    # -- output -------------------------------------------------------------------------------------------------------

    def _send(self, decision: Decision) -> None:
        self.publisher.publish(self.message(decision))
        self._acting = decision.acting
        self._report(decision)
        if decision.changed and decision.previous:
            self.diagnostics.publish()

    def message(self, decision: Decision) -> Any:
        """The output message of a decision, in this node's mode."""
        c, point = self.config, decision.setpoint
        stamp = ns_to_stamp(decision.stamp_ns)
        if c.mode == ACKERMANN:
            msg = self._out_type()
            msg.header.stamp, msg.header.frame_id = stamp, c.frame_id
            d = msg.drive
            d.steering_angle, d.speed = float(point.steering_angle), float(point.speed)
            d.steering_angle_velocity, d.acceleration, d.jerk = c.steering_angle_velocity, c.acceleration, c.jerk
            self._sent = {"steering_angle": point.steering_angle, "speed": point.speed}
            return msg
        linear_x, angular_z = point.twist(c.mode)
        twist = Twist()
        twist.linear.x, twist.angular.z = float(linear_x), float(angular_z)
        self._sent = {"linear.x": linear_x, "angular.z": angular_z}
        if not c.output_stamped:
            return twist
        msg = TwistStamped()
        msg.header.stamp, msg.header.frame_id = stamp, c.frame_id
        msg.twist = twist
        return msg

    def _report(self, decision: Decision) -> None:
        """Log state changes; publish ~/status on change and every status_period."""
        log = self.get_logger()
        if decision.changed:
            if decision.state == OK:
                log.info(f"following {self.resolve_topic_name(COMMAND_TOPIC)}")
            elif decision.previous == "" and decision.state == NO_COMMAND:
                log.info(f"stop: {STOP_REASONS[NO_COMMAND]}")
            else:
                log.warning(f"stop: {STOP_REASONS[decision.state]}")
        key = (decision.state, decision.acting)
        last = self._last_status_ns
        now = self._now()
        due = last is None or not 0 <= now - last < int(self.config.status_period * 1e9)
        if key != self._last_status or due:
            self._last_status, self._last_status_ns = key, now
            self.status_publisher.publish(String(data=json.dumps(self.status(decision))))

    def status(self, decision: Decision) -> dict[str, Any]:
        """The ~/status document of a decision."""
        return {
            "state": decision.state,
            "stamp_ns": decision.stamp_ns,
            "mode": self.config.mode,
            "acting": list(decision.acting),
            "commands": self.rules.commands,
            "refused": self.rules.refused,
            "sent": self._sent,
        }

    # -- diagnostics --------------------------------------------------------------------------------------------------

    def _output_report(self) -> Report:
        rules, c = self.rules, self.config
        values = {"mode": c.mode, "state": rules.state or "starting", "topic": self.resolve_topic_name(self._out_topic),
                  "acting": list(self._acting) or None, "commands": rules.commands, "refused": rules.refused,
                  **{f"sent {key}": value for key, value in self._sent.items()}}
        if rules.state == OK:
            limits = f" ({', '.join(self._acting)} limited)" if self._acting else ""
            return Report.ok(f"following {self.resolve_topic_name(COMMAND_TOPIC)}{limits}", **values)
        if rules.state == INVALID:
            return Report.error(f"stopped: {STOP_REASONS[INVALID]}: {rules.problem}", **values)
        return Report.warn(f"stopped: {STOP_REASONS[NO_COMMAND]} ({c.timeout:g} s)", **values)

    def _command_report(self) -> Report:
        report = age_report("command", self.rules.latest_ns, self._now(), warn_s=self.config.timeout)
        return report.with_values(topic=self.resolve_topic_name(COMMAND_TOPIC), commands=self.rules.commands)

    def close(self) -> None:
        """Send the stop once more and log a summary (run_node calls it before destroying the node)."""
        self.publisher.publish(self.message(self.rules.stop_decision(self._now())))
        self.get_logger().info(
            f"stopping: {self.rules.commands} command(s), {self.rules.refused} refused, last state "
            f"{self.rules.state or 'none'}"
        )


def main(args: list[str] | None = None) -> int:
    """Entry point of ``vehicle_adapter_node``."""
    return run_node(VehicleAdapterNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
