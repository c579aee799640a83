"""Bags -> a cache of preprocessed frames -> windows of T consecutive frames for training.

Each bag is decoded, paired (:mod:`lnn_control.data.pairing`) and preprocessed (:func:`lnn_control.vision.preprocess`)
**once** into a cache folder of plain arrays that later runs memory-map, so epochs never decode again:

```
<cache_dir>/<bag name>-<key>/
    manifest.json   what was built, from what, with which config, and the pairing counts (JSON, no pickle)
    frames.u8       N x H x W x 3 uint8 RGB, raw C order (shape in the manifest)
    targets.npy     N x F float32, the action's fields in order (manifest: targets_columns)
    stamps.npy      N int64 ns (the stamps pairing used: header stamps by default)
```

The key is a hash of the bag's content fingerprint (:func:`bag_fingerprint`: each file's size and a hash of its first
and last MiB, metadata included) and of the preprocessing and pairing configs (as JSON); a changed bag or config gives
a new key, so a stale cache is never read. Folders are written under a temporary name and renamed into place, so
concurrent builders (e.g. several ``torchrun`` ranks) never see half a cache.

:class:`WindowDataset` serves windows of ``window`` consecutive frames of one bag with the real dt between frames.
A window never spans two bags or a reset of the one timing rule (:mod:`lnn_control.timing`: a gap longer than
``reset_gap``, time not moving forward), and its dts are those the Driver computes, clamp included. Split train and
validation with :func:`split_by_bag`: by episode (bag), never by frame.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset

from lnn_control.data.bags import Bag, BagError, bag_files
from lnn_control.data.pairing import PairingConfig, PairReport, pair_frames
from lnn_control.timing import TimingConfig, frame_dts, segments  # noqa: F401 (frame_dts: re-exported)
from lnn_control.vision import ImageDecodeError, PreprocessConfig, preprocess

log = logging.getLogger(__name__)

CACHE_VERSION = 1
"""Bumped whenever the cache layout or the way frames are made changes: old caches then miss."""
FINGERPRINT_CHUNK = 1 << 20
#: Options of older configs that the timing rule replaced (to name the new place in the error).
MOVED_TO_TIMING = {"max_gap_s": "reset_gap", "nominal_dt_s": "nominal_dt"}


@dataclass(frozen=True)
class DatasetConfig:
    """Everything that decides what a training sample is."""

    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    pairing: PairingConfig = field(default_factory=PairingConfig)
    window: int = 16
    """Frames per sample (T)."""
    stride: int = 8
    """Frames between the starts of consecutive windows of a bag."""
    timing: TimingConfig = field(default_factory=TimingConfig)
    """The timing rule (the run's top-level ``timing``, stored in the model): where segments start, the dts."""

    def __post_init__(self) -> None:
        if isinstance(self.preprocess, Mapping):
            object.__setattr__(self, "preprocess", PreprocessConfig(**self.preprocess))
        if isinstance(self.pairing, Mapping):
            object.__setattr__(self, "pairing", PairingConfig.from_dict(self.pairing))
        if isinstance(self.timing, Mapping):
            object.__setattr__(self, "timing", TimingConfig.from_dict(self.timing))
        if self.window < 1 or self.stride < 1:
            raise ValueError(f"dataset.window and dataset.stride must be >= 1, got {self.window}, {self.stride}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetConfig:
        """Build from a mapping (YAML section); unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        moved = sorted(set(data) & set(MOVED_TO_TIMING))
        if moved:
            raise ValueError(
                f"dataset.{moved[0]} is gone: the run's timing section holds the one timing rule of training and the "
                f"Driver ({', '.join(f'dataset.{k} -> timing.{MOVED_TO_TIMING[k]}' for k in moved)})"
            )
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown dataset option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**dict(data))


# --------------------------------------------------------------------------------------------------------------------
# Cache keys
# --------------------------------------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$LNN_CONTROL_CACHE``, else ``$XDG_CACHE_HOME/lnn_control/datasets``, else ``~/.cache/lnn_control/datasets``."""
    if env := os.environ.get("LNN_CONTROL_CACHE"):
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "lnn_control" / "datasets"


def bag_fingerprint(path: str | Path) -> str:
    """A cheap content fingerprint of a bag: per file, its name, size and a SHA-256 of its first and last MiB.

    Files up to 2 MiB (``metadata.yaml`` among them) are hashed whole. Renaming or moving the bag folder keeps the
    fingerprint; re-recording, appending or truncating changes it.
    """
    path = Path(path)
    if not path.exists():
        raise BagError(path, "does not exist")
    digest = hashlib.sha256()
    try:
        for file in bag_files(path):
            size = file.stat().st_size
            digest.update(f"{file.name}\0{size}\0".encode())
            with file.open("rb") as fh:
                if size <= 2 * FINGERPRINT_CHUNK:
                    digest.update(fh.read())
                else:
                    digest.update(fh.read(FINGERPRINT_CHUNK))
                    fh.seek(size - FINGERPRINT_CHUNK)
                    digest.update(fh.read(FINGERPRINT_CHUNK))
    except OSError as exc:
        raise BagError(path, f"cannot read: {exc}") from exc
    return digest.hexdigest()


def cache_key(bag: str | Path, preprocess_config: PreprocessConfig, pairing: PairingConfig) -> str:
    """The cache key (hex) of ``bag`` built with these configs."""
    payload = {
        "version": CACHE_VERSION,
        "bag": bag_fingerprint(bag),
        "preprocess": asdict(preprocess_config),
        "pairing": pairing.to_dict(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------------------------------------------------
# Episodes: one cached bag
# --------------------------------------------------------------------------------------------------------------------


class CachedEpisode:
    """One bag's cached arrays, memory-mapped on first use (and re-opened, not copied, when pickled to workers)."""

    def __init__(self, cache_path: str | Path) -> None:
        self.cache_path = Path(cache_path)
        manifest_path = self.cache_path / "manifest.json"
        try:
            self.manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{manifest_path}: unreadable cache manifest: {exc}") from exc
        self.bag = Path(self.manifest["bag"])
        self.key: str = self.manifest["key"]
        self.shape = tuple(int(x) for x in self.manifest["frames_shape"])
        self._frames: np.ndarray | None = None
        self.targets: np.ndarray = np.load(self.cache_path / "targets.npy", mmap_mode=None)
        self.stamps: np.ndarray = np.load(self.cache_path / "stamps.npy", mmap_mode=None)
        expected = int(np.prod(self.shape))
        size = (self.cache_path / "frames.u8").stat().st_size
        if size != expected or len(self.targets) != self.shape[0] or len(self.stamps) != self.shape[0]:
            raise ValueError(f"{self.cache_path}: cache arrays do not match the manifest (frames.u8 has {size} bytes)")

    @property
    def frames(self) -> np.ndarray:
        """N x H x W x 3 uint8, read-only memory map."""
        if self._frames is None:
            self._frames = np.memmap(self.cache_path / "frames.u8", dtype=np.uint8, mode="r", shape=self.shape)
        return self._frames

    @property
    def report(self) -> PairReport:
        """The pairing counts recorded when the cache was built."""
        return PairReport(**self.manifest["report"])

    @property
    def name(self) -> str:
        """The bag's file or folder name."""
        return self.bag.name

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_frames"] = None
        return state

    def __repr__(self) -> str:
        return (f"CachedEpisode({self.bag}, {len(self)} frames {self.shape[2]}x{self.shape[1]}, "
                f"cache {self.cache_path.name})")


@dataclass(frozen=True)
class BagFailure:
    """A bag left out of a dataset, and why (the message names the bag, and the topic where there is one)."""

    bag: str
    error: str


def _safe_name(path: Path) -> str:
    name = path.name or "bag"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]


def build_episode(
    bag: str | Path,
    preprocess_config: PreprocessConfig | None = None,
    pairing: PairingConfig | None = None,
    *,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    rebuild: bool = False,
) -> CachedEpisode:
    """The cached episode of ``bag``: loaded when its key is cached, else decoded, paired, preprocessed and cached.

    Raises:
        BagError: the bag cannot be read or yields no pair (the message names the bag, topic and problem).
    """
    bag = Path(bag)
    pre = preprocess_config or PreprocessConfig()
    pairing = pairing or PairingConfig()
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = cache_key(bag, pre, pairing)
    final = root / f"{_safe_name(bag)}-{key[:16]}"
    if final.is_dir() and not rebuild:
        try:
            episode = CachedEpisode(final)
            if episode.key == key:
                return episode
        except (ValueError, OSError, KeyError) as exc:
            log.warning("rebuilding damaged cache %s: %s", final, exc)
        shutil.rmtree(final, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
    try:
        _write_cache(tmp, bag, key, pre, pairing, progress)
        try:
            tmp.rename(final)
        except OSError:
            if rebuild and final.is_dir():
                shutil.rmtree(final, ignore_errors=True)
                tmp.rename(final)
            elif not final.is_dir():  # a concurrent builder finished first otherwise
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return CachedEpisode(final)


def _write_cache(
    out: Path, bag: Path, key: str, pre: PreprocessConfig, pairing: PairingConfig, progress: bool
) -> None:
    stamps: list[int] = []
    targets: list[tuple[float, ...]] = []
    names = pairing.commands.schema.names
    with Bag(bag) as opened:
        pairer = pair_frames(opened, pairing, decode=True, progress=progress)
        with (out / "frames.u8").open("wb") as fh:
            for pair in pairer:
                assert pair.frame is not None and pair.command is not None
                try:
                    small = preprocess(pair.frame, pre)
                except ValueError as exc:  # a crop that does not fit the frame: a config problem, named
                    raise BagError(bag, f"preprocessing frame {pair.index}: {exc}", topic=pairer.image_topic) from exc
                fh.write(small.tobytes())
                stamps.append(pair.stamp_ns)
                targets.append(pair.command.values)
        report = pairer.report
    if not stamps:
        raise BagError(bag, "no frame is paired with a command: " + report.summary(), topic=report.image_topic)
    np.save(out / "stamps.npy", np.asarray(stamps, dtype=np.int64))
    np.save(out / "targets.npy", np.asarray(targets, dtype=np.float32).reshape(-1, len(names)))
    manifest = {
        "format": "lnn_control dataset cache",
        "version": CACHE_VERSION,
        "key": key,
        "bag": str(bag.resolve()),
        "fingerprint": bag_fingerprint(bag),
        "preprocess": asdict(pre),
        "pairing": pairing.to_dict(),
        "frames_shape": [len(stamps), pre.height, pre.width, 3],
        "frames_dtype": "uint8",
        "targets_columns": list(names),
        "stamps_unit": "ns",
        "report": report.to_dict(),
        "created_unix": time.time(),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def load_episodes(
    bags: Iterable[str | Path],
    config: DatasetConfig | None = None,
    *,
    cache_dir: str | Path | None = None,
    strict: bool = False,
    progress: bool = True,
) -> tuple[list[CachedEpisode], list[BagFailure]]:
    """Cached episodes of ``bags`` (built where missing), and the bags left out.

    A bad bag (unreadable, a missing topic, no pairs, non-monotonic stamps, mixed frame sizes) is logged with its error
    and skipped; with ``strict=True`` its :class:`BagError` is raised instead.
    """
    cfg = config or DatasetConfig()
    episodes: list[CachedEpisode] = []
    failures: list[BagFailure] = []
    for bag in bags:
        try:
            episodes.append(
                build_episode(bag, cfg.preprocess, cfg.pairing, cache_dir=cache_dir, progress=progress)
            )
        except (BagError, ImageDecodeError) as exc:
            if strict:
                raise
            log.warning("skipping bag: %s", exc)
            failures.append(BagFailure(str(bag), str(exc)))
    return episodes, failures


# --------------------------------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------------------------------


class WindowDataset(Dataset):
    """Windows of ``window`` consecutive frames of one episode each.

    ``ds[i]`` is ``(frames, dt, targets)``: ``frames`` uint8 ``T x H x W x 3`` (RGB, not normalised), ``dt`` float32
    ``T x 1`` seconds (the dt the Driver would compute for each frame: element 0 from the frame before the window,
    ``timing.nominal_dt`` at a bag's or segment's start), ``targets`` float32 ``T x F``, the action's fields.
    Segments (runs of frames without a reset of ``timing``) shorter than ``window`` give no window and are counted in
    :attr:`short_segments`; the last window of a segment is aligned to its end, so no frame is left out of every
    window.
    """

    def __init__(
        self,
        episodes: Sequence[CachedEpisode],
        window: int = 16,
        stride: int = 8,
        *,
        timing: TimingConfig | None = None,
    ) -> None:
        if window < 1 or stride < 1:
            raise ValueError(f"window and stride must be >= 1, got {window}, {stride}")
        self.episodes = list(episodes)
        self.window = window
        self.stride = stride
        self.timing = timing or TimingConfig()
        self.dts: list[np.ndarray] = []
        self.short_segments = 0
        index: list[tuple[int, int]] = []
        for e, episode in enumerate(self.episodes):
            dt, bounds = segments(episode.stamps, self.timing)
            self.dts.append(dt)
            for a, b in bounds:
                if b - a < window:
                    self.short_segments += 1
                    continue
                begins = list(range(a, b - window + 1, stride))
                if begins[-1] != b - window:
                    begins.append(b - window)
                index.extend((e, s) for s in begins)
        self.index = np.asarray(index, dtype=np.int64).reshape(-1, 2)

    @classmethod
    def from_config(cls, episodes: Sequence[CachedEpisode], config: DatasetConfig) -> WindowDataset:
        """Windows as ``config`` (window, stride, timing) describes them."""
        return cls(episodes, config.window, config.stride, timing=config.timing)

    def __len__(self) -> int:
        return len(self.index)

    def locate(self, i: int) -> tuple[CachedEpisode, int]:
        """The episode and first frame index of window ``i``."""
        e, s = self.index[i]
        return self.episodes[int(e)], int(s)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e, s = (int(x) for x in self.index[i])
        episode, t = self.episodes[e], self.window
        frames = torch.from_numpy(np.array(episode.frames[s : s + t]))
        dt = torch.from_numpy(self.dts[e][s : s + t].reshape(t, 1).copy())
        targets = torch.from_numpy(np.array(episode.targets[s : s + t], dtype=np.float32))
        return frames, dt, targets


# --------------------------------------------------------------------------------------------------------------------
# Train / validation split by episode
# --------------------------------------------------------------------------------------------------------------------

T = TypeVar("T")


def _bag_path(item: object) -> Path:
    return Path(getattr(item, "bag", item))  # type: ignore[arg-type]


def split_by_bag(
    bags: Sequence[T],
    val_fraction: float = 0.2,
    val_bags: Iterable[str | Path] | None = None,
    *,
    seed: int = 0,
) -> tuple[list[T], list[T]]:
    """Split bags (paths, or :class:`CachedEpisode` s) into train and validation **by bag**, never by frame.

    With ``val_bags``, exactly those bags (matched by path or by name) validate and an unknown one is an error.
    Otherwise ``round(len(bags) * val_fraction)`` bags (at least one when ``val_fraction > 0``) are drawn with
    ``seed``, independently of the order the bags are given in. Both lists keep the input order.
    """
    items = list(bags)
    if val_bags is not None:
        wanted = [Path(v) for v in val_bags]
        chosen: set[int] = set()
        for want in wanted:
            hits = [
                i
                for i, item in enumerate(items)
                if _bag_path(item).resolve() == want.resolve() or _bag_path(item).name == str(want)
            ]
            if not hits:
                names = ", ".join(str(_bag_path(x)) for x in items)
                raise ValueError(f"validation bag {want} is not among the bags: {names}")
            chosen.update(hits)
    else:
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        n_val = round(len(items) * val_fraction)
        if val_fraction > 0:
            if len(items) < 2:
                raise ValueError(
                    f"cannot split {len(items)} bag(s) by episode: give at least two bags or val_fraction 0"
                )
            n_val = min(max(1, n_val), len(items) - 1)
        order = sorted(range(len(items)), key=lambda i: str(_bag_path(items[i]).resolve()))
        chosen = set(random.Random(seed).sample(order, n_val))
    train = [x for i, x in enumerate(items) if i not in chosen]
    val = [x for i, x in enumerate(items) if i in chosen]
    return train, val
