"""A camera without ROS: OpenCV ``VideoCapture`` on a V4L2 device, a GStreamer pipeline, a stream or a video file.

This is what ``camera_node`` (:mod:`lnn_control.nodes.camera`) runs on a pip install, where no usb_cam or
v4l2_camera exists. The node gives it a clock and a sleep; everything here can be tested with fake ones.

Sources (the ``device`` string, :func:`parse_source`):

- ``0``, ``1``, ...: a V4L2 device by index; ``/dev/video0`` or ``/dev/v4l/by-id/...``: a device by path;
- a string containing ``!``: a GStreamer pipeline ending in ``appsink`` (needs an OpenCV built with GStreamer;
  pip's opencv-python wheels are not, the distribution's python3-opencv is);
- ``rtsp://``, ``http://``, ...: a network stream (FFmpeg);
- anything else: a video file (FFmpeg), played at ``rate`` (0: the file's own frame rate) and looped or ended
  (``loop``).

Frames come out as HxWx3 uint8 **BGR** (OpenCV's order) at ``width`` x ``height``: the device is asked for that
size, rate and ``fourcc``; when it gives another size, every frame is resized (logged once). Live sources are read
as fast as the device delivers (it paces them); frames that come faster than ``rate`` are grabbed and dropped
undecoded.

**Stamps**: ``stamp_ns`` is the caller's clock (the node clock: ROS time, or sim time with ``use_sim_time``) read
right after ``grab()`` returns, so it is the moment the frame reached this process. Exposure, USB transfer and the
driver's buffering come before it (typically one to two frame periods on a webcam): the stamp is late by that much,
the same for every frame; ``BUFFERSIZE`` is set to 1 where the backend allows, so no old frame waits in a queue.

Failures never raise out of :meth:`Camera.read`: a device that is missing, busy or unplugged, or a file that is
missing, is logged with what to check and retried with exponential backoff (``retry_min`` doubling up to
``retry_max`` seconds); ``max_failed_grabs`` failed grabs in a row on a live source count as an unplug (the capture
is reopened). Frames that cannot be decoded are counted (:class:`CaptureStats`) and skipped. Only a configuration
that cannot work (a GStreamer pipeline without GStreamer support, an unknown backend) raises :class:`CameraError`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from lnn_control.ros.node_util import param

DEVICE, GSTREAMER, STREAM, FILE = "device", "gstreamer", "stream", "file"
RAW, COMPRESSED = "raw", "compressed"
BACKENDS = ("auto", "v4l2", "gstreamer", "ffmpeg", "any")
#: Frame rate assumed for a video file that does not say its own.
DEFAULT_FILE_FPS = 30.0

_log = logging.getLogger("lnn_control.camera")


class CameraError(ValueError):
    """A camera configuration that cannot work whatever is plugged in; the message says what to change."""


class CalibrationError(ValueError):
    """A calibration file that cannot be read; the message names the file and the key."""


@dataclass(frozen=True)
class CameraConfig:
    """camera_node's parameters (config/camera.yaml); :class:`Camera` reads the capture ones."""

    device: str = param(
        "0",
        "V4L2 device index (0) or path (/dev/video0), a GStreamer pipeline (contains '!', ends in appsink), a "
        "stream URL (rtsp://...) or a video file",
    )
    backend: str = param(
        "auto", "OpenCV videoio backend; auto: V4L2 for devices, GStreamer for pipelines, FFmpeg otherwise",
        choices=BACKENDS,
    )
    width: int = param(640, "published frame width in pixels (asked of the device; resized if it differs); "
                            "0: the source's own", min=0, max=8192)
    height: int = param(480, "published frame height in pixels; 0: the source's own", min=0, max=8192)
    rate: float = param(30.0, "frames per second: asked of a device (faster frames are dropped), a video file's "
                              "playback rate; 0: the source's own", min=0.0, max=1000.0)
    fourcc: str = param("", "pixel format asked of a V4L2 device, e.g. MJPG (most webcams reach 30 fps at 640x480 "
                            "only so) or YUYV; empty: the driver's choice")
    loop: bool = param(True, "video files: start again at the end; false: stop publishing at the end")
    image_transport: str = param(
        RAW, "raw: sensor_msgs/Image on camera/image_raw; compressed: sensor_msgs/CompressedImage (JPEG) on "
             "camera/image_raw/compressed", choices=(RAW, COMPRESSED),
    )
    encoding: str = param("rgb8", "encoding of raw frames (what the simulator publishes too)", choices=("rgb8", "bgr8"))
    jpeg_quality: int = param(90, "JPEG quality of compressed frames", min=1, max=100)
    frame_id: str = param("camera_optical_frame", "header frame_id: the optical frame (z forward, x right, y down; "
                                                  "REP 103/105)")
    camera_name: str = param("camera", "the camera's name in CameraInfo logs and calibration files")
    camera_info_url: str = param("", "calibration YAML (camera_calibration / camera_info_manager format): a path "
                                     "or file:// URL; empty: an uncalibrated CameraInfo (K all zero)")
    retry_min: float = param(0.5, "s before the first retry to open a missing source (doubles each time)",
                             min=0.01, max=60.0)
    retry_max: float = param(5.0, "s between retries at most", min=0.01, max=600.0)
    max_failed_grabs: int = param(5, "failed grabs in a row after which a live source counts as unplugged and is "
                                     "reopened", min=1, max=1000)


@dataclass(frozen=True)
class Source:
    """What ``device`` names: its kind (:data:`DEVICE`, :data:`GSTREAMER`, :data:`STREAM`, :data:`FILE`) and the
    target ``VideoCapture`` opens (an index or a string)."""

    kind: str
    target: int | str
    text: str

    @property
    def live(self) -> bool:
        """Paced by the source itself (not a file)."""
        return self.kind != FILE


def parse_source(device: str) -> Source:
    """Classify a ``device`` string (see the module docstring); ``CameraError`` for an empty one."""
    text = str(device).strip()
    if not text:
        raise CameraError("device is empty: give an index (0), a path (/dev/video0), a pipeline or a file")
    if text.isdigit():
        return Source(DEVICE, int(text), f"camera {text} (/dev/video{text})")
    if "!" in text:
        return Source(GSTREAMER, text, f"GStreamer pipeline '{text}'")
    if text.startswith("/dev/"):
        return Source(DEVICE, text, text)
    if "://" in text and not text.startswith("file://"):
        return Source(STREAM, text, text)
    path = os.path.expanduser(text.removeprefix("file://"))
    return Source(FILE, path, path)


def backend_id(source: Source, backend: str) -> int:
    """The ``cv2.CAP_*`` preference for ``source`` and a ``backend`` name; ``CameraError`` when it cannot work."""
    if backend not in BACKENDS:
        raise CameraError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "auto":
        backend = {DEVICE: "v4l2" if sys.platform.startswith("linux") else "any", GSTREAMER: "gstreamer"}.get(
            source.kind, "ffmpeg"
        )
    api = {"v4l2": cv2.CAP_V4L2, "gstreamer": cv2.CAP_GSTREAMER, "ffmpeg": cv2.CAP_FFMPEG, "any": cv2.CAP_ANY}[backend]
    if api == cv2.CAP_GSTREAMER and not has_gstreamer():
        raise CameraError(
            f"{source.text}: this OpenCV ({cv2.__version__}) has no GStreamer support (pip's opencv-python wheels "
            "are built without it): use a V4L2 device or a file, or run with the distribution's python3-opencv "
            "(apt install python3-opencv) or an OpenCV built with -DWITH_GSTREAMER=ON"
        )
    return api


def has_gstreamer() -> bool:
    """Whether this OpenCV was built with GStreamer."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line.split(":", 1)[1]
    return False


@dataclass
class CaptureStats:
    """What happened so far; :meth:`summary` is the node's shutdown line."""

    open_attempts: int = 0
    opened: int = 0
    frames: int = 0
    dropped: int = 0  # grabbed but not wanted (faster than ``rate``)
    corrupt: int = 0  # grabbed but could not be decoded
    failed_grabs: int = 0
    resized: int = 0
    loops: int = 0
    lost: int = 0  # a live source that stopped giving frames and was reopened

    def summary(self) -> str:
        return (
            f"{self.frames} frames, {self.corrupt} corrupt, {self.dropped} dropped above the rate, "
            f"{self.failed_grabs} failed grabs, {self.lost} reconnects, {self.loops} loops, {self.resized} resized; "
            f"{self.opened} opens in {self.open_attempts} attempts"
        )


@dataclass(frozen=True)
class Frame:
    """One captured frame: BGR uint8 at the configured size, the stamp taken right after grab, its index."""

    image: np.ndarray
    stamp_ns: int
    index: int
    source_size: tuple[int, int]  # (width, height) as the source gave it


class Backoff:
    """Retry delays: ``first``, doubling up to ``most`` seconds; :meth:`reset` after a success."""

    def __init__(self, first: float, most: float) -> None:
        self.first, self.most = float(first), max(float(first), float(most))
        self.attempt = 0

    def next_delay(self) -> float:
        delay = min(self.most, self.first * 2.0**self.attempt)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


def open_video_capture(source: Source, api: int) -> Any:
    """``cv2.VideoCapture`` of ``source`` with backend ``api`` (the default opener of :class:`Camera`)."""
    return cv2.VideoCapture(source.target, api)


Log = Callable[[str, str], None]  # (level: "info" | "warning" | "error", message)


def _default_log(level: str, message: str) -> None:
    _log.log({"info": logging.INFO, "warning": logging.WARNING}.get(level, logging.ERROR), message)


@dataclass
class _Pacer:
    """When the next frame is due (monotonic seconds); no catching up in bursts after a stall."""

    period: float = 0.0
    due: float | None = None

    def wait_time(self, now: float) -> float:
        """Files: how long to sleep before the next frame (and book it)."""
        if self.period <= 0:
            return 0.0
        if self.due is None or self.due < now - self.period:
            self.due = now
        wait = max(0.0, self.due - now)
        self.due += self.period
        return wait

    def take(self, now: float) -> bool:
        """Live sources: whether a frame grabbed at ``now`` is wanted (a quarter period of jitter allowed)."""
        if self.period <= 0:
            return True
        if self.due is None or self.due < now - self.period:
            self.due = now
        if now < self.due - 0.25 * self.period:
            return False
        self.due += self.period
        return True


@dataclass
class Camera:
    """Frames from one source with retries; :meth:`read` returns a :class:`Frame` or ``None`` and never raises.

    ``stamp`` gives the stamp of a frame in nanoseconds (the node clock); ``clock`` (monotonic seconds) and
    ``sleep`` pace files and backoffs (``sleep`` may return early: the node passes its stop event's ``wait``);
    ``opener`` makes the capture object (tests may pass a fake one).
    """

    config: CameraConfig
    stamp: Callable[[], int] = time.time_ns
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Any] = time.sleep
    log: Log = _default_log
    opener: Callable[[Source, int], Any] = open_video_capture
    stats: CaptureStats = field(default_factory=CaptureStats)

    def __post_init__(self) -> None:
        self.source = parse_source(self.config.device)
        self.api = backend_id(self.source, self.config.backend)
        self.backoff = Backoff(self.config.retry_min, self.config.retry_max)
        self.finished = False  # a file that ended with loop: false
        self.last_error = ""
        self._cap: Any = None
        self._pacer = _Pacer()
        self._failed_in_row = 0
        self._frames_since_open = 0
        self._told_resize: tuple[int, int] | None = None
        self._lock = threading.Lock()

    # -- opening ------------------------------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._cap is not None

    def open(self) -> bool:
        """One attempt to open the source (no waiting); logs what to check when it fails."""
        self.stats.open_attempts += 1
        problem = self._precheck() if self.opener is open_video_capture else None  # a custom opener knows its own
        cap = None
        if problem is None:
            try:
                cap = self.opener(self.source, self.api)
            except Exception as exc:  # noqa: BLE001 - OpenCV raises cv2.error for odd targets; retried like a miss
                problem = f"OpenCV could not open it ({exc})"
            else:
                if cap is None or not cap.isOpened():
                    problem = self._why_not_opened()
                    self._release(cap)
                    cap = None
        if cap is None:
            self.last_error = f"cannot open {self.source.text}: {problem}"
            return False
        self._configure(cap)
        self._cap = cap
        self.stats.opened += 1
        self._failed_in_row = 0
        self._frames_since_open = 0
        self.last_error = ""
        self.log("info", f"opened {self.source.text}: {self.describe_capture()}")
        return True

    def _precheck(self) -> str | None:
        """A reason the source cannot open that is better said than OpenCV's silence, or None."""
        target = self.source.target
        if self.source.kind == FILE and not Path(str(target)).is_file():
            return "no such file" if not Path(str(target)).exists() else "not a file"
        if self.source.kind == DEVICE:
            path = target if isinstance(target, str) else f"/dev/video{target}"
            if sys.platform.startswith("linux") and not os.path.exists(path):
                return f"no such device {path} (is the camera plugged in? ls /dev/video*)"
            if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
                return f"permission denied on {path} (add yourself to the video group: sudo usermod -aG video $USER)"
        return None

    def _why_not_opened(self) -> str:
        if self.source.kind == DEVICE:
            return "the device exists but would not open (busy in another program? not a capture node?)"
        if self.source.kind == FILE:
            return "OpenCV cannot read it as a video (codec or container not supported by its FFmpeg?)"
        return "OpenCV could not open it (check the pipeline or URL with gst-launch-1.0 / ffprobe)"

    def _configure(self, cap: Any) -> None:
        """Ask a live source for the configured format, size, rate and a one-frame buffer; set up pacing."""
        c = self.config
        if self.source.kind == DEVICE:
            if c.fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*c.fourcc.ljust(4)[:4]))
            if c.width > 0 and c.height > 0:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, float(c.width))
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, float(c.height))
            if c.rate > 0:
                cap.set(cv2.CAP_PROP_FPS, float(c.rate))
        if self.source.live:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1.0)
            self._pacer = _Pacer(1.0 / c.rate if c.rate > 0 else 0.0)
        else:
            fps = c.rate or _finite_positive(cap.get(cv2.CAP_PROP_FPS)) or DEFAULT_FILE_FPS
            self._pacer = _Pacer(1.0 / fps)

    def describe_capture(self) -> str:
        """What the open capture gives (size, rate, format), as the backend reports it."""
        cap = self._cap
        if cap is None:
            return "not open"
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = _finite_positive(cap.get(cv2.CAP_PROP_FPS))
        code = int(cap.get(cv2.CAP_PROP_FOURCC)) if self.source.kind == DEVICE else 0
        fourcc = "".join(chr((code >> 8 * i) & 0xFF) for i in range(4)).strip("\0 ") if code > 0 else ""
        text = f"{w}x{h}" + (f" at {fps:g} fps" if fps else "") + (f", {fourcc}" if fourcc else "")
        target = self.target_size((w, h))
        if target != (w, h) and w and h:
            text += f"; published at {target[0]}x{target[1]}"
        if self.source.kind == FILE:
            text += f"; played at {1.0 / self._pacer.period:g} fps, {'looping' if self.config.loop else 'once'}"
        return text

    def _release(self, cap: Any) -> None:
        if cap is not None:
            with contextlib.suppress(Exception):  # a capture that cannot even be released is gone anyway
                cap.release()

    def close(self) -> None:
        """Release the capture (safe to call twice)."""
        with self._lock:
            cap, self._cap = self._cap, None
        self._release(cap)

    # -- reading ------------------------------------------------------------------------------------------------------

    def read(self) -> Frame | None:
        """The next frame, or None (not open yet: one attempt and its backoff wait; a dropped, corrupt or failed
        grab; the end of a file). Blocks for at most a device frame, a file's frame period or one backoff."""
        if self.finished:
            return None
        if self._cap is None and not self._open_or_wait():
            return None
        cap = self._cap
        if not self.source.live:
            wait = self._pacer.wait_time(self.clock())
            if wait > 0:
                self.sleep(wait)
        try:
            grabbed = bool(cap.grab())
        except Exception:  # noqa: BLE001 - an unplugged device can make OpenCV raise; handled as a failed grab
            grabbed = False
        if not grabbed:
            return self._grab_failed()
        stamp_ns = int(self.stamp())
        self._failed_in_row = 0
        self._frames_since_open += 1
        if self._frames_since_open == 1:
            self.backoff.reset()
        if self.source.live and not self._pacer.take(self.clock()):
            self.stats.dropped += 1
            return None
        try:
            ok, image = cap.retrieve()
        except Exception:  # noqa: BLE001 - counted as corrupt
            ok, image = False, None
        fitted = self._fit(image) if ok else None
        if fitted is None:
            self.stats.corrupt += 1
            return None
        index = self.stats.frames
        self.stats.frames += 1
        return Frame(fitted, stamp_ns, index, (int(image.shape[1]), int(image.shape[0])))

    def _open_or_wait(self) -> bool:
        if self.open():
            return True  # the backoff resets with the first frame: a source that opens but gives none backs off
        delay = self.backoff.next_delay()
        self.log("error", f"{self.last_error}; retry {self.backoff.attempt} in {delay:g} s")
        self.sleep(delay)
        return False

    def _grab_failed(self) -> None:
        """End of a file (loop or finish), or a failed grab on a live source (reopen after too many)."""
        if not self.source.live:
            frames, self._frames_since_open = self._frames_since_open, 0
            if frames == 0:  # opened (or rewound) but gave nothing: retried like a missing file, never a busy loop
                self.close()
                self.last_error = f"{self.source.text} gave no frame"
                delay = self.backoff.next_delay()
                self.log("error", f"{self.last_error}; retry {self.backoff.attempt} in {delay:g} s")
                self.sleep(delay)
            elif self.config.loop:
                self.stats.loops += 1
                if not self._rewind():
                    self.close()  # reopened by the next read
            else:
                self.close()
                self.finished = True
                self.log("info", f"end of {self.source.text} after {self.stats.frames} frames (loop: false)")
            return None
        self.stats.failed_grabs += 1
        self._failed_in_row += 1
        if self._failed_in_row >= self.config.max_failed_grabs:
            self.stats.lost += 1
            delay = self.backoff.next_delay()  # reset only by a frame: a device that opens but never gives backs off
            self.log("error", f"{self.source.text}: {self._failed_in_row} failed grabs in a row (unplugged?): "
                              f"reopening in {delay:g} s")
            self.close()
            self._failed_in_row = 0
            self.sleep(delay)
        else:
            self.sleep(self._pacer.period or 0.01)
        return None

    def _rewind(self) -> bool:
        """Seek a file back to its first frame; False if the backend cannot."""
        try:
            return bool(self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0.0))
        except Exception:  # noqa: BLE001 - reopened instead
            return False

    def target_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The published (width, height) for a source frame of ``size``: the configured one, 0 keeping the source's."""
        return (self.config.width or size[0], self.config.height or size[1])

    def _fit(self, image: Any) -> np.ndarray | None:
        """A decoded frame as HxWx3 uint8 BGR at the target size, or None when it is not a usable image."""
        if not isinstance(image, np.ndarray) or image.size == 0 or image.dtype != np.uint8:
            return None
        if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.ndim == 3 and image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        elif image.ndim != 3 or image.shape[2] != 3:
            return None
        size = (int(image.shape[1]), int(image.shape[0]))
        target = self.target_size(size)
        if size == target:
            return image
        if self._told_resize != size:
            self._told_resize = size
            if self.source.kind == FILE:
                self.log("info", f"{self.source.text}: frames resized from {size[0]}x{size[1]} to "
                                 f"{target[0]}x{target[1]}")
            else:
                self.log("warning", f"{self.source.text} gives {size[0]}x{size[1]}, not {target[0]}x{target[1]}: "
                                    "every frame is resized (CPU); ask for a size the source has "
                                    "(v4l2-ctl --list-formats-ext)")
        self.stats.resized += 1
        shrink = target[0] * target[1] < size[0] * size[1]
        return cv2.resize(image, target, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _finite_positive(value: float) -> float:
    return float(value) if math.isfinite(value) and value > 0 else 0.0


# ---------------------------------------------------------------------------------------------------------------------
# Calibration (camera_calibration / camera_info_manager YAML)
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """The fields of a sensor_msgs/CameraInfo: size, K (3x3), D, R (3x3), P (3x4) row-major, distortion model.

    An uncalibrated one (:meth:`uncalibrated`) has K, R and P all zero and no D, as camera_info_manager gives
    when it has no file: consumers see ``K[0] == 0`` and treat the image as uncalibrated.
    """

    width: int
    height: int
    k: tuple[float, ...] = (0.0,) * 9
    d: tuple[float, ...] = ()
    r: tuple[float, ...] = (0.0,) * 9
    p: tuple[float, ...] = (0.0,) * 12
    distortion_model: str = ""
    camera_name: str = ""

    @classmethod
    def uncalibrated(cls, width: int, height: int) -> Calibration:
        return cls(int(width), int(height))

    @property
    def calibrated(self) -> bool:
        return self.k[0] != 0.0

    def scaled(self, width: int, height: int) -> Calibration:
        """This calibration for frames resized to ``width`` x ``height`` (fx, cx, fy, cy of K and P scaled, as
        image_proc's resize does); itself when the size is the same."""
        if (width, height) == (self.width, self.height):
            return self
        if not self.calibrated:
            return Calibration.uncalibrated(width, height)
        sx, sy = width / self.width, height / self.height
        k, p = list(self.k), list(self.p)
        for i in (0, 1, 2):
            k[i] *= sx
            k[3 + i] *= sy
        for i in (0, 1, 2, 3):
            p[i] *= sx
            p[4 + i] *= sy
        return Calibration(width, height, tuple(k), self.d, self.r, tuple(p), self.distortion_model, self.camera_name)


def calibration_path(url: str) -> Path:
    """A path from a ``camera_info_url``: a plain path or ``file://``; ``CalibrationError`` for other schemes."""
    text = url.strip()
    if text.startswith("file://"):
        text = text[len("file://") :]
    elif "://" in text:
        raise CalibrationError(f"camera_info_url {url!r}: only paths and file:// URLs are read here")
    return Path(os.path.expanduser(text))


def _matrix(doc: dict, key: str, size: int | None, where: str) -> tuple[float, ...]:
    entry = doc.get(key)
    data = entry.get("data") if isinstance(entry, dict) else entry
    if not isinstance(data, list) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in data):
        raise CalibrationError(f"{where}: {key!r} must be a mapping with a 'data' list of numbers")
    if size is not None and len(data) != size:
        raise CalibrationError(f"{where}: {key!r} has {len(data)} numbers, expected {size}")
    return tuple(float(v) for v in data)


def load_calibration(url: str) -> Calibration:
    """Read a calibration YAML as ``cameracalibrator`` writes it and camera_info_manager reads it (image_width,
    image_height, camera_name, camera_matrix, distortion_model, distortion_coefficients, rectification_matrix,
    projection_matrix; ``camera_model`` is accepted for ``distortion_model``, as older files have it)."""
    path = calibration_path(url)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CalibrationError(f"calibration file {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise CalibrationError(f"calibration file {path}: not valid YAML ({exc})") from exc
    where = f"calibration file {path}"
    if not isinstance(doc, dict):
        raise CalibrationError(f"{where}: expected a mapping (image_width, camera_matrix, ...)")
    for key in ("image_width", "image_height"):
        if not isinstance(doc.get(key), int) or doc[key] <= 0:
            raise CalibrationError(f"{where}: {key!r} must be a positive integer")
    k = _matrix(doc, "camera_matrix", 9, where)
    d = _matrix(doc, "distortion_coefficients", None, where) if "distortion_coefficients" in doc else ()
    r = _matrix(doc, "rectification_matrix", 9, where) if "rectification_matrix" in doc else (
        1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    if "projection_matrix" in doc:
        p = _matrix(doc, "projection_matrix", 12, where)
    else:  # a monocular camera: P = [K | 0]
        p = (*k[0:3], 0.0, *k[3:6], 0.0, *k[6:9], 0.0)
    model = str(doc.get("distortion_model", doc.get("camera_model", "plumb_bob" if d else "")))
    return Calibration(doc["image_width"], doc["image_height"], k, d, r, p, model, str(doc.get("camera_name", "")))
