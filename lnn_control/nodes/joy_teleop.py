"""joy_teleop_node: a gamepad (sensor_msgs/Joy from a real joy_node) -> ``teleop/cmd_vel``, with a deadman button.

``action`` (``car``, the default, or ``drone``) says what the sticks command. While the ``enable_button`` is held,
each field of the command is ``scale_<field> * axes[axis_<field>]`` (``invert_<field>`` flips an axis,
``deadzone`` zeroes small stick values), published on every Joy message and repeated at ``rate`` Hz while Joy
messages keep coming (``joy_timeout``), so the command mux keeps the human in charge. Releasing the button
publishes one zero command, then nothing, so the mux hands control back to the policy after its teleop timeout.
``enable_button: -1`` drives without a deadman (not recommended).

The defaults fit an Xbox-style pad read by joy_node (or joy_linux) under Linux: axes 0/1 left stick x/y, 2 left
trigger, 3/4 right stick x/y, 5 right trigger, buttons 4/5 LB/RB; pushing a stick left or up gives a positive axis,
which is the REP 103 sign of every field below, so no inversion is needed. (joy's game_controller_node numbers the
right stick 2/3 and LB 9: set ``axis_vy: 2, axis_vx: 3, enable_button: 9`` there.)

``action: car``: ``velocity`` (m/s) from ``axis_velocity`` (left stick vertical) and ``steering`` (normalised,
positive = left) from ``axis_steering`` (left stick horizontal); with ``allow_reverse:=false`` negative velocities
become zero.

``action: drone``, the usual mode-2 layout (config/teleop_drone.yaml)::

    left stick   up / down      vz        climb / descend      axis_vz 1        (up = + = climb)
    left stick   left / right   yaw_rate  yaw left / right     axis_yaw_rate 0  (left = + = counter-clockwise)
    right stick  up / down      vx        forward / back       axis_vx 4        (up = + = forward)
    right stick  left / right   vy        left / right         axis_vy 3        (left = + = left)

The drone's axes are independent: full stick forward and to the side flies at ``scale_vx`` and ``scale_vy``
together (the drone adapter bounds the horizontal norm).

``e_stop_button`` (-1: none) engages the mux's emergency stop (std_msgs/Bool ``true`` on ``e_stop``); release it
with the mux's service or topic.

``autonomy_button`` (-1: none) is the policy's deadman: while it is held the node publishes std_msgs/Bool ``true`` on
``autonomy/enable`` (on every Joy message and at ``rate`` Hz), which arms the mux's autonomy for its
``autonomy_timeout``; let go (or the gamepad silent for ``joy_timeout``), one ``false``, and the mux disarms. Commands
go out as TwistStamped (``stamped: false``: Twist).

The mapping (:class:`JoyMapping`) and when a command goes out (:class:`JoyRules`) live, free of ROS, in
:mod:`lnn_control.teleop_rules` (tested in simulated time); this node feeds them Joy messages and node-clock times
and publishes what they decide. An axis or button index the gamepad does not have is a throttled warning naming the
index and what the Joy message holds, and no command.

``/diagnostics`` (every ``diagnostics_period`` s, :mod:`lnn_control.ros.diagnostics`): ``joy_teleop_node: gamepad``,
the node-clock age of the latest Joy message; WARN when none came (is a joy_node running?) or it is older than
``joy_timeout``.
"""

from __future__ import annotations

from rclpy.node import Node
from sensor_msgs.msg import Joy
from std_msgs.msg import Bool

from lnn_control.command import Command
from lnn_control.health import Report, age_report
from lnn_control.ros.diagnostics import Diagnostics
from lnn_control.ros.msgs import command_to_twist, twist_type
from lnn_control.ros.node_util import Throttle, declare_config, run_node
from lnn_control.ros.qos import COMMAND
from lnn_control.teleop_rules import (  # noqa: F401 - JoyMapping, JoyMappingError, JoyTeleopConfig re-exported here
    JoyMapping,
    JoyMappingError,
    JoyOutput,
    JoyRules,
    JoyTeleopConfig,
)

TOPIC = "teleop/cmd_vel"
JOY_TOPIC = "joy"
E_STOP_TOPIC = "e_stop"
AUTONOMY_TOPIC = "autonomy/enable"


class JoyTeleopNode(Node):
    """See the module docstring."""

    def __init__(self, node_name: str = "joy_teleop_node", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.config = declare_config(self, JoyTeleopConfig)
        self.rules = JoyRules(self.config)
        self.mapping: JoyMapping = self.rules.mapping
        self.publisher = self.create_publisher(twist_type(self.config.stamped), TOPIC, COMMAND)
        self.e_stop_publisher = self.create_publisher(Bool, E_STOP_TOPIC, COMMAND)
        self.autonomy_publisher = self.create_publisher(Bool, AUTONOMY_TOPIC, COMMAND)
        self.create_subscription(Joy, JOY_TOPIC, self._on_joy, COMMAND)
        self.create_timer(1.0 / self.config.rate, self._on_timer)
        self._throttle = Throttle(5.0)
        self.joy_ns: int | None = None  # node clock at the latest Joy message
        self.joy_messages = 0
        self.diagnostics = Diagnostics(self)
        self.diagnostics.add("gamepad", self._gamepad_report)
        deadman = "none" if self.config.enable_button < 0 else f"button {self.config.enable_button}"
        autonomy = "" if self.config.autonomy_button < 0 else (
            f"; autonomy deadman button {self.config.autonomy_button} -> {self.resolve_topic_name(AUTONOMY_TOPIC)}"
        )
        self.get_logger().info(
            f"ready: {self.resolve_topic_name(JOY_TOPIC)} -> {self.resolve_topic_name(TOPIC)}; deadman {deadman}, "
            f"{self.config.action}: {self.mapping.describe()}{autonomy}"
        )

    def _now(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_joy(self, msg: Joy) -> None:
        self.joy_ns, self.joy_messages = self._now(), self.joy_messages + 1
        self._emit(self.rules.on_joy(msg.axes, msg.buttons, self._now()))

    def _on_timer(self) -> None:
        self._emit(self.rules.on_timer(self._now()))

    def _emit(self, out: JoyOutput) -> None:
        """Do what the rules decided, in their order: e-stop, warnings, command."""
        if out.e_stop:
            self.e_stop_publisher.publish(Bool(data=True))
            self.get_logger().warning("emergency stop requested by the gamepad")
        if out.error and self._throttle(out.error):
            self.get_logger().warning(f"{self.resolve_topic_name(JOY_TOPIC)}: {out.error}; no command")
        if out.timed_out:
            self.get_logger().warning(f"no Joy message for {self.config.joy_timeout} s: stopped repeating")
        if out.autonomy is not None:
            self.autonomy_publisher.publish(Bool(data=out.autonomy))
        if out.command is not None:
            self._publish(out.command)

    def _gamepad_report(self) -> Report:
        report = age_report("Joy message", self.joy_ns, self._now(), warn_s=self.config.joy_timeout)
        if self.joy_ns is None:
            report = Report.warn(f"no Joy message yet on {self.resolve_topic_name(JOY_TOPIC)}: is a joy_node running "
                                 "(`ros2 run joy joy_node`)?", **report.values)
        return report.with_values(**{"Joy messages": self.joy_messages, "deadman button": self.config.enable_button})

    def _publish(self, command: Command) -> None:
        """Publish ``command`` (stamped by the rules with the node clock)."""
        self.publisher.publish(command_to_twist(command, stamped=self.config.stamped, frame_id=self.config.frame_id))


def main(args: list[str] | None = None) -> int:
    """Entry point of ``joy_teleop_node``."""
    return run_node(JoyTeleopNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
