"""The one path from a decoded camera frame to a command, shared by the nodes, the replay and the simulator.

``Driver.observe(rgb, stamp_ns) -> Command`` preprocesses (crop, resize), encodes, steps the recurrent core with
the real time since the previous frame and applies the limits of each field of the model's action schema. The
offline replay and the simulator evaluation call :meth:`Driver.observe`; the nodes split it at the features
(:meth:`Driver.features_from_msg`, the same bytes as :meth:`Driver.features` of the decoded frame through
preallocated buffers, and :meth:`Driver.command_from_features`). If replay and robot ever disagree, the bug is in
decoding or timing, never in a second copy of the model code.

Timing follows :mod:`lnn_control.timing`, with the :class:`~lnn_control.timing.TimingConfig` the model was trained
with (``PolicyConfig.timing``), so the Driver runs what training assumed. A non-finite output resets the state and
yields a stop command.

:class:`DriverConfig` is what a node sets on its Driver, field for field the node parameters (``nominal_dt``,
``crop_top``, ..., and ``limits.<field>.min|max|max_rate`` for each field of the action, such as
``limits.velocity.max``; :mod:`lnn_control.nodes.driver_params` declares them).
The timing and crop fields default to "the model's own" (0 and -1); a value that differs from the model's is
used, and the Driver warns naming each such value. :func:`load_driver_config` reads the nodes' parameter files
(``config/drive.yaml``), so the replay and the simulator evaluation run with a robot's settings.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from lnn_control.command import SCHEMAS, ActionSchema, Command
from lnn_control.nn.policy import Policy, PolicyConfig
from lnn_control.renamed_params import RENAMED_LIMITS
from lnn_control.ros.node_util import check_value, describe, param
from lnn_control.timing import TimingConfig, frame_dt
from lnn_control.vision import DEFAULT_MAX_PIXELS, PreprocessConfig, Preprocessor

log = logging.getLogger(__name__)

#: The node whose parameters :func:`load_driver_config` reads, and the split pair it falls back to.
DRIVE_NODE = "drive_node"
SPLIT_NODES = ("perception_node", "policy_node")
TIMING_FIELDS = tuple(f.name for f in fields(TimingConfig))
CROP_FIELDS = ("crop_top", "crop_bottom", "crop_left", "crop_right")


#: The limits each action field takes; node parameter ``limits.<field>.<kind>`` (``limits.velocity.max``).
LIMIT_KINDS = ("min", "max", "max_rate")
LIMITS_PREFIX = "limits."


@dataclass(frozen=True)
class FieldLimits:
    """What the Driver holds one action field to: ``[min, max]`` and a rate limit (units/s; 0: none)."""

    min: float
    max: float
    max_rate: float = 0.0


def limit_param(field_name: str, kind: str) -> str:
    """The node parameter of one limit: ``limits.<field>.<kind>``."""
    return f"{LIMITS_PREFIX}{field_name}.{kind}"


def limit_specs(schema: ActionSchema) -> list[dict[str, Any]]:
    """A parameter spec (as :func:`~lnn_control.ros.node_util.describe` makes them) per limit of each field of
    ``schema``: ``limits.<field>.min|max|max_rate``, defaults the schema's own, ranges its bounds."""
    specs = []
    for spec in schema.fields:
        lo, hi = max(spec.bounds[0], -1e9), min(spec.bounds[1], 1e9)  # a parameter range is finite
        what = f"{spec.name} ({spec.doc})" if spec.doc else spec.name
        unit = "normalised" if spec.unit == "1" else spec.unit
        for kind, default, low, high, text in (
            ("min", spec.low, lo, hi, f"smallest {what}, {unit}"),
            ("max", spec.high, lo, hi, f"largest {what}, {unit}"),
            ("max_rate", spec.max_rate, 0.0, 1e6, f"largest change of {spec.name} per second of camera time, "
                                                  f"{unit}/s; 0 disables"),
        ):
            specs.append({"name": limit_param(spec.name, kind), "kind": "float", "default": float(default),
                          "description": text, "min": low, "max": high, "choices": (), "dynamic": True})
    return specs


def check_limit_overrides(limits: Mapping[str, float]) -> dict[str, float]:
    """``{"<field>.<kind>": value}`` checked for form (kind one of LIMIT_KINDS, finite numbers, rates >= 0)."""
    out: dict[str, float] = {}
    for key, value in limits.items():
        name, _, kind = key.rpartition(".")
        if not name or kind not in LIMIT_KINDS:
            raise ValueError(f"limit {key!r}: expected '<field>.<kind>' with kind one of {', '.join(LIMIT_KINDS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"limit {LIMITS_PREFIX}{key} must be a finite number, got {value!r}")
        if kind == "max_rate" and value < 0:
            raise ValueError(f"limit {LIMITS_PREFIX}{key} must be >= 0, got {value:g}")
        out[key] = float(value)
    return out


def resolve_limits(schema: ActionSchema, limits: Mapping[str, float]) -> tuple[tuple[FieldLimits, ...], list[str]]:
    """The schema's own limits with ``limits`` in their place, and the keys that name no field of ``schema``.

    ``ValueError`` when a value lies outside its field's bounds or a field's min exceeds its max.
    """
    resolved = []
    for spec in schema.fields:
        own = {"min": spec.low, "max": spec.high, "max_rate": spec.max_rate}
        values = {kind: limits.get(f"{spec.name}.{kind}", own[kind]) for kind in LIMIT_KINDS}
        lo, hi = spec.bounds
        for kind in ("min", "max"):
            if not lo <= values[kind] <= hi:
                raise ValueError(
                    f"{limit_param(spec.name, kind)} {values[kind]:g} is outside the {schema.name}'s bounds of "
                    f"{spec.name}, [{lo:g}, {hi:g}] {spec.unit}"
                )
        if values["min"] > values["max"]:
            raise ValueError(
                f"{limit_param(spec.name, 'min')} {values['min']:g} must not exceed "
                f"{limit_param(spec.name, 'max')} {values['max']:g}"
            )
        resolved.append(FieldLimits(**values))
    unknown = sorted({key.rpartition(".")[0] for key in limits} - set(schema.names))
    return tuple(resolved), unknown


_MODEL_TIMING = " (s); 0: the model's own (the timing it was trained with)"


@dataclass(frozen=True)
class TimingOverrides:
    """The :class:`~lnn_control.timing.TimingConfig` fields, each 0 for the model's own value."""

    nominal_dt: float = param(
        0.0, "dt of the first frame and the first after a reset" + _MODEL_TIMING, min=0.0, max=10.0, dynamic=True
    )
    min_dt: float = param(
        0.0, "dt between camera stamps is clamped to at least this" + _MODEL_TIMING, min=0.0, max=10.0, dynamic=True
    )
    max_dt: float = param(
        0.0, "dt between camera stamps is clamped to at most this" + _MODEL_TIMING, min=0.0, max=10.0, dynamic=True
    )
    reset_gap: float = param(
        0.0,
        "a gap between camera stamps longer than this resets the state (so does time not moving forward)"
        + _MODEL_TIMING,
        min=0.0,
        max=3600.0,
        dynamic=True,
    )

    def timing(self, model: TimingConfig) -> TimingConfig:
        """The model's timing with the fields set here (not 0) put in its place; ``ValueError`` when invalid."""
        return dataclasses.replace(model, **{n: v for n in TIMING_FIELDS if (v := getattr(self, n)) > 0})


@dataclass(frozen=True)
class CropOverrides:
    """Crops (pixels cut from each edge before resizing), each -1 for the model's own."""

    crop_top: int = param(-1, "pixels cropped from the top before resizing; -1: the model's own", min=-1, max=100_000)
    crop_bottom: int = param(-1, "pixels cropped from the bottom; -1: the model's own", min=-1, max=100_000)
    crop_left: int = param(-1, "pixels cropped from the left; -1: the model's own", min=-1, max=100_000)
    crop_right: int = param(-1, "pixels cropped from the right; -1: the model's own", min=-1, max=100_000)

    def preprocess(self, base: PreprocessConfig) -> PreprocessConfig:
        """The model's preprocessing, with the crops set here (not -1) put in its place."""
        return dataclasses.replace(base, **{n: v for n in CROP_FIELDS if (v := getattr(self, n)) >= 0})


@dataclass(frozen=True)
class DriverConfig(CropOverrides, TimingOverrides):
    """Everything a node sets on its :class:`Driver`, named as the node parameters: timing, crops and the limits of
    the model's action fields (``limits`` maps ``"<field>.<kind>"``, parameter ``limits.<field>.<kind>``, to a
    value; a field not named keeps the limits its schema declares)."""

    limits: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for spec in describe(DriverConfig):
            value = check_value(spec["name"], spec["kind"], getattr(self, spec["name"]), spec)
            object.__setattr__(self, spec["name"], value)
        object.__setattr__(self, "limits", check_limit_overrides(self.limits))

    def with_params(self, *groups: Any) -> DriverConfig:
        """This config with the fields each of ``groups`` has (a node's parameter dataclasses) put in their place."""
        names = {f.name for f in fields(DriverConfig)}
        values: dict[str, Any] = {}
        for group in groups:
            values.update({f.name: getattr(group, f.name) for f in fields(group) if f.name in names})
        return dataclasses.replace(self, **values)

    def with_limits(self, limits: Mapping[str, float]) -> DriverConfig:
        """This config with ``limits`` (``{"velocity.max": 100.0}``) over its own."""
        return dataclasses.replace(self, limits={**self.limits, **limits})

    def differences(self, model: PolicyConfig) -> dict[str, tuple[Any, Any]]:
        """Each timing and crop value set here that differs from the model's: name -> (the model's, this one)."""
        timing, pre = self.timing(model.timing), self.preprocess(model.preprocess)
        out: dict[str, tuple[Any, Any]] = {}
        for name in TIMING_FIELDS:
            if getattr(timing, name) != getattr(model.timing, name):
                out[name] = (getattr(model.timing, name), getattr(timing, name))
        for name in CROP_FIELDS:
            if getattr(pre, name) != getattr(model.preprocess, name):
                out[name] = (getattr(model.preprocess, name), getattr(pre, name))
        return out


def override_warning(config: DriverConfig, model: PolicyConfig) -> str | None:
    """The warning for the values of ``config`` that differ from the model's, None when there is none."""
    differences = config.differences(model)
    if not differences:
        return None
    items = ", ".join(f"{name} {used:g} (the model's {own:g})" for name, (own, used) in differences.items())
    return f"driver settings differ from what the model was trained with: {items}"


def warn_once(sink: Callable[[str], None] | None = None) -> Callable[[str], None]:
    """A warning sink that passes each distinct message on once (to ``sink``, default this module's logger)."""
    seen: set[str] = set()
    target = sink or log.warning

    def warn(message: str) -> None:
        if message not in seen:
            seen.add(message)
            target(message)

    return warn


#: The DriverConfig fields the command nodes declare as such (the limits are declared per field of the action).
NODE_PARAMS: tuple[str, ...] = TIMING_FIELDS


def load_driver_config(*paths: str | Path | None, node: str = DRIVE_NODE) -> DriverConfig:
    """The :class:`DriverConfig` the nodes' parameter files give ``node``; the defaults without a file.

    The files are read as ``lnn-control up`` reads them, later ones over earlier ones (``drive_node:``,
    ``/drive_node:``, ``/**/drive_node:`` and ``/**:`` sections with ``ros__parameters:``); without a section for
    ``node``, the split pair's (``perception_node``, then ``policy_node``). Parameters that are not DriverConfig
    fields (``model``, ``stamped``, ...) are left to the nodes. ``ValueError`` names the file and the problem.
    """
    from lnn_control.bringup import WILDCARD, BringupError, merge, read_params

    params: dict[str, dict[str, Any]] = {}
    for path in (Path(p) for p in paths if p is not None):
        try:
            document = read_params(path)
        except BringupError as exc:
            raise ValueError(f"{exc} (a driver config is the nodes' parameter file, e.g. config/drive.yaml)") from exc
        params = merge(params, document)
    sections = [node] if node in params else [n for n in SPLIT_NODES if n in params]
    values: dict[str, Any] = {}
    for section in [WILDCARD, *sections]:
        values.update(params.get(section, {}))
    names = {f.name for f in fields(DriverConfig)} - {"limits"}
    where = ", ".join(str(p) for p in paths if p is not None) or "defaults"
    renamed = sorted(set(values) & set(RENAMED_LIMITS))
    if renamed:
        raise ValueError(f"{where}: {', '.join(f'{k} is now {RENAMED_LIMITS[k]}' for k in renamed)} (the limits "
                         "belong to the fields of the model's action)")
    limits = {k[len(LIMITS_PREFIX):]: v for k, v in values.items() if k.startswith(LIMITS_PREFIX)}
    try:
        return DriverConfig(**{k: v for k, v in values.items() if k in names}, limits=limits)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc


def driver_params(config: DriverConfig) -> dict[str, Any]:
    """``config`` as node parameters (``name: value``, ``limits.<field>.<kind>: value``), e.g. for the
    ``drive_node`` of ``eval --live``."""
    params = {f.name: getattr(config, f.name) for f in fields(config) if f.name != "limits"}
    params.update({LIMITS_PREFIX + key: value for key, value in config.limits.items()})
    return params


class StageClock:
    """How long each stage of each frame took, for benchmarks: :meth:`start` when a frame arrives, ``mark(stage)``
    after each stage; :attr:`frames` holds a ``{stage: nanoseconds}`` row per frame (a frame dropped on the way has
    the stages it finished). :data:`NO_CLOCK`, the default everywhere, does nothing."""

    def __init__(self) -> None:
        self.frames: list[dict[str, int]] = []
        self._row: dict[str, int] = {}
        self._last = 0

    def start(self) -> None:
        """A frame begins now."""
        self._row = {}
        self.frames.append(self._row)
        self._last = time.perf_counter_ns()

    def mark(self, stage: str) -> None:
        """``stage`` ended now (it began at the previous mark, or at :meth:`start`)."""
        now = time.perf_counter_ns()
        self._row[stage] = now - self._last
        self._last = now


class _NoClock(StageClock):
    def start(self) -> None:  # noqa: D102
        pass

    def mark(self, stage: str) -> None:  # noqa: D102
        pass


NO_CLOCK: StageClock = _NoClock()


@dataclass
class StepInfo:
    """What happened on the last step: raw outputs, the dt used, and an event worth logging (or None)."""

    raw: tuple[float, ...] = ()
    dt_s: float = 0.0
    event: str | None = None
    fault: bool = False


class Driver:
    """Stateful single-frame driver around a :class:`Policy`.

    ``warn`` gets the warning about settings that differ from the model's (default: this module's logger).
    ``backend`` runs the network (:mod:`lnn_control.inference`: ``torch``, or ``onnxruntime`` with ``threads``
    intra-op threads, checked against torch and falling back to it with a warning); the state, dt and limits stay
    here either way.
    """

    def __init__(
        self, policy: Policy, config: DriverConfig | None = None, *, warn: Callable[[str], None] | None = None,
        backend: str = "torch", threads: int = 1,
    ) -> None:
        from lnn_control.inference import make_backend

        self.policy = policy.eval()
        self.warn = warn or log.warning
        self.backend = make_backend(self.policy, backend, threads=threads, warn=self.warn)
        self._warned: str | None = None
        self.config = config or DriverConfig()
        self.state = policy.initial_state(1)
        self.last_stamp_ns: int | None = None
        self.last_command: Command | None = None
        self.last = StepInfo()

    @property
    def config(self) -> DriverConfig:
        """The node's settings; setting them resolves :attr:`timing` and :attr:`preprocess` against the model's
        (``ValueError``, nothing changed, when they do not fit together) and warns about values that differ."""
        return self._config

    @config.setter
    def config(self, config: DriverConfig) -> None:
        model = self.policy.config
        timing, pre = config.timing(model.timing), config.preprocess(model.preprocess)
        limits, unknown = resolve_limits(model.action, config.limits)
        self._config, self.timing, self.preprocess, self.limits = config, timing, pre, limits
        if getattr(self, "preprocessor", None) is None or self.preprocessor.config != pre:
            self.preprocessor = Preprocessor(pre)
        message = override_warning(config, model)
        # another vehicle kind's fields (a file shared by a car and a drone) are ignored quietly; other names warn
        unknown = [name for name in unknown if not any(name in schema.names for schema in SCHEMAS.values())]
        if unknown:
            ignored = (f"limits for {', '.join(unknown)} ignored: the model's action ({model.action.name}) has "
                       f"{', '.join(model.action.names)}")
            message = ignored if message is None else f"{message}; {ignored}"
        if message is not None and message != self._warned:
            self.warn(message)
        self._warned = message

    @property
    def schema(self) -> ActionSchema:
        """The model's action schema: the fields of every command this Driver returns."""
        return self.policy.config.action

    def reset(self) -> None:
        """Forget the recurrent state and the last stamp (the next frame starts afresh)."""
        self.state = self.policy.initial_state(1)
        self.last_stamp_ns = None
        self.last_command = None

    # -- the two halves ---------------------------------------------------------------------------------------

    def features(self, rgb: np.ndarray) -> np.ndarray:
        """Decoded HxWx3 uint8 RGB frame -> float32 features (F,) (the perception half)."""
        return self.backend.encode(self.preprocessor(rgb))

    def features_from_msg(
        self, msg: object, *, max_pixels: int = DEFAULT_MAX_PIXELS, clock: StageClock = NO_CLOCK
    ) -> np.ndarray:
        """An image message (Image or CompressedImage) -> features (F,): :meth:`features` of the decoded frame, bit
        for bit, without its full-size copies (:class:`~lnn_control.vision.Preprocessor`). ``clock`` gets the stages
        ``decode``, ``crop+resize``, ``tensor`` and ``encoder``. ``ValueError`` (an
        :class:`~lnn_control.vision.ImageDecodeError`, or a crop that leaves nothing) for a frame it cannot use."""
        native = self.preprocessor.decode(msg, max_pixels=max_pixels)
        clock.mark("decode")
        frame = self.preprocessor.prepare(native)
        clock.mark("crop+resize")
        x = self.backend.frame_input(frame)
        clock.mark("tensor")
        features = self.backend.encode_input(x)
        clock.mark("encoder")
        return features

    def command_from_features(self, features: np.ndarray, stamp_ns: int) -> Command:
        """Features (F,) of the frame stamped ``stamp_ns`` -> limited command (the policy half)."""
        dt_s, event = self._dt(stamp_ns)
        x = np.ascontiguousarray(features, dtype=np.float32).reshape(1, -1)
        if x.shape[1] != self.policy.config.features:
            raise ValueError(f"features have {x.shape[1]} values, the policy expects {self.policy.config.features}")
        y, state = self.backend.step(x, self.state, np.array([[dt_s]], dtype=np.float32))
        raw = tuple(y.reshape(-1).tolist())
        if not all(math.isfinite(v) for v in raw):
            self.reset()
            self.last = StepInfo(raw, dt_s, "non-finite policy output: state reset, stopping", fault=True)
            return self.schema.stop(stamp_ns)
        self.state = state
        self.last_stamp_ns = stamp_ns
        command = self._limit(raw, dt_s, stamp_ns)
        self.last_command = command
        self.last = StepInfo(raw, dt_s, event)
        return command

    def observe(self, rgb: np.ndarray, stamp_ns: int) -> Command:
        """Both halves: decoded frame and its stamp -> command."""
        return self.command_from_features(self.features(rgb), stamp_ns)

    # -- rules ---------------------------------------------------------------------------------------------------

    @property
    def activity(self) -> np.ndarray:
        """The recurrent state (neuron activity) as a float32 vector."""
        return self.state[0].numpy()

    def _dt(self, stamp_ns: int) -> tuple[float, str | None]:
        dt_s, event = frame_dt(self.timing, self.last_stamp_ns, stamp_ns)
        if event is not None:
            self.reset()
        return dt_s, event

    def _limit(self, raw: tuple[float, ...], dt_s: float, stamp_ns: int) -> Command:
        previous = self.last_command.values if self.last_command is not None else None
        values = []
        for i, (limits, value) in enumerate(zip(self.limits, raw, strict=True)):
            value = max(limits.min, min(limits.max, value))
            if limits.max_rate > 0 and previous is not None:
                step = limits.max_rate * dt_s
                value = max(previous[i] - step, min(previous[i] + step, value))
            values.append(value)
        return self.schema.command(values, stamp_ns)


class Watchdog:
    """Expires when nothing was fed for ``timeout_s`` (clock-agnostic: the caller passes its own now)."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_ns = int(timeout_s * 1e9)
        self.last_ns: int | None = None

    def feed(self, now_ns: int) -> None:
        """Something arrived at ``now_ns``."""
        self.last_ns = now_ns

    def expired(self, now_ns: int) -> bool:
        """True if nothing arrived in the last ``timeout_s`` (or ever)."""
        return self.last_ns is None or now_ns - self.last_ns > self.timeout_ns
