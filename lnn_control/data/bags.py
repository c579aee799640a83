"""Read and write bags with ``rosbags``: rosbag2 (MCAP or sqlite3) and ROS 1, no ROS installation needed.

Reading goes through ``rosbags.highlevel.AnyReader``: message types come from the definitions stored in the bag (so
custom types such as ``ackermann_msgs/msg/AckermannDriveStamped`` work without their package installed), and from a
default type store (ROS 2 Jazzy unless told otherwise) only for bags that carry no definitions (older rosbag2
sqlite3 bags). Every failure is a :class:`BagError` that names the bag, the topic where there is one, and the problem.

Writing is :mod:`lnn_control.data.bag_writer`, repairing :mod:`lnn_control.data.recovery`; nothing here imports
rclpy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

DEFAULT_STORE = Stores.ROS2_JAZZY
"""Type store for bags without embedded message definitions."""

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


class BagError(Exception):
    """A bag that cannot be used: ``str(err)`` names the bag, the topic (if any) and what is wrong."""

    def __init__(self, bag: str | Path, problem: str, topic: str | None = None) -> None:
        self.bag = str(bag)
        self.topic = topic
        self.problem = problem
        where = f"{self.bag}: topic {topic}" if topic else self.bag
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Record:
    """One message read from a bag."""

    topic: str
    msgtype: str
    log_ns: int
    """Time the recorder logged the message (ns since the epoch)."""
    header_ns: int | None
    """``header.stamp`` in ns, or None when the message has no header (it may be 0: an unset stamp)."""
    msg: Any
    """The deserialised message (a rosbags dataclass; image ``data`` is a numpy uint8 array)."""


@dataclass(frozen=True)
class TopicSummary:
    """A topic as the bag's index describes it."""

    name: str
    msgtype: str
    count: int
    offered_qos: tuple = ()
    """The QoS profiles its publishers offered when it was recorded (rosbags ``Qos``; empty when not recorded)."""


def normalize_msgtype(msgtype: str) -> str:
    """``"geometry_msgs/Twist"`` and ``"geometry_msgs/msg/Twist"`` -> ``"geometry_msgs/msg/Twist"``."""
    parts = msgtype.strip().split("/")
    if len(parts) == 2:
        return f"{parts[0]}/msg/{parts[1]}"
    return msgtype.strip()


def header_stamp_ns(msg: object) -> int | None:
    """``msg.header.stamp`` in integer ns, or None when the message has no header."""
    header = getattr(msg, "header", None)
    stamp = getattr(header, "stamp", None)
    if stamp is None:
        return None
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def as_typestore(store: Typestore | Stores | str | None) -> Typestore:
    """A type store from a store, a ``Stores`` member or its name (``"ros2_jazzy"``); None: :data:`DEFAULT_STORE`."""
    if store is None:
        return get_typestore(DEFAULT_STORE)
    if isinstance(store, Typestore):
        return store
    if isinstance(store, str):
        try:
            store = Stores(store.lower())
        except ValueError as exc:
            names = ", ".join(s.value for s in Stores)
            raise ValueError(f"unknown type store {store!r} (choose from {names})") from exc
    return get_typestore(store)


def bag_kind(path: Path) -> str:
    """``"rosbag1"``, ``"mcap"`` or ``"sqlite3"`` from the path (a rosbag2 folder is read from its metadata)."""
    if path.is_dir():
        meta = path / "metadata.yaml"
        if meta.is_file():
            text = meta.read_text(encoding="utf-8", errors="replace")
            for ident in ("mcap", "sqlite3"):
                if f"storage_identifier: {ident}" in text:
                    return ident
        files = [p.suffix for p in path.iterdir()]
        return "mcap" if ".mcap" in files else "sqlite3" if ".db3" in files else "unknown"
    return {".bag": "rosbag1", ".mcap": "mcap", ".db3": "sqlite3"}.get(path.suffix, "unknown")


def bag_files(path: str | Path) -> list[Path]:
    """The files a bag consists of, sorted: the file itself, or every regular file in a rosbag2 folder."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    return [path]


def is_bag(path: Path) -> bool:
    """True for a ROS 1 ``.bag``, a ``.mcap``/``.db3`` file, or a folder with a rosbag2 ``metadata.yaml``."""
    if path.is_dir():
        return (path / "metadata.yaml").is_file()
    return path.is_file() and path.suffix in (".bag", ".mcap", ".db3")


def discover_bags(paths: Iterable[str | Path]) -> list[Path]:
    """Expand the given paths into bags: a bag is kept as is, a folder of bags gives every bag inside (sorted).

    A path that does not exist, or a folder with no bag in it, is returned as given, so that opening it reports
    the problem with its name.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if is_bag(path) or not path.is_dir():
            found.append(path)
            continue
        inner = sorted(p for p in path.rglob("*") if is_bag(p) and not p.name.startswith("."))
        # a .mcap inside a rosbag2 folder belongs to that folder, not a bag of its own
        inner = [p for p in inner if not (p.is_file() and is_bag(p.parent) and p.parent != path)]
        found.extend(inner or [path])
    return found


class Bag:
    """An open bag (use as a context manager). ``Bag(path)`` opens it at once; errors are :class:`BagError`."""

    def __init__(self, path: str | Path, *, typestore: Typestore | Stores | str | None = None) -> None:
        self.path = Path(path)
        self.kind = bag_kind(self.path) if self.path.exists() else "missing"
        default = as_typestore(typestore)
        if not self.path.exists():
            raise BagError(self.path, "does not exist")
        if self.path.is_dir() and not (self.path / "metadata.yaml").is_file():
            raise BagError(self.path, "is a folder without metadata.yaml: not a rosbag2 bag")
        if self.path.is_file() and self.path.stat().st_size == 0:
            raise BagError(self.path, "file is empty (0 bytes)")
        try:
            self._reader = AnyReader([self.path], default_typestore=default)
            self._reader.open()
        except Exception as exc:  # noqa: BLE001 - rosbags raises many kinds; all mean "cannot read this file"
            hint = "truncated or corrupt file?"
            if self.kind == "mcap":
                hint += " 'lnn-control recover BAG' repairs a recording that was cut short"
            raise BagError(self.path, f"cannot open ({self.kind}): {exc} ({hint})") from exc
        self._add_missing_types(default)
        self.topics: dict[str, TopicSummary] = {
            name: TopicSummary(name, info.msgtype or "?", int(info.msgcount), _offered_qos(info.connections))
            for name, info in self._reader.topics.items()
        }
        self.message_count = int(self._reader.message_count)
        if self.message_count == 0:
            self.close()
            raise BagError(self.path, "empty bag: it holds no messages" + self.describe_topics(", topics: "))
        self.start_ns = int(self._reader.start_time)
        self.end_ns = int(self._reader.end_time)

    # -- lifecycle ---------------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the underlying reader (idempotent)."""
        reader = getattr(self, "_reader", None)
        if reader is not None and reader.stack is not None:
            reader.close()

    def __enter__(self) -> Bag:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- metadata ----------------------------------------------------------------------------------------------------
    @property
    def duration_ns(self) -> int:
        """Time from the first to the last message's log time."""
        return max(0, self.end_ns - self.start_ns)

    @property
    def typestore(self) -> Typestore:
        """The type store the bag's messages are deserialised with."""
        return self._reader.typestore

    def _add_missing_types(self, default: Typestore) -> None:
        """Bags where only some connections carry definitions: take the rest from the default store."""
        known = self._reader.typestore.fielddefs
        if all(c.msgtype in known for c in self._reader.connections):
            return
        extra = {k: v for k, v in default.fielddefs.items() if k not in known}
        if extra:
            self._reader.typestore.register(extra)

    def describe_topics(self, prefix: str = "") -> str:
        """``prefix`` + ``"/a (type, count), /b (type, count)"`` for error messages."""
        if not self.topics:
            return f"{prefix}none"
        return prefix + ", ".join(f"{t.name} ({t.msgtype}, {t.count})" for t in self.topics.values())

    def resolve_topic(self, topic: str) -> str:
        """The bag's name for ``topic`` (a leading ``/`` is optional). BagError listing the topics if absent."""
        if topic in self.topics:
            return topic
        alt = topic[1:] if topic.startswith("/") else "/" + topic
        if alt in self.topics:
            return alt
        raise BagError(self.path, "no such topic; the bag has " + self.describe_topics(), topic=topic)

    def topics_of_type(self, *msgtypes: str) -> list[str]:
        """Topic names whose type is one of ``msgtypes`` (either spelling), in name order."""
        wanted = {normalize_msgtype(t) for t in msgtypes}
        return sorted(name for name, t in self.topics.items() if normalize_msgtype(t.msgtype) in wanted)

    def msgtype(self, topic: str) -> str:
        """The message type of ``topic`` (resolved as in :meth:`resolve_topic`)."""
        return self.topics[self.resolve_topic(topic)].msgtype

    # -- messages ----------------------------------------------------------------------------------------------------
    def raw(self, topics: Sequence[str] = ()) -> Iterator[tuple[str, str, int, bytes]]:
        """``(topic, msgtype, log_ns, serialized bytes)`` in log-time order; all topics when none are given."""
        names = {self.resolve_topic(t) for t in topics}
        conns = [c for c in self._reader.connections if not names or c.topic in names]
        try:
            for conn, log_ns, data in self._reader.messages(connections=conns):
                yield conn.topic, conn.msgtype, int(log_ns), data
        except BagError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise BagError(self.path, f"cannot read messages: {exc} (truncated or corrupt file?)") from exc

    def records(self, topics: Sequence[str] = ()) -> Iterator[Record]:
        """Deserialised messages of ``topics`` (all when empty) in log-time order, as :class:`Record`."""
        for topic, msgtype, log_ns, data in self.raw(topics):
            try:
                msg = self._reader.deserialize(data, msgtype)
            except Exception as exc:  # noqa: BLE001
                raise BagError(
                    self.path, f"cannot deserialise {msgtype} at log time {log_ns}: {exc}", topic=topic
                ) from exc
            try:
                header_ns = header_stamp_ns(msg)
            except (AttributeError, TypeError, ValueError):
                header_ns = None
            yield Record(topic, msgtype, log_ns, header_ns, msg)


def _offered_qos(connections: Iterable[Any]) -> tuple:
    """The offered QoS profiles recorded with a topic's connections (rosbag2 metadata or storage), in order."""
    found: list = []
    for conn in connections:
        for qos in getattr(conn.ext, "offered_qos_profiles", None) or ():
            if qos not in found:
                found.append(qos)
    return tuple(found)


def read_records(
    path: str | Path, topics: Sequence[str] = (), *, typestore: Typestore | Stores | str | None = None
) -> Iterator[Record]:
    """Open ``path``, yield the records of ``topics`` and close it."""
    with Bag(path, typestore=typestore) as bag:
        yield from bag.records(topics)
