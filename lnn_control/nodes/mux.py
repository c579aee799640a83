"""command_mux_node: who drives, in the manner of twist_mux. A person beats the policy; the e-stop beats everyone.

Inputs (``TwistStamped``, or ``Twist`` with ``stamped:=false``; all topic names relative, so remappable), from the
parameters ``inputs`` (names) and ``input.<name>.topic``, ``.priority``, ``.timeout``, ``.autonomy`` (config/mux.yaml):

- ``teleop`` on ``teleop/cmd_vel``, priority 100: a person (teleop_keyboard_node, joy_teleop_node) or a demonstrator;
- ``policy`` on ``lnn/cmd_vel``, priority 10, ``autonomy``: the network (policy_node or drive_node remapped from
  ``cmd_vel``); it drives only while autonomy is armed;
- any further input, e.g. ``inputs: [teleop, nav, policy]`` with ``input.nav.topic: nav/cmd_vel``,
  ``input.nav.priority: 50``.

Locks and switches:

- ``e_stop`` (std_msgs/Bool) and ``~/e_stop`` (std_srvs/SetBool): ``true`` engages the emergency stop, ``false``
  releases it; latched. With ``e_stop_heartbeat`` > 0 it is also engaged while ``e_stop`` has been silent for that
  long (a dead e-stop publisher stops the vehicle). With ``e_stop_state_file`` the latched state survives a restart
  (a mux restarted while engaged starts engaged);
- ``locks``: further Bool locks (``lock.<name>.topic``, ``.priority``, ``.timeout``): engaged while true or silent
  for ``timeout``; they block the inputs of their priority or lower;
- autonomy: armed by ``~/autonomy`` (std_srvs/SetBool) or ``autonomy_on_start``, or while ``autonomy/enable``
  (std_msgs/Bool, a deadman: joy_teleop_node's ``autonomy_button``) keeps saying ``true`` within
  ``autonomy_timeout``. Engaging the e-stop disarms ``~/autonomy``. ``mux/autonomy`` (std_msgs/Bool, latched) says
  whether it is armed.

Output ``cmd_vel`` (the inputs' type): the active input's messages, forwarded at once and repeated at ``rate`` Hz
when nothing went out for a period (stamped repeats carry the send time); zero while the e-stop or a lock holds the
vehicle; with nobody driving, zero for ``idle_tail`` seconds, then nothing, so a twist_mux or nav2 behind this mux
can let lower-priority inputs drive.

``mux/active_source`` (std_msgs/String: an input's name, ``none``, ``e_stop`` or a lock's name) is published with
latched QoS (reliable, transient local, depth 1) on every change and every ``status_period`` seconds.

``/diagnostics`` (every ``diagnostics_period`` s, and at once when the active source, the e-stop or autonomy
changes; :mod:`lnn_control.ros.diagnostics`), all on the node clock:

- ``command_mux_node: active source``: who drives (an input, ``none``, ``e_stop`` or a lock), with its topic and
  priority and the fresh inputs; OK while an input drives or nobody does, WARN while the e-stop or a lock holds
  the vehicle;
- ``command_mux_node: autonomy``: armed or not, and by what (the switch ``~/autonomy``, the deadman
  ``autonomy/enable``); OK either way, the message says which;
- ``command_mux_node: e-stop``: ERROR while engaged, saying how (``latched`` by the topic, the service or the
  stored state; ``heartbeat lost``: ``e_stop`` silent for longer than ``e_stop_heartbeat``), with the age of the
  latest ``e_stop`` message; OK when released;
- ``command_mux_node: locks``: each lock engaged or released (and why: true, or silent past its timeout); WARN while
  one is engaged, OK with none configured;
- ``command_mux_node: input <name>``, one per input: the node-clock age of its latest message against its timeout,
  messages received, whether it drives; OK whatever the age (an idle input is normal), the message says fresh,
  stale, blocked, waiting for autonomy or driving;
- ``command_mux_node: output``: commands (and zeros) sent on ``cmd_vel`` per second over 5 s against ``rate``; OK
  while idle (nothing goes out after the idle tail), ERROR when something should go out and nothing did for 5 s.

These rules live, free of ROS, in :mod:`lnn_control.mux_rules` (tested in simulated time); this node declares the
parameters, feeds the rules node-clock times and does what they decide.
"""

from __future__ import annotations

from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from std_msgs.msg import Bool, Header, String
from std_srvs.srv import SetBool

from lnn_control.health import Level, RateMeter, Report, age_report
from lnn_control.mux_rules import (  # noqa: F401 - MuxConfig and the names re-exported here
    E_STOP,
    INPUT_PREFIX,
    LOCK_PREFIX,
    NONE,
    POLICY,
    TELEOP,
    InputParams,
    InputSpec,
    LockParams,
    LockSpec,
    MuxConfig,
    MuxRules,
    Output,
    SendAutonomy,
    SendCommand,
    SendSource,
    SendZero,
    StoreEStop,
    default_input,
    default_lock,
    read_e_stop_state,
    write_e_stop_state,
)
from lnn_control.ros.diagnostics import Diagnostics
from lnn_control.ros.msgs import twist_msg, twist_type
from lnn_control.ros.node_util import declare_config, declare_spec, describe, run_node
from lnn_control.ros.qos import COMMAND, LATCHED
from lnn_control.ros.stamps import ns_to_stamp

OUTPUT_TOPIC = "cmd_vel"
E_STOP_TOPIC = "e_stop"
SOURCE_TOPIC = "mux/active_source"
AUTONOMY_TOPIC = "mux/autonomy"
DEADMAN_TOPIC = "autonomy/enable"
#: The window of the output-rate diagnostic, seconds of the node clock.
OUTPUT_WINDOW_S = 5.0
#: Today's input topics (config/mux.yaml's defaults), for importers.
POLICY_TOPIC = default_input(POLICY).topic
TELEOP_TOPIC = default_input(TELEOP).topic


def declare_inputs(node: Node, config: MuxConfig) -> tuple[list[InputSpec], list[LockSpec]]:
    """Declare ``input.<name>.*`` and ``lock.<name>.*`` for the names ``config`` lists (defaults per name:
    :func:`~lnn_control.mux_rules.default_input`) and return the specs."""

    def declared(prefix: str, name: str, params: type, default: InputSpec | LockSpec) -> dict:
        specs = [{**spec, "default": getattr(default, spec["name"])} for spec in describe(params)]
        return {spec["name"]: declare_spec(node, f"{prefix}{name}.{spec['name']}", spec) for spec in specs}

    inputs = []
    for name in config.inputs:
        values = declared(INPUT_PREFIX, name, InputParams, default_input(name))
        inputs.append(InputSpec(name, values["topic"] or f"{name}/cmd_vel", values["priority"], values["timeout"],
                                values["autonomy"]))
    locks = []
    for name in config.locks:
        values = declared(LOCK_PREFIX, name, LockParams, default_lock(name))
        locks.append(LockSpec(name, values["topic"] or name, values["priority"], values["timeout"]))
    return inputs, locks


class CommandMuxNode(Node):
    """See the module docstring; the rules are :class:`~lnn_control.mux_rules.MuxRules`, this node feeds them the
    node clock and publishes what they decide."""

    def __init__(self, node_name: str = "command_mux_node", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.config = declare_config(self, MuxConfig)
        inputs, locks = declare_inputs(self, self.config)
        stored, problem = (None, "")
        if self.config.e_stop_state_file:
            stored, problem = read_e_stop_state(self.config.e_stop_state_file)
        if problem:
            self.get_logger().error(problem)
        self.rules = MuxRules(self.config, inputs, locks, e_stop_engaged=stored)
        msg_type = twist_type(self.config.stamped)
        self.publisher = self.create_publisher(msg_type, OUTPUT_TOPIC, COMMAND)
        self.source_publisher = self.create_publisher(String, SOURCE_TOPIC, LATCHED)
        self.autonomy_publisher = self.create_publisher(Bool, AUTONOMY_TOPIC, LATCHED)
        for spec in inputs:
            self.create_subscription(msg_type, spec.topic, self._input_callback(spec.name), COMMAND)
        for lock in locks:
            self.create_subscription(Bool, lock.topic, self._lock_callback(lock.name), COMMAND)
        self.create_subscription(Bool, E_STOP_TOPIC, self._on_e_stop_topic, COMMAND)
        self.create_subscription(Bool, DEADMAN_TOPIC, self._on_deadman, COMMAND)
        self.create_service(SetBool, "~/e_stop", self._on_e_stop_service)
        self.create_service(SetBool, "~/autonomy", self._on_autonomy_service)
        self.create_timer(1.0 / self.config.rate, self._on_timer)
        self.received = {spec.name: 0 for spec in inputs}
        self.output_rate = RateMeter(OUTPUT_WINDOW_S, what="commands out")
        self.diagnostics = Diagnostics(self, hardware_id=self.resolve_topic_name(OUTPUT_TOPIC))
        self.diagnostics.add("active source", self._source_report)
        self.diagnostics.add("autonomy", self._autonomy_report)
        self.diagnostics.add("e-stop", self._e_stop_report)
        self.diagnostics.add("locks", self._locks_report)
        for spec in self.rules.inputs:
            self.diagnostics.add(f"input {spec.name}", self._input_report(spec))
        self.diagnostics.add("output", self._output_report)
        self._apply(self.rules.start(self._now()))
        order = " > ".join(
            f"{s.name} ({self.resolve_topic_name(s.topic)}, {s.priority}, {s.timeout} s"
            + (", autonomy)" if s.autonomy else ")") for s in self.rules.inputs
        )
        heartbeat = f", heartbeat {self.config.e_stop_heartbeat} s" if self.config.e_stop_heartbeat > 0 else ""
        self.get_logger().info(
            f"ready: {order} -> {self.resolve_topic_name(OUTPUT_TOPIC)} "
            f"({'TwistStamped' if self.config.stamped else 'Twist'}); locks: "
            f"{', '.join(f'{x.name} ({x.priority})' for x in self.rules.locks) or 'none'}; "
            f"e_stop {'engaged' if self.rules.e_stop_latched else 'released'}{heartbeat}; autonomy "
            f"{'armed' if self.rules.armed else 'disarmed'}"
        )
        autonomous = [spec.name for spec in self.rules.inputs if spec.autonomy]
        if autonomous and not self.rules.armed:
            self.get_logger().info(
                f"{', '.join(autonomous)} will not drive until autonomy is armed: ros2 service call "
                f"{self.resolve_service_name('~/autonomy')} std_srvs/srv/SetBool '{{data: true}}', or true on "
                f"{self.resolve_topic_name(DEADMAN_TOPIC)} (a deadman) every {self.config.autonomy_timeout} s"
            )

    # -- inputs -------------------------------------------------------------------------------------------------------

    def _now(self) -> int:
        return self.get_clock().now().nanoseconds

    def _input_callback(self, name: str):
        def callback(msg) -> None:
            self.received[name] += 1
            self._apply(self.rules.on_input(name, msg, self._now()))

        return callback

    def _lock_callback(self, name: str):
        return lambda msg: self._apply(self.rules.on_lock(name, bool(msg.data), self._now()))

    def _on_timer(self) -> None:
        self._apply(self.rules.on_timer(self._now()))

    def _on_deadman(self, msg: Bool) -> None:
        self._apply(self.rules.on_deadman(bool(msg.data), self._now()))

    def _set_e_stop(self, engaged: bool, how: str, *, heard: bool = False) -> str:
        changed = engaged != self.rules.e_stop_latched
        self._apply(self.rules.set_e_stop(engaged, self._now(), heard=heard))
        if changed and engaged:
            self.get_logger().warning(f"emergency stop ENGAGED by {how}")
        elif changed:
            self.get_logger().info(f"emergency stop released by {how}")
        return f"emergency stop {'engaged' if engaged else 'released'}" + ("" if changed else " (it already was)")

    def _on_e_stop_topic(self, msg: Bool) -> None:
        self._set_e_stop(bool(msg.data), f"topic {self.resolve_topic_name(E_STOP_TOPIC)}", heard=True)

    def _on_e_stop_service(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        response.message = self._set_e_stop(bool(request.data), "service ~/e_stop")
        response.success = True
        return response

    def _on_autonomy_service(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        now = self._now()
        if request.data and self.rules.e_stop_engaged(now):
            response.success = False
            response.message = "emergency stop engaged: release it first"
            return response
        self._apply(self.rules.set_autonomy(bool(request.data), now))
        response.success = True
        response.message = "autonomy " + ("armed" if request.data else "switch off")
        if not request.data and self.rules.autonomy_armed(now):
            response.message += f" (still armed by {self.resolve_topic_name(DEADMAN_TOPIC)})"
        return response

    # -- output -------------------------------------------------------------------------------------------------------

    def _apply(self, outputs: list[Output]) -> None:
        """Do what the rules decided, in order; then /diagnostics at once if the source, e-stop or autonomy
        changed."""
        changed = False
        for output in outputs:
            changed = changed or self._changes(output)
            if isinstance(output, SendSource):
                if output.changed:
                    self.get_logger().info(f"active source: {output.previous} -> {output.source}")
                if output.changed and output.source == E_STOP and not self.rules.e_stop_latched:
                    self.get_logger().warning(
                        f"emergency stop: nothing on {self.resolve_topic_name(E_STOP_TOPIC)} for "
                        f"{self.config.e_stop_heartbeat} s (its heartbeat): stopped until it says false again"
                    )
                self.source_publisher.publish(String(data=output.source))
            elif isinstance(output, SendZero):
                self.publisher.publish(
                    twist_msg(0.0, 0.0, stamped=self.config.stamped, stamp_ns=output.stamp_ns,
                              frame_id=self.config.frame_id)
                )
                self.output_rate.tick(self._now())
            elif isinstance(output, SendCommand):
                self.publisher.publish(self._command_msg(output))
                self.output_rate.tick(self._now())
            elif isinstance(output, StoreEStop):
                self._store(output.engaged)
            elif isinstance(output, SendAutonomy):
                if not output.first:
                    self.get_logger().info(f"autonomy {'ARMED' if output.armed else 'disarmed'}")
                self.autonomy_publisher.publish(Bool(data=output.armed))
        if changed:
            self.diagnostics.publish()

    @staticmethod
    def _changes(output: Output) -> bool:
        """Whether ``output`` is a change /diagnostics should tell at once."""
        return ((isinstance(output, SendSource) and output.changed) or isinstance(output, StoreEStop)
                or (isinstance(output, SendAutonomy) and not output.first))

    def _store(self, engaged: bool) -> None:
        if not self.config.e_stop_state_file:
            return
        try:
            write_e_stop_state(self.config.e_stop_state_file, engaged)
        except OSError as exc:
            self.get_logger().error(f"cannot keep the e-stop state in {self.config.e_stop_state_file}: {exc}")

    def _command_msg(self, output: SendCommand):
        """The input as received, or a stamped repeat: the same twist with the time it is sent."""
        msg = output.payload
        if output.restamp_ns is None:
            return msg
        header = Header(stamp=ns_to_stamp(output.restamp_ns), frame_id=msg.header.frame_id or self.config.frame_id)
        return TwistStamped(header=header, twist=msg.twist)

    # -- diagnostics --------------------------------------------------------------------------------------------------

    def _fresh_inputs(self, now: int) -> list[str]:
        return [s.name for s in self.rules.inputs
                if (last := self.rules.last_input_ns.get(s.name)) is not None and 0 <= now - last <= s.timeout * 1e9]

    def _source_report(self) -> Report:
        now, rules = self._now(), self.rules
        source = rules.active or rules.source(now)
        values: dict = {"source": source, "fresh inputs": self._fresh_inputs(now) or None}
        if source in rules.by_name:
            spec = rules.by_name[source]
            values.update(topic=self.resolve_topic_name(spec.topic), priority=spec.priority)
            return Report.ok(f"{source} drives ({values['topic']}, priority {spec.priority})", **values)
        if source == NONE:
            return Report.ok("nobody drives", **values)
        if source == E_STOP:
            return Report.warn("the emergency stop holds the vehicle (zero velocity)", **values)
        lock = next(spec for spec in rules.locks if spec.name == source)
        values.update(topic=self.resolve_topic_name(lock.topic), priority=lock.priority)
        return Report.warn(f"lock {source} holds the vehicle (zero velocity)", **values)

    def _autonomy_report(self) -> Report:
        now, rules = self._now(), self.rules
        deadman = rules.deadman_ns is not None and 0 <= now - rules.deadman_ns <= rules.autonomy_timeout_ns
        values = {"armed": rules.autonomy_armed(now), "switch": rules.autonomy_switch, "deadman held": deadman,
                  "autonomy inputs": [s.name for s in rules.inputs if s.autonomy] or None}
        if rules.autonomy_switch or deadman:
            by = ", ".join(w for w, on in (("~/autonomy", rules.autonomy_switch),
                                           (self.resolve_topic_name(DEADMAN_TOPIC), deadman)) if on)
            return Report.ok(f"armed by {by}", **values)
        return Report.ok("disarmed: the autonomy inputs do not drive (arm with ~/autonomy or the deadman "
                         f"{self.resolve_topic_name(DEADMAN_TOPIC)})", **values)

    def _e_stop_report(self) -> Report:
        now, rules = self._now(), self.rules
        heartbeat_s = self.config.e_stop_heartbeat
        heard = age_report("e_stop message", rules.e_stop_heard_ns, now, missing=Level.OK)
        engaged = rules.e_stop_engaged(now)
        how = "latched" if rules.e_stop_latched else "heartbeat lost" if engaged else None
        values = {"engaged": engaged, "how": how, "latched": rules.e_stop_latched,
                  "heartbeat (s)": heartbeat_s or None, **heard.values,
                  "state file": self.config.e_stop_state_file or None}
        topic = self.resolve_topic_name(E_STOP_TOPIC)
        if rules.e_stop_latched:
            return Report.error(f"emergency stop ENGAGED (latched): release with false on {topic} or "
                                f"{self.resolve_service_name('~/e_stop')}", **values)
        if engaged:
            since = f"never heard on {topic}" if rules.e_stop_heard_ns is None else heard.message
            return Report.error(f"emergency stop ENGAGED (heartbeat lost: {topic} silent for more than "
                                f"{heartbeat_s:g} s; {since}): it releases when {topic} says false again", **values)
        return Report.ok("released", **values)

    def _locks_report(self) -> Report:
        now, rules = self._now(), self.rules
        if not rules.locks:
            return Report.ok("no locks configured", engaged=None)
        engaged: list[str] = []
        reasons: list[str] = []
        states: dict = {}
        for spec in rules.locks:
            heard = rules.lock_heard_ns.get(spec.name) is not None
            why = ("true" if rules.lock_value.get(spec.name, False)
                   else f"{'silent' if heard else 'never heard'} for more than {spec.timeout:g} s")
            on = rules.lock_engaged(spec, now)
            states[spec.name] = f"engaged ({why})" if on else "released"
            age = age_report("message", rules.lock_heard_ns.get(spec.name), now)
            states[f"{spec.name} message age (s)"] = age.values["message age (s)"]
            if on:
                engaged.append(spec.name)
                reasons.append(f"{spec.name} ({why})")
        values = {"engaged": engaged or None, **states}
        if engaged:
            return Report.warn("engaged: " + ", ".join(reasons), **values)
        return Report.ok("all released", **values)

    def _input_report(self, spec: InputSpec):
        topic = self.resolve_topic_name(spec.topic)

        def check() -> Report:
            now, rules = self._now(), self.rules
            last = rules.last_input_ns.get(spec.name)
            age = age_report("message", last, now, missing=Level.OK)
            values = {"topic": topic, "priority": spec.priority, "timeout (s)": spec.timeout,
                      "autonomy": spec.autonomy, "messages": self.received[spec.name], **age.values}
            if rules.active == spec.name:
                text = f"driving ({age.message})"
            elif last is None:
                text = f"no message yet on {topic}"
            elif spec.name not in self._fresh_inputs(now):
                text = f"stale: {age.message} (timeout {spec.timeout:g} s)"
            elif spec.autonomy and not rules.autonomy_armed(now):
                text = f"fresh ({age.message}), waiting for autonomy to be armed"
            else:
                text = f"fresh ({age.message}), not driving: {rules.active or 'none'} is the active source"
            return Report.ok(text, **values, driving=rules.active == spec.name)

        return check

    def _output_report(self) -> Report:
        now, rules = self._now(), self.rules
        report = self.output_rate.report(now).with_values(**{"configured rate (Hz)": self.config.rate,
                                                             "source": rules.active})
        if rules.active == NONE and not rules.in_tail(now):  # after the idle tail nothing goes out, by design
            return Report.ok(f"idle: nothing goes out on {self.resolve_topic_name(OUTPUT_TOPIC)} while nobody drives",
                             **report.values)
        return Report(report.level, f"{report.message} on {self.resolve_topic_name(OUTPUT_TOPIC)}", report.values)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``command_mux_node``."""
    return run_node(CommandMuxNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
