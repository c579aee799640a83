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

from lnn_control.data.bag_writer import BagFormat, BagWriter
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
    with BagWriter(path, bag_format=BagFormat(storage="sqlite3"), custom_data={"operator": "test"}) as writer:
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


# -- metadata versions, offered QoS, compression, split files ----------------------------------------------------------


def _latched_qos():
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    forever = QosTime(9223372036, 854775807)
    return Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, forever, forever,
               QosLiveliness.AUTOMATIC, forever, False)  # fmt: skip


def _strings(n: int) -> list[bytes]:
    store = jazzy()
    make = store.types["std_msgs/msg/String"]
    rng = np.random.default_rng(n)  # hex digits: compressible by half, not to nothing
    text = [f"{i} " + rng.bytes(150).hex() for i in range(n)]
    return [bytes(store.serialize_cdr(make(data=t), "std_msgs/msg/String")) for t in text]


def _metadata(path):
    import yaml

    return yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]


def _storage_qos_text(path, storage: str) -> str:
    """The offered_qos_profiles string a storage file holds for its first topic (what rosbag2's plugins read)."""
    import sqlite3

    from lnn_control.data import mcap

    file = sorted(path.glob("*.mcap" if storage == "mcap" else "*.db3"))[0]
    if storage == "sqlite3":
        conn = sqlite3.connect(str(file))
        try:
            return conn.execute("SELECT offered_qos_profiles FROM topics").fetchone()[0]
        finally:
            conn.close()
    channel = next(iter(mcap.scan(file.read_bytes()).channels.values()))
    body = channel.body  # id, schema id, topic, encoding, then the metadata map: key, value
    _, pos = mcap.read_string(body, 4)
    _, pos = mcap.read_string(body, pos)
    key, pos = mcap.read_string(body, pos + 4)
    value, _ = mcap.read_string(body, pos)
    assert key == "offered_qos_profiles"
    return value


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_version_8_and_9_metadata_in_the_shape_each_distro_reads_with_the_offered_qos(tmp_path, storage):
    import yaml
    from rosbags.rosbag2 import Reader

    sent = _strings(5)
    for version in (8, 9):
        path = tmp_path / f"v{version}"
        with BagWriter(path, bag_format=BagFormat(storage=storage, version=version), custom_data={"k": "v"}) as writer:
            writer.add_topic("/mux/active_source", "std_msgs/msg/String", offered_qos=[_latched_qos()])
            for i, data in enumerate(sent):
                writer.write("/mux/active_source", 100 + i, data)
        info = _metadata(path)
        assert info["version"] == version
        assert info["custom_data"] == {"k": "v"} and info["ros_distro"]  # both versions have them (6 and 8)
        qos = info["topics_with_message_count"][0]["topic_metadata"]["offered_qos_profiles"]
        stored = _storage_qos_text(path, storage)
        if version == 8:  # Humble reads a YAML string, policies as numbers (rmw's enums)
            assert isinstance(qos, str) and yaml.safe_load(qos)[0]["durability"] == 1
            assert yaml.safe_load(stored)[0]["durability"] == 1
        else:  # Jazzy: a list, policies as words; the storage file holds it as YAML text
            assert qos[0]["durability"] == "transient_local" and qos[0]["history"] == "keep_last"
            assert yaml.safe_load(stored)[0]["durability"] == "transient_local"
        with Bag(path) as bag:
            assert bag.topics["/mux/active_source"].offered_qos == (_latched_qos(),)
            assert [r[3] for r in bag.raw()] == sent
        with Reader(path) as reader:
            assert reader.connections[0].ext.offered_qos_profiles == [_latched_qos()]
            assert [bytes(d) for _, _, d in reader.messages()] == sent


def test_the_default_bag_version_follows_ros_distro(monkeypatch):
    from lnn_control.data.bag_writer import default_bag_version

    assert default_bag_version("humble") == 8 and default_bag_version("Humble ") == 8
    assert default_bag_version("jazzy") == default_bag_version("kilted") == default_bag_version("") == 9
    monkeypatch.setenv("ROS_DISTRO", "humble")
    assert default_bag_version() == 8


def test_zstd_chunks_and_split_files_read_back_in_order(tmp_path):
    from rosbags.rosbag2 import Reader

    from lnn_control.data import mcap

    sent = _strings(60)
    by_size = tmp_path / "by_size"
    with BagWriter(by_size, bag_format=BagFormat(compression="zstd", max_bag_size=4000, chunk_size=1500)) as writer:
        writer.add_topic("/s", "std_msgs/msg/String")
        for i, data in enumerate(sent):
            writer.write("/s", 1_000 + i, data)
    by_time = tmp_path / "by_time"
    with BagWriter(by_time, bag_format=BagFormat(storage="sqlite3", max_bag_duration_ns=20)) as writer:
        writer.add_topic("/s", "std_msgs/msg/String")
        for i, data in enumerate(sent):
            writer.write("/s", 1_000 + i, data)
    for path, files in ((by_size, None), (by_time, 3)):
        info = _metadata(path)
        names = info["relative_file_paths"]
        assert names == [f"{path.name}_{i}{'.mcap' if path is by_size else '.db3'}" for i in range(len(names))]
        assert (len(names) == files) if files else (len(names) > 2), names
        assert [f["path"] for f in info["files"]] == names and sum(f["message_count"] for f in info["files"]) == 60
        with Bag(path) as bag:
            assert [r[3] for r in bag.raw()] == sent
        with Reader(path) as reader:
            assert [bytes(d) for _, _, d in reader.messages()] == sent
    for name in _metadata(by_size)["relative_file_paths"]:
        data = (by_size / name).read_bytes()
        assert mcap.is_complete(data)  # each file is complete in itself
        chunks = mcap.scan(data).chunks
        assert chunks and {c.compression for c in chunks} == {"zstd"}
        assert sum(c.compressed_size for c in chunks) < sum(c.size for c in chunks)


def test_bag_format_defaults_and_checks():
    import dataclasses

    from lnn_control.data.bag_writer import DEFAULT_CHUNK_SIZE
    from lnn_control.data.episode_bag import EPISODE_FORMAT

    fmt = BagFormat()
    assert (fmt.storage, fmt.version, fmt.compression, fmt.chunk_size) == ("mcap", 9, "none", DEFAULT_CHUNK_SIZE)
    assert (fmt.max_bag_size, fmt.max_bag_duration_ns, fmt.fsync, fmt.splits) == (0, 0, False, False)
    assert BagFormat(fsync=True) == EPISODE_FORMAT  # episodes are synced unless told otherwise
    assert dataclasses.replace(fmt, max_bag_duration_ns=2.5e9).max_bag_duration_ns == 2_500_000_000
    assert BagFormat(max_bag_size=1).splits
    with pytest.raises(dataclasses.FrozenInstanceError):
        fmt.storage = "sqlite3"  # type: ignore[misc]
    for kwargs, match in (
        ({"storage": "db"}, "storage must be one of mcap, sqlite3, got 'db'"),
        ({"version": 7}, "8 .Humble. or 9"),
        ({"compression": "lz4"}, "compression must be one of none, zstd"),
        ({"storage": "sqlite3", "compression": "zstd"}, "needs storage mcap"),
        ({"chunk_size": 0}, "chunk_size must be at least 1 bytes"),
        ({"max_bag_size": -1}, "max_bag_size must be at least 0"),
        ({"max_bag_duration_ns": "1s"}, "max_bag_duration_ns must be a number of ns"),
    ):
        with pytest.raises(ValueError, match=match):
            BagFormat(**kwargs)
