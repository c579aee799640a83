"""Helpers for the data tests: real rosbags messages and small synthetic bags written with lnn_control's writer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from lnn_control.data.bag_writer import BagFormat, BagWriter

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ROS1_BAG = SHARED_DATA / "ros1_svo" / "tiny_svo.bag"
ROS2_MCAP_BAG = SHARED_DATA / "ros1_svo" / "tiny_svo_ros2"
TUB_ARCHIVE = SHARED_DATA / "donkeycar_tub" / "tub.tar.gz"

IMAGE_TOPIC = "/camera/image_raw"
CMD_TOPIC = "/teleop/cmd_vel"

ACKERMANN_MSG = """\
float32 steering_angle
float32 steering_angle_velocity
float32 speed
float32 acceleration
float32 jerk
"""
ACKERMANN_STAMPED_MSG = """\
std_msgs/Header header
ackermann_msgs/AckermannDrive drive
"""

COMMAND_TYPES = {
    "twist": "geometry_msgs/msg/Twist",
    "twist_stamped": "geometry_msgs/msg/TwistStamped",
    "joy": "sensor_msgs/msg/Joy",
    "ackermann": "ackermann_msgs/msg/AckermannDriveStamped",
}


def need(path: Path) -> Path:
    """Skip the test when the shared real data is not there (a fresh clone)."""
    if not path.exists():
        pytest.skip(f"real data {path} is absent (it lives in ../shared/data beside the project)")
    return path


def jazzy() -> Typestore:
    return get_typestore(Stores.ROS2_JAZZY)


def ackermann_store() -> Typestore:
    """Jazzy plus ackermann_msgs, registered from .msg text as a user with the package would have it."""
    store = get_typestore(Stores.ROS2_JAZZY)
    types = {}
    types.update(get_types_from_msg(ACKERMANN_MSG, "ackermann_msgs/msg/AckermannDrive"))
    types.update(get_types_from_msg(ACKERMANN_STAMPED_MSG, "ackermann_msgs/msg/AckermannDriveStamped"))
    store.register(types)
    return store


def header(store: Typestore, stamp_ns: int, frame_id: str = "camera") -> object:
    t = store.types
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id)


def frame_pixels(index: int, width: int = 32, height: int = 24) -> np.ndarray:
    """An RGB frame whose content encodes ``index`` (flat colour: R = index % 256, G = 100, B = 200)."""
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    rgb[..., 0] = index % 256
    rgb[..., 1] = 100
    rgb[..., 2] = 200
    return rgb


def raw_image(store: Typestore, stamp_ns: int, rgb: np.ndarray, encoding: str = "rgb8") -> object:
    """A sensor_msgs/Image of ``rgb`` in ``encoding`` (rgb8 or bgr8), or raw bytes given for another encoding."""
    if encoding == "bgr8":
        rgb = rgb[..., ::-1]
    h, w = rgb.shape[:2]
    data = np.ascontiguousarray(rgb).reshape(-1)
    return store.types["sensor_msgs/msg/Image"](
        header=header(store, stamp_ns),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=0,
        step=w * 3,
        data=data,
    )


def compressed_image(store: Typestore, stamp_ns: int, data: bytes, fmt: str = "jpeg") -> object:
    return store.types["sensor_msgs/msg/CompressedImage"](
        header=header(store, stamp_ns), format=fmt, data=np.frombuffer(data, dtype=np.uint8)
    )


def jpeg_bytes(rgb: np.ndarray, quality: int = 95) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def command_msg(store: Typestore, kind: str, stamp_ns: int, steering: float, velocity: float) -> object:
    """A command of ``kind`` that, under the default CommandConfig (Ackermann max angle 0.5), means these values."""
    t = store.types
    if kind in ("twist", "twist_stamped"):
        twist = t["geometry_msgs/msg/Twist"](
            linear=t["geometry_msgs/msg/Vector3"](x=velocity, y=0.0, z=0.0),
            angular=t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=steering),
        )
        if kind == "twist":
            return twist
        return t["geometry_msgs/msg/TwistStamped"](header=header(store, stamp_ns, "base_link"), twist=twist)
    if kind == "joy":
        axes = np.array([steering, velocity, 0.0, 0.0], dtype=np.float32)
        return t["sensor_msgs/msg/Joy"](
            header=header(store, stamp_ns, "joy"), axes=axes, buttons=np.zeros(4, dtype=np.int32)
        )
    if kind == "ackermann":
        drive = t["ackermann_msgs/msg/AckermannDrive"](
            steering_angle=steering * 0.5, steering_angle_velocity=0.0, speed=velocity, acceleration=0.0, jerk=0.0
        )
        return t["ackermann_msgs/msg/AckermannDriveStamped"](header=header(store, stamp_ns, "base_link"), drive=drive)
    raise ValueError(kind)


def steering_of(index: int) -> float:
    return round(((index * 7) % 21 - 10) / 10.0, 3)


def velocity_of(index: int) -> float:
    return 1.0 + 0.01 * index


def write_drive_bag(
    path: Path,
    n: int = 40,
    *,
    command: str = "twist_stamped",
    image: str = "rgb8",
    storage: str = "mcap",
    hz: float = 20.0,
    start_ns: int = 1_700_000_000_000_000_000,
    log_of: Callable[[int], int] | None = None,
    stamp_of: Callable[[int], int] | None = None,
    size_of: Callable[[int], tuple[int, int]] | None = None,
    command_indices: Sequence[int] | None = None,
    command_lead_ns: int = 0,
    image_data_of: Callable[[int], bytes] | None = None,
    encoding_of: Callable[[int], str] | None = None,
) -> Path:
    """A bag with ``n`` frames on IMAGE_TOPIC and a command per frame on CMD_TOPIC.

    Frame ``i`` is logged at ``log_of(i)`` (default ``start + i / hz``) and its header stamped ``stamp_of(i)``
    (default: the log time); its command (steering ``steering_of(i)``, velocity ``velocity_of(i)``) is stamped and
    logged ``command_lead_ns`` before the frame. ``command_indices`` limits which frames get a command.
    """
    store = ackermann_store() if command == "ackermann" else jazzy()
    period = int(1e9 / hz)
    log_of = log_of or (lambda i: start_ns + i * period)
    stamp_of = stamp_of or log_of
    size_of = size_of or (lambda i: (32, 24))
    wanted = set(range(n) if command_indices is None else command_indices)
    image_type = "sensor_msgs/msg/CompressedImage" if image in ("jpeg", "png") else "sensor_msgs/msg/Image"
    messages = []
    for i in range(n):
        stamp = stamp_of(i)
        w, h = size_of(i)
        rgb = frame_pixels(i, w, h)
        if image_data_of is not None:
            data = image_data_of(i)
            if image in ("jpeg", "png"):
                msg = compressed_image(store, stamp, data, image)
            else:
                msg = raw_image(store, stamp, rgb, "rgb8")
                msg.data = np.frombuffer(data, dtype=np.uint8)
        elif image == "jpeg":
            msg = compressed_image(store, stamp, jpeg_bytes(rgb), "jpeg")
        elif image == "png":
            msg = compressed_image(store, stamp, png_bytes(rgb), "png")
        else:
            msg = raw_image(store, stamp, rgb, image)
        if encoding_of is not None:
            msg.encoding = encoding_of(i)
        messages.append((log_of(i), 1, IMAGE_TOPIC, msg))
        if i in wanted:
            cstamp = stamp - command_lead_ns
            cmd = command_msg(store, command, cstamp, steering_of(i), velocity_of(i))
            messages.append((log_of(i) - command_lead_ns, 0, CMD_TOPIC, cmd))
    messages.sort(key=lambda m: (m[0], m[1]))
    with BagWriter(path, bag_format=BagFormat(storage=storage), typestore=store) as writer:
        writer.add_topic(IMAGE_TOPIC, image_type)
        writer.add_topic(CMD_TOPIC, COMMAND_TYPES[command])
        for log_ns, _, topic, msg in messages:
            writer.write_msg(topic, log_ns, msg)
    return path
