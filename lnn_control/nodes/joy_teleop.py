"""joy_teleop_node: a gamepad (sensor_msgs/Joy from a real joy_node) -> ``teleop/cmd_vel``, with a deadman button.

While the ``enable_button`` is held, ``velocity = scale_velocity * axes[axis_velocity]`` (m/s) and
``steering = scale_steering * axes[axis_steering]`` (normalised, positive = left, REP 103; on common gamepads
pushing a stick left gives a positive axis, so no inversion is needed) are published on every Joy message and
repeated at ``rate`` Hz while Joy messages keep coming (``joy_timeout``), so the command mux keeps the human in
charge. ``invert_*`` flips an axis; ``deadzone`` zeroes small stick values; with ``allow_reverse:=false`` negative
velocities become zero. Releasing the button publishes one zero command, then nothing, so the mux hands control
back to the policy after its teleop timeout. ``enable_button: -1`` drives without a deadman (not recommended).

``e_stop_button`` (-1: none) engages the mux's emergency stop (std_msgs/Bool ``true`` on ``e_stop``); release it
with the mux's service or topic.

The mapping is :class:`JoyMapping`, free of ROS. An axis or button index the gamepad does not have is a throttled
warning naming the index and what the Joy message holds, and no command.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rclpy.node import Node
from sensor_msgs.msg import Joy
from std_msgs.msg import Bool

from lnn_control.command import Command
from lnn_control.ros.msgs import command_to_twist, twist_type
from lnn_control.ros.node_util import Throttle, declare_config, param, run_node
from lnn_control.ros.qos import COMMAND

TOPIC = "teleop/cmd_vel"
JOY_TOPIC = "joy"
E_STOP_TOPIC = "e_stop"


@dataclass(frozen=True)
class JoyTeleopConfig:
    """Parameters of joy_teleop_node (config/teleop.yaml)."""

    stamped: bool = param(False, "publish geometry_msgs/TwistStamped instead of Twist")
    frame_id: str = param("base_link", "header frame_id of TwistStamped commands")
    axis_velocity: int = param(1, "Joy axis for velocity (left stick vertical on most gamepads)", min=0, max=63)
    axis_steering: int = param(0, "Joy axis for steering (left stick horizontal on most gamepads)", min=0, max=63)
    scale_velocity: float = param(1.0, "m/s at full stick", min=0.0, max=100.0)
    scale_steering: float = param(1.0, "normalised steering at full stick", min=0.0, max=1.0)
    invert_velocity: bool = param(False, "flip the velocity axis")
    invert_steering: bool = param(False, "flip the steering axis")
    deadzone: float = param(0.05, "stick values smaller than this (absolute) count as zero", min=0.0, max=0.99)
    allow_reverse: bool = param(True, "negative velocities allowed (false: clamped to zero)")
    enable_button: int = param(4, "deadman button that must be held to drive (-1: none)", min=-1, max=127)
    e_stop_button: int = param(-1, "button that engages the mux's emergency stop (-1: none)", min=-1, max=127)
    rate: float = param(20.0, "Hz at which the command is repeated while the deadman is held", min=1.0, max=1000.0)
    joy_timeout: float = param(0.5, "stop repeating when no Joy message came for this long (s)", min=0.01, max=60.0)


class JoyMappingError(ValueError):
    """The Joy message lacks an axis or button the configuration names."""


class JoyMapping:
    """Joy axes and buttons -> a :class:`Command`, or None while the deadman button is not held."""

    def __init__(self, config: JoyTeleopConfig | None = None) -> None:
        self.config = config or JoyTeleopConfig()

    def enabled(self, buttons: Sequence[int]) -> bool:
        """True while the deadman button is held (always, when there is none)."""
        index = self.config.enable_button
        if index < 0:
            return True
        if index >= len(buttons):
            raise JoyMappingError(f"enable_button {index} does not exist: the Joy message has {len(buttons)} buttons")
        return bool(buttons[index])

    def e_stop(self, buttons: Sequence[int]) -> bool:
        """True while the emergency-stop button is pressed."""
        index = self.config.e_stop_button
        return 0 <= index < len(buttons) and bool(buttons[index])

    def _axis(self, axes: Sequence[float], index: int, name: str, invert: bool) -> float:
        if index >= len(axes):
            raise JoyMappingError(f"{name} {index} does not exist: the Joy message has {len(axes)} axes")
        value = float(axes[index])
        if abs(value) < self.config.deadzone:
            return 0.0
        value = max(-1.0, min(1.0, value))
        return -value if invert else value

    def map(self, axes: Sequence[float], buttons: Sequence[int], stamp_ns: int = 0) -> Command | None:
        """The command for this Joy state, or None when the deadman button is not held."""
        if not self.enabled(buttons):
            return None
        c = self.config
        velocity = c.scale_velocity * self._axis(axes, c.axis_velocity, "axis_velocity", c.invert_velocity)
        steering = c.scale_steering * self._axis(axes, c.axis_steering, "axis_steering", c.invert_steering)
        if not c.allow_reverse:
            velocity = max(velocity, 0.0)
        return Command(steering + 0.0, velocity + 0.0, stamp_ns)  # + 0.0: no negative zero


class JoyTeleopNode(Node):
    """See the module docstring."""

    def __init__(self, node_name: str = "joy_teleop_node", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.config = declare_config(self, JoyTeleopConfig)
        self.mapping = JoyMapping(self.config)
        self.publisher = self.create_publisher(twist_type(self.config.stamped), TOPIC, COMMAND)
        self.e_stop_publisher = self.create_publisher(Bool, E_STOP_TOPIC, COMMAND)
        self.create_subscription(Joy, JOY_TOPIC, self._on_joy, COMMAND)
        self.create_timer(1.0 / self.config.rate, self._on_timer)
        self.command: Command | None = None  # the latest command while the deadman is held
        self.last_joy_ns: int | None = None
        self.last_publish_ns = 0
        self.e_stop_pressed = False
        self._throttle = Throttle(5.0)
        deadman = "none" if self.config.enable_button < 0 else f"button {self.config.enable_button}"
        self.get_logger().info(
            f"ready: {self.resolve_topic_name(JOY_TOPIC)} -> {self.resolve_topic_name(TOPIC)}; deadman {deadman}, "
            f"velocity axis {self.config.axis_velocity} x {self.config.scale_velocity} m/s, "
            f"steering axis {self.config.axis_steering} x {self.config.scale_steering}"
        )

    def _now(self) -> int:
        return self.get_clock().now().nanoseconds

    def _publish(self, command: Command) -> None:
        now = self._now()
        stamped = Command(command.steering, command.velocity, now)
        self.publisher.publish(command_to_twist(stamped, stamped=self.config.stamped, frame_id=self.config.frame_id))
        self.last_publish_ns = now

    def _on_joy(self, msg: Joy) -> None:
        self.last_joy_ns = self._now()
        if self.mapping.e_stop(msg.buttons) and not self.e_stop_pressed:
            self.e_stop_publisher.publish(Bool(data=True))
            self.get_logger().warning("emergency stop requested by the gamepad")
        self.e_stop_pressed = self.mapping.e_stop(msg.buttons)
        try:
            command = self.mapping.map(msg.axes, msg.buttons)
        except JoyMappingError as exc:
            if self._throttle(str(exc)):
                self.get_logger().warning(f"{self.resolve_topic_name(JOY_TOPIC)}: {exc}; no command")
            command = None
        if command is None:
            if self.command is not None:
                self._publish(Command(0.0, 0.0))  # deadman released: stop once, then hand back
                self.command = None
            return
        self.command = command
        self._publish(command)

    def _on_timer(self) -> None:
        if self.command is None or self.last_joy_ns is None:
            return
        now = self._now()
        if now - self.last_joy_ns > int(self.config.joy_timeout * 1e9):
            self.get_logger().warning(f"no Joy message for {self.config.joy_timeout} s: stopped repeating")
            self._publish(Command(0.0, 0.0))
            self.command = None
            return
        if now - self.last_publish_ns >= int(0.95e9 / self.config.rate):
            self._publish(self.command)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``joy_teleop_node``."""
    return run_node(JoyTeleopNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
