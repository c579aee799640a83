"""Other packages' nodes a set needs (config/node_sets.yaml ``external``): ``ros2 launch lnn_control
record.launch.py joy:=true`` starts joy/joy_node beside joy_teleop_node; ``lnn-control up ... --with
joy_teleop_node`` (the pip path: no joy package) warns that a Joy publisher is needed and runs on. The launch side
is checked on what launch_ros would be handed (lnn_control.launching.node_actions), since launch_ros is not
installable here."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lnn_control import bringup
from lnn_control.bringup import NODE_SETS, BringupError, describe_plan, external_warnings, load_node_sets, make_plan
from lnn_control.launching import SetChoice, node_actions

ROOT = Path(__file__).resolve().parents[1]
JOY = ("joy", "joy_node")


def record_launch(**given: str) -> list[dict]:
    path = ROOT / "launch" / "record.launch.py"
    spec = importlib.util.spec_from_file_location("record_launch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    declared = {name: default for name, (default, _text) in module.ARGUMENTS.items()}
    actions = node_actions(module.choose({**declared, **given}))
    for file in {f for a in actions for f in a["parameters"]}:
        Path(file).unlink()
    return actions


def test_joy_true_starts_joy_node_beside_joy_teleop_node():
    actions = record_launch(joy="true")
    started = [(a["package"], a["executable"]) for a in actions]
    assert ("lnn_control", "joy_teleop_node") in started
    assert started[-1] == JOY, "after our nodes"
    joy = actions[-1]
    assert joy["name"] == "joy_node" and joy["output"] == "screen"
    assert joy["parameters"] == actions[0]["parameters"], "the set's parameter file (use_sim_time and the like)"
    assert "remappings" not in joy, "it publishes joy, which joy_teleop_node reads"


def test_joy_false_starts_no_joy_node():
    assert all(a["package"] == "lnn_control" for a in record_launch(joy="false"))


def test_the_namespace_applies_to_the_external_node_too():
    actions = record_launch(joy="true", namespace="/robot1")
    assert {a["namespace"] for a in actions} == {"/robot1"}


def test_two_nodes_needing_the_same_external_node_start_it_once(tmp_path, monkeypatch):
    sets = tmp_path / "node_sets.yaml"
    sets.write_text(
        "s:\n  description: d\n  nodes: [teleop_keyboard_node, joy_teleop_node]\n  configs: [teleop.yaml]\n"
        "  external: {joy_teleop_node: [joy/joy_node], teleop_keyboard_node: [joy/joy_node]}\n"
    )
    monkeypatch.setattr(bringup, "NODE_SETS", load_node_sets(sets))
    actions = node_actions(SetChoice("s"))
    for file in {f for a in actions for f in a["parameters"]}:
        Path(file).unlink()
    assert [(a["package"], a["executable"]) for a in actions].count(JOY) == 1


def test_the_sets_with_a_gamepad_name_joy_node():
    for name in ("record", "drone-teleop-sim"):
        assert ("joy_teleop_node", "joy/joy_node") in NODE_SETS[name].external, name


@pytest.mark.parametrize(
    ("external", "problem"),
    [
        ("{recorder_node: [joy/joy_node]}", "not one of the set's nodes"),
        ("{joy_teleop_node: [joy_node]}", "package/executable"),
        ("{joy_teleop_node: joy/joy_node}", "package/executable"),
        ("[joy/joy_node]", "'external' must be a mapping"),
    ],
)
def test_a_bad_external_entry_names_the_set(tmp_path, external, problem):
    path = tmp_path / "node_sets.yaml"
    path.write_text(
        f"s:\n  description: d\n  nodes: [teleop_keyboard_node]\n  optional: [joy_teleop_node]\n"
        f"  configs: [teleop.yaml]\n  external: {external}\n"
    )
    with pytest.raises(BringupError, match=problem) as info:
        load_node_sets(path)
    assert "set 's'" in str(info.value)


def test_up_plans_say_which_external_nodes_they_need():
    plan = make_plan("record", with_nodes=["joy_teleop_node"], base_env={})
    assert plan.external == [("joy_teleop_node", *JOY)]
    (warning,) = external_warnings(plan)
    assert "joy_teleop_node needs joy/joy_node" in warning and "`ros2 run joy joy_node`" in warning
    assert "joy/joy_node for joy_teleop_node" in describe_plan(plan)
    assert make_plan("record", base_env={}).external == []
    assert external_warnings(make_plan("record", base_env={})) == []


@pytest.mark.ros
def test_up_with_joy_teleop_warns_and_runs_on():
    pytest.importorskip("rclpy")
    pytest.importorskip("sensor_msgs")
    command = [sys.executable, "-m", "lnn_control.cli", "up", "record", "--with", "joy_teleop_node", "--without",
               "recorder_node", "--without", "command_mux_node", "--duration", "0.5", "--local"]
    env = {k: v for k, v in os.environ.items() if k != "ROS_DOMAIN_ID"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning: joy_teleop_node needs joy/joy_node" in result.stderr
    assert "ros2 run joy joy_node" in result.stderr
