"""Perturbations: parsing, pixel noise variance, winter colours, frame drops, latency, seeding; in closed loop."""

from __future__ import annotations

import numpy as np
import pytest

from lnn_control.command import car
from lnn_control.sim.base import SAFE_COMMAND
from lnn_control.sim.perturb import SNOW, WET_ROAD, PerturbConfig, Perturber, add_pixel_noise, winter


def test_parse_and_describe():
    cfg = PerturbConfig.parse(["noise=0.1", "winter", "drop=0.3,latency=2"])
    assert cfg == PerturbConfig(noise=0.1, winter=True, drop=0.3, latency=2)
    assert cfg.describe() == "noise=0.1,winter,drop=0.3,latency=2" and cfg.active
    assert PerturbConfig.parse(cfg.describe()) == cfg
    assert PerturbConfig.parse([]) == PerturbConfig.parse("none") == PerturbConfig()
    assert not PerturbConfig().active and PerturbConfig().describe() == "none"
    assert PerturbConfig.parse("noise=0.1 noise=0.2").noise == 0.2  # the last one wins
    for bad, word in [
        ("fog=1", "unknown"),
        ("noise", "missing"),
        ("drop=1.5", "drop"),
        ("latency=x", "latency"),
        ("noise=-1", "noise"),
    ]:
        with pytest.raises(ValueError, match=word):
            PerturbConfig.parse(bad)


@pytest.mark.parametrize("variance", [0.005, 0.01, 0.02])
def test_noise_variance_on_normalised_pixels(variance):
    frame = np.full((96, 96, 3), 128, np.uint8)  # mid-grey: clipping at 0 and 1 is negligible at these variances
    noisy = add_pixel_noise(frame, variance, np.random.default_rng(0))
    assert noisy.dtype == np.uint8 and noisy.shape == frame.shape
    measured = ((noisy.astype(np.float64) - frame) / 255.0).var()
    assert measured == pytest.approx(variance, rel=0.05)


def test_large_noise_is_clipped():
    frame = np.full((96, 96, 3), 128, np.uint8)
    noisy = add_pixel_noise(frame, 0.3, np.random.default_rng(0))
    measured = (noisy / 255.0).var()
    assert 0.1 < measured < 0.3  # clipping to [0, 1] removes some of the asked variance
    assert noisy.min() == 0 and noisy.max() == 255


def test_winter_recolours_grass_and_road():
    frame = np.zeros((4, 4, 3), np.uint8)
    frame[0] = (102, 204, 102)  # CarRacing background grass
    frame[1] = (102, 230, 102)  # grass patch
    frame[2] = (102, 102, 102)  # road
    frame[3] = (204, 0, 0)  # the car: unchanged
    out = winter(frame)
    assert np.all(np.abs(out[0].astype(int) - SNOW) <= 12) and np.all(out[1] != out[0])  # patches stay visible
    assert np.all(np.abs(out[2].astype(int) - WET_ROAD) <= 2)
    assert np.array_equal(out[3], frame[3])


@pytest.mark.sim
def test_winter_on_a_real_frame():
    pytest.importorskip("Box2D")
    from lnn_control.sim.carracing import CarRacingSim

    with CarRacingSim() as sim:
        sim.reset(3)
        for _ in range(60):  # past the start-up zoom
            obs = sim.step(car(0.0, 10.0))
    frame = obs.frame.astype(int)
    grass = (frame[..., 1] - np.maximum(frame[..., 0], frame[..., 2])) > 90
    road = (np.ptp(frame, axis=-1) < 3) & (np.abs(frame.mean(-1) - 104) < 6)  # plain road, not an edge
    assert grass.mean() > 0.2 and road.mean() > 0.05
    out = winter(obs.frame).astype(int)
    assert np.all(out[grass].min(axis=-1) > 200)  # snow: every grass pixel is now near white
    assert np.all(np.abs(out[road] - WET_ROAD).max(axis=-1) <= 8)


def test_drop_rate_and_seeding():
    p = Perturber(PerturbConfig(drop=0.3), seed=1)
    drops = np.array([p.drop_frame() for _ in range(20000)])
    assert drops.mean() == pytest.approx(0.3, abs=0.01)
    p.reset(1)
    assert np.array_equal(drops[:500], [p.drop_frame() for _ in range(500)])
    # adding pixel perturbations does not change which frames are dropped
    q = Perturber(PerturbConfig(drop=0.3, noise=0.1, winter=True), seed=1)
    frame = np.full((8, 8, 3), 100, np.uint8)
    seen = []
    for _ in range(500):
        seen.append(q.drop_frame())
        q.frame(frame)
    assert np.array_equal(drops[:500], seen)


def test_latency_delays_commands_by_k_steps():
    p = Perturber(PerturbConfig(latency=3))
    sent = [car(0.01 * k, float(k)) for k in range(20)]
    applied = [p.delay(c) for c in sent]
    assert applied[:3] == [SAFE_COMMAND] * 3 and applied[3:] == sent[:-3]
    assert Perturber().delay(sent[5]) is sent[5]


class Recorder:
    """A controller that records what it was given and answers with a command encoding the stamp."""

    def __init__(self):
        self.stamps: list[int] = []
        self.frames: list[np.ndarray] = []

    def reset(self):
        self.stamps.clear()
        self.frames.clear()

    def observe(self, frame, stamp_ns):
        self.stamps.append(stamp_ns)
        self.frames.append(frame)
        k = stamp_ns // 20_000_000
        return car(0.0, 5.0 + 0.01 * k, stamp_ns)


@pytest.mark.sim
def test_drops_and_latency_in_closed_loop():
    pytest.importorskip("Box2D")
    from lnn_control.sim.carracing import CarRacingSim
    from lnn_control.sim.closed_loop import run_episode

    ctl = Recorder()
    with CarRacingSim() as sim:
        res = run_episode(sim, ctl, 2, PerturbConfig(drop=0.3, latency=2, noise=0.05), max_steps=150)
    s = res.series
    assert res.steps == 150 and res.observed == len(ctl.stamps) == int(s["observed"].sum())
    assert 0.15 < 1 - res.observed / res.steps < 0.45
    gaps = np.diff(ctl.stamps) // 20_000_000
    assert gaps.min() == 1 and gaps.max() >= 2  # the controller's dt becomes irregular
    # a dropped frame holds the previous decision
    held = ~s["observed"][1:]
    assert np.array_equal(s["cmd_velocity"][1:][held], s["cmd_velocity"][:-1][held])
    # what the sim applied is the decision two steps earlier
    assert np.array_equal(s["velocity"][2:], s["cmd_velocity"][:-2]) and np.all(s["velocity"][:2] == 0)
    # the controller saw noisy frames
    assert not np.array_equal(ctl.frames[-1], sim.last_observation.frame)


def test_occlusion_hides_a_square_of_the_given_share_and_keeps_the_other_streams():
    from lnn_control.sim.perturb import PerturbConfig, Perturber

    frame = np.full((40, 50, 3), 7, np.uint8)
    seen = Perturber(PerturbConfig.parse("occlude=0.1"), seed=3).frame(frame)
    hidden = (seen == 128).all(axis=-1)
    assert hidden.sum() == 14 * 14 and (seen[~hidden] == 7).all(), "one grey square of 10% (14 x 14 of 40 x 50)"
    assert frame.max() == 7, "the input is not changed"
    assert PerturbConfig.parse("occlude=0.1").describe() == "occlude=0.1"
    plain = Perturber(PerturbConfig(drop=0.5), seed=9)
    occluded = Perturber(PerturbConfig(drop=0.5, occlude=0.2), seed=9)
    assert [plain.drop_frame() for _ in range(50)] == [occluded.drop_frame() for _ in range(50)], "drops as before"
    with pytest.raises(ValueError, match="occlude"):
        PerturbConfig(occlude=1.0)
