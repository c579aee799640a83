"""The teleop nodes' rules (lnn_control.teleop_rules) in simulated time: no ROS, no clock, no sleeps.

The keyboard's times are seconds (computed from integer milliseconds, so no float drift piles up), its stamps and
all the gamepad's times integer ns. Rate 20 Hz (period 50 ms, a repeat once 47.5 ms passed) unless a test says
otherwise; the gamepad's joy_timeout is 0.5 s.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from lnn_control.command import Command, car
from lnn_control.teleop_rules import (
    BACKWARDS,
    NO_CLOCK,
    JoyMapping,
    JoyMappingError,
    JoyOutput,
    JoyRules,
    JoyTeleopConfig,
    KeyboardRules,
    KeyOutput,
    KeyTeleop,
    KeyTeleopConfig,
)

MS = 1_000_000
STAMP = 1_700_000_000 * 1_000_000_000  # a wall-clock stamp, ns


def test_rules_import_no_ros():
    code = "import sys, lnn_control.teleop_rules; sys.exit(any(m.split('.')[0] == 'rclpy' for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_the_node_modules_still_export_the_names():
    pytest.importorskip("rclpy")
    from lnn_control.nodes import joy_teleop, teleop_keyboard

    assert teleop_keyboard.KeyTeleop is KeyTeleop and teleop_keyboard.KeyTeleopConfig is KeyTeleopConfig
    assert joy_teleop.JoyMapping is JoyMapping and joy_teleop.JoyTeleopConfig is JoyTeleopConfig
    assert joy_teleop.JoyMappingError is JoyMappingError


# -- keyboard: the keys -----------------------------------------------------------------------------------------------


def test_keys_step_and_clamp():
    keys = KeyTeleop(KeyTeleopConfig(speed_step=0.5, steering_step=0.3, max_speed=1.2, max_reverse_speed=0.5))
    assert not keys.active
    assert keys.feed("www") == ["velocity +0.50 m/s, steering +0.00", "velocity +1.00 m/s, steering +0.00",
                                "velocity +1.20 m/s, steering +0.00"]  # fmt: skip
    assert keys.active and keys.velocity == 1.2
    keys.feed("ssss")
    assert keys.velocity == -0.5, "reverse is limited by max_reverse_speed"
    keys.feed("aaaa")
    assert keys.steering == 1.0, "steering is limited by max_steering"
    keys.feed("dd")
    assert keys.steering == pytest.approx(0.4)
    keys.feed("c")
    assert keys.steering == 0.0 and keys.velocity == -0.5
    keys.feed(" ")
    assert keys.command().velocity == 0.0 and keys.command().steering == 0.0 and keys.active


def test_steps_stay_on_the_grid():
    keys = KeyTeleop(KeyTeleopConfig(speed_step=0.1, max_speed=5.0))
    keys.feed("w" * 30)
    assert keys.velocity == 3.0
    keys.feed("s" * 30)
    assert keys.velocity == 0.0


def test_no_reverse_when_max_reverse_is_zero():
    keys = KeyTeleop(KeyTeleopConfig(max_reverse_speed=0.0))
    keys.feed("sss")
    assert keys.velocity == 0.0


def test_arrow_keys_even_split_across_reads_and_unknown_keys_ignored():
    keys = KeyTeleop(KeyTeleopConfig(speed_step=0.1, steering_step=0.1))
    assert keys.feed("\x1b[A\x1b[D") == ["velocity +0.10 m/s, steering +0.00", "velocity +0.10 m/s, steering +0.10"]
    assert keys.feed("\x1b") == [] and keys.feed("[") == []
    assert keys.feed("B") == ["velocity +0.00 m/s, steering +0.10"]
    assert keys.feed("zZ?\x1b[Z") == [], "unknown keys and sequences do nothing"
    keys.feed("\x1b[C\x1b[C")
    assert keys.steering == pytest.approx(-0.1)


def test_release_and_quit():
    keys = KeyTeleop()
    keys.feed("wa")
    assert keys.active
    assert keys.feed("r") == ["released: the policy may drive"]
    assert not keys.active and keys.velocity == 0.0 and keys.steering == 0.0
    keys.feed("\t")
    assert not keys.active
    keys.feed("\x03")
    assert keys.quit


def test_held_steering_key_steers_until_its_repeats_stop():
    cfg = KeyTeleopConfig(steering_step=0.25, steering_hold=True, repeat_delay=0.5, repeat_gap=0.1)
    keys = KeyTeleop(cfg)
    keys.feed("w", now=0.0)
    assert keys.feed("a", now=1.0) == ["velocity +0.10 m/s, steering +0.25"]
    assert keys.expire(1.45) is None, "within the terminal's delay before auto-repeat the key counts as held"
    for i, t in enumerate((1.48, 1.51, 1.54, 1.57)):  # auto-repeat
        keys.feed("a", now=t)
        assert keys.steering == min(0.25 * (i + 2), 1.0)
        assert keys.expire(t + 0.09) is None
    assert keys.expire(1.68) == "velocity +0.10 m/s, steering +0.00", "let go: centred"
    assert keys.steering == 0.0 and keys.velocity == 0.1 and keys.active
    assert keys.expire(5.0) is None, "centred once"


def test_held_steering_a_tap_the_other_way_and_the_keys_that_end_a_hold():
    cfg = KeyTeleopConfig(steering_step=0.25, steering_hold=True, repeat_delay=0.5, repeat_gap=0.1)
    keys = KeyTeleop(cfg)
    keys.feed("aaa", now=0.0)
    assert keys.steering == 0.75
    keys.feed("\x1b[C", now=0.05)  # the other way: a new hold, from the centre
    assert keys.steering == -0.25
    assert keys.expire(0.5) is None and keys.expire(0.56) is not None, "a tap holds for repeat_delay"
    keys.feed("d", now=1.0)
    keys.feed("c", now=1.01)
    assert keys.steering == 0.0 and keys.expire(9.0) is None, "centre ends the hold"
    keys.feed("d", now=2.0)
    keys.feed("r", now=2.01)
    assert not keys.active and keys.expire(9.0) is None, "released: nothing more to say"
    stepping = KeyTeleop(KeyTeleopConfig(steering_step=0.25))
    stepping.feed("aa", now=0.0)
    assert stepping.expire(100.0) is None and stepping.steering == 0.5, "without steering_hold the steering stays"


# -- keyboard: when the command goes out ------------------------------------------------------------------------------


def run_keyboard(rules: KeyboardRules, start_ms: int, end_ms: int, *, tick_ms: int = 50, poll_ms: int = 20,
                 keys: dict[int, str] | None = None) -> list[tuple[int, Command]]:  # fmt: skip
    """The node's two timers in simulated time: a terminal poll every ``poll_ms`` (typing ``keys[ms]`` at that
    poll) and a repeat tick every ``tick_ms``, from ``start_ms`` to before ``end_ms``; (ms, command) published."""
    keys = dict(keys or {})
    published = []
    for ms in range(start_ms, end_ms):
        now, stamp = ms / 1000, STAMP + ms * MS
        outs = []
        if ms % poll_ms == 0 or ms in keys:
            outs.append(rules.on_read(keys.pop(ms, ""), now, stamp))
        if ms % tick_ms == 0:
            outs.append(rules.on_tick(now, stamp))
        published += [(ms, out.command) for out in outs if out.command is not None]
    assert not keys, f"keys at times no poll came: {keys}"
    return published


def test_nothing_is_published_before_a_key():
    rules = KeyboardRules(KeyTeleopConfig(rate=20.0))
    assert run_keyboard(rules, 0, 5000) == [], "idle polls and ticks publish nothing"
    assert rules.on_read("z?\x1b[Z", 5.0, STAMP) == KeyOutput(), "unknown keys change nothing: nothing goes out"
    assert rules.on_tick(5.05, STAMP) == KeyOutput()
    (first,) = run_keyboard(rules, 6000, 6001, keys={6000: "w"})
    assert first == (6000, car(0.0, 0.1, STAMP + 6000 * MS)), "the first key publishes at once"


def test_the_command_repeats_every_period_while_the_person_drives():
    rules = KeyboardRules(KeyTeleopConfig(rate=20.0, speed_step=0.5))
    published = run_keyboard(rules, 1000, 3000, keys={1000: "w"})
    times = [ms for ms, _ in published]
    assert times == list(range(1000, 3000, 50)), "at once on the key, then every 50 ms with no more keys"
    assert {(c.steering, c.velocity) for _, c in published} == {(0.0, 0.5)}
    assert [c.stamp_ns for _, c in published] == [STAMP + ms * MS for ms in times], "stamped when sent"
    slow = KeyboardRules(KeyTeleopConfig(rate=5.0))
    assert [ms for ms, _ in run_keyboard(slow, 0, 1000, keys={0: "w"})] == [0, 200, 400, 600, 800], "rate 5 Hz"


def test_a_repeat_waits_for_most_of_a_period_since_the_last_publication():
    rules = KeyboardRules(KeyTeleopConfig(rate=20.0))
    assert rules.on_read("w", 10.0, STAMP).command is not None
    assert rules.on_tick(10.04, STAMP).command is None, "40 ms after the key: not yet"
    assert rules.on_tick(10.048, STAMP).command is not None, "a tick a little early (48 of 50 ms) still repeats"
    assert rules.on_tick(10.06, STAMP).command is None, "12 ms after that repeat: not yet"
    # a key publishes at once and the repeats go on from it
    published = run_keyboard(rules, 11000, 11200, keys={11030: "w"})
    assert [ms for ms, _ in published] == [11000, 11030, 11100, 11150]
    assert [c.velocity for _, c in published] == [0.1, 0.2, 0.2, 0.2]


def test_every_key_that_changes_the_command_publishes_at_once_even_between_ticks():
    rules = KeyboardRules(KeyTeleopConfig(rate=1.0, speed_step=0.25, steering_step=0.5))
    published = run_keyboard(rules, 0, 900, tick_ms=1000, keys={100: "w", 120: "w", 140: "\x1b[D", 160: "x"})
    expected = [(100, 0.0, 0.25), (120, 0.0, 0.5), (140, 0.5, 0.5), (160, 0.0, 0.0)]
    assert published == [(ms, car(s, v, STAMP + ms * MS)) for ms, s, v in expected]
    out = rules.on_read("ww", 0.2, STAMP)
    assert len(out.lines) == 2 and out.command == car(0.0, 0.5, STAMP), "one read, one publication"


def test_nothing_is_published_after_release_and_the_next_key_starts_from_zero():
    rules = KeyboardRules(KeyTeleopConfig(rate=20.0, speed_step=0.5, steering_step=0.2))
    run_keyboard(rules, 0, 1000, keys={0: "ww", 20: "a"})
    out = rules.on_read("r", 1.0, STAMP)
    assert out == KeyOutput(("released: the policy may drive",)), "the release itself publishes nothing, no zero"
    assert run_keyboard(rules, 1000, 6000) == [], "released: nothing more is published"
    published = run_keyboard(rules, 6000, 6200, keys={6000: "w"})
    assert [(ms, c.steering, c.velocity) for ms, c in published] == [
        (6000, 0.0, 0.5), (6050, 0.0, 0.5), (6100, 0.0, 0.5), (6150, 0.0, 0.5)
    ], "the next key takes control again, from zero, and the repeats resume"  # fmt: skip
    rules.on_read("\t", 6.2, STAMP)
    assert run_keyboard(rules, 6200, 7000) == [], "Tab releases too"


def test_stop_keeps_publishing_zero_while_the_person_drives():
    rules = KeyboardRules(KeyTeleopConfig(rate=20.0))
    published = run_keyboard(rules, 0, 500, keys={0: "w", 100: " "})
    assert [c.velocity for ms, c in published if ms >= 100] == [0.0] * 8, "space: zero, repeated (still driving)"


def test_a_quit_or_a_closed_terminal_stops_without_publishing():
    rules = KeyboardRules(KeyTeleopConfig(rate=20.0))
    rules.on_read("w", 0.0, STAMP)
    out = rules.on_read("w\x03", 0.02, STAMP)
    assert out.stop and out.command is None and out.lines == ("velocity +0.20 m/s, steering +0.00", "quit")
    other = KeyboardRules()
    other.on_read("w", 0.0, STAMP)
    gone = other.on_read(None, 0.02, STAMP)
    assert gone.stop and gone.command is None and gone.lines == ()
    assert other.on_read("", 0.04, STAMP) == KeyOutput(), "an empty read is no stop"


def test_a_held_steering_key_let_go_publishes_the_centred_command_at_once():
    cfg = KeyTeleopConfig(rate=1.0, steering_step=0.5, steering_hold=True, repeat_delay=0.31, repeat_gap=0.1)
    rules = KeyboardRules(cfg)
    published = run_keyboard(rules, 0, 1000, tick_ms=1000, keys={0: "w", 100: "a"})
    assert [(ms, c.steering) for ms, c in published] == [(0, 0.0), (100, 0.5), (420, 0.0)], (
        "the poll after repeat_delay centres the steering and publishes it at once (the tick is a second away)"
    )
    idle = KeyboardRules(cfg)
    idle.keys.feed("a", now=0.0)
    idle.on_read("r", 0.01, STAMP)
    assert run_keyboard(idle, 20, 2000) == [], "a hold that ends after a release publishes nothing"


def test_sim_time_publishes_nothing_until_the_clock_gives_a_time():
    rules = KeyboardRules(KeyTeleopConfig(rate=20.0), sim_time=True)
    out = rules.on_read("w", 0.0, 0)
    assert out.command is None and out.problem == NO_CLOCK and out.lines == ("velocity +0.10 m/s, steering +0.00",)
    assert rules.on_tick(0.05, 0) == KeyOutput(problem=NO_CLOCK)
    out = rules.on_tick(0.06, 7_500_000_000)
    assert out.command == car(0.0, 0.1, 7_500_000_000) and out.problem == "", "the first tick with a time sends"
    assert rules.on_tick(0.07, 7_500_000_000).command is None, "and the repeats count from it"
    wall = KeyboardRules(KeyTeleopConfig(rate=20.0))
    assert wall.on_read("w", 0.0, 0).command == car(0.0, 0.1, 0), "on wall time a stamp is a stamp"


def test_a_stamp_behind_the_last_one_is_published_with_a_warning():
    rules = KeyboardRules(KeyTeleopConfig(rate=20.0), sim_time=True)
    rules.on_read("w", 0.0, 9_000_000_000)
    out = rules.on_tick(0.05, 7_500_000_000)
    assert out == KeyOutput((), car(0.0, 0.1, 7_500_000_000), BACKWARDS, 1_500_000_000)
    assert rules.on_tick(0.10, 7_520_000_000).problem == "", "forward again from the new stamp: no warning"


# -- gamepad: the mapping ---------------------------------------------------------------------------------------------


def test_joy_mapping_scales_inverts_and_needs_the_deadman():
    mapping = JoyMapping(JoyTeleopConfig(axis_velocity=1, axis_steering=3, scale_velocity=2.0, scale_steering=0.5,
                                         enable_button=4, deadzone=0.1))  # fmt: skip
    axes = [0.0, 0.5, 0.0, -0.8, 0.0]
    held = [0, 0, 0, 0, 1]
    assert mapping.map(axes, [0, 0, 0, 0, 0]) is None
    command = mapping.map(axes, held)
    assert command.velocity == pytest.approx(1.0) and command.steering == pytest.approx(-0.4)
    assert mapping.map([0.0, 0.05, 0.0, 0.09, 0.0], held).velocity == 0.0, "deadzone"
    assert mapping.map([0.0, 3.0, 0.0, 0.0, 0.0], held).velocity == pytest.approx(2.0), "clamped to full stick"
    inverted = JoyMapping(JoyTeleopConfig(invert_velocity=True, invert_steering=True, enable_button=-1))
    command = inverted.map([0.5, 0.25], [])
    assert command.velocity == pytest.approx(-0.25) and command.steering == pytest.approx(-0.5)
    forward_only = JoyMapping(JoyTeleopConfig(allow_reverse=False, enable_button=-1))
    assert forward_only.map([0.0, -1.0], []).velocity == 0.0


def test_joy_mapping_names_missing_axes_and_buttons():
    mapping = JoyMapping(JoyTeleopConfig(axis_velocity=7, enable_button=0))
    with pytest.raises(JoyMappingError, match="axis_velocity 7 does not exist: the Joy message has 2 axes"):
        mapping.map([0.0, 0.0], [1])
    with pytest.raises(JoyMappingError, match="enable_button 0 does not exist"):
        mapping.map([0.0] * 8, [])


# -- gamepad: when the command goes out -------------------------------------------------------------------------------

JOY = JoyTeleopConfig(axis_velocity=1, axis_steering=0, scale_velocity=2.0, enable_button=1, e_stop_button=0,
                      rate=20.0, joy_timeout=0.5, deadzone=0.0)  # fmt: skip
AXES = [0.25, 0.5]  # steering 0.25, velocity 1.0
HELD, RELEASED, E_STOP = [0, 1], [0, 0], [1, 0]
DRIVE = (0.25, 1.0)


def run_joy(rules: JoyRules, start_ms: int, end_ms: int, *, joy_every_ms: int | None = None, tick_ms: int = 50,
            tick_phase_ms: int = 0, buttons: list[int] = HELD) -> list[tuple[int, Command]]:  # fmt: skip
    """The node in simulated time: a Joy message (``AXES``, ``buttons``) every ``joy_every_ms`` (None: none) and a
    timer tick every ``tick_ms`` (at ``tick_phase_ms`` past), from ``start_ms`` to before ``end_ms``; (ms,
    command) published."""
    published = []
    for ms in range(start_ms, end_ms):
        outs = []
        if joy_every_ms is not None and (ms - start_ms) % joy_every_ms == 0:
            outs.append(rules.on_joy(AXES, buttons, ms * MS))
        if ms % tick_ms == tick_phase_ms:
            outs.append(rules.on_timer(ms * MS))
        published += [(ms, out.command) for out in outs if out.command is not None]
    return published


def values(published: list[tuple[int, Command]]) -> list[tuple[float, float]]:
    return [(c.steering, c.velocity) for _, c in published]


def test_joy_no_command_without_the_deadman():
    rules = JoyRules(JOY)
    assert run_joy(rules, 0, 2000, joy_every_ms=100, buttons=RELEASED) == []
    assert rules.on_timer(5000 * MS) == JoyOutput()


def test_joy_each_message_with_the_deadman_publishes_at_once():
    rules = JoyRules(JOY)
    out = rules.on_joy(AXES, HELD, 1000 * MS)
    assert out == JoyOutput(car(0.25, 1.0, 1000 * MS)), "stamped with the time it came"
    out = rules.on_joy([0.0, 1.0], HELD, 1010 * MS)
    assert out.command == car(0.0, 2.0, 1010 * MS), "10 ms later: a new Joy goes out at once, no rate limit"


def test_joy_repeats_at_rate_although_joy_comes_slower():
    rules = JoyRules(JOY)
    published = run_joy(rules, 0, 1000, joy_every_ms=100, tick_phase_ms=25)
    times = [ms for ms, _ in published]
    assert len(times) == 20, f"Joy at 10 Hz, commands at 20 Hz: {times}"
    assert max(b - a for a, b in zip(times, times[1:])) <= 75, "never a gap of more than a period and a half"
    assert set(values(published)) == {DRIVE}
    fast = JoyRules(JOY)
    published = run_joy(fast, 0, 1000, joy_every_ms=10, tick_phase_ms=25)
    assert len(published) == 100, "Joy faster than the rate: one per Joy, the timer adds none"


def test_joy_a_repeat_waits_for_most_of_a_period():
    rules = JoyRules(JOY)
    rules.on_joy(AXES, HELD, 0)
    assert rules.on_timer(40 * MS) == JoyOutput(), "40 ms after the last: not yet"
    assert rules.on_timer(48 * MS).command == car(0.25, 1.0, 48 * MS), "48 of 50 ms: a tick a little early"
    assert rules.on_timer(60 * MS) == JoyOutput()


def test_joy_deadman_release_publishes_one_zero_then_nothing():
    rules = JoyRules(JOY)
    run_joy(rules, 0, 500, joy_every_ms=100)
    out = rules.on_joy(AXES, RELEASED, 500 * MS)
    assert out == JoyOutput(car(0.0, 0.0, 500 * MS)), "one zero, at once"
    assert run_joy(rules, 500, 5000, joy_every_ms=100, buttons=RELEASED) == [], "then silence, Joy or not"
    assert run_joy(rules, 5000, 5100, joy_every_ms=100)[0] == (5000, car(0.25, 1.0, 5000 * MS)), "held again"


def test_joy_timeout_stops_the_repeats_with_one_zero_and_a_warning():
    rules = JoyRules(JOY)
    outs = [(ms, rules.on_joy(AXES, HELD, 0) if ms == 0 else rules.on_timer(ms * MS)) for ms in range(0, 3000, 50)]
    sent = [(ms, out) for ms, out in outs if out != JoyOutput()]
    assert [ms for ms, _ in sent] == list(range(0, 551, 50)), "repeats for joy_timeout, the stop at the next tick"
    assert all(out.command == car(0.25, 1.0, ms * MS) and not out.timed_out for ms, out in sent[:-1])
    assert sent[-1] == (550, JoyOutput(car(0.0, 0.0, 550 * MS), timed_out=True)), "one zero and the warning"
    assert run_joy(rules, 3000, 3100, joy_every_ms=100)[0][1] == car(0.25, 1.0, 3000 * MS), "a Joy restarts"


def test_joy_a_message_the_mapping_cannot_read_stops_once():
    rules = JoyRules(JOY)
    rules.on_joy(AXES, HELD, 0)
    out = rules.on_joy([0.0], HELD, 10 * MS)
    missing = "axis_velocity 1 does not exist: the Joy message has 1 axes"
    assert out == JoyOutput(car(0.0, 0.0, 10 * MS), error=missing), "driving: one zero, and the complaint"
    again = rules.on_joy([0.0], HELD, 20 * MS)
    assert again.command is None and again.error, "already stopped: the complaint only"
    assert run_joy(rules, 30, 2000) == []


def test_joy_e_stop_on_the_press_only_once():
    rules = JoyRules(JOY)
    buttons = [RELEASED, E_STOP, E_STOP, E_STOP, RELEASED, E_STOP, [1, 1], RELEASED]
    presses = [rules.on_joy(AXES, b, ms * MS).e_stop for ms, b in enumerate(buttons)]
    assert presses == [False, True, False, False, False, True, False, False], "the edge, not the level"
    assert JoyRules(JOY).on_joy(AXES, [1, 1], 0) == JoyOutput(car(0.25, 1.0, 0), e_stop=True), (
        "with the deadman held: the e-stop and the command, in one Joy"
    )
    none = JoyRules(JoyTeleopConfig(e_stop_button=-1, enable_button=-1))
    assert not any(none.on_joy([0.0, 0.0], [1] * 8, ms * MS).e_stop for ms in range(10)), "no e-stop button: never"
