"""The ROS-free health rules (lnn_control.health) in simulated time: rate meters, ages, disk space, merging."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lnn_control.health import Level, RateMeter, Report, age_report, disk_report, format_value, merge

S = 1_000_000_000
MS = 1_000_000


def test_rate_over_the_window_and_a_fresh_meter_is_not_read_low():
    meter = RateMeter(2.0, what="frames", start_ns=0)
    for k in range(1, 21):  # 20 Hz for one second
        meter.tick(k * 50 * MS)
    assert meter.rate(1 * S) == pytest.approx(20.0)  # one second seen: 20 events / 1 s
    for k in range(21, 81):  # three more seconds at 20 Hz
        meter.tick(k * 50 * MS)
    assert meter.count(4 * S) == 40
    assert meter.rate(4 * S) == pytest.approx(20.0)
    assert meter.total == 80
    report = meter.report(4 * S)
    assert report.level == Level.OK and "20 Hz" in report.message
    assert report.values["events in window"] == 40 and report.values["events since start"] == 80


def test_a_meter_that_stops_ticking_warns_then_errors():
    meter = RateMeter(1.0, what="frames", start_ns=0)
    assert meter.report(500 * MS).level == Level.WARN  # nothing yet, and not a whole window seen
    assert "no frames yet" in meter.report(500 * MS).message
    assert meter.report(1 * S).level == Level.ERROR
    meter.tick(1200 * MS)
    assert meter.report(1300 * MS).level == Level.OK
    assert meter.report(2200 * MS).level == Level.ERROR  # the event left the window
    assert "no frames for 1 s" in meter.report(2200 * MS).message


def test_events_before_the_clock_moves_are_no_rate_and_no_error():
    meter = RateMeter(1.0, min_hz=10.0, what="commands", start_ns=2 * S)
    meter.tick(2 * S)  # a lockstep sim holds its first frame: sim time stands still
    report = meter.report(2 * S)
    assert meter.rate(2 * S) is None
    assert report.level == Level.OK and report.message == "1 commands, no time passed yet"


def test_bounds_warn_and_a_low_rate_waits_for_a_whole_window():
    meter = RateMeter(1.0, min_hz=10.0, max_hz=30.0, start_ns=0)
    meter.tick(100 * MS)
    assert meter.report(200 * MS).level == Level.OK  # 5 Hz over 0.2 s seen: too early to call it low
    assert meter.report(1000 * MS).level == Level.WARN
    assert "below 10 Hz" in meter.report(1000 * MS).message
    fast = RateMeter(1.0, max_hz=30.0, start_ns=0)
    for k in range(50):
        fast.tick(k * 20 * MS)
    assert fast.report(1000 * MS).level == Level.WARN and "above 30 Hz" in fast.report(1000 * MS).message


def test_time_going_backwards_restarts_the_window():
    meter = RateMeter(1.0, start_ns=0)
    for k in range(10):
        meter.tick(5 * S + k * 100 * MS)
    meter.tick(1 * S)  # a simulator or a bag started over
    assert meter.count(1 * S) == 1
    assert meter.start_ns == 1 * S
    assert meter.total == 11


def test_a_meter_without_a_start_starts_at_its_first_use():
    meter = RateMeter(1.0)
    assert meter.rate(3 * S) is None
    meter.tick(3 * S + 500 * MS)
    assert meter.rate(4 * S) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        RateMeter(0.0)


def test_age_report_levels():
    assert age_report("command", None, 5 * S).level == Level.WARN
    missing = age_report("odometry", None, 5 * S, missing=Level.ERROR)
    assert missing.level == Level.ERROR and missing.message == "no odometry yet"
    assert missing.values == {"odometry age (s)": None}
    assert age_report("command", 4 * S, 5 * S, warn_s=2.0).level == Level.OK
    warn = age_report("command", 2 * S, 5 * S, warn_s=2.0, error_s=4.0)
    assert warn.level == Level.WARN and warn.values["command age (s)"] == pytest.approx(3.0)
    assert age_report("command", 0, 5 * S, warn_s=2.0, error_s=4.0).level == Level.ERROR
    assert age_report("command", 6 * S, 5 * S, warn_s=0.5).values["command age (s)"] == 0.0  # clock went back


def test_disk_report_levels_and_a_missing_folder_uses_its_parent(tmp_path):
    gib = 1024**3
    seen = []

    def usage(free: int):
        def fake(path: str):
            seen.append(path)
            return (100 * gib, 100 * gib - free, free)

        return fake

    folder = tmp_path / "bags" / "not_yet"
    ok = disk_report(folder, usage=usage(50 * gib))
    assert ok.level == Level.OK and ok.values["free (%)"] == pytest.approx(50.0)
    assert seen[-1] == str(tmp_path)
    assert disk_report(folder, usage=usage(1 * gib)).level == Level.WARN
    assert disk_report(folder, usage=usage(100 * 1024**2)).level == Level.ERROR

    def broken(path: str):
        raise PermissionError(13, "Permission denied")

    failed = disk_report(folder, usage=broken)
    assert failed.level == Level.ERROR and "Permission denied" in failed.message
    assert disk_report(tmp_path).values["total (GiB)"] > 0  # the real file system


def test_merge_keeps_the_worst_and_all_values():
    merged = merge([Report.ok("fine", a=1), Report.warn("slow", b=2), Report.warn("late", c=3)])
    assert merged.level == Level.WARN and merged.message == "slow; late"
    assert dict(merged.values) == {"a": 1, "b": 2, "c": 3}
    assert merge([Report.stale("old"), Report.error("broken")]).level == Level.ERROR
    assert merge([Report.stale("old"), Report.warn("slow")]).level == Level.STALE
    assert merge([]).level == Level.OK


def test_values_as_text():
    report = Report.ok("x", flag=True, rate=1 / 3, n=5, none=None)
    assert report.text_values() == [("flag", "true"), ("rate", "0.333333"), ("n", "5"), ("none", "-")]
    assert format_value(False) == "false"
    assert format_value([0.5, 2, None]) == "0.5, 2, -"
    assert report.with_values(n=6).values["n"] == 6 and report.values["n"] == 5
    assert [int(level) for level in Level] == [0, 1, 2, 3]  # diagnostic_msgs/DiagnosticStatus's numbers


def test_rules_import_no_ros():
    code = "import sys, lnn_control.health; sys.exit(any(m.split('.')[0] == 'rclpy' for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
