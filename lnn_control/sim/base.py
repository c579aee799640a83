"""The simulator interface: what nodes and the closed-loop evaluation may assume of any backend.

A backend (CarRacing-v3 today; a MuJoCo or pybullet camera world, a drone later) is anything with this shape:

- ``reset(seed) -> Observation``: a new episode; ``stamp_ns`` restarts at 0.
- ``step(command) -> Observation``: apply one :class:`~lnn_control.command.Command` of the backend's ``schema``
  (:data:`~lnn_control.command.CAR`, :data:`~lnn_control.command.DRONE`) for one sim time step. A bad command
  (NaN, inf, out of range, another schema, not a Command) never raises: :func:`sanitize_command` clamps it or
  replaces it by the schema's stop command, and the backend logs a rate-limited warning and keeps running.
- ``close()``; the attribute ``schema`` and the read-only properties ``frame_size`` ``(height, width)`` and
  ``dt_ns`` (sim time per step).

A backend may narrow the schema's bounds with a ``command_bounds`` mapping (field -> (low, high)), as CarRacing does
for its velocity (no reverse).

Backends that expose privileged state for a demonstrator (a track to follow) also satisfy :class:`PrivilegedSimulator`.

Nothing here imports ROS, torch or gymnasium.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from lnn_control.command import CAR, ActionSchema, Command

if TYPE_CHECKING:
    from lnn_control.sim.track import Track

#: The car's stop command (straight ahead, zero target speed): what a car backend applies instead of a bad one.
SAFE_COMMAND = CAR.stop()


@dataclass(frozen=True)
class Truth:
    """Ground truth the simulator knows and a real robot would not; for evaluation and demonstrators only.

    Units: SI (m, s, rad); angles in the world frame, counter-clockwise positive (REP 103).
    Fields a backend cannot provide keep their defaults (NaN / 0).
    """

    speed: float = 0.0
    """Forward speed of the vehicle, m/s, signed (negative when rolling backwards)."""
    reward: float = 0.0
    """Reward of this step (the backend's own reward, e.g. CarRacing's tiles and time penalty)."""
    total_reward: float = 0.0
    """Sum of ``reward`` since reset."""
    on_track: bool = True
    """Whether the vehicle is on the drivable surface (CarRacing: at least one wheel on a road tile)."""
    lap_progress: float = 0.0
    """Fraction of the current lap covered, 0..1."""
    tiles_visited: int = 0
    """Track tiles (checkpoints) visited since reset."""
    laps_completed: int = 0
    """Laps completed since reset (a lap counts when the start line is crossed forwards after covering
    at least the backend's lap fraction, so one missed tile does not lose the lap)."""
    position: tuple[float, float] = (math.nan, math.nan)
    """Vehicle position in the world frame, m."""
    heading: float = math.nan
    """Yaw of the vehicle's forward axis in the world frame, rad, in (-pi, pi]."""
    yaw_rate: float = math.nan
    """Yaw rate, rad/s, counter-clockwise positive."""
    track_offset: float = math.nan
    """Signed lateral distance from the track centreline, m, positive to the left of the driving direction."""
    tiles_total: int = 0
    """Number of tiles of the track (0 when the backend has no tiles)."""


@dataclass(frozen=True)
class Observation:
    """What one reset or step returns."""

    frame: np.ndarray
    """Camera frame, ``(height, width, 3)`` uint8 RGB."""
    stamp_ns: int
    """Simulation time of the frame, integer ns, 0 at reset."""
    truth: Truth
    terminated: bool = False
    """The episode ended in the task's own terms (lap finished, left the playfield)."""
    truncated: bool = False
    """The episode was cut by a step limit."""
    info: dict[str, Any] = field(default_factory=dict)
    """Backend-specific events, e.g. ``{"lap_finished": True}``."""

    @property
    def done(self) -> bool:
        """``terminated or truncated``."""
        return self.terminated or self.truncated


@runtime_checkable
class Simulator(Protocol):
    """A simulator backend: camera frames out, :class:`Command` in, one fixed time step per ``step``."""

    name: str
    schema: ActionSchema
    """The command fields ``step`` takes."""

    @property
    def frame_size(self) -> tuple[int, int]:
        """``(height, width)`` of the frames this backend returns."""
        ...

    @property
    def dt_ns(self) -> int:
        """Simulation time per step, ns (``stamp_ns`` advances by this much each step)."""
        ...

    def reset(self, seed: int | None = None) -> Observation:
        """Start a new episode, deterministic for a given seed."""
        ...

    def step(self, command: Command) -> Observation:
        """Apply ``command`` for one time step and return the new observation."""
        ...

    def close(self) -> None:
        """Release the backend's resources."""
        ...


@runtime_checkable
class PrivilegedSimulator(Simulator, Protocol):
    """A simulator that also exposes the state a demonstrator needs (never a learned policy)."""

    @property
    def track(self) -> Track:
        """The current episode's track geometry."""
        ...

    @property
    def last_observation(self) -> Observation | None:
        """The latest observation returned by ``reset`` or ``step``."""
        ...


class RateLimitedLog:
    """Log a warning at most once per ``period_s`` (wall clock) per key, with a count of what was suppressed."""

    def __init__(self, logger: logging.Logger, period_s: float = 5.0):
        self.logger = logger
        self.period_s = period_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str) -> bool:
        """Log ``message`` unless ``key`` was logged less than ``period_s`` ago; True if it was logged."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.period_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        suppressed = self._suppressed.pop(key, 0)
        suffix = f" ({suppressed} similar warnings suppressed)" if suppressed else ""
        self.logger.warning("%s%s", message, suffix)
        self._last[key] = now
        return True


def sanitize_command(
    command: object, schema: ActionSchema, bounds: Mapping[str, tuple[float, float]] | None = None
) -> tuple[Command, str | None]:
    """Make ``command`` safe to apply: the command to use and, if it had to change, why.

    - not a :class:`Command` of ``schema``, or a non-finite value: replaced by ``schema.stop()``;
    - a value outside its field's bounds (``bounds[name]`` where given, else the schema's): clamped.
    """
    stamp = getattr(command, "stamp_ns", 0) if isinstance(getattr(command, "stamp_ns", 0), int) else 0
    if not isinstance(command, Command):
        return schema.stop(), f"not a Command ({type(command).__name__}); applying the {schema.name}'s stop command"
    if command.schema.names != schema.names:
        return schema.stop(stamp), (
            f"a {command.schema.name} command ({', '.join(command.schema.names)}) for a {schema.name} "
            f"({', '.join(schema.names)}); applying the stop command"
        )
    try:
        values = [float(v) for v in command.values]
    except (TypeError, ValueError):
        return schema.stop(stamp), "non-numeric command; applying the stop command"
    if not all(math.isfinite(v) for v in values):
        return schema.stop(stamp), f"non-finite command ({command.describe()}); applying the stop command"
    problems, clamped = [], []
    for spec, value in zip(schema.fields, values, strict=True):
        lo, hi = (bounds or {}).get(spec.name, spec.bounds)
        safe = min(hi, max(lo, value))
        if safe != value:
            unit = "" if spec.unit == "1" else f" {spec.unit}"
            problems.append(f"{spec.name}={value:.4g}{unit} not in [{lo:g}, {hi:g}]")
        clamped.append(safe)
    if problems:
        return schema.command(clamped, stamp), f"command out of range ({', '.join(problems)}); clamped"
    if any(type(v) is not float for v in command.values):
        return schema.command(values, stamp), None
    return command, None


def wrap_angle(angle: float) -> float:
    """``angle`` wrapped to (-pi, pi]."""
    wrapped = math.remainder(angle, math.tau)
    return math.pi if wrapped == -math.pi else wrapped
