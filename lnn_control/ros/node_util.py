"""What every lnn_control node does the same way: parameters from a config dataclass, throttled logs, ``main``.

A node's configuration is a dataclass whose fields are made with :func:`param` (default, description, range,
choices). :func:`declare_config` declares one ROS parameter per field, with a ``ParameterDescriptor`` carrying the
description and range, reads the values (parameter file, ``-p`` overrides) and returns the dataclass, after checking
ranges and choices itself (rclpy does not check ranges of dynamically typed values). The YAML files under
``config/`` use the same names, so launch files, ``lnn-control up`` and the node defaults cannot drift apart
silently: a test compares the YAML keys with the dataclass fields.

Float parameters accept integers (``rate: 20`` in YAML is 20.0). Parameters are read-only after start unless the
field says ``dynamic=True`` (the node then re-reads it when it needs it, e.g. the recorder's ``notes`` at each
episode start).
"""

from __future__ import annotations

import dataclasses
import time
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from lnn_control.ros.spin import run_node  # noqa: F401 - every node's main; kept here for its importers

T = TypeVar("T")

_META = "lnn_param"


def param(
    default: Any,
    description: str,
    *,
    min: float | None = None,  # noqa: A002 - reads well at the call site
    max: float | None = None,  # noqa: A002
    choices: Sequence[Any] | None = None,
    dynamic: bool = False,
) -> Any:
    """A dataclass field that :func:`declare_config` turns into a described ROS parameter.

    ``min``/``max`` bound numbers (and every element of a number list); ``choices`` lists the allowed values;
    ``dynamic`` leaves the parameter writable at run time.
    """
    meta = {
        _META: {"description": description, "min": min, "max": max, "choices": tuple(choices or ()), "dynamic": dynamic}
    }
    if isinstance(default, list | dict | set):
        value = list(default) if isinstance(default, list) else default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _kind(annotation: Any) -> str:
    """'bool', 'int', 'float', 'str' or 'list[<elem>]' for a field annotation."""
    origin = typing.get_origin(annotation)
    if origin in (list, Sequence, tuple):
        (elem,) = typing.get_args(annotation)[:1] or (str,)
        return f"list[{_kind(elem)}]"
    for kind in (bool, int, float, str):
        if annotation is kind:
            return kind.__name__
    raise TypeError(f"unsupported parameter type {annotation!r}")


def describe(cls: type) -> list[dict[str, Any]]:
    """One dict per parameter field of a config dataclass: name, kind, default, description, min, max, choices."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if _META not in f.metadata:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        out.append({"name": f.name, "kind": _kind(hints[f.name]), "default": default, **f.metadata[_META]})
    return out


def check_value(name: str, kind: str, value: Any, spec: dict[str, Any]) -> Any:
    """Coerce ``value`` to ``kind`` and check range and choices; ``ValueError`` naming the parameter otherwise."""

    def one(v: Any, k: str) -> Any:
        if k == "float":
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ValueError(f"parameter {name!r}: expected a number, got {v!r}")
            v = float(v)
        elif k == "int":
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"parameter {name!r}: expected an integer, got {v!r}")
        elif k == "bool":
            if not isinstance(v, bool):
                raise ValueError(f"parameter {name!r}: expected true or false, got {v!r}")
        elif k == "str" and not isinstance(v, str):
            raise ValueError(f"parameter {name!r}: expected a string, got {v!r}")
        if k in ("float", "int"):
            if spec.get("min") is not None and v < spec["min"]:
                raise ValueError(f"parameter {name!r} = {v} is below its minimum {spec['min']}")
            if spec.get("max") is not None and v > spec["max"]:
                raise ValueError(f"parameter {name!r} = {v} is above its maximum {spec['max']}")
        if spec.get("choices") and v not in spec["choices"]:
            raise ValueError(f"parameter {name!r} = {v!r} is not one of {', '.join(map(repr, spec['choices']))}")
        return v

    if kind.startswith("list["):
        elem = kind[5:-1]
        if not isinstance(value, list | tuple):
            raise ValueError(f"parameter {name!r}: expected a list, got {value!r}")
        return [one(v, elem) for v in value]
    return one(value, kind)


def declare_config(node: Any, cls: type[T], *, prefix: str = "") -> T:
    """Declare every :func:`param` field of ``cls`` on ``node`` (an rclpy Node) and return the filled dataclass.

    Raises ``ValueError`` naming the parameter when a value has the wrong type, is out of range or not a choice.
    """
    values = {spec["name"]: declare_spec(node, prefix + spec["name"], spec) for spec in describe(cls)}
    return cls(**values)


def declare_spec(node: Any, name: str, spec: dict[str, Any]) -> Any:
    """Declare one parameter from a spec (as :func:`describe` makes them: kind, default, description, min, max,
    choices, dynamic) and return its checked value; ``ValueError`` naming it when the value does not fit."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    from rclpy.exceptions import ParameterException
    from rclpy.parameter import Parameter

    array_types = {
        "list[str]": Parameter.Type.STRING_ARRAY,
        "list[float]": Parameter.Type.DOUBLE_ARRAY,
        "list[int]": Parameter.Type.INTEGER_ARRAY,
        "list[bool]": Parameter.Type.BOOL_ARRAY,
    }
    kind, default = spec["kind"], spec["default"]
    text = spec["description"]
    if spec.get("choices"):
        text += f" One of: {', '.join(map(str, spec['choices']))}."
    descriptor = ParameterDescriptor(name=name, description=text, read_only=not spec.get("dynamic"))
    if kind in ("float", "list[float]"):
        descriptor.dynamic_typing = True  # accept 20 for 20.0; checked below
    if kind == "float" and spec.get("min") is not None and spec.get("max") is not None:
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=float(spec["min"]), to_value=float(spec["max"]), step=0.0)
        ]
    if kind == "int" and spec.get("min") is not None and spec.get("max") is not None:
        descriptor.integer_range = [IntegerRange(from_value=int(spec["min"]), to_value=int(spec["max"]), step=0)]
    if spec.get("choices"):
        descriptor.additional_constraints = "one of: " + ", ".join(map(str, spec["choices"]))
    try:
        if kind.startswith("list[") and not default:
            # An empty list has no ROS type: declare the type, fall back to the default when nothing was given.
            if kind == "list[float]":  # dynamically typed (ints allowed): declared without a value
                declared = node.declare_parameter(name, None, descriptor)
            else:
                descriptor.type = array_types[kind].value
                declared = node.declare_parameter(name, array_types[kind], descriptor)
        else:
            declared = node.declare_parameter(name, default, descriptor)
    except ParameterException as exc:  # rclpy's own range or type check on an override
        raise ValueError(f"parameter {name!r}: {exc}") from exc
    value = declared.value
    if value is None:
        value = default
    return check_value(name, kind, list(value) if kind.startswith("list[") else value, spec)


def read_param(node: Any, cls: type, name: str, *, prefix: str = "") -> Any:
    """The current value of a (dynamic) parameter declared by :func:`declare_config`, checked like at start."""
    spec = next(s for s in describe(cls) if s["name"] == name)
    value = node.get_parameter(prefix + name).value
    if value is None:
        value = spec["default"]
    return check_value(prefix + name, spec["kind"], list(value) if spec["kind"].startswith("list[") else value, spec)


class Throttle:
    """Rate limiter for log lines keyed by anything hashable (a topic, a problem): ``if throttle(key): log(...)``.

    rclpy's ``throttle_duration_sec`` throttles per call site; this throttles per key, so one noisy topic cannot
    hide another. Counts what it suppressed so the next line can say so.
    """

    def __init__(self, period_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = float(period_s)
        self._clock = clock
        self._last: dict[Any, float] = {}
        self.suppressed: dict[Any, int] = {}

    def __call__(self, key: Any) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period_s:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        return True

    def take_suppressed(self, key: Any) -> int:
        """How many calls for ``key`` were suppressed since the last allowed one (and reset the count)."""
        return self.suppressed.pop(key, 0)
