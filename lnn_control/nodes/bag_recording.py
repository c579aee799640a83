"""The recorder's engine, without ROS: episodes as rosbag2 bags written from a queue by one thread, and recovery.

:class:`EpisodeRecorder` takes serialized messages (the CDR bytes exactly as the subscription received them) from
any thread, queues them, and writes them into one bag per episode through ``rosbags`` (MCAP by default, sqlite3 on
request) on a writer thread of its own, so a slow or failing disk never blocks the DDS callbacks. The node
(:mod:`lnn_control.nodes.recorder`) only wires ROS to it.

Durability. Every ``flush_period`` seconds (and whenever the pending MCAP chunk reaches ``chunk_size`` bytes) the
writer makes everything written so far durable: MCAP closes the pending chunk (rosbags' writer otherwise keeps up to
1 MiB in memory) and flushes it, sqlite3 commits its transaction (WAL journal); with ``fsync`` the file is also
synced to the device. A process killed with SIGKILL therefore loses at most the last ``flush_period`` of data, and
its bag lacks only the summary and ``metadata.yaml``: :func:`recover_bag` adds them (the recorder does it by itself
for unfinished bags under its ``output_dir`` when it starts). Measured on this machine, 160x120 rgb8 frames at 30 Hz
and SIGKILL at a random moment: with ``flush_period`` 1.0 s, 3 and 15 frames were lost (0.1 and 0.5 s; the 1 MiB
chunk also fills every 0.6 s at this size), with 0.25 s, 1 and 3 frames; every recovered frame was byte-identical,
and test_recorder.py checks that everything written before the last flush survives.

Acknowledged. A message is *accepted* when :meth:`EpisodeRecorder.accept` put it into the episode's queue (it then
counts in ``received``); nothing accepted is silently lost: :meth:`EpisodeRecorder.stop` returns success only after
every accepted message is in the closed (and, with ``fsync``, synced) bag, and its message states the counts.
Messages that cannot be kept are counted per topic and reason (``queue_full``, ``write_error``) and reported.

Disk problems (an unwritable ``output_dir``, a full disk, any ``OSError``) end the episode with an error that names
the path and the cause; the bag is closed (or recovered) as far as the disk allows, the engine goes back to idle and
the next :meth:`start` may try again. Nothing here waits forever: every wait has a timeout.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sqlite3
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from io import StringIO
from pathlib import Path
from typing import Any

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
SIDECAR = "lnn_episode.json"
"""Written into every bag folder at episode start (topics, types, hashes, metadata), so a bag whose writer was
killed can be recovered with its metadata; rosbag2 tools ignore it."""
KEY_PREFIX = "lnn_control."

LogFn = Callable[[str, str], None]  # (severity: "info" | "warning" | "error", text)


class RecorderError(Exception):
    """A problem the recorder reports to its caller (service response, log); the text names path and cause."""


# ---------------------------------------------------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicSpec:
    """One recorded topic: its name as stored in the bag, its type, subscription QoS and expected rate (0: none)."""

    topic: str
    msgtype: str
    qos: str = "reliable"
    expected_rate: float = 0.0


_BUILTINS = {
    "bool",
    "byte",
    "char",
    "float32",
    "float64",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "string",
    "wstring",
}


def _share_dirs() -> list[Path]:
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    return [Path(p) / "share" for p in prefixes]


def _find_msg_file(msgtype: str) -> Path | None:
    pkg, _, name = msgtype.split("/")
    for share in _share_dirs():
        candidate = share / pkg / "msg" / f"{name}.msg"
        if candidate.is_file():
            return candidate
    return None


def _referenced(node: Any) -> list[str]:
    """Type names referenced by a rosbags field description (recursing into arrays and sequences)."""
    kind, detail = node
    if getattr(kind, "name", "") == "NAME":
        return [detail]
    if isinstance(detail, tuple) and detail and isinstance(detail[0], tuple) and len(detail[0]) == 2:
        return _referenced(detail[0])
    return []


def ensure_type(store: Typestore, msgtype: str) -> None:
    """Register ``msgtype`` (and what it uses) in ``store`` from ``.msg`` files under ``share/`` when missing.

    The folders searched are ``$AMENT_PREFIX_PATH/*/share`` (a ROS install) and ``sys.prefix/share`` (the pip
    wheels). Raises :class:`RecorderError` naming the type when no definition is found.
    """
    pending = [msgtype]
    while pending:
        name = pending.pop()
        if name in store.fielddefs or name.split("/")[-1] in _BUILTINS:
            continue
        path = _find_msg_file(name)
        if path is None:
            raise RecorderError(
                f"type {name}: not in the rosbags type store and no {name.split('/')[-1]}.msg under "
                f"{', '.join(str(d) for d in _share_dirs())}; install its interface package"
            )
        types = get_types_from_msg(path.read_text(), name)
        store.register(types)
        for _consts, fields in types.values():
            for _fname, node in fields:
                pending.extend(t for t in _referenced(node) if t not in store.fielddefs)


def type_definition(msgtype: str, store: Typestore) -> tuple[str, str]:
    """(message definition text, RIHS01 hash) of ``msgtype`` for the bag, so readers decode without the package."""
    ensure_type(store, msgtype)
    msgdef, _ = store.generate_msgdef(msgtype, ros_version=2)
    return msgdef, store.hash_rihs01(msgtype)


# ---------------------------------------------------------------------------------------------------------------------
# One bag
# ---------------------------------------------------------------------------------------------------------------------


class EpisodeWriter:
    """One bag on disk: :meth:`open`, :meth:`write` CDR bytes, :meth:`flush` durably, :meth:`close` or :meth:`abort`.

    Uses rosbags' writer; the periodic flush reaches into its storage (closes the pending MCAP chunk, commits the
    sqlite3 transaction), which rosbags 0.10 and 0.11 both allow. Not thread-safe: one thread owns it.
    """

    def __init__(
        self,
        path: Path,
        topics: Sequence[TopicSpec],
        *,
        storage: str = "mcap",
        custom_data: Mapping[str, str] | None = None,
        typestore: Typestore | None = None,
        fsync: bool = True,
        chunk_size: int = 1 << 20,
    ) -> None:
        if storage not in STORAGES:
            raise RecorderError(f"storage {storage!r} is not one of {', '.join(STORAGES)}")
        self.path = Path(path)
        self.topics = list(topics)
        self.storage_id = storage
        self.custom_data = dict(custom_data or {})
        self.store = typestore or get_typestore(Stores.ROS2_JAZZY)
        self.fsync = fsync
        self.chunk_size = int(chunk_size)
        self.counts = [0] * len(self.topics)
        self.bytes = 0
        self.flushes = 0
        self._writer: Writer | None = None
        self._connections: list[Any] = []
        self._dirty = False

    def open(self) -> None:
        """Create the bag folder, its storage file, the connections (with definitions) and the sidecar file."""
        definitions = [type_definition(t.msgtype, self.store) for t in self.topics]
        writer = Writer(self.path, version=Writer.VERSION_LATEST, storage_plugin=STORAGES[self.storage_id])
        for key, value in self.custom_data.items():
            writer.set_custom_data(key, value)
        writer.open()
        self._writer = writer
        try:
            if self.storage_id == "sqlite3":
                conn = writer.storage.conn  # type: ignore[union-attr]
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'NORMAL'}")
            for spec, (msgdef, digest) in zip(self.topics, definitions, strict=True):
                self._connections.append(writer.add_connection(spec.topic, spec.msgtype, msgdef=msgdef, rihs01=digest))
            sidecar = {
                "storage": self.storage_id,
                "topics": [
                    {**asdict(spec), "digest": digest}
                    for spec, (_, digest) in zip(self.topics, definitions, strict=True)
                ],
                "custom_data": self.custom_data,
            }
            _write_json(self.path / SIDECAR, sidecar, fsync=self.fsync)
            self._dirty = True
            self.flush()
        except BaseException:
            self.abort(remove=True)
            raise

    def write(self, index: int, log_ns: int, data: bytes | memoryview) -> None:
        """Write one message of ``self.topics[index]`` (CDR bytes, as received) logged at ``log_ns``."""
        assert self._writer is not None, "not open"
        self._writer.write(self._connections[index], int(log_ns), data)
        self.counts[index] += 1
        self.bytes += len(data)
        self._dirty = True
        if self.storage_id == "mcap":
            chunk = getattr(self._writer.storage, "chunk", None)
            if chunk is not None and chunk.bio.tell() >= self.chunk_size:
                self.flush()

    def flush(self) -> None:
        """Make everything written so far durable (see the module docstring); a no-op when nothing is new."""
        if self._writer is None or not self._dirty:
            return
        storage = self._writer.storage
        if self.storage_id == "mcap":
            chunk = getattr(storage, "chunk", None)
            if chunk is not None and chunk.bio.tell() and chunk.msgs:
                storage.close_chunk()  # type: ignore[union-attr]
            storage.bio.flush()  # type: ignore[union-attr]
            if self.fsync:
                os.fsync(storage.bio.fileno())  # type: ignore[union-attr]
        else:
            storage.conn.commit()  # type: ignore[union-attr]
        self._dirty = False
        self.flushes += 1

    def close(self, custom_data: Mapping[str, str] | None = None) -> None:
        """Finish the storage file and write ``metadata.yaml`` (with ``custom_data`` added), then sync."""
        if self._writer is None:
            return
        writer = self._writer
        for key, value in (custom_data or {}).items():
            writer.set_custom_data(key, value)
        try:
            writer.close()
        except BaseException:
            # Close the file handles now: a buffered writer flushing later would write after a recovery.
            with contextlib.suppress(Exception):
                writer.abort()
            raise
        finally:
            self._writer = None
        if self.storage_id == "sqlite3":  # leave one self-contained .db3, as rosbag2 writes it
            conn = sqlite3.connect(str(self.path / f"{self.path.name}.db3"))
            try:
                conn.execute("PRAGMA journal_mode=DELETE")
            finally:
                conn.close()
        if self.fsync:
            _fsync_tree(self.path)

    def abort(self, *, remove: bool) -> None:
        """Stop without finishing: close the files as they are (``remove``: delete the bag folder)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.abort()
        if remove:
            shutil.rmtree(self.path, ignore_errors=True)

    @property
    def is_open(self) -> bool:
        return self._writer is not None


def _write_json(path: Path, data: Any, *, fsync: bool) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())
    tmp.replace(path)


def _fsync_tree(path: Path) -> None:
    for item in [*path.iterdir(), path]:
        with contextlib.suppress(OSError):
            fd = os.open(item, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


# ---------------------------------------------------------------------------------------------------------------------
# Recovery of a bag whose writer died
# ---------------------------------------------------------------------------------------------------------------------

_MAGIC = b"\x89MCAP0\r\n"


@dataclass
class RecoveryReport:
    """What :func:`recover_bag` did."""

    path: Path
    storage: str
    messages: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    cut_bytes: int = 0
    """Bytes of an incomplete last record (MCAP) removed from the end of the file."""
    already_complete: bool = False

    def __str__(self) -> str:
        what = "was complete" if self.already_complete else "recovered"
        cut = f", {self.cut_bytes} incomplete bytes cut" if self.cut_bytes else ""
        return f"{self.path}: {what}, {self.messages} messages{cut}"


def is_unfinished(path: Path) -> bool:
    """A bag folder written by this recorder whose ``metadata.yaml`` is missing (its writer did not finish)."""
    return path.is_dir() and (path / SIDECAR).is_file() and not (path / "metadata.yaml").is_file()


def recover_bag(path: str | Path) -> RecoveryReport:
    """Make a bag whose writer was killed readable: finish its storage file and write ``metadata.yaml``.

    MCAP: records after the last complete one are cut, then a summary (schemas, channels, chunk indexes,
    statistics) and the footer are written, so every chunk that reached the disk is readable (indexed).
    sqlite3: the WAL is checkpointed (committed transactions only). ``metadata.yaml`` gets the sidecar's
    custom data plus ``lnn_control.recovered``. Raises :class:`RecorderError` naming the bag and the problem.
    """
    path = Path(path)
    sidecar_path = path / SIDECAR
    try:
        sidecar = json.loads(sidecar_path.read_text())
    except (OSError, ValueError) as exc:
        raise RecorderError(f"{path}: cannot read {SIDECAR} ({exc}); not a bag from this recorder?") from exc
    storage = sidecar.get("storage", "mcap")
    report = RecoveryReport(path, storage)
    if storage == "mcap":
        files = sorted(path.glob("*.mcap"))
        if not files:
            raise RecorderError(f"{path}: no .mcap file to recover")
        stats = _repair_mcap(files[0], report)
    elif storage == "sqlite3":
        files = sorted(path.glob("*.db3"))
        if not files:
            raise RecorderError(f"{path}: no .db3 file to recover")
        stats = _repair_sqlite(files[0], report)
    else:
        raise RecorderError(f"{path}: unknown storage {storage!r} in {SIDECAR}")
    custom = dict(sidecar.get("custom_data") or {})
    custom[KEY_PREFIX + "recovered"] = datetime.now().astimezone().isoformat(timespec="seconds")
    custom.setdefault(KEY_PREFIX + "end_reason", "writer killed; recovered")
    digests = {t["topic"]: t.get("digest", "") for t in sidecar.get("topics", [])}
    _write_metadata(path, files[0], storage, stats, digests, custom)
    return report


@dataclass
class _Stats:
    topics: list[tuple[str, str]]  # (topic, msgtype) in connection order
    counts: list[int]
    start_ns: int
    end_ns: int


def _u64(b: bytes, o: int) -> int:
    return struct.unpack_from("<Q", b, o)[0]


def _string(b: bytes, o: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<I", b, o)
    return b[o + 4 : o + 4 + n].decode(), o + 4 + n


def _record(op: int, body: bytes) -> bytes:
    return bytes([op]) + struct.pack("<Q", len(body)) + body


def _mcap_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<I", len(data)) + data


def _repair_mcap(file: Path, report: RecoveryReport) -> _Stats:
    """Cut an MCAP file after its last complete data record and write a summary and footer."""
    data = file.read_bytes()
    if len(data) < len(_MAGIC) or data[: len(_MAGIC)] != _MAGIC:
        raise RecorderError(f"{file}: not an MCAP file (no magic); nothing reached the disk")
    if data.endswith(_MAGIC) and len(data) > 2 * len(_MAGIC):
        report.already_complete = True
    schemas: dict[int, tuple[str, bytes]] = {}  # id -> (name, raw record body)
    channels: dict[int, tuple[int, str, bytes]] = {}  # id -> (schema id, topic, raw record body)
    counts: dict[int, int] = {}
    chunk_indexes: list[bytes] = []
    start_ns, end_ns = 2**63 - 1, 0
    pos = len(_MAGIC)
    good = pos
    current_chunk: dict[str, Any] | None = None
    while pos + 9 <= len(data):
        op = data[pos]
        length = _u64(data, pos + 1)
        end = pos + 9 + length
        if end > len(data) or op in (0x0F, 0x02) or op == 0:
            break  # incomplete record, or the summary of a writer killed while closing
        body = data[pos + 9 : end]
        if op == 0x06:  # chunk
            try:
                chunk = _parse_chunk(body)
            except (struct.error, ValueError, UnicodeDecodeError):
                break
            for kind, rec in chunk["records"]:
                if kind == 0x03:
                    (sid,) = struct.unpack_from("<H", rec, 0)
                    schemas[sid] = (_string(rec, 2)[0], rec)
                elif kind == 0x04:
                    cid, sid = struct.unpack_from("<HH", rec, 0)
                    channels[cid] = (sid, _string(rec, 4)[0], rec)
                elif kind == 0x05:
                    (cid,) = struct.unpack_from("<H", rec, 0)
                    counts[cid] = counts.get(cid, 0) + 1
            if chunk["count"]:
                start_ns = min(start_ns, chunk["start"])
                end_ns = max(end_ns, chunk["end"])
            current_chunk = {**chunk, "offset": pos, "length": end - pos, "indexes": {}, "index_end": end}
            chunk_indexes.append(b"")  # filled below once its message indexes are known
        elif op == 0x07 and current_chunk is not None:  # message index of the chunk before
            (cid,) = struct.unpack_from("<H", body, 0)
            current_chunk["indexes"][cid] = pos
            current_chunk["index_end"] = end
        if current_chunk is not None:
            chunk_indexes[-1] = _chunk_index(current_chunk)
        pos = good = end
    report.cut_bytes = len(data) - good if not report.already_complete else 0
    extra = b""
    if current_chunk is not None and set(current_chunk["indexes"]) != set(current_chunk["msgidx"]):
        # Killed while the last chunk's message indexes were being written: write them afresh after the chunk.
        good = current_chunk["offset"] + current_chunk["length"]
        report.cut_bytes = len(data) - good
        current_chunk["indexes"] = {}
        for cid, entries in sorted(current_chunk["msgidx"].items()):
            current_chunk["indexes"][cid] = good + len(extra)
            body = struct.pack("<HI", cid, 16 * len(entries)) + b"".join(struct.pack("<QQ", t, o) for t, o in entries)
            extra += _record(0x07, body)
        current_chunk["index_end"] = good + len(extra)
        chunk_indexes[-1] = _chunk_index(current_chunk)
    if not report.already_complete:
        good += len(extra)
        summary = bytearray()
        summary_start = good + 13  # after the DataEnd record (1 + 8 + 4 bytes)
        schema_start = summary_start
        for _sid, (_name, rec) in sorted(schemas.items()):
            summary += _record(0x03, rec)
        channel_start = summary_start + len(summary)
        for _cid, (_sid, _topic, rec) in sorted(channels.items()):
            summary += _record(0x04, rec)
        chunk_start = summary_start + len(summary)
        for index in chunk_indexes:
            summary += _record(0x08, index)
        stats_start = summary_start + len(summary)
        chan_counts = b"".join(struct.pack("<HQ", cid, n) for cid, n in sorted(counts.items()))
        total = sum(counts.values())
        stats = (
            struct.pack(
                "<QHIIIIQQ",
                total,
                len(schemas),
                len(channels),
                0,
                0,
                len(chunk_indexes),
                start_ns if total else 0,
                end_ns if total else 0,
            )
            + struct.pack("<I", len(chan_counts))
            + chan_counts
        )
        summary += _record(0x0B, stats)
        offsets_start = summary_start + len(summary)
        for op, begin, stop in (
            (0x03, schema_start, channel_start),
            (0x04, channel_start, chunk_start),
            (0x08, chunk_start, stats_start),
            (0x0B, stats_start, offsets_start),
        ):
            if stop > begin:
                summary += _record(0x0E, bytes([op]) + struct.pack("<QQ", begin, stop - begin))
        footer = _record(0x02, struct.pack("<QQI", summary_start, offsets_start, 0)) + _MAGIC
        with open(file, "r+b") as fh:
            fh.truncate(good - len(extra))
            fh.seek(good - len(extra))
            fh.write(extra + _record(0x0F, struct.pack("<I", 0)) + bytes(summary) + footer)
            fh.flush()
            os.fsync(fh.fileno())
    order = sorted(channels)
    report.counts = {channels[c][1]: counts.get(c, 0) for c in order}
    report.messages = sum(counts.values())
    topics = [(channels[c][1], schemas.get(channels[c][0], ("", b""))[0]) for c in order]
    return _Stats(topics, [counts.get(c, 0) for c in order], start_ns, end_ns)


def _parse_chunk(body: bytes) -> dict[str, Any]:
    start, end, usize, _crc = struct.unpack_from("<QQQI", body, 0)
    compression, o = _string(body, 28)
    (csize,) = struct.unpack_from("<Q", body, o)
    payload = body[o + 8 : o + 8 + csize]
    if len(payload) != csize:
        raise ValueError("chunk shorter than its header says")
    if compression == "zstd":
        from rosbags.rosbag2.storage_mcap import zstd  # the same zstd module rosbags writes with

        payload = zstd.decompress(payload)
    elif compression == "lz4":
        from lz4.frame import decompress  # type: ignore[import-untyped]

        payload = decompress(payload)
    elif compression:
        raise ValueError(f"unknown chunk compression {compression!r}")
    if len(payload) != usize:
        raise ValueError("chunk size mismatch")
    records = []
    msgidx: dict[int, list[tuple[int, int]]] = {}  # channel -> [(log time, offset in the chunk)]
    p = 0
    count = 0
    while p + 9 <= len(payload):
        kind, n = payload[p], _u64(payload, p + 1)
        rec = payload[p + 9 : p + 9 + n]
        records.append((kind, rec))
        if kind == 0x05:
            count += 1
            (cid,) = struct.unpack_from("<H", rec, 0)
            msgidx.setdefault(cid, []).append((_u64(rec, 6), p))
        p += 9 + n
    return {
        "start": start,
        "end": end,
        "usize": usize,
        "csize": csize,
        "compression": compression,
        "records": records,
        "count": count,
        "msgidx": msgidx,
    }


def _chunk_index(chunk: dict[str, Any]) -> bytes:
    offsets = b"".join(struct.pack("<HQ", cid, off) for cid, off in sorted(chunk["indexes"].items()))
    chunk_end = chunk["offset"] + chunk["length"]
    return (
        struct.pack("<QQQQ", chunk["start"], chunk["end"], chunk["offset"], chunk["length"])
        + struct.pack("<I", len(offsets))
        + offsets
        + struct.pack("<Q", chunk["index_end"] - chunk_end)
        + _mcap_string(chunk["compression"])
        + struct.pack("<QQ", chunk["csize"], chunk["usize"])
    )


def _repair_sqlite(file: Path, report: RecoveryReport) -> _Stats:
    """Checkpoint the WAL of a killed sqlite3 writer (committed transactions survive) and read the counts."""
    try:
        conn = sqlite3.connect(str(file))
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA journal_mode=DELETE")
            topics = conn.execute("SELECT id, name, type FROM topics ORDER BY id").fetchall()
            counts = dict(conn.execute("SELECT topic_id, count(*) FROM messages GROUP BY topic_id").fetchall())
            start, end = conn.execute("SELECT min(timestamp), max(timestamp) FROM messages").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise RecorderError(f"{file}: sqlite3 cannot open the database ({exc})") from exc
    report.counts = {name: counts.get(tid, 0) for tid, name, _ in topics}
    report.messages = sum(report.counts.values())
    return _Stats(
        [(name, typ) for _, name, typ in topics], [counts.get(tid, 0) for tid, _, _ in topics], start or 0, end or 0
    )


def _write_metadata(
    path: Path, file: Path, storage: str, stats: _Stats, digests: Mapping[str, str], custom: Mapping[str, str]
) -> None:
    """metadata.yaml as rosbags' writer (rosbag2 version 9) writes it."""
    from ruamel.yaml import YAML

    total = sum(stats.counts)
    start = stats.start_ns if total else 0
    duration = max(0, stats.end_ns - stats.start_ns) if total else 0
    info = {
        "version": 9,
        "storage_identifier": storage,
        "relative_file_paths": [file.name],
        "duration": {"nanoseconds": duration},
        "starting_time": {"nanoseconds_since_epoch": start},
        "message_count": total,
        "topics_with_message_count": [
            {
                "topic_metadata": {
                    "name": topic,
                    "type": msgtype,
                    "serialization_format": "cdr",
                    "offered_qos_profiles": [],
                    "type_description_hash": digests.get(topic, ""),
                },
                "message_count": count,
            }
            for (topic, msgtype), count in zip(stats.topics, stats.counts, strict=True)
        ],
        "compression_format": "",
        "compression_mode": "",
        "files": [
            {
                "path": file.name,
                "starting_time": {"nanoseconds_since_epoch": start},
                "duration": {"nanoseconds": duration},
                "message_count": total,
            }
        ],
        "custom_data": dict(custom) or None,
        "ros_distro": "rosbags",
    }
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    stream = StringIO()
    yaml.dump({"rosbag2_bagfile_information": info}, stream)
    tmp = path / "metadata.yaml.tmp"
    tmp.write_text(stream.getvalue())
    tmp.replace(path / "metadata.yaml")


# ---------------------------------------------------------------------------------------------------------------------
# The queue and the writer thread
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class TopicStats:
    """Per-topic counters of one episode (and the node's life, for ``received_total``)."""

    received: int = 0  # accepted into the episode's queue
    written: int = 0
    queue_full: int = 0
    write_error: int = 0
    skipped: int = 0  # arrived while a human was not driving (record_only_when_human)
    lost: int = 0  # never reached the recorder: gaps in the publishers' sequence numbers (best effort, overwritten)

    @property
    def dropped(self) -> int:
        return self.queue_full + self.write_error


#: A publication sequence number the middleware could not give (rmw's "unsupported" value), or none given.
NO_SEQUENCE = (0, (1 << 64) - 1)
#: Publishers tracked per topic for gap counting.
MAX_STREAMS = 16


class SequenceGaps:
    """Counts messages lost before they reached a subscriber from the publishers' sequence numbers.

    Each publisher numbers its samples 1, 2, 3, ... The numbers of several publishers on one topic interleave and a
    subscriber does not learn which publisher sent a sample, so each number continues the stream whose last number
    is the largest one below it, and starts a new stream when none is below it (a second publisher, or one that
    restarted). Before a stream's first sample nothing counts as lost (a late joiner misses history, not samples).
    """

    def __init__(self, max_streams: int = MAX_STREAMS) -> None:
        self.max_streams = max_streams
        self.last: list[int] = []

    def lost(self, sequence: int | None) -> int:
        """Feed one received sample's publication sequence number; how many samples were lost just before it."""
        if sequence is None or sequence in NO_SEQUENCE:
            return 0
        below = [i for i, last in enumerate(self.last) if last < sequence]
        if not below:
            if len(self.last) >= self.max_streams:
                self.last.pop(0)
            self.last.append(sequence)
            return 0
        i = max(below, key=lambda k: self.last[k])
        gap = sequence - self.last[i] - 1
        self.last[i] = sequence
        return gap


@dataclass
class Episode:
    """An episode in progress (or just ended)."""

    number: int
    path: Path
    started_ns: int
    stats: list[TopicStats]
    writer: EpisodeWriter | None = None
    error: str = ""
    stop_ns: int | None = None  # messages received after this (system time) are not part of the episode


class EpisodeRecorder:
    """The recorder's engine: one episode at a time, written from a queue by one thread.

    ``log(severity, text)`` receives what the node should log. All public methods are thread-safe and return
    within their timeouts.
    """

    def __init__(
        self,
        topics: Sequence[TopicSpec],
        *,
        output_dir: str | Path,
        storage: str = "mcap",
        prefix: str = "episode_",
        queue_size: int = 2000,
        max_queue_bytes: int = 512 << 20,
        flush_period: float = 1.0,
        chunk_size: int = 1 << 20,
        fsync: bool = True,
        min_free_bytes: int = 200 << 20,
        log: LogFn | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        drain: Callable[[], None] | None = None,
    ) -> None:
        if storage not in STORAGES:
            raise RecorderError(f"storage {storage!r} is not one of {', '.join(STORAGES)}")
        self.topics = list(topics)
        self.output_dir = Path(output_dir).expanduser()
        self.storage = storage
        self.prefix = prefix
        self.queue_size = int(queue_size)
        self.max_queue_bytes = int(max_queue_bytes)
        self.flush_period = float(flush_period)
        self.chunk_size = int(chunk_size)
        self.fsync = bool(fsync)
        self.min_free_bytes = int(min_free_bytes)
        self.log = log or (lambda _sev, _text: None)
        self.clock_ns = clock_ns
        self.drain = drain
        self._gaps = [SequenceGaps() for _ in self.topics]
        self.lost_total = [0] * len(self.topics)
        self.store = get_typestore(Stores.ROS2_JAZZY)
        for spec in self.topics:  # fail at start-up, not at the first episode, on an unknown type
            type_definition(spec.msgtype, self.store)
        self._cond = threading.Condition()
        self._items: deque = deque()
        self._queued_bytes = 0
        self._queued_msgs = 0
        self.episode: Episode | None = None  # the one accepting messages (None: idle)
        self.last_episode: Episode | None = None
        self.last_error = ""
        self._counter = 0
        self.last_recv_ns = [0] * len(self.topics)
        self.last_callback = [0.0] * len(self.topics)  # monotonic time of the last accept() call per topic
        self._shutdown = False
        self._thread = threading.Thread(target=self._run, name="bag_writer", daemon=True)
        self._thread.start()

    # -- called from DDS callbacks ------------------------------------------------------------------------------------

    def accept(
        self, index: int, data: bytes, recv_ns: int, log_ns: int, *, human: bool = True, sequence: int | None = None
    ) -> bool:
        """Offer one received message; True if it was accepted into the current episode's queue.

        ``recv_ns`` is the system time DDS received it (to decide whether it came before a stop request);
        ``log_ns`` is the bag's log time (node clock). ``human`` false counts the message as skipped.
        ``sequence`` is the publisher's sequence number of the sample, if known: gaps count as ``lost``.
        """
        with self._cond:
            self.last_recv_ns[index] = max(self.last_recv_ns[index], recv_ns)
            self.last_callback[index] = time.monotonic()
            lost = self._gaps[index].lost(sequence)
            self.lost_total[index] += lost
            episode = self.episode
            if episode is None or (episode.stop_ns is not None and recv_ns > episode.stop_ns):
                return False
            stats = episode.stats[index]
            stats.lost += lost
            if not human:
                stats.skipped += 1
                return False
            if self._queued_msgs >= self.queue_size or self._queued_bytes + len(data) > self.max_queue_bytes:
                stats.queue_full += 1
                if stats.queue_full in (1, 10, 100) or stats.queue_full % 1000 == 0:
                    self.log(
                        "warning",
                        f"{self.topics[index].topic}: writer queue full ({self._queued_msgs} "
                        f"messages, {self._queued_bytes >> 20} MiB); {stats.queue_full} dropped",
                    )
                return False
            stats.received += 1
            self._items.append(("msg", episode, index, log_ns, data))
            self._queued_msgs += 1
            self._queued_bytes += len(data)
            self._cond.notify()
            return True

    # -- control ------------------------------------------------------------------------------------------------------

    def _episode_path(self) -> Path:
        stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
        while True:
            self._counter += 1
            path = self.output_dir / f"{self.prefix}{stamp}_{self._counter:03d}"
            if not path.exists():
                return path

    def _control(self, op: str, payload: Any, timeout: float) -> tuple[bool, str]:
        done = threading.Event()
        result: list[tuple[bool, str]] = []
        with self._cond:
            self._items.append((op, payload, done, result))
            self._cond.notify()
        if not done.wait(timeout):
            return False, f"the bag writer did not finish '{op}' within {timeout:.0f} s (is the disk stuck?)"
        return result[0]

    def start(self, custom_data: Mapping[str, str], timeout: float = 30.0) -> tuple[bool, str]:
        """Open a new episode's bag under ``output_dir``; (success, message naming the bag or the problem)."""
        with self._cond:
            if self.episode is not None:
                return False, f"already recording {self.episode.path.name}; stop or discard it first"
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(self.output_dir).free
        except OSError as exc:
            return self._fail(f"cannot create or use output_dir {self.output_dir}: {exc.strerror or exc}")
        if free < self.min_free_bytes:
            return self._fail(
                f"only {free >> 20} MiB free under {self.output_dir}, below min_free_mb ({self.min_free_bytes >> 20})"
            )
        path = self._episode_path()
        episode = Episode(self._counter, path, self.clock_ns(), [TopicStats() for _ in self.topics])
        custom = dict(custom_data)
        custom[KEY_PREFIX + "episode"] = path.name
        ok, message = self._control("open", (episode, custom), timeout)
        if ok:
            with self._cond:
                self.episode = episode
                self.last_error = ""
        else:
            self.last_error = message
        return ok, message

    def _fail(self, message: str) -> tuple[bool, str]:
        self.last_error = message
        self.log("error", message)
        return False, message

    def caught_up(self, stop_ns: int, idle_s: float = 0.1) -> bool:
        """True when every topic's callbacks have passed ``stop_ns`` (system time) or been idle for ``idle_s``."""
        now = time.monotonic()
        with self._cond:
            return all(
                recv >= stop_ns or now - last >= idle_s
                for recv, last in zip(self.last_recv_ns, self.last_callback, strict=True)
            )

    def stop(self, *, stop_ns: int | None = None, drain_s: float = 1.0, timeout: float = 60.0) -> tuple[bool, str]:
        """End the episode: messages DDS received up to ``stop_ns`` (system time; default now) are still taken
        (by the ``drain`` callback given at construction, which takes what waits in the readers; without one, by
        waiting up to ``drain_s`` for callbacks on other threads to catch up), then everything accepted is written
        and the bag closed. (success, message with the counts)."""
        return self._end("stop", stop_ns, drain_s, timeout)

    def discard(self, *, timeout: float = 60.0) -> tuple[bool, str]:
        """End the episode and delete its bag."""
        return self._end("discard", None, 0.0, timeout)

    def _end(self, op: str, stop_ns: int | None, drain_s: float, timeout: float) -> tuple[bool, str]:
        with self._cond:
            episode = self.episode
            if episode is None:
                why = f" (the last episode ended with: {self.last_error})" if self.last_error else ""
                return False, f"not recording{why}"
            episode.stop_ns = self.clock_ns() if stop_ns is None else stop_ns
        if op == "stop" and self.drain is not None:
            self.drain()
        else:
            deadline = time.monotonic() + drain_s
            while op == "stop" and not self.caught_up(episode.stop_ns) and time.monotonic() < deadline:
                time.sleep(0.005)
        with self._cond:
            if self.episode is episode:
                self.episode = None
        return self._control(op, episode, timeout)

    def shutdown(self, timeout: float = 60.0) -> tuple[bool, str] | None:
        """Stop the current episode (if any) and end the writer thread. Returns the stop result, or None."""
        result = None
        if self.episode is not None:
            result = self.stop(drain_s=0.2, timeout=timeout)
        with self._cond:
            self._shutdown = True
            self._cond.notify()
        self._thread.join(timeout)
        return result

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot: state, episode, per-topic counters, queue depth, last error."""
        with self._cond:
            episode = self.episode or self.last_episode
            return {
                "state": "recording" if self.episode is not None else "idle",
                "episode": episode.path.name if episode else "",
                "path": str(episode.path) if episode else "",
                "queued": self._queued_msgs,
                "queued_bytes": self._queued_bytes,
                "topics": {spec.topic: asdict(st) for spec, st in zip(self.topics, episode.stats, strict=True)}
                if episode
                else {},
                "lost_total": dict(zip((spec.topic for spec in self.topics), self.lost_total, strict=True)),
                "last_error": self.last_error,
            }

    # -- the writer thread --------------------------------------------------------------------------------------------

    def _run(self) -> None:
        next_flush = time.monotonic() + self.flush_period
        next_disk_check = time.monotonic() + 1.0
        current: Episode | None = None
        while True:
            with self._cond:
                while not self._items and not self._shutdown:
                    wait = min(next_flush, next_disk_check) - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                batch = list(self._items)
                self._items.clear()
                if self._shutdown and not batch:
                    break
            for item in batch:
                if item[0] == "msg":
                    _, episode, index, log_ns, data = item
                    with self._cond:
                        self._queued_msgs -= 1
                        self._queued_bytes -= len(data)
                    current = self._write(current, episode, index, log_ns, data)
                else:
                    current = self._handle(current, item)
            now = time.monotonic()
            if current is not None and current.writer is not None and now >= next_flush:
                current = self._guard(current, current.writer.flush)
            if now >= next_flush:
                next_flush = now + self.flush_period
            if now >= next_disk_check:
                next_disk_check = now + 1.0
                if current is not None and current.writer is not None:
                    current = self._check_disk(current)

    def _write(self, current: Episode | None, episode: Episode, index: int, log_ns: int, data: bytes) -> Episode | None:
        if current is not episode or episode.writer is None:
            episode.stats[index].write_error += 1  # its episode already ended with an error
            return current
        try:
            episode.writer.write(index, log_ns, data)
            episode.stats[index].written += 1
        except Exception as exc:  # noqa: BLE001 - any failure ends the episode, never the thread
            episode.stats[index].write_error += 1
            return self._end_with_error(episode, f"write failed: {_describe(exc)}")
        return current

    def _guard(self, episode: Episode, fn: Callable[[], None]) -> Episode | None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001
            return self._end_with_error(episode, f"flush failed: {_describe(exc)}")
        return episode

    def _check_disk(self, episode: Episode) -> Episode | None:
        try:
            free = shutil.disk_usage(self.output_dir).free
        except OSError as exc:
            return self._end_with_error(episode, f"cannot check free space: {_describe(exc)}")
        if free < self.min_free_bytes:
            return self._end_with_error(
                episode, f"disk nearly full ({free >> 20} MiB free < min_free_mb {self.min_free_bytes >> 20})"
            )
        return episode

    def _end_with_error(self, episode: Episode, reason: str) -> None:
        """Close the bag as far as the disk allows, go idle, report. Returns None (no current episode)."""
        with self._cond:
            if self.episode is episode:
                self.episode = None
            self.last_episode = episode
        episode.error = reason
        written = sum(s.written for s in episode.stats)
        how = self._close_after_error(episode, reason)
        self.last_error = f"episode {episode.path.name} ended: {reason}; {written} messages kept ({how})"
        self.log("error", f"{self.last_error} in {episode.path}")
        return None

    def _close_after_error(self, episode: Episode, reason: str) -> str:
        writer = episode.writer
        episode.writer = None
        if writer is None:
            return "nothing to close"
        try:
            writer.close(self._end_data(episode, f"error: {reason}"))
            return "bag closed"
        except Exception as exc:  # noqa: BLE001
            writer.abort(remove=False)
            try:
                report = recover_bag(episode.path)
                return f"bag could not be closed ({_describe(exc)}) and was recovered: {report.messages} messages"
            except Exception as exc2:  # noqa: BLE001
                return (
                    f"bag left unfinished ({_describe(exc2)}); it is recovered at the next start, or with "
                    f"'recorder_node --recover {episode.path}'"
                )

    def _end_data(self, episode: Episode, reason: str) -> dict[str, str]:
        stats = {spec.topic: asdict(st) for spec, st in zip(self.topics, episode.stats, strict=True)}
        return {
            KEY_PREFIX + "end_reason": reason,
            KEY_PREFIX + "stats": json.dumps(stats, sort_keys=True),
            KEY_PREFIX + "end_time": datetime.now().astimezone().isoformat(timespec="seconds"),
        }

    def _handle(self, current: Episode | None, item: tuple) -> Episode | None:
        op, payload, done, result = item
        try:
            if op == "open":
                episode, custom = payload
                writer = EpisodeWriter(
                    episode.path,
                    self.topics,
                    storage=self.storage,
                    custom_data=custom,
                    typestore=self.store,
                    fsync=self.fsync,
                    chunk_size=self.chunk_size,
                )
                try:
                    writer.open()
                except Exception as exc:  # noqa: BLE001
                    message = f"cannot create bag {episode.path}: {_describe(exc)}"
                    self.log("error", message)
                    result.append((False, message))
                    return current
                episode.writer = writer
                result.append((True, f"recording {episode.path}"))
                self.log("info", f"recording episode {episode.path}")
                return episode
            episode = payload
            self.last_episode = episode
            if episode.writer is None:  # it ended with an error before the request was handled
                result.append((False, self.last_error or f"episode {episode.path.name} already ended"))
                return None if current is episode else current
            writer = episode.writer
            episode.writer = None
            if op == "discard":
                writer.abort(remove=True)
                kept = sum(s.written for s in episode.stats)
                result.append((True, f"discarded {episode.path.name} ({kept} messages deleted)"))
                self.log("info", result[-1][1])
            else:
                started = time.monotonic()
                try:
                    writer.close(self._end_data(episode, "stop"))
                except Exception as exc:  # noqa: BLE001
                    episode.writer = writer
                    self._end_with_error(episode, f"closing failed: {_describe(exc)}")
                    result.append((False, self.last_error))
                    return None
                result.append((True, self._summary(episode, time.monotonic() - started)))
                self.log("info", result[-1][1])
            return None if current is episode else current
        finally:
            done.set()

    def _summary(self, episode: Episode, close_s: float) -> str:
        written = sum(s.written for s in episode.stats)
        per_topic = ", ".join(f"{spec.topic} {st.written}" for spec, st in zip(self.topics, episode.stats, strict=True))
        dropped = sum(s.dropped for s in episode.stats)
        skipped = sum(s.skipped for s in episode.stats)
        extra = f"; {skipped} skipped while no human drove" if skipped else ""
        pairs = zip(self.topics, episode.stats, strict=True)
        lost = ", ".join(f"{spec.topic} {st.lost}" for spec, st in pairs if st.lost)
        return (
            f"closed {episode.path}: {written} messages ({per_topic}); {dropped} dropped{extra}; "
            f"{sum(s.lost for s in episode.stats)} lost before the recorder{f' ({lost})' if lost else ''}; "
            f"closed in {close_s:.2f} s"
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc} [{name}]{where}"
    return f"{type(exc).__name__}: {exc}"
