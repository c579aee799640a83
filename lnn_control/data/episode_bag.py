"""One episode's bag: the recorder's topics written by index through :class:`~lnn_control.data.bag_writer.BagWriter`,
with a sidecar file that lets :func:`lnn_control.data.recovery.recover` finish the bag if its writer dies."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rosbags.interfaces import Qos
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from lnn_control.data.bag_writer import BagFormat, BagWriter, qos_metadata
from lnn_control.data.bags import IMAGE_TYPES, BagError
from lnn_control.data.message_types import ensure_type, normalize_type_name

SIDECAR = "lnn_episode.json"
"""Written into every bag folder at episode start (topics, types, hashes, offered QoS, metadata version, custom
data), so a bag whose writer was killed can be recovered with its metadata; rosbag2 tools ignore it."""
KEY_PREFIX = "lnn_control."
"""Prefix of the recorder's keys in a bag's ``custom_data``."""


@dataclass(frozen=True)
class TopicSpec:
    """One recorded topic: its name as stored in the bag, its type, subscription QoS and expected rate (0: none).

    ``msgtype`` ``""``: taken from the graph when a publisher appears; ``qos`` ``""``: chosen to match it."""

    topic: str
    msgtype: str
    qos: str = "reliable"
    expected_rate: float = 0.0


#: Subscription QoS kinds of a recorded topic.
QOS_CHOICES = ("sensor", "reliable", "latched")


def _default_qos(msgtype: str) -> str:
    return "sensor" if msgtype in IMAGE_TYPES else "reliable"


def _rate(text: str) -> float | None:
    """A RATE field as Hz, or None when ``text`` is not a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _is_type_field(text: str) -> bool:
    """A TYPE field (``pkg/msg/Type``), as opposed to a QOS word or a RATE number."""
    return text not in QOS_CHOICES and _rate(text) is None


def parse_topic_entry(index: int, entry: str) -> TopicSpec:
    """``"TOPIC [TYPE] [QOS] [RATE]"`` -> TopicSpec; ``ValueError`` names the entry (1-based) and the field.

    Without TYPE the recorder takes the type from the graph (the spec's ``msgtype`` is ``""``); without QOS too,
    the QoS is chosen to match the publishers then (``qos`` ``""``).
    """
    where = f"parameter 'topics' entry {index + 1} ({entry!r})"
    fields = entry.split()
    if not fields:
        raise ValueError(f"{where}: empty; write 'TOPIC [TYPE] [QOS] [RATE]'")
    typed = len(fields) > 1 and _is_type_field(fields[1])
    if len(fields) > (4 if typed else 3):
        raise ValueError(f"{where}: {len(fields)} fields; expected 'TOPIC [TYPE] [QOS] [RATE]'")
    topic, rest = fields[0], fields[1:]
    msgtype = ""
    if typed:
        type_name, rest = rest[0], rest[1:]
        try:
            msgtype = normalize_type_name(type_name)
        except ValueError:
            raise ValueError(f"{where}: TYPE {type_name!r} is not a message type like sensor_msgs/msg/Image") from None
    qos: str | None = None
    rate: float | None = None
    for text in rest:  # QOS and RATE are told apart by their form, so either may be left out
        if text in QOS_CHOICES:
            if qos is not None:
                raise ValueError(f"{where}: QOS given twice ({qos!r}, {text!r})")
            qos = text
            continue
        value = _rate(text)
        if value is None:
            raise ValueError(
                f"{where}: {text!r} is neither a QOS ({', '.join(QOS_CHOICES)}) nor a RATE (Hz, a number >= 0)"
            )
        if rate is not None:
            raise ValueError(f"{where}: RATE given twice ({rate:g}, {text!r})")
        rate = value
    return TopicSpec(topic, msgtype, qos or (_default_qos(msgtype) if msgtype else ""), rate or 0.0)


def parse_topics(
    topics: Sequence[str], types: Sequence[str] = (), qos: Sequence[str] = (), rates: Sequence[float] = ()
) -> tuple[list[TopicSpec], bool]:
    """The ``topics`` parameter -> (entries, whether the deprecated parallel lists were used).

    ``types``, ``qos`` and ``expected_rates`` (deprecated) go with bare topic names, one value per topic (``qos`` and
    ``expected_rates`` may be empty). ``ValueError`` names the parameter, the entry and the field.
    """
    if not topics:
        raise ValueError("parameter 'topics' is empty: nothing to record")
    if not (types or qos or rates):
        entries = [parse_topic_entry(i, entry) for i, entry in enumerate(topics)]
    else:
        entries = _parse_parallel(topics, types, qos, rates)
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if entry.topic in seen:
            raise ValueError(f"parameter 'topics' entries {seen[entry.topic] + 1} and {index + 1}: {entry.topic} twice")
        seen[entry.topic] = index
    return entries, bool(types or qos or rates)


def _parse_parallel(
    topics: Sequence[str], types: Sequence[str], qos: Sequence[str], rates: Sequence[float]
) -> list[TopicSpec]:
    """The deprecated form: bare names in ``topics``, the rest in parallel lists."""
    n = len(topics)
    for index, entry in enumerate(topics):
        if len(entry.split()) != 1:
            raise ValueError(
                f"parameter 'topics' entry {index + 1} ({entry!r}): 'types', 'qos' or 'expected_rates' (deprecated) "
                "are given too; use one form: 'TOPIC TYPE [QOS] [RATE]' entries and none of those lists"
            )
    for name, values in (("types", types), ("qos", qos), ("expected_rates", rates)):
        if len(values) != n and not (name != "types" and not values):
            raise ValueError(
                f"parameter {name!r} (deprecated) has {len(values)} entries but 'topics' has {n}; give one per topic"
                + ("" if name == "types" else " or none")
            )
    msgtypes = []
    for index, type_name in enumerate(types):
        try:
            msgtypes.append(normalize_type_name(type_name))
        except ValueError:
            raise ValueError(f"parameter 'types' entry {index + 1} ({type_name!r}): not a message type") from None
    kinds = list(qos) or [_default_qos(t) for t in msgtypes]
    expected = [float(r) for r in rates] or [0.0] * n
    return [TopicSpec(t.strip(), m, k, r) for t, m, k, r in zip(topics, msgtypes, kinds, expected, strict=True)]


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


EPISODE_FORMAT = BagFormat(fsync=True)
"""How an episode bag is written unless told: MCAP, metadata version 9, synced to the device at each flush."""


class EpisodeBag:
    """One bag on disk: :meth:`open`, :meth:`write` CDR bytes by topic index, :meth:`flush` durably, :meth:`close`
    or :meth:`abort`. Not thread-safe: one thread owns it.

    Topics whose type is not known yet (``msgtype`` ``""``) are left out until :meth:`declare` adds them (the
    sidecar is rewritten then). ``offered_qos`` maps a topic index to the QoS profiles its publishers offered;
    ``bag_format`` is how the bag is written (:class:`BagFormat`; by default MCAP, synced at each flush).
    """

    def __init__(
        self,
        path: Path,
        topics: Sequence[TopicSpec],
        *,
        bag_format: BagFormat = EPISODE_FORMAT,
        custom_data: Mapping[str, str] | None = None,
        typestore: Typestore | None = None,
        offered_qos: Mapping[int, Sequence[Qos]] | None = None,
    ) -> None:
        self.path = Path(path)
        self.topics = list(topics)
        self.bag_format = bag_format
        self.custom_data = dict(custom_data or {})
        self.store = typestore or get_typestore(Stores.ROS2_JAZZY)
        self.offered_qos = {int(k): list(v) for k, v in (offered_qos or {}).items()}
        self._declared: dict[int, str] = {}  # topic index -> digest
        self._writer: BagWriter | None = None

    def open(self) -> None:
        """Create the bag folder, its storage file, the topics (with definitions) and the sidecar file."""
        for spec in self.topics:
            if spec.msgtype:
                ensure_type(self.store, spec.msgtype)
        writer = BagWriter(
            self.path, bag_format=self.bag_format, typestore=self.store, custom_data=self.custom_data
        ).open()
        self._writer = writer
        try:
            for index, spec in enumerate(self.topics):
                if spec.msgtype:
                    self._add(index, spec)
            self._write_sidecar()
            writer.flush()
        except BaseException:
            self.abort(remove=True)
            raise

    def _add(self, index: int, spec: TopicSpec) -> None:
        assert self._writer is not None, "not open"
        conn = self._writer.add_topic(spec.topic, spec.msgtype, offered_qos=self.offered_qos.get(index, ()))
        self._declared[index] = conn.digest

    def _write_sidecar(self) -> None:
        fmt = self.bag_format
        topics = []
        for index, digest in sorted(self._declared.items()):
            spec = self.topics[index]
            qos = qos_metadata(self.offered_qos.get(index, ()), fmt.version)
            topics.append({**asdict(spec), "digest": digest, "offered_qos_profiles": qos})
        sidecar = {
            "storage": fmt.storage,
            "version": fmt.version,
            "compression": fmt.compression,
            "topics": topics,
            "custom_data": self.custom_data,
        }
        _write_json(self.path / SIDECAR, sidecar, fsync=fmt.fsync)

    def declare(self, index: int, spec: TopicSpec, offered_qos: Sequence[Qos] = ()) -> None:
        """Add topic ``index`` (now typed, as ``spec`` says) to the open bag, with its publishers' QoS."""
        ensure_type(self.store, spec.msgtype)
        self.topics[index] = spec
        self.offered_qos[index] = list(offered_qos)
        if index not in self._declared:
            self._add(index, spec)
            self._write_sidecar()

    @property
    def is_open(self) -> bool:
        """True between :meth:`open` and :meth:`close` or :meth:`abort`."""
        return self._writer is not None

    @property
    def files(self) -> list[str]:
        """Names of the storage files written so far (several when the bag is split)."""
        writer = self._writer  # read from other threads (status): the writer may close meanwhile
        return [f.name for f in list(writer.files)] if writer is not None else []

    def write(self, index: int, log_ns: int, data: bytes | memoryview) -> None:
        """Write one message of ``self.topics[index]`` (CDR bytes, as received) logged at ``log_ns``."""
        assert self._writer is not None, "not open"
        self._writer.write(self.topics[index].topic, log_ns, data)

    def flush(self) -> None:
        """Make everything written so far durable (:meth:`BagWriter.flush`)."""
        if self._writer is not None:
            self._writer.flush()

    def close(self, custom_data: Mapping[str, str] | None = None) -> None:
        """Finish the bag and write ``metadata.yaml`` with ``custom_data`` added (synced with ``bag_format.fsync``)."""
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
