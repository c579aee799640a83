"""The drone adapter's conversions and rules (lnn_control.drone_output) in simulated time: no ROS, no clock.

Times are integer ns; the timer runs at 20 Hz (50 ms) unless a test says otherwise. Each rule has a test that
fails without it. Frame cases use headings where a swapped axis or a wrong sign gives a different answer.
"""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from lnn_control.command import DRONE
from lnn_control.drone_output import (
    ACCEL,
    BODY,
    CLIMB,
    DESCENT,
    E_STOP,
    FENCE_CEILING,
    FENCE_FLOOR,
    FENCE_RADIUS,
    HOVER,
    INVALID,
    LOCAL_ENU,
    NO_COMMAND,
    NO_ODOMETRY,
    OK,
    PX4,
    PX4_OFFBOARD_MODE,
    SPEED,
    VERTICAL_ACCEL,
    YAW_ACCEL,
    YAW_RATE,
    BodyVelocity,
    DroneAdapterConfig,
    DroneRules,
    Pose,
    WorldVelocity,
    apply_geofence,
    body_to_enu,
    body_to_ned,
    clamp_velocity,
    command_problem,
    enu_to_body,
    mavros_setpoint,
    ned_yaw_from_enu,
    px4_setpoint,
    rate_limit,
    yaw_from_quaternion,
)

ROOT = Path(__file__).resolve().parents[1]
MS = 1_000_000
PERIOD = 50 * MS
HALF_PI = math.pi / 2
#: No rate limits: the command's own value comes out at once (the rate-limit tests set theirs).
FREE = DroneAdapterConfig(max_accel=0.0, max_vertical_accel=0.0, max_yaw_accel=0.0)
#: In the middle of the default fence (radius 20 m around 0, z in [0.3, 10]), facing east.
CENTRE = Pose(0.0, 0.0, 5.0, 0.0)


def close(a, b, tol: float = 1e-9) -> bool:
    return all(math.isclose(x, y, abs_tol=tol) for x, y in zip(a, b, strict=True))


def tup(v) -> tuple[float, ...]:
    if isinstance(v, BodyVelocity):
        return v.as_tuple()
    return tuple(getattr(v, f.name) for f in fields(v))


def flying(config: DroneAdapterConfig = FREE, pose: Pose | None = CENTRE, now: int = 0) -> DroneRules:
    rules = DroneRules(config)
    if pose is not None:
        rules.on_odometry(pose, now)
    return rules


def run(rules: DroneRules, command, start: int, steps: int, pose: Pose | None = CENTRE):
    """Send ``command`` and odometry every tick for ``steps`` ticks from ``start``; the decisions."""
    out = []
    for i in range(steps):
        now = start + i * PERIOD
        if pose is not None:
            rules.on_odometry(pose, now)
        if command is not None:
            rules.on_command(command, now)
        out.append(rules.step(now))
    return out


# -- ROS-free, and the yaml agrees ------------------------------------------------------------------------------------


def test_rules_import_no_ros():
    code = "import sys, lnn_control.drone_output; sys.exit(any(m.split('.')[0] == 'rclpy' for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_yaml_gives_every_parameter_its_default():
    doc = yaml.safe_load((ROOT / "config" / "drone_adapter.yaml").read_text())
    assert list(doc) == ["/**/drone_adapter_node"]
    given = doc["/**/drone_adapter_node"]["ros__parameters"]
    defaults = {f.name: getattr(DroneAdapterConfig(), f.name) for f in fields(DroneAdapterConfig)}
    assert given == defaults


def test_the_node_has_no_arming_or_mode_clients():
    source = (ROOT / "lnn_control" / "nodes" / "drone_adapter.py").read_text()
    for forbidden in ("create_client", "VehicleCommand", "CommandBool", "SetMode"):
        assert forbidden not in source, forbidden


# -- conversions ------------------------------------------------------------------------------------------------------


def test_yaw_from_quaternion():
    for yaw in (0.0, 0.3, HALF_PI, -2.5, math.pi - 1e-6):
        assert math.isclose(yaw_from_quaternion(0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)), yaw, abs_tol=1e-9)
    # rolled by 0.2 about x after a yaw of 1.0: q = q_yaw * q_roll
    cy, sy, cr, sr = math.cos(0.5), math.sin(0.5), math.cos(0.1), math.sin(0.1)
    x, y, z, w = cy * sr, sy * sr, sy * cr, cy * cr
    assert math.isclose(yaw_from_quaternion(x, y, z, w), 1.0, abs_tol=1e-9)


@pytest.mark.parametrize(
    ("yaw", "body", "enu"),
    [
        (0.0, (1.0, 0.0), (1.0, 0.0)),  # facing east: forward is east
        (0.0, (0.0, 1.0), (0.0, 1.0)),  # left is north
        (HALF_PI, (1.0, 0.0), (0.0, 1.0)),  # facing north: forward is north
        (HALF_PI, (0.0, 1.0), (-1.0, 0.0)),  # left is west
        (math.pi, (1.0, 0.5), (-1.0, -0.5)),
        (-HALF_PI, (2.0, 1.0), (1.0, -2.0)),  # facing south: forward south, left east
    ],
)
def test_body_to_enu(yaw, body, enu):
    w = body_to_enu(BodyVelocity(*body, 0.7, 0.2), yaw)
    assert close((w.east, w.north), enu)
    assert (w.up, w.yaw_rate) == (0.7, 0.2)
    assert close(tup(enu_to_body(w, yaw)), (*body, 0.7, 0.2))


@pytest.mark.parametrize(
    ("heading", "body", "north_east"),
    [
        (0.0, (1.0, 0.0), (1.0, 0.0)),  # facing north: forward is north
        (0.0, (0.0, 1.0), (0.0, -1.0)),  # left is west: east negative
        (HALF_PI, (1.0, 0.0), (0.0, 1.0)),  # facing east: forward is east
        (HALF_PI, (0.0, 1.0), (1.0, 0.0)),  # left is north
        (math.pi, (1.0, 0.5), (-1.0, 0.5)),  # facing south: left is east
    ],
)
def test_body_to_ned(heading, body, north_east):
    ned = body_to_ned(BodyVelocity(*body, 0.7, 0.2), heading)
    assert close((ned.north, ned.east), north_east)
    assert ned.down == -0.7, "up is negative down"
    assert ned.yawspeed == -0.2, "counter-clockwise about up is negative about down"


def test_ned_heading_of_an_enu_yaw():
    assert math.isclose(ned_yaw_from_enu(0.0), HALF_PI)  # facing east
    assert math.isclose(ned_yaw_from_enu(HALF_PI), 0.0)  # facing north
    assert math.isclose(ned_yaw_from_enu(math.pi), -HALF_PI)  # facing west
    # NED from the heading agrees with ENU from the yaw, axes swapped and up negated, at any yaw
    v = BodyVelocity(1.3, -0.4, 0.5, 0.1)
    for yaw in (-3.0, -1.1, 0.2, 0.9, 2.4):
        enu, ned = body_to_enu(v, yaw), body_to_ned(v, ned_yaw_from_enu(yaw))
        assert close((ned.north, ned.east, ned.down), (enu.north, enu.east, -enu.up))


def test_mavros_setpoint_local_enu_rotates_and_body_does_not():
    v = BodyVelocity(1.0, 0.0, 0.2, 0.3)
    sp = mavros_setpoint(v, LOCAL_ENU, HALF_PI)
    assert close(sp.linear, (0.0, 1.0, 0.2)) and sp.angular_z == 0.3 and sp.frame_id == "map"
    body = mavros_setpoint(v, BODY, HALF_PI)
    assert body.linear == (1.0, 0.0, 0.2) and body.angular_z == 0.3 and body.frame_id == "base_link"
    assert mavros_setpoint(HOVER, LOCAL_ENU, None).linear == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="yaw"):
        mavros_setpoint(v, LOCAL_ENU, None)


def test_px4_setpoint_is_ned_velocity_only():
    sp = px4_setpoint(BodyVelocity(1.0, 0.0, 0.5, 0.4), HALF_PI, 123)  # facing north in ENU
    assert sp.timestamp == 123
    assert close(sp.velocity, (1.0, 0.0, -0.5)) and sp.yawspeed == -0.4
    assert all(math.isnan(x) for x in (*sp.position, *sp.acceleration, sp.yaw)), "not controlled"
    facing_east = px4_setpoint(BodyVelocity(1.0, 1.0, 0.0, 0.0), 0.0, 0)
    assert close(facing_east.velocity, (1.0, 1.0, 0.0)), "forward east, left north"
    assert px4_setpoint(HOVER, None, 0).velocity == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="yaw"):
        px4_setpoint(BodyVelocity(1.0), None, 0)
    assert [k for k, on in PX4_OFFBOARD_MODE.items() if on] == ["velocity"]


# -- configuration ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"output": "ardupilot"}, "output"),
        ({"mavros_frame": "ned"}, "mavros_frame"),
        ({"geofence_floor": 5.0, "geofence_ceiling": 5.5}, "floor"),
        ({"geofence_margin": 3.0, "geofence_radius": 2.0}, "geofence_margin"),
    ],
)
def test_config_refuses_what_cannot_work(changes, match):
    with pytest.raises(ValueError, match=match):
        DroneAdapterConfig().replace(**changes)
    DroneAdapterConfig().replace(geofence=False, **{k: v for k, v in changes.items() if k.startswith("geofence")})


def test_which_setups_need_odometry():
    assert DroneAdapterConfig().needs_odometry
    assert DroneAdapterConfig(geofence=False).needs_odometry, "local_enu rotates by the odometry yaw"
    assert DroneAdapterConfig(geofence=False, output=PX4, mavros_frame=BODY).needs_odometry, "PX4 is NED world"
    assert not DroneAdapterConfig(geofence=False, mavros_frame=BODY).needs_odometry


# -- limits -----------------------------------------------------------------------------------------------------------


def test_horizontal_speed_is_limited_as_a_vector():
    v, acting = clamp_velocity(BodyVelocity(3.0, 4.0, 0.0, 0.0), DroneAdapterConfig(max_speed=2.0))
    assert close(tup(v), (1.2, 1.6, 0.0, 0.0)) and acting == (SPEED,)
    v, acting = clamp_velocity(BodyVelocity(1.2, -1.6, 0.0, 0.0), DroneAdapterConfig(max_speed=2.0))
    assert tup(v) == (1.2, -1.6, 0.0, 0.0) and acting == ()


def test_climb_descent_and_yaw_rate_limits():
    config = DroneAdapterConfig(max_climb=1.0, max_descent=0.5, max_yaw_rate=0.8)
    v, acting = clamp_velocity(BodyVelocity(0.0, 0.0, 2.0, -1.5), config)
    assert tup(v) == (0.0, 0.0, 1.0, -0.8) and acting == (CLIMB, YAW_RATE)
    v, acting = clamp_velocity(BodyVelocity(0.0, 0.0, -2.0, 1.5), config)
    assert tup(v) == (0.0, 0.0, -0.5, 0.8) and acting == (DESCENT, YAW_RATE)


def test_rate_limits_each_axis():
    config = DroneAdapterConfig(max_accel=2.0, max_vertical_accel=1.0, max_yaw_accel=4.0)
    v, acting = rate_limit(BodyVelocity(3.0, 4.0, 1.0, 1.0), HOVER, 0.1, config)
    assert close(tup(v), (0.12, 0.16, 0.1, 0.4)), "0.2 m/s horizontal along the change, 0.1 up, 0.4 rad/s"
    assert acting == (ACCEL, VERTICAL_ACCEL, YAW_ACCEL)
    v, acting = rate_limit(BodyVelocity(0.0, 0.0, -1.0, -1.0), BodyVelocity(0.0, 0.0, 0.5, 0.5), 0.1, config)
    assert close(tup(v), (0.0, 0.0, 0.4, 0.1)), "down and clockwise too"
    v, acting = rate_limit(BodyVelocity(0.1, 0.0, 0.05, 0.2), HOVER, 0.1, config)
    assert tup(v) == (0.1, 0.0, 0.05, 0.2) and acting == ()
    v, acting = rate_limit(BodyVelocity(3.0, 0.0, 1.0, 1.0), HOVER, 0.1, FREE)
    assert tup(v) == (3.0, 0.0, 1.0, 1.0) and acting == (), "0 disables"


def test_rules_ramp_up_at_the_acceleration_limit_and_hover_at_once():
    rules = flying(DroneAdapterConfig(max_accel=2.0))  # 0.1 m/s per 50 ms tick
    ramp = run(rules, DRONE.of(vx=1.0), 0, 12)
    speeds = [d.velocity.vx for d in ramp]
    assert close(speeds[:10], [0.1 * (i + 1) for i in range(10)]) and speeds[10:] == [1.0, 1.0]
    assert ACCEL in ramp[0].acting and ACCEL not in ramp[-1].acting
    stop = rules.step(12 * PERIOD + rules.timeout_ns + 1)
    assert stop.state == NO_COMMAND and stop.velocity == HOVER, "a hover is immediate"
    again = run(rules, DRONE.of(vx=1.0), 13 * PERIOD + rules.timeout_ns, 1)
    assert math.isclose(again[0].velocity.vx, 0.1, abs_tol=1e-6), "the ramp starts again from zero"


def test_a_stalled_timer_does_not_allow_a_big_step():
    rules = flying(DroneAdapterConfig(max_accel=2.0))
    rules.on_command(DRONE.of(vx=1.0), 0)
    rules.step(0)
    rules.on_odometry(CENTRE, 400 * MS)
    rules.on_command(DRONE.of(vx=1.0), 400 * MS)
    assert math.isclose(rules.step(400 * MS).velocity.vx, 0.1 + 2.0 * 2 * 0.05), "two periods' worth at most"


# -- the geofence -----------------------------------------------------------------------------------------------------


def fence(v: BodyVelocity, pose: Pose, **config):
    return apply_geofence(v, pose, DroneAdapterConfig(**config))


def test_geofence_inside_changes_nothing():
    v = BodyVelocity(1.0, 1.0, 1.0, 0.5)
    assert fence(v, Pose(10.0, 5.0, 5.0, 0.3)) == (v, ())


def test_geofence_removes_the_outward_component_near_the_radius():
    at_east_edge = Pose(19.6, 0.0, 5.0, 0.0)  # within the 0.5 m margin of the 20 m radius, facing east
    v, acting = fence(BodyVelocity(1.0, 0.5, 0.0, 0.3), at_east_edge)
    assert close(tup(v), (0.0, 0.5, 0.0, 0.3)) and acting == (FENCE_RADIUS,), "tangential and yaw kept"
    v, acting = fence(BodyVelocity(-1.0, 0.5, 0.0, 0.0), at_east_edge)
    assert tup(v) == (-1.0, 0.5, 0.0, 0.0) and acting == (), "pointing back in: kept"


def test_geofence_in_the_body_frame_of_a_turned_vehicle():
    facing_north = Pose(19.6, 0.0, 5.0, HALF_PI)  # at the east edge: outward (east) is the vehicle's right
    v, acting = fence(BodyVelocity(1.0, -1.0, 0.0, 0.0), facing_north)
    assert close(tup(v), (1.0, 0.0, 0.0, 0.0)) and acting == (FENCE_RADIUS,)
    v, _ = fence(BodyVelocity(1.0, 1.0, 0.0, 0.0), facing_north)
    assert close(tup(v), (1.0, 1.0, 0.0, 0.0)), "left is west, back in"


def test_geofence_outside_keeps_the_way_back_and_uses_home():
    outside = Pose(10.0 + 30.0 * math.cos(0.7), -5.0 + 30.0 * math.sin(0.7), 5.0, 1.0)
    outward = body_to_enu(BodyVelocity(1.0, 0.0, 0.0, 0.0), 1.0)
    radial = (math.cos(0.7), math.sin(0.7))
    v, acting = fence(BodyVelocity(1.0, 0.0, 0.0, 0.0), outside, home_x=10.0, home_y=-5.0)
    w = body_to_enu(v, 1.0)
    assert acting == (FENCE_RADIUS,)
    assert math.isclose(w.east * radial[0] + w.north * radial[1], 0.0, abs_tol=1e-9), "no outward part left"
    tangent = outward.east * -radial[1] + outward.north * radial[0]
    assert math.isclose(w.east * -radial[1] + w.north * radial[0], tangent), "tangential part kept"
    inward = enu_to_body(WorldVelocity(-radial[0], -radial[1], 0.0, 0.0), 1.0)
    assert fence(inward, outside, home_x=10.0, home_y=-5.0) == (inward, ())
    assert fence(BodyVelocity(1.0), Pose(19.6, 0.0, 5.0, 0.0), home_x=10.0)[1] == (), "the fence is around home"


def test_geofence_ceiling_and_floor():
    up, down = BodyVelocity(0.5, 0.0, 1.0, 0.0), BodyVelocity(0.5, 0.0, -1.0, 0.0)
    near_ceiling, near_floor = Pose(0.0, 0.0, 9.6, 0.0), Pose(0.0, 0.0, 0.7, 0.0)
    assert fence(up, near_ceiling) == (BodyVelocity(0.5, 0.0, 0.0, 0.0), (FENCE_CEILING,))
    assert fence(down, near_ceiling) == (down, ())
    assert fence(down, near_floor) == (BodyVelocity(0.5, 0.0, 0.0, 0.0), (FENCE_FLOOR,))
    assert fence(up, near_floor) == (up, ())
    assert fence(up, Pose(0.0, 0.0, 9.4, 0.0)) == (up, ()), "below ceiling - margin: free"


def test_rules_ramp_towards_what_the_fence_allows():
    edge = Pose(19.8, 0.0, 5.0, 0.0)
    rules = flying(DroneAdapterConfig(max_accel=2.0), pose=edge)
    decisions = run(rules, DRONE.of(vx=1.0, vy=1.0), 0, 12, pose=edge)
    assert all(d.velocity.vx == 0.0 for d in decisions), "not even a ramp's worth goes out"
    assert close([d.velocity.vy for d in decisions], [0.1 * (i + 1) for i in range(10)] + [1.0, 1.0]), \
        "the tangential part ramps at the full limit"
    assert FENCE_RADIUS in decisions[-1].acting


def test_rules_cut_an_outward_ramp_at_the_fence_at_once():
    rules = flying(DroneAdapterConfig(max_accel=2.0))
    assert math.isclose(run(rules, DRONE.of(vx=1.0), 0, 12)[-1].velocity.vx, 1.0)  # east at 1 m/s
    at_edge = run(rules, DRONE.of(vx=1.0), 12 * PERIOD, 1, pose=Pose(19.6, 0.0, 5.0, 0.0))[0]
    assert at_edge.velocity.vx == 0.0 and FENCE_RADIUS in at_edge.acting, "no deceleration ramp over the fence"
    back = run(rules, DRONE.of(vx=-1.0), 13 * PERIOD, 1, pose=Pose(19.6, 0.0, 5.0, 0.0))[0]
    assert math.isclose(back.velocity.vx, -0.1), "the way back in ramps from what went out"


def test_no_geofence_no_fence():
    rules = flying(FREE.replace(geofence=False), pose=Pose(100.0, 0.0, 50.0, 0.0))
    d = run(rules, DRONE.of(vx=1.0, vz=1.0), 0, 1, pose=Pose(100.0, 0.0, 50.0, 0.0))[0]
    assert d.state == OK and d.velocity == BodyVelocity(1.0, 0.0, 1.0, 0.0)


# -- timeouts, odometry -----------------------------------------------------------------------------------------------


def test_hover_until_the_first_command_and_after_the_timeout():
    rules = flying()
    first = rules.step(0)
    assert (first.state, first.velocity, first.changed) == (NO_COMMAND, HOVER, True)
    rules.on_command(DRONE.of(vx=1.0), 10 * MS)
    assert rules.step(20 * MS).velocity == BodyVelocity(1.0)
    rules.on_odometry(CENTRE, 500 * MS)
    assert rules.step(10 * MS + rules.timeout_ns).state == OK, "at the timeout still fresh"
    late = rules.step(10 * MS + rules.timeout_ns + 1)
    assert (late.state, late.velocity, late.changed, late.previous) == (NO_COMMAND, HOVER, True, OK)


def test_missing_or_stale_odometry_hovers_when_needed():
    rules = flying(pose=None)
    rules.on_command(DRONE.of(vx=1.0), 0)
    assert rules.step(0).state == NO_ODOMETRY
    rules.on_odometry(CENTRE, 10 * MS)
    rules.on_command(DRONE.of(vx=1.0), 20 * MS)
    assert rules.step(20 * MS).state == OK
    rules.on_command(DRONE.of(vx=1.0), 10 * MS + rules.odom_timeout_ns + 1)
    stale = rules.step(10 * MS + rules.odom_timeout_ns + 1)
    assert (stale.state, stale.velocity, stale.pose) == (NO_ODOMETRY, HOVER, None)


def test_non_finite_odometry_is_ignored():
    rules = flying(pose=None)
    assert "non-finite" in rules.on_odometry(Pose(math.nan, 0.0, 5.0, 0.0), 0)
    rules.on_command(DRONE.of(vx=1.0), 0)
    assert rules.step(0).state == NO_ODOMETRY


def test_body_frame_without_a_fence_flies_without_odometry():
    rules = flying(FREE.replace(geofence=False, mavros_frame=BODY), pose=None)
    rules.on_command(DRONE.of(vx=1.0), 0)
    d = rules.step(0)
    assert d.state == OK and d.pose is None and d.velocity == BodyVelocity(1.0)
    rules = flying(FREE.replace(geofence=False), pose=None)  # local_enu: the yaw is needed
    rules.on_command(DRONE.of(vx=1.0), 0)
    assert rules.step(0).state == NO_ODOMETRY


# -- refused commands -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "kwargs", "match"),
    [
        ((math.nan, 0.0, 0.0, 0.0), {}, "non-finite"),
        ((0.0, 0.0, math.inf, 0.0), {}, "non-finite"),
        ((0.0, 0.0, 0.0, 0.0), {"unused": (math.nan, 0.0)}, "non-finite"),
        ((11.0, 0.0, 0.0, 0.0), {}, "vx = 11"),
        ((0.0, 0.0, 0.0, 4.0), {}, "yaw_rate"),
        ((0.5, 0.0, 0.0, 0.0), {"unused": (0.1, 0.0)}, "roll/pitch"),
        ((0.5, 0.0, 0.0, 0.0), {"frame_id": "map"}, "frame 'map'"),
        ((0.5, 0.0, 0.0), {}, "4 values"),
    ],
)
def test_wrong_commands_give_hover_and_a_reason(values, kwargs, match):
    rules = flying()
    rules.on_command(DRONE.of(vx=1.0), 0)
    assert rules.step(0).state == OK
    problem = rules.on_command(values, 10 * MS, **kwargs)
    assert problem is not None and match in problem
    d = rules.step(20 * MS)
    assert (d.state, d.velocity) == (INVALID, HOVER) and rules.refused == 1
    assert rules.on_command(DRONE.of(vx=0.5), 30 * MS, frame_id="base_link") is None
    assert rules.step(40 * MS).state == OK, "a good command flies again"


def test_a_refused_command_then_silence_is_no_command():
    rules = flying()
    rules.on_command((math.nan, 0.0, 0.0, 0.0), 0)
    rules.on_odometry(CENTRE, rules.timeout_ns + 1)
    assert rules.step(rules.timeout_ns + 1).state == NO_COMMAND


def test_command_problem_accepts_a_good_command():
    assert command_problem((1.0, -1.0, 0.5, 0.2), frame_id="base_link", unused=(0.0, 0.0)) is None
    assert command_problem((1.0, -1.0, 0.5, 0.2), frame_id="") is None


# -- the emergency stop -----------------------------------------------------------------------------------------------


def test_e_stop_latches_until_the_service_releases_it():
    rules = flying()
    rules.on_command(DRONE.of(vx=1.0), 0)
    assert rules.step(0).state == OK
    assert rules.e_stop_topic(True) == "emergency stop engaged"
    d = rules.step(10 * MS)
    assert (d.state, d.velocity) == (E_STOP, HOVER)
    assert "ignored" in rules.e_stop_topic(False)
    for t in range(2, 10):
        rules.on_command(DRONE.of(vx=1.0), t * 10 * MS)
        assert rules.step(t * 10 * MS).state == E_STOP, "fresh commands do not release it"
    assert rules.e_stop_service(True) == "emergency stop engaged (it already was)"
    assert "released" in rules.e_stop_service(False)
    released = rules.step(100 * MS)
    assert (released.state, released.velocity) == (NO_COMMAND, HOVER), "what came before the release never flies"
    rules.on_command(DRONE.of(vx=1.0), 110 * MS)
    assert rules.step(110 * MS).velocity == BodyVelocity(1.0)
    assert rules.e_stop_service(False) == "emergency stop released (it already was)"


def test_e_stop_on_start():
    rules = flying(FREE.replace(e_stop_on_start=True))
    rules.on_command(DRONE.of(vx=1.0), 0)
    assert rules.step(0).state == E_STOP
    assert "not engaged" in flying().e_stop_topic(False)


def test_counters():
    rules = flying()
    rules.on_command(DRONE.of(vx=1.0), 0)
    rules.on_command((math.inf, 0.0, 0.0, 0.0), 1)
    assert (rules.commands, rules.refused) == (2, 1)
