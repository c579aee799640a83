"""camera_node: a webcam, a GStreamer pipeline or a video file -> ``camera/image_raw`` (+ ``camera/camera_info``).

For the pip install, where no usb_cam or v4l2_camera exists; on a ROS install either of those works as well (they
publish the same topics). The capture itself (sources, sizes, rates, retries, stamps) is
:mod:`lnn_control.camera_capture`, free of ROS; this node runs it in a thread of its own, so a device that blocks
never holds up the executor, and publishes what it gives:

- ``image_transport: raw``: ``sensor_msgs/Image`` on ``camera/image_raw``, ``encoding`` rgb8 (default, as the
  simulator publishes) or bgr8; ``compressed``: ``sensor_msgs/CompressedImage`` (JPEG, ``jpeg_quality``) on
  ``camera/image_raw/compressed``, format ``"<encoding>; jpeg compressed bgr8"`` as image_transport writes it.
  perception_node and drive_node read either (their ``image_transport`` parameter, given once for every node
  under ``/**`` in config/drive.yaml, so the camera and the network agree).
- ``camera/camera_info`` (``sensor_msgs/CameraInfo``) with every frame, the same header: from ``camera_info_url``
  (a calibration YAML as ``ros2 run camera_calibration cameracalibrator`` writes it; scaled when frames are
  published at another size than it was made at) or an uncalibrated one (width and height, K all zero).

Both with sensor-data QoS (best effort, keep last 5). Header ``frame_id``: ``camera_optical_frame`` by default, the
REP 103/105 optical convention (z forward, x right, y down). Header stamp: the node clock right after the frame was
grabbed (see :mod:`lnn_control.camera_capture`); with ``use_sim_time`` that is sim time, and frames are held back
until /clock has started (a stamp of 0 would look like a reset to the network). Pacing is in wall time either way:
a device delivers at its own rate, a video file is played at ``rate`` frames per wall-clock second.

A missing or unplugged camera is an error in the log and a retry with backoff, never an exit; a video file with
``loop: false`` stops publishing at its end (the node stays up). Only a configuration that cannot work (GStreamer
without OpenCV support, an unreadable calibration file, a ``device`` given as a number: quote it, ``device: "0"``,
or give ``/dev/video0``) stops the node at start, with one line saying what to change (exit status 2).

``/diagnostics`` (every ``diagnostics_period`` s, :mod:`lnn_control.ros.diagnostics`; hardware id: the source):

- ``camera_node: device``: open (OK), opening (WARN), retrying (ERROR, with the error: no such device, permission
  denied, unplugged, ...; the retry count) or finished (WARN: a video file at its end with ``loop: false``), with
  the opens, reconnects and failed grabs so far;
- ``camera_node: frame rate``: frames published per second of the steady clock over 5 s (pacing is in wall time)
  against ``rate``: WARN before the first frame, while frames are held back for /clock, or below 80 % of ``rate``
  over a whole window; ERROR when none went out for 5 s;
- ``camera_node: corrupt frames``: frames grabbed but not decodable (skipped); WARN when some came in the last 5 s.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import cv2
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from lnn_control.camera_capture import RAW, Calibration, Camera, CameraConfig, Frame, load_calibration
from lnn_control.health import RateMeter, Report
from lnn_control.ros.diagnostics import Diagnostics
from lnn_control.ros.msgs import compressed_image_msg, image_msg
from lnn_control.ros.node_util import Throttle, declare_config, run_node
from lnn_control.ros.qos import SENSOR

RAW_TOPIC = "camera/image_raw"
COMPRESSED_TOPIC = "camera/image_raw/compressed"
INFO_TOPIC = "camera/camera_info"
#: How long close() waits for the capture thread (a device stuck in a read may take longer; the thread is a daemon).
JOIN_TIMEOUT_S = 5.0
#: The window of the frame-rate and corrupt-frame diagnostics, s (steady clock).
RATE_WINDOW_S = 5.0
#: The share of ``rate`` below which the frame rate warns.
MIN_RATE_SHARE = 0.8


def camera_info_msg(calibration: Calibration, header: Any) -> CameraInfo:
    """A ``sensor_msgs/CameraInfo`` of ``calibration`` with ``header`` (the frame's)."""
    msg = CameraInfo()
    msg.header = header
    msg.width, msg.height = int(calibration.width), int(calibration.height)
    msg.distortion_model = calibration.distortion_model
    msg.d = [float(v) for v in calibration.d]
    msg.k = [float(v) for v in calibration.k]
    msg.r = [float(v) for v in calibration.r]
    msg.p = [float(v) for v in calibration.p]
    return msg


class CameraNode(Node):
    """See the module docstring; the capture is :class:`~lnn_control.camera_capture.Camera`."""

    def __init__(self, node_name: str = "camera_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.config = declare_config(self, CameraConfig)
        c = self.config
        self._stop = threading.Event()
        self.calibration = load_calibration(c.camera_info_url) if c.camera_info_url else None
        self.camera = Camera(c, stamp=self._now, sleep=self._stop.wait, log=self._log)
        raw = c.image_transport == RAW
        self.image_publisher = self.create_publisher(
            Image if raw else CompressedImage, RAW_TOPIC if raw else COMPRESSED_TOPIC, SENSOR
        )
        self.info_publisher = self.create_publisher(CameraInfo, INFO_TOPIC, SENSOR)
        self._infos: dict[tuple[int, int], Calibration] = {}
        self._throttle = Throttle(5.0)
        self._corrupt_seen = 0
        self.published = 0
        self.held_for_clock = 0
        self.capture_error = ""  # the latest exception of the capture loop, until a frame goes out again
        self._meters_lock = threading.Lock()  # the meters are ticked by the capture thread, read by the executor's
        start = time.monotonic_ns()
        self.frame_rate = RateMeter(RATE_WINDOW_S, min_hz=MIN_RATE_SHARE * c.rate if c.rate else None,
                                    what="frames", start_ns=start)
        self.corrupt_rate = RateMeter(RATE_WINDOW_S, what="corrupt frames", start_ns=start)
        self._corrupt_counted = 0
        self.diagnostics = Diagnostics(self, hardware_id=self.camera.source.text)
        self.diagnostics.add("device", self._device_report)
        self.diagnostics.add("frame rate", self._frame_rate_report)
        self.diagnostics.add("corrupt frames", self._corrupt_report)
        self._thread = threading.Thread(target=self._run, name="camera_capture", daemon=True)
        self.get_logger().info(f"ready: {self.describe()}")
        self._thread.start()

    def describe(self) -> str:
        """One line: the source, what goes out where, the size, rate and calibration."""
        c = self.config
        size = f"{c.width or 'source'}x{c.height or 'source'}"
        kind = f"Image {c.encoding}" if c.image_transport == RAW else f"CompressedImage jpeg q{c.jpeg_quality}"
        if self.calibration is None:
            info = "uncalibrated"
        else:
            info = f"calibration {c.camera_info_url} ({self.calibration.width}x{self.calibration.height})"
        return (
            f"{self.camera.source.text} -> {self.image_publisher.topic_name} ({kind}, {size}, "
            f"{f'{c.rate:g} Hz' if c.rate else 'the source rate'}, frame_id {c.frame_id}) + "
            f"{self.info_publisher.topic_name} ({info})"
        )

    # -- capture thread -----------------------------------------------------------------------------------------------

    def _now(self) -> int:
        return self.get_clock().now().nanoseconds

    def _log(self, level: str, message: str) -> None:
        logger = self.get_logger()
        {"info": logger.info, "warning": logger.warning}.get(level, logger.error)(message)

    def _run(self) -> None:
        """Read and publish until close(); nothing in here ends the thread but a stop or a finished file."""
        while not self._stop.is_set() and not self.camera.finished:
            try:
                frame = self.camera.read()
                if frame is not None and not self._stop.is_set():
                    self._publish(frame)
                self._report_corrupt()
            except Exception as exc:  # noqa: BLE001 - never a crash: logged, the capture reopened after a pause
                if self._stop.is_set():
                    return
                self.capture_error = f"capture failed: {type(exc).__name__}: {exc}"
                self.get_logger().error(f"{self.capture_error}; reopening")
                self.camera.close()
                self._stop.wait(self.config.retry_max)

    def _report_corrupt(self) -> None:
        corrupt = self.camera.stats.corrupt
        if corrupt > self._corrupt_counted:
            now = time.monotonic_ns()
            with self._meters_lock:
                for _ in range(corrupt - self._corrupt_counted):
                    self.corrupt_rate.tick(now)
            self._corrupt_counted = corrupt
        if corrupt > self._corrupt_seen and self._throttle("corrupt"):
            self._corrupt_seen = corrupt
            self.get_logger().warning(
                f"{self.camera.source.text}: {corrupt} corrupt frame(s) so far (skipped), of "
                f"{corrupt + self.camera.stats.frames} decoded"
            )

    def _info_for(self, width: int, height: int) -> Calibration:
        """The calibration of frames of this size (scaled from the file's size, with a warning the first time)."""
        key = (width, height)
        if key not in self._infos:
            if self.calibration is None:
                self._infos[key] = Calibration.uncalibrated(width, height)
            else:
                cal = self.calibration
                if (cal.width, cal.height) != key:
                    self.get_logger().warning(
                        f"{self.config.camera_info_url} was made at {cal.width}x{cal.height}; frames go out at "
                        f"{width}x{height}: K and P scaled (right only when the frame is the whole sensor image, "
                        "scaled; calibrate at the published size to be sure)"
                    )
                self._infos[key] = cal.scaled(width, height)
        return self._infos[key]

    def _publish(self, frame: Frame) -> None:
        if frame.stamp_ns <= 0:  # sim time before the first /clock
            self.held_for_clock += 1
            if self.held_for_clock == 1:
                self.get_logger().info("the node clock reads 0 (use_sim_time, no /clock yet): frames held back")
            return
        c = self.config
        height, width = frame.image.shape[:2]
        if c.image_transport == RAW:
            pixels = frame.image[:, :, ::-1] if c.encoding == "rgb8" else frame.image
            msg: Image | CompressedImage = image_msg(pixels, encoding=c.encoding, stamp_ns=frame.stamp_ns,
                                                     frame_id=c.frame_id)
        else:
            quality = [cv2.IMWRITE_JPEG_QUALITY, c.jpeg_quality]
            ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(frame.image), quality)
            if not ok:
                self.camera.stats.corrupt += 1
                return
            msg = compressed_image_msg(buf.tobytes(), format=f"{c.encoding}; jpeg compressed bgr8",
                                       stamp_ns=frame.stamp_ns, frame_id=c.frame_id)
        self.image_publisher.publish(msg)
        self.info_publisher.publish(camera_info_msg(self._info_for(width, height), msg.header))
        self.published += 1
        self.capture_error = ""
        with self._meters_lock:
            self.frame_rate.tick(time.monotonic_ns())
        if self.published == 1:
            self.get_logger().info(
                f"first frame out: {width}x{height} (the source gives {frame.source_size[0]}x{frame.source_size[1]})"
            )

    # -- diagnostics --------------------------------------------------------------------------------------------------

    def _device_report(self) -> Report:
        cam, stats = self.camera, self.camera.stats
        error = cam.last_error or self.capture_error
        values = {"source": cam.source.text, "kind": cam.source.kind, "open": cam.is_open, "opens": stats.opened,
                  "open attempts": stats.open_attempts, "reconnects": stats.lost, "failed grabs": stats.failed_grabs,
                  "loops": stats.loops, "last error": error or None}
        if cam.finished:
            return Report.warn(f"end of {cam.source.text} after {stats.frames} frames (loop: false): no more frames",
                               **values)
        if cam.is_open:
            return Report.ok(f"open: {cam.source.text}", **values)
        if error:
            return Report.error(f"retrying (attempt {cam.backoff.attempt}): {error}", **values)
        return Report.warn(f"opening {cam.source.text}", **values)

    def _frame_rate_report(self) -> Report:
        now = time.monotonic_ns()
        with self._meters_lock:
            report = self.frame_rate.report(now)
        report = report.with_values(**{
            "configured rate (Hz)": self.config.rate or None, "published": self.published,
            "dropped above the rate": self.camera.stats.dropped, "held back before /clock": self.held_for_clock,
        })
        if self.camera.finished:
            return Report.warn("the video file is finished", **report.values)
        if self.published == 0 and self.held_for_clock:
            return Report.warn(f"{self.held_for_clock} frames held back: the node clock reads 0 (use_sim_time, no "
                               "/clock yet)", **report.values)
        wanted = f" (configured {self.config.rate:g} Hz)" if self.config.rate else " (the source's rate)"
        return Report(report.level, report.message + wanted, report.values)

    def _corrupt_report(self) -> Report:
        now, stats = time.monotonic_ns(), self.camera.stats
        with self._meters_lock:
            recent = self.corrupt_rate.count(now)
        values = {"corrupt frames": stats.corrupt, "corrupt in window": recent, "window (s)": RATE_WINDOW_S,
                  "frames": stats.frames}
        so_far = f" ({stats.corrupt} so far)" if stats.corrupt else ""
        if recent:
            return Report.warn(f"{recent} corrupt frame(s) skipped in the last {RATE_WINDOW_S:g} s{so_far}", **values)
        return Report.ok(f"no corrupt frames in the last {RATE_WINDOW_S:g} s{so_far}", **values)

    def close(self) -> None:
        """Stop the capture thread, release the camera, log a summary (run_node calls it before destroy_node)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(JOIN_TIMEOUT_S)
        if self._thread.is_alive():  # stuck in a driver call: releasing under it could crash OpenCV; exit releases
            self.get_logger().warning(f"the capture thread is still in a read after {JOIN_TIMEOUT_S:g} s: not released")
        else:
            self.camera.close()
        held = f", {self.held_for_clock} held back before /clock" if self.held_for_clock else ""
        self.get_logger().info(f"stopping: {self.published} published{held}; {self.camera.stats.summary()}")


def main(args: list[str] | None = None) -> int:
    """Entry point of ``camera_node``."""
    return run_node(CameraNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
