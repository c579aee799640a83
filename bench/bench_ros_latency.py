"""Camera publish -> command receive latency over real Fast DDS between two processes, fused and split.

This process plays the camera and the vehicle: it publishes sensor_msgs/Image rgb8 frames at ``--rate`` Hz with
sensor-data QoS (as a camera driver does), stamped with the send time, and receives the TwistStamped commands, which
carry the camera stamp, so every command is matched to its frame. Latency = receive time - publish time, both on
this process's monotonic clock. The nodes run in a second process started by this script:

- ``fused``: drive_node on a single-threaded executor, as the ``drive_node`` console script runs it;
- ``split``: perception_node + policy_node in one process on a single-threaded executor, as ``lnn-control up
  drive-split`` runs them (features cross DDS between the two nodes); ``--split-threads N`` puts them on a
  MultiThreadedExecutor with N threads instead (``up --threads N``);
- ``echo``: the bare round trip between the same two processes, measured in the same run: a node in the fused
  process that answers each image with a TwistStamped carrying its header, without decoding or running anything.
  It is the floor the fused figure stands on.

Frames that never got a command within a second after the last one are drops. Each configuration runs ``--frames``
frames (default 3000: 100 s at 30 Hz) after a warm-up. All traffic stays on this machine (lnn_control.ros.env
.local_env). Prints a table; the last line is JSON.

    python bench/bench_ros_latency.py [--frames 3000] [--rate 30] [--sizes 160x120,640x480] [--model random:ltc:0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lnn_control.ros.env import apply, local_env  # noqa: E402

TARGET = {"size": "160x120", "layout": "fused", "median_ms": 3.0, "p99_ms": 6.0, "drops": 0}


# -- the node process --------------------------------------------------------------------------------------------------


def serve(layout: str, model: str, namespace: str, threads: int = 1) -> None:
    """Run the nodes of ``layout`` (fused: drive_node + echo; split: perception_node + policy_node) until SIGTERM."""
    import rclpy
    from geometry_msgs.msg import TwistStamped
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from lnn_control.nodes.drive import DriveNode
    from lnn_control.nodes.perception import PerceptionNode
    from lnn_control.nodes.policy import PolicyNode
    from lnn_control.ros.qos import COMMAND, SENSOR

    class EchoNode(Node):
        """Answers every image on ``echo/image`` with a TwistStamped carrying its header on ``echo/reply``."""

        def __init__(self) -> None:
            super().__init__("echo_node")
            self.publisher = self.create_publisher(TwistStamped, "echo/reply", COMMAND)
            self.create_subscription(Image, "echo/image", self._on_image, SENSOR)

        def _on_image(self, msg: Image) -> None:
            self.publisher.publish(TwistStamped(header=msg.header))

    rclpy.init(args=["--ros-args", "-r", f"__ns:={namespace}"])
    params = [Parameter("model", value=model), Parameter("stamped", value=True), Parameter("timeout", value=60.0)]
    if layout == "fused":
        nodes = [DriveNode(parameter_overrides=params), EchoNode()]
    else:
        nodes = [PerceptionNode(parameter_overrides=params), PolicyNode(parameter_overrides=params)]
    executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
    for node in nodes:
        executor.add_node(node)
    print("serving", flush=True)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()


# -- this process: camera and vehicle ----------------------------------------------------------------------------------


class Client:
    """Publishers of frames, subscribers of replies; receive times by stamp."""

    def __init__(self, namespace: str) -> None:
        import rclpy
        from geometry_msgs.msg import TwistStamped
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Image

        from lnn_control.ros.qos import COMMAND, SENSOR

        rclpy.init()
        self.rclpy = rclpy
        self.node = rclpy.create_node("bench_client", namespace=namespace)
        self.received: dict[int, int] = {}
        self.lock = threading.Lock()
        self.pubs = {
            "camera": self.node.create_publisher(Image, "camera/image_raw", SENSOR),
            "echo": self.node.create_publisher(Image, "echo/image", SENSOR),
        }
        for topic in ("cmd_vel", "echo/reply"):
            self.node.create_subscription(TwistStamped, topic, self._on_reply, COMMAND)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_reply(self, msg) -> None:
        now = time.monotonic_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.lock:
            self.received.setdefault(stamp, now)

    def wait_ready(self, target: str, reply_topic: str, timeout: float = 180.0) -> None:
        end = time.monotonic() + timeout
        name = self.node.resolve_topic_name(reply_topic)
        while self.pubs[target].get_subscription_count() == 0 or self.node.count_publishers(name) == 0:
            if time.monotonic() > end:
                raise RuntimeError(f"the node process never came up on {self.pubs[target].topic_name} / {name}")
            time.sleep(0.1)

    def run(self, target: str, frames: list, count: int, rate: float, warmup: int) -> dict:
        """Publish ``warmup + count`` frames at ``rate``; latencies (ms) and drops of the last ``count``."""
        from lnn_control.ros.stamps import ns_to_stamp

        publisher = self.pubs[target]
        period_ns = int(1e9 / rate)
        sent: list[tuple[int, int]] = []
        next_ns = time.monotonic_ns()
        for i in range(warmup + count):
            msg = frames[i % len(frames)]
            stamp = time.time_ns()
            msg.header.stamp = ns_to_stamp(stamp)
            t = time.monotonic_ns()
            publisher.publish(msg)
            if i >= warmup:
                sent.append((stamp, t))
            next_ns += period_ns
            delay = next_ns - time.monotonic_ns()
            if delay > 0:
                time.sleep(delay / 1e9)
        time.sleep(1.0)
        with self.lock:
            received = dict(self.received)
            self.received.clear()
        latencies = np.array([(received[s] - t) / 1e6 for s, t in sent if s in received])
        return {
            "sent": len(sent),
            "received": int(latencies.size),
            "drops": len(sent) - int(latencies.size),
            "median_ms": float(np.median(latencies)) if latencies.size else float("nan"),
            "p99_ms": float(np.percentile(latencies, 99)) if latencies.size else float("nan"),
            "max_ms": float(latencies.max()) if latencies.size else float("nan"),
        }

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join(5)
        self.node.destroy_node()
        self.rclpy.try_shutdown()


def make_frames(width: int, height: int, count: int = 8) -> list:
    from lnn_control.ros.msgs import image_msg

    rng = np.random.default_rng(0)
    return [
        image_msg(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), frame_id="camera") for _ in range(count)
    ]


def start_server(layout: str, model: str, namespace: str, threads: int, env: dict, log: Path) -> subprocess.Popen:
    command = [sys.executable, __file__, "--serve", layout, "--model", model, "--namespace", namespace]
    command += ["--split-threads", str(threads if layout == "split" else 1)]
    proc = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    end = time.monotonic() + 180
    while "serving" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > end:
            raise RuntimeError(f"the {layout} node process did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return proc


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000, help="measured frames per configuration")
    parser.add_argument("--rate", type=float, default=30.0, help="camera rate, Hz")
    parser.add_argument("--warmup", type=int, default=60, help="frames sent first and not measured")
    parser.add_argument("--sizes", default="160x120,640x480", help="comma-separated WxH")
    parser.add_argument("--layouts", default="fused,split", help="comma-separated: fused, split")
    parser.add_argument("--model", default="random:ltc:0", help="checkpoint stem, or random:<core>:<seed>")
    parser.add_argument("--split-threads", type=int, default=1, help="executor threads of the split process")
    parser.add_argument("--serve", choices=("fused", "split"), help=argparse.SUPPRESS)
    parser.add_argument("--namespace", default=f"/bench_{os.getpid()}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.model, args.namespace, args.split_threads)
        return

    env = local_env()
    env.update(OMP_NUM_THREADS="1", RCUTILS_COLORIZED_OUTPUT="0")
    apply(env)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    layouts = args.layouts.split(",")
    load_before = os.getloadavg()
    client = Client(args.namespace)
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench_ros_") as folder:
            for layout in layouts:
                log = Path(folder) / f"{layout}.log"
                proc = start_server(layout, args.model, args.namespace, args.split_threads, env, log)
                try:
                    phases = [("echo", "echo", "echo/reply"), (layout, "camera", "cmd_vel")]
                    for name, target, reply in phases if layout == "fused" else phases[1:]:
                        client.wait_ready(target, reply)
                        for width, height in sizes:
                            frames = make_frames(width, height)
                            row = {"size": f"{width}x{height}", "layout": name}
                            row.update(client.run(target, frames, args.frames, args.rate, args.warmup))
                            results.append(row)
                            print(
                                f"{row['size']:>8} {name:<6} {row['received']}/{row['sent']} received, "
                                f"median {row['median_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms",
                                file=sys.stderr,
                                flush=True,
                            )
                finally:
                    stop_server(proc)
    finally:
        client.close()
    load_after = os.getloadavg()

    order = {"echo": 0, "fused": 1, "split": 2}
    results.sort(key=lambda r: (int(r["size"].split("x")[0]), order[r["layout"]]))
    print(f"{'size':>8} {'layout':<7}{'received':>14}{'drops':>7}{'median ms':>11}{'p99 ms':>9}{'max ms':>9}")
    for r in results:
        print(
            f"{r['size']:>8} {r['layout']:<7}{r['received']:>8}/{r['sent']:<5}{r['drops']:>7}{r['median_ms']:>11.2f}"
            f"{r['p99_ms']:>9.2f}{r['max_ms']:>9.2f}"
        )
    print(
        f"{args.frames} frames per row at {args.rate:g} Hz after {args.warmup} warm-up frames; model {args.model}, "
        f"one torch thread; split executor threads {args.split_threads}; "
        f"echo = the bare image round trip between the same processes; "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after, {os.cpu_count()} CPUs"
    )
    target = next((r for r in results if r["size"] == TARGET["size"] and r["layout"] == TARGET["layout"]), None)
    met = (
        target is not None
        and target["median_ms"] < TARGET["median_ms"]
        and target["p99_ms"] < TARGET["p99_ms"]
        and target["drops"] == TARGET["drops"]
    )
    print(
        json.dumps(
            {
                "bench": "ros_latency",
                "frames": args.frames,
                "rate_hz": args.rate,
                "model": args.model,
                "split_threads": args.split_threads,
                "cpus": os.cpu_count(),
                "load_average": [round(load_before[0], 2), round(load_after[0], 2)],
                "results": results,
                "target": TARGET,
                "target_met": met,
            }
        )
    )


if __name__ == "__main__":
    main()
