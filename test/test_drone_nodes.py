"""The drone over real rclpy and Fast DDS, across processes, with the real MuJoCo simulator.

- sim_node (backend drone) + drive_node running an untrained drone-action policy: frames stamped with sim time (70 ms
  per frame), every command a TwistStamped of the drone's fields (body FLU velocity, yaw rate) answering its frame,
  none refused by the simulator, and ``odom`` carrying the 3-D pose in ``map``.
- sim_node + drone_demonstrator_node (its teleop output straight into the sim): the demonstrator flies a
  fly-to-target episode to success through DDS, and the episode's end event says so.

Every wait is on what the nodes publish, never on a sleep or a window of wall time.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("mujoco")
pytest.importorskip("nav_msgs")
os.environ.setdefault("MUJOCO_GL", "egl")

from geometry_msgs.msg import TwistStamped  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_harness import NodeProcess, RosSession, free_domain_id  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Float64MultiArray, String  # noqa: E402

from lnn_control.command import DRONE  # noqa: E402
from lnn_control.nodes.simulator import EPISODE_QOS, truth_values  # noqa: E402
from lnn_control.ros.msgs import twist_to_command  # noqa: E402
from lnn_control.ros.stamps import stamp_to_ns  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.sim, pytest.mark.slow]

DOMAIN = free_domain_id()
FRAME_NS = 70_000_000
GAP_NS = 2_000_000_000
DEEP = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
FRAMES_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT)
DEEP_EPISODES = QoSProfile(depth=100, reliability=EPISODE_QOS.reliability, durability=EPISODE_QOS.durability)
SIM_PARAMS = {
    "backend": "drone",
    "stamped": True,
    "lockstep": True,
    "lockstep_timeout": 5.0,  # only a lost message could take this long
    "frame_width": 48,
    "frame_height": 48,
    "episode_gap": GAP_NS / 1e9,
    "use_sim_time": True,
}


@pytest.fixture(scope="module")
def ros():
    with RosSession(DOMAIN) as session:
        yield session


def _events(messages: list) -> list[dict]:
    return [json.loads(m.data) for m in messages]


def test_drive_node_flies_the_drone_sim_in_lockstep(ros, tmp_path):
    frames = ros.collect("camera/image_raw", Image, FRAMES_QOS)
    truth = ros.collect("sim/truth", Float64MultiArray, DEEP)
    commands = ros.collect("cmd_vel", TwistStamped, DEEP)
    odom = ros.collect("odom", Odometry, DEEP)
    sim = NodeProcess("lnn_control.nodes.simulator", domain_id=DOMAIN, log_dir=tmp_path / "sim",
                      params={**SIM_PARAMS, "seed": 11})
    drive = NodeProcess("lnn_control.nodes.drive", domain_id=DOMAIN, log_dir=tmp_path / "drive",
                        params={"model": "random:cfc:3:drone", "threads": 1, "stamped": True, "enabled": True,
                                "use_sim_time": True,
                                "nominal_dt": 0.07, "inference": "onnxruntime"})
    with sim, drive:
        commands.wait_for_count(20, timeout=120)
        truth.wait_for(lambda m: truth_values(m)["step"] >= 20, timeout=120)
    frame_stamps = {stamp_to_ns(f.header.stamp) for f in frames.messages}
    assert frame_stamps and all((s - GAP_NS) % FRAME_NS == 0 for s in frame_stamps), "sim time: 70 ms frames"
    got = [twist_to_command(m, DRONE) for m in commands.messages]
    answered = [c for c in got if c.stamp_ns in frame_stamps]
    assert len(answered) >= 10, "each command carries the stamp of the frame it answers"
    assert all(m.header.frame_id == "base_link" for m in commands.messages)
    assert any(c.vy != 0.0 and c.vz != 0.0 and c.yaw_rate != 0.0 for c in got), "all four fields travel"
    for c in got:  # the drone schema's own default limits, applied by the drive node's Driver
        for spec, value in zip(DRONE.fields, c.values, strict=True):
            assert spec.low <= value <= spec.high, (spec.name, value)
    rows = [truth_values(m) for m in truth.messages]
    assert rows[-1]["bad_commands"] == 0, "the sim took every command as a drone command"
    assert {"position_3d_2", "target_distance", "collided", "success"} <= set(rows[-1])
    assert odom.messages, "odometry from the sim"
    last = odom.messages[-1]
    assert (last.header.frame_id, last.child_frame_id) == ("map", "base_link")
    assert last.pose.pose.position.z > 0.3, "the drone is in the air"
    assert "action drone; backend onnxruntime" in drive.output(), "ONNX Runtime, checked against torch, drives"
    assert "ignored" not in drive.output(), "a drone model's node declares the drone's limits, and no others"


def test_the_demonstrator_flies_to_the_target_over_dds(ros, tmp_path):
    episodes = ros.collect("sim/episode", String, DEEP_EPISODES)
    labels = ros.collect("drone_demonstrator_node/label", TwistStamped, DEEP)
    sim = NodeProcess("lnn_control.nodes.simulator", domain_id=DOMAIN, log_dir=tmp_path / "sim",
                      params={**SIM_PARAMS, "seed": 4, "episodes": 1, "auto_reset": False,
                              "domain": "summer+fall.trunks"})
    expert = NodeProcess("lnn_control.nodes.drone_demonstrator", domain_id=DOMAIN, log_dir=tmp_path / "expert",
                         params={"stamped": True, "use_sim_time": True}, remaps={"teleop/cmd_vel": "cmd_vel"})
    with expert:
        ros.wait_for_publishers("drone_demonstrator_node/label", timeout=60)  # heard before the sim starts the flight
        with sim:
            episodes.wait_for(lambda m: json.loads(m.data)["event"] == "end", timeout=180)
    events = _events(episodes.messages)
    start = next(e for e in events if e["event"] == "start")
    end = next(e for e in events if e["event"] == "end")
    assert start["backend"] == "drone" and start["task"] == "fly-to-target" and len(start["obstacles"]) > 10
    assert start["domain"] == "summer+fall.trunks", "a domain mix travels as the node's parameter"
    assert end["reason"] == "success" and end["success"] is True and end["collided"] is False, end
    assert 2.0 < end["time_to_target_s"] < 30.0 and end["final_distance_m"] <= 2.0
    assert labels.messages, "the clean label goes out beside the executed command"
    assert all(twist_to_command(m, DRONE).is_finite() for m in labels.messages)


def test_up_drone_record_sim_records_flights_that_train_a_drone_model(ros, tmp_path):
    """``lnn-control up drone-record-sim --local``: the recorder acknowledges the flight, SIGINT stops everything
    cleanly, and the bag trains a model whose action is the drone's (one short epoch) that the Driver runs."""
    import signal

    from ros_harness import NodeProcess as Up

    from lnn_control.driver import Driver
    from lnn_control.nn.checkpoint import load
    from lnn_control.train import load_config, train

    bags = tmp_path / "bags"
    status = ros.collect("recorder_node/status", String, DEEP)
    wanted = {"/camera/image_raw": 40, "/teleop/cmd_vel": 40, "/drone_demonstrator_node/label": 40, "/odom": 40,
              "/sim/truth": 40, "/sim/episode": 1}

    def acknowledged() -> bool:
        latest = [json.loads(m.data) for m in status.messages][-1:] or [{"topics": {}}]
        return all(latest[0]["topics"].get(t, {}).get("received", 0) >= n for t, n in wanted.items())

    up = Up("lnn_control.cli", domain_id=DOMAIN, log_dir=tmp_path, cwd=tmp_path, stop_timeout=60.0,
            args=["up", "drone-record-sim", "--local", "--set", f"recorder_node.output_dir={bags}",
                  "--set", "sim_node.frame_width=64", "--set", "sim_node.frame_height=64"])
    with up:
        up.wait_until(acknowledged, 180, f"the recorder acknowledging {wanted}")
        assert up.stop(signal.SIGINT) == 0, up.tail(80)
    assert "Traceback" not in up.output()
    (bag,) = [p.parent for p in bags.rglob("metadata.yaml")]
    config = load_config(overrides=[
        "action=drone", "preprocess.height=64", "preprocess.width=64", "timing.nominal_dt=0.07",
        "dataset.pairing.command_topic=/drone_demonstrator_node/label", "dataset.window=8", "dataset.stride=8",
        "training.epochs=1", "training.val_fraction=0", f"training.cache_dir={tmp_path / 'cache'}",
        "training.tensorboard=false", "training.progress=false", "model.core=cfc",
    ])
    result = train(config, [bag], tmp_path / "model")
    policy = load(tmp_path / "model" / "best")
    assert policy.config.action == DRONE and result.epochs_run == 1
    command = Driver(policy).observe(np.zeros((64, 64, 3), np.uint8), 0)
    assert command.schema == DRONE and command.is_finite()


def test_up_drone_dagger_sim_takes_over_from_a_policy_and_records_both(ros, tmp_path):
    """``up drone-dagger-sim`` with an untrained policy: the demonstrator takes over (the mux says teleop), labels
    every frame, and the recorder keeps the policy's own commands beside the interventions."""
    import signal

    from ros_harness import NodeProcess as Up

    bags = tmp_path / "bags"
    status = ros.collect("recorder_node/status", String, DEEP)
    wanted = {"/drone_demonstrator_node/label": 60, "/lnn/cmd_vel": 30, "/teleop/cmd_vel": 5}

    def acknowledged() -> bool:
        latest = [json.loads(m.data) for m in status.messages][-1:] or [{"topics": {}}]
        return all(latest[0]["topics"].get(t, {}).get("received", 0) >= n for t, n in wanted.items())

    up = Up("lnn_control.cli", domain_id=DOMAIN, log_dir=tmp_path, cwd=tmp_path, stop_timeout=60.0,
            args=["up", "drone-dagger-sim", "--local", "--set", f"recorder_node.output_dir={bags}",
                  "--set", "drive_node.model=random:ltc:1:drone", "--set", "sim_node.frame_width=64",
                  "--set", "sim_node.frame_height=64"])
    with up:
        up.wait_until(acknowledged, 180, f"the recorder acknowledging {wanted}")
        # the mux's own log of its source changes, not a late-joining subscriber to mux/active_source (latched with
        # depth 1, it may see only the last change of the first second: "teleop", never the "policy" before it)
        def handed_over() -> bool:
            out = up.output()  # one read of the log per poll
            return "active source: none -> policy" in out and "active source: policy -> teleop" in out

        up.wait_until(handed_over, 120, "the mux handing the drone to the policy, then to the demonstrator")
        assert up.stop(signal.SIGINT) == 0, up.tail(80)
    out = up.output()
    assert "Traceback" not in out and "takeover 1 at" in out
