"""drone_adapter_node over real DDS: topics, service, parameters, log and sim time wired to the rules.

The rules themselves (limits, ramps, the fence, timeouts, e-stop latching, refused commands) are tested in simulated
time in test_drone_output.py. Here nothing is timed: each test publishes until the node's answer is there and waits
on what the node says (its setpoint, ``~/status``, its log). Where a test checks that nothing moved while the
emergency stop held, it selects the setpoints by their header stamps against the stamp of the node's own status,
so a slow machine cannot make it pass or fail by timing.

One adapter process in mavros mode (local ENU: the command is rotated by the odometry yaw); this process plays the
stack (cmd_vel), MAVROS's odometry and the e-stop button. Two short extra processes: PX4 mode without px4_msgs,
and sim time.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("nav_msgs")

from geometry_msgs.msg import Twist, TwistStamped  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from ros_harness import (  # noqa: E402
    NodeProcess,
    RosSession,
    free_domain_id,
    publish_until,
    publish_until_condition,
)
from rosgraph_msgs.msg import Clock  # noqa: E402
from std_msgs.msg import Bool, String  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402

from lnn_control.ros.qos import LATCHED  # noqa: E402
from lnn_control.ros.stamps import ns_to_stamp, stamp_to_ns  # noqa: E402

pytestmark = [pytest.mark.ros]

DOMAIN = free_domain_id()
SETPOINT = "/mavros/setpoint_velocity/cmd_vel"
ODOM = "/mavros/local_position/odom"
STATUS = "/drone_adapter_node/status"
PARAMS = {
    "rate": 20.0,
    "timeout": 0.5,
    "odom_timeout": 2.0,
    "geofence_radius": 10.0,
    "geofence_margin": 0.5,
    "status_period": 0.5,
    "stamped": False,  # Twist; test_sim_time_and_the_stamped_layout takes the default TwistStamped
}
#: How long any one wait may take before the test fails (a bound for a stuck node, not a measurement).
WAIT = 15.0


@pytest.fixture(scope="module")
def ros():
    with RosSession(DOMAIN) as session:
        yield session


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    with NodeProcess(
        "lnn_control.nodes.drone_adapter",
        domain_id=DOMAIN,
        log_dir=tmp_path_factory.mktemp("drone_adapter"),
        name="drone_adapter_node",
        params=PARAMS,
    ) as proc:
        proc.wait_for_output("ready")
        yield proc


class Odom:
    """MAVROS's odometry, played by this process: published all along at 20 Hz; tests move the vehicle."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pose = (0.0, 0.0, 5.0, 0.0)

    def set(self, x: float, y: float, z: float, yaw: float) -> None:
        with self._lock:
            self.pose = (x, y, z, yaw)

    def msg(self) -> Odometry:
        with self._lock:
            x, y, z, yaw = self.pose
        msg = Odometry()
        msg.header.frame_id, msg.child_frame_id = "map", "base_link"
        msg.pose.pose.position.x, msg.pose.pose.position.y, msg.pose.pose.position.z = x, y, z
        msg.pose.pose.orientation.z, msg.pose.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
        return msg


@pytest.fixture(scope="module")
def io(ros, adapter):
    """Publishers (cmd_vel, e_stop), the odometry stream, collectors for the setpoint and the status."""
    pubs = {"cmd": ros.publisher("cmd_vel", Twist), "e_stop": ros.publisher("e_stop", Bool)}
    odom = Odom()
    odom_pub = ros.publisher(ODOM, Odometry)
    out = ros.collect(SETPOINT, TwistStamped)
    status = ros.collect(STATUS, String, LATCHED)
    for pub in (*pubs.values(), odom_pub):
        ros.wait_for_subscribers(pub)
    ros.repeat(odom_pub, odom.msg, 20.0)
    out.wait_for_count(1, timeout=WAIT)
    return pubs, odom, out, status


def twist(vx: float = 0.0, vy: float = 0.0, vz: float = 0.0, yaw_rate: float = 0.0) -> Twist:
    msg = Twist()
    msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.z = float(vx), float(vy), float(vz), float(yaw_rate)
    return msg


def setpoint_is(x: float, y: float, z: float = 0.0, yaw_rate: float = 0.0) -> Callable[[Any], bool]:
    def check(msg: TwistStamped) -> bool:
        got = (msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z, msg.twist.angular.z)
        return all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(got, (x, y, z, yaw_rate)))
    return check


is_hover = setpoint_is(0.0, 0.0)


def state_is(state: str, **extra: Any) -> Callable[[Any], bool]:
    def check(msg: String) -> bool:
        doc = json.loads(msg.data)
        return doc["state"] == state and all(doc.get(k) == v for k, v in extra.items())
    return check


def test_idle_hovers_and_says_why(io, adapter):
    _, _, out, status = io
    assert status.wait_for(state_is("no_command"), WAIT) is not None  # latched: arrives though we joined late
    hover = out.wait_for(is_hover, WAIT)
    assert hover.header.frame_id == "map" and stamp_to_ns(hover.header.stamp) > 0, "ENU, stamped on the node clock"
    assert "never arms or changes the flight mode" in adapter.output()
    assert re.search(r"ready: /cmd_vel \(Twist\) -> /mavros/setpoint_velocity/cmd_vel", adapter.output())


def test_the_command_is_rotated_by_the_odometry_yaw(io):
    pubs, odom, out, status = io
    odom.set(0.0, 0.0, 5.0, math.pi / 2)  # facing north: forward is +y (north), left is -x (west)
    found = publish_until(pubs["cmd"], lambda: twist(1.0, 0.5, 0.2, 0.3), out, setpoint_is(-0.5, 1.0, 0.2, 0.3), WAIT)
    assert found.header.frame_id == "map"
    odom.set(0.0, 0.0, 5.0, 0.0)  # facing east: unrotated
    publish_until(pubs["cmd"], lambda: twist(1.0, 0.5, 0.2, 0.3), out, setpoint_is(1.0, 0.5, 0.2, 0.3), WAIT)
    status.wait_for(state_is("ok"), WAIT, start=0)


def test_no_command_for_the_timeout_gives_hover(io, adapter):
    pubs, odom, out, status = io
    odom.set(0.0, 0.0, 5.0, 0.0)
    publish_until(pubs["cmd"], lambda: twist(0.7), out, setpoint_is(0.7, 0.0), WAIT)
    stopped, source_start, log_start = len(out), len(status), len(adapter.output())
    out.wait_for(is_hover, WAIT, start=stopped)
    status.wait_for(state_is("no_command"), WAIT, start=source_start)
    adapter.wait_for_output(r"hover: no command within the timeout", WAIT, start=log_start)


def test_the_geofence_removes_the_outward_part_only(io, adapter):
    pubs, odom, out, status = io
    log_start = len(adapter.output())
    odom.set(9.8, 0.0, 5.0, 0.0)  # at the east edge of the 10 m fence, facing out
    try:
        publish_until(pubs["cmd"], lambda: twist(1.0, 0.5), out, setpoint_is(0.0, 0.5), WAIT)
        status.wait_for(lambda m: "fence_radius" in json.loads(m.data)["acting"], WAIT)
        adapter.wait_for_output(r"geofence acting: fence_radius", WAIT, start=log_start)
        publish_until(pubs["cmd"], lambda: twist(-1.0, 0.5), out, setpoint_is(-1.0, 0.5), WAIT)  # back in: kept
    finally:
        odom.set(0.0, 0.0, 5.0, 0.0)


def test_a_nan_command_hovers_with_a_warning(io, adapter):
    pubs, odom, out, status = io
    publish_until(pubs["cmd"], lambda: twist(0.6), out, setpoint_is(0.6, 0.0), WAIT)
    log_start = len(adapter.output())
    publish_until(pubs["cmd"], lambda: twist(math.nan), status, state_is("invalid_command"), WAIT)
    adapter.wait_for_output(r"command refused, hovering: non-finite value", WAIT, start=log_start)
    out.wait_for(is_hover, WAIT, start=len(out) - 1)


def test_the_e_stop_latches_until_the_service_releases_it(ros, io, adapter):
    pubs, odom, out, status = io
    odom.set(0.0, 0.0, 5.0, 0.0)
    commands = ros.repeat(pubs["cmd"], lambda: twist(0.8), 20.0)
    try:
        out.wait_for(setpoint_is(0.8, 0.0), WAIT, start=len(out))
        log_start = len(adapter.output())
        engaged = publish_until(pubs["e_stop"], lambda: Bool(data=True), status, state_is("e_stop"), WAIT)
        engaged_ns = json.loads(engaged.data)["stamp_ns"]
        adapter.wait_for_output(r"emergency stop ENGAGED by topic /e_stop", WAIT, start=log_start)
        # false on the topic releases nothing; the node says so
        publish_until_condition(pubs["e_stop"], lambda: Bool(data=False),
                                lambda: "e_stop false on the topic ignored" in adapter.output()[log_start:], WAIT,
                                what="the node ignoring e_stop false")
        # the commands keep coming: wait until the node has counted more of them under the e-stop and stamped ten
        # setpoints since the engagement, then check every one of those
        seen = json.loads(engaged.data)["commands"]
        status.wait_for(lambda m: state_is("e_stop")(m) and json.loads(m.data)["commands"] >= seen + 10, WAIT)

        def since_engaged() -> list[TwistStamped]:
            return [m for m in out.messages if stamp_to_ns(m.header.stamp) >= engaged_ns]

        ros.wait_for(lambda: len(since_engaged()) >= 10, WAIT, "10 setpoints under the e-stop")
        after = since_engaged()
        assert all(is_hover(m) for m in after), "nothing moved while the e-stop held"
        response = ros.call("drone_adapter_node/e_stop", SetBool, SetBool.Request(data=False))
        assert response.success and response.message.startswith("emergency stop released")
        out.wait_for(setpoint_is(0.8, 0.0), WAIT, start=len(out))  # new commands fly again
        adapter.wait_for_output(r"emergency stop released by service ~/e_stop", WAIT, start=log_start)
    finally:
        commands.stop()


def test_px4_without_px4_msgs_stops_with_a_clear_error(tmp_path):
    try:
        import px4_msgs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("px4_msgs is installed here")
    with NodeProcess("lnn_control.nodes.drone_adapter", domain_id=DOMAIN, log_dir=tmp_path, name="drone_px4",
                     params={"output": "px4"}) as proc:
        assert proc.wait(WAIT * 2) == 2, proc.tail()
        assert "output:=px4 needs the px4_msgs interface package" in proc.output()


def test_sim_time_and_the_stamped_layout(ros, tmp_path):
    start_ns = 1_000 * 1_000_000_000
    ticks = itertools.count()
    clock_pub = ros.publisher("/clock", Clock)
    cmd_pub = ros.publisher("/sim/cmd_vel", TwistStamped)
    params = {**PARAMS, "use_sim_time": True, "stamped": True, "mavros_topic": "/sim/setpoint"}
    with NodeProcess("lnn_control.nodes.drone_adapter", domain_id=DOMAIN, log_dir=tmp_path, name="drone_sim",
                     params=params, remaps={"cmd_vel": "/sim/cmd_vel"}) as proc:
        proc.wait_for_output("ready")
        assert "/sim/cmd_vel (TwistStamped)" in proc.output()
        out = ros.collect("/sim/setpoint", TwistStamped)
        sim = ros.repeat(clock_pub, lambda: Clock(clock=ns_to_stamp(start_ns + next(ticks) * 10_000_000)), 100.0)
        try:
            found = out.wait_for(lambda m: stamp_to_ns(m.header.stamp) >= start_ns, WAIT * 2)
        finally:
            sim.stop()
        assert stamp_to_ns(found.header.stamp) < start_ns + 1_000 * 1_000_000_000, "sim time, not wall time"
        assert is_hover(found)
        # a stamped command in another frame than base_link is refused, and the node says so
        wrong = TwistStamped()
        wrong.header.frame_id, wrong.twist.linear.x = "map", 1.0
        ros.wait_for_subscribers(cmd_pub)
        publish_until_condition(cmd_pub, lambda: wrong, lambda: "command in frame 'map'" in proc.output(), WAIT,
                                what="the node refusing a command in the map frame")


def fake_px4_type(name: str, names: tuple[str, ...]) -> type:
    """A stand-in for a px4_msgs class: keyword construction and attributes limited to the message's fields."""

    class Fake:
        __slots__ = names

        def __init__(self, **values: Any) -> None:
            for field in names:
                setattr(self, field, None)
            for field, value in values.items():
                setattr(self, field, value)  # AttributeError for a field the message does not have

    Fake.__name__ = name
    return Fake


#: The fields of px4_msgs/msg/TrajectorySetpoint and OffboardControlMode (PX4/px4_msgs main, PX4 v1.14 on).
TRAJECTORY_SETPOINT = ("timestamp", "position", "velocity", "acceleration", "jerk", "yaw", "yawspeed")
OFFBOARD_CONTROL_MODE = ("timestamp", "position", "velocity", "acceleration", "attitude", "body_rate",
                         "thrust_and_torque", "direct_actuator")


def test_px4_messages_fill_the_px4_fields():
    from lnn_control.drone_output import BodyVelocity, px4_setpoint
    from lnn_control.nodes.drone_adapter import px4_messages

    sp = px4_setpoint(BodyVelocity(1.0, 0.0, 0.5, 0.2), math.pi / 2, 42)
    for mode_fields in (OFFBOARD_CONTROL_MODE, OFFBOARD_CONTROL_MODE[:6]):  # older px4_msgs: fewer flags
        setpoint, mode = px4_messages(fake_px4_type("TrajectorySetpoint", TRAJECTORY_SETPOINT),
                                      fake_px4_type("OffboardControlMode", mode_fields), sp)
        assert setpoint.timestamp == mode.timestamp == 42
        assert all(math.isclose(a, b, abs_tol=1e-9) for a, b in zip(setpoint.velocity, (1.0, 0.0, -0.5)))
        assert setpoint.yawspeed == -0.2 and math.isnan(setpoint.yaw)
        assert all(math.isnan(x) for x in (*setpoint.position, *setpoint.acceleration))
        assert mode.velocity is True
        assert not any(getattr(mode, f) for f in mode_fields if f not in ("timestamp", "velocity"))
