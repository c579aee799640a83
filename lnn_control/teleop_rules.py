"""The teleop nodes' rules without ROS: keys and gamepad states -> commands, and when a command goes out.

teleop_keyboard_node (:mod:`lnn_control.nodes.teleop_keyboard`) and joy_teleop_node
(:mod:`lnn_control.nodes.joy_teleop`) are adapters: they read the terminal or the Joy messages, feed these classes
plain values and times, and publish and log what they return. Tests drive the classes in simulated time.

Both drive a car or a drone, as their parameter ``action`` says (:data:`ACTIONS`): the command is then a
:data:`~lnn_control.command.CAR` command (steering, velocity) or a :data:`~lnn_control.command.DRONE` command (vx,
vy, vz, yaw_rate); the keys and the sticks differ (see the nodes' docstrings), the publishing rules below do not.

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
- the e-stop button asks for the emergency stop when it goes down, once: holding it asks nothing more;
- the autonomy button (a deadman for the policy): while it is held, ``true`` goes out on every Joy message and again
  once :data:`REPEAT_AFTER` of a period passed; let go, one ``false``; no Joy message for more than ``joy_timeout``
  while held, one ``false`` (the mux disarms), then nothing until it is held again.

Parameters that only one action reads say so at the start of their description (``car:`` or ``drone:``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from lnn_control.command import CAR, DRONE, Command, schema_from
from lnn_control.ros.node_util import param

ARROWS = {"\x1b[A": "up", "\x1b[B": "down", "\x1b[C": "right", "\x1b[D": "left"}
#: A repeat goes out once this share of a period passed since the last publication (timers fire a little early).
REPEAT_AFTER = 0.95
#: :attr:`KeyOutput.problem`: sim time, but the node clock has no time yet (nothing published).
NO_CLOCK = "no clock"
#: :attr:`KeyOutput.problem`: the stamp is older than the last one published (published all the same).
BACKWARDS = "backwards"
#: The values of the nodes' ``action`` parameter: the schema of the commands they publish.
ACTIONS = (CAR.name, DRONE.name)
#: The drone's keys: key -> (field, direction). +vy is left, +vz up, +yaw_rate counter-clockwise (REP 103).
DRONE_KEYS: dict[str, tuple[str, int]] = {
    "w": ("vx", +1), "s": ("vx", -1),
    "a": ("vy", +1), "d": ("vy", -1),
    "up": ("vz", +1), "t": ("vz", +1), "down": ("vz", -1), "b": ("vz", -1),
    "q": ("yaw_rate", +1), "left": ("yaw_rate", +1), "e": ("yaw_rate", -1), "right": ("yaw_rate", -1),
}  # fmt: skip


def _clamp(value: float, limit: float) -> float:
    return max(-limit, min(value, limit))


# -- keyboard ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyTeleopConfig:
    """Parameters of teleop_keyboard_node (config/teleop.yaml; the drone's: config/teleop_drone.yaml)."""

    action: str = param(
        "car", "what the keys command: a car (steering, velocity) or a drone (vx, vy, vz, yaw_rate)", choices=ACTIONS
    )
    stamped: bool = param(True, "publish geometry_msgs/TwistStamped (false: Twist)")
    frame_id: str = param("base_link", "header frame_id of TwistStamped commands")
    rate: float = param(20.0, "Hz (wall time) at which the command is repeated while you drive", min=1.0, max=1000.0)
    speed_step: float = param(
        0.1, "m/s added or removed per key press (car: w/s on the velocity; drone: w/s on vx, a/d on vy)",
        min=0.001, max=100.0,
    )
    steering_step: float = param(0.1, "car: normalised steering added or removed per key press", min=0.001, max=1.0)
    max_speed: float = param(
        2.0, "largest speed, m/s (car: forward velocity; drone: horizontal speed, the norm of vx and vy)",
        min=0.0, max=100.0,
    )
    max_reverse_speed: float = param(0.5, "car: largest reverse velocity, m/s (0: no reversing)", min=0.0, max=100.0)
    max_steering: float = param(1.0, "car: largest |steering| (normalised, 1 = full lock)", min=0.0, max=1.0)
    climb_step: float = param(0.1, "drone: m/s of vz added or removed per up/down (t/b) press", min=0.001, max=5.0)
    max_climb: float = param(1.0, "drone: largest |vz|, m/s, climbing or descending", min=0.0, max=5.0)
    yaw_step: float = param(
        0.1, "drone: rad/s of yaw rate added or removed per q/e (left/right) press", min=0.001, max=math.pi
    )
    max_yaw_rate: float = param(1.0, "drone: largest |yaw_rate|, rad/s", min=0.0, max=math.pi)
    steering_hold: bool = param(
        False, "steer (car) or yaw (drone) only while a steering or yaw key is held (auto-repeat); centre (car) or "
        "stop yawing (drone) when it is let go. false: presses step the steering or yaw rate and it stays"
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
    """A steering (car) or yaw (drone) key held down, as far as its auto-repeat tells."""

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

    The command is the car's (:attr:`steering`, :attr:`velocity`) or the drone's (:attr:`vx`, :attr:`vy`,
    :attr:`vz`, :attr:`yaw_rate`), as ``config.action`` says. Times (``now``, seconds on any monotonic clock)
    matter only with ``steering_hold``.

    The drone's horizontal limit is a norm: a w/s/a/d key changes only its own axis, and stops where
    ``hypot(vx, vy)`` reaches ``max_speed`` (full speed forward leaves no room to the side: slow down first).
    """

    def __init__(self, config: KeyTeleopConfig | None = None) -> None:
        self.config = config or KeyTeleopConfig()
        self.schema = schema_from(self.config.action)
        self.drone = self.schema is DRONE
        self.velocity = 0.0
        self.steering = 0.0
        self.vx = self.vy = self.vz = self.yaw_rate = 0.0
        self.active = False
        self.quit = False
        self._pending = ""
        self._hold: _Hold | None = None
        c = self.config
        # what the steering keys turn: the car's wheel or the drone's yaw rate
        self._turn, self._turn_step, self._turn_max = (
            ("yaw_rate", c.yaw_step, c.max_yaw_rate) if self.drone else ("steering", c.steering_step, c.max_steering)
        )

    def command(self, stamp_ns: int = 0) -> Command:
        """The command to publish now."""
        return self.schema.of(stamp_ns, **{name: getattr(self, name) for name in self.schema.names})

    def describe(self) -> str:
        """The command, for the terminal's status line."""
        if self.drone:
            return f"vx {self.vx:+.2f} vy {self.vy:+.2f} vz {self.vz:+.2f} m/s, yaw {self.yaw_rate:+.2f} rad/s"
        return f"velocity {self.velocity:+.2f} m/s, steering {self.steering:+.2f}"

    def _zero(self) -> None:
        for name in self.schema.names:
            setattr(self, name, 0.0)
        self._hold = None

    def press(self, key: str, now: float = 0.0) -> str | None:
        """Apply one key (a character, or ``up``/``down``/``left``/``right``) at ``now``; what it did, or None if
        unknown."""
        if key in ("\x03", "\x04"):  # Ctrl-C, Ctrl-D
            self.quit = True
            return "quit"
        if key in ("r", "\t"):
            self.active = False
            self._zero()
            return "released: the policy may drive"
        if key in (" ", "x"):
            self._zero()
        elif key == "c":
            setattr(self, self._turn, 0.0)
            self._hold = None
        elif not (self._press_drone(key, now) if self.drone else self._press_car(key, now)):
            return None
        # round away float drift (0.1 + 0.2 ...), so repeated steps land on the grid (+ 0.0: no negative zero)
        for name in self.schema.names:
            setattr(self, name, round(getattr(self, name), 9) + 0.0)
        self.active = True
        return self.describe()

    def _press_car(self, key: str, now: float) -> bool:
        c = self.config
        if key in ("w", "up"):
            self.velocity = min(self.velocity + c.speed_step, c.max_speed)
        elif key in ("s", "down"):
            self.velocity = max(self.velocity - c.speed_step, -c.max_reverse_speed)
        elif key in ("a", "left"):
            self._steer(+1, now)
        elif key in ("d", "right"):
            self._steer(-1, now)
        else:
            return False
        return True

    def _press_drone(self, key: str, now: float) -> bool:
        if key not in DRONE_KEYS:
            return False
        name, direction = DRONE_KEYS[key]
        c = self.config
        if name == "yaw_rate":
            self._steer(direction, now)
        elif name == "vz":
            self.vz = _clamp(self.vz + direction * c.climb_step, c.max_climb)
        else:  # vx or vy: only this axis changes, inside the circle of radius max_speed
            current, other = (self.vx, self.vy) if name == "vx" else (self.vy, self.vx)
            room = math.sqrt(max(0.0, c.max_speed**2 - other**2))
            setattr(self, name, _clamp(current + direction * c.speed_step, max(room, abs(current))))
        return True

    def _steer(self, direction: int, now: float) -> None:
        c = self.config
        if c.steering_hold:
            hold = self._hold
            if hold is not None and hold.direction == direction and now <= hold.until(c):
                hold.repeats += 1
                hold.last = now
            else:  # a new hold starts from the centre, whatever the last one left
                self._hold = _Hold(direction, first=now, last=now)
                setattr(self, self._turn, 0.0)
        setattr(self, self._turn, _clamp(getattr(self, self._turn) + direction * self._turn_step, self._turn_max))

    def expire(self, now: float) -> str | None:
        """With ``steering_hold``: centre the steering (car) or stop the yaw (drone) once its key counts as let go at
        ``now``; what it did."""
        hold = self._hold
        if hold is None or now <= hold.until(self.config):
            return None
        self._hold = None
        setattr(self, self._turn, 0.0)
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

#: The command fields each action reads from the sticks, in the order a missing axis is reported. Each field has
#: the parameters ``axis_<field>``, ``scale_<field>`` and ``invert_<field>``.
JOY_FIELDS: dict[str, tuple[str, ...]] = {
    CAR.name: ("velocity", "steering"),
    DRONE.name: ("vx", "vy", "vz", "yaw_rate"),
}


@dataclass(frozen=True)
class JoyTeleopConfig:
    """Parameters of joy_teleop_node (config/teleop.yaml; the drone's: config/teleop_drone.yaml).

    Axis defaults follow joy_node (and joy_linux) on an Xbox-style pad under Linux (xpad): axes 0/1 left stick
    x/y, 2 left trigger, 3/4 right stick x/y, 5 right trigger; stick left and stick up are positive. joy's
    game_controller_node orders them 0/1 left x/y, 2/3 right x/y, 4/5 triggers: there the drone needs
    ``axis_vy: 2, axis_vx: 3``.
    """

    action: str = param(
        "car", "what the sticks command: a car (steering, velocity) or a drone (vx, vy, vz, yaw_rate)",
        choices=ACTIONS,
    )
    stamped: bool = param(True, "publish geometry_msgs/TwistStamped (false: Twist)")
    frame_id: str = param("base_link", "header frame_id of TwistStamped commands")
    axis_velocity: int = param(1, "car: Joy axis for velocity (left stick vertical on most gamepads)", min=0, max=63)
    axis_steering: int = param(0, "car: Joy axis for steering (left stick horizontal on most gamepads)", min=0, max=63)
    scale_velocity: float = param(1.0, "car: m/s at full stick", min=0.0, max=100.0)
    scale_steering: float = param(1.0, "car: normalised steering at full stick", min=0.0, max=1.0)
    invert_velocity: bool = param(False, "car: flip the velocity axis")
    invert_steering: bool = param(False, "car: flip the steering axis")
    allow_reverse: bool = param(True, "car: negative velocities allowed (false: clamped to zero)")
    axis_vx: int = param(4, "drone: Joy axis for vx, forward (mode 2: right stick vertical, up = +)", min=0, max=63)
    axis_vy: int = param(3, "drone: Joy axis for vy, left (mode 2: right stick horizontal, left = +)", min=0, max=63)
    axis_vz: int = param(1, "drone: Joy axis for vz, up (mode 2: left stick vertical, up = +)", min=0, max=63)
    axis_yaw_rate: int = param(
        0, "drone: Joy axis for the yaw rate, counter-clockwise (mode 2: left stick horizontal, left = +)",
        min=0, max=63,
    )
    scale_vx: float = param(1.0, "drone: vx at full stick, m/s", min=0.0, max=10.0)
    scale_vy: float = param(1.0, "drone: vy at full stick, m/s", min=0.0, max=10.0)
    scale_vz: float = param(0.5, "drone: vz at full stick, m/s", min=0.0, max=5.0)
    scale_yaw_rate: float = param(1.0, "drone: yaw rate at full stick, rad/s", min=0.0, max=math.pi)
    invert_vx: bool = param(False, "drone: flip the vx axis")
    invert_vy: bool = param(False, "drone: flip the vy axis")
    invert_vz: bool = param(False, "drone: flip the vz axis")
    invert_yaw_rate: bool = param(False, "drone: flip the yaw-rate axis")
    deadzone: float = param(0.05, "stick values smaller than this (absolute) count as zero", min=0.0, max=0.99)
    enable_button: int = param(4, "deadman button that must be held to drive (-1: none)", min=-1, max=127)
    e_stop_button: int = param(-1, "button that engages the mux's emergency stop (-1: none)", min=-1, max=127)
    autonomy_button: int = param(
        -1, "button held to arm the mux's autonomy (the policy may drive): true on autonomy/enable while held, "
        "false when let go (-1: none)", min=-1, max=127,
    )
    rate: float = param(20.0, "Hz at which the command is repeated while the deadman is held", min=1.0, max=1000.0)
    joy_timeout: float = param(0.5, "stop repeating when no Joy message came for this long (s)", min=0.01, max=60.0)


class JoyMappingError(ValueError):
    """The Joy message lacks an axis or button the configuration names."""


class JoyMapping:
    """Joy axes and buttons -> a :class:`Command` of ``config.action``, or None while the deadman is not held.

    Each field of :data:`JOY_FIELDS` is ``scale_<field> * axes[axis_<field>]`` (flipped by ``invert_<field>``, zero
    inside ``deadzone``, the axis clamped to [-1, 1]); the drone's axes are independent (full stick forward and to
    the side gives ``scale_vx`` and ``scale_vy`` together).
    """

    def __init__(self, config: JoyTeleopConfig | None = None) -> None:
        self.config = config or JoyTeleopConfig()
        self.schema = schema_from(self.config.action)
        self.fields = JOY_FIELDS[self.schema.name]

    def describe(self) -> str:
        """``velocity axis 1 x 1.0 m/s, steering axis 0 x 1.0``: the axes, for the node's start-up line."""
        c = self.config
        parts = []
        for name in self.fields:
            unit = self.schema.field(name).unit
            inverted = " inverted" if getattr(c, f"invert_{name}") else ""
            parts.append(f"{name} axis {getattr(c, f'axis_{name}')}{inverted} x {getattr(c, f'scale_{name}'):g}"
                         + ("" if unit == "1" else f" {unit}"))  # fmt: skip
        return ", ".join(parts)

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

    def stick(self, axes: Sequence[float], name: str) -> float:
        """Field ``name``'s value for these axes: scaled, inverted, deadzone applied."""
        c = self.config
        axis = self._axis(axes, getattr(c, f"axis_{name}"), f"axis_{name}", getattr(c, f"invert_{name}"))
        return getattr(c, f"scale_{name}") * axis + 0.0  # + 0.0: no negative zero

    def map(self, axes: Sequence[float], buttons: Sequence[int], stamp_ns: int = 0) -> Command | None:
        """The command for this Joy state, or None when the deadman button is not held."""
        if not self.enabled(buttons):
            return None
        values = {name: self.stick(axes, name) for name in self.fields}
        if self.schema is CAR and not self.config.allow_reverse:
            values["velocity"] = max(values["velocity"], 0.0)
        return self.schema.of(stamp_ns, **values)


@dataclass(frozen=True)
class JoyOutput:
    """What joy_teleop_node does after a Joy message or a tick, in this order: when ``e_stop``, publish ``true`` on
    ``e_stop`` and warn; warn about ``error`` (the mapping's complaint, ``""`` if none) and, when ``timed_out``,
    that repeating stopped; publish ``autonomy`` on ``autonomy/enable`` unless it is None; publish ``command``
    (stamped with the time given) unless it is None."""

    command: Command | None = None
    e_stop: bool = False
    error: str = ""
    timed_out: bool = False
    autonomy: bool | None = None


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
        self.autonomy_held = False
        self.last_autonomy_ns: int | None = None  # the latest true on autonomy/enable

    def on_joy(self, axes: Sequence[float], buttons: Sequence[int], now_ns: int) -> JoyOutput:
        """A Joy message arrived at ``now_ns``."""
        self.last_joy_ns = now_ns
        pressed = self.mapping.e_stop(buttons)
        e_stop = pressed and not self.e_stop_pressed
        self.e_stop_pressed = pressed
        autonomy = self._autonomy(buttons, now_ns)
        try:
            command = self.mapping.map(axes, buttons)
        except JoyMappingError as exc:
            return JoyOutput(self._stop(now_ns), e_stop=e_stop, error=str(exc), autonomy=autonomy)
        if command is None:
            return JoyOutput(self._stop(now_ns), e_stop=e_stop, autonomy=autonomy)
        self.command = command
        return JoyOutput(self._sent(command, now_ns), e_stop=e_stop, autonomy=autonomy)

    def on_timer(self, now_ns: int) -> JoyOutput:
        """A tick of the repeat timer at ``now_ns``: the repeats when due, or the stops after ``joy_timeout``."""
        if self.last_joy_ns is None:
            return JoyOutput()
        timed_out = now_ns - self.last_joy_ns > self.timeout_ns
        autonomy = None
        if self.autonomy_held and timed_out:
            self.autonomy_held = False
            autonomy = False
        elif self.autonomy_held and now_ns - (self.last_autonomy_ns or 0) >= self.repeat_after_ns:
            self.last_autonomy_ns = now_ns
            autonomy = True
        if self.command is None:
            return JoyOutput(autonomy=autonomy)
        if timed_out:
            return JoyOutput(self._stop(now_ns), timed_out=True, autonomy=autonomy)
        if self.last_publish_ns is None or now_ns - self.last_publish_ns >= self.repeat_after_ns:
            return JoyOutput(self._sent(self.command, now_ns), autonomy=autonomy)
        return JoyOutput(autonomy=autonomy)

    def _autonomy(self, buttons: Sequence[int], now_ns: int) -> bool | None:
        """The autonomy deadman for this Joy state: true while held, one false when let go, else None."""
        index = self.config.autonomy_button
        held = 0 <= index < len(buttons) and bool(buttons[index])
        if held:
            self.autonomy_held = True
            self.last_autonomy_ns = now_ns
            return True
        if self.autonomy_held:
            self.autonomy_held = False
            return False
        return None

    def _stop(self, now_ns: int) -> Command | None:
        """One zero when the person was driving (then not any more), else nothing."""
        if self.command is None:
            return None
        self.command = None
        return self._sent(self.mapping.schema.stop(), now_ns)

    def _sent(self, command: Command, now_ns: int) -> Command:
        self.last_publish_ns = now_ns
        return command.restamped(now_ns)
