"""command_mux_node: who drives. The human always wins; an emergency stop beats everyone.

Inputs (``Twist``, or ``TwistStamped`` with ``stamped:=true``; all topic names relative, so remappable):

- ``lnn/cmd_vel``: the policy (policy_node or drive_node remapped from ``cmd_vel``);
- ``teleop/cmd_vel``: a person (teleop_keyboard_node, joy_teleop_node) or a demonstrator;
- ``e_stop`` (std_msgs/Bool): ``true`` engages the emergency stop, ``false`` releases it;
- ``~/e_stop`` (std_srvs/SetBool): the same as a service.

Output ``cmd_vel`` (same type as the inputs), chosen in this order:

1. ``e_stop``: engaged by the topic or the service, **latched** until released by either; zero velocity.
2. ``teleop``: a teleop message arrived within ``teleop_timeout`` (node clock): the policy is ignored.
3. ``policy``: a policy message arrived within ``policy_timeout``.
4. ``none``: nobody fresh: zero velocity (a stale policy never keeps the car moving).

A new input from the active source is forwarded at once (no added latency); a timer at ``rate`` Hz re-publishes the
active command, or zero, whenever nothing went out for a period, so the vehicle sees a steady stream. Stamped
outputs carry the input's header when forwarding and the node clock's time (``frame_id``) when the mux itself
makes the message.

``mux/active_source`` (std_msgs/String: ``teleop``, ``policy``, ``none`` or ``e_stop``) is published with latched
QoS (reliable, transient local, depth 1) on every change and every ``status_period`` seconds, so the recorder and
a person joining late both know who drives.

These rules live, free of ROS, in :mod:`lnn_control.mux_rules` (tested in simulated time); this node feeds them
node-clock times and publishes what they decide.
"""

from __future__ import annotations

from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from std_msgs.msg import Bool, Header, String
from std_srvs.srv import SetBool

from lnn_control.mux_rules import (  # noqa: F401 - Arbiter, MuxConfig, SOURCES and the names re-exported here
    E_STOP,
    NONE,
    POLICY,
    SOURCES,
    TELEOP,
    Arbiter,
    MuxConfig,
    MuxRules,
    Output,
    SendCommand,
    SendSource,
    SendZero,
)
from lnn_control.ros.msgs import twist_msg, twist_type
from lnn_control.ros.node_util import declare_config, run_node
from lnn_control.ros.qos import COMMAND, LATCHED
from lnn_control.ros.stamps import ns_to_stamp

POLICY_TOPIC = "lnn/cmd_vel"
TELEOP_TOPIC = "teleop/cmd_vel"
OUTPUT_TOPIC = "cmd_vel"
E_STOP_TOPIC = "e_stop"
SOURCE_TOPIC = "mux/active_source"


class CommandMuxNode(Node):
    """See the module docstring; the rules are :class:`~lnn_control.mux_rules.MuxRules`, this node feeds them the
    node clock and publishes what they decide."""

    def __init__(self, node_name: str = "command_mux_node", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.config = declare_config(self, MuxConfig)
        self.rules = MuxRules(self.config)
        msg_type = twist_type(self.config.stamped)
        self.publisher = self.create_publisher(msg_type, OUTPUT_TOPIC, COMMAND)
        self.source_publisher = self.create_publisher(String, SOURCE_TOPIC, LATCHED)
        self.create_subscription(msg_type, POLICY_TOPIC, self._on_policy, COMMAND)
        self.create_subscription(msg_type, TELEOP_TOPIC, self._on_teleop, COMMAND)
        self.create_subscription(Bool, E_STOP_TOPIC, self._on_e_stop_topic, COMMAND)
        self.create_service(SetBool, "~/e_stop", self._on_e_stop_service)
        self.create_timer(1.0 / self.config.rate, self._on_timer)
        self._apply(self.rules.start(self._now()))
        self.get_logger().info(
            f"ready: {POLICY_TOPIC} and {TELEOP_TOPIC} -> {OUTPUT_TOPIC} "
            f"({'TwistStamped' if self.config.stamped else 'Twist'}), teleop wins for "
            f"{self.config.teleop_timeout} s after its last message, policy stale after "
            f"{self.config.policy_timeout} s, "
            f"e_stop {'engaged' if self.rules.e_stop else 'released'}"
        )

    # -- inputs -------------------------------------------------------------------------------------------------------

    def _now(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_policy(self, msg) -> None:
        self._apply(self.rules.on_input(POLICY, msg, self._now()))

    def _on_teleop(self, msg) -> None:
        self._apply(self.rules.on_input(TELEOP, msg, self._now()))

    def _on_timer(self) -> None:
        self._apply(self.rules.on_timer(self._now()))

    def _set_e_stop(self, engaged: bool, how: str) -> str:
        changed = engaged != self.rules.e_stop
        self._apply(self.rules.set_e_stop(engaged, self._now()))
        if changed and engaged:
            self.get_logger().warning(f"emergency stop ENGAGED by {how}")
        elif changed:
            self.get_logger().info(f"emergency stop released by {how}")
        return f"emergency stop {'engaged' if engaged else 'released'}" + ("" if changed else " (it already was)")

    def _on_e_stop_topic(self, msg: Bool) -> None:
        self._set_e_stop(bool(msg.data), f"topic {self.resolve_topic_name(E_STOP_TOPIC)}")

    def _on_e_stop_service(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        response.message = self._set_e_stop(bool(request.data), "service ~/e_stop")
        response.success = True
        return response

    # -- output -------------------------------------------------------------------------------------------------------

    def _apply(self, outputs: list[Output]) -> None:
        """Publish what the rules decided, in order."""
        for output in outputs:
            if isinstance(output, SendSource):
                if output.changed:
                    self.get_logger().info(f"active source: {output.previous} -> {output.source}")
                self.source_publisher.publish(String(data=output.source))
            elif isinstance(output, SendZero):
                self.publisher.publish(
                    twist_msg(0.0, 0.0, stamped=self.config.stamped, stamp_ns=output.stamp_ns,
                              frame_id=self.config.frame_id)
                )
            else:
                self.publisher.publish(self._command_msg(output))

    def _command_msg(self, output: SendCommand):
        """The input as received, or a stamped repeat: the same twist with the time it is sent."""
        msg = output.payload
        if output.restamp_ns is None:
            return msg
        header = Header(stamp=ns_to_stamp(output.restamp_ns), frame_id=msg.header.frame_id or self.config.frame_id)
        return TwistStamped(header=header, twist=msg.twist)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``command_mux_node``."""
    return run_node(CommandMuxNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
