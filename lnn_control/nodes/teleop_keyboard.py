"""teleop_keyboard_node: drive from a terminal, in the manner of teleop_twist_keyboard.

Keys (arrow keys work too)::

    w / up     faster (+speed_step m/s, up to max_speed)
    s / down   slower (-speed_step; below zero reverses, down to -max_reverse_speed)
    a / left   steer left  (+steering_step, up to max_steering; positive = left, REP 103)
    d / right  steer right (-steering_step)
    c          centre the steering
    space, x   stop: velocity and steering to zero (you still drive: zero is published)
    r, Tab     release: stop publishing, so the command mux hands control back to the policy
    Ctrl-C     quit

Any driving key takes control: from then on the command is published on ``teleop/cmd_vel`` at ``rate`` Hz (and at
once on every key), so the mux keeps the human in charge; release (``r``) stops publishing and resets the command to
zero for the next take-over. Twist or, with ``stamped:=true``, TwistStamped (``frame_id``, node clock).

The key handling is :class:`KeyTeleop`, free of ROS and of the terminal, so tests feed it strings. The node needs an
interactive terminal: when stdin is not a TTY it exits at once with code 2 and says how to run it.
"""

from __future__ import annotations

import os
import select
import sys
import time
from dataclasses import dataclass

from rclpy.node import Node

from lnn_control.command import Command
from lnn_control.ros.msgs import command_to_twist, twist_type
from lnn_control.ros.node_util import declare_config, param
from lnn_control.ros.qos import COMMAND

TOPIC = "teleop/cmd_vel"
ARROWS = {"\x1b[A": "up", "\x1b[B": "down", "\x1b[C": "right", "\x1b[D": "left"}
HELP = __doc__.split("::", 1)[1].split("\n\n", 2)[1] if __doc__ else "keys: w/s a/d c space r Ctrl-C"


@dataclass(frozen=True)
class KeyTeleopConfig:
    """Parameters of teleop_keyboard_node (config/teleop.yaml)."""

    stamped: bool = param(False, "publish geometry_msgs/TwistStamped instead of Twist")
    frame_id: str = param("base_link", "header frame_id of TwistStamped commands")
    rate: float = param(20.0, "Hz at which the command is repeated while you drive", min=1.0, max=1000.0)
    speed_step: float = param(0.1, "m/s added or removed per key press", min=0.001, max=100.0)
    steering_step: float = param(0.1, "normalised steering added or removed per key press", min=0.001, max=1.0)
    max_speed: float = param(2.0, "largest forward velocity, m/s", min=0.0, max=100.0)
    max_reverse_speed: float = param(0.5, "largest reverse velocity, m/s (0: no reversing)", min=0.0, max=100.0)
    max_steering: float = param(1.0, "largest |steering| (normalised, 1 = full lock)", min=0.0, max=1.0)


class KeyTeleop:
    """Key presses -> a command, and whether the person is driving. No ROS, no terminal."""

    def __init__(self, config: KeyTeleopConfig | None = None) -> None:
        self.config = config or KeyTeleopConfig()
        self.velocity = 0.0
        self.steering = 0.0
        self.active = False
        self.quit = False
        self._pending = ""

    def command(self, stamp_ns: int = 0) -> Command:
        """The command to publish now."""
        return Command(self.steering, self.velocity, stamp_ns)

    def press(self, key: str) -> str | None:
        """Apply one key (a character, or ``up``/``down``/``left``/``right``); what it did, or None if unknown."""
        c = self.config
        if key in ("\x03", "\x04"):  # Ctrl-C, Ctrl-D
            self.quit = True
            return "quit"
        if key in ("r", "\t"):
            self.active = False
            self.velocity = self.steering = 0.0
            return "released: the policy may drive"
        if key in ("w", "up"):
            self.velocity = min(self.velocity + c.speed_step, c.max_speed)
        elif key in ("s", "down"):
            self.velocity = max(self.velocity - c.speed_step, -c.max_reverse_speed)
        elif key in ("a", "left"):
            self.steering = min(self.steering + c.steering_step, c.max_steering)
        elif key in ("d", "right"):
            self.steering = max(self.steering - c.steering_step, -c.max_steering)
        elif key == "c":
            self.steering = 0.0
        elif key in (" ", "x"):
            self.velocity = self.steering = 0.0
        else:
            return None
        # round away float drift (0.1 + 0.2 ...), so repeated steps land on the grid
        self.velocity = round(self.velocity, 9)
        self.steering = round(self.steering, 9)
        self.active = True
        return f"velocity {self.velocity:+.2f} m/s, steering {self.steering:+.2f}"

    def feed(self, text: str) -> list[str]:
        """Apply the keys in ``text`` as read from a terminal (arrow keys arrive as escape sequences, possibly split
        across reads); the descriptions of what the known keys did."""
        text = self._pending + text
        self._pending = ""
        done = []
        i = 0
        while i < len(text):
            if text[i] == "\x1b":
                chunk = text[i : i + 3]
                if len(chunk) < 3 and "\x1b[".startswith(chunk):
                    self._pending = chunk  # the rest comes with the next read
                    break
                key = ARROWS.get(chunk)
                i += 3 if key else 1
            else:
                key = text[i]
                i += 1
            if key is not None and (result := self.press(key)) is not None:
                done.append(result)
        return done


class TeleopKeyboardNode(Node):
    """The publisher half; :func:`main` reads the terminal and calls :meth:`publish_now` and :meth:`tick`."""

    def __init__(self, node_name: str = "teleop_keyboard_node", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.config = declare_config(self, KeyTeleopConfig)
        self.teleop = KeyTeleop(self.config)
        self.publisher = self.create_publisher(twist_type(self.config.stamped), TOPIC, COMMAND)
        self.period = 1.0 / self.config.rate
        self.last_publish = 0.0

    def publish_now(self) -> None:
        """Publish the current command if the person is driving."""
        if not self.teleop.active:
            return
        now = self.get_clock().now().nanoseconds
        msg = command_to_twist(self.teleop.command(now), stamped=self.config.stamped, frame_id=self.config.frame_id)
        self.publisher.publish(msg)
        self.last_publish = time.monotonic()

    def tick(self) -> None:
        """Repeat the command when a period passed since the last one."""
        if self.teleop.active and time.monotonic() - self.last_publish >= self.period * 0.95:
            self.publish_now()


NOT_A_TTY = (
    "teleop_keyboard_node reads single key presses from a terminal, but its stdin is not a TTY. Run it in a terminal "
    "of its own: 'ros2 run lnn_control teleop_keyboard_node' (or the teleop_keyboard_node script of a pip install); "
    "from a launch file it needs a terminal prefix such as prefix='xterm -e'."
)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``teleop_keyboard_node``: terminal in cbreak mode, keys -> teleop/cmd_vel."""
    if not sys.stdin.isatty():
        print(f"[ERROR] {NOT_A_TTY}", file=sys.stderr, flush=True)
        return 2
    import termios
    import tty

    import rclpy

    rclpy.init(args=list(sys.argv if args is None else args))
    try:
        node = TeleopKeyboardNode()
    except ValueError as exc:
        print(f"[ERROR] {exc}", file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return 2
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    print(HELP, file=sys.stderr, flush=True)
    try:
        tty.setcbreak(fd)
        while rclpy.ok() and not node.teleop.quit:
            ready, _, _ = select.select([fd], [], [], node.period / 2)
            if ready:
                data = os.read(fd, 64).decode(errors="ignore")
                if not data:  # the terminal closed
                    break
                for line in node.teleop.feed(data):
                    print(f"\r{line:<60}", end="", file=sys.stderr, flush=True)
                node.publish_now()
            node.tick()
            rclpy.spin_once(node, timeout_sec=0)
    except KeyboardInterrupt:
        pass
    except Exception:
        # SIGINT/SIGTERM shut rclpy's context down, possibly while spin_once was starting: that is a clean stop.
        if rclpy.ok():
            raise
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        print("", file=sys.stderr)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
