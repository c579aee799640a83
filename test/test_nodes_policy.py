"""perception_node, policy_node and drive_node over real rclpy and Fast DDS, across processes.

Three node processes start once for the module (ROS and torch start-up is slow on two cores), each in a namespace of
its own, on one local-only domain (lnn_control.ros.env.local_env):

- ``/split``: ``lnn-control up drive-split --local`` (perception_node + policy_node in one process), raw rgb8 frames,
  TwistStamped commands;
- ``/fused``: the ``drive_node`` console script, JPEG frames (CompressedImage), Twist commands;
- ``/sim``: ``drive_node`` with ``use_sim_time``, raw frames, TwistStamped, and a /clock published by this test.

This process publishes real frames (the Donkeycar tub's JPEGs when ../shared/data is there, generated frames
otherwise) with reliable QoS, one at a time (lockstep), and checks that every command carries its camera stamp and
equals the offline ``Driver.observe`` on the same frames and stamps to 1e-5. No timing assertions.
"""

from __future__ import annotations

import array
import os
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from geometry_msgs.msg import Twist, TwistStamped  # noqa: E402
from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.msg import ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Float32MultiArray  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402

from lnn_control.driver import Driver, DriverConfig, LimitsConfig  # noqa: E402
from lnn_control.nn.checkpoint import load, save  # noqa: E402
from lnn_control.nn.policy import Policy, PolicyConfig  # noqa: E402
from lnn_control.nodes.driver_params import ParameterError, load_policy, shipped_model  # noqa: E402
from lnn_control.nodes.perception import features_from_msg, features_to_msg  # noqa: E402
from lnn_control.ros.env import apply, local_env  # noqa: E402
from lnn_control.ros.stamps import ns_to_stamp, stamp_to_ns  # noqa: E402
from lnn_control.vision import decode_compressed  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
TUB = ROOT.parent / "shared" / "data" / "donkeycar_tub" / "tub.tar.gz"
BIN = Path(sys.executable).parent
TOL = 1e-5
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
FRAME_ID = "camera_optical"
SIM_T0_NS = 1_000 * 10**9


# -- frames -----------------------------------------------------------------------------------------------------------


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
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        frames.append(jpeg.tobytes())
    return frames


def raw_msg(rgb: np.ndarray, stamp_ns: int) -> Image:
    h, w = rgb.shape[:2]
    msg = Image(height=h, width=w, encoding="rgb8", step=3 * w)
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = FRAME_ID
    msg.data = array.array("B", np.ascontiguousarray(rgb).tobytes())
    return msg


def compressed_msg(jpeg: bytes, stamp_ns: int) -> CompressedImage:
    msg = CompressedImage(format="jpeg")
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = FRAME_ID
    msg.data = array.array("B", jpeg)
    return msg


def stamps(start_ns: int, count: int, period_ns: int = 50_000_000) -> list[int]:
    return [start_ns + i * period_ns for i in range(count)]


# -- the test's own ROS node ------------------------------------------------------------------------------------------


@dataclass
class Received:
    """Messages of one topic, in arrival order, with a condition to wait on."""

    items: list = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def add(self, item: Any) -> None:
        with self.cond:
            self.items.append(item)
            self.cond.notify_all()

    def wait(self, predicate: Callable[[list], bool], timeout: float = 15.0) -> list:
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(self.items), timeout=timeout):
                raise AssertionError(f"timed out after {timeout} s; have {len(self.items)} messages")
            return list(self.items)

    def snapshot(self) -> list:
        with self.cond:
            return list(self.items)


class Probe:
    """This process's node: publishers, subscribers and service calls, spun on a thread of its own."""

    def __init__(self, domain_id: int) -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node("test_probe", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def subscribe(self, msg_type: type, topic: str, convert: Callable[[Any], Any], qos: Any = RELIABLE) -> Received:
        received = Received()
        self.node.create_subscription(msg_type, topic, lambda m: received.add(convert(m)), qos)
        return received

    def call(self, srv_type: type, name: str, request: Any, timeout: float = 20.0) -> Any:
        client = self.node.create_client(srv_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout), f"service {name} not available"
            future = client.call_async(request)
            done = threading.Event()
            future.add_done_callback(lambda _: done.set())
            assert done.wait(timeout), f"service {name} did not answer"
            return future.result()
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def stamped_command(msg: TwistStamped) -> tuple[int, float, float]:
    return stamp_to_ns(msg.header.stamp), msg.twist.angular.z, msg.twist.linear.x


class NodeProcess:
    """A node process with its output in a log file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.log = logs / f"{name}.log"
        self.proc = subprocess.Popen(command, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 10.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            out = self.output()
            if text in out:
                return out
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not in the output of {self.name}:\n{self.output()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Graph:
    probe: Probe
    model: Path
    jpegs: list[bytes]
    rgbs: list[np.ndarray]
    procs: dict[str, NodeProcess]
    pubs: dict[str, Any]
    cmds: dict[str, Received]
    features: Received
    state: Received
    clock: Any

    def offline(self, frames: list[np.ndarray], frame_stamps: list[int], driver: Driver | None = None) -> list:
        """Driver.observe on the same frames and stamps: the reference every node must equal."""
        driver = driver or Driver(load(self.model))
        return [driver.observe(rgb, s) for rgb, s in zip(frames, frame_stamps, strict=True)]

    def reset(self, ns: str, node: str) -> None:
        response = self.probe.call(Trigger, f"/{ns}/{node}/reset", Trigger.Request())
        assert response.success

    def send_stamped(self, ns: str, msgs: list, frame_stamps: list[int]) -> dict[int, tuple[float, float]]:
        """Publish frames one at a time, each after the command for the previous one arrived; commands by stamp."""
        cmds = self.cmds[ns]
        start = len(cmds.snapshot())  # only what arrives from now on (the watchdog may have used the same stamps)
        for msg, stamp in zip(msgs, frame_stamps, strict=True):
            self.pubs[ns].publish(msg)
            cmds.wait(lambda items, s=stamp: any(c[0] == s for c in items[start:]))
        return {c[0]: (c[1], c[2]) for c in cmds.snapshot()[start:] if c[0] in set(frame_stamps)}

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{p.output()[-2000:]}" for n, p in self.procs.items())


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

    saved_env = dict(os.environ)
    env = local_env()
    env.update(RCUTILS_LOGGING_BUFFERED_STREAM="0", RCUTILS_COLORIZED_OUTPUT="0", OMP_NUM_THREADS="1")
    apply(env)
    common = ["-p", f"model:={model}"]
    procs = {
        "split": NodeProcess(
            "split",
            [str(BIN / "lnn-control"), "up", "drive-split", "--local", "--without", "command_mux_node"]
            + ["--namespace", "/split", "--set", f"*.model={model}", "--set", "policy_node.stamped=true"],
            env,
            tmp,
        ),
        "fused": NodeProcess(
            "fused",
            [str(BIN / "drive_node"), "--ros-args", "-r", "__ns:=/fused", *common]
            + ["-p", "image_transport:=compressed", "-p", "timeout:=60.0"],
            env,
            tmp,
        ),
        "sim": NodeProcess(
            "sim",
            [str(BIN / "drive_node"), "--ros-args", "-r", "__ns:=/sim", *common]
            + ["-p", "use_sim_time:=true", "-p", "stamped:=true"],
            env,
            tmp,
        ),
    }
    probe = Probe(int(env["ROS_DOMAIN_ID"]))
    try:
        n = probe.node
        pubs = {
            "split": n.create_publisher(Image, "/split/camera/image_raw", RELIABLE),
            "fused": n.create_publisher(CompressedImage, "/fused/camera/image_raw/compressed", RELIABLE),
            "sim": n.create_publisher(Image, "/sim/camera/image_raw", RELIABLE),
        }
        cmds = {
            "split": probe.subscribe(TwistStamped, "/split/cmd_vel", stamped_command),
            "fused": probe.subscribe(Twist, "/fused/cmd_vel", lambda m: (m.angular.z, m.linear.x)),
            "sim": probe.subscribe(TwistStamped, "/sim/cmd_vel", stamped_command),
        }
        features = probe.subscribe(
            Image,
            "/split/lnn/features",
            lambda m: (stamp_to_ns(m.header.stamp), m.header.frame_id, np.frombuffer(m.data, "<f4").copy()),
        )
        state = probe.subscribe(Float32MultiArray, "/split/policy_node/state", lambda m: np.array(m.data, np.float32))
        clock = n.create_publisher(Clock, "/clock", RELIABLE)
        graph = Graph(probe, model, jpegs, rgbs, procs, pubs, cmds, features, state, clock)
        subs = {
            "split": probe.node.create_subscription(TwistStamped, "/split/cmd_vel", lambda m: None, RELIABLE),
        }
        end = time.monotonic() + 120

        def ready() -> bool:
            exited = [p.name for p in procs.values() if p.proc.poll() is not None]
            assert not exited, f"node process(es) {exited} exited:\n{graph.logs()}"
            assert time.monotonic() < end, f"the nodes did not come up:\n{graph.logs()}"
            return (
                all(pub.get_subscription_count() > 0 for pub in pubs.values())
                and n.count_publishers("/split/cmd_vel") > 0
                and n.count_publishers("/fused/cmd_vel") > 0
                and n.count_publishers("/sim/cmd_vel") > 0
                # perception's features reach policy_node and this probe
                and n.count_subscribers("/split/lnn/features") >= 2
                and n.count_publishers("/split/lnn/features") >= 1
            )

        while not ready():
            time.sleep(0.1)
        for sub in subs.values():
            n.destroy_subscription(sub)
        for ns, node in (("split", "policy_node"), ("fused", "drive_node"), ("sim", "drive_node")):
            graph.reset(ns, node)  # services up
        time.sleep(0.5)  # let the last matches settle
        yield graph
    finally:
        probe.close()
        for p in procs.values():
            p.stop()
        os.environ.clear()
        os.environ.update(saved_env)


# -- unit checks of the parameters (no processes) ---------------------------------------------------------------------


def test_random_model_is_deterministic_and_bad_specs_are_explained(tmp_path):
    a, b = load_policy("random:cfc:3"), load_policy("random:cfc:3")
    assert all(torch_equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
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
    from std_msgs.msg import Header

    header = Header(frame_id="cam")
    header.stamp = ns_to_stamp(123_456_789_012)
    values = np.arange(32, dtype=np.float32) / 7
    msg = features_to_msg(values, header)
    assert (msg.encoding, msg.height, msg.width, msg.step) == ("32FC1", 1, 32, 128)
    assert msg.header.frame_id == "cam" and stamp_to_ns(msg.header.stamp) == 123_456_789_012
    np.testing.assert_array_equal(features_from_msg(msg, 32), values)
    with pytest.raises(ValueError, match="expected 16x1"):
        features_from_msg(msg, 16)


def torch_equal(x, y) -> bool:
    import torch

    return bool(torch.equal(x, y))


# -- split layout (perception_node + policy_node), raw frames, TwistStamped -------------------------------------------


def test_split_commands_carry_camera_stamps_and_equal_offline(graph):
    graph.reset("split", "policy_node")
    frame_stamps = stamps(10**15, 30)
    msgs = [raw_msg(rgb, s) for rgb, s in zip(graph.rgbs, frame_stamps, strict=False)]
    got = graph.send_stamped("split", msgs, frame_stamps)
    driver = Driver(load(graph.model))
    expected = graph.offline(graph.rgbs[:30], frame_stamps, driver)
    assert_commands(got, expected, "split")
    # the features carry the camera header and equal the offline encoder's
    feats = {f[0]: f for f in graph.features.snapshot() if f[0] in set(frame_stamps)}
    assert sorted(feats) == frame_stamps
    for rgb, s in zip(graph.rgbs, frame_stamps, strict=False):
        assert feats[s][1] == FRAME_ID
        np.testing.assert_allclose(feats[s][2], driver.features(rgb), atol=TOL)
    # ~/state: the neuron activity after the last frame
    state = graph.state.wait(lambda items: any(np.allclose(x, driver.activity, atol=TOL) for x in items[-3:]))
    assert state[-1].shape == driver.activity.shape


def test_reset_service_forgets_the_state(graph):
    graph.reset("split", "policy_node")
    first, second = stamps(2 * 10**15, 8), stamps(2 * 10**15 + 10**9 // 2, 8)  # 0.5 s later: no gap reset
    frames = graph.rgbs[:16]
    got = graph.send_stamped("split", [raw_msg(r, s) for r, s in zip(frames[:8], first, strict=True)], first)
    graph.reset("split", "policy_node")
    got.update(graph.send_stamped("split", [raw_msg(r, s) for r, s in zip(frames[8:], second, strict=True)], second))
    expected = graph.offline(frames[:8], first) + graph.offline(frames[8:], second)
    assert_commands(got, expected, "after ~/reset")
    carried = graph.offline(frames, first + second)[8:]
    assert any(abs(a.steering - b.steering) > 1e-4 for a, b in zip(carried, expected[8:], strict=True))


def test_enable_service_zeroes_the_command_and_keeps_integrating(graph):
    graph.reset("split", "policy_node")
    frame_stamps = stamps(3 * 10**15, 15)
    msgs = [raw_msg(r, s) for r, s in zip(graph.rgbs, frame_stamps, strict=False)]
    got = graph.send_stamped("split", msgs[:5], frame_stamps[:5])
    response = graph.probe.call(SetBool, "/split/policy_node/enable", SetBool.Request(data=False))
    assert response.success
    disabled = graph.send_stamped("split", msgs[5:10], frame_stamps[5:10])
    assert all(v == (0.0, 0.0) for v in disabled.values()) and len(disabled) == 5
    assert graph.probe.call(SetBool, "/split/policy_node/enable", SetBool.Request(data=True)).success
    got.update(graph.send_stamped("split", msgs[10:], frame_stamps[10:]))
    expected = graph.offline(graph.rgbs[:15], frame_stamps)
    assert_commands(got, expected[:5] + expected[10:], "enabled again")


def test_watchdog_publishes_zero_until_frames_return(graph):
    graph.reset("split", "policy_node")
    frame_stamps = stamps(4 * 10**15, 4)
    graph.send_stamped("split", [raw_msg(r, s) for r, s in zip(graph.rgbs, frame_stamps, strict=False)], frame_stamps)
    before = len(graph.cmds["split"].snapshot())
    # no frames: the watchdog (0.2 s by default) publishes zero velocity, stamped with the node clock, repeatedly
    zeros = graph.cmds["split"].wait(
        lambda items: sum(1 for c in items[before:] if c[0] not in frame_stamps and c[1:] == (0.0, 0.0)) >= 3
    )
    now_ns = time.time_ns()
    assert all(abs(c[0] - now_ns) < 60 * 10**9 for c in zeros[before:]), "watchdog stamps are not the node clock"
    graph.procs["split"].wait_for_output("/split/lnn/features: no input for 0.2 s: publishing zero velocity")
    # frames return: commands again (the gap > reset_gap reset the state, as on a fresh start)
    back = [4 * 10**15 + 5 * 10**9]
    got = graph.send_stamped("split", [raw_msg(graph.rgbs[10], back[0])], back)
    assert_commands(got, graph.offline([graph.rgbs[10]], back), "after the watchdog")


def test_bad_frames_are_dropped_with_a_warning_and_the_next_good_frame_is_right(graph):
    graph.reset("split", "policy_node")
    good = stamps(5 * 10**15, 10)
    rgb = graph.rgbs[0]
    h, w = rgb.shape[:2]
    got = graph.send_stamped("split", [raw_msg(r, s) for r, s in zip(graph.rgbs[:5], good[:5], strict=True)], good[:5])
    n = 3 * w * h
    wrong_encoding = raw_msg(rgb, good[4] + 1)
    wrong_encoding.encoding = "yuv422_yuy2"
    short_step = raw_msg(rgb, good[4] + 2)
    short_step.step = 3 * w - 1
    truncated = raw_msg(rgb, good[4] + 3)
    truncated.data = truncated.data[: n // 2]
    empty = raw_msg(rgb, good[4] + 4)
    empty.data = array.array("B")
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
        graph.procs["split"].wait_for_output(topic + problem)
    got.update(
        graph.send_stamped("split", [raw_msg(r, s) for r, s in zip(graph.rgbs[5:10], good[5:], strict=True)], good[5:])
    )
    assert_commands(got, graph.offline(graph.rgbs[:10], good), "around bad frames")
    assert graph.procs["split"].proc.poll() is None


def test_bad_features_are_dropped_and_a_nan_output_stops_and_resets(graph):
    from std_msgs.msg import Header

    graph.reset("split", "policy_node")
    pub = graph.probe.node.create_publisher(Image, "/split/lnn/features", RELIABLE)
    end = time.monotonic() + 20
    while pub.get_subscription_count() == 0 and time.monotonic() < end:
        time.sleep(0.05)
    base = 6 * 10**15
    header = Header(frame_id=FRAME_ID)
    header.stamp = ns_to_stamp(base)
    wrong_size = features_to_msg(np.zeros(5, np.float32), header)
    wrong_encoding = features_to_msg(np.zeros(32, np.float32), header)
    wrong_encoding.encoding = "mono8"
    pub.publish(wrong_size)
    pub.publish(wrong_encoding)
    header.stamp = ns_to_stamp(base + 50_000_000)
    pub.publish(features_to_msg(np.full(32, np.nan, np.float32), header))
    zero = graph.cmds["split"].wait(lambda items: any(c[0] == base + 50_000_000 for c in items))
    assert [c[1:] for c in zero if c[0] == base + 50_000_000] == [(0.0, 0.0)]
    assert not any(c[0] == base for c in zero), "malformed features produced a command"
    out = graph.procs["split"].wait_for_output("non-finite policy output")
    assert "/split/lnn/features: features dropped: size 5x1, expected 32x1" in out
    assert "/split/lnn/features: features dropped: encoding 'mono8'" in out
    # the state was reset: the next frame is driven as on a fresh start
    nxt = [base + 100_000_000]
    got = graph.send_stamped("split", [raw_msg(graph.rgbs[3], nxt[0])], nxt)
    assert_commands(got, graph.offline([graph.rgbs[3]], nxt), "after a NaN")
    graph.probe.node.destroy_publisher(pub)


def test_limits_change_at_run_time_and_invalid_changes_are_refused(graph):
    def set_params(**values: float) -> list:
        request = SetParameters.Request()
        request.parameters = [
            ParameterMsg(name=k, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=v))
            for k, v in values.items()
        ]
        return graph.probe.call(SetParameters, "/split/policy_node/set_parameters", request).results

    try:
        assert set_params(max_steering=0.01)[0].successful
        refused = set_params(min_dt=0.9)[0]  # above max_dt: TimingConfig refuses it
        assert not refused.successful and "min_dt_s" in refused.reason
        graph.reset("split", "policy_node")
        frame_stamps = stamps(7 * 10**15, 6)
        got = graph.send_stamped(
            "split", [raw_msg(r, s) for r, s in zip(graph.rgbs, frame_stamps, strict=False)], frame_stamps
        )
        config = DriverConfig(limits=LimitsConfig(max_steering=0.01))
        assert_commands(got, graph.offline(graph.rgbs[:6], frame_stamps, Driver(load(graph.model), config)), "limits")
        assert all(abs(s) <= 0.01 for s, _ in got.values())
    finally:
        assert set_params(max_steering=1.0)[0].successful


# -- fused layout (drive_node), JPEG frames, Twist --------------------------------------------------------------------


def send_fused(graph: Graph, jpeg: bytes, stamp: int) -> tuple[float, float]:
    """One JPEG to drive_node, lockstep; its command (zeros are the watchdog's before the first frame: skipped)."""
    cmds = graph.cmds["fused"]
    count = len(moving(cmds.snapshot()))
    graph.pubs["fused"].publish(compressed_msg(jpeg, stamp))
    return moving(cmds.wait(lambda items: len(moving(items)) > count))[count]


def moving(items: list) -> list:
    return [c for c in items if c != (0.0, 0.0)]


def test_fused_node_on_jpegs_equals_offline_and_survives_corrupt_jpegs(graph):
    graph.reset("fused", "drive_node")
    frame_stamps = stamps(8 * 10**15, 20)
    got = [send_fused(graph, j, s) for j, s in zip(graph.jpegs[:10], frame_stamps[:10], strict=True)]
    corrupt = graph.jpegs[0][:200] + bytes(range(256)) * 8
    topic = "/fused/camera/image_raw/compressed: frame dropped: "
    for data, problem in (
        (corrupt, "corrupt or truncated JPEG"),
        (graph.jpegs[0][: len(graph.jpegs[0]) // 3], "corrupt or truncated JPEG"),
        (b"", "empty data"),
    ):
        graph.pubs["fused"].publish(compressed_msg(data, frame_stamps[9] + 1))
        graph.procs["fused"].wait_for_output(topic + problem)
    got += [send_fused(graph, j, s) for j, s in zip(graph.jpegs[10:20], frame_stamps[10:], strict=True)]
    expected = graph.offline(graph.rgbs[:20], frame_stamps)
    for (steering, velocity), c in zip(got, expected, strict=True):
        assert abs(steering - c.steering) <= TOL and abs(velocity - c.velocity) <= TOL
    assert graph.procs["fused"].proc.poll() is None


def test_both_layouts_give_the_same_commands(graph):
    graph.reset("split", "policy_node")
    graph.reset("fused", "drive_node")
    frame_stamps = stamps(9 * 10**15, 12)
    split = graph.send_stamped(
        "split", [raw_msg(r, s) for r, s in zip(graph.rgbs[20:], frame_stamps, strict=False)], frame_stamps
    )
    fused = [send_fused(graph, j, s) for j, s in zip(graph.jpegs[20:32], frame_stamps, strict=True)]
    for (steering, velocity), s in zip(fused, frame_stamps, strict=True):
        assert abs(steering - split[s][0]) <= TOL and abs(velocity - split[s][1]) <= TOL


# -- sim time ---------------------------------------------------------------------------------------------------------


def test_sim_time_drives_stamps_and_the_watchdog(graph):
    cmds = graph.cmds["sim"]
    sim_ns = SIM_T0_NS

    def tick(seconds: float, step_ns: int = 10_000_000) -> None:
        nonlocal sim_ns
        for _ in range(int(seconds * 1e9 / step_ns)):
            sim_ns += step_ns
            graph.clock.publish(Clock(clock=ns_to_stamp(sim_ns)))
            time.sleep(0.005)

    def in_sim(items: list) -> list:
        return [c for c in items if SIM_T0_NS <= c[0] <= sim_ns]

    # the clock runs, no frames: the watchdog's zero commands are stamped with sim time
    tick(0.5)
    first = cmds.wait(lambda items: len(in_sim(items)) >= 2)
    assert all(c[1:] == (0.0, 0.0) for c in in_sim(first))
    graph.procs["sim"].wait_for_output("no input yet")
    # frames stamped with sim time: commands carry those stamps and equal offline
    frame_stamps = []
    msgs = []
    for rgb in graph.rgbs[:10]:
        tick(0.05)
        frame_stamps.append(sim_ns - 5_000_000)  # exposed 5 ms before now
        msgs.append(raw_msg(rgb, frame_stamps[-1]))
    graph.reset("sim", "drive_node")
    got = graph.send_stamped("sim", msgs, frame_stamps)
    assert_commands(got, graph.offline(graph.rgbs[:10], frame_stamps), "sim time")
    # frames stop, sim time runs on past the timeout: zero velocity stamped after the last frame, in sim time
    before = len(cmds.snapshot())
    tick(0.5)
    stop = cmds.wait(lambda items: any(c[0] > frame_stamps[-1] for c in items[before:]))
    late = [c for c in stop[before:] if c[0] > frame_stamps[-1]]
    assert all(c[1:] == (0.0, 0.0) and c[0] <= sim_ns for c in late)
    assert min(c[0] for c in late) >= frame_stamps[-1] + 5_000_000 + 200_000_000
    # the clock stops: sim time stands still, so does the watchdog's timer (however long we wait in wall time)
    time.sleep(0.5)
    count = len(cmds.snapshot())
    time.sleep(1.0)
    assert len(cmds.snapshot()) == count, "the watchdog fired while sim time stood still"
