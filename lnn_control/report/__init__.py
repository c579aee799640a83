"""Figures, media and tables of the evaluations: one package for ``eval``, ``sim-eval`` and ``demo``.

- :mod:`~lnn_control.report.plots`: commands against the human's, neuron activity heat maps, closed-loop time series;
- :mod:`~lnn_control.report.media`: VisualBackProp saliency panels, GIFs and MP4s, the episode GIF with overlays;
- :mod:`~lnn_control.report.tables`: text and Markdown tables, the per-episode table;
- :mod:`~lnn_control.report.episodes`: the report folder of closed-loop episodes (``write_report``).

The numbers come from :mod:`lnn_control.evaluate`, :mod:`lnn_control.sim.closed_loop` and
:mod:`lnn_control.compare`. The names below are importable from this package directly; each submodule is imported on
first use, so the closed-loop report needs neither torch nor OpenCV.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "visual_backprop": "media", "saliency_panel": "media", "save_gif": "media", "write_gif": "media",
    "write_video": "media", "episode_gif": "media",
    "plot_outputs": "plots", "neuron_groups": "plots", "plot_activity": "plots", "activity_heatmap": "plots",
    "plot_timeseries": "plots", "plot_episode_activity": "plots", "episode_label": "plots",
    "fmt": "tables", "text_table": "tables", "markdown_table": "tables", "episode_table": "tables",
    "strict_json": "tables", "summarize": "episodes", "outcome_summary": "episodes", "write_report": "episodes",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
