"""Driver: dt rules, resets, limits, non-finite outputs, the split at the features, the watchdog; the timing and crop
come from the model, and settings that differ from the model's are warned about by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lnn_control.command import DRONE
from lnn_control.driver import Driver, DriverConfig, TimingConfig, Watchdog, override_warning
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
    driver = Driver(policy, DriverConfig(limits={"velocity.max": 100, "velocity.min": -100, "steering.max": 1.0}))
    stamps = [0, 40 * MS, 95 * MS, 150 * MS, 330 * MS]
    h = policy.initial_state(1)
    for i, (frame, stamp) in enumerate(zip(frames(5), stamps)):
        command = driver.observe(frame, stamp)
        dt = 0.05 if i == 0 else (stamp - stamps[i - 1]) / 1e9
        x = torch.from_numpy(preprocess(frame, policy.config.preprocess)).unsqueeze(0)
        with torch.no_grad():
            y, h = policy.act(x, h, torch.tensor([[dt]]))
        assert driver.last.dt_s == pytest.approx(dt)
        assert driver.last.raw == pytest.approx([float(v) for v in y[0]], abs=1e-6)
        assert command.steering == pytest.approx(max(-1.0, min(1.0, float(y[0, 0]))), abs=1e-6)
        assert command.velocity == pytest.approx(float(y[0, 1]), abs=1e-6)
        assert command.stamp_ns == stamp


def test_split_at_features_equals_observe(policy: Policy) -> None:
    fused, split = Driver(policy), Driver(policy)
    for i, frame in enumerate(frames(6)):
        a = fused.observe(frame, i * 50 * MS)
        b = split.command_from_features(split.features(frame), i * 50 * MS)
        assert a == b


@pytest.mark.parametrize("source", ["model", "node"])
def test_time_backwards_and_gaps_reset_and_dt_is_clamped(policy: Policy, source: str) -> None:
    timing = TimingConfig(nominal_dt=0.05, min_dt=0.01, max_dt=0.2, reset_gap=1.0)
    if source == "model":  # the checkpoint's timing, what training used
        policy.config.timing = timing
        config = DriverConfig()
    else:  # the same values set as node parameters over the defaults
        config = DriverConfig(min_dt=0.01, max_dt=0.2)
    driver = Driver(policy, config)
    assert driver.timing == timing
    f = frames(1)[0]
    driver.observe(f, 1000 * MS)
    driver.observe(f, 1001 * MS)
    assert driver.last.dt_s == pytest.approx(0.01)  # clamped up
    driver.observe(f, 1500 * MS)
    assert driver.last.dt_s == pytest.approx(0.2)  # clamped down
    first = Driver(policy, config).observe(f, 0)
    after_back = driver.observe(f, 900 * MS)
    assert "backwards" in driver.last.event and after_back.steering == pytest.approx(first.steering, abs=1e-6)
    assert driver.last.dt_s == 0.05
    driver.observe(f, 900 * MS)
    assert "stood still" in driver.last.event  # a repeated stamp resets too
    driver.observe(f, 950 * MS)
    after_gap = driver.observe(f, 5000 * MS)
    assert "gap" in driver.last.event and "reset_gap" in driver.last.event
    assert after_gap.steering == pytest.approx(first.steering, abs=1e-6)
    driver.observe(f, 6000 * MS)  # exactly reset_gap: continues, clamped
    assert driver.last.event is None and driver.last.dt_s == pytest.approx(0.2)


def test_limits_and_steering_rate(policy: Policy) -> None:
    with torch.no_grad():
        policy.target_mean.copy_(torch.tensor([5.0, 9.0]))
    limits = {"velocity.max": 1.5, "steering.max": 0.6, "steering.min": -0.6, "steering.max_rate": 2.0}
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


def test_the_driver_runs_the_timing_and_crop_of_the_model(policy: Policy) -> None:
    policy.config.timing = TimingConfig(nominal_dt=0.02, min_dt=0.005, max_dt=0.1, reset_gap=0.3)
    policy.config.preprocess = PreprocessConfig(56, 56, crop_top=4)
    warnings: list[str] = []
    driver = Driver(policy, warn=warnings.append)
    assert driver.timing == policy.config.timing and driver.preprocess == policy.config.preprocess
    assert not warnings  # nothing set over the model's own
    f = frames(1)[0]
    driver.observe(f, 0)
    assert driver.last.dt_s == 0.02
    driver.observe(f, 400 * MS)  # above the model's reset_gap (below the old default 1.0)
    assert "reset_gap 0.3" in driver.last.event and driver.last.dt_s == 0.02


def test_an_override_warns_and_names_each_value_that_differs(policy: Policy) -> None:
    warnings: list[str] = []
    config = DriverConfig(nominal_dt=0.02, reset_gap=1.0, crop_bottom=12, limits={"velocity.max": 1.0})
    driver = Driver(policy, config, warn=warnings.append)
    (message,) = warnings
    assert "nominal_dt 0.02 (the model's 0.05)" in message and "crop_bottom 12 (the model's 0)" in message
    assert "reset_gap" not in message and "velocity" not in message  # equal to the model's; a limit is no override
    assert driver.timing == TimingConfig(nominal_dt=0.02) and driver.preprocess.crop_bottom == 12
    assert override_warning(config, policy.config) == message
    driver.config = DriverConfig(nominal_dt=0.02, reset_gap=1.0, crop_bottom=12, limits={"velocity.max": 2.0})
    assert len(warnings) == 1  # the same differences: not repeated
    driver.config = DriverConfig(min_dt=0.002)
    assert len(warnings) == 2 and "min_dt 0.002 (the model's 0.001)" in warnings[-1]
    assert driver.timing == TimingConfig(min_dt=0.002) and driver.preprocess == policy.config.preprocess


def test_settings_that_do_not_fit_the_models_timing_are_refused_unchanged(policy: Policy) -> None:
    driver = Driver(policy, DriverConfig(limits={"velocity.max": 1.0}))
    with pytest.raises(ValueError, match=r"min_dt <= nominal_dt <= max_dt.*min_dt 0\.9"):
        driver.config = DriverConfig(min_dt=0.9)  # above the model's max_dt 0.5
    assert driver.config == DriverConfig(limits={"velocity.max": 1.0}) and driver.timing == TimingConfig()
    with pytest.raises(ValueError, match="limits.velocity.min 1 must not exceed limits.velocity.max 0.5"):
        driver.config = DriverConfig(limits={"velocity.min": 1.0, "velocity.max": 0.5})
    with pytest.raises(ValueError, match=r"limits.steering.max 2 is outside the car's bounds of steering, \[-1, 1\]"):
        driver.config = DriverConfig(limits={"steering.max": 2.0})  # the schema's bounds
    assert driver.limits[1].max == 1.0, "a refused config changes nothing"
    with pytest.raises(ValueError, match="limit 'steering.top'"):
        DriverConfig(limits={"steering.top": 1.0})
    with pytest.raises(ValueError, match="limits.steering.max_rate must be >= 0"):
        DriverConfig(limits={"steering.max_rate": -1.0})


def test_the_limits_follow_the_models_action_schema() -> None:
    drone = Policy(PolicyConfig(action="drone", seed=3)).eval()
    warnings: list[str] = []
    config = DriverConfig(limits={"vx.max": 0.5, "vx.max_rate": 1.0, "yaw_rate.min": -0.2, "yaw_rate.max": 0.2,
                                  "velocity.max": 100.0, "vxx.max": 3.0})
    driver = Driver(drone, config, warn=warnings.append)
    assert driver.schema is DRONE and [lim.max for lim in driver.limits] == [0.5, 1.0, 1.0, 0.2]
    assert warnings == ["limits for vxx ignored: the model's action (drone) has vx, vy, vz, yaw_rate"], \
        "the car's velocity (a shared file) quietly, a name no vehicle has with a warning"
    with torch.no_grad():
        drone.target_mean.copy_(torch.tensor([5.0, -5.0, 5.0, -5.0]))
    first = driver.observe(frames(1)[0], 0)
    assert first.schema is DRONE and first.values == (0.5, -1.0, 1.0, -0.2)  # the drone's own default limits
    with torch.no_grad():
        drone.target_mean.copy_(torch.tensor([-5.0, 5.0, -5.0, 5.0]))
    second = driver.observe(frames(1)[0], 100 * MS)
    assert second.vx == pytest.approx(0.5 - 1.0 * 0.1), "vx moves at most max_rate x dt"
    assert (second.vy, second.vz, second.yaw_rate) == (1.0, -1.0, 0.2), "no rate limit on the others"
    with torch.no_grad():
        drone.core.output_b.fill_(float("nan"))
    assert driver.observe(frames(1)[0], 200 * MS) == DRONE.stop(200 * MS), "a non-finite output hovers"
