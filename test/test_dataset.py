"""The preprocessed cache (built once, invalidated by config or bag change) and windows that never cross bags."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
import torch
from data_helpers import ROS2_MCAP_BAG, frame_pixels, need, steering_of, velocity_of, write_drive_bag

from lnn_control.data.bags import BagError
from lnn_control.data.dataset import (
    DatasetConfig,
    WindowDataset,
    bag_fingerprint,
    build_episode,
    cache_key,
    frame_dts,
    load_episodes,
    split_by_bag,
)
from lnn_control.data.pairing import PairingConfig
from lnn_control.timing import TimingConfig
from lnn_control.vision import PreprocessConfig

START = 1_700_000_000_000_000_000
PRE = PreprocessConfig(height=12, width=16)


def test_cache_is_built_once_and_matches_the_bag(tmp_path):
    bag = write_drive_bag(tmp_path / "a", n=20)
    cache = tmp_path / "cache"
    ep = build_episode(bag, PRE, cache_dir=cache, progress=False)
    assert len(ep) == 20 and ep.frames.shape == (20, 12, 16, 3) and ep.frames.dtype == np.uint8
    assert isinstance(ep.frames, np.memmap) and not ep.frames.flags.writeable
    np.testing.assert_array_equal(ep.frames[7], frame_pixels(7)[:12, :16])  # flat colour survives the resize
    assert ep.targets.dtype == np.float32 and ep.targets.shape == (20, 2)
    np.testing.assert_allclose(ep.targets[7], [steering_of(7), velocity_of(7)], rtol=1e-6)
    assert ep.stamps.dtype == np.int64 and ep.stamps[1] - ep.stamps[0] == 50_000_000
    manifest = json.loads((ep.cache_path / "manifest.json").read_text())
    assert manifest["frames_shape"] == [20, 12, 16, 3] and manifest["report"]["paired"] == 20
    files = sorted(p.name for p in ep.cache_path.iterdir())
    assert files == ["frames.u8", "manifest.json", "stamps.npy", "targets.npy"]
    # second build: a cache hit, nothing rewritten
    mtime = (ep.cache_path / "frames.u8").stat().st_mtime_ns
    again = build_episode(bag, PRE, cache_dir=cache, progress=False)
    assert again.cache_path == ep.cache_path and (again.cache_path / "frames.u8").stat().st_mtime_ns == mtime
    assert len(list(cache.iterdir())) == 1


def test_cache_invalidation_on_config_and_bag_change(tmp_path):
    bag = write_drive_bag(tmp_path / "a", n=6)
    cache = tmp_path / "cache"
    first = build_episode(bag, PRE, cache_dir=cache, progress=False)
    other_size = build_episode(bag, PreprocessConfig(height=6, width=8), cache_dir=cache, progress=False)
    other_pairing = build_episode(bag, PRE, PairingConfig(tolerance_s=0.1), cache_dir=cache, progress=False)
    assert len({first.key, other_size.key, other_pairing.key}) == 3
    assert other_size.frames.shape == (6, 6, 8, 3)
    # the bag re-recorded with other commands: new key, new targets
    shutil.rmtree(bag)
    write_drive_bag(bag, n=6, command="twist")
    changed = build_episode(bag, PRE, cache_dir=cache, progress=False)
    assert changed.key != first.key and len(list(cache.iterdir())) == 4
    # the fingerprint is content-based: a copy elsewhere under another name has the same one
    shutil.copytree(bag, tmp_path / "renamed")
    assert bag_fingerprint(tmp_path / "renamed") == bag_fingerprint(bag)
    assert cache_key(tmp_path / "renamed", PRE, PairingConfig()) == changed.key


def test_damaged_cache_is_rebuilt(tmp_path):
    bag = write_drive_bag(tmp_path / "a", n=5)
    ep = build_episode(bag, PRE, cache_dir=tmp_path / "c", progress=False)
    with (ep.cache_path / "frames.u8").open("r+b") as fh:
        fh.truncate(10)
    again = build_episode(bag, PRE, cache_dir=tmp_path / "c", progress=False)
    assert again.frames.shape == (5, 12, 16, 3)


def test_episode_pickles_without_its_frames(tmp_path):
    ep = build_episode(write_drive_bag(tmp_path / "a", n=30), PRE, cache_dir=tmp_path / "c", progress=False)
    _ = ep.frames[0]
    blob = pickle.dumps(ep)
    assert len(blob) < 30 * 12 * 16 * 3  # the memory map is re-opened, not copied, in a worker
    np.testing.assert_array_equal(pickle.loads(blob).frames, ep.frames)


def test_real_mcap_bag_without_commands_is_reported_and_skipped(tmp_path):
    good = write_drive_bag(tmp_path / "good", n=20)
    truncated = tmp_path / "truncated"
    write_drive_bag(truncated, n=20)
    mcap = next(truncated.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[:-300])
    paths = [good, need(ROS2_MCAP_BAG), truncated, tmp_path / "missing"]
    episodes, failures = load_episodes(paths, DatasetConfig(preprocess=PRE), cache_dir=tmp_path / "c", progress=False)
    assert [e.bag.name for e in episodes] == ["good"]
    assert [f.bag for f in failures] == [str(p) for p in paths[1:]]
    assert "tiny_svo_ros2: no command topic" in failures[0].error
    assert "truncated: cannot open (mcap)" in failures[1].error
    assert "missing: does not exist" in failures[2].error
    with pytest.raises(BagError, match="tiny_svo_ros2: no command topic"):
        load_episodes(paths, DatasetConfig(preprocess=PRE), cache_dir=tmp_path / "c", strict=True, progress=False)


def test_bag_with_no_pairs_is_an_error(tmp_path):
    bag = write_drive_bag(tmp_path / "nopairs", n=4, command_lead_ns=-10_000_000, command_indices=[3])
    with pytest.raises(BagError, match=r"nopairs: topic /camera/image_raw: no frame is paired with a command"):
        build_episode(bag, PRE, cache_dir=tmp_path / "c", progress=False)
    assert not any((tmp_path / "c").iterdir())  # nothing half-written left behind


def test_frame_dts():
    stamps = np.array([0, 50, 100, 900, 950, 1000], dtype=np.int64) * 1_000_000
    dt, starts = frame_dts(stamps, TimingConfig(nominal_dt=0.04, reset_gap=0.5))
    np.testing.assert_allclose(dt, [0.04, 0.05, 0.05, 0.04, 0.05, 0.05])
    assert dt.dtype == np.float32 and starts.tolist() == [0, 3]
    # the Driver's rule: clamped to [min_dt, max_dt], reset on a gap above reset_gap and on time not moving forward
    stamps = np.array([0, 1, 700, 2000, 2000, 2050, 1000, 1040], dtype=np.int64) * 1_000_000
    dt, starts = frame_dts(stamps, TimingConfig(nominal_dt=0.05, min_dt=0.01, max_dt=0.5, reset_gap=1.0))
    np.testing.assert_allclose(dt, [0.05, 0.01, 0.5, 0.05, 0.05, 0.05, 0.05, 0.04], rtol=1e-6)
    assert starts.tolist() == [0, 3, 4, 6]
    assert [a.shape for a in frame_dts(stamps[:0], TimingConfig())] == [(0,), (0,)]


def _two_episodes(tmp_path):
    # bag a: 30 frames with a 2 s gap after frame 19 (segments of 20 and 10); bag b: 23 frames at 25 Hz
    a = write_drive_bag(
        tmp_path / "a", n=30, log_of=lambda i: START + i * 50_000_000 + (2_000_000_000 if i >= 20 else 0)
    )
    b = write_drive_bag(tmp_path / "b", n=23, hz=25, start_ns=START + 10**10)
    episodes, failures = load_episodes([a, b], DatasetConfig(preprocess=PRE), cache_dir=tmp_path / "c", progress=False)
    assert not failures
    return episodes


def test_windows_never_cross_bags_or_gaps(tmp_path):
    episodes = _two_episodes(tmp_path)
    ds = WindowDataset(episodes, window=8, stride=4, timing=TimingConfig(nominal_dt=0.05, reset_gap=1.0))
    starts = [(ds.locate(i)[0].name, ds.locate(i)[1]) for i in range(len(ds))]
    # a: segment [0, 20) -> 0, 4, 8, 12 (end-aligned); segment [20, 30) -> 20, 22; b: 0, 4, 8, 12, 15
    assert starts == [("a", 0), ("a", 4), ("a", 8), ("a", 12), ("a", 20), ("a", 22)] + [
        ("b", s) for s in (0, 4, 8, 12, 15)
    ]
    for i in range(len(ds)):
        frames, dt, targets = ds[i]
        assert frames.shape == (8, 12, 16, 3) and frames.dtype == torch.uint8
        assert dt.shape == (8, 1) and dt.dtype == torch.float32
        assert targets.shape == (8, 2) and targets.dtype == torch.float32
        assert float(dt.max()) < 0.5  # never the 2 s gap
        episode, s = ds.locate(i)
        index = frames[:, 0, 0, 0].numpy().astype(int)  # frame i's red channel is i
        np.testing.assert_array_equal(index, np.arange(s, s + 8))
        np.testing.assert_allclose(targets[:, 0].numpy(), [steering_of(k) for k in range(s, s + 8)], atol=1e-6)
    # dt: nominal at a bag's start and after a gap, the real previous dt otherwise
    assert ds[0][1][0, 0] == pytest.approx(0.05)
    assert ds[1][1][0, 0] == pytest.approx(0.05)  # a, 20 Hz
    assert ds[4][1][0, 0] == pytest.approx(0.05)  # a, first frame after the gap: nominal
    assert ds[6][1][0, 0] == pytest.approx(0.05)  # b's start: nominal
    assert ds[7][1][0, 0] == pytest.approx(0.04) and ds[7][1][3, 0] == pytest.approx(0.04)  # b, 25 Hz
    short = WindowDataset(episodes, window=12, stride=12)
    assert short.short_segments == 1  # a's 10-frame segment
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True)
    frames, dt, targets = next(iter(loader))
    assert frames.shape == (4, 8, 12, 16, 3) and dt.shape == (4, 8, 1) and targets.shape == (4, 8, 2)


def test_split_by_bag(tmp_path):
    bags = [tmp_path / n for n in ("e1", "e2", "e3", "e4", "e5")]
    train, val = split_by_bag(bags, val_fraction=0.4, seed=3)
    assert len(val) == 2 and len(train) == 3 and not set(train) & set(val)
    assert split_by_bag(list(reversed(bags)), val_fraction=0.4, seed=3)[1] == list(reversed(val))  # order-independent
    train, val = split_by_bag(bags, val_bags=["e2", tmp_path / "e5"])
    assert val == [bags[1], bags[4]] and train == [bags[0], bags[2], bags[3]]
    with pytest.raises(ValueError, match="validation bag nope is not among the bags"):
        split_by_bag(bags, val_bags=["nope"])
    with pytest.raises(ValueError, match="cannot split 1 bag"):
        split_by_bag(bags[:1], val_fraction=0.2)
    train, val = split_by_bag(bags[:2], val_fraction=0.01)  # at least one validation bag, at least one to train
    assert len(train) == len(val) == 1
    assert split_by_bag(bags, val_fraction=0.0) == (bags, [])


def test_split_episodes_by_bag_keeps_frames_of_a_bag_together(tmp_path):
    episodes = _two_episodes(tmp_path)
    train, val = split_by_bag(episodes, val_bags=["b"])
    assert [e.name for e in train] == ["a"] and [e.name for e in val] == ["b"]
    train_ds, val_ds = WindowDataset(train, 8, 4), WindowDataset(val, 8, 4)
    assert {train_ds.locate(i)[0].name for i in range(len(train_ds))} == {"a"}
    assert {val_ds.locate(i)[0].name for i in range(len(val_ds))} == {"b"}


def test_dataset_config_from_dict():
    cfg = DatasetConfig.from_dict(
        {"preprocess": {"height": 64, "width": 64}, "pairing": {"tolerance_s": 0.1}, "window": 8}
    )
    assert cfg.preprocess.height == 64 and cfg.pairing.tolerance_s == 0.1 and cfg.window == 8
    with pytest.raises(ValueError, match="unknown dataset option"):
        DatasetConfig.from_dict({"windows": 3})
    with pytest.raises(ValueError, match=r"dataset.max_gap_s -> timing.reset_gap"):
        DatasetConfig.from_dict({"max_gap_s": 0.5})  # an older config: the timing section holds the one rule
    cfg = DatasetConfig.from_dict({"timing": {"nominal_dt": 0.02}})
    assert cfg.timing == TimingConfig(nominal_dt=0.02) and WindowDataset.from_config([], cfg).timing == cfg.timing
