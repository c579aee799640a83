"""Reading diagnostic_msgs/DiagnosticArray in tests: statuses by name, their values and levels, and a collector
predicate for "the array holds this status, in this state". Only tests use it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lnn_control.health import Level


def statuses(array: Any) -> dict[str, Any]:
    """Status name -> status of one array."""
    return {status.name: status for status in array.status}


def values(status: Any) -> dict[str, str]:
    """A status's key-values."""
    return {kv.key: kv.value for kv in status.values}


def level(status: Any) -> Level:
    """A status's level (rclpy gives the byte field as bytes)."""
    return Level(status.level[0] if isinstance(status.level, bytes) else status.level)


def has_status(name: str, predicate: Callable[[Any], bool] = lambda s: True) -> Callable[[Any], bool]:
    """A collector predicate: the array holds status ``name`` and ``predicate`` holds for it."""

    def check(array: Any) -> bool:
        status = statuses(array).get(name)
        return status is not None and predicate(status)

    return check
