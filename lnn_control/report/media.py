"""Frames for people to watch: VisualBackProp saliency panels, GIFs and MP4s, the closed-loop episode GIF.

Saliency is **VisualBackProp** (Bojarski et al., 2017, the method the NCP paper uses): the channel-averaged feature
maps of the conv head, from the deepest layer up, each upscaled by a transposed convolution with the layer's own
kernel size and stride (unit weights) and multiplied into the next shallower map, down to the input resolution. It
needs one forward pass of :class:`lnn_control.nn.encoder.ConvHead`, no gradient, and shows which pixels drive the
features the recurrent core sees. torch and OpenCV are imported where they are used, so the episode GIF (Pillow
only) works without them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

    from lnn_control.nn.encoder import ConvHead
    from lnn_control.sim.closed_loop import EpisodeResult

# --------------------------------------------------------------------------------------------------------------------
# Saliency
# --------------------------------------------------------------------------------------------------------------------


def visual_backprop(encoder: ConvHead, frames: Tensor) -> Tensor:
    """VisualBackProp masks of uint8 frames ``(B, H, W, 3)`` -> float ``(B, H, W)`` in [0, 1] (1: most salient)."""
    import torch

    with torch.no_grad():
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


def _upscale(mask: Tensor, conv: Any, size: tuple[int, int]) -> Tensor:
    """Transposed convolution with unit weights and ``conv``'s kernel and stride, to ``size``."""
    import torch
    from torch.nn import functional as F

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
    import cv2

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


# --------------------------------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------------------------------


def save_gif(images: Sequence[Any], path: str | Path, duration_ms: int) -> Path:
    """An animated, looping GIF of Pillow images (or RGB arrays), ``duration_ms`` per frame."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [Image.fromarray(f) if isinstance(f, np.ndarray) else f for f in images]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=duration_ms, loop=0, optimize=False)
    return path


def write_gif(frames: Sequence[np.ndarray], path: str | Path, fps: float) -> Path:
    """An animated GIF of RGB frames (Pillow), looping."""
    return save_gif(frames, path, max(20, int(round(1000 / max(fps, 0.1)))))


def montage_gif(
    sequences: Mapping[str, Sequence[np.ndarray]], path: str | Path, fps: float, *, columns: int = 4, stride: int = 1
) -> Path:
    """One GIF of several frame sequences side by side (``columns`` per row), each titled with its name; shorter
    sequences hold their last frame. Every ``stride``-th frame, 128 colours: small enough for a README."""
    from PIL import Image, ImageDraw

    names = list(sequences)
    h, w = sequences[names[0]][0].shape[:2]
    title = 12
    rows = -(-len(names) // columns)
    length = max(len(s) for s in sequences.values())
    images = []
    for k in range(0, length, stride):
        sheet = Image.new("RGB", (columns * w, rows * (h + title)), (0, 0, 0))
        draw = ImageDraw.Draw(sheet)
        for i, name in enumerate(names):
            frames = sequences[name]
            x, y = (i % columns) * w, (i // columns) * (h + title)
            sheet.paste(Image.fromarray(frames[min(k, len(frames) - 1)]), (x, y + title))
            draw.text((x + 3, y), name, fill=(255, 255, 255))
        images.append(sheet.convert("P", palette=Image.ADAPTIVE, colors=128))
    return save_gif(images, path, max(20, int(round(1000 * stride / max(fps, 0.1)))))


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: float) -> Path | None:
    """An MP4 (mp4v) of RGB frames through OpenCV; None when this OpenCV build cannot write one."""
    import cv2

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


def episode_gif(result: EpisodeResult, path: Path, seconds: float = 10.0, scale: int = 2, stride: int = 3) -> Path:
    """A closed-loop episode's frames, upscaled, with each field of the command applied (the car's steering and
    velocity, the drone's ``vx, vy, vz, yaw_rate``; wrapped onto as many lines as the width needs), the time, the
    speed and, where the truth has one (the drone), the distance to the target under each; a car's steering also as
    a bar (a bar to the left is a left turn)."""
    from PIL import Image, ImageDraw

    assert result.frames is not None
    t = result.series["t_s"]
    dt = float(t[1] - t[0]) if len(t) > 1 else 0.02
    n = min(len(result.frames), max(1, int(round(seconds / dt))))
    h, w = result.frames[0].shape[:2]
    names = [key[len("cmd_"):] for key in result.series if key.startswith("cmd_")]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    bar = 10 if "steering" in result.series else 0
    lines = _wrap(measure, names, w * scale - 8)
    strip = max(46, 4 + bar + 11 * (len(lines) + 1) + 3)
    distance = result.series.get("truth_target_distance")
    images = []
    for k in range(0, n, stride):
        img = Image.new("RGB", (w * scale, h * scale + strip), (0, 0, 0))
        img.paste(Image.fromarray(result.frames[k]).resize((w * scale, h * scale), Image.NEAREST), (0, 0))
        draw = ImageDraw.Draw(img)
        top = h * scale + 4
        if bar:
            centre, half = w * scale // 2, w * scale // 2 - 6
            x_end = centre - int(round(float(result.series["steering"][k]) * half))  # positive (left) to the left
            draw.rectangle((min(centre, x_end), top, max(centre, x_end), top + 8), fill=(255, 200, 0))
            draw.line((centre, top - 2, centre, top + 10), fill=(255, 255, 255))
        values = [" ".join(f"{name} {float(result.series[name][k]):+.2f}" for name in line) for line in lines]
        status = [f"t {t[k]:5.2f}s", f"v {result.series['speed'][k]:4.1f} m/s"]
        if distance is not None and np.isfinite(distance[k]):
            status.append(f"d {distance[k]:4.1f} m")
        status += [] if bool(result.series["observed"][k]) else ["DROP"]
        y = top + bar
        for line in [*values, "  ".join(status)]:
            draw.text((4, y), line, fill=(255, 255, 255))
            y += 11
        images.append(img.convert("P", palette=Image.ADAPTIVE, colors=128))
    return save_gif(images, path, int(round(1000 * dt * stride)))


def _wrap(draw: Any, names: Sequence[str], width: float) -> list[list[str]]:
    """The command fields in lines of at most ``width`` pixels, each field shown as ``name +0.00``."""
    lines: list[list[str]] = []
    for name in names:
        if lines and draw.textlength(" ".join(f"{n} +0.00" for n in [*lines[-1], name])) <= width:
            lines[-1].append(name)
        else:
            lines.append([name])
    return lines
