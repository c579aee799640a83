"""lnn_control.camera_capture without ROS: a video file this test writes, fake captures, fake clocks.

Nothing here sleeps real seconds: the backoff and the pacing go through an injected ``sleep`` that records what it
was asked, and live sources are fake ``VideoCapture`` objects driven by an injected clock.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from lnn_control.camera_capture import (
    DEVICE,
    FILE,
    GSTREAMER,
    STREAM,
    Backoff,
    Calibration,
    CalibrationError,
    Camera,
    CameraConfig,
    CameraError,
    has_gstreamer,
    load_calibration,
    parse_source,
)

#: One solid BGR colour per frame of the test video, far apart so JPEG (MJPG) and resizing keep them apart.
COLOURS = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255), (255, 0, 255), (255, 255, 0)]
SIZE = (80, 60)  # (width, height) of the file


def write_video(path: Path, colours: list[tuple[int, int, int]] = COLOURS, size: tuple[int, int] = SIZE) -> Path:
    """An MJPG .avi with one frame per colour (OpenCV's own encoder: no codec outside the wheel needed)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, size)
    assert writer.isOpened(), "OpenCV cannot write MJPG .avi here"
    for colour in colours:
        writer.write(np.full((size[1], size[0], 3), colour, np.uint8))
    writer.release()
    return path


def colour_index(image: np.ndarray, colours: list[tuple[int, int, int]] = COLOURS) -> int:
    """Which colour a (solid) frame is: the nearest one, which must be near (JPEG changes a few levels)."""
    mean = image.reshape(-1, 3).mean(axis=0)
    distances = [float(np.abs(mean - np.array(c)).max()) for c in colours]
    best = int(np.argmin(distances))
    assert distances[best] < 40, f"frame of mean colour {mean} is none of the test colours"
    return best


class Recorder:
    """The injected sleep, clock, stamp and log: records every call, never waits."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.logs: list[tuple[str, str]] = []
        self.stamp_ns = 0

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now

    def stamp(self) -> int:
        self.stamp_ns += 1_000_000
        return self.stamp_ns

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))

    def camera(self, **config: object) -> Camera:
        extra = {"opener": config.pop("opener")} if "opener" in config else {}
        return Camera(CameraConfig(**config), stamp=self.stamp, clock=self.clock, sleep=self.sleep, log=self.log,
                      **extra)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "colours.avi")


def test_sources_are_classified_by_their_text():
    assert parse_source("0") == parse_source(" 0 ") and parse_source("2").target == 2
    assert parse_source("0").kind == DEVICE and parse_source("/dev/video1").kind == DEVICE
    assert parse_source("v4l2src device=/dev/video0 ! videoconvert ! appsink").kind == GSTREAMER
    assert parse_source("rtsp://cam.local/stream").kind == STREAM
    assert parse_source("file:///tmp/a.mp4") == parse_source("/tmp/a.mp4")
    assert parse_source("~/a.mp4").kind == FILE and not str(parse_source("~/a.mp4").target).startswith("~")
    with pytest.raises(CameraError, match="device is empty"):
        parse_source("  ")


def test_a_file_plays_in_order_resized_looped_and_stamped_after_each_grab(video):
    rec = Recorder()
    cam = rec.camera(device=str(video), width=40, height=30, rate=50.0)
    frames = [cam.read() for _ in range(2 * len(COLOURS) + 3)]
    got = [f for f in frames if f is not None]
    assert len(got) == 2 * len(COLOURS) + 1  # two None: the end of the file, rewound each time
    assert all(f.image.shape == (30, 40, 3) and f.image.dtype == np.uint8 for f in got)
    assert all(f.source_size == SIZE for f in got)
    assert [colour_index(f.image) for f in got] == [*range(len(COLOURS))] * 2 + [0]
    assert [f.index for f in got] == list(range(len(got)))
    stamps = [f.stamp_ns for f in got]
    assert stamps == sorted(set(stamps)), "one stamp per grab, increasing"
    assert cam.stats.loops == 2 and cam.stats.frames == len(got) and cam.stats.resized == len(got)
    assert cam.stats.opened == 1, "looping rewinds, it does not reopen"
    # paced at 50 Hz by the injected sleep: never more than a period asked, about a period between frames
    assert rec.sleeps and all(0 < s <= 0.02 + 1e-9 for s in rec.sleeps)
    assert any("resized from 80x60 to 40x30" in m for _, m in rec.logs)


def test_a_file_without_loop_ends_cleanly(video):
    rec = Recorder()
    cam = rec.camera(device=str(video), width=0, height=0, rate=0.0, loop=False)
    got = []
    for _ in range(len(COLOURS) + 3):
        frame = cam.read()
        if frame is not None:
            got.append(frame)
    assert [colour_index(f.image) for f in got] == list(range(len(COLOURS)))
    assert got[0].image.shape == (SIZE[1], SIZE[0], 3), "0 x 0: the file's own size"
    assert cam.finished and cam.read() is None and not cam.is_open
    assert any(level == "info" and "end of" in m and "loop: false" in m for level, m in rec.logs)
    assert all(abs(s - 1 / 25.0) < 1e-6 for s in rec.sleeps), "rate 0: the file's own 25 fps"


def test_a_missing_file_is_an_error_retried_with_backoff_until_it_appears(tmp_path):
    rec = Recorder()
    path = tmp_path / "later.avi"
    cam = rec.camera(device=str(path), retry_min=0.5, retry_max=4.0)
    for _ in range(6):
        assert cam.read() is None
    assert cam.stats.open_attempts == 6 and cam.stats.opened == 0
    assert rec.sleeps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    errors = [m for level, m in rec.logs if level == "error"]
    assert len(errors) == 6 and f"cannot open {path}: no such file; retry 1 in 0.5 s" == errors[0]
    write_video(path)
    rec.sleeps.clear()
    frame = cam.read()
    assert frame is not None and colour_index(frame.image) == 0 and cam.stats.opened == 1
    assert cam.backoff.attempt == 0, "the backoff starts again after a frame"


def test_a_missing_device_says_what_to_check():
    rec = Recorder()
    cam = rec.camera(device="/dev/video_lnn_test_missing", retry_min=0.25)
    assert cam.read() is None and cam.read() is None
    assert rec.sleeps == [0.25, 0.5]
    assert "no such device /dev/video_lnn_test_missing (is the camera plugged in?" in rec.logs[0][1]


def test_a_pipeline_without_gstreamer_support_is_a_configuration_error():
    if has_gstreamer():
        pytest.skip("this OpenCV has GStreamer")
    with pytest.raises(CameraError, match="no GStreamer support"):
        Camera(CameraConfig(device="videotestsrc ! videoconvert ! appsink"))


class FakeCapture:
    """A live VideoCapture: ``script`` says what each grab does ('ok', 'fail', 'corrupt'); frames of ``size``."""

    def __init__(self, script: list[str], rec: Recorder, size: tuple[int, int] = (64, 48), step: float = 1 / 30):
        self.script, self.rec, self.size, self.step = list(script), rec, size, step
        self.props: dict[int, float] = {}
        self.released = False
        self._next = "ok"

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FRAME_WIDTH: self.size[0], cv2.CAP_PROP_FRAME_HEIGHT: self.size[1],
                cv2.CAP_PROP_FPS: 30.0}.get(prop, self.props.get(prop, 0.0))

    def grab(self) -> bool:
        self.rec.now += self.step  # a device delivers at its own rate
        self._next = self.script.pop(0) if self.script else "fail"
        return self._next != "fail"

    def retrieve(self) -> tuple[bool, np.ndarray | None]:
        if self._next == "corrupt":
            return False, None
        return True, np.full((self.size[1], self.size[0], 3), 128, np.uint8)

    def release(self) -> None:
        self.released = True


def test_a_live_source_is_asked_for_the_format_and_frames_above_the_rate_are_dropped():
    rec = Recorder()
    opened: list[FakeCapture] = []

    def opener(source, api):
        opened.append(FakeCapture(["ok"] * 12, rec))
        return opened[-1]

    cam = rec.camera(device="0", width=64, height=48, rate=15.0, fourcc="MJPG", opener=opener)
    frames = [cam.read() for _ in range(12)]
    kept = [f for f in frames if f is not None]
    assert len(kept) == 6 and cam.stats.dropped == 6, "a 30 fps device at rate 15: every other frame"
    props = opened[0].props
    assert props[cv2.CAP_PROP_FRAME_WIDTH] == 64 and props[cv2.CAP_PROP_FRAME_HEIGHT] == 48
    assert props[cv2.CAP_PROP_FPS] == 15.0 and props[cv2.CAP_PROP_BUFFERSIZE] == 1.0
    assert int(props[cv2.CAP_PROP_FOURCC]) == cv2.VideoWriter_fourcc(*"MJPG")
    assert not rec.sleeps, "a live source is paced by the device, not by sleeping"


def test_corrupt_frames_are_counted_and_an_unplugged_device_is_reopened():
    rec = Recorder()
    scripts = [["ok", "corrupt", "ok", "fail", "fail", "fail"], ["ok"]]
    opened: list[FakeCapture] = []

    def opener(source, api):
        opened.append(FakeCapture(scripts[len(opened)], rec, size=(32, 24)))
        return opened[-1]

    cam = rec.camera(device="0", width=64, height=48, rate=0.0, max_failed_grabs=3, opener=opener)
    results = [cam.read() for _ in range(7)]
    assert [r is not None for r in results] == [True, False, True, False, False, False, True]
    assert cam.stats.corrupt == 1 and cam.stats.failed_grabs == 3 and cam.stats.lost == 1
    assert len(opened) == 2 and opened[0].released, "released after 3 failed grabs, then opened again"
    assert results[-1].image.shape == (48, 64, 3), "a device that ignores the size: resized"
    assert any(level == "warning" and "gives 32x24, not 64x48" in m for level, m in rec.logs)
    assert any("3 failed grabs in a row (unplugged?): reopening in 0.5 s" in m for _, m in rec.logs)
    assert 0.5 in rec.sleeps, "the reopen backs off too (a device that opens but gives nothing)"


def test_an_opener_that_raises_is_retried_not_raised():
    rec = Recorder()

    def opener(source, api):
        raise cv2.error("boom")

    cam = rec.camera(device="0", opener=opener, retry_min=0.1)
    assert cam.read() is None and "OpenCV could not open it" in rec.logs[0][1] and rec.sleeps == [0.1]


def test_backoff_doubles_to_its_most_and_resets():
    backoff = Backoff(0.5, 3.0)
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


CALIBRATION = """\
image_width: 640
image_height: 480
camera_name: webcam
camera_matrix:
  rows: 3
  cols: 3
  data: [600.0, 0.0, 320.0, 0.0, 610.0, 240.0, 0.0, 0.0, 1.0]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [0.1, -0.2, 0.001, 0.002, 0.0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
projection_matrix:
  rows: 3
  cols: 4
  data: [600.0, 0.0, 320.0, 0.0, 0.0, 610.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0]
"""


def test_a_calibration_file_is_read_and_scaled_to_the_published_size(tmp_path):
    path = tmp_path / "ost.yaml"
    path.write_text(CALIBRATION)
    cal = load_calibration(f"file://{path}")
    assert (cal.width, cal.height, cal.camera_name, cal.distortion_model) == (640, 480, "webcam", "plumb_bob")
    assert cal.calibrated and cal.k[0] == 600.0 and len(cal.d) == 5 and len(cal.p) == 12
    half = cal.scaled(320, 240)
    assert half.k[:6] == (300.0, 0.0, 160.0, 0.0, 305.0, 120.0) and half.k[8] == 1.0
    assert half.p[:8] == (300.0, 0.0, 160.0, 0.0, 0.0, 305.0, 120.0, 0.0) and half.d == cal.d
    assert cal.scaled(640, 480) is cal
    blank = Calibration.uncalibrated(96, 72)
    assert not blank.calibrated and blank.k == (0.0,) * 9 and blank.scaled(48, 36).width == 48


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("image_width: 640\n", "'image_height' must be a positive integer"),
        (CALIBRATION.replace("data: [600.0, 0.0, 320.0, 0.0, 610.0, 240.0, 0.0, 0.0, 1.0]", "data: [1, 2]"),
         "'camera_matrix' has 2 numbers, expected 9"),
        ("[1, 2", "not valid YAML"),
    ],
)
def test_a_bad_calibration_file_names_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(CalibrationError, match=message):
        load_calibration(str(path))
    with pytest.raises(CalibrationError, match="No such file"):
        load_calibration(str(tmp_path / "none.yaml"))


def test_camera_yaml_gives_every_parameter_but_the_shared_image_transport():
    from lnn_control.bringup import WILDCARD, node_params, read_params
    from lnn_control.paths import config_file
    from lnn_control.ros.node_util import check_value, describe

    specs = {spec["name"]: spec for spec in describe(CameraConfig)}
    given = node_params(read_params(config_file("camera.yaml")), "camera_node")
    assert set(given) == set(specs) - {"image_transport"}, "image_transport comes from drive.yaml's /** (see file)"
    for name, value in given.items():
        check_value(name, specs[name]["kind"], value, specs[name])
    defaults = {f.name: f.default for f in dataclasses.fields(CameraConfig)}
    assert {k: v for k, v in given.items()} == {k: defaults[k] for k in given}, "the file says the defaults"
    # drive.yaml's /** block gives every node of the drive sets its values: only image_transport may reach the
    # camera, and it means there what it means to perception_node (which topic and type the frames travel on)
    shared = set(read_params(config_file("drive.yaml"))[WILDCARD]) & set(specs)
    assert shared == {"image_transport"}


# -- `lnn-control up ... --with camera_node` ------------------------------------------------------------------------


def test_up_drive_with_the_camera_resolves_with_its_parameters(capsys, tmp_path):
    import argparse

    import yaml

    from lnn_control import bringup
    from lnn_control.cli import up as up_verb

    parser = argparse.ArgumentParser()
    up_verb.configure(parser)
    argv = ["drive", "--with", "camera_node", "--print-params", "--set", "camera_node.device=/dev/video2",
            "--set", "*.image_transport=compressed", "--set", "*.model=random:ltc:0"]
    assert up_verb.run(parser.parse_args(argv)) == 0
    head, params = (yaml.safe_load(part) for part in capsys.readouterr().out.split("---\n"))
    assert head["nodes"] == ["drive_node", "command_mux_node", "camera_node"]
    assert any(path.endswith("config/camera.yaml") for path in head["configs"])
    camera = params["/**/camera_node"]["ros__parameters"]
    assert camera["device"] == "/dev/video2" and camera["frame_id"] == "camera_optical_frame"
    assert params["/**"]["ros__parameters"]["image_transport"] == "compressed", "the camera and drive_node agree"
    assert "image_transport" not in camera
    for name in ("drive", "drive-split", "record"):
        assert "camera_node" in bringup.NODE_SETS[name].optional and "camera.yaml" in bringup.NODE_SETS[name].configs
        plan = bringup.make_plan(name, with_nodes=["camera_node"], set_items=["*.model=random:ltc:0"], local=True)
        assert plan.nodes[-1] == "camera_node"
        assert bringup.node_params(plan.params, "camera_node").get("image_transport", "raw") == "raw"
    plain = bringup.make_plan("drive", set_items=["*.model=random:ltc:0"], local=True)
    assert "camera_node" not in plain.nodes, "optional: only on request"


def test_the_camera_runs_in_the_up_process_too():
    pytest.importorskip("rclpy")
    from lnn_control import bringup
    from lnn_control.nodes.camera import CameraNode

    assert bringup._node_class("camera_node") is CameraNode


def test_a_file_that_is_no_video_is_retried_with_backoff_never_a_busy_loop(tmp_path):
    path = tmp_path / "garbage.avi"
    path.write_bytes(b"not a video at all" * 100)
    rec = Recorder()
    cam = rec.camera(device=str(path), retry_min=0.5, retry_max=1.0)
    assert [cam.read() for _ in range(4)] == [None] * 4
    assert cam.stats.frames == 0 and not cam.finished
    assert sum(1 for s in rec.sleeps if s >= 0.5) >= 2, "backed off between attempts"
    errors = [m for level, m in rec.logs if level == "error"]
    assert errors and all(str(path) in m and "retry" in m for m in errors)
