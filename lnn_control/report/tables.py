"""Text and Markdown tables of numbers (the eval summary, replay-diff, eval --live), and strict JSON of them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def strict_json(value: Any) -> Any:
    """``value`` with every NaN or infinite float as None (mappings and sequences walked), for strict JSON files."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def fmt(value: object, digits: int = 4) -> str:
    """A table cell: floats to ``digits`` decimals, NaN as ``-``."""
    if isinstance(value, float):
        return "-" if not math.isfinite(value) else f"{value:.{digits}f}"
    return str(value)


def text_table(header: Sequence[str], rows: Sequence[Sequence[object]], digits: int = 4) -> str:
    """A plain-text table, numbers right-aligned, with a rule under the header."""
    cells = [list(header)] + [[fmt(v, digits) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [i for i in range(len(header)) if all(isinstance(r[i], (int, float)) for r in rows)] if rows else []
    out = []
    for n, row in enumerate(cells):
        out.append("  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in
                             enumerate(zip(row, widths, strict=True))).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]], digits: int = 4) -> str:
    """The same table in GitHub Markdown."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(v, digits) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def episode_table(results: Sequence[Any]) -> str:
    """The per-episode scores of closed-loop episodes (``sim-eval``, ``demo``): seed, reward, laps, tiles, ...; for a
    task with an outcome (the drone's), seed, the outcome's figures and steps."""
    if results and results[0].outcome:
        keys = list(results[0].outcome)
        header = ["seed", *keys, "steps"]
        return text_table(header, [[r.seed, *(r.outcome.get(k) for k in keys), r.steps] for r in results], digits=2)
    lines = [f"{'seed':>6} {'reward':>8} {'laps':>4} {'tiles':>9} {'off-track s':>11} {'steps':>5}"]
    for r in results:
        lines.append(f"{r.seed:>6} {r.reward:>8.1f} {r.laps:>4} {r.tiles_visited:>4}/{r.tiles_total:<4} "
                     f"{r.off_track_s:>11.2f} {r.steps:>5}")
    return "\n".join(lines)
