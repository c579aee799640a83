"""Figures and tables of an evaluation: output plots, neuron activity, saliency (VisualBackProp) video, text tables.

Everything here is drawing; the numbers come from :mod:`lnn_control.evaluate`. matplotlib runs on the Agg backend
(no display needed). Saliency is **VisualBackProp** (Bojarski et al., 2017, the method the NCP paper uses): the
channel-averaged feature maps of the conv head, from the deepest layer up, each upscaled by a transposed convolution
with the layer's own kernel size and stride (unit weights) and multiplied into the next shallower map, down to the
input resolution. It needs one forward pass of :class:`lnn_control.nn.encoder.ConvHead`, no gradient, and shows
which pixels drive the features the recurrent core sees.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from lnn_control.nn.encoder import ConvHead
from lnn_control.nn.policy import Policy

# --------------------------------------------------------------------------------------------------------------------
# Saliency
# --------------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def visual_backprop(encoder: ConvHead, frames: Tensor) -> Tensor:
    """VisualBackProp masks of uint8 frames ``(B, H, W, 3)`` -> float ``(B, H, W)`` in [0, 1] (1: most salient)."""
    x = encoder.normalise(frames)
    convs = [m for m in encoder.convs if isinstance(m, torch.nn.Conv2d)]
    averages: list[Tensor] = []
    for module in encoder.convs:
        x = module(x)
        if isinstance(module, torch.nn.ReLU):
            averages.append(x.mean(dim=1, keepdim=True))
    mask = averages[-1]
    for level in range(len(convs) - 1, -1, -1):
        conv = convs[level]
        target = averages[level - 1].shape[-2:] if level > 0 else frames.shape[1:3]
        mask = _upscale(mask, conv, tuple(target))
        if level > 0:
            mask = mask * averages[level - 1]
    mask = mask[:, 0]
    lo = mask.flatten(1).min(dim=1).values[:, None, None]
    hi = mask.flatten(1).max(dim=1).values[:, None, None]
    return (mask - lo) / (hi - lo).clamp(min=1e-12)


def _upscale(mask: Tensor, conv: torch.nn.Conv2d, size: tuple[int, int]) -> Tensor:
    """Transposed convolution with unit weights and ``conv``'s kernel and stride, to ``size``."""
    kh, kw = conv.kernel_size
    sh, sw = conv.stride
    out_h, out_w = (mask.shape[-2] - 1) * sh + kh, (mask.shape[-1] - 1) * sw + kw
    pad = (size[0] - out_h, size[1] - out_w)
    weight = torch.ones(1, 1, kh, kw, dtype=mask.dtype, device=mask.device)
    if 0 <= pad[0] < sh and 0 <= pad[1] < sw:
        return F.conv_transpose2d(mask, weight, stride=(sh, sw), output_padding=pad)
    up = F.conv_transpose2d(mask, weight, stride=(sh, sw))
    return F.interpolate(up, size=size, mode="bilinear", align_corners=False)


def saliency_panel(
    frame: np.ndarray, mask: np.ndarray, lines: Sequence[str] = (), *, scale: int = 3, alpha: float = 0.5
) -> np.ndarray:
    """One video frame: the network's input beside its saliency overlay, upscaled, with text lines below (RGB)."""
    h, w = frame.shape[:2]
    big = cv2.resize(frame, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
    heat = cv2.applyColorMap(np.clip(mask * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    heat = cv2.resize(heat, (w * scale, h * scale), interpolation=cv2.INTER_LINEAR)
    overlay = (big.astype(np.float32) * (1 - alpha) + heat.astype(np.float32) * alpha).astype(np.uint8)
    line_h = 16
    text = np.full((line_h * max(1, len(lines)) + 6, 2 * w * scale + 4, 3), 255, dtype=np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(text, line, (4, line_h * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    gap = np.full((h * scale, 4, 3), 255, dtype=np.uint8)
    return np.vstack([np.hstack([big, gap, overlay]), text])


def write_gif(frames: Sequence[np.ndarray], path: str | Path, fps: float) -> Path:
    """An animated GIF of RGB frames (Pillow), looping."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    duration = max(20, int(round(1000 / max(fps, 0.1))))
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration, loop=0, optimize=False)
    return path


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: float) -> Path | None:
    """An MP4 (mp4v) of RGB frames through OpenCV; None when this OpenCV build cannot write one."""
    path = Path(path)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), max(fps, 1.0), (w, h))
    if not writer.isOpened():
        return None
    try:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[..., ::-1]))
    finally:
        writer.release()
    return path if path.is_file() and path.stat().st_size > 0 else None


# --------------------------------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_outputs(
    path: str | Path,
    times_s: np.ndarray,
    human: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    baselines: Mapping[str, Sequence[float]] | None = None,
    outputs: Sequence[str] = ("steering", "velocity"),
    title: str = "",
) -> Path:
    """Predicted vs human outputs over time, one panel per output; ``human`` is NaN where no command was in force."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(len(outputs), 1, figsize=(11, 2.6 * len(outputs)), sharex=True, squeeze=False)
    for i, name in enumerate(outputs):
        ax = axes[i, 0]
        ax.plot(times_s, human[:, i], color="black", lw=1.6, label="human")
        for model, pred in predictions.items():
            ax.plot(times_s, pred[:, i], lw=1.1, label=model)
        for label, value in (baselines or {}).items():
            ax.axhline(value[i], color="grey", ls="--", lw=1.0, label=label)
        unit = "m/s" if name == "velocity" else "(+1 left)" if name == "steering" else ""
        ax.set_ylabel(f"{name} {unit}".strip())
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(loc="upper right", fontsize=8, ncol=min(4, 2 + len(predictions)))
    axes[-1, 0].set_xlabel("time since the bag's first frame (s)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    order = [i for _, idx in groups for i in idx] or list(range(activity.shape[1]))
    data = activity[:, order].T
    rows = 2 if steering is not None else 1
    fig, axes = plt.subplots(
        rows, 1, figsize=(11, 1.2 + 0.12 * len(order) + 2.0 * (rows - 1)), sharex=True, squeeze=False,
        gridspec_kw={"height_ratios": [max(2.0, 0.12 * len(order)), 2.0][:rows]},
    )
    ax = axes[0, 0]
    extent = (float(times_s[0]), float(times_s[-1]) if len(times_s) > 1 else float(times_s[0]) + 1, len(order), 0)
    limit = float(np.nanmax(np.abs(data))) if data.size else 1.0
    im = ax.imshow(data, aspect="auto", cmap="coolwarm", vmin=-limit, vmax=limit, extent=extent,
                   interpolation="nearest")
    start = 0
    ticks, labels = [], []
    for name, idx in groups:
        if start:
            ax.axhline(start, color="black", lw=0.8)
        ticks.append(start + len(idx) / 2)
        labels.append(f"{name} ({len(idx)})")
        start += len(idx)
    if ticks:
        ax.set_yticks(ticks, labels)
    ax.set_ylabel("neuron")
    fig.colorbar(im, ax=axes[:, 0].tolist(), fraction=0.02, pad=0.01, label="state")
    if steering is not None:
        axes[1, 0].plot(times_s, steering, color="tab:blue", lw=1.0)
        axes[1, 0].set_ylabel("steering")
        axes[1, 0].grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time since the bag's first frame (s)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------------------------


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
