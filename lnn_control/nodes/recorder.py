"""recorder_node: demonstrations into rosbag2 bags, one per episode, the bytes exactly as received.

What it records: ``topics``, one entry per topic, ``"TOPIC [TYPE] [QOS] [RATE]"`` (fields separated by spaces)::

    topics: ["camera/image_raw sensor_msgs/msg/Image sensor 30", "teleop/cmd_vel"]

TYPE is any installed message type (``sensor_msgs/msg/Image`` or ``sensor_msgs/Image``). Left out, the recorder
waits for a publisher and subscribes with the type it offers (logged; the command topics are Twist or TwistStamped
depending on ``stamped``, so config/record.yaml leaves it out). A configured TYPE the publishers do not offer gets
a warning naming the topic and both types (DDS never matches different types). QOS is ``sensor`` (best
effort, the cameras' sensor-data profile), ``reliable`` or ``latched`` (reliable + transient local, for
late-joining status topics); left out, ``sensor`` for image types and ``reliable`` for the rest, and for a topic
typed from the graph, whatever matches its publishers. RATE is the
expected rate in Hz (left out or 0: no check). ``qos_depth`` sets the history depth. The old parallel lists
(bare topic names in ``topics`` plus ``types``, ``qos``, ``expected_rates``) still work for this release, with a
deprecation warning. Topics are subscribed with ``raw=True`` so the serialized CDR bytes go into the bag as they
came off the wire (no deserialising, no re-encoding). The bag (MCAP by default, sqlite3 with ``storage:=sqlite3``)
stores each type's full definition, so readers need no ROS packages. Topics are stored under their resolved names
(namespaces and remaps applied).

Bags: ``bag_version`` 8 (what Humble's ``ros2 bag info/play`` read) or 9 (Jazzy); 0, the default, takes it from
``ROS_DISTRO``. Each topic's offered QoS (its publishers' profiles from the graph at the episode start, else the
subscription's) goes into ``metadata.yaml`` and the storage file, so ``ros2 bag play`` and ``lnn-control play``
offer it again (latched topics replay latched). ``compression: zstd`` compresses the MCAP chunks;
``max_bag_size`` (bytes) and ``max_bag_duration`` (seconds) split an episode's bag into files ``<bag>_<n>``.
The subscription callback takes ``(message, info)`` where rclpy passes message info (Iron and later) and the
message alone on Humble (then the first message of each burst has no sequence number: ``lost`` is a lower bound).

Episodes: ``~/start``, ``~/stop``, ``~/discard`` (std_srvs/Trigger), or ``autostart:=true`` (one episode from start
until shutdown). Each bag is ``<output_dir>/<prefix><YYYYmmdd_HHMMSS>_<NNN>``. With ``record_only_when_human`` the
messages of an open episode are kept only while ``mux/active_source`` says ``teleop`` (others count as skipped).

Metadata: the bag's ``metadata.yaml`` ``custom_data`` holds ``lnn_control.operator``, ``.vehicle``, ``.notes``
(parameters read at each episode start, so ``ros2 param set`` between episodes works), ``.software_version``,
``.config`` (this node's parameters as JSON), ``.node``, ``.hostname``, ``.start_time``, ``.end_time``,
``.end_reason`` and ``.stats`` (per-topic counts and drops).

Guarantees (details in :mod:`lnn_control.data.recording`):

- writes happen on a writer thread behind a bounded queue (``queue_size`` messages, ``max_queue_mb``), never in the
  DDS callbacks; overflow and write errors are counted per topic, logged and reported;
- **acknowledged** means accepted into the episode (counted in ``received`` on ``~/status``). ``~/stop``, SIGINT,
  SIGTERM and SIGHUP first take every message DDS had delivered (what waits in the readers, taken directly while the
  context is alive), then the stop returns only after everything accepted is in the closed, synced bag; its message
  gives the counts. A recorder never loses what it acknowledged, nor a reliable message its publisher saw acked;
- messages lost before they reached the recorder (a best-effort camera, a full reader history) are counted per
  topic as ``lost`` from gaps in the publishers' sequence numbers, on ``~/status`` and in the closing log line;
- one single-threaded executor: callbacks never run concurrently, a ``~/stop`` blocks the node's other callbacks
  until the bag is closed (DDS keeps what arrives meanwhile);
- every ``flush_period`` the bag is made durable (MCAP chunk closed and flushed, sqlite3 committed; fsync with
  ``fsync``): after SIGKILL or a power cut at most that much is lost, and the unfinished bag is recovered (summary
  and metadata.yaml added) when the recorder next starts (``recover_on_start``), or by ``lnn-control recover BAG``
  (``recorder_node --recover BAG`` is an alias). A second signal during the clean-up exits at once: the bag then
  reads up to its last flush;
- an unwritable ``output_dir``, a full disk (free space below ``min_free_mb``) or any write error ends the episode
  with an error naming the path and the cause; the services answer ``success: false`` with it and the node keeps
  running.

``/diagnostics`` (diagnostic_msgs/DiagnosticArray, every ``diagnostics_period`` s, :mod:`lnn_control.ros.diagnostics`):
``recorder_node: episode`` (recording or idle; ERROR with the last write error), ``recorder_node: topics`` (per topic
received, dropped, lost; WARN on drops, losses or a topic still waiting for a publisher to give its type) and
``recorder_node: disk`` (free space of ``output_dir``; ERROR below ``min_free_mb``).

It warns when a topic's rate over ``rate_window`` seconds falls below its expected RATE by more than
``rate_tolerance``, and publishes its state as JSON on ``~/status`` (std_msgs/String)
every ``status_period`` seconds and, within ``graph_period``, whenever a subscription matches or loses a publisher
or a topic receives its first message of the episode: ``matched_publishers`` gives each topic's matched publishers
and ``topics`` what each received, so a sim_node that waits for this recorder (``wait_for_recorders``) starts only
once it has matched every publisher the graph shows on its topics (and received a message on those of
``wait_for_recorded``). These
timers run on the steady clock, also under ``use_sim_time``.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from std_srvs.srv import Trigger

import lnn_control
from lnn_control.data.bag_writer import BAG_VERSIONS, COMPRESSIONS, BagFormat, default_bag_version
from lnn_control.data.bags import BagError
from lnn_control.data.episode_bag import KEY_PREFIX, QOS_CHOICES, TopicSpec, is_unfinished, parse_topics
from lnn_control.data.recording import EpisodeRecorder, RecorderError
from lnn_control.data.recovery import recover
from lnn_control.health import Report, disk_report, merge
from lnn_control.ros.diagnostics import Diagnostics
from lnn_control.ros.msgs import message_class
from lnn_control.ros.node_util import Throttle, declare_config, param, read_param, run_node
from lnn_control.ros.qos import LATCHED

TELEOP = "teleop"
#: At most this many messages are taken from a reader in one callback.
BURST = 64


@dataclass(frozen=True)
class RecorderConfig:
    """Parameters of recorder_node (config/record.yaml)."""

    topics: list[str] = param(
        [
            "camera/image_raw sensor_msgs/msg/Image sensor",
            "teleop/cmd_vel reliable",
            "mux/active_source std_msgs/msg/String latched",
        ],
        "one entry per topic: 'TOPIC [TYPE] [QOS] [RATE]', e.g. 'camera/image_raw sensor_msgs/msg/Image sensor 30'; "
        "TYPE left out: the type its publishers offer (subscribed once one appears); QOS: sensor, reliable or "
        "latched (default: sensor for images, reliable otherwise; without TYPE: matching the publishers); RATE: "
        "expected Hz, 0 or left out: no check (relative topic names are resolved)",
    )
    types: list[str] = param([], "deprecated (the TYPE field of each topics entry): message type of each topic")
    qos: list[str] = param(
        [], "deprecated (the QOS field of each topics entry): QoS of each topic", choices=QOS_CHOICES
    )
    qos_depth: int = param(50, "history depth of the subscriptions", min=1, max=100_000)
    expected_rates: list[float] = param([], "deprecated (the RATE field of each topics entry): Hz per topic", min=0)
    rate_window: float = param(5.0, "seconds over which rates are measured", min=0.5, max=3600.0)
    rate_tolerance: float = param(0.2, "warn when the rate is below expected * (1 - rate_tolerance)", min=0.0, max=1.0)
    output_dir: str = param("bags", "folder for the episode bags (created if needed; ~ expanded)")
    storage: str = param("mcap", "bag storage", choices=("mcap", "sqlite3"))
    bag_version: int = param(
        0,
        "rosbag2 metadata version: 8 (Humble's ros2 bag reads it), 9 (Jazzy and later); 0: from ROS_DISTRO "
        "(humble: 8, anything else: 9)",
        choices=(0, *BAG_VERSIONS),
    )
    compression: str = param("none", "MCAP chunk compression (zstd needs storage mcap)", choices=COMPRESSIONS)
    max_bag_size: int = param(
        0, "bytes per bag file: a new file <bag>_<n> begins before it grows past this (0: no limit)", min=0
    )
    max_bag_duration: float = param(
        0.0, "seconds of log time per bag file: a new file <bag>_<n> begins after this (0: no limit)", min=0.0
    )
    graph_period: float = param(
        0.5, "seconds between looks at the graph (types of untyped topics, type mismatches)", min=0.05, max=60.0
    )
    prefix: str = param("episode_", "bag folder name prefix, before <YYYYmmdd_HHMMSS>_<NNN>")
    autostart: bool = param(False, "start an episode at once and record until shutdown")
    record_only_when_human: bool = param(False, "keep messages only while mux/active_source is 'teleop'")
    active_source_topic: str = param("mux/active_source", "where the command mux says who drives")
    operator: str = param("", "who drives (stored in each bag; read at each episode start)", dynamic=True)
    vehicle: str = param("", "which vehicle (stored in each bag; read at each episode start)", dynamic=True)
    notes: str = param("", "free text stored in each bag (read at each episode start)", dynamic=True)
    flush_period: float = param(1.0, "seconds between durable flushes (the most a SIGKILL can lose)", min=0.02, max=600)
    chunk_size_kb: int = param(1024, "an MCAP chunk is written once it holds this many KiB", min=4, max=1 << 20)
    fsync: bool = param(True, "sync bag files to the device at each flush (survives power loss)")
    queue_size: int = param(2000, "messages the writer queue holds before dropping (counted)", min=1, max=10_000_000)
    max_queue_mb: int = param(512, "MiB the writer queue holds before dropping (counted)", min=1, max=1 << 20)
    min_free_mb: int = param(200, "end the episode when the disk has less free space than this (MiB)", min=0)
    status_period: float = param(1.0, "seconds between ~/status messages", min=0.05, max=3600.0)
    recover_on_start: bool = param(True, "at start, repair unfinished bags under output_dir (e.g. after SIGKILL)")
    stop_timeout: float = param(60.0, "seconds ~/stop waits for the writer before answering failure", min=1.0)


def _qos(kind: str, depth: int) -> QoSProfile:
    if kind == "sensor":
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.BEST_EFFORT)
    durability = DurabilityPolicy.TRANSIENT_LOCAL if kind == "latched" else DurabilityPolicy.VOLATILE
    # latched too keeps ``depth`` samples: a late joiner then gets all of the writer's history, none overwritten
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE, durability=durability
    )


def message_info_callbacks() -> bool:
    """True when this rclpy passes ``(message, message info)`` to a subscription callback of two parameters (Iron
    and later: ``Subscription.CallbackType``); Humble's calls every callback with the message alone."""
    from rclpy.subscription import Subscription

    return hasattr(Subscription, "CallbackType")


def _bag_qos(profile: Any) -> Any:
    """An rclpy QoS profile as rosbags' ``Qos`` (what a bag stores as offered QoS); policies rosbags does not know
    become UNKNOWN."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    def policy(enum: Any, value: Any) -> Any:
        try:
            return enum(int(value))
        except (TypeError, ValueError):
            return enum.UNKNOWN

    def span(duration: Any) -> Any:
        return QosTime(*divmod(int(duration.nanoseconds), 1_000_000_000))

    return Qos(
        policy(QosHistory, profile.history),
        int(profile.depth),
        policy(QosReliability, profile.reliability),
        policy(QosDurability, profile.durability),
        span(profile.deadline),
        span(profile.lifespan),
        policy(QosLiveliness, profile.liveliness),
        span(profile.liveliness_lease_duration),
        bool(profile.avoid_ros_namespace_conventions),
    )


def _matching_kind(profiles: list[Any]) -> str:
    """The subscription QoS kind that matches every publisher: best effort if one is, latched if all are
    transient local, reliable otherwise."""
    if any(p.reliability == ReliabilityPolicy.BEST_EFFORT for p in profiles):
        return "sensor"
    if profiles and all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in profiles):
        return "latched"
    return "reliable"


class RecorderNode(Node):
    """See the module docstring."""

    def __init__(self, node_name: str = "recorder_node", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.config = cfg = declare_config(self, RecorderConfig)
        entries, deprecated = parse_topics(cfg.topics, cfg.types, cfg.qos, cfg.expected_rates)
        if deprecated:
            self.get_logger().warning(
                "parameters 'types', 'qos' and 'expected_rates' are deprecated and go in the next release: write each "
                "topic as one entry of 'topics', 'TOPIC TYPE [QOS] [RATE]', e.g. "
                "'camera/image_raw sensor_msgs/msg/Image sensor 30'"
            )
        n = len(entries)
        self._throttle = Throttle(5.0)
        self.active_source = ""
        self.message_info = message_info_callbacks()
        self._readers: dict[int, tuple[Any, Callable[[bytes, dict], None]]] = {}  # index -> (subscription, offer)
        self._qos_profiles: dict[int, QoSProfile] = {}
        self._pending: list[int] = []  # topics whose type comes from the graph, not subscribed yet
        self._mismatch: dict[int, tuple[str, ...]] = {}  # types last warned about per topic
        specs = []
        for index, entry in enumerate(entries):
            if not entry.msgtype:
                self._pending.append(index)
                specs.append(dataclasses.replace(entry, topic=self._resolve(entry.topic)))
                continue
            try:
                cls = message_class(entry.msgtype)
            except ValueError as exc:  # the type is not installed
                raise ValueError(f"parameter 'topics' entry {index + 1} ({entry.topic}): {exc}") from exc
            sub = self._subscribe(index, cls, entry.topic, entry.qos)
            specs.append(dataclasses.replace(entry, topic=sub.topic_name))  # stored under its resolved name
        self.specs = specs
        self._arrivals = [0] * n
        self._window_start = (time.monotonic(), [0] * n)
        output_dir = Path(cfg.output_dir).expanduser()
        if cfg.recover_on_start:
            self._recover_unfinished(output_dir)
        bag_format = BagFormat(  # raises ValueError on a combination the parameters' own checks let through
            storage=cfg.storage,
            version=cfg.bag_version or default_bag_version(),
            compression=cfg.compression,
            chunk_size=cfg.chunk_size_kb << 10,
            max_bag_size=cfg.max_bag_size,
            max_bag_duration_ns=int(cfg.max_bag_duration * 1e9),
            fsync=cfg.fsync,
        )
        try:
            self.engine = EpisodeRecorder(
                specs,
                output_dir=output_dir,
                bag_format=bag_format,
                prefix=cfg.prefix,
                queue_size=cfg.queue_size,
                max_queue_bytes=cfg.max_queue_mb << 20,
                flush_period=cfg.flush_period,
                min_free_bytes=cfg.min_free_mb << 20,
                log=self._log,
                drain=self.drain,
            )
        except RecorderError as exc:
            raise ValueError(str(exc)) from exc
        if cfg.record_only_when_human:
            self.create_subscription(String, cfg.active_source_topic, self._on_active_source, LATCHED)
        self.status_publisher = self.create_publisher(String, "~/status", 10)
        self._reported_gate: tuple[dict[str, int] | None, list[str]] | None = None  # _gate_view(), last published
        self.create_service(Trigger, "~/start", self._on_start)
        self.create_service(Trigger, "~/stop", self._on_stop)
        self.create_service(Trigger, "~/discard", self._on_discard)
        # on the steady clock: under use_sim_time a sim holding its first frame (waiting for this recorder's
        # matches) stops sim time, and timers on it would never report the matches it waits for
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(cfg.status_period, self._publish_status, clock=steady)
        self.diagnostics = Diagnostics(self, hardware_id=str(output_dir))
        self.diagnostics.add("episode", self._episode_report)
        self.diagnostics.add("topics", self._topics_report)
        self.diagnostics.add("disk", lambda: disk_report(output_dir, error_free_bytes=cfg.min_free_mb << 20))
        if any(spec.expected_rate for spec in specs):
            self.create_timer(cfg.rate_window, self._check_rates, clock=steady)
        self.create_timer(cfg.graph_period, self.check_graph, clock=steady)
        self._closed = False
        described = ", ".join(f"{s.topic} [{s.msgtype or 'type from the graph'}, {s.qos or 'matching'}]" for s in specs)
        info = "" if self.message_info else "; no message info in callbacks (Humble's rclpy): lost is a lower bound"
        self.get_logger().info(
            f"ready: records {described} into {output_dir.resolve()} ({cfg.storage}, bag version "
            f"{bag_format.version}, compression {cfg.compression}){info}; "
            f"services ~/start ~/stop ~/discard" + ("; only while a human drives" if cfg.record_only_when_human else "")
        )
        if cfg.autostart:
            ok, message = self.start_episode()
            if not ok:
                self.get_logger().error(f"autostart failed: {message}; the node keeps running (call ~/start)")

    # -- logging from any thread --------------------------------------------------------------------------------------

    def _log(self, severity: str, text: str) -> None:
        logger = self.get_logger()
        if severity == "error":
            logger.error(text)
        elif severity == "warning":
            logger.warning(text)
        else:
            logger.info(text)

    # -- recovery -----------------------------------------------------------------------------------------------------

    def _recover_unfinished(self, output_dir: Path) -> None:
        if not output_dir.is_dir():
            return
        for path in sorted(output_dir.iterdir()):
            if is_unfinished(path):
                try:
                    report = recover(path)
                    self.get_logger().warning(f"found an unfinished bag (its writer was killed): {report}")
                except (BagError, OSError) as exc:
                    self.get_logger().error(f"cannot recover unfinished bag: {exc}")

    # -- subscriptions ------------------------------------------------------------------------------------------------

    def _resolve(self, topic: str) -> str:
        """The full name of ``topic`` (namespace and remaps applied), as a subscription would resolve it."""
        resolve = getattr(self, "resolve_topic_name", None)
        if resolve is not None:
            return resolve(topic)
        if topic.startswith("/"):  # an rclpy without Node.resolve_topic_name: namespace only
            return topic
        if topic.startswith("~"):
            return self.get_fully_qualified_name() + topic[1:]
        return f"{self.get_namespace().rstrip('/')}/{topic}"

    def _subscribe(self, index: int, cls: type, topic: str, kind: str) -> Any:
        """Subscribe topic ``index`` (raw bytes) with the QoS ``kind``; the subscription."""
        qos = _qos(kind, self.config.qos_depth)
        sub = self.create_subscription(cls, topic, self._callback(index), qos, raw=True)
        self._readers[index] = (sub, self._offer(index))
        self._qos_profiles[index] = qos
        return sub

    def _offer(self, index: int) -> Callable[[bytes, dict], None]:
        """What to do with one received message of topic ``index``: hand it to the engine."""
        use_sim_time = self.get_parameter("use_sim_time").value
        clock = self.get_clock()

        def offer(data: bytes, info: dict) -> None:
            self._arrivals[index] += 1
            recv_ns = int(info.get("received_timestamp") or time.time_ns())
            log_ns = clock.now().nanoseconds if use_sim_time else recv_ns
            human = self.active_source == TELEOP if self.config.record_only_when_human else True
            sequence = info.get("publication_sequence_number")  # None without message info: counted as such
            self.engine.accept(index, data, recv_ns, log_ns, human=human, sequence=sequence)

        return offer

    def _callback(self, index: int) -> Callable[..., None]:
        """The subscription's callback: this message, then whatever else already waits in the same reader (one
        executor round per burst instead of one per message). Its signature follows what this rclpy passes: the
        message and its info (Iron and later), or the message alone (Humble); the readers' own ``take_message``
        gives the info either way."""

        def burst(data: bytes, info: dict) -> None:
            sub, offer = self._readers[index]
            offer(data, info)
            self._take_waiting(sub, offer, BURST)

        if self.message_info:
            return burst

        def message_only(data: bytes) -> None:
            # No info for this one: its reception time is estimated from the next message waiting in the reader
            # (DDS received this one before that one), else now, so log times stay in arrival order.
            sub, offer = self._readers[index]
            following = self._take_one(sub)
            recv_ns = time.time_ns()
            if following is not None and following[1].get("received_timestamp"):
                recv_ns = min(recv_ns, int(following[1]["received_timestamp"]) - 1)
            offer(data, {"received_timestamp": recv_ns})
            if following is not None:
                offer(*following)
                self._take_waiting(sub, offer, BURST - 1)

        return message_only

    @staticmethod
    def _take_one(sub: Any) -> tuple[bytes, dict] | None:
        """The next message waiting in ``sub``'s reader with its info (``{}`` where rclpy gives none), or None."""
        with sub.handle:
            got = sub.handle.take_message(sub.msg_type, True)
        if got is None:
            return None
        return (got[0], got[1]) if isinstance(got, tuple) else (got, {})

    def _take_waiting(self, sub: Any, offer: Callable[[bytes, dict], None], limit: int) -> int:
        """Take up to ``limit`` messages waiting in ``sub``'s reader and offer each; how many."""
        for taken in range(limit):
            got = self._take_one(sub)
            if got is None:
                return taken
            offer(*got)
        return limit

    def drain(self) -> int:
        """Take every message waiting in the readers now and offer it as its callback would; how many.

        ``~/stop`` and shutdown call it (the context still valid), so what DDS delivered before the stop is kept
        even though no executor callback took it yet. Bounded per topic, so a publisher cannot keep it going.
        """
        limit = 10 * self.config.qos_depth + 100
        taken = sum(self._take_waiting(sub, offer, limit) for sub, offer in list(self._readers.values()))
        if taken:
            self.get_logger().info(f"took {taken} messages still waiting in the readers")
        return taken

    # -- the graph ----------------------------------------------------------------------------------------------------

    def check_graph(self) -> None:
        """Subscribe the topics configured without a type once a publisher offers one (with its type), and warn
        when a configured type differs from what the publishers offer (DDS never matches those)."""
        for index in list(self._pending):
            self._adopt(index)
        for index, spec in enumerate(self.specs):
            if spec.msgtype and index not in self._pending:
                self._check_type(index, spec)
        if self._gate_view() != self._reported_gate:  # a sim's start gate waits on this (wait_for_recorders)
            self._publish_status()

    def _gate_view(self) -> tuple[dict[str, int] | None, list[str]]:
        """What a sim's start gate reads in ``~/status``: the matched publishers, and the topics heard from."""
        heard = sorted(t for t, stats in self.engine.status()["topics"].items() if stats["received"])
        return self.matched_publishers(), heard

    def matched_publishers(self) -> dict[str, int] | None:
        """Topic -> publishers its subscription has matched (DDS; 0 while an untyped topic waits for its type), or
        None where this rclpy cannot count them."""
        matched = {}
        for index, spec in enumerate(self.specs):
            reader = self._readers.get(index)
            if reader is None:  # not subscribed yet: its type comes from the graph
                matched[spec.topic] = 0
                continue
            count = getattr(reader[0], "get_publisher_count", None)
            if count is None:
                return None
            matched[spec.topic] = count()
        return matched

    def _publishers_of(self, topic: str) -> list[Any]:
        try:
            return list(self.get_publishers_info_by_topic(topic))
        except Exception:  # noqa: BLE001 - the context is going away
            return []

    def _adopt(self, index: int) -> None:
        spec = self.specs[index]
        infos = self._publishers_of(spec.topic)
        if not infos:
            return
        counts: dict[str, int] = {}
        for info in infos:
            counts[info.topic_type] = counts.get(info.topic_type, 0) + 1
        msgtype = max(sorted(counts), key=lambda t: counts[t])  # most publishers' type
        if len(counts) > 1 and self._throttle(("types", spec.topic)):
            self.get_logger().warning(
                f"{spec.topic}: publishers offer several types ({', '.join(sorted(counts))}); recording {msgtype}"
            )
        try:
            cls = message_class(msgtype)
        except ValueError as exc:
            if self._throttle(("missing", spec.topic)):
                self.get_logger().error(f"{spec.topic}: cannot record its type from the graph: {exc}")
            return
        profiles = [i.qos_profile for i in infos if i.topic_type == msgtype]
        kind = spec.qos or _matching_kind(profiles)
        try:
            new = self.engine.resolve(index, msgtype, kind, [_bag_qos(p) for p in profiles])
        except RecorderError as exc:
            if self._throttle(("missing", spec.topic)):
                self.get_logger().error(f"{spec.topic}: cannot record {msgtype}: {exc}")
            return
        self._pending.remove(index)
        self._subscribe(index, cls, spec.topic, kind)
        self.specs[index] = dataclasses.replace(new, topic=spec.topic)
        nodes = ", ".join(sorted({f"{i.node_namespace.rstrip('/')}/{i.node_name}" for i in infos}))
        self.get_logger().info(f"{spec.topic}: type {msgtype} from the graph (publishers: {nodes}), QoS {kind}")

    def _check_type(self, index: int, spec: TopicSpec) -> None:
        offered = tuple(sorted({i.topic_type for i in self._publishers_of(spec.topic)} - {spec.msgtype}))
        if offered == self._mismatch.get(index, ()):
            return
        self._mismatch[index] = offered
        if offered:
            self.get_logger().warning(
                f"{spec.topic}: configured type {spec.msgtype}, but the graph offers {', '.join(offered)}: DDS does "
                f"not match different types, nothing of those publishers is recorded (leave TYPE out of the "
                f"'topics' entry to take it from the graph)"
            )

    def _offered_qos(self) -> dict[int, list[Any]]:
        """Topic index -> the QoS its publishers offer now (the subscription's own when none is known)."""
        out = {}
        for index in self._readers:
            spec = self.specs[index]
            profiles = [i.qos_profile for i in self._publishers_of(spec.topic) if i.topic_type == spec.msgtype]
            out[index] = [_bag_qos(p) for p in profiles or [self._qos_profiles[index]]]
        return out

    def _on_active_source(self, msg: String) -> None:
        if msg.data != self.active_source and self.engine.episode is not None:
            if msg.data == TELEOP:
                self.get_logger().info("a human drives: recording")
            elif self.active_source == TELEOP:
                self.get_logger().info(f"'{msg.data}' drives: recording paused until a human drives again")
        self.active_source = msg.data

    # -- services -----------------------------------------------------------------------------------------------------

    def start_episode(self) -> tuple[bool, str]:
        """Start an episode with the current metadata parameters; (success, message)."""
        custom = {
            KEY_PREFIX + "operator": read_param(self, RecorderConfig, "operator"),
            KEY_PREFIX + "vehicle": read_param(self, RecorderConfig, "vehicle"),
            KEY_PREFIX + "notes": read_param(self, RecorderConfig, "notes"),
            KEY_PREFIX + "software_version": lnn_control.__version__,
            KEY_PREFIX + "config": json.dumps(asdict(self.config), sort_keys=True),
            KEY_PREFIX + "node": self.get_fully_qualified_name(),
            KEY_PREFIX + "hostname": socket.gethostname(),
            KEY_PREFIX + "start_time": datetime.now().astimezone().isoformat(timespec="seconds"),
            KEY_PREFIX + "use_sim_time": str(bool(self.get_parameter("use_sim_time").value)).lower(),
        }
        return self.engine.start(custom, offered_qos=self._offered_qos())

    def _on_start(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = self.start_episode()
        return response

    def _on_stop(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = self.engine.stop(timeout=self.config.stop_timeout)
        return response

    def _on_discard(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = self.engine.discard(timeout=self.config.stop_timeout)
        return response

    # -- timers -------------------------------------------------------------------------------------------------------

    def _publish_status(self) -> None:
        status = self.engine.status()
        status["active_source"] = self.active_source
        status["message_info"] = self.message_info
        self._reported_gate = self._gate_view()
        matched = self._reported_gate[0]
        if matched is not None:
            status["matched_publishers"] = matched
        self.status_publisher.publish(String(data=json.dumps(status, sort_keys=True)))
        for topic, stats in status["topics"].items():
            dropped = stats["queue_full"] + stats["write_error"]
            if dropped and self._throttle(("drops", topic)):
                self.get_logger().warning(
                    f"{topic}: {dropped} messages dropped in {status['episode']} "
                    f"({stats['queue_full']} queue full, {stats['write_error']} write errors)"
                )

    # -- diagnostics --------------------------------------------------------------------------------------------------

    def _episode_report(self) -> Report:
        status = self.engine.status()
        values = {"state": status["state"], "episode": status["episode"], "queued": status["queued"],
                  "active source": self.active_source, "message info": self.message_info}
        if status["last_error"]:
            return Report.error(f"{status['state']}; last error: {status['last_error']}", **values)
        if status["state"] == "recording":
            return Report.ok(f"recording {status['episode']}", **values)
        return Report.ok("idle (call ~/start)", **values)

    def _topics_report(self) -> Report:
        status = self.engine.status()
        reports = []
        for topic, stats in status["topics"].items():
            dropped = stats["queue_full"] + stats["write_error"]
            lost = status["lost_total"].get(topic, 0)
            values = {f"{topic} received": stats["received"], f"{topic} dropped": dropped, f"{topic} lost": lost}
            if dropped:
                reports.append(Report.warn(f"{topic}: {dropped} dropped", **values))
            elif lost:
                reports.append(Report.warn(f"{topic}: {lost} lost before the recorder", **values))
            else:
                reports.append(Report.ok(f"{topic}: {stats['received']} received", **values))
        missing = [topic for topic, kind in status["types"].items() if not kind]
        if missing:
            reports.append(Report.warn(f"waiting for a publisher of {', '.join(missing)} (type from the graph)"))
        return merge(reports) if reports else Report.ok("no episode yet")

    def _check_rates(self) -> None:
        now = time.monotonic()
        start, counts = self._window_start
        arrivals = list(self._arrivals)
        self._window_start = (now, arrivals)
        if self.engine.episode is None or now - start <= 0:
            return
        for spec, before, after in zip(self.specs, counts, arrivals, strict=True):
            if spec.expected_rate <= 0:
                continue
            rate = (after - before) / (now - start)
            if rate < spec.expected_rate * (1.0 - self.config.rate_tolerance) and self._throttle(("rate", spec.topic)):
                self.get_logger().warning(
                    f"{spec.topic}: {rate:.1f} Hz over the last {now - start:.1f} s, expected {spec.expected_rate:g} Hz"
                )

    # -- shutdown -----------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Take what waits in the readers, close the open episode's bag and stop the writer thread (a stop signal,
        ``destroy_node``). Needs the context alive: lnn_control.ros.spin calls it before rclpy shuts down."""
        if self._closed:
            return
        self._closed = True
        self.engine.shutdown(timeout=self.config.stop_timeout)  # drains, then logs what it closed or why not

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()


def recover_main(paths: list[str]) -> int:
    """``recorder_node --recover BAG [BAG ...]``: an alias of ``lnn-control recover BAG [BAG ...]`` (repairs bags
    whose writer was killed, in place)."""
    from lnn_control.data.recovery import recover_bags

    if not paths:
        print("usage: recorder_node --recover BAG [BAG ...] (an alias of 'lnn-control recover')", file=sys.stderr)
        return 2
    return recover_bags(paths)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``recorder_node`` (``--recover BAG ...``, alias of ``lnn-control recover``, repairs bags)."""
    argv = list(sys.argv if args is None else args)
    if "--recover" in argv:
        i = argv.index("--recover")
        return recover_main([a for a in argv[i + 1 :] if not a.startswith("--")])
    return run_node(RecorderNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
