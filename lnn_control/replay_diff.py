"""Do two models drive a bag alike? (``lnn-control replay-diff --model A --model B --bags ... [--tol 1e-4]``)

Both models replay every frame of each bag through their own :class:`lnn_control.driver.Driver` (the node's path,
the bag's stamps; see :mod:`lnn_control.replay`), and their outputs are compared frame by frame with
:func:`lnn_control.compare.compare_streams`, in the manner of openpilot's process replay: per field (the action's
fields, e.g. ``steering``, ``velocity``: the limited commands; ``raw.<output>``: the policy's outputs before limits;
``dt``: the dt the drivers used) the frames compared, the frames whose absolute difference exceeds ``--tol``, the
first such frame (index and stamp) and the largest and mean absolute difference.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lnn_control.compare import compare_streams
from lnn_control.data.bags import Bag, BagError, discover_bags
from lnn_control.driver import DriverConfig, warn_once
from lnn_control.evaluate import Model, make_drivers, shared_schema
from lnn_control.replay import Output, Replay, ReplayError, bag_frames, image_topic_of
from lnn_control.report.tables import text_table


@dataclass
class FieldDiff:
    """How one field of the two models' outputs differs over one bag."""

    bag: str
    field: str
    frames: int = 0
    differing: int = 0
    first_index: int | None = None
    """Position of the first differing frame among the image topic's messages."""
    first_stamp_ns: int | None = None
    max_abs: float = 0.0
    mean_abs: float = 0.0


def _values(output: Output, outputs: Sequence[str], raw_names: Sequence[str]) -> dict[str, float]:
    """The compared fields of one model's output on one frame."""
    raw = dict(zip(outputs, output.step.raw, strict=False))
    values = output.command.as_dict()
    values.update({f"raw.{o}": raw.get(o, math.nan) for o in raw_names})
    values["dt"] = output.step.dt_s
    return values


def diff_bag(
    path: str | Path,
    a: Model,
    b: Model,
    *,
    tol: float = 1e-4,
    image_topic: str | None = None,
    stamp_source: str = "header",
    driver_config: DriverConfig | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[FieldDiff]:
    """Replay ``path`` through both models with the nodes' settings ``driver_config`` (default: each model's own
    timing and crop; ``warn`` gets the warning about values that differ from a model's); one :class:`FieldDiff` per
    field. BagError if it cannot be replayed."""
    models = (a, b)
    schema = shared_schema(models)
    names = (a.name, b.name if b.name != a.name else f"{b.name}#2")
    replay = Replay(dict(zip(names, make_drivers(models, driver_config, warn), strict=True)))
    raw_names = [o for o in a.policy.config.outputs if o in b.policy.config.outputs]
    fields = list(schema.names) + [f"raw.{o}" for o in raw_names] + ["dt"]
    streams: tuple[dict[int, dict[str, float]], dict[int, dict[str, float]]] = ({}, {})
    stamps: dict[int, int] = {}  # keyed by frame position: stamps may repeat in a bag
    with Bag(path) as bag:
        topic = image_topic_of(bag, image_topic)
        try:
            for record in replay.run(bag_frames(bag, topic, stamp_source)):
                stamps[record.index] = record.stamp_ns
                for stream, name, model in zip(streams, names, models, strict=True):
                    stream[record.index] = _values(record.outputs[name], model.policy.config.outputs, raw_names)
        except ReplayError as exc:  # a crop that does not fit this bag's frames
            raise BagError(path, str(exc), topic=topic) from exc
    if not stamps:
        raise BagError(path, "no frame decodes", topic=topic)
    diff = compare_streams(*streams, tol=tol, fields=fields)
    return [
        FieldDiff(bag=str(path), field=f.field, frames=f.compared, differing=f.differing, first_index=f.first_key,
                  first_stamp_ns=None if f.first_key is None else stamps[f.first_key], max_abs=f.max_abs,
                  mean_abs=f.mean_abs)
        for f in diff.fields.values()
    ]


def replay_diff(
    a: Model,
    b: Model,
    bags: Sequence[str | Path],
    *,
    tol: float = 1e-4,
    image_topic: str | None = None,
    stamp_source: str = "header",
    driver_config: DriverConfig | None = None,
    strict: bool = False,
) -> tuple[list[FieldDiff], list[dict[str, str]]]:
    """:func:`diff_bag` over ``bags``; a bag that cannot be replayed is returned in the second list (or raised)."""
    diffs: list[FieldDiff] = []
    skipped: list[dict[str, str]] = []
    warn = warn_once(lambda text: print(f"replay-diff: warning: {text}", file=sys.stderr))
    for bag in discover_bags(bags):
        try:
            diffs += diff_bag(bag, a, b, tol=tol, image_topic=image_topic, stamp_source=stamp_source,
                              driver_config=driver_config, warn=warn)
        except BagError as exc:
            if strict:
                raise
            print(f"replay-diff: skipping bag: {exc}", file=sys.stderr)
            skipped.append({"bag": str(bag), "error": str(exc)})
    return diffs, skipped


def diff_table(diffs: Sequence[FieldDiff]) -> str:
    """The diffs as a text table: one row per bag and field."""
    rows = [
        [Path(d.bag).name, d.field, d.frames, d.differing,
         "-" if d.first_index is None else str(d.first_index),
         "-" if d.first_stamp_ns is None else f"{d.first_stamp_ns / 1e9:.3f}", d.max_abs, d.mean_abs]
        for d in diffs
    ]
    return text_table(["bag", "field", "frames", "differ", "first frame", "first stamp s", "max |A-B|", "mean |A-B|"],
                      rows, digits=6)
