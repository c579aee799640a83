"""The report folder of a closed-loop evaluation (``lnn-control sim-eval``).

``write_report(out, results, meta)`` writes:

- ``episodes.csv``: one row per episode (seed, reward, laps, tiles, off-track time, steps, ...);
- ``summary.json``: ``meta`` plus reward mean/std/min/max, laps, off-track time, and the rows;
- ``episode_<seed>.gif``: the controller's view of one episode (upscaled) with a steering bar and the target and
  measured speed, first ``gif_seconds`` of it;
- ``timeseries.png``: steering, target velocity and measured speed over time for every episode;
- ``activity.png``: per-step activity (e.g. neuron states) of the GIF episode, when the controller exposed one.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lnn_control.sim.closed_loop import EpisodeResult


def summarize(results: Sequence[EpisodeResult]) -> dict[str, Any]:
    """Aggregate figures over episodes."""
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
    paths["summary"].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")

    paths["timeseries"] = plot_timeseries(results, out / "timeseries.png")

    shown = next((r for r in results if r.frames is not None), None)
    if shown is not None and gif_seconds > 0:
        paths["gif"] = write_gif(shown, out / f"episode_{shown.seed}.gif", gif_seconds, gif_scale, gif_stride)
    with_activity = next((r for r in results if r.activity is not None), None)
    if with_activity is not None:
        paths["activity"] = plot_activity(with_activity, out / "activity.png")
    return paths


def plot_timeseries(results: Sequence[EpisodeResult], path: Path) -> Path:
    """Steering and velocity (target and measured) over time, one line per episode."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (ax_s, ax_v) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, r in enumerate(results):
        c = colours[i % len(colours)]
        t = r.series["t_s"]
        ax_s.plot(t, r.series["steering"], color=c, lw=0.8, label=f"seed {r.seed}")
        ax_v.plot(t, r.series["velocity"], color=c, lw=0.8, ls="--")
        ax_v.plot(t, r.series["speed"], color=c, lw=0.8)
    ax_s.set_ylabel("steering (+ left)")
    ax_s.set_ylim(-1.05, 1.05)
    ax_s.axhline(0, color="k", lw=0.4)
    ax_v.set_ylabel("m/s (dashed: target, solid: measured)")
    ax_v.set_xlabel("sim time, s")
    if len(results) <= 10:
        ax_s.legend(loc="upper right", fontsize=7, ncol=min(5, len(results)))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_activity(result: EpisodeResult, path: Path) -> Path:
    """Heat map of the per-step activity (units x time)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    assert result.activity is not None
    t = result.series["t_s"]
    fig, ax = plt.subplots(figsize=(10, 4))
    extent = (float(t[0]), float(t[-1]) if len(t) > 1 else 1.0, result.activity.shape[1] - 0.5, -0.5)
    im = ax.imshow(result.activity.T, aspect="auto", interpolation="nearest", cmap="coolwarm", extent=extent)
    ax.set_xlabel("sim time, s")
    ax.set_ylabel("unit")
    ax.set_title(f"activity, seed {result.seed}")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_gif(result: EpisodeResult, path: Path, seconds: float = 10.0, scale: int = 2, stride: int = 3) -> Path:
    """The episode's frames, upscaled, with a steering bar (a bar to the left is a left turn) and speeds."""
    from PIL import Image, ImageDraw

    assert result.frames is not None
    t = result.series["t_s"]
    dt = float(t[1] - t[0]) if len(t) > 1 else 0.02
    n = min(len(result.frames), max(1, int(round(seconds / dt))))
    strip = 34
    images = []
    for k in range(0, n, stride):
        frame = result.frames[k]
        h, w = frame.shape[:2]
        img = Image.new("RGB", (w * scale, h * scale + strip), (0, 0, 0))
        img.paste(Image.fromarray(frame).resize((w * scale, h * scale), Image.NEAREST), (0, 0))
        draw = ImageDraw.Draw(img)
        top = h * scale + 4
        centre = w * scale // 2
        half = w * scale // 2 - 6
        steer = float(result.series["steering"][k])
        x_end = centre - int(round(steer * half))  # positive steering (left) draws to the left
        draw.rectangle((min(centre, x_end), top, max(centre, x_end), top + 8), fill=(255, 200, 0))
        draw.line((centre, top - 2, centre, top + 10), fill=(255, 255, 255))
        observed = bool(result.series["observed"][k])
        text = (
            f"t {t[k]:5.2f}s  steer {steer:+.2f}  v* {result.series['velocity'][k]:5.1f}  "
            f"v {result.series['speed'][k]:5.1f} m/s{'' if observed else '  DROP'}"
        )
        draw.text((4, top + 12), text, fill=(255, 255, 255))
        images.append(img.convert("P", palette=Image.ADAPTIVE, colors=128))
    duration_ms = int(round(1000 * dt * stride))
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0, optimize=False)
    return path
