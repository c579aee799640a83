"""command_mux_node over real DDS: the wiring of topics, service, parameters and log to the rules.

The rules themselves (who wins, timeouts, repeat cadence, restamping, status cadence, e-stop latching) are tested in
simulated time in test_mux_rules.py. Here nothing is timed: each test publishes until the node's answer is there and
waits on what the node says (``cmd_vel``, ``mux/active_source``, its log). Where a test checks that something did not
leak through, it compares the order of the outputs with the source changes the node logged, so a stalled machine
(which makes the inputs stale, and the node switch) cannot fail it.

One mux process per layout (Twist, TwistStamped); this process plays the policy and the person.
"""

from __future__ import annotations

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

from lnn_control.ros.msgs import twist_msg, twist_to_command  # noqa: E402
from lnn_control.ros.qos import LATCHED  # noqa: E402

pytestmark = [pytest.mark.ros]

DOMAIN = free_domain_id()
PARAMS = {"rate": 20.0, "teleop_timeout": 0.4, "policy_timeout": 0.4, "status_period": 0.5}
#: How long any one wait may take before the test fails (a bound for a stuck node, not a measurement).
WAIT = 15.0


def test_names_are_re_exported_from_the_rules():
    from lnn_control import mux_rules
    from lnn_control.nodes.mux import E_STOP, NONE, POLICY, TELEOP, Arbiter, MuxConfig

    assert (Arbiter, MuxConfig) == (mux_rules.Arbiter, mux_rules.MuxConfig)
    assert (E_STOP, NONE, POLICY, TELEOP) == ("e_stop", "none", "policy", "teleop")


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
