"""The command mux's rules without ROS: who drives, and what goes out on ``cmd_vel`` and ``mux/active_source`` when.

:class:`MuxRules` is fed plain values, every time an integer of nanoseconds on the node clock: an input's message
(:meth:`MuxRules.on_input`), a lock's Bool (:meth:`MuxRules.on_lock`), the emergency stop (:meth:`MuxRules.set_e_stop`),
the autonomy switch and deadman (:meth:`MuxRules.set_autonomy`, :meth:`MuxRules.on_deadman`) and timer ticks
(:meth:`MuxRules.on_timer`). Each returns the :data:`Output` list to publish, in order. command_mux_node
(:mod:`lnn_control.nodes.mux`) is the adapter that feeds it and publishes; tests drive it in simulated time.

The rules, in the manner of twist_mux:

- **inputs** (:class:`InputSpec`: a topic, a priority, a timeout; by default ``teleop`` on ``teleop/cmd_vel``,
  priority 100, above ``policy`` on ``lnn/cmd_vel``, priority 10): an input is *fresh* while its last message is at
  most ``timeout`` old (a message "from the future", after the clock jumped back, is not fresh). An input marked
  ``autonomy`` (the policy) counts only while autonomy is **armed**;
- **autonomy** is armed by the switch (service ``~/autonomy``, or ``autonomy_on_start``) or while the deadman
  (``autonomy/enable``) keeps saying ``true`` within ``autonomy_timeout``; a ``false`` from the deadman ends its arming
  at once. Engaging the emergency stop disarms the switch: after a release, autonomy must be armed again;
- **locks** (:class:`LockSpec`: a Bool topic, a priority, a heartbeat timeout): a lock is engaged while its last
  message says ``true`` or, with a timeout > 0, when no message came for ``timeout`` (never heard counts as silent);
  an engaged lock blocks every input whose priority is at most its own;
- the **emergency stop** is a lock above everything: engaged by ``true`` on its topic or the service, released by
  ``false``; **latched** (it stays as last set) and, with ``e_stop_heartbeat`` > 0, also engaged while its topic is
  silent for longer than that (a dead e-stop publisher stops the vehicle). Its latched state can be stored
  (:class:`StoreEStop`, :func:`write_e_stop_state`) and read back at start (:func:`read_e_stop_state`);
- **who drives**: ``e_stop`` when engaged; else the fresh (and, for an autonomy input, armed) input of highest
  priority above every engaged lock; else the highest engaged lock's name; else ``none``;
- an input of the active source is forwarded at once, unchanged; on the timer, when nothing went out within 0.9 of a
  period, the latest input of the active source is sent again (restamped with the send time when the layout is
  stamped); while the e-stop or a lock holds the vehicle, zero goes out at once and then every period;
- with nobody driving (``none``: at start, or once the drivers went stale or unarmed) zero goes out every period for
  ``idle_tail`` seconds, then **nothing**, so a twist_mux or nav2 behind this mux can give lower-priority inputs
  their turn (``idle_tail: -1``: zero forever, for a lockstep simulator);
- the active source is sent at start, on every change and again whenever ``status_period`` passed since it was last
  sent.

The payload of an input is opaque here (the node passes its ROS message); the node restamps and builds the zero
messages as the outputs say.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lnn_control.ros.node_util import describe, param

POLICY, TELEOP, NONE, E_STOP = "policy", "teleop", "none", "e_stop"
#: Names that say nobody drives or the e-stop holds: no input or lock may take them.
RESERVED = (NONE, E_STOP)
#: A repeat waits until nothing went out for this share of a period.
REPEAT_AFTER = 0.9
#: The prefixes of the per-input and per-lock parameters: ``input.<name>.topic``, ``lock.<name>.timeout``, ...
INPUT_PREFIX, LOCK_PREFIX = "input.", "lock."
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
#: What :func:`read_e_stop_state` and :func:`write_e_stop_state` keep in the state file.
ENGAGED_TEXT, RELEASED_TEXT = "engaged", "released"


@dataclass(frozen=True)
class MuxConfig:
    """The fixed parameters of command_mux_node (config/mux.yaml); the inputs' and locks' own parameters are
    :class:`InputParams` and :class:`LockParams` under ``input.<name>.`` and ``lock.<name>.``."""

    stamped: bool = param(True, "inputs and output are geometry_msgs/TwistStamped (false: Twist)")
    frame_id: str = param("base_link", "header frame_id of the TwistStamped messages the mux makes itself")
    rate: float = param(
        20.0, "Hz: the active command (or zero) is re-published when nothing went out for a period", min=0.5, max=1000.0
    )
    status_period: float = param(
        1.0, "seconds between repeats of mux/active_source (it is also sent on change)", min=0.05, max=3600.0
    )
    idle_tail: float = param(
        0.5, "seconds of zero velocity after nobody drives any more (and at start), then silence on cmd_vel; -1: "
        "zero forever (a lockstep simulator steps on them)", min=-1.0, max=60.0,
    )
    inputs: list[str] = param(
        [TELEOP, POLICY], "the command inputs, each with input.<name>.topic, .priority, .timeout and .autonomy"
    )
    locks: list[str] = param([], "Bool locks beside the e-stop, each with lock.<name>.topic, .priority and .timeout")
    e_stop_on_start: bool = param(
        False, "start with the emergency stop engaged (when e_stop_state_file holds no state)"
    )
    e_stop_heartbeat: float = param(
        0.0, "seconds: > 0 engages the emergency stop while nothing came on e_stop for this long (a dead e-stop "
        "publisher stops the vehicle); 0: latched as last set by the topic or the service", min=0.0, max=60.0,
    )
    e_stop_state_file: str = param(
        "", "file that keeps the latched e-stop state across restarts (written atomically on every change, read at "
        "start; unreadable: engaged); empty: not kept",
    )
    autonomy_on_start: bool = param(
        False, "start with autonomy armed (the inputs marked autonomy, the policy, may drive at once); false: arm "
        "with service ~/autonomy or the deadman topic autonomy/enable",
    )
    autonomy_timeout: float = param(
        0.5, "seconds a true on autonomy/enable keeps autonomy armed (the deadman's heartbeat)", min=0.01, max=60.0
    )


@dataclass(frozen=True)
class InputParams:
    """One input's parameters (``input.<name>.*``); teleop's and policy's defaults: :data:`DEFAULT_INPUTS`."""

    topic: str = param("", "the input's topic (relative names are remappable); empty: <name>/cmd_vel")
    priority: int = param(50, "a higher priority wins; the inputs' priorities differ", min=0, max=1000)
    timeout: float = param(0.5, "seconds after its last message before the input counts as stale", min=0.01, max=60.0)
    autonomy: bool = param(False, "the input drives only while autonomy is armed (a policy, a planner)")


@dataclass(frozen=True)
class LockParams:
    """One lock's parameters (``lock.<name>.*``)."""

    topic: str = param("", "the lock's std_msgs/Bool topic; empty: <name>")
    priority: int = param(1000, "inputs of this priority or lower are blocked while the lock is engaged", min=0,
                          max=1000)
    timeout: float = param(
        0.0, "heartbeat: seconds of silence after which the lock engages (never heard counts); 0: none",
        min=0.0, max=3600.0,
    )


@dataclass(frozen=True)
class InputSpec:
    """A command input: its name (the ``mux/active_source`` value while it drives), topic, priority and timeout."""

    name: str
    topic: str
    priority: int
    timeout: float = 0.5
    autonomy: bool = False


@dataclass(frozen=True)
class LockSpec:
    """A lock: engaged while its Bool says true, or (``timeout`` > 0) while it is silent for longer than that."""

    name: str
    topic: str
    priority: int = 1000
    timeout: float = 0.0


#: Today's two inputs, with their defaults (a person above the policy; the recorder and DAgger key on the names).
DEFAULT_INPUTS: dict[str, InputSpec] = {
    TELEOP: InputSpec(TELEOP, "teleop/cmd_vel", 100, 0.5),
    POLICY: InputSpec(POLICY, "lnn/cmd_vel", 10, 0.5, autonomy=True),
}


def default_input(name: str) -> InputSpec:
    """The defaults of input ``name``: :data:`DEFAULT_INPUTS`' for teleop and policy, else :class:`InputParams`'."""
    if name in DEFAULT_INPUTS:
        return DEFAULT_INPUTS[name]
    return InputSpec(name, f"{name}/cmd_vel", InputParams.priority, InputParams.timeout, InputParams.autonomy)


def default_lock(name: str) -> LockSpec:
    """The defaults of lock ``name`` (topic: the name itself)."""
    return LockSpec(name, name, LockParams.priority, LockParams.timeout)


def parameter_specs(inputs: Iterable[str] | None = None, locks: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Every parameter command_mux_node declares with these inputs and locks (default: :class:`MuxConfig`'s), with
    the per-name defaults, as :func:`~lnn_control.ros.node_util.describe` lists them."""
    specs = describe(MuxConfig)
    for name in MuxConfig().inputs if inputs is None else inputs:
        default = default_input(name)
        for spec in describe(InputParams):
            field = spec["name"]
            specs.append({**spec, "name": f"{INPUT_PREFIX}{name}.{field}", "default": getattr(default, field)})
    for name in locks:
        default = default_lock(name)
        for spec in describe(LockParams):
            field = spec["name"]
            specs.append({**spec, "name": f"{LOCK_PREFIX}{name}.{field}", "default": getattr(default, field)})
    return specs


def check_names(inputs: Sequence[InputSpec], locks: Sequence[LockSpec]) -> None:
    """``ValueError`` naming the problem: no inputs, a bad or repeated name, a reserved one, equal priorities."""
    if not inputs:
        raise ValueError("parameter 'inputs' is empty: the mux needs at least one input")
    names = [spec.name for spec in (*inputs, *locks)]
    for name in names:
        if not _NAME.fullmatch(name):
            raise ValueError(f"input or lock name {name!r}: use letters, digits and _ (starting with a letter)")
        if name in RESERVED:
            raise ValueError(f"input or lock name {name!r} is reserved ({', '.join(RESERVED)})")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"inputs and locks need distinct names; repeated: {', '.join(repeated)}")
    priorities = [spec.priority for spec in inputs]
    if len(set(priorities)) != len(priorities):
        raise ValueError("the inputs need distinct priorities: " + ", ".join(f"{s.name} {s.priority}" for s in inputs))


# -- the persisted e-stop ------------------------------------------------------------------------------------------


def read_e_stop_state(path: str | Path) -> tuple[bool | None, str]:
    """The latched e-stop state kept in ``path``: (True, "") engaged, (False, "") released, (None, "") no file yet,
    (True, why) when the file cannot be read or holds something else (fail safe: engaged)."""
    try:
        text = Path(path).expanduser().read_text().strip()
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        return True, f"cannot read {path} ({exc.strerror or exc}): starting engaged"
    if text in (ENGAGED_TEXT, RELEASED_TEXT):
        return text == ENGAGED_TEXT, ""
    return True, f"{path} holds {text[:40]!r}, not {ENGAGED_TEXT!r} or {RELEASED_TEXT!r}: starting engaged"


def write_e_stop_state(path: str | Path, engaged: bool) -> None:
    """Keep the latched e-stop state in ``path`` atomically (a temporary file beside it, fsynced, renamed over it)."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write((ENGAGED_TEXT if engaged else RELEASED_TEXT) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # the rename itself survives a power cut once the folder is synced
        folder = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


# -- outputs ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendCommand:
    """Publish ``payload``, an input of the active source, on ``cmd_vel``: as it is when ``restamp_ns`` is None,
    else as a copy whose header stamp is ``restamp_ns`` (a stamped repeat)."""

    payload: Any
    restamp_ns: int | None = None


@dataclass(frozen=True)
class SendZero:
    """Publish zero velocity on ``cmd_vel``, stamped ``stamp_ns`` when the layout is stamped."""

    stamp_ns: int


@dataclass(frozen=True)
class SendSource:
    """Publish ``source`` on ``mux/active_source``; ``previous`` is the source before a change, else ``source``
    (a repeat), or ``""`` the first time."""

    source: str
    previous: str

    @property
    def changed(self) -> bool:
        """A change from one source to another (the first one is not a change)."""
        return bool(self.previous) and self.previous != self.source


@dataclass(frozen=True)
class StoreEStop:
    """The latched e-stop state changed to ``engaged``: keep it (``e_stop_state_file``)."""

    engaged: bool


@dataclass(frozen=True)
class SendAutonomy:
    """Autonomy became armed (or disarmed): publish it on ``mux/autonomy``; ``first``: the state at start."""

    armed: bool
    first: bool = False


#: What :class:`MuxRules` asks the node to do.
Output = SendCommand | SendZero | SendSource | StoreEStop | SendAutonomy


def _fresh(last_ns: int | None, now_ns: int, timeout_ns: int) -> bool:
    return last_ns is not None and 0 <= now_ns - last_ns <= timeout_ns


class MuxRules:
    """The mux's decisions on plain values; see the module docstring.

    ``inputs`` default to ``config.inputs`` with their defaults (:func:`default_input`), ``locks`` to
    ``config.locks`` (:func:`default_lock`); ``e_stop_engaged`` is the stored latched state (None:
    ``config.e_stop_on_start``).
    """

    def __init__(
        self,
        config: MuxConfig,
        inputs: Sequence[InputSpec] | None = None,
        locks: Sequence[LockSpec] | None = None,
        *,
        e_stop_engaged: bool | None = None,
    ) -> None:
        self.config = config
        inputs = [default_input(n) for n in config.inputs] if inputs is None else list(inputs)
        locks = [default_lock(n) for n in config.locks] if locks is None else list(locks)
        check_names(inputs, locks)
        self.inputs = sorted(inputs, key=lambda spec: -spec.priority)  # the first fresh one wins
        self.locks = sorted(locks, key=lambda spec: -spec.priority)
        self.by_name = {spec.name: spec for spec in self.inputs}
        self.lock_names = {spec.name for spec in self.locks}
        self.period_ns = int(1e9 / config.rate)
        self.status_period_ns = int(config.status_period * 1e9)
        self.tail_ns = int(config.idle_tail * 1e9)
        self.e_stop_heartbeat_ns = int(config.e_stop_heartbeat * 1e9)
        self.autonomy_timeout_ns = int(config.autonomy_timeout * 1e9)
        self.e_stop_latched = bool(config.e_stop_on_start if e_stop_engaged is None else e_stop_engaged)
        self.e_stop_heard_ns: int | None = None  # the latest message on the e-stop topic (its heartbeat)
        self.autonomy_switch = bool(config.autonomy_on_start)
        self.deadman_ns: int | None = None  # the latest true on autonomy/enable
        self.last_input_ns: dict[str, int] = {}
        self.latest: dict[str, Any] = {}  # input -> its latest message
        self.lock_value: dict[str, bool] = {}
        self.lock_heard_ns: dict[str, int] = {}
        self.active = ""
        self.armed: bool | None = None  # as last sent
        self.idle_since_ns: int | None = None  # when nobody drives any more
        self.last_publish_ns: int | None = None  # the latest command or zero that went out
        self.last_status_ns: int | None = None  # the latest mux/active_source that went out

    # -- state at a time --------------------------------------------------------------------------------------------

    def e_stop_engaged(self, now_ns: int) -> bool:
        """Latched, or (with a heartbeat) its topic silent for longer than ``e_stop_heartbeat``."""
        if self.e_stop_latched:
            return True
        return self.e_stop_heartbeat_ns > 0 and not _fresh(self.e_stop_heard_ns, now_ns, self.e_stop_heartbeat_ns)

    def autonomy_armed(self, now_ns: int) -> bool:
        """Armed by the switch, or by a deadman true at most ``autonomy_timeout`` old."""
        return self.autonomy_switch or _fresh(self.deadman_ns, now_ns, self.autonomy_timeout_ns)

    def lock_engaged(self, spec: LockSpec, now_ns: int) -> bool:
        """True while its last message said true, or (timeout > 0) it has been silent for longer than ``timeout``."""
        if self.lock_value.get(spec.name, False):
            return True
        return spec.timeout > 0 and not _fresh(self.lock_heard_ns.get(spec.name), now_ns, int(spec.timeout * 1e9))

    def source(self, now_ns: int) -> str:
        """Who drives at ``now_ns``: ``e_stop``, an input's name, a lock's name or ``none``."""
        if self.e_stop_engaged(now_ns):
            return E_STOP
        lock = next((spec for spec in self.locks if self.lock_engaged(spec, now_ns)), None)
        armed = self.autonomy_armed(now_ns)
        for spec in self.inputs:
            if lock is not None and spec.priority <= lock.priority:
                break
            if (armed or not spec.autonomy) and _fresh(self.last_input_ns.get(spec.name), now_ns,
                                                       int(spec.timeout * 1e9)):
                return spec.name
        return NONE if lock is None else lock.name

    # -- events -----------------------------------------------------------------------------------------------------

    def start(self, now_ns: int) -> list[Output]:
        """The first active source and autonomy state, to send when the node is up."""
        return self._update(now_ns)

    def on_input(self, name: str, payload: Any, now_ns: int) -> list[Output]:
        """A message of input ``name`` arrived at ``now_ns``: forwarded at once if that input drives."""
        if name not in self.by_name:
            raise ValueError(f"not an input: {name!r} (inputs: {', '.join(self.by_name)})")
        self.last_input_ns[name] = now_ns
        self.latest[name] = payload
        outputs = self._update(now_ns)
        if self.active == name:
            outputs.append(self._sent(SendCommand(payload), now_ns))
        return outputs

    def on_lock(self, name: str, engaged: bool, now_ns: int) -> list[Output]:
        """Lock ``name`` said ``engaged`` at ``now_ns`` (also its heartbeat)."""
        if name not in self.lock_names:
            raise ValueError(f"not a lock: {name!r} (locks: {', '.join(sorted(self.lock_names)) or 'none'})")
        self.lock_value[name] = bool(engaged)
        self.lock_heard_ns[name] = now_ns
        return self._update(now_ns)

    def set_e_stop(self, engaged: bool, now_ns: int, *, heard: bool = False) -> list[Output]:
        """Engage or release the latched emergency stop (``heard``: a message of its topic, its heartbeat too);
        engaging sends zero at once, and disarms the autonomy switch."""
        outputs: list[Output] = []
        if heard:
            self.e_stop_heard_ns = now_ns
        if bool(engaged) != self.e_stop_latched:
            self.e_stop_latched = bool(engaged)
            outputs.append(StoreEStop(self.e_stop_latched))
        if engaged:
            self.autonomy_switch = False
        before = self.active
        outputs += self._update(now_ns)
        if engaged and before == self.active:  # a change to e_stop sent its zero already
            outputs.append(self._sent(SendZero(now_ns), now_ns))
        return outputs

    def set_autonomy(self, armed: bool, now_ns: int) -> list[Output]:
        """The autonomy switch (service ``~/autonomy``): arm or disarm."""
        self.autonomy_switch = bool(armed)
        return self._update(now_ns)

    def on_deadman(self, held: bool, now_ns: int) -> list[Output]:
        """``autonomy/enable`` said ``held`` at ``now_ns``: true arms for ``autonomy_timeout``, false ends it now."""
        self.deadman_ns = now_ns if held else None
        return self._update(now_ns)

    def on_timer(self, now_ns: int) -> list[Output]:
        """A timer tick: the source when due, and the repeat (or zero, or nothing after the idle tail) when nothing
        went out within the period."""
        outputs = self._update(now_ns)
        if self.last_status_ns is None or now_ns - self.last_status_ns >= self.status_period_ns:
            outputs.append(self._status(now_ns, self.active))
        if self.last_publish_ns is not None and 0 <= now_ns - self.last_publish_ns < self.period_ns * REPEAT_AFTER:
            return outputs  # something went out within this period already
        if self.active in self.by_name:
            restamp = now_ns if self.config.stamped else None
            outputs.append(self._sent(SendCommand(self.latest[self.active], restamp), now_ns))
        elif self.active != NONE or self.in_tail(now_ns):
            outputs.append(self._sent(SendZero(now_ns), now_ns))
        return outputs

    # -- helpers ----------------------------------------------------------------------------------------------------

    def in_tail(self, now_ns: int) -> bool:
        """Whether zeros still go out for nobody at ``now_ns`` (within ``idle_tail`` of the start of ``none``)."""
        if self.tail_ns < 0:
            return True
        return self.idle_since_ns is not None and now_ns - self.idle_since_ns <= self.tail_ns

    def _update(self, now_ns: int) -> list[Output]:
        outputs: list[Output] = []
        source = self.source(now_ns)
        if source == E_STOP and self.autonomy_switch:  # a heartbeat that died disarms too
            self.autonomy_switch = False
        armed = self.autonomy_armed(now_ns)
        if armed != self.armed:
            outputs.append(SendAutonomy(armed, first=self.armed is None))
            self.armed = armed
        if source != self.active:
            previous, self.active = self.active, source
            outputs.append(self._status(now_ns, previous))
            if source == NONE:
                self.idle_since_ns = now_ns
            elif source not in self.by_name:  # the e-stop or a lock holds the vehicle: zero at once
                outputs.append(self._sent(SendZero(now_ns), now_ns))
        return outputs

    def _status(self, now_ns: int, previous: str) -> SendSource:
        self.last_status_ns = now_ns
        return SendSource(self.active, previous)

    def _sent(self, output: SendCommand | SendZero, now_ns: int) -> SendCommand | SendZero:
        self.last_publish_ns = now_ns
        return output

