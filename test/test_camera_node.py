"""camera_node over real DDS: a video file this test writes -> Image / CompressedImage + CameraInfo.

Three short node processes: raw rgb8 from the file, resized, uncalibrated; compressed JPEG with a calibration file
and sim time; a device that does not exist (the node stays up, says what is wrong and retries). Nothing is timed:
each test waits for what it needs (messages, log lines) with a bound for a stuck node. Frames are best effort, so
a test asks for some frames, never for every one.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")

from ros_harness import NodeProcess, RosSession, free_domain_id  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from test_camera_capture import CALIBRATION, COLOURS, colour_index, write_video  # noqa: E402

from lnn_control.ros.msgs import image_array  # noqa: E402
from lnn_control.ros.qos import SENSOR  # noqa: E402
from lnn_control.ros.stamps import ns_to_stamp, stamp_to_ns  # noqa: E402
from lnn_control.vision import decode_msg  # noqa: E402

pytestmark = [pytest.mark.ros]

DOMAIN = free_domain_id()
MODULE = "lnn_control.nodes.camera"
#: How long any one wait may take before the test fails (a bound for a stuck node, not a measurement).
WAIT = 20.0
RGB = [(r, g, b) for b, g, r in COLOURS]


@pytest.fixture(scope="module")
def ros():
    with RosSession(DOMAIN) as session:
        yield session


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("camera_video") / "colours.avi")


def test_the_topics_are_the_ones_perception_reads():
    from lnn_control.nodes import camera, perception

    assert (camera.RAW_TOPIC, camera.COMPRESSED_TOPIC) == (perception.RAW_TOPIC, perception.COMPRESSED_TOPIC)


def test_raw_frames_and_camera_info_from_a_video_file(ros, video, tmp_path):
    images = ros.collect("camera/image_raw", Image, SENSOR)
    infos = ros.collect("camera/camera_info", CameraInfo, SENSOR)
    params = {"device": str(video), "width": 40, "height": 30, "rate": 40.0, "frame_id": "test_optical_frame"}
    with NodeProcess(MODULE, domain_id=DOMAIN, log_dir=tmp_path, name="camera_node", params=params) as proc:
        proc.wait_for_output("ready")
        got = images.wait_for_count(len(COLOURS) + 2, WAIT)
        infos.wait_for_count(3, WAIT)
        proc.wait_for_output(r"first frame out: 40x30 \(the source gives 80x60\)")
    assert proc.returncode == 0, proc.tail()
    assert "stopping:" in proc.output() and "frames" in proc.output()
    assert all((m.width, m.height, m.encoding, m.header.frame_id) == (40, 30, "rgb8", "test_optical_frame")
               for m in got)
    stamps = [stamp_to_ns(m.header.stamp) for m in got]
    assert all(a < b for a, b in zip(stamps, stamps[1:])), "stamps increase"
    order = [colour_index(image_array(m), RGB) for m in got]
    steps = [(b - a) % len(COLOURS) for a, b in zip(order, order[1:])]
    assert all(step >= 1 for step in steps), f"the file's order (looping), frames maybe dropped: {order}"
    info = infos.messages[0]
    assert (info.width, info.height, info.header.frame_id) == (40, 30, "test_optical_frame")
    assert not any(info.k) and not any(info.p), "uncalibrated: K and P all zero"
    image_stamps = set(stamps)
    assert any(stamp_to_ns(i.header.stamp) in image_stamps for i in infos.messages), "CameraInfo shares the header"


def test_compressed_frames_with_a_calibration_on_sim_time(ros, video, tmp_path):
    calibration = tmp_path / "ost.yaml"
    calibration.write_text(CALIBRATION)  # made at 640x480; published at 64x48: K scaled by 0.1
    images = ros.collect("camera/image_raw/compressed", CompressedImage, SENSOR)
    infos = ros.collect("camera/camera_info", CameraInfo, SENSOR)
    start_ns = 5_000 * 1_000_000_000
    ticks = itertools.count()
    clock_pub = ros.publisher("/clock", Clock)
    params = {"device": str(video), "width": 64, "height": 48, "rate": 40.0, "image_transport": "compressed",
              "jpeg_quality": 80, "camera_info_url": f"file://{calibration}", "use_sim_time": True}
    with NodeProcess(MODULE, domain_id=DOMAIN, log_dir=tmp_path, name="camera_node", params=params) as proc:
        proc.wait_for_output("ready")
        sim = ros.repeat(clock_pub, lambda: Clock(clock=ns_to_stamp(start_ns + next(ticks) * 10_000_000)), 100.0)
        try:
            got = images.wait_for_count(4, WAIT)
            infos.wait_for(lambda m: m.k[0] != 0.0, WAIT)
        finally:
            sim.stop()
        proc.wait_for_output("K and P scaled")
    assert proc.returncode == 0, proc.tail()
    stamps = [stamp_to_ns(m.header.stamp) for m in got]
    assert all(start_ns <= s < start_ns + 1_000 * 1_000_000_000 for s in stamps), "sim time, not wall time"
    assert all(a < b for a, b in zip(stamps, stamps[1:]))
    assert all(m.format == "rgb8; jpeg compressed bgr8" and m.header.frame_id == "camera_optical_frame" for m in got)
    rgb = decode_msg(got[0])
    assert rgb.shape == (48, 64, 3)
    colour_index(rgb, RGB)  # one of the file's colours
    info = next(m for m in infos.messages if m.k[0] != 0.0)
    assert (info.width, info.height, info.distortion_model) == (64, 48, "plumb_bob")
    assert np.allclose(info.k, [60.0, 0.0, 32.0, 0.0, 61.0, 24.0, 0.0, 0.0, 1.0])
    assert np.allclose(info.d, [0.1, -0.2, 0.001, 0.002, 0.0])


def test_a_missing_device_is_retried_and_the_node_stays_up(tmp_path):
    params = {"device": "/dev/video_lnn_test_missing", "retry_min": 0.05, "retry_max": 0.1}
    with NodeProcess(MODULE, domain_id=DOMAIN, log_dir=tmp_path, name="camera_node", params=params) as proc:
        proc.wait_for_output(r"cannot open /dev/video_lnn_test_missing: no such device .*retry 3 in 0\.1 s", WAIT)
        assert proc.alive
    assert proc.returncode == 0, proc.tail()
    assert "0 published" in proc.output()


@pytest.mark.parametrize("case", ["calibration", "gstreamer"])
def test_a_configuration_that_cannot_work_stops_the_node_with_one_line(tmp_path, video, case):
    from lnn_control.camera_capture import has_gstreamer

    if case == "gstreamer" and has_gstreamer():
        pytest.skip("this OpenCV has GStreamer")
    params, expected = {
        "calibration": ({"device": str(video), "camera_info_url": str(tmp_path / "missing.yaml")},
                        "calibration file .*missing.yaml: No such file"),
        "gstreamer": ({"device": "videotestsrc ! videoconvert ! appsink"}, "has no GStreamer support"),
    }[case]
    with NodeProcess(MODULE, domain_id=DOMAIN, log_dir=tmp_path, name="camera_node", params=params) as proc:
        assert proc.wait(WAIT) == 2, proc.tail()
    assert re.search(r"\[ERROR\] .*" + expected, proc.output()), proc.tail()
