"""``lnn-control inspect``: topics, counts, rates, gaps and the pairs that would train."""

from __future__ import annotations

import json

from data_helpers import ROS1_BAG, need, write_drive_bag

from lnn_control import cli

START = 1_700_000_000_000_000_000


def test_inspect_real_ros1_bag(capsys):
    assert cli.main(["inspect", str(need(ROS1_BAG))]) == 0
    out = capsys.readouterr().out
    assert "(rosbag1)" in out and "duration  0.539 s" in out and "messages  139" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("/camera/image_raw "))
    assert "sensor_msgs/msg/Image" in line and " 10 " in line
    assert "none: no command topic" in out


def test_inspect_shows_pairs_and_gaps(tmp_path, capsys):
    # 30 frames at 20 Hz, a 1.5 s gap after frame 9, commands missing for frames 20..29
    bag = write_drive_bag(
        tmp_path / "drive",
        n=30,
        log_of=lambda i: START + i * 50_000_000 + (1_500_000_000 if i >= 10 else 0),
        command_indices=range(20),
    )
    assert cli.main(["inspect", str(bag), "--tolerance", "0.1"]) == 0
    out = capsys.readouterr().out
    image_line = next(ln for ln in out.splitlines() if ln.startswith("/camera/image_raw "))
    assert "1.550 (0.45)" in image_line  # the gap, in seconds, 0.45 s into the bag
    pair_line = next(ln for ln in out.splitlines() if ln.startswith("/camera/image_raw  /teleop/cmd_vel"))
    assert pair_line.split()[2:6] == ["30", "22", "8", "0"]  # frames 20, 21 are within 0.1 s of command 19
    assert cli.main(["inspect", str(bag), "--json", "--no-decode", "--tolerance", "0.1"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["pairs"][0]["paired"] == 22 and info["pairs"][0]["frame_width"] == 32


def test_inspect_bad_bag_exit_status(tmp_path, capsys):
    good = write_drive_bag(tmp_path / "good", n=3)
    assert cli.main(["inspect", str(tmp_path / "missing"), str(good)]) == 1
    captured = capsys.readouterr()
    assert "missing: does not exist" in captured.err
    assert "good (mcap)" in captured.out
