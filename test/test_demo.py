"""``lnn-control demo``: a real, short drive of the shipped policy through ``up sim-drive`` and its report.

One episode of 120 frames on seed 1000, every node and the observer on a private DDS domain. The report is held to
what the simulator itself logged (``up.log``), to CarRacing's reward rule, and the neuron-activity replay to the
commands the simulator received.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image
from ros_harness import free_domain_id

from lnn_control.paths import model_file

STEPS = 120
SEED = 1000


def test_demo_drives_through_ros_and_writes_the_report(tmp_path: Path) -> None:
    assert model_file("ltc_ncp_carracing.json").is_file(), "the shipped model is part of the package"
    out = tmp_path / "demo"
    command = [
        sys.executable, "-m", "lnn_control.cli", "demo", "--episodes", "1", "--max-steps", str(STEPS),
        "--seed", str(SEED), "--out", str(out), "--domain-id", str(free_domain_id()), "--gif-seconds", "20",
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=240)
    log = (out / "up.log").read_text() if (out / "up.log").exists() else "(no up.log)"
    assert proc.returncode == 0, f"demo failed:\n{proc.stdout}\n{proc.stderr}\nup.log:\n{log}"
    assert f"[demo] report: {out}" in proc.stdout

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
    replay = re.search(r"equals the command the sim received on (\d+) of (\d+) frames", proc.stdout)
    assert replay, proc.stdout
    same, compared = int(replay[1]), int(replay[2])
    assert compared >= STEPS - 2 and same >= 0.9 * compared, proc.stdout

    with Image.open(out / f"episode_{SEED}.gif") as gif:
        assert gif.n_frames == -(-STEPS // 3)  # every third step of the whole episode
        assert gif.size[0] == 96 * 2
