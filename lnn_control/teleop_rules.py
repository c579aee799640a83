"""The teleop nodes' rules without ROS: keys and gamepad states -> commands, and when a command goes out.

teleop_keyboard_node (:mod:`lnn_control.nodes.teleop_keyboard`) and joy_teleop_node
(:mod:`lnn_control.nodes.joy_teleop`) are adapters: they read the terminal or the Joy messages, feed these classes
plain values and times, and publish and log what they return. Tests drive the classes in simulated time.

The keyboard (:class:`KeyboardRules`; ``now`` in seconds on a monotonic clock, stamps in ns on the node clock):

- nothing is published before the first driving key, nor after a release (``r``) until the next driving key;
- a read that changed the command (a key, or a held steering key let go) publishes it at once;
- while the person drives, a tick repeats the command once :data:`REPEAT_AFTER` of a period passed since the last
  publication, whether or not keys keep coming;
- under sim time nothing is published while the node clock gives no time (stamp 0: :data:`NO_CLOCK`); a stamp
  older than the last one is published, with :data:`BACKWARDS`;
- a quit key or a closed terminal publishes nothing: the node stops.

The gamepad (:class:`JoyRules`; every time an integer of ns on the node clock):

- a Joy message while the deadman is held publishes its command at once;
- while the deadman is held, a tick repeats the latest command once :data:`REPEAT_AFTER` of a period passed since
  the last publication, however slowly Joy messages come;
- the deadman let go (or a Joy message the mapping cannot read) after driving: one zero, then nothing;
- no Joy message for more than ``joy_timeout`` while driving: one zero and a warning, then nothing until the next
  Joy message with the deadman held;
- the e-stop button asks for the emergency stop when it goes down, once: holding it asks nothing more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from lnn_control.command import CAR, Command
from lnn_control.ros.node_util import param

ARROWS = {"\x1b[A": "up", "\x1b[B": "down", "\x1b[C": "right", "\x1b[D": "left"}
#: A repeat goes out once this share of a period passed since the last publication (timers fire a little early).
REPEAT_AFTER = 0.95
#: :attr:`KeyOutput.problem`: sim time, but the node clock has no time yet (nothing published).
NO_CLOCK = "no clock"
#: :attr:`KeyOutput.problem`: the stamp is older than the last one published (published all the same).
BACKWARDS = "backwards"


# -- keyboard ---------------------------------------------------------------------------------------------------------


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
        return CAR.of(stamp_ns, steering=self.steering, velocity=self.velocity)

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


@dataclass(frozen=True)
class KeyOutput:
    """What teleop_keyboard_node does after a read or a tick, in this order: print ``lines`` (status lines); stop
    when ``stop`` (nothing more); warn about ``problem`` (``""``, :data:`NO_CLOCK` or :data:`BACKWARDS`, then
    ``back_ns`` behind the last stamp); publish ``command`` unless it is None."""

    lines: tuple[str, ...] = ()
    command: Command | None = None
    problem: str = ""
    back_ns: int = 0
    stop: bool = False


class KeyboardRules:
    """teleop_keyboard_node's decisions on plain values: the keys (:class:`KeyTeleop`) and when the command goes
    out; see the module docstring."""

    def __init__(self, config: KeyTeleopConfig | None = None, *, sim_time: bool = False) -> None:
        self.config = config or KeyTeleopConfig()
        self.keys = KeyTeleop(self.config)
        self.sim_time = sim_time
        self.period = 1.0 / self.config.rate
        self.last_publish = -math.inf  # ``now`` of the latest publication
        self.last_stamp_ns = 0

    def on_read(self, text: str | None, now: float, stamp_ns: int) -> KeyOutput:
        """What the terminal gave at ``now`` (``""``: nothing typed; None: the terminal is gone), the node clock
        reading ``stamp_ns``: the keys applied, a held steering key let go, the command published on a change."""
        lines = self.keys.feed(text, now) if text else []
        released = self.keys.expire(now)
        if released is not None:
            lines.append(released)
        if text is None or self.keys.quit:
            return KeyOutput(tuple(lines), stop=True)
        if not lines:
            return KeyOutput()
        return self._send(now, stamp_ns, tuple(lines))

    def on_tick(self, now: float, stamp_ns: int) -> KeyOutput:
        """A tick of the repeat timer: the command again while the person drives and a period passed."""
        if self.keys.active and now - self.last_publish >= self.period * REPEAT_AFTER:
            return self._send(now, stamp_ns)
        return KeyOutput()

    def _send(self, now: float, stamp_ns: int, lines: tuple[str, ...] = ()) -> KeyOutput:
        if not self.keys.active:
            return KeyOutput(lines)
        if self.sim_time and stamp_ns == 0:
            return KeyOutput(lines, problem=NO_CLOCK)
        back_ns = max(0, self.last_stamp_ns - stamp_ns)
        self.last_publish = now
        self.last_stamp_ns = stamp_ns
        return KeyOutput(lines, self.keys.command(stamp_ns), BACKWARDS if back_ns else "", back_ns)


# -- gamepad ----------------------------------------------------------------------------------------------------------


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
        return CAR.of(stamp_ns, steering=steering + 0.0, velocity=velocity + 0.0)  # + 0.0: no negative zero


@dataclass(frozen=True)
class JoyOutput:
    """What joy_teleop_node does after a Joy message or a tick, in this order: when ``e_stop``, publish ``true`` on
    ``e_stop`` and warn; warn about ``error`` (the mapping's complaint, ``""`` if none) and, when ``timed_out``,
    that repeating stopped; publish ``command`` (stamped with the time given) unless it is None."""

    command: Command | None = None
    e_stop: bool = False
    error: str = ""
    timed_out: bool = False


class JoyRules:
    """joy_teleop_node's decisions on plain values (times: ns on the node clock); see the module docstring."""

    def __init__(self, config: JoyTeleopConfig | None = None) -> None:
        self.config = config or JoyTeleopConfig()
        self.mapping = JoyMapping(self.config)
        self.repeat_after_ns = int(REPEAT_AFTER * 1e9 / self.config.rate)
        self.timeout_ns = int(self.config.joy_timeout * 1e9)
        self.command: Command | None = None  # the latest command while the deadman is held
        self.last_joy_ns: int | None = None
        self.last_publish_ns: int | None = None
        self.e_stop_pressed = False

    def on_joy(self, axes: Sequence[float], buttons: Sequence[int], now_ns: int) -> JoyOutput:
        """A Joy message arrived at ``now_ns``."""
        self.last_joy_ns = now_ns
        pressed = self.mapping.e_stop(buttons)
        e_stop = pressed and not self.e_stop_pressed
        self.e_stop_pressed = pressed
        try:
            command = self.mapping.map(axes, buttons)
        except JoyMappingError as exc:
            return JoyOutput(self._stop(now_ns), e_stop=e_stop, error=str(exc))
        if command is None:
            return JoyOutput(self._stop(now_ns), e_stop=e_stop)
        self.command = command
        return JoyOutput(self._sent(command, now_ns), e_stop=e_stop)

    def on_timer(self, now_ns: int) -> JoyOutput:
        """A tick of the repeat timer at ``now_ns``: the repeat when due, or the stop after ``joy_timeout``."""
        if self.command is None or self.last_joy_ns is None:
            return JoyOutput()
        if now_ns - self.last_joy_ns > self.timeout_ns:
            return JoyOutput(self._stop(now_ns), timed_out=True)
        if self.last_publish_ns is None or now_ns - self.last_publish_ns >= self.repeat_after_ns:
            return JoyOutput(self._sent(self.command, now_ns))
        return JoyOutput()

    def _stop(self, now_ns: int) -> Command | None:
        """One zero when the person was driving (then not any more), else nothing."""
        if self.command is None:
            return None
        self.command = None
        return self._sent(CAR.stop(), now_ns)

    def _sent(self, command: Command, now_ns: int) -> Command:
        self.last_publish_ns = now_ns
        return command.restamped(now_ns)
