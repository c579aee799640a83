"""A camera quadrotor in seeded MuJoCo forests, behind the :class:`~lnn_control.sim.base.Simulator` interface.

- :mod:`~lnn_control.sim.drone.airframe`: ``Airframe`` (mass, rotors, limits);
- :mod:`~lnn_control.sim.drone.flight`: ``FlightController`` and ``Mixer`` (the autopilot, pure numpy);
- :mod:`~lnn_control.sim.drone.scene`: ``generate_scene`` (geometry from a seed and a task);
- :mod:`~lnn_control.sim.drone.domains`: ``DOMAINS`` (looks: summer, fall, winter, urban, dusk, fog, distractor);
- :mod:`~lnn_control.sim.drone.tasks`: ``TASKS`` (fly-to-target, range, hike, track) and the judge;
- :mod:`~lnn_control.sim.drone.model`: the MJCF; :mod:`~lnn_control.sim.drone.render`: offscreen frames;
- :mod:`~lnn_control.sim.drone.backend`: ``DroneSim`` and ``DroneSimConfig``;
- :mod:`~lnn_control.sim.drone.state`: ``DroneTruth`` and ``DroneState`` (privileged);
- :mod:`~lnn_control.sim.drone.expert`: ``DroneExpert`` (the demonstrator).

Needs ``mujoco``; imports neither ROS nor torch. Rendering is headless: ``MUJOCO_GL`` defaults to ``egl`` here
(Mesa's EGL renders on the CPU without a display); set it to ``osmesa`` or ``glfw`` before the first import for
another.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # read when mujoco is first imported, below

from lnn_control.sim.drone.backend import DroneSim, DroneSimConfig
from lnn_control.sim.drone.domains import DOMAINS
from lnn_control.sim.drone.expert import DroneExpert, DroneExpertConfig
from lnn_control.sim.drone.state import DroneState, DroneTruth
from lnn_control.sim.drone.tasks import TASKS

__all__ = [
    "DOMAINS",
    "TASKS",
    "DroneExpert",
    "DroneExpertConfig",
    "DroneSim",
    "DroneSimConfig",
    "DroneState",
    "DroneTruth",
]
