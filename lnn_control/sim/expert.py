"""The demonstrator: a pure-pursuit driver on the simulator's privileged track geometry.

It outputs what every policy outputs, a :class:`~lnn_control.command.Command` (steering, target velocity); only the
vehicle's speed controller turns velocity into gas and brake.

**Steering**: pure pursuit. The goal point lies ``lookahead = clip(ld_base + ld_gain * speed, ld_min, ld_max)``
metres ahead along the centreline from the car's projection; the front-wheel angle is
``atan(2 L sin(alpha) / distance)`` with ``L`` the wheelbase and ``alpha`` the goal's bearing from the rear axle,
normalised by the backend's full-lock angle. A goal behind the car (``|alpha| > 90 deg``) asks for full lock.

**Speed**: a speed profile computed once per track: the cornering limit ``sqrt(a_lat / |curvature|)`` (curvature
averaged over ``curvature_window_m``), capped at ``v_max`` and propagated backwards with the braking limit
``v_i = min(v_i, sqrt(v_{i+1}^2 + 2 a_brake ds))`` so the car brakes before a corner, not in it. The target is
the profile ``preview_s`` seconds ahead (the speed loop lags). Off the road or facing away from the track the target
drops to ``v_recover``.

**Any reachable state** (DAgger): the car is located by :class:`~lnn_control.sim.track.TrackLocator`, local near the
last point and global when the car is far from it, so a learned policy that leaves the road still gets a correct label.

**Imperfection** (off by default): a human demonstrator's data contains small errors and their corrections; a
perfect expert's data does not, and a policy trained on it has never seen a state off the racing line, so its first
error compounds (covariate shift). Two knobs inject errors into the *executed* command while the *label* stays the
clean expert command (noise injection as in DART, Laskey et al. 2017):

- ``steering_noise``: Ornstein-Uhlenbeck noise (std ``steering_noise``, correlation time ``noise_tau_s``) added to
  the steering, a slow wander like a person's hand rather than white noise the steering motor filters away;
- drift episodes: at ``drift_rate_hz`` on average a bias of ``drift_steering`` (random sign) is held for a random
  ``drift_duration_s``, pushing the car towards the road edge; pure pursuit then recovers, so the data shows how to
  get back from the edge.

Both shrink as ``(imperfection_ref_speed / speed)^2`` above the reference speed: the same steering error at 90 m/s
causes nine times the lateral acceleration it causes at 30 m/s, and unscaled (noise 0.1, drifts of 0.25 at 0.2 Hz)
it spun the car out on 9 of 10 seeds (mean reward 531 against 920 clean).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lnn_control.command import CAR, Command
from lnn_control.sim.base import PrivilegedSimulator, Truth
from lnn_control.sim.track import Track, TrackLocator

#: CarRacing-v3's wheelbase (front axle at +1.6 m, rear at -1.64 m from the hull origin), m.
WHEELBASE = 3.24
REAR_AXLE = 1.64


@dataclass
class ExpertConfig:
    """Gains and limits of the demonstrator (defaults tuned on CarRacing-v3 seeds 0-9, checked on 10-19)."""

    ld_base: float = 6.0
    """Lookahead at zero speed, m."""
    ld_gain: float = 0.25
    """Lookahead growth with speed, s."""
    ld_min: float = 6.0
    ld_max: float = 30.0
    a_lat: float = 200.0
    """Lateral acceleration allowed in corners, m/s^2 (CarRacing's grip is unphysically high: 200 finished seeds 0-19
    with no tile missed, 220 spun out on 2 of 10, 240 on 4 of 10)."""
    a_brake: float = 60.0
    """Deceleration assumed when braking for a corner, m/s^2."""
    v_max: float = 100.0
    """Top target speed, m/s."""
    v_min: float = 15.0
    """Lowest target speed from the profile, m/s."""
    v_recover: float = 15.0
    """Target speed off the road or facing away from the track, m/s."""
    preview_s: float = 0.3
    """How far ahead (in time at the current speed) the speed profile is read, s."""
    curvature_window_m: float = 10.0
    """Length over which curvature is averaged for the speed profile, m."""
    steer_max_rad: float = 0.4
    """Front-wheel angle of steering = +-1 (the backend's full lock), rad."""
    wheelbase: float = WHEELBASE
    rear_axle: float = REAR_AXLE
    # imperfection (executed command only; the label stays clean)
    steering_noise: float = 0.0
    """Std of the Ornstein-Uhlenbeck steering noise (steering units); 0 = off."""
    noise_tau_s: float = 0.5
    """Correlation time of the steering noise, s."""
    drift_rate_hz: float = 0.0
    """Mean number of drift episodes per second; 0 = off."""
    drift_duration_s: tuple[float, float] = (0.3, 0.8)
    """Uniform range of a drift's duration, s."""
    drift_steering: float = 0.25
    """Steering bias held during a drift (sign random)."""
    imperfection_ref_speed: float = 30.0
    """Speed (m/s) at which ``steering_noise`` and ``drift_steering`` apply as given; above it both shrink as
    ``(ref / speed)^2``, so the lateral acceleration they cause (``~ speed^2 * angle``) stays that of the reference
    speed, as a person's small errors do, instead of spinning the car at 90 m/s. 0: no scaling."""


@dataclass(frozen=True)
class ExpertAction:
    """One decision: the command to execute and the clean label to record."""

    command: Command
    label: Command
    drifting: bool = False
    off_road: bool = False


class Expert:
    """Pure pursuit + curvature speed profile on a :class:`Track`; :meth:`reset` per episode."""

    def __init__(self, config: ExpertConfig | None = None):
        self.config = config or ExpertConfig()
        self.track: Track | None = None
        self.locator: TrackLocator | None = None
        self.profile: np.ndarray | None = None
        self._rng = np.random.default_rng()
        self._noise = 0.0
        self._drift_left_s = 0.0
        self._drift_bias = 0.0
        self._last_stamp: int | None = None

    def reset(self, track: Track, seed: int | None = None) -> None:
        """New episode on ``track``; ``seed`` makes the imperfection reproducible."""
        self.track = track
        self.locator = TrackLocator(track)
        self.profile = self.speed_profile(track)
        self._rng = np.random.default_rng(seed)
        self._noise = 0.0
        self._drift_left_s = 0.0
        self._drift_bias = 0.0
        self._last_stamp = None

    def speed_profile(self, track: Track) -> np.ndarray:
        """Target speed at each centreline point, m/s."""
        c = self.config
        ds = float(np.mean(track.seg_len))
        half = max(1, int(round(c.curvature_window_m / ds / 2)))
        kernel = np.ones(2 * half + 1) / (2 * half + 1)
        k = np.abs(track.curvature)
        padded = np.concatenate([k[-half:], k, k[:half]])
        k_smooth = np.convolve(padded, kernel, mode="valid")
        v = np.sqrt(c.a_lat / np.maximum(k_smooth, 1e-6))
        v = np.clip(v, c.v_min, c.v_max)
        n = track.n
        for _ in range(2):  # twice around the loop so the braking envelope wraps past the start
            for i in range(n - 1, -1, -1):
                j = (i + 1) % n
                v[i] = min(v[i], math.sqrt(v[j] ** 2 + 2.0 * c.a_brake * track.seg_len[i]))
        return v

    def act(self, truth: Truth, stamp_ns: int = 0) -> ExpertAction:
        """The command for the state ``truth`` (position, heading, speed) at sim time ``stamp_ns``."""
        if self.track is None or self.locator is None or self.profile is None:
            raise RuntimeError("Expert.reset(track) must be called before act()")
        c = self.config
        track = self.track
        x, y = truth.position
        heading = truth.heading
        speed = max(0.0, truth.speed)
        point = self.locator.locate(x, y)

        # pure pursuit from the rear axle
        cos_h, sin_h = math.cos(heading), math.sin(heading)
        rx, ry = x - c.rear_axle * cos_h, y - c.rear_axle * sin_h
        lookahead = min(c.ld_max, max(c.ld_min, c.ld_base + c.ld_gain * speed))
        gx, gy = track.point_at(point.s + lookahead)
        dx, dy = gx - rx, gy - ry
        local_x = cos_h * dx + sin_h * dy
        local_y = -sin_h * dx + cos_h * dy
        alpha = math.atan2(local_y, local_x)
        dist = math.hypot(dx, dy)
        if abs(alpha) > math.pi / 2:
            steering = math.copysign(1.0, alpha)
        else:
            delta = math.atan2(2.0 * c.wheelbase * math.sin(alpha), max(dist, 1e-3))
            steering = max(-1.0, min(1.0, delta / c.steer_max_rad))

        # speed from the profile, read a little ahead
        s_preview = point.s + speed * c.preview_s
        i_preview = int(np.searchsorted(track.s, s_preview % track.length, side="right")) - 1
        velocity = float(min(self.profile[point.index], self.profile[i_preview]))
        off_road = point.distance > track.half_width
        if off_road or abs(alpha) > math.pi / 3:
            velocity = min(velocity, c.v_recover)

        label = CAR.of(stamp_ns, steering=steering, velocity=velocity)
        executed, drifting = self._imperfect(label, stamp_ns, speed)
        return ExpertAction(executed, label, drifting, off_road)

    def _imperfect(self, label: Command, stamp_ns: int, speed: float) -> tuple[Command, bool]:
        c = self.config
        if c.steering_noise <= 0 and c.drift_rate_hz <= 0:
            return label, False
        dt = 0.02 if self._last_stamp is None else max(0.0, (stamp_ns - self._last_stamp) * 1e-9)
        self._last_stamp = stamp_ns
        scale = 1.0
        if c.imperfection_ref_speed > 0 and speed > c.imperfection_ref_speed:
            scale = (c.imperfection_ref_speed / speed) ** 2
        steer = label.steering
        if c.steering_noise > 0 and dt > 0:
            a = math.exp(-dt / c.noise_tau_s)
            self._noise = a * self._noise + c.steering_noise * math.sqrt(1.0 - a * a) * self._rng.standard_normal()
            steer += scale * self._noise
        drifting = False
        if c.drift_rate_hz > 0:
            if self._drift_left_s <= 0 and self._rng.random() < 1.0 - math.exp(-c.drift_rate_hz * dt):
                self._drift_left_s = self._rng.uniform(*c.drift_duration_s)
                self._drift_bias = c.drift_steering * (1.0 if self._rng.random() < 0.5 else -1.0)
            if self._drift_left_s > 0:
                steer += scale * self._drift_bias
                self._drift_left_s -= dt
                drifting = True
        steer = max(-1.0, min(1.0, steer))
        return label.replace(steering=steer), drifting


class ExpertController:
    """The expert as a closed-loop controller: ``reset()`` / ``observe(frame, stamp_ns) -> Command``.

    It ignores the frame and reads the simulator's privileged state (track and latest ground truth), so it must be
    reset after the simulator. ``last_label`` is the clean command for the latest observation (record this one).
    """

    def __init__(self, sim: PrivilegedSimulator, config: ExpertConfig | None = None, seed: int | None = None):
        self.sim = sim
        self.config = config or ExpertConfig(steer_max_rad=getattr(getattr(sim, "config", None), "steer_max_rad", 0.4))
        self.expert = Expert(self.config)
        self._seeds = np.random.SeedSequence(seed)
        self.last_action: ExpertAction | None = None

    def reset(self) -> None:
        """New episode on the simulator's current track; the imperfection's seed is the next one of the sequence
        started by ``seed`` (reproducible, different each episode)."""
        child = self._seeds.spawn(1)[0]
        self.expert.reset(self.sim.track, int(child.generate_state(1)[0]))
        self.last_action = None

    def observe(self, frame: np.ndarray, stamp_ns: int) -> Command:
        obs = self.sim.last_observation
        if obs is None:
            raise RuntimeError("the simulator has not been reset")
        self.last_action = self.expert.act(obs.truth, stamp_ns)
        return self.last_action.command

    @property
    def last_label(self) -> Command | None:
        """The clean expert command of the latest call."""
        return None if self.last_action is None else self.last_action.label
