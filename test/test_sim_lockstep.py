"""sim_node's lockstep and hold rules (lnn_control.sim.lockstep) in simulated time: no ROS, no clock, integer ns.

Sim time: 20 ms per tick from 2 s (an episode's step 0). Wall time: whatever the test says. lockstep_timeout and
command_timeout are 0.5 s unless a test says otherwise.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from lnn_control.command import CAR, DRONE, Command, car
from lnn_control.sim.base import SAFE_COMMAND
from lnn_control.sim.lockstep import (
    REPUBLISH_S,
    STARTUP_REPUBLISH_S,
    Decision,
    Held,
    LockstepConfig,
    LockstepRules,
    RecorderReport,
    recorder_report,
    unmatched_recorders,
    waiting_for,
)

MS = 1_000_000
S = 1_000_000_000
DT = 20 * MS
T0 = 2 * S  # sim time of step 0
CONFIG = LockstepConfig(lockstep=True, lockstep_timeout=0.5, command_timeout=0.5)
BOUNDS = {"velocity": (0.0, 30.0)}  # what the backend accepts (CarRacing: command_bounds)


def frame(k: int) -> int:
    """Sim time of tick ``k``."""
    return T0 + k * DT


def rules_with_controller(config: LockstepConfig = CONFIG, wall: int = 0) -> LockstepRules:
    """Frame 0 published at ``wall``, a controller seen at the same moment and its first answer pending."""
    rules = LockstepRules(config, CAR, BOUNDS)
    rules.on_frame(frame(0), wall)
    assert rules.on_check(wall, True) == Decision(republish=True)
    return rules


def answered(rules: LockstepRules, k: int, wall: int, command: Command | None = None) -> Decision:
    """Answer frame ``k`` (stamped) and publish frame ``k + 1`` at ``wall``, as the node does after the tick."""
    decision = rules.on_command(command or car(0.1, 5.0, frame(k)), stamped=True)
    assert decision.tick_with is not None, decision
    rules.on_frame(frame(k + 1), wall)
    return decision


def checks(rules: LockstepRules, start: int, stop: int, present: bool = True, every: int = 50 * MS) -> list:
    """(wall, decision) of every check from ``start`` up to ``stop`` (excluded) that decided something."""
    out = []
    for wall in range(start, stop, every):
        decision = rules.on_check(wall, present)
        if decision != Decision():
            out.append((wall, decision))
    return out


def test_rules_import_no_ros():
    code = "import sys, lnn_control.sim.lockstep; sys.exit(any(m.split('.')[0] == 'rclpy' for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


# -- answers ----------------------------------------------------------------------------------------------------------


def test_a_stamped_command_answers_the_pending_frame_with_its_stamp_or_later():
    rules = rules_with_controller()
    command = car(0.1, 5.0, frame(0))
    assert rules.on_command(command, stamped=True) == Decision(tick_with=command)
    assert rules.pending_ns is None and rules.answered == 1
    # the same command again (a repeat) finds nothing pending: held, no second tick
    assert rules.on_command(command, stamped=True) == Decision()
    rules.on_frame(frame(1), 10 * MS)
    later = car(0.2, 6.0, frame(3))  # stamped after the pending frame: answers it too
    assert rules.on_command(later, stamped=True).tick_with == later
    assert rules.answered == 2 and rules.late_commands == 0


def test_a_command_stamped_before_the_pending_frame_is_late_and_only_held():
    rules = rules_with_controller()
    answered(rules, 0, 10 * MS)
    old = car(-0.3, 7.0, frame(0))  # answers frame 0, which is gone: frame 1 is pending
    assert rules.on_command(old, stamped=True) == Decision(late=True)
    assert rules.pending_ns == frame(1) and rules.late_commands == 1 and rules.answered == 1
    assert rules.held_command() == Held(old)
    just_before = car(0.0, 1.0, frame(1) - 1)
    assert rules.on_command(just_before, stamped=True).late
    assert rules.late_commands == 2


def test_a_zero_stamp_answers_whatever_is_pending():
    rules = rules_with_controller()
    answered(rules, 0, 10 * MS)
    answered(rules, 1, 20 * MS)
    zero = car(0.0, 3.0, 0)
    assert rules.on_command(zero, stamped=True) == Decision(tick_with=zero)


def test_unstamped_commands_answer_whenever_a_frame_is_pending():
    rules = rules_with_controller()
    command = car(0.4, 2.0)
    assert rules.on_command(command, stamped=False).tick_with == command
    assert rules.on_command(command, stamped=False) == Decision(), "nothing pending: held only"
    rules.on_frame(frame(1), 10 * MS)
    # the flag decides, not the stamp: a command without a header never counts as late
    old = car(0.4, 2.0, frame(0))
    assert rules.on_command(old, stamped=False).tick_with == old
    assert rules.late_commands == 0 and rules.answered == 2


def test_bad_commands_are_sanitized_counted_and_still_answer():
    rules = rules_with_controller()
    nan = rules.on_command(car(math.nan, 10.0, frame(0)), stamped=True)
    assert nan.tick_with == car(0.0, 0.0, frame(0)) and "non-finite" in nan.problem
    rules.on_frame(frame(1), 10 * MS)
    wild = rules.on_command(car(7.0, 1e6, frame(1)), stamped=True)
    assert wild.tick_with == car(1.0, 30.0, frame(1)) and "clamped" in wild.problem
    assert rules.bad_commands == 2 and rules.answered == 2
    assert rules.held_command() == Held(car(1.0, 30.0, frame(1))), "the sanitized command is held"
    drone = rules.on_command(DRONE.of(frame(1), vx=1.0), stamped=True)
    assert "a drone command" in drone.problem and rules.held_command() == Held(car(0.0, 0.0, frame(1))), "stop"
    rules.on_frame(frame(2), 20 * MS)
    good = rules.on_command(car(0.1, 5.0, frame(2)), stamped=True)
    assert good.problem is None and rules.bad_commands == 3


# -- timeout and held command -----------------------------------------------------------------------------------------


def test_timeout_steps_with_the_held_command_after_lockstep_timeout_of_wall_time():
    rules = rules_with_controller()
    command = car(0.25, 8.0, frame(0))
    answered(rules, 0, 1_000 * MS, command)  # frame 1 published at wall 1 s
    for wall in (1_000 * MS, 1_250 * MS, 1_500 * MS - 1):
        assert rules.on_check(wall, True) == Decision(), wall
    decision = rules.on_check(1_500 * MS, True)
    assert decision == Decision(tick_with=command, timeout=True, unanswered_ns=frame(1))
    assert rules.timeouts == 1 and rules.pending_ns is None
    assert rules.on_check(1_550 * MS, True) == Decision(), "nothing pending until the node publishes the tick"


def test_timeout_without_any_command_steps_straight_at_zero_speed():
    rules = LockstepRules(LockstepConfig(lockstep_timeout=0.5))
    rules.on_frame(frame(0), 0)
    assert rules.on_check(0, True).republish
    decision = rules.on_check(500 * MS, True)
    assert decision.timeout and decision.tick_with == SAFE_COMMAND and not decision.stale


def test_held_command_turns_safe_after_command_timeout_of_sim_time():
    rules = rules_with_controller()
    command = car(0.5, 9.0, frame(0))
    answered(rules, 0, 10 * MS, command)  # held at the sim time of frame 0
    late = 25  # ticks of 20 ms: frame 25 is exactly 0.5 s of sim time after frame 0
    rules.on_frame(frame(late), 20 * MS)
    assert rules.held_command() == Held(command)
    rules.on_frame(frame(late) + 1, 30 * MS)
    assert rules.held_command() == Held(SAFE_COMMAND, stale=True)
    decision = rules.on_check(30 * MS + 500 * MS, True)
    assert decision.timeout and decision.tick_with == SAFE_COMMAND and decision.stale


def test_the_hold_counts_from_the_frame_a_command_arrived_at_not_from_its_stamp():
    rules = rules_with_controller()
    answered(rules, 0, 10 * MS)
    rules.on_frame(frame(30), 20 * MS)
    old = car(0.3, 4.0, frame(0))  # arrives late (frame 30 pending), stamped 0.6 s of sim time before it
    rules.on_command(old, stamped=True)
    assert rules.held_command() == Held(old)


def test_command_timeout_zero_holds_forever():
    rules = rules_with_controller(LockstepConfig(command_timeout=0.0))
    command = car(0.1, 3.0, frame(0))
    answered(rules, 0, 10 * MS, command)
    rules.on_frame(frame(100_000), 20 * MS)
    assert rules.held_command() == Held(command)


def test_a_new_episode_holds_nothing_from_the_last():
    rules = rules_with_controller()
    answered(rules, 0, 10 * MS, car(0.1, 3.0, frame(0)))
    rules.on_episode_end()
    assert rules.pending_ns is None
    assert rules.on_command(car(0.2, 4.0, frame(1)), stamped=True) == Decision(), "no episode: nothing answers"
    assert rules.on_check(5 * S, True) == Decision()
    rules.on_episode_start()
    rules.on_frame(frame(1) + 2 * S, 6 * S)
    assert rules.held_command() == Held(SAFE_COMMAND)


# -- waiting for a controller -----------------------------------------------------------------------------------------


def test_no_controller_no_timeout_and_a_republish_every_republish_s():
    rules = LockstepRules(CONFIG)
    rules.on_frame(frame(0), 0)
    decided = checks(rules, 0, 10 * S, present=False)
    period = int(REPUBLISH_S * S)
    assert [wall for wall, _ in decided] == list(range(period, 10 * S, period))
    assert all(d == Decision(republish=True, waiting=True) for _, d in decided)
    assert rules.timeouts == 0 and rules.pending_ns == frame(0)


def test_the_timeout_counts_from_the_controllers_appearance():
    rules = LockstepRules(LockstepConfig(lockstep_timeout=2.0))
    rules.on_frame(frame(0), 0)
    checks(rules, 0, 10 * S, present=False)
    assert rules.on_check(10 * S, True) == Decision(republish=True), "shown again at once for the new controller"
    for wall, decision in checks(rules, 10 * S + 50 * MS, 12 * S):
        assert decision == Decision(republish=True), wall  # start-up re-publications only
    assert rules.on_check(12 * S, True).timeout


def test_startup_republish_every_startup_republish_s_until_the_first_answer():
    rules = LockstepRules(LockstepConfig(lockstep_timeout=5.0))
    rules.on_frame(frame(0), 0)
    assert rules.on_check(0, True) == Decision(republish=True)
    decided = checks(rules, 10 * MS, 3 * S, every=10 * MS)
    period = int(STARTUP_REPUBLISH_S * S)
    assert [wall for wall, _ in decided] == list(range(period, 3 * S, period))
    # the first answer ends it: the next frame waits without being shown again
    answered(rules, 0, 3 * S)
    assert checks(rules, 3 * S, 8 * S - 10 * MS, every=10 * MS) == []
    assert rules.on_check(8 * S, True).timeout


def test_a_controller_that_leaves_and_comes_back_gets_the_startup_republish_again():
    rules = rules_with_controller(LockstepConfig(lockstep_timeout=5.0))
    answered(rules, 0, 500 * MS)
    assert checks(rules, 500 * MS, 1 * S) == []
    assert checks(rules, 1 * S, 1_500 * MS, present=False) == []  # gone, for less than REPUBLISH_S since the frame
    assert rules.on_check(1_500 * MS, True) == Decision(republish=True)
    assert [w for w, _ in checks(rules, 1_550 * MS, 2_500 * MS)] == [1_750 * MS, 2_000 * MS, 2_250 * MS]


def test_startup_republish_and_timeout_in_one_check():
    rules = rules_with_controller(LockstepConfig(lockstep_timeout=0.5))
    assert rules.on_check(250 * MS, True) == Decision(republish=True)
    decision = rules.on_check(500 * MS, True)
    assert decision.republish and decision.timeout and decision.tick_with == SAFE_COMMAND


# -- free-running -----------------------------------------------------------------------------------------------------


def test_free_running_ticks_with_the_held_command_and_nothing_is_pending():
    rules = LockstepRules(LockstepConfig(lockstep=False, command_timeout=0.5))
    rules.on_frame(frame(0), 0)
    assert rules.pending_ns is None
    assert rules.on_free_tick() == Decision(tick_with=SAFE_COMMAND), "no command yet: straight at zero speed"
    command = car(0.2, 4.0, frame(0))
    assert rules.on_command(command, stamped=True) == Decision(), "a command never steps a free-running sim"
    assert rules.on_check(10 * S, True) == Decision()
    rules.on_frame(frame(25), 10 * MS)
    assert rules.on_free_tick() == Decision(tick_with=command)
    rules.on_frame(frame(26), 20 * MS)
    assert rules.on_free_tick() == Decision(tick_with=SAFE_COMMAND, stale=True)
    assert rules.answered == 0 and rules.timeouts == 0


# -- waiting for the set's nodes (wait_for) ---------------------------------------------------------------------------


def test_before_the_nodes_are_there_commands_answer_nothing_and_nothing_times_out():
    rules = LockstepRules(LockstepConfig(lockstep_timeout=0.5, wait_at_start=True))
    rules.on_frame(frame(0), 0)
    zero = car(0.0, 0.0, frame(0))  # the mux's zero, up before everyone
    assert rules.on_command(zero, stamped=True) == Decision(early=True)
    decided = [rules.on_check(wall, True, ready=False) for wall in range(0, 5 * S, 50 * MS)]
    assert not any(d.timeout or d.tick_with for d in decided) and rules.pending_ns == frame(0)
    assert sum(d == Decision(republish=True, waiting=True) for d in decided) == 4  # every REPUBLISH_S
    # the nodes are there: frame 0 is shown at once, then a command answers it
    assert rules.on_check(5 * S, True, ready=True) == Decision(republish=True)
    command = car(0.2, 5.0, frame(0))
    assert rules.on_command(command, stamped=True) == Decision(tick_with=command)
    assert rules.early_commands == 1 and rules.answered == 1 and rules.timeouts == 0
    # once started, a run never waits again
    rules.on_frame(frame(1), 5 * S)
    assert rules.on_check(6 * S, True, ready=False).timeout


def test_a_free_running_sim_does_not_tick_before_the_nodes_are_there():
    rules = LockstepRules(LockstepConfig(lockstep=False, wait_at_start=True))
    rules.on_frame(frame(0), 0)
    assert rules.on_free_tick(ready=False) == Decision()
    assert rules.on_free_tick(ready=True).tick_with == SAFE_COMMAND
    assert rules.on_free_tick(ready=False).tick_with == SAFE_COMMAND


def test_waiting_for_needs_each_node_subscribed_and_its_subscriptions_matched():
    camera, pose = "/camera/image_raw", "/sim/pose"
    wanted = ["drive_node", "recorder_node"]
    assert waiting_for(wanted, {camera: [], pose: []}, {}) == [
        "drive_node (subscribes nothing yet)", "recorder_node (subscribes nothing yet)"]
    graph = {camera: ["/recorder_node", "/ros2_topic_echo"], pose: ["/recorder_node"]}
    assert waiting_for(wanted, graph, {camera: 2, pose: 1}) == ["drive_node (subscribes nothing yet)"]
    graph[camera].append("/drive_node")
    # seen in the graph, not matched yet: the echo's match does not stand in for a wanted node's
    assert waiting_for(wanted, graph, {camera: 1, pose: 1}) == [f"{camera} (1 of 2 matched)"]
    assert waiting_for(wanted, graph, {camera: 2, pose: 1}) == []
    # a namespace: a bare name matches in any, a full name only there
    assert waiting_for(["drive_node"], {camera: ["/car1/drive_node"]}, {camera: 1}) == []
    assert waiting_for(["/car2/drive_node"], {camera: ["/car1/drive_node"]}, {camera: 1}) == [
        "/car2/drive_node (subscribes nothing yet)"]


def test_a_recorder_is_waited_for_until_it_matched_every_publisher_the_graph_shows():
    cmd, label = "/lnn/cmd_vel", "/demonstrator_node/label"
    assert unmatched_recorders({"recorder_node": None}, {}) == [
        "recorder_node (no ~/status with matched_publishers yet)"]
    # drive_node's publisher is in the graph, the recorder has not matched it: its first commands would be lost
    report = RecorderReport({cmd: 0, label: 1}, {})
    assert unmatched_recorders({"recorder_node": report}, {cmd: 1, label: 1}) == [
        "recorder_node: /lnn/cmd_vel (0 of 1 publishers matched)"]
    report.matched[cmd] = 1
    assert unmatched_recorders({"recorder_node": report}, {cmd: 1, label: 1}) == []
    # a topic nobody publishes (a person's teleop not started) is not waited for; a report without counts (an
    # rclpy that cannot count) is taken as it is
    teleop = "/teleop/cmd_vel"
    assert unmatched_recorders({"recorder_node": RecorderReport({teleop: 0}, {})}, {teleop: 0}) == []
    assert unmatched_recorders({"recorder_node": RecorderReport({}, {})}, {cmd: 1}) == []


def test_a_recorder_is_waited_for_until_it_received_what_must_be_recorded_from_the_first_frame():
    """Nobody's graph shows drive_node's publisher yet: nothing to match, so only a message received proves it."""
    cmd, label = "/lnn/cmd_vel", "/demonstrator_node/label"
    report = RecorderReport({cmd: 0, label: 1}, {cmd: 0, label: 2})
    assert unmatched_recorders({"recorder_node": report}, {cmd: 0, label: 1}) == []
    assert unmatched_recorders({"recorder_node": report}, {cmd: 0, label: 1}, [cmd, label]) == [
        "recorder_node: /lnn/cmd_vel (nothing received yet)"]
    report.received[cmd] = 1
    assert unmatched_recorders({"recorder_node": report}, {cmd: 0, label: 1}, [cmd, label]) == []
    # a topic the recorder does not record at all is never received: waited for, and named
    assert unmatched_recorders({"recorder_node": report}, {}, ["/odom"]) == [
        "recorder_node: /odom (nothing received yet)"]


def test_a_recorder_status_gives_its_matches_and_receipts_and_anything_else_is_a_clear_error():
    text = '{"matched_publishers": {"/lnn/cmd_vel": 1}, "topics": {"/lnn/cmd_vel": {"received": 3, "queue_full": 0}}}'
    assert recorder_report(text) == RecorderReport({"/lnn/cmd_vel": 1}, {"/lnn/cmd_vel": 3})
    assert recorder_report('{"topics": {}}') == RecorderReport({}, {})  # a recorder whose rclpy cannot count
    for bad in ("not json", "[1, 2]", '{"matched_publishers": [1]}', '{"matched_publishers": {"/a": "x"}}',
                '{"topics": {"/a": {}}}', '{"topics": {"/a": {"received": "many"}}}'):
        with pytest.raises(ValueError, match="not a recorder status with matched_publishers and topics"):
            recorder_report(bad)


# -- companions (lockstep_with) ---------------------------------------------------------------------------------------

LABEL = "/demonstrator_node/label"


def test_a_frame_steps_once_its_answer_and_every_companion_are_in_in_either_order():
    rules = rules_with_controller(LockstepConfig(companions=(LABEL,)))
    first, second = car(0.1, 5.0, frame(0)), car(0.3, 9.0, frame(0))
    assert rules.on_command(first, stamped=True) == Decision(), "the label is not in yet"
    assert rules.on_command(second, stamped=True) == Decision()
    assert rules.on_companion(LABEL, frame(0), stamped=True) == Decision(tick_with=first), "the first answer steps"
    rules.on_frame(frame(1), 10 * MS)
    assert rules.on_companion(LABEL, frame(0), stamped=True) == Decision(), "a label of the last frame counts nothing"
    assert rules.on_companion(LABEL, frame(1), stamped=True) == Decision()
    assert rules.on_command(second, stamped=True).late  # stamped before frame 1
    later = car(0.0, 1.0, frame(1))
    assert rules.on_command(later, stamped=True) == Decision(tick_with=later)
    assert rules.answered == 2 and rules.timeouts == 0


def test_a_silent_companion_times_out_with_the_answer_and_is_named():
    rules = rules_with_controller(LockstepConfig(lockstep_timeout=0.5, companions=(LABEL, "/other")))
    command = car(0.1, 5.0, frame(0))
    rules.on_companion("/other", 0, stamped=False)  # unstamped: counts for the pending frame
    assert rules.on_command(command, stamped=True) == Decision()
    decision = rules.on_check(500 * MS, True)
    assert decision.timeout and decision.tick_with == command and decision.missing == (LABEL,)
    # nothing at all: the held command, and both named
    rules.on_frame(frame(1), 500 * MS)
    decision = rules.on_check(1 * S, True)
    assert decision.timeout and decision.tick_with == command and decision.missing == (LABEL, "/other")


def test_the_startup_republish_runs_until_a_frame_is_complete():
    rules = rules_with_controller(LockstepConfig(lockstep_timeout=5.0, companions=(LABEL,)))
    rules.on_command(car(0.1, 5.0, frame(0)), stamped=True)
    assert rules.on_check(250 * MS, True) == Decision(republish=True), "answered, not labelled: shown again"
    assert rules.on_companion(LABEL, frame(0), stamped=True).tick_with is not None
    rules.on_frame(frame(1), 300 * MS)
    assert checks(rules, 300 * MS, 2 * S) == []
