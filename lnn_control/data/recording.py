"""The recorder's engine, without ROS: episodes as rosbag2 bags written from a queue by one thread.

:class:`EpisodeRecorder` takes serialized messages (the CDR bytes exactly as the subscription received them) from
any thread, queues them, and writes them into one bag per episode (:class:`~lnn_control.data.episode_bag.EpisodeBag`,
MCAP by default, sqlite3 on request) on a writer thread of its own, so a slow or failing disk never blocks the DDS
callbacks. The node (:mod:`lnn_control.nodes.recorder`) only wires ROS to it.

Durability. Every ``flush_period`` seconds (and whenever the pending MCAP chunk reaches the format's ``chunk_size``
bytes) the writer makes everything written so far durable (:meth:`lnn_control.data.bag_writer.BagWriter.flush`). A
process killed with SIGKILL therefore loses at most the last ``flush_period`` of data, and its bag lacks only the
summary and ``metadata.yaml``: :func:`lnn_control.data.recovery.recover` adds them (``lnn-control recover BAG``;
the recorder does it by itself for unfinished bags under its ``output_dir`` when it starts). What was measured is
in the README; test_recorder.py checks that everything written before the last flush survives.

Acknowledged. A message is *accepted* when :meth:`EpisodeRecorder.accept` put it into the episode's queue (it then
counts in ``received``); nothing accepted is silently lost: :meth:`EpisodeRecorder.stop` returns success only after
every accepted message is in the closed (and, with the format's ``fsync``, synced) bag, and its message states the
counts. Messages that cannot be kept are counted per topic and reason (``queue_full``, ``write_error``) and
reported.

Topics configured without a type (``TopicSpec.msgtype`` ``""``) join later: :meth:`EpisodeRecorder.resolve` gives
them the type the graph offers, and an open episode declares them in its bag before their first message. Bags are
written as one :class:`~lnn_control.data.bag_writer.BagFormat` says (``bag_format``: storage, metadata ``version``
8 or 9, optionally zstd-compressed MCAP chunks, split into files by ``max_bag_size`` / ``max_bag_duration_ns``), with
each topic's offered QoS (``start(..., offered_qos=...)``); recovery handles every such bag.

Disk problems (an unwritable ``output_dir``, a full disk, any ``OSError``) end the episode with an error that names
the path and the cause; the bag is closed (or recovered) as far as the disk allows, the engine goes back to idle and
the next :meth:`start` may try again. Nothing here waits forever: every wait has a timeout.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rosbags.typesys import Stores, get_typestore

from lnn_control.data.bag_writer import BagFormat
from lnn_control.data.bags import BagError
from lnn_control.data.episode_bag import EPISODE_FORMAT, KEY_PREFIX, EpisodeBag, TopicSpec
from lnn_control.data.message_types import MessageTypeError, ensure_type
from lnn_control.data.recovery import recover

LogFn = Callable[[str, str], None]  # (severity: "info" | "warning" | "error", text)


class RecorderError(Exception):
    """A problem the recorder reports to its caller (service response, log); the text names path and cause."""


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

    A sample received without its number (``None``: an rclpy that passes no message info to callbacks, Humble's)
    filled a hole: the next gap counts that many fewer. Exact for one publisher; with several, a lower bound.
    Numbers the middleware does not give (:data:`NO_SEQUENCE`) count nothing.
    """

    def __init__(self, max_streams: int = MAX_STREAMS) -> None:
        self.max_streams = max_streams
        self.last: list[int] = []
        self.unnumbered = 0  # samples without a number since the last numbered one

    def lost(self, sequence: int | None) -> int:
        """Feed one received sample's publication sequence number; how many samples were lost just before it."""
        if sequence is None:
            self.unnumbered += 1
            return 0
        if sequence in NO_SEQUENCE:
            return 0
        credit, self.unnumbered = self.unnumbered, 0
        below = [i for i, last in enumerate(self.last) if last < sequence]
        if not below:
            if len(self.last) >= self.max_streams:
                self.last.pop(0)
            self.last.append(sequence)
            return 0
        i = max(below, key=lambda k: self.last[k])
        gap = sequence - self.last[i] - 1
        self.last[i] = sequence
        return max(0, gap - credit)


@dataclass
class RecordingEpisode:
    """An episode in progress (or just ended)."""

    number: int
    path: Path
    started_ns: int
    stats: list[TopicStats]
    writer: EpisodeBag | None = None
    error: str = ""
    stop_ns: int | None = None  # messages received after this (system time) are not part of the episode


class EpisodeRecorder:
    """The recorder's engine: one episode at a time, written from a queue by one thread.

    ``bag_format`` is how each episode's bag is written (:class:`~lnn_control.data.bag_writer.BagFormat`; by
    default MCAP, synced at each flush). ``log(severity, text)`` receives what the node should log. All public
    methods are thread-safe and return within their timeouts.
    """

    def __init__(
        self,
        topics: Sequence[TopicSpec],
        *,
        output_dir: str | Path,
        bag_format: BagFormat = EPISODE_FORMAT,
        prefix: str = "episode_",
        queue_size: int = 2000,
        max_queue_bytes: int = 512 << 20,
        flush_period: float = 1.0,
        min_free_bytes: int = 200 << 20,
        log: LogFn | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        drain: Callable[[], None] | None = None,
    ) -> None:
        self.bag_format = bag_format
        self.topics = list(topics)
        self.output_dir = Path(output_dir).expanduser()
        self.prefix = prefix
        self.queue_size = int(queue_size)
        self.max_queue_bytes = int(max_queue_bytes)
        self.flush_period = float(flush_period)
        self.min_free_bytes = int(min_free_bytes)
        self.log = log or (lambda _sev, _text: None)
        self.clock_ns = clock_ns
        self.drain = drain
        self._gaps = [SequenceGaps() for _ in self.topics]
        self.lost_total = [0] * len(self.topics)
        self.store = get_typestore(Stores.ROS2_JAZZY)
        for spec in self.topics:  # fail at start-up, not at the first episode, on an unknown type
            if spec.msgtype:  # the others come from the graph later (resolve)
                self._ensure(spec.msgtype)
        self._cond = threading.Condition()
        self._items: deque = deque()
        self._queued_bytes = 0
        self._queued_msgs = 0
        self.episode: RecordingEpisode | None = None  # the one accepting messages (None: idle)
        self.last_episode: RecordingEpisode | None = None
        self.last_error = ""
        self._counter = 0
        self.last_recv_ns = [0] * len(self.topics)
        self.last_callback = [0.0] * len(self.topics)  # monotonic time of the last accept() call per topic
        self._shutdown = False
        self._thread = threading.Thread(target=self._run, name="bag_writer", daemon=True)
        self._thread.start()

    def _ensure(self, msgtype: str) -> None:
        try:
            ensure_type(self.store, msgtype)
        except MessageTypeError as exc:
            raise RecorderError(str(exc)) from exc

    def resolve(self, index: int, msgtype: str, qos: str, offered_qos: Sequence[Any] = ()) -> TopicSpec:
        """Topic ``index`` (configured without a type) now has ``msgtype`` (from the graph) and subscription QoS
        ``qos``; an open episode declares it in its bag before any of its messages. The new spec;
        :class:`RecorderError` when the type's definition cannot be found."""
        self._ensure(msgtype)
        with self._cond:
            spec = dataclasses.replace(self.topics[index], msgtype=msgtype, qos=qos)
            self.topics[index] = spec
            episode = self.episode
            if episode is not None:  # queued before any message of the topic: the writer declares it first
                self._items.append(("declare", (episode, index, spec, list(offered_qos)), threading.Event(), []))
                self._cond.notify()
        return spec

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

    def start(
        self,
        custom_data: Mapping[str, str],
        timeout: float = 30.0,
        offered_qos: Mapping[int, Sequence[Any]] | None = None,
    ) -> tuple[bool, str]:
        """Open a new episode's bag under ``output_dir``; (success, message naming the bag or the problem).

        ``offered_qos``: topic index -> the QoS profiles (rosbags ``Qos``) its publishers offer, stored per topic."""
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
        episode = RecordingEpisode(self._counter, path, self.clock_ns(), [TopicStats() for _ in self.topics])
        custom = dict(custom_data)
        custom[KEY_PREFIX + "episode"] = path.name
        ok, message = self._control("open", (episode, custom, dict(offered_qos or {})), timeout)
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
                "types": {spec.topic: spec.msgtype for spec in self.topics},  # "": not known yet (from the graph)
                "files": episode.writer.files if episode and episode.writer is not None else [],
                "last_error": self.last_error,
            }

    # -- the writer thread --------------------------------------------------------------------------------------------

    def _run(self) -> None:
        next_flush = time.monotonic() + self.flush_period
        next_disk_check = time.monotonic() + 1.0
        current: RecordingEpisode | None = None
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

    def _write(
        self, current: RecordingEpisode | None, episode: RecordingEpisode, index: int, log_ns: int, data: bytes
    ) -> RecordingEpisode | None:
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

    def _guard(self, episode: RecordingEpisode, fn: Callable[[], None]) -> RecordingEpisode | None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001
            return self._end_with_error(episode, f"flush failed: {_describe(exc)}")
        return episode

    def _check_disk(self, episode: RecordingEpisode) -> RecordingEpisode | None:
        try:
            free = shutil.disk_usage(self.output_dir).free
        except OSError as exc:
            return self._end_with_error(episode, f"cannot check free space: {_describe(exc)}")
        if free < self.min_free_bytes:
            return self._end_with_error(
                episode, f"disk nearly full ({free >> 20} MiB free < min_free_mb {self.min_free_bytes >> 20})"
            )
        return episode

    def _end_with_error(self, episode: RecordingEpisode, reason: str) -> None:
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

    def _close_after_error(self, episode: RecordingEpisode, reason: str) -> str:
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
                report = recover(episode.path)
                return f"bag could not be closed ({_describe(exc)}) and was recovered: {report.messages} messages"
            except Exception as exc2:  # noqa: BLE001
                return (
                    f"bag left unfinished ({_describe(exc2)}); it is recovered at the next start, or with "
                    f"'lnn-control recover {episode.path}'"
                )

    def _end_data(self, episode: RecordingEpisode, reason: str) -> dict[str, str]:
        stats = {spec.topic: asdict(st) for spec, st in zip(self.topics, episode.stats, strict=True)}
        return {
            KEY_PREFIX + "end_reason": reason,
            KEY_PREFIX + "stats": json.dumps(stats, sort_keys=True),
            KEY_PREFIX + "end_time": datetime.now().astimezone().isoformat(timespec="seconds"),
        }

    def _handle(self, current: RecordingEpisode | None, item: tuple) -> RecordingEpisode | None:
        op, payload, done, result = item
        try:
            if op == "declare":
                return self._declare(current, payload)
            if op == "open":
                episode, custom, offered = payload
                with self._cond:
                    topics = list(self.topics)
                writer = EpisodeBag(
                    episode.path,
                    topics,
                    bag_format=self.bag_format,
                    custom_data=custom,
                    typestore=self.store,
                    offered_qos=offered,
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

    def _declare(self, current: RecordingEpisode | None, payload: tuple) -> RecordingEpisode | None:
        """A topic typed from the graph joins the open episode's bag."""
        episode, index, spec, offered = payload
        if current is not episode or episode.writer is None:
            return current  # the episode ended meanwhile; the next one declares it at its start
        try:
            episode.writer.declare(index, spec, offered)
        except Exception as exc:  # noqa: BLE001
            return self._end_with_error(episode, f"cannot add {spec.topic} ({spec.msgtype}): {_describe(exc)}")
        return current

    def _summary(self, episode: RecordingEpisode, close_s: float) -> str:
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
    if isinstance(exc, BagError) and exc.__cause__ is not None:
        exc = exc.__cause__  # the writer's BagError wraps the OSError that says what went wrong
    if isinstance(exc, OSError) and exc.errno is not None:
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc} [{name}]{where}"
    return f"{type(exc).__name__}: {exc}"
