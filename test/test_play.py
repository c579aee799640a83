"""`lnn-control play`: a real player process publishes a bag into a private DDS domain; a subscriber receives every
message byte for byte, in order, and /clock advances through the bag's time."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

pytest.importorskip("rclpy")

from data_helpers import CMD_TOPIC, IMAGE_TOPIC, write_drive_bag  # noqa: E402
from ros_harness import NodeProcess, RosSession, free_domain_id, node_env  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from lnn_control.data.bags import Bag  # noqa: E402

pytestmark = pytest.mark.ros
START = 1_700_000_000_000_000_000


def test_play_delivers_every_message_as_recorded_and_advances_the_clock(tmp_path):
    from geometry_msgs.msg import TwistStamped
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image

    bag = write_drive_bag(tmp_path / "bag", n=20, start_ns=START)  # 1 s at 20 Hz
    with Bag(bag) as opened:
        recorded = {IMAGE_TOPIC: [], CMD_TOPIC: []}
        log_times = set()
        for topic, _type, log_ns, data in opened.raw():
            recorded[topic].append(bytes(data))
            log_times.add(log_ns)
    domain = free_domain_id()
    qos = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
    with RosSession(domain) as ros:
        # /clock first: the player waits for subscribers on the bag's topics only, and a participant announces its
        # readers in the order they were made, so the player has matched this one when it sees the other two
        clock = ros.collect("/clock", Clock, qos)
        images = ros.collect(IMAGE_TOPIC, Image, qos, raw=True)
        commands = ros.collect(CMD_TOPIC, TwistStamped, qos, raw=True)
        player = subprocess.run(
            [sys.executable, "-m", "lnn_control.cli", "play", str(bag), "--local", "--clock", "50", "--rate", "2",
             "--wait-for-subscribers", "1"],
            env=node_env(domain), capture_output=True, text=True, timeout=60,
        )
        assert player.returncode == 0, player.stderr
        assert "40 messages" in player.stdout
        published = re.search(r"(\d+) /clock messages", player.stdout)
        assert published, player.stdout
        # the player exits once its reliable writers saw everything acknowledged: all of it is here or coming
        got_images = images.wait_for_count(20, timeout=10)
        got_commands = commands.wait_for_count(20, timeout=10)
        ticks = clock.wait_for_count(int(published[1]), timeout=10)
    assert [bytes(m) for m in got_images] == recorded[IMAGE_TOPIC]
    assert [bytes(m) for m in got_commands] == recorded[CMD_TOPIC]
    assert len(ticks) == int(published[1])
    stamps = [m.clock.sec * 1_000_000_000 + m.clock.nanosec for m in ticks]
    assert stamps == sorted(stamps)  # the clock never goes back within one pass
    assert stamps[0] == START and stamps[-1] >= START + 19 * 50_000_000  # it covered the whole bag
    # the original timing, scaled, read from the clock rather than a stopwatch: 50 Hz of wall time at rate 2 is a
    # tick every 40 ms of bag time, each published when its wall time comes (late ones too, with their own time),
    # so every tick up to the last message is there, and nothing else but the messages' own log times: played too
    # fast, the ticks between the messages would be missing; at another rate they would fall elsewhere
    tick_ns, us = 40_000_000, 1_000  # the player counts in float seconds: ticks are right to a microsecond

    def on_grid(t: int) -> bool:
        return min((t - START) % tick_ns, -(t - START) % tick_ns) <= us

    expected = range(START, max(log_times) + 1, tick_ns)
    assert all(any(abs(s - t) <= us for s in stamps) for t in expected), sorted(set(stamps))
    assert all(on_grid(s) or s in log_times for s in stamps), sorted(set(stamps))


def test_play_refuses_a_ros1_bag_and_names_it(tmp_path):
    from data_helpers import ROS1_BAG, need

    bag = need(ROS1_BAG)
    player = subprocess.run(
        [sys.executable, "-m", "lnn_control.cli", "play", str(bag), "--local"],
        env=node_env(free_domain_id()), capture_output=True, text=True, timeout=60,
    )
    assert player.returncode == 1
    assert "tiny_svo.bag" in player.stderr and "ROS 1" in player.stderr


def test_eval_live_matches_the_offline_replay(tmp_path):
    """A real drive_node fed by `play` gives the offline replay's commands, frame by frame."""
    from lnn_control.cli import main
    from lnn_control.nn import checkpoint
    from lnn_control.nn.policy import Policy, PolicyConfig
    from lnn_control.vision import PreprocessConfig

    bag = write_drive_bag(tmp_path / "bag", n=16, start_ns=START)
    policy = Policy(PolicyConfig(core="cfc", preprocess=PreprocessConfig(56, 56), features=8,
                                 target_mean=(0.0, 1.0), target_std=(0.5, 0.2)))
    checkpoint.save(policy, tmp_path / "model")
    code = main(["eval", "--model", str(tmp_path / "model"), "--bags", str(bag), "--out", str(tmp_path / "report"),
                 "--no-plots", "--no-progress", "--threads", "1", "--live", "--live-rate", "0.5"])
    assert code == 0
    (row,) = json.loads((tmp_path / "report" / "live.json").read_text())
    assert row["frames"] == 16 and row["live_commands"] == 16 and row["missing"] == 0, row
    assert row["max_abs_steering"] < 1e-4 and row["max_abs_velocity"] < 1e-4


def test_a_bag_recorded_by_the_recorder_trains_and_evaluates(tmp_path):
    """play -> recorder_node -> a bag of the real recording path -> lnn-control train -> lnn-control eval."""
    from test_train import tiny_config

    from lnn_control import train
    from lnn_control.cli import main

    source = write_drive_bag(tmp_path / "source", n=32, start_ns=START, command="twist_stamped")
    domain = free_domain_id()
    params = {
        "topics": ["camera/image_raw", "teleop/cmd_vel"],
        "types": ["sensor_msgs/msg/Image", "geometry_msgs/msg/TwistStamped"],
        "qos": ["reliable", "reliable"],
        "output_dir": str(tmp_path / "bags"),
        "autostart": True,
        "fsync": False,
    }
    params["status_period"] = 0.2
    with RosSession(domain) as ros, NodeProcess("lnn_control.nodes.recorder", domain_id=domain, log_dir=tmp_path,
                                                params=params) as recorder:
        status = ros.collect("recorder_node/status", String)
        player = subprocess.run(
            [sys.executable, "-m", "lnn_control.cli", "play", str(source), "--local", "--rate", "2",
             "--wait-for-subscribers", "1", "--wait-timeout", "30"],
            env=node_env(domain), capture_output=True, text=True, timeout=90,
        )
        assert player.returncode == 0, player.stderr + recorder.tail()

        def received(msg: String) -> bool:
            topics = json.loads(msg.data)["topics"]
            return all(topics.get(t, {}).get("received") == 32 for t in ("/camera/image_raw", "/teleop/cmd_vel"))

        # what the recorder acknowledged (accepted into the episode), not a sleep: stopping it then loses nothing.
        # No --delay for the recorder's readers either: the player's writers are reliable and wait for every
        # acknowledgement, so a reader that matched a moment after the player saw it still gets everything
        status.wait_for(received, timeout=30)
    (recorded,) = [p for p in (tmp_path / "bags").iterdir() if p.is_dir()]
    config = tiny_config(tmp_path / "cache", epochs=1, val_fraction=0.0)
    result = train.train(config, [recorded], tmp_path / "run")
    assert result.epochs_run == 1
    run_info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run_info["train_frames"] == 32  # every frame arrived, was recorded and paired
    code = main(["eval", "--model", str(tmp_path / "run" / "best"), "--bags", str(recorded), "--out",
                 str(tmp_path / "report"), "--saliency-frames", "4", "--no-progress", "--threads", "1"])
    assert code == 0
    files = {p.name for p in (tmp_path / "report").rglob("*") if p.is_file()}
    assert {"metrics.json", "summary.md", f"{recorded.name}_outputs.png"} <= files
