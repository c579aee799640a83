"""teleop_keyboard_node: drive a car or fly a drone from a terminal, in the manner of teleop_twist_keyboard.

``action`` (``car``, the default, or ``drone``) says what the keys command. Keys with ``action: car`` (arrow keys
work too)::

    w / up     faster (+speed_step m/s, up to max_speed)
    s / down   slower (-speed_step; below zero reverses, down to -max_reverse_speed)
    a / left   steer left  (+steering_step, up to max_steering; positive = left, REP 103)
    d / right  steer right (-steering_step)
    c          centre the steering
    space, x   stop: velocity and steering to zero (you still drive: zero is published)
    r, Tab     release: stop publishing, so the command mux hands control back to the policy
    Ctrl-C     quit

Keys with ``action: drone`` (body FLU velocities, REP 103; config/teleop_drone.yaml)::

    w / s               forward / back     (vx +/- speed_step m/s; the norm of vx, vy up to max_speed)
    a / d               left / right       (vy +/- speed_step; + = left)
    up / down, t / b    climb / descend    (vz +/- climb_step, up to max_climb; + = up)
    q / e, left / right yaw left / right   (yaw_rate +/- yaw_step rad/s, up to max_yaw_rate; + = counter-clockwise)
    c                   stop yawing
    space, x            hover: every velocity to zero (you still fly: zero is published)
    r, Tab              release: stop publishing, so the command mux hands control back to the policy
    Ctrl-C              quit

The drone's ``max_speed`` bounds the horizontal speed, the norm of (vx, vy): a key changes only its own axis and
stops where the norm reaches ``max_speed`` (at full speed forward, slow down before moving sideways).

Any driving key takes control: from then on the command is published on ``teleop/cmd_vel`` at ``rate`` Hz of wall
time (and at once on every key), whether or not keys keep coming, so the mux keeps the person in charge; release
(``r``) stops publishing and resets the command to zero for the next take-over. TwistStamped (``frame_id``, stamped
with the node clock: sim time under ``use_sim_time``, where nothing is published until the first ``/clock``
arrives), or Twist with ``stamped:=false``.

``steering_hold:=true`` makes the steering spring-loaded, as in a driving game: a steering key steers only while it
is held and the steering returns to centre when it is let go; a drone's yaw keys likewise (it yaws only while one is
held). A terminal reports no key releases, only the key's auto-repeat: the first press counts as held for
``repeat_delay`` (the terminal's delay before it starts repeating), then for ``repeat_gap`` after each repeat.
Terminals repeat only the last key pressed, so pressing another key while steering ends the steering's repeats, and
with them the hold.

The key handling (:class:`KeyTeleop`) and when a command goes out (:class:`KeyboardRules`) live, free of ROS and
of the terminal, in :mod:`lnn_control.teleop_rules`, so tests feed them strings and simulated times; this node feeds
them its terminal, monotonic times and node-clock stamps, and publishes what they decide. The node owns its terminal
(stdin, put in cbreak mode until the node is destroyed) and reads it on a steady-clock timer, so it runs alike from
its own ``main`` and inside ``lnn-control up`` (one process or ``--processes``). It needs an interactive terminal:
when stdin is not a TTY it refuses to start and says how to run it.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
from collections.abc import Callable

from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from lnn_control.ros.msgs import command_to_twist, twist_type
from lnn_control.ros.node_util import Throttle, declare_config, run_node
from lnn_control.ros.qos import COMMAND
from lnn_control.teleop_rules import (  # noqa: F401 - ARROWS, KeyTeleop, KeyTeleopConfig re-exported here
    ACTIONS,
    ARROWS,
    BACKWARDS,
    NO_CLOCK,
    KeyboardRules,
    KeyOutput,
    KeyTeleop,
    KeyTeleopConfig,
)

TOPIC = "teleop/cmd_vel"
CLOCK_TOPIC = "/clock"
#: The key table printed at start, per action (the docstring's tables).
HELP = {
    action: (__doc__.split("::")[i + 1].split("\n\n", 2)[1] if __doc__ else "keys: w/s a/d c space r Ctrl-C")
    for i, action in enumerate(ACTIONS)
}
#: How often the node reads its terminal, s (steady clock): the latency a key adds at most.
POLL_S = 0.02
#: How often the node checks who publishes /clock, s (steady clock).
CLOCK_CHECK_S = 2.0
#: The most one poll reads from the terminal (a paste cannot stall the node).
MAX_READ = 4096


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
        self.sim_time = bool(self.get_parameter("use_sim_time").value)
        self.rules = KeyboardRules(self.config, sim_time=self.sim_time)
        self.teleop: KeyTeleop = self.rules.keys
        self.publisher = self.create_publisher(twist_type(self.config.stamped), TOPIC, COMMAND)
        self.period = self.rules.period
        #: What a quit key (Ctrl-D, or Ctrl-C where the terminal does not make it a signal) does.
        self.on_quit: Callable[[], None] = _interrupt_this_process
        self._throttle = Throttle(10.0)
        self.terminal: Terminal | None = Terminal(stdin_fd)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(POLL_S, self._on_poll, clock=steady)
        self.create_timer(self.period, self.tick, clock=steady)
        self.create_timer(CLOCK_CHECK_S, self._check_clock, clock=steady)
        print(HELP[self.config.action], file=sys.stderr, flush=True)
        turn = "yaw" if self.teleop.drone else "steering"
        self.get_logger().info(
            f"ready: {self.config.action} keys -> {self.publisher.topic_name} "
            f"({'TwistStamped' if self.config.stamped else 'Twist'}, {'sim' if self.sim_time else 'wall'} time) "
            f"at {self.config.rate:g} Hz while you drive"
            + (f"; {turn} only while a {turn} key is held" if self.config.steering_hold else "")
        )

    def _stamp_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def tick(self) -> None:
        """Repeat the command when the rules say a period passed since the last one (a key publishes at once)."""
        self._emit(self.rules.on_tick(time.monotonic(), self._stamp_ns()))

    def _on_poll(self) -> None:
        """Read the terminal and hand it to the rules: print their lines, stop, or publish."""
        if self.terminal is None:
            return
        now = time.monotonic()
        text = self.terminal.read()
        if text is None:
            self.get_logger().warning("the terminal closed: stopping")
        out = self.rules.on_read(text, now, self._stamp_ns())
        for line in out.lines:
            print(f"\r{line:<60}", end="", file=sys.stderr, flush=True)
        if out.stop:
            self._close_terminal()  # no more polls: the quit is asked for once
            self.on_quit()
        else:
            self._emit(out)

    def _emit(self, out: KeyOutput) -> None:
        """Warn about a clock problem the rules saw, then publish their command."""
        if out.problem == NO_CLOCK:
            self._warn("no clock", f"use_sim_time is set but no {CLOCK_TOPIC} arrived yet: nothing is published "
                                   "until a simulator (or a bag played with --clock) gives the time")
        elif out.problem == BACKWARDS:
            self._warn("backwards", f"the node clock went back {out.back_ns / 1e9:.3f} s "
                                    f"({self.count_publishers(CLOCK_TOPIC)} publisher(s) on {CLOCK_TOPIC}): commands "
                                    "are stamped out of order")
        if out.command is not None:
            self.publisher.publish(command_to_twist(out.command, stamped=self.config.stamped,
                                                    frame_id=self.config.frame_id))  # fmt: skip

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
