"""The one MCAP parser: the records of an MCAP file, at top level and inside chunks, and the few a repair writes.

:func:`scan` reads a file from its start up to the first incomplete or damaged record and says what it holds
(schemas, channels, messages per channel, chunks with where their indexes are); :func:`finish` gives the bytes that
make such a prefix a complete file again (the last chunk's message indexes if they are missing, data end, summary,
footer). Record layouts follow the MCAP specification (version 0); nothing here writes a file.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

MAGIC = b"\x89MCAP0\r\n"
FOOTER, SCHEMA, CHANNEL, MESSAGE, CHUNK, MESSAGE_INDEX, CHUNK_INDEX = 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08
STATISTICS, SUMMARY_OFFSET, DATA_END = 0x0B, 0x0E, 0x0F
_FOOTER_SIZE = 1 + 8 + 20  # opcode, length, summary start, summary offset start, crc


class McapError(ValueError):
    """A record that cannot be parsed (damaged, or cut short)."""


# -- reading ---------------------------------------------------------------------------------------------------------


def records(buf: bytes | memoryview, start: int = 0) -> Iterator[tuple[int, int, memoryview]]:
    """``(offset, opcode, body)`` of the complete records in ``buf`` from ``start``, up to the first incomplete one."""
    view = memoryview(buf)
    pos = start
    while pos + 9 <= len(view):
        opcode = view[pos]
        end = pos + 9 + int.from_bytes(view[pos + 1 : pos + 9], "little")
        if end > len(view):
            return
        yield pos, opcode, view[pos + 9 : end]
        pos = end


def read_string(body: bytes | memoryview, pos: int) -> tuple[str, int]:
    """The length-prefixed UTF-8 string at ``pos`` of a record body, and the offset after it."""
    n = int.from_bytes(body[pos : pos + 4], "little")
    end = pos + 4 + n
    if pos + 4 > len(body) or end > len(body):
        raise McapError("a string runs past the end of its record")
    return bytes(body[pos + 4 : end]).decode(), end


def is_complete(data: bytes | memoryview) -> bool:
    """True when ``data`` ends with a footer record and the closing magic (its writer finished)."""
    tail = len(MAGIC) + _FOOTER_SIZE
    return len(data) >= len(MAGIC) + tail and bytes(data[-len(MAGIC) :]) == MAGIC and data[-tail] == FOOTER


@dataclass(frozen=True)
class Schema:
    """A schema record: a message type and its definition."""

    id: int
    name: str
    encoding: str
    """``ros2msg`` or ``ros2idl``."""
    text: str
    body: bytes
    """The record's body as read, for a summary to repeat."""


@dataclass(frozen=True)
class Channel:
    """A channel record: a topic and its schema."""

    id: int
    schema_id: int
    topic: str
    body: bytes


def parse_schema(body: memoryview) -> Schema:
    """A schema record's fields."""
    (sid,) = struct.unpack_from("<H", body, 0)
    name, pos = read_string(body, 2)
    encoding, pos = read_string(body, pos)
    text, _ = read_string(body, pos)  # the data is length-prefixed bytes, a string here
    return Schema(sid, name, encoding, text, bytes(body))


def parse_channel(body: memoryview) -> Channel:
    """A channel record's fields."""
    cid, sid = struct.unpack_from("<HH", body, 0)
    topic, _ = read_string(body, 4)
    return Channel(cid, sid, topic, bytes(body))


def parse_message(body: memoryview) -> tuple[int, int, memoryview]:
    """``(channel id, log time in ns, data)`` of a message record."""
    if len(body) < 22:
        raise McapError("message record shorter than its header")
    cid, _seq, log_ns, _publish_ns = struct.unpack_from("<HIQQ", body, 0)
    return cid, log_ns, body[22:]


@dataclass(frozen=True)
class Chunk:
    """A chunk record, its payload decompressed."""

    start_ns: int
    end_ns: int
    compression: str
    compressed_size: int
    payload: bytes


def parse_chunk(body: memoryview) -> Chunk:
    """A chunk record's fields and payload; :class:`McapError` when it is cut short or does not decompress."""
    from rosbags.rosbag2.storage_mcap import decompress  # the codecs rosbags reads chunks with

    start, end, size, crc = struct.unpack_from("<QQQI", body, 0)
    compression, pos = read_string(body, 28)
    (csize,) = struct.unpack_from("<Q", body, pos)
    data = bytes(body[pos + 8 : pos + 8 + csize])
    if len(data) != csize:
        raise McapError("chunk shorter than its header says")
    try:
        payload = decompress(data, compression, size, crc)
    except Exception as exc:  # noqa: BLE001 - a bad codec, size or checksum: a damaged chunk
        raise McapError(f"chunk cannot be decompressed: {exc}") from exc
    return Chunk(start, end, compression, csize, payload)


Item = Schema | Channel | tuple[int, int, memoryview] | None


def _parse(opcode: int, body: memoryview) -> Item:
    if opcode == SCHEMA:
        return parse_schema(body)
    if opcode == CHANNEL:
        return parse_channel(body)
    if opcode == MESSAGE:
        return parse_message(body)
    return None  # headers, metadata, attachments, indexes: nothing a repair needs


@dataclass
class ChunkSpan:
    """Where a chunk lies in the file and what its index records say (or must say)."""

    offset: int
    length: int
    start_ns: int
    end_ns: int
    compression: str
    compressed_size: int
    size: int
    messages: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    """Channel -> ``(log time, offset in the chunk)`` of each of its messages in the chunk."""
    index_offsets: dict[int, int] = field(default_factory=dict)
    """Channel -> file offset of its message index record."""
    index_end: int = 0
    """File offset after the chunk's message index records."""

    @property
    def indexed(self) -> bool:
        """True when every channel with messages in the chunk has its message index record."""
        return set(self.index_offsets) == set(self.messages)


MessageFn = Callable[[Channel, Schema | None, int, memoryview], None]
"""Called with ``(channel, its schema or None, log time, data)`` for each message, in file order."""


@dataclass
class Scan:
    """What the complete records of an MCAP file hold, up to the first incomplete or damaged one."""

    schemas: dict[int, Schema] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    start_ns: int = 2**63 - 1
    end_ns: int = 0
    chunks: list[ChunkSpan] = field(default_factory=list)
    end: int = len(MAGIC)
    """File offset after the last complete record read (data end, footer and summary are not read)."""

    @property
    def messages(self) -> int:
        """Messages in the records read."""
        return sum(self.counts.values())

    def topics(self) -> list[tuple[str, str, int]]:
        """``(topic, type, message count)`` per channel, in channel order."""
        out = []
        for cid in sorted(self.channels):
            channel = self.channels[cid]
            schema = self.schemas.get(channel.schema_id)
            out.append((channel.topic, schema.name if schema else "", self.counts.get(cid, 0)))
        return out

    def _take(self, item: Item, on_message: MessageFn | None) -> None:
        if isinstance(item, Schema):
            self.schemas[item.id] = item
        elif isinstance(item, Channel):
            self.channels[item.id] = item
        elif item is not None:
            cid, log_ns, data = item
            self.counts[cid] = self.counts.get(cid, 0) + 1
            self.start_ns = min(self.start_ns, log_ns)
            self.end_ns = max(self.end_ns, log_ns)
            channel = self.channels.get(cid)
            if on_message is not None and channel is not None:
                on_message(channel, self.schemas.get(channel.schema_id), log_ns, data)

    def _chunk(self, pos: int, body: memoryview, on_message: MessageFn | None) -> None:
        chunk = parse_chunk(body)
        inner = [(offset, opcode, _parse(opcode, rec)) for offset, opcode, rec in records(chunk.payload)]
        end = pos + 9 + len(body)
        span = ChunkSpan(pos, end - pos, chunk.start_ns, chunk.end_ns, chunk.compression, chunk.compressed_size,
                         len(chunk.payload), index_end=end)  # fmt: skip
        for offset, opcode, item in inner:
            self._take(item, on_message)
            if opcode == MESSAGE and item is not None:
                span.messages.setdefault(item[0], []).append((item[1], offset))  # type: ignore[index]
        self.chunks.append(span)

    def _record(self, pos: int, opcode: int, body: memoryview, on_message: MessageFn | None) -> None:
        if opcode == CHUNK:
            self._chunk(pos, body, on_message)
        elif opcode == MESSAGE_INDEX and self.chunks:  # an index of the chunk just before
            (cid,) = struct.unpack_from("<H", body, 0)
            self.chunks[-1].index_offsets[cid] = pos
            self.chunks[-1].index_end = pos + 9 + len(body)
        else:
            self._take(_parse(opcode, body), on_message)


def scan(data: bytes | memoryview, on_message: MessageFn | None = None) -> Scan:
    """Read the complete records of an MCAP file's data section, calling ``on_message`` for each message.

    Stops at the first incomplete or damaged record, at the data end record, or at zero bytes (space a file system
    allocated but never wrote). :class:`McapError` when ``data`` does not start with the MCAP magic.
    """
    if bytes(data[: len(MAGIC)]) != MAGIC:
        raise McapError("not an MCAP file (bad magic)")
    result = Scan()
    for pos, opcode, body in records(data, len(MAGIC)):
        if opcode in (DATA_END, FOOTER, 0):
            break
        try:
            result._record(pos, opcode, body, on_message)
        except (McapError, struct.error, UnicodeDecodeError):
            break
        result.end = pos + 9 + len(body)
    return result


# -- writing ---------------------------------------------------------------------------------------------------------


def record(opcode: int, body: bytes) -> bytes:
    """One record: opcode, length, body."""
    return bytes([opcode]) + struct.pack("<Q", len(body)) + body


def string(text: str) -> bytes:
    """A length-prefixed UTF-8 string."""
    data = text.encode()
    return struct.pack("<I", len(data)) + data


def message_indexes(span: ChunkSpan, at: int) -> bytes:
    """Message index records for ``span``, to be written at file offset ``at``; updates the span's offsets."""
    out = bytearray()
    span.index_offsets = {}
    for cid, entries in sorted(span.messages.items()):
        span.index_offsets[cid] = at + len(out)
        body = struct.pack("<HI", cid, 16 * len(entries)) + b"".join(struct.pack("<QQ", t, o) for t, o in entries)
        out += record(MESSAGE_INDEX, body)
    span.index_end = at + len(out)
    return bytes(out)


def chunk_index(span: ChunkSpan) -> bytes:
    """The body of a chunk index record for ``span``."""
    offsets = b"".join(struct.pack("<HQ", cid, off) for cid, off in sorted(span.index_offsets.items()))
    chunk_end = span.offset + span.length
    return (
        struct.pack("<QQQQ", span.start_ns, span.end_ns, span.offset, span.length)
        + struct.pack("<I", len(offsets))
        + offsets
        + struct.pack("<Q", span.index_end - chunk_end)
        + string(span.compression)
        + struct.pack("<QQ", span.compressed_size, span.size)
    )


def statistics(found: Scan) -> bytes:
    """The body of a statistics record for what ``found`` holds."""
    counts = b"".join(struct.pack("<HQ", cid, n) for cid, n in sorted(found.counts.items()))
    total = found.messages
    return struct.pack(
        "<QHIIIIQQI",
        total,
        len(found.schemas),
        len(found.channels),
        0,  # attachments
        0,  # metadata records
        len(found.chunks),
        found.start_ns if total else 0,
        found.end_ns if total else 0,
        len(counts),
    ) + counts


def summary(found: Scan, at: int) -> bytes:
    """Data end, summary (schemas, channels, chunk indexes, statistics, their offsets), footer and magic, to be
    written at file offset ``at``."""
    out = bytearray(record(DATA_END, struct.pack("<I", 0)))
    summary_start = at + len(out)
    groups = (
        (SCHEMA, [s.body for _, s in sorted(found.schemas.items())]),
        (CHANNEL, [c.body for _, c in sorted(found.channels.items())]),
        (CHUNK_INDEX, [chunk_index(span) for span in found.chunks]),
        (STATISTICS, [statistics(found)]),
    )
    sections = []
    for opcode, bodies in groups:
        begin = at + len(out)
        for body in bodies:
            out += record(opcode, body)
        if at + len(out) > begin:
            sections.append((opcode, begin, at + len(out) - begin))
    offsets_start = at + len(out)
    for opcode, begin, length in sections:
        out += record(SUMMARY_OFFSET, bytes([opcode]) + struct.pack("<QQ", begin, length))
    out += record(FOOTER, struct.pack("<QQI", summary_start, offsets_start, 0)) + MAGIC
    return bytes(out)


def finish(found: Scan) -> tuple[int, bytes]:
    """``(offset, tail)``: cutting the scanned file at ``offset`` and appending ``tail`` makes it complete.

    The cut is after the last complete record, or after the last chunk when its message indexes were cut short
    (they are written afresh).
    """
    keep = found.end
    tail = b""
    last = found.chunks[-1] if found.chunks else None
    if last is not None and not last.indexed:
        keep = last.offset + last.length
        tail = message_indexes(last, keep)
    return keep, tail + summary(found, keep + len(tail))
