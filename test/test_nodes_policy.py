"""perception_node, policy_node and drive_node over real rclpy and Fast DDS, across processes.

Three node processes start once for the module (ROS and torch start-up is slow on two cores), each in a namespace of
its own, on one local-only domain (test/ros_harness.py):

- ``/split``: ``lnn-control up drive-split --local`` (perception_node + policy_node in one process), raw rgb8 frames,
  TwistStamped commands;
- ``/fused``: drive_node, JPEG frames (CompressedImage), Twist commands;
- ``/sim``: drive_node with ``use_sim_time``, raw frames, TwistStamped, and a /clock published by this test.

This process publishes real frames (the Donkeycar tub's JPEGs when ../shared/data is there, generated frames
otherwise) with reliable QoS, one at a time (lockstep), and checks that every command carries its camera stamp and
equals the offline ``Driver.observe`` on the same frames and stamps to 1e-5. No timing assertions.
"""

from __future__ import annotations

import re
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("rclpy")

from geometry_msgs.msg import Twist, TwistStamped  # noqa: E402
from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.msg import ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from ros_harness import Collector, NodeProcess, RosSession, free_domain_id  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Float32MultiArray, Header  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402

from lnn_control.driver import Driver, DriverConfig, LimitsConfig  # noqa: E402
from lnn_control.nn.checkpoint import load, save  # noqa: E402
from lnn_control.nn.policy import Policy, PolicyConfig  # noqa: E402
from lnn_control.nodes.driver_params import ParameterError, load_policy, shipped_model  # noqa: E402
from lnn_control.nodes.perception import features_from_msg, features_to_msg  # noqa: E402
from lnn_control.ros.msgs import compressed_image_msg, image_msg  # noqa: E402
from lnn_control.ros.stamps import ns_to_stamp, stamp_to_ns  # noqa: E402
from lnn_control.vision import decode_compressed  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DOMAIN = free_domain_id()
TUB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "donkeycar_tub" / "tub.tar.gz"
TOL = 1e-5
FRAME_ID = "camera_optical"
SIM_T0_NS = 1_000 * 10**9


# -- frames ------------------------------------------------------------------------------------------------------------


def load_jpegs(folder: Path, count: int = 40) -> list[bytes]:
    """The tub's first ``count`` JPEGs in recording order (extracted into ``folder``), or generated ones."""
    if TUB.is_file():
        with tarfile.open(TUB) as tar:
            members = [m for m in tar.getmembers() if m.name.endswith("_cam_image_array_.jpg") and "/._" not in m.name]
            members.sort(key=lambda m: int(Path(m.name).name.split("_")[0]))
            tar.extractall(folder, members=members[:count], filter="data")
            return [(folder / m.name).read_bytes() for m in members[:count]]
    rng = np.random.default_rng(3)
    frames = []
    for i in range(count):
        rgb = np.zeros((120, 160, 3), np.uint8)
        rgb[:, :, 0] = np.linspace(0, 255, 160, dtype=np.uint8)[None, :]
        rgb[40:80, (i * 4) % 160 :, 1] = 200
        rgb += rng.integers(0, 20, rgb.shape, dtype=np.uint8)
        frames.append(cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes())
    return frames


def raw_msg(rgb: np.ndarray, stamp_ns: int) -> Image:
    return image_msg(rgb, encoding="rgb8", stamp_ns=stamp_ns, frame_id=FRAME_ID)


def jpeg_msg(jpeg: bytes, stamp_ns: int) -> CompressedImage:
    return compressed_image_msg(jpeg, stamp_ns=stamp_ns, frame_id=FRAME_ID)


def stamps(start_ns: int, count: int, period_ns: int = 50_000_000) -> list[int]:
    return [start_ns + i * period_ns for i in range(count)]


def stamp_of(msg: TwistStamped) -> int:
    return stamp_to_ns(msg.header.stamp)


def values_of(msg: Twist | TwistStamped) -> tuple[float, float]:
    twist = getattr(msg, "twist", msg)
    return twist.angular.z, twist.linear.x


# -- the graph under test ----------------------------------------------------------------------------------------------


@dataclass
class Graph:
    ros: RosSession
    model: Path
    jpegs: list[bytes]
    rgbs: list[np.ndarray]
    procs: dict[str, NodeProcess]
    pubs: dict[str, Any]
    cmds: dict[str, Collector]
    features: Collector
    state: Collector
    clock: Any

    def offline(self, frames: list[np.ndarray], frame_stamps: list[int], driver: Driver | None = None) -> list:
        """Driver.observe on the same frames and stamps: the reference every node must equal."""
        driver = driver or Driver(load(self.model))
        return [driver.observe(rgb, s) for rgb, s in zip(frames, frame_stamps, strict=True)]

    def reset(self, ns: str, node: str) -> None:
        assert self.ros.call(f"/{ns}/{node}/reset", Trigger).success

    def send_stamped(self, ns: str, frames: list, frame_stamps: list[int]) -> dict[int, tuple[float, float]]:
        """Publish rgb8 frames one at a time, each after the command for the previous one arrived; commands by stamp.

        Only what arrives after the first send counts (the watchdog may have used the same stamps before)."""
        cmds, start = self.cmds[ns], time.monotonic()
        for rgb, stamp in zip(frames, frame_stamps, strict=True):
            self.pubs[ns].publish(raw_msg(rgb, stamp))
            cmds.wait_for(lambda m, s=stamp: stamp_of(m) == s, timeout=15, after=start)
        return {stamp_of(m): values_of(m) for m in cmds.since(start) if stamp_of(m) in set(frame_stamps)}

    def send_fused(self, jpeg: bytes, stamp: int) -> tuple[float, float]:
        """One JPEG to drive_node (Twist), lockstep; zeros are the watchdog's before the first frame: skipped."""
        start = time.monotonic()
        self.pubs["fused"].publish(jpeg_msg(jpeg, stamp))
        return values_of(self.cmds["fused"].wait_for(lambda m: values_of(m) != (0.0, 0.0), timeout=15, after=start))

    def expect_output(self, ns: str, text: str, timeout: float = 15.0) -> None:
        self.procs[ns].wait_for_output(re.escape(text), timeout)

    def publish_until_output(self, ns: str, pub: Any, msg: Any, text: str, timeout: float = 15.0) -> None:
        """Publish ``msg`` every 0.5 s until ``ns`` prints ``text``: a new best-effort writer's first samples are
        lost while the reader has not discovered it yet, even once the writer counts the reader as matched."""
        deadline = time.monotonic() + timeout
        while True:
            pub.publish(msg)
            try:
                self.procs[ns].wait_for_output(re.escape(text), 0.5)
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise


def assert_commands(got: dict[int, tuple[float, float]], expected: list, context: str = "") -> None:
    assert sorted(got) == [c.stamp_ns for c in expected], f"{context}: stamps differ"
    for c in expected:
        steering, velocity = got[c.stamp_ns]
        assert abs(steering - c.steering) <= TOL and abs(velocity - c.velocity) <= TOL, (
            f"{context}: at stamp {c.stamp_ns} got ({steering}, {velocity}), offline ({c.steering}, {c.velocity})"
        )


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("nodes")
    model = tmp / "model"
    save(Policy(PolicyConfig(core="ltc", seed=11)), model)
    jpegs = load_jpegs(tmp / "tub")
    rgbs = [decode_compressed("jpeg", j) for j in jpegs]
    up = ["up", "drive-split", "--local", "--without", "command_mux_node", "--namespace", "/split"]
    procs = {
        "split": NodeProcess(
            "lnn_control.cli",
            domain_id=DOMAIN,
            log_dir=tmp / "split",
            args=[*up, "--set", f"*.model={model}", "--set", "policy_node.stamped=true"],
        ),
        "fused": NodeProcess(
            "lnn_control.nodes.drive",
            domain_id=DOMAIN,
            log_dir=tmp / "fused",
            params={"model": str(model), "image_transport": "compressed", "timeout": 60.0},
            remaps={"__ns": "/fused"},
        ),
        "sim": NodeProcess(
            "lnn_control.nodes.drive",
            domain_id=DOMAIN,
            log_dir=tmp / "sim",
            params={"model": str(model), "use_sim_time": True, "stamped": True},
            remaps={"__ns": "/sim"},
        ),
    }
    with RosSession(DOMAIN) as ros:
        for proc in procs.values():
            proc.start()
        try:
            pubs = {
                "split": ros.publisher("/split/camera/image_raw", Image),
                "fused": ros.publisher("/fused/camera/image_raw/compressed", CompressedImage),
                "sim": ros.publisher("/sim/camera/image_raw", Image),
            }
            cmds = {
                "split": ros.collect("/split/cmd_vel", TwistStamped),
                "fused": ros.collect("/fused/cmd_vel", Twist),
                "sim": ros.collect("/sim/cmd_vel", TwistStamped),
            }
            graph = Graph(
                ros,
                model,
                jpegs,
                rgbs,
                procs,
                pubs,
                cmds,
                ros.collect("/split/lnn/features", Image),
                ros.collect("/split/policy_node/state", Float32MultiArray),
                ros.publisher("/clock", Clock),
            )
            for pub in pubs.values():
                ros.wait_for_subscribers(pub, timeout=120)
            for ns in pubs:
                ros.wait_for_publishers(f"/{ns}/cmd_vel", timeout=60)
            ros.wait_for(lambda: ros.node.count_subscribers("/split/lnn/features") >= 2, 60, "policy_node on features")
            for ns, node in (("split", "policy_node"), ("fused", "drive_node"), ("sim", "drive_node")):
                graph.reset(ns, node)  # services up
            time.sleep(0.5)  # let the last matches settle
            yield graph
        finally:
            for proc in procs.values():
                proc.stop()


# -- unit checks of the parameters (no processes) ----------------------------------------------------------------------


def test_random_model_is_deterministic_and_bad_specs_are_explained(tmp_path):
    a, b = load_policy("random:cfc:3"), load_policy("random:cfc:3")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert a.config.core == "cfc"
    with pytest.raises(ParameterError, match="random:<core>:<seed>"):
        load_policy("random:bogus:1")
    with pytest.raises(ParameterError, match="nowhere"):
        load_policy(str(tmp_path / "nowhere"))
    save(Policy(PolicyConfig(core="cfc", seed=1)), tmp_path / "m")
    assert load_policy(str(tmp_path / "m.json")).config.core == "cfc"


def test_no_shipped_model_tells_how_to_pass_one(monkeypatch, tmp_path):
    monkeypatch.setattr("lnn_control.nodes.driver_params.model_file", lambda name: tmp_path / name)
    with pytest.raises(ParameterError, match="model:="):
        shipped_model()
    save(Policy(PolicyConfig()), tmp_path / "only")
    assert shipped_model() == tmp_path / "only"


def test_features_message_round_trip():
    header = Header(frame_id="cam", stamp=ns_to_stamp(123_456_789_012))
    values = np.arange(32, dtype=np.float32) / 7
    msg = features_to_msg(values, header)
    assert (msg.encoding, msg.height, msg.width, msg.step) == ("32FC1", 1, 32, 128)
    assert msg.header.frame_id == "cam" and stamp_to_ns(msg.header.stamp) == 123_456_789_012
    np.testing.assert_array_equal(features_from_msg(msg, 32), values)
    with pytest.raises(ValueError, match="expected 16x1"):
        features_from_msg(msg, 16)


# -- split layout (perception_node + policy_node), raw frames, TwistStamped --------------------------------------------


def test_split_commands_carry_camera_stamps_and_equal_offline(graph):
    graph.reset("split", "policy_node")
    frame_stamps = stamps(10**15, 30)
    start = time.monotonic()
    got = graph.send_stamped("split", graph.rgbs[:30], frame_stamps)
    driver = Driver(load(graph.model))
    assert_commands(got, graph.offline(graph.rgbs[:30], frame_stamps, driver), "split")
    # the features carry the camera header and equal the offline encoder's
    feats = {stamp_of(m): m for m in graph.features.since(start)}
    assert sorted(feats) == frame_stamps
    for rgb, s in zip(graph.rgbs, frame_stamps, strict=False):
        assert feats[s].header.frame_id == FRAME_ID
        np.testing.assert_allclose(features_from_msg(feats[s], 32), driver.features(rgb), atol=TOL)
    # ~/state: the neuron activity after the last frame
    graph.state.wait_for(lambda m: np.allclose(np.array(m.data), driver.activity, atol=TOL), after=start)


def test_reset_service_forgets_the_state(graph):
    graph.reset("split", "policy_node")
    first, second = stamps(2 * 10**15, 8), stamps(2 * 10**15 + 10**9 // 2, 8)  # 0.5 s later: no gap reset
    frames = graph.rgbs[:16]
    got = graph.send_stamped("split", frames[:8], first)
    graph.reset("split", "policy_node")
    got.update(graph.send_stamped("split", frames[8:], second))
    expected = graph.offline(frames[:8], first) + graph.offline(frames[8:], second)
    assert_commands(got, expected, "after ~/reset")
    carried = graph.offline(frames, first + second)[8:]  # what the state without the reset gives: different
    assert any(abs(a.steering - b.steering) > 1e-4 for a, b in zip(carried, expected[8:], strict=True))


def test_enable_service_zeroes_the_command_and_keeps_integrating(graph):
    graph.reset("split", "policy_node")
    frame_stamps = stamps(3 * 10**15, 15)
    frames = graph.rgbs[:15]
    got = graph.send_stamped("split", frames[:5], frame_stamps[:5])
    assert graph.ros.call("/split/policy_node/enable", SetBool, SetBool.Request(data=False)).success
    disabled = graph.send_stamped("split", frames[5:10], frame_stamps[5:10])
    assert len(disabled) == 5 and all(v == (0.0, 0.0) for v in disabled.values())
    assert graph.ros.call("/split/policy_node/enable", SetBool, SetBool.Request(data=True)).success
    got.update(graph.send_stamped("split", frames[10:], frame_stamps[10:]))
    expected = graph.offline(graph.rgbs[:15], frame_stamps)
    assert_commands(got, expected[:5] + expected[10:], "enabled again")


def test_watchdog_publishes_zero_until_frames_return(graph):
    graph.reset("split", "policy_node")
    frame_stamps = stamps(4 * 10**15, 4)
    graph.send_stamped("split", graph.rgbs[:4], frame_stamps)
    start = time.monotonic()
    # no frames: after 0.2 s the watchdog publishes zero velocity, stamped with the node clock, again and again
    RosSession.wait_for(lambda: len(watchdog_zeros(graph, start, frame_stamps)) >= 3, 15, "3 zero commands")
    now_ns = time.time_ns()
    assert all(abs(stamp_of(m) - now_ns) < 60 * 10**9 for m in watchdog_zeros(graph, start, frame_stamps))
    graph.expect_output("split", "/split/lnn/features: no input for 0.2 s: publishing zero velocity")
    # frames return: commands again (the gap > reset_gap reset the state, as on a fresh start)
    back = [4 * 10**15 + 5 * 10**9]
    got = graph.send_stamped("split", [graph.rgbs[10]], back)
    assert_commands(got, graph.offline([graph.rgbs[10]], back), "after the watchdog")


def watchdog_zeros(graph: Graph, start: float, frame_stamps: list[int]) -> list:
    return [
        m for m in graph.cmds["split"].since(start) if stamp_of(m) not in frame_stamps and values_of(m) == (0.0, 0.0)
    ]


def test_bad_frames_are_dropped_with_a_warning_and_the_next_good_frame_is_right(graph):
    graph.reset("split", "policy_node")
    good = stamps(5 * 10**15, 10)
    rgb = graph.rgbs[0]
    h, w = rgb.shape[:2]
    n = 3 * w * h
    got = graph.send_stamped("split", graph.rgbs[:5], good[:5])
    wrong_encoding = raw_msg(rgb, good[4] + 1)
    wrong_encoding.encoding = "yuv422_yuy2"
    short_step = raw_msg(rgb, good[4] + 2)
    short_step.step = 3 * w - 1
    truncated = raw_msg(rgb, good[4] + 3)
    truncated.data = bytes(truncated.data[: n // 2])
    empty = raw_msg(rgb, good[4] + 4)
    empty.data = b""
    absurd = raw_msg(rgb, good[4] + 5)
    absurd.width, absurd.height, absurd.step = 100_000, 100_000, 300_000
    topic = "/split/camera/image_raw: frame dropped: "
    for msg, problem in (
        (wrong_encoding, "unsupported encoding 'yuv422_yuy2'"),
        (short_step, f"step {3 * w - 1} < width"),
        (truncated, f"data has {n // 2} bytes but step*height is {n}"),
        (empty, "empty data"),
        (absurd, "absurd size 100000x100000"),
    ):
        graph.pubs["split"].publish(msg)  # one at a time: a burst could overflow the sensor-data queue
        graph.expect_output("split", topic + problem)
    got.update(graph.send_stamped("split", graph.rgbs[5:10], good[5:]))
    assert_commands(got, graph.offline(graph.rgbs[:10], good), "around bad frames")
    assert graph.procs["split"].alive


def test_bad_features_are_dropped_and_a_nan_output_stops_and_resets(graph):
    graph.reset("split", "policy_node")
    pub = graph.ros.publisher("/split/lnn/features", Image)
    graph.ros.wait_for_subscribers(pub, 2)
    base = 6 * 10**15
    header = Header(frame_id=FRAME_ID, stamp=ns_to_stamp(base))
    wrong_encoding = features_to_msg(np.zeros(32, np.float32), header)
    wrong_encoding.encoding = "mono8"
    topic = "/split/lnn/features: features dropped: "
    for msg, problem in (
        (features_to_msg(np.zeros(5, np.float32), header), "size 5x1, expected 32x1"),
        (wrong_encoding, "encoding 'mono8', expected '32FC1'"),
    ):
        graph.publish_until_output("split", pub, msg, topic + problem)
    start = time.monotonic()
    nan_stamp = base + 50_000_000
    pub.publish(features_to_msg(np.full(32, np.nan, np.float32), Header(stamp=ns_to_stamp(nan_stamp))))
    zero = graph.cmds["split"].wait_for(lambda m: stamp_of(m) == nan_stamp, after=start)
    assert values_of(zero) == (0.0, 0.0)
    assert not any(stamp_of(m) == base for m in graph.cmds["split"].since(start)), "malformed features drove"
    graph.expect_output("split", "non-finite policy output: state reset, stopping")
    # the state was reset: the next frame is driven as on a fresh start
    nxt = [base + 100_000_000]
    got = graph.send_stamped("split", [graph.rgbs[3]], nxt)
    assert_commands(got, graph.offline([graph.rgbs[3]], nxt), "after a NaN")
    graph.ros.node.destroy_publisher(pub)


def test_limits_change_at_run_time_and_invalid_changes_are_refused(graph):
    def set_params(**values: float) -> list:
        request = SetParameters.Request()
        request.parameters = [
            ParameterMsg(name=k, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=v))
            for k, v in values.items()
        ]
        return graph.ros.call("/split/policy_node/set_parameters", SetParameters, request).results

    try:
        assert set_params(max_steering=0.01)[0].successful
        refused = set_params(min_dt=0.9)[0]  # above max_dt: TimingConfig refuses it
        assert not refused.successful and "min_dt_s" in refused.reason
        graph.reset("split", "policy_node")
        frame_stamps = stamps(7 * 10**15, 6)
        got = graph.send_stamped("split", graph.rgbs[:6], frame_stamps)
        limited = Driver(load(graph.model), DriverConfig(limits=LimitsConfig(max_steering=0.01)))
        assert_commands(got, graph.offline(graph.rgbs[:6], frame_stamps, limited), "limits")
        assert all(abs(steering) <= 0.01 for steering, _ in got.values())
    finally:
        assert set_params(max_steering=1.0)[0].successful


# -- fused layout (drive_node), JPEG frames, Twist ---------------------------------------------------------------------


def test_fused_node_on_jpegs_equals_offline_and_survives_corrupt_jpegs(graph):
    graph.reset("fused", "drive_node")
    frame_stamps = stamps(8 * 10**15, 20)
    got = [graph.send_fused(j, s) for j, s in zip(graph.jpegs[:10], frame_stamps[:10], strict=True)]
    topic = "/fused/camera/image_raw/compressed: frame dropped: "
    corrupt = graph.jpegs[0][:200] + bytes(range(256)) * 8
    for data, problem in (
        (corrupt, "corrupt or truncated JPEG"),
        (graph.jpegs[0][: len(graph.jpegs[0]) // 3], "corrupt or truncated JPEG"),
        (b"", "empty data"),
    ):
        graph.pubs["fused"].publish(jpeg_msg(data, frame_stamps[9] + 1))
        graph.expect_output("fused", topic + problem)
    got += [graph.send_fused(j, s) for j, s in zip(graph.jpegs[10:20], frame_stamps[10:], strict=True)]
    expected = graph.offline(graph.rgbs[:20], frame_stamps)
    for (steering, velocity), c in zip(got, expected, strict=True):
        assert abs(steering - c.steering) <= TOL and abs(velocity - c.velocity) <= TOL
    assert graph.procs["fused"].alive


def test_both_layouts_give_the_same_commands(graph):
    graph.reset("split", "policy_node")
    graph.reset("fused", "drive_node")
    frame_stamps = stamps(9 * 10**15, 12)
    split = graph.send_stamped("split", graph.rgbs[20:32], frame_stamps)
    fused = [graph.send_fused(j, s) for j, s in zip(graph.jpegs[20:32], frame_stamps, strict=True)]
    for (steering, velocity), s in zip(fused, frame_stamps, strict=True):
        assert abs(steering - split[s][0]) <= TOL and abs(velocity - split[s][1]) <= TOL


# -- sim time ----------------------------------------------------------------------------------------------------------


def test_sim_time_drives_stamps_and_the_watchdog(graph):
    cmds = graph.cmds["sim"]
    sim_ns = SIM_T0_NS

    def tick(seconds: float, step_ns: int = 10_000_000) -> None:
        nonlocal sim_ns
        for _ in range(int(seconds * 1e9 / step_ns)):
            sim_ns += step_ns
            graph.clock.publish(Clock(clock=ns_to_stamp(sim_ns)))
            time.sleep(0.005)

    # the clock runs, no frames: the watchdog's zero commands are stamped with sim time
    tick(0.5)
    RosSession.wait_for(lambda: sum(SIM_T0_NS <= stamp_of(m) <= sim_ns for m in cmds.messages) >= 2, 15, "zeros")
    assert all(values_of(m) == (0.0, 0.0) for m in cmds.messages if SIM_T0_NS <= stamp_of(m) <= sim_ns)
    graph.expect_output("sim", "/sim/camera/image_raw: no input yet")
    # frames stamped with sim time (exposed 5 ms before the clock's now): commands carry those stamps, equal offline
    frame_stamps = []
    for _ in range(10):
        tick(0.05)
        frame_stamps.append(sim_ns - 5_000_000)
    graph.reset("sim", "drive_node")
    got = graph.send_stamped("sim", graph.rgbs[:10], frame_stamps)
    assert_commands(got, graph.offline(graph.rgbs[:10], frame_stamps), "sim time")
    # frames stop, sim time runs on past the timeout: zero velocity stamped 0.2 s (sim) after the last input or later
    start = time.monotonic()
    fed_ns = sim_ns
    tick(0.5)
    cmds.wait_for(lambda m: stamp_of(m) > fed_ns, after=start)
    late = [m for m in cmds.since(start) if stamp_of(m) > fed_ns]
    assert all(values_of(m) == (0.0, 0.0) and stamp_of(m) <= sim_ns for m in late)
    assert min(stamp_of(m) for m in late) >= fed_ns + 200_000_000
    # the clock stops: sim time stands still, so does the watchdog's timer (however long we wait in wall time)
    time.sleep(0.5)
    count = len(cmds)
    time.sleep(1.0)
    assert len(cmds) == count, "the watchdog fired while sim time stood still"
