"""A bag into the live graph (``lnn-control play BAG [--rate R] [--clock [HZ]] [--loop] [--topics T ...] [--local]``).

What ``ros2 bag play`` does, for installs without rosbag2 (the pip path): every message of a rosbag2 bag (MCAP or
sqlite3) is published on its topic at its original log time relative to the first message, scaled by ``--rate``.
The bytes stored in the bag are published as they are (rclpy's ``Publisher.publish`` takes serialized bytes), so
what subscribers receive is bit for bit what was recorded; rclpy needs each topic's message package installed to
create the publisher (:func:`lnn_control.ros.msgs.message_class`), and a topic whose type is missing is skipped
with a warning naming the package.

``--clock [HZ]`` also publishes ``/clock`` (rosgraph_msgs/Clock, 40 Hz unless given) with the bag's time as
playback advances, for nodes run with ``use_sim_time``. ``--loop`` starts over at the end (time then goes backwards;
the Driver resets its state on that, as on the robot). ``--wait-for-subscribers N`` holds playback until every
topic has N subscribers (discovery takes a moment; without it the first messages may reach nobody).
``--local`` keeps DDS traffic on this machine (:func:`lnn_control.ros.env.local_env`, the domain from
``ROS_DOMAIN_ID`` or 0). ROS 1 bags are not played: convert them first (``rosbags-convert``).

Publishers are reliable with a keep-last depth of ``--qos-depth`` (reliable publishers also serve best-effort
subscribers such as the camera subscriptions of the nodes). A topic whose recorded publishers all offered
transient-local durability (the bag's ``offered_qos_profiles``, e.g. ``mux/active_source``, ``sim/episode``) is
replayed transient local, with the recorded depth where the bag knows it: latched subscribers match it and a late
joiner gets the latest values, as from the original publisher.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lnn_control.command import CAR, ActionSchema
from lnn_control.data.bags import Bag, normalize_msgtype

CLOCK_TOPIC = "/clock"


class PlayError(RuntimeError):
    """A bag that cannot be played; the message names the bag and the problem."""


@dataclass
class PlayStats:
    """What a playback published."""

    messages: int = 0
    clock_ticks: int = 0
    loops: int = 0
    seconds: float = 0.0
    per_topic: dict[str, int] = field(default_factory=dict)
    skipped_topics: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: messages per topic, seconds, /clock messages, loops."""
        topics = ", ".join(f"{t} {n}" for t, n in sorted(self.per_topic.items()))
        return (
            f"{self.messages} messages ({topics}) in {self.seconds:.2f} s"
            + (f", {self.clock_ticks} /clock messages" if self.clock_ticks else "")
            + (f", {self.loops} loops" if self.loops > 1 else "")
        )


#: Seconds the player keeps its publishers after the last message, for best-effort readers still taking it.
_LINGER_S = 0.5


def play(
    bag_path: str | Path,
    *,
    rate: float = 1.0,
    clock_hz: float | None = None,
    loop: bool = False,
    topics: Sequence[str] = (),
    qos_depth: int = 100,
    wait_for_subscribers: int = 0,
    wait_timeout_s: float = 10.0,
    delay_s: float = 0.0,
    node_name: str = "lnn_control_player",
    stop: threading.Event | None = None,
) -> PlayStats:
    """Publish the bag into the ROS graph (``rclpy.init`` must have been called); returns counts when done, or as
    soon as ``stop`` is set (a stop signal)."""
    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    if not rate > 0:
        raise PlayError(f"--rate must be > 0, got {rate}")
    if clock_hz is not None and not clock_hz > 0:
        raise PlayError(f"--clock rate must be > 0 Hz, got {clock_hz}")
    stop = stop or threading.Event()
    stats = PlayStats()
    with Bag(bag_path) as bag:
        if bag.kind == "rosbag1":
            raise PlayError(f"{bag.path}: a ROS 1 bag; convert it first (rosbags-convert --src BAG --dst DIR)")
        wanted = [bag.resolve_topic(t) for t in topics] if topics else sorted(bag.topics)
        node = rclpy.create_node(node_name)
        try:
            qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=qos_depth, reliability=ReliabilityPolicy.RELIABLE)
            publishers = _publishers(node, bag, wanted, qos, stats)
            clock_pub = None
            if clock_hz is not None:
                from rosgraph_msgs.msg import Clock

                clock_pub = node.create_publisher(Clock, CLOCK_TOPIC, qos)
            if wait_for_subscribers > 0:
                _wait_for_subscribers(publishers, wait_for_subscribers, wait_timeout_s)
            stop.wait(delay_s)
            started = time.monotonic()
            while not stop.is_set():
                _play_once(bag, list(publishers), publishers, clock_pub, clock_hz, rate, stats, stop)
                stats.loops += 1
                if not loop:
                    break
            stats.seconds = time.monotonic() - started
            _finish(list(publishers.values()) + ([clock_pub] if clock_pub is not None else []), stop)
        finally:
            node.destroy_node()
    return stats


def _publishers(node: Any, bag: Bag, topics: Sequence[str], qos: Any, stats: PlayStats) -> dict[str, Any]:
    """A publisher per topic whose type is installed (the others are counted as skipped); PlayError if none is."""
    from lnn_control.ros.msgs import message_class

    publishers: dict[str, Any] = {}
    for topic in topics:
        try:
            cls = message_class(bag.topics[topic].msgtype)
            publishers[topic] = node.create_publisher(cls, topic, replay_qos(bag.topics[topic].offered_qos, qos))
        except ValueError as exc:  # the type's package is not installed
            stats.skipped_topics[topic] = str(exc)
            print(f"play: skipping {topic}: {exc}", file=sys.stderr)
    if not publishers:
        why = ": " + "; ".join(stats.skipped_topics.values()) if stats.skipped_topics else ""
        raise PlayError(f"{bag.path}: no topic can be published{why}")
    return publishers


def replay_qos(offered: Sequence[Any], default: Any) -> Any:
    """The publisher QoS for a topic whose publishers offered ``offered`` (rosbags ``Qos``) when it was recorded:
    ``default`` (reliable, volatile), made transient local when every recorded publisher was (depth: the recorded
    one where known, else the default's)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile
    from rosbags.interfaces import QosDurability, QosHistory

    if not offered or any(q.durability != QosDurability.TRANSIENT_LOCAL for q in offered):
        return default
    depths = [q.depth for q in offered if q.history == QosHistory.KEEP_LAST and q.depth > 0]
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=max(depths) if depths else default.depth,
        reliability=default.reliability,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )


def _finish(publishers: Sequence[Any], stop: threading.Event) -> None:
    """Wait for the reliable readers' acknowledgements, then linger: best-effort readers (cameras) acknowledge
    nothing, so give them a moment to take the last samples. A stop request cuts both short."""
    from rclpy.duration import Duration

    for pub in publishers:
        if stop.is_set():
            return
        pub.wait_for_all_acked(Duration(seconds=2.0))
    stop.wait(_LINGER_S)


def _wait_for_subscribers(publishers: dict[str, Any], count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        missing = {t: p.get_subscription_count() for t, p in publishers.items() if p.get_subscription_count() < count}
        if not missing:
            return
        if time.monotonic() > deadline:
            detail = ", ".join(f"{t} ({n})" for t, n in sorted(missing.items()))
            raise PlayError(f"waited {timeout_s:g} s for {count} subscriber(s) per topic; still short: {detail}")
        time.sleep(0.02)


def _play_once(
    bag: Bag, topics: list[str], publishers: dict[str, Any], clock_pub: Any, clock_hz: float | None, rate: float,
    stats: PlayStats, stop: threading.Event,
) -> None:
    """One pass over the bag, messages at their log times (scaled by ``rate``), /clock ticks in between."""
    start_ns = None
    wall0 = time.monotonic()
    period = 1.0 / clock_hz if clock_hz else None
    next_tick = wall0

    def bag_now(now: float) -> int:
        return int(start_ns + (now - wall0) * rate * 1e9)

    last_clock = -1

    def publish_clock(ns: int) -> None:
        nonlocal last_clock
        last_clock = max(last_clock, ns)  # late messages (a busy machine) never take the clock back
        _publish_clock(clock_pub, last_clock)
        stats.clock_ticks += 1

    def tick(now: float) -> None:
        nonlocal next_tick
        if clock_pub is None or start_ns is None:
            return
        while next_tick <= now:
            publish_clock(bag_now(next_tick))
            next_tick += period

    for topic, _msgtype, log_ns, data in bag.raw(topics):
        if start_ns is None:
            start_ns = log_ns
        due = wall0 + (log_ns - start_ns) / 1e9 / rate
        while not stop.is_set():
            now = time.monotonic()
            tick(now)
            if now >= due:
                break
            wake = min(due, next_tick) if clock_pub is not None else due
            stop.wait(max(0.0, min(wake - now, 0.05)))
        if stop.is_set():
            return
        if clock_pub is not None and log_ns > last_clock:  # the clock never lags the message it precedes
            publish_clock(log_ns)
        publishers[topic].publish(bytes(data))
        stats.messages += 1
        stats.per_topic[topic] = stats.per_topic.get(topic, 0) + 1


def _publish_clock(pub: Any, ns: int) -> None:
    from rosgraph_msgs.msg import Clock

    from lnn_control.ros.stamps import ns_to_stamp

    pub.publish(Clock(clock=ns_to_stamp(ns)))


@dataclass
class LiveRun:
    """Commands a running drive node published while a bag played, keyed by the camera stamp they answer."""

    commands: dict[int, tuple[float, ...]]
    """Stamp -> the command's values, in the action's field order."""
    frames_played: int
    node_log: str
    missing: list[int] = field(default_factory=list)
    """Stamps of the played frames the node had not answered when the wait for answers timed out."""


#: The drive node's ``~/reset`` service (std_srvs/Trigger) as ``live_commands`` starts it.
LIVE_RESET_SERVICE = "/drive_node/reset"
#: Seconds between probe frames while ``live_commands`` waits for the node's first answer.
_PROBE_PERIOD_S = 0.2


@dataclass
class _LiveBag:
    """What ``live_commands`` reads from the bag before it starts anything."""

    image_topic: str
    msgtype: str
    compressed: bool
    frame_stamps: set[int]
    first: bytes


def _read_live_bag(bag_path: str | Path) -> _LiveBag:
    from lnn_control.data.bags import IMAGE_TYPES
    from lnn_control.replay import bag_frames

    with Bag(bag_path) as bag:
        images = bag.topics_of_type(*IMAGE_TYPES)
        if len(images) != 1:
            raise PlayError(f"{bag.path}: live replay needs exactly one image topic, found {images or 'none'}")
        topic = images[0]
        msgtype = bag.topics[topic].msgtype
        stamps = {frame.stamp_ns for frame in bag_frames(bag, topic, "header", decode=False)}  # as the node stamps
        first = next((bytes(data) for _t, _m, _l, data in bag.raw([topic])), None)
    if first is None:
        raise PlayError(f"{bag_path}: {topic} has no message")
    return _LiveBag(topic, msgtype, normalize_msgtype(msgtype).endswith("CompressedImage"), stamps, first)


class _Answers:
    """The node's stamped commands as they come (executor thread), and waits on them (any thread)."""

    def __init__(self, frame_stamps: set[int], probe_ns: int, schema: ActionSchema) -> None:
        self.frame_stamps, self.probe_ns, self.schema = frame_stamps, probe_ns, schema
        self.commands: dict[int, tuple[float, ...]] = {}
        self.probe_answered = False
        self._cond = threading.Condition()

    def on_command(self, msg: Any) -> None:
        from lnn_control.ros.stamps import stamp_to_ns

        stamp = stamp_to_ns(msg.header.stamp)
        with self._cond:
            if stamp == self.probe_ns:
                self.probe_answered = True
            elif stamp in self.frame_stamps:
                self.commands[stamp] = self.schema.from_twist(msg.twist).values
            self._cond.notify_all()

    def wait_probe(self, timeout_s: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.probe_answered, timeout_s)

    def wait_all(self, timeout_s: float) -> list[int]:
        """Wait until every frame is answered (or ``timeout_s``); the stamps still unanswered."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.commands) >= len(self.frame_stamps), timeout_s)
            return sorted(self.frame_stamps - set(self.commands))


def _prove_link(node: Any, publisher: Any, live: _LiveBag, answers: _Answers, proc: Any, timeout_s: float) -> None:
    """Publish the bag's first frame, stamped ``answers.probe_ns``, until the node answers it; PlayError if it does
    not within ``timeout_s`` or its process ends. The stamp lies after the bag's last frame, so a probe still in
    flight when playback starts makes the first frame go back in time, which resets the Driver again."""
    from rclpy.serialization import deserialize_message

    from lnn_control.ros.msgs import message_class
    from lnn_control.ros.stamps import ns_to_stamp

    probe = deserialize_message(live.first, message_class(live.msgtype))
    probe.header.stamp = ns_to_stamp(answers.probe_ns)
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise PlayError(f"drive_node exited with status {proc.returncode} before answering a frame")
        publisher.publish(probe)
        if answers.wait_probe(_PROBE_PERIOD_S):
            return
        if time.monotonic() > deadline:
            raise PlayError(f"drive_node answered no frame on {live.image_topic} within {timeout_s:g} s")


def _reset_node(node: Any, timeout_s: float) -> None:
    """Call the drive node's ``~/reset`` and wait for its answer: the state the bag starts from is fresh."""
    from std_srvs.srv import Trigger

    client = node.create_client(Trigger, LIVE_RESET_SERVICE)
    if not client.wait_for_service(timeout_sec=timeout_s):
        raise PlayError(f"{LIVE_RESET_SERVICE} not available within {timeout_s:g} s")
    done = threading.Event()
    future = client.call_async(Trigger.Request())
    future.add_done_callback(lambda _f: done.set())
    if not done.wait(timeout_s) or future.result() is None or not future.result().success:
        raise PlayError(f"{LIVE_RESET_SERVICE} did not confirm the reset within {timeout_s:g} s")


def _start_drive_node(model: str | Path, live: _LiveBag, env: dict[str, str], tmp: Path,
                      driver_params: dict[str, Any] | None) -> tuple[Any, Path]:
    import subprocess

    import yaml

    from lnn_control import processes

    params = {"model": str(model), "stamped": True, "enabled": True, "threads": 1,
              "image_transport": "compressed" if live.compressed else "raw", **(driver_params or {})}
    node_topic = "camera/image_raw/compressed" if live.compressed else "camera/image_raw"
    param_file = tmp / "params.yaml"
    param_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    log_path = tmp / "drive_node.log"
    with log_path.open("w") as log_fh:
        proc = processes.start(
            [sys.executable, "-m", "lnn_control.nodes.drive", "--ros-args", "--params-file", str(param_file),
             "-r", f"{node_topic}:={live.image_topic}"],
            env={**env, "PYTHONUNBUFFERED": "1"}, stdout=log_fh, stderr=subprocess.STDOUT,
        )
    return proc, log_path


def live_commands(
    bag_path: str | Path,
    model: str | Path,
    *,
    rate: float = 1.0,
    driver_params: dict[str, Any] | None = None,
    startup_timeout_s: float = 60.0,
    answer_timeout_s: float = 10.0,
    schema: ActionSchema = CAR,
) -> LiveRun:
    """Play ``bag_path`` into a real ``drive_node`` process running ``model`` and collect its commands.

    Everything runs on a private DDS domain on this machine (:func:`lnn_control.ros.env.local_env`); this process
    must not have initialised rclpy on another domain. The node publishes TwistStamped commands stamped with the
    camera stamp (``stamped: true``), so each command is matched to the frame it answers; watchdog commands (no
    matching frame stamp) are left out and each command is read as ``schema`` (the model's action). ``driver_params``
are extra node parameters (``limits.velocity.max``, ``reset_gap``...).

    The link is proven before the bag plays: the first frame is published (restamped) until the node answers it,
    then the node's ``~/reset`` clears the state that probe left, then the bag plays on the same publisher. The run
    ends once every frame is answered, or ``answer_timeout_s`` after the last one was published (the frames still
    unanswered are in :attr:`LiveRun.missing`).
    """
    import signal
    import tempfile

    from lnn_control import processes
    from lnn_control.ros.env import apply, local_env

    live = _read_live_bag(bag_path)
    env = local_env()
    apply(env)
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    with tempfile.TemporaryDirectory(prefix="lnn-live-") as tmp:
        proc, log_path = _start_drive_node(model, live, env, Path(tmp), driver_params)
        context_started = not rclpy.ok()
        try:
            if context_started:
                rclpy.init(args=None, domain_id=int(env["ROS_DOMAIN_ID"]),
                           signal_handler_options=SignalHandlerOptions.NO)
            answers, played, missing = _drive_live(bag_path, live, proc, rate, startup_timeout_s, answer_timeout_s,
                                                   schema)
        finally:
            if context_started:
                rclpy.try_shutdown()
            processes.stop(proc, ((signal.SIGINT, 15.0), (signal.SIGKILL, 5.0)))
        node_log = log_path.read_text(errors="replace")
    return LiveRun(dict(answers.commands), played, node_log, missing)


def _drive_live(bag_path: str | Path, live: _LiveBag, proc: Any, rate: float, startup_timeout_s: float,
                answer_timeout_s: float, schema: ActionSchema) -> tuple[_Answers, int, list[int]]:
    """The listening node, the probe, the reset, the playback and the wait for the answers; the answers, the frames
    published and the stamps not answered."""
    import rclpy
    from geometry_msgs.msg import TwistStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    from lnn_control.nodes.policy import CMD_TOPIC  # the topic the command half publishes on
    from lnn_control.ros.msgs import message_class

    answers = _Answers(live.frame_stamps, max(live.frame_stamps, default=0) + 1_000_000_000, schema)
    node = rclpy.create_node("lnn_control_live_eval")
    executor = SingleThreadedExecutor()
    spinning = threading.Event()
    try:
        node.create_subscription(TwistStamped, CMD_TOPIC, answers.on_command,
                                 QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE))
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE)
        publisher = node.create_publisher(message_class(live.msgtype), live.image_topic, qos)
        executor.add_node(node)
        spinning.set()
        thread = threading.Thread(target=lambda: _spin(executor, spinning), daemon=True)
        thread.start()
        try:
            _prove_link(node, publisher, live, answers, proc, startup_timeout_s)
            _reset_node(node, startup_timeout_s)
            stats = PlayStats()
            with Bag(bag_path) as bag:
                _play_once(bag, [live.image_topic], {live.image_topic: publisher}, None, None, rate, stats,
                           threading.Event())
            missing = answers.wait_all(answer_timeout_s)
        finally:
            spinning.clear()
            thread.join(5)
            executor.shutdown(timeout_sec=1.0)
    finally:
        node.destroy_node()
    return answers, stats.per_topic.get(live.image_topic, 0), missing


def _spin(executor: Any, spinning: threading.Event) -> None:
    import rclpy

    while spinning.is_set() and rclpy.ok():
        executor.spin_once(timeout_sec=0.05)


def play_bag(bag_path: str | Path, *, local: bool = False, **options: Any) -> PlayStats:
    """:func:`play` in an rclpy context of its own, until done or SIGINT, SIGTERM or SIGHUP (``local``: DDS traffic
    stays on this machine, the domain from ``ROS_DOMAIN_ID`` or 0); ``options`` are :func:`play`'s."""
    if local:
        from lnn_control.ros.env import apply, local_env

        apply(local_env(domain_id=int(os.environ.get("ROS_DOMAIN_ID") or 0)))
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    from lnn_control.ros.spin import StopRequest

    with StopRequest() as stop:  # the signals end the playback; the context stays valid until the end
        rclpy.init(args=None, signal_handler_options=SignalHandlerOptions.NO)
        try:
            return play(bag_path, stop=stop.event, **options)
        finally:
            rclpy.try_shutdown()
