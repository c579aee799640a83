"""The report folder of closed-loop episodes (``lnn-control sim-eval``, ``lnn-control demo``).

``write_report(out, results, meta)`` writes:

- ``episodes.csv``: one row per episode (seed, reward, laps, tiles, off-track time, steps, ...);
- ``summary.json``: ``meta`` plus reward mean/std/min/max, laps, off-track time, the task's outcome (the drone:
  success and collision counts and rates, time to target), and the rows;
- ``episode_<seed>.gif``: the controller's view of one episode (upscaled) with each field of the command (a car's
  steering also as a bar), the measured speed (and the drone's distance to the target), first ``gif_seconds`` of it;
- ``timeseries.png``: each field of the command, the measured speed (and the drone's distance to the target) over
  time for every episode;
- ``activity.png``: per-step activity (e.g. neuron states) of the GIF episode, when the controller exposed one.

Neither torch nor gymnasium is imported here.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lnn_control.report.media import episode_gif as write_gif
from lnn_control.report.plots import plot_episode_activity as plot_activity
from lnn_control.report.plots import plot_timeseries
from lnn_control.report.tables import strict_json

if TYPE_CHECKING:
    from lnn_control.sim.closed_loop import EpisodeResult

__all__ = ["outcome_summary", "plot_activity", "plot_timeseries", "summarize", "write_gif", "write_report"]


def summarize(results: Sequence[EpisodeResult]) -> dict[str, Any]:
    """Aggregate figures over episodes (and over the task's own outcome, where the backend gives one)."""
    return {**_car_summary(results), **outcome_summary(results)}


def outcome_summary(results: Sequence[EpisodeResult]) -> dict[str, Any]:
    """Over the episodes' ``outcome``: per flag (``success``, ``collided``) the count and rate, per number its mean
    over the episodes where it is finite (``time_to_target_s`` over the successes), per word (``outcome``,
    ``domain``, ``ended_by``) how many episodes had each."""
    out: dict[str, Any] = {}
    keys = [k for k in (results[0].outcome if results else {})]
    for key in keys:
        values = [r.outcome.get(key) for r in results]
        if all(isinstance(v, str) for v in values):
            out[f"{key}_counts"] = dict(Counter(values))
        elif all(isinstance(v, bool) for v in values):
            out[f"{key}_count"] = int(sum(values))
            out[f"{key}_rate"] = float(np.mean(values))
        elif all(isinstance(v, (int, float)) for v in values):
            finite = np.array([v for v in values if np.isfinite(v)], dtype=np.float64)
            out[f"{key}_mean"] = float(finite.mean()) if finite.size else None
            out[f"{key}_max"] = float(finite.max()) if finite.size else None
    return out


def _car_summary(results: Sequence[EpisodeResult]) -> dict[str, Any]:
    rewards = np.array([r.reward for r in results], dtype=np.float64)
    laps = np.array([r.laps for r in results])
    off = np.array([r.off_track_s for r in results])
    return {
        "episodes": len(results),
        "reward_mean": float(rewards.mean()),
        "reward_std": float(rewards.std()),
        "reward_min": float(rewards.min()),
        "reward_max": float(rewards.max()),
        "laps_total": int(laps.sum()),
        "laps_mean": float(laps.mean()),
        "episodes_with_a_lap": int((laps > 0).sum()),
        "off_track_s_mean": float(off.mean()),
        "off_track_s_total": float(off.sum()),
        "steps_total": int(sum(r.steps for r in results)),
        "steps_per_s": float(sum(r.steps for r in results) / max(sum(r.wall_s for r in results), 1e-9)),
    }


def write_report(
    out: str | Path,
    results: Sequence[EpisodeResult],
    meta: dict[str, Any] | None = None,
    gif_seconds: float = 10.0,
    gif_scale: int = 2,
    gif_stride: int = 3,
) -> dict[str, Path]:
    """Write the report folder; returns the paths written (key ``dir`` is the folder)."""
    if not results:
        raise ValueError("write_report: no episodes to report")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {"dir": out}

    rows = [r.row() for r in results]
    paths["csv"] = out / "episodes.csv"
    with open(paths["csv"], "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    summary = {"meta": meta or {}, **summarize(results), "per_episode": rows}
    paths["summary"] = out / "summary.json"
    paths["summary"].write_text(json.dumps(strict_json(summary), indent=2) + "\n", encoding="utf-8")

    paths["timeseries"] = plot_timeseries(results, out / "timeseries.png")

    shown = next((r for r in results if r.frames is not None), None)
    if shown is not None and gif_seconds > 0:
        paths["gif"] = write_gif(shown, out / f"episode_{shown.seed}.gif", gif_seconds, gif_scale, gif_stride)
    with_activity = next((r for r in results if r.activity is not None), None)
    if with_activity is not None:
        paths["activity"] = plot_activity(with_activity, out / "activity.png")
    return paths
