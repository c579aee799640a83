"""The command mux's rules (lnn_control.mux_rules) in simulated time: no ROS, no clock, times in integer ns.

Rate 20 Hz (period 50 ms, a repeat after 45 ms of silence), teleop_timeout 0.5 s, policy_timeout 0.2 s,
status_period 1 s unless a test says otherwise. The payloads are plain strings: the rules never look inside them.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from lnn_control.mux_rules import (
    E_STOP,
    NONE,
    POLICY,
    TELEOP,
    Arbiter,
    MuxConfig,
    MuxRules,
    SendCommand,
    SendSource,
    SendZero,
)

MS = 1_000_000
PERIOD = 50 * MS
CONFIG = MuxConfig(rate=20.0, teleop_timeout=0.5, policy_timeout=0.2, status_period=1.0)
P, P2, T = "policy command", "newer policy command", "teleop command"


def started(config: MuxConfig = CONFIG, now: int = 0) -> MuxRules:
    rules = MuxRules(config)
    rules.start(now)
    return rules


def drive_outputs(outputs: list) -> list:
    """The commands and zeros among ``outputs`` (what goes out on cmd_vel)."""
    return [o for o in outputs if isinstance(o, SendCommand | SendZero)]


def sources(outputs: list) -> list[str]:
    return [o.source for o in outputs if isinstance(o, SendSource)]


def test_rules_import_no_ros():
    code = "import sys, lnn_control.mux_rules; sys.exit(any(m.split('.')[0] == 'rclpy' for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_arbiter_order():
    arbiter = Arbiter(MuxConfig(teleop_timeout=0.5, policy_timeout=0.2))
    assert arbiter.source(0) == NONE
    arbiter.last_policy_ns = 0
    assert arbiter.source(100 * MS) == POLICY
    assert arbiter.source(200 * MS) == POLICY  # at the timeout still fresh
    assert arbiter.source(200 * MS + 1) == NONE  # stale policy
    arbiter.last_teleop_ns = 250 * MS
    arbiter.last_policy_ns = 290 * MS
    assert arbiter.source(300 * MS) == TELEOP  # the human wins over a fresh policy
    assert arbiter.source(750 * MS) == TELEOP
    assert arbiter.source(750 * MS + 1) == NONE  # teleop stale, policy too
    arbiter.e_stop = True
    assert arbiter.source(300 * MS) == E_STOP


def test_start_says_who_drives():
    assert MuxRules(CONFIG).start(0) == [SendSource(NONE, "")]
    assert MuxRules(MuxConfig(e_stop_on_start=True)).start(0) == [SendSource(E_STOP, "")]
    assert not SendSource(NONE, "").changed and not SendSource(NONE, NONE).changed
    assert SendSource(POLICY, NONE).changed


def test_input_of_the_active_source_is_forwarded_at_once_unchanged():
    rules = started()
    assert rules.on_input(POLICY, P, 10 * MS) == [SendSource(POLICY, NONE), SendCommand(P)]
    assert rules.on_input(POLICY, P2, 20 * MS) == [SendCommand(P2)]
    stamped = started(MuxConfig(stamped=True))
    assert drive_outputs(stamped.on_input(POLICY, P, 10 * MS)) == [SendCommand(P, None)], "a forward is not restamped"


def test_only_inputs_can_drive():
    with pytest.raises(ValueError, match="input source"):
        started().on_input(E_STOP, P, 0)


def test_human_wins_over_a_fresh_policy():
    rules = started()
    rules.on_input(POLICY, P, 0)
    assert rules.on_input(TELEOP, T, 10 * MS) == [SendSource(TELEOP, POLICY), SendCommand(T)]
    for t in range(20 * MS, 500 * MS, 10 * MS):  # the policy keeps publishing, fresh, every 10 ms
        assert rules.on_input(POLICY, P2, t) == [], f"policy leaked through at {t} ns"
        assert all(o == SendCommand(T) for o in drive_outputs(rules.on_timer(t + 5 * MS))), t
    assert rules.active == TELEOP


def test_teleop_timeout_hands_back_to_a_fresh_policy():
    rules = started()
    rules.on_input(TELEOP, T, 0)
    outputs = []
    for t in range(10 * MS, 510 * MS, 10 * MS):  # policy every 10 ms; the last teleop message was at 0
        outputs += rules.on_input(POLICY, P, t)
        outputs += rules.on_timer(t)
    assert sources(outputs) == [], "teleop drives up to and at teleop_timeout"
    assert all(o == SendCommand(T) for o in drive_outputs(outputs))
    # one nanosecond after the timeout the next policy input drives, forwarded at once
    assert rules.on_input(POLICY, P2, 500 * MS + 1) == [SendSource(POLICY, TELEOP), SendCommand(P2)]


def test_teleop_timeout_hand_back_on_the_timer_repeats_the_latest_policy():
    rules = started()
    rules.on_input(POLICY, P, 0)
    rules.on_input(TELEOP, T, 100 * MS)
    rules.on_input(POLICY, P2, 450 * MS)  # held, not forwarded: teleop drives
    assert drive_outputs(rules.on_timer(600 * MS)) == [SendCommand(T)]
    assert rules.on_timer(600 * MS + 1) == [SendSource(POLICY, TELEOP)], "a repeat went out 1 ns ago"
    assert rules.on_timer(650 * MS) == [SendCommand(P2)]  # the policy's latest input, still fresh (200 ms)


def test_stale_policy_gives_zero_and_none():
    rules = started()
    rules.on_input(POLICY, P, 0)
    for t in range(PERIOD, 200 * MS + 1, PERIOD):
        assert rules.on_timer(t) == [SendCommand(P)], f"fresh policy repeated at {t} ns"
    assert rules.on_timer(200 * MS + 1) == [SendSource(NONE, POLICY)], "stale, but something went out 1 ns ago"
    assert rules.on_timer(250 * MS) == [SendZero(250 * MS)]
    for t in range(300 * MS, 2000 * MS, PERIOD):
        assert drive_outputs(rules.on_timer(t)) == [SendZero(t)], "a stale policy never keeps the car moving"


def test_timer_repeats_only_when_nothing_went_out_within_0_9_of_a_period():
    rules = started()
    rules.on_input(POLICY, P, 0)
    assert rules.on_timer(45 * MS - 1) == []
    assert rules.on_timer(45 * MS) == [SendCommand(P)]
    rules.on_input(POLICY, P2, 60 * MS)  # forwarded: the next repeat waits 45 ms from here
    assert rules.on_timer(90 * MS) == []
    assert rules.on_timer(105 * MS - 1) == []
    assert rules.on_timer(105 * MS) == [SendCommand(P2)]
    assert rules.on_timer(105 * MS) == [], "the repeat itself counts as something sent"


def test_timer_repeats_after_the_clock_jumped_back():
    rules = started()
    rules.on_input(POLICY, P, 10_000 * MS)
    assert rules.on_timer(10_010 * MS) == []
    assert drive_outputs(rules.on_timer(5_000 * MS)) == [SendZero(5_000 * MS)], "inputs 'from the future' are stale"


def test_idle_mux_sends_zero_once_per_period():
    rules = started()
    outputs = []
    for k in range(1, 41):  # two seconds of timer ticks
        outputs += drive_outputs(rules.on_timer(k * PERIOD))
    assert outputs == [SendZero(k * PERIOD) for k in range(1, 41)]


def test_timer_a_little_late_or_early_still_gives_one_message_per_tick():
    rules = started()
    ticks = [0, 48, 97, 149, 196, 251, 298, 352, 400]  # jittered timer, ms
    outputs = [drive_outputs(rules.on_timer(t * MS)) for t in ticks]
    assert outputs == [[SendZero(t * MS)] for t in ticks]


def test_stamped_repeat_carries_the_send_time_and_the_same_payload():
    rules = started(MuxConfig(stamped=True, rate=20.0, policy_timeout=0.5))
    rules.on_input(POLICY, P, 7 * MS)
    (repeat,) = rules.on_timer(57 * MS)
    assert repeat == SendCommand(P, restamp_ns=57 * MS) and repeat.payload is P
    (repeat,) = rules.on_timer(107 * MS)
    assert repeat.restamp_ns == 107 * MS


def test_unstamped_repeat_is_the_input_unchanged():
    rules = started(MuxConfig(stamped=False, rate=20.0, policy_timeout=0.5))
    rules.on_input(TELEOP, T, 7 * MS)
    (repeat,) = rules.on_timer(57 * MS)
    assert repeat == SendCommand(T, restamp_ns=None) and repeat.payload is T


def test_zero_is_stamped_with_the_send_time():
    rules = started(MuxConfig(stamped=True))
    assert drive_outputs(rules.on_timer(123 * MS)) == [SendZero(123 * MS)]
    assert drive_outputs(rules.set_e_stop(True, 130 * MS)) == [SendZero(130 * MS)]


def test_active_source_every_status_period_and_on_change():
    rules = started()  # "none" sent at 0
    times = []
    for t in range(PERIOD, 3000 * MS + 1, PERIOD):
        if any(isinstance(o, SendSource) for o in rules.on_timer(t)):
            times.append(t)
    assert times == [1000 * MS, 2000 * MS, 3000 * MS]
    # a change is sent at once (from an input, between ticks) and the repeats count from it
    assert sources(rules.on_input(POLICY, P, 3010 * MS)) == [POLICY]
    times = []
    for t in range(3050 * MS, 5000 * MS, PERIOD):
        rules.on_input(POLICY, P, t)  # policy stays fresh
        times += [t] * len(sources(rules.on_timer(t)))
    assert times == [4050 * MS]  # the first tick at or after 3.010 s + 1 s
    assert rules.active == POLICY


def test_status_repeats_name_the_active_source():
    rules = started()
    rules.on_input(TELEOP, T, 0)
    for t in range(10 * MS, 1500 * MS, 10 * MS):
        rules.on_input(TELEOP, T, t)
        for output in rules.on_timer(t):
            if isinstance(output, SendSource):
                assert output == SendSource(TELEOP, TELEOP) and not output.changed


def test_e_stop_sends_zero_at_once_and_is_latched():
    rules = started()
    rules.on_input(POLICY, P, 0)
    rules.on_input(TELEOP, T, 0)
    assert rules.set_e_stop(True, 5 * MS) == [SendSource(E_STOP, TELEOP), SendZero(5 * MS)]
    assert rules.e_stop
    outputs = []
    for t in range(10 * MS, 3000 * MS, 10 * MS):  # both drivers keep publishing, fresh, every 10 ms
        outputs += rules.on_input(POLICY, P, t) + rules.on_input(TELEOP, T, t) + rules.on_timer(t)
    assert not any(isinstance(o, SendCommand) for o in outputs), "nothing but zero while engaged"
    zeros = drive_outputs(outputs)
    assert len(zeros) == 59, "and zero keeps going out every period"
    assert set(sources(outputs)) == {E_STOP}
    # engaging again stops again at once; the source did not change
    assert rules.set_e_stop(True, 3000 * MS) == [SendZero(3000 * MS)]
    # released: the person drives again, from the next input on
    assert rules.set_e_stop(False, 3001 * MS) == [SendSource(TELEOP, E_STOP)]
    assert not rules.e_stop
    assert rules.on_input(TELEOP, T, 3002 * MS) == [SendCommand(T)]


def test_e_stop_release_without_fresh_drivers_gives_none_and_zero():
    rules = started(MuxConfig(e_stop_on_start=True))
    rules.on_input(POLICY, P, 0)
    assert rules.on_timer(PERIOD) == [SendZero(PERIOD)]
    assert rules.set_e_stop(False, 1000 * MS) == [SendSource(NONE, E_STOP)]
    assert drive_outputs(rules.on_timer(1050 * MS)) == [SendZero(1050 * MS)]
    assert rules.set_e_stop(False, 1060 * MS) == [], "releasing twice changes nothing"
