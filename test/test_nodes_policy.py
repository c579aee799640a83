"""perception_node, policy_node and drive_node over real rclpy and Fast DDS, across processes.

Three node processes start once for the module (ROS and torch start-up is slow on two cores), each in a namespace of
its own, on one local-only domain (test/ros_harness.py):

- ``/split``: ``lnn-control up drive-split --local`` (perception_node + policy_node in one process), raw rgb8 frames,
  TwistStamped commands;
- ``/fused``: drive_node, JPEG frames (CompressedImage), Twist commands;
- ``/sim``: drive_node with ``use_sim_time``, raw frames, TwistStamped, and a /clock published by this test.

This process publishes real frames (the Donkeycar tub's JPEGs when ../shared/data is there, generated frames
otherwise) with reliable QoS, one at a time (lockstep), and checks that every command carries its camera stamp and
equals the offline ``Driver.observe`` on the same frames and stamps to 1e-5. No timing assertions, and no sleeping
for DDS to settle: before the first test every link is proven by publishing until the answer is seen
(:meth:`Graph.warm_up`), every wait is for a message, a log line or a service answer, and messages are told apart by
their stamps and their order of arrival, never by when they came (one writer's messages arrive in order).
"""

from __future__ import annotations

import re
import tarfile
import time
from collections.abc import Callable
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
from ros_harness import (  # noqa: E402
    Collector,
    NodeProcess,
    RosSession,
    free_domain_id,
    publish_until_condition,
)
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Float32MultiArray, Header  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402

from lnn_control.driver import Driver, DriverConfig  # noqa: E402
from lnn_control.nn.checkpoint import load, save  # noqa: E402
from lnn_control.nn.policy import Policy, PolicyConfig  # noqa: E402
from lnn_control.nodes.driver_params import ParameterError, load_policy  # noqa: E402
from lnn_control.nodes.perception import features_from_msg, features_to_msg  # noqa: E402
from lnn_control.paths import ModelNotFoundError, resolve_model, shipped_model  # noqa: E402
from lnn_control.ros.msgs import compressed_image_msg, image_msg  # noqa: E402
from lnn_control.ros.stamps import ns_to_stamp, stamp_to_ns  # noqa: E402
from lnn_control.vision import decode_compressed  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DOMAIN = free_domain_id()
TUB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "donkeycar_tub" / "tub.tar.gz"
TOL = 1e-5
FRAME_ID = "camera_optical"
SIM_T0_NS = 1_000 * 10**9
WARM_NS = 10**14  # stamps of the warm-up frames: far from every test's (and each test resets first)
PROBE = "link_probe"  # the encoding or format of a frame the nodes drop with a warning: proves a link, changes nothing


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

        Each frame goes out once, over a link :meth:`warm_up` proved (nothing is lost on it any more with one frame
        in flight): a frame sent again would step the recurrent state again (its stamp a second time even resets
        it), so a repeat would change the very values compared. Only what arrives after the first send counts (by
        index: the watchdog may have used the same stamps before), and it must be one command per frame."""
        cmds = self.cmds[ns]
        first = len(cmds)
        for rgb, stamp in zip(frames, frame_stamps, strict=True):
            self.pubs[ns].publish(raw_msg(rgb, stamp))
            cmds.wait_for(lambda m, s=stamp: stamp_of(m) == s, timeout=15, start=first)
        answers = [m for m in cmds.messages[first:] if stamp_of(m) in set(frame_stamps)]
        assert sorted(map(stamp_of, answers)) == sorted(frame_stamps), f"{ns}: not one command per frame"
        return {stamp_of(m): values_of(m) for m in answers}

    def send_fused(self, jpeg: bytes, stamp: int) -> tuple[float, float]:
        """One JPEG to drive_node (Twist), lockstep and once (see :meth:`send_stamped`; a Twist has no stamp to tell
        a repeat's answer from the first one's); zeros are the watchdog's before the first frame: skipped."""
        first = len(self.cmds["fused"])
        self.pubs["fused"].publish(jpeg_msg(jpeg, stamp))
        answer = self.cmds["fused"].wait_for(lambda m: values_of(m) != (0.0, 0.0), timeout=15, start=first)
        return values_of(answer)

    def expect_output(self, ns: str, text: str, timeout: float = 15.0) -> None:
        self.procs[ns].wait_for_output(re.escape(text), timeout)

    def printed(self, ns: str, text: str) -> bool:
        """Whether ``ns`` printed ``text`` (AssertionError, with its output, if the process is gone)."""
        proc = self.procs[ns]
        if text in proc.output():
            return True
        assert proc.alive, f"{proc.name} exited ({proc.returncode}):\n{proc.tail()}"
        return False

    def publish_until_output(self, ns: str, pub: Any, msg: Any, text: str, timeout: float = 15.0) -> None:
        """Publish ``msg`` every 0.5 s until ``ns`` prints ``text``: a new best-effort writer's first samples are
        lost while the reader has not discovered it yet, even once the writer counts the reader as matched. Only for
        messages the node drops (a repeat changes nothing)."""
        publish_until_condition(
            pub, lambda: msg, lambda: self.printed(ns, text), timeout, 0.5, what=f"{self.procs[ns].name}: {text!r}"
        )

    def warm_up(self) -> None:
        """Prove every link the tests use by publishing until the answer is seen (not a sleep for matches to settle).

        - split: a real frame, with a new stamp each time, until its command, its features and a ``~/state`` came
          back: camera -> perception_node -> policy_node (both readers best effort) and the three topics to this
          process are matched. The answer to the latest frame means no earlier one is still on its way (one
          writer's samples arrive in order, a best-effort reader drops older ones), so the reset after this is the
          last thing the state sees of the warm-up;
        - fused, sim: a frame the node drops with a warning (no state, no watchdog feed), until the warning is
          printed; fused's commands reach this process already (its watchdog's zeros before any frame). The sim
          node's /clock and commands are proven by its test, which runs the clock until the watchdog answers.
        """
        cmds, feats, state = self.cmds["split"], self.features, self.state
        starts = len(cmds), len(feats), len(state)
        sent: list[int] = []

        def frame() -> Image:
            sent.append(WARM_NS + len(sent) * 50_000_000)
            return raw_msg(self.rgbs[0], sent[-1])

        def answered() -> bool:
            latest = sent[-1]
            return (
                cmds.find(lambda m: stamp_of(m) == latest, starts[0]) is not None
                and feats.find(lambda m: stamp_of(m) == latest, starts[1]) is not None
                and len(state) > starts[2]
            )

        what = "split: the command, features and ~/state of the latest warm-up frame"
        publish_until_condition(self.pubs["split"], frame, answered, 60, 0.2, max_period=2.0, what=what)
        probe = jpeg_msg(self.jpegs[0], WARM_NS)
        probe.format = PROBE
        dropped = f"/fused/camera/image_raw/compressed: frame dropped: unsupported compressed format '{PROBE}'"
        self.publish_until_output("fused", self.pubs["fused"], probe, dropped, 60)
        self.ros.wait_for(lambda: len(self.cmds["fused"]) > 0, 60, "a command of the fused node's watchdog here")
        probe = raw_msg(self.rgbs[0], WARM_NS)
        probe.encoding = PROBE
        self.publish_until_output("sim", self.pubs["sim"], probe, f"/sim/camera/image_raw: frame dropped: "
                                  f"unsupported encoding '{PROBE}'", 60)
        self.reset("split", "policy_node")


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
            args=[*up, "--set", f"*.model={model}", "--set", "policy_node.stamped=true", "--set",
                  "policy_node.enabled=true"],
        ),
        "fused": NodeProcess(
            "lnn_control.nodes.drive",
            domain_id=DOMAIN,
            log_dir=tmp / "fused",
            params={"model": str(model), "image_transport": "compressed", "timeout": 60.0, "stamped": False,
                    "enabled": True},
            remaps={"__ns": "/fused"},
        ),
        "sim": NodeProcess(
            "lnn_control.nodes.drive",
            domain_id=DOMAIN,
            log_dir=tmp / "sim",
            params={"model": str(model), "use_sim_time": True, "stamped": True, "enabled": True},
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
            graph.warm_up()
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
    monkeypatch.setattr("lnn_control.paths.model_file", lambda name: tmp_path / name)
    with pytest.raises(ModelNotFoundError, match="model:="):
        shipped_model()
    with pytest.raises(ParameterError, match="model:="):
        load_policy("")
    save(Policy(PolicyConfig()), tmp_path / "only")
    assert shipped_model() == tmp_path / "only" == resolve_model("") == resolve_model(None)


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
    first_feature, first_state = len(graph.features), len(graph.state)
    got = graph.send_stamped("split", graph.rgbs[:30], frame_stamps)
    driver = Driver(load(graph.model))
    assert_commands(got, graph.offline(graph.rgbs[:30], frame_stamps, driver), "split")
    # the features carry the camera header and equal the offline encoder's: one per frame, in order (the last one
    # may come after its command, on another topic: wait for it; one writer's messages arrive in order)
    graph.features.wait_for(lambda m: stamp_of(m) == frame_stamps[-1], start=first_feature)
    feats = graph.features.messages[first_feature:]
    assert [stamp_of(m) for m in feats] == frame_stamps
    for rgb, msg in zip(graph.rgbs, feats, strict=False):
        assert msg.header.frame_id == FRAME_ID
        np.testing.assert_allclose(features_from_msg(msg, 32), driver.features(rgb), atol=TOL)
    # ~/state: the neuron activity after the last frame
    graph.state.wait_for(lambda m: np.allclose(np.array(m.data), driver.activity, atol=TOL), start=first_state)


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
    cmds = graph.cmds["split"]
    frame_stamps = stamps(4 * 10**15, 4)
    graph.send_stamped("split", graph.rgbs[:4], frame_stamps)
    stopped = len(cmds)  # what comes after the last frame's command (one writer: in order), not after a wall time
    # no frames: after 0.2 s the watchdog publishes zero velocity, stamped with the node clock, again and again
    cmds.wait_for_count(stopped + 3, timeout=15)
    zeros = cmds.messages[stopped:]
    assert all(values_of(m) == (0.0, 0.0) and stamp_of(m) not in frame_stamps for m in zeros), zeros
    now_ns = time.time_ns()
    assert all(abs(stamp_of(m) - now_ns) < 60 * 10**9 for m in zeros)
    graph.expect_output("split", "/split/lnn/features: no input for 0.2 s: publishing zero velocity")
    # frames return: commands again (the gap > reset_gap reset the state, as on a fresh start)
    back = [4 * 10**15 + 5 * 10**9]
    got = graph.send_stamped("split", [graph.rgbs[10]], back)
    assert_commands(got, graph.offline([graph.rgbs[10]], back), "after the watchdog")


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
        # one at a time (a burst could overflow the sensor-data queue), until seen: a dropped frame changes nothing
        graph.publish_until_output("split", graph.pubs["split"], msg, topic + problem)
    got.update(graph.send_stamped("split", graph.rgbs[5:10], good[5:]))
    assert_commands(got, graph.offline(graph.rgbs[:10], good), "around bad frames")
    assert graph.procs["split"].alive


def test_bad_features_are_dropped_and_a_nan_output_stops_and_resets(graph):
    graph.reset("split", "policy_node")
    cmds = graph.cmds["split"]
    first = len(cmds)
    pub = graph.ros.publisher("/split/lnn/features", Image)
    try:
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
        # NaN features until the zero answering the latest of them is here (each NaN resets the state and answers
        # zero, so a repeat changes nothing; the latest answered, none is still on its way)
        nan_stamps: list[int] = []

        def nan_features() -> Image:
            nan_stamps.append(base + 50_000_000 + len(nan_stamps))
            return features_to_msg(np.full(32, np.nan, np.float32), Header(stamp=ns_to_stamp(nan_stamps[-1])))

        publish_until_condition(
            pub, nan_features, lambda: cmds.find(lambda m: stamp_of(m) == nan_stamps[-1], first) is not None,
            max_period=2.0, what="the command answering the latest NaN features",
        )
        answers = [m for m in cmds.messages[first:] if stamp_of(m) in nan_stamps]
        assert answers and all(values_of(m) == (0.0, 0.0) for m in answers), answers
        assert not any(stamp_of(m) == base for m in cmds.messages[first:]), "malformed features drove"
        graph.expect_output("split", "non-finite policy output: state reset, stopping")
        # the state was reset: the next frame is driven as on a fresh start
        nxt = [base + 100_000_000]
        got = graph.send_stamped("split", [graph.rgbs[3]], nxt)
        assert_commands(got, graph.offline([graph.rgbs[3]], nxt), "after a NaN")
    finally:
        graph.ros.node.destroy_publisher(pub)


def test_limits_change_at_run_time_and_invalid_changes_are_refused(graph):
    def set_params(**values: float) -> list:  # limits.steering.max: limits__steering__max
        request = SetParameters.Request()
        request.parameters = [
            ParameterMsg(name=k.replace("__", "."),
                         value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=v))
            for k, v in values.items()
        ]
        return graph.ros.call("/split/policy_node/set_parameters", SetParameters, request).results

    try:
        assert all(r.successful for r in set_params(limits__steering__max=0.01, limits__steering__min=-0.01))
        refused = set_params(min_dt=0.9)[0]  # above max_dt: TimingConfig refuses it
        assert not refused.successful and "min_dt" in refused.reason  # the parameter, named as the node names it
        refused = set_params(limits__velocity__max=-5.0)[0]  # below the limit's own min 0
        assert not refused.successful
        assert "limits.velocity.min 0 must not exceed limits.velocity.max -5" in refused.reason
        graph.reset("split", "policy_node")
        frame_stamps = stamps(7 * 10**15, 6)
        got = graph.send_stamped("split", graph.rgbs[:6], frame_stamps)
        limited = Driver(load(graph.model), DriverConfig(limits={"steering.max": 0.01, "steering.min": -0.01}))
        assert_commands(got, graph.offline(graph.rgbs[:6], frame_stamps, limited), "limits")
        assert all(abs(steering) <= 0.01 for steering, _ in got.values())
    finally:
        assert all(r.successful for r in set_params(limits__steering__max=1.0, limits__steering__min=-1.0))


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
        graph.publish_until_output("fused", graph.pubs["fused"], jpeg_msg(data, frame_stamps[9] + 1), topic + problem)
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


class SimClock:
    """The /clock this test publishes for the ``/sim`` node, in steps of 10 ms, and what the node acknowledges of it.

    The node's /clock reader is best effort (rclpy's), and its watchdog answers only when sim time passes one of its
    deadlines (every 50 ms of sim time at 20 Hz): so the clock runs until an answer is seen, never for a fixed time.
    """

    STEP_NS = 10_000_000

    def __init__(self, publisher: Any, cmds: Collector, now_ns: int) -> None:
        self.publisher = publisher
        self.cmds = cmds
        self.now_ns = now_ns

    def step(self) -> None:
        self.now_ns += self.STEP_NS
        self.publisher.publish(Clock(clock=ns_to_stamp(self.now_ns)))

    def run(self, seconds: float) -> None:
        """Advance ``seconds`` of sim time at twice real time (a step every 5 ms of wall time: the clock's pace, not
        a wait for anything)."""
        for _ in range(round(seconds * 1e9 / self.STEP_NS)):
            self.step()
            time.sleep(0.005)

    def run_until(self, predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        """Advance at twice real time until ``predicate()``."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout} s of running the clock (at {self.now_ns} ns)")
            self.step()
            time.sleep(0.005)

    def settle(self, timeout: float = 30.0) -> None:
        """Step until the node's watchdog answers the clock's latest value (a zero stamped with it; the watchdog must
        be expired): the node's clock then stands exactly at ``now_ns``, and that zero is the last thing it publishes
        until the clock moves on. A step whose answer comes later than ``patience`` is stepped past (its answer then
        has an older stamp), and patience doubles."""
        deadline = time.monotonic() + timeout
        patience = 0.1
        start = len(self.cmds)
        while True:
            self.step()
            target = self.now_ns
            try:
                self.cmds.wait_for(lambda m, t=target: stamp_of(m) == t, timeout=patience, start=start)
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"no watchdog zero stamped with the clock's {target} ns within {timeout} s"
                    ) from None
            if self.cmds.find(lambda m, t=target: stamp_of(m) < t, start) is not None:
                patience, start = min(2.0, 2 * patience), len(self.cmds)


def test_sim_time_drives_stamps_and_the_watchdog(graph):
    cmds = graph.cmds["sim"]
    clock = SimClock(graph.clock, cmds, SIM_T0_NS)
    first = len(cmds)

    def sim_stamped() -> list:
        return [m for m in cmds.messages[first:] if SIM_T0_NS <= stamp_of(m) <= clock.now_ns]

    # the clock runs, no frames: the watchdog's zero commands are stamped with sim time
    clock.run_until(lambda: len(sim_stamped()) >= 2, "2 zero commands stamped with sim time")
    assert all(values_of(m) == (0.0, 0.0) for m in cmds.messages[first:])
    graph.expect_output("sim", "/sim/camera/image_raw: no input yet")
    # frames stamped with sim time (exposed 5 ms before the clock's now): commands carry those stamps, equal offline
    frame_stamps = []
    for _ in range(10):
        clock.run(0.05)
        frame_stamps.append(clock.now_ns - 5_000_000)
    clock.settle()  # the node's clock is at clock.now_ns: the frames feed its watchdog with that
    fed_ns = clock.now_ns
    graph.reset("sim", "drive_node")
    got = graph.send_stamped("sim", graph.rgbs[:10], frame_stamps)
    assert_commands(got, graph.offline(graph.rgbs[:10], frame_stamps), "sim time")
    # frames stop, sim time runs on past the timeout: zero velocity stamped 0.2 s (sim) after the last input or later;
    # nothing else (sim time stood still while the frames went, so the watchdog's timer did not fire)
    stopped = len(cmds)
    clock.run_until(lambda: len(cmds) > stopped, "a zero command after the last frame")
    clock.settle()  # until the last one: nothing more is on its way while the clock stands
    late = cmds.messages[stopped:]
    assert all(values_of(m) == (0.0, 0.0) for m in late), late
    assert all(fed_ns + 200_000_000 <= stamp_of(m) <= clock.now_ns for m in late), (fed_ns, list(map(stamp_of, late)))
    # the clock stops: sim time stands still, so does the watchdog's timer (however long we wait in wall time). An
    # absence can only be watched for a while: nothing is on its way (settle), so whatever arrives in this second
    # comes from a timer running on wall time, which at 20 Hz would fire about 20 times.
    count = len(cmds)
    time.sleep(1.0)
    assert len(cmds) == count, "the watchdog fired while sim time stood still"
