"""The nodes' preprocessing (decode to the message's own channel order, crop as a view, one resize into a buffer,
one conversion to RGB) gives the bytes of the reference path (decode to RGB, then crop and resize) on real frames,
for every encoding the nodes see, odd sizes and crops; and the Driver's features from a message equal its features
from the decoded frame."""

from __future__ import annotations

import array
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from lnn_control.driver import Driver, StageClock
from lnn_control.nn.policy import Policy, PolicyConfig
from lnn_control.vision import PreprocessConfig, Preprocessor, decode_msg, decode_native, preprocess

DOCS = Path(__file__).resolve().parents[1] / "docs"


def reference_preprocess(rgb: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """The crop and resize as they were before the buffers (kept here as the reference)."""
    h, w = rgb.shape[:2]
    cropped = rgb[config.crop_top : h - config.crop_bottom, config.crop_left : w - config.crop_right]
    if cropped.shape[0] == config.height and cropped.shape[1] == config.width:
        return np.ascontiguousarray(cropped)
    interp = cv2.INTER_AREA if cropped.shape[0] > config.height else cv2.INTER_LINEAR
    return cv2.resize(cropped, (config.width, config.height), interpolation=interp)


def real_frame(width: int, height: int, which: int = 0) -> np.ndarray:
    """A real picture (the README's figures, photographed plots with text and edges), cut and scaled to size, RGB."""
    names = sorted(DOCS.glob("*.png"))
    bgr = cv2.imread(str(names[which % len(names)]), cv2.IMREAD_COLOR)
    assert bgr is not None
    bgr = bgr[: min(bgr.shape[0], 2 * height), : min(bgr.shape[1], 2 * width)]
    return cv2.cvtColor(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


def image(encoding: str, pixels: np.ndarray, pad: int, as_array: bool) -> SimpleNamespace:
    """A sensor_msgs/Image-like message of ``pixels`` with ``pad`` bytes after each row."""
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1).view(np.uint8) if pixels.dtype != np.uint8 else pixels.reshape(h, -1)
    out = np.full((h, rows.shape[1] + pad), 0xEE, dtype=np.uint8)
    out[:, : rows.shape[1]] = rows
    data = array.array("B", out.tobytes()) if as_array else out.tobytes()
    return SimpleNamespace(encoding=encoding, height=h, width=w, step=out.shape[1], data=data, is_bigendian=0)


def messages(rgb: np.ndarray) -> dict[str, SimpleNamespace]:
    """The frame in every encoding a camera sends, raw (padded rows, bytes or array.array) and compressed."""
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    alpha = np.full(rgb.shape[:2] + (1,), 200, np.uint8)
    bayer = bgr.copy().reshape(-1, 3)[:, 1].reshape(rgb.shape[:2])  # any mosaic will do
    jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
    return {
        "rgb8": image("rgb8", rgb, 0, True),
        "rgb8 padded": image("rgb8", rgb, 5, False),
        "bgr8": image("bgr8", bgr, 0, True),
        "bgr8 padded": image("bgr8", bgr, 3, False),
        "mono8": image("mono8", grey, 0, True),
        "mono8 padded": image("mono8", grey, 7, False),
        "rgba8": image("rgba8", np.concatenate([rgb, alpha], 2), 0, False),
        "bgra8": image("bgra8", np.concatenate([bgr, alpha], 2), 4, True),
        "mono16": image("mono16", grey.astype("<u2") * 257 + 3, 2, False),
        "bayer_rggb8": image("bayer_rggb8", bayer, 0, False),
        "jpeg": SimpleNamespace(format="jpeg", data=jpeg),
        "png": SimpleNamespace(format="png", data=cv2.imencode(".png", bgr)[1].tobytes()),
    }


SIZES = [(160, 120), (640, 480), (97, 61), (331, 203)]
CONFIGS = [
    PreprocessConfig(96, 96),
    PreprocessConfig(66, 200, crop_top=7, crop_bottom=3, crop_left=5, crop_right=1),
    PreprocessConfig(56, 72, crop_top=1, crop_left=2),
    PreprocessConfig(60, 60, crop_bottom=1, crop_right=37),  # the crop is exactly the size at 97x61
    PreprocessConfig(130, 170, crop_top=2, crop_right=3),  # upscaling at the small sizes
]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_encoding_gives_the_reference_bytes(size: tuple[int, int]) -> None:
    width, height = size
    for which in range(2):
        rgb = real_frame(width, height, which)
        for name, msg in messages(rgb).items():
            decoded = decode_msg(msg)
            for config in CONFIGS:
                if config.crop_top + config.crop_bottom >= height or config.crop_left + config.crop_right >= width:
                    continue
                reference = reference_preprocess(decoded, config)
                pre = Preprocessor(config)
                for _ in range(2):  # the second frame through the same buffers too
                    out = pre.from_msg(msg)
                    assert out.shape == (config.height, config.width, 3) and out.dtype == np.uint8
                    assert np.array_equal(out, reference), (name, size, config)
                assert np.array_equal(preprocess(decoded, config), reference), (name, size, config)
                assert np.array_equal(pre(decoded), reference), (name, size, config)


def test_raw_frames_are_views_and_the_output_is_one_buffer() -> None:
    rgb = real_frame(160, 120)
    msg = messages(rgb)["bgr8 padded"]
    native = decode_native(msg)
    assert np.shares_memory(native.pixels, np.frombuffer(msg.data, dtype=np.uint8))  # no decode copy
    pre = Preprocessor(PreprocessConfig(96, 96, crop_top=10))
    first = pre.from_msg(msg)
    second = pre.from_msg(messages(rgb[::-1].copy())["rgb8"])
    assert first is second is pre.out


def test_a_crop_that_leaves_nothing_is_a_value_error() -> None:
    pre = Preprocessor(PreprocessConfig(56, 56, crop_top=60, crop_bottom=60))
    with pytest.raises(ValueError, match="leaves nothing"):
        pre.from_msg(messages(real_frame(160, 120))["jpeg"])


@pytest.mark.parametrize("name", ["rgb8", "bgr8 padded", "mono8", "jpeg", "png"])
def test_the_drivers_features_from_a_message_equal_those_from_the_decoded_frame(name: str) -> None:
    policy = Policy(PolicyConfig(preprocess=PreprocessConfig(66, 88, crop_top=9, crop_left=3), seed=1))
    driver = Driver(policy)
    clock = StageClock()
    for k in range(3):
        msg = messages(real_frame(203 + k, 131, k))[name]
        clock.start()
        ours = driver.features_from_msg(msg, clock=clock)
        theirs = driver.features(decode_msg(msg))
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    assert len(clock.frames) == 3
    assert all(sorted(row) == ["crop+resize", "decode", "encoder", "tensor"] for row in clock.frames)
    assert all(v >= 0 for row in clock.frames for v in row.values())


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_the_encoder_reads_the_preallocated_buffer_itself(backend: str) -> None:
    """One view of the Driver's buffer is made once and reused; it sees every new frame (no stale input)."""
    policy = Policy(PolicyConfig(preprocess=PreprocessConfig(56, 56), seed=2))
    driver = Driver(policy, backend=backend)
    a, b = (messages(real_frame(97, 61, k))["rgb8"] for k in range(2))
    first = driver.backend.frame_input(driver.preprocessor.from_msg(a))
    assert np.shares_memory(np.asarray(first), driver.preprocessor.out)
    ours = [driver.features_from_msg(m) for m in (a, b, a)]
    assert driver.backend.frame_input(driver.preprocessor.out) is first
    fresh = Driver(policy, backend=backend)
    theirs = [fresh.backend.encode(preprocess(decode_msg(m), policy.config.preprocess)) for m in (a, b, a)]
    for x, y in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-6)
    assert not np.allclose(ours[0], ours[1])
