"""builtin_interfaces/Time <-> integer nanoseconds (the core's only time type)."""

from __future__ import annotations

from builtin_interfaces.msg import Time


def stamp_to_ns(stamp: Time) -> int:
    """Nanoseconds since the epoch of a header stamp."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    """A header stamp from nanoseconds."""
    sec, nanosec = divmod(int(ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)
