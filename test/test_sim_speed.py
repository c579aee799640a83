"""The PI speed controller and sanitize_command, without the simulator."""

from __future__ import annotations

import logging
import math

import pytest

from lnn_control.command import CAR, DRONE, car
from lnn_control.sim.base import SAFE_COMMAND, RateLimitedLog, sanitize_command, wrap_angle
from lnn_control.sim.speed import SpeedController, SpeedControllerConfig


def test_gas_for_positive_error_brake_for_negative():
    pi = SpeedController()
    gas, brake = pi.update(20.0, 0.0, 0.02)
    assert gas > 0 and brake == 0
    pi.reset()
    gas, brake = pi.update(0.0, 30.0, 0.02)
    assert gas == 0 and 0 < brake <= SpeedControllerConfig().brake_max < 0.9


def test_anti_windup():
    cfg = SpeedControllerConfig()
    pi = SpeedController(cfg)
    for _ in range(5000):  # 100 s far below the target: saturated, the integral must not grow
        pi.update(50.0, 0.0, 0.02)
    assert pi.integral == 0.0
    for _ in range(5000):  # a small error the plant never removes: the integral term is clamped
        pi.update(10.0, 8.0, 0.02)
    assert abs(cfg.ki * pi.integral) <= cfg.i_max + 1e-12
    gas, brake = pi.update(10.0, 10.5, 0.02)  # just above the target: the clamped integral still bounded
    assert gas <= cfg.kp * -0.5 + cfg.i_max + 1e-9


def test_sanitize_command():
    bounds = {"velocity": (0.0, 10.0)}
    assert sanitize_command(car(0.2, 3.0), CAR, bounds) == (car(0.2, 3.0), None)
    for bad in (car(math.nan, 1.0), car(0.0, math.inf), None, "left", DRONE.of(vx=1.0)):
        cmd, why = sanitize_command(bad, CAR, bounds)
        assert cmd.values == SAFE_COMMAND.values and why
    cmd, why = sanitize_command(car(-3.0, 50.0, 7), CAR, bounds)
    assert cmd == car(-1.0, 10.0, 7) and "steering" in why and "velocity" in why
    cmd, why = sanitize_command(car(0.0, -2.0), CAR, bounds)
    assert cmd.velocity == 0.0 and "velocity" in why and "steering" not in why
    cmd, why = sanitize_command(DRONE.of(3, vx=50.0, yaw_rate=math.nan), DRONE)
    assert cmd == DRONE.stop(3) and "non-finite" in why, "a drone backend hovers on a NaN"
    cmd, why = sanitize_command(DRONE.of(3, vx=50.0), DRONE)
    assert cmd == DRONE.of(3, vx=10.0) and "vx=50 m/s not in [-10, 10]" in why


def test_rate_limited_log(caplog):
    log = RateLimitedLog(logging.getLogger("test_rate"), period_s=60.0)
    with caplog.at_level(logging.WARNING, logger="test_rate"):
        assert log.warning("k", "first")
        assert not log.warning("k", "second")
        assert log.warning("other", "third")
    assert [r.getMessage() for r in caplog.records] == ["first", "third"]


@pytest.mark.parametrize("angle", [0.0, 3.0, -3.0, 7.0, -7.0, math.pi, -math.pi])
def test_wrap_angle(angle):
    w = wrap_angle(angle)
    assert -math.pi < w <= math.pi and math.isclose(math.cos(w), math.cos(angle), abs_tol=1e-12)
