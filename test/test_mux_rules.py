"""The command mux's rules (lnn_control.mux_rules) in simulated time: no ROS, no clock, times in integer ns.

Rate 20 Hz (period 50 ms, a repeat after 45 ms of silence), teleop (priority 100) timeout 0.5 s, policy (priority
10, an autonomy input) timeout 0.2 s, status_period 1 s, autonomy armed at start and zero forever when idle
(idle_tail -1), unless a test says otherwise. The payloads are plain strings: the rules never look inside them.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from lnn_control.mux_rules import (
    E_STOP,
    NONE,
    POLICY,
    TELEOP,
    InputSpec,
    LockSpec,
    MuxConfig,
    MuxRules,
    SendAutonomy,
    SendCommand,
    SendSource,
    SendZero,
    StoreEStop,
    parameter_specs,
    read_e_stop_state,
    write_e_stop_state,
)

MS = 1_000_000
PERIOD = 50 * MS
INPUTS = (InputSpec(TELEOP, "teleop/cmd_vel", 100, 0.5), InputSpec(POLICY, "lnn/cmd_vel", 10, 0.2, autonomy=True))
CONFIG = MuxConfig(rate=20.0, status_period=1.0, stamped=False, idle_tail=-1.0, autonomy_on_start=True)
P, P2, T = "policy command", "newer policy command", "teleop command"


def cfg(**changes) -> MuxConfig:
    return dataclasses.replace(CONFIG, **changes)


def started(config: MuxConfig = CONFIG, now: int = 0, inputs=INPUTS, locks=(), **kwargs) -> MuxRules:
    rules = MuxRules(config, inputs, locks, **kwargs)
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


def test_who_drives_in_priority_order():
    rules = started()
    assert rules.source(0) == NONE
    rules.last_input_ns[POLICY] = 0
    assert rules.source(100 * MS) == POLICY
    assert rules.source(200 * MS) == POLICY  # at the timeout still fresh
    assert rules.source(200 * MS + 1) == NONE  # stale policy
    rules.last_input_ns[TELEOP] = 250 * MS
    rules.last_input_ns[POLICY] = 290 * MS
    assert rules.source(300 * MS) == TELEOP  # the human wins over a fresh policy
    assert rules.source(750 * MS) == TELEOP
    assert rules.source(750 * MS + 1) == NONE  # teleop stale, policy too
    rules.e_stop_latched = True
    assert rules.source(300 * MS) == E_STOP


def test_start_says_who_drives():
    assert MuxRules(CONFIG, INPUTS).start(0) == [SendAutonomy(True, first=True), SendSource(NONE, "")]
    assert MuxRules(cfg(e_stop_on_start=True), INPUTS).start(0) == [
        SendAutonomy(False, first=True), SendSource(E_STOP, ""), SendZero(0)]
    assert not SendSource(NONE, "").changed and not SendSource(NONE, NONE).changed
    assert SendSource(POLICY, NONE).changed


def test_input_of_the_active_source_is_forwarded_at_once_unchanged():
    rules = started()
    assert rules.on_input(POLICY, P, 10 * MS) == [SendSource(POLICY, NONE), SendCommand(P)]
    assert rules.on_input(POLICY, P2, 20 * MS) == [SendCommand(P2)]
    stamped = started(cfg(stamped=True))
    assert drive_outputs(stamped.on_input(POLICY, P, 10 * MS)) == [SendCommand(P, None)], "a forward is not restamped"


def test_only_inputs_can_drive():
    with pytest.raises(ValueError, match="not an input"):
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
    rules = started(cfg(stamped=True), inputs=(InputSpec(POLICY, "p", 10, 0.5),))
    rules.on_input(POLICY, P, 7 * MS)
    (repeat,) = rules.on_timer(57 * MS)
    assert repeat == SendCommand(P, restamp_ns=57 * MS) and repeat.payload is P
    (repeat,) = rules.on_timer(107 * MS)
    assert repeat.restamp_ns == 107 * MS


def test_unstamped_repeat_is_the_input_unchanged():
    rules = started(cfg(stamped=False))
    rules.on_input(TELEOP, T, 7 * MS)
    (repeat,) = rules.on_timer(57 * MS)
    assert repeat == SendCommand(T, restamp_ns=None) and repeat.payload is T


def test_zero_is_stamped_with_the_send_time():
    rules = started(cfg(stamped=True))
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
    assert rules.set_e_stop(True, 5 * MS) == [
        StoreEStop(True), SendAutonomy(False), SendSource(E_STOP, TELEOP), SendZero(5 * MS)]
    assert rules.e_stop_latched
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
    assert rules.set_e_stop(False, 3001 * MS) == [StoreEStop(False), SendSource(TELEOP, E_STOP)]
    assert not rules.e_stop_latched
    assert rules.on_input(TELEOP, T, 3002 * MS) == [SendCommand(T)]


def test_e_stop_release_without_fresh_drivers_gives_none_and_zero():
    rules = started(cfg(e_stop_on_start=True))
    rules.on_input(TELEOP, T, 0)
    assert rules.on_timer(PERIOD) == [SendZero(PERIOD)]
    assert rules.set_e_stop(False, 1000 * MS) == [StoreEStop(False), SendSource(NONE, E_STOP)]
    assert drive_outputs(rules.on_timer(1050 * MS)) == [SendZero(1050 * MS)]
    assert rules.set_e_stop(False, 1060 * MS) == [], "releasing twice changes nothing"


# -- the idle tail: silence once nobody drives ------------------------------------------------------------------------


def test_idle_tail_zero_then_silence_at_start_and_after_a_driver():
    rules = started(cfg(idle_tail=0.2))  # nobody drives from 0: zeros up to 200 ms, then nothing
    ticks = range(PERIOD, 2000 * MS, PERIOD)
    sent = [o for t in ticks for o in drive_outputs(rules.on_timer(t))]
    assert sent == [SendZero(t) for t in range(PERIOD, 200 * MS + 1, PERIOD)]
    # a driver comes and goes: its last command, then zeros for the tail from the change to none, then silence
    rules.on_input(TELEOP, T, 2000 * MS)
    outputs = [o for t in range(2050 * MS, 5000 * MS, PERIOD) for o in rules.on_timer(t)]
    assert sources(outputs) == [NONE, NONE, NONE], "the status goes on: a change, then once a second"
    change = next(t for t in range(2050 * MS, 5000 * MS, PERIOD) if t - 2000 * MS > 500 * MS)  # 2550 ms
    assert drive_outputs(outputs) == [SendCommand(T)] * 10 + [SendZero(t) for t in range(change, change + 200 * MS + 1,
                                                                                        PERIOD)]


def test_idle_tail_zero_sends_nothing_and_the_e_stop_still_holds_with_zero():
    rules = started(cfg(idle_tail=0.0))
    assert [o for t in range(PERIOD, 1000 * MS, PERIOD) for o in drive_outputs(rules.on_timer(t))] == []
    rules.set_e_stop(True, 1000 * MS)
    held = [o for t in range(1050 * MS, 3000 * MS, PERIOD) for o in drive_outputs(rules.on_timer(t))]
    assert held == [SendZero(t) for t in range(1050 * MS, 3000 * MS, PERIOD)], "a stop is held, not left to the tail"


def test_an_unarmed_policy_is_nobody_and_falls_silent():
    rules = started(cfg(autonomy_on_start=False, idle_tail=0.1))
    outputs = []
    for t in range(10 * MS, 1000 * MS, 10 * MS):
        outputs += rules.on_input(POLICY, P, t) + rules.on_timer(t)
    assert not any(isinstance(o, SendCommand) for o in outputs) and set(sources(outputs)) <= {NONE}
    assert drive_outputs(outputs) == [SendZero(10 * MS), SendZero(60 * MS)], "zero for the 100 ms tail, then nothing"


# -- autonomy: the switch and the deadman -----------------------------------------------------------------------------


def test_autonomy_switch_arms_and_disarms_the_policy_only():
    rules = started(cfg(autonomy_on_start=False))
    assert rules.on_input(POLICY, P, 10 * MS) == []
    assert rules.set_autonomy(True, 20 * MS) == [SendAutonomy(True), SendSource(POLICY, NONE)]
    assert rules.on_input(POLICY, P2, 30 * MS) == [SendCommand(P2)]
    assert rules.set_autonomy(False, 40 * MS) == [SendAutonomy(False), SendSource(NONE, POLICY)]
    assert rules.on_input(TELEOP, T, 50 * MS) == [SendSource(TELEOP, NONE), SendCommand(T)], "a person needs no arming"


def test_autonomy_deadman_arms_while_it_keeps_saying_true():
    rules = started(cfg(autonomy_on_start=False, autonomy_timeout=0.3))
    outputs = []
    for t in range(0, 1000 * MS, 100 * MS):  # held: true every 100 ms, the policy every 10 ms
        outputs += rules.on_deadman(True, t)
        for u in range(t, t + 100 * MS, 10 * MS):
            outputs += rules.on_input(POLICY, P, u)
    assert outputs[:2] == [SendAutonomy(True), SendSource(POLICY, NONE)]
    assert sources(outputs) == [POLICY] and outputs.count(SendAutonomy(False)) == 0
    # the deadman stops (a dead gamepad, a killed teleop): disarmed once its last true is autonomy_timeout old
    assert rules.on_input(POLICY, P, 900 * MS + 300 * MS) == [SendCommand(P)], "at the timeout still armed"
    assert rules.on_input(POLICY, P, 1200 * MS + 1) == [SendAutonomy(False), SendSource(NONE, POLICY)]
    assert sources(rules.on_deadman(True, 1300 * MS)) == [POLICY], "held again: the fresh policy drives"
    assert rules.on_deadman(False, 1310 * MS) == [SendAutonomy(False), SendSource(NONE, POLICY)], "false: at once"


def test_engaging_the_e_stop_disarms_the_switch():
    rules = started()
    rules.on_input(POLICY, P, 0)
    rules.set_e_stop(True, 10 * MS)
    rules.set_e_stop(False, 20 * MS)
    assert rules.on_input(POLICY, P, 30 * MS) == [], "released, but autonomy must be armed again"
    assert sources(rules.set_autonomy(True, 40 * MS)) == [POLICY]


# -- the e-stop's heartbeat and its stored state -----------------------------------------------------------------------


def test_e_stop_heartbeat_engages_when_its_publisher_dies():
    rules = started(cfg(e_stop_heartbeat=0.3), inputs=INPUTS[:1])
    assert rules.active == E_STOP, "never heard: engaged"
    outputs = rules.set_e_stop(False, 100 * MS, heard=True)
    assert sources(outputs) == [NONE]
    for t in range(200 * MS, 1000 * MS, 100 * MS):  # false every 100 ms, a person drives
        rules.set_e_stop(False, t, heard=True)
        rules.on_input(TELEOP, T, t)
    assert rules.active == TELEOP
    # the e-stop publisher dies after 900 ms: at 1200 ms its heartbeat is still good, 1 ns later not
    rules.on_input(TELEOP, T, 1150 * MS)
    assert drive_outputs(rules.on_timer(1200 * MS)) == [SendCommand(T)], "its last false is 300 ms old: still good"
    outputs = rules.on_input(TELEOP, T, 1200 * MS + 1)
    assert outputs == [SendSource(E_STOP, TELEOP), SendZero(1200 * MS + 1)], "nothing of the person's goes out"
    assert not any(isinstance(o, StoreEStop) for o in outputs), "the latched state did not change"
    assert sources(rules.set_e_stop(False, 1300 * MS, heard=True)) == [TELEOP], "it comes back saying false"


def test_e_stop_service_does_not_feed_the_heartbeat():
    rules = started(cfg(e_stop_heartbeat=0.3))
    rules.set_e_stop(False, 0, heard=True)
    rules.set_e_stop(False, 250 * MS)  # the service: releases nothing more, and is no heartbeat
    assert rules.on_timer(300 * MS + 1)[0] == SendSource(E_STOP, NONE)


def test_stored_e_stop_state_wins_over_e_stop_on_start(tmp_path):
    path = tmp_path / "state" / "e_stop"
    assert read_e_stop_state(path) == (None, "")
    write_e_stop_state(path, True)
    assert read_e_stop_state(path) == (True, "") and path.read_text() == "engaged\n"
    assert started(cfg(e_stop_on_start=False), e_stop_engaged=True).active == E_STOP
    write_e_stop_state(path, False)
    assert read_e_stop_state(path) == (False, "")
    assert started(cfg(e_stop_on_start=True), e_stop_engaged=False).active == NONE
    assert [p.name for p in path.parent.iterdir()] == ["e_stop"], "no temporary file left behind"
    path.write_text("maybe\n")
    engaged, why = read_e_stop_state(path)
    assert engaged is True and "starting engaged" in why, "an unreadable state fails safe"


def test_only_changes_of_the_latched_state_are_stored():
    rules = started()
    assert StoreEStop(True) in rules.set_e_stop(True, 0)
    assert not any(isinstance(o, StoreEStop) for o in rules.set_e_stop(True, 10 * MS))
    assert StoreEStop(False) in rules.set_e_stop(False, 20 * MS)


# -- more inputs, and locks --------------------------------------------------------------------------------------------


def test_a_third_input_drives_by_its_priority():
    nav = InputSpec("nav", "nav/cmd_vel", 50, 0.5)
    rules = started(inputs=(*INPUTS, nav))
    rules.on_input(POLICY, P, 0)
    assert rules.on_input("nav", "nav command", 10 * MS) == [SendSource("nav", POLICY), SendCommand("nav command")]
    assert rules.on_input(POLICY, P, 20 * MS) == [], "below nav"
    assert rules.on_input(TELEOP, T, 30 * MS)[0] == SendSource(TELEOP, "nav")
    assert rules.on_input("nav", "nav command", 40 * MS) == [], "below the person"
    assert rules.on_timer(530 * MS + 1)[0] == SendSource("nav", TELEOP), "the person gone, nav (fresh) drives again"


def test_a_lock_blocks_its_priority_and_below_and_engages_when_silent():
    lock = LockSpec("bumper", "bumper", priority=50, timeout=0.3)
    rules = started(locks=(lock,))
    assert rules.active == "bumper", "a heartbeat lock never heard is engaged"
    rules.on_input(POLICY, P, 0)
    assert rules.on_lock("bumper", False, 10 * MS) == [SendSource(POLICY, "bumper")]
    assert rules.on_lock("bumper", True, 20 * MS) == [SendSource("bumper", POLICY), SendZero(20 * MS)]
    assert rules.on_input(POLICY, P, 30 * MS) == []
    assert rules.on_input(TELEOP, T, 40 * MS) == [SendSource(TELEOP, "bumper"), SendCommand(T)], "above the lock"
    rules.on_lock("bumper", False, 50 * MS)
    rules.on_input(POLICY, P, 400 * MS)
    assert rules.active == TELEOP
    assert rules.on_timer(600 * MS)[0] == SendSource("bumper", TELEOP), "silent 550 ms: engaged again"
    with pytest.raises(ValueError, match="not a lock"):
        rules.on_lock("nobody", True, 0)


@pytest.mark.parametrize(
    ("inputs", "locks", "problem"),
    [
        ((), (), "empty"),
        ((InputSpec("none", "x", 1),), (), "reserved"),
        ((InputSpec("a", "x", 1), InputSpec("a", "y", 2)), (), "repeated: a"),
        ((InputSpec("a", "x", 1), InputSpec("b", "y", 1)), (), "distinct priorities"),
        ((InputSpec("a", "x", 1),), (LockSpec("a", "y"),), "repeated: a"),
        ((InputSpec("a b", "x", 1),), (), "letters"),
    ],
)
def test_bad_inputs_are_refused_with_the_reason(inputs, locks, problem):
    with pytest.raises(ValueError, match=problem):
        MuxRules(CONFIG, inputs, locks)


def test_parameter_specs_name_each_input_and_lock_with_its_defaults():
    specs = {s["name"]: s for s in parameter_specs(["teleop", "policy", "nav"], ["bumper"])}
    assert specs["input.teleop.priority"]["default"] == 100 and specs["input.policy.topic"]["default"] == "lnn/cmd_vel"
    assert specs["input.policy.autonomy"]["default"] is True and specs["input.teleop.autonomy"]["default"] is False
    assert specs["input.nav.topic"]["default"] == "nav/cmd_vel" and specs["lock.bumper.topic"]["default"] == "bumper"
    assert specs["stamped"]["default"] is True and specs["autonomy_on_start"]["default"] is False


def test_idle_tail_minus_one_sends_zero_forever():
    rules = started(cfg(idle_tail=-1.0))
    sent = [o for t in range(PERIOD, 120_000 * MS, PERIOD) for o in drive_outputs(rules.on_timer(t))]
    assert sent == [SendZero(t) for t in range(PERIOD, 120_000 * MS, PERIOD)]
