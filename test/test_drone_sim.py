"""The MuJoCo drone backend: interface, determinism, domains, bad commands, ground truth and episode ends."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless; read when mujoco is imported

import logging
import math
import re

import numpy as np
import pytest

from lnn_control.command import CAR, DRONE
from lnn_control.sim.base import Simulator
from lnn_control.sim.drone import DOMAINS, TASKS, DroneSim, DroneSimConfig, DroneTruth
from lnn_control.sim.drone.domains import domain_style
from lnn_control.sim.drone.scene import generate_scene

SMALL = (32, 32)


def _geoms(model, prefix: str) -> dict[str, tuple]:
    out = {}
    for i in range(model.ngeom):
        g = model.geom(i)
        if g.name.startswith(prefix):
            out[g.name] = (int(g.type[0]), tuple(np.round(g.pos, 9)), tuple(np.round(g.size, 9)))
    return out


def test_interface_and_timing():
    with DroneSim(DroneSimConfig(frame_size=(24, 40))) as sim:
        assert isinstance(sim, Simulator)
        assert sim.name == "drone" and sim.schema is DRONE
        assert sim.dt_ns == 70_000_000 and sim.frame_size == (24, 40)
        obs = sim.reset(1)
        assert obs.frame.shape == (24, 40, 3) and obs.frame.dtype == np.uint8 and obs.stamp_ns == 0
        assert isinstance(obs.truth, DroneTruth)
        obs = sim.step(DRONE.of(vx=0.5))
        assert obs.stamp_ns == 70_000_000
    with DroneSim(DroneSimConfig(render=False, steps_per_frame=20)) as sim:
        assert sim.dt_ns == 100_000_000


def _run(seed: int, n: int = 12):
    with DroneSim(DroneSimConfig(frame_size=SMALL)) as sim:
        obs = sim.reset(seed)
        frames, truths = [obs.frame], [obs.truth]
        for k in range(n):
            obs = sim.step(DRONE.of(vx=1.0, vy=0.3 * math.sin(k), yaw_rate=0.4))
            frames.append(obs.frame)
            truths.append(obs.truth)
    return np.stack(frames), truths


def test_same_seed_same_frames_and_states():
    f1, t1 = _run(11)
    f2, t2 = _run(11)
    np.testing.assert_array_equal(f1, f2)
    assert t1 == t2
    f3, _ = _run(12)
    assert np.abs(f1.astype(int) - f3.astype(int)).mean() > 2.0


def test_scene_varies_with_seed_and_fits_the_task():
    counts = set()
    for seed in range(6):
        scene = generate_scene(seed, TASKS["fly-to-target"])
        counts.add(len(scene.obstacles))
        sx, sy, _ = scene.start
        tx, ty, _ = scene.targets[0]
        assert 6.0 - 1e-9 <= math.hypot(tx - sx, ty - sy) <= 15.0 * 1.02
        bearing = math.remainder(math.atan2(ty - sy, tx - sx) - scene.start_yaw, math.tau)
        assert abs(bearing) <= math.radians(30) + 1e-9
        # no trunk in the start's or the target's clear zone
        obs = scene.obstacle_array()
        assert np.min(np.hypot(obs[:, 0] - sx, obs[:, 1] - sy)) >= 2.0
        assert np.min(np.hypot(obs[:, 0] - tx, obs[:, 1] - ty)) >= 2.5
    assert len(counts) > 2
    far = generate_scene(0, TASKS["range"])
    d = math.hypot(far.targets[0][0] - far.start[0], far.targets[0][1] - far.start[1])
    assert 15.0 <= d <= 30.0 * 1.02


def test_domains_change_looks_not_geometry():
    seed = 4
    sims = {}
    frames = {}
    models = {}
    for name in DOMAINS:
        sim = DroneSim(DroneSimConfig(frame_size=SMALL, domain=name))
        obs = sim.reset(seed)
        frames[name] = obs.frame.astype(int)
        models[name] = sim.model
        sims[name] = sim.scene
        sim.close()
    summer = models["summer"]
    ref = {**_geoms(summer, "trunk_"), **_geoms(summer, "crown_"), **_geoms(summer, "target"),
           **_geoms(summer, "ground")}
    assert len(_geoms(summer, "trunk_")) > 10
    for name, model in models.items():
        assert sims[name] == sims["summer"]  # obstacles, start, targets, bounds: the same scene
        if name not in ("summer", "distractor"):  # the distractor domain adds one object, maybe out of view
            assert np.abs(frames[name] - frames["summer"]).mean() > 1.0, name
        if name == "urban":
            trunks, buildings = _geoms(summer, "trunk_"), _geoms(model, "building_")
            assert len(buildings) == len(trunks) and not _geoms(model, "crown_")
            for i, (_type, pos, size) in enumerate(trunks.values()):
                _btype, bpos, bsize = buildings[f"building_{i}"]
                assert bpos[:2] == pos[:2] and bsize[0] == size[0]
            continue
        got = {**_geoms(model, "trunk_"), **_geoms(model, "crown_"), **_geoms(model, "target"),
               **_geoms(model, "ground")}
        assert got == ref, name
    distractor = models["distractor"]
    assert not any(summer.geom(i).name.startswith("distractor") for i in range(summer.ngeom))
    d, t = distractor.geom("distractor"), distractor.geom("target_box")
    assert d.type[0] != t.type[0]
    np.testing.assert_array_equal(distractor.mat_rgba[d.matid[0]], distractor.mat_rgba[t.matid[0]])
    target = np.array(sims["distractor"].targets[0])
    assert np.linalg.norm(np.array(sims["distractor"].distractor)[:2] - target[:2]) > 2.5


def test_a_domain_mix_takes_only_the_named_parts_and_bad_mixes_are_named():
    mix = domain_style("summer+fall.ground+winter.trunks")
    summer, fall, winter = DOMAINS["summer"], DOMAINS["fall"], DOMAINS["winter"]
    assert mix.name == "summer+fall.ground+winter.trunks"
    assert (mix.ground, mix.ground_rgb, mix.trunk_rgb) == (fall.ground, fall.ground_rgb, winter.trunk_rgb)
    assert (mix.canopy_rgbs, mix.sky_top, mix.sun_dir) == (summer.canopy_rgbs, summer.sky_top, summer.sun_dir)
    assert domain_style("fall") is fall
    frames = {}
    for name in ("summer", "summer+fall.ground", "fall"):
        sim = DroneSim(DroneSimConfig(frame_size=SMALL, domain=name))
        frames[name] = sim.reset(4).frame[-4:].astype(int)  # the bottom rows: ground
        sim.close()
    near_fall = np.abs(frames["summer+fall.ground"] - frames["fall"]).mean()
    assert near_fall < np.abs(frames["summer"] - frames["fall"]).mean() / 3
    for bad, message in (("autumn", "unknown drone domain 'autumn'"), ("summer+fall", "<domain>.<part>"),
                         ("summer+fall.leaves", "ground, trunks"), ("summer+mars.sky", "'mars' in 'summer+mars.sky'")):
        with pytest.raises(ValueError, match=re.escape(message)):
            DroneSimConfig(domain=bad)


def test_bad_commands_hover_or_clamp_with_a_warning(caplog):
    with DroneSim(DroneSimConfig(render=False)) as sim:
        obs = sim.reset(2)
        p0 = np.array(obs.truth.position_3d)
        with caplog.at_level(logging.WARNING, logger="lnn_control.sim.drone.backend"):
            for _ in range(10):
                obs = sim.step(DRONE.of(vx=math.nan, vy=1.0))
            assert sim.last_command == DRONE.stop()
            assert "bad_command" in obs.info and "non-finite" in obs.info["bad_command"]
            assert np.linalg.norm(np.array(obs.truth.position_3d) - p0) < 0.05
            obs = sim.step(DRONE.of(vz=math.inf))
            assert sim.last_command.values == DRONE.stop().values
            obs = sim.step(CAR.of(velocity=3.0))
            assert sim.last_command.values == DRONE.stop().values
            obs = sim.step("forward")  # not a Command at all
            assert sim.last_command.values == DRONE.stop().values
            obs = sim.step(DRONE.of(vx=50.0))
            assert sim.last_command.vx == DRONE.field("vx").bounds[1]
            assert "clamped" in obs.info["bad_command"]
        assert sim.bad_commands == 14
        assert any("non-finite" in r.getMessage() for r in caplog.records)
    bounded = DroneSim(DroneSimConfig(render=False, command_bounds={"vx": (-1.0, 2.0)}))
    bounded.reset(2)
    bounded.step(DRONE.of(vx=3.0))
    assert bounded.last_command.vx == 2.0
    bounded.close()


def test_truth_and_collision_with_the_target():
    with DroneSim(DroneSimConfig(render=False)) as sim:
        obs = sim.reset(0)
        tr = obs.truth
        p, t = np.array(tr.position_3d), np.array(tr.target_position)
        assert tr.target_distance == pytest.approx(np.linalg.norm(t - p))
        assert abs(tr.target_bearing) <= math.radians(30) + 1e-6
        assert tr.position == (p[0], p[1]) and math.isnan(tr.time_to_target) and not tr.collided
        # turn to the target at its height, then ram it
        for _ in range(200):
            yaw_rate = 2.0 * obs.truth.target_bearing
            dz = obs.truth.target_position[2] - obs.truth.position_3d[2]
            obs = sim.step(DRONE.of(vx=2.0, vz=1.5 * dz, yaw_rate=yaw_rate))
            if obs.done:
                break
        assert obs.terminated and not obs.truncated
        assert obs.truth.collided and not obs.truth.success
        assert obs.info["event"] == "collision" and obs.info["contact"] in ("target_box", "target_stand")


def test_time_limit_truncates():
    with DroneSim(DroneSimConfig(render=False, time_limit_s=0.5)) as sim:
        obs = sim.reset(3)
        steps = 0
        while not obs.done:
            obs = sim.step(DRONE.stop())
            steps += 1
        assert obs.truncated and not obs.terminated and obs.info["event"] == "time_limit"
        assert steps == math.ceil(0.5 / 0.07)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_runs(task):
    with DroneSim(DroneSimConfig(task=task, frame_size=SMALL)) as sim:
        obs = sim.reset(7)
        for _ in range(5):
            obs = sim.step(DRONE.of(vx=0.2))
        assert obs.frame.std() > 1.0
        if task == "track":
            assert "tracked_fraction" in obs.info
            first = np.array(sim.scene.path[0])
            assert np.linalg.norm(np.array(obs.truth.target_position) - first) > 0.05  # it moves
