"""Driver: dt rules, resets, limits, non-finite outputs, the split at the features, the watchdog."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lnn_control.driver import Driver, DriverConfig, LimitsConfig, TimingConfig, Watchdog
from lnn_control.nn.policy import Policy, PolicyConfig
from lnn_control.vision import PreprocessConfig, preprocess

MS = 1_000_000


@pytest.fixture()
def policy() -> Policy:
    return Policy(PolicyConfig(preprocess=PreprocessConfig(56, 56), seed=0))


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (60, 80, 3), dtype=np.uint8) for _ in range(n)]


def test_observe_equals_policy_act_with_real_dt(policy: Policy) -> None:
    driver = Driver(policy, DriverConfig(limits=LimitsConfig(max_speed=100, min_speed=-100, max_steering=100)))
    stamps = [0, 40 * MS, 95 * MS, 150 * MS, 330 * MS]
    h = policy.initial_state(1)
    for i, (frame, stamp) in enumerate(zip(frames(5), stamps)):
        command = driver.observe(frame, stamp)
        dt = 0.05 if i == 0 else (stamp - stamps[i - 1]) / 1e9
        x = torch.from_numpy(preprocess(frame, policy.config.preprocess)).unsqueeze(0)
        with torch.no_grad():
            y, h = policy.act(x, h, torch.tensor([[dt]]))
        assert driver.last.dt_s == pytest.approx(dt)
        assert command.steering == pytest.approx(float(y[0, 0]), abs=1e-6)
        assert command.velocity == pytest.approx(float(y[0, 1]), abs=1e-6)
        assert command.stamp_ns == stamp


def test_split_at_features_equals_observe(policy: Policy) -> None:
    fused, split = Driver(policy), Driver(policy)
    for i, frame in enumerate(frames(6)):
        a = fused.observe(frame, i * 50 * MS)
        b = split.command_from_features(split.features(frame), i * 50 * MS)
        assert a == b


def test_time_backwards_and_gaps_reset_and_dt_is_clamped(policy: Policy) -> None:
    timing = TimingConfig(nominal_dt_s=0.05, min_dt_s=0.01, max_dt_s=0.2, reset_gap_s=1.0)
    driver = Driver(policy, DriverConfig(timing=timing))
    f = frames(1)[0]
    driver.observe(f, 1000 * MS)
    driver.observe(f, 1001 * MS)
    assert driver.last.dt_s == pytest.approx(0.01)  # clamped up
    driver.observe(f, 1500 * MS)
    assert driver.last.dt_s == pytest.approx(0.2)  # clamped down
    first = Driver(policy, DriverConfig(timing=timing)).observe(f, 0)
    after_back = driver.observe(f, 900 * MS)
    assert "backwards" in driver.last.event and after_back.steering == pytest.approx(first.steering, abs=1e-6)
    driver.observe(f, 950 * MS)
    after_gap = driver.observe(f, 5000 * MS)
    assert "gap" in driver.last.event and after_gap.steering == pytest.approx(first.steering, abs=1e-6)


def test_limits_and_steering_rate(policy: Policy) -> None:
    with torch.no_grad():
        policy.target_mean.copy_(torch.tensor([5.0, 9.0]))
    limits = LimitsConfig(max_speed=1.5, max_steering=0.6, max_steering_rate=2.0)
    driver = Driver(policy, DriverConfig(limits=limits))
    first = driver.observe(frames(1)[0], 0)
    assert first.velocity == 1.5 and first.steering == 0.6
    with torch.no_grad():
        policy.target_mean.copy_(torch.tensor([-5.0, -9.0]))
    second = driver.observe(frames(1)[0], 50 * MS)
    assert second.steering == pytest.approx(0.6 - 2.0 * 0.05) and second.velocity == 0.0


def test_non_finite_output_stops_and_resets(policy: Policy) -> None:
    driver = Driver(policy)
    f = frames(1)[0]
    driver.observe(f, 0)
    with torch.no_grad():
        policy.core.output_b.fill_(float("nan"))
    command = driver.observe(f, 50 * MS)
    assert command.velocity == 0.0 and command.steering == 0.0 and driver.last.fault
    assert torch.equal(driver.state, policy.initial_state(1)) and driver.last_stamp_ns is None


def test_wrong_feature_width_is_an_error(policy: Policy) -> None:
    with pytest.raises(ValueError, match="features"):
        Driver(policy).command_from_features(np.zeros(7, np.float32), 0)


def test_watchdog() -> None:
    dog = Watchdog(0.2)
    assert dog.expired(0)
    dog.feed(1000 * MS)
    assert not dog.expired(1150 * MS) and dog.expired(1201 * MS)
