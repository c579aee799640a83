"""The command every controller produces (the policy, a demonstrator, a person) and the schema that declares it.

An :class:`ActionSchema` names the fields of a vehicle kind's command, with their units, default limits, rate
limits, hard bounds and the ``geometry_msgs/Twist`` field each travels in. The model declares its schema (it is
stored in the checkpoint); the Driver's limits, the ROS messages, the dataset's labels, the replay metrics, the
simulators and the reports read it, so a new vehicle kind is a new schema, not an edit of each of them.

- :data:`CAR`: ``steering`` normalised to [-1, 1], **positive turns left** (REP 103), in ``Twist.angular.z`` (a
  steering command, not a yaw rate: the vehicle adapter or the simulator maps +1 to full left lock);
  ``velocity``, the target forward speed in m/s, in ``Twist.linear.x``.
- :data:`DRONE`: ``vx`` forward, ``vy`` left, ``vz`` up (m/s, body FLU, REP 103) in ``Twist.linear``, and
  ``yaw_rate`` (rad/s, counter-clockwise) in ``Twist.angular.z``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

#: The Twist fields a command field may travel in.
TWIST_SLOTS = ("linear.x", "linear.y", "linear.z", "angular.x", "angular.y", "angular.z")


@dataclass(frozen=True)
class ActionField:
    """One field of a command: name, unit, default limits ``[low, high]``, rate limit, hard bounds, Twist slot."""

    name: str
    unit: str
    low: float
    high: float
    max_rate: float = 0.0
    """Largest change per second of camera time, in ``unit``/s; 0: none."""
    bounds: tuple[float, float] = (-math.inf, math.inf)
    """Hard range: a limit may be set anywhere inside it, a simulator clamps to it."""
    twist: str = "linear.x"
    doc: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "bounds", tuple(float(b) for b in self.bounds))
        if not self.name.isidentifier() or self.name.startswith("_"):
            raise ValueError(f"action field name {self.name!r} must be an identifier not starting with '_'")
        if self.twist not in TWIST_SLOTS:
            raise ValueError(f"action field {self.name}: twist must be one of {', '.join(TWIST_SLOTS)}")
        lo, hi = self.bounds
        if not (lo <= self.low <= self.high <= hi):
            raise ValueError(
                f"action field {self.name}: need bounds[0] <= low <= high <= bounds[1], got {lo:g} <= {self.low:g} "
                f"<= {self.high:g} <= {hi:g}"
            )
        if not self.max_rate >= 0:
            raise ValueError(f"action field {self.name}: max_rate must be >= 0, got {self.max_rate}")

    @property
    def neutral(self) -> float:
        """The stop value: 0 clamped into the bounds."""
        return min(self.bounds[1], max(self.bounds[0], 0.0))

    def label(self) -> str:
        """``name [unit]`` for tables and plot axes."""
        return f"{self.name} [{self.unit}]"


@dataclass(frozen=True)
class ActionSchema:
    """The fields of one vehicle kind's command, in the order the policy outputs them."""

    name: str
    fields: tuple[ActionField, ...]
    frame: str = "base_link"
    """The frame the command is expressed in (REP 105's body frame)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", tuple(self.fields))
        names = [f.name for f in self.fields]
        if not names:
            raise ValueError(f"action schema {self.name!r} has no fields")
        if len(set(names)) != len(names):
            raise ValueError(f"action schema {self.name!r} repeats a field name: {', '.join(names)}")
        reserved = {n for n in dir(Command) if not n.startswith("_")} | {"values", "stamp_ns", "schema"}
        taken = sorted(set(names) & reserved)
        if taken:
            raise ValueError(f"action schema {self.name!r}: field name(s) {', '.join(taken)} are a command's own")
        slots = [f.twist for f in self.fields]
        if len(set(slots)) != len(slots):
            raise ValueError(f"action schema {self.name!r}: two fields travel in the same Twist field")

    @property
    def names(self) -> tuple[str, ...]:
        """The field names, in order."""
        return tuple(f.name for f in self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def index(self, name: str) -> int:
        """Position of field ``name``; ``KeyError`` naming the fields otherwise."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"action {self.name!r} has no field {name!r} (fields: {', '.join(self.names)})") from None

    def field(self, name: str) -> ActionField:
        """The field called ``name``."""
        return self.fields[self.index(name)]

    def command(self, values: Iterable[float], stamp_ns: int = 0) -> Command:
        """A :class:`Command` of this schema from its values in field order."""
        return Command(tuple(float(v) for v in values), int(stamp_ns), self)

    def of(self, stamp_ns: int = 0, **values: float) -> Command:
        """A command from named values (``CAR.of(steering=0.1, velocity=2.0)``); missing fields are neutral."""
        unknown = sorted(set(values) - set(self.names))
        if unknown:
            raise KeyError(
                f"action {self.name!r} has no field(s) {', '.join(unknown)} (fields: {', '.join(self.names)})"
            )
        return self.command((values.get(f.name, f.neutral) for f in self.fields), stamp_ns)

    def from_twist(self, twist: Any, stamp_ns: int = 0) -> Command:
        """A command read from a ``geometry_msgs/Twist`` (rclpy's or rosbags'), each field from its Twist slot."""
        return self.command((_slot(twist, f.twist) for f in self.fields), stamp_ns)

    def twist_values(self, command: Command) -> dict[str, float]:
        """``{"linear.x": value, ...}``: where each value of ``command`` travels in a Twist."""
        return {f.twist: float(v) for f, v in zip(self.fields, command.values, strict=True)}

    def stop(self, stamp_ns: int = 0) -> Command:
        """The neutral command (every field at its stop value)."""
        return self.command((f.neutral for f in self.fields), stamp_ns)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in the checkpoint's config)."""
        return {
            "name": self.name,
            "frame": self.frame,
            "fields": [
                {f.name: (list(getattr(a, f.name)) if f.name == "bounds" else getattr(a, f.name)) for f in fields(a)}
                for a in self.fields
            ],
        }

    def reference(self) -> str | dict[str, Any]:
        """How a config names this schema: its name when it is a known one (:data:`SCHEMAS`), else the whole of it."""
        return self.name if SCHEMAS.get(self.name) == self else self.to_dict()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActionSchema:
        """Inverse of :meth:`to_dict`; ``ValueError`` naming what is wrong."""
        if not isinstance(data, Mapping) or not isinstance(data.get("fields"), Sequence):
            raise ValueError(f"an action schema needs 'name' and a list of 'fields', got {data!r}")
        known = {f.name for f in fields(ActionField)}
        parsed = []
        for item in data["fields"]:
            unknown = sorted(set(item) - known) if isinstance(item, Mapping) else ["(not a mapping)"]
            if unknown:
                raise ValueError(f"action field {item!r}: unknown key(s) {', '.join(unknown)}")
            try:
                parsed.append(ActionField(**item))
            except TypeError as exc:
                raise ValueError(f"action field {item!r}: {exc}") from exc
        extra = sorted(set(data) - {"name", "fields", "frame"})
        if extra:
            raise ValueError(f"action schema: unknown key(s) {', '.join(extra)}")
        return cls(str(data.get("name", "custom")), tuple(parsed), str(data.get("frame", "base_link")))


def _slot(twist: Any, slot: str) -> float:
    group, axis = slot.split(".")
    return float(getattr(getattr(twist, group), axis))


@dataclass(frozen=True)
class Command:
    """One command: values in the order of ``schema``'s fields, with the stamp (ns) of the frame it answers.

    Fields read by name as attributes (``command.steering``) or with :meth:`get`.
    """

    values: tuple[float, ...]
    stamp_ns: int = 0
    schema: ActionSchema = field(default=None, repr=False)  # type: ignore[assignment]  # CAR, set below

    def __post_init__(self) -> None:
        schema = self.schema if self.schema is not None else CAR
        object.__setattr__(self, "schema", schema)
        if not isinstance(self.values, tuple):
            raise TypeError(f"Command values must be a tuple (one per field of {schema.name!r}), got {self.values!r}")
        if len(self.values) != len(schema):
            raise ValueError(f"{schema.name} command needs {len(schema)} values ({', '.join(schema.names)}), "
                             f"got {len(self.values)}")

    def __getattr__(self, name: str) -> float:
        if name.startswith("_") or name in ("values", "schema", "stamp_ns"):
            raise AttributeError(name)
        schema = self.__dict__.get("schema") or CAR
        if name in schema.names:
            return self.values[schema.names.index(name)]
        raise AttributeError(f"{schema.name} command has no field {name!r} (fields: {', '.join(schema.names)})")

    def get(self, name: str) -> float:
        """The value of field ``name`` (``KeyError`` naming the fields when there is none)."""
        return self.values[self.schema.index(name)]

    def as_dict(self) -> dict[str, float]:
        """``{field: value}`` in field order."""
        return dict(zip(self.schema.names, self.values, strict=True))

    def restamped(self, stamp_ns: int) -> Command:
        """The same values with another stamp."""
        return Command(self.values, int(stamp_ns), self.schema)

    def replace(self, **values: float) -> Command:
        """The same command with the named fields changed."""
        merged = {**self.as_dict(), **values}
        return self.schema.of(self.stamp_ns, **merged)

    def is_finite(self) -> bool:
        """True if every value is a finite number."""
        return all(math.isfinite(v) for v in self.values)

    def describe(self) -> str:
        """``steering +0.120, velocity +2.000 m/s`` (units from the schema; "1" is unitless)."""
        pairs = zip(self.schema.fields, self.values, strict=True)
        return ", ".join(f"{f.name} {v:+.3f}" + ("" if f.unit == "1" else f" {f.unit}") for f, v in pairs)


CAR = ActionSchema(
    "car",
    (
        ActionField(
            "steering", "1", -1.0, 1.0, bounds=(-1.0, 1.0), twist="angular.z",
            doc="normalised steering, +1 full left (REP 103); a steering command, not a yaw rate",
        ),
        ActionField(
            "velocity", "m/s", 0.0, 2.0, bounds=(-100.0, 100.0), twist="linear.x",
            doc="target forward speed; negative reverses",
        ),
    ),
)

DRONE = ActionSchema(
    "drone",
    (
        ActionField("vx", "m/s", -1.0, 2.0, bounds=(-10.0, 10.0), twist="linear.x", doc="forward velocity, body FLU"),
        ActionField("vy", "m/s", -1.0, 1.0, bounds=(-10.0, 10.0), twist="linear.y", doc="left velocity, body FLU"),
        ActionField("vz", "m/s", -1.0, 1.0, bounds=(-5.0, 5.0), twist="linear.z", doc="up velocity, body FLU"),
        ActionField(
            "yaw_rate", "rad/s", -1.0, 1.0, bounds=(-math.pi, math.pi), twist="angular.z",
            doc="yaw rate, counter-clockwise positive",
        ),
    ),
)

#: The schemas known by name (a checkpoint may also carry a schema of its own, in full).
SCHEMAS: dict[str, ActionSchema] = {s.name: s for s in (CAR, DRONE)}


def schema_from(value: ActionSchema | str | Mapping[str, Any] | None) -> ActionSchema:
    """A schema from itself, a known name (``"car"``, ``"drone"``) or its :meth:`ActionSchema.to_dict` form."""
    if value is None:
        return CAR
    if isinstance(value, ActionSchema):
        return value
    if isinstance(value, str):
        if value not in SCHEMAS:
            raise ValueError(f"unknown action {value!r} (known: {', '.join(SCHEMAS)}; or give the schema in full)")
        return SCHEMAS[value]
    return ActionSchema.from_dict(value)


def car(steering: float, velocity: float, stamp_ns: int = 0) -> Command:
    """A car command: ``CAR.of(stamp_ns, steering=steering, velocity=velocity)``."""
    return CAR.command((steering, velocity), stamp_ns)


#: Kept for older imports: the car's stop command.
STOP = CAR.stop()
