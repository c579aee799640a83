"""The one comparison of two command streams: keys on one side only, the tolerance, NaN, the first disagreement."""

from __future__ import annotations

import math

import pytest

from lnn_control.command import car
from lnn_control.compare import command_stream, compare_streams


def test_identical_streams_agree_and_report_nothing_missing():
    a = command_stream([(1, (0.1, 1.0)), (2, (0.2, 1.5))])
    diff = compare_streams(a, dict(a), tol=0.0)
    assert not diff.differ and diff.first is None and diff.compared == 2
    assert diff.only_a == [] and diff.only_b == []
    assert diff.fields["steering"].max_abs == 0.0 and diff.fields["velocity"].same == 2


def test_missing_keys_on_either_side_the_largest_difference_and_the_first_disagreement():
    a = command_stream([(10, car(0.0, 1.0)), (20, car(0.5, 1.0)), (30, car(0.1, 2.0)),
                        (40, car(0.0, 0.0))])
    b = command_stream([(20, (0.5, 1.3)), (30, (0.4, 2.0)), (40, (0.0, 0.0)), (50, (0.0, 0.0))])
    diff = compare_streams(a, b, tol=0.01)
    assert diff.only_a == [10] and diff.only_b == [50] and diff.compared == 3
    steering, velocity = diff.fields["steering"], diff.fields["velocity"]
    assert (steering.differing, steering.first_key) == (1, 30)
    assert steering.max_abs == pytest.approx(0.3) and steering.mean_abs == pytest.approx(0.1)
    assert (velocity.differing, velocity.first_key) == (1, 20)
    assert diff.differ and diff.first == (20, "velocity")


def test_the_tolerance_is_inclusive_and_nan_on_one_side_differs():
    a = {1: {"x": 1.0}, 2: {"x": 2.0}, 3: {"x": 3.0}}
    b = {1: {"x": 1.5}, 2: {"x": math.nan}, 3: {"x": 3.0}}
    field = compare_streams(a, b, tol=0.5).fields["x"]
    assert field.differing == 1 and field.first_key == 2  # 0.5 is within 0.5; NaN is not within anything
    assert field.max_abs == 0.5 and field.mean_abs == 0.25  # over the finite differences
    assert compare_streams(a, b, tol=0.5, fields=["x", "y"]).fields["y"].differing == 3  # a field neither has


def test_no_common_key_compares_nothing():
    diff = compare_streams({1: {"x": 0.0}}, {2: {"x": 0.0}})
    assert diff.compared == 0 and not diff.differ and math.isnan(diff.fields["x"].max_abs)
    assert diff.only_a == [1] and diff.only_b == [2]
