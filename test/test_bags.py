"""Reading real ROS 1 and rosbag2 (MCAP, sqlite3) bags, writing bags, and every unreadable bag named in its error."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from data_helpers import (
    CMD_TOPIC,
    IMAGE_TOPIC,
    ROS1_BAG,
    ROS2_MCAP_BAG,
    ackermann_store,
    command_msg,
    frame_pixels,
    jazzy,
    need,
    raw_image,
    write_drive_bag,
)

from lnn_control.data.bag_writer import BagWriter
from lnn_control.data.bags import Bag, BagError, discover_bags, read_records
from lnn_control.data.recovery import recover
from lnn_control.vision import decode_msg


def _camera_frames(path):
    with Bag(path) as bag:
        assert bag.topics["/camera/image_raw"].msgtype == "sensor_msgs/msg/Image"
        assert bag.topics["/camera/image_raw"].count == 10
        assert bag.message_count == 139
        return [(r.header_ns, r.log_ns, decode_msg(r.msg)) for r in bag.records(["camera/image_raw"])]


def test_ros1_bag_and_its_mcap_conversion_read_the_same_frames():
    ros1 = _camera_frames(need(ROS1_BAG))
    ros2 = _camera_frames(need(ROS2_MCAP_BAG))
    assert len(ros1) == len(ros2) == 10
    for (h1, l1, f1), (h2, l2, f2) in zip(ros1, ros2, strict=True):
        assert f1.shape == (480, 752, 3) and f1.dtype == np.uint8  # mono8 752x480
        assert h1 == h2 and h1 > 0 and l1 == l2
        np.testing.assert_array_equal(f1, f2)
        assert f1.std() > 1  # a real picture, not a blank
    with Bag(ROS1_BAG) as bag:
        assert bag.kind == "rosbag1" and 0.5 < bag.duration_ns / 1e9 < 0.6
    with Bag(ROS2_MCAP_BAG) as bag:
        assert bag.kind == "mcap"


def test_sqlite3_bag_round_trip_is_byte_identical(tmp_path):
    store = jazzy()
    msgs = [raw_image(store, 1_000 + i, frame_pixels(i)) for i in range(5)]
    blobs = [store.serialize_cdr(m, "sensor_msgs/msg/Image") for m in msgs]
    path = tmp_path / "sq"
    with BagWriter(path, storage="sqlite3", custom_data={"operator": "test"}) as writer:
        writer.add_topic("/cam", "sensor_msgs/Image")
        for i, blob in enumerate(blobs):
            writer.write("/cam", 10_000 + i, blob)
    assert list(path.glob("*.db3"))
    with Bag(path) as bag:
        assert bag.kind == "sqlite3"
        raw = list(bag.raw(["/cam"]))
        assert [r[3] for r in raw] == blobs
        assert [r[2] for r in raw] == [10_000 + i for i in range(5)]
        recs = list(bag.records(["cam"]))  # leading slash optional
        assert [r.header_ns for r in recs] == [1_000 + i for i in range(5)]
        np.testing.assert_array_equal(decode_msg(recs[3].msg), frame_pixels(3))


def test_custom_type_is_read_from_the_bags_own_definitions(tmp_path):
    path = write_drive_bag(tmp_path / "ack", n=3, command="ackermann")
    assert "ackermann_msgs/msg/AckermannDriveStamped" not in jazzy().fielddefs  # the reader cannot know it otherwise
    recs = list(read_records(path, [CMD_TOPIC]))
    assert len(recs) == 3
    assert recs[1].msgtype == "ackermann_msgs/msg/AckermannDriveStamped"
    assert recs[1].msg.drive.speed == pytest.approx(1.01)
    assert recs[1].header_ns == recs[1].log_ns


def test_writer_refuses_to_overwrite_and_undeclared_topics(tmp_path):
    path = write_drive_bag(tmp_path / "b", n=2)
    with pytest.raises(BagError, match="exists already"):
        BagWriter(path)
    with BagWriter(tmp_path / "c") as writer, pytest.raises(BagError, match="/nope.*add_topic"):
        writer.write("/nope", 1, b"")
    with pytest.raises(BagError, match="not in the type store"), BagWriter(tmp_path / "d") as writer:
        writer.add_topic("/x", "ackermann_msgs/msg/AckermannDrive")
    assert not (tmp_path / "d").exists()  # a failed write leaves nothing behind
    store = ackermann_store()
    with BagWriter(tmp_path / "e", typestore=store) as writer:
        writer.add_topic("/x", "ackermann_msgs/msg/AckermannDriveStamped")
        writer.write_msg("/x", 5, command_msg(store, "ackermann", 5, 0.2, 1.0))
    assert [r.msg.drive.steering_angle for r in read_records(tmp_path / "e")] == [pytest.approx(0.1)]


def test_discover_bags(tmp_path):
    a = write_drive_bag(tmp_path / "set" / "a", n=2)
    b = write_drive_bag(tmp_path / "set" / "b", n=2, storage="sqlite3")
    assert discover_bags([tmp_path / "set"]) == [a, b]
    assert discover_bags([a, tmp_path / "missing"]) == [a, tmp_path / "missing"]


# -- bad bags ---------------------------------------------------------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(BagError, match=r"nothere.*does not exist") as err:
        Bag(tmp_path / "nothere")
    assert err.value.bag.endswith("nothere")


def test_folder_without_metadata(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(BagError, match="without metadata.yaml"):
        Bag(tmp_path / "x")


def test_truncated_mcap(tmp_path):
    copy = tmp_path / "svo"
    shutil.copytree(need(ROS2_MCAP_BAG), copy)
    mcap = copy / "tiny_svo_ros2.mcap"
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError, match=r"svo: cannot open \(mcap\).*truncated or corrupt"):
        Bag(copy)


def test_truncated_ros1_bag(tmp_path):
    data = need(ROS1_BAG).read_bytes()
    path = tmp_path / "cut.bag"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(BagError, match=r"cut.bag: cannot open \(rosbag1\)"):
        Bag(path)


def test_corrupt_bytes(tmp_path):
    path = write_drive_bag(tmp_path / "bad", n=4)
    mcap = next(path.glob("*.mcap"))
    data = bytearray(mcap.read_bytes())
    data[:16] = b"\x00NOT-AN-MCAP!!\x00\x00"
    mcap.write_bytes(bytes(data))
    with pytest.raises(BagError, match=r"bad: cannot open \(mcap\)"):
        Bag(path)
    zero = tmp_path / "zero.mcap"
    zero.write_bytes(b"")
    with pytest.raises(BagError, match=r"zero.mcap: file is empty"):
        Bag(zero)


def test_corrupt_message_bytes_name_the_topic(tmp_path):
    path = tmp_path / "cdr"
    with BagWriter(path) as writer:
        writer.add_topic(IMAGE_TOPIC, "sensor_msgs/msg/Image")
        writer.write(IMAGE_TOPIC, 1, b"\x00\x01\x00\x00garbage")
    with Bag(path) as bag, pytest.raises(BagError, match=r"cdr: topic /camera/image_raw: cannot deserialise"):
        list(bag.records([IMAGE_TOPIC]))


def test_empty_bag(tmp_path):
    path = tmp_path / "empty"
    with BagWriter(path) as writer:
        writer.add_topic(IMAGE_TOPIC, "sensor_msgs/msg/Image")
    with pytest.raises(BagError, match=r"empty: empty bag: it holds no messages, topics: /camera/image_raw"):
        Bag(path)


def test_missing_topic_lists_what_exists(tmp_path):
    path = write_drive_bag(tmp_path / "b", n=2)
    with Bag(path) as bag, pytest.raises(BagError) as err:
        list(bag.records(["/front/image"]))
    text = str(err.value)
    assert "topic /front/image: no such topic" in text
    assert "/camera/image_raw (sensor_msgs/msg/Image, 2)" in text and "/teleop/cmd_vel" in text
    assert err.value.topic == "/front/image"


def test_recover_a_truncated_mcap_up_to_its_last_complete_chunk(tmp_path):
    # 24 frames of 320x240 rgb8 (230 KB each): the writer flushes a chunk about every MiB
    path = write_drive_bag(tmp_path / "killed", n=24, command="ackermann", size_of=lambda i: (320, 240))
    with Bag(path) as bag:
        original = list(bag.raw())
    mcap = next(path.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: int(len(data) * 0.7)])  # killed: no summary, the last chunk half written
    (path / "metadata.yaml").unlink()
    with pytest.raises(BagError, match=r"killed.mcap: cannot open \(mcap\).*lnn-control recover"):
        Bag(mcap)
    report = recover(path, into=tmp_path / "saved")
    assert report.into == tmp_path / "saved" / "killed" and report.path == path
    with Bag(report.into) as bag:
        saved = list(bag.raw())
        acks = list(bag.records([CMD_TOPIC]))
    assert 6 <= report.counts[IMAGE_TOPIC] < 24 and len(saved) == report.messages
    assert saved == original[: len(saved)]  # a prefix, byte for byte
    assert acks[0].msg.drive.speed == pytest.approx(1.0)  # the custom type came from the file's own schemas
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"#ROSBAG V2.0\n")
    with pytest.raises(BagError, match="junk.mcap: is a ROS 1 bag"):
        recover(junk, into=tmp_path / "x")
    with pytest.raises(BagError, match="nothere.mcap: does not exist"):
        recover(tmp_path / "nothere.mcap", into=tmp_path / "y")
