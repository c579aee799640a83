"""The drone demonstrator's takeover rules (DAgger with interventions), on plain states in simulated time."""

from __future__ import annotations

import math

import numpy as np

from lnn_control.sim.drone.state import DroneState
from lnn_control.sim.drone.takeover import DroneTakeover, TakeoverConfig, clearance, target_bearing
from lnn_control.sim.drone.tasks import task_spec

TREE = np.array([[5.0, 0.0, 0.3]])  # a trunk of 0.3 m radius at (5, 0)


def state(t: float, x: float = 0.0, y: float = 0.0, z: float = 1.5, yaw: float = 0.0,
          target=(10.0, 0.0, 1.5)) -> DroneState:
    return DroneState(time_s=t, position=np.array([x, y, z]), velocity=np.zeros(3), yaw=yaw, yaw_rate=0.0,
                      target=np.array(target), target_velocity=np.zeros(3), obstacles=TREE,
                      task=task_spec("fly-to-target"), scene=None)  # type: ignore[arg-type]


def test_geometry():
    assert clearance(state(0, x=3.0), 0.3) == 5.0 - 3.0 - 0.3 - 0.3
    assert target_bearing(state(0, yaw=0.0, target=(0.0, 10.0, 1.5))) == math.pi / 2, "target to the left: +"
    assert abs(target_bearing(state(0, yaw=math.pi / 2, target=(0.0, 10.0, 1.5)))) < 1e-12


def test_takes_over_near_a_trunk_and_hands_back_when_clear_after_the_shortest_takeover():
    rules = DroneTakeover(TakeoverConfig(clearance=0.5, release_clearance=1.0, min_takeover_s=1.0, drone_radius=0.3))
    assert not rules.update(state(0.0, x=3.0))  # 1.4 m of clearance
    assert rules.update(state(0.1, x=4.0)), "0.4 m: take over"
    assert rules.reason == "near an obstacle" and rules.takeovers == 1
    assert rules.update(state(0.5, x=3.0)), "clear again, but not for min_takeover_s yet"
    assert rules.update(state(1.2, x=3.5)), "0.9 m: still below release_clearance"
    assert not rules.update(state(1.3, x=3.0)), "clear and long enough: hand back"
    assert rules.states == 3 and rules.takeovers == 1


def test_target_lost_and_the_altitude_band():
    rules = DroneTakeover(TakeoverConfig(min_takeover_s=0.0))
    assert rules.update(state(0.0, y=-3.0, yaw=math.radians(60), target=(0.0, -20.0, 1.5))) is True
    assert rules.reason == "target lost"
    assert rules.update(state(0.1, yaw=math.radians(20))), "20 degrees off: above release_bearing 15"
    assert not rules.update(state(0.2, yaw=math.radians(10)))
    assert rules.update(state(0.3, z=0.3)) and rules.reason == "too low"
    rules.reset()
    assert rules.update(state(0.4, z=6.0)) and rules.reason == "too high"
    rules.reset()
    assert not rules.active and not rules.update(state(0.5))
