"""Teleoperation: the keyboard's key logic and the Joy mapping without ROS, then both nodes over real DDS
(the keyboard node on a pseudo-terminal, the joystick node fed by a real sensor_msgs/Joy publisher)."""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import subprocess
import sys
import termios
import time

import pytest

pytest.importorskip("rclpy")

from geometry_msgs.msg import Twist, TwistStamped  # noqa: E402
from ros_harness import NodeProcess, RosSession, free_domain_id  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Joy  # noqa: E402
from std_msgs.msg import Bool  # noqa: E402

from lnn_control.nodes.joy_teleop import JoyMapping, JoyMappingError, JoyTeleopConfig  # noqa: E402
from lnn_control.nodes.teleop_keyboard import KeyTeleop, KeyTeleopConfig  # noqa: E402
from lnn_control.ros.msgs import twist_to_command  # noqa: E402
from lnn_control.ros.stamps import ns_to_stamp, stamp_to_ns  # noqa: E402

DOMAIN = free_domain_id()


# -- keyboard logic ---------------------------------------------------------------------------------------------------


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


# -- joystick mapping -------------------------------------------------------------------------------------------------


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


# -- nodes over DDS ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ros():
    with RosSession(DOMAIN) as session:
        yield session


@pytest.mark.ros
def test_keyboard_node_refuses_without_a_terminal():
    done = subprocess.run(
        [sys.executable, "-m", "lnn_control.nodes.teleop_keyboard"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "stdin is not a TTY" in done.stderr and "ros2 run lnn_control teleop_keyboard_node" in done.stderr


@pytest.mark.ros
def test_keyboard_node_on_a_pseudo_terminal(ros, tmp_path):
    master, slave = pty.openpty()

    def controlling_terminal() -> None:  # as in a real terminal, so Ctrl-C becomes SIGINT
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    try:
        with NodeProcess("lnn_control.nodes.teleop_keyboard", domain_id=DOMAIN, log_dir=tmp_path, stdin=slave,
                         params={"speed_step": 0.25, "steering_step": 0.2, "rate": 20.0},
                         preexec_fn=controlling_terminal) as proc:  # fmt: skip
            out = ros.collect("teleop/cmd_vel", Twist)
            proc.wait_for_output("steer left")  # the help text: the terminal is set up
            ros.wait_for_publishers("teleop/cmd_vel")
            time.sleep(0.3)
            assert len(out) == 0, "nothing is published before a key is pressed"
            os.write(master, b"ww\x1b[D")
            first = out.wait_for(lambda m: abs(m.linear.x - 0.5) < 1e-9 and abs(m.angular.z - 0.2) < 1e-9)
            assert twist_to_command(first).steering == pytest.approx(0.2)
            t0 = time.monotonic()
            time.sleep(0.5)
            assert len(out.since(t0)) >= 7, "the command repeats at about 20 Hz while driving"
            os.write(master, b"r")
            time.sleep(0.3)
            t1 = time.monotonic()
            time.sleep(0.4)
            assert out.since(t1) == [], "released: nothing more is published"
            os.write(master, b"\x03")  # Ctrl-C in cbreak mode: SIGINT
            assert proc.wait(15) == 0, proc.tail()
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.ros
def test_keyboard_node_on_sim_time_stamps_with_the_clock_it_heard(ros, tmp_path):
    master, slave = pty.openpty()
    clock = ros.publisher("/clock", Clock)
    sim = {"t": 7_500_000_000}
    params = {"use_sim_time": True, "stamped": True, "speed_step": 1.0, "rate": 20.0}
    try:
        with NodeProcess("lnn_control.nodes.teleop_keyboard", domain_id=DOMAIN, log_dir=tmp_path, stdin=slave,
                         params=params, remaps={"teleop/cmd_vel": "stamped/cmd_vel"}) as proc:  # fmt: skip
            out = ros.collect("stamped/cmd_vel", TwistStamped)  # teleop/cmd_vel is Twist in this process
            proc.wait_for_output(r"ready: .*sim time")
            os.write(master, b"w")
            proc.wait_for_output("no /clock arrived yet: nothing is published")  # it read the key and held back
            assert len(out) == 0
            ticking = ros.repeat(clock, lambda: Clock(clock=ns_to_stamp(sim["t"])), 50.0)
            first = out.wait_for(lambda m: m.twist.linear.x == 1.0, timeout=15)
            assert stamp_to_ns(first.header.stamp) == 7_500_000_000, "stamped with the sim time it heard"
            sim["t"] = 9_000_000_000
            out.wait_for(lambda m: stamp_to_ns(m.header.stamp) == 9_000_000_000, timeout=15)
            stamps = [stamp_to_ns(m.header.stamp) for m in out.messages]
            assert stamps == sorted(stamps) and set(stamps) <= {7_500_000_000, 9_000_000_000}
            second = ros.publisher("/clock", Clock)  # another simulator on the domain
            proc.wait_for_output(r"2 publishers on /clock .*another simulator", timeout=15)
            assert proc.stop(signal.SIGINT) == 0, proc.tail()
            ticking.stop()
            ros.node.destroy_publisher(second)
            ros.node.destroy_publisher(clock)
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.ros
def test_joy_node_with_a_real_joy_publisher(ros, tmp_path):
    params = {"axis_velocity": 1, "axis_steering": 3, "scale_velocity": 2.0, "enable_button": 5, "e_stop_button": 0,
              "rate": 20.0, "joy_timeout": 0.5}  # fmt: skip
    with NodeProcess("lnn_control.nodes.joy_teleop", domain_id=DOMAIN, log_dir=tmp_path, params=params) as proc:
        proc.wait_for_output("ready")
        joy = ros.publisher("joy", Joy)
        out = ros.collect("teleop/cmd_vel", Twist)
        e_stop = ros.collect("e_stop", Bool)
        ros.wait_for_subscribers(joy)
        ros.wait_for_publishers("teleop/cmd_vel")

        def joy_msg(axes, buttons):
            msg = Joy()
            msg.header.stamp = ros.node.get_clock().now().to_msg()
            msg.axes = [float(a) for a in axes]
            msg.buttons = list(buttons)
            return msg

        released = [0] * 8
        held = [0, 0, 0, 0, 0, 1, 0, 0]
        joy.publish(joy_msg([0.0, 0.5, 0.0, 0.3], released))
        time.sleep(0.3)
        assert len(out) == 0, "no command without the deadman"
        repeater = ros.repeat(joy, lambda: joy_msg([0.0, 0.5, 0.0, 0.3], held), 10.0)
        try:
            msg = out.wait_for(lambda m: m.linear.x > 0)
            assert msg.linear.x == pytest.approx(1.0) and msg.angular.z == pytest.approx(0.3)
            t0 = time.monotonic()
            time.sleep(0.6)
            assert len(out.since(t0)) >= 9, "repeated at 20 Hz although Joy comes at 10 Hz"
        finally:
            repeater.stop()
        t1 = time.monotonic()
        joy.publish(joy_msg([0.0, 0.5, 0.0, 0.3], released))
        stop = out.wait_for(lambda m: m.linear.x == 0.0, after=t1)
        assert stop.angular.z == 0.0
        time.sleep(0.4)
        # a held command the 20 Hz timer sent before the release reached the node may arrive after t1
        after = [(m.linear.x, m.angular.z) for m in out.since(t1)]
        assert after[-1] == (0.0, 0.0) and after.count((0.0, 0.0)) == 1, "one zero on release, then silence"
        assert all(m == pytest.approx((1.0, 0.3)) for m in after[:-1]), after
        joy.publish(joy_msg([0.0] * 4, [1, 0, 0, 0, 0, 0, 0, 0]))
        assert e_stop.wait_for(lambda m: m.data is True).data
        joy.publish(joy_msg([0.0], held))  # axes missing: a warning naming them, no command
        proc.wait_for_output("axis_velocity 1 does not exist: the Joy message has 1 axes")
        assert proc.alive
        assert proc.stop(signal.SIGINT) == 0
