"""The command mux's rules without ROS: who drives, and what goes out on ``cmd_vel`` and ``mux/active_source`` when.

:class:`MuxRules` is fed plain values, every time an integer of nanoseconds on the node clock: an input of a source
(:meth:`MuxRules.on_input`), a timer tick (:meth:`MuxRules.on_timer`), the emergency stop
(:meth:`MuxRules.set_e_stop`). Each returns the :data:`Output` list to publish, in order. command_mux_node
(:mod:`lnn_control.nodes.mux`) is the adapter that feeds it and publishes; tests drive it in simulated time.

The rules:

- who drives (:class:`Arbiter`): the emergency stop, latched until released; else a person whose last message is at
  most ``teleop_timeout`` old; else a policy whose last message is at most ``policy_timeout`` old; else nobody;
- an input of the active source is forwarded at once, unchanged;
- on the timer, when nothing went out within 0.9 of a period, the latest input of the active source is sent again,
  restamped with the send time when the layout is stamped, or zero velocity stamped now when nobody drives;
- engaging the emergency stop sends zero at once;
- the active source is sent at start, on every change and again whenever ``status_period`` passed since it was last
  sent.

The payload of an input is opaque here (the node passes its ROS message); the node restamps and builds the zero
messages as the outputs say.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lnn_control.ros.node_util import param

POLICY, TELEOP, NONE, E_STOP = "policy", "teleop", "none", "e_stop"
SOURCES = (TELEOP, POLICY, NONE, E_STOP)
#: The sources that send their own commands (the others send zero).
DRIVERS = (TELEOP, POLICY)
#: A repeat waits until nothing went out for this share of a period.
REPEAT_AFTER = 0.9


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


#: What :class:`MuxRules` asks the node to publish.
Output = SendCommand | SendZero | SendSource


class MuxRules:
    """The mux's repeat, restamp and timeout rules on plain values; see the module docstring."""

    def __init__(self, config: MuxConfig) -> None:
        self.config = config
        self.arbiter = Arbiter(config)
        self.period_ns = int(1e9 / config.rate)
        self.status_period_ns = int(config.status_period * 1e9)
        self.latest: dict[str, Any] = {}  # source -> its latest input
        self.active = ""
        self.last_publish_ns: int | None = None  # the latest command or zero that went out
        self.last_status_ns: int | None = None  # the latest mux/active_source that went out

    @property
    def e_stop(self) -> bool:
        """Whether the emergency stop is engaged."""
        return self.arbiter.e_stop

    def start(self, now_ns: int) -> list[Output]:
        """The first active source, to send when the node is up."""
        return self._update_source(now_ns)

    def on_input(self, source: str, payload: Any, now_ns: int) -> list[Output]:
        """An input of ``source`` (``teleop`` or ``policy``) arrived at ``now_ns``: forwarded at once if it drives."""
        if source not in DRIVERS:
            raise ValueError(f"not an input source: {source!r}")
        if source == TELEOP:
            self.arbiter.last_teleop_ns = now_ns
        else:
            self.arbiter.last_policy_ns = now_ns
        self.latest[source] = payload
        outputs = self._update_source(now_ns)
        if self.active == source:
            outputs.append(self._sent(SendCommand(payload), now_ns))
        return outputs

    def set_e_stop(self, engaged: bool, now_ns: int) -> list[Output]:
        """Engage or release the emergency stop; engaging sends zero at once."""
        self.arbiter.e_stop = bool(engaged)
        outputs = self._update_source(now_ns)
        if engaged:
            outputs.append(self._sent(SendZero(now_ns), now_ns))
        return outputs

    def on_timer(self, now_ns: int) -> list[Output]:
        """A timer tick: the source when due, and the repeat (or zero) when nothing went out within the period."""
        outputs = self._update_source(now_ns)
        if self.last_status_ns is None or now_ns - self.last_status_ns >= self.status_period_ns:
            outputs.append(self._status(now_ns, self.active))
        if self.last_publish_ns is not None and 0 <= now_ns - self.last_publish_ns < self.period_ns * REPEAT_AFTER:
            return outputs  # something went out within this period already
        payload = self.latest.get(self.active) if self.active in DRIVERS else None
        if payload is None:
            outputs.append(self._sent(SendZero(now_ns), now_ns))
        else:
            outputs.append(self._sent(SendCommand(payload, now_ns if self.config.stamped else None), now_ns))
        return outputs

    def _update_source(self, now_ns: int) -> list[Output]:
        source = self.arbiter.source(now_ns)
        if source == self.active:
            return []
        previous, self.active = self.active, source
        return [self._status(now_ns, previous)]

    def _status(self, now_ns: int, previous: str) -> SendSource:
        self.last_status_ns = now_ns
        return SendSource(self.active, previous)

    def _sent(self, output: SendCommand | SendZero, now_ns: int) -> SendCommand | SendZero:
        self.last_publish_ns = now_ns
        return output
