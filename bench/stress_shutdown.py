"""Stop every long-running node at a random moment with traffic flowing, many times: no crash, status 0, and for
the recorder every acknowledged message in the bag.

For each node kind, ``--runs`` times: start the node (a process of its own, local DDS), feed it what it consumes
(camera frames, features, commands, a simulator, keys on a pseudo-terminal) until it answers, let the traffic run
for a random 0-1.5 s, send SIGINT or SIGTERM (chosen at random), and wait for the exit. A run counts as a crash when
the status is negative (killed by a signal) or the output holds "Fatal Python error", a Python traceback, or rclpy's
"exception was never retrieved"; any status other than 0 counts as a failure. The recorder gets reliable frames;
at the random moment publishing stops, the frames are acknowledged (``wait_for_all_acked``) and the signal follows
at once: the bag must then hold every frame, byte for byte.

    python bench/stress_shutdown.py [--runs 20] [--nodes drive_node,recorder_node] [--seed 0]

Prints a line per run, a table, and one JSON line last.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import pty
import random
import signal
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test"))

from ros_harness import NodeProcess, RosSession, free_domain_id  # noqa: E402

from lnn_control.bringup import node_params, read_params  # noqa: E402
from lnn_control.paths import config_file  # noqa: E402

CRASH_MARKS = ("Fatal Python error", "Traceback (most recent call last)", "exception was never retrieved")
NODES = (
    "drive_node",
    "perception_node",
    "policy_node",
    "command_mux_node",
    "recorder_node",
    "sim_node",
    "demonstrator_node",
    "teleop_keyboard_node",
)


@dataclass
class Tally:
    """What the runs of one node kind gave."""

    runs: int = 0
    ok: int = 0
    crashes: int = 0
    failures: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    acked: int = 0  # recorder: frames acknowledged before the signal, summed
    missing: int = 0  # recorder: acknowledged frames not in the bag, summed


def camera_frame(stamp_ns: int):
    from lnn_control.ros.msgs import image_msg

    pixels = np.full((96, 96, 3), stamp_ns % 251, np.uint8)
    return image_msg(pixels, encoding="rgb8", stamp_ns=stamp_ns, frame_id="camera")


class Bench:
    """One RosSession for the whole run; a scenario per node kind."""

    def __init__(self, ros: RosSession, domain: int, folder: Path, rng: random.Random) -> None:
        self.ros = ros
        self.domain = domain
        self.folder = folder
        self.rng = rng
        self.sim_params = read_params(config_file("sim.yaml"))
        self.helpers: dict[str, NodeProcess] = {}

    def node(self, module: str, name: str, run: int, **kwargs) -> NodeProcess:
        log_dir = self.folder / name / f"run{run:02d}"
        return NodeProcess(f"lnn_control.nodes.{module}", domain_id=self.domain, log_dir=log_dir, name=name,
                           stop_timeout=30.0, **kwargs)  # fmt: skip

    # -- traffic ---------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def camera(self, topic: str = "camera/image_raw") -> Iterator[None]:
        from sensor_msgs.msg import Image

        from lnn_control.ros.qos import SENSOR

        pub = self.ros.publisher(topic, Image, SENSOR)
        repeater = self.ros.repeat(pub, lambda: camera_frame(time.monotonic_ns()), 30.0)
        try:
            yield
        finally:
            repeater.stop()
            self.ros.node.destroy_publisher(pub)

    @contextlib.contextmanager
    def commands(self, topics: tuple[str, ...], stamped: bool) -> Iterator[None]:
        from lnn_control.ros.msgs import twist_msg, twist_type

        pubs = [self.ros.publisher(t, twist_type(stamped)) for t in topics]
        repeaters = [self.ros.repeat(p, lambda: twist_msg(0.1, 0.2, stamped=stamped, stamp_ns=0), 50.0) for p in pubs]
        try:
            yield
        finally:
            for r in repeaters:
                r.stop()
            for p in pubs:
                self.ros.node.destroy_publisher(p)

    # -- one run -----------------------------------------------------------------------------------------------------

    def signal_and_judge(self, proc: NodeProcess, tally: Tally) -> str:
        time.sleep(self.rng.uniform(0.0, 1.5))  # the random moment, with traffic flowing
        sig = self.rng.choice((signal.SIGINT, signal.SIGTERM))
        status = proc.stop(sig)
        return self.judge(proc, status, sig, tally)

    @staticmethod
    def judge(proc: NodeProcess, status: int | None, sig: int, tally: Tally, problem: str = "") -> str:
        """Count the run: a crash (killed, fatal error, traceback), a failure (status not 0, or ``problem``), or ok."""
        output = proc.output()
        crash = status is None or status < 0 or any(mark in output for mark in CRASH_MARKS)
        failed = not crash and (status != 0 or bool(problem))
        tally.runs += 1
        tally.statuses[status] = tally.statuses.get(status, 0) + 1
        tally.crashes += crash
        tally.failures += failed
        tally.ok += not (crash or failed)
        verdict = "CRASH" if crash else "FAIL" if failed else "ok"
        return f"{signal.Signals(sig).name} -> status {status} {verdict}{problem}"

    def helper(self, attr: str, make: Callable[[], NodeProcess], ready: str) -> None:
        """Start a process that feeds the node under test once, for all runs (stopped at the end)."""
        if attr not in self.helpers:
            self.helpers[attr] = make().start()
            self.helpers[attr].wait_for_output(ready, timeout=60)

    def run_drive(self, run: int, tally: Tally) -> str:
        from geometry_msgs.msg import Twist

        out = self.ros.collect("cmd_vel", Twist)
        with self.camera(), self.node("drive", "drive_node", run) as proc:
            out.wait_for_count(1, timeout=60)
            return self.signal_and_judge(proc, tally)

    def run_perception(self, run: int, tally: Tally) -> str:
        from sensor_msgs.msg import Image

        out = self.ros.collect("lnn/features", Image)
        with self.camera(), self.node("perception", "perception_node", run) as proc:
            out.wait_for_count(1, timeout=60)
            return self.signal_and_judge(proc, tally)

    def run_policy(self, run: int, tally: Tally) -> str:
        from geometry_msgs.msg import Twist

        self.helper("perception", lambda: self.node("perception", "feature_source", 0), "lnn/features")
        out = self.ros.collect("cmd_vel", Twist)
        with self.camera(), self.node("policy", "policy_node", run) as proc:
            out.wait_for_count(1, timeout=60)
            return self.signal_and_judge(proc, tally)

    def run_mux(self, run: int, tally: Tally) -> str:
        from geometry_msgs.msg import Twist

        out = self.ros.collect("cmd_vel", Twist)
        with self.commands(("lnn/cmd_vel", "teleop/cmd_vel"), False), self.node("mux", "command_mux_node", run) as proc:
            out.wait_for_count(1, timeout=60)
            return self.signal_and_judge(proc, tally)

    def run_sim(self, run: int, tally: Tally) -> str:
        from sensor_msgs.msg import Image

        from lnn_control.ros.qos import SENSOR

        frames = self.ros.collect("camera/image_raw", Image, SENSOR)
        params = {"seed": run, "stamped": False, "lockstep": True}
        with self.commands(("cmd_vel",), False), self.node("sim", "sim_node", run, params=params) as proc:
            frames.wait_for_count(3, timeout=60)
            return self.signal_and_judge(proc, tally)

    def run_demonstrator(self, run: int, tally: Tally) -> str:
        from geometry_msgs.msg import TwistStamped

        # one sim for all runs: in lockstep it waits for the next demonstrator
        sim = {**node_params(self.sim_params, "sim_node"), "use_sim_time": True}
        # on a topic of their own: this process already has cmd_vel readers of type Twist
        to_sim = {"cmd_vel": "demo/cmd_vel"}
        self.helper("sim", lambda: self.node("sim", "sim_source", 0, params=sim, remaps=to_sim), "starts at sim time")
        out = self.ros.collect("demo/cmd_vel", TwistStamped)
        params = {**node_params(self.sim_params, "demonstrator_node"), "use_sim_time": True}
        remaps = {"teleop/cmd_vel": "demo/cmd_vel"}  # straight to the sim, no mux
        with self.node("demonstrator", "demonstrator_node", run, params=params, remaps=remaps) as proc:
            out.wait_for_count(1, timeout=60)
            return self.signal_and_judge(proc, tally)

    def run_teleop(self, run: int, tally: Tally) -> str:
        from geometry_msgs.msg import Twist

        master, slave = pty.openpty()

        def controlling_terminal() -> None:
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

        out = self.ros.collect("teleop/cmd_vel", Twist)
        stop = threading.Event()

        def type_keys() -> None:
            keys = b"wadsc"
            while not stop.wait(0.05):
                with contextlib.suppress(OSError):
                    os.write(master, keys[self.rng.randrange(len(keys)) : ][:1])

        typist = threading.Thread(target=type_keys, daemon=True)
        try:
            with self.node("teleop_keyboard", "teleop_keyboard_node", run, stdin=slave,
                           preexec_fn=controlling_terminal) as proc:  # fmt: skip
                typist.start()
                out.wait_for_count(1, timeout=60)
                return self.signal_and_judge(proc, tally)
        finally:
            stop.set()
            typist.join(5)
            os.close(master)
            os.close(slave)

    def run_recorder(self, run: int, tally: Tally) -> str:
        from rclpy.duration import Duration
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        output_dir = self.folder / "recorder_node" / f"run{run:02d}" / "bags"
        topic = f"stress/frames{run}"
        params = {"topics": [f"{topic} sensor_msgs/msg/Image reliable"], "qos_depth": 1000,
                  "autostart": True, "output_dir": str(output_dir), "min_free_mb": 1}  # fmt: skip
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        pub = self.ros.publisher(topic, Image, qos)
        with self.node("recorder", "recorder_node", run, params=params) as proc:
            proc.wait_for_output("recording episode", timeout=60)
            self.ros.wait_for_subscribers(pub)
            sent: list[bytes] = []
            end = time.monotonic() + self.rng.uniform(0.0, 1.5)
            while time.monotonic() < end:
                msg = camera_frame(len(sent) + 1)
                pub.publish(msg)
                sent.append(msg)
                time.sleep(1 / 200)
            if not pub.wait_for_all_acked(Duration(seconds=20)):
                raise RuntimeError(f"{topic}: frames not acknowledged within 20 s")
            sig = self.rng.choice((signal.SIGINT, signal.SIGTERM))
            status = proc.stop(sig)
        self.ros.node.destroy_publisher(pub)
        missing = len(sent) - count_in_bag(output_dir, topic, sent)
        tally.acked += len(sent)
        tally.missing += missing
        problem = f"; {missing} of {len(sent)} acknowledged frames missing from the bag" if missing else ""
        return self.judge(proc, status, sig, tally, problem) + ("" if missing else f"; all {len(sent)} kept")


def count_in_bag(output_dir: Path, topic: str, sent: list) -> int:
    """How many of ``sent`` (rclpy Images) are in the one bag under ``output_dir``, in order, with their stamps and
    pixels. (The serialized bytes differ from a local ``serialize_message`` in alignment padding only; the recorder
    stores what DDS delivered, unchanged: test_recorder.py holds that.)"""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    bags = [p for p in output_dir.iterdir() if p.is_dir()] if output_dir.is_dir() else []
    if len(bags) != 1:
        return 0
    with Reader(bags[0]) as reader:
        got = []
        for conn, _t, raw in reader.messages():
            if conn.topic.endswith(topic):
                msg = store.deserialize_cdr(raw, conn.msgtype)
                got.append((msg.header.stamp.sec, msg.header.stamp.nanosec, bytes(msg.data)))
    want = [(m.header.stamp.sec, m.header.stamp.nanosec, bytes(m.data)) for m in sent]
    return sum(1 for g, w in zip(got, want, strict=False) if g == w)


SCENARIOS: dict[str, Callable[[Bench, int, Tally], str]] = {
    "drive_node": Bench.run_drive,
    "perception_node": Bench.run_perception,
    "policy_node": Bench.run_policy,
    "command_mux_node": Bench.run_mux,
    "recorder_node": Bench.run_recorder,
    "sim_node": Bench.run_sim,
    "demonstrator_node": Bench.run_demonstrator,
    "teleop_keyboard_node": Bench.run_teleop,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--nodes", default=",".join(NODES), help="comma-separated node kinds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", metavar="DIR", help="keep the logs and bags here (default: a temporary folder)")
    args = parser.parse_args()
    kinds = [k for k in args.nodes.split(",") if k]
    unknown = [k for k in kinds if k not in SCENARIOS]
    if unknown:
        parser.error(f"unknown node kinds {unknown}; choose from {', '.join(SCENARIOS)}")
    rng = random.Random(args.seed)
    domain = free_domain_id()
    tallies = {k: Tally() for k in kinds}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lnn-stress-") as tmp, RosSession(domain) as ros:
        folder = Path(args.keep or tmp)
        bench = Bench(ros, domain, folder, rng)
        try:
            for kind in kinds:
                for run in range(args.runs):
                    line = SCENARIOS[kind](bench, run, tallies[kind])
                    print(f"{kind:<22} run {run + 1:>2}/{args.runs}: {line}", flush=True)
        finally:
            for helper in bench.helpers.values():
                helper.stop()
    print(f"\n{'node':<22} {'runs':>5} {'ok':>5} {'crash':>6} {'fail':>5}  statuses")
    for kind, t in tallies.items():
        extra = f"; {t.acked} acknowledged frames, {t.missing} missing" if kind == "recorder_node" else ""
        print(f"{kind:<22} {t.runs:>5} {t.ok:>5} {t.crashes:>6} {t.failures:>5}  {t.statuses}{extra}")
    total = {"runs": sum(t.runs for t in tallies.values()), "crashes": sum(t.crashes for t in tallies.values()),
             "failures": sum(t.failures for t in tallies.values())}  # fmt: skip
    print(f"{total['runs']} runs in {time.monotonic() - started:.0f} s: {total['crashes']} crashes, "
          f"{total['failures']} failures")  # fmt: skip
    result = {"bench": "stress_shutdown", **total, "per_node": {k: vars(t) for k, t in tallies.items()}}
    print(json.dumps(result, default=str))
    return 0 if total["crashes"] == 0 and total["failures"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
