"""Plots: commands against the human's over time, neuron activity heat maps, closed-loop time series.

matplotlib runs on the Agg backend (no display needed). :func:`activity_heatmap` draws the activity of the offline
replay (:func:`plot_activity`, grouped by the wiring's layers) and of a closed-loop episode
(:func:`plot_episode_activity`) alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lnn_control.command import CAR, ActionSchema

if TYPE_CHECKING:
    from lnn_control.nn.policy import Policy
    from lnn_control.sim.closed_loop import EpisodeResult


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path, *, tight: bool = True) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def plot_outputs(
    path: str | Path,
    times_s: np.ndarray,
    human: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    baselines: Mapping[str, Sequence[float]] | None = None,
    schema: ActionSchema = CAR,
    title: str = "",
) -> Path:
    """Predicted vs human commands over time, one panel per field of ``schema``; ``human`` is NaN where no command
    was in force."""
    plt = _pyplot()
    n = len(schema)
    fig, axes = plt.subplots(n, 1, figsize=(11, 2.6 * n), sharex=True, squeeze=False)
    for i, spec in enumerate(schema.fields):
        ax = axes[i, 0]
        ax.plot(times_s, human[:, i], color="black", lw=1.6, label="human")
        for model, pred in predictions.items():
            ax.plot(times_s, pred[:, i], lw=1.1, label=model)
        for label, value in (baselines or {}).items():
            ax.axhline(value[i], color="grey", ls="--", lw=1.0, label=label)
        ax.set_ylabel(spec.label())
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(loc="upper right", fontsize=8, ncol=min(4, 2 + len(predictions)))
    axes[-1, 0].set_xlabel("time since the bag's first frame (s)")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def neuron_groups(policy: Policy) -> list[tuple[str, list[int]]]:
    """Named groups of state indices: the wiring's layers (inter, command, motor) for LTC/CfC, h and c for LSTM."""
    core = policy.core
    wiring = getattr(core, "wiring", None)
    if wiring is not None and policy.state_size == wiring.units:
        names = ["inter", "command", "motor"] if len(wiring.layers) == 3 else [f"layer {i}" for i in
                                                                                range(len(wiring.layers))]
        if policy.config.core == "cfc":  # CfC's state is its layers concatenated in order
            groups, start = [], 0
            for name, layer in zip(names, wiring.layers, strict=True):
                groups.append((name, list(range(start, start + len(layer)))))
                start += len(layer)
            return groups
        return [(name, sorted(layer)) for name, layer in zip(names, wiring.layers, strict=True)]
    if policy.config.core == "lstm" and policy.state_size % 2 == 0:
        half = policy.state_size // 2
        return [("h", list(range(half))), ("c", list(range(half, 2 * half)))]
    return [("state", list(range(policy.state_size)))] if policy.state_size else []


def activity_heatmap(
    ax: Any, times_s: np.ndarray, activity: np.ndarray, groups: Sequence[tuple[str, Sequence[int]]] | None = None
) -> Any:
    """Activity ``(T, N)`` as rows of a heat map over time on ``ax``; the image (for a colour bar).

    With ``groups`` the rows are ordered and labelled by group, with a rule between groups, and the colour scale is
    symmetric about 0; without, one row per unit in index order on matplotlib's own scale.
    """
    t0 = float(times_s[0])
    if groups is None:
        t1 = float(times_s[-1]) if len(times_s) > 1 else 1.0
        extent = (t0, t1, activity.shape[1] - 0.5, -0.5)
        image = ax.imshow(activity.T, aspect="auto", interpolation="nearest", cmap="coolwarm", extent=extent)
        ax.set_ylabel("unit")
        return image
    order = [i for _, idx in groups for i in idx] or list(range(activity.shape[1]))
    data = activity[:, order].T
    extent = (t0, float(times_s[-1]) if len(times_s) > 1 else t0 + 1, len(order), 0)
    limit = float(np.nanmax(np.abs(data))) if data.size else 1.0
    image = ax.imshow(data, aspect="auto", cmap="coolwarm", vmin=-limit, vmax=limit, extent=extent,
                      interpolation="nearest")
    start, ticks, labels = 0, [], []
    for name, idx in groups:
        if start:
            ax.axhline(start, color="black", lw=0.8)
        ticks.append(start + len(idx) / 2)
        labels.append(f"{name} ({len(idx)})")
        start += len(idx)
    if ticks:
        ax.set_yticks(ticks, labels)
    ax.set_ylabel("neuron")
    return image


def plot_activity(
    path: str | Path,
    times_s: np.ndarray,
    activity: np.ndarray,
    groups: Sequence[tuple[str, Sequence[int]]],
    steering: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """Neuron activity over time: a heat map (rows grouped by layer) and, below, the steering it produced."""
    plt = _pyplot()
    rows_shown = len([i for _, idx in groups for i in idx] or range(activity.shape[1]))
    rows = 2 if steering is not None else 1
    fig, axes = plt.subplots(
        rows, 1, figsize=(11, 1.2 + 0.12 * rows_shown + 2.0 * (rows - 1)), sharex=True, squeeze=False,
        gridspec_kw={"height_ratios": [max(2.0, 0.12 * rows_shown), 2.0][:rows]},
    )
    image = activity_heatmap(axes[0, 0], times_s, activity, groups)
    fig.colorbar(image, ax=axes[:, 0].tolist(), fraction=0.02, pad=0.01, label="state")
    if steering is not None:
        axes[1, 0].plot(times_s, steering, color="tab:blue", lw=1.0)
        axes[1, 0].set_ylabel("steering")
        axes[1, 0].grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time since the bag's first frame (s)")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path, tight=False)


def command_fields(result: EpisodeResult) -> list[str]:
    """The command fields of a closed-loop episode, in order (its series has ``cmd_<field>`` for each)."""
    return [key[len("cmd_"):] for key in result.series if key.startswith("cmd_")]


def episode_label(result: EpisodeResult) -> str:
    """``seed S`` and, for a task with domains (the drone), the domain: a legend entry."""
    domain = result.outcome.get("domain")
    return f"seed {result.seed}" + (f", {domain}" if domain else "")


def plot_timeseries(results: Sequence[EpisodeResult], path: Path) -> Path:
    """Closed-loop episodes: each command field as applied, the measured forward speed and, where the truth has one
    (the drone), the distance to the target, over time, one line per episode."""
    plt = _pyplot()
    names = command_fields(results[0]) if results else []
    measured = [("speed", "forward speed, m/s")]
    if results and all("truth_target_distance" in r.series for r in results):
        measured.append(("truth_target_distance", "distance to target, m"))
    rows = len(names) + len(measured)
    fig, axes = plt.subplots(rows, 1, figsize=(10, 2.2 * rows + 1), sharex=True, squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    panels = [*names, *(key for key, _ in measured)]
    for i, r in enumerate(results):
        c = colours[i % len(colours)]
        for ax, key in zip(axes[:, 0], panels, strict=True):
            ax.plot(r.series["t_s"], r.series[key], color=c, lw=0.8, label=episode_label(r))
    for ax, name in zip(axes[: len(names), 0], names, strict=True):
        ax.set_ylabel(name)
        ax.axhline(0, color="k", lw=0.4)
    for ax, (_, label) in zip(axes[len(names):, 0], measured, strict=True):
        ax.set_ylabel(label)
    axes[-1, 0].set_xlabel("sim time, s")
    if len(results) <= 10 and names:
        axes[0, 0].legend(loc="upper right", fontsize=7, ncol=min(5, len(results)))
    return _save(fig, path)


def plot_episode_activity(result: EpisodeResult, path: Path) -> Path:
    """A closed-loop episode's per-step activity (units x time) as a heat map."""
    plt = _pyplot()
    assert result.activity is not None
    fig, ax = plt.subplots(figsize=(10, 4))
    image = activity_heatmap(ax, result.series["t_s"], result.activity)
    ax.set_xlabel("sim time, s")
    ax.set_title(f"activity, seed {result.seed}")
    fig.colorbar(image, ax=ax)
    return _save(fig, path)
