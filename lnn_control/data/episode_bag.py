"""One episode's bag: the recorder's topics written by index through :class:`~lnn_control.data.bag_writer.BagWriter`,
with a sidecar file that lets :func:`lnn_control.data.recovery.recover` finish the bag if its writer dies."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from lnn_control.data.bag_writer import DEFAULT_CHUNK_SIZE, BagWriter
from lnn_control.data.bags import BagError
from lnn_control.data.message_types import ensure_type

SIDECAR = "lnn_episode.json"
"""Written into every bag folder at episode start (topics, types, hashes, metadata), so a bag whose writer was
killed can be recovered with its metadata; rosbag2 tools ignore it."""
KEY_PREFIX = "lnn_control."
"""Prefix of the recorder's keys in a bag's ``custom_data``."""


@dataclass(frozen=True)
class TopicSpec:
    """One recorded topic: its name as stored in the bag, its type, subscription QoS and expected rate (0: none)."""

    topic: str
    msgtype: str
    qos: str = "reliable"
    expected_rate: float = 0.0


def is_unfinished(path: Path) -> bool:
    """A bag folder written by the recorder whose ``metadata.yaml`` is missing (its writer did not finish)."""
    return path.is_dir() and (path / SIDECAR).is_file() and not (path / "metadata.yaml").is_file()


def read_sidecar(folder: Path) -> dict[str, Any] | None:
    """The sidecar of a bag folder, or None when it has none; :class:`BagError` when it cannot be read."""
    path = folder / SIDECAR
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BagError(folder, f"cannot read {SIDECAR}: {exc}") from exc
    if not isinstance(data, dict):
        raise BagError(folder, f"{SIDECAR} holds no JSON object")
    return data


def _write_json(path: Path, data: Any, *, fsync: bool) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())
    tmp.replace(path)


class EpisodeBag:
    """One bag on disk: :meth:`open`, :meth:`write` CDR bytes by topic index, :meth:`flush` durably, :meth:`close`
    or :meth:`abort`. Not thread-safe: one thread owns it."""

    def __init__(
        self,
        path: Path,
        topics: Sequence[TopicSpec],
        *,
        storage: str = "mcap",
        custom_data: Mapping[str, str] | None = None,
        typestore: Typestore | None = None,
        fsync: bool = True,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        self.path = Path(path)
        self.topics = list(topics)
        self.storage = storage
        self.custom_data = dict(custom_data or {})
        self.store = typestore or get_typestore(Stores.ROS2_JAZZY)
        self.fsync = fsync
        self.chunk_size = int(chunk_size)
        self._writer: BagWriter | None = None

    def open(self) -> None:
        """Create the bag folder, its storage file, the topics (with definitions) and the sidecar file."""
        for spec in self.topics:
            ensure_type(self.store, spec.msgtype)
        writer = BagWriter(self.path, storage=self.storage, typestore=self.store, custom_data=self.custom_data,
                           fsync=self.fsync, chunk_size=self.chunk_size).open()  # fmt: skip
        self._writer = writer
        try:
            digests = [writer.add_topic(spec.topic, spec.msgtype).digest for spec in self.topics]
            sidecar = {
                "storage": self.storage,
                "topics": [{**asdict(spec), "digest": d} for spec, d in zip(self.topics, digests, strict=True)],
                "custom_data": self.custom_data,
            }
            _write_json(self.path / SIDECAR, sidecar, fsync=self.fsync)
            writer.flush()
        except BaseException:
            self.abort(remove=True)
            raise

    @property
    def is_open(self) -> bool:
        """True between :meth:`open` and :meth:`close` or :meth:`abort`."""
        return self._writer is not None

    def write(self, index: int, log_ns: int, data: bytes | memoryview) -> None:
        """Write one message of ``self.topics[index]`` (CDR bytes, as received) logged at ``log_ns``."""
        assert self._writer is not None, "not open"
        self._writer.write(self.topics[index].topic, log_ns, data)

    def flush(self) -> None:
        """Make everything written so far durable (:meth:`BagWriter.flush`)."""
        if self._writer is not None:
            self._writer.flush()

    def close(self, custom_data: Mapping[str, str] | None = None) -> None:
        """Finish the bag and write ``metadata.yaml`` with ``custom_data`` added (then sync, with ``fsync``)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close(custom_data)

    def abort(self, *, remove: bool) -> None:
        """Stop without finishing: close the files as they are (``remove``: delete the bag folder)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.abort(remove=remove)
        elif remove:
            shutil.rmtree(self.path, ignore_errors=True)
