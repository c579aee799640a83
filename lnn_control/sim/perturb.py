"""Perturbations for closed-loop evaluation, combinable and seeded.

Parsed from CLI strings (``--perturb noise=0.1 --perturb winter,drop=0.3``):

- ``noise=V``: Gaussian pixel noise of variance ``V`` on the normalised frame: ``x = frame / 255 + N(0, V)``,
  clipped to [0, 1], back to uint8 (the NCP paper's robustness test uses V = 0.1, 0.2, 0.3). Clipping makes the
  measured variance of the output smaller than ``V`` near black and white.
- ``winter``: grass recoloured as snow and road as dark wet asphalt (a colour shift of the whole scene; red/white kerbs,
  the car and the indicator bar keep their colours). Pixel-level, so it works on any backend's frames.
- ``brightness=F``: all pixels times ``F`` (a lighting change), clipped.
- ``drop=P``: with probability ``P`` per step the controller does not see the frame (it is not called); the previous
  command holds, so the controller's dt (from frame stamps) becomes irregular.
- ``occlude=F``: a mid-grey square covering the fraction ``F`` of the frame's area hides part of every frame, at a
  random place each frame (a smudge, a leaf, a sticker on the lens).
- ``latency=K``: the command decided on step ``t`` is applied on step ``t + K`` (the first ``K`` steps apply the
  initial command, the action's stop command).

Each random perturbation draws from its own stream of one seeded generator, so adding ``winter`` does not change
which frames are dropped.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, fields

import numpy as np

from lnn_control.command import Command
from lnn_control.sim.base import SAFE_COMMAND

#: Winter palette (RGB): snow for grass, dark wet asphalt for the road.
SNOW = np.array([226.0, 232.0, 242.0], dtype=np.float32)
WET_ROAD = np.array([58.0, 62.0, 72.0], dtype=np.float32)


@dataclass(frozen=True)
class PerturbConfig:
    """Which perturbations are on; the defaults are all off."""

    noise: float = 0.0
    """Variance of Gaussian noise on pixels/255."""
    winter: bool = False
    """Recolour grass and road."""
    brightness: float = 1.0
    """Pixel gain."""
    drop: float = 0.0
    """Probability that a frame is not seen by the controller."""
    latency: int = 0
    """Steps between a command's decision and its application."""
    occlude: float = 0.0
    """Share of the frame's area hidden by a grey square (placed anew each frame)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.occlude < 1.0:
            raise ValueError(f"perturbation occlude={self.occlude}: the share of the area must be in [0, 1)")
        if not (self.noise >= 0 and math.isfinite(self.noise)):
            raise ValueError(f"perturbation noise={self.noise}: the variance must be a finite number >= 0")
        if not (0.0 <= self.drop < 1.0):
            raise ValueError(f"perturbation drop={self.drop}: the probability must be in [0, 1)")
        if self.latency < 0:
            raise ValueError(f"perturbation latency={self.latency}: must be a number of steps >= 0")
        if not (self.brightness >= 0 and math.isfinite(self.brightness)):
            raise ValueError(f"perturbation brightness={self.brightness}: must be a finite number >= 0")

    @classmethod
    def parse(cls, specs: str | Iterable[str] | None) -> PerturbConfig:
        """Parse ``"noise=0.1"``, ``"winter"``, ``"drop=0.3,latency=2"`` (or a list of such strings) into a config.

        Later settings of the same perturbation override earlier ones; ``"none"`` and ``""`` mean nothing.
        """
        if specs is None:
            return cls()
        if isinstance(specs, str):
            specs = [specs]
        values: dict[str, object] = {}
        names = {f.name for f in fields(cls)}
        for spec in specs:
            for token in spec.replace(" ", ",").split(","):
                token = token.strip()
                if not token or token.lower() == "none":
                    continue
                key, sep, raw = token.partition("=")
                key = key.strip().lower()
                if key not in names:
                    choices = ", ".join(sorted(names))
                    raise ValueError(f"unknown perturbation {key!r} in {spec!r}; choose from {choices}")
                try:
                    if key == "winter":
                        values[key] = True if not sep else raw.strip().lower() in ("1", "true", "yes", "on")
                    elif not sep:
                        raise ValueError("missing '=value'")
                    elif key == "latency":
                        values[key] = int(raw)
                    else:
                        values[key] = float(raw)
                except ValueError as exc:
                    raise ValueError(f"bad perturbation {token!r} in {spec!r}: {exc}") from exc
        return cls(**values)  # type: ignore[arg-type]

    @property
    def active(self) -> bool:
        """True if any perturbation is on."""
        return self != PerturbConfig()

    def describe(self) -> str:
        """The canonical string, e.g. ``"noise=0.1,winter,drop=0.3"``; ``"none"`` if nothing is on."""
        parts = []
        if self.noise:
            parts.append(f"noise={self.noise:g}")
        if self.winter:
            parts.append("winter")
        if self.brightness != 1.0:
            parts.append(f"brightness={self.brightness:g}")
        if self.drop:
            parts.append(f"drop={self.drop:g}")
        if self.latency:
            parts.append(f"latency={self.latency}")
        if self.occlude:
            parts.append(f"occlude={self.occlude:g}")
        return ",".join(parts) or "none"


def add_pixel_noise(frame: np.ndarray, variance: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of ``variance`` on ``frame / 255``, clipped to [0, 1], back to uint8."""
    if variance <= 0:
        return frame
    x = frame.astype(np.float32) * (1.0 / 255.0)
    x += rng.standard_normal(frame.shape, dtype=np.float32) * np.float32(math.sqrt(variance))
    np.clip(x, 0.0, 1.0, out=x)
    return np.rint(x * 255.0).astype(np.uint8)


def winter(frame: np.ndarray) -> np.ndarray:
    """Recolour green (grass) pixels as snow and neutral mid-grey (road) pixels as dark wet asphalt.

    Anti-aliased edges are blended in proportion to how green or how grey they are.
    """
    f = frame.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    # greenness: CarRacing's grass is (102, 204..230, 102), so g - max(r, b) is about 100..128 on grass, 0 elsewhere
    w_grass = np.clip((g - np.maximum(r, b)) / 100.0, 0.0, 1.0)[..., None]
    # grey road: (102..107, same, same); low saturation and mid brightness
    sat = f.max(axis=-1) - f.min(axis=-1)
    mean = f.mean(axis=-1)
    w_road = (np.clip(1.0 - sat / 20.0, 0.0, 1.0) * (np.abs(mean - 105.0) < 30.0))[..., None]
    shade = (g - 204.0)[..., None] * 0.4  # keep the two grass tones apart (patches stay visible)
    out = f * (1.0 - w_grass) + w_grass * (SNOW + shade)
    out = out * (1.0 - w_road) + w_road * (WET_ROAD + (mean[..., None] - 102.0))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def occlude(frame: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """``frame`` with a mid-grey square of ``share`` of its area at a random place (a copy)."""
    h, w = frame.shape[:2]
    side = max(1, min(h, w, int(round(math.sqrt(share * h * w)))))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    out = frame.copy()
    out[y : y + side, x : x + side] = 128
    return out


def scale_brightness(frame: np.ndarray, gain: float) -> np.ndarray:
    """All pixels times ``gain``, clipped."""
    if gain == 1.0:
        return frame
    return np.clip(np.rint(frame.astype(np.float32) * gain), 0, 255).astype(np.uint8)


class Perturber:
    """Applies a :class:`PerturbConfig` during one episode; :meth:`reset` with the episode's seed."""

    def __init__(self, config: PerturbConfig | None = None, seed: int | None = None):
        self.config = config or PerturbConfig()
        self.reset(seed)

    def reset(self, seed: int | None = None, initial: Command = SAFE_COMMAND) -> None:
        """New episode: reseed the streams and fill the latency queue with ``initial``."""
        noise_seq, drop_seq, occlude_seq = np.random.SeedSequence(seed).spawn(3)  # the first two as ever
        self._noise_rng = np.random.default_rng(noise_seq)
        self._drop_rng = np.random.default_rng(drop_seq)
        self._occlude_rng = np.random.default_rng(occlude_seq)
        self._queue: deque[Command] = deque([initial] * self.config.latency)

    def drop_frame(self) -> bool:
        """True if the controller must not see this step's frame."""
        return self.config.drop > 0 and bool(self._drop_rng.random() < self.config.drop)

    def frame(self, frame: np.ndarray) -> np.ndarray:
        """The frame as the controller sees it (colour shifts first, then noise)."""
        c = self.config
        if c.winter:
            frame = winter(frame)
        if c.brightness != 1.0:
            frame = scale_brightness(frame, c.brightness)
        if c.noise > 0:
            frame = add_pixel_noise(frame, c.noise, self._noise_rng)
        if c.occlude > 0:
            frame = occlude(frame, c.occlude, self._occlude_rng)
        return frame

    def delay(self, command: Command) -> Command:
        """Queue ``command`` and return the one to apply now (``latency`` steps old)."""
        if self.config.latency == 0:
            return command
        self._queue.append(command)
        return self._queue.popleft()
