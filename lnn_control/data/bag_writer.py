"""The one bag writer: a rosbag2 bag (MCAP or sqlite3) from CDR bytes or rosbags messages, durable on request.

Every writer in lnn_control goes through :class:`BagWriter`: the recorder's episodes, ``lnn-control import-tub``,
``lnn-control recover --into`` and the tests' bags. It wraps rosbags' writer, so the bags carry every type's
definition and a ``metadata.yaml`` that ``ros2 bag info`` and rosbags read. Nothing here imports rclpy.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores
from rosbags.typesys.store import Typestore

from lnn_control.data.bags import BagError, as_typestore, normalize_msgtype

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
"""Storage names a writer accepts, as ``ros2 bag`` spells them."""

DEFAULT_CHUNK_SIZE = 1 << 20
"""Bytes of messages an MCAP chunk holds before it is written (rosbags' own threshold)."""


class BagWriter:
    """Write a rosbag2 bag (MCAP by default, or sqlite3) from CDR bytes or from rosbags messages.

    ``path`` is the bag folder to create; it must not exist. The message definitions of every topic's type are
    stored in the bag (from ``typestore``, or the one given to :meth:`add_topic`), so readers need no type packages.
    If the ``with`` block raises, the half-written folder is removed unless ``keep_on_error``.

    :meth:`flush` makes everything written so far durable: MCAP closes the pending chunk and flushes the file,
    sqlite3 (written with a WAL journal) commits; with ``fsync`` the file is also synced to the device. A writer
    flushes by itself whenever the pending MCAP chunk reaches ``chunk_size`` bytes. Not thread-safe.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        storage: str = "mcap",
        typestore: Typestore | Stores | str | None = None,
        custom_data: Mapping[str, str] | None = None,
        keep_on_error: bool = False,
        fsync: bool = False,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(self.path, "exists already; the writer never overwrites a bag")
        self.storage = storage
        self.typestore = as_typestore(typestore)
        self.keep_on_error = keep_on_error
        self.fsync = fsync
        self.chunk_size = int(chunk_size)
        self._writer: Writer | None = Writer(self.path, version=Writer.VERSION_LATEST, storage_plugin=STORAGES[storage])
        self.set_custom_data(custom_data or {})
        self._connections: dict[str, tuple[Any, str, Typestore]] = {}
        self.counts: dict[str, int] = {}
        self.flushes = 0
        self._open = False
        self._dirty = False

    # -- lifecycle ---------------------------------------------------------------------------------------------------
    def open(self) -> BagWriter:
        """Create the bag folder and its storage file."""
        assert self._writer is not None, "a writer opens once"
        try:
            self._writer.open()
        except Exception as exc:  # noqa: BLE001 - rosbags raises WriterError or OSError
            raise BagError(self.path, f"cannot create bag: {exc}") from exc
        self._open = True
        if self.storage == "sqlite3":  # committed transactions survive a killed writer
            conn = self._writer.storage.conn  # type: ignore[union-attr]
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'NORMAL'}")
        return self

    @property
    def is_open(self) -> bool:
        """True between :meth:`open` and :meth:`close` or :meth:`abort`."""
        return self._open

    def set_custom_data(self, custom_data: Mapping[str, str]) -> None:
        """Add ``custom_data`` to what ``metadata.yaml`` will hold (values become strings)."""
        assert self._writer is not None, "closed"
        for key, value in custom_data.items():
            self._writer.set_custom_data(str(key), str(value))

    def close(self, custom_data: Mapping[str, str] | None = None) -> None:
        """Finish the storage file and write metadata.yaml (with ``custom_data`` added); sync with ``fsync``."""
        if not self._open:
            return
        writer = self._writer
        assert writer is not None
        self.set_custom_data(custom_data or {})
        self._open = False
        self._writer = None
        try:
            writer.close()
        except BaseException:
            # Close the file handles now: a buffered writer flushing later would write after a recovery.
            with contextlib.suppress(Exception):
                writer.abort()
            raise
        if self.storage == "sqlite3":  # leave one self-contained .db3, as rosbag2 writes it
            conn = sqlite3.connect(str(self.path / f"{self.path.name}.db3"))
            try:
                conn.execute("PRAGMA journal_mode=DELETE")
            finally:
                conn.close()
        if self.fsync:
            fsync_tree(self.path)

    def abort(self, *, remove: bool = True) -> None:
        """Stop without finishing: close the files as they are, and delete the bag folder when ``remove``."""
        writer, self._writer = self._writer, None
        if self._open and writer is not None:
            with contextlib.suppress(Exception):  # what reached the disk stays; nothing more is written
                writer.abort()
        self._open = False
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
    def add_topic(self, topic: str, msgtype: str, *, typestore: Typestore | None = None) -> Any:
        """Declare ``topic`` with ``msgtype`` (definition from ``typestore``, default the writer's); its connection."""
        store = typestore or self.typestore
        msgtype = normalize_msgtype(msgtype)
        if msgtype not in store.fielddefs:
            raise BagError(self.path, f"type {msgtype} is not in the type store; register it first", topic=topic)
        assert self._writer is not None and self._open, "not open"
        conn = self._writer.add_connection(topic, msgtype, typestore=store)
        self._connections[topic] = (conn, msgtype, store)
        self.counts[topic] = 0
        self._dirty = True
        return conn

    def write(self, topic: str, log_ns: int, data: bytes | memoryview) -> None:
        """Write serialized (CDR) bytes as they are, logged at ``log_ns``."""
        try:
            conn = self._connections[topic][0]
        except KeyError:
            raise BagError(self.path, "not declared; call add_topic first", topic=topic) from None
        assert self._writer is not None
        self._writer.write(conn, int(log_ns), data)
        self.counts[topic] += 1
        self._dirty = True
        if self._pending_chunk_bytes() >= self.chunk_size:
            self.flush()

    def write_msg(self, topic: str, log_ns: int, msg: object) -> None:
        """Serialise a rosbags message of the topic's type to CDR and write it."""
        if topic not in self._connections:
            raise BagError(self.path, "not declared; call add_topic first", topic=topic)
        _, msgtype, store = self._connections[topic]
        self.write(topic, log_ns, store.serialize_cdr(msg, msgtype))

    # -- durability --------------------------------------------------------------------------------------------------
    def _pending_chunk_bytes(self) -> int:
        if self.storage != "mcap" or self._writer is None:
            return 0
        chunk = getattr(self._writer.storage, "chunk", None)
        return chunk.bio.tell() if chunk is not None and chunk.msgs else 0

    def flush(self) -> None:
        """Make everything written so far durable (see the class docstring); a no-op when nothing is new."""
        if not self._open or not self._dirty:
            return
        assert self._writer is not None
        storage: Any = self._writer.storage
        if self.storage == "mcap":
            if self._pending_chunk_bytes():
                storage.close_chunk()
            storage.bio.flush()
            if self.fsync:
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
