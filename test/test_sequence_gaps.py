"""Counting what never reached the recorder from the publishers' sequence numbers (no ROS needed)."""

from __future__ import annotations

from lnn_control.data.recording import NO_SEQUENCE, SequenceGaps


def test_one_publisher_gaps_are_counted_and_history_before_joining_is_not():
    gaps = SequenceGaps()
    assert [gaps.lost(s) for s in (5, 6, 9, 10, 14)] == [0, 0, 2, 0, 3]


def test_interleaved_publishers_are_told_apart():
    gaps = SequenceGaps()
    # two publishers at the same rate, the second one joined later; publisher B loses its sample 3
    a = list(range(1, 11))
    b = [1, 2, 4, 5, 6]
    sequence = [a[0], a[1], b[0], a[2], b[1], a[3], b[2], a[4], b[3], a[5], b[4], *a[6:]]
    assert sum(gaps.lost(s) for s in sequence) == 1


def test_a_restarted_publisher_is_a_new_stream_and_unknown_numbers_count_nothing():
    gaps = SequenceGaps()
    assert [gaps.lost(s) for s in (100, 101, 1, 2, 4)] == [0, 0, 0, 0, 1]
    assert all(gaps.lost(s) == 0 for s in (None, *NO_SEQUENCE))


def test_streams_are_bounded():
    gaps = SequenceGaps(max_streams=2)
    for s in (50, 20, 10):  # each below every stream so far: a new stream each time
        gaps.lost(s)
    assert len(gaps.last) == 2
