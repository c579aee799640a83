"""Pair every camera frame with the human command in force at the frame's time.

The command in force is the latest command stamped at or before the frame, if it is no older than
``tolerance_s`` (0.25 s by default). A frame with no such command is counted and skipped, never given a guessed
command; so is a frame that does not decode, and a frame whose stamp repeats the previous frame's.

Stamps: ``stamp_source="header"`` (the default) uses each message's ``header.stamp``, falling back to the bag's log
time for a message without a header (Twist) or with a zero stamp; ``"log"`` uses log times throughout. Frames and
commands must not go backwards in time (in log order); a bag where they do is refused with a :class:`BagError`, as
is one whose frames change size within the topic.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from lnn_control.command import Command
from lnn_control.data.bags import IMAGE_TYPES, Bag, BagError, Record, normalize_msgtype
from lnn_control.data.labels import COMMAND_TYPES, CommandConfig, CommandError, command_from_msg
from lnn_control.vision import DEFAULT_MAX_PIXELS, ImageDecodeError, decode_msg

STAMP_SOURCES = ("header", "log")
MAX_LISTED_ERRORS = 5


@dataclass(frozen=True)
class PairingConfig:
    """Which topics to pair and how (see the module doc)."""

    image_topic: str | None = None
    """Image or CompressedImage topic; None picks the bag's only image topic."""
    command_topic: str | None = None
    """Command topic (Twist, TwistStamped, Joy, Ackermann); None picks the bag's only command topic."""
    tolerance_s: float = 0.25
    stamp_source: str = "header"
    commands: CommandConfig = field(default_factory=CommandConfig)
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if self.stamp_source not in STAMP_SOURCES:
            raise ValueError(f"pairing.stamp_source must be one of {STAMP_SOURCES}, got {self.stamp_source!r}")
        if not self.tolerance_s >= 0:
            raise ValueError(f"pairing.tolerance_s must be >= 0, got {self.tolerance_s}")
        if isinstance(self.commands, Mapping):  # built from YAML / JSON
            object.__setattr__(self, "commands", CommandConfig(**self.commands))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (the cache key uses it)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PairingConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown pairing option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**dict(data))


@dataclass
class PairReport:
    """What pairing one bag gave: counts, sizes and the first few problems."""

    bag: str
    image_topic: str
    command_topic: str
    image_type: str = ""
    command_type: str = ""
    frames: int = 0
    """Image messages read."""
    paired: int = 0
    skipped_no_command: int = 0
    skipped_undecodable: int = 0
    skipped_duplicate_stamp: int = 0
    commands: int = 0
    """Command messages read."""
    bad_commands: int = 0
    """Command messages that gave no usable command (non-finite, missing Joy axis); frames they govern are skipped."""
    frame_width: int | None = None
    frame_height: int | None = None
    errors: list[str] = field(default_factory=list)
    """The first few decode / command problems, each naming the topic and the message."""
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return asdict(self)

    def summary(self) -> str:
        """One line: ``bag: image -> command: 998 paired, 2 no command, 0 undecodable``."""
        extra = []
        if self.skipped_duplicate_stamp:
            extra.append(f"{self.skipped_duplicate_stamp} duplicate stamp")
        if self.bad_commands:
            extra.append(f"{self.bad_commands} bad command messages")
        text = (
            f"{self.bag}: {self.image_topic} -> {self.command_topic}: {self.paired} paired of {self.frames} frames, "
            f"{self.skipped_no_command} no command, {self.skipped_undecodable} undecodable"
        )
        if extra:
            text += ", " + ", ".join(extra)
        return text + (f" ({self.hint})" if self.hint else "")


@dataclass(frozen=True)
class Pair:
    """A frame and the command in force at its stamp."""

    index: int
    """Position of the frame among the image topic's messages (0-based, log order)."""
    stamp_ns: int
    frame: np.ndarray | None
    """HxWx3 uint8 RGB, or None when pairing without decoding."""
    command: Command | None
    """Steering and velocity, with ``stamp_ns`` of the command message; None only with ``all_frames=True`` for a
    frame that has no command in force (such frames are still counted in ``skipped_no_command``)."""


def choose_stamp(record: Record, source: str) -> int:
    """The record's time under ``source``: header stamp when present and non-zero (for "header"), else log time."""
    if source == "header" and record.header_ns:
        return record.header_ns
    return record.log_ns


def pick_topic(bag: Bag, wanted: str | None, types: tuple[str, ...], what: str, option: str) -> str:
    if wanted:
        name = bag.resolve_topic(wanted)
        msgtype = normalize_msgtype(bag.topics[name].msgtype)
        if msgtype not in types:
            raise BagError(bag.path, f"has type {msgtype}, not an {what} type ({', '.join(types)})", topic=name)
        return name
    candidates = bag.topics_of_type(*types)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise BagError(bag.path, f"no {what} topic ({', '.join(types)}); the bag has " + bag.describe_topics())
    raise BagError(bag.path, f"several {what} topics ({', '.join(candidates)}); choose one with {option}")


def _command_in_force(
    stamp: int, cmd_stamps: np.ndarray, valid: np.ndarray, commands: list[Command | None], tol_ns: int
) -> Command | None:
    """The latest command stamped at or before ``stamp``, if no older than ``tol_ns`` and usable; else None."""
    j = int(np.searchsorted(cmd_stamps, stamp, side="right")) - 1
    return None if j < 0 or stamp - int(cmd_stamps[j]) > tol_ns or not valid[j] else commands[j]


def _fmt_ns(ns: int) -> str:
    return f"{ns / 1e9:.3f} s"


class FramePairer:
    """Iterate the :class:`Pair` s of one bag; :attr:`report` fills in as it goes and is complete at the end.

    ``bag`` is an open :class:`Bag` (left open) or a path (opened and closed here). Topic and type problems raise
    :class:`BagError` at construction; stamp and size problems while iterating. With ``all_frames=True`` frames
    without a command in force are yielded too, with ``command=None`` (offline replay feeds every frame to the
    policy, so its dt stays real, and scores only the paired ones).
    """

    def __init__(
        self,
        bag: Bag | str | Path,
        config: PairingConfig | None = None,
        *,
        decode: bool = True,
        progress: bool = False,
        all_frames: bool = False,
    ) -> None:
        self.config = config or PairingConfig()
        self._own = not isinstance(bag, Bag)
        self.bag = Bag(bag) if not isinstance(bag, Bag) else bag
        try:
            self.image_topic = pick_topic(self.bag, self.config.image_topic, IMAGE_TYPES, "image", "image_topic")
            self.command_topic = pick_topic(
                self.bag, self.config.command_topic, COMMAND_TYPES, "command", "command_topic"
            )
            for topic in (self.image_topic, self.command_topic):
                if self.bag.topics[topic].count == 0:
                    raise BagError(self.bag.path, "has no messages", topic=topic)
        except BaseException:
            if self._own:
                self.bag.close()
            raise
        self.decode = decode
        self.progress = progress
        self.all_frames = all_frames
        self.report = PairReport(
            bag=str(self.bag.path),
            image_topic=self.image_topic,
            command_topic=self.command_topic,
            image_type=self.bag.topics[self.image_topic].msgtype,
            command_type=self.bag.topics[self.command_topic].msgtype,
        )

    @property
    def frame_count(self) -> int:
        """Image messages the bag's index lists for the image topic (an upper bound on the pairs)."""
        return self.bag.topics[self.image_topic].count

    def _note(self, text: str) -> None:
        if len(self.report.errors) < MAX_LISTED_ERRORS:
            self.report.errors.append(text)

    def _load_commands(self) -> tuple[np.ndarray, np.ndarray, list[Command | None]]:
        cfg, rep, topic = self.config, self.report, self.command_topic
        stamps: list[int] = []
        commands: list[Command | None] = []
        for i, rec in enumerate(self.bag.records([topic])):
            stamp = choose_stamp(rec, cfg.stamp_source)
            if stamps and stamp < stamps[-1]:
                raise BagError(
                    self.bag.path,
                    f"non-monotonic stamps: command {i} at {stamp} ns is {_fmt_ns(stamps[-1] - stamp)} before the "
                    f"previous one ({cfg.stamp_source} stamps; try stamp_source='log')",
                    topic=topic,
                )
            stamps.append(stamp)
            try:
                commands.append(command_from_msg(rec.msg, rec.msgtype, cfg.commands, stamp))
            except CommandError as exc:
                rep.bad_commands += 1
                self._note(f"{topic} message {i} (log {rec.log_ns}): {exc}")
                commands.append(None)
        rep.commands = len(stamps)
        if not stamps:
            raise BagError(self.bag.path, "has no messages", topic=topic)
        arr = np.asarray(stamps, dtype=np.int64)
        return arr, np.asarray([c is not None for c in commands]), commands

    def __iter__(self) -> Iterator[Pair]:
        try:
            yield from self._pairs()
        finally:
            if self._own:
                self.bag.close()

    def _pairs(self) -> Iterator[Pair]:
        """The pairs in log order; every frame read is counted in :attr:`report`."""
        cfg, rep, topic, path = self.config, self.report, self.image_topic, self.bag.path
        cmd_stamps, valid, commands = self._load_commands()
        tol_ns = int(round(cfg.tolerance_s * 1e9))
        prev: int | None = None
        first_stamp: int | None = None
        first_decode_error = ""
        bar = self._progress_bar()
        try:
            for index, rec in enumerate(self.bag.records([topic])):
                rep.frames += 1
                if bar is not None:
                    bar.update(1)
                stamp = choose_stamp(rec, cfg.stamp_source)
                first_stamp = stamp if first_stamp is None else first_stamp
                if prev is not None and stamp < prev:
                    raise BagError(
                        path,
                        f"non-monotonic stamps: frame {index} at {stamp} ns is {_fmt_ns(prev - stamp)} before the "
                        f"previous frame ({cfg.stamp_source} stamps)",
                        topic=topic,
                    )
                if prev is not None and stamp == prev:
                    rep.skipped_duplicate_stamp += 1
                    continue
                prev = stamp
                self._check_size(rec, index)
                command = _command_in_force(stamp, cmd_stamps, valid, commands, tol_ns)
                if command is None:
                    rep.skipped_no_command += 1
                    if not self.all_frames:
                        continue
                frame = None
                if self.decode:
                    try:
                        frame = decode_msg(rec.msg, max_pixels=cfg.max_pixels)
                    except ImageDecodeError as exc:
                        if command is not None:  # a frame without a command is counted once, as that
                            rep.skipped_undecodable += 1
                        problem = f"{topic} frame {index} (log {rec.log_ns}): {exc}"
                        first_decode_error = first_decode_error or problem
                        self._note(problem)
                        continue
                    self._check_shape(frame, index)
                if command is not None:
                    rep.paired += 1
                yield Pair(index=index, stamp_ns=stamp, frame=frame, command=command)
        finally:
            if bar is not None:
                bar.close()
        self._check_outcome(cmd_stamps, tol_ns, first_stamp, prev, first_decode_error)

    def _progress_bar(self) -> Any:
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=self.frame_count, desc=Path(self.bag.path).name, unit="frame", leave=False)

    def _check_outcome(
        self, cmd_stamps: np.ndarray, tol_ns: int, first_stamp: int | None, last_stamp: int | None, decode_error: str
    ) -> None:
        """After the last frame: refuse a bag without frames or without one decodable frame; explain zero pairs."""
        rep, topic, path = self.report, self.image_topic, self.bag.path
        if rep.frames == 0:
            raise BagError(path, "has no messages", topic=topic)
        if rep.paired == 0 and rep.skipped_undecodable:
            raise BagError(path, f"none of the frames decodes; first problem: {decode_error}", topic=topic)
        if rep.paired == 0 and first_stamp is not None and last_stamp is not None:
            lo, hi = int(cmd_stamps[0]), int(cmd_stamps[-1])
            if last_stamp < lo or first_stamp > hi + tol_ns:
                rep.hint = (
                    f"frame stamps [{first_stamp}, {last_stamp}] and command stamps [{lo}, {hi}] do not overlap: "
                    f"different clocks? try stamp_source='log'"
                )

    def _check_size(self, rec: Record, index: int) -> None:
        """Raw Image messages carry their size: check it even without decoding."""
        width, height = getattr(rec.msg, "width", None), getattr(rec.msg, "height", None)
        if width is not None and height is not None and hasattr(rec.msg, "encoding"):
            self._same_size(int(width), int(height), index)

    def _check_shape(self, frame: np.ndarray, index: int) -> None:
        self._same_size(int(frame.shape[1]), int(frame.shape[0]), index)

    def _same_size(self, width: int, height: int, index: int) -> None:
        rep = self.report
        if rep.frame_width is None:
            rep.frame_width, rep.frame_height = width, height
        elif (width, height) != (rep.frame_width, rep.frame_height):
            raise BagError(
                self.bag.path,
                f"mismatched image sizes: frame {index} is {width}x{height} but earlier frames are "
                f"{rep.frame_width}x{rep.frame_height}",
                topic=self.image_topic,
            )


def pair_frames(
    bag: Bag | str | Path,
    config: PairingConfig | None = None,
    *,
    decode: bool = True,
    progress: bool = False,
    all_frames: bool = False,
) -> FramePairer:
    """Pairs of one bag, as an iterable whose ``report`` is complete once iterated (see :class:`FramePairer`)."""
    return FramePairer(bag, config, decode=decode, progress=progress, all_frames=all_frames)


def count_pairs(bag: Bag | str | Path, config: PairingConfig | None = None, *, decode: bool = True) -> PairReport:
    """Run the pairing without keeping anything and return the report (what ``inspect`` shows)."""
    pairer = FramePairer(bag, config, decode=decode)
    for _ in pairer:
        pass
    return pairer.report
