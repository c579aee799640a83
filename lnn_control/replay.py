"""The one replay: frames and their stamps through :meth:`lnn_control.driver.Driver.observe`, a record per frame.

``eval``, ``replay-diff``, ``eval --live`` (the offline side it is held to) and the ``demo`` (the neuron activity of
a drive, and the check that the node's commands are what the Driver gives) all run their frames through
:class:`Replay`, so there is one loop from a frame to a command off the robot, and it is the node's own path.

Frames come from a bag (:func:`bag_frames`: every message of the image topic in log order, decoded, stamped as the
pairing stamps it) or from any sequence of ``(rgb, stamp_ns)`` pairs (a simulator episode's frames). Each
:class:`Record` holds, per Driver, the command, the Driver's :class:`~lnn_control.driver.StepInfo` and, when asked,
the neuron activity, and the human command in force where the caller paired one. Frames that do not decode are
counted in :attr:`Replay.undecodable` and skipped, as a node skips them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lnn_control.command import Command
from lnn_control.data.bags import IMAGE_TYPES, Bag
from lnn_control.data.pairing import choose_stamp, pick_topic
from lnn_control.vision import DEFAULT_MAX_PIXELS, ImageDecodeError, decode_msg

if TYPE_CHECKING:
    from lnn_control.driver import Driver, StepInfo

#: The name a single Driver gets in :attr:`Record.outputs`.
SINGLE = "driver"


@dataclass(frozen=True)
class Frame:
    """One image: its position among the topic's messages, stamp and decoded pixels (None when it does not decode)."""

    index: int
    stamp_ns: int
    rgb: np.ndarray | None
    error: str | None = None


def image_topic_of(bag: Bag, wanted: str | None) -> str:
    """The image topic to replay: ``wanted`` (checked), or the bag's only image topic (BagError otherwise)."""
    return pick_topic(bag, wanted, IMAGE_TYPES, "image", "--image-topic")


def bag_frames(
    bag: Bag, image_topic: str, stamp_source: str = "header", max_pixels: int = DEFAULT_MAX_PIXELS, *,
    decode: bool = True,
) -> Iterator[Frame]:
    """Every message of ``image_topic`` in log order, stamped as pairing stamps it (see ``choose_stamp``), decoded
    unless ``decode`` is false (then ``rgb`` is None: the stamps only)."""
    for index, rec in enumerate(bag.records([image_topic])):
        stamp = choose_stamp(rec, stamp_source)
        if not decode:
            yield Frame(index, stamp, None)
            continue
        try:
            yield Frame(index, stamp, decode_msg(rec.msg, max_pixels=max_pixels))
        except ImageDecodeError as exc:
            yield Frame(index, stamp, None, f"{image_topic} frame {index}: {exc}")


@dataclass(frozen=True)
class Output:
    """What one Driver made of one frame."""

    command: Command
    step: StepInfo
    """The Driver's step info: raw outputs, the dt used, the event (a state reset) if any."""
    activity: np.ndarray | None = None
    """The recurrent state after the step (a copy), when the replay was asked for it."""


@dataclass(frozen=True)
class Record:
    """One replayed frame: where it is, its stamp and pixels, the human command in force, each Driver's output."""

    index: int
    stamp_ns: int
    rgb: np.ndarray
    human: Command | None
    outputs: dict[str, Output]

    @property
    def output(self) -> Output:
        """The output of the first (or only) Driver."""
        return next(iter(self.outputs.values()))

    @property
    def command(self) -> Command:
        """The command of the first (or only) Driver."""
        return self.output.command


class ReplayError(ValueError):
    """A frame a Driver cannot take (a crop that does not fit the frames, ...); names the frame and the Driver."""

    def __init__(self, index: int, name: str, error: Exception) -> None:
        super().__init__(f"frame {index}, model {name}: {error}")
        self.index, self.name, self.error = index, name, error


class Replay:
    """Frames through one Driver or several (one decode for all), as :meth:`Driver.observe` on the robot.

    ``drivers`` is a Driver (named :data:`SINGLE`) or name -> Driver; each is used as it is (a fresh one starts
    afresh). ``activity`` also keeps each Driver's state after every frame.
    """

    def __init__(self, drivers: Driver | Mapping[str, Driver], *, activity: bool = False) -> None:
        self.drivers: dict[str, Driver] = dict(drivers) if isinstance(drivers, Mapping) else {SINGLE: drivers}
        self.activity = activity
        self.undecodable: list[Frame] = []

    def step(self, frame: Frame, human: Command | None = None) -> Record:
        """One decoded frame through every Driver; :class:`ReplayError` when a Driver cannot take it."""
        assert frame.rgb is not None
        outputs = {}
        for name, driver in self.drivers.items():
            try:
                command = driver.observe(frame.rgb, frame.stamp_ns)
            except ValueError as exc:
                raise ReplayError(frame.index, name, exc) from exc
            outputs[name] = Output(command, driver.last, driver.activity.copy() if self.activity else None)
        return Record(frame.index, frame.stamp_ns, frame.rgb, human, outputs)

    def run(
        self, frames: Iterable[Frame | tuple[np.ndarray, int]], human: Mapping[int, Command] | None = None
    ) -> Iterator[Record]:
        """A record per decoded frame, in order; ``human`` maps a frame's index to the command in force."""
        human = human or {}
        for position, item in enumerate(frames):
            frame = item if isinstance(item, Frame) else Frame(position, int(item[1]), item[0])
            if frame.rgb is None:
                self.undecodable.append(frame)
                continue
            yield self.step(frame, human.get(frame.index))


def replay(
    frames: Iterable[Frame | tuple[np.ndarray, int]], drivers: Driver | Mapping[str, Driver], *,
    human: Mapping[int, Command] | None = None, activity: bool = False,
) -> Iterator[Record]:
    """:meth:`Replay.run` of a fresh :class:`Replay` (when the undecodable frames need no counting)."""
    return Replay(drivers, activity=activity).run(frames, human)
