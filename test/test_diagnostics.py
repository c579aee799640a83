"""/diagnostics over real rclpy and Fast DDS: the helper (lnn_control.ros.diagnostics) on a node of this process, and
sim_node's statuses from a sim_node process; with the same process, the car's ``odom`` against ``sim/pose``.

Every wait is on what arrives (an array with the expected status, a truth row at a step), never on a sleep; no
rate is asserted (the rules behind the rates are tested in simulated time in test_health.py).
"""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("diagnostic_msgs")

from diagnostic_arrays import has_status, level, statuses, values  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped, TwistStamped  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_harness import NodeProcess, RosSession, free_domain_id  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

from lnn_control.health import Level, Report  # noqa: E402
from lnn_control.nodes.simulator import truth_values  # noqa: E402
from lnn_control.ros.diagnostics import PARAMETER, TOPIC, Diagnostics  # noqa: E402
from lnn_control.ros.msgs import twist_msg  # noqa: E402
from lnn_control.ros.stamps import stamp_to_ns  # noqa: E402

pytestmark = [pytest.mark.ros]

DOMAIN = free_domain_id()
DEEP = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
SEED = 7


@pytest.fixture(scope="module")
def ros():
    with RosSession(DOMAIN) as session:
        yield session










# -- the helper on a node of this process -----------------------------------------------------------------------


def _probe(ros: RosSession, name: str, period: float | None = None):
    import rclpy

    overrides = [] if period is None else [Parameter(PARAMETER, value=period)]
    node = rclpy.create_node(name, context=ros.context, parameter_overrides=overrides)
    ros.executor.add_node(node)
    return node


def test_the_helper_publishes_named_statuses_and_a_failing_check_is_an_error(ros):
    arrays = ros.collect(TOPIC, DiagnosticArray, DEEP)
    node = _probe(ros, "diag_probe", period=0.1)
    try:
        diagnostics = Diagnostics(node, hardware_id="probe0")
        counter = {"calls": 0}

        def counting() -> Report:
            counter["calls"] += 1
            return Report.warn("slow", calls=counter["calls"], ratio=0.5, ready=True)

        def broken() -> Report:
            raise RuntimeError("sensor unplugged")

        diagnostics.add("counting", counting)
        diagnostics.add("broken", broken)
        with pytest.raises(ValueError, match="already added"):
            diagnostics.add("counting", counting)
        array = arrays.wait_for(has_status("diag_probe: counting", lambda s: int(values(s)["calls"]) >= 2), 30)
        found = statuses(array)
        assert list(found) == ["diag_probe: counting", "diag_probe: broken"]  # in the order added
        counting_status, broken_status = found["diag_probe: counting"], found["diag_probe: broken"]
        assert level(counting_status) == Level.WARN and counting_status.message == "slow"
        assert counting_status.hardware_id == "probe0"
        assert values(counting_status)["ratio"] == "0.5" and values(counting_status)["ready"] == "true"
        assert level(broken_status) == Level.ERROR and "sensor unplugged" in broken_status.message
        assert array.header.stamp.sec > 0, "stamped with the node clock"
        assert node.get_parameter(PARAMETER).value == pytest.approx(0.1)
        assert diagnostics.publisher.topic_name == "/diagnostics"
    finally:
        ros.executor.remove_node(node)
        node.destroy_node()


def test_a_zero_period_disables_the_helper(ros):
    node = _probe(ros, "diag_off", period=0.0)
    try:
        diagnostics = Diagnostics(node)
        diagnostics.add("anything", lambda: Report.ok("fine"))
        diagnostics.publish()
        assert not diagnostics.enabled and diagnostics.timer is None
        assert all(info.node_name != "diag_off" for info in node.get_publishers_info_by_topic(TOPIC))
    finally:
        ros.executor.remove_node(node)
        node.destroy_node()


def test_the_period_default_comes_from_the_node_and_the_range_is_checked(ros):
    node = _probe(ros, "diag_default")
    try:
        assert Diagnostics(node, period=2.5).period == 2.5
    finally:
        ros.executor.remove_node(node)
        node.destroy_node()
    bad = _probe(ros, "diag_bad", period=-1.0)
    try:
        with pytest.raises(ValueError, match="diagnostics_period"):
            Diagnostics(bad)
    finally:
        ros.executor.remove_node(bad)
        bad.destroy_node()


# -- sim_node ---------------------------------------------------------------------------------------------------------


@pytest.mark.sim
@pytest.mark.slow
def test_sim_node_reports_on_diagnostics_and_its_odom_matches_its_pose(ros, tmp_path):
    pytest.importorskip("gymnasium")
    pytest.importorskip("Box2D")
    arrays = ros.collect(TOPIC, DiagnosticArray, DEEP)
    odom = ros.collect("odom", Odometry, DEEP)
    poses = ros.collect("sim/pose", PoseStamped, DEEP)
    velocities = ros.collect("sim/velocity", TwistStamped, DEEP)
    truth = ros.collect("sim/truth", Float64MultiArray, DEEP)
    params = {
        "stamped": True, "lockstep": True, "lockstep_timeout": 5.0, "seed": SEED, "max_steps": 1000,
        "frame_width": 64, "frame_height": 48, "diagnostics_period": 0.2,
    }
    with NodeProcess("lnn_control.nodes.simulator", domain_id=DOMAIN, log_dir=tmp_path, params=params) as sim:
        sim.wait_for_output(rf"episode 0 \(seed {SEED}\) starts", timeout=90)
        # nobody publishes on cmd_vel yet: the sim waits, says so, and has had no command
        waiting = arrays.wait_for(has_status("sim_node: simulation", lambda s: "waiting" in s.message), 60)
        found = statuses(waiting)
        assert set(found) >= {"sim_node: simulation", "sim_node: frame rate", "sim_node: command"}
        sim_status = found["sim_node: simulation"]
        assert level(sim_status) == Level.WARN and "/cmd_vel" in sim_status.message
        assert values(sim_status)["episode"] == "0" and values(sim_status)["seed"] == str(SEED)
        assert values(sim_status)["backend"] == sim_status.hardware_id != ""
        command = found["sim_node: command"]
        assert level(command) == Level.WARN and command.message == "no command yet"

        # this process drives: steer left at 20 m/s, answering every vehicle state (reliable) with its stamp
        pub = ros.publisher("cmd_vel", TwistStamped)
        answer = ros.node.create_subscription(
            PoseStamped, "sim/pose",
            lambda m: pub.publish(twist_msg(0.4, 20.0, stamped=True, stamp_ns=stamp_to_ns(m.header.stamp))), DEEP,
        )
        try:
            truth.wait_for(lambda m: truth_values(m)["step"] >= 40, 120)
        finally:
            ros.node.destroy_subscription(answer)

        def driven(status) -> bool:
            return int(values(status)["step"]) >= 40 and "waiting" not in status.message

        array = arrays.wait_for(has_status("sim_node: simulation", driven), 60)
        found = statuses(array)
        sim_status = found["sim_node: simulation"]
        assert level(sim_status) == Level.OK, sim_status.message
        assert values(sim_status)["bad commands"] == "0" and values(sim_status)["running"] == "true"
        command = found["sim_node: command"]
        assert int(values(command)["commands received"]) >= 40
        assert float(values(command)["command age (s)"]) >= 0.0
        rate = found["sim_node: frame rate"]
        assert int(values(rate)["events since start"]) >= 40
        assert {"rate (Hz)", "real-time factor", "window (s)"} <= set(values(rate))
        assert sim.alive

    # odom (nav_msgs/Odometry, REP 105 frames) says what sim/pose and sim/velocity say, frame for frame
    pose_at = {stamp_to_ns(p.header.stamp): p for p in poses.messages}
    velocity_at = {stamp_to_ns(v.header.stamp): v for v in velocities.messages}
    matched = 0
    for msg in odom.messages:
        assert (msg.header.frame_id, msg.child_frame_id) == ("map", "base_link")
        stamp = stamp_to_ns(msg.header.stamp)
        pose, velocity = pose_at.get(stamp), velocity_at.get(stamp)
        if pose is None or velocity is None:
            continue
        matched += 1
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        assert (p.x, p.y, p.z) == pytest.approx((pose.pose.position.x, pose.pose.position.y, 0.0))
        o = pose.pose.orientation
        assert (q.x, q.y, q.z, q.w) == pytest.approx((o.x, o.y, o.z, o.w), abs=1e-9)
        assert msg.twist.twist.linear.x == pytest.approx(velocity.twist.linear.x)
        assert msg.twist.twist.angular.z == pytest.approx(velocity.twist.angular.z)
    assert matched >= 30
    last = odom.messages[-1].twist.twist
    assert last.linear.x > 1.0, "the car rolls"
    assert any(abs(m.twist.twist.angular.z) > 0.01 for m in odom.messages), "and turns"


# -- drone_adapter_node -----------------------------------------------------------------------------------------------


def test_drone_adapter_reports_its_state_odometry_and_e_stop(ros, tmp_path):
    from ros_harness import publish_until
    from std_msgs.msg import Bool

    arrays = ros.collect(TOPIC, DiagnosticArray, DEEP)
    params = {"rate": 20.0, "odom_timeout": 2.0, "diagnostics_period": 0.2}
    with NodeProcess("lnn_control.nodes.drone_adapter", domain_id=DOMAIN, log_dir=tmp_path, params=params) as node:
        node.wait_for_output("ready")
        first = statuses(arrays.wait_for(has_status("drone_adapter_node: e-stop"), 30))
        output, odometry = first["drone_adapter_node: output"], first["drone_adapter_node: odometry"]
        assert level(output) == Level.WARN and output.message.startswith("hovering")
        assert output.hardware_id == "mavros"
        assert level(odometry) == Level.ERROR and odometry.message == "no odometry yet"
        assert values(odometry)["topic"] == "/mavros/local_position/odom"
        assert level(first["drone_adapter_node: e-stop"]) == Level.OK

        odom = Odometry()
        odom.header.frame_id, odom.child_frame_id = "map", "base_link"
        odom.pose.pose.position.z, odom.pose.pose.orientation.w = 5.0, 1.0
        odom_pub = ros.publisher("/mavros/local_position/odom", Odometry)
        fresh = publish_until(odom_pub, lambda: odom, arrays,
                              has_status("drone_adapter_node: odometry", lambda s: level(s) == Level.OK), 30)
        assert float(values(statuses(fresh)["drone_adapter_node: odometry"])["odometry age (s)"]) <= 2.0

        e_stop = ros.publisher("e_stop", Bool)
        engaged = publish_until(e_stop, lambda: Bool(data=True), arrays,
                                has_status("drone_adapter_node: e-stop", lambda s: level(s) == Level.ERROR), 30)
        found = statuses(engaged)
        assert values(found["drone_adapter_node: e-stop"])["engaged"] == "true"
        assert values(found["drone_adapter_node: output"])["state"] == "e_stop"
        assert node.alive


# -- joy_teleop_node --------------------------------------------------------------------------------------------------


def test_joy_teleop_says_when_no_gamepad_publishes(ros, tmp_path):
    from ros_harness import publish_until
    from sensor_msgs.msg import Joy

    arrays = ros.collect(TOPIC, DiagnosticArray, DEEP)
    with NodeProcess("lnn_control.nodes.joy_teleop", domain_id=DOMAIN, log_dir=tmp_path,
                     params={"diagnostics_period": 0.2, "joy_timeout": 5.0}) as node:
        node.wait_for_output("ready")
        first = statuses(arrays.wait_for(has_status("joy_teleop_node: gamepad"), 30))["joy_teleop_node: gamepad"]
        assert level(first) == Level.WARN and "joy_node" in first.message
        assert values(first)["Joy messages"] == "0"
        joy = ros.publisher("joy", Joy)
        found = publish_until(joy, lambda: Joy(axes=[0.0] * 6, buttons=[0] * 8), arrays,
                              has_status("joy_teleop_node: gamepad", lambda s: level(s) == Level.OK), 30)
        assert int(values(statuses(found)["joy_teleop_node: gamepad"])["Joy messages"]) >= 1
        assert node.alive
