"""/diagnostics of command_mux_node, drive_node, camera_node, vehicle_adapter_node and recorder_node, each from a
process of its own (real rclpy and Fast DDS), and the ROS-free input checks the driving nodes share.

Every wait is on what arrives: an array holding the expected status, published for (and after) what this process
sent; no sleep, no rate asserted. The mux runs with a ``diagnostics_period`` of a minute, so every array it sends in
the test is one it published at once on a change of the active source or the e-stop.
"""

from __future__ import annotations

import math

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("diagnostic_msgs")

from diagnostic_arrays import has_status, level, statuses, values  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import Twist  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_harness import NodeProcess, RosSession, free_domain_id, publish_until  # noqa: E402
from std_msgs.msg import Bool  # noqa: E402

from lnn_control.health import Level  # noqa: E402
from lnn_control.nodes.driver_diagnostics import InputHealth, drop_kind  # noqa: E402
from lnn_control.ros.diagnostics import TOPIC  # noqa: E402
from lnn_control.vision import ImageDecodeError  # noqa: E402

DOMAIN = free_domain_id()
DEEP = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
WAIT = 30.0
S = 1_000_000_000


@pytest.fixture(scope="module")
def ros():
    with RosSession(DOMAIN) as session:
        yield session










def twist(steering: float, velocity: float) -> Twist:
    msg = Twist()
    msg.angular.z, msg.linear.x = float(steering), float(velocity)
    return msg


# -- the shared input checks, without ROS -----------------------------------------------------------------------------


def test_drop_kinds_name_what_the_decoders_say():
    assert drop_kind(ImageDecodeError("absurd size 9000x9000 = 81000000 pixels > max_pixels 10")) == "oversize"
    assert drop_kind(ImageDecodeError("unsupported encoding 'yuv9'")) == "unsupported"
    assert drop_kind(ImageDecodeError("corrupt or truncated JPEG: OpenCV could not decode 12 bytes")) == "corrupt"
    assert drop_kind(ImageDecodeError("data has 3 bytes but step*height is 6")) == "decode"
    assert drop_kind(ValueError("encoding '8UC3', expected '32FC1'")) == "encoding"
    assert drop_kind(ValueError("size 3x1, expected 32x1 (the policy's feature count)")) == "size"
    assert drop_kind(ValueError("the crop leaves nothing")) == "other"


def test_input_health_warns_on_some_drops_and_errors_on_all_or_none():
    health = InputHealth("frames", window_s=1.0)
    first = health.report(0, topic="/cam", received=0, dropped=0)
    assert first.level == Level.WARN and first.message == "no frames yet on /cam"
    health.received(S // 10)
    health.dropped(S // 10, ImageDecodeError("unsupported encoding 'x'"))
    every = health.report(S // 5, topic="/cam", received=1, dropped=1)
    assert every.level == Level.ERROR and "unsupported encoding" in every.message
    assert every.values["dropped by kind"] == "unsupported: 1" and every.values["frames dropped"] == 1
    for t in (3, 4, 5):
        health.received(t * S // 10)
    some = health.report(S // 2, topic="/cam", received=4, dropped=1)
    assert some.level == Level.WARN and some.message.startswith("1 of the last 4 frames dropped")
    health.received(S + S // 2)  # the drop (and the first frames) left the window
    clean = health.report(S + S // 2, topic="/cam", received=5, dropped=1)
    assert clean.level == Level.OK and clean.values["dropped in window"] == 0
    assert health.report(3 * S, topic="/cam", received=5, dropped=1).level == Level.ERROR  # nothing for a window


# -- command_mux_node -------------------------------------------------------------------------------------------------


@pytest.mark.ros
def test_mux_tells_source_e_stop_locks_and_inputs_at_once(ros, tmp_path):
    arrays = ros.collect(TOPIC, DiagnosticArray, DEEP)
    params = {"stamped": False, "rate": 20.0, "diagnostics_period": 60.0, "e_stop_heartbeat": 2.0,
              "locks": ["bumper"], "input.teleop.timeout": 5.0}
    mux = "command_mux_node"
    with NodeProcess("lnn_control.nodes.mux", domain_id=DOMAIN, log_dir=tmp_path, name=mux, params=params) as proc:
        proc.wait_for_output("ready")
        e_stop = ros.publisher("e_stop", Bool)
        # engaged at start (its heartbeat never heard); false every 0.1 s releases it: the source changes to none
        released = publish_until(e_stop, lambda: Bool(data=False), arrays,
                                 has_status(f"{mux}: e-stop", lambda s: level(s) == Level.OK), WAIT)
        heartbeat = ros.repeat(e_stop, lambda: Bool(data=False), 10.0)
        found = statuses(released)
        assert set(found) == {f"{mux}: {task}" for task in ("active source", "autonomy", "e-stop", "locks",
                                                            "input teleop", "input policy", "output")}
        assert values(found[f"{mux}: e-stop"])["how"] == "-"
        assert values(found[f"{mux}: active source"])["source"] == "none"
        autonomy = found[f"{mux}: autonomy"]
        assert level(autonomy) == Level.OK and values(autonomy)["armed"] == "false"
        assert "disarmed" in autonomy.message
        assert level(found[f"{mux}: locks"]) == Level.OK and values(found[f"{mux}: locks"])["bumper"] == "released"
        policy = found[f"{mux}: input policy"]
        assert values(policy)["messages"] == "0" and values(policy)["topic"] == "/lnn/cmd_vel"
        assert policy.hardware_id == "/cmd_vel"

        teleop = ros.publisher("teleop/cmd_vel", Twist)
        driving = publish_until(teleop, lambda: twist(0.1, 1.0), arrays,
                                has_status(f"{mux}: active source", lambda s: values(s)["source"] == "teleop"), WAIT)
        found = statuses(driving)
        assert level(found[f"{mux}: active source"]) == Level.OK
        teleop_status = found[f"{mux}: input teleop"]
        assert values(teleop_status)["driving"] == "true" and int(values(teleop_status)["messages"]) >= 1
        assert float(values(teleop_status)["message age (s)"]) <= 5.0
        output = found[f"{mux}: output"]
        assert level(output) == Level.OK and values(output)["configured rate (Hz)"] == "20"
        assert int(values(output)["events since start"]) >= 1

        bumper = ros.publisher("bumper", Bool)
        locked = publish_until(bumper, lambda: Bool(data=True), arrays,
                               has_status(f"{mux}: active source", lambda s: values(s)["source"] == "bumper"), WAIT)
        found = statuses(locked)
        assert level(found[f"{mux}: active source"]) == Level.WARN
        locks = found[f"{mux}: locks"]
        assert level(locks) == Level.WARN and values(locks)["engaged"] == "bumper"
        assert values(locks)["bumper"] == "engaged (true)"

        heartbeat.stop()  # e_stop falls silent: engaged again after its heartbeat
        lost = arrays.wait_for(has_status(f"{mux}: e-stop", lambda s: values(s)["how"] == "heartbeat lost"), WAIT)
        status = statuses(lost)[f"{mux}: e-stop"]
        assert level(status) == Level.ERROR and "heartbeat lost" in status.message
        assert values(statuses(lost)[f"{mux}: active source"])["source"] == "e_stop"

        latched = publish_until(e_stop, lambda: Bool(data=True), arrays,
                                has_status(f"{mux}: e-stop", lambda s: values(s)["how"] == "latched"), WAIT)
        status = statuses(latched)[f"{mux}: e-stop"]
        assert level(status) == Level.ERROR and "latched" in status.message
        assert values(status)["engaged"] == "true" and values(status)["latched"] == "true"
        assert proc.alive


# -- drive_node -------------------------------------------------------------------------------------------------------


@pytest.mark.ros
def test_drive_node_reports_camera_watchdog_output_and_model(ros, tmp_path):
    import numpy as np
    from sensor_msgs.msg import Image

    from lnn_control.ros.msgs import image_msg

    arrays = ros.collect(TOPIC, DiagnosticArray, DEEP)
    params = {"model": "random:ltc:0", "diagnostics_period": 0.2, "timeout": 1.0, "enabled": True, "stamped": False}
    node = "drive_node"
    rgb = np.zeros((48, 64, 3), np.uint8)
    stamp = [10 * S]

    def frame(encoding: str = "rgb8") -> Image:
        stamp[0] += S // 20
        msg = image_msg(rgb, encoding="rgb8", stamp_ns=stamp[0], frame_id="camera")
        msg.encoding = encoding
        return msg

    with NodeProcess("lnn_control.nodes.drive", domain_id=DOMAIN, log_dir=tmp_path, params=params) as proc:
        first = statuses(arrays.wait_for(has_status(f"{node}: watchdog"), 90))
        assert set(first) == {f"{node}: {task}" for task in ("camera", "watchdog", "output", "model")}
        watchdog = first[f"{node}: watchdog"]
        assert level(watchdog) == Level.WARN and watchdog.message.startswith("no input yet on /camera/image_raw")
        camera = first[f"{node}: camera"]
        assert level(camera) in (Level.WARN, Level.ERROR) and values(camera)["frames received"] == "0"
        model = first[f"{node}: model"]
        assert level(model) == Level.OK and model.hardware_id == "random:ltc:0"
        assert values(model)["inference backend"] == "torch" and values(model)["core"] == "ltc"
        assert values(first[f"{node}: output"])["enabled"] == "true"

        pub = ros.publisher("camera/image_raw", Image)
        refused = publish_until(pub, lambda: frame("bogus9"), arrays,
                                has_status(f"{node}: camera", lambda s: values(s)["dropped by kind"] != "-"), WAIT)
        camera = statuses(refused)[f"{node}: camera"]
        assert level(camera) == Level.ERROR and "unsupported encoding 'bogus9'" in camera.message
        assert values(camera)["dropped by kind"].startswith("unsupported: ")
        assert level(statuses(refused)[f"{node}: watchdog"]) == Level.WARN  # a dropped frame feeds no watchdog

        fed = publish_until(pub, frame, arrays, has_status(f"{node}: watchdog", lambda s: level(s) == Level.OK), WAIT)
        found = statuses(fed)
        output = found[f"{node}: output"]
        assert level(output) == Level.OK and int(values(output)["commands"]) >= 1
        assert math.isfinite(float(values(output)["command age (s)"]))
        assert int(values(found[f"{node}: camera"])["frames received"]) > int(values(camera)["frames received"])

        # no more frames: once the timeout passes, the watchdog holds zero while enabled, an error
        lost = arrays.wait_for(has_status(f"{node}: watchdog", lambda s: level(s) == Level.ERROR), WAIT)
        watchdog = statuses(lost)[f"{node}: watchdog"]
        assert "publishing zero velocity" in watchdog.message and values(watchdog)["timeout (s)"] == "1"
        assert proc.alive


# -- camera_node and vehicle_adapter_node -----------------------------------------------------------------------------


@pytest.mark.ros
def test_camera_node_says_it_is_retrying_a_missing_device(ros, tmp_path):
    arrays = ros.collect(TOPIC, DiagnosticArray, DEEP)
    params = {"device": "/dev/video_lnn_diag_missing", "retry_min": 0.05, "retry_max": 0.1,
              "diagnostics_period": 0.2}
    with NodeProcess("lnn_control.nodes.camera", domain_id=DOMAIN, log_dir=tmp_path, name="camera_node",
                     params=params) as proc:
        array = arrays.wait_for(has_status("camera_node: device", lambda s: level(s) == Level.ERROR), WAIT)
        found = statuses(array)
        device = found["camera_node: device"]
        assert device.message.startswith("retrying") and "no such device" in device.message
        assert device.hardware_id == "/dev/video_lnn_diag_missing" and values(device)["open"] == "false"
        rate = found["camera_node: frame rate"]
        assert level(rate) in (Level.WARN, Level.ERROR) and values(rate)["published"] == "0"
        assert values(rate)["configured rate (Hz)"] == "30"
        assert level(found["camera_node: corrupt frames"]) == Level.OK
        assert proc.alive


@pytest.mark.ros
def test_vehicle_adapter_reports_following_timeout_and_nan(ros, tmp_path):
    arrays = ros.collect(TOPIC, DiagnosticArray, DEEP)
    params = {"mode": "twist_yaw_rate", "timeout": 5.0, "stamped": False, "diagnostics_period": 0.2}
    node = "vehicle_adapter_node"
    with NodeProcess("lnn_control.nodes.vehicle_adapter", domain_id=DOMAIN, log_dir=tmp_path, params=params) as proc:
        first = statuses(arrays.wait_for(has_status(f"{node}: output"), WAIT))
        output = first[f"{node}: output"]
        assert level(output) == Level.WARN and output.message.startswith("stopped: no command")
        assert output.hardware_id == "twist_yaw_rate" and values(output)["mode"] == "twist_yaw_rate"
        assert level(first[f"{node}: command"]) == Level.WARN and first[f"{node}: command"].message == "no command yet"

        pub = ros.publisher("cmd_vel", Twist)
        following = publish_until(pub, lambda: twist(0.2, 1.0), arrays,
                                  has_status(f"{node}: output", lambda s: level(s) == Level.OK), WAIT)
        found = statuses(following)
        assert values(found[f"{node}: output"])["state"] == "ok"
        assert level(found[f"{node}: command"]) == Level.OK

        refused = publish_until(pub, lambda: twist(math.nan, 1.0), arrays,
                                has_status(f"{node}: output", lambda s: level(s) == Level.ERROR), WAIT)
        output = statuses(refused)[f"{node}: output"]
        assert values(output)["state"] == "invalid_command" and int(values(output)["refused"]) >= 1
        assert "not finite" in output.message
        assert proc.alive


@pytest.mark.ros
def test_recorder_reports_episode_topics_and_disk(ros, tmp_path):
    from std_srvs.srv import Trigger

    arrays = ros.collect(TOPIC, DiagnosticArray, DEEP)
    params = {"topics": ["diag/cmd geometry_msgs/msg/Twist reliable"], "output_dir": str(tmp_path / "bags"),
              "diagnostics_period": 0.2, "recover_on_start": False}
    with NodeProcess("lnn_control.nodes.recorder", domain_id=DOMAIN, log_dir=tmp_path, name="recorder_node",
                     params=params) as proc:
        idle = statuses(arrays.wait_for(has_status("recorder_node: episode", lambda s: "idle" in s.message), WAIT))
        assert level(idle["recorder_node: disk"]) in (Level.OK, Level.WARN), idle["recorder_node: disk"].message
        assert values(idle["recorder_node: disk"])["path"] == str(tmp_path / "bags")
        assert ros.call("/recorder_node/start", Trigger, timeout=WAIT).success
        publisher = ros.publisher("diag/cmd", Twist)
        array = publish_until(
            publisher, lambda: twist(0.1, 0.5), arrays,
            has_status("recorder_node: topics", lambda s: values(s).get("/diag/cmd received", "0") not in ("0", "")),
            timeout=WAIT,
        )
        found = statuses(array)
        assert found["recorder_node: episode"].message.startswith("recording episode_")
        assert level(found["recorder_node: topics"]) == Level.OK
        assert found["recorder_node: topics"].hardware_id == str(tmp_path / "bags")
        assert ros.call("/recorder_node/stop", Trigger, timeout=WAIT).success
        assert proc.alive
