"""The one bag writer: a rosbag2 bag (MCAP or sqlite3) from CDR bytes or rosbags messages, durable on request.

Every writer in lnn_control goes through :class:`BagWriter`: the recorder's episodes, ``lnn-control import-tub``,
``lnn-control recover --into`` and the tests' bags. It drives rosbags' storage writers (one per file of the bag)
and writes ``metadata.yaml`` itself, so it can write what rosbags' own writer does not: metadata version 8 (what
Humble's ``ros2 bag`` reads) or 9 (Jazzy), each topic's offered QoS in that version's form, zstd-compressed MCAP
chunks, and a bag split into several files by size or duration (rosbag2's ``<bag>_0.mcap``, ``<bag>_1.mcap`` ...).
The bags carry every type's definition, so readers need no ROS packages. Nothing here imports rclpy.

Metadata versions (rosbag2_storage's yaml decoder): version 8 already has ``custom_data`` (6),
``type_description_hash`` (7) and ``ros_distro`` (8); version 9 changed only how ``offered_qos_profiles`` is
written: version 8 holds a YAML *string* with the QoS policies as numbers (Humble's reader parses it with
``as<std::string>()``, and fails with "bad conversion" on version 9's list, ros2/rosbag2#2013), version 9 a YAML
list with the policies as words. The same string goes into each MCAP channel's metadata and the sqlite3 ``topics``
table, where rosbag2's storage plugins read it back.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

from rosbags.interfaces import Connection, ConnectionExtRosbag2, MessageDefinition, MessageDefinitionFormat, Qos
from rosbags.rosbag2.enums import CompressionMode
from rosbags.rosbag2.metadata import dump_qos_v8, dump_qos_v9, parse_qos
from rosbags.rosbag2.storage_mcap import McapWriter
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Writer
from rosbags.typesys import Stores
from rosbags.typesys.store import Typestore

from lnn_control.data.bags import BagError, as_typestore, normalize_msgtype

STORAGES = {"mcap": McapWriter, "sqlite3": Sqlite3Writer}
"""Storage names a writer accepts, as ``ros2 bag`` spells them."""
SUFFIXES = {"mcap": ".mcap", "sqlite3": ".db3"}

BAG_VERSIONS = (8, 9)
"""rosbag2 metadata versions a writer writes: 8 for Humble's tools, 9 for Jazzy's."""
COMPRESSIONS = ("none", "zstd")
"""MCAP chunk compression."""

DEFAULT_CHUNK_SIZE = 1 << 20
"""Bytes of messages an MCAP chunk holds before it is written (rosbags' own threshold)."""


def default_bag_version(distro: str | None = None) -> int:
    """The metadata version the tools of ``distro`` (default: ``$ROS_DISTRO``) read: 8 on Humble, else 9."""
    name = os.environ.get("ROS_DISTRO", "") if distro is None else distro
    return 8 if name.strip().lower() == "humble" else 9


def qos_text(profiles: Sequence[Qos], version: int) -> str:
    """Offered QoS profiles as rosbag2 stores them in a storage file (MCAP channel metadata, sqlite3 ``topics``)."""
    if version >= 9:
        return _yaml_text(dump_qos_v9(list(profiles))) if profiles else ""
    return dump_qos_v8(list(profiles))


def qos_metadata(profiles: Sequence[Qos], version: int) -> Any:
    """Offered QoS profiles as ``metadata.yaml`` of ``version`` holds them: a string (8) or a list (9)."""
    return dump_qos_v9(list(profiles)) if version >= 9 else dump_qos_v8(list(profiles))


def parse_offered_qos(value: Any) -> list[Qos]:
    """Offered QoS profiles from either form (a version 8 string, a version 9 list, or nothing)."""
    return parse_qos(value) if value else []


def _yaml_text(data: Any) -> str:
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    stream = StringIO()
    yaml.dump(data, stream)
    return stream.getvalue()


@dataclass
class FileStats:
    """One storage file of a bag: its name in the bag folder and what it holds."""

    name: str
    count: int = 0
    start_ns: int = 2**63 - 1
    end_ns: int = 0

    def add(self, log_ns: int) -> None:
        self.count += 1
        self.start_ns = min(self.start_ns, log_ns)
        self.end_ns = max(self.end_ns, log_ns)


@dataclass
class TopicEntry:
    """One topic as ``metadata.yaml`` lists it."""

    name: str
    msgtype: str
    digest: str
    count: int
    offered_qos: Sequence[Qos] = ()


def metadata_document(
    *,
    version: int,
    storage: str,
    files: Sequence[FileStats],
    topics: Sequence[TopicEntry],
    custom_data: Mapping[str, str] | None,
    ros_distro: str = "",
) -> dict[str, Any]:
    """The ``rosbag2_bagfile_information`` mapping of a bag, in the shape of metadata ``version`` (8 or 9)."""
    if version not in BAG_VERSIONS:
        raise ValueError(f"bag version must be one of {BAG_VERSIONS}, got {version!r}")
    total = sum(f.count for f in files)
    start = min((f.start_ns for f in files if f.count), default=0)
    end = max((f.end_ns for f in files if f.count), default=0)

    def span(f: FileStats) -> dict[str, Any]:
        return {
            "path": f.name,
            "starting_time": {"nanoseconds_since_epoch": f.start_ns if f.count else 0},
            "duration": {"nanoseconds": max(0, f.end_ns - f.start_ns) if f.count else 0},
            "message_count": f.count,
        }

    return {
        "version": version,
        "storage_identifier": storage,
        "relative_file_paths": [f.name for f in files],
        "duration": {"nanoseconds": max(0, end - start) if total else 0},
        "starting_time": {"nanoseconds_since_epoch": start if total else 0},
        "message_count": total,
        "topics_with_message_count": [
            {
                "topic_metadata": {
                    "name": t.name,
                    "type": t.msgtype,
                    "serialization_format": "cdr",
                    "offered_qos_profiles": qos_metadata(t.offered_qos, version),
                    "type_description_hash": t.digest,
                },
                "message_count": t.count,
            }
            for t in topics
        ],
        "compression_format": "",  # MCAP chunk compression is the storage's own: rosbag2 records none here
        "compression_mode": "",
        "files": [span(f) for f in files],
        "custom_data": dict(custom_data or {}) or None,
        "ros_distro": ros_distro or ("humble" if version == 8 else "jazzy"),
    }


def write_metadata(folder: Path, info: Mapping[str, Any], *, fsync: bool = False) -> None:
    """Write ``folder/metadata.yaml`` (atomically: a temporary file renamed) from a :func:`metadata_document`."""
    tmp = folder / "metadata.yaml.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(_yaml_text({"rosbag2_bagfile_information": dict(info)}))
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())
    tmp.replace(folder / "metadata.yaml")


_SPLIT_INDEX = re.compile(r"_(\d+)$")


def storage_files(folder: Path) -> list[Path]:
    """The storage files (``.mcap``, ``.db3``) of a bag folder in the order they were written (split index)."""

    def key(p: Path) -> tuple[int, str]:
        match = _SPLIT_INDEX.search(p.stem)
        return (int(match[1]) if match else -1, p.name)

    return sorted((p for p in folder.iterdir() if p.suffix in (".mcap", ".db3") and p.is_file()), key=key)


_UNITS = {"chunk_size": "bytes", "max_bag_size": "bytes (0: no limit)", "max_bag_duration_ns": "ns (0: no limit)"}


@dataclass(frozen=True)
class BagFormat:
    """How a bag is written: every format option of :class:`BagWriter` in one value, checked when made.

    ``storage`` is ``"mcap"`` or ``"sqlite3"``; ``version`` the metadata version (8 or 9, see the module docstring);
    ``compression`` ``"zstd"`` compresses each MCAP chunk (mcap only); an MCAP chunk is written once it holds
    ``chunk_size`` bytes; ``max_bag_size`` (bytes) and ``max_bag_duration_ns`` (log time) > 0 split the bag into
    files ``<bag>_<n>`` (0: no limit); ``fsync`` syncs the files to the device at each flush and at the close.
    Change one option of a format with :func:`dataclasses.replace`.
    """

    storage: str = "mcap"
    version: int = 9
    compression: str = "none"
    chunk_size: int = DEFAULT_CHUNK_SIZE
    max_bag_size: int = 0
    max_bag_duration_ns: int = 0
    fsync: bool = False

    def __post_init__(self) -> None:
        if self.storage not in STORAGES:
            raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {self.storage!r}")
        if self.version not in BAG_VERSIONS:
            raise ValueError(f"bag version must be 8 (Humble) or 9 (Jazzy), got {self.version!r}")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {self.compression!r}")
        if self.compression != "none" and self.storage != "mcap":
            raise ValueError(
                f"compression {self.compression} compresses MCAP chunks: it needs storage mcap, not {self.storage}"
            )
        for name, least in (("chunk_size", 1), ("max_bag_size", 0), ("max_bag_duration_ns", 0)):
            value = getattr(self, name)
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a number of {_UNITS[name]}, got {value!r}") from None
            if number < least:
                raise ValueError(f"{name} must be at least {least} {_UNITS[name]}, got {value!r}")
            object.__setattr__(self, name, number)  # frozen: normalised once, here
        object.__setattr__(self, "version", int(self.version))
        object.__setattr__(self, "fsync", bool(self.fsync))

    @property
    def splits(self) -> bool:
        """True when a bag may have several files (a size or duration limit is set)."""
        return bool(self.max_bag_size or self.max_bag_duration_ns)


class BagWriter:
    """Write a rosbag2 bag (MCAP by default, or sqlite3) from CDR bytes or from rosbags messages.

    ``path`` is the bag folder to create; it must not exist. The message definitions of every topic's type are
    stored in the bag (from ``typestore``, or the one given to :meth:`add_topic`), so readers need no type packages.
    If the ``with`` block raises, the half-written folder is removed unless ``keep_on_error``.

    ``bag_format`` (:class:`BagFormat`) says how: storage, metadata version, chunk size and compression, and the
    limits that split the bag: a new file ``<bag>_<n>`` begins before the message that would take the current one
    past either limit (every file then complete in itself: definitions, topics, summary), and ``metadata.yaml``
    lists them all.

    :meth:`flush` makes everything written so far durable: MCAP closes the pending chunk and flushes the file,
    sqlite3 (written with a WAL journal) commits; with ``bag_format.fsync`` the file is also synced to the device. A
    writer flushes by itself whenever the pending MCAP chunk reaches ``bag_format.chunk_size`` bytes. Not
    thread-safe.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        bag_format: BagFormat = BagFormat(),
        typestore: Typestore | Stores | str | None = None,
        custom_data: Mapping[str, str] | None = None,
        keep_on_error: bool = False,
    ) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise BagError(self.path, "exists already; the writer never overwrites a bag")
        self.bag_format = bag_format
        self.typestore = as_typestore(typestore)
        self.keep_on_error = keep_on_error
        self.custom_data: dict[str, str] = {}
        self.set_custom_data(custom_data or {})
        self._storage: Any = None
        self._connections: dict[str, tuple[Connection, str, Typestore]] = {}
        self.files: list[FileStats] = []
        self.counts: dict[str, int] = {}
        self.flushes = 0
        self._open = False
        self._dirty = False
        self._finished = False

    # -- lifecycle ---------------------------------------------------------------------------------------------------
    def open(self) -> BagWriter:
        """Create the bag folder and its (first) storage file."""
        assert not self._finished and not self._open, "a writer opens once"
        try:
            self.path.mkdir(mode=0o755, parents=True)
        except FileExistsError:
            raise BagError(self.path, "exists already; the writer never overwrites a bag") from None
        except OSError as exc:
            raise BagError(self.path, f"cannot create bag: {exc}") from exc
        try:
            self._start_file()
        except Exception as exc:  # noqa: BLE001 - rosbags raises WriterError, sqlite3.Error or OSError
            raise BagError(self.path, f"cannot create bag: {exc}") from exc
        self._open = True
        return self

    def _start_file(self) -> None:
        """Open the next storage file and declare every topic in it (each file stands on its own)."""
        cls = STORAGES[self.bag_format.storage]
        mode = CompressionMode.STORAGE if self.bag_format.compression == "zstd" else CompressionMode.NONE
        name = f"{self.path.name}_{len(self.files)}" if self.bag_format.splits else self.path.name
        final = self.path / (name + SUFFIXES[self.bag_format.storage])
        if name == self.path.name:  # rosbags' storages name their file after the folder they are given
            storage = cls(self.path, mode)
        else:
            staging = self.path / f".{name}"  # hidden: bag readers and recovery ignore it
            staging.mkdir()
            storage = cls(staging, mode)
            if self.bag_format.storage == "sqlite3":
                storage.conn.close()  # reopened under its final name (its journal follows the name)
            os.replace(storage.path, final)
            staging.rmdir()
            storage.path = final
            if self.bag_format.storage == "sqlite3":
                storage.conn = sqlite3.connect(str(final))
                storage.cursor = storage.conn.cursor()
        if self.bag_format.storage == "sqlite3":  # committed transactions survive a killed writer
            storage.conn.execute("PRAGMA journal_mode=WAL")
            storage.conn.execute(f"PRAGMA synchronous={'FULL' if self.bag_format.fsync else 'NORMAL'}")
        self._storage = storage
        self.files.append(FileStats(final.name))
        added: set[str] = set()
        for conn, msgtype, _store in self._connections.values():
            if msgtype not in added:
                storage.add_msgtype(conn)
                added.add(msgtype)
            storage.add_connection(conn, qos_text(conn.ext.offered_qos_profiles, self.bag_format.version))
        self._dirty = True

    def _finish_file(self) -> None:
        """Complete the current storage file (summary, the bag's metadata so far) and sync it."""
        storage, self._storage = self._storage, None
        try:
            storage.close(self.bag_format.version, _yaml_text(self._metadata()).strip())
        except BaseException:
            # Close the file handles now: a buffered writer flushing later would write after a recovery.
            with contextlib.suppress(Exception):
                storage.abort()
            raise
        if self.bag_format.storage == "sqlite3":  # leave one self-contained .db3, as rosbag2 writes it
            conn = sqlite3.connect(str(storage.path))
            try:
                conn.execute("PRAGMA journal_mode=DELETE")
            finally:
                conn.close()
        if self.bag_format.fsync:
            fsync_tree(self.path)

    @property
    def is_open(self) -> bool:
        """True between :meth:`open` and :meth:`close` or :meth:`abort`."""
        return self._open

    def set_custom_data(self, custom_data: Mapping[str, str]) -> None:
        """Add ``custom_data`` to what ``metadata.yaml`` will hold (values become strings)."""
        for key, value in custom_data.items():
            self.custom_data[str(key)] = str(value)

    def _metadata(self) -> dict[str, Any]:
        return metadata_document(
            version=self.bag_format.version,
            storage=self.bag_format.storage,
            files=self.files,
            topics=[
                TopicEntry(topic, msgtype, conn.digest, self.counts[topic], conn.ext.offered_qos_profiles)
                for topic, (conn, msgtype, _store) in self._connections.items()
            ],
            custom_data=self.custom_data,
            ros_distro=os.environ.get("ROS_DISTRO", ""),
        )

    def close(self, custom_data: Mapping[str, str] | None = None) -> None:
        """Finish the storage file and write metadata.yaml (``custom_data`` added); sync with ``bag_format.fsync``."""
        if not self._open:
            return
        self.set_custom_data(custom_data or {})
        self._open = False
        self._finished = True
        self._finish_file()
        write_metadata(self.path, self._metadata(), fsync=self.bag_format.fsync)
        if self.bag_format.fsync:
            fsync_tree(self.path)

    def abort(self, *, remove: bool = True) -> None:
        """Stop without finishing: close the files as they are, and delete the bag folder when ``remove``."""
        storage, self._storage = self._storage, None
        if self._open and storage is not None:
            with contextlib.suppress(Exception):  # what reached the disk stays; nothing more is written
                storage.abort()
        self._open = False
        self._finished = True
        if remove:
            shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> BagWriter:
        return self.open()

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None or self.keep_on_error:
            self.close()
        else:
            self.abort()

    # -- topics and messages -----------------------------------------------------------------------------------------
    def add_topic(
        self, topic: str, msgtype: str, *, typestore: Typestore | None = None, offered_qos: Sequence[Qos] = ()
    ) -> Connection:
        """Declare ``topic`` with ``msgtype`` (definition from ``typestore``, default the writer's) and the QoS
        profiles its publishers offered (stored for players to offer again); its connection."""
        store = typestore or self.typestore
        msgtype = normalize_msgtype(msgtype)
        if msgtype not in store.fielddefs:
            raise BagError(self.path, f"type {msgtype} is not in the type store; register it first", topic=topic)
        if topic in self._connections:
            raise BagError(self.path, "declared twice", topic=topic)
        assert self._storage is not None and self._open, "not open"
        msgdef, _ = store.generate_msgdef(msgtype, ros_version=2)
        fmt = MessageDefinitionFormat.IDL if msgdef.startswith("=" * 80 + "\nIDL: ") else MessageDefinitionFormat.MSG
        conn = Connection(
            id=len(self._connections) + 1,
            topic=topic,
            msgtype=msgtype,
            msgdef=MessageDefinition(fmt, msgdef),
            digest=store.hash_rihs01(msgtype),
            msgcount=0,
            ext=ConnectionExtRosbag2(serialization_format="cdr", offered_qos_profiles=list(offered_qos)),
            owner=self,
        )
        if all(msgtype != other for _c, other, _s in self._connections.values()):
            self._storage.add_msgtype(conn)
        self._storage.add_connection(conn, qos_text(offered_qos, self.bag_format.version))
        self._connections[topic] = (conn, msgtype, store)
        self.counts[topic] = 0
        self._dirty = True
        return conn

    def write(self, topic: str, log_ns: int, data: bytes | memoryview) -> None:
        """Write serialized (CDR) bytes as they are, logged at ``log_ns`` (in a new file first when a limit says)."""
        try:
            conn = self._connections[topic][0]
        except KeyError:
            raise BagError(self.path, "not declared; call add_topic first", topic=topic) from None
        assert self._storage is not None
        log_ns = int(log_ns)
        if self.bag_format.splits and self._split_due(log_ns, len(data)):
            self._finish_file()
            self._start_file()
        self._storage.write(conn, log_ns, data)
        self.files[-1].add(log_ns)
        self.counts[topic] += 1
        self._dirty = True
        if self._pending_chunk_bytes() >= self.bag_format.chunk_size:
            self.flush()

    def _split_due(self, log_ns: int, size: int) -> bool:
        current, fmt = self.files[-1], self.bag_format
        if not current.count:
            return False
        if fmt.max_bag_duration_ns and log_ns - current.start_ns >= fmt.max_bag_duration_ns:
            return True
        return bool(fmt.max_bag_size) and self._file_size() + size > fmt.max_bag_size

    def _file_size(self) -> int:
        """Bytes of the current file, with what is still pending in memory (uncompressed)."""
        storage = self._storage
        if self.bag_format.storage == "mcap":
            return storage.bio.tell() + self._pending_chunk_bytes()
        path = Path(storage.path)
        return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())

    def write_msg(self, topic: str, log_ns: int, msg: object) -> None:
        """Serialise a rosbags message of the topic's type to CDR and write it."""
        if topic not in self._connections:
            raise BagError(self.path, "not declared; call add_topic first", topic=topic)
        _, msgtype, store = self._connections[topic]
        self.write(topic, log_ns, store.serialize_cdr(msg, msgtype))

    # -- durability --------------------------------------------------------------------------------------------------
    def _pending_chunk_bytes(self) -> int:
        if self.bag_format.storage != "mcap" or self._storage is None:
            return 0
        chunk = getattr(self._storage, "chunk", None)
        return chunk.bio.tell() if chunk is not None and chunk.msgs else 0

    def flush(self) -> None:
        """Make everything written so far durable (see the class docstring); a no-op when nothing is new."""
        if not self._open or not self._dirty:
            return
        storage: Any = self._storage
        if self.bag_format.storage == "mcap":
            if self._pending_chunk_bytes():
                storage.close_chunk()
            storage.bio.flush()
            if self.bag_format.fsync:
                os.fsync(storage.bio.fileno())
        else:
            storage.conn.commit()
        self._dirty = False
        self.flushes += 1


def fsync_tree(path: Path) -> None:
    """Sync every file of a folder, and the folder itself, to the device (errors ignored)."""
    for item in [*path.iterdir(), path]:
        with contextlib.suppress(OSError):
            fd = os.open(item, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
