"""vehicle_adapter_node over real rclpy and Fast DDS: each mode end to end, the Ackermann wire bytes, the stop.

The rules themselves (conversions, limits, timeout, refused commands, repeats) are tested in simulated time in
test_vehicle_output.py. Here nothing is timed: each test publishes a car command until the vehicle message computed
from the node's parameters arrives, or waits on what the node says (``~/status``, its log).

ackermann mode needs ackermann_msgs, built once per session by test/msg_build_session.py (skipped, with the reason,
where cmake or the build wheels are missing). The bytes the node puts on the wire are compared with rosbags' CDR
serialisation of the same values under the public definition, so the test means something wherever the build works.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("rclpy")

from geometry_msgs.msg import Twist, TwistStamped  # noqa: E402
from msg_build_session import cache_of, session_build, use_in_this_process  # noqa: E402
from ros_harness import NodeProcess, RosSession, free_domain_id, publish_until  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from lnn_control.ros.msg_build import ACKERMANN_MSGS  # noqa: E402
from lnn_control.ros.qos import LATCHED  # noqa: E402
from lnn_control.ros.stamps import ns_to_stamp, stamp_to_ns  # noqa: E402

pytestmark = [pytest.mark.ros]

DOMAIN = free_domain_id()
WAIT = 20.0
#: 11 characters: with the terminating NUL the string fills whole 4-byte words, so the CDR has no padding bytes
#: (whose content Fast CDR leaves undefined) and the bytes can be compared whole.
FRAME = "ego_vehicle"
MAX_ANGLE, WHEELBASE = 0.4, 0.25
COMMON = {"max_steering_angle": MAX_ANGLE, "wheelbase": WHEELBASE, "frame_id": FRAME, "timeout": 0.5,
          "status_period": 0.5, "max_speed": 3.0, "stamped": False}


@pytest.fixture(scope="module")
def ros():
    with RosSession(DOMAIN) as session:
        yield session


def node(tmp_path: Any, name: str, params: dict[str, Any], env: dict[str, str] | None = None) -> NodeProcess:
    return NodeProcess("lnn_control.nodes.vehicle_adapter", domain_id=DOMAIN, log_dir=tmp_path, name=name,
                       params=params, remaps={"cmd_vel": f"/{name}/in", "drive": f"/{name}/drive",
                                              "vehicle/cmd_vel": f"/{name}/out"}, env=env)


def twist(steering: float, velocity: float) -> Twist:
    msg = Twist()
    msg.angular.z, msg.linear.x = float(steering), float(velocity)
    return msg


def state_is(state: str) -> Callable[[Any], bool]:
    return lambda msg: json.loads(msg.data)["state"] == state


# -- ackermann ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    result = session_build(tmp_path_factory)
    use_in_this_process(result)
    return result


@pytest.fixture(scope="module")
def ackermann(ros, built, tmp_path_factory):
    """An ackermann-mode node (Twist in), the test's publisher, collectors of its drive (messages and raw bytes)
    and status."""
    from ackermann_msgs.msg import AckermannDriveStamped

    env = {"LNN_CONTROL_CACHE": str(cache_of(built))}
    with node(tmp_path_factory.mktemp("ackermann"), "ack", {**COMMON, "mode": "ackermann"}, env) as proc:
        proc.wait_for_output("ready")
        pub = ros.publisher("/ack/in", Twist)
        out = ros.collect("/ack/drive", AckermannDriveStamped)
        raw = ros.collect("/ack/drive", AckermannDriveStamped, raw=True)
        status = ros.collect("/ack/status", String, LATCHED)
        ros.wait_for_subscribers(pub)
        yield proc, pub, out, raw, status


def drive_is(angle: float, speed: float) -> Callable[[Any], bool]:
    def check(msg: Any) -> bool:
        d = msg.drive  # float32 on the wire
        return math.isclose(d.steering_angle, angle, abs_tol=1e-6) and math.isclose(d.speed, speed, abs_tol=1e-6)
    return check


def test_ackermann_sends_the_angle_from_the_full_lock(ackermann):
    proc, pub, out, _, _ = ackermann
    found = publish_until(pub, lambda: twist(0.5, 1.25), out, drive_is(0.5 * MAX_ANGLE, 1.25), WAIT)
    assert found.header.frame_id == FRAME and stamp_to_ns(found.header.stamp) > 0, "stamped on the node clock"
    assert found.drive.acceleration == 0.0 and found.drive.jerk == 0.0
    publish_until(pub, lambda: twist(-1.0, -0.5), out, drive_is(-MAX_ANGLE, -0.5), WAIT)  # right lock, reversing
    publish_until(pub, lambda: twist(2.0, 9.0), out, drive_is(MAX_ANGLE, 3.0), WAIT)  # clamped
    assert "ready: /ack/in (Twist) -> /ack/drive (AckermannDriveStamped), mode ackermann" in proc.output()


def test_ackermann_wire_bytes_are_the_public_definitions_cdr(ackermann):
    from ackermann_msgs.msg import AckermannDriveStamped
    from rclpy.serialization import deserialize_message
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    _, pub, out, raw, _ = ackermann
    publish_until(pub, lambda: twist(0.75, 1.5), out, drive_is(0.75 * MAX_ANGLE, 1.5), WAIT)
    data = raw.wait_for(lambda b: drive_is(0.75 * MAX_ANGLE, 1.5)(deserialize_message(b, AckermannDriveStamped)),
                        WAIT)
    got = deserialize_message(data, AckermannDriveStamped)

    store = get_typestore(Stores.ROS2_JAZZY)
    types = {}
    for type_name, text in ACKERMANN_MSGS.messages.items():
        types.update(get_types_from_msg(text, f"ackermann_msgs/msg/{type_name}"))
    store.register(types)
    drive_cls = store.types["ackermann_msgs/msg/AckermannDrive"]
    stamped_cls = store.types["ackermann_msgs/msg/AckermannDriveStamped"]
    header = store.types["std_msgs/msg/Header"](
        stamp=store.types["builtin_interfaces/msg/Time"](sec=got.header.stamp.sec, nanosec=got.header.stamp.nanosec),
        frame_id=FRAME,
    )
    d = got.drive
    theirs = stamped_cls(header=header, drive=drive_cls(
        steering_angle=d.steering_angle, steering_angle_velocity=d.steering_angle_velocity, speed=d.speed,
        acceleration=d.acceleration, jerk=d.jerk))
    expected = store.serialize_cdr(theirs, "ackermann_msgs/msg/AckermannDriveStamped")
    assert bytes(data) == bytes(expected)
    back = store.deserialize_cdr(bytes(data), "ackermann_msgs/msg/AckermannDriveStamped")
    assert math.isclose(back.drive.steering_angle, 0.3, rel_tol=1e-6) and back.drive.speed == 1.5


def test_no_command_for_the_timeout_stops_the_car(ackermann):
    proc, pub, out, _, status = ackermann
    publish_until(pub, lambda: twist(0.25, 1.0), out, drive_is(0.25 * MAX_ANGLE, 1.0), WAIT)
    moving, log_start = len(out), len(proc.output())
    stop = out.wait_for(drive_is(0.0, 0.0), WAIT, start=moving)
    assert stop.header.frame_id == FRAME
    status.wait_for(state_is("no_command"), WAIT, start=0)
    proc.wait_for_output(r"stop: no command within the timeout", WAIT, start=log_start)


def test_a_nan_command_stops_the_car_with_a_warning(ackermann):
    proc, pub, out, _, status = ackermann
    publish_until(pub, lambda: twist(0.5, 1.0), out, drive_is(0.5 * MAX_ANGLE, 1.0), WAIT)
    log_start = len(proc.output())
    publish_until(pub, lambda: twist(math.nan, 1.0), status, state_is("invalid_command"), WAIT)
    proc.wait_for_output(r"command on /ack/in refused, stopping: non-finite value", WAIT, start=log_start)
    out.wait_for(drive_is(0.0, 0.0), WAIT, start=len(out) - 1)


def test_ackermann_without_ackermann_msgs_exits_with_what_to_do(tmp_path):
    with node(tmp_path, "ack_missing", {"mode": "ackermann"}, {"LNN_CONTROL_BUILT_MSGS": "0"}) as proc:
        code = proc.wait(WAIT * 2)
        if code == 0 or "ready" in proc.output():
            pytest.skip("an ackermann_msgs package is installed here (a ROS install)")
        assert code == 2, proc.tail()
    out = proc.output()
    assert "mode:=ackermann needs the ackermann_msgs interface package" in out
    assert "lnn-control build-msgs" in out and "ros-jazzy-ackermann-msgs" in out


# -- twist modes -------------------------------------------------------------------------------------------------------


def test_twist_yaw_rate_sends_the_bicycle_yaw_rate_with_the_commands_stamp(ros, tmp_path):
    params = {**COMMON, "mode": "twist_yaw_rate", "stamped": True, "output_stamped": True}
    with node(tmp_path, "yaw", params) as proc:
        proc.wait_for_output("ready")
        pub = ros.publisher("/yaw/in", TwistStamped)
        out = ros.collect("/yaw/out", TwistStamped)
        ros.wait_for_subscribers(pub)
        stamp_ns = 1_234_567_891_000

        def command() -> TwistStamped:
            msg = TwistStamped()
            msg.header.stamp, msg.header.frame_id = ns_to_stamp(stamp_ns), "base_link"
            msg.twist = twist(0.5, 1.5)
            return msg

        expected = 1.5 * math.tan(0.5 * MAX_ANGLE) / WHEELBASE

        def is_expected(m: TwistStamped) -> bool:
            return m.twist.linear.x == 1.5 and math.isclose(m.twist.angular.z, expected, rel_tol=1e-12)

        found = publish_until(pub, command, out, is_expected, WAIT)
        assert stamp_to_ns(found.header.stamp) == stamp_ns, "the stamp of the command it answers"
        assert found.header.frame_id == FRAME
        assert "ready: /yaw/in (TwistStamped) -> /yaw/out (TwistStamped), mode twist_yaw_rate" in proc.output()


def test_normalised_passes_the_command_through_as_a_twist(ros, tmp_path):
    params = {**COMMON, "mode": "normalised", "output_stamped": False}
    with node(tmp_path, "norm", params) as proc:
        proc.wait_for_output("ready")
        pub = ros.publisher("/norm/in", Twist)
        out = ros.collect("/norm/out", Twist)
        ros.wait_for_subscribers(pub)
        publish_until(pub, lambda: twist(-0.3, 0.8), out,
                      lambda m: m.angular.z == -0.3 and m.linear.x == 0.8, WAIT)


def test_a_bad_parameter_stops_the_node_naming_it(tmp_path):
    with node(tmp_path, "bad", {"mode": "normalised", "max_steering_angle": 1.5707963267948966}) as proc:
        assert proc.wait(WAIT * 2) == 2, proc.tail()
    assert "'max_steering_angle'" in proc.output()
