"""The one timing rule: how camera stamps become the recurrent cell's dt, and when its state starts afresh.

Used alike by the :class:`~lnn_control.driver.Driver` (the nodes, the offline replay, the simulator evaluation) one
frame at a time (:func:`frame_dt`) and by the training windows (:func:`frame_dts`, whole bags at once), with the same
arithmetic, so the dts a window feeds in training are the dts the Driver computes on the robot:

- the first frame, and the first after a reset, gets ``nominal_dt``;
- a gap longer than ``reset_gap``, or time not moving forward (a bag looping, a simulator reset, a repeated stamp),
  resets: the Driver forgets its state, the dataset starts a new segment that no window crosses;
- every other dt is the time since the previous frame, clamped to ``[min_dt, max_dt]``.

The :class:`TimingConfig` a model was trained with is stored in its checkpoint (``PolicyConfig.timing``); names are
the node parameters' own (``nominal_dt``, ``min_dt``, ``max_dt``, ``reset_gap``; seconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

NS_TO_S = 1e-9
"""Seconds per stamp unit; the scalar and the vectorised rule both multiply by it (bit-identical results)."""


@dataclass(frozen=True)
class TimingConfig:
    """How elapsed time between frames becomes the cell's dt, in seconds; the defaults are those of older models."""

    nominal_dt: float = 0.05
    """dt of the first frame, and of the first after a reset."""
    min_dt: float = 0.001
    """dt between stamps is clamped to at least this."""
    max_dt: float = 0.5
    """dt between stamps is clamped to at most this."""
    reset_gap: float = 1.0
    """A longer gap between stamps resets the state (the dataset: starts a segment)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"timing.{f.name} must be a number of seconds, got {value!r}")
            object.__setattr__(self, f.name, float(value))
        if not 0 < self.min_dt <= self.nominal_dt <= self.max_dt:
            raise ValueError(
                "timing needs 0 < min_dt <= nominal_dt <= max_dt, got "
                f"min_dt {self.min_dt:g}, nominal_dt {self.nominal_dt:g}, max_dt {self.max_dt:g}"
            )
        if not self.reset_gap > 0:
            raise ValueError(f"timing.reset_gap must be positive, got {self.reset_gap:g}")

    def to_dict(self) -> dict[str, float]:
        """Plain JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TimingConfig:
        """Build from a mapping (YAML section, checkpoint JSON); unknown keys are an error naming them."""
        if not isinstance(data, Mapping):
            raise ValueError(f"timing must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown timing field(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**dict(data))


def frame_dt(timing: TimingConfig, previous_ns: int | None, stamp_ns: int) -> tuple[float, str | None]:
    """The dt (s) of the frame stamped ``stamp_ns`` after one stamped ``previous_ns`` (None: none before it), and
    why the state resets before it (None: it continues)."""
    if previous_ns is None:
        return timing.nominal_dt, None
    gap_s = (stamp_ns - previous_ns) * NS_TO_S
    if gap_s <= 0:
        what = "stood still" if gap_s == 0 else f"went backwards by {-gap_s:.3f} s"
        return timing.nominal_dt, f"time {what}: state reset"
    if gap_s > timing.reset_gap:
        return timing.nominal_dt, f"gap of {gap_s:.3f} s > reset_gap {timing.reset_gap:g} s: state reset"
    return min(max(gap_s, timing.min_dt), timing.max_dt), None


def frame_dts(stamps_ns: np.ndarray, timing: TimingConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame dt (float32 seconds) of a run of stamps, and the indices where the state resets (segment starts).

    Element ``i`` equals ``frame_dt(timing, stamps[i - 1], stamps[i])`` (``nominal_dt`` at index 0 and at every
    reset); the starts are 0 and every index :func:`frame_dt` gives a reason for.
    """
    stamps = np.asarray(stamps_ns, dtype=np.int64)
    if len(stamps) == 0:
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
    gaps = np.diff(stamps) * NS_TO_S
    resets = np.flatnonzero((gaps <= 0) | (gaps > timing.reset_gap)) + 1
    dt = np.empty(len(stamps), dtype=np.float64)
    dt[0] = timing.nominal_dt
    dt[1:] = np.minimum(np.maximum(gaps, timing.min_dt), timing.max_dt)
    dt[resets] = timing.nominal_dt
    starts = np.concatenate([[0], resets]).astype(np.int64)
    return dt.astype(np.float32), starts


def segments(stamps_ns: np.ndarray, timing: TimingConfig) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """:func:`frame_dts`'s dts, and each segment (a run of frames without a reset) as (first frame, end)."""
    dt, starts = frame_dts(stamps_ns, timing)
    ends = np.append(starts[1:], len(dt))
    return dt, list(zip(starts.tolist(), ends.tolist(), strict=True))
