"""Repair a bag whose writer died (``lnn-control recover``): in place, or into a salvaged copy.

:func:`recover` takes a rosbag2 bag folder or a bare ``.mcap``/``.db3`` file. In place, an MCAP file is cut after
its last complete record and given the summary and footer its writer never wrote, so every chunk that reached the
disk reads (indexed); a sqlite3 database has its WAL checkpointed (committed transactions only). A bag folder then
gets a ``metadata.yaml`` (``custom_data`` from the recorder's sidecar or the old metadata, plus
``lnn_control.recovered``). With ``into``, the bag is left as it is and a repaired copy is written under ``into``:
MCAP messages are re-written through the one bag writer (custom types from the file's own schemas), sqlite3 files
are copied and the copy repaired. Every problem is a :class:`~lnn_control.data.bags.BagError` naming the bag.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rosbags.typesys import Stores, get_typestore

from lnn_control.data import mcap
from lnn_control.data.bag_writer import (
    BAG_VERSIONS,
    BagFormat,
    BagWriter,
    FileStats,
    TopicEntry,
    metadata_document,
    parse_offered_qos,
    storage_files,
    write_metadata,
)
from lnn_control.data.bags import Bag, BagError
from lnn_control.data.episode_bag import KEY_PREFIX, read_sidecar
from lnn_control.data.message_types import register_definition

SQLITE_MAGIC = b"SQLite format 3\x00"
ROS1_MAGIC = b"#ROSBAG"


@dataclass
class RecoveryReport:
    """What :func:`recover` did."""

    path: Path
    """The bag recovered."""
    storage: str
    into: Path | None = None
    """The salvaged copy, or None when the bag was repaired in place."""
    messages: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    """Messages kept per topic."""
    cut_bytes: int = 0
    """Bytes after the last complete record (MCAP) left out."""
    already_complete: bool = False
    """The storage files were finished: only ``metadata.yaml`` was missing."""
    dropped: list[str] = field(default_factory=list)
    """Files of a split bag left out: the writer died before any complete message reached them (deleted)."""

    def __str__(self) -> str:
        if self.into is not None:
            what = f"salvaged into {self.into}"
        else:
            what = "metadata.yaml written (the storage file was complete)" if self.already_complete else "recovered"
        cut = f", {self.cut_bytes} bytes after the last complete record left out" if self.cut_bytes else ""
        dropped = f", {', '.join(self.dropped)} held no complete message (deleted)" if self.dropped else ""
        return f"{self.path}: {what}, {self.messages} messages{cut}{dropped}"


@dataclass(frozen=True)
class _Target:
    path: Path  # the bag as given
    folder: Path | None  # its rosbag2 folder; None for a bare file
    files: list[Path]  # the storage files, in the order they were written (several: a split bag)
    storage: str
    custom: Mapping[str, str]  # custom_data to carry over
    digests: Mapping[str, str]  # topic -> type description hash
    qos: Mapping[str, Any] = field(default_factory=dict)  # topic -> offered QoS profiles (either metadata form)
    version: int = 9  # metadata version the writer wrote

    @property
    def file(self) -> Path:
        return self.files[-1]


@dataclass
class _Stats:
    topics: list[tuple[str, str, int]]  # (topic, msgtype, count) in connection order
    start_ns: int
    end_ns: int


def recover(path: str | Path, *, into: str | Path | None = None) -> RecoveryReport:
    """Make a bag whose writer died readable: repair it in place, or, with ``into`` (a folder), write a repaired
    copy ``into/<bag name>`` and leave the bag as it is. A split bag (several files) is repaired file by file:
    the finished ones are kept as they are, the one its writer died in is completed. :class:`BagError` naming the
    bag when it cannot be recovered: missing, empty, cut short before any complete message, ROS 1, or complete
    already."""
    target = _locate(Path(path))
    data = {f: f.read_bytes() if target.storage == "mcap" else b"" for f in target.files}
    if _is_complete(target, data):
        raise BagError(target.path, "is complete already (it opens as it is): nothing to recover")
    if into is None:
        return _repair(target, data)
    return _salvage(target, data, Path(into))


# -- what is to be recovered -----------------------------------------------------------------------------------------


def _locate(path: Path) -> _Target:
    if not path.exists():
        raise BagError(path, "does not exist")
    folder = path if path.is_dir() else None
    files = _storage_files(path) if folder is not None else [path]
    kinds = {_storage_of(f) for f in files}
    if len(kinds) > 1:
        raise BagError(path, f"holds both MCAP and sqlite3 files ({', '.join(f.name for f in files)})")
    custom, digests, qos, version = _carried(folder)
    return _Target(path, folder, files, kinds.pop(), custom, digests, qos, version)


def _storage_files(folder: Path) -> list[Path]:
    files = storage_files(folder)
    if files:
        return files
    ros1 = any(p.suffix == ".bag" for p in folder.iterdir())
    why = "; it holds ROS 1 .bag files, which recover does not repair" if ros1 else ""
    raise BagError(folder, f"holds no .mcap or .db3 file: not a rosbag2 bag{why}")


def _storage_of(file: Path) -> str:
    size = file.stat().st_size
    if size == 0:
        raise BagError(file, "file is empty (0 bytes): nothing reached the disk, nothing to recover")
    with open(file, "rb") as fh:
        head = fh.read(len(SQLITE_MAGIC))
    if head.startswith(ROS1_MAGIC):
        raise BagError(file, "is a ROS 1 bag: recover repairs rosbag2 bags (MCAP, sqlite3); ROS 1 has rosbag reindex")
    if head.startswith(SQLITE_MAGIC):
        return "sqlite3"
    if head.startswith(mcap.MAGIC):
        return "mcap"
    if mcap.MAGIC.startswith(head):
        raise BagError(file, f"cut short inside the MCAP magic ({size} bytes): nothing to recover")
    raise BagError(file, "is neither an MCAP file nor a sqlite3 database (unknown first bytes): nothing to recover")


def _carried(folder: Path | None) -> tuple[dict[str, str], dict[str, str], dict[str, Any], int]:
    """(custom data, topic -> type hash, topic -> offered QoS, metadata version) to carry over: the recorder's
    sidecar, else the old metadata.yaml."""
    if folder is None:
        return {}, {}, {}, 9
    sidecar = read_sidecar(folder)
    if sidecar is not None:
        topics = sidecar.get("topics") or []
        return (
            dict(sidecar.get("custom_data") or {}),
            {t["topic"]: t.get("digest", "") for t in topics},
            {t["topic"]: t.get("offered_qos_profiles") or [] for t in topics},
            int(sidecar.get("version") or 9),
        )
    info = _old_metadata(folder)
    topics = [t.get("topic_metadata") or {} for t in info.get("topics_with_message_count") or []]
    return (
        dict(info.get("custom_data") or {}),
        {t["name"]: t.get("type_description_hash", "") for t in topics},
        {t["name"]: t.get("offered_qos_profiles") or [] for t in topics},
        int(info.get("version") or 9) if info.get("version") in BAG_VERSIONS else 9,
    )


def _old_metadata(folder: Path) -> dict[str, Any]:
    from ruamel.yaml import YAML

    try:
        document = YAML(typ="safe").load((folder / "metadata.yaml").read_text(encoding="utf-8"))
        info = document["rosbag2_bagfile_information"]
    except Exception:  # noqa: BLE001 - missing or damaged: it is written afresh anyway
        return {}
    return info if isinstance(info, dict) else {}


def _has_journal(file: Path) -> bool:
    return any(file.with_name(file.name + s).is_file() for s in ("-wal", "-journal"))


def _opens(path: Path) -> bool:
    try:
        Bag(path).close()
    except BagError:
        return False
    return True


def _is_complete(target: _Target, data: Mapping[Path, bytes]) -> bool:
    if target.folder is not None and not (target.folder / "metadata.yaml").is_file():
        return False
    for file in target.files:
        finished = mcap.is_complete(data[file]) if target.storage == "mcap" else not _has_journal(file)
        if not finished:
            return False
    return _opens(target.path)


# -- in place --------------------------------------------------------------------------------------------------------


def _repair(target: _Target, data: Mapping[Path, bytes]) -> RecoveryReport:
    report = RecoveryReport(target.path, target.storage)
    kept: list[tuple[Path, _Stats]] = []
    complete = True
    for index, file in enumerate(target.files):
        last = index == len(target.files) - 1
        try:
            if target.storage == "mcap":
                stats, done = _repair_mcap(file, data[file], report)
            else:
                stats, done = _repair_sqlite(file), False
        except BagError:
            if not last or not kept:
                raise
            # the writer died just after starting a new file: nothing of it reached the disk whole
            for suffix in ("", "-wal", "-shm", "-journal"):
                file.with_name(file.name + suffix).unlink(missing_ok=True)
            report.dropped.append(file.name)
            continue
        complete = complete and done
        kept.append((file, stats))
    report.already_complete = complete
    counts: dict[str, int] = {}
    for _file, stats in kept:
        for topic, _type, count in stats.topics:
            counts[topic] = counts.get(topic, 0) + count
    report.counts = counts
    report.messages = sum(counts.values())
    if target.folder is not None:
        for stray in target.folder.glob(".*"):  # a split file the writer was about to move into place
            if stray.is_dir():
                shutil.rmtree(stray, ignore_errors=True)
        _write_metadata(target, kept, _recovered(target.custom))
    return report


def _scan(file: Path, data: bytes, on_message: mcap.MessageFn | None = None) -> mcap.Scan:
    try:
        found = mcap.scan(data, on_message)
    except mcap.McapError as exc:
        raise BagError(file, f"{exc}: nothing to recover") from exc
    if not found.messages:
        raise BagError(file, f"no complete message in its {len(data)} bytes: nothing to recover")
    return found


def _repair_mcap(file: Path, data: bytes, report: RecoveryReport) -> tuple[_Stats, bool]:
    """Cut an MCAP file after its last complete record and write a summary and footer (unless it is complete);
    its stats and whether it was complete."""
    found = _scan(file, data)
    complete = mcap.is_complete(data) and _opens(file)
    if not complete:
        keep, tail = mcap.finish(found)
        report.cut_bytes += len(data) - keep
        with open(file, "r+b") as fh:
            fh.truncate(keep)
            fh.seek(keep)
            fh.write(tail)
            fh.flush()
            os.fsync(fh.fileno())
    return _Stats(found.topics(), found.start_ns, found.end_ns), complete


def _repair_sqlite(file: Path) -> _Stats:
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
        raise BagError(file, f"sqlite3 cannot read the database ({exc}): nothing to recover") from exc
    if not counts:
        raise BagError(file, "no committed message in the database: nothing to recover")
    return _Stats([(name, typ, counts.get(tid, 0)) for tid, name, typ in topics], start or 0, end or 0)


def _recovered(custom: Mapping[str, str]) -> dict[str, str]:
    out = dict(custom)
    out[KEY_PREFIX + "recovered"] = datetime.now().astimezone().isoformat(timespec="seconds")
    out.setdefault(KEY_PREFIX + "end_reason", "writer killed; recovered")
    return out


def _write_metadata(target: _Target, kept: Sequence[tuple[Path, _Stats]], custom: Mapping[str, str]) -> None:
    """metadata.yaml as the bag's writer would have written it (its metadata version, offered QoS)."""
    files = []
    topics: dict[str, TopicEntry] = {}
    for file, stats in kept:
        count = sum(c for _, _, c in stats.topics)
        files.append(FileStats(file.name, count, stats.start_ns, stats.end_ns))
        for topic, msgtype, n in stats.topics:
            if topic not in topics:
                qos = parse_offered_qos(target.qos.get(topic))
                topics[topic] = TopicEntry(topic, msgtype, target.digests.get(topic, ""), 0, qos)
            topics[topic].count += n
    info = metadata_document(
        version=target.version, storage=target.storage, files=files, topics=list(topics.values()), custom_data=custom
    )
    assert target.folder is not None
    write_metadata(target.folder, info, fsync=True)


# -- into a copy -----------------------------------------------------------------------------------------------------


def _salvage(target: _Target, data: Mapping[Path, bytes], into: Path) -> RecoveryReport:
    dst = into / (target.path.name if target.folder is not None else target.path.stem)
    try:
        into.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BagError(target.path, f"cannot create {into} for the salvaged copy: {exc}") from exc
    if target.storage == "sqlite3":
        report = _repair(_copy(target, dst), {})
    else:
        report = RecoveryReport(target.path, "mcap")
        report.counts = _rewrite_mcap(target, data, dst)
        report.messages = sum(report.counts.values())
    report.path, report.into = target.path, dst
    return report


def _copy(target: _Target, dst: Path) -> _Target:
    """The storage files of a sqlite3 bag (databases and journals) copied into a new folder ``dst``."""
    try:
        dst.mkdir()
        for file in target.files:
            for suffix in ("", "-wal", "-journal"):
                src = file.with_name(file.name + suffix)
                if src.is_file():
                    shutil.copy2(src, dst / src.name)
    except FileExistsError:
        raise BagError(dst, "exists already; recover never overwrites a bag") from None
    except OSError as exc:
        raise BagError(dst, f"cannot copy {target.file} here: {exc}") from exc
    files = [dst / f.name for f in target.files]
    return _Target(dst, dst, files, "sqlite3", target.custom, target.digests, target.qos, target.version)


def _rewrite_mcap(target: _Target, data: Mapping[Path, bytes], dst: Path) -> dict[str, int]:
    """Every complete message of the MCAP files written into a new bag ``dst``, with the files' own definitions."""
    store = get_typestore(Stores.EMPTY)
    custom = _recovered(target.custom)
    with BagWriter(dst, bag_format=BagFormat(version=target.version), typestore=store, custom_data=custom) as writer:

        def write(channel: mcap.Channel, schema: mcap.Schema | None, log_ns: int, payload: memoryview) -> None:
            if schema is None:
                return  # a channel without its schema cannot be declared
            if channel.topic not in writer.counts:
                if schema.name not in store.fielddefs:
                    register_definition(store, schema.name, schema.encoding, schema.text)
                qos = parse_offered_qos(target.qos.get(channel.topic))
                writer.add_topic(channel.topic, schema.name, typestore=store, offered_qos=qos)
            writer.write(channel.topic, log_ns, bytes(payload))

        for file in target.files:
            with contextlib.suppress(BagError):  # a file with nothing complete adds nothing
                _scan(file, data[file], write)
        if not any(writer.counts.values()):
            raise BagError(target.file, "no complete message with its schema: nothing to recover")
    return dict(writer.counts)


def recover_bags(paths: Sequence[str | Path], into: str | Path | None = None) -> int:
    """:func:`recover` each bag, printing what was done (each error, naming its bag, on stderr); 0 when all were
    recovered, 1 otherwise."""
    code = 0
    for path in paths:
        try:
            print(recover(path, into=into))
        except BagError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = 1
    return code
