"""Health checks as plain values, free of ROS: what :mod:`lnn_control.ros.diagnostics` publishes on
``/diagnostics``.

A check is any function returning a :class:`Report`: a :class:`Level` (OK, WARN, ERROR, STALE, the four levels of
``diagnostic_msgs/DiagnosticStatus``), a one-line message and ordered key-values. The rules that decide a level
live here, on integer nanoseconds of whatever clock the caller feeds (a node's clock, the steady clock), so tests
run them in simulated time:

- :class:`RateMeter`: events per second over a sliding window (frames, commands, odometry), with optional bounds;
- :func:`age_report`: how old the latest of something is (a command, odometry), against a warn and an error age;
- :func:`disk_report`: free space on the file system holding a path (the recorder's output folder);
- :func:`merge`: one report of several (the worst level wins, the messages of the worst are kept).
"""

from __future__ import annotations

import enum
import math
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NS_PER_S = 1_000_000_000


class Level(enum.IntEnum):
    """The levels of ``diagnostic_msgs/DiagnosticStatus`` (same numbers), worst last but STALE."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3


@dataclass(frozen=True)
class Report:
    """What one check says: a level, a one-line message and ordered key-values (shown as text)."""

    level: Level
    message: str
    values: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def ok(cls, message: str, **values: Any) -> Report:
        return cls(Level.OK, message, values)

    @classmethod
    def warn(cls, message: str, **values: Any) -> Report:
        return cls(Level.WARN, message, values)

    @classmethod
    def error(cls, message: str, **values: Any) -> Report:
        return cls(Level.ERROR, message, values)

    @classmethod
    def stale(cls, message: str, **values: Any) -> Report:
        return cls(Level.STALE, message, values)

    def with_values(self, **values: Any) -> Report:
        """The same report with more key-values (later keys win)."""
        return Report(self.level, self.message, {**self.values, **values})

    def text_values(self) -> list[tuple[str, str]]:
        """The key-values as text, in order (:func:`format_value`)."""
        return [(str(key), format_value(value)) for key, value in self.values.items()]


def format_value(value: Any) -> str:
    """A value as diagnostics show it: ``true``/``false``, floats with 6 significant digits, ``-`` for None, a list
    or tuple comma-separated."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def severity(level: Level) -> int:
    """Order for merging: OK < WARN < STALE < ERROR (a stale input is worse than a warning, not than an error)."""
    return {Level.OK: 0, Level.WARN: 1, Level.STALE: 2, Level.ERROR: 3}[level]


def merge(reports: Iterable[Report]) -> Report:
    """One report of several: the worst level; the messages at that level joined with ``; ``; all key-values."""
    reports = list(reports)
    if not reports:
        return Report.ok("")
    worst = max(reports, key=lambda r: severity(r.level)).level
    message = "; ".join(r.message for r in reports if r.level == worst and r.message)
    values: dict[str, Any] = {}
    for report in reports:
        values.update(report.values)
    return Report(worst, message, values)


class RateMeter:
    """Events per second over the last ``window_s`` seconds of the caller's clock (integer ns).

    ``tick(now_ns)`` counts an event; ``rate(now_ns)`` is the events in ``(now - window, now]`` divided by the
    window, or by the time since the meter started when that is shorter (so a fresh meter is not read low). Time
    going backwards (a simulator or a bag starting over) forgets the window. :meth:`report` judges the rate against
    ``min_hz`` and ``max_hz`` (None: no bound): no event in the window is ERROR once the meter has run a window,
    a rate outside the bounds is WARN.
    """

    def __init__(
        self,
        window_s: float = 5.0,
        *,
        min_hz: float | None = None,
        max_hz: float | None = None,
        what: str = "events",
        start_ns: int | None = None,
    ) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.window_ns = int(round(window_s * NS_PER_S))
        self.min_hz, self.max_hz, self.what = min_hz, max_hz, what
        self.start_ns = start_ns
        self.total = 0
        self.last_ns: int | None = None
        self._events: deque[int] = deque()

    def _restart_if_backwards(self, now_ns: int) -> None:
        if (self.last_ns is not None and now_ns < self.last_ns) or (
            self.start_ns is not None and now_ns < self.start_ns
        ):
            self._events.clear()
            self.last_ns = None
            self.start_ns = now_ns

    def tick(self, now_ns: int) -> None:
        """One event at ``now_ns``."""
        now_ns = int(now_ns)
        self._restart_if_backwards(now_ns)
        if self.start_ns is None:
            self.start_ns = now_ns
        self._events.append(now_ns)
        self.total += 1
        self.last_ns = now_ns
        self._trim(now_ns)

    def _trim(self, now_ns: int) -> None:
        while self._events and self._events[0] <= now_ns - self.window_ns:
            self._events.popleft()

    def count(self, now_ns: int) -> int:
        """Events in the window ending at ``now_ns``."""
        now_ns = int(now_ns)
        self._restart_if_backwards(now_ns)
        self._trim(now_ns)
        return len(self._events)

    def elapsed_ns(self, now_ns: int) -> int:
        """How much of the window the meter has seen: ``min(window, now - start)``."""
        if self.start_ns is None:
            self.start_ns = int(now_ns)
        return max(0, min(self.window_ns, int(now_ns) - self.start_ns))

    def rate(self, now_ns: int) -> float | None:
        """Events per second at ``now_ns``; None before any time has passed."""
        count = self.count(now_ns)
        elapsed = self.elapsed_ns(now_ns)
        return None if elapsed <= 0 else count * NS_PER_S / elapsed

    def report(self, now_ns: int) -> Report:
        """OK, WARN (outside ``min_hz``/``max_hz``) or ERROR (nothing for a whole window), with the rate's figures."""
        rate = self.rate(now_ns)
        values = {
            "rate (Hz)": rate,
            "events in window": self.count(now_ns),
            "window (s)": self.window_ns / NS_PER_S,
            "events since start": self.total,
            "min rate (Hz)": self.min_hz,
            "max rate (Hz)": self.max_hz,
        }
        seen_window = self.elapsed_ns(now_ns) >= self.window_ns
        if self.count(now_ns) == 0:
            if seen_window:
                return Report.error(f"no {self.what} for {self.window_ns / NS_PER_S:g} s", **values)
            return Report.warn(f"no {self.what} yet", **values)
        if rate is None:  # events, but the clock has not moved since the meter started (a sim holding its frame)
            return Report.ok(f"{self.total} {self.what}, no time passed yet", **values)
        if self.min_hz is not None and rate < self.min_hz and seen_window:
            return Report.warn(f"{self.what} at {rate:.3g} Hz, below {self.min_hz:g} Hz", **values)
        if self.max_hz is not None and rate > self.max_hz:
            return Report.warn(f"{self.what} at {rate:.3g} Hz, above {self.max_hz:g} Hz", **values)
        return Report.ok(f"{self.what} at {rate:.3g} Hz", **values)


def age_report(
    what: str,
    last_ns: int | None,
    now_ns: int,
    *,
    warn_s: float | None = None,
    error_s: float | None = None,
    missing: Level = Level.WARN,
) -> Report:
    """How old the latest ``what`` is (``last_ns`` on the same clock as ``now_ns``; None: none yet, at level
    ``missing``): WARN beyond ``warn_s``, ERROR beyond ``error_s`` (None: no such bound). A stamp in the future
    (the clock went back) counts as age 0."""
    if last_ns is None:
        return Report(missing, f"no {what} yet", {f"{what} age (s)": None})
    age_s = max(0, int(now_ns) - int(last_ns)) / NS_PER_S
    values = {f"{what} age (s)": age_s}
    if error_s is not None and age_s > error_s:
        return Report.error(f"{what} {age_s:.3g} s old (more than {error_s:g} s)", **values)
    if warn_s is not None and age_s > warn_s:
        return Report.warn(f"{what} {age_s:.3g} s old (more than {warn_s:g} s)", **values)
    return Report.ok(f"{what} {age_s:.3g} s old", **values)


#: ``shutil.disk_usage``'s shape: (total, used, free) bytes of the file system holding a path.
DiskUsage = Callable[[str], Any]


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (a recorder's output folder may not exist yet)."""
    path = path.expanduser()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def disk_report(
    path: str | os.PathLike[str],
    *,
    warn_free_bytes: int = 2 * 1024**3,
    error_free_bytes: int = 256 * 1024**2,
    usage: DiskUsage = shutil.disk_usage,
) -> Report:
    """Free space on the file system of ``path`` (or its nearest existing parent): WARN below ``warn_free_bytes``,
    ERROR below ``error_free_bytes``, ERROR when it cannot be read."""
    where = _existing(Path(path))
    try:
        total, _used, free = usage(str(where))[:3]
    except OSError as exc:
        return Report.error(f"cannot read the free space of {where}: {exc.strerror or exc}", path=str(path))
    gib = 1024**3
    values = {
        "path": str(path),
        "free (GiB)": free / gib,
        "total (GiB)": total / gib,
        "free (%)": 100.0 * free / total if total else math.nan,
    }
    if free < error_free_bytes:
        return Report.error(f"{free / gib:.2f} GiB free on {where} (less than {error_free_bytes / gib:.2g} GiB)",
                            **values)
    if free < warn_free_bytes:
        return Report.warn(f"{free / gib:.2f} GiB free on {where} (less than {warn_free_bytes / gib:.2g} GiB)",
                           **values)
    return Report.ok(f"{free / gib:.1f} GiB free", **values)
