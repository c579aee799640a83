"""Imitation learning from bags, backpropagation through time over windows of frames (``lnn-control train``).

A run reads a YAML configuration (``config/train.yaml``: sections ``preprocess``, ``timing``, ``model``, ``dataset``,
``training``, ``augment``; ``--set section.key=value`` overrides any field), builds the dataset cache
(:mod:`lnn_control.data.dataset`), splits train and validation **by bag**, and trains a :class:`Policy` on windows of
``dataset.window`` frames with the dt the Driver computes between them (:mod:`lnn_control.timing`). Targets are
normalised by the training set's mean and std, stored in the policy's config; the loss is :func:`weighted_mse`, the
augmentation :func:`augment_windows` (on CPU done where the batches are loaded, :class:`EpochBatches`, so loader
workers overlap it with the step), the precision fp32, bf16 or measured (``auto``), the schedule
:func:`make_scheduler` (AdamW, stepped per batch), with early stopping after ``training.patience`` epochs without
improvement. Under ``torchrun`` the model runs in DistributedDataParallel, each process reads its shard, and only
rank 0 writes files.

The output folder holds::

    config.yaml               the resolved configuration (what --resume reads back)
    run.json                  bags, validation bags, bags skipped and why, target statistics
    best.safetensors/.json    the policy with the lowest validation loss (lnn_control.nn.checkpoint)
    last.safetensors/.json    the policy after the last finished epoch
    state.safetensors/.json   optimizer, scheduler, RNG and epoch counters, for an exact resume (no pickle)
    metrics.csv               one row per epoch; tb/ TensorBoard scalars when tensorboard is installed

``--resume DIR`` continues to the same weights as an uninterrupted run (on CPU, bit for bit): the data order and
the augmentation of every batch are functions of (seed, epoch, batch, rank), and the state is saved every epoch.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate

from lnn_control.command import CAR, ActionSchema, schema_from
from lnn_control.data.bags import discover_bags
from lnn_control.data.dataset import (
    BagFailure,
    CachedEpisode,
    DatasetConfig,
    WindowDataset,
    load_episodes,
    split_by_bag,
)
from lnn_control.nn import checkpoint
from lnn_control.nn.policy import Policy, PolicyConfig
from lnn_control.paths import config_file
from lnn_control.timing import TimingConfig
from lnn_control.vision import PreprocessConfig

log = logging.getLogger(__name__)

SCHEDULES = ("cosine", "onecycle", "constant")
PRECISIONS = ("auto", "fp32", "bf16")
#: bf16 must beat fp32 by this factor in :func:`choose_precision`'s measurement to be chosen.
BF16_MARGIN = 1.15
STATE_FORMAT = "lnn_control.train_state"
STATE_VERSION = 1
SECTIONS = ("action", "preprocess", "timing", "model", "dataset", "training", "augment")


class TrainError(RuntimeError):
    """A run that cannot start or continue; the message says what to change."""


# --------------------------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------------------------


def _from_mapping(cls: type, data: Mapping[str, Any], section: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {section} option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return cls(**dict(data))


@dataclass
class AugmentConfig:
    """Photometric and geometric augmentation of training windows; one draw per window (see :func:`augment_windows`)."""

    enabled: bool = True
    brightness: float = 0.15
    """Largest brightness offset, as a fraction of full scale (255)."""
    contrast: float = 0.2
    """Contrast factor drawn from [1 - contrast, 1 + contrast] (about mid-grey)."""
    shadow_probability: float = 0.3
    shadow_darkness: tuple[float, float] = (0.5, 0.85)
    """Range of the factor the shadowed pixels are multiplied by."""
    noise_std: float = 0.02
    """Largest std of additive Gaussian noise, as a fraction of full scale; each window draws its std in [0, this]."""
    max_shift: int = 3
    """Largest shift in pixels, each axis (edges are replicated); labels are not changed, so keep it small."""
    channel_gain: float = 0.0
    """Colour cast: each channel of a window multiplied by a factor drawn from [1 - this, 1 + this]; 0: off."""
    grayscale_probability: float = 0.0
    """Share of windows turned to grey (luma in all three channels); 0: off."""
    hue: float = 0.0
    """Hue rotation: each window's colours turned about the grey axis by up to this fraction of a full turn, either
    way (0.5: any hue, so colour alone no longer tells the target from the scene); 0: off."""
    colour_shear: float = 0.0
    """Colour shear that keeps ``colour_anchor``: each window's colours move within the plane of grey and the anchor
    (toward or away from the anchor's hue, and lighter or darker) by their component along the one direction at right
    angles to both, times draws in [-this, this]; greys and the anchor's colours stay, so surfaces change colour
    against one another (a green ground turns brown beside brown trunks) while the anchor still marks what it marked;
    0: off."""
    colour_anchor: tuple[float, float, float] = (1.0, 0.0, 0.0)
    """The RGB direction the shear keeps (red: the drone's target); not grey."""

    def __post_init__(self) -> None:
        self.shadow_darkness = tuple(float(v) for v in self.shadow_darkness)  # type: ignore[assignment]
        lo, hi = self.shadow_darkness
        if not 0 <= lo <= hi <= 1:
            raise ValueError(f"augment.shadow_darkness must be 0 <= lo <= hi <= 1, got {self.shadow_darkness}")
        for name in ("brightness", "contrast", "noise_std", "channel_gain"):
            if getattr(self, name) < 0:
                raise ValueError(f"augment.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("shadow_probability", "grayscale_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"augment.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_shift < 0:
            raise ValueError(f"augment.max_shift must be >= 0, got {self.max_shift}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"augment.hue must be in [0, 0.5] (a fraction of a turn), got {self.hue}")
        if self.colour_shear < 0:
            raise ValueError(f"augment.colour_shear must be >= 0, got {self.colour_shear}")
        self.colour_anchor = tuple(float(v) for v in self.colour_anchor)  # type: ignore[assignment]
        anchor = np.asarray(self.colour_anchor)
        if anchor.shape != (3,) or np.ptp(anchor) < 1e-3:
            raise ValueError(f"augment.colour_anchor must be an RGB direction off grey, got {self.colour_anchor}")


@dataclass
class TrainConfig:
    """Optimisation, schedule, stopping, precision and bookkeeping of a run."""

    epochs: int = 30
    batch_size: int = 32
    """Windows per batch (per process under torchrun)."""
    steps_per_epoch: int = 0
    """Batches per epoch; 0 means every window once."""
    lr: float = 3e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    """cosine (linear warm-up, then cosine decay), onecycle (torch's OneCycleLR) or constant; stepped per batch."""
    warmup_fraction: float = 0.05
    """Share of all steps spent warming up (cosine) or rising to the peak (onecycle)."""
    min_lr_ratio: float = 0.02
    """Cosine: the last learning rate as a fraction of ``lr``."""
    grad_clip: float = 1.0
    """Largest gradient norm; 0 disables clipping."""
    patience: int = 8
    """Epochs without improvement of the validation loss before stopping; 0 never stops early."""
    min_delta: float = 0.0
    loss_alpha: float = 0.0
    """NCP-paper weighting exp(alpha * |y|) of the squared error; 0 disables it."""
    weighted_outputs: tuple[str, ...] = ()
    """The outputs the NCP-paper weighting applies to; empty: the action's first field (the car's steering)."""
    output_weights: tuple[float, ...] = ()
    """A weight per output (the action's fields, in order); empty: 1 each."""
    val_fraction: float = 0.2
    """Share of bags held out for validation when --val-bags is not given (by bag, never by frame)."""
    seed: int = 0
    threads: int = 2
    precision: str = "fp32"
    """fp32, or bf16: the forward pass under torch.autocast (bfloat16); the loss stays float32. auto: whichever of
    the two a short measurement at the start finds faster on this machine (:func:`choose_precision`); the run's
    config.yaml records the choice."""
    deterministic: bool = True
    """torch.use_deterministic_algorithms (warn only where an op has no deterministic version)."""
    workers: int = 0
    """DataLoader worker processes; on CPU they also augment the batches, overlapping the training step (worth it
    when the machine has cores beyond ``threads``); 0: load and augment in the training process."""
    cache_dir: str | None = None
    strict: bool = False
    """Stop on the first bad bag instead of skipping it."""
    time_limit_s: float = 0.0
    """End the run after the epoch during which this much training time has passed; 0: no limit."""
    init_from: str = ""
    """A checkpoint stem to start from instead of new weights (a fine-tune, e.g. a DAgger round): the optimiser and
    schedule start fresh, the checkpoint's target statistics are kept, and it must build the model the ``model``
    section builds; empty: new weights."""
    tensorboard: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        self.weighted_outputs = tuple(self.weighted_outputs)
        self.output_weights = tuple(float(w) for w in self.output_weights)
        if self.schedule not in SCHEDULES:
            raise ValueError(f"training.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"training.precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("epochs", "batch_size", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"training.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("steps_per_epoch", "patience", "workers", "time_limit_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"training.{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"training.lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"training.warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"training.val_fraction must be in [0, 1), got {self.val_fraction}")


@dataclass
class RunConfig:
    """The whole configuration of a run, as ``config/train.yaml`` lays it out."""

    action: ActionSchema = CAR
    """The command the model outputs and the labels are read as (``car``, ``drone`` or a schema in full); the
    model and the dataset share it, as they share ``preprocess`` and ``timing``."""
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    timing: TimingConfig = field(default_factory=TimingConfig)
    """The one timing rule (lnn_control.timing): the windows' segments and dts, stored in the model for the Driver."""
    model: dict[str, Any] = field(default_factory=dict)
    """PolicyConfig fields except ``preprocess``, ``timing``, ``target_mean`` and ``target_std`` (set by the run)."""
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    training: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Build from the YAML document; unknown sections or fields are errors naming them."""
        data = dict(data or {})
        unknown = sorted(set(data) - set(SECTIONS))
        if unknown:
            raise ValueError(f"unknown config section(s): {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
        action = schema_from(data.get("action") or CAR.name)
        pre = _from_mapping(PreprocessConfig, data.get("preprocess") or {}, "preprocess")
        timing = TimingConfig.from_dict(data.get("timing") or {})
        model = dict(data.get("model") or {})
        if "outputs" in model:
            raise ValueError("model.outputs is gone: the top-level action section names the outputs (action: car)")
        for reserved in ("action", "preprocess", "timing", "target_mean", "target_std"):
            if reserved in model:
                raise ValueError(f"model.{reserved} is set by the run (action, preprocess, timing: the top-level "
                                 "sections)")
        dataset_data = dict(data.get("dataset") or {})
        for shared in ("preprocess", "timing"):
            if shared in dataset_data:
                raise ValueError(f"dataset.{shared}: use the top-level {shared} section (model and dataset share it)")
        dataset = DatasetConfig.from_dict({**dataset_data, "preprocess": dataclasses.asdict(pre), "timing": timing})
        dataset = _with_action(dataset, action)
        config = cls(
            action=action,
            preprocess=pre,
            timing=timing,
            model=model,
            dataset=dataset,
            training=_from_mapping(TrainConfig, data.get("training") or {}, "training"),
            augment=_from_mapping(AugmentConfig, data.get("augment") or {}, "augment"),
        )
        config.policy_config()  # validate the model section now, not after the cache is built
        unknown_outputs = sorted(set(config.training.weighted_outputs) - set(config.policy_config().outputs))
        if unknown_outputs:
            raise ValueError(f"training.weighted_outputs names unknown output(s): {', '.join(unknown_outputs)}")
        outputs = config.policy_config().outputs
        if config.training.output_weights and len(config.training.output_weights) != len(outputs):
            raise ValueError(f"training.output_weights needs one value per model output ({', '.join(outputs)})")
        return config

    def to_dict(self) -> dict[str, Any]:
        """The YAML document (round-trips through :meth:`from_dict`)."""
        dataset = self.dataset.to_dict()
        dataset.pop("preprocess")
        dataset.pop("timing")
        return _plain(
            {
                "action": self.action.reference(),
                "preprocess": dataclasses.asdict(self.preprocess),
                "timing": self.timing.to_dict(),
                "model": self.model,
                "dataset": dataset,
                "training": dataclasses.asdict(self.training),
                "augment": dataclasses.asdict(self.augment),
            }
        )

    def policy_config(self, target_mean: Sequence[float] | None = None, target_std: Sequence[float] | None = None):
        """The :class:`PolicyConfig` of this run, with the training set's target statistics when given."""
        extra: dict[str, Any] = {"action": self.action, "preprocess": self.preprocess, "timing": self.timing}
        if target_mean is not None:
            extra["target_mean"] = tuple(float(v) for v in target_mean)
        if target_std is not None:
            extra["target_std"] = tuple(float(v) for v in target_std)
        try:
            return PolicyConfig(**{**self.model, **extra})
        except TypeError as exc:
            raise ValueError(f"model section: {exc}") from exc


def _with_action(dataset: DatasetConfig, action: ActionSchema) -> DatasetConfig:
    """``dataset`` with its labels read as ``action`` (``dataset.pairing.commands.action`` may only repeat it)."""
    commands = dataset.pairing.commands
    given = schema_from(commands.action)
    if given != action and given != CAR:
        raise ValueError(f"dataset.pairing.commands.action is {given.name!r}, the run's action is {action.name!r}: "
                         "set the top-level action only")
    pairing = dataclasses.replace(dataset.pairing, commands=dataclasses.replace(commands, action=action.reference()))
    return dataclasses.replace(dataset, pairing=pairing)


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively (for YAML and JSON)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``["training.epochs=3", "model.core=cfc", "action=drone"]`` applied to a config document; values are parsed as
    YAML. A section that is a value of its own (``action``) is set whole."""
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects section.key=value, got {item!r}")
        parts = key.strip().split(".")
        if parts == ["action"]:
            data["action"] = yaml.safe_load(raw)
            continue
        if len(parts) < 2 or parts[0] not in SECTIONS:
            raise ValueError(f"--set {item!r}: the key must start with a section ({', '.join(SECTIONS)})")
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ValueError(f"--set {item!r}: {part} is not a section")
            node = child
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    """Read a train YAML (default: the package's ``config/train.yaml``) and apply ``--set`` overrides."""
    path = Path(path) if path is not None else config_file("train.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise TrainError(f"{path}: cannot read the config: {exc}") from exc
    except yaml.YAMLError as exc:
        raise TrainError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise TrainError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    try:
        return RunConfig.from_dict(apply_overrides(data, overrides))
    except (ValueError, TypeError) as exc:
        raise TrainError(f"{path}: {exc}") from exc


# --------------------------------------------------------------------------------------------------------------------
# Augmentation, loss, schedule
# --------------------------------------------------------------------------------------------------------------------


def batch_seed(seed: int, epoch: int, step: int, rank: int = 0) -> int:
    """The seed of one batch's augmentation: a fixed function of the run seed, epoch, batch and process."""
    value = seed
    for part in (epoch, step, rank):
        value = (value * 1_000_003 + part + 1) % (2**61 - 1)
    return value


def augment_windows(frames: Tensor, config: AugmentConfig, generator: torch.Generator) -> Tensor:
    """Augment uint8 windows ``(B, T, H, W, 3)``; every frame of a window gets the same draw (noise aside).

    In order: a shift of up to ``max_shift`` pixels (edges replicated), contrast about mid-grey and a brightness
    offset, a shadow (pixels on one side of a random line through the frame darkened) with probability
    ``shadow_probability``, a colour cast (``channel_gain``), a hue rotation (``hue``), a colour shear that keeps
    one colour (``colour_shear``), grey with probability
    ``grayscale_probability``, and Gaussian noise of a std drawn per window. Returns a new uint8 tensor of the same
    shape; the same generator state gives the same result (and an option at 0 draws nothing, so it leaves the others'
    draws as they were).
    """
    if frames.dtype != torch.uint8 or frames.dim() != 5 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 windows (B, T, H, W, 3), got {tuple(frames.shape)} {frames.dtype}")
    if not config.enabled:
        return frames
    b, _t, h, w, _ = frames.shape
    dev = frames.device

    def uniform(lo: float, hi: float, *shape: int) -> Tensor:
        return lo + (hi - lo) * torch.rand(shape, generator=generator, device=dev)

    x = frames
    if config.max_shift > 0:  # per window: rows then columns, edge pixels replicated
        s = config.max_shift
        shifts = torch.randint(-s, s + 1, (b, 2), generator=generator, device=dev).tolist()
        rows_base, cols_base = torch.arange(h, device=dev), torch.arange(w, device=dev)
        x = torch.stack([
            window.index_select(1, (rows_base - dy).clamp(0, h - 1)).index_select(2, (cols_base - dx).clamp(0, w - 1))
            if dy or dx else window
            for window, (dy, dx) in zip(x, shifts, strict=True)
        ])
    # contrast c about mid-grey, offset o, then the shadow's factor m, fused: y = x * (c m) + (127.5 (1 - c) + o) m
    scale = torch.ones(b, 1, 1, 1, 1, device=dev)
    bias = torch.zeros(b, 1, 1, 1, 1, device=dev)
    if config.contrast > 0 or config.brightness > 0:
        c = uniform(1 - config.contrast, 1 + config.contrast, b, 1, 1, 1, 1)
        offset = uniform(-config.brightness, config.brightness, b, 1, 1, 1, 1) * 255.0
        scale, bias = c, 127.5 * (1 - c) + offset
    if config.shadow_probability > 0:
        on = torch.rand(b, generator=generator, device=dev) < config.shadow_probability
        top, bottom = uniform(0, w, b), uniform(0, w, b)
        left_side = torch.rand(b, generator=generator, device=dev) < 0.5
        factor = uniform(*config.shadow_darkness, b)
        ys = torch.linspace(0, 1, h, device=dev)
        boundary = top[:, None] + (bottom - top)[:, None] * ys[None, :]  # (B, H)
        inside = torch.arange(w, device=dev)[None, None, :] < boundary[:, :, None]  # (B, H, W)
        inside = torch.where(left_side[:, None, None], inside, ~inside) & on[:, None, None]
        mult = torch.where(inside, factor[:, None, None], torch.ones((), device=dev))[:, None, :, :, None]
        scale, bias = scale * mult, bias * mult
    if config.channel_gain > 0:
        gain = uniform(1 - config.channel_gain, 1 + config.channel_gain, b, 1, 1, 1, 3)
        scale, bias = scale * gain, bias * gain
    out = torch.addcmul(bias + 0.5, x.float(), scale)  # + 0.5: the truncating cast below then rounds
    colour = None  # the hue rotation, then the shear: one (B, 3, 3) matrix per window, applied to the pixels once
    if config.hue > 0:
        colour = hue_rotations(uniform(-config.hue, config.hue, b) * 2 * math.pi)
    if config.colour_shear > 0:
        shear = colour_shears(uniform(-config.colour_shear, config.colour_shear, b, 2), config.colour_anchor)
        colour = shear if colour is None else shear @ colour
    if colour is not None:
        out = torch.einsum("bthwc,bdc->bthwd", out, colour)
    if config.grayscale_probability > 0:
        grey = torch.rand(b, generator=generator, device=dev) < config.grayscale_probability
        luma = (out * torch.tensor([0.299, 0.587, 0.114], device=dev)).sum(-1, keepdim=True)
        out = torch.where(grey[:, None, None, None, None], luma.expand_as(out), out)
    if config.noise_std > 0:
        sigma = uniform(0, config.noise_std, b, 1, 1, 1, 1) * 255.0
        out.addcmul_(torch.empty_like(out).normal_(generator=generator), sigma)
    return out.clamp_(0, 255.49).to(torch.uint8)


def hue_rotations(angles: Tensor) -> Tensor:
    """Rotation matrices ``(B, 3, 3)`` about the grey axis (1, 1, 1) of RGB by ``angles`` (radians, ``(B,)``)."""
    cos, sin = torch.cos(angles)[:, None, None], torch.sin(angles)[:, None, None]
    eye = torch.eye(3, device=angles.device)
    cross = torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]], device=angles.device) / math.sqrt(3)
    return cos * eye + sin * cross + (1 - cos) * torch.full((3, 3), 1 / 3, device=angles.device)


def colour_shears(draws: Tensor, anchor: tuple[float, float, float]) -> Tensor:
    """Matrices ``(B, 3, 3)`` ``I + u w^T``: ``w`` the unit RGB direction at right angles to grey and ``anchor``,
    ``u = draws[:, 0] grey + draws[:, 1] anchor'`` (unit grey, and the anchor's unit part off grey). Since ``u`` is
    at right angles to ``w``, every matrix is invertible (determinant 1) and leaves grey and the anchor as they are."""
    grey = torch.full((3,), 1 / math.sqrt(3), device=draws.device)
    a = torch.tensor(anchor, dtype=torch.float32, device=draws.device)
    off_grey = a - (a @ grey) * grey
    off_grey = off_grey / off_grey.norm()
    w = torch.linalg.cross(grey, off_grey)
    u = draws[:, :1] * grey + draws[:, 1:] * off_grey
    return torch.eye(3, device=draws.device) + u[:, :, None] * w[None, None, :]


def weighted_mse(
    pred: Tensor, target: Tensor, raw_target: Tensor, alpha: float, weighted: Tensor, output_weights: Tensor
) -> Tensor:
    """Mean of ``output_weights[o] * exp(alpha * |raw_target| * weighted[o]) * (pred - target)^2``.

    ``pred`` and ``target`` are in normalised space (B, T, O); ``raw_target`` is the target in command units, whose
    magnitude sets the NCP paper's weight for the outputs flagged in ``weighted`` (O,) of 0/1.
    """
    err = (pred.float() - target) ** 2
    weight = output_weights
    if alpha:
        weight = weight * torch.exp(alpha * raw_target.abs() * weighted)
    return (err * weight).mean()


def lr_lambda_cosine(total_steps: int, warmup_steps: int, min_ratio: float):
    """Linear warm-up to 1, then a cosine decay to ``min_ratio`` at ``total_steps``."""

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    """The per-batch learning-rate schedule named by ``config.schedule``."""
    total_steps = max(1, total_steps)
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total_steps, pct_start=max(config.warmup_fraction, 1e-3)
        )
    if config.schedule == "cosine":
        warmup = int(round(config.warmup_fraction * total_steps))
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda_cosine(total_steps, warmup, config.min_lr_ratio))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: 1.0)


def autocast(device: torch.device, precision: str):
    """bfloat16 autocast for ``precision == "bf16"``, else a no-op context."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# --------------------------------------------------------------------------------------------------------------------
# One step and one validation pass (the bench times train_step itself)
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class LossSpec:
    """The loss's constants as tensors on the training device."""

    alpha: float
    weighted: Tensor
    output_weights: Tensor

    @classmethod
    def build(cls, config: TrainConfig, outputs: Sequence[str], device: torch.device) -> LossSpec:
        chosen = config.weighted_outputs or tuple(outputs[:1])
        weighted = torch.tensor([1.0 if o in chosen else 0.0 for o in outputs], device=device)
        weights = config.output_weights or (1.0,) * len(outputs)
        return cls(config.loss_alpha, weighted, torch.tensor(weights, device=device))

    def __call__(self, policy: Policy, pred_norm: Tensor, raw_target: Tensor) -> Tensor:
        target = policy.normalise_targets(raw_target)
        return weighted_mse(pred_norm, target, raw_target, self.alpha, self.weighted, self.output_weights)


def train_step(
    module: nn.Module,
    policy: Policy,
    batch: tuple[Tensor, Tensor, Tensor],
    optimizer: torch.optim.Optimizer,
    loss_spec: LossSpec,
    *,
    precision: str = "fp32",
    grad_clip: float = 0.0,
) -> float:
    """Forward a batch of windows (``module`` is the policy or its DDP wrapper), backward, clip, step; the loss."""
    frames, dt, targets = batch
    with autocast(frames.device, precision):
        pred, _ = module(frames, dt, None, True)
    loss = loss_spec(policy, pred, targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(policy.parameters(), grad_clip)
    optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def validate(
    policy: Policy, loader: DataLoader, loss_spec: LossSpec, device: torch.device, precision: str = "fp32"
) -> dict[str, float]:
    """Loss and per-output MAE (command units) over ``loader``; summed across processes under torch.distributed."""
    was_training = policy.training
    policy.eval()
    n_out = len(policy.config.outputs)
    sums = torch.zeros(2 + n_out, dtype=torch.float64, device=device)  # loss * windows, windows, |err| sums
    frames_seen = 0.0
    for frames, dt, targets in loader:
        frames, dt, targets = frames.to(device), dt.to(device), targets.to(device)
        with autocast(device, precision):
            pred, _ = policy(frames, dt, None, True)
        pred = pred.float()
        sums[0] += float(loss_spec(policy, pred, targets)) * frames.shape[0]
        sums[1] += frames.shape[0]
        real = pred * policy.target_std + policy.target_mean
        sums[2:] += (real - targets).abs().sum(dim=(0, 1)).double()
        frames_seen += frames.shape[0] * frames.shape[1]
    sums = torch.cat([sums, torch.tensor([frames_seen], dtype=torch.float64, device=device)])
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(sums)
    policy.train(was_training)
    windows, frames_total = float(sums[1]), float(sums[-1])
    out = {"loss": float(sums[0]) / windows if windows else math.nan}
    for i, name in enumerate(policy.config.outputs):
        out[f"mae_{name}"] = float(sums[2 + i]) / frames_total if frames_total else math.nan
    return out


# --------------------------------------------------------------------------------------------------------------------
# Batches: collated and augmented where they are loaded; the precision, measured
# --------------------------------------------------------------------------------------------------------------------


class EpochBatches(Dataset):
    """The batches of one epoch as a map-style dataset: item ``step`` is the windows ``indices[step * B : (step + 1)
    * B]`` collated, and, when :attr:`augments`, augmented with the generator seeded by :func:`batch_seed` (seed,
    epoch, step, rank). DataLoader workers (``training.workers``) thus augment ahead of the training step, and the
    batches are the same with any number of workers, or none. :meth:`set_epoch` before each epoch's iteration
    (workers start with each iteration and take the epoch's state along)."""

    def __init__(self, windows: Dataset, batch_size: int, augment: AugmentConfig, seed: int, rank: int = 0, *,
                 augments: bool = True) -> None:
        self.windows, self.batch_size, self.augment = windows, batch_size, augment
        self.seed, self.rank, self.augments = seed, rank, augments
        self.epoch, self.indices = 0, list(range(len(windows)))  # type: ignore[arg-type]
        self.steps = self._steps(None)

    def _steps(self, limit: int | None) -> int:
        steps = math.ceil(len(self.indices) / self.batch_size)
        return min(steps, limit) if limit else steps

    def set_epoch(self, epoch: int, indices: Sequence[int], steps: int | None = None) -> None:
        """The epoch's window order (the sampler's), and at most ``steps`` batches of it."""
        self.epoch, self.indices = epoch, list(indices)
        self.steps = self._steps(steps)

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> tuple[Tensor, Tensor, Tensor]:
        if not 0 <= step < self.steps:
            raise IndexError(step)
        chosen = self.indices[step * self.batch_size : (step + 1) * self.batch_size]
        frames, dt, targets = default_collate([self.windows[i] for i in chosen])
        if self.augments:
            gen = torch.Generator().manual_seed(batch_seed(self.seed, self.epoch, step, self.rank))
            frames = augment_windows(frames, self.augment, gen)
        return frames, dt, targets


def batch_loader(
    windows: Dataset, sampler: Any, config: RunConfig, rank: int, device: torch.device
) -> tuple[EpochBatches, DataLoader]:
    """The training batches of ``windows`` in ``sampler``'s order and their loader (``training.workers``
    processes; augmented in the loader unless the device is a GPU, which augments faster itself)."""
    cfg = config.training
    batches = EpochBatches(windows, cfg.batch_size, config.augment, cfg.seed, rank, augments=device.type == "cpu")
    batches.set_epoch(0, list(sampler), cfg.steps_per_epoch or None)
    loader = DataLoader(batches, batch_size=None, shuffle=False, num_workers=cfg.workers,
                        pin_memory=device.type == "cuda", prefetch_factor=2 if cfg.workers else None)
    return batches, loader


def _pass_seconds(model: Policy, batch: tuple[Tensor, Tensor, Tensor], precision: str, device: torch.device) -> float:
    """Seconds of one forward and backward pass of ``model`` over ``batch`` (on ``device``) at ``precision``."""
    frames, dt, targets = batch
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    with autocast(device, precision):
        pred, _ = model(frames, dt, None, True)
    (pred.float() - model.normalise_targets(targets)).square().mean().backward()
    model.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def step_seconds(
    policy: Policy, batch: tuple[Tensor, Tensor, Tensor], precisions: Sequence[str], device: torch.device,
    rounds: int = 3,
) -> dict[str, float]:
    """The fastest seconds of a forward and backward pass of ``policy`` over ``batch`` at each of ``precisions``.

    One warm-up pass each, then ``rounds`` rounds that take the precisions in turn, in reversed order every other
    round, so a load that comes and goes or a cost paid once falls on all alike; the minimum, since other work on
    the machine only adds time. The weights, gradients and random state are left as they were."""
    model = copy.deepcopy(policy).train()
    frames, dt, targets = (t.to(device) for t in batch)
    times: dict[str, list[float]] = {p: [] for p in precisions}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for r in range(rounds + 1):
            for precision in precisions if r % 2 == 0 else precisions[::-1]:
                seconds = _pass_seconds(model, (frames, dt, targets), precision, device)
                if r > 0:  # round 0 is the warm-up
                    times[precision].append(seconds)
    return {p: min(t) for p, t in times.items()}


def choose_precision(
    policy: Policy, batch: tuple[Tensor, Tensor, Tensor], device: torch.device, dist: Dist | None = None,
    rounds: int = 3,
) -> tuple[str, dict[str, float]]:
    """``bf16`` if a short measurement (:func:`step_seconds` on ``batch``) finds it :data:`BF16_MARGIN` times
    faster than fp32 here, else ``fp32``; and the seconds measured. Under torchrun the processes' times are summed,
    so all choose the same."""
    seconds = step_seconds(policy, batch, ("fp32", "bf16"), device, rounds)
    if dist is not None and dist.active:
        reduced = torch.tensor([seconds["fp32"], seconds["bf16"]], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(reduced)
        seconds = {"fp32": float(reduced[0]), "bf16": float(reduced[1])}
    return ("bf16" if seconds["bf16"] * BF16_MARGIN < seconds["fp32"] else "fp32"), seconds


def device_capability(device: torch.device) -> str:
    """What the kernels can use: torch's CPU capability (``AVX512``, ``AVX2``, ...) or the GPU's name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return torch.backends.cpu.get_cpu_capability()


def _resolved_precision(
    config: RunConfig, policy: Policy, windows: Dataset, dist: Dist, device: torch.device
) -> RunConfig:
    """``config`` with ``training.precision: auto`` replaced by :func:`choose_precision`'s choice (printed)."""
    cfg = config.training
    if cfg.precision != "auto":
        return config
    n = min(len(windows), cfg.batch_size)  # type: ignore[arg-type]
    batch = default_collate([windows[i] for i in range(n)])
    chosen, seconds = choose_precision(policy, batch, device, dist)
    if dist.main:
        print(f"train: precision auto -> {chosen} (forward + backward of {n} windows: fp32 "
              f"{seconds['fp32'] * 1e3:.0f} ms, bf16 {seconds['bf16'] * 1e3:.0f} ms; {device} capability "
              f"{device_capability(device)})", file=sys.stderr)
    return dataclasses.replace(config, training=dataclasses.replace(cfg, precision=chosen))


# --------------------------------------------------------------------------------------------------------------------
# Training state (exact resume) in safetensors + JSON
# --------------------------------------------------------------------------------------------------------------------


def _state_paths(out: Path) -> tuple[Path, Path]:
    return out / "state.safetensors", out / "state.json"


def save_state(
    out: Path, optimizer: torch.optim.Optimizer, scheduler: Any, counters: dict[str, Any]
) -> None:
    """Write the optimizer, scheduler, RNG states and ``counters`` (epoch, best, ...) as safetensors + JSON."""
    from safetensors.torch import save_file

    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    opt = optimizer.state_dict()
    for pid, entry in opt["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, rng in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = rng
    weights, doc_path = _state_paths(out)
    tmp = weights.with_suffix(".safetensors.tmp")
    save_file(tensors, str(tmp), metadata={"format": STATE_FORMAT})
    tmp.replace(weights)
    document = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "optimizer": {"param_groups": _plain(opt["param_groups"]), "scalars": scalars},
        "scheduler": _plain(scheduler.state_dict()),
        "counters": counters,
    }
    tmp_doc = doc_path.with_suffix(".json.tmp")
    tmp_doc.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    tmp_doc.replace(doc_path)


def load_state(out: Path, optimizer: torch.optim.Optimizer, scheduler: Any, device: torch.device) -> dict[str, Any]:
    """Restore what :func:`save_state` wrote into ``optimizer`` and ``scheduler`` and the RNG; the counters."""
    from safetensors.torch import load_file

    weights, doc_path = _state_paths(out)
    if not weights.is_file() or not doc_path.is_file():
        raise TrainError(f"{out}: no training state (state.safetensors + state.json): cannot resume from it")
    document = json.loads(doc_path.read_text(encoding="utf-8"))
    if document.get("format") != STATE_FORMAT or document.get("version") != STATE_VERSION:
        raise TrainError(f"{doc_path}: not an lnn_control training state of version {STATE_VERSION}")
    tensors = load_file(str(weights))
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value.to(device) if key != "step" else value
    for pid, entry in document["optimizer"]["scalars"].items():
        state.setdefault(int(pid), {}).update(entry)
    optimizer.load_state_dict({"state": state, "param_groups": document["optimizer"]["param_groups"]})
    scheduler.load_state_dict(document["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)
    return document["counters"]


# --------------------------------------------------------------------------------------------------------------------
# Distributed (torchrun)
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    active: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()


def init_distributed(device_kind: str) -> Dist:
    """Join the process group torchrun describes in the environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ...).

    Without those variables this is a single process and nothing is initialised.
    """
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return Dist()
    if not torch.distributed.is_available():
        raise TrainError("WORLD_SIZE is set (torchrun?) but this torch build has no torch.distributed")
    backend = "nccl" if device_kind == "cuda" else "gloo"
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend)
    return Dist(
        rank=torch.distributed.get_rank(),
        world=torch.distributed.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        active=True,
    )


# --------------------------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------------------------


def target_statistics(episodes: Sequence[CachedEpisode], floor: float = 1e-6) -> tuple[list[float], list[float]]:
    """Per-output mean and std of every training frame's target; a constant output gets std 1."""
    targets = np.concatenate([np.asarray(e.targets, dtype=np.float64) for e in episodes])
    mean = targets.mean(axis=0)
    std = targets.std(axis=0)
    std = np.where(std > floor, std, 1.0)
    return mean.tolist(), std.tolist()


def unused_parameters(policy: Policy) -> list[str]:
    """Parameters that get no gradient from a forward pass (DDP must be told; e.g. mode-specific CfC weights).

    Found with one tiny forward and backward pass whose randomness is forked off, so training is not disturbed.
    """
    pre = policy.config.preprocess
    device = policy.target_mean.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        frames = torch.zeros(1, 1, pre.height, pre.width, 3, dtype=torch.uint8, device=device)
        pred, _ = policy(frames, torch.full((1, 1, 1), policy.dt_unit_s, device=device), None, True)
        pred.sum().backward()
    unused = [name for name, p in policy.named_parameters() if p.requires_grad and p.grad is None]
    policy.zero_grad(set_to_none=True)
    return unused


def resolve_device(name: str, dist: Dist) -> torch.device:
    """``cpu`` or ``cuda`` (``cuda:LOCAL_RANK`` under torchrun); an error when CUDA is asked for and absent."""
    if name == "cuda":
        if not torch.cuda.is_available():
            raise TrainError("--device cuda: torch.cuda.is_available() is False (a CPU build of torch, or no GPU)")
        torch.cuda.set_device(dist.local_rank)
        return torch.device("cuda", dist.local_rank)
    if name != "cpu":
        raise TrainError(f"--device must be cpu or cuda, got {name!r}")
    return torch.device("cpu")


class MetricsLog:
    """metrics.csv (one row per epoch) and TensorBoard scalars; rank 0 only."""

    COLUMNS = ("epoch", "step", "lr", "train_loss", "val_loss", "monitor", "best", "seconds", "frames_per_s")

    def __init__(self, out: Path, outputs: Sequence[str], keep_epochs: int, tensorboard: bool, step: int = 0) -> None:
        self.path = out / "metrics.csv"
        self.columns = list(self.COLUMNS) + [f"val_mae_{o}" for o in outputs]
        rows: list[dict[str, str]] = []
        if keep_epochs and self.path.is_file():  # a resumed run keeps the rows of the epochs it continues from
            with self.path.open(newline="", encoding="utf-8") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["epoch"]) <= keep_epochs]
        with self.path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, self.columns)
            writer.writeheader()
            writer.writerows(rows)
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tb"), purge_step=step + 1 if step else None)
            except ImportError:
                log.warning("tensorboard is not installed: metrics go to metrics.csv only (pip install tensorboard)")

    def step(self, step: int, loss: float, lr: float) -> None:
        if self.tb is not None:
            self.tb.add_scalar("train/loss", loss, step)
            self.tb.add_scalar("train/lr", lr, step)

    def epoch(self, row: dict[str, Any]) -> None:
        with self.path.open("a", newline="", encoding="utf-8") as fh:
            csv.DictWriter(fh, self.columns).writerow({k: row.get(k, "") for k in self.columns})
        if self.tb is not None:
            for key, value in row.items():
                if key.startswith("val_") and isinstance(value, float) and math.isfinite(value):
                    self.tb.add_scalar(key.replace("val_", "val/", 1), value, row["epoch"])
            self.tb.add_scalar("epoch/train_loss", row["train_loss"], row["epoch"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


@dataclass
class TrainResult:
    """What a run did."""

    out: Path
    epochs_run: int
    """Epochs finished, counting those before a resume."""
    best_epoch: int
    best_monitor: float
    stopped_early: bool
    """Early stopping ended the run (no improvement for ``patience`` epochs)."""
    out_of_time: bool = False
    """``time_limit_s`` ended the run."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """The rows written to metrics.csv by this invocation."""
    skipped_bags: list[dict[str, str]] = field(default_factory=list)
    rank: int = 0
    """This process's rank under torchrun (0 otherwise); only rank 0 writes files."""


def train(
    config: RunConfig,
    bags: Sequence[str | Path],
    out: str | Path,
    *,
    val_bags: Sequence[str | Path] | None = None,
    resume: str | Path | None = None,
    device: str = "cpu",
    stop_after_epochs: int | None = None,
) -> TrainResult:
    """Train as the module doc describes; returns a :class:`TrainResult`. Errors are :class:`TrainError`.

    ``stop_after_epochs`` ends this invocation after that many epochs of the schedule (the state is saved, so
    ``resume`` continues it), as a job with a time limit would. torch's thread count and deterministic-algorithms
    setting are restored on return.
    """
    threads = torch.get_num_threads()
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        torch.set_num_threads(config.training.threads)
        if config.training.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        return _train(config, bags, Path(out), val_bags, resume, device, stop_after_epochs)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])


def _train(
    config: RunConfig,
    bags: Sequence[str | Path],
    out: Path,
    val_bags: Sequence[str | Path] | None,
    resume: str | Path | None,
    device: str,
    stop_after_epochs: int | None,
) -> TrainResult:
    """One run: data, model, the run's files, then epochs until the schedule, early stopping or the time limit."""
    cfg = config.training
    dist = init_distributed(device)
    dev = resolve_device(device, dist)
    torch.manual_seed(cfg.seed)
    data = _load_data(config, bags, val_bags, dist)
    resume_dir = Path(resume) if resume is not None else None
    run = _prepare(config, data, out, resume_dir, dist, dev)
    start_epoch = int(run.counters["epoch"])
    if dist.main:
        run.metrics = _write_run_files(run, resume_dir, start_epoch)
        _print_start(run)
    last_epoch = cfg.epochs if stop_after_epochs is None else min(cfg.epochs, start_epoch + stop_after_epochs)
    try:
        history, stopped_early, out_of_time = _run_epochs(run, start_epoch, last_epoch)
    finally:
        if run.metrics is not None:
            run.metrics.close()
        dist.barrier()
    return TrainResult(
        out=out,
        epochs_run=int(run.counters["epoch"]),
        best_epoch=int(run.counters["best_epoch"]),
        best_monitor=float(run.counters["best"]),
        stopped_early=stopped_early,
        out_of_time=out_of_time,
        history=history,
        skipped_bags=run.run_info["skipped_bags"],
        rank=dist.rank,
    )


# --------------------------------------------------------------------------------------------------------------------
# The run: data (bags -> episodes split by bag -> windows -> loaders)
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class _Data:
    """A run's episodes, the bags it skipped, and the windows it trains and validates on."""

    train_episodes: list[CachedEpisode]
    val_episodes: list[CachedEpisode]
    failures: list[BagFailure]
    train_set: WindowDataset
    val_set: WindowDataset | None


def _load(
    bags: Sequence[str | Path], config: RunConfig, dist: Dist, what: str
) -> tuple[list[CachedEpisode], list[BagFailure]]:
    """Episodes of ``bags`` (rank 0 builds the caches, the other ranks then read them) and the bags skipped."""
    cfg = config.training
    if not bags:
        return [], []
    kwargs = dict(cache_dir=cfg.cache_dir, strict=cfg.strict, progress=cfg.progress and dist.main)
    if dist.main:
        episodes, failures = load_episodes(bags, config.dataset, **kwargs)
    dist.barrier()
    if not dist.main:
        episodes, failures = load_episodes(bags, config.dataset, **{**kwargs, "progress": False})
    for failure in failures:
        if dist.main:
            print(f"train: skipping {what} bag: {failure.error}", file=sys.stderr)
    return episodes, failures


def _episodes(
    config: RunConfig, bags: Sequence[str | Path], val_bags: Sequence[str | Path] | None, dist: Dist
) -> tuple[list[CachedEpisode], list[CachedEpisode], list[BagFailure]]:
    """Training and validation episodes (``val_bags`` when given, else a split of ``bags`` by bag), bags skipped."""
    cfg = config.training
    bag_paths = discover_bags(bags)
    if not bag_paths:
        raise TrainError("no bags given")
    episodes, failures = _load(bag_paths, config, dist, "training")
    val_paths = discover_bags(val_bags) if val_bags else []
    if val_paths:
        val_episodes, val_failures = _load(val_paths, config, dist, "validation")
        return episodes, val_episodes, failures + val_failures
    if cfg.val_fraction > 0 and len(episodes) >= 2:
        train_episodes, val_episodes = split_by_bag(episodes, cfg.val_fraction, seed=cfg.seed)
        return train_episodes, val_episodes, failures
    if cfg.val_fraction > 0 and dist.main:
        print(
            "train: one usable bag, so no validation split (give --val-bags or more bags); early stopping is off",
            file=sys.stderr,
        )
    return episodes, [], failures


def _load_data(
    config: RunConfig, bags: Sequence[str | Path], val_bags: Sequence[str | Path] | None, dist: Dist
) -> _Data:
    """Bags -> episodes -> training and validation windows; a :class:`TrainError` when there is nothing to train on."""
    train_episodes, val_episodes, failures = _episodes(config, bags, val_bags, dist)
    if not train_episodes:
        raise TrainError("no usable training bag: " + "; ".join(f.error for f in failures))
    window = config.dataset.window
    train_set = WindowDataset.from_config(train_episodes, config.dataset)
    val_set = WindowDataset.from_config(val_episodes, config.dataset) if val_episodes else None
    if len(train_set) == 0:
        raise TrainError(
            f"the training bags give no window of {window} frames "
            f"({train_set.short_segments} segments are shorter): lower dataset.window or record longer"
        )
    if val_set is not None and len(val_set) == 0:
        raise TrainError(f"the validation bags give no window of {window} frames")
    return _Data(train_episodes, val_episodes, failures, train_set, val_set)


def _loaders(
    data: _Data, config: RunConfig, dist: Dist, dev: torch.device
) -> tuple[DistributedSampler, EpochBatches, DataLoader, DataLoader | None]:
    """The training sampler (shuffled by seed and epoch, one shard per process), its batches (augmented in the
    loader on CPU) and the two loaders."""
    cfg = config.training
    sampler = DistributedSampler(data.train_set, num_replicas=dist.world, rank=dist.rank, shuffle=True, seed=cfg.seed)
    batches, loader = batch_loader(data.train_set, sampler, config, dist.rank, dev)
    if data.val_set is None:
        return sampler, batches, loader, None
    val_sampler = DistributedSampler(data.val_set, num_replicas=dist.world, rank=dist.rank, shuffle=False)
    return sampler, batches, loader, DataLoader(data.val_set, batch_size=cfg.batch_size, sampler=val_sampler,
                                                num_workers=cfg.workers)


# --------------------------------------------------------------------------------------------------------------------
# The run: model, optimiser, schedule (new or resumed)
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class _Run:
    """What every epoch of a run uses and updates."""

    config: RunConfig
    out: Path
    dist: Dist
    device: torch.device
    policy: Policy
    module: nn.Module
    """The policy, or its DistributedDataParallel wrapper under torchrun."""
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loss_spec: LossSpec
    sampler: DistributedSampler
    batches: EpochBatches
    loader: DataLoader
    val_loader: DataLoader | None
    steps_per_epoch: int
    counters: dict[str, Any]
    """epoch, step, best, best_epoch, bad_epochs: what state.json stores for a resume."""
    run_info: dict[str, Any]
    """What run.json holds."""
    metrics: MetricsLog | None = None
    """Rank 0 only."""


def _build_policy(config: RunConfig, train_episodes: Sequence[CachedEpisode], resume_dir: Path | None,
                  dev: torch.device) -> Policy:
    """The resumed run's last policy, the ``init_from`` checkpoint, or a new policy normalised by the training targets'
    statistics; in train mode."""
    if resume_dir is not None:
        policy = _resumed_policy(resume_dir, config, dev)
    elif config.training.init_from:
        policy = _initial_policy(Path(config.training.init_from), config, dev)
    else:
        policy = Policy(config.policy_config(*target_statistics(train_episodes))).to(dev)
    return policy.train()


def _resumed_policy(resume_dir: Path, config: RunConfig, dev: torch.device) -> Policy:
    """The run's last policy, carrying the timing the windows follow now (what its checkpoints then record)."""
    policy = checkpoint.load(resume_dir / "last", device=dev).train()
    if policy.config.timing != config.timing:
        log.warning("resume: timing %s replaces the checkpoint's %s", config.timing, policy.config.timing)
        policy.config.timing = config.timing
    return policy


# Fields a fine-tune may change: the windows' timing (as a resume does) and the statistics and seed of the first run.
_INIT_FREE_FIELDS = frozenset({"timing", "target_mean", "target_std", "seed"})
# Fields that only one core reads (the others ignore them, so they cannot make another model of those).
_CORE_FIELDS = {"ltc": ("ltc_", "ode_unfolds"), "cfc": ("cfc_",), "lstm": ("lstm_",), "cnn": ("ff_",)}


def _read_by(name: str, core: str) -> bool:
    """Whether the ``core`` model reads PolicyConfig field ``name``."""
    owners = [c for c, prefixes in _CORE_FIELDS.items() if name.startswith(prefixes)]
    return not owners or core in owners


def _initial_policy(stem: Path, config: RunConfig, dev: torch.device) -> Policy:
    """The ``training.init_from`` checkpoint, checked against the model the run's config builds."""
    try:
        policy = checkpoint.load(stem, device=dev).train()
    except checkpoint.CheckpointError as exc:
        raise TrainError(f"training.init_from: {exc}") from exc
    wanted = config.policy_config()
    differ = [f.name for f in dataclasses.fields(wanted) if f.name not in _INIT_FREE_FIELDS
              and _read_by(f.name, wanted.core) and getattr(wanted, f.name) != getattr(policy.config, f.name)]
    if differ:
        details = ", ".join(f"{name} {getattr(policy.config, name)!r} (config: {getattr(wanted, name)!r})"
                            for name in differ)
        raise TrainError(f"training.init_from: {stem} builds another model than this run's config: {details}")
    policy.config.timing = config.timing
    return policy


def _distributed(policy: Policy, dist: Dist, dev: torch.device) -> nn.Module:
    """``policy`` wrapped in DistributedDataParallel under torchrun, else ``policy`` itself."""
    if not dist.active:
        return policy
    return nn.parallel.DistributedDataParallel(
        policy, device_ids=[dev.index] if dev.type == "cuda" else None,
        find_unused_parameters=bool(unused_parameters(policy)),
    )


def _prepare(
    config: RunConfig, data: _Data, out: Path, resume_dir: Path | None, dist: Dist, dev: torch.device
) -> _Run:
    """Policy, loaders, optimiser, schedule, loss and counters; a resume restores the optimiser, schedule and RNG."""
    policy = _build_policy(config, data.train_episodes, resume_dir, dev)
    config = _resolved_precision(config, policy, data.train_set, dist, dev)
    cfg = config.training
    module = _distributed(policy, dist, dev)
    sampler, batches, loader, val_loader = _loaders(data, config, dist, dev)
    steps_per_epoch = min(len(loader), cfg.steps_per_epoch) if cfg.steps_per_epoch else len(loader)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(optimizer, cfg, cfg.epochs * steps_per_epoch)
    loss_spec = LossSpec.build(cfg, policy.config.outputs, dev)
    counters: dict[str, Any] = {"epoch": 0, "step": 0, "best": math.inf, "best_epoch": 0, "bad_epochs": 0}
    if resume_dir is not None:
        counters.update(load_state(resume_dir, optimizer, scheduler, dev))
    return _Run(
        config=config, out=out, dist=dist, device=dev, policy=policy, module=module, optimizer=optimizer,
        scheduler=scheduler, loss_spec=loss_spec, sampler=sampler, batches=batches, loader=loader,
        val_loader=val_loader,
        steps_per_epoch=steps_per_epoch, counters=counters, run_info=_run_info(data, policy, dist, dev),
    )


# --------------------------------------------------------------------------------------------------------------------
# The run: files and logging (rank 0)
# --------------------------------------------------------------------------------------------------------------------


def _run_info(data: _Data, policy: Policy, dist: Dist, dev: torch.device) -> dict[str, Any]:
    """The content of run.json."""
    return {
        "bags": [str(e.bag) for e in data.train_episodes],
        "val_bags": [str(e.bag) for e in data.val_episodes],
        "skipped_bags": [dataclasses.asdict(f) for f in data.failures],
        "train_windows": len(data.train_set),
        "val_windows": len(data.val_set) if data.val_set is not None else 0,
        "train_frames": int(sum(len(e) for e in data.train_episodes)),
        "target_mean": list(policy.config.target_mean),
        "target_std": list(policy.config.target_std),
        "world_size": dist.world,
        "device": str(dev),
        "parameters": policy.parameter_counts(),
    }


def _write_run_files(run: _Run, resume_dir: Path | None, start_epoch: int) -> MetricsLog:
    """config.yaml, run.json and the metrics log (a resume into a new folder carries metrics.csv over)."""
    out = run.out
    out.mkdir(parents=True, exist_ok=True)
    if resume_dir is not None and out.resolve() != resume_dir.resolve() and (resume_dir / "metrics.csv").is_file():
        shutil.copyfile(resume_dir / "metrics.csv", out / "metrics.csv")
    (out / "config.yaml").write_text(yaml.safe_dump(run.config.to_dict(), sort_keys=False), encoding="utf-8")
    (out / "run.json").write_text(json.dumps(run.run_info, indent=2) + "\n", encoding="utf-8")
    return MetricsLog(out, run.policy.config.outputs, start_epoch, run.config.training.tensorboard,
                      int(run.counters["step"]))


def _print_start(run: _Run) -> None:
    info = run.run_info
    print(
        f"train: {run.policy.config.core} policy, {info['parameters']['total']} parameters; "
        f"{info['train_windows']} windows from {len(info['bags'])} bag(s), "
        f"{info['val_windows']} validation windows from {len(info['val_bags'])} bag(s); "
        f"{run.steps_per_epoch} steps per epoch on {run.device}"
        + (f" x {run.dist.world} processes" if run.dist.active else "")
        + (f"; starts from {run.config.training.init_from}" if run.config.training.init_from else ""),
        file=sys.stderr,
    )


def _metrics_row(
    run: _Run, train_loss: float, val: dict[str, float], monitor: float, seconds: float, frames_done: int
) -> dict[str, Any]:
    """One epoch's row of metrics.csv (and of :attr:`TrainResult.history`)."""
    return {
        "epoch": run.counters["epoch"],
        "step": run.counters["step"],
        "lr": run.optimizer.param_groups[0]["lr"],
        "train_loss": train_loss,
        "val_loss": val.get("loss", ""),
        "monitor": monitor,
        "best": run.counters["best"],
        "seconds": round(seconds, 3),
        "frames_per_s": round(frames_done * run.dist.world / seconds, 1),
        **{f"val_{k}": v for k, v in val.items() if k != "loss"},
    }


def _print_epoch(run: _Run, row: dict[str, Any], val: dict[str, float], improved: bool) -> None:
    mae = ", ".join(f"{k} {v:.4f}" for k, v in val.items() if k.startswith("mae_"))
    print(
        f"epoch {row['epoch']}/{run.config.training.epochs}: train loss {row['train_loss']:.4f}"
        + (f", val loss {val['loss']:.4f} ({mae})" if val else "")
        + (" *" if improved else "")
        + f", {row['frames_per_s']:.0f} frames/s",
        file=sys.stderr,
    )


# --------------------------------------------------------------------------------------------------------------------
# The run: checkpoints (best, last, exact-resume state)
# --------------------------------------------------------------------------------------------------------------------


def _checkpoint_metadata(run: _Run, epoch: int, monitor: float) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "monitor": monitor,
        "monitor_name": "val_loss" if run.val_loader is not None else "train_loss",
        "bags": run.run_info["bags"],
        "val_bags": run.run_info["val_bags"],
        "dataset": run.config.dataset.to_dict(),
        "training": _plain(dataclasses.asdict(run.config.training)),
    }


def _save_checkpoints(run: _Run, epoch: int, monitor: float, improved: bool) -> None:
    """``best`` when the monitored loss improved, ``last``, and the state a resume continues from."""
    if improved:
        checkpoint.save(run.policy, run.out / "best", _checkpoint_metadata(run, epoch, monitor))
    checkpoint.save(run.policy, run.out / "last", _checkpoint_metadata(run, epoch, monitor))
    save_state(run.out, run.optimizer, run.scheduler, run.counters)


# --------------------------------------------------------------------------------------------------------------------
# The run: epochs, early stopping, time limit
# --------------------------------------------------------------------------------------------------------------------


def _run_epochs(run: _Run, start_epoch: int, last_epoch: int) -> tuple[list[dict[str, Any]], bool, bool]:
    """Epochs ``start_epoch + 1 .. last_epoch``: their metrics rows, and whether early stopping or the time limit
    ended them."""
    history: list[dict[str, Any]] = []
    started = time.perf_counter()
    for epoch in range(start_epoch, last_epoch):
        history.append(_epoch(run, epoch))
        if _stop_early(run):
            return history, True, False
        if _out_of_time(run, epoch, last_epoch, started):
            return history, False, True
    return history, False, False


def _epoch(run: _Run, epoch: int) -> dict[str, Any]:
    """Train, validate, update the counters, then (rank 0) log and checkpoint; the epoch's metrics row."""
    started = time.perf_counter()
    train_loss, frames_done = _train_epoch(run, epoch)
    seconds = time.perf_counter() - started
    val: dict[str, float] = {}
    if run.val_loader is not None:
        val = validate(run.policy, run.val_loader, run.loss_spec, run.device, run.config.training.precision)
    monitor = val.get("loss", train_loss)
    run.counters["epoch"] = epoch + 1
    improved = _record_monitor(run.counters, epoch + 1, monitor, run.config.training.min_delta)
    row = _metrics_row(run, train_loss, val, monitor, seconds, frames_done)
    if run.dist.main:
        assert run.metrics is not None
        run.metrics.epoch(row)
        _save_checkpoints(run, epoch + 1, monitor, improved)
        _print_epoch(run, row, val, improved)
    return row


def _train_epoch(run: _Run, epoch: int) -> tuple[float, int]:
    """One pass over the (augmented) training windows, a step per batch; the mean loss over all processes and the
    frames this process saw."""
    cfg, dev = run.config.training, run.device
    run.sampler.set_epoch(epoch)
    run.batches.set_epoch(epoch, list(run.sampler), run.steps_per_epoch)
    run.policy.train()
    total, count, frames_done = 0.0, 0, 0
    bar = _progress(run.steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}", cfg.progress and run.dist.main)
    for step, batch in enumerate(_limit(run.loader, run.steps_per_epoch)):
        frames, dt, targets = (t.to(dev, non_blocking=True) for t in batch)
        if not run.batches.augments:  # on a GPU the batch is augmented there
            gen = torch.Generator(device=dev).manual_seed(batch_seed(cfg.seed, epoch, step, run.dist.rank))
            frames = augment_windows(frames, run.config.augment, gen)
        loss = train_step(
            run.module, run.policy, (frames, dt, targets), run.optimizer, run.loss_spec,
            precision=cfg.precision, grad_clip=cfg.grad_clip,
        )
        if not math.isfinite(loss):
            raise TrainError(
                f"loss became {loss} at epoch {epoch + 1}, step {step}: lower training.lr or set training.grad_clip"
            )
        run.scheduler.step()
        run.counters["step"] += 1
        total, count, frames_done = total + loss, count + 1, frames_done + frames.shape[0] * frames.shape[1]
        if run.metrics is not None:
            run.metrics.step(run.counters["step"], loss, run.optimizer.param_groups[0]["lr"])
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
    if bar is not None:
        bar.close()
    return _mean_over_processes(total, count, run.dist, dev), frames_done


def _mean_over_processes(total: float, count: int, dist: Dist, device: torch.device) -> float:
    """``total / count`` summed over every process of a torchrun job."""
    if not dist.active:
        return total / max(1, count)
    reduced = torch.tensor([total, count], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(reduced)
    return float(reduced[0] / reduced[1].clamp(min=1))


def _record_monitor(counters: dict[str, Any], epoch: int, monitor: float, min_delta: float) -> bool:
    """Count the epoch for early stopping; True (a new best) when ``monitor`` beats the best by over ``min_delta``."""
    improved = monitor < counters["best"] - min_delta
    if improved:
        counters.update(best=monitor, best_epoch=epoch, bad_epochs=0)
    else:
        counters["bad_epochs"] += 1
    return improved


def _stop_early(run: _Run) -> bool:
    """True when the validation loss has not improved for ``training.patience`` epochs (never without validation)."""
    patience = run.config.training.patience
    if run.val_loader is None or not patience or run.counters["bad_epochs"] < patience:
        return False
    if run.dist.main:
        print(
            f"early stop: validation loss has not improved for {patience} epochs "
            f"(best {run.counters['best']:.4f} at epoch {run.counters['best_epoch']})",
            file=sys.stderr,
        )
    return True


def _out_of_time(run: _Run, epoch: int, last_epoch: int, started: float) -> bool:
    """True when ``training.time_limit_s`` has passed since ``started`` and epochs remain (every rank agrees)."""
    limit = run.config.training.time_limit_s
    if not limit or epoch + 1 >= last_epoch:
        return False
    if not _all_agree(time.perf_counter() - started >= limit, run.dist, run.device):
        return False
    if run.dist.main:
        print(f"time limit: {limit:g} s of training spent after epoch {epoch + 1}", file=sys.stderr)
    return True


def _all_agree(flag: bool, dist: Dist, device: torch.device) -> bool:
    """True when ``flag`` is true on any process (so every rank of a torchrun job takes the same branch)."""
    if not dist.active:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())


def _limit(loader: DataLoader, steps: int) -> Iterator[Any]:
    for i, batch in enumerate(loader):
        if i >= steps:
            break
        yield batch


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True)


# --------------------------------------------------------------------------------------------------------------------
# Resuming, ending
# --------------------------------------------------------------------------------------------------------------------


def load_resume(resume: Path, overrides: Sequence[str] = ()) -> tuple[RunConfig, list[str], list[str] | None]:
    """The configuration saved in run folder ``resume`` (``overrides`` applied), its training bags and its
    validation bags (None when the first run split them itself)."""
    config = load_config(resume / "config.yaml", overrides)
    saved = json.loads((resume / "run.json").read_text(encoding="utf-8"))
    return config, list(saved["bags"]), saved["val_bags"] or None


def end_distributed() -> None:
    """Leave the torch.distributed process group, if this process joined one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
