"""``lnn-control demo``: a real, short drive of the shipped policies through ``up sim-drive`` and ``up
drone-sim-drive``, and their reports.

One demo run (shared by the tests here): the car for one episode of 120 frames on seed 1000, then the drone for one
flight of at most 60 frames (4.2 s) in ``summer`` on seed 1000, every node and the observer on a private DDS domain.
The reports are held to what the simulator itself logged (``up.log``, ``drone/up_summer.log``), to CarRacing's reward
rule, and the neuron-activity replays to the commands the simulator received.
"""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from ros_harness import free_domain_id

from lnn_control.paths import model_file
from lnn_control.ros.sim_observer import OUTCOMES

STEPS = 120
SEED = 1000
DRONE_STEPS = 60
DRONE_SEED = 1000


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """The demo's report folder and its finished process (asserted to have succeeded)."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    command = [
        sys.executable, "-m", "lnn_control.cli", "demo", "--episodes", "1", "--max-steps", str(STEPS),
        "--seed", str(SEED), "--out", str(out), "--domain-id", str(free_domain_id()), "--gif-seconds", "20",
        "--drone-domains", "summer", "--drone-seed", str(DRONE_SEED), "--drone-max-steps", str(DRONE_STEPS),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=360)
    logs = "\n".join(f"{p}:\n{p.read_text()}" for p in sorted(out.rglob("up*.log"))) if out.exists() else ""
    assert proc.returncode == 0, f"demo failed:\n{proc.stdout}\n{proc.stderr}\n{logs or '(no up.log)'}"
    return out, proc


def test_demo_drives_through_ros_and_writes_the_report(demo: tuple[Path, subprocess.CompletedProcess]) -> None:
    assert model_file("ltc_ncp_carracing.json").is_file(), "the shipped model is part of the package"
    out, proc = demo
    log = (out / "up.log").read_text()
    assert f"[demo] report: {out} (" in proc.stdout

    for name in ("episodes.csv", "summary.json", f"episode_{SEED}.gif", "timeseries.png", "activity.png", "up.log"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name

    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 1
    (row,) = summary["per_episode"]
    assert row["seed"] == SEED
    assert summary["meta"]["not_seen_over_ros"] == {str(SEED): {"frames": 0, "commands": 0, "truth": 0}}
    with open(out / "episodes.csv", newline="") as fh:
        (csv_row,) = list(csv.DictReader(fh))
    assert int(csv_row["steps"]) == row["steps"] and float(csv_row["reward"]) == row["reward"]

    # what the simulator logged about the same episode (episode 0 is the warm-up on seed 999)
    ended = re.search(rf"episode 1 \(seed {SEED}\) ended \((\w+)\) after (\d+) frames: score (-?[\d.]+), "
                      r"(\d+) lap\(s\), (\d+)/(\d+) tiles", log)
    assert ended, f"sim_node did not log the end of episode 1:\n{log}"
    reason, steps, score, laps, tiles, total = ended.groups()
    assert row["steps"] == int(steps) == STEPS and reason == "max_steps" and row["truncated"]
    assert abs(row["reward"] - float(score)) < 0.051
    assert row["laps"] == int(laps) == 0
    assert (row["tiles_visited"], row["tiles_total"]) == (int(tiles), int(total))
    # CarRacing: +1000/N per tile visited, -0.1 per frame; the policy drives, so it visits some tiles
    assert row["tiles_visited"] > 5
    assert abs(row["reward"] - (1000.0 * row["tiles_visited"] / row["tiles_total"] - 0.1 * row["steps"])) < 0.01
    assert 0.0 <= row["off_track_s"] <= STEPS * 0.02

    # the replay of the observed frames through Driver.observe gives the commands the simulator received
    replay = re.search(r"its steering equals the command the sim received on (\d+) of (\d+) frames", proc.stdout)
    assert replay, proc.stdout
    same, compared = int(replay[1]), int(replay[2])
    assert compared >= STEPS - 2 and same >= 0.9 * compared, proc.stdout

    with Image.open(out / f"episode_{SEED}.gif") as gif:
        assert gif.n_frames == -(-STEPS // 3)  # every third step of the whole episode
        assert gif.size[0] == 96 * 2


def test_demo_flies_the_drone_through_ros_and_writes_its_report(
    demo: tuple[Path, subprocess.CompletedProcess],
) -> None:
    out, proc = demo
    drone = out / "drone"
    assert f"[demo] report: {drone} (" in proc.stdout
    for name in ("episodes.csv", "summary.json", f"episode_{DRONE_SEED}.gif", "timeseries.png", "activity.png",
                 "up_summer.log"):
        assert (drone / name).is_file() and (drone / name).stat().st_size > 0, name
    log = (drone / "up_summer.log").read_text()

    summary = json.loads((drone / "summary.json").read_text())
    meta = summary["meta"]
    # the commands were read as the drive node's action: the shipped drone model's fields, and none was bad
    action = json.loads(model_file("ltc_ncp_drone.json").read_text())["config"]["action"]
    assert meta["action"] == [f["name"] for f in action["fields"]] == ["vx", "vy", "vz", "yaw_rate"]
    assert meta["controller"] == "ltc_ncp_drone" and meta["domains"] == ["summer"]
    assert meta["task"] == "fly-to-target"
    assert meta["sim_bad_commands"] == {"summer": 0}
    assert meta["not_seen_over_ros"] == {"summer": {str(DRONE_SEED): {"frames": 0, "commands": 0, "truth": 0}}}
    assert "sim_node.domain=summer" in meta["how"][0]

    assert summary["episodes"] == 1
    (row,) = summary["per_episode"]
    assert row["seed"] == DRONE_SEED and row["domain"] == "summer"
    assert row["outcome"] in OUTCOMES[:4], row  # success, collision, timeout, out_of_bounds
    assert summary["outcome_counts"] == {row["outcome"]: 1}
    assert 1 <= row["steps"] <= DRONE_STEPS
    assert (row["outcome"] == "timeout") == (row["steps"] == DRONE_STEPS and not row["success"]
                                              and not row["collided"])
    assert summary["success_count"] == int(row["success"])
    with open(drone / "episodes.csv", newline="") as fh:
        (csv_row,) = list(csv.DictReader(fh))
    assert csv_row["outcome"] == row["outcome"] and int(csv_row["steps"]) == row["steps"]

    # what sim_node logged about the flight (episode 0 is the warm-up on seed 999)
    ended = re.search(rf"episode 1 \(seed {DRONE_SEED}\) ended \((\w+)\) after (\d+) frames: success (\w+), "
                      r"collided (\w+), time_to_target_s (\S+), final_distance_m ([\d.]+), ended_by (\w*)", log)
    assert ended, f"sim_node did not log the end of episode 1:\n{log}"
    reason, steps, success, collided, ttt, distance, _ended_by = ended.groups()
    assert row["steps"] == int(steps)
    assert (row["success"], row["collided"]) == (success == "True", collided == "True")
    assert abs(row["final_distance_m"] - float(distance)) < 1e-6 and 0.0 < row["final_distance_m"] < 40.0
    assert row["truncated"] == (reason == "max_steps")
    if row["success"]:
        assert 0.0 < row["time_to_target_s"] == pytest.approx(float(ttt)) <= row["sim_time_s"] + 1e-6
    else:
        assert row["time_to_target_s"] is None and math.isnan(float(ttt))  # NaN in the log, null in strict JSON
    assert abs(row["sim_time_s"] - 0.07 * row["steps"]) < 1e-6

    # the replay of the flight's frames through Driver.observe gives every field the simulator received for that
    # frame (with the mux at 20 Hz a restamped repeat of the previous command answered first: 0 of 141 were equal)
    replay = re.search(r"its vx, vy, vz, yaw_rate equals the command the sim received on (\d+) of (\d+) frames"
                       r"(?:; on (\d+) more the sim stepped on its answer to the frame before)?", proc.stdout)
    assert replay, proc.stdout
    same, compared, previous = int(replay[1]), int(replay[2]), int(replay[3] or 0)
    assert compared >= row["steps"] - 2 and same >= 0.9 * compared and previous <= 0.1 * compared, proc.stdout
    assert meta["replay_equals_received"] == {"summer": {"same": same, "previous": previous, "compared": compared}}

    # the printed table has the drone's row
    assert re.search(rf"^{DRONE_SEED}\s+summer\s+{row['outcome']}\s", proc.stdout, re.MULTILINE), proc.stdout

    with Image.open(drone / f"episode_{DRONE_SEED}.gif") as gif:
        assert gif.n_frames == -(-row["steps"] // 3)  # every third frame of the whole flight
        assert gif.size[0] == 96 * 2 and gif.size[1] > 96 * 2
