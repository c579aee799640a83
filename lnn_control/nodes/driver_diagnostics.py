"""The ``/diagnostics`` checks perception_node, policy_node and drive_node share, free of ROS.

- :class:`InputHealth`: the rate of a node's input (camera frames, features) on the node clock, and the inputs it
  dropped: how many, of which kind (:func:`drop_kind`: ``oversize``, ``unsupported``, ``corrupt``, ``decode``,
  ``encoding``, ``size``, ``other``) and the latest reason;
- :func:`model_report`: which model runs, on which inference backend (WARN when the backend asked for is not the
  one running: onnxruntime missing, or its outputs differed from torch's).

The nodes keep their own received and dropped counters (:class:`~lnn_control.nodes.perception.CameraInput`,
:class:`~lnn_control.nodes.policy.PolicyNode`) and pass them in; the command half's checks (watchdog, output) are
methods of :class:`~lnn_control.nodes.policy.CommandOutput`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from lnn_control.health import Level, RateMeter, Report
from lnn_control.vision import ImageDecodeError

#: The sliding window of the input rate and of the recent drops, seconds of the node clock.
INPUT_WINDOW_S = 5.0
#: Words of a drop's reason -> its kind, the first that matches (the messages of lnn_control.vision and
#: :func:`~lnn_control.nodes.perception.features_from_msg`).
DROP_KINDS = (
    ("max_pixels", "oversize"),
    ("unsupported", "unsupported"),
    ("corrupt", "corrupt"),
    ("encoding", "encoding"),
    ("size", "size"),
)


def drop_kind(exc: BaseException) -> str:
    """A short kind of why an input was dropped, for counting (see :data:`DROP_KINDS`); ``decode`` for another
    image decoding error, ``other`` for the rest (a crop that leaves nothing)."""
    text = str(exc)
    for word, kind in DROP_KINDS:
        if word in text:
            return kind
    return "decode" if isinstance(exc, ImageDecodeError) else "other"


class InputHealth:
    """Rate and drops of one input (``what``: "frames", "features") on the caller's clock (integer ns)."""

    def __init__(self, what: str, window_s: float = INPUT_WINDOW_S) -> None:
        self.what = what
        self.rate = RateMeter(window_s, what=what)
        self.drops = RateMeter(window_s, what=f"dropped {what}")
        self.kinds: Counter[str] = Counter()
        self.last_reason = ""

    def received(self, now_ns: int) -> None:
        """An input arrived (used or not)."""
        self.rate.tick(now_ns)

    def dropped(self, now_ns: int, exc: BaseException) -> None:
        """The input that just arrived was dropped because of ``exc``."""
        self.drops.tick(now_ns)
        self.kinds[drop_kind(exc)] += 1
        self.last_reason = str(exc)

    def report(self, now_ns: int, *, topic: str, received: int, dropped: int) -> Report:
        """The rate (ERROR when nothing came for a window, WARN before the first), then WARN when some inputs of
        the window were dropped and ERROR when all were; ``received``/``dropped``: the node's totals."""
        rate = self.rate.report(now_ns)
        values = {
            "topic": topic,
            **rate.values,
            f"{self.what} received": received,
            f"{self.what} dropped": dropped,
            "dropped in window": self.drops.count(now_ns),
            "dropped by kind": ", ".join(f"{k}: {n}" for k, n in sorted(self.kinds.items())) or None,
            "last drop": self.last_reason or None,
        }
        if rate.level != Level.OK:
            return Report(rate.level, f"{rate.message} on {topic}", values)
        recent, window = self.drops.count(now_ns), self.rate.count(now_ns)
        if recent and recent >= window:
            return Report.error(f"every one of the last {window} {self.what} dropped: {self.last_reason}", **values)
        if recent:
            return Report.warn(f"{recent} of the last {window} {self.what} dropped: {self.last_reason}", **values)
        return Report.ok(rate.message, **values)


def model_report(model: str, inference: str, driver: Any, threads: int) -> Report:
    """Which model runs where: OK, or WARN when the backend running is not ``inference`` (the one asked for)."""
    config, pre = driver.policy.config, driver.preprocess
    backend = driver.backend.name
    values = {
        "model": model or "shipped",
        "core": config.core,
        "features": config.features,
        "action": config.action.name,
        "input size": f"{pre.width}x{pre.height}",
        "inference backend": backend,
        "backend asked for": inference,
        "threads": threads,
    }
    text = f"{model or 'the shipped model'} ({config.core}, {config.action.name}) on {backend}"
    if backend != inference:
        return Report.warn(f"{text}, not {inference} as asked (see the start-up log)", **values)
    return Report.ok(text, **values)
