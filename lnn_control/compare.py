"""The one comparison of two command streams: field by field, keyed by stamp, with a tolerance.

A stream maps a key (a camera stamp, or a frame's position where stamps may repeat) to the values of one record by
field name (the action's fields such as ``steering``, ``raw.steering``, ``dt``, ...). :func:`compare_streams`
pairs the records by key and reports, per field, the records compared, those that differ by more than the tolerance
(NaN on one side counts as differing), the first such key and the largest and mean absolute difference; and the
keys only one side has. ``replay-diff`` (two models on one bag), ``eval --live`` (a live drive node against the
offline replay) and the ``demo`` (the replay against the commands the simulator received) use it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from lnn_control.command import CAR, ActionSchema, Command

Stream = Mapping[int, Mapping[str, float]]


@dataclass(frozen=True)
class FieldDiff:
    """How one field differs over the keys both streams have."""

    field: str
    compared: int
    differing: int
    first_key: int | None
    """The first key (in key order) whose values differ beyond the tolerance."""
    max_abs: float
    mean_abs: float

    @property
    def same(self) -> int:
        """Keys within the tolerance."""
        return self.compared - self.differing


@dataclass(frozen=True)
class StreamDiff:
    """Two streams compared: per field (in order), and the keys missing on either side."""

    tol: float
    fields: dict[str, FieldDiff]
    compared: int
    only_a: list[int] = field(default_factory=list)
    """Keys ``a`` has and ``b`` lacks (in key order)."""
    only_b: list[int] = field(default_factory=list)

    @property
    def differ(self) -> bool:
        """Some field differs beyond the tolerance (keys missing on one side do not count here)."""
        return any(f.differing for f in self.fields.values())

    @property
    def first(self) -> tuple[int, str] | None:
        """The first disagreement: its key and the first field (in field order) that differs there."""
        found = [(f.first_key, i, f.field) for i, f in enumerate(self.fields.values()) if f.first_key is not None]
        if not found:
            return None
        key, _, name = min(found)
        return key, name


def compare_streams(a: Stream, b: Stream, *, tol: float = 0.0, fields: Sequence[str] | None = None) -> StreamDiff:
    """``a`` against ``b`` (see the module doc); ``fields`` defaults to those of ``a``'s first record."""
    common = sorted(set(a) & set(b))
    names = list(fields) if fields is not None else list(next(iter(a.values()), {}))
    out = {}
    for name in names:
        diff = np.array([abs(a[k].get(name, math.nan) - b[k].get(name, math.nan)) for k in common], np.float64)
        bad = ~(diff <= tol)
        finite = diff[np.isfinite(diff)]
        out[name] = FieldDiff(
            field=name,
            compared=len(common),
            differing=int(bad.sum()),
            first_key=int(common[int(np.argmax(bad))]) if bad.any() else None,
            max_abs=float(finite.max()) if finite.size else math.nan,
            mean_abs=float(finite.mean()) if finite.size else math.nan,
        )
    return StreamDiff(tol, out, len(common), sorted(set(a) - set(b)), sorted(set(b) - set(a)))


def command_stream(
    commands: Iterable[tuple[int, Command | Sequence[float]]], schema: ActionSchema = CAR
) -> dict[int, dict[str, float]]:
    """``(key, command)`` pairs (a Command, or its values in ``schema``'s field order) as a stream by field name."""
    out = {}
    for key, command in commands:
        named = command.as_dict() if isinstance(command, Command) else dict(zip(schema.names, command, strict=True))
        out[int(key)] = {name: float(value) for name, value in named.items()}
    return out
