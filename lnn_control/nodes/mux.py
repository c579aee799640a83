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
"""

from __future__ import annotations

from dataclasses import dataclass

from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from std_msgs.msg import Bool, Header, String
from std_srvs.srv import SetBool

from lnn_control.ros.msgs import twist_msg, twist_type
from lnn_control.ros.node_util import declare_config, param, run_node
from lnn_control.ros.qos import COMMAND, LATCHED
from lnn_control.ros.stamps import ns_to_stamp

POLICY, TELEOP, NONE, E_STOP = "policy", "teleop", "none", "e_stop"
SOURCES = (TELEOP, POLICY, NONE, E_STOP)

POLICY_TOPIC = "lnn/cmd_vel"
TELEOP_TOPIC = "teleop/cmd_vel"
OUTPUT_TOPIC = "cmd_vel"
E_STOP_TOPIC = "e_stop"
SOURCE_TOPIC = "mux/active_source"


@dataclass(frozen=True)
class MuxConfig:
    """Parameters of command_mux_node (config/mux.yaml)."""

    stamped: bool = param(False, "inputs and output are geometry_msgs/TwistStamped instead of Twist")
    frame_id: str = param("base_link", "header frame_id of the TwistStamped messages the mux makes itself")
    rate: float = param(
        20.0, "Hz: the active command (or zero) is re-published when nothing went out for a period", min=0.5, max=1000.0
    )
    teleop_timeout: float = param(
        0.5, "seconds after the last teleop message before the policy may drive again", min=0.01, max=60.0
    )
    policy_timeout: float = param(
        0.5, "seconds after the last policy message before it counts as stale (zero)", min=0.01, max=60.0
    )
    status_period: float = param(
        1.0, "seconds between repeats of mux/active_source (it is also sent on change)", min=0.05, max=3600.0
    )
    e_stop_on_start: bool = param(False, "start with the emergency stop engaged (release it by topic or service)")


class Arbiter:
    """The mux's decision, free of ROS: feed input times (ns, node clock) and ask who drives at a time."""

    def __init__(self, config: MuxConfig) -> None:
        self.teleop_timeout_ns = int(config.teleop_timeout * 1e9)
        self.policy_timeout_ns = int(config.policy_timeout * 1e9)
        self.e_stop = bool(config.e_stop_on_start)
        self.last_teleop_ns: int | None = None
        self.last_policy_ns: int | None = None

    def source(self, now_ns: int) -> str:
        """``e_stop``, ``teleop``, ``policy`` or ``none`` at ``now_ns``."""
        if self.e_stop:
            return E_STOP
        if self.last_teleop_ns is not None and 0 <= now_ns - self.last_teleop_ns <= self.teleop_timeout_ns:
            return TELEOP
        if self.last_policy_ns is not None and 0 <= now_ns - self.last_policy_ns <= self.policy_timeout_ns:
            return POLICY
        return NONE


class CommandMuxNode(Node):
    """See the module docstring."""

    def __init__(self, node_name: str = "command_mux_node", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.config = declare_config(self, MuxConfig)
        self.arbiter = Arbiter(self.config)
        msg_type = twist_type(self.config.stamped)
        self.publisher = self.create_publisher(msg_type, OUTPUT_TOPIC, COMMAND)
        self.source_publisher = self.create_publisher(String, SOURCE_TOPIC, LATCHED)
        self.create_subscription(msg_type, POLICY_TOPIC, self._on_policy, COMMAND)
        self.create_subscription(msg_type, TELEOP_TOPIC, self._on_teleop, COMMAND)
        self.create_subscription(Bool, E_STOP_TOPIC, self._on_e_stop_topic, COMMAND)
        self.create_service(SetBool, "~/e_stop", self._on_e_stop_service)
        self.last = {TELEOP: None, POLICY: None}  # the latest message of each input
        self.period_ns = int(1e9 / self.config.rate)
        self.last_publish_ns: int | None = None
        self.active = ""
        self.last_status_ns: int | None = None
        self.create_timer(1.0 / self.config.rate, self._on_timer)
        self._update_source(self._now())
        self.get_logger().info(
            f"ready: {POLICY_TOPIC} and {TELEOP_TOPIC} -> {OUTPUT_TOPIC} "
            f"({'TwistStamped' if self.config.stamped else 'Twist'}), teleop wins for "
            f"{self.config.teleop_timeout} s after its last message, policy stale after "
            f"{self.config.policy_timeout} s, "
            f"e_stop {'engaged' if self.arbiter.e_stop else 'released'}"
        )

    # -- inputs -------------------------------------------------------------------------------------------------------

    def _now(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_policy(self, msg) -> None:
        now = self._now()
        self.arbiter.last_policy_ns = now
        self.last[POLICY] = msg
        if self._update_source(now) == POLICY:
            self._publish(msg, now)

    def _on_teleop(self, msg) -> None:
        now = self._now()
        self.arbiter.last_teleop_ns = now
        self.last[TELEOP] = msg
        if self._update_source(now) == TELEOP:
            self._publish(msg, now)

    def _set_e_stop(self, engaged: bool, how: str) -> str:
        changed = engaged != self.arbiter.e_stop
        self.arbiter.e_stop = engaged
        now = self._now()
        self._update_source(now)
        if engaged:
            self._publish(None, now)  # stop now, not at the next timer tick
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

    def _update_source(self, now: int) -> str:
        source = self.arbiter.source(now)
        if source != self.active:
            previous, self.active = self.active, source
            if previous:
                self.get_logger().info(f"active source: {previous} -> {source}")
            self._publish_source(now)
        return source

    def _publish_source(self, now: int) -> None:
        self.source_publisher.publish(String(data=self.active))
        self.last_status_ns = now

    def _publish(self, msg, now: int) -> None:
        """Forward ``msg`` (an input of the active source) or, for None, zero velocity stamped now."""
        if msg is None:
            msg = twist_msg(0.0, 0.0, stamped=self.config.stamped, stamp_ns=now, frame_id=self.config.frame_id)
        self.publisher.publish(msg)
        self.last_publish_ns = now

    def _on_timer(self) -> None:
        now = self._now()
        source = self._update_source(now)
        if self.last_status_ns is None or now - self.last_status_ns >= int(self.config.status_period * 1e9):
            self._publish_source(now)
        if self.last_publish_ns is not None and 0 <= now - self.last_publish_ns < self.period_ns * 0.9:
            return  # something went out within this period already
        if source in (TELEOP, POLICY) and self.last[source] is not None:
            self._publish(self._restamped(self.last[source], now), now)
        else:
            self._publish(None, now)

    def _restamped(self, msg, now: int):
        """A repeat of a stamped command carries the time it is sent; an unstamped one is sent as is."""
        if not self.config.stamped:
            return msg
        header = Header(stamp=ns_to_stamp(now), frame_id=msg.header.frame_id or self.config.frame_id)
        return TwistStamped(header=header, twist=msg.twist)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``command_mux_node``."""
    return run_node(CommandMuxNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
