"""perception_node: camera frames -> CNN features, stamped with the camera's header.

Subscribes ``camera/image_raw`` (sensor_msgs/Image: rgb8, bgr8, rgba8, bgra8, mono8, ...) or, with
``image_transport:=compressed``, ``camera/image_raw/compressed`` (sensor_msgs/CompressedImage: jpeg, png), with
sensor-data QoS. Frames are decoded by :mod:`lnn_control.vision` from numpy views of ``msg.data`` (no cv_bridge),
cropped and resized as the model was trained into the Driver's preallocated buffer, and encoded by
:meth:`Driver.features_from_msg` (the same bytes as :meth:`Driver.features` of the decoded frame) — the first half of
the one frame-to-command path; policy_node runs the second half.

Features go out on ``lnn/features`` as **sensor_msgs/Image with encoding 32FC1, height 1, width N** (N = the
model's feature count, ``step = 4 N``, ``is_bigendian = 0``: little-endian float32), with the **camera image's
header** (stamp and frame_id) copied unchanged, so that the policy integrates over camera time, not arrival time.
Why an Image: the pip install has no custom message package, and Image is the standard type that carries a header
next to a flat float32 buffer (Float32MultiArray has no header); ``ros2 bag record`` and ``rqt`` handle it as is.
The publisher is reliable with a depth of 5, so both reliable and best-effort subscribers match.

A frame that cannot be used (unsupported encoding, step or size mismatch, empty data, corrupt JPEG or PNG, an absurd
size, a crop that leaves nothing) is dropped and counted, with a warning naming the topic and the problem, throttled
per kind of problem; the node carries on with the next frame.

``/diagnostics`` (every ``diagnostics_period`` s, :mod:`lnn_control.ros.diagnostics`; hardware id: the model):
``perception_node: camera`` (frames per second of the node clock over 5 s, the frames received and dropped, the
drops by kind, :func:`~lnn_control.nodes.driver_diagnostics.drop_kind`, and the latest reason; WARN before the first
frame or when some frames of the last 5 s were dropped, ERROR when none came for 5 s or all were dropped) and
``perception_node: model`` (the model, its core and action, the inference backend; WARN when it is not the one
asked for).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from lnn_control.driver import NO_CLOCK, Driver, StageClock
from lnn_control.health import Report
from lnn_control.nodes.driver_diagnostics import InputHealth, model_report
from lnn_control.nodes.driver_params import CameraParams, ModelParams, build_driver, log_summary, problem_key
from lnn_control.ros.diagnostics import Diagnostics
from lnn_control.ros.msgs import image_array, image_msg
from lnn_control.ros.node_util import Throttle, declare_config, run_node
from lnn_control.ros.qos import SENSOR
from lnn_control.ros.stamps import stamp_to_ns

RAW_TOPIC = "camera/image_raw"
COMPRESSED_TOPIC = "camera/image_raw/compressed"
FEATURES_TOPIC = "lnn/features"
FEATURES_ENCODING = "32FC1"
#: Reliable, keep last 5: matches best-effort (sensor-data) and reliable subscribers alike.
FEATURES_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)


def features_to_msg(features: np.ndarray, header: Header) -> Image:
    """float32 features (N,) -> sensor_msgs/Image 32FC1, 1 x N, with ``header`` (the camera's)."""
    return image_msg(
        np.asarray(features, dtype=np.float32).reshape(1, -1),
        encoding=FEATURES_ENCODING,
        stamp_ns=stamp_to_ns(header.stamp),
        frame_id=header.frame_id,
    )


def features_from_msg(msg: Image, expected: int) -> np.ndarray:
    """sensor_msgs/Image 32FC1 1 x N -> float32 (N,) (a view of ``msg.data``); ``ValueError`` names the problem."""
    if msg.encoding != FEATURES_ENCODING:
        raise ValueError(f"encoding {msg.encoding!r}, expected {FEATURES_ENCODING!r}")
    if msg.height != 1 or msg.width != expected:
        raise ValueError(f"size {msg.width}x{msg.height}, expected {expected}x1 (the policy's feature count)")
    return image_array(msg).reshape(-1)


class CameraInput:
    """The camera half shared by perception_node and drive_node: subscription, decoding, features, drop counting.

    Calls ``on_features(features, header)`` for every usable frame, with the camera message's header. Setting
    :attr:`clock` to a :class:`~lnn_control.driver.StageClock` times the stages of every frame (a benchmark does).
    :meth:`report` is the ``camera`` diagnostic (rate on the node clock, drops and why).
    """

    def __init__(
        self,
        node: Node,
        params: CameraParams,
        driver: Driver,
        on_features: Callable[[np.ndarray, Header], None],
    ) -> None:
        self.node = node
        self.driver = driver
        self.on_features = on_features
        self.max_pixels = params.max_pixels
        raw = params.image_transport == "raw"
        self.subscription = node.create_subscription(
            Image if raw else CompressedImage, RAW_TOPIC if raw else COMPRESSED_TOPIC, self._on_image, SENSOR
        )
        self.topic = self.subscription.topic_name
        self.received = 0
        self.dropped = 0
        self._throttle = Throttle()
        self.clock: StageClock = NO_CLOCK
        self.health = InputHealth("frames")

    def _now(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def _on_image(self, msg: Image | CompressedImage) -> None:
        self.received += 1
        now = self._now()
        self.health.received(now)
        self.clock.start()
        try:
            features = self.driver.features_from_msg(msg, max_pixels=self.max_pixels, clock=self.clock)
        except ValueError as exc:  # ImageDecodeError, or a crop that leaves nothing of this frame
            self.dropped += 1
            self.health.dropped(now, exc)
            problem = f"{self.topic}: frame dropped: {exc}"
            if self._throttle(problem_key(problem)):
                self.node.get_logger().warning(f"{problem} ({self.dropped} of {self.received} frames dropped so far)")
            return
        self.on_features(features, msg.header)

    def summary(self) -> str:
        """One line for the shutdown log."""
        return f"{self.topic}: {self.received} frames received, {self.dropped} dropped"

    def report(self) -> Report:
        """The ``camera`` diagnostic: :meth:`InputHealth.report` of this input."""
        return self.health.report(self._now(), topic=self.topic, received=self.received, dropped=self.dropped)


class PerceptionNode(Node):
    """Camera -> features on ``lnn/features`` (the perception half of the path)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("perception_node", **kwargs)
        model = declare_config(self, ModelParams)
        camera = declare_config(self, CameraParams)
        self.driver = build_driver(self, model, camera)
        self.publisher = self.create_publisher(Image, FEATURES_TOPIC, FEATURES_QOS)
        self.camera = CameraInput(self, camera, self.driver, self._publish)
        self.diagnostics = Diagnostics(self, hardware_id=model.model or "shipped")
        self.diagnostics.add("camera", self.camera.report)
        self.diagnostics.add("model", lambda: model_report(model.model, model.inference, self.driver, model.threads))
        self.get_logger().info(f"{self.camera.topic} -> {self.publisher.topic_name}")

    def _publish(self, features: np.ndarray, header: Header) -> None:
        self.publisher.publish(features_to_msg(features, header))

    def destroy_node(self) -> None:
        log_summary(self, self.camera.summary())
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(PerceptionNode, args)


if __name__ == "__main__":
    sys.exit(main())
