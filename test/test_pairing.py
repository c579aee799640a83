"""Frames paired with the command in force, for every command type; the skips counted; bad bags refused by name."""

from __future__ import annotations

import math

import numpy as np
import pytest
from data_helpers import (
    CMD_TOPIC,
    IMAGE_TOPIC,
    ROS1_BAG,
    frame_pixels,
    jpeg_bytes,
    need,
    steering_of,
    velocity_of,
    write_drive_bag,
)

from lnn_control.data.bags import BagError
from lnn_control.data.labels import CommandConfig, CommandError, command_from_msg
from lnn_control.data.pairing import PairingConfig, count_pairs, pair_frames

START = 1_700_000_000_000_000_000


@pytest.mark.parametrize("command", ["twist", "twist_stamped", "joy", "ackermann"])
def test_every_command_type_pairs_each_frame_with_its_command(tmp_path, command):
    path = write_drive_bag(tmp_path / command, n=12, command=command)
    pairer = pair_frames(path)
    pairs = list(pairer)
    assert [p.index for p in pairs] == list(range(12))
    for p in pairs:
        np.testing.assert_array_equal(p.frame, frame_pixels(p.index))
        assert p.command.steering == pytest.approx(steering_of(p.index), abs=1e-6)
        assert p.command.velocity == pytest.approx(velocity_of(p.index), rel=1e-6)
        assert p.stamp_ns == START + p.index * 50_000_000
    rep = pairer.report
    assert (rep.frames, rep.paired, rep.skipped_no_command, rep.skipped_undecodable) == (12, 12, 0, 0)
    assert rep.image_topic == IMAGE_TOPIC and rep.command_topic == CMD_TOPIC
    assert (rep.frame_width, rep.frame_height) == (32, 24)


def test_joy_axis_mapping_and_ackermann_scale(tmp_path):
    joy = write_drive_bag(tmp_path / "joy", n=3, command="joy")  # axes = [steering, velocity, 0, 0]
    cfg = PairingConfig(commands=CommandConfig(joy_steering_axis=1, joy_velocity_axis=0, joy_velocity_scale=2.0))
    pairs = list(pair_frames(joy, cfg))
    assert pairs[2].command.steering == pytest.approx(velocity_of(2) if velocity_of(2) <= 1 else 1.0)  # clipped
    assert pairs[2].command.velocity == pytest.approx(2.0 * steering_of(2))
    ack = write_drive_bag(tmp_path / "ack", n=3, command="ackermann")  # steering_angle = steering * 0.5 rad
    cfg = PairingConfig(commands=CommandConfig(ackermann_max_steering_angle=1.0, clip_steering=False))
    assert list(pair_frames(ack, cfg))[0].command.steering == pytest.approx(steering_of(0) * 0.5)
    bad = PairingConfig(commands=CommandConfig(joy_steering_axis=9))
    rep = count_pairs(joy, bad)
    assert rep.paired == 0 and rep.bad_commands == 3 and rep.skipped_no_command == 3
    assert "Joy message has 4 axes; joy_steering_axis 9 is out of range" in rep.errors[0]


def test_command_from_msg_units_and_errors():
    from data_helpers import command_msg, jazzy

    store = jazzy()
    twist = command_msg(store, "twist", 0, 0.4, 2.5)
    cmd = command_from_msg(twist, "geometry_msgs/Twist", stamp_ns=7)
    assert (cmd.steering, cmd.velocity, cmd.stamp_ns) == (pytest.approx(0.4), 2.5, 7)
    assert command_from_msg(twist).velocity == 2.5  # type from the rosbags message itself
    twist.linear.x = math.nan
    with pytest.raises(CommandError, match="non-finite"):
        command_from_msg(twist, "geometry_msgs/msg/Twist")
    with pytest.raises(CommandError, match="unsupported command type 'std_msgs/msg/String'"):
        command_from_msg(object(), "std_msgs/msg/String")


def test_tolerance_and_latest_command_at_or_before(tmp_path):
    # commands only for frames 0..4 and 10..11; 50 ms apart, tolerance 0.12 s covers two frames after a command
    path = write_drive_bag(tmp_path / "b", n=12, command_indices=[0, 1, 2, 3, 4, 10, 11])
    pairer = pair_frames(path, PairingConfig(tolerance_s=0.12))
    pairs = {p.index: p for p in pairer}
    assert sorted(pairs) == [0, 1, 2, 3, 4, 5, 6, 10, 11]
    assert pairs[6].command.steering == pytest.approx(steering_of(4))  # latest at or before, never a later one
    assert pairer.report.skipped_no_command == 3  # frames 7, 8, 9
    # replay wants every frame: the unpaired ones come with command None, and the counts stay the same
    every = pair_frames(path, PairingConfig(tolerance_s=0.12), all_frames=True)
    assert [p.command is None for p in every] == [i in (7, 8, 9) for i in range(12)]
    assert (every.report.paired, every.report.skipped_no_command) == (9, 3)
    # a command stamped just after each frame is never used for it
    late = write_drive_bag(tmp_path / "late", n=5, command_lead_ns=-10_000_000)
    pairs = list(pair_frames(late))
    assert [p.index for p in pairs] == [1, 2, 3, 4]
    assert pairs[0].command.steering == pytest.approx(steering_of(0))


def test_header_stamp_falls_back_to_log_time_when_zero_and_log_mode(tmp_path):
    path = write_drive_bag(tmp_path / "z", n=4, stamp_of=lambda i: 0)  # every header stamp unset
    pairs = list(pair_frames(path))
    assert [p.stamp_ns for p in pairs] == [START + i * 50_000_000 for i in range(4)]
    # header stamps on another clock: header pairing works, log pairing uses log times
    shifted = write_drive_bag(tmp_path / "s", n=4, stamp_of=lambda i: 5_000_000_000 + i * 50_000_000)
    assert [p.stamp_ns for p in pair_frames(shifted)][:2] == [5_000_000_000, 5_050_000_000]
    assert [p.stamp_ns for p in pair_frames(shifted, PairingConfig(stamp_source="log"))][0] == START


def test_different_clocks_give_a_hint(tmp_path):
    # Twist has no header: commands on log time, frames on a header clock 1000 s away -> nothing pairs
    path = write_drive_bag(tmp_path / "c", n=4, command="twist", stamp_of=lambda i: START - 10**12 + i * 50_000_000)
    rep = count_pairs(path)
    assert rep.paired == 0 and "different clocks? try stamp_source='log'" in rep.hint
    assert count_pairs(path, PairingConfig(stamp_source="log")).paired == 4


def test_undecodable_frames_are_counted_and_skipped(tmp_path):
    good = jpeg_bytes(frame_pixels(0))

    def data(i):
        return good[: len(good) // 2] if i in (2, 5) else good

    path = write_drive_bag(tmp_path / "j", n=8, image="jpeg", image_data_of=data)
    pairer = pair_frames(path)
    assert [p.index for p in pairer] == [0, 1, 3, 4, 6, 7]
    rep = pairer.report
    assert rep.skipped_undecodable == 2 and rep.paired == 6
    assert rep.errors[0].startswith(f"{IMAGE_TOPIC} frame 2") and "corrupt or truncated JPEG" in rep.errors[0]
    assert "2 undecodable" in rep.summary()


def test_all_frames_undecodable_is_an_error_naming_bag_and_topic(tmp_path):
    path = write_drive_bag(tmp_path / "enc", n=3, encoding_of=lambda i: "xyz")
    with pytest.raises(BagError, match=r"enc: topic /camera/image_raw: none of the frames decodes.*encoding 'xyz'"):
        count_pairs(path)
    assert count_pairs(path, decode=False).paired == 3  # without decoding the pairs still count


def test_step_size_mismatch_in_a_bag_is_named(tmp_path):
    path = write_drive_bag(tmp_path / "st", n=3, image_data_of=lambda i: bytes(100))
    with pytest.raises(BagError, match=r"topic /camera/image_raw: .*data has 100 bytes but step\*height is 2304"):
        count_pairs(path)


def test_non_monotonic_stamps(tmp_path):
    stamps = [0, 1, 2, 1, 4]  # frame header stamps; Twist commands go by log time, which is monotonic
    path = write_drive_bag(tmp_path / "nm", n=5, command="twist", stamp_of=lambda i: START + stamps[i] * 50_000_000)
    with pytest.raises(BagError, match=r"nm: topic /camera/image_raw: non-monotonic stamps: frame 3 .*0.050 s before"):
        count_pairs(path)
    assert count_pairs(path, PairingConfig(stamp_source="log")).paired == 5
    # duplicate stamps are dropped and counted, not an error
    dup = write_drive_bag(tmp_path / "dup", n=4, stamp_of=lambda i: START + min(i, 2) * 50_000_000)
    rep = count_pairs(dup)
    assert rep.skipped_duplicate_stamp == 1 and rep.paired == 3


def test_non_monotonic_command_stamps(tmp_path):
    # header stamps of frames fine, but commands use the same stamps with one going backwards
    order = [0, 1, 3, 2]
    path = write_drive_bag(tmp_path / "cm", n=4, stamp_of=lambda i: START + order[i] * 50_000_000)
    with pytest.raises(BagError, match=r"topic /teleop/cmd_vel: non-monotonic stamps: command 3"):
        count_pairs(path)


def test_mismatched_image_sizes(tmp_path):
    path = write_drive_bag(tmp_path / "sz", n=4, size_of=lambda i: (32, 24) if i < 2 else (16, 12))
    with pytest.raises(BagError, match=r"sz: topic /camera/image_raw: mismatched image sizes: frame 2 is 16x12 but"):
        count_pairs(path)
    with pytest.raises(BagError, match="mismatched image sizes"):
        count_pairs(path, decode=False)  # raw Image sizes are checked without decoding


def test_topic_choice_errors(tmp_path):
    path = write_drive_bag(tmp_path / "t", n=2)
    with pytest.raises(BagError, match=r"topic /front: no such topic; the bag has /camera/image_raw"):
        count_pairs(path, PairingConfig(image_topic="/front"))
    with pytest.raises(BagError, match=r"topic /teleop/cmd_vel: has type geometry_msgs/msg/TwistStamped, not an image"):
        count_pairs(path, PairingConfig(image_topic=CMD_TOPIC))
    with pytest.raises(BagError, match=r"tiny_svo.bag: no command topic"):
        count_pairs(need(ROS1_BAG))


def test_config_from_dict():
    cfg = PairingConfig.from_dict({"tolerance_s": 0.1, "commands": {"joy_steering_axis": 3}})
    assert cfg.commands.joy_steering_axis == 3 and cfg.tolerance_s == 0.1
    assert PairingConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown pairing option.*tolerance"):
        PairingConfig.from_dict({"tolerance": 1})
    with pytest.raises(ValueError, match="stamp_source"):
        PairingConfig(stamp_source="arrival")
