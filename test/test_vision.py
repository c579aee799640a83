"""Decoding every supported encoding, and every bad frame giving an ImageDecodeError that says what is wrong."""

from __future__ import annotations

import array
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from lnn_control.vision import (
    DEFAULT_MAX_PIXELS,
    ImageDecodeError,
    PreprocessConfig,
    decode_compressed,
    decode_image,
    decode_msg,
    preprocess,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(6, 10, 3), dtype=np.uint8)


def padded(rows: np.ndarray, pad: int) -> tuple[bytes, int]:
    """Row-major bytes of ``rows`` (H x rowbytes) with ``pad`` junk bytes after each row; returns (data, step)."""
    h = rows.shape[0]
    flat = rows.reshape(h, -1)
    out = np.full((h, flat.shape[1] + pad), 0xEE, dtype=np.uint8)
    out[:, : flat.shape[1]] = flat
    return out.tobytes(), out.shape[1]


@pytest.mark.parametrize("pad", [0, 5])
def test_rgb8_is_a_view_of_the_message_bytes(pad):
    data, step = padded(RGB, pad)
    buf = bytearray(data)
    out = decode_image("rgb8", 6, 10, step, buf)
    assert out.shape == (6, 10, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, RGB)
    assert np.shares_memory(out, np.frombuffer(buf, dtype=np.uint8))  # no copy
    # it feeds preprocess directly, padding and all
    small = preprocess(out, PreprocessConfig(height=3, width=5))
    assert small.shape == (3, 5, 3)


@pytest.mark.parametrize(
    ("encoding", "make"),
    [
        ("bgr8", lambda rgb: rgb[..., ::-1]),
        ("8UC3", lambda rgb: rgb[..., ::-1]),
        ("rgba8", lambda rgb: np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])),
        ("bgra8", lambda rgb: np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 7, np.uint8)])),
    ],
)
@pytest.mark.parametrize("pad", [0, 3])
def test_colour_encodings(encoding, make, pad):
    data, step = padded(np.ascontiguousarray(make(RGB)), pad)
    np.testing.assert_array_equal(decode_image(encoding, 6, 10, step, data), RGB)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_mono8_becomes_grey_rgb(encoding):
    grey = RGB[..., 0]
    data, step = padded(grey, 2)
    out = decode_image(encoding, 6, 10, step, data)
    assert out.shape == (6, 10, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
@pytest.mark.parametrize("bigendian", [0, 1])
def test_16_bit_is_scaled_to_8_bits(encoding, bigendian):
    values = RNG.integers(0, 65536, size=(6, 10), dtype=np.uint16)
    data = values.astype(">u2" if bigendian else "<u2").tobytes()
    out = decode_image(encoding, 6, 10, 20, data, bigendian)
    np.testing.assert_array_equal(out[..., 1], (values >> 8).astype(np.uint8))


@pytest.mark.parametrize(
    ("encoding", "layout"),
    [  # which colour sits at (row % 2, col % 2)
        ("bayer_rggb8", {(0, 0): 0, (0, 1): 1, (1, 0): 1, (1, 1): 2}),
        ("bayer_bggr8", {(0, 0): 2, (0, 1): 1, (1, 0): 1, (1, 1): 0}),
        ("bayer_gbrg8", {(0, 0): 1, (0, 1): 2, (1, 0): 0, (1, 1): 1}),
        ("bayer_grbg8", {(0, 0): 1, (0, 1): 0, (1, 0): 2, (1, 1): 1}),
    ],
)
def test_bayer_patterns_demosaic_to_the_right_colour(encoding, layout):
    colour = np.array([220, 120, 30], dtype=np.uint8)  # distinct R, G, B
    h, w = 8, 12
    mosaic = np.zeros((h, w), dtype=np.uint8)
    for (r, c), channel in layout.items():
        mosaic[r::2, c::2] = colour[channel]
    out = decode_image(encoding, h, w, w, mosaic.tobytes())
    np.testing.assert_allclose(out[3:5, 4:8].reshape(-1, 3).mean(axis=0), colour, atol=2)


@pytest.mark.parametrize("container", [bytes, bytearray, memoryview, lambda b: array.array("B", b), np.frombuffer])
def test_data_containers(container):
    data = RGB.tobytes()
    kwargs = {"dtype": np.uint8} if container is np.frombuffer else {}
    np.testing.assert_array_equal(decode_image("rgb8", 6, 10, 30, container(data, **kwargs)), RGB)


def test_list_of_ints_data():
    np.testing.assert_array_equal(decode_image("rgb8", 6, 10, 30, list(RGB.tobytes())), RGB)


def test_jpeg_and_png():
    bgr = cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR)
    png = cv2.imencode(".png", bgr)[1].tobytes()
    np.testing.assert_array_equal(decode_compressed("png", png), RGB)  # lossless
    flat = np.zeros((16, 16, 3), np.uint8)
    flat[:] = (200, 40, 90)
    jpeg = cv2.imencode(".jpg", cv2.cvtColor(flat, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()
    for fmt in ("jpeg", "JPEG", "rgb8; jpeg compressed bgr8", "bgr8; jpeg compressed bgr8", "jpg"):
        out = decode_compressed(fmt, jpeg)
        assert out.shape == (16, 16, 3)
        np.testing.assert_allclose(out.reshape(-1, 3).mean(axis=0), (200, 40, 90), atol=3)
    np.testing.assert_array_equal(decode_compressed("", png), RGB)  # format left empty: decode what it is


def test_decode_msg_dispatches_on_fields():
    raw = SimpleNamespace(encoding="rgb8", height=6, width=10, step=30, is_bigendian=0, data=RGB.tobytes())
    np.testing.assert_array_equal(decode_msg(raw), RGB)
    png = cv2.imencode(".png", cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))[1].tobytes()
    np.testing.assert_array_equal(decode_msg(SimpleNamespace(format="png", data=array.array("B", png))), RGB)
    with pytest.raises(ImageDecodeError, match="neither 'format'.*nor 'encoding'"):
        decode_msg(SimpleNamespace(data=b"123"))


# -- bad input --------------------------------------------------------------------------------------------------------


def test_wrong_encoding():
    with pytest.raises(ImageDecodeError, match="unsupported encoding 'xyz'"):
        decode_image("xyz", 6, 10, 30, RGB.tobytes())
    with pytest.raises(ImageDecodeError, match="unsupported encoding '32FC1'"):
        decode_image("32FC1", 6, 10, 40, bytes(240))


def test_step_smaller_than_a_row():
    with pytest.raises(ImageDecodeError, match=r"step 100 < width\*channels\*bytes 480"):
        decode_image("rgb8", 120, 160, 100, bytes(12000))


def test_data_size_mismatch():
    with pytest.raises(ImageDecodeError, match=r"data has 5 bytes but step\*height is 57600"):
        decode_image("rgb8", 120, 160, 480, b"12345")
    with pytest.raises(ImageDecodeError, match=r"data has 57601 bytes but step\*height is 57600"):
        decode_image("rgb8", 120, 160, 480, bytes(57601))


def test_empty_data():
    with pytest.raises(ImageDecodeError, match="empty data"):
        decode_image("rgb8", 120, 160, 480, b"")
    with pytest.raises(ImageDecodeError, match="empty data"):
        decode_compressed("jpeg", b"")
    with pytest.raises(ImageDecodeError, match="no pixels"):
        decode_image("rgb8", 0, 0, 0, b"")


def test_absurd_sizes():
    assert DEFAULT_MAX_PIXELS == 4096 * 4096
    with pytest.raises(ImageDecodeError, match=r"absurd size 100000x100000"):
        decode_image("rgb8", 100000, 100000, 300000, b"\x00")  # refused before looking at the data
    with pytest.raises(ImageDecodeError, match=r"absurd size 64x64 = 4096 pixels > max_pixels 1000"):
        decode_image("mono8", 64, 64, 64, bytes(4096), max_pixels=1000)
    jpeg = cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))[1].tobytes()
    with pytest.raises(ImageDecodeError, match=r"absurd size 64x64"):
        decode_compressed("jpeg", jpeg, max_pixels=1000)
    # a PNG header that claims 50000 x 50000 is refused before OpenCV allocates anything
    png = bytearray(cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes())
    png[16:24] = (50000).to_bytes(4, "big") + (50000).to_bytes(4, "big")
    with pytest.raises(ImageDecodeError, match=r"absurd size 50000x50000"):
        decode_compressed("png", bytes(png))


def test_corrupt_and_truncated_jpeg():
    jpeg = cv2.imencode(".jpg", RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8))[1].tobytes()
    with pytest.raises(ImageDecodeError, match="corrupt or truncated JPEG"):
        decode_compressed("jpeg", jpeg[: len(jpeg) // 2])
    with pytest.raises(ImageDecodeError, match="corrupt or truncated JPEG"):
        decode_compressed("jpeg", b"\x00\x01garbage" * 20)
    with pytest.raises(ImageDecodeError, match="corrupt or truncated PNG"):
        decode_compressed("png", cv2.imencode(".png", RGB)[1].tobytes()[:40])


def test_unsupported_compressed_formats():
    with pytest.raises(ImageDecodeError, match="compressedDepth"):
        decode_compressed("16UC1; compressedDepth png", b"\x89PNG")
    with pytest.raises(ImageDecodeError, match="unsupported compressed format 'webp'"):
        decode_compressed("webp", b"RIFF....")


def test_bayer_too_small():
    with pytest.raises(ImageDecodeError, match="at least 2x2"):
        decode_image("bayer_rggb8", 1, 4, 4, bytes(4))


def test_rclpy_messages_decode_the_same_way():
    """The nodes hand rclpy messages (``data`` is an array.array) to the same functions; no DDS is needed here."""
    msgs = pytest.importorskip("sensor_msgs.msg", reason="ROS 2 message packages are not installed")
    raw = msgs.Image(height=6, width=10, encoding="bgr8", step=30, data=RGB[..., ::-1].tobytes())
    np.testing.assert_array_equal(decode_msg(raw), RGB)
    png = cv2.imencode(".png", cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))[1].tobytes()
    np.testing.assert_array_equal(decode_msg(msgs.CompressedImage(format="png", data=png)), RGB)
    with pytest.raises(ImageDecodeError, match=r"data has 5 bytes but step\*height is 180"):
        decode_msg(msgs.Image(height=6, width=10, encoding="rgb8", step=30, data=b"12345"))
