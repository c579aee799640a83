"""Camera bytes -> HxWx3 uint8 RGB, and the crop/resize every path applies (no ROS imports).

The nodes, the bag reader and the simulator all hand raw message fields here, so a frame is decoded and
preprocessed the same way on the robot, in replay and in training. :class:`Preprocessor` is the same rule for a
stream of frames, with preallocated buffers (the nodes' path: no full-size copy between the message and the model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np


@dataclass(frozen=True)
class PreprocessConfig:
    """Crop (pixels removed from each edge of the decoded frame), then resize to ``height`` x ``width``."""

    height: int = 96
    width: int = 96
    crop_top: int = 0
    crop_bottom: int = 0
    crop_left: int = 0
    crop_right: int = 0

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            if getattr(self, name) <= 0:
                raise ValueError(f"preprocess.{name} must be positive, got {getattr(self, name)}")
        for name in ("crop_top", "crop_bottom", "crop_left", "crop_right"):
            if getattr(self, name) < 0:
                raise ValueError(f"preprocess.{name} must be >= 0, got {getattr(self, name)}")


def crop_view(frame: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """The crop of ``config`` as a view of ``frame`` (HxW or HxWxC, no copy); ``ValueError`` when nothing is left."""
    h, w = frame.shape[:2]
    top, bottom = config.crop_top, h - config.crop_bottom
    left, right = config.crop_left, w - config.crop_right
    if bottom <= top or right <= left:
        raise ValueError(
            f"crop (top={config.crop_top}, bottom={config.crop_bottom}, left={config.crop_left}, "
            f"right={config.crop_right}) leaves nothing of a {w}x{h} frame"
        )
    return frame[top:bottom, left:right]


def resize_into(frame: np.ndarray, config: PreprocessConfig, out: np.ndarray) -> np.ndarray:
    """Crop ``frame`` (a view) and resize it into ``out`` (``config.height`` x ``config.width``, the frame's channels,
    uint8): INTER_AREA when shrinking in height, else INTER_LINEAR; a copy when the crop already has the size.

    The rule of :func:`preprocess`, on frames in any channel order: it works per channel, so resizing a BGR, BGRA or
    grey frame and converting the small result to RGB gives the same bytes as converting first.
    """
    cropped = crop_view(frame, config)
    if cropped.shape[0] == config.height and cropped.shape[1] == config.width:
        np.copyto(out, cropped.reshape(out.shape))
        return out
    interp = cv2.INTER_AREA if cropped.shape[0] > config.height else cv2.INTER_LINEAR
    result = cv2.resize(cropped, (config.width, config.height), dst=out, interpolation=interp)
    if result is not out:  # OpenCV allocated (a dst it could not use): keep the promise of writing into ``out``
        np.copyto(out, result.reshape(out.shape))
    return out


def preprocess(rgb: np.ndarray, config: PreprocessConfig, out: np.ndarray | None = None) -> np.ndarray:
    """Crop and resize an HxWx3 uint8 RGB frame to ``config.height`` x ``config.width`` (uint8, contiguous), into
    ``out`` when given (a preallocated HxWx3 uint8 array), else into a new array."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 frame, got shape {rgb.shape} dtype {rgb.dtype}")
    if out is None:
        out = np.empty((config.height, config.width, 3), dtype=np.uint8)
    return resize_into(rgb, config, out)


# --------------------------------------------------------------------------------------------------------------------
# Decoding: message fields -> HxWx3 uint8 RGB
# --------------------------------------------------------------------------------------------------------------------

DEFAULT_MAX_PIXELS = 4096 * 4096
"""Frames larger than this (width * height) are refused before anything is allocated or decoded."""


class ImageDecodeError(ValueError):
    """A frame that cannot be decoded; the message says what is wrong. Callers add the topic or bag name."""


# encoding -> (channels, numpy dtype (little-endian form), how to make RGB)
_RAW_ENCODINGS: dict[str, tuple[int, str, str]] = {
    "rgb8": (3, "u1", "rgb"),
    "bgr8": (3, "u1", "bgr"),
    "rgba8": (4, "u1", "rgba"),
    "bgra8": (4, "u1", "bgra"),
    "mono8": (1, "u1", "gray"),
    "8uc1": (1, "u1", "gray"),
    "8uc3": (3, "u1", "bgr"),
    "mono16": (1, "u2", "gray16"),
    "16uc1": (1, "u2", "gray16"),
    "bayer_rggb8": (1, "u1", "bayer_rggb"),
    "bayer_bggr8": (1, "u1", "bayer_bggr"),
    "bayer_gbrg8": (1, "u1", "bayer_gbrg"),
    "bayer_grbg8": (1, "u1", "bayer_grbg"),
}

_BAYER_CODES = {
    "bayer_rggb": cv2.COLOR_BayerRGGB2RGB,
    "bayer_bggr": cv2.COLOR_BayerBGGR2RGB,
    "bayer_gbrg": cv2.COLOR_BayerGBRG2RGB,
    "bayer_grbg": cv2.COLOR_BayerGRBG2RGB,
}

SUPPORTED_ENCODINGS: tuple[str, ...] = (
    "rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1", "8UC3", "mono16", "16UC1",
    "bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8",
)  # fmt: skip
"""``sensor_msgs/Image`` encodings :func:`decode_image` accepts (8UC3 is read as BGR, OpenCV's order)."""

SUPPORTED_COMPRESSED: tuple[str, ...] = ("jpeg", "png")
"""``sensor_msgs/CompressedImage`` formats :func:`decode_compressed` accepts."""


def _as_bytes_view(data: object) -> np.ndarray:
    """A flat uint8 view of a message's ``data`` (bytes, bytearray, memoryview, array.array, numpy), no copy."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ImageDecodeError(f"data has dtype {data.dtype}, expected uint8 bytes")
        return data.reshape(-1) if data.ndim != 1 else data
    try:
        return np.frombuffer(data, dtype=np.uint8)  # type: ignore[call-overload]
    except (TypeError, ValueError, BufferError):
        pass
    try:
        return np.asarray(data, dtype=np.uint8).reshape(-1)  # a list of ints, say
    except (TypeError, ValueError, OverflowError) as exc:
        raise ImageDecodeError(f"data of type {type(data).__name__} is not a byte buffer") from exc


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"image has no pixels: width {width}, height {height}")
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"absurd size {width}x{height} = {width * height} pixels > max_pixels {max_pixels}"
        )


def decode_image(
    encoding: str,
    height: int,
    width: int,
    step: int,
    data: object,
    is_bigendian: int = 0,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode the fields of a ``sensor_msgs/Image`` into an HxWx3 uint8 RGB array.

    ``data`` may be ``bytes``, ``array.array('B')`` (rclpy), a numpy uint8 array (rosbags) or any buffer; it is viewed,
    not copied, and ``rgb8`` frames come back as a (read-only where the buffer is) view of it. Other encodings are
    converted with OpenCV: ``bgr8``/``8UC3``, ``rgba8``, ``bgra8`` (alpha dropped), ``mono8``/``8UC1`` (grey to three
    channels), ``mono16``/``16UC1`` (scaled to 8 bits by dividing by 256, as cv_bridge does; ``is_bigendian`` honoured)
    and the four ``bayer_*8`` patterns (OpenCV demosaicing).

    Raises:
        ImageDecodeError: unsupported encoding, no pixels, a size above ``max_pixels``, ``step`` smaller than a row,
            empty data, or ``len(data) != step * height``.
    """
    return to_rgb(_image_native(encoding, height, width, step, data, is_bigendian, max_pixels))


class NativeFrame(NamedTuple):
    """A decoded frame before its conversion to RGB: HxWxC (or HxW grey) uint8 pixels in the message's own order,
    a view of the message where possible, and the OpenCV code that makes them RGB (None: they are RGB already)."""

    pixels: np.ndarray
    code: int | None


def to_rgb(frame: NativeFrame, out: np.ndarray | None = None) -> np.ndarray:
    """The HxWx3 uint8 RGB frame of ``frame`` (into ``out`` when given; ``frame.pixels`` itself when already RGB)."""
    if frame.code is None:
        if out is None:
            return frame.pixels
        np.copyto(out, frame.pixels)
        return out
    return cv2.cvtColor(frame.pixels, frame.code, dst=out)


def _image_native(
    encoding: str, height: int, width: int, step: int, data: object, is_bigendian: int, max_pixels: int
) -> NativeFrame:
    """:func:`decode_image` up to the conversion to RGB where that works per pixel (colour order, alpha, grey);
    16-bit grey is scaled to 8 bits and Bayer frames demosaiced here (neither commutes with a resize)."""
    key = str(encoding).strip().lower()
    if key not in _RAW_ENCODINGS:
        raise ImageDecodeError(
            f"unsupported encoding {encoding!r} (supported: {', '.join(SUPPORTED_ENCODINGS)}; "
            "CompressedImage: jpeg, png)"
        )
    channels, dtype, kind = _RAW_ENCODINGS[key]
    height, width, step = int(height), int(width), int(step)
    _check_size(width, height, max_pixels)
    itemsize = 2 if dtype == "u2" else 1
    row = width * channels * itemsize
    if step < row:
        raise ImageDecodeError(
            f"step {step} < width*channels*bytes {row} (width {width}, {channels} channel(s) of {itemsize} byte(s), "
            f"encoding {encoding!r})"
        )
    buf = _as_bytes_view(data)
    if buf.size == 0:
        raise ImageDecodeError(f"empty data for a {width}x{height} {encoding!r} image")
    if buf.size != step * height:
        raise ImageDecodeError(
            f"data has {buf.size} bytes but step*height is {step * height} (step {step}, height {height})"
        )
    np_dtype = np.dtype(dtype).newbyteorder(">" if is_bigendian and itemsize > 1 else "<")
    # A strided view of the rows, whatever the padding at the end of each row: no copy.
    pixels = np.ndarray(
        shape=(height, width, channels),
        dtype=np_dtype,
        buffer=buf,
        strides=(step, channels * itemsize, itemsize),
    )
    if kind == "rgb":
        return NativeFrame(pixels, None)
    if kind == "gray16":
        return NativeFrame((pixels[:, :, 0] >> 8).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    if kind == "gray":
        return NativeFrame(_cv_ready(pixels[:, :, 0]), cv2.COLOR_GRAY2RGB)
    if kind.startswith("bayer_"):
        if width < 2 or height < 2:
            raise ImageDecodeError(f"a Bayer image needs at least 2x2 pixels, got {width}x{height}")
        return NativeFrame(cv2.cvtColor(_cv_ready(pixels[:, :, 0]), _BAYER_CODES[kind]), None)
    code = {"bgr": cv2.COLOR_BGR2RGB, "rgba": cv2.COLOR_RGBA2RGB, "bgra": cv2.COLOR_BGRA2RGB}[kind]
    return NativeFrame(_cv_ready(pixels), code)


def _cv_ready(view: np.ndarray) -> np.ndarray:
    """OpenCV takes views whose rows are padded (the ``step``) as they are; other strides are copied first."""
    if view.strides[-1] == view.itemsize and (view.ndim == 2 or view.strides[-2] == view.shape[-1] * view.itemsize):
        return view
    return np.ascontiguousarray(view)


def _compressed_size(buf: np.ndarray) -> tuple[int, int] | None:
    """(width, height) from a PNG IHDR or a JPEG SOF header without decoding; None when not found."""
    head = bytes(buf[:32])
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24 and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if not head.startswith(b"\xff\xd8"):
        return None
    data = bytes(buf[: min(buf.size, 1 << 20)])  # SOF sits after the tables, well inside the first MiB
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > len(data):
                return None
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height
        if marker == 0xDA or length < 2:  # start of scan before any SOF: malformed
            return None
        i += 2 + length
    return None


def decode_compressed(format: str, data: object, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG or PNG) into an HxWx3 uint8 RGB array.

    ``format`` is the message's field: ``"jpeg"``, ``"png"``, or image_transport's long form such as
    ``"rgb8; jpeg compressed bgr8"``; the bytes are decoded by what they are (OpenCV), so colour comes out right
    either way. The size is read from the header first, so an absurd size is refused before decoding.

    Raises:
        ImageDecodeError: empty data, a format that is neither JPEG nor PNG (e.g. compressedDepth), an absurd size,
            or bytes OpenCV cannot decode (corrupt or truncated).
    """
    return to_rgb(_compressed_native(format, data, max_pixels))


def _compressed_native(format: str, data: object, max_pixels: int) -> NativeFrame:
    """:func:`decode_compressed` up to the conversion to RGB: OpenCV's BGR."""
    fmt = str(format).strip().lower()
    if "compresseddepth" in fmt:
        raise ImageDecodeError(f"unsupported compressed format {format!r} (compressedDepth is depth, not a camera)")
    if fmt and not any(name in fmt for name in ("jpeg", "jpg", "png")):
        raise ImageDecodeError(f"unsupported compressed format {format!r} (supported: jpeg, png)")
    kind = "PNG" if "png" in fmt else "JPEG"
    buf = _as_bytes_view(data)
    if buf.size == 0:
        raise ImageDecodeError(f"empty data for a {kind} image (format {format!r})")
    size = _compressed_size(buf)
    if size is not None:
        _check_size(size[0], size[1], max_pixels)
    if not buf.flags.c_contiguous:
        buf = np.ascontiguousarray(buf)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ImageDecodeError(f"corrupt or truncated {kind}: OpenCV could not decode {buf.size} bytes")
    _check_size(bgr.shape[1], bgr.shape[0], max_pixels)
    return NativeFrame(bgr, cv2.COLOR_BGR2RGB)


def decode_msg(msg: object, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image message of either kind, duck-typed on its fields (rclpy and rosbags messages alike).

    An object with ``format`` is a CompressedImage, one with ``encoding`` an Image.
    """
    return to_rgb(decode_native(msg, max_pixels=max_pixels))


def decode_native(msg: object, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> NativeFrame:
    """:func:`decode_msg` before the conversion to RGB (see :class:`NativeFrame`): same checks, same errors."""
    if hasattr(msg, "format"):
        return _compressed_native(msg.format, msg.data, max_pixels)  # type: ignore[attr-defined]
    if hasattr(msg, "encoding"):
        return _image_native(
            msg.encoding,  # type: ignore[attr-defined]
            msg.height,  # type: ignore[attr-defined]
            msg.width,  # type: ignore[attr-defined]
            msg.step,  # type: ignore[attr-defined]
            msg.data,  # type: ignore[attr-defined]
            getattr(msg, "is_bigendian", 0),
            max_pixels,
        )
    raise ImageDecodeError(
        f"{type(msg).__name__} is not an image message: "
        "it has neither 'format' (CompressedImage) nor 'encoding' (Image)"
    )


class Preprocessor:
    """:func:`preprocess` with its buffers, for a stream of frames (one per Driver; not shared between threads).

    A message is decoded to a :class:`NativeFrame` (views of its bytes where the encoding allows), cropped as a view,
    resized once into a preallocated buffer in the message's channel order and converted once into the preallocated
    RGB output: no full-size intermediate image for rgb8, bgr8, rgba8, bgra8, mono8 or JPEG/PNG beyond the decoder's
    own. Conversion and resize commute for these (both work per pixel and per channel), so the bytes are those of
    ``preprocess(decode_msg(msg), config)``. Every call returns the same output array, overwritten by the next call.
    """

    def __init__(self, config: PreprocessConfig) -> None:
        self.config = config
        self.out = np.empty((config.height, config.width, 3), dtype=np.uint8)
        self._scratch: dict[tuple[int, ...], np.ndarray] = {}

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """A decoded HxWx3 uint8 RGB frame, preprocessed into :attr:`out`."""
        return preprocess(rgb, self.config, self.out)

    def decode(self, msg: object, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> NativeFrame:
        """:func:`decode_native` (the first stage of :meth:`from_msg`)."""
        return decode_native(msg, max_pixels=max_pixels)

    def prepare(self, frame: NativeFrame) -> np.ndarray:
        """A decoded frame, cropped, resized and made RGB into :attr:`out`."""
        if frame.code is None:
            return self(frame.pixels)
        pixels = frame.pixels
        if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
            raise ValueError(f"expected an HxW or HxWxC uint8 frame, got shape {pixels.shape} dtype {pixels.dtype}")
        shape = (self.config.height, self.config.width, *pixels.shape[2:])
        scratch = self._scratch.get(shape)
        if scratch is None:
            scratch = self._scratch[shape] = np.empty(shape, dtype=np.uint8)
        cv2.cvtColor(resize_into(pixels, self.config, scratch), frame.code, dst=self.out)
        return self.out

    def from_msg(self, msg: object, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
        """An image message (either kind), decoded and preprocessed into :attr:`out`."""
        return self.prepare(self.decode(msg, max_pixels=max_pixels))
