"""Frames per second of every ``lnn-control up`` node set, in one process (the default) and with ``--processes``.

Each set runs as ``lnn-control up SET --local`` in a process of its own; this process watches (and, for the sets
without a simulator, feeds) it over local DDS:

- simulator sets (sim-drive, record-sim, dagger-sim): ``sim/truth`` messages per second (one per simulator frame;
  in lockstep a frame waits for the command answering the one before, so this is the closed loop's rate);
- drive, drive-split: closed loop with this process as the camera: the next 96x96 frame goes out when the command
  answering the previous one came back (``TwistStamped``, stamps matched), so the rate is the set's throughput;
- record: 96x96 frames published reliably as fast as DDS takes them, rate = frames the recorder acknowledged
  (``received`` on ``recorder_node/status``) per second.

Rates are measured over ``--seconds`` after ``--warmup`` seconds. The reference in the same run is the other
layout of the same set: the table prints their ratio. One JSON line last.

    python bench/bench_node_sets.py [--sets sim-drive,record-sim] [--seconds 10] [--warmup 4]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test"))

from ros_harness import RosSession, free_domain_id, node_env  # noqa: E402

from lnn_control import processes  # noqa: E402

SIM_SETS = ("sim-drive", "record-sim", "dagger-sim")
SETS = ("drive", "drive-split", "record", *SIM_SETS)


def up_command(name: str, processes: bool, folder: Path) -> list[str]:
    command = [sys.executable, "-m", "lnn_control.cli", "up", name, "--local"]
    command += ["--processes"] if processes else []
    if name in ("drive", "drive-split"):  # a real-vehicle set: the model named, autonomy armed at start
        command += ["--set", "*.stamped=true", "--set", "command_mux_node.input.policy.timeout=5.0",
                    "--set", "*.model=ltc_ncp_carracing", "--set", "command_mux_node.autonomy_on_start=true"]
    if name in ("record", "record-sim", "dagger-sim"):
        command += ["--set", f"recorder_node.output_dir={folder / 'bags'}"]
    if name == "record":
        command += ["--set", "recorder_node.autostart=true", "--set", "recorder_node.qos_depth=1000",
                    "--set", "recorder_node.topics=[camera/image_raw sensor_msgs/msg/Image reliable, teleop/cmd_vel "
                    "geometry_msgs/msg/TwistStamped reliable, mux/active_source std_msgs/msg/String "
                    "reliable]"]  # fmt: skip
    return command


def rate_of(times: list[float], start: float, end: float) -> float:
    """Events per second between ``start`` and ``end`` (monotonic)."""
    inside = [t for t in times if start <= t <= end]
    if len(inside) < 2:
        return 0.0
    return (len(inside) - 1) / (inside[-1] - inside[0])


def measure_sim(ros: RosSession, warmup: float, seconds: float) -> float:
    from std_msgs.msg import Float64MultiArray

    truth = ros.collect("sim/truth", Float64MultiArray)
    truth.wait_for_count(1, timeout=120)
    start = time.monotonic() + warmup
    time.sleep(warmup + seconds)
    return rate_of([t for t, _ in truth.items], start, start + seconds)


def measure_drive(ros: RosSession, warmup: float, seconds: float) -> float:
    from geometry_msgs.msg import TwistStamped
    from sensor_msgs.msg import Image

    from lnn_control.ros.msgs import image_msg
    from lnn_control.ros.qos import SENSOR

    pub = ros.publisher("camera/image_raw", Image, SENSOR)
    out = ros.collect("cmd_vel", TwistStamped)
    pixels = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    answered: list[float] = []
    end = None
    start = give_up = time.monotonic() + 120
    stamp = 1_000_000_000
    while end is None or time.monotonic() < end:
        if end is None and time.monotonic() > give_up:
            raise RuntimeError("no command answered a frame within 120 s")
        stamp += 33_000_000
        pub.publish(image_msg(pixels, encoding="rgb8", stamp_ns=stamp, frame_id="camera"))
        try:  # the answer, or resend (best effort: a frame can be lost, and the set may still be starting)
            out.wait_for(lambda m, s=stamp: m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == s, timeout=0.5)
        except AssertionError:
            continue
        answered.append(time.monotonic())
        if end is None:
            end = time.monotonic() + warmup + seconds
            start = time.monotonic() + warmup
    return rate_of(answered, start, start + seconds)


def measure_record(ros: RosSession, warmup: float, seconds: float) -> float:
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from lnn_control.ros.msgs import image_msg

    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    pub = ros.publisher("camera/image_raw", Image, qos)
    status = ros.collect("recorder_node/status", String)
    ros.wait_for_subscribers(pub, timeout=120)
    pixels = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    points: list[tuple[float, int]] = []
    start = time.monotonic() + warmup
    end = start + seconds
    last = 0
    while time.monotonic() < end:
        for _ in range(10):
            pub.publish(image_msg(pixels, encoding="rgb8", stamp_ns=time.time_ns(), frame_id="camera"))
        time.sleep(0.001)
        message = status.last()
        if message is not None:
            received = json.loads(message.data)["topics"].get("/camera/image_raw", {}).get("received", 0)
            if received != last:
                points.append((time.monotonic(), received))
                last = received
    inside = [(t, n) for t, n in points if t >= start]
    if len(inside) < 2:
        return 0.0
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def run_one(name: str, layout_processes: bool, warmup: float, seconds: float) -> float:
    domain = free_domain_id()
    with tempfile.TemporaryDirectory(prefix="lnn-sets-") as tmp, RosSession(domain) as ros:
        log = Path(tmp) / "up.log"
        env = node_env(domain)
        with open(log, "wb") as out:
            up = processes.start(up_command(name, layout_processes, Path(tmp)), env=env, stdout=out,
                                 stderr=subprocess.STDOUT, cwd=tmp)
        try:
            if name in SIM_SETS:
                rate = measure_sim(ros, warmup, seconds)
            elif name == "record":
                rate = measure_record(ros, warmup, seconds)
            else:
                rate = measure_drive(ros, warmup, seconds)
        finally:
            processes.stop(up, ((signal.SIGINT, 60.0), (signal.SIGKILL, 5.0)))
        text = log.read_text(errors="replace")
        if up.returncode != 0 or "Traceback" in text:
            print(text[-3000:], file=sys.stderr)
            layout = "processes" if layout_processes else "one process"
            raise RuntimeError(f"up {name} ({layout}) ended with {up.returncode}")
        return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=4.0)
    args = parser.parse_args()
    names = [n for n in args.sets.split(",") if n]
    print(f"load average before: {os.getloadavg()[0]:.2f}; 2 layouts x {len(names)} sets, {args.seconds:g} s each")
    rows = {}
    for name in names:
        one = run_one(name, False, args.warmup, args.seconds)
        many = run_one(name, True, args.warmup, args.seconds)
        rows[name] = {"one_process_fps": round(one, 1), "processes_fps": round(many, 1),
                      "ratio": round(one / many, 2) if many else None}  # fmt: skip
        print(f"{name:<12} one process {one:7.1f} frames/s   --processes {many:7.1f} frames/s   "
              f"ratio {rows[name]['ratio']}", flush=True)  # fmt: skip
    print(json.dumps({"bench": "node_sets", "seconds": args.seconds, "sets": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
