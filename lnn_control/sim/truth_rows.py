"""Ground truth as a row of named numbers: what ``sim_node`` publishes on ``sim/truth`` (a Float64MultiArray whose
layout label lists the names, so a bag describes itself).

CarRacing's row is :data:`CAR_FIELDS`, in that order. Another backend's row is generic: sim time, episode, step,
the tick's reward, then every field of its :class:`~lnn_control.sim.base.Truth` subclass that is not one of the
car's track figures (tuples as ``name_0``, ``name_1``, ...; flags as 0/1), then the node's counters. The drone's
therefore carries ``position_3d_0..2``, ``attitude_0..2``, ``body_velocity_0..2``, ``target_position_0..2``,
``target_distance``, ``target_bearing``, ``collided``, ``success``, ...
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lnn_control.sim.base import Truth

#: The car's row: sim time (s), episode index, step in the episode, forward speed (m/s), reward of the tick, total
#: reward since reset, on track (1/0), lap progress (0..1), tiles visited, tiles of the track, laps completed, signed
#: offset from the centreline (m, + left), and two node counters since start: commands clamped or replaced, and
#: lockstep timeouts.
CAR_FIELDS = (
    "time",
    "episode",
    "step",
    "speed",
    "reward",
    "total_reward",
    "on_track",
    "lap_progress",
    "tiles_visited",
    "tiles_total",
    "laps_completed",
    "track_offset",
    "bad_commands",
    "timeouts",
)
HEAD = ("time", "episode", "step", "reward")
COUNTERS = ("bad_commands", "timeouts")
#: Truth fields that only a track has: left out of other backends' rows.
TRACK_ONLY = ("on_track", "lap_progress", "tiles_visited", "tiles_total", "laps_completed", "track_offset")


def _flat(name: str, value: Any) -> dict[str, float]:
    if isinstance(value, tuple):
        return {f"{name}_{i}": float(v) for i, v in enumerate(value)}
    return {name: float(value)}


def truth_row(truth: Truth, time_s: float, episode: int, step: int, reward: float, **counters: int) -> dict[str, float]:
    """The row of one published frame, in publishing order (see the module docstring)."""
    head = {"time": time_s, "episode": float(episode), "step": float(step), "reward": float(reward)}
    tail = {name: float(counters.get(name, 0)) for name in COUNTERS}
    if type(truth) is Truth:
        values = {**head, **tail}
        return {name: values[name] if name in values else float(getattr(truth, name)) for name in CAR_FIELDS}
    body: dict[str, float] = {}
    for f in dataclasses.fields(truth):
        if f.name not in TRACK_ONLY and f.name != "reward":
            body.update(_flat(f.name, getattr(truth, f.name)))
    return {**head, **body, **tail}
