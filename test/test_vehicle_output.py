"""The car's output rules (lnn_control.vehicle_output) in simulated time: plain numbers, no ROS."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from lnn_control.vehicle_output import (
    ACKERMANN,
    INVALID,
    NO_COMMAND,
    NORMALISED,
    OK,
    SPEED_LIMIT,
    STEERING_LIMIT,
    STOP,
    TWIST_YAW_RATE,
    VehicleAdapterConfig,
    VehicleRules,
    bicycle_yaw_rate,
    setpoint,
)

ROOT = Path(__file__).resolve().parent.parent
MS = 1_000_000
CONFIG = VehicleAdapterConfig(max_steering_angle=0.4, wheelbase=0.33, max_speed=3.0, timeout=0.5)


def test_rules_import_no_ros():
    code = "import sys, lnn_control.vehicle_output; sys.exit(any(m.split('.')[0] == 'rclpy' for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_yaml_gives_every_parameter_its_default():
    doc = yaml.safe_load((ROOT / "config" / "vehicle_adapter.yaml").read_text())
    assert list(doc) == ["/**/vehicle_adapter_node"]
    given = doc["/**/vehicle_adapter_node"]["ros__parameters"]
    defaults = {f.name: getattr(VehicleAdapterConfig(), f.name) for f in fields(VehicleAdapterConfig)}
    assert given == defaults


# -- parameters -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"wheelbase": 0.0}, "wheelbase"),
        ({"wheelbase": -0.3}, "wheelbase"),
        ({"wheelbase": math.nan}, "wheelbase"),
        ({"max_steering_angle": 0.0}, "max_steering_angle"),
        ({"max_steering_angle": math.pi / 2}, "max_steering_angle"),
        ({"max_steering_angle": math.nan}, "max_steering_angle"),
        ({"mode": "twist"}, "mode"),
        ({"max_speed": math.inf}, "max_speed"),
        ({"timeout": 0.0}, "timeout"),
    ],
)
def test_bad_parameters_are_refused_by_name(changes, named):
    with pytest.raises(ValueError, match=f"'{named}'"):
        VehicleAdapterConfig().replace(**changes)


# -- conversions ------------------------------------------------------------------------------------------------------


def test_ackermann_angle_is_the_normalised_steering_times_the_full_lock():
    point, acting = setpoint(0.5, 1.2, CONFIG)
    assert math.isclose(point.steering_angle, 0.2) and point.speed == 1.2 and acting == ()
    left, _ = setpoint(1.0, 1.0, CONFIG)
    right, _ = setpoint(-1.0, 1.0, CONFIG)
    assert left.steering_angle == 0.4 and right.steering_angle == -0.4  # positive left (REP 103)


def test_yaw_rate_is_the_kinematic_bicycle():
    point, _ = setpoint(0.5, 1.5, CONFIG)
    assert math.isclose(point.yaw_rate, 1.5 * math.tan(0.2) / 0.33)
    assert point.twist(TWIST_YAW_RATE) == (1.5, point.yaw_rate)
    reverse, _ = setpoint(0.5, -1.5, CONFIG)
    assert math.isclose(reverse.yaw_rate, -point.yaw_rate), "reversing with left lock turns clockwise"
    assert setpoint(0.7, 0.0, CONFIG)[0].yaw_rate == 0.0, "no speed, no yaw rate"
    assert math.isclose(bicycle_yaw_rate(2.0, math.pi / 4, 0.5), 4.0)


def test_normalised_passes_the_command_through():
    point, _ = setpoint(-0.3, 2.0, CONFIG)
    assert point.twist(NORMALISED) == (2.0, -0.3)
    with pytest.raises(ValueError, match="sends no twist"):
        point.twist(ACKERMANN)


def test_limits_clamp_steering_and_speed_and_say_so():
    point, acting = setpoint(1.5, -7.0, CONFIG)
    assert point.steering == 1.0 and point.steering_angle == 0.4 and point.speed == -3.0
    assert acting == (STEERING_LIMIT, SPEED_LIMIT)


# -- rules in simulated time ------------------------------------------------------------------------------------------


def test_no_command_yet_is_a_stop():
    rules = VehicleRules(CONFIG)
    decision = rules.step(100 * MS)
    assert decision.setpoint == STOP and decision.state == NO_COMMAND and decision.changed
    assert decision.stamp_ns == 100 * MS


def test_a_command_goes_out_until_the_timeout_then_the_stop():
    rules = VehicleRules(CONFIG)
    assert rules.on_command(0.5, 1.0, 1_000 * MS) is None
    first = rules.on_command_step(1_000 * MS)
    assert first.state == OK and math.isclose(first.setpoint.steering_angle, 0.2)
    assert first.stamp_ns == 1_000 * MS, "an unstamped command goes out with the node clock"
    assert rules.step(1_500 * MS).state == OK, "exactly the timeout is still fresh"
    late = rules.step(1_500 * MS + 1)
    assert late.state == NO_COMMAND and late.setpoint == STOP and late.changed
    assert late.stamp_ns == 1_500 * MS + 1


def test_a_stamped_command_keeps_its_stamp_and_the_stop_has_the_node_clock():
    rules = VehicleRules(CONFIG)
    rules.on_command(0.1, 1.0, 2_000 * MS, stamp_ns=1_990 * MS)
    assert rules.step(2_100 * MS).stamp_ns == 1_990 * MS, "a repeat is the same command: same stamp"
    assert rules.step(3_000 * MS).stamp_ns == 3_000 * MS


def test_a_non_finite_command_stops_until_a_finite_one():
    rules = VehicleRules(CONFIG)
    rules.on_command(0.2, 1.0, 0)
    assert rules.step(10 * MS).state == OK
    for bad in ((math.nan, 1.0), (0.1, math.inf), (0.1, -math.inf)):
        assert "non-finite" in rules.on_command(*bad, 20 * MS)
        decision = rules.step(20 * MS)
        assert decision.state == INVALID and decision.setpoint == STOP
    assert rules.step(600 * MS).state == NO_COMMAND, "a stale refusal is a plain timeout"
    rules.on_command(0.2, 1.0, 700 * MS)
    assert rules.step(700 * MS).state == OK
    assert rules.refused == 3 and rules.commands == 5


def test_a_clock_that_goes_back_stops_the_car():
    rules = VehicleRules(CONFIG)
    rules.on_command(0.2, 1.0, 5_000 * MS)
    assert rules.step(1_000 * MS).state == NO_COMMAND  # sim time restarted: the command is not from this run


def test_the_timer_repeats_only_when_nothing_went_out_since_its_last_tick():
    rules = VehicleRules(CONFIG)
    assert rules.tick(0).state == NO_COMMAND  # nothing yet: the stop, at the timer's rate
    rules.on_command(0.5, 1.0, 10 * MS)
    rules.on_command_step(10 * MS)
    assert rules.tick(50 * MS) is None, "the command's answer went out since the last tick"
    repeat = rules.tick(100 * MS)
    assert repeat is not None and repeat.state == OK and math.isclose(repeat.setpoint.steering_angle, 0.2)
    rules.on_command(0.5, 1.0, 400 * MS)
    rules.on_command_step(400 * MS)
    stop = rules.tick(901 * MS)  # a command went out since the last tick, but the state changed: sent now
    assert stop is not None and stop.state == NO_COMMAND and stop.setpoint == STOP


def test_the_shutdown_stop():
    rules = VehicleRules(CONFIG)
    rules.on_command(0.5, 1.0, 0)
    rules.step(0)
    final = rules.stop_decision(10 * MS)
    assert final.setpoint == STOP and final.stamp_ns == 10 * MS
