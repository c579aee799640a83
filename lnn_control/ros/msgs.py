"""ROS messages <-> lnn_control values: Twist/TwistStamped <-> :class:`Command`, numpy <-> sensor_msgs/Image.

Commands travel as ``geometry_msgs/Twist`` or, when a node's ``stamped`` parameter is true,
``geometry_msgs/TwistStamped``, each field of the action schema in the Twist field the schema names (the car:
``linear.x`` = velocity in m/s, ``angular.z`` = steering in [-1, 1], positive left; the drone: ``linear`` = body
FLU velocity, ``angular.z`` = yaw rate; see :mod:`lnn_control.command`). One flag picks the type everywhere, so a
node never guesses.

Image helpers are for publishers (tests, benchmarks, the simulator node) and for simple views of raw frames. The
decoding that every consumer must share (all encodings, compressed frames, checks) lives in
:mod:`lnn_control.vision`. Image bytes are always assigned as ``bytes``: assigning a numpy array to ``msg.data``
makes rclpy convert element by element (125 ms for a 640x480 rgb8 frame here, against 2 ms for ``tobytes()``).
"""

from __future__ import annotations

import importlib

import numpy as np
from geometry_msgs.msg import Twist, TwistStamped
from sensor_msgs.msg import CompressedImage, Image

from lnn_control.command import CAR, ActionSchema, Command
from lnn_control.data.message_types import normalize_type_name
from lnn_control.ros.stamps import ns_to_stamp, stamp_to_ns

# ---------------------------------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------------------------------


def twist_type(stamped: bool) -> type:
    """``TwistStamped`` when ``stamped`` else ``Twist``: the message class a node with that flag uses."""
    return TwistStamped if stamped else Twist


def twist_msg(
    steering: float,
    velocity: float,
    *,
    stamped: bool,
    stamp_ns: int = 0,
    frame_id: str = "",
) -> Twist | TwistStamped:
    """The car's command message (``linear.x = velocity`` m/s, ``angular.z = steering``, positive left)."""
    return command_to_twist(CAR.of(stamp_ns, steering=steering, velocity=velocity), stamped=stamped, frame_id=frame_id)


def command_to_twist(command: Command, *, stamped: bool, frame_id: str = "") -> Twist | TwistStamped:
    """A ``Twist`` with each field of ``command`` in its schema's slot; with ``stamped`` a ``TwistStamped`` whose
    header carries the command's ``stamp_ns`` and ``frame_id``."""
    twist = Twist()
    for slot, value in command.schema.twist_values(command).items():
        group, axis = slot.split(".")
        setattr(getattr(twist, group), axis, value)
    if not stamped:
        return twist
    msg = TwistStamped()
    msg.header.stamp = ns_to_stamp(command.stamp_ns)
    msg.header.frame_id = frame_id
    msg.twist = twist
    return msg


def twist_to_command(msg: Twist | TwistStamped, schema: ActionSchema = CAR) -> Command:
    """Read a ``Twist`` or a ``TwistStamped`` (by its fields, so either works) as a command of ``schema``.

    ``stamp_ns`` is the header stamp for a ``TwistStamped`` and 0 for a ``Twist``.
    """
    if hasattr(msg, "twist"):
        return schema.from_twist(msg.twist, stamp_to_ns(msg.header.stamp))
    return schema.from_twist(msg, 0)


# ---------------------------------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------------------------------

#: encoding -> (channels, numpy dtype) for the raw encodings :func:`image_msg` writes and :func:`image_array` views.
IMAGE_ENCODINGS: dict[str, tuple[int, np.dtype]] = {
    "rgb8": (3, np.dtype(np.uint8)),
    "bgr8": (3, np.dtype(np.uint8)),
    "rgba8": (4, np.dtype(np.uint8)),
    "bgra8": (4, np.dtype(np.uint8)),
    "mono8": (1, np.dtype(np.uint8)),
    "mono16": (1, np.dtype("<u2")),
    "32FC1": (1, np.dtype("<f4")),
}


def _default_encoding(array: np.ndarray) -> str:
    if array.dtype == np.uint8:
        if array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 1):
            return "mono8"
        if array.ndim == 3 and array.shape[2] == 3:
            return "rgb8"
        if array.ndim == 3 and array.shape[2] == 4:
            return "rgba8"
    if array.dtype == np.float32 and (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 1)):
        return "32FC1"
    if array.dtype == np.uint16 and array.ndim == 2:
        return "mono16"
    raise ValueError(f"no default encoding for an array of shape {array.shape} and dtype {array.dtype}; pass encoding=")


def image_msg(
    array: np.ndarray,
    *,
    encoding: str | None = None,
    stamp_ns: int = 0,
    frame_id: str = "camera",
) -> Image:
    """A ``sensor_msgs/Image`` holding ``array`` (HxW or HxWxC), little-endian, rows packed (``step = W*C*size``).

    ``encoding`` defaults from the array: uint8 HxWx3 -> ``rgb8``, HxWx4 -> ``rgba8``, HxW -> ``mono8``, float32
    HxW -> ``32FC1`` (e.g. a 1 x N feature vector), uint16 HxW -> ``mono16``. The bytes are copied once
    (``tobytes``).
    """
    array = np.asarray(array)
    encoding = encoding or _default_encoding(array)
    if encoding not in IMAGE_ENCODINGS:
        raise ValueError(f"encoding {encoding!r} is not one of {', '.join(IMAGE_ENCODINGS)}")
    channels, dtype = IMAGE_ENCODINGS[encoding]
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] != channels:
        raise ValueError(
            f"encoding {encoding} needs an HxW{'x' + str(channels) if channels > 1 else ''} array, "
            f"got shape {array.shape}"
        )
    if array.dtype != dtype:
        if array.dtype.kind != dtype.kind or array.dtype.itemsize != dtype.itemsize:
            raise ValueError(f"encoding {encoding} needs dtype {dtype}, got {array.dtype}")
        array = array.astype(dtype)
    height, width = array.shape[:2]
    msg = Image()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.height = int(height)
    msg.width = int(width)
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(width * channels * dtype.itemsize)
    msg.data = np.ascontiguousarray(array).tobytes()
    return msg


def image_array(msg: Image) -> np.ndarray:
    """A read-only numpy view (H x W x C, or H x W for one channel) of a raw image in :data:`IMAGE_ENCODINGS`.

    Rows may be padded (``step`` larger than the packed row). Raises ``ValueError`` naming the field that does not
    fit. For every decoding path the nodes share (bayer, compressed, conversion to RGB) use
    :func:`lnn_control.vision.decode_msg`.
    """
    if msg.encoding not in IMAGE_ENCODINGS:
        raise ValueError(f"encoding {msg.encoding!r} is not one of {', '.join(IMAGE_ENCODINGS)}")
    channels, dtype = IMAGE_ENCODINGS[msg.encoding]
    if msg.is_bigendian and dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row = width * channels * dtype.itemsize
    if step < row:
        raise ValueError(f"step {step} is smaller than width*channels*size = {row}")
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size != step * height:
        raise ValueError(f"data has {buf.size} bytes, expected step*height = {step * height}")
    rows = buf.reshape(height, step)[:, :row]
    view = rows.view(dtype).reshape(height, width, channels) if height and width else rows.reshape(height, 0, channels)
    return view[:, :, 0] if channels == 1 else view


def compressed_image_msg(
    data: bytes,
    *,
    format: str = "jpeg",  # noqa: A002 - the message field's name
    stamp_ns: int = 0,
    frame_id: str = "camera",
) -> CompressedImage:
    """A ``sensor_msgs/CompressedImage`` holding already encoded ``data`` (e.g. a JPEG file's bytes)."""
    msg = CompressedImage()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.format = format
    msg.data = bytes(data)
    return msg


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of an HxWx3 uint8 RGB frame (OpenCV)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"OpenCV could not encode a frame of shape {rgb.shape} as JPEG")
    return buf.tobytes()


# ---------------------------------------------------------------------------------------------------------------------
# Message types by name
# ---------------------------------------------------------------------------------------------------------------------

def message_class(type_name: str) -> type:
    """The rclpy message class for a type name (any form :func:`normalize_type_name` accepts).

    Imports ``<pkg>.msg`` with importlib, so any installed interface package works (no rosidl_runtime_py needed).
    Raises ``ValueError`` naming the type and what is missing.
    """
    pkg, kind, name = normalize_type_name(type_name).split("/")
    try:
        module = importlib.import_module(f"{pkg}.{kind}")
    except ImportError as exc:
        raise ValueError(
            f"message type {type_name!r}: cannot import the Python package {pkg}.{kind} ({exc}); "
            f"is the interface package installed and sourced?"
        ) from exc
    try:
        return getattr(module, name)
    except AttributeError:
        raise ValueError(f"message type {type_name!r}: {pkg}.{kind} has no type {name}") from None


def type_name_of(msg_or_class: object) -> str:
    """``"pkg/msg/Name"`` of an rclpy message instance or class."""
    cls = msg_or_class if isinstance(msg_or_class, type) else type(msg_or_class)
    pkg = cls.__module__.split(".")[0]
    return f"{pkg}/msg/{cls.__name__}"
