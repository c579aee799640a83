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

Any driving key takes control: from then on the command is published on ``teleop/cmd_vel`` at ``rate`` Hz of wall
time (and at once on every key), whether or not keys keep coming, so the mux keeps the person in charge; release
(``r``) stops publishing and resets the command to zero for the next take-over. Twist or, with ``stamped:=true``,
TwistStamped (``frame_id``, stamped with the node clock: sim time under ``use_sim_time``, where nothing is published
until the first ``/clock`` arrives).

``steering_hold:=true`` makes the steering spring-loaded, as in a driving game: a steering key steers only while it
is held and the steering returns to centre when it is let go. A terminal reports no key releases, only the key's
auto-repeat: the first press counts as held for ``repeat_delay`` (the terminal's delay before it starts repeating),
then for ``repeat_gap`` after each repeat. Terminals repeat only the last key pressed, so pressing another key
while steering ends the steering's repeats, and with them the hold.

The key handling is :class:`KeyTeleop`, free of ROS and of the terminal, so tests feed it strings and times. The
node owns its terminal (stdin, put in cbreak mode until the node is destroyed) and reads it on a steady-clock timer,
so it runs alike from its own ``main`` and inside ``lnn-control up`` (one process or ``--processes``). It needs an
interactive terminal: when stdin is not a TTY it refuses to start and says how to run it.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from lnn_control.command import Command
from lnn_control.ros.msgs import command_to_twist, twist_type
from lnn_control.ros.node_util import Throttle, declare_config, param, run_node
from lnn_control.ros.qos import COMMAND

TOPIC = "teleop/cmd_vel"
CLOCK_TOPIC = "/clock"
ARROWS = {"\x1b[A": "up", "\x1b[B": "down", "\x1b[C": "right", "\x1b[D": "left"}
HELP = __doc__.split("::", 1)[1].split("\n\n", 2)[1] if __doc__ else "keys: w/s a/d c space r Ctrl-C"
#: How often the node reads its terminal, s (steady clock): the latency a key adds at most.
POLL_S = 0.02
#: How often the node checks who publishes /clock, s (steady clock).
CLOCK_CHECK_S = 2.0
#: The most one poll reads from the terminal (a paste cannot stall the node).
MAX_READ = 4096


@dataclass(frozen=True)
class KeyTeleopConfig:
    """Parameters of teleop_keyboard_node (config/teleop.yaml)."""

    stamped: bool = param(False, "publish geometry_msgs/TwistStamped instead of Twist")
    frame_id: str = param("base_link", "header frame_id of TwistStamped commands")
    rate: float = param(20.0, "Hz (wall time) at which the command is repeated while you drive", min=1.0, max=1000.0)
    speed_step: float = param(0.1, "m/s added or removed per key press", min=0.001, max=100.0)
    steering_step: float = param(0.1, "normalised steering added or removed per key press", min=0.001, max=1.0)
    max_speed: float = param(2.0, "largest forward velocity, m/s", min=0.0, max=100.0)
    max_reverse_speed: float = param(0.5, "largest reverse velocity, m/s (0: no reversing)", min=0.0, max=100.0)
    max_steering: float = param(1.0, "largest |steering| (normalised, 1 = full lock)", min=0.0, max=1.0)
    steering_hold: bool = param(
        False, "steer only while a steering key is held (auto-repeat); centre when it is let go. false: presses step "
        "the steering and it stays"
    )
    repeat_delay: float = param(
        0.7, "steering_hold: s a first press counts as held (the terminal's delay before auto-repeat starts)",
        min=0.01, max=5.0,
    )
    repeat_gap: float = param(
        0.15, "steering_hold: s after a repeat before the key counts as let go (above the repeat interval)",
        min=0.01, max=5.0,
    )


@dataclass
class _Hold:
    """A steering key held down, as far as its auto-repeat tells."""

    direction: int  # +1 left, -1 right
    first: float
    last: float
    repeats: int = 0

    def until(self, config: KeyTeleopConfig) -> float:
        """When the key counts as let go if nothing more comes."""
        if self.repeats == 0:
            return self.first + config.repeat_delay
        return self.last + config.repeat_gap


class KeyTeleop:
    """Key presses -> a command, and whether the person is driving. No ROS, no terminal.

    Times (``now``, seconds on any monotonic clock) matter only with ``steering_hold``.
    """

    def __init__(self, config: KeyTeleopConfig | None = None) -> None:
        self.config = config or KeyTeleopConfig()
        self.velocity = 0.0
        self.steering = 0.0
        self.active = False
        self.quit = False
        self._pending = ""
        self._hold: _Hold | None = None

    def command(self, stamp_ns: int = 0) -> Command:
        """The command to publish now."""
        return Command(self.steering, self.velocity, stamp_ns)

    def describe(self) -> str:
        """The command, for the terminal's status line."""
        return f"velocity {self.velocity:+.2f} m/s, steering {self.steering:+.2f}"

    def press(self, key: str, now: float = 0.0) -> str | None:
        """Apply one key (a character, or ``up``/``down``/``left``/``right``) at ``now``; what it did, or None if
        unknown."""
        c = self.config
        if key in ("\x03", "\x04"):  # Ctrl-C, Ctrl-D
            self.quit = True
            return "quit"
        if key in ("r", "\t"):
            self.active = False
            self.velocity = self.steering = 0.0
            self._hold = None
            return "released: the policy may drive"
        if key in ("w", "up"):
            self.velocity = min(self.velocity + c.speed_step, c.max_speed)
        elif key in ("s", "down"):
            self.velocity = max(self.velocity - c.speed_step, -c.max_reverse_speed)
        elif key in ("a", "left"):
            self._steer(+1, now)
        elif key in ("d", "right"):
            self._steer(-1, now)
        elif key == "c":
            self.steering = 0.0
            self._hold = None
        elif key in (" ", "x"):
            self.velocity = self.steering = 0.0
            self._hold = None
        else:
            return None
        # round away float drift (0.1 + 0.2 ...), so repeated steps land on the grid
        self.velocity = round(self.velocity, 9)
        self.steering = round(self.steering, 9)
        self.active = True
        return self.describe()

    def _steer(self, direction: int, now: float) -> None:
        c = self.config
        if c.steering_hold:
            hold = self._hold
            if hold is not None and hold.direction == direction and now <= hold.until(c):
                hold.repeats += 1
                hold.last = now
            else:  # a new hold starts from the centre, whatever the last one left
                self._hold = _Hold(direction, first=now, last=now)
                self.steering = 0.0
        self.steering = max(-c.max_steering, min(self.steering + direction * c.steering_step, c.max_steering))

    def expire(self, now: float) -> str | None:
        """With ``steering_hold``: centre the steering once its key counts as let go at ``now``; what it did."""
        hold = self._hold
        if hold is None or now <= hold.until(self.config):
            return None
        self._hold = None
        self.steering = 0.0
        return self.describe() if self.active else None

    def feed(self, text: str, now: float = 0.0) -> list[str]:
        """Apply the keys in ``text`` as read from a terminal at ``now`` (arrow keys arrive as escape sequences,
        possibly split across reads); the descriptions of what the known keys did."""
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
            if key is not None and (result := self.press(key, now)) is not None:
                done.append(result)
        return done


class Terminal:
    """A TTY in cbreak mode (single keys, no echo; Ctrl-C still sends SIGINT) until :meth:`restore`."""

    def __init__(self, fd: int) -> None:
        import termios
        import tty

        self.fd = fd
        self._saved: list | None = termios.tcgetattr(fd)
        tty.setcbreak(fd)

    def read(self) -> str | None:
        """What was typed since the last call, without blocking ("" if nothing); None once the terminal is gone."""
        chunks: list[bytes] = []
        size = 0
        while size < MAX_READ and select.select([self.fd], [], [], 0)[0]:
            try:
                data = os.read(self.fd, 256)
            except OSError:  # EIO: the other end of a pseudo-terminal closed
                return None
            if not data:
                return None
            chunks.append(data)
            size += len(data)
        return b"".join(chunks).decode(errors="ignore")

    def restore(self) -> None:
        """Put the terminal back as it was (idempotent; a terminal that is gone is left alone)."""
        import termios

        saved, self._saved = self._saved, None
        if saved is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self.fd, termios.TCSADRAIN, saved)


NOT_A_TTY = (
    "teleop_keyboard_node reads single key presses from a terminal, but its stdin is not a TTY. Run it in a terminal "
    "of its own: 'ros2 run lnn_control teleop_keyboard_node' (or the teleop_keyboard_node script of a pip install), "
    "or start 'lnn-control up teleop-sim' from a terminal; from a launch file it needs a terminal prefix such as "
    "prefix='xterm -e'."
)


def _interrupt_this_process() -> None:
    """Stop the process as Ctrl-C would (inside ``lnn-control up`` that stops every node of the set)."""
    os.kill(os.getpid(), signal.SIGINT)


class TeleopKeyboardNode(Node):
    """The terminal, the key logic and the publisher; see the module docstring. ``ValueError`` without a TTY."""

    def __init__(self, node_name: str = "teleop_keyboard_node", *, stdin_fd: int = 0, **kwargs) -> None:
        if not os.isatty(stdin_fd):
            raise ValueError(NOT_A_TTY)
        super().__init__(node_name, **kwargs)
        self.config = declare_config(self, KeyTeleopConfig)
        self.teleop = KeyTeleop(self.config)
        self.publisher = self.create_publisher(twist_type(self.config.stamped), TOPIC, COMMAND)
        self.period = 1.0 / self.config.rate
        self.last_publish = -math.inf
        self.last_stamp_ns = 0
        #: What a quit key (Ctrl-D, or Ctrl-C where the terminal does not make it a signal) does.
        self.on_quit: Callable[[], None] = _interrupt_this_process
        self.sim_time = bool(self.get_parameter("use_sim_time").value)
        self._throttle = Throttle(10.0)
        self.terminal: Terminal | None = Terminal(stdin_fd)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(POLL_S, self._on_poll, clock=steady)
        self.create_timer(self.period, self.tick, clock=steady)
        self.create_timer(CLOCK_CHECK_S, self._check_clock, clock=steady)
        print(HELP, file=sys.stderr, flush=True)
        self.get_logger().info(
            f"ready: keys -> {self.publisher.topic_name} ({'TwistStamped' if self.config.stamped else 'Twist'}, "
            f"{'sim' if self.sim_time else 'wall'} time) at {self.config.rate:g} Hz while you drive"
            + ("; steering only while a steering key is held" if self.config.steering_hold else "")
        )

    def publish_now(self) -> bool:
        """Publish the current command if the person is driving and the node has a time; whether it did."""
        if not self.teleop.active:
            return False
        stamp_ns = self.get_clock().now().nanoseconds
        if self.sim_time and stamp_ns == 0:
            self._warn("no clock", f"use_sim_time is set but no {CLOCK_TOPIC} arrived yet: nothing is published "
                                   "until a simulator (or a bag played with --clock) gives the time")
            return False
        if stamp_ns < self.last_stamp_ns:
            self._warn("backwards", f"the node clock went back {(self.last_stamp_ns - stamp_ns) / 1e9:.3f} s "
                                    f"({self.count_publishers(CLOCK_TOPIC)} publisher(s) on {CLOCK_TOPIC}): commands "
                                    "are stamped out of order")
        msg = command_to_twist(self.teleop.command(stamp_ns), stamped=self.config.stamped,
                               frame_id=self.config.frame_id)  # fmt: skip
        self.publisher.publish(msg)
        self.last_publish = time.monotonic()
        self.last_stamp_ns = stamp_ns
        return True

    def tick(self) -> None:
        """Repeat the command when about a period passed since the last one (a key publishes at once)."""
        if self.teleop.active and time.monotonic() - self.last_publish >= self.period * 0.95:
            self.publish_now()

    def _on_poll(self) -> None:
        """Read the terminal, apply the keys, let go of a released steering key; publish at once on a change."""
        if self.terminal is None:
            return
        now = time.monotonic()
        text = self.terminal.read()
        if text is None:
            self.get_logger().warning("the terminal closed: stopping")
        lines = self.teleop.feed(text, now) if text else []
        released = self.teleop.expire(now)
        if released is not None:
            lines.append(released)
        for line in lines:
            print(f"\r{line:<60}", end="", file=sys.stderr, flush=True)
        if text is None or self.teleop.quit:
            self._close_terminal()  # no more polls: the quit is asked for once
            self.on_quit()
        elif lines:
            self.publish_now()

    def _check_clock(self) -> None:
        """Say when the commands' stamps cannot match the frames': two clocks, or wall time beside a simulator."""
        clocks = self.count_publishers(CLOCK_TOPIC)
        domain = os.environ.get("ROS_DOMAIN_ID", "0")
        if self.sim_time and clocks > 1:
            self._warn("clocks", f"{clocks} publishers on {CLOCK_TOPIC} (ROS_DOMAIN_ID={domain}): is another "
                                 "simulator running? Frames and commands then mix two sim times")
        elif not self.sim_time and clocks and self.config.stamped:
            self._warn("wall", f"{CLOCK_TOPIC} has a publisher (a simulator?) but this node stamps with wall time: "
                               "run it with use_sim_time:=true so its commands pair with the frames")

    def _warn(self, key: str, message: str) -> None:
        if self._throttle(key):
            self.get_logger().warning(message)

    def _close_terminal(self) -> None:
        terminal, self.terminal = self.terminal, None
        if terminal is not None:
            terminal.restore()
            print("", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Give the terminal back as it was (idempotent; destroy_node calls it too)."""
        self._close_terminal()

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Entry point of ``teleop_keyboard_node``: terminal in cbreak mode, keys -> teleop/cmd_vel."""
    if not sys.stdin.isatty():  # before rclpy starts: say it at once
        print(f"[ERROR] {NOT_A_TTY}", file=sys.stderr, flush=True)
        return 2
    return run_node(TeleopKeyboardNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
