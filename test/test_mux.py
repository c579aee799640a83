"""command_mux_node over real DDS: the human wins, e-stop beats everyone, stale inputs give zero, source published.

One mux process per layout (Twist, TwistStamped) for the whole module; this process plays the policy and the person.
"""

from __future__ import annotations

import signal
import time

import pytest

pytest.importorskip("rclpy")

from geometry_msgs.msg import Twist, TwistStamped  # noqa: E402
from ros_harness import NodeProcess, RosSession, free_domain_id  # noqa: E402
from std_msgs.msg import Bool, String  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402

from lnn_control.nodes.mux import E_STOP, NONE, POLICY, TELEOP, Arbiter, MuxConfig  # noqa: E402
from lnn_control.ros.msgs import twist_msg, twist_to_command  # noqa: E402
from lnn_control.ros.qos import LATCHED  # noqa: E402

pytestmark = [pytest.mark.ros]

DOMAIN = free_domain_id()
TELEOP_TIMEOUT = 0.4
POLICY_TIMEOUT = 0.4
PARAMS = {"rate": 20.0, "teleop_timeout": TELEOP_TIMEOUT, "policy_timeout": POLICY_TIMEOUT, "status_period": 0.5}


def test_arbiter_order_without_ros():
    arbiter = Arbiter(MuxConfig(teleop_timeout=0.5, policy_timeout=0.2))
    assert arbiter.source(0) == NONE
    arbiter.last_policy_ns = 0
    assert arbiter.source(100_000_000) == POLICY
    assert arbiter.source(300_000_000) == NONE  # stale policy
    arbiter.last_teleop_ns = 250_000_000
    arbiter.last_policy_ns = 290_000_000
    assert arbiter.source(300_000_000) == TELEOP  # the human wins over a fresh policy
    assert arbiter.source(760_000_000) == NONE
    arbiter.e_stop = True
    assert arbiter.source(300_000_000) == E_STOP


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
    out.wait_for_count(1)
    return pubs, out, source


def velocity_is(value):
    return lambda msg: abs(msg.linear.x - value) < 1e-9


def test_idle_mux_sends_zero_and_says_none(ros, io):
    pubs, out, source = io
    assert source.wait_for(lambda m: m.data == NONE).data == NONE  # latched: arrives even though we joined late
    start = time.monotonic()
    time.sleep(0.5)
    recent = out.since(start)
    assert len(recent) >= 7, "the timer keeps publishing at about 20 Hz"
    assert all(m.linear.x == 0.0 and m.angular.z == 0.0 for m in recent)


def test_teleop_overrides_policy_then_hands_back(ros, io):
    pubs, out, source = io
    policy = ros.repeat(pubs["policy"], lambda: twist_msg(0.1, 1.0, stamped=False), 30.0)
    try:
        out.wait_for(velocity_is(1.0))
        source.wait_for(lambda m: m.data == POLICY)
        teleop = ros.repeat(pubs["teleop"], lambda: twist_msg(-0.5, 0.3, stamped=False), 20.0)
        t0 = time.monotonic()
        out.wait_for(velocity_is(0.3), after=t0)
        source.wait_for(lambda m: m.data == TELEOP, after=t0)
        time.sleep(0.5)
        during = out.since(time.monotonic() - 0.4)
        assert during and all(abs(m.linear.x - 0.3) < 1e-9 for m in during), "policy leaked through while teleop"
        assert twist_to_command(during[-1]).steering == -0.5
        teleop.stop()
        stopped = time.monotonic()
        out.wait_for(velocity_is(1.0), timeout=3.0, after=stopped)
        handed_back = time.monotonic() - stopped
        assert TELEOP_TIMEOUT - 0.1 <= handed_back <= TELEOP_TIMEOUT + 0.5, handed_back
        source.wait_for(lambda m: m.data == POLICY, after=stopped)
    finally:
        policy.stop()


def test_stale_policy_gives_zero_and_none(ros, io):
    pubs, out, source = io
    policy = ros.repeat(pubs["policy"], lambda: twist_msg(0.0, 0.8, stamped=False), 30.0)
    out.wait_for(velocity_is(0.8))
    policy.stop()
    stopped = time.monotonic()
    out.wait_for(velocity_is(0.0), timeout=3.0, after=stopped)
    assert time.monotonic() - stopped <= POLICY_TIMEOUT + 0.5
    source.wait_for(lambda m: m.data == NONE, after=stopped)


def test_e_stop_topic_is_latched_until_released(ros, io):
    pubs, out, source = io
    policy = ros.repeat(pubs["policy"], lambda: twist_msg(0.0, 1.0, stamped=False), 30.0)
    teleop = ros.repeat(pubs["teleop"], lambda: twist_msg(0.0, 0.5, stamped=False), 20.0)
    try:
        out.wait_for(velocity_is(0.5))
        t0 = time.monotonic()
        pubs["e_stop"].publish(Bool(data=True))
        source.wait_for(lambda m: m.data == E_STOP, after=t0)
        out.wait_for(velocity_is(0.0), after=t0)
        time.sleep(0.6)  # both drivers keep publishing; nothing but zero may go out
        recent = out.since(time.monotonic() - 0.5)
        assert len(recent) >= 8 and all(m.linear.x == 0.0 for m in recent)
        t1 = time.monotonic()
        pubs["e_stop"].publish(Bool(data=False))
        out.wait_for(velocity_is(0.5), after=t1)  # the person drives again
        source.wait_for(lambda m: m.data == TELEOP, after=t1)
    finally:
        teleop.stop()
        policy.stop()


def test_e_stop_service(ros, io):
    pubs, out, source = io
    policy = ros.repeat(pubs["policy"], lambda: twist_msg(0.0, 1.0, stamped=False), 30.0)
    try:
        out.wait_for(velocity_is(1.0))
        t0 = time.monotonic()
        response = ros.call("command_mux_node/e_stop", SetBool, SetBool.Request(data=True))
        assert response.success and "engaged" in response.message
        out.wait_for(velocity_is(0.0), after=t0)
        source.wait_for(lambda m: m.data == E_STOP, after=t0)
        time.sleep(0.5)
        assert all(m.linear.x == 0.0 for m in out.since(time.monotonic() - 0.4))
        response = ros.call("command_mux_node/e_stop", SetBool, SetBool.Request(data=False))
        assert response.success and "released" in response.message
        t1 = time.monotonic()
        out.wait_for(velocity_is(1.0), after=t1)
    finally:
        policy.stop()


def test_active_source_repeats_for_late_joiners(ros, io):
    _, _, source = io
    t0 = time.monotonic()
    time.sleep(1.2)
    assert len(source.since(t0)) >= 2, "mux/active_source repeats every status_period"
    late = ros.collect("mux/active_source", String, LATCHED)
    assert late.wait_for(lambda m: m.data in (NONE, POLICY, TELEOP, E_STOP), timeout=5.0)


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
        idle = out.wait_for(lambda m: True)
        assert idle.header.frame_id == "base_test" and idle.header.stamp.sec > 0, "zero commands are stamped now"
        stamp_ns = 1_234_567_891_000
        t0 = time.monotonic()
        pub.publish(twist_msg(0.25, 0.7, stamped=True, stamp_ns=stamp_ns, frame_id="cam"))
        fwd = out.wait_for(lambda m: abs(m.twist.linear.x - 0.7) < 1e-9, after=t0)
        assert twist_to_command(fwd).stamp_ns == stamp_ns and fwd.header.frame_id == "cam", "forwarded unchanged"
        assert proc.stop(signal.SIGINT) == 0, proc.tail()
