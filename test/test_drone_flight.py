"""The drone's autopilot: mixer, sign conventions and step responses in real MuJoCo physics (no rendering)."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless; read when mujoco is imported

import math

import numpy as np
import pytest

from lnn_control.command import DRONE
from lnn_control.sim.drone.airframe import Airframe
from lnn_control.sim.drone.backend import DroneSim, DroneSimConfig
from lnn_control.sim.drone.flight import FlightController, FlightState, Mixer
from lnn_control.sim.drone.scene import ForestParams

SEED = 5


@pytest.fixture(scope="module")
def sim():
    s = DroneSim(DroneSimConfig(render=False, time_limit_s=600.0, forest=ForestParams(max_trees=0)))  # an open field
    yield s
    s.close()


def _fly(sim: DroneSim, command, seconds: float) -> list:
    obs = sim.reset(SEED)
    trace = [obs.truth]
    for _ in range(int(round(seconds / (sim.dt_ns * 1e-9)))):
        obs = sim.step(command)
        assert not obs.info.get("collided"), obs.info
        trace.append(obs.truth)
    return trace


def test_diagonal_rotors_share_a_spin_sign():
    rotors = Airframe().rotors
    for x, y, spin in rotors:
        partner = next(r for r in rotors if r[0] == -x and r[1] == -y)
        assert partner[2] == spin
        neighbour = next(r for r in rotors if r[0] == x and r[1] == -y)
        assert neighbour[2] == -spin


def test_mixer_hover_and_saturation():
    af = Airframe()
    mixer = Mixer(af)
    hover = mixer.mix(af.mass * 9.81, np.zeros(3))
    np.testing.assert_allclose(hover, af.hover_thrust, rtol=1e-9)
    # a pure yaw torque is produced by the allocation matrix exactly
    u = mixer.mix(af.mass * 9.81, np.array([0.0, 0.0, 0.05]))
    np.testing.assert_allclose(af.allocation() @ u, [af.mass * 9.81, 0, 0, 0.05], atol=1e-9)
    wild = mixer.mix(80.0, np.array([5.0, -5.0, 3.0]))
    assert np.all(wild >= 0) and np.all(wild <= af.max_thrust)


def test_controller_tilts_nose_down_for_forward_command():
    ctl = FlightController()
    state = FlightState(np.zeros(3), np.eye(3), np.zeros(3))
    u = ctl.update(np.array([1.0, 0.0, 0.0, 0.0]), state, 0.005)
    assert ctl.last_torque[1] > 0  # +pitch about +y (left) lowers the nose in FLU
    front = u[[i for i, r in enumerate(ctl.airframe.rotors) if r[0] > 0]].sum()
    rear = u[[i for i, r in enumerate(ctl.airframe.rotors) if r[0] < 0]].sum()
    assert rear > front
    u = ctl.update(np.array([0.0, 0.0, 0.0, 1.0]), state, 0.005)
    assert ctl.last_torque[2] > 0  # counter-clockwise yaw torque
    spins = np.array([r[2] for r in ctl.airframe.rotors])
    assert u[spins > 0].sum() > u[spins < 0].sum()


def _settled(values: np.ndarray, want: float, tol: float) -> bool:
    return bool(np.all(np.abs(values - want) <= tol * abs(want)))


def test_vx_step_settles_and_holds_altitude(sim):
    trace = _fly(sim, DRONE.of(vx=1.5), 4.0)
    vx = np.array([t.body_velocity[0] for t in trace])
    t = np.arange(len(trace)) * sim.dt_ns * 1e-9
    assert _settled(vx[t >= 2.0], 1.5, 0.10), vx[t >= 2.0]
    z = np.array([t.position_3d[2] for t in trace])
    assert np.max(np.abs(z - z[0])) < 0.15
    tilt = np.array([max(abs(t.attitude[0]), abs(t.attitude[1])) for t in trace])
    assert tilt.max() < math.radians(35)


def test_vz_step_climbs_and_settles(sim):
    trace = _fly(sim, DRONE.of(vz=0.6), 3.0)
    vz = np.array([t.body_velocity[2] for t in trace])
    t = np.arange(len(trace)) * sim.dt_ns * 1e-9
    assert _settled(vz[t >= 2.0], 0.6, 0.10), vz[t >= 2.0]
    assert trace[-1].position_3d[2] - trace[0].position_3d[2] > 1.2


def test_yaw_rate_step_turns_counter_clockwise(sim):
    trace = _fly(sim, DRONE.of(yaw_rate=0.8), 3.0)
    rate = np.array([t.yaw_rate for t in trace])
    t = np.arange(len(trace)) * sim.dt_ns * 1e-9
    assert _settled(rate[t >= 2.0], 0.8, 0.10), rate[t >= 2.0]
    turned = math.remainder(trace[-1].heading - trace[0].heading, math.tau)
    assert turned > 0.8 * 0.8 * 3.0 - 0.3
    drift = np.hypot(trace[-1].position_3d[0] - trace[0].position_3d[0],
                     trace[-1].position_3d[1] - trace[0].position_3d[1])
    assert drift < 0.2


def test_plus_vy_moves_left(sim):
    trace = _fly(sim, DRONE.of(vy=1.0), 2.0)
    start, end, yaw = trace[0].position_3d, trace[-1].position_3d, trace[0].heading
    dx, dy = end[0] - start[0], end[1] - start[1]
    left = -math.sin(yaw) * dx + math.cos(yaw) * dy
    forward = math.cos(yaw) * dx + math.sin(yaw) * dy
    assert left > 1.2 and abs(forward) < 0.2


def test_hover_stays_put(sim):
    trace = _fly(sim, DRONE.stop(), 3.0)
    p0, p1 = np.array(trace[0].position_3d), np.array(trace[-1].position_3d)
    assert np.linalg.norm(p1 - p0) < 0.05
