"""DDS environment for processes lnn_control starts (no rclpy import here).

Tests, benchmarks and demos keep every packet on this machine: ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, a
``ROS_DOMAIN_ID`` of their own and the loopback-only Fast DDS profile ``config/fastdds_local.xml``. On a robot the
user's settings win: :func:`robot_env` only fills in the shared-memory profile when none is set.

Fast DDS 2.x (ROS 2 Humble and Jazzy) reads ``FASTRTPS_DEFAULT_PROFILES_FILE``; Fast DDS 3.x (Kilted and later) reads
``FASTDDS_DEFAULT_PROFILES_FILE``. Measured here with the Jazzy wheels (Fast DDS 2.14.5): with only the FASTDDS name
set, the profile is silently ignored (512 KB segments, 640x480 frames lost); so both names are always set together.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping

from lnn_control.paths import config_file

RMW = "rmw_fastrtps_cpp"
#: Fast DDS 3.x name first, then the Fast DDS 2.x name that Humble and Jazzy read.
PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def local_env(domain_id: int | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a process whose DDS traffic must stay on this machine.

    ``domain_id`` defaults to a random id in 1..100 (each run its own); the profile allows only shared memory and
    loopback UDP.
    """
    env = dict(os.environ if base is None else base)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_DOMAIN_ID"] = str(random.randint(1, 100) if domain_id is None else domain_id)
    env["RMW_IMPLEMENTATION"] = RMW
    for name in PROFILE_VARS:
        env[name] = str(config_file("fastdds_local.xml"))
    env.pop("ROS_STATIC_PEERS", None)
    env.pop("ROS_LOCALHOST_ONLY", None)
    return env


def robot_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for ``lnn-control up`` on a robot: the 16 MiB shared-memory profile unless the user set one."""
    env = dict(os.environ if base is None else base)
    chosen = next((env[name] for name in PROFILE_VARS if env.get(name)), str(config_file("fastdds.xml")))
    for name in PROFILE_VARS:
        env.setdefault(name, chosen)
    env.setdefault("RMW_IMPLEMENTATION", RMW)
    return env


def apply(env: Mapping[str, str]) -> None:
    """Put ``env``'s DDS variables into this process's environment (call before ``rclpy.init``)."""
    for key in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID", "RMW_IMPLEMENTATION", *PROFILE_VARS):
        if key in env:
            os.environ[key] = env[key]
