"""The one timing rule: the Driver (frame by frame) and the training windows (whole bags) compute the same dts and
reset at the same frames, also for a gap between the old dataset split (0.5 s) and the old Driver reset (1.0 s)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lnn_control.data.dataset import WindowDataset
from lnn_control.driver import Driver
from lnn_control.nn.policy import Policy, PolicyConfig
from lnn_control.timing import TimingConfig, frame_dt, frame_dts
from lnn_control.vision import PreprocessConfig

MS = 1_000_000
START = 1_700_000_000_000_000_000


class FakeEpisode:
    """What WindowDataset reads of a cached episode: stamps, preprocessed frames, targets."""

    def __init__(self, stamps: list[int], size: tuple[int, int] = (56, 56), seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.stamps = np.asarray(stamps, dtype=np.int64)
        self.frames = rng.integers(0, 256, (len(stamps), *size, 3), dtype=np.uint8)
        self.targets = np.zeros((len(stamps), 2), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.stamps)


def stamps_with_gaps(gaps_after: dict[int, int], n: int, period_ns: int = 50 * MS) -> list[int]:
    """``n`` stamps at ``period_ns``, with ``gaps_after[i]`` ns (instead of the period) after frame ``i``."""
    out, t = [], START
    for i in range(n):
        out.append(t)
        t += gaps_after.get(i, period_ns)
    return out


def driver_dts(timing: TimingConfig, stamps: list[int]) -> tuple[list[float], list[int]]:
    """The dts and the reset frames of the scalar rule, frame by frame, as the Driver applies it."""
    dts, resets, previous = [], [0], None
    for i, stamp in enumerate(stamps):
        dt, event = frame_dt(timing, previous, stamp)
        dts.append(dt)
        if event is not None:
            resets.append(i)
        previous = stamp
    return dts, resets


def test_the_scalar_and_the_vectorised_rule_agree_bit_for_bit():
    rng = np.random.default_rng(0)
    timing = TimingConfig(nominal_dt=0.02, min_dt=0.004, max_dt=0.3, reset_gap=0.8)
    edges = [0, -1, 1, 4 * MS, 300 * MS, 800 * MS, 800 * MS + 1, 2 * 10**9, -5 * 10**9, 3, 33_333_333]
    gaps = np.concatenate([rng.integers(-50 * MS, 1500 * MS, 2000), edges])
    stamps = (START + np.cumsum(gaps)).tolist()
    dt, starts = frame_dts(np.asarray(stamps), timing)
    scalar, resets = driver_dts(timing, stamps)
    assert dt.tolist() == np.asarray(scalar, dtype=np.float32).tolist()  # what the Driver feeds, as float32
    assert starts.tolist() == resets


@pytest.mark.parametrize("gap_ms", [700, 500, 1000])  # between the old thresholds, and both of them exactly
def test_a_gap_between_the_old_thresholds_is_handled_alike_by_the_driver_and_the_windows(gap_ms):
    """A 0.5-1.0 s gap used to split the training windows but continue on the robot. Now a window crosses it with
    the dt the Driver uses there (clamped to max_dt), its outputs are the Driver's, and a gap over reset_gap splits
    the windows exactly where the Driver resets."""
    timing = TimingConfig(nominal_dt=0.05, min_dt=0.001, max_dt=0.5, reset_gap=1.0)
    stamps = stamps_with_gaps({9: gap_ms * MS, 19: 1500 * MS}, 30)
    episode = FakeEpisode(stamps)
    ds = WindowDataset([episode], window=16, stride=16, timing=timing)

    policy = Policy(PolicyConfig(core="cfc", preprocess=PreprocessConfig(56, 56), features=8, timing=timing, seed=1))
    driver = Driver(policy)
    events, raws, dts = [], [], []
    for frame, stamp in zip(episode.frames, stamps, strict=True):
        x = policy.encode(torch.from_numpy(frame[None]))[0].detach().numpy()
        driver.command_from_features(x, stamp)
        events.append(driver.last.event)
        raws.append(driver.last.raw)
        dts.append(driver.last.dt_s)

    # the same dts frame for frame, the same resets: only the 1.5 s gap
    assert ds.dts[0].tolist() == np.asarray(dts, dtype=np.float32).tolist()
    assert [i for i, e in enumerate(events) if e is not None] == [20]
    assert ds.dts[0][10] == pytest.approx(min(gap_ms / 1000, 0.5))
    # the windows: segment [0, 20) -> 0, 4 (end-aligned), across the gap; segment [20, 30) is too short
    assert [ds.locate(i)[1] for i in range(len(ds))] == [0, 4] and ds.short_segments == 1
    # a window from a segment start gives the outputs the Driver computed on the robot
    frames, dt, _ = ds[0]
    with torch.no_grad():
        y, _ = policy(frames[None], dt[None])
    np.testing.assert_allclose(y[0].numpy(), np.asarray(raws[:16]), atol=1e-5)


def test_timing_config_is_validated_and_names_its_fields():
    assert TimingConfig.from_dict({"reset_gap": 2}) == TimingConfig(reset_gap=2.0)
    with pytest.raises(ValueError, match="unknown timing field.*max_gap_s"):
        TimingConfig.from_dict({"max_gap_s": 0.5})
    with pytest.raises(ValueError, match="min_dt <= nominal_dt <= max_dt"):
        TimingConfig(nominal_dt=0.6)
    with pytest.raises(ValueError, match="reset_gap must be positive"):
        TimingConfig(reset_gap=0)
    with pytest.raises(ValueError, match="nominal_dt must be a number"):
        TimingConfig(nominal_dt="fast")  # type: ignore[arg-type]
