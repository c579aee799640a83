"""The one path from a decoded camera frame to a command, shared by the nodes, the replay and the simulator.

``Driver.observe(rgb, stamp_ns) -> Command`` preprocesses (crop, resize), encodes, steps the recurrent core with
the real time since the previous frame and applies the limits. The perception and policy nodes split it at the
features (:meth:`Driver.features` and :meth:`Driver.command_from_features`), the drive node, the offline replay and
the simulator evaluation call :meth:`Driver.observe`. If replay and robot ever disagree, the bug is in decoding or
timing, never in a second copy of the model code.

Timing rules (:class:`TimingConfig`): the first frame, and the first after a reset, uses ``nominal_dt_s``; a gap
longer than ``reset_gap_s`` or time going backwards (a bag looping, a simulator reset) resets the state; every dt
is clamped to ``[min_dt_s, max_dt_s]``. A non-finite output resets the state and yields a stop command.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from lnn_control.command import Command
from lnn_control.nn.policy import Policy
from lnn_control.vision import preprocess


@dataclass
class TimingConfig:
    """How elapsed time between frames becomes the cell's dt."""

    nominal_dt_s: float = 0.05
    min_dt_s: float = 0.001
    max_dt_s: float = 0.5
    reset_gap_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.min_dt_s <= self.nominal_dt_s <= self.max_dt_s:
            raise ValueError("timing needs 0 < min_dt_s <= nominal_dt_s <= max_dt_s")
        if self.reset_gap_s <= 0:
            raise ValueError("timing.reset_gap_s must be positive")


@dataclass
class LimitsConfig:
    """Output limits; velocity in m/s, steering normalised (+1 full left), rate in steering units per second."""

    max_speed: float = 2.0
    min_speed: float = 0.0
    max_steering: float = 1.0
    max_steering_rate: float = 0.0  # 0 disables the rate limit

    def __post_init__(self) -> None:
        if self.min_speed > self.max_speed:
            raise ValueError("limits.min_speed must not exceed limits.max_speed")
        if self.max_steering < 0 or self.max_steering_rate < 0:
            raise ValueError("limits.max_steering and limits.max_steering_rate must be >= 0")


@dataclass
class DriverConfig:
    """Timing and limits of a :class:`Driver`."""

    timing: TimingConfig = field(default_factory=TimingConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)


#: drive.yaml parameter -> (DriverConfig section, field)
NODE_PARAMS = {
    "max_speed": ("limits", "max_speed"),
    "min_speed": ("limits", "min_speed"),
    "max_steering": ("limits", "max_steering"),
    "max_steering_rate": ("limits", "max_steering_rate"),
    "nominal_dt": ("timing", "nominal_dt_s"),
    "min_dt": ("timing", "min_dt_s"),
    "max_dt": ("timing", "max_dt_s"),
    "reset_gap": ("timing", "reset_gap_s"),
}


def load_driver_config(path: str | Path | None) -> DriverConfig:
    """The Driver's timing and limits from a YAML file; the Driver's defaults without one.

    Either the nodes' parameter file (``config/drive.yaml``: ``drive_node``, else ``policy_node``,
    ``ros__parameters``: ``max_speed``, ``nominal_dt``, ...), so the replay runs with the robot's settings, or plain
    ``timing:`` and ``limits:`` sections with :class:`TimingConfig` / :class:`LimitsConfig` field names.
    """
    if path is None:
        return DriverConfig()
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: driver config must be a mapping")
    sections: dict[str, dict[str, Any]] = {"timing": dict(data.get("timing") or {}),
                                           "limits": dict(data.get("limits") or {})}
    node = next((data[n] for n in ("drive_node", "policy_node") if isinstance(data.get(n), Mapping)), None)
    if node is not None:
        for key, value in (node.get("ros__parameters") or {}).items():
            if key in NODE_PARAMS:
                section, name = NODE_PARAMS[key]
                sections[section][name] = value
    try:
        return DriverConfig(timing=TimingConfig(**sections["timing"]), limits=LimitsConfig(**sections["limits"]))
    except TypeError as exc:
        raise ValueError(f"{path}: driver config: {exc}") from exc


@dataclass
class StepInfo:
    """What happened on the last step: raw outputs, the dt used, and an event worth logging (or None)."""

    raw: tuple[float, ...] = ()
    dt_s: float = 0.0
    event: str | None = None
    fault: bool = False


class Driver:
    """Stateful single-frame driver around a :class:`Policy`."""

    def __init__(self, policy: Policy, config: DriverConfig | None = None) -> None:
        self.policy = policy.eval()
        self.config = config or DriverConfig()
        self.preprocess = policy.config.preprocess
        self.state = policy.initial_state(1)
        self.last_stamp_ns: int | None = None
        self.last_command: Command | None = None
        self.last = StepInfo()

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
        timing = self.config.timing
        if self.last_stamp_ns is None:
            return timing.nominal_dt_s, None
        dt_s = (stamp_ns - self.last_stamp_ns) * 1e-9
        if dt_s <= 0:
            self.reset()
            return timing.nominal_dt_s, f"time went backwards by {-dt_s:.3f} s: state reset"
        if dt_s > timing.reset_gap_s:
            self.reset()
            return timing.nominal_dt_s, f"gap of {dt_s:.3f} s > reset_gap_s: state reset"
        return min(max(dt_s, timing.min_dt_s), timing.max_dt_s), None

    def _limit(self, steering: float, velocity: float, dt_s: float, stamp_ns: int) -> Command:
        limits = self.config.limits
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
