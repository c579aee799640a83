"""The teleop nodes' rules (lnn_control.teleop_rules) in simulated time: no ROS, no clock, no sleeps.

The keyboard's times are seconds (computed from integer milliseconds, so no float drift piles up), its stamps and
all the gamepad's times integer ns. Rate 20 Hz (period 50 ms, a repeat once 47.5 ms passed) unless a test says
otherwise; the gamepad's joy_timeout is 0.5 s. The car's tests come first, then the drone's (``action: drone``):
every key and stick with its REP 103 sign (+vy left, +vz up, +yaw_rate counter-clockwise), the limits, the
deadzone, hover, and the same publishing rules.
"""

from __future__ import annotations

import dataclasses
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from lnn_control.command import CAR, DRONE, Command, car, schema_from
from lnn_control.ros.node_util import check_value, describe
from lnn_control.teleop_rules import (
    BACKWARDS,
    JOY_FIELDS,
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

ROOT = Path(__file__).resolve().parents[1]
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


def test_joy_autonomy_button_is_a_deadman_for_the_policy():
    rules = JoyRules(dataclasses.replace(JOY, autonomy_button=2))
    armed, let_go = [0, 0, 1], [0, 0, 0]
    assert rules.on_joy(AXES, let_go, 0).autonomy is None, "never held: nothing said"
    outs = [(0, rules.on_joy(AXES, armed, 0))] + [(ms, rules.on_timer(ms * MS)) for ms in range(50, 401, 50)]
    assert [(ms, o.autonomy) for ms, o in outs] == [(ms, True) for ms in range(0, 401, 50)], "held: true at rate"
    assert all(o.command is None for _, o in outs), "the autonomy button drives nothing itself"
    assert rules.on_joy(AXES, armed, 420 * MS).autonomy is True, "and on every Joy message"
    assert rules.on_timer(440 * MS).autonomy is None, "a repeat waits for most of a period"
    assert rules.on_joy(AXES, let_go, 500 * MS).autonomy is False, "let go: one false"
    assert rules.on_timer(1000 * MS).autonomy is None and rules.on_joy(AXES, let_go, 1010 * MS).autonomy is None
    # held, then the gamepad falls silent: one false at the joy_timeout, then nothing
    rules.on_joy(AXES, armed, 2000 * MS)
    ticks = [(ms, rules.on_timer(ms * MS).autonomy) for ms in range(2050, 4000, 50)]
    said = [(ms, a) for ms, a in ticks if a is not None]
    assert said[-1] == (2550, False) and all(a for _, a in said[:-1]), said
    assert JoyTeleopConfig().autonomy_button == -1 and JoyRules(JOY).on_joy(AXES, [1, 1, 1], 0).autonomy is None


def test_the_teleops_publish_twist_stamped_by_default():
    assert KeyTeleopConfig().stamped is True and JoyTeleopConfig().stamped is True


# -- the drone: keys --------------------------------------------------------------------------------------------------

DRONE_KEYS = KeyTeleopConfig(action="drone", speed_step=0.25, climb_step=0.1, yaw_step=0.2, max_speed=1.0,
                             max_climb=0.5, max_yaw_rate=0.6)  # fmt: skip


def flu(command: Command) -> dict[str, float]:
    """Where a command travels in a Twist: ``{"linear.x": ..., "angular.z": ...}``, rounded as the keys round."""
    return {slot: round(v, 9) for slot, v in command.schema.twist_values(command).items()}


def test_the_default_action_is_the_car_and_its_keys_know_no_drone_key():
    assert KeyTeleopConfig().action == "car" and JoyTeleopConfig().action == "car"
    keys = KeyTeleop()
    assert keys.schema is CAR and keys.command().schema is CAR
    assert keys.feed("tbqe") == [] and not keys.active, "the drone's climb and yaw letters do nothing to a car"


@pytest.mark.parametrize(
    ("key", "slot", "value"),
    [
        ("w", "linear.x", 0.25), ("s", "linear.x", -0.25),  # forward / back
        ("a", "linear.y", 0.25), ("d", "linear.y", -0.25),  # +vy is left (REP 103)
        ("\x1b[A", "linear.z", 0.1), ("t", "linear.z", 0.1),  # climb: +vz is up
        ("\x1b[B", "linear.z", -0.1), ("b", "linear.z", -0.1),  # descend
        ("q", "angular.z", 0.2), ("\x1b[D", "angular.z", 0.2),  # yaw left: counter-clockwise is +
        ("e", "angular.z", -0.2), ("\x1b[C", "angular.z", -0.2),  # yaw right
    ],
)  # fmt: skip
def test_each_drone_key_moves_one_axis_with_the_rep103_sign(key, slot, value):
    keys = KeyTeleop(DRONE_KEYS)
    (line,) = keys.feed(key)
    command = keys.command(STAMP)
    assert command.schema is DRONE and command.stamp_ns == STAMP and keys.active
    expected = {s: 0.0 for s in ("linear.x", "linear.y", "linear.z", "angular.z")} | {slot: value}
    assert flu(command) == expected, f"{key!r}: {line}"


def test_drone_keys_step_on_the_grid_and_the_status_line_names_every_axis():
    keys = KeyTeleop(KeyTeleopConfig(action="drone", speed_step=0.1, max_speed=5.0, climb_step=0.1, max_climb=5.0))
    keys.feed("w" * 30 + "d" * 7 + "t" * 13)
    assert (keys.vx, keys.vy, keys.vz, keys.yaw_rate) == (3.0, -0.7, 1.3, 0.0), "no float drift"
    assert keys.feed("q") == ["vx +3.00 vy -0.70 vz +1.30 m/s, yaw +0.10 rad/s"]
    keys.feed("s" * 30 + "a" * 7 + "b" * 13 + "e")
    assert keys.command() == DRONE.of(0), "back to exactly zero"
    assert all(str(v)[0] != "-" for v in keys.command().values), "no negative zero"


def test_drone_climb_and_yaw_stop_at_their_limits_both_ways():
    keys = KeyTeleop(DRONE_KEYS)
    keys.feed("\x1b[A" * 9 + "q" * 9)
    assert keys.vz == 0.5 and keys.yaw_rate == 0.6, "max_climb, max_yaw_rate"
    keys.feed("b" * 20 + "\x1b[C" * 20)
    assert keys.vz == -0.5 and keys.yaw_rate == -0.6, "the same limits down and clockwise"
    none = KeyTeleop(KeyTeleopConfig(action="drone", max_climb=0.0, max_yaw_rate=0.0, max_speed=0.0))
    none.feed("wasdtbqe")
    assert none.command() == DRONE.of(0) and none.active, "zero limits: the keys take control, nothing moves"


def test_drone_horizontal_speed_is_a_norm_and_a_key_moves_only_its_own_axis():
    keys = KeyTeleop(DRONE_KEYS)  # speed_step 0.25, max_speed 1.0
    keys.feed("w" * 6)
    assert keys.vx == 1.0
    keys.feed("a")
    assert (keys.vx, keys.vy) == (1.0, 0.0), "full speed forward: no room to the side, vx untouched"
    keys.feed("s")
    keys.feed("a")
    assert (keys.vx, keys.vy) == (0.75, 0.25)
    keys.feed("aaaa")
    assert keys.vx == 0.75 and keys.vy == pytest.approx(math.sqrt(1 - 0.75**2)), "sideways up to the circle"
    keys.feed("d" * 9)
    assert keys.vy == pytest.approx(-math.sqrt(1 - 0.75**2)), "and to the right the same"
    keys.feed("w")
    assert keys.vx == 0.75, "forward is full for this vy"
    keys.feed("x")
    keys.feed("dddd")
    assert keys.vy == -1.0, "alone, one axis reaches max_speed"


def test_drone_speed_never_leaves_its_limits_whatever_the_keys():
    rng = random.Random(7)
    keys = KeyTeleop(DRONE_KEYS)
    for _ in range(3000):
        keys.feed(rng.choice(["w", "s", "a", "d", "t", "b", "q", "e", "\x1b[A", "\x1b[B", "c"]))
        assert math.hypot(keys.vx, keys.vy) <= 1.0 + 1e-9
        assert abs(keys.vz) <= 0.5 and abs(keys.yaw_rate) <= 0.6


def test_drone_hover_c_release_and_quit():
    keys = KeyTeleop(DRONE_KEYS)
    keys.feed("wdtq")
    keys.feed("c")
    assert keys.yaw_rate == 0.0 and (keys.vx, keys.vy, keys.vz) == (0.25, -0.25, 0.1), "c stops only the yaw"
    keys.feed("q")
    assert keys.feed(" ") == ["vx +0.00 vy +0.00 vz +0.00 m/s, yaw +0.00 rad/s"] and keys.active, "hover"
    assert keys.command() == DRONE.of(0)
    keys.feed("wa")
    keys.feed("x")
    assert keys.command() == DRONE.of(0) and keys.active, "x hovers too"
    keys.feed("wtq")
    assert keys.feed("r") == ["released: the policy may drive"]
    assert not keys.active and keys.command() == DRONE.of(0), "release zeroes every axis for the next take-over"
    keys.feed("\x04")
    assert keys.quit


def test_drone_yaw_hold_yaws_only_while_the_key_repeats():
    cfg = KeyTeleopConfig(action="drone", yaw_step=0.25, max_yaw_rate=1.0, steering_hold=True, repeat_delay=0.5,
                          repeat_gap=0.1)  # fmt: skip
    keys = KeyTeleop(cfg)
    keys.feed("w", now=0.0)
    keys.feed("q", now=1.0)
    for t in (1.48, 1.51, 1.54):  # auto-repeat
        keys.feed("q", now=t)
    assert keys.yaw_rate == 1.0 and keys.expire(1.6) is None
    assert keys.expire(1.65) == "vx +0.10 vy +0.00 vz +0.00 m/s, yaw +0.00 rad/s", "let go: the yaw stops"
    keys.feed("\x1b[C", now=2.0)
    assert keys.yaw_rate == -0.25 and keys.expire(2.51) is not None and keys.yaw_rate == 0.0
    assert keys.vx == 0.1, "the velocities stay: only the yaw is spring-loaded"
    stepping = KeyTeleop(KeyTeleopConfig(action="drone", yaw_step=0.25))
    stepping.feed("qq", now=0.0)
    assert stepping.expire(100.0) is None and stepping.yaw_rate == 0.5


# -- the drone: when the keys' command goes out -----------------------------------------------------------------------


def test_drone_keys_publish_by_the_cars_rules():
    rules = KeyboardRules(KeyTeleopConfig(action="drone", rate=20.0, speed_step=0.5))
    assert run_keyboard(rules, 0, 1000) == [], "nothing before the first key"
    published = run_keyboard(rules, 1000, 1500, keys={1000: "a", 1220: " "})
    assert [ms for ms, _ in published] == [1000, 1050, 1100, 1150, 1200, 1220, 1300, 1350, 1400, 1450]
    assert all(c.schema is DRONE for _, c in published)
    assert [c.vy for _, c in published] == [0.5] * 5 + [0.0] * 5, "the key at once, repeats, hover keeps publishing"
    assert [c.stamp_ns for _, c in published] == [STAMP + ms * MS for ms, _ in published]
    assert rules.on_read("r", 1.5, STAMP).command is None
    assert run_keyboard(rules, 1500, 3000) == [], "released: nothing"
    sim = KeyboardRules(KeyTeleopConfig(action="drone"), sim_time=True)
    assert sim.on_read("t", 0.0, 0).problem == NO_CLOCK
    assert sim.on_tick(0.05, 7_500_000_000).command == DRONE.of(7_500_000_000, vz=0.1)


# -- the drone: the gamepad -------------------------------------------------------------------------------------------


def xpad(*, lx: float = 0.0, ly: float = 0.0, rx: float = 0.0, ry: float = 0.0) -> list[float]:
    """Joy axes of an Xbox-style pad under joy_node (0/1 left x/y, 2 LT, 3/4 right x/y, 5 RT, 6/7 the d-pad; left and
    up positive, released triggers at 1)."""
    return [lx, ly, 1.0, rx, ry, 1.0, 0.0, 0.0]


LB = [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]  # the default deadman, held


@pytest.mark.parametrize(
    ("axes", "slot", "value"),
    [
        (xpad(ly=1.0), "linear.z", 0.5),  # left stick up: climb (scale_vz 0.5)
        (xpad(ly=-1.0), "linear.z", -0.5),  # down: descend
        (xpad(lx=1.0), "angular.z", 1.0),  # left stick left: yaw left, counter-clockwise +
        (xpad(lx=-0.5), "angular.z", -0.5),  # right: clockwise
        (xpad(ry=0.5), "linear.x", 0.5),  # right stick up: forward
        (xpad(ry=-1.0), "linear.x", -1.0),  # down: back
        (xpad(rx=0.25), "linear.y", 0.25),  # right stick left: +vy, left
        (xpad(rx=-1.0), "linear.y", -1.0),  # right: to the right
    ],
)  # fmt: skip
def test_joy_drone_defaults_are_mode_2_with_rep103_signs(axes, slot, value):
    command = JoyMapping(JoyTeleopConfig(action="drone")).map(axes, LB, STAMP)
    assert command.schema is DRONE and command.stamp_ns == STAMP
    expected = {s: 0.0 for s in ("linear.x", "linear.y", "linear.z", "angular.z")} | {slot: value}
    assert flu(command) == expected


def test_joy_drone_scales_inverts_deadzone_and_full_stick():
    cfg = JoyTeleopConfig(action="drone", axis_vx=0, axis_vy=1, axis_vz=2, axis_yaw_rate=3, scale_vx=2.0,
                          scale_vy=1.5, scale_vz=1.0, scale_yaw_rate=0.5, invert_vy=True, invert_yaw_rate=True,
                          deadzone=0.1, enable_button=-1)  # fmt: skip
    mapping = JoyMapping(cfg)
    assert mapping.map([0.5, 0.5, -0.25, 1.0], []).values == (1.0, -0.75, -0.25, -0.5)
    assert mapping.map([0.09, -0.09, 0.05, -0.0999], []) == DRONE.of(0), "inside the deadzone: zero, no -0.0"
    assert all(str(v)[0] != "-" for v in mapping.map([0.0, 0.0, 0.0, 0.0], []).values)
    assert mapping.map([3.0, -3.0, 2.0, -9.0], []).values == (2.0, 1.5, 1.0, 0.5), "clamped to full stick"
    assert mapping.map([0.0] * 4, [0, 0, 0, 0, 0]) == DRONE.of(0), "no deadman button: always driving"
    assert mapping.describe() == (
        "vx axis 0 x 2 m/s, vy axis 1 inverted x 1.5 m/s, vz axis 2 x 1 m/s, yaw_rate axis 3 inverted x 0.5 rad/s"
    )
    assert JoyMapping().describe() == "velocity axis 1 x 1 m/s, steering axis 0 x 1", "the car's, as before"


def test_joy_drone_needs_the_deadman_and_names_missing_axes():
    mapping = JoyMapping(JoyTeleopConfig(action="drone"))
    assert mapping.map(xpad(ly=1.0), [0] * 11) is None
    with pytest.raises(JoyMappingError, match="axis_vx 4 does not exist: the Joy message has 2 axes"):
        mapping.map([0.0, 0.0], LB)
    with pytest.raises(JoyMappingError, match="axis_vy 3 does not exist: the Joy message has 3 axes"):
        JoyMapping(JoyTeleopConfig(action="drone", axis_vx=0)).map([0.0] * 3, LB)


def test_joy_every_stick_field_has_its_axis_scale_and_invert_parameter():
    names = {s["name"] for s in describe(JoyTeleopConfig)}
    for action, fields in JOY_FIELDS.items():
        assert set(fields) == set(schema_from(action).names), action
        for name in fields:
            assert {f"axis_{name}", f"scale_{name}", f"invert_{name}"} <= names, name


DRONE_JOY = JoyTeleopConfig(action="drone", enable_button=1, e_stop_button=0, rate=20.0, joy_timeout=0.5,
                            deadzone=0.0, axis_vx=0, axis_vy=1, axis_vz=2, axis_yaw_rate=3)  # fmt: skip
FLY = [0.5, 0.25, -0.5, 1.0]  # vx 0.5, vy 0.25, vz -0.25 (scale_vz 0.5), yaw_rate 1.0


def test_joy_drone_follows_the_cars_timing_rules():
    rules = JoyRules(DRONE_JOY)
    flying = DRONE.of(0, vx=0.5, vy=0.25, vz=-0.25, yaw_rate=1.0)
    assert rules.on_joy(FLY, RELEASED, 0) == JoyOutput(), "no deadman: nothing"
    assert rules.on_joy(FLY, HELD, 100 * MS) == JoyOutput(flying.restamped(100 * MS)), "at once"
    assert rules.on_timer(148 * MS).command == flying.restamped(148 * MS), "repeated without Joy"
    out = rules.on_joy(FLY, RELEASED, 160 * MS)
    assert out == JoyOutput(DRONE.stop(160 * MS)) and out.command.schema is DRONE, "let go: one drone zero"
    assert rules.on_timer(300 * MS) == JoyOutput() and rules.on_joy(FLY, RELEASED, 310 * MS) == JoyOutput()
    rules.on_joy(FLY, HELD, 1000 * MS)
    sent = [rules.on_timer(ms * MS) for ms in range(1050, 1600, 50)]
    assert sent[-1] == JoyOutput(DRONE.stop(1550 * MS), timed_out=True), "joy_timeout: one drone zero and the warning"
    assert rules.on_joy(FLY, [1, 1], 2000 * MS).e_stop, "the e-stop button as for the car"


# -- the drone: the parameter files -----------------------------------------------------------------------------------


def _file_params(name: str, node: str) -> dict:
    from lnn_control.bringup import node_params, read_params

    return node_params(read_params(ROOT / "config" / name), node)  # the file's /** and the node's own section


@pytest.mark.parametrize(("node", "cls"), [("teleop_keyboard_node", KeyTeleopConfig),
                                           ("joy_teleop_node", JoyTeleopConfig)])  # fmt: skip
def test_teleop_drone_yaml_gives_every_parameter_the_drone_reads(node, cls):
    specs = {spec["name"]: spec for spec in describe(cls)}
    drone = {name for name, spec in specs.items() if not spec["description"].startswith("car:")}
    params = _file_params("teleop_drone.yaml", node)
    assert set(params) == drone, f"extra {set(params) - drone}, missing {drone - set(params)}"
    for name, value in params.items():
        check_value(name, specs[name]["kind"], value, specs[name])
    assert params["action"] == "drone" and _file_params("teleop.yaml", node)["action"] == "car"
    config = cls(**{k: v for k, v in params.items()})
    assert (KeyTeleop(config) if cls is KeyTeleopConfig else JoyMapping(config)).schema is DRONE


def test_the_action_parameter_takes_only_the_known_actions():
    for cls in (KeyTeleopConfig, JoyTeleopConfig):
        (spec,) = [s for s in describe(cls) if s["name"] == "action"]
        assert spec["choices"] == ("car", "drone") and spec["default"] == "car"
        with pytest.raises(ValueError, match="'action' = 'plane' is not one of 'car', 'drone'"):
            check_value("action", "str", "plane", spec)
