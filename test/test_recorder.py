"""recorder_node over real DDS: every message byte-identical in the bag, clean SIGTERM, SIGKILL recovery, bad disks.

Frames are the Donkeycar tub's JPEGs (as sensor_msgs/CompressedImage) when ../shared/data is there, 160x120 rgb8
frames generated here otherwise. This process publishes serialized bytes (made with the rosbags type store) so the
test knows exactly which bytes went out, and compares them with what the bag holds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")

from geometry_msgs.msg import TwistStamped  # noqa: E402
from rclpy.duration import Duration  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_harness import NodeProcess, RosSession, free_domain_id  # noqa: E402
from rosbags.highlevel import AnyReader  # noqa: E402
from rosbags.rosbag2 import Reader  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

import lnn_control  # noqa: E402
from lnn_control.data.episode_bag import SIDECAR, TopicSpec, is_unfinished  # noqa: E402
from lnn_control.data.recording import EpisodeRecorder  # noqa: E402
from lnn_control.data.recovery import recover  # noqa: E402
from lnn_control.ros.qos import LATCHED  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DOMAIN = free_domain_id()
TUB = Path(__file__).resolve().parents[2] / "shared" / "data" / "donkeycar_tub" / "tub.tar.gz"
STORE = get_typestore(Stores.ROS2_JAZZY)
RELIABLE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.RELIABLE)
T0 = 1_700_000_000 * 10**9


# -- messages as bytes ------------------------------------------------------------------------------------------------


def _header(i: int):
    sec, nsec = divmod(T0 + i * 50_000_000, 10**9)
    return STORE.types["std_msgs/msg/Header"](
        stamp=STORE.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec), frame_id="camera"
    )


def tub_jpegs(count: int) -> list[bytes]:
    """The tub's first ``count`` JPEGs in recording order, read in one pass over the archive."""
    found: dict[int, bytes] = {}
    with tarfile.open(TUB, mode="r|gz") as tar:
        for member in tar:
            name = Path(member.name).name
            if member.isfile() and name.endswith("_cam_image_array_.jpg") and not name.startswith("._"):
                found[int(name.split("_")[0])] = tar.extractfile(member).read()
    return [found[i] for i in sorted(found)[:count]]


def frames(folder: Path, count: int, *, raw: bool = False) -> tuple[type, str, list[bytes]]:
    """(rclpy class, type name, serialized frames): tub JPEGs when present (unless ``raw``), else 160x120 rgb8."""
    if TUB.is_file() and not raw:
        jpegs = tub_jpegs(count)
        make = STORE.types["sensor_msgs/msg/CompressedImage"]
        return CompressedImage, "sensor_msgs/msg/CompressedImage", [
            bytes(STORE.serialize_cdr(make(header=_header(i), format="jpeg", data=np.frombuffer(j, np.uint8)),
                                      "sensor_msgs/msg/CompressedImage"))
            for i, j in enumerate(jpegs)
        ]  # fmt: skip
    make = STORE.types["sensor_msgs/msg/Image"]
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        pixels = rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
        msg = make(header=_header(i), height=120, width=160, encoding="rgb8", is_bigendian=0, step=480,
                   data=pixels.reshape(-1))  # fmt: skip
        out.append(bytes(STORE.serialize_cdr(msg, "sensor_msgs/msg/Image")))
    return Image, "sensor_msgs/msg/Image", out


def commands(count: int) -> list[bytes]:
    make = STORE.types["geometry_msgs/msg/TwistStamped"]
    vec = STORE.types["geometry_msgs/msg/Vector3"]
    twist = STORE.types["geometry_msgs/msg/Twist"]
    return [
        bytes(STORE.serialize_cdr(
            make(header=_header(i), twist=twist(linear=vec(x=0.5 + i / 1000, y=0.0, z=0.0),
                                                angular=vec(x=0.0, y=0.0, z=np.sin(i / 10)))),
            "geometry_msgs/msg/TwistStamped"))
        for i in range(count)
    ]  # fmt: skip


def padded(data: bytes) -> bytes:
    """Serialized bytes as a subscriber receives them: Fast DDS pads the payload with zeros to a multiple of 4."""
    return data + b"\0" * (-len(data) % 4)


def read_bag(path: Path) -> tuple[dict[str, list[bytes]], dict]:
    """{topic: [raw bytes in order]} and the metadata custom_data, through rosbags' rosbag2 reader."""
    out: dict[str, list[bytes]] = {}
    with Reader(path) as reader:
        for conn, _t, raw in reader.messages():
            out.setdefault(conn.topic, []).append(bytes(raw))
        custom = dict(reader.storage.metadata.custom or {})
    return out, custom


def only_bag(folder: Path) -> Path:
    bags = [p for p in Path(folder).iterdir() if p.is_dir()]
    assert len(bags) == 1, bags
    return bags[0]


def status_of(collector) -> dict:
    return json.loads(collector.last().data)


# -- fixtures ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ros():
    with RosSession(DOMAIN) as session:
        yield session


def recorder(tmp: Path, name: str, **params) -> NodeProcess:
    base = {"output_dir": str(tmp / "bags"), "status_period": 0.2, "min_free_mb": 1}
    base.update(params)
    return NodeProcess("lnn_control.nodes.recorder", domain_id=DOMAIN, log_dir=tmp, name=name, params=base)


def publish_all(ros, pubs_and_data, *, pause_every: int = 20) -> None:
    """Publish the lists interleaved (one of each in turn), then wait until DDS acknowledged everything."""
    longest = max(len(d) for _, d in pubs_and_data)
    for i in range(longest):
        for pub, data in pubs_and_data:
            if i < len(data):
                pub.publish(data[i])
        if i % pause_every == pause_every - 1:
            time.sleep(0.002)
    for pub, _ in pubs_and_data:
        assert pub.wait_for_all_acked(Duration(seconds=20)), f"{pub.topic_name}: not acknowledged"


# -- tests ------------------------------------------------------------------------------------------------------------


def test_records_300_frames_and_commands_byte_identical(ros, tmp_path):
    cls, type_name, sent_frames = frames(tmp_path / "tub", 300)
    sent_cmds = commands(300)
    params = {
        # the commands come at about 200 Hz: 1000 Hz expected gives a rate warning
        "topics": [
            f"cam/frames {type_name} reliable",
            "cam/teleop/cmd_vel geometry_msgs/msg/TwistStamped reliable 1000",
        ],
        "qos_depth": 1000,
        "operator": "tester",
        "vehicle": "rc-car-1",
        "notes": "byte-identical test",
        "rate_window": 0.5,
    }
    with recorder(tmp_path, "rec_main", **params) as proc:
        proc.wait_for_output("ready")
        cam = ros.publisher("cam/frames", cls, RELIABLE)
        cmd = ros.publisher("cam/teleop/cmd_vel", TwistStamped, RELIABLE)
        ros.wait_for_subscribers(cam)
        ros.wait_for_subscribers(cmd)
        started = ros.call("rec_main/start", Trigger)
        assert started.success, started.message
        publish_all(ros, [(cam, sent_frames), (cmd, sent_cmds)])
        proc.wait_for_output(r"/cam/teleop/cmd_vel: \d+\.\d Hz over the last 0\.\d s, expected 1000 Hz")
        stopped = ros.call("rec_main/stop", Trigger)  # right after DDS acknowledged: nothing may be missing
        assert stopped.success, stopped.message
        assert "600 messages" in stopped.message and "0 dropped" in stopped.message, stopped.message
        again = ros.call("rec_main/stop", Trigger)
        assert not again.success and "not recording" in again.message
        bag = only_bag(tmp_path / "bags")
        assert bag.name.startswith("episode_") and bag.name.endswith("_001")
        got, custom = read_bag(bag)
        # Byte for byte what was published, plus the zero padding to a multiple of 4 that Fast DDS adds to a
        # serialized payload on its way to another process (a subscriber in the publishing process gets the bytes
        # unpadded): the recorder stores what its reader delivered, untouched.
        assert got["/cam/frames"] == [padded(b) for b in sent_frames], "frames differ from what was published"
        assert got["/cam/teleop/cmd_vel"] == [padded(b) for b in sent_cmds], "commands differ from what was published"
        assert custom["lnn_control.operator"] == "tester"
        assert custom["lnn_control.vehicle"] == "rc-car-1"
        assert custom["lnn_control.software_version"] == lnn_control.__version__
        assert json.loads(custom["lnn_control.config"])["topics"] == params["topics"]
        stats = json.loads(custom["lnn_control.stats"])
        assert stats["/cam/frames"]["written"] == 300 and stats["/cam/frames"]["queue_full"] == 0
        assert custom["lnn_control.end_reason"] == "stop"
        # the bag carries the definitions: a reader without ROS decodes it
        with AnyReader([bag]) as reader:
            conn = next(c for c in reader.connections if c.topic == "/cam/teleop/cmd_vel")
            first = reader.deserialize(next(reader.messages([conn]))[2], conn.msgtype)
            assert first.twist.linear.x == pytest.approx(0.5)
        # a second episode gets the next number; discard removes it
        assert ros.call("rec_main/start", Trigger).success
        discarded = ros.call("rec_main/discard", Trigger)
        assert discarded.success and "discarded" in discarded.message
        assert [p.name for p in (tmp_path / "bags").iterdir()] == [bag.name]
        assert proc.stop(signal.SIGINT) == 0, proc.tail()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_a_stop_signal_keeps_every_acknowledged_message(ros, tmp_path, sig):
    # The signal comes as soon as DDS acknowledged the last frame: frames still waiting in the reader (no callback
    # took them yet) must be taken before the bag closes. The 120 frames arrive faster than a fresh venv's first
    # sqlite3 write, so some are always still waiting.
    _, _, sent = frames(tmp_path, 120, raw=True)
    name = f"rec_{sig.name.lower()}"
    with recorder(tmp_path, name, topics=["term/frames sensor_msgs/Image reliable"],
                  qos_depth=500, autostart=True, storage="sqlite3") as proc:  # fmt: skip
        proc.wait_for_output("recording episode")
        pub = ros.publisher("term/frames", Image, RELIABLE)
        ros.wait_for_subscribers(pub)
        publish_all(ros, [(pub, sent)])
        assert proc.stop(sig) == 0, proc.tail()
        assert "closed " in proc.output(), proc.tail()
        assert "Fatal Python error" not in proc.output(), proc.tail()
    bag = only_bag(tmp_path / "bags")
    assert (bag / "metadata.yaml").is_file() and not is_unfinished(bag)
    got, custom = read_bag(bag)
    assert got["/term/frames"] == [padded(b) for b in sent]
    assert custom["lnn_control.end_reason"] == "stop"


def test_a_second_signal_exits_at_once_and_the_bag_still_reads(ros, tmp_path):
    # Many frames still queued for the writer when the first SIGINT comes: the second one lands during the clean-up
    # (or just after it); either way the process ends at once or cleanly, and the bag reads, a prefix of what was sent.
    _, _, sent = frames(tmp_path, 1200, raw=True)
    # the deprecated parallel lists, which still work for one release
    with recorder(tmp_path, "rec_twice", topics=["twice/frames"], types=["sensor_msgs/Image"], qos=["reliable"],
                  qos_depth=2000, autostart=True, flush_period=0.2) as proc:  # fmt: skip
        proc.wait_for_output("recording episode")
        pub = ros.publisher("twice/frames", Image, QoSProfile(depth=2000, reliability=ReliabilityPolicy.RELIABLE))
        ros.wait_for_subscribers(pub)
        publish_all(ros, [(pub, sent)])
        proc.send_signal(signal.SIGINT)
        proc.wait_for_output("SIGINT: stopping")
        status = proc.stop(signal.SIGINT)
    assert status in (0, 130), proc.tail()
    assert "Fatal Python error" not in proc.output() and "Traceback" not in proc.output(), proc.tail()
    bag = only_bag(tmp_path / "bags")
    if is_unfinished(bag):
        recover(bag)
    got, _ = read_bag(bag)
    kept = got.get("/twice/frames", [])
    assert kept == [padded(b) for b in sent[: len(kept)]]
    if status == 0:
        assert len(kept) == len(sent), "a clean stop keeps everything"


def test_messages_lost_before_the_recorder_are_counted(ros, tmp_path):
    # A reader history of one sample and bursts of best-effort frames: samples are overwritten before the recorder
    # takes them. Whatever it kept and whatever it counted as lost add up to the frames it could know of. (Bursts
    # go on until the recorder has some: a new best-effort writer's first samples can also miss a reader that has
    # not matched it yet.)
    def frame(i: int) -> Image:
        msg = Image(height=1, width=4, encoding="mono8", step=4, data=list(i.to_bytes(4, "little")))
        msg.header.stamp.sec = i
        return msg

    with recorder(tmp_path, "rec_lost", topics=["lost/frames sensor_msgs/Image sensor"],
                  qos_depth=1, autostart=True) as proc:  # fmt: skip
        proc.wait_for_output("recording episode")
        status = ros.collect("rec_lost/status", String)
        pub = ros.publisher("lost/frames", Image, QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        ros.wait_for_subscribers(pub)
        sent = 0

        def received() -> int:
            last = status.last()
            return json.loads(last.data)["topics"].get("/lost/frames", {}).get("received", 0) if last else 0

        deadline = time.monotonic() + 30
        while received() == 0 or sent < 800:
            assert time.monotonic() < deadline, f"nothing recorded after {sent} frames:\n{proc.tail()}"
            for _ in range(400):
                pub.publish(frame(sent))
                sent += 1
            time.sleep(0.05)
        assert proc.stop(signal.SIGINT) == 0, proc.tail()
    got, custom = read_bag(only_bag(tmp_path / "bags"))
    stats = json.loads(custom["lnn_control.stats"])["/lost/frames"]
    kept = [int.from_bytes(STORE.deserialize_cdr(b, "sensor_msgs/msg/Image").data.tobytes(), "little")
            for b in got["/lost/frames"]]  # fmt: skip
    assert kept == sorted(kept) and stats["written"] == len(kept)
    assert stats["lost"] > 0 and stats["written"] + stats["lost"] == kept[-1] - kept[0] + 1, stats
    assert f"{stats['lost']} lost before the recorder" in proc.output(), proc.tail()


def test_sigkill_leaves_a_bag_readable_up_to_the_last_flush(ros, tmp_path):
    _, _, sent = frames(tmp_path, 150, raw=True)
    with recorder(tmp_path, "rec_kill", topics=["kill/frames sensor_msgs/msg/Image reliable"],
                  qos_depth=500, autostart=True, flush_period=0.2) as proc:  # fmt: skip
        proc.wait_for_output("recording episode")
        status = ros.collect("rec_kill/status", String)
        pub = ros.publisher("kill/frames", Image, RELIABLE)
        ros.wait_for_subscribers(pub)
        publish_all(ros, [(pub, sent[:100])])
        status.wait_for(lambda m: json.loads(m.data)["topics"].get("/kill/frames", {}).get("written") == 100)
        time.sleep(0.5)  # more than flush_period: the last flush has happened
        # these 50 may or may not reach the disk before the kill: whatever does must be intact
        publish_all(ros, [(pub, sent[100:])])
        proc.kill()
    bag = only_bag(tmp_path / "bags")
    assert is_unfinished(bag), "SIGKILL leaves no metadata.yaml"
    with pytest.raises(Exception):  # noqa: B017 - rosbags cannot open it as it is
        Reader(next(bag.glob("*.mcap"))).open()
    report = recover(bag)
    got, custom = read_bag(bag)
    frames_got = got["/kill/frames"]
    assert len(frames_got) >= 100, f"only {len(frames_got)} of the 100 flushed messages survived ({report})"
    assert frames_got == [padded(b) for b in sent[: len(frames_got)]], "recovered: a byte-identical prefix"
    assert report.messages == len(frames_got)
    assert "lnn_control.recovered" in custom and custom["lnn_control.software_version"] == lnn_control.__version__
    print(f"SIGKILL: {len(frames_got)} of 150 messages recovered (100 flushed before the kill); {report}")


def test_unwritable_output_dir_gives_clear_errors_and_the_node_stays_up(ros, tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the output folder should be")
    with recorder(tmp_path, "rec_bad", output_dir=str(blocker / "bags"), autostart=True,
                  topics=["bad/frames sensor_msgs/msg/Image"]) as proc:  # fmt: skip
        proc.wait_for_output("autostart failed")
        assert "cannot create or use output_dir" in proc.output() and str(blocker) in proc.output()
        response = ros.call("rec_bad/start", Trigger)
        assert not response.success and str(blocker / "bags") in response.message, response.message
        response = ros.call("rec_bad/stop", Trigger)
        assert not response.success and "not recording" in response.message
        status = ros.collect("rec_bad/status", String)
        assert "cannot create" in json.loads(status.wait_for(lambda m: True).data)["last_error"]
        assert proc.alive
        assert proc.stop(signal.SIGINT) == 0


def _can_mount_tmpfs(path: Path) -> bool:
    if os.geteuid() != 0:
        return False
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


def test_disk_full_ends_the_episode_with_an_error_not_a_hang(ros, tmp_path):
    disk = tmp_path / "small_disk"
    if not _can_mount_tmpfs(disk):
        pytest.skip("needs root to mount a 3 MiB tmpfs as a full disk")
    try:
        _, _, sent = frames(tmp_path, 120, raw=True)  # 57 KB each: 6.9 MB, more than the disk
        with recorder(tmp_path, "rec_full", output_dir=str(disk), autostart=True, min_free_mb=0, flush_period=0.1,
                      topics=["full/frames sensor_msgs/msg/Image reliable"], qos_depth=500,
                      fsync=False) as proc:  # fmt: skip
            proc.wait_for_output("recording episode")
            status = ros.collect("rec_full/status", String)
            pub = ros.publisher("full/frames", Image, RELIABLE)
            ros.wait_for_subscribers(pub)
            publish_all(ros, [(pub, sent)])
            ended = status.wait_for(lambda m: json.loads(m.data)["last_error"] != "", timeout=20)
            error = json.loads(ended.data)["last_error"]
            assert "No space left" in error or "ENOSPC" in error, error
            assert proc.alive
            response = ros.call("rec_full/stop", Trigger)
            assert not response.success and "ENOSPC" in response.message + error
            assert proc.stop(signal.SIGINT) == 0
        bag = only_bag(disk)
        if is_unfinished(bag):
            recover(bag)
        got, _ = read_bag(bag)
        kept = got.get("/full/frames", [])
        assert kept == [padded(b) for b in sent[: len(kept)]], "what was kept is intact"
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


# -- in-process: the engine and the node without a process of their own ------------------------------------------------


def test_engine_refuses_to_start_on_a_nearly_full_disk(tmp_path):
    engine = EpisodeRecorder([TopicSpec("/x", "std_msgs/msg/String")], output_dir=tmp_path, min_free_bytes=1 << 62)
    try:
        ok, message = engine.start({})
        assert not ok and "below min_free_mb" in message and str(tmp_path) in message
        assert not any(tmp_path.iterdir())
    finally:
        engine.shutdown()


def test_engine_queue_overflow_is_counted_not_blocking(tmp_path):
    engine = EpisodeRecorder([TopicSpec("/x", "std_msgs/msg/String")], output_dir=tmp_path, queue_size=5,
                             min_free_bytes=0)  # fmt: skip
    try:
        assert engine.start({})[0]
        data = bytes(STORE.serialize_cdr(STORE.types["std_msgs/msg/String"](data="x"), "std_msgs/msg/String"))
        with engine._cond:  # hold the writer back: the queue fills, accept() must still return at once
            started = time.monotonic()
            results = [engine.accept(0, data, time.time_ns(), T0 + i) for i in range(20)]
            assert time.monotonic() - started < 0.5
        assert results.count(True) == 5
        ok, message = engine.stop()
        assert ok and "5 messages" in message and "15 dropped" in message, message
    finally:
        engine.shutdown()


def test_unknown_type_is_loaded_from_msg_files_and_bad_type_named(tmp_path):
    engine = EpisodeRecorder([TopicSpec("/joy", "sensor_msgs/msg/Joy")], output_dir=tmp_path, min_free_bytes=0)
    engine.shutdown()
    with pytest.raises(Exception, match="no_such_pkg/msg/Thing"):
        EpisodeRecorder([TopicSpec("/t", "no_such_pkg/msg/Thing")], output_dir=tmp_path)


def test_record_only_when_human_and_recovery_on_start(ros, tmp_path):
    """An in-process recorder: skips frames while the policy drives; repairs an unfinished bag when it starts."""
    from lnn_control.nodes.recorder import RecorderNode

    # an unfinished bag left by a killed writer, as test_sigkill produces
    killed = tmp_path / "bags" / "episode_killed_001"
    from lnn_control.data.bag_writer import BagFormat
    from lnn_control.data.episode_bag import EpisodeBag

    writer = EpisodeBag(killed, [TopicSpec("/t", "std_msgs/msg/String")], bag_format=BagFormat(fsync=False))
    writer.open()
    writer.write(0, T0, bytes(STORE.serialize_cdr(STORE.types["std_msgs/msg/String"](data="a"), "std_msgs/msg/String")))
    writer.flush()
    writer.abort(remove=False)
    assert is_unfinished(killed) and (killed / SIDECAR).is_file()

    overrides = [
        Parameter("output_dir", value=str(tmp_path / "bags")),
        Parameter("topics", value=["human/frames sensor_msgs/msg/Image reliable"]),
        Parameter("record_only_when_human", value=True),
        Parameter("active_source_topic", value="human/mux/active_source"),
        Parameter("min_free_mb", value=0),
    ]
    node = RecorderNode(node_name="rec_human", context=ros.context, parameter_overrides=overrides)
    try:
        assert not is_unfinished(killed) and read_bag(killed)[0]["/t"], "recovered at start"
        ros.executor.add_node(node)
        source = ros.publisher("human/mux/active_source", String, LATCHED)
        pub = ros.publisher("human/frames", Image, RELIABLE)
        ros.wait_for_subscribers(pub)
        ros.wait_for_subscribers(source)
        _, _, sent = frames(tmp_path, 30, raw=True)
        assert node.start_episode()[0]
        source.publish(String(data="policy"))
        ros.wait_for(lambda: node.active_source == "policy", what="active source 'policy'")
        publish_all(ros, [(pub, sent[:10])])
        ros.wait_for(lambda: node._arrivals[0] == 10, what="the policy's 10 frames taken")  # topics are not ordered
        source.publish(String(data="teleop"))
        ros.wait_for(lambda: node.active_source == "teleop", what="active source 'teleop'")
        publish_all(ros, [(pub, sent[10:20])])
        ros.wait_for(lambda: node.engine.status()["topics"]["/human/frames"]["received"] == 10, what="10 received")
        ok, message = node.engine.stop()
        assert ok and "10 skipped while no human drove" in message, message
        bag = next(p for p in (tmp_path / "bags").iterdir() if p.name != killed.name)
        assert read_bag(bag)[0]["/human/frames"] == [padded(b) for b in sent[10:20]]
    finally:
        with contextlib.suppress(Exception):
            ros.executor.remove_node(node)
        node.destroy_node()


def test_a_bad_topic_entry_is_named_at_start(tmp_path):
    # (a bare topic name is no error: its type comes from the graph)
    entries = ["camera/image_raw sensor_msgs/msg/Image", "teleop/cmd_vel geometry/Twist!"]
    proc = recorder(tmp_path, "rec_bad_entry", topics=entries)
    with proc:
        assert proc.wait(60) == 2, proc.tail()
    assert "parameter 'topics' entry 2 ('teleop/cmd_vel geometry/Twist!'): TYPE" in proc.output(), proc.tail()
    assert "Traceback" not in proc.output(), proc.tail()


# -- Humble, graph types, offered QoS, compression and split files -----------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def _metadata(bag: Path) -> dict:
    import yaml

    return yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]


def test_without_message_info_callbacks_as_on_humble_everything_is_recorded_in_a_version_8_bag(
    ros, tmp_path, monkeypatch
):
    """Humble's rclpy calls a subscription callback with the message alone. Forced to that path (the capability
    check says no), the recorder still keeps every message, counts nothing as lost (the first message of each burst
    comes without its sequence number) and writes the metadata version Humble's ros2 bag reads."""
    import yaml
    from rclpy.subscription import Subscription

    from lnn_control.nodes import recorder as recorder_module

    monkeypatch.setattr(recorder_module, "message_info_callbacks", lambda: False)
    overrides = [
        Parameter("output_dir", value=str(tmp_path / "bags")),
        Parameter("topics", value=["humble/frames sensor_msgs/msg/Image reliable"]),
        Parameter("bag_version", value=8),
        Parameter("qos_depth", value=500),
        Parameter("min_free_mb", value=0),
    ]
    node = recorder_module.RecorderNode(node_name="rec_humble", context=ros.context, parameter_overrides=overrides)
    try:
        assert not node.message_info and node.engine.bag_format.version == 8
        sub = node._readers[0][0]
        assert sub._callback_type is Subscription.CallbackType.MessageOnly  # rclpy passes the message alone
        ros.executor.add_node(node)
        pub = ros.publisher("humble/frames", Image, RELIABLE)
        ros.wait_for_subscribers(pub)
        _, _, sent = frames(tmp_path, 80, raw=True)
        assert node.start_episode()[0]
        publish_all(ros, [(pub, sent)])
        ros.wait_for(lambda: node.engine.status()["topics"]["/humble/frames"]["received"] == 80, what="80 received")
        ok, message = node.engine.stop()
        assert ok and "80 messages" in message and "0 lost before the recorder" in message, message
    finally:
        with contextlib.suppress(Exception):
            ros.executor.remove_node(node)
        node.destroy_node()
    bag = only_bag(tmp_path / "bags")
    got, custom = read_bag(bag)
    assert got["/humble/frames"] == [padded(b) for b in sent]
    assert json.loads(custom["lnn_control.stats"])["/humble/frames"]["lost"] == 0
    info = _metadata(bag)
    assert info["version"] == 8
    qos = info["topics_with_message_count"][0]["topic_metadata"]["offered_qos_profiles"]
    assert isinstance(qos, str) and yaml.safe_load(qos)[0]["reliability"] == 1  # Humble's form: a string, numbers


def _record_launch_params(tmp_path: Path, **arguments: str) -> str:
    """The parameter file record.launch.py gives recorder_node for these launch arguments."""
    import importlib.util

    from lnn_control.launching import node_actions

    path = ROOT / "launch" / "record.launch.py"
    spec = importlib.util.spec_from_file_location("record_launch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    values = {name: default for name, (default, _) in module.ARGUMENTS.items()}
    values.update(arguments)
    action = next(a for a in node_actions(module.choose(values)) if a["executable"] == "recorder_node")
    return action["parameters"][0]


def test_record_launch_stamped_records_the_stamped_commands_and_a_wrong_type_is_named(ros, tmp_path):
    params_file = _record_launch_params(tmp_path, stamped="true", output_dir=str(tmp_path / "bags"), autostart="true")
    ns = "/stamped7"
    with NodeProcess("lnn_control.nodes.recorder", domain_id=DOMAIN, log_dir=tmp_path, name="recorder_node",
                     args=["--ros-args", "--params-file", params_file, "-r", f"__ns:={ns}"],
                     params={"status_period": 0.2, "min_free_mb": 1}) as proc:  # fmt: skip
        proc.wait_for_output("recording episode")
        status = ros.collect(f"{ns}/recorder_node/status", String)
        cmd = ros.publisher(f"{ns}/teleop/cmd_vel", TwistStamped, RELIABLE)
        wrong = ros.publisher(f"{ns}/camera/image_raw", CompressedImage, RELIABLE)  # record.yaml says Image

        def received() -> int:
            last = status.last()
            topics = json.loads(last.data)["topics"] if last else {}
            return topics.get(f"{ns}/teleop/cmd_vel", {}).get("received", 0)

        from ros_harness import publish_until_condition

        publish_until_condition(cmd, TwistStamped, lambda: received() >= 5, timeout=30, what="5 commands acknowledged")
        proc.wait_for_output(rf"{ns}/teleop/cmd_vel: type geometry_msgs/msg/TwistStamped from the graph")
        proc.wait_for_output(
            rf"{ns}/camera/image_raw: configured type sensor_msgs/msg/Image, but the graph offers "
            r"sensor_msgs/msg/CompressedImage"
        )
        ros.node.destroy_publisher(wrong)
        assert proc.stop(signal.SIGINT) == 0, proc.tail()
    bag = only_bag(tmp_path / "bags")
    with Reader(bag) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        count = sum(1 for c, _, _ in reader.messages() if c.topic == f"{ns}/teleop/cmd_vel")
    assert types[f"{ns}/teleop/cmd_vel"] == "geometry_msgs/msg/TwistStamped"
    stats = json.loads(read_bag(bag)[1]["lnn_control.stats"])
    assert count == stats[f"{ns}/teleop/cmd_vel"]["written"] >= 5


def test_offered_qos_compressed_split_bag_replays_latched(ros, tmp_path):
    from rosbags.interfaces import QosDurability

    from lnn_control.data import mcap

    _, _, sent = frames(tmp_path, 30, raw=True)  # 57 KB each: several files of 300 KB
    params = {"topics": ["q/mux/active_source std_msgs/msg/String latched", "q/frames sensor_msgs/msg/Image reliable"],
              "compression": "zstd", "max_bag_size": 300_000, "qos_depth": 100, "bag_version": 9}  # fmt: skip
    with recorder(tmp_path, "rec_qos", **params) as proc:
        proc.wait_for_output("ready")
        status = ros.collect("rec_qos/status", String)
        state = ros.publisher("q/mux/active_source", String, LATCHED)
        cam = ros.publisher("q/frames", Image, RELIABLE)
        ros.wait_for_subscribers(state)
        ros.wait_for_subscribers(cam)
        ros.send("rec_qos/start", Trigger)  # the publishers' QoS is read from the graph here
        status.wait_for(lambda m: json.loads(m.data)["state"] == "recording")  # the recorder's acknowledgement
        state.publish(String(data="teleop"))
        publish_all(ros, [(cam, sent)])

        def received(msg: String, topic: str) -> int:
            return json.loads(msg.data)["topics"].get(topic, {}).get("received", 0)

        status.wait_for(lambda m: received(m, "/q/frames") == 30 and received(m, "/q/mux/active_source") == 1)
        stopped = ros.call("rec_qos/stop", Trigger)
        assert stopped.success and "31 messages" in stopped.message, stopped.message
        assert proc.stop(signal.SIGINT) == 0, proc.tail()
    ros.node.destroy_publisher(state)  # from here on only the player offers the topic
    bag = only_bag(tmp_path / "bags")
    info = _metadata(bag)
    files = info["relative_file_paths"]
    assert len(files) >= 3 and files == [f"{bag.name}_{i}.mcap" for i in range(len(files))]
    for name in files:
        chunks = mcap.scan((bag / name).read_bytes()).chunks
        assert chunks and {c.compression for c in chunks} == {"zstd"}
    offered = {t["topic_metadata"]["name"]: t["topic_metadata"]["offered_qos_profiles"]
               for t in info["topics_with_message_count"]}  # fmt: skip
    assert [q["durability"] for q in offered["/q/mux/active_source"]] == ["transient_local"]  # the publisher's
    assert [q["durability"] for q in offered["/q/frames"]] == ["volatile"]
    got, _ = read_bag(bag)
    assert got["/q/frames"] == [padded(b) for b in sent]
    with Reader(bag) as reader:
        qos = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    assert qos["/q/mux/active_source"][0].durability == QosDurability.TRANSIENT_LOCAL
    # replayed: a transient-local subscriber (as the nodes make them for mux/active_source) matches the player
    latched_in = ros.collect("q/mux/active_source", String, LATCHED)
    frames_in = ros.collect("q/frames", Image, RELIABLE, raw=True)
    from ros_harness import node_env

    player = subprocess.run(
        [sys.executable, "-m", "lnn_control.cli", "play", str(bag), "--local", "--rate", "5", "--wait-for-subscribers",
         "1", "--wait-timeout", "20"],
        env=node_env(DOMAIN), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert player.returncode == 0, player.stderr
    assert [m.data for m in latched_in.wait_for_count(1)] == ["teleop"]
    assert len(frames_in.wait_for_count(30)) == 30


def test_sigkill_on_a_split_compressed_bag_is_recovered(ros, tmp_path):
    _, _, sent = frames(tmp_path, 60, raw=True)
    with recorder(tmp_path, "rec_kill_split", topics=["ks/frames sensor_msgs/msg/Image reliable"], qos_depth=500,
                  autostart=True, flush_period=0.2, compression="zstd", max_bag_size=600_000) as proc:  # fmt: skip
        proc.wait_for_output("recording episode")
        status = ros.collect("rec_kill_split/status", String)
        pub = ros.publisher("ks/frames", Image, RELIABLE)
        ros.wait_for_subscribers(pub)
        publish_all(ros, [(pub, sent[:40])])
        status.wait_for(lambda m: json.loads(m.data)["topics"].get("/ks/frames", {}).get("written") == 40)
        flushed = status.wait_for(lambda m: len(json.loads(m.data)["files"]) >= 2)
        assert json.loads(flushed.data)["files"][0].endswith("_0.mcap")
        time.sleep(0.5)  # more than flush_period: the last flush has happened
        publish_all(ros, [(pub, sent[40:])])
        proc.kill()
    bag = only_bag(tmp_path / "bags")
    assert is_unfinished(bag)
    report = recover(bag)
    got, custom = read_bag(bag)
    kept = got["/ks/frames"]
    assert len(kept) >= 40 and kept == [padded(b) for b in sent[: len(kept)]], report
    assert len(_metadata(bag)["relative_file_paths"]) >= 2 and "lnn_control.recovered" in custom
