"""bench/memory_horizon.py: the state carried through whole segments against the state reset every K frames."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from bench_scripts import bench_module

from lnn_control.data.dataset import DatasetConfig
from lnn_control.nn.policy import Policy, PolicyConfig
from lnn_control.vision import PreprocessConfig


@pytest.fixture(scope="module")
def bench():
    yield from bench_module("memory_horizon")


def episode(n: int, gap_at: int) -> SimpleNamespace:
    """An episode's arrays (what a cache holds): frames every 50 ms, with a 2 s gap (a reset) before ``gap_at``."""
    rng = np.random.default_rng(0)
    stamps = np.arange(n, dtype=np.int64) * 50_000_000
    stamps[gap_at:] += 2_000_000_000
    frames = rng.integers(0, 256, (n, 56, 56, 3), dtype=np.uint8)
    return SimpleNamespace(frames=frames, targets=rng.normal(size=(n, 2)).astype(np.float32), stamps=stamps)


def policy(core: str) -> Policy:
    torch.manual_seed(0)
    return Policy(PolicyConfig(core=core, preprocess=PreprocessConfig(56, 56), features=8)).eval()


def test_segments_split_where_timing_resets(bench):
    parts = bench.segments([episode(30, 12)], DatasetConfig())
    assert [(a, b) for _, _, a, b in parts] == [(0, 12), (12, 30)]


def test_a_memoryless_policy_is_the_same_reset_or_not_and_a_recurrent_one_is_not(bench):
    episodes, config = [episode(30, 12)], DatasetConfig()
    cnn = bench.horizon(policy("cnn"), episodes, config, [1, 5])
    assert cnn["reset 1"]["all"] == pytest.approx(cnn["whole"]["all"], rel=1e-5)
    ltc = bench.horizon(policy("ltc"), episodes, config, [1, 18])
    assert ltc["reset 18"] == pytest.approx(ltc["whole"], rel=1e-5)  # no segment is longer than 18 frames
    assert ltc["reset 1"]["all"] != pytest.approx(ltc["whole"]["all"], rel=1e-3)
    assert set(ltc["whole"]) == {"all", "0-8", "8-16", "16-32"}  # bands no segment reaches are left out
