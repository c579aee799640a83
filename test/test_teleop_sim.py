"""A person drives the simulator from the keyboard: ``lnn-control up teleop-sim --local`` on a pseudo-terminal.

The set runs as a person starts it (one process, its stdin a terminal that is also its controlling terminal, so
Ctrl-C is SIGINT); this test types into the terminal as a person's keyboard would (a press, then auto-repeat), waits
on what the nodes acknowledge (the keyboard's status line, the recorder's ``~/status``, the sim's truth), stops the
set with Ctrl-C and reads the bag: every frame recorded once, the commands monotonic on the frames' clock (sim time,
20 ms steps), every frame from the person's first command on paired with the command in force, the mux never
leaving the person while the person drives. No wall-clock rate is asserted.
"""

from __future__ import annotations

import argparse
import bisect
import fcntl
import json
import os
import pty
import termios
import time

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("gymnasium")
pytest.importorskip("Box2D")

from ros_harness import NodeProcess, RosSession, free_domain_id  # noqa: E402
from std_msgs.msg import Float64MultiArray, String  # noqa: E402

from lnn_control import bringup  # noqa: E402
from lnn_control.cli import up as up_verb  # noqa: E402
from lnn_control.data.bags import Bag  # noqa: E402
from lnn_control.data.inspect import inspect_bag  # noqa: E402
from lnn_control.data.pairing import PairingConfig, pair_frames  # noqa: E402
from lnn_control.nodes.simulator import truth_values  # noqa: E402
from lnn_control.paths import config_file  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.sim]

DOMAIN = free_domain_id()
DT_NS = 20_000_000
CAMERA, TELEOP = "/camera/image_raw", "/teleop/cmd_vel"
SPEED = 15.0  # three presses of w at config/sim.yaml's speed_step
LEFT, RIGHT = b"a", b"\x1b[C"  # a letter and an arrow key


def plan() -> bringup.Plan:
    parser = argparse.ArgumentParser()
    up_verb.configure(parser)
    return up_verb.plan_from_args(parser.parse_args(["teleop-sim", "--local"]))


def test_the_set_runs_the_sim_in_real_time_and_records_only_what_a_person_drive_has():
    from lnn_control.mux_rules import TELEOP, default_input
    from lnn_control.nodes.recorder import RecorderConfig
    from lnn_control.nodes.simulator import SimNodeConfig
    from lnn_control.nodes.teleop_keyboard import KeyTeleopConfig
    from lnn_control.ros.node_util import describe

    p = plan()
    sim, teleop, mux, rec = (
        bringup.node_params(p.params, n) for n in ("sim_node", "teleop_keyboard_node", bringup.MUX, "recorder_node")
    )
    assert sim["lockstep"] is False and sim["rate"] * sim.get("steps_per_frame", 1) * DT_NS / 1e9 == 1.0
    assert p.params[bringup.WILDCARD]["use_sim_time"] is True
    assert sim["stamped"] and teleop["stamped"] and mux["stamped"], "TwistStamped throughout, on sim time"
    assert teleop["steering_hold"] is True
    # the teleop repeats well inside the mux's teleop timeout (sim time, which runs as fast as wall time here)
    assert 1.0 / teleop["rate"] * 5 <= mux.get("input.teleop.timeout", default_input(TELEOP).timeout)
    assert rec["autostart"] is True and not any(e.startswith("demonstrator_node/label ") for e in rec["topics"])
    assert all(len(entry.split()) >= 2 for entry in rec["topics"]), "TOPIC TYPE [QOS] [RATE] entries"
    declared = {"sim_node": SimNodeConfig, "teleop_keyboard_node": KeyTeleopConfig, "recorder_node": RecorderConfig}
    for node, values in bringup.read_params(config_file("teleop_sim.yaml")).items():
        assert set(values) <= {s["name"] for s in describe(declared[node])}, f"teleop_sim.yaml: {node}"


@pytest.fixture(scope="module")
def ros():
    with RosSession(DOMAIN) as session:
        yield session


def _controlling_terminal(slave: int):
    def become_session_leader() -> None:  # as in a real terminal, so Ctrl-C becomes SIGINT
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    return become_session_leader


def _received(status: String, topic: str) -> int:
    return int(json.loads(status.data).get("topics", {}).get(topic, {}).get("received", 0))


def _hold(master: int, key: bytes, initial_delay: float = 0.3, repeats: int = 15, interval: float = 0.03) -> None:
    """Type ``key`` as a terminal does while it is held down: once, then (after a delay) auto-repeat."""
    os.write(master, key)
    time.sleep(initial_delay)
    for _ in range(repeats):
        os.write(master, key)
        time.sleep(interval)


def _drive(up: NodeProcess, master: int, ros: RosSession) -> None:
    status = ros.collect("recorder_node/status", String)
    truth = ros.collect("sim/truth", Float64MultiArray)
    up.wait_for_output(r"\[teleop_keyboard_node\]: ready", timeout=90)  # the terminal is in cbreak mode
    status.wait_for(lambda m: _received(m, CAMERA) > 0, timeout=60)  # the recorder writes the sim's frames
    os.write(master, b"www")
    up.wait_for_output(rf"velocity \+{SPEED:.2f} m/s, steering \+0\.00")
    truth.wait_for(lambda m: truth_values(m)["speed"] > 3.0, timeout=60)  # the person's command moves the car
    for key, full in ((LEFT, r"\+1\.00"), (RIGHT, r"-1\.00")):
        mark = len(up.output())
        _hold(master, key)
        up.wait_for_output(rf"steering {full}", start=mark)  # held: the steering ramped to full lock
        up.wait_for_output(r"steering \+0\.00", start=mark)  # let go: it centred by itself
    centred = _received(status.last(), TELEOP)
    status.wait_for(lambda m: _received(m, TELEOP) >= centred + 10, timeout=60)  # the repeats reached the bag
    os.write(master, b"\x03")  # Ctrl-C: SIGINT to the set
    assert up.wait(60) == 0, up.tail()


@pytest.mark.parametrize("layout", [[], ["--processes"]], ids=["one-process", "processes"])
def test_a_person_drives_the_sim_from_the_keyboard_and_the_bag_trains(ros, tmp_path, layout):
    bags = tmp_path / "bags"
    master, slave = pty.openpty()
    args = ["up", "teleop-sim", "--local", *layout, "--set", f"recorder_node.output_dir={bags}"]
    up = NodeProcess("lnn_control.cli", args=args, domain_id=DOMAIN, log_dir=tmp_path, stdin=slave,
                     preexec_fn=_controlling_terminal(slave))  # fmt: skip
    try:
        with up:
            _drive(up, master, ros)
    finally:
        os.close(master)
        os.close(slave)
    out = up.output()
    assert "Traceback" not in out, out
    assert "teleop -> none" not in out, "the mux left the person while the person drove"
    (bag,) = [p.parent for p in bags.rglob("metadata.yaml")]
    _check_bag(bag, every_frame_paired=not layout)


def _check_bag(bag, *, every_frame_paired: bool) -> None:
    """The bag inspects and trains as it is. ``every_frame_paired``: in one process the teleop's repeats and the
    sim's ticks share one executor, so no frame can come without a command in force; with one process per node a
    descheduled teleop can leave a gap longer than the tolerance, whose frames pairing must then skip."""
    info = inspect_bag(bag)
    (pairs,) = [p for p in info["pairs"] if p["image_topic"] == CAMERA and p["command_topic"] == TELEOP]
    assert "error" not in pairs, pairs  # e.g. non-monotonic stamps
    with Bag(bag) as b:
        frames = [r.header_ns for r in b.records([CAMERA])]
        commands = [r.msg for r in b.records([TELEOP])]
        stamps = [r.header_ns for r in b.records([TELEOP])]
        sources = [r.msg.data for r in b.records(["/mux/active_source"])]
        episodes = [json.loads(r.msg.data)["event"] for r in b.records(["/sim/episode"])]
    assert episodes == ["start"], "one episode (a sim-time gap at an episode start leaves frames without a command)"

    # every frame once, on the sim's 20 ms grid
    assert len(frames) == len(set(frames)) == pairs["frames"] and pairs["skipped_duplicate_stamp"] == 0
    assert frames == sorted(frames) and all(f % DT_NS == 0 for f in frames)
    # the commands: monotonic, stamped with sim time (the /clock the teleop heard), within the frames' span (give or
    # take a last frame that was still in flight when the set stopped)
    assert stamps == sorted(stamps), "commands monotonic on the frames' clock"
    assert all(s % DT_NS == 0 and frames[0] <= s <= frames[-1] + 5 * DT_NS for s in stamps), (stamps[:3], frames[:3])
    # a frame is paired exactly when a command no older than the tolerance is in force at its stamp
    tolerance_ns = round(PairingConfig().tolerance_s * 1e9)
    in_force = [f for f in frames if (j := bisect.bisect_right(stamps, f) - 1) >= 0 and f - stamps[j] <= tolerance_ns]
    assert pairs["paired"] == len(in_force) > 50 and pairs["skipped_no_command"] == len(frames) - len(in_force), pairs
    if every_frame_paired:
        assert len(in_force) == sum(f >= stamps[0] for f in frames), "a frame after the first command had none"
    paired = 0
    for pair in pair_frames(bag, PairingConfig(image_topic=CAMERA, command_topic=TELEOP), decode=False):
        j = bisect.bisect_right(stamps, pair.stamp_ns) - 1
        assert pair.command.stamp_ns == stamps[j] <= pair.stamp_ns
        assert pair.command.velocity == pytest.approx(commands[j].twist.linear.x)
        assert pair.command.steering == pytest.approx(commands[j].twist.angular.z)
        paired += 1
    assert paired == pairs["paired"]

    # what the person did: full lock left and right while the keys were held, centred after, at the set speed
    steering = [c.twist.angular.z for c in commands]
    assert max(steering) == pytest.approx(1.0) and min(steering) == pytest.approx(-1.0)
    assert (commands[-1].twist.linear.x, steering[-1]) == (pytest.approx(SPEED), 0.0)
    # the mux held the person's source from the first command to the end
    assert "teleop" in sources and set(sources[sources.index("teleop") :]) == {"teleop"}, sources
