"""command_mux_node over real DDS: the wiring of topics, service, parameters and log to the rules.

The rules themselves (who wins, timeouts, repeat cadence, restamping, status cadence, e-stop latching) are tested in
simulated time in test_mux_rules.py. Here nothing is timed: each test publishes until the node's answer is there and
waits on what the node says (``cmd_vel``, ``mux/active_source``, its log). Where a test checks that something did not
leak through, it compares the order of the outputs with the source changes the node logged, so a stalled machine
(which makes the inputs stale, and the node switch) cannot fail it.

One mux process for the Twist layout and today's rules, one per feature after it (the stamped layout, autonomy,
the e-stop's heartbeat and stored state, the idle tail, a third input), each in a namespace of its own; this process
plays the policy, the person, the e-stop and the deadman.
"""

from __future__ import annotations

import math
import re
import signal
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("rclpy")

from geometry_msgs.msg import Twist, TwistStamped  # noqa: E402
from ros_harness import Collector, NodeProcess, RosSession, free_domain_id, publish_until  # noqa: E402
from std_msgs.msg import Bool, String  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402

from lnn_control.mux_rules import read_e_stop_state  # noqa: E402
from lnn_control.ros.msgs import twist_msg, twist_to_command  # noqa: E402
from lnn_control.ros.qos import LATCHED  # noqa: E402
from lnn_control.ros.stamps import stamp_to_ns  # noqa: E402

pytestmark = [pytest.mark.ros]

DOMAIN = free_domain_id()
#: Today's behaviour (Twist, armed at start, zero forever when idle) for the module's mux.
PARAMS = {"rate": 20.0, "input.teleop.timeout": 0.4, "input.policy.timeout": 0.4, "status_period": 0.5,
          "stamped": False, "autonomy_on_start": True, "idle_tail": -1.0}
#: How long any one wait may take before the test fails (a bound for a stuck node, not a measurement).
WAIT = 15.0


def test_names_are_re_exported_from_the_rules():
    from lnn_control import mux_rules
    from lnn_control.nodes.mux import E_STOP, NONE, POLICY, POLICY_TOPIC, TELEOP, TELEOP_TOPIC, MuxConfig

    assert MuxConfig is mux_rules.MuxConfig
    assert (E_STOP, NONE, POLICY, TELEOP) == ("e_stop", "none", "policy", "teleop")
    assert (POLICY_TOPIC, TELEOP_TOPIC) == ("lnn/cmd_vel", "teleop/cmd_vel")


def arm(ros: RosSession, ns: str = "") -> None:
    """Arm autonomy with the mux's service (engaging the e-stop disarms it)."""
    response = ros.call(f"{ns}/command_mux_node/autonomy", SetBool, SetBool.Request(data=True))
    assert response.success, response.message


@pytest.fixture(scope="module")
def ros():
    with RosSession(DOMAIN) as session:
        yield session


@pytest.fixture(scope="module")
def mux(tmp_path_factory):
    with NodeProcess(
        "lnn_control.nodes.mux", domain_id=DOMAIN, log_dir=tmp_path_factory.mktemp("mux"), params=PARAMS
    ) as proc:
        proc.wait_for_output("ready")
        yield proc


@pytest.fixture(scope="module")
def io(ros, mux):
    """Publishers for both inputs and e_stop, collectors for the output and the active source."""
    pubs = {
        "policy": ros.publisher("lnn/cmd_vel", Twist),
        "teleop": ros.publisher("teleop/cmd_vel", Twist),
        "e_stop": ros.publisher("e_stop", Bool),
    }
    out = ros.collect("cmd_vel", Twist)
    source = ros.collect("mux/active_source", String, LATCHED)
    for pub in pubs.values():
        ros.wait_for_subscribers(pub)
    out.wait_for_count(1, timeout=WAIT)
    return pubs, out, source


def velocity_is(value: float) -> Callable[[Any], bool]:
    return lambda msg: abs(msg.linear.x - value) < 1e-9


def source_is(name: str) -> Callable[[Any], bool]:
    return lambda msg: msg.data == name


def runs(messages: list[Any], predicate: Callable[[Any], bool]) -> int:
    """How many maximal runs of consecutive messages satisfy ``predicate``."""
    count, inside = 0, False
    for msg in messages:
        hit = predicate(msg)
        count += hit and not inside
        inside = hit
    return count


def switches_to(log: str, sources: tuple[str, ...]) -> int:
    """How many times the mux logged a change of the active source to one of ``sources``."""
    return sum(1 for m in re.finditer(r"active source: \w+ -> (\w+)", log) if m.group(1) in sources)


def assert_no_leak(ros: RosSession, mux: NodeProcess, out: Collector, start: int, log_start: int,
                   predicate: Callable[[Any], bool], sources: tuple[str, ...]) -> None:
    """The outputs from index ``start`` that satisfy ``predicate`` come in no more runs than the mux logged changes
    to ``sources`` (from log position ``log_start``): an output from any other source in the middle of such a period
    would split it. The mux logs each change before it publishes under the new source."""
    found = runs(out.messages[start:], predicate)
    assert found >= 1, "no output of the period at all"
    ros.wait_for(lambda: switches_to(mux.output()[log_start:], sources) >= found, WAIT,
                 f"{found} logged change(s) to {sources} for {found} run(s) of their outputs (a leak splits a run)")


def test_idle_mux_sends_zero_and_says_none(ros, io, mux):
    _, out, source = io
    assert source.wait_for(source_is("none"), WAIT).data == "none"  # latched: arrives though we joined late
    out.wait_for(lambda m: m.linear.x == 0.0 and m.angular.z == 0.0, WAIT)
    # the status repeats: a subscriber joining later still hears who drives, and this one hears it again
    heard = len(source)
    source.wait_for_count(heard + 2, timeout=WAIT)
    late = ros.collect("mux/active_source", String, LATCHED)
    assert late.wait_for(lambda m: m.data in ("none", "policy", "teleop", "e_stop"), WAIT) is not None


def test_teleop_overrides_policy_then_hands_back(ros, io, mux):
    pubs, out, source = io
    begin, source_begin = len(out), len(source)
    policy = ros.repeat(pubs["policy"], lambda: twist_msg(0.1, 1.0, stamped=False), 30.0)
    teleop = None
    try:
        out.wait_for(velocity_is(1.0), WAIT, start=begin)
        source.wait_for(source_is("policy"), WAIT, start=source_begin)
        start, log_start, source_start = len(out), len(mux.output()), len(source)
        teleop = ros.repeat(pubs["teleop"], lambda: twist_msg(-0.5, 0.3, stamped=False), 20.0)
        out.wait_for(velocity_is(0.3), WAIT, start=start)
        first = out.index(velocity_is(0.3), start)
        source.wait_for(source_is("teleop"), WAIT, start=source_start)
        took_over = source.index(source_is("teleop"), source_start)
        # let both drive for a while (counted in the mux's own outputs), then stop the person
        ros.wait_for(lambda: sum(map(velocity_is(0.3), out.messages[first:])) >= 10, WAIT, "10 teleop outputs")
        assert twist_to_command(out.messages[first]).steering == -0.5, "forwarded unchanged"
        teleop.stop()
        stopped = len(out)
        out.wait_for(velocity_is(1.0), WAIT, start=stopped)  # handed back to the policy
        source.wait_for(source_is("policy"), WAIT, start=took_over)
        assert_no_leak(ros, mux, out, start, log_start, velocity_is(0.3), ("teleop",))
        assert re.search(r"active source: policy -> teleop", mux.output()[log_start:])
    finally:
        if teleop is not None:
            teleop.stop()
        policy.stop()


def test_stale_policy_gives_zero_and_none(ros, io):
    pubs, out, source = io
    begin, source_begin = len(out), len(source)
    policy = ros.repeat(pubs["policy"], lambda: twist_msg(0.0, 0.8, stamped=False), 30.0)
    try:
        out.wait_for(velocity_is(0.8), WAIT, start=begin)
        source.wait_for(source_is("policy"), WAIT, start=source_begin)
        drove = source.index(source_is("policy"), source_begin)
    finally:
        policy.stop()
    stopped = len(out)
    out.wait_for(velocity_is(0.0), WAIT, start=stopped)
    source.wait_for(source_is("none"), WAIT, start=drove)


def test_e_stop_topic_is_latched_until_released(ros, io, mux):
    pubs, out, source = io
    begin = len(out)
    policy = ros.repeat(pubs["policy"], lambda: twist_msg(0.0, 1.0, stamped=False), 30.0)
    teleop = ros.repeat(pubs["teleop"], lambda: twist_msg(0.0, 0.5, stamped=False), 20.0)
    try:
        out.wait_for(velocity_is(0.5), WAIT, start=begin)
        start, log_start = len(out), len(mux.output())
        publish_until(pubs["e_stop"], lambda: Bool(data=True), source, source_is("e_stop"), WAIT)
        mux.wait_for_output(r"emergency stop ENGAGED by topic /e_stop", WAIT, start=log_start)
        out.wait_for(velocity_is(0.0), WAIT, start=start)
        engaged = out.index(velocity_is(0.0), start)
        # both drivers keep publishing while the mux repeats zero: wait for ten of its zeros
        ros.wait_for(lambda: sum(map(velocity_is(0.0), out.messages[engaged:])) >= 10, WAIT, "10 zero outputs")
        publish_until(pubs["e_stop"], lambda: Bool(data=False), source, source_is("teleop"), WAIT)
        mux.wait_for_output(r"emergency stop released by topic /e_stop", WAIT, start=log_start)
        out.wait_for(velocity_is(0.5), WAIT, start=engaged)  # the person drives again
        assert_no_leak(ros, mux, out, start, log_start, velocity_is(0.0), ("e_stop", "none"))
    finally:
        teleop.stop()
        policy.stop()


def test_e_stop_service(ros, io, mux):
    pubs, out, source = io
    arm(ros)  # the topic test's e-stop disarmed it
    begin = len(out)
    policy = ros.repeat(pubs["policy"], lambda: twist_msg(0.0, 1.0, stamped=False), 30.0)
    try:
        out.wait_for(velocity_is(1.0), WAIT, start=begin)
        start, source_start, log_start = len(out), len(source), len(mux.output())
        response = ros.call("command_mux_node/e_stop", SetBool, SetBool.Request(data=True))
        assert response.success and response.message == "emergency stop engaged"
        out.wait_for(velocity_is(0.0), WAIT, start=start)
        source.wait_for(source_is("e_stop"), WAIT, start=source_start)
        mux.wait_for_output(r"emergency stop ENGAGED by service ~/e_stop", WAIT, start=log_start)
        again = ros.call("command_mux_node/e_stop", SetBool, SetBool.Request(data=True))
        assert again.success and again.message == "emergency stop engaged (it already was)"
        zero_at = out.index(velocity_is(0.0), start)
        response = ros.call("command_mux_node/e_stop", SetBool, SetBool.Request(data=False))
        assert response.success and response.message == "emergency stop released"
        source.wait_for(source_is("none"), WAIT, start=source_start)  # the e-stop disarmed autonomy
        arm(ros)
        out.wait_for(velocity_is(1.0), WAIT, start=zero_at)
        mux.wait_for_output(r"emergency stop released by service ~/e_stop", WAIT, start=log_start)
    finally:
        policy.stop()


def test_stamped_layout_and_clean_sigint(ros, tmp_path):
    params = dict(PARAMS, stamped=True, frame_id="base_test")
    with NodeProcess(
        "lnn_control.nodes.mux",
        domain_id=DOMAIN,
        log_dir=tmp_path,
        name="mux_stamped",
        params=params,
        remaps={"cmd_vel": "stamped/cmd_vel", "lnn/cmd_vel": "stamped/lnn/cmd_vel"},
    ) as proc:
        proc.wait_for_output("ready")
        pub = ros.publisher("stamped/lnn/cmd_vel", TwistStamped)
        out = ros.collect("stamped/cmd_vel", TwistStamped)
        ros.wait_for_subscribers(pub)
        idle = out.wait_for(lambda m: True, WAIT)
        assert idle.twist.linear.x == 0.0
        assert idle.header.frame_id == "base_test" and idle.header.stamp.sec > 0, "zero commands are stamped now"
        stamp_ns = 1_234_567_891_000  # long before the node clock's now

        def command() -> TwistStamped:
            return twist_msg(0.25, 0.7, stamped=True, stamp_ns=stamp_ns, frame_id="cam")

        def is_command(msg: TwistStamped) -> bool:
            return abs(msg.twist.linear.x - 0.7) < 1e-9 and abs(msg.twist.angular.z - 0.25) < 1e-9

        fwd = publish_until(pub, command, out, lambda m: is_command(m) and twist_to_command(m).stamp_ns == stamp_ns,
                            WAIT)
        assert fwd.header.frame_id == "cam", "forwarded unchanged"
        # between two inputs the timer repeats the command with the time it sends it
        repeat = publish_until(pub, command, out, lambda m: is_command(m) and twist_to_command(m).stamp_ns > stamp_ns,
                               WAIT, period=0.2)
        assert repeat.header.frame_id == "cam"
        assert twist_to_command(repeat).stamp_ns >= twist_to_command(idle).stamp_ns, "stamped on the node clock"
        assert proc.stop(signal.SIGINT) == 0, proc.tail()


# -- the new rules, each on a mux of its own (defaults: TwistStamped, autonomy disarmed) ------------------------------


def stamped_cmd(velocity: float, steering: float = 0.0) -> Callable[[], TwistStamped]:
    return lambda: twist_msg(steering, velocity, stamped=True, stamp_ns=1)


def stamped_velocity_is(value: float) -> Callable[[Any], bool]:
    return lambda msg: abs(msg.twist.linear.x - value) < 1e-9


def mux_in(ns: str, log_dir, params: dict, name: str | None = None) -> NodeProcess:
    """A mux in namespace ``ns`` (every topic and service under it), its log in ``log_dir/name``."""
    return NodeProcess("lnn_control.nodes.mux", domain_id=DOMAIN, log_dir=log_dir / (name or ns.strip("/")),
                       name="command_mux_node", params=params, remaps={"__ns": ns})


def test_autonomy_arms_by_service_and_by_deadman(ros, tmp_path):
    ns = "/arm"
    params = {"status_period": 0.1, "input.policy.timeout": 0.3, "autonomy_timeout": 0.3}
    policy = ros.publisher(f"{ns}/lnn/cmd_vel", TwistStamped)
    deadman = ros.publisher(f"{ns}/autonomy/enable", Bool)
    out = ros.collect(f"{ns}/cmd_vel", TwistStamped)
    source = ros.collect(f"{ns}/mux/active_source", String, LATCHED)
    armed = ros.collect(f"{ns}/mux/autonomy", Bool, LATCHED)
    with mux_in(ns, tmp_path, params) as proc:
        proc.wait_for_output("ready.*autonomy disarmed")
        ros.wait_for_subscribers(policy)
        assert armed.wait_for(lambda m: True, WAIT).data is False
        repeater = ros.repeat(policy, stamped_cmd(0.6), 30.0)
        try:
            # the policy publishes, matched; the mux keeps saying none (ten repeats of its status) and drives nothing
            start = len(source)
            source.wait_for_count(start + 10, WAIT)
            assert {m.data for m in source.messages[start:]} == {"none"}
            assert out.find(stamped_velocity_is(0.6)) is None, "an unarmed policy drove"
            response = ros.call(f"{ns}/command_mux_node/autonomy", SetBool, SetBool.Request(data=True))
            assert response.success and response.message == "autonomy armed"
            source.wait_for(source_is("policy"), WAIT, start=start)
            out.wait_for(stamped_velocity_is(0.6), WAIT)
            armed.wait_for(lambda m: m.data is True, WAIT)
            at = len(source)
            assert ros.call(f"{ns}/command_mux_node/autonomy", SetBool, SetBool.Request(data=False)).success
            source.wait_for(source_is("none"), WAIT, start=at)
            proc.wait_for_output("autonomy disarmed", WAIT)
            # the deadman: armed while true keeps coming, disarmed once it stops
            at = len(source)
            held = ros.repeat(deadman, lambda: Bool(data=True), 20.0)
            try:
                source.wait_for(source_is("policy"), WAIT, start=at)
            finally:
                held.stop()
            at = len(source)
            source.wait_for(source_is("none"), WAIT, start=at)
        finally:
            repeater.stop()


def test_heartbeat_e_stop_engages_when_its_publisher_dies(ros, tmp_path):
    ns = "/heartbeat"
    params = {"e_stop_heartbeat": 0.5, "status_period": 0.2}
    teleop = ros.publisher(f"{ns}/teleop/cmd_vel", TwistStamped)
    out = ros.collect(f"{ns}/cmd_vel", TwistStamped)
    source = ros.collect(f"{ns}/mux/active_source", String, LATCHED)
    with mux_in(ns, tmp_path, params) as proc:
        proc.wait_for_output("ready.*heartbeat 0.5 s")
        assert source.wait_for(lambda m: True, WAIT).data == "e_stop", "no e-stop publisher yet: engaged"
        e_stop = ros.publisher(f"{ns}/e_stop", Bool)
        alive = ros.repeat(e_stop, lambda: Bool(data=False), 20.0)
        person = ros.repeat(teleop, stamped_cmd(0.4), 20.0)
        try:
            source.wait_for(source_is("teleop"), WAIT)
            out.wait_for(stamped_velocity_is(0.4), WAIT)
            # the e-stop publisher dies: it stops and leaves the graph
            alive.stop()
            ros.node.destroy_publisher(e_stop)
            at, out_at = len(source), len(out)
            source.wait_for(source_is("e_stop"), WAIT, start=at)
            proc.wait_for_output(r"emergency stop: nothing on /heartbeat/e_stop for 0\.5 s", WAIT)
            out.wait_for(stamped_velocity_is(0.0), WAIT, start=out_at)
            assert "emergency stop ENGAGED" not in proc.output(), "the latched state did not change"
            # while the person keeps driving, only zeros go out: ten of them
            first = out.index(stamped_velocity_is(0.0), out_at)
            ros.wait_for(lambda: sum(map(stamped_velocity_is(0.0), out.messages[first:])) >= 10, WAIT, "10 zeros")
            assert not any(map(stamped_velocity_is(0.4), out.messages[first:])), "the person's command leaked"
            # a new e-stop publisher saying false releases it
            back = ros.publisher(f"{ns}/e_stop", Bool)
            publish_until(back, lambda: Bool(data=False), source, source_is("teleop"), WAIT)
        finally:
            person.stop()


def test_engaged_e_stop_survives_a_mux_restart(ros, tmp_path):
    ns = "/persist"
    state = tmp_path / "state" / "e_stop"
    params = {"e_stop_state_file": str(state), "status_period": 0.2}
    source = ros.collect(f"{ns}/mux/active_source", String, LATCHED)
    service = f"{ns}/command_mux_node/e_stop"
    with mux_in(ns, tmp_path, params, name="persist_1") as first:
        first.wait_for_output("ready.*e_stop released")
        source.wait_for(source_is("none"), WAIT)
        assert ros.call(service, SetBool, SetBool.Request(data=True)).success
        assert read_e_stop_state(state) == (True, ""), "kept before the service answered"
        first.kill()  # a crash: no chance to write anything at exit
    at = len(source)
    with mux_in(ns, tmp_path, params, name="persist_2") as second:
        second.wait_for_output("ready.*e_stop engaged")
        assert source.wait_for(lambda m: True, WAIT, start=at).data == "e_stop", "restarted engaged"
        assert ros.call(service, SetBool, SetBool.Request(data=False)).message == "emergency stop released"
        assert read_e_stop_state(state) == (False, "")
    at = len(source)
    with mux_in(ns, tmp_path, params, name="persist_3") as third:
        third.wait_for_output("ready.*e_stop released")
        assert source.wait_for(lambda m: True, WAIT, start=at).data == "none"


def test_silence_on_cmd_vel_after_the_idle_tail(ros, tmp_path):
    ns = "/tail"
    tail, period, status_period = 0.3, 0.05, 0.1
    params = {"idle_tail": tail, "rate": 1 / period, "status_period": status_period, "input.teleop.timeout": 0.2}
    teleop = ros.publisher(f"{ns}/teleop/cmd_vel", TwistStamped)
    out = ros.collect(f"{ns}/cmd_vel", TwistStamped)
    source = ros.collect(f"{ns}/mux/active_source", String, LATCHED)
    with mux_in(ns, tmp_path, params) as proc:
        proc.wait_for_output("ready")
        ros.wait_for_subscribers(teleop)
        publish_until(teleop, stamped_cmd(0.5), out, stamped_velocity_is(0.5), WAIT)
        source.wait_for(source_is("teleop"), WAIT)
        at = source.index(source_is("teleop"))
        source.wait_for(source_is("none"), WAIT, start=at)  # the person stopped publishing
        idle = source.index(source_is("none"), at)
        # the marker: the mux's own status repeats, status_period apart on its clock, until well past the tail
        repeats = math.ceil((tail + 2 * period) / status_period) + 2
        source.wait_for_count(idle + 1 + repeats, WAIT)
        assert {m.data for m in source.messages[idle:]} == {"none"}
        marker = publish_until(teleop, stamped_cmd(0.9), out, stamped_velocity_is(0.9), WAIT)
        messages = out.messages
        last_command = max(i for i, m in enumerate(messages) if stamped_velocity_is(0.5)(m))
        between = messages[last_command + 1 : messages.index(marker)]
        assert between and all(map(stamped_velocity_is(0.0), between)), "zeros, then the marker"
        stamps = [stamp_to_ns(m.header.stamp) for m in between]
        # every zero within the tail (plus a period) on the mux's clock, though the marker came well after it
        assert max(stamps) - min(stamps) <= (tail + period) * 1e9, stamps
        assert len(between) <= round(tail / period) + 2, len(between)


def test_a_third_input_from_yaml_drives_by_its_priority(ros, tmp_path):
    ns = "/nav"
    params = {"inputs": ["teleop", "nav", "policy"], "input.nav.topic": "nav/cmd_vel", "input.nav.priority": 50,
              "input.nav.timeout": 0.3, "input.teleop.timeout": 0.3, "autonomy_on_start": True}
    pubs = {name: ros.publisher(f"{ns}/{topic}", TwistStamped)
            for name, topic in (("policy", "lnn/cmd_vel"), ("nav", "nav/cmd_vel"), ("teleop", "teleop/cmd_vel"))}
    out = ros.collect(f"{ns}/cmd_vel", TwistStamped)
    source = ros.collect(f"{ns}/mux/active_source", String, LATCHED)
    with mux_in(ns, tmp_path, params) as proc:
        proc.wait_for_output(r"ready: teleop \(/nav/teleop/cmd_vel, 100.*nav \(/nav/nav/cmd_vel, 50.*policy")
        for pub in pubs.values():
            ros.wait_for_subscribers(pub)
        repeaters = {"policy": ros.repeat(pubs["policy"], stamped_cmd(0.1), 30.0)}
        try:
            source.wait_for(source_is("policy"), WAIT)
            repeaters["nav"] = ros.repeat(pubs["nav"], stamped_cmd(0.2), 30.0)
            at = len(source)
            source.wait_for(source_is("nav"), WAIT, start=at)  # above the policy
            out.wait_for(stamped_velocity_is(0.2), WAIT)
            repeaters["teleop"] = ros.repeat(pubs["teleop"], stamped_cmd(0.3), 30.0)
            source.wait_for(source_is("teleop"), WAIT, start=at)  # the person above nav
            repeaters.pop("teleop").stop()
            at = len(source)
            source.wait_for(source_is("nav"), WAIT, start=at)
            repeaters.pop("nav").stop()
            source.wait_for(source_is("policy"), WAIT, start=at)
        finally:
            for repeater in repeaters.values():
                repeater.stop()
