"""Domains: the looks of a scene (materials, textures, lights, fog), never its geometry statistics.

- ``summer`` (training): green grass, brown trunks, green crowns, blue sky, high sun;
- ``fall``: orange, red and yellow crowns, leaf-covered ground;
- ``winter``: snow on the ground and crowns, grey bark, pale sky;
- ``urban``: grey box buildings at the trees' places (square footprint of half-width the trunk radius, the tree's
  height), asphalt ground;
- ``dusk``: the summer forest under a low orange sun and a dark sky;
- ``fog``: the summer forest in grey fog;
- ``distractor``: the summer forest plus a red sphere (the target's colour, another shape) away from the target.

A mix names a domain and parts of others, ``summer+fall.ground`` (the summer forest on fall's ground) or
``summer+fall.ground+fall.trunks``, to find which part of a shifted domain a policy fails on (:data:`PARTS`).

Textures are generated here with numpy from a seed of the domain's own, so they are the same every episode.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

RGB = tuple[float, float, float]
TEXTURE_SIZE = 128


@dataclass(frozen=True)
class DomainStyle:
    """The appearance of one domain."""

    name: str
    ground: str = "grass"
    """Ground texture kind: grass, leaves, snow, asphalt."""
    ground_rgb: RGB = (0.28, 0.45, 0.18)
    ground_repeat: float = 0.5
    """Texture repeats per m."""
    trunk_rgb: RGB = (0.36, 0.25, 0.15)
    canopy_rgbs: tuple[RGB, ...] = ((0.16, 0.40, 0.12), (0.20, 0.46, 0.15), (0.12, 0.33, 0.10))
    """Crown colours (each tree draws one)."""
    sky_top: RGB = (0.30, 0.50, 0.85)
    sky_horizon: RGB = (0.75, 0.85, 0.95)
    sun_dir: tuple[float, float, float] = (-0.4, -0.3, -1.0)
    sun_diffuse: RGB = (0.75, 0.75, 0.70)
    ambient: RGB = (0.35, 0.35, 0.38)
    fog: tuple[float, float] | None = None
    """``(start, end)`` of the fog, m; None: no fog."""
    fog_rgb: RGB = (0.7, 0.7, 0.72)
    urban: bool = False
    """Buildings instead of trees."""
    building_rgbs: tuple[RGB, ...] = ((0.55, 0.55, 0.55), (0.62, 0.58, 0.52), (0.45, 0.47, 0.50))
    distractor: bool = False
    """Show the red distractor sphere."""
    target_rgb: RGB = (0.85, 0.05, 0.05)
    extra: dict = field(default_factory=dict, compare=False)


SUMMER = DomainStyle("summer")

DOMAINS: dict[str, DomainStyle] = {
    d.name: d
    for d in (
        SUMMER,
        DomainStyle(
            "fall", ground="leaves", ground_rgb=(0.45, 0.32, 0.16), trunk_rgb=(0.30, 0.22, 0.15),
            canopy_rgbs=((0.85, 0.45, 0.10), (0.75, 0.22, 0.08), (0.88, 0.70, 0.15), (0.55, 0.35, 0.12)),
            sky_top=(0.45, 0.55, 0.75), sky_horizon=(0.85, 0.82, 0.75), sun_diffuse=(0.80, 0.70, 0.55),
        ),
        DomainStyle(
            "winter", ground="snow", ground_rgb=(0.88, 0.90, 0.93), trunk_rgb=(0.25, 0.23, 0.22),
            canopy_rgbs=((0.82, 0.85, 0.88), (0.70, 0.76, 0.74), (0.90, 0.92, 0.95)),
            sky_top=(0.62, 0.68, 0.78), sky_horizon=(0.88, 0.90, 0.93), sun_diffuse=(0.60, 0.62, 0.68),
            ambient=(0.45, 0.45, 0.50),
        ),
        DomainStyle(
            "urban", ground="asphalt", ground_rgb=(0.22, 0.22, 0.23), ground_repeat=0.35, urban=True,
            sky_top=(0.40, 0.52, 0.72), sky_horizon=(0.80, 0.82, 0.85),
        ),
        DomainStyle(
            "dusk", sky_top=(0.08, 0.08, 0.20), sky_horizon=(0.75, 0.40, 0.20), sun_dir=(-0.9, -0.2, -0.25),
            sun_diffuse=(0.65, 0.35, 0.15), ambient=(0.12, 0.10, 0.14),
        ),
        DomainStyle(
            "fog", fog=(2.0, 22.0), fog_rgb=(0.72, 0.73, 0.75), sky_top=(0.70, 0.71, 0.73),
            sky_horizon=(0.72, 0.73, 0.75), sun_diffuse=(0.45, 0.45, 0.45), ambient=(0.45, 0.45, 0.46),
        ),
        DomainStyle("distractor", distractor=True),
    )
}


PARTS: dict[str, tuple[str, ...]] = {
    "ground": ("ground", "ground_rgb", "ground_repeat"),
    "trunks": ("trunk_rgb",),
    "crowns": ("canopy_rgbs",),
    "sky": ("sky_top", "sky_horizon"),
    "light": ("sun_dir", "sun_diffuse", "ambient"),
    "fog": ("fog", "fog_rgb"),
    "buildings": ("urban", "building_rgbs"),
    "distractor": ("distractor",),
}
"""The parts a mix (``base+other.part``) takes from another domain, and the style fields each one is."""


def domain_style(name: str | DomainStyle) -> DomainStyle:
    """The domain called ``name``, or the mix it names (``summer+fall.ground``), or ``name`` itself if it is a
    style; ``ValueError`` naming the known domains and parts."""
    if isinstance(name, DomainStyle):
        return name
    base, *swaps = name.split("+")
    style = _named(base, name)
    for swap in swaps:
        other, _, part = swap.partition(".")
        if part not in PARTS:
            raise ValueError(f"drone domain {name!r}: {swap!r} is not <domain>.<part> with a part out of "
                             f"{', '.join(PARTS)}")
        source = _named(other, name)
        style = dataclasses.replace(style, **{f: getattr(source, f) for f in PARTS[part]})
    return dataclasses.replace(style, name=name) if swaps else style


def _named(domain: str, name: str) -> DomainStyle:
    try:
        return DOMAINS[domain]
    except KeyError:
        where = "" if domain == name else f" in {name!r}"
        raise ValueError(f"unknown drone domain {domain!r}{where} (known: {', '.join(DOMAINS)}; a mix: "
                         f"summer+fall.ground)") from None


def _noise(rng: np.random.Generator, size: int, scales: tuple[int, ...]) -> np.ndarray:
    """Smooth value noise in about [-1, 1], periodic so the texture tiles."""
    total = np.zeros((size, size))
    for k, cells in enumerate(scales):
        coarse = rng.standard_normal((cells, cells))
        reps = size // cells
        up = np.kron(coarse, np.ones((reps, reps)))
        # blur by rolling averages (periodic) to soften the blocks
        for axis in (0, 1):
            up = sum(np.roll(up, s, axis=axis) for s in range(-reps // 2, reps // 2 + 1)) / (2 * (reps // 2) + 1)
        total += up / (k + 1)
    return total / max(1e-9, np.abs(total).max())


def _to_texture(rgb: RGB, shade: np.ndarray) -> np.ndarray:
    base = np.asarray(rgb)[None, None, :]
    return np.clip(base * (1.0 + shade[..., None]) * 255.0, 0, 255).astype(np.uint8)


@lru_cache(maxsize=32)
def ground_texture(kind: str, rgb: RGB, size: int = TEXTURE_SIZE) -> np.ndarray:
    """``(size, size, 3)`` uint8 ground texture of ``kind`` (grass, leaves, snow, asphalt)."""
    rng = np.random.default_rng(zlib.crc32(kind.encode()))
    if kind == "snow":
        shade = 0.06 * _noise(rng, size, (4, 16)) + 0.03 * rng.standard_normal((size, size))
    elif kind == "asphalt":
        shade = 0.25 * rng.standard_normal((size, size)) + 0.15 * _noise(rng, size, (8,))
        shade[: size // 32, :] += 1.6  # a painted line along one edge of each tile
    elif kind == "leaves":
        shade = 0.35 * _noise(rng, size, (8, 32)) + 0.25 * rng.standard_normal((size, size))
    else:
        shade = 0.30 * _noise(rng, size, (4, 16, 32)) + 0.20 * rng.standard_normal((size, size))
    tex = _to_texture(rgb, shade)
    tex.setflags(write=False)
    return tex


@lru_cache(maxsize=8)
def bark_texture(rgb: RGB, size: int = 64) -> np.ndarray:
    """Vertical bark stripes."""
    rng = np.random.default_rng(7)
    stripes = np.repeat(rng.standard_normal((1, size)), size, axis=0)
    shade = 0.35 * stripes + 0.12 * rng.standard_normal((size, size))
    tex = _to_texture(rgb, shade)
    tex.setflags(write=False)
    return tex


@lru_cache(maxsize=8)
def facade_texture(rgb: RGB, size: int = 64) -> np.ndarray:
    """A wall with a grid of dark windows."""
    shade = np.zeros((size, size))
    cell = size // 4
    for i in range(4):
        for j in range(4):
            shade[i * cell + cell // 4: i * cell + 3 * cell // 4, j * cell + cell // 4: j * cell + 3 * cell // 4] = -0.6
    tex = _to_texture(rgb, shade)
    tex.setflags(write=False)
    return tex
