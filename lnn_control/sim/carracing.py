"""CarRacing-v3 (gymnasium[box2d]) behind the :class:`~lnn_control.sim.base.Simulator` interface.

- **Camera**: the env's own 96x96 RGB state pixels (render_mode None, headless). Another ``frame_size`` is rendered
  from the env's full-resolution drawing surface (the same picture at more pixels), not upscaled from 96x96.
- **Units**: Box2D units are metres here (the car is 5 units long and 2.4 wide, a car's size), so speeds are m/s.
  The measured speed is the hull's linear velocity projected on its forward axis (signed).
- **Steering**: ``Command.steering`` +1 is full left (REP 103). gymnasium's ``action[0]`` is the negated target angle
  of the front-wheel joints in rad (``+1`` steers right), and the joints stop at +-0.4 rad; this backend sends
  ``action[0] = -steer_max_rad * steering``, so +-1 is full lock and the map is linear. ``steer_max_rad = 1.0``
  reproduces the raw mapping ``action[0] = -steering`` (where |steering| > 0.4 saturates).
- **Velocity**: ``Command.velocity`` is a target forward speed, m/s, turned into gas and brake by
  :class:`~lnn_control.sim.speed.SpeedController` (the only place gas and brake are set).
- **Time**: 50 FPS; ``stamp_ns`` is 0 at reset and advances 20 ms per step.
- **Ground truth**: reward, tiles, laps (see :class:`~lnn_control.sim.track.LapCounter`, plus CarRacing's own lap:
  every tile visited), on-track (at least one wheel on a road tile), pose, signed offset from the centreline.
- A bad command (NaN, inf, out of range) is clamped or replaced by straight/zero speed with a rate-limited warning.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from lnn_control.command import CAR, Command
from lnn_control.sim import fast_road
from lnn_control.sim.base import Observation, RateLimitedLog, Truth, sanitize_command, wrap_angle
from lnn_control.sim.speed import SpeedController, SpeedControllerConfig
from lnn_control.sim.track import LapCounter, Track, TrackLocator

LOG = logging.getLogger(__name__)

FPS = 50
DT_NS = 1_000_000_000 // FPS
#: Half the road width in CarRacing-v3 (``TRACK_WIDTH = 40 / SCALE``), m.
TRACK_HALF_WIDTH = 40.0 / 6.0
#: Half the car's width (hull 2.4 m), m.
CAR_HALF_WIDTH = 1.2
#: Front-wheel joint limit in CarRacing-v3, rad.
STEER_JOINT_LIMIT_RAD = 0.4


@dataclass
class CarRacingConfig:
    """Options of :class:`CarRacingSim`."""

    frame_size: tuple[int, int] = (96, 96)
    """``(height, width)`` of the camera frames; (96, 96) is the env's native state image."""
    steer_max_rad: float = STEER_JOINT_LIMIT_RAD
    """Front-wheel target angle for steering = +-1, rad (the joint stops at 0.4)."""
    max_velocity: float = 120.0
    """Largest accepted target velocity, m/s; larger commands are clamped (CarRacing cannot reverse: min is 0)."""
    max_episode_steps: int = 1000
    """Steps before ``truncated`` (CarRacing-v3's registered limit)."""
    lap_complete_fraction: float = 0.95
    """Fraction of the track a lap must cover (CarRacing's ``lap_complete_percent``)."""
    domain_randomize: bool = False
    """CarRacing's random colours per reset."""
    speed: SpeedControllerConfig = field(default_factory=SpeedControllerConfig)
    """Speed controller gains."""
    fast_render: bool = True
    """Draw the road with :mod:`lnn_control.sim.fast_road`: the same pixels, steps 1.25x to 1.8x faster here
    (bench/bench_sim.py)."""


class CarRacingSim:
    """CarRacing-v3 as a :class:`~lnn_control.sim.base.PrivilegedSimulator`."""

    name = "carracing"
    schema = CAR

    def __init__(self, config: CarRacingConfig | None = None):
        try:
            import gymnasium as gym
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "the CarRacing simulator needs gymnasium with Box2D: pip install 'gymnasium[box2d]' "
                "(or the package's [sim] extra)"
            ) from exc
        self.config = config or CarRacingConfig()
        self._env = gym.make(
            "CarRacing-v3",
            render_mode=None,
            continuous=True,
            lap_complete_percent=self.config.lap_complete_fraction,
            domain_randomize=self.config.domain_randomize,
            max_episode_steps=self.config.max_episode_steps,
            disable_env_checker=True,
        )
        self._u = self._env.unwrapped
        if self.config.fast_render and not fast_road.install(self._u):
            LOG.warning("this gymnasium's CarRacing does not look as expected: using its own (slower) road renderer")
        self.speed_controller = SpeedController(self.config.speed)
        self._warn = RateLimitedLog(LOG)
        self._track: Track | None = None
        self._locator: TrackLocator | None = None
        self._laps: LapCounter | None = None
        self._step = 0
        self._total = 0.0
        self._last_obs: Observation | None = None
        self._action = np.zeros(3, dtype=np.float32)
        self.last_action = self._action.copy()
        """The env action ``[steer, gas, brake]`` of the latest step."""
        self.bad_commands = 0
        """Commands clamped or replaced since construction."""

    # -- Simulator properties -------------------------------------------------------------------------------------
    @property
    def command_bounds(self) -> dict[str, tuple[float, float]]:
        """What this car accepts where narrower than the schema's bounds: no reverse, at most ``max_velocity``."""
        return {"velocity": (0.0, self.config.max_velocity)}

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.config.frame_size

    @property
    def dt_ns(self) -> int:
        return DT_NS

    @property
    def track(self) -> Track:
        if self._track is None:
            raise RuntimeError("call reset() before reading the track")
        return self._track

    @property
    def last_observation(self) -> Observation | None:
        return self._last_obs

    @property
    def env(self):
        """The unwrapped gymnasium env (privileged; for tests and demonstrators)."""
        return self._u

    # -- episode ----------------------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> Observation:
        frame, _ = self._env.reset(seed=seed)
        pts = np.array([(x, y) for _a, _b, x, y in self._u.track], dtype=np.float64)
        self._track = Track(pts, TRACK_HALF_WIDTH)
        self._locator = TrackLocator(self._track)
        self._laps = LapCounter(self._track.n, self.config.lap_complete_fraction)
        self.speed_controller.reset()
        self._step = 0
        self._total = 0.0
        self.last_action = np.zeros(3, dtype=np.float32)
        self._last_obs = self._observe(frame, 0.0, False, False, {})
        return self._last_obs

    def step(self, command: Command) -> Observation:
        if self._track is None:
            raise RuntimeError("call reset() before step()")
        safe, problem = sanitize_command(command, CAR, self.command_bounds)
        if problem is not None:
            self.bad_commands += 1
            self._warn.warning("bad_command", f"{self.name}: {problem}")
        speed = self._forward_speed()
        gas, brake = self.speed_controller.update(safe.velocity, speed, DT_NS * 1e-9)
        a = self._action
        a[0] = -self.config.steer_max_rad * safe.steering
        a[1] = gas
        a[2] = brake
        frame, reward, terminated, truncated, info = self._env.step(a)
        self.last_action = a.copy()
        self._step += 1
        self._total += float(reward)
        self._last_obs = self._observe(frame, float(reward), bool(terminated), bool(truncated), info)
        return self._last_obs

    def close(self) -> None:
        self._env.close()

    def __enter__(self) -> CarRacingSim:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------------------------------
    def _forward_speed(self) -> float:
        hull = self._u.car.hull
        angle = hull.angle
        vx, vy = hull.linearVelocity
        return -math.sin(angle) * vx + math.cos(angle) * vy

    def _frame(self, frame: np.ndarray) -> np.ndarray:
        h, w = self.config.frame_size
        if (h, w) == frame.shape[:2]:
            return np.ascontiguousarray(frame)
        surf = getattr(self._u, "surf", None)
        if surf is not None:
            return np.ascontiguousarray(self._u._create_image_array(surf, (w, h)))
        import cv2

        return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)

    def _observe(self, frame: np.ndarray, reward: float, terminated: bool, truncated: bool, info: dict) -> Observation:
        car = self._u.car
        hull = car.hull
        x, y = float(hull.position[0]), float(hull.position[1])
        assert self._locator is not None and self._laps is not None and self._track is not None
        point = self._locator.locate(x, y)
        wheels_on = sum(1 for w in car.wheels if w.tiles)
        on_track = wheels_on > 0
        # covered: some part of the car over the road (half the car's width, 1.2 m, beyond the edge)
        lap = self._laps.update(point.index, point.distance <= self._track.half_width + CAR_HALF_WIDTH)
        if info.get("lap_finished") and not lap and self._laps.progress > 0.5:
            self._laps.complete()  # every tile visited: CarRacing's own lap, counted even if the car strayed
        truth = Truth(
            speed=self._forward_speed(),
            reward=reward,
            total_reward=self._total,
            on_track=on_track,
            lap_progress=self._laps.progress,
            tiles_visited=int(self._u.tile_visited_count),
            laps_completed=self._laps.laps,
            position=(x, y),
            heading=wrap_angle(float(hull.angle) + math.pi / 2),
            yaw_rate=float(hull.angularVelocity),
            track_offset=point.offset,
            tiles_total=self._track.n,
        )
        return Observation(
            frame=self._frame(frame),
            stamp_ns=self._step * DT_NS,
            truth=truth,
            terminated=terminated,
            truncated=truncated,
            info=dict(info),
        )
