"""Training batches: collated and augmented in the loader (in worker processes or not) they are the batches of the
previous pipeline (a DataLoader over the windows, augmented in the training loop) bit for bit; ``precision: auto``
measures, and leaves the model and the random state alone; the conv head's input is channels_last."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from lnn_control import train as T
from lnn_control.nn.policy import Policy, PolicyConfig
from lnn_control.vision import PreprocessConfig


class Windows(Dataset):
    def __init__(self, count: int = 22, window: int = 3, side: int = 56) -> None:
        g = torch.Generator().manual_seed(3)
        self.frames = torch.randint(0, 256, (count, window, side, side, 3), dtype=torch.uint8, generator=g)
        self.dt = torch.rand(count, window, 1, generator=g)
        self.targets = torch.randn(count, window, 2, generator=g)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int):
        return self.frames[i], self.dt[i], self.targets[i]


def config(workers: int, steps: int = 0, **augment) -> T.RunConfig:
    return T.RunConfig(
        training=T.TrainConfig(batch_size=4, workers=workers, seed=7, steps_per_epoch=steps, progress=False),
        augment=T.AugmentConfig(**{"channel_gain": 0.1, "grayscale_probability": 0.3, **augment}),
    )


def previous_pipeline(windows: Dataset, cfg: T.RunConfig, epoch: int, rank: int = 0, world: int = 1) -> list:
    """The batches as the training loop made them before the loader augmented them."""
    sampler = DistributedSampler(windows, num_replicas=world, rank=rank, shuffle=True, seed=cfg.training.seed)
    sampler.set_epoch(epoch)
    out = []
    loader = DataLoader(windows, batch_size=cfg.training.batch_size, sampler=sampler, drop_last=False)
    for step, (frames, dt, targets) in enumerate(loader):
        if cfg.training.steps_per_epoch and step >= cfg.training.steps_per_epoch:
            break
        gen = torch.Generator().manual_seed(T.batch_seed(cfg.training.seed, epoch, step, rank))
        out.append((T.augment_windows(frames, cfg.augment, gen), dt, targets))
    return out


def loader_batches(windows: Dataset, cfg: T.RunConfig, epoch: int, rank: int = 0, world: int = 1) -> list:
    sampler = DistributedSampler(windows, num_replicas=world, rank=rank, shuffle=True, seed=cfg.training.seed)
    batches, loader = T.batch_loader(windows, sampler, cfg, rank, torch.device("cpu"))
    sampler.set_epoch(epoch)
    batches.set_epoch(epoch, list(sampler), cfg.training.steps_per_epoch or None)
    assert batches.augments
    return list(loader)


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for p, q in zip(a, b, strict=True) for x, y in zip(p, q,
                                                                                                      strict=True))


@pytest.mark.parametrize("workers", [0, 2])
def test_the_loader_gives_the_previous_pipelines_batches_bit_for_bit(workers: int) -> None:
    windows = Windows()
    for epoch in (0, 3):
        reference = previous_pipeline(windows, config(workers), epoch)
        assert len(reference) == 6  # 22 windows in batches of 4: the last one short
        assert same(loader_batches(windows, config(workers), epoch), reference)
    # a shard of two processes and a limit on the steps per epoch
    assert same(loader_batches(windows, config(workers, steps=2), 1, rank=1, world=2),
                previous_pipeline(windows, config(workers, steps=2), 1, rank=1, world=2))


def test_augmentation_off_passes_the_windows_through() -> None:
    windows = Windows()
    batches = loader_batches(windows, config(0, enabled=False), 0)
    sampler = DistributedSampler(windows, num_replicas=1, rank=0, shuffle=True, seed=7)
    sampler.set_epoch(0)
    order = list(sampler)
    assert torch.equal(batches[0][0], windows.frames[order[:4]])


def test_the_augmented_batches_keep_the_recipes_statistics() -> None:
    """Per window: one contrast and brightness draw, so the frame means move within the recipe's bounds."""
    frames = torch.full((256, 2, 56, 56, 3), 128, dtype=torch.uint8)
    cfg = T.AugmentConfig(shadow_probability=0.0, noise_std=0.0, max_shift=0)
    out = T.augment_windows(frames, cfg, torch.Generator().manual_seed(0)).float()
    means = out.mean(dim=(1, 2, 3, 4)) - 128
    assert means.abs().max() <= 0.15 * 255 + 1  # brightness offset bound
    assert abs(float(means.mean())) < 4.0 and float(means.std()) > 10  # centred, spread
    assert torch.equal(out[:, 0], out[:, 1])  # both frames of a window: the same draw


def test_precision_auto_measures_and_leaves_the_model_and_random_state_alone() -> None:
    policy = Policy(PolicyConfig(core="cfc", preprocess=PreprocessConfig(56, 56), features=8)).train()
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    windows = Windows(4)
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    choice, seconds = T.choose_precision(policy, (windows.frames, windows.dt, windows.targets), torch.device("cpu"),
                                         rounds=1)
    assert torch.equal(torch.rand(3), expected)
    assert choice in ("fp32", "bf16") and set(seconds) == {"fp32", "bf16"} and min(seconds.values()) > 0
    assert all(torch.equal(before[k], v) for k, v in policy.state_dict().items())
    assert all(p.grad is None for p in policy.parameters())
    assert T.TrainConfig(precision="auto").precision == "auto"
    assert choice == ("bf16" if seconds["bf16"] * T.BF16_MARGIN < seconds["fp32"] else "fp32")


def test_the_conv_heads_input_is_channels_last() -> None:
    """The head permutes the NHWC frames, so the convolutions get channels_last input (measured faster than NCHW
    by bench/bench_train.py) without a copy."""
    head = Policy(PolicyConfig(core="cnn", preprocess=PreprocessConfig(56, 56))).encoder
    x = head.normalise(torch.zeros(2, 56, 56, 3, dtype=torch.uint8))
    assert x.shape == (2, 3, 56, 56) and x.is_contiguous(memory_format=torch.channels_last)
