"""Read and write bags with ``rosbags``: rosbag2 (MCAP or sqlite3) and ROS 1, no ROS installation needed.

Reading goes through ``rosbags.highlevel.AnyReader``: message types come from the definitions stored in the bag (so
custom types such as ``ackermann_msgs/msg/AckermannDriveStamped`` work without their package installed), and from a
default type store (ROS 2 Jazzy unless told otherwise) only for bags that carry no definitions (older rosbag2
sqlite3 bags). Every failure is a :class:`BagError` that names the bag, the topic where there is one, and the problem.

Writing (:class:`BagWriter`) takes CDR bytes, or messages that a rosbags type store serialises; nothing here imports
rclpy.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
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


def _as_typestore(store: Typestore | Stores | str | None) -> Typestore:
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
        default = _as_typestore(typestore)
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
                hint += " recover_mcap() in lnn_control.data.bags salvages a recording that was cut short"
            raise BagError(self.path, f"cannot open ({self.kind}): {exc} ({hint})") from exc
        self._add_missing_types(default)
        self.topics: dict[str, TopicSummary] = {
            name: TopicSummary(name, info.msgtype or "?", int(info.msgcount))
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


def open_bag(path: str | Path, *, typestore: Typestore | Stores | str | None = None) -> Bag:
    """Open a bag for reading (ROS 1 ``.bag``, rosbag2 folder, or a bare ``.mcap``/``.db3``). See :class:`Bag`."""
    return Bag(path, typestore=typestore)


def read_records(
    path: str | Path, topics: Sequence[str] = (), *, typestore: Typestore | Stores | str | None = None
) -> Iterator[Record]:
    """Open ``path``, yield the records of ``topics`` and close it."""
    with Bag(path, typestore=typestore) as bag:
        yield from bag.records(topics)


# --------------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------------

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


class BagWriter:
    """Write a rosbag2 bag (MCAP by default, or sqlite3) from CDR bytes or from rosbags messages.

    ``path`` is the bag folder to create; it must not exist. The message definitions of every topic's type are
    stored in the bag (from ``typestore``, or the one given to :meth:`add_topic`), so readers need no type packages.
    If the ``with`` block raises, the half-written folder is removed unless ``keep_on_error``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        storage: str = "mcap",
        typestore: Typestore | Stores | str | None = None,
        custom_data: Mapping[str, str] | None = None,
        keep_on_error: bool = False,
    ) -> None:
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(self.path, "exists already; the writer never overwrites a bag")
        self.storage = storage
        self.typestore = _as_typestore(typestore)
        self.keep_on_error = keep_on_error
        self._writer = Writer(self.path, version=Writer.VERSION_LATEST, storage_plugin=STORAGES[storage])
        for key, value in (custom_data or {}).items():
            self._writer.set_custom_data(str(key), str(value))
        self._connections: dict[str, tuple[Any, str, Typestore]] = {}
        self.counts: dict[str, int] = {}
        self._open = False

    def open(self) -> BagWriter:
        """Create the bag folder and its storage file."""
        try:
            self._writer.open()
        except Exception as exc:  # noqa: BLE001
            raise BagError(self.path, f"cannot create bag: {exc}") from exc
        self._open = True
        return self

    def add_topic(self, topic: str, msgtype: str, *, typestore: Typestore | None = None) -> None:
        """Declare ``topic`` with ``msgtype``; its definition comes from ``typestore`` (default: the writer's)."""
        store = typestore or self.typestore
        msgtype = normalize_msgtype(msgtype)
        if msgtype not in store.fielddefs:
            raise BagError(self.path, f"type {msgtype} is not in the type store; register it first", topic=topic)
        conn = self._writer.add_connection(topic, msgtype, typestore=store)
        self._connections[topic] = (conn, msgtype, store)
        self.counts[topic] = 0

    def write(self, topic: str, log_ns: int, data: bytes | memoryview) -> None:
        """Write serialized (CDR) bytes as they are, logged at ``log_ns``."""
        try:
            conn = self._connections[topic][0]
        except KeyError:
            raise BagError(self.path, "not declared; call add_topic first", topic=topic) from None
        self._writer.write(conn, int(log_ns), data)
        self.counts[topic] += 1

    def write_msg(self, topic: str, log_ns: int, msg: object) -> None:
        """Serialise a rosbags message of the topic's type to CDR and write it."""
        if topic not in self._connections:
            raise BagError(self.path, "not declared; call add_topic first", topic=topic)
        _, msgtype, store = self._connections[topic]
        self.write(topic, log_ns, store.serialize_cdr(msg, msgtype))

    def close(self) -> None:
        """Finish the storage file and write metadata.yaml."""
        if self._open:
            self._open = False
            self._writer.close()

    def abort(self) -> None:
        """Stop writing and remove the half-written bag."""
        if self._open:
            self._open = False
            with contextlib.suppress(Exception):  # the folder is removed next anyway
                self._writer.abort()
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> BagWriter:
        return self.open()

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None or self.keep_on_error:
            self.close()
        else:
            self.abort()


# --------------------------------------------------------------------------------------------------------------------
# Salvage of a truncated MCAP file (a recorder killed mid-write)
# --------------------------------------------------------------------------------------------------------------------

MCAP_MAGIC = b"\x89MCAP0\r\n"


def _mcap_records(buf: bytes | memoryview, start: int = 0) -> Iterator[tuple[int, memoryview]]:
    """``(opcode, content)`` of the complete records in ``buf`` from ``start``; stops at the first incomplete one."""
    view = memoryview(buf)
    pos = start
    while pos + 9 <= len(view):
        opcode = view[pos]
        length = int.from_bytes(view[pos + 1 : pos + 9], "little")
        end = pos + 9 + length
        if end > len(view):
            return
        yield opcode, view[pos + 9 : end]
        pos = end


def _mcap_string(rec: memoryview, pos: int) -> tuple[str, int]:
    n = int.from_bytes(rec[pos : pos + 4], "little")
    return bytes(rec[pos + 4 : pos + 4 + n]).decode(), pos + 4 + n


def _register_schema(store: Typestore, name: str, encoding: str, text: str) -> None:
    """Register an MCAP schema (ros2msg, or ros2idl as rosbag2 writes it) in ``store``."""
    from rosbags.typesys import get_types_from_idl, get_types_from_msg

    if encoding == "ros2msg":
        store.register(get_types_from_msg(text, name))
        return
    sep = "=" * 80 + "\n"
    for part in text.split(sep)[1:] if text.startswith(sep) else [text]:
        store.register(get_types_from_idl(part.split("\n", 1)[1] if part.startswith("IDL:") else part))


def recover_mcap(src: str | Path, dst: str | Path, *, storage: str = "mcap") -> dict[str, int]:
    """Salvage a truncated or damaged MCAP file into a new bag ``dst``; returns the messages kept per topic.

    A recorder killed mid-write leaves an MCAP without its summary and end magic, which readers refuse. This walks the
    file from the start and keeps every message of every complete record and chunk up to the damage, with the
    message definitions the file carries (so custom types survive). ``src`` is the ``.mcap`` file or its bag folder.
    """
    from rosbags.rosbag2.storage_mcap import DECOMPRESSORS

    src = Path(src)
    if not src.exists():
        raise BagError(src, "does not exist")
    if src.is_dir():
        files = sorted(src.glob("*.mcap"))
        if len(files) != 1:
            raise BagError(src, f"expected one .mcap file to recover, found {len(files)}")
        src = files[0]
    data = src.read_bytes()
    if not data.startswith(MCAP_MAGIC):
        raise BagError(src, "not an MCAP file (bad magic); nothing to recover")
    schemas: dict[int, tuple[str, str, str]] = {}
    channels: dict[int, tuple[str, int]] = {}
    store = get_typestore(Stores.EMPTY)
    declared: set[int] = set()
    counts: dict[str, int] = {}

    def handle(writer: BagWriter, opcode: int, rec: memoryview) -> None:
        if opcode == 0x03:  # schema
            sid = int.from_bytes(rec[0:2], "little")
            name, pos = _mcap_string(rec, 2)
            encoding, pos = _mcap_string(rec, pos)
            n = int.from_bytes(rec[pos : pos + 4], "little")
            schemas[sid] = (name, encoding, bytes(rec[pos + 4 : pos + 4 + n]).decode())
        elif opcode == 0x04:  # channel
            cid = int.from_bytes(rec[0:2], "little")
            sid = int.from_bytes(rec[2:4], "little")
            topic, _ = _mcap_string(rec, 4)
            channels[cid] = (topic, sid)
        elif opcode == 0x05:  # message
            cid = int.from_bytes(rec[0:2], "little")
            log_ns = int.from_bytes(rec[6:14], "little")
            if cid not in channels or channels[cid][1] not in schemas:
                return
            topic, sid = channels[cid]
            name, encoding, text = schemas[sid]
            if cid not in declared:
                if name not in store.fielddefs:
                    _register_schema(store, name, encoding, text)
                writer.add_topic(topic, name, typestore=store)
                declared.add(cid)
            writer.write(topic, log_ns, bytes(rec[22:]))
            counts[topic] = counts.get(topic, 0) + 1

    with BagWriter(dst, storage=storage, typestore=store) as writer:
        for opcode, rec in _mcap_records(data, len(MCAP_MAGIC)):
            if opcode in (0x0F, 0x02):  # data end, footer: the rest is summary
                break
            if opcode == 0x06:  # chunk
                compression, pos = _mcap_string(rec, 28)
                size = int.from_bytes(rec[pos : pos + 8], "little")
                body = bytes(rec[pos + 8 : pos + 8 + size])
                try:
                    inner = DECOMPRESSORS[compression](body, int.from_bytes(rec[16:24], "little"))
                except Exception:  # noqa: BLE001 - a damaged chunk ends the salvage
                    break
                for inner_op, inner_rec in _mcap_records(inner):
                    handle(writer, inner_op, inner_rec)
            else:
                handle(writer, opcode, rec)
        if not counts:
            raise BagError(src, "no complete message to recover")
    return counts
