"""The one replay: what it yields equals Driver.observe by hand, several Drivers share one pass, undecodable frames
are counted and skipped, a frame a Driver cannot take names the frame and the Driver."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lnn_control.command import car
from lnn_control.driver import Driver, DriverConfig
from lnn_control.nn.policy import Policy, PolicyConfig
from lnn_control.replay import SINGLE, Frame, Replay, ReplayError, replay
from lnn_control.vision import PreprocessConfig

START = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    return Policy(PolicyConfig(core="cfc", preprocess=PreprocessConfig(56, 56), features=8))


def frames(n: int, seed: int = 0) -> list[tuple[np.ndarray, int]]:
    rng = np.random.default_rng(seed)
    # 50 ms apart, then a gap of 3 s: the Driver resets there
    return [(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8), START + i * 50_000_000 + (i >= 5) * 3 * 10**9)
            for i in range(n)]


def test_records_equal_driver_observe_by_hand(policy):
    sequence = frames(8)
    records = list(replay(sequence, Driver(policy), activity=True))
    by_hand = Driver(policy)
    assert [r.index for r in records] == list(range(8))
    for record, (rgb, stamp) in zip(records, sequence, strict=True):
        command = by_hand.observe(rgb, stamp)
        assert record.stamp_ns == stamp and record.command == command and record.human is None
        assert record.output.step.dt_s == by_hand.last.dt_s and record.output.step.raw == by_hand.last.raw
        np.testing.assert_array_equal(record.output.activity, by_hand.activity)
    assert records[5].output.step.event is not None and "reset" in records[5].output.step.event
    assert list(records[0].outputs) == [SINGLE]


def test_several_drivers_one_pass_human_commands_and_undecodable_frames(policy):
    sequence = [Frame(i, stamp, rgb) for i, (rgb, stamp) in enumerate(frames(6))]
    sequence.insert(3, Frame(99, START + 1, None, "broken"))
    limited = Driver(policy, DriverConfig(limits={"steering.min": -0.01, "steering.max": 0.01}))
    run = Replay({"free": Driver(policy), "limited": limited})
    human = {2: car(0.3, 1.0)}
    records = list(run.run(sequence, human))
    assert [r.index for r in records] == [0, 1, 2, 3, 4, 5] and [f.index for f in run.undecodable] == [99]
    assert records[2].human is human[2] and records[1].human is None
    assert all(abs(r.outputs["limited"].command.steering) <= 0.01 for r in records)
    assert all(r.outputs["free"].activity is None for r in records)  # not asked for


def test_a_frame_a_driver_cannot_take_names_the_frame_and_the_driver(policy):
    cropped = Driver(policy, DriverConfig(crop_top=30))  # the frames are 24 pixels high
    with pytest.raises(ReplayError, match=r"frame 0, model cropped: crop .* leaves nothing"):
        list(replay(frames(2), {"cropped": cropped}))
