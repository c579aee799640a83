"""sim_node's lockstep and hold rules without ROS: when to step, with which command, and when to show a tick again.

:class:`LockstepRules` is fed plain values: the frames the node publishes (their sim-time stamps), the commands it
receives, and its periodic checks with the wall (monotonic) time and whether ``cmd_vel`` has a publisher; every
time is an integer of nanoseconds (wall: ``time.monotonic_ns()``). It answers with a :class:`Decision`; the node
(:mod:`lnn_control.nodes.simulator`) steps the backend, publishes and logs as the decision says. Tests drive it in
simulated time.

The rules (see ``sim_node``'s docstring for why):

- every published frame of a lockstep episode is *pending* until a command answers it: a stamped command whose stamp
  is at or after the pending frame's stamp, or zero; an unstamped command received while a frame is pending. The
  answering command steps the sim. A stamped command from before the pending frame is *late*: it only becomes the
  held command;
- every command received (sanitized, :func:`~lnn_control.sim.base.sanitize_command`) becomes the *held* command, at
  the sim time of the latest frame. The held command is used for timeouts and free-running ticks; once it is older
  than ``command_timeout`` of sim time it reads as the action's stop command (0 holds forever);
- while nobody publishes on ``cmd_vel`` the pending tick is shown again every :data:`REPUBLISH_S` and no timeout
  runs; when a publisher appears it is shown again at once, then every :data:`STARTUP_REPUBLISH_S` until the first
  answer;
- with a controller there, a frame nobody answered within ``lockstep_timeout`` (wall) is stepped with the held
  command, and the timeout counts;
- *companions* (``companions``, lockstep only): topics that must carry a message stamped at or after the pending
  frame (or unstamped, or zero) before its answer steps the sim, so a node that watches every state without driving
  (a DAgger demonstrator's label) never falls behind the one that drives. The first answer waits for them; a timeout
  steps with it (or the held command) all the same, saying which companions were missing; the start-up
  re-publication runs until the first frame is complete;
- free-running (no lockstep): each tick steps with the held command;
- with ``wait_at_start`` the run starts only once the node reports the nodes it waits for ready (``ready`` in the
  checks and free-running ticks; :func:`waiting_for` decides it from the graph): until then a lockstep sim treats the
  controller as absent (the pending frame is shown again every :data:`REPUBLISH_S`, no timeout runs, a command is
  held and answers nothing) and a free-running one does not tick. Once started, a run never waits again. A recorder
  among them is ready once it also reports every publisher of its topics matched and a message received on each
  topic that must be recorded from the first frame (:func:`unmatched_recorders`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from lnn_control.command import CAR, ActionSchema, Command
from lnn_control.sim.base import sanitize_command

#: Lockstep: how often the node checks for a timeout and for a controller, s (wall).
LOCKSTEP_CHECK_S = 0.05
#: Lockstep without any publisher on cmd_vel: re-publish the pending tick this often, s (wall).
REPUBLISH_S = 1.0
#: Lockstep, from a controller's appearance to its first answer: re-publish the pending tick this often, s (wall).
STARTUP_REPUBLISH_S = 0.25


@dataclass(frozen=True)
class LockstepConfig:
    """The parameters of sim_node the rules need (same names as :class:`~lnn_control.nodes.simulator.SimNodeConfig`)."""

    lockstep: bool = True
    lockstep_timeout: float = 0.5
    command_timeout: float = 0.5
    wait_at_start: bool = False
    """The node names nodes to wait for (``wait_for``): the run starts once the node reports them ready."""
    companions: tuple[str, ...] = ()
    """Lockstep: names of the topics that must also answer each frame (see the module docstring)."""


@dataclass(frozen=True)
class Decision:
    """What the node does now, in this order: re-publish the pending tick, log, then step once."""

    tick_with: Command | None = None
    """Step the sim once with this command (an answer, the held command on a timeout or a free-running tick)."""
    republish: bool = False
    """Publish the pending tick's messages again, same stamps."""
    waiting: bool = False
    """Nobody publishes on ``cmd_vel``: the re-publication is a wait for a controller."""
    late: bool = False
    """The command was stamped before the pending frame: it is held and answers nothing."""
    early: bool = False
    """The run has not started (its nodes are not all there): the command is held and answers nothing."""
    timeout: bool = False
    """Nobody answered the frame stamped ``unanswered_ns`` within ``lockstep_timeout``: ``tick_with`` is held."""
    unanswered_ns: int | None = None
    missing: tuple[str, ...] = ()
    """On a timeout: the companions that sent nothing for the frame."""
    stale: bool = False
    """``tick_with`` is the schema's stop command because the held command is too old."""
    problem: str | None = None
    """Why the received command had to be clamped or replaced."""


@dataclass(frozen=True)
class Held:
    """The command to hold now and whether it is the safe one because the last received command is stale."""

    command: Command
    stale: bool = False


def _ns(seconds: float) -> int:
    return int(round(seconds * 1e9))


class LockstepRules:
    """The pending frame, the held command, the timeouts and the counters; see the module docstring."""

    def __init__(
        self, config: LockstepConfig, schema: ActionSchema = CAR,
        bounds: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        self.config = config
        self.schema, self.bounds = schema, dict(bounds or {})
        self.safe = schema.stop()
        self.lockstep_timeout_ns = _ns(config.lockstep_timeout)
        self.command_timeout_ns = _ns(config.command_timeout)
        self.pending_ns: int | None = None  # stamp of the frame awaiting an answer
        self.pending_since = 0  # wall time since when the pending frame waits (the timeout counts from it)
        self.last_sent = 0  # wall time of the latest (re-)publication
        self.sim_now_ns = 0  # sim time of the latest frame
        self.controller_present = False  # cmd_vel had a publisher at the last check
        self.awaiting_first_answer = True  # no answer since the controller appeared
        self.started = not config.wait_at_start  # the nodes waited for were all there once
        self.held = self.safe
        self.held_ns: int | None = None  # sim time at which ``held`` arrived
        self.answer: Command | None = None  # the pending frame's answer, waiting for the companions
        self.companion_ns: dict[str, int] = dict.fromkeys(config.companions, -1)  # latest stamp from each
        self.answered = 0
        self.timeouts = 0
        self.late_commands = 0
        self.early_commands = 0
        self.bad_commands = 0

    # -- what the node did --------------------------------------------------------------------------------------------

    def on_frame(self, stamp_ns: int, now_wall: int) -> None:
        """The node published a tick whose frame is stamped ``stamp_ns`` (sim time) at ``now_wall``."""
        self.sim_now_ns = int(stamp_ns)
        self.last_sent = self.pending_since = now_wall
        self.pending_ns = self.sim_now_ns if self.config.lockstep else None
        self.answer = None

    def on_episode_start(self) -> None:
        """A new episode: nothing is held from the last one (call before its first frame)."""
        self.held = self.safe
        self.held_ns = None

    def on_episode_end(self) -> None:
        """The episode ended: its last frame awaits nothing."""
        self.pending_ns = None

    # -- what the node asks -------------------------------------------------------------------------------------------

    def held_command(self) -> Held:
        """The last command received, or the safe one once older than ``command_timeout`` of sim time."""
        if self.held_ns is None:
            return Held(self.safe)
        timeout_ns = self.command_timeout_ns
        if timeout_ns > 0 and self.sim_now_ns - self.held_ns > timeout_ns:
            return Held(self.safe, stale=True)
        return Held(self.held)

    def on_command(self, command: Command, stamped: bool) -> Decision:
        """A command arrived on ``cmd_vel`` (``stamped``: it has a header, so its ``stamp_ns`` counts)."""
        safe, problem = sanitize_command(command, self.schema, self.bounds)
        if problem is not None:
            self.bad_commands += 1
        self.held = safe
        self.held_ns = self.sim_now_ns
        if self.pending_ns is None:
            return Decision(problem=problem)
        if not self.started:
            self.early_commands += 1
            return Decision(early=True, problem=problem)
        if stamped and command.stamp_ns != 0 and command.stamp_ns < self.pending_ns:
            self.late_commands += 1
            return Decision(late=True, problem=problem)
        if self.answer is None:  # the first answer steps (once the companions are in)
            self.answer = safe
        return self._complete(problem)

    def on_companion(self, topic: str, stamp_ns: int, stamped: bool) -> Decision:
        """A message arrived on companion ``topic`` (``stamped``: its ``stamp_ns`` counts; else it counts for the
        pending frame)."""
        if not stamped or stamp_ns == 0:
            stamp_ns = self.pending_ns if self.pending_ns is not None else self.sim_now_ns
        self.companion_ns[topic] = max(self.companion_ns.get(topic, -1), int(stamp_ns))
        return self._complete(None)

    def _missing(self) -> tuple[str, ...]:
        """The companions with nothing for the pending frame yet."""
        pending = self.pending_ns if self.pending_ns is not None else 0
        return tuple(t for t, ns in self.companion_ns.items() if ns < pending)

    def _complete(self, problem: str | None) -> Decision:
        """Step with the pending frame's answer once every companion has answered it too."""
        if self.pending_ns is None or self.answer is None or not self.started or self._missing():
            return Decision(problem=problem)
        answer, self.answer, self.pending_ns = self.answer, None, None
        self.answered += 1
        self.awaiting_first_answer = False
        return Decision(tick_with=answer, problem=problem)

    def on_check(self, now_wall: int, controller_present: bool, ready: bool = True) -> Decision:
        """The periodic lockstep check at ``now_wall``; ``controller_present``: ``cmd_vel`` has a publisher;
        ``ready``: the nodes the run waits for are all there (see ``wait_at_start``)."""
        if self.pending_ns is None:
            return Decision()
        self.started = self.started or ready
        if not controller_present or not self.started:
            # Nobody drives: show the tick again now and then rather than run the car without a controller.
            self.controller_present = False
            if now_wall - self.last_sent < _ns(REPUBLISH_S):
                return Decision()
            self.last_sent = now_wall
            return Decision(republish=True, waiting=True)
        if not self.controller_present:
            # A controller appeared: show it the tick now; the timeout counts from here.
            self.controller_present = True
            self.awaiting_first_answer = True
            self.last_sent = self.pending_since = now_wall
            return Decision(republish=True)
        republish = self.awaiting_first_answer and now_wall - self.last_sent >= _ns(STARTUP_REPUBLISH_S)
        if republish:
            # The controller's publisher is visible, its subscriptions may match a moment later.
            self.last_sent = now_wall
        if now_wall - self.pending_since < self.lockstep_timeout_ns:
            return Decision(republish=republish)
        self.timeouts += 1
        missing = self._missing()
        unanswered, self.pending_ns = self.pending_ns, None
        if self.answer is not None:  # answered, but a companion is missing
            answer, self.answer = self.answer, None
            return Decision(tick_with=answer, republish=republish, timeout=True, unanswered_ns=unanswered,
                            missing=missing)
        held = self.held_command()
        return Decision(tick_with=held.command, republish=republish, timeout=True, unanswered_ns=unanswered,
                        stale=held.stale, missing=missing)

    def on_free_tick(self, ready: bool = True) -> Decision:
        """Free-running: a timer tick steps with the held command, once the run started (``ready``)."""
        self.started = self.started or ready
        if not self.started:
            return Decision()
        held = self.held_command()
        return Decision(tick_with=held.command, stale=held.stale)


def _is(wanted: str, node: str) -> bool:
    """``wanted`` names ``node`` (a full name, ``/ns/name``): by its full name, or by its last part."""
    return node == "/" + wanted.strip("/") if "/" in wanted else node.rsplit("/", 1)[-1] == wanted


def waiting_for(
    wanted: Iterable[str], subscribers: Mapping[str, Sequence[str]], matched: Mapping[str, int]
) -> list[str]:
    """What the run still waits for, [] when every node of ``wanted`` is there.

    ``subscribers``: topic -> full names of the nodes subscribing it (the graph, one entry per subscription);
    ``matched``: topic -> subscriptions its publisher has matched (DDS). A wanted node is there once it subscribes
    one of the topics, and each topic's publisher has matched at least as many subscriptions as the wanted nodes hold.
    """
    wanted = list(wanted)
    missing = [f"{w} (subscribes nothing yet)" for w in wanted
               if not any(_is(w, n) for names in subscribers.values() for n in names)]
    for topic, names in subscribers.items():
        need = sum(any(_is(w, n) for w in wanted) for n in names)
        if matched.get(topic, 0) < need:
            missing.append(f"{topic} ({matched.get(topic, 0)} of {need} matched)")
    return missing


@dataclass(frozen=True)
class RecorderReport:
    """What a recorder's ``~/status`` says that a sim's start gate needs."""

    #: topic -> publishers its subscription matched (DDS); {} from an rclpy that cannot count
    matched: dict[str, int]
    #: topic -> messages received in its current (or last) episode
    received: dict[str, int]


def recorder_report(text: str) -> RecorderReport:
    """A recorder's ``~/status`` JSON -> its :class:`RecorderReport`; ValueError naming what is wrong otherwise."""
    try:
        status = json.loads(text)
        matched = {str(topic): int(count) for topic, count in status.get("matched_publishers", {}).items()}
        received = {str(topic): int(stats["received"]) for topic, stats in status.get("topics", {}).items()}
    except (ValueError, AttributeError, TypeError, KeyError) as exc:
        raise ValueError(f"not a recorder status with matched_publishers and topics ({exc!r})") from exc
    return RecorderReport(matched, received)


def unmatched_recorders(
    reports: Mapping[str, RecorderReport | None], publishers: Mapping[str, int], recorded: Sequence[str] = ()
) -> list[str]:
    """What the run still waits for among the recorders, [] when each has matched every publisher of its topics
    and received a message on each topic of ``recorded``.

    ``reports``: recorder -> its latest report, None before its first; ``publishers``: topic -> publishers the graph
    shows. A recorder behind on one topic would miss that topic's first messages (a policy's commands, a
    demonstrator's takeovers). The graph can miss a publisher for seconds (its discovery lost on the way, once: all
    41 commands of an episode unrecorded), so ``recorded`` names what must be in the bag from the first frame and is
    published while it is held (the policy's answer to it, the demonstrator's label): only a message received
    proves that path whole.
    """
    missing = []
    for name, report in reports.items():
        if report is None:
            missing.append(f"{name} (no ~/status with matched_publishers yet)")
            continue
        missing.extend(f"{name}: {topic} ({count} of {publishers[topic]} publishers matched)"
                       for topic, count in report.matched.items() if count < publishers.get(topic, 0))
        missing.extend(f"{name}: {topic} (nothing received yet)" for topic in recorded
                       if report.received.get(topic, 0) < 1)
    return missing
