"""Both teleop nodes over real DDS: the keyboard node on a pseudo-terminal, the joystick node fed by a real
sensor_msgs/Joy publisher; each driving a car (the default) and flying a drone (``action: drone``).

These tests check the wiring: keys and Joy messages in, the right commands out, in the right order, and the logs. They
wait only on what the nodes acknowledge (printed status lines, log lines) and on message contents and order, never
on a wall-clock window: the timing rules (the repeat rate, silence before a key and after a release, the joy
timeout, the e-stop edge) are proven in simulated time in test_teleop_rules.py.
"""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import subprocess
import sys
import termios

import pytest

pytest.importorskip("rclpy")

from geometry_msgs.msg import Twist, TwistStamped  # noqa: E402
from ros_harness import NodeProcess, RosSession, free_domain_id, publish_until  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Joy  # noqa: E402
from std_msgs.msg import Bool  # noqa: E402

from lnn_control.ros.stamps import ns_to_stamp, stamp_to_ns  # noqa: E402

DOMAIN = free_domain_id()


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


def _pair(msg: Twist) -> tuple[float, float]:
    """(velocity, steering) of a command, rounded as the nodes round their steps."""
    return round(msg.linear.x, 9), round(msg.angular.z, 9)


def _wait_matched(ros: RosSession, topic: str) -> None:
    """Wait until the latest subscription of this session on ``topic`` is matched with a publisher."""
    name = ros.node.resolve_topic_name(topic)
    subscription = [s for s in ros.node.subscriptions if s.topic_name == name][-1]
    ros.wait_for(lambda: subscription.get_publisher_count() >= 1, 15, f"a publisher matched on {name}")


@pytest.mark.ros
def test_keyboard_node_on_a_pseudo_terminal(ros, tmp_path):
    """Keys typed into the terminal reach teleop/cmd_vel, repeat, and a release hands back; Ctrl-C exits 0."""
    master, slave = pty.openpty()

    def controlling_terminal() -> None:  # as in a real terminal, so Ctrl-C becomes SIGINT
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    driving, fresh = (0.5, 0.2), (0.25, 0.0)
    try:
        with NodeProcess("lnn_control.nodes.teleop_keyboard", domain_id=DOMAIN, log_dir=tmp_path, stdin=slave,
                         params={"speed_step": 0.25, "steering_step": 0.2, "rate": 20.0, "stamped": False},
                         preexec_fn=controlling_terminal) as proc:  # fmt: skip
            out = ros.collect("teleop/cmd_vel", Twist)
            proc.wait_for_output("steer left")  # the help text: the terminal is set up
            ros.wait_for_publishers("teleop/cmd_vel")
            _wait_matched(ros, "teleop/cmd_vel")
            os.write(master, b"ww\x1b[D")
            proc.wait_for_output(r"velocity \+0\.50 m/s, steering \+0\.20")  # the node read all three keys
            out.wait_for(lambda m: _pair(m) == driving)
            first = out.index(lambda m: _pair(m) == driving)
            before = [_pair(m) for m in out.messages[:first]]
            # before a key the command is zero: a message sent before the keys would be a zero
            assert set(before) <= {(0.25, 0.0), (0.5, 0.0)}, f"only the keys' own commands come first: {before}"
            # no key typed since: every further message is a repeat of the same command
            repeats = [_pair(m) for m in out.wait_for_count(first + 6)[first:]]
            assert repeats == [driving] * len(repeats), repeats

            mark = len(out)
            os.write(master, b"r")
            released = proc.wait_for_output("released: the policy may drive")  # the node applied the release
            os.write(master, b"w")
            proc.wait_for_output(r"velocity \+0\.25 m/s, steering \+0\.00", start=released.end())  # from zero
            out.wait_for(lambda m: _pair(m) == fresh, start=mark)
            j = out.index(lambda m: _pair(m) == fresh, start=mark)
            # the release publishes no zero (the mux hands back by its timeout); all that may come between the
            # release key and the next key's command are repeats the node sent before it read the release
            between = [_pair(m) for m in out.messages[mark:j]]
            assert set(between) <= {driving}, f"between the release and the next key: {between}"
            after = [_pair(m) for m in out.wait_for_count(j + 3)[j:]]
            assert after == [fresh] * len(after), f"after the next key only its command: {after}"
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
    """Joy messages reach teleop/cmd_vel only with the deadman held; repeats without Joy, one zero on the timeout
    and on release, the e-stop on its button's press, a warning for a missing axis; SIGINT exits 0."""
    params = {"axis_velocity": 1, "axis_steering": 3, "scale_velocity": 2.0, "enable_button": 5, "e_stop_button": 0,
              "rate": 20.0, "joy_timeout": 1.0, "stamped": False, "autonomy_button": 6}  # fmt: skip
    axes = [0.0, 0.5, 0.0, 0.25]  # exact in float32, as Joy axes are
    released, held, e_stop_pressed = [0] * 8, [0, 0, 0, 0, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]
    driving, zero = (1.0, 0.25), (0.0, 0.0)
    with NodeProcess("lnn_control.nodes.joy_teleop", domain_id=DOMAIN, log_dir=tmp_path, params=params) as proc:
        proc.wait_for_output("ready")
        joy = ros.publisher("joy", Joy)
        out = ros.collect("teleop/cmd_vel", Twist)
        e_stop = ros.collect("e_stop", Bool)
        autonomy = ros.collect("autonomy/enable", Bool)
        ros.wait_for_subscribers(joy)
        ros.wait_for_publishers("teleop/cmd_vel")
        _wait_matched(ros, "teleop/cmd_vel")
        held_sent = []

        def joy_msg(joy_axes, buttons):
            msg = Joy()
            msg.header.stamp = ros.node.get_clock().now().to_msg()
            msg.axes = [float(a) for a in joy_axes]
            msg.buttons = list(buttons)
            return msg

        def held_joy():
            held_sent.append(1)
            return joy_msg(axes, held)

        # no deadman, then the deadman until its command comes; then no more Joy: repeats, and the timeout's stop
        joy.publish(joy_msg(axes, released))
        publish_until(joy, held_joy, out, lambda m: _pair(m) == driving)
        proc.wait_for_output(r"no Joy message for 1\.0 s: stopped repeating")
        out.wait_for(lambda m: _pair(m) == zero)
        got = [_pair(m) for m in out.messages]
        k = got.index(zero)
        assert got[:k] == [driving] * k, f"the first message answers the deadman, none the Joy without it: {got}"
        assert k >= len(held_sent) + 2, f"{k} commands for {len(held_sent)} Joy messages: repeated without Joy"
        assert got[k:] == [zero], f"one zero on the timeout: {got[k:]}"

        # the deadman again, then let go: one zero
        mark = len(out)
        publish_until(joy, held_joy, out, lambda m: _pair(m) == driving)
        joy.publish(joy_msg(axes, released))
        out.wait_for(lambda m: _pair(m) == zero, start=mark)

        # the e-stop button held over three messages, let go, pressed again: two presses, two requests
        for buttons in (e_stop_pressed, e_stop_pressed, e_stop_pressed, released, e_stop_pressed):
            joy.publish(joy_msg([0.0] * 4, buttons))
        request = "emergency stop requested by the gamepad"
        proc.wait_until(lambda: proc.output().count(request) >= 2, what="the second e-stop request")
        assert proc.output().count(request) == 2, "the press asks for the e-stop, holding the button does not"
        assert [m.data for m in e_stop.wait_for_count(2)] == [True, True]

        # the autonomy button: true while held (on each Joy message and repeated), one false when let go
        autonomy_held = [0, 0, 0, 0, 0, 0, 1, 0]
        publish_until(joy, lambda: joy_msg([0.0] * 4, autonomy_held), autonomy, lambda m: m.data is True)
        at = len(autonomy)
        autonomy.wait_for_count(at + 3)  # repeated at rate without more Joy, until joy_timeout
        joy.publish(joy_msg([0.0] * 4, released))
        autonomy.wait_for(lambda m: m.data is False, start=at)
        assert all(m.data for m in autonomy.messages[:autonomy.index(lambda m: m.data is False)])

        joy.publish(joy_msg([0.0], held))  # axes missing: a warning naming them, no command
        proc.wait_for_output("axis_velocity 1 does not exist: the Joy message has 1 axes")
        assert proc.alive

        # the deadman once more: its command is the next message after the release's zero, nothing in between
        publish_until(joy, held_joy, out, lambda m: _pair(m) == driving)
        got = [_pair(m) for m in out.messages[mark:]]
        z = got.index(zero)
        assert set(got[:z]) == {driving} and got[z + 1] == driving, f"one zero on release, then nothing: {got}"
        assert proc.stop(signal.SIGINT) == 0, proc.tail()


@pytest.mark.ros
def test_joy_node_flies_a_drone_in_mode_2(ros, tmp_path):
    """action: drone: the sticks of a joy_node Joy (Xbox-style pad, mode 2) become a TwistStamped with body FLU
    velocities and the yaw rate in their slots, +vy left, +vz up, +yaw counter-clockwise; the deadman let go, one
    zero. Own topics: teleop/cmd_vel is Twist in this test process."""
    params = {"action": "drone", "stamped": True, "frame_id": "drone_base", "enable_button": 5, "scale_vx": 2.0,
              "scale_vz": 0.5, "scale_yaw_rate": 1.0, "rate": 20.0, "joy_timeout": 5.0}  # fmt: skip
    remaps = {"joy": "drone/joy", "teleop/cmd_vel": "drone/cmd_vel"}
    # joy_node's axes: 0/1 left stick x/y, 2 LT, 3/4 right stick x/y, 5 RT (left and up positive); exact in float32
    axes = [0.5, -0.75, 1.0, 0.25, 0.5, 1.0]  # yaw left, descend, trigger released, left, forward
    released, held = [0] * 8, [0, 0, 0, 0, 0, 1, 0, 0]
    flying = {"linear.x": 1.0, "linear.y": 0.25, "linear.z": -0.375, "angular.x": 0.0, "angular.y": 0.0,
              "angular.z": 0.5}  # fmt: skip
    zero = dict.fromkeys(flying, 0.0)

    def slots(msg: TwistStamped) -> dict[str, float]:
        twist = msg.twist
        return {f"{group}.{axis}": getattr(getattr(twist, group), axis) for group in ("linear", "angular")
                for axis in "xyz"}  # fmt: skip

    def joy_msg(buttons: list[int]) -> Joy:
        msg = Joy()
        msg.header.stamp = ros.node.get_clock().now().to_msg()
        msg.axes, msg.buttons = list(axes), list(buttons)
        return msg

    with NodeProcess("lnn_control.nodes.joy_teleop", domain_id=DOMAIN, log_dir=tmp_path, params=params,
                     remaps=remaps) as proc:  # fmt: skip
        proc.wait_for_output(r"ready: .*drone: vx axis 4 x 2 m/s, vy axis 3 x 1 m/s, vz axis 1 x 0\.5 m/s, "
                             r"yaw_rate axis 0 x 1 rad/s")  # fmt: skip
        joy = ros.publisher("drone/joy", Joy)
        out = ros.collect("drone/cmd_vel", TwistStamped)
        ros.wait_for_subscribers(joy)
        _wait_matched(ros, "drone/cmd_vel")
        joy.publish(joy_msg(released))
        first = publish_until(joy, lambda: joy_msg(held), out, lambda m: slots(m) == flying)
        assert first.header.frame_id == "drone_base" and stamp_to_ns(first.header.stamp) > 0
        assert all(slots(m) == flying for m in out.messages), "nothing for the Joy without the deadman"
        mark = len(out)
        joy.publish(joy_msg(released))
        out.wait_for(lambda m: slots(m) == zero, start=mark)
        got = [slots(m) for m in out.messages[mark:]]
        z = got.index(zero)
        assert got[:z] == [flying] * z and got[z:] == [zero], f"repeats until the release, then one zero: {got}"
        assert proc.stop(signal.SIGINT) == 0, proc.tail()


@pytest.mark.ros
def test_keyboard_node_flies_a_drone(ros, tmp_path):
    """action: drone on a pseudo-terminal: a (left), arrow up (climb) and q (yaw left) reach the Twist's linear.y,
    linear.z and angular.z with their REP 103 signs; space hovers (zero, still published); Ctrl-C exits 0."""
    master, slave = pty.openpty()

    def controlling_terminal() -> None:
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    def flu(msg: Twist) -> tuple[float, ...]:
        return tuple(round(v, 9) for v in (msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.z))

    params = {"action": "drone", "speed_step": 0.25, "climb_step": 0.5, "yaw_step": 0.5, "rate": 20.0, "stamped": False}
    try:
        with NodeProcess("lnn_control.nodes.teleop_keyboard", domain_id=DOMAIN, log_dir=tmp_path, stdin=slave,
                         params=params, remaps={"teleop/cmd_vel": "drone/keys"},
                         preexec_fn=controlling_terminal) as proc:  # fmt: skip
            out = ros.collect("drone/keys", Twist)
            proc.wait_for_output("yaw left / right")  # the drone's key table: the terminal is set up
            _wait_matched(ros, "drone/keys")
            os.write(master, b"a\x1b[Aq")
            proc.wait_for_output(r"vx \+0\.00 vy \+0\.25 vz \+0\.50 m/s, yaw \+0\.50 rad/s")
            out.wait_for(lambda m: flu(m) == (0.0, 0.25, 0.5, 0.5))
            assert all(m.angular.x == m.angular.y == 0.0 for m in out.messages)
            mark = len(out)
            os.write(master, b" ")
            proc.wait_for_output(r"vx \+0\.00 vy \+0\.00 vz \+0\.00 m/s, yaw \+0\.00 rad/s")
            out.wait_for(lambda m: flu(m) == (0.0, 0.0, 0.0, 0.0), start=mark)
            j = out.index(lambda m: flu(m) == (0.0, 0.0, 0.0, 0.0), start=mark)
            hover = [flu(m) for m in out.wait_for_count(j + 3)[j:]]
            assert hover == [(0.0, 0.0, 0.0, 0.0)] * len(hover), f"hover is published, repeated: {hover}"
            os.write(master, b"\x03")
            assert proc.wait(15) == 0, proc.tail()
    finally:
        os.close(master)
        os.close(slave)
