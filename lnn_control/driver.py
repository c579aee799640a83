"""The one path from a decoded camera frame to a command, shared by the nodes, the replay and the simulator.

``Driver.observe(rgb, stamp_ns) -> Command`` preprocesses (crop, resize), encodes, steps the recurrent core with
the real time since the previous frame and applies the limits. The perception and policy nodes split it at the
features (:meth:`Driver.features` and :meth:`Driver.command_from_features`), the drive node, the offline replay and
the simulator evaluation call :meth:`Driver.observe`. If replay and robot ever disagree, the bug is in decoding or
timing, never in a second copy of the model code.

Timing follows :mod:`lnn_control.timing`, with the :class:`~lnn_control.timing.TimingConfig` the model was trained
with (``PolicyConfig.timing``), so the Driver runs what training assumed. A non-finite output resets the state and
yields a stop command.

:class:`DriverConfig` is what a node sets on its Driver, field for field the node parameters (``max_speed``,
``nominal_dt``, ``crop_top``, ...; :mod:`lnn_control.nodes.driver_params` declares them from these dataclasses).
The timing and crop fields default to "the model's own" (0 and -1); a value that differs from the model's is
used, and the Driver warns naming each such value. :func:`load_driver_config` reads the nodes' parameter files
(``config/drive.yaml``), so the replay and the simulator evaluation run with a robot's settings.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lnn_control.command import Command
from lnn_control.nn.policy import Policy, PolicyConfig
from lnn_control.ros.node_util import check_value, describe, param
from lnn_control.timing import TimingConfig, frame_dt
from lnn_control.vision import PreprocessConfig, preprocess

log = logging.getLogger(__name__)

#: The node whose parameters :func:`load_driver_config` reads, and the split pair it falls back to.
DRIVE_NODE = "drive_node"
SPLIT_NODES = ("perception_node", "policy_node")
TIMING_FIELDS = tuple(f.name for f in fields(TimingConfig))
CROP_FIELDS = ("crop_top", "crop_bottom", "crop_left", "crop_right")


@dataclass(frozen=True)
class LimitsConfig:
    """Output limits; velocity in m/s, steering normalised (+1 full left), rate in steering units per second."""

    max_speed: float = param(2.0, "largest velocity, m/s", min=0.0, max=100.0, dynamic=True)
    min_speed: float = param(
        0.0, "smallest velocity, m/s (negative allows reversing)", min=-100.0, max=100.0, dynamic=True
    )
    max_steering: float = param(1.0, "largest |steering|, normalised (+1 = full left)", min=0.0, max=1.0, dynamic=True)
    max_steering_rate: float = param(
        0.0,
        "largest steering change per second of camera time, normalised units/s; 0 disables",
        min=0.0,
        max=1000.0,
        dynamic=True,
    )

    def check_limits(self) -> None:
        """``ValueError`` when the limits do not fit together."""
        if self.min_speed > self.max_speed:
            raise ValueError(f"min_speed {self.min_speed:g} must not exceed max_speed {self.max_speed:g}")
        if self.max_steering < 0 or self.max_steering_rate < 0:
            raise ValueError("max_steering and max_steering_rate must be >= 0")


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
class DriverConfig(CropOverrides, TimingOverrides, LimitsConfig):
    """Everything a node sets on its :class:`Driver`, named as the node parameters: limits, timing, crops."""

    def __post_init__(self) -> None:
        for spec in describe(DriverConfig):
            value = check_value(spec["name"], spec["kind"], getattr(self, spec["name"]), spec)
            object.__setattr__(self, spec["name"], value)
        self.check_limits()

    def with_params(self, *groups: Any) -> DriverConfig:
        """This config with the fields each of ``groups`` has (a node's parameter dataclasses) put in their place."""
        names = {f.name for f in fields(DriverConfig)}
        values: dict[str, Any] = {}
        for group in groups:
            values.update({f.name: getattr(group, f.name) for f in fields(group) if f.name in names})
        return dataclasses.replace(self, **values)

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


#: Kept for older imports: the DriverConfig fields the command nodes declare (each name is the parameter's own).
NODE_PARAMS: tuple[str, ...] = tuple(f.name for f in fields(LimitsConfig)) + TIMING_FIELDS


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
    names = {f.name for f in fields(DriverConfig)}
    where = ", ".join(str(p) for p in paths if p is not None) or "defaults"
    try:
        return DriverConfig(**{k: v for k, v in values.items() if k in names})
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc


def driver_params(config: DriverConfig) -> dict[str, Any]:
    """``config`` as node parameters (``name: value``), e.g. for the ``drive_node`` of ``eval --live``."""
    return dataclasses.asdict(config)


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
    """

    def __init__(
        self, policy: Policy, config: DriverConfig | None = None, *, warn: Callable[[str], None] | None = None
    ) -> None:
        self.policy = policy.eval()
        self.warn = warn or log.warning
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
        self._config, self.timing, self.preprocess = config, timing, pre
        message = override_warning(config, model)
        if message is not None and message != self._warned:
            self.warn(message)
        self._warned = message

    def reset(self) -> None:
        """Forget the recurrent state and the last stamp (the next frame starts afresh)."""
        self.state = self.policy.initial_state(1)
        self.last_stamp_ns = None
        self.last_command = None

    # -- the two halves ---------------------------------------------------------------------------------------

    def features(self, rgb: np.ndarray) -> np.ndarray:
        """Decoded HxWx3 uint8 RGB frame -> float32 features (F,) (the perception half)."""
        frame = torch.from_numpy(preprocess(rgb, self.preprocess)).unsqueeze(0)
        with torch.inference_mode():
            return self.policy.encode(frame)[0].numpy().astype(np.float32, copy=False)

    def command_from_features(self, features: np.ndarray, stamp_ns: int) -> Command:
        """Features (F,) of the frame stamped ``stamp_ns`` -> limited command (the policy half)."""
        dt_s, event = self._dt(stamp_ns)
        x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).reshape(1, -1)
        if x.shape[1] != self.policy.config.features:
            raise ValueError(f"features have {x.shape[1]} values, the policy expects {self.policy.config.features}")
        with torch.inference_mode():
            y, state = self.policy.step(x, self.state, torch.tensor([[dt_s]], dtype=torch.float32))
        raw = tuple(float(v) for v in y[0])
        if not all(math.isfinite(v) for v in raw):
            self.reset()
            self.last = StepInfo(raw, dt_s, "non-finite policy output: state reset, stopping", fault=True)
            return Command(0.0, 0.0, stamp_ns)
        self.state = state
        self.last_stamp_ns = stamp_ns
        command = self._limit(raw[0], raw[1] if len(raw) > 1 else 0.0, dt_s, stamp_ns)
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

    def _limit(self, steering: float, velocity: float, dt_s: float, stamp_ns: int) -> Command:
        limits = self.config
        steering = max(-limits.max_steering, min(limits.max_steering, steering))
        if limits.max_steering_rate > 0 and self.last_command is not None:
            step = limits.max_steering_rate * dt_s
            previous = self.last_command.steering
            steering = max(previous - step, min(previous + step, steering))
        velocity = max(limits.min_speed, min(limits.max_speed, velocity))
        return Command(steering, velocity, stamp_ns)


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
