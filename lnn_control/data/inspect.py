"""What is in a bag and what of it would train (``lnn-control inspect BAG [BAG ...]``).

For each bag: its kind, start, duration and message count; per topic the type, count, rate (from log times) and the
largest gaps between consecutive messages; then, for every image topic and every command topic (Twist,
TwistStamped, Joy, Ackermann), how many frames pairing would keep (a command in force within the tolerance) and
why the others are skipped. ``--json`` prints one JSON object per bag instead of the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from lnn_control.data.bags import IMAGE_TYPES, Bag, BagError
from lnn_control.data.labels import COMMAND_TYPES
from lnn_control.data.pairing import PairingConfig, count_pairs


@dataclass
class TopicStats:
    """Counts and timing of one topic, from log times."""

    name: str
    msgtype: str
    count: int
    rate_hz: float | None
    gaps: list[tuple[float, float]] = field(default_factory=list)
    """Largest gaps as (seconds, offset from the bag's start in seconds), largest first."""


def topic_stats(bag: Bag, n_gaps: int = 3) -> list[TopicStats]:
    """Per-topic counts, rates and largest gaps of an open bag (reads every message's log time)."""
    times: dict[str, list[int]] = {name: [] for name in bag.topics}
    for topic, _msgtype, log_ns, _data in bag.raw():
        times[topic].append(log_ns)
    stats = []
    for name, summary in sorted(bag.topics.items()):
        t = np.asarray(times[name], dtype=np.int64)
        rate = None
        gaps: list[tuple[float, float]] = []
        if len(t) >= 2 and t[-1] > t[0]:
            rate = (len(t) - 1) / ((t[-1] - t[0]) / 1e9)
            diffs = np.diff(t)
            for i in np.argsort(-diffs, kind="stable")[:n_gaps]:
                gaps.append((float(diffs[i]) / 1e9, float(t[i] - bag.start_ns) / 1e9))
        stats.append(TopicStats(name, summary.msgtype, len(t), rate, gaps))
    return stats


def inspect_bag(
    path: str | Path,
    pairing: PairingConfig | None = None,
    *,
    decode: bool = True,
    n_gaps: int = 3,
) -> dict[str, Any]:
    """Everything ``inspect`` shows about one bag, as a JSON-able dict. Raises BagError if it cannot be read.

    ``pairing`` gives the tolerance, stamp source and command mapping; its topics, when set, restrict the pairs
    shown to those topics.
    """
    cfg = pairing or PairingConfig()
    with Bag(path) as bag:
        info: dict[str, Any] = {
            "bag": str(bag.path),
            "kind": bag.kind,
            "start_ns": bag.start_ns,
            "duration_s": bag.duration_ns / 1e9,
            "messages": bag.message_count,
            "topics": [stats.__dict__ for stats in topic_stats(bag, n_gaps)],
            "pairs": [],
        }
        images = [bag.resolve_topic(cfg.image_topic)] if cfg.image_topic else bag.topics_of_type(*IMAGE_TYPES)
        commands = (
            [bag.resolve_topic(cfg.command_topic)] if cfg.command_topic else bag.topics_of_type(*COMMAND_TYPES)
        )
        info["image_topics"], info["command_topics"] = images, commands
        for image in images:
            for command in commands:
                one = PairingConfig(
                    image_topic=image,
                    command_topic=command,
                    tolerance_s=cfg.tolerance_s,
                    stamp_source=cfg.stamp_source,
                    commands=cfg.commands,
                    max_pixels=cfg.max_pixels,
                )
                try:
                    info["pairs"].append(count_pairs(bag, one, decode=decode).to_dict())
                except BagError as exc:
                    info["pairs"].append({"image_topic": image, "command_topic": command, "error": str(exc)})
    return info


def _table(rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_info(info: dict[str, Any], pairing: PairingConfig) -> str:
    """The readable table for one bag's :func:`inspect_bag` result."""
    start = datetime.fromtimestamp(info["start_ns"] / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    out = [
        f"bag       {info['bag']} ({info['kind']})",
        f"start     {start} UTC",
        f"duration  {info['duration_s']:.3f} s",
        f"messages  {info['messages']}",
        "",
    ]
    rows = [["topic", "type", "count", "rate Hz", "largest gaps: s (at s)"]]
    for t in info["topics"]:
        gaps = ", ".join(f"{g:.3f} ({at:.2f})" for g, at in t["gaps"]) or "-"
        rate = f"{t['rate_hz']:.1f}" if t["rate_hz"] is not None else "-"
        rows.append([t["name"], t["msgtype"], str(t["count"]), rate, gaps])
    out.append(_table(rows, right={2, 3}))
    out.append("")
    out.append(
        f"training pairs (frame -> latest command within {pairing.tolerance_s:g} s, {pairing.stamp_source} stamps):"
    )
    if not info["image_topics"]:
        out.append("  none: no image topic (" + ", ".join(IMAGE_TYPES) + ")")
    elif not info["command_topics"]:
        out.append("  none: no command topic (" + ", ".join(COMMAND_TYPES) + ")")
    else:
        rows = [["image topic", "command topic", "frames", "paired", "no command", "undecodable", "note"]]
        for p in info["pairs"]:
            if "error" in p:
                rows.append([p["image_topic"], p["command_topic"], "-", "-", "-", "-", p["error"]])
                continue
            notes = []
            if p["frame_width"]:
                notes.append(f"{p['frame_width']}x{p['frame_height']}")
            if p["skipped_duplicate_stamp"]:
                notes.append(f"{p['skipped_duplicate_stamp']} duplicate stamps")
            if p["bad_commands"]:
                notes.append(f"{p['bad_commands']} bad commands")
            if p["hint"]:
                notes.append(p["hint"])
            if p["errors"]:
                notes.append("first problem: " + p["errors"][0])
            rows.append(
                [
                    p["image_topic"],
                    p["command_topic"],
                    str(p["frames"]),
                    str(p["paired"]),
                    str(p["skipped_no_command"]),
                    str(p["skipped_undecodable"]),
                    "; ".join(notes),
                ]
            )
        out.append(_table(rows, right={2, 3, 4, 5}))
    return "\n".join(out)
