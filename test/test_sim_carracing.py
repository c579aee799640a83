"""CarRacing backend: determinism, time, frames, steering sign, speed tracking, bad commands (real simulator)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("Box2D")

from lnn_control.command import Command, car  # noqa: E402
from lnn_control.sim.base import Simulator  # noqa: E402
from lnn_control.sim.carracing import DT_NS, CarRacingConfig, CarRacingSim  # noqa: E402
from lnn_control.sim.expert import ExpertController  # noqa: E402

pytestmark = [pytest.mark.sim]


def _commands(n: int) -> list[Command]:
    return [car(0.6 * math.sin(k / 7.0), 12.0 + 8.0 * math.sin(k / 11.0)) for k in range(n)]


def _rollout(sim: CarRacingSim, seed: int, commands: list[Command]):
    obs = sim.reset(seed)
    frames, rewards = [obs.frame], []
    for c in commands:
        obs = sim.step(c)
        frames.append(obs.frame)
        rewards.append(obs.truth.reward)
    return np.stack(frames), np.array(rewards), obs.truth


def test_determinism_with_a_seed():
    commands = _commands(50)
    with CarRacingSim() as a, CarRacingSim() as b:
        assert isinstance(a, Simulator)
        f1, r1, t1 = _rollout(a, 5, commands)
        f2, r2, t2 = _rollout(b, 5, commands)
        _rollout(a, 6, commands[:10])  # another episode in between
        f3, r3, t3 = _rollout(a, 5, commands)
    assert np.array_equal(f1, f2) and np.array_equal(r1, r2) and t1 == t2
    assert np.array_equal(f1, f3) and np.array_equal(r1, r3) and t1 == t3
    assert r1.sum() != 0  # the rollout did something


@pytest.mark.parametrize("randomize", [False, True])
def test_fast_road_renderer_draws_the_same_pixels(randomize):
    """The numpy road renderer (the default) against gymnasium's own, pixel for pixel, over whole drives with tiles
    changing colour as they are visited, a second track after a reset, and CarRacing's random colours."""
    fast = CarRacingSim(CarRacingConfig(domain_randomize=randomize))
    plain = CarRacingSim(CarRacingConfig(domain_randomize=randomize, fast_render=False))
    assert fast.env._render_road != plain.env._render_road  # the fast one is installed, the plain one is not
    with fast, plain:
        for seed, n in ((3, 150), (11, 80)):
            f1, r1, t1 = _rollout(fast, seed, _commands(n))
            f2, r2, t2 = _rollout(plain, seed, _commands(n))
            assert np.array_equal(f1, f2), f"seed {seed}: {(f1 != f2).any(-1).sum()} pixels differ"
            assert t1 == t2 and t1.tiles_visited > 3


def test_randomize_domain_recolours_each_track_the_same_way_every_time():
    """``SimSpec(domain="randomize")`` is CarRacing's domain_randomize: the grass of a track differs from the default
    palette and from another track's, and the same track gets the same colours again (the colours come from its seed);
    an unknown car domain or a drone task is refused with the known ones named."""
    from lnn_control.sim.backends import SimSpec

    def grass(sim, seed):  # the pixel left of the car at the start: grass on every track
        return tuple(int(v) for v in sim.reset(seed).frame[66, 20])

    with SimSpec("carracing", domain="randomize").build() as randomized, SimSpec("carracing").build() as default:
        assert randomized.env.unwrapped.domain_randomize and not default.env.unwrapped.domain_randomize
        first, other, again = grass(randomized, 5), grass(randomized, 6), grass(randomized, 5)
        assert first == again and first != other
        assert max(abs(a - b) for a, b in zip(first, grass(default, 5))) > 20
    assert SimSpec("carracing", domain="randomize").describe()["domain"] == "randomize"
    assert SimSpec("carracing").describe()["domain"] == "default"
    with pytest.raises(ValueError, match="default, randomize"):
        SimSpec("carracing", domain="winter")
    with pytest.raises(ValueError, match="task is the drone's"):
        SimSpec("carracing", task="range")


def test_stamps_frames_and_sizes():
    with CarRacingSim(CarRacingConfig(frame_size=(120, 160))) as sim:
        assert sim.dt_ns == DT_NS == 20_000_000 and sim.frame_size == (120, 160)
        obs = sim.reset(1)
        assert obs.stamp_ns == 0 and obs.frame.shape == (120, 160, 3) and obs.frame.dtype == np.uint8
        assert obs.frame.flags["C_CONTIGUOUS"]
        for k in range(1, 4):
            obs = sim.step(car(0.0, 5.0))
            assert obs.stamp_ns == k * 20_000_000
        obs = sim.reset(2)
        assert obs.stamp_ns == 0
        t = obs.truth
        assert t.tiles_total == sim.track.n > 100 and t.total_reward == 0.0 and t.laps_completed == 0
        assert t.on_track and abs(t.track_offset) < 1.0


def _heading_change(sim: CarRacingSim, steering: float, steps: int = 60) -> float:
    obs = sim.reset(3)
    heading = [obs.truth.heading]
    for _ in range(steps):
        obs = sim.step(car(steering, 15.0))
        heading.append(obs.truth.heading)
    return float(np.unwrap(heading)[-1] - heading[0])


def test_positive_steering_turns_left():
    with CarRacingSim() as sim:
        left = _heading_change(sim, +1.0)
        assert sim.last_action[0] == pytest.approx(-0.4)  # gymnasium: action[0] > 0 steers right
        right = _heading_change(sim, -1.0)
        straight = _heading_change(sim, 0.0)
    assert left > 0.5, left  # heading (counter-clockwise) increases: a left turn
    assert right < -0.5, right
    assert abs(straight) < 0.1, straight


def test_speed_controller_tracks_a_target_velocity():
    """The expert steers (on the road); the speed target is ours: 20 m/s, then 32 m/s, then 15 m/s."""
    plan = [(0, 20.0), (120, 32.0), (220, 15.0)]
    with CarRacingSim() as sim:
        expert = ExpertController(sim)
        obs = sim.reset(8)
        expert.reset()
        speeds, targets = [], []
        for k in range(300):
            target = [v for start, v in plan if k >= start][-1]
            steering = expert.observe(obs.frame, obs.stamp_ns).steering
            obs = sim.step(car(steering, target))
            speeds.append(obs.truth.speed)
            targets.append(target)
    speeds, targets = np.array(speeds), np.array(targets)
    # settled: the last 40 steps (0.8 s) of each segment
    for end in (120, 220, 300):
        window = slice(end - 40, end)
        assert np.max(np.abs(speeds[window] - targets[window])) < 1.0, (end, speeds[window])
    assert speeds.max() < 32.0 * 1.1  # overshoot below 10 %


def test_bad_commands_are_clamped_or_refused_with_a_warning(caplog):
    with CarRacingSim() as sim:
        sim.reset(4)
        for _ in range(20):
            sim.step(car(0.0, 10.0))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="lnn_control.sim.carracing"):
            obs = sim.step(car(float("nan"), 10.0))
            assert sim.last_action[0] == 0.0 and sim.speed_controller.last_u < 0  # straight, braking to zero
            sim.step(car(0.0, float("inf")))  # within the rate limit: counted, not logged again
            sim.step(None)  # type: ignore[arg-type]
            sim.step(car(5.0, 1000.0))
            assert sim.last_action[0] == pytest.approx(-0.4)  # clamped to full left
        assert sim.bad_commands == 4
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "non-finite" in warnings[0].getMessage()
        stamp = obs.stamp_ns
        for _ in range(5):
            obs = sim.step(car(0.0, 10.0))
        assert obs.stamp_ns == stamp + 8 * DT_NS and np.isfinite(obs.truth.speed)  # still running
