"""``lnn-control up``: parameter merging, node sets, remaps, DDS environment, and the one-process-per-node layout.

The one-process layout with real traffic is exercised by test_nodes_policy.py (``up drive-split``); here the plan is
checked without ROS, and ``--processes`` is run for real: its nodes start, and one failing stops the others.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lnn_control import bringup
from lnn_control.bringup import (
    MUX,
    WILDCARD,
    BringupError,
    merge,
    node_params,
    params_document,
    parse_sets,
    read_params,
)
from lnn_control.cli import up as up_verb
from lnn_control.ros.env import PROFILE_VARS

#: A real-vehicle set needs its model named: an untrained one, for plans that never start.
MODEL = ("--set", "*.model=random:ltc:0")


def args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    up_verb.configure(parser)
    return parser.parse_args(list(argv))


def test_yaml_node_keys_are_normalised_and_nested_parameters_flattened(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "drive_node:\n  ros__parameters:\n    max_speed: 1.5\n"
        "/policy_node:\n  ros__parameters:\n    limits: {a: 1}\n"
        "/**/perception_node:\n  ros__parameters:\n    threads: 2\n"
        "/**:\n  ros__parameters:\n    use_sim_time: true\n"
    )
    assert read_params(path) == {
        "drive_node": {"max_speed": 1.5},
        "policy_node": {"limits.a": 1},
        "perception_node": {"threads": 2},
        WILDCARD: {"use_sim_time": True},
    }
    assert params_document(read_params(path))["/**/drive_node"] == {"ros__parameters": {"max_speed": 1.5}}


@pytest.mark.parametrize(
    ("text", "problem"),
    [("drive_node: [1, 2", "not valid YAML"), ("- 1\n", "node_name: ros__parameters"), ("n:\n  x: 1\n", "no 'ros__")],
)
def test_bad_parameter_files_name_the_file(tmp_path, text, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(BringupError, match=problem) as info:
        read_params(path)
    assert str(path) in str(info.value)


def test_set_values_are_typed_like_the_config_files():
    typed = {"drive_node": {"max_speed": 2.0, "threads": 1}}
    got = parse_sets(
        ["drive_node.max_speed=1", "drive_node.threads=3", "drive_node.model=random:ltc:0", "*.use_sim_time=true"],
        ["drive_node"],
        typed,
    )
    assert got == {
        "drive_node": {"max_speed": 1.0, "threads": 3, "model": "random:ltc:0"},
        WILDCARD: {"use_sim_time": True},
    }
    assert isinstance(got["drive_node"]["max_speed"], float)
    text = parse_sets(["camera_node.device=0", "camera_node.rate=30"], ["camera_node"], {"camera_node": {"device": ""}})
    assert text == {"camera_node": {"device": "0", "rate": 30}}  # text where the files hold text, else typed
    with pytest.raises(BringupError, match="NODE.PARAM=VALUE"):
        parse_sets(["max_speed=1"], ["drive_node"], typed)
    with pytest.raises(BringupError, match="not in this set"):
        parse_sets(["policy_node.max_speed=1"], ["drive_node"], typed)


def test_precedence_set_files_then_sim_time_then_config_then_set(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        "drive_node:\n  ros__parameters:\n    limits.velocity.max: 5.0\n    timeout: 0.3\n"
        "/**:\n  ros__parameters:\n    use_sim_time: false\n"
    )
    plan = up_verb.plan_from_args(args("sim-drive", "--config", str(extra), "--set", "drive_node.timeout=0.4"))
    node = node_params(plan.params, "drive_node")
    assert node["stamped"] is True  # config/sim.yaml's /** over config/drive.yaml's
    assert node["limits.velocity.max"] == 5.0 and node["timeout"] == 0.4
    assert plan.params[WILDCARD]["use_sim_time"] is False  # the user's file over the set's sim time
    assert plan.configs[-1] == extra


def test_a_later_wildcard_wins_over_a_node_and_the_document_puts_it_first(tmp_path):
    path = tmp_path / "order.yaml"  # in one file, rcl applies the entries in order: the later /** wins
    path.write_text("n:\n  ros__parameters:\n    a: 1\n    b: 1\n/**:\n  ros__parameters:\n    a: 2\n")
    assert read_params(path) == {"n": {"b": 1}, WILDCARD: {"a": 2}}
    base = {"n": {"a": 1, "b": 1}, "m": {"a": 1}}
    merged = merge(base, {WILDCARD: {"a": 3}, "m": {"a": 4}})
    assert merged == {"n": {"b": 1}, "m": {"a": 4}, WILDCARD: {"a": 3}} and base["n"] == {"a": 1, "b": 1}
    assert node_params(merged, "n") == {"a": 3, "b": 1} and node_params(merged, "m") == {"a": 4}
    assert list(params_document(merged))[0] == "/**"  # a node's own values come after it, so they win


def test_one_stamped_setting_reaches_every_node_of_the_sim_sets():
    for name in ("sim-drive", "record-sim", "dagger-sim", "teleop-sim"):
        plan = up_verb.plan_from_args(args(name, "--with", "joy_teleop_node"))
        assert all(node_params(plan.params, n).get("stamped") is True for n in plan.nodes if n != "recorder_node")
    plan = up_verb.plan_from_args(args("drive-split", *MODEL))  # TwistStamped on a robot too, by default
    assert all(node_params(plan.params, n)["stamped"] is True for n in plan.nodes if n != "perception_node")
    plan = up_verb.plan_from_args(args("drive-split", *MODEL, "--set", "*.stamped=false"))  # over mux.yaml's own
    assert all(node_params(plan.params, n)["stamped"] is False for n in plan.nodes if n != "perception_node")


def test_the_driving_node_feeds_the_mux_only_when_the_mux_runs():
    with_mux = up_verb.plan_from_args(args("drive-split", *MODEL))
    assert ("policy_node", "cmd_vel", "lnn/cmd_vel") in with_mux.remaps
    assert "-r" in with_mux.ros_args(Path("p.yaml")) and "policy_node:cmd_vel:=lnn/cmd_vel" in with_mux.ros_args(
        Path("p")
    )
    alone = up_verb.plan_from_args(args("drive", *MODEL, "--without", MUX, "--namespace", "/robot1"))
    assert alone.nodes == ["drive_node"] and alone.remaps == []
    assert alone.ros_args(Path("p.yaml"))[-2:] == ["-r", "__ns:=/robot1"]


@pytest.mark.parametrize("name", ["drive", "drive-split"])
def test_a_real_vehicle_set_refuses_to_start_without_a_model(name, capsys):
    assert bringup.is_robot_set(name) and not bringup.is_robot_set("sim-drive")
    with pytest.raises(BringupError, match=r"drives a real vehicle.*--set '\*.model=PATH'.*model:=PATH"):
        up_verb.plan_from_args(args(name))
    with pytest.raises(BringupError, match="model named explicitly"):
        up_verb.plan_from_args(args(name, "--without", MUX))
    assert up_verb.run(args(name)) == 2
    assert "drives a real vehicle" in capsys.readouterr().err
    plan = up_verb.plan_from_args(args(name, *MODEL))  # random:... is explicit
    assert all(node_params(plan.params, n)["model"] == "random:ltc:0" for n in plan.nodes if n != MUX)


def test_sets_without_a_model_node_or_with_the_simulator_need_no_model():
    assert up_verb.plan_from_args(args("record")).nodes  # nobody loads a model
    for name in ("sim-drive", "dagger-sim", "drone-sim-drive"):
        up_verb.plan_from_args(args(name))  # the shipped models are for these


def test_nothing_drives_unarmed_on_a_real_vehicle_and_the_sim_sets_arm_at_start():
    robot = up_verb.plan_from_args(args("drive", *MODEL))
    assert node_params(robot.params, "drive_node")["enabled"] is True, "behind the mux, which arms"
    assert node_params(robot.params, MUX)["autonomy_on_start"] is False
    alone = up_verb.plan_from_args(args("drive-split", *MODEL, "--without", MUX))
    assert node_params(alone.params, "policy_node")["enabled"] is False, "no mux: the node itself starts disabled"
    explicit = up_verb.plan_from_args(args("drive", *MODEL, "--set", "drive_node.enabled=false"))
    assert node_params(explicit.params, "drive_node")["enabled"] is False, "--set still wins"
    for name in ("sim-drive", "dagger-sim", "drone-sim-drive", "drone-dagger-sim"):
        plan = up_verb.plan_from_args(args(name))
        assert node_params(plan.params, MUX)["autonomy_on_start"] is True, name
        assert node_params(plan.params, "drive_node")["enabled"] is True, name


def test_unknown_or_unwritten_nodes_and_missing_configs_are_clear_errors(monkeypatch, tmp_path):
    with pytest.raises(BringupError, match="not in set 'drive'"):
        up_verb.plan_from_args(args("drive", "--without", "recorder_node"))
    with pytest.raises(BringupError, match="unknown node"):
        up_verb.plan_from_args(args("drive", "--with", "nobody_node"))
    monkeypatch.setitem(bringup.NODE_MODULES, "command_mux_node", "not_written_yet")
    with pytest.raises(BringupError, match=r"needs command_mux_node \(lnn_control.nodes.not_written_yet\).*--without"):
        up_verb.plan_from_args(args("drive", *MODEL))
    monkeypatch.setattr(bringup, "config_file", lambda name: tmp_path / name)
    with pytest.raises(BringupError, match="drive.yaml, which does not exist"):
        up_verb.plan_from_args(args("drive", *MODEL, "--without", MUX))


def test_dds_environment(monkeypatch):
    monkeypatch.delenv("FASTRTPS_DEFAULT_PROFILES_FILE", raising=False)
    monkeypatch.delenv("FASTDDS_DEFAULT_PROFILES_FILE", raising=False)
    robot = up_verb.plan_from_args(args("drive", *MODEL, "--without", MUX)).env
    assert all(robot[v].endswith("fastdds.xml") for v in PROFILE_VARS)
    monkeypatch.setenv("FASTRTPS_DEFAULT_PROFILES_FILE", "/mine.xml")
    assert all(up_verb.plan_from_args(args("drive", *MODEL, "--without", MUX)).env[v] == "/mine.xml"
               for v in PROFILE_VARS)
    monkeypatch.setenv("ROS_DOMAIN_ID", "77")
    local = up_verb.plan_from_args(args("drive", *MODEL, "--without", MUX, "--local")).env
    assert local["ROS_DOMAIN_ID"] == "77" and local["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert all(local[v].endswith("fastdds_local.xml") for v in PROFILE_VARS)


def test_console_command_falls_back_to_importing_main(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    command = bringup.console_command("policy_node")
    assert command[1] == "-c" and "from lnn_control.nodes.policy import main" in command[2]


# -- --processes, for real ---------------------------------------------------------------------------------------------


@pytest.mark.ros
@pytest.mark.slow
def test_processes_layout_stops_everything_when_a_node_fails(tmp_path):
    pytest.importorskip("rclpy")
    from ros_harness import free_domain_id, node_env

    command = [sys.executable, "-m", "lnn_control.cli", "up", "drive-split", "--processes", "--local"]
    command += ["--without", MUX, "--set", "policy_node.model=random:ltc:0", "--duration", "60"]
    command += ["--set", f"perception_node.model={tmp_path / 'no_such_model'}"]
    done = subprocess.run(command, env=node_env(free_domain_id()), capture_output=True, text=True, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "perception_node exited with status 2: stopped the others" in out, out
    assert f"missing {tmp_path / 'no_such_model'}.json and {tmp_path / 'no_such_model'}.safetensors" in out, out
    assert "invalid crop" not in out, out
    assert "Traceback" not in out, out


def test_dagger_sim_is_record_sim_with_the_policy_driving_and_the_demonstrator_intervening():
    dagger, record = up_verb.plan_from_args(args("dagger-sim")), up_verb.plan_from_args(args("record-sim"))
    assert set(dagger.nodes) == set(record.nodes) | {"drive_node"}
    assert ("drive_node", "cmd_vel", "lnn/cmd_vel") in dagger.remaps
    assert dagger.params["demonstrator_node"]["intervene"] is True
    assert record.params["demonstrator_node"]["intervene"] is False
    # the mux keeps the demonstrator's takeover through the next frame (20 ms), not through two
    frame = 1.0 / 50
    assert frame < dagger.params[MUX]["input.teleop.timeout"] < 2 * frame
    topics = [entry.split()[0] for entry in dagger.params["recorder_node"]["topics"]]
    assert set(record.params["recorder_node"]["topics"]) <= set(dagger.params["recorder_node"]["topics"])
    assert "demonstrator_node/label" in topics and "lnn/cmd_vel" in topics
    # each frame waits for the demonstrator's label, and the label reaches a recorder that matches late
    assert dagger.params["sim_node"]["lockstep_with"] == ["demonstrator_node/label"]
    assert "demonstrator_node/label geometry_msgs/msg/TwistStamped latched" in dagger.params["recorder_node"]["topics"]
    assert not record.params["sim_node"].get("lockstep_with")  # there the demonstrator drives


def test_the_sim_waits_for_the_sets_nodes_that_take_its_topics():
    for name, wanted in [
        ("sim-drive", ["drive_node"]),
        ("record-sim", ["demonstrator_node", "recorder_node"]),
        ("dagger-sim", ["drive_node", "demonstrator_node", "recorder_node"]),
        ("drone-dagger-sim", ["drive_node", "drone_demonstrator_node", "recorder_node"]),
        ("teleop-sim", ["recorder_node"]),
    ]:
        plan = up_verb.plan_from_args(args(name))
        assert sorted(plan.params["sim_node"]["wait_for"]) == sorted(wanted), name
        recorders = plan.params["sim_node"]["wait_for_recorders"]
        assert recorders == (["recorder_node"] if "recorder_node" in wanted else []), name
    # a node left out is not waited for; --set has the last word
    plan = up_verb.plan_from_args(args("dagger-sim", "--without", "recorder_node"))
    assert sorted(plan.params["sim_node"]["wait_for"]) == ["demonstrator_node", "drive_node"]
    plan = up_verb.plan_from_args(args("dagger-sim", "--set", "sim_node.wait_for=[drive_node]"))
    assert plan.params["sim_node"]["wait_for"] == ["drive_node"]
    plan = up_verb.plan_from_args(args("teleop-sim", "--without", "recorder_node"))
    assert not plan.params["sim_node"].get("wait_for")


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", ["SIGHUP", "SIGKILL"])
def test_processes_layout_leaves_no_node_behind(tmp_path, sig):
    # SIGHUP: the terminal of `up` closed; SIGKILL: `up` itself died without a word. Its nodes must end either way.
    import signal

    pytest.importorskip("rclpy")
    from ros_harness import free_domain_id, node_env

    log = tmp_path / "up.log"
    command = [sys.executable, "-m", "lnn_control.cli", "up", "drive", "--processes", "--local"]
    command += ["--set", "drive_node.model=random:ltc:0"]
    with open(log, "wb") as out:
        up = subprocess.Popen(command, env=node_env(free_domain_id()), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not ("ready" in log.read_text() and "camera/image_raw ->" in log.read_text()):  # mux and drive_node up
            assert up.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        children = _children(up.pid)
        up.send_signal(getattr(signal, sig))
        status = up.wait(30)
        assert status == (0 if sig == "SIGHUP" else -signal.SIGKILL), log.read_text()
        deadline = time.monotonic() + 30
        while any(_alive(c) for c in children):
            assert time.monotonic() < deadline, f"still running after `up` ended: {children}\n{log.read_text()}"
            time.sleep(0.05)
    finally:
        if up.poll() is None:
            up.kill()


def test_print_params_shows_the_resolved_set(capsys):
    status = up_verb.run(args("sim-drive", "--print-params", "--set", "drive_node.limits.velocity.max=3",
                              "--namespace", "/r1"))
    head, params = capsys.readouterr().out.split("---\n")
    head, params = yaml.safe_load(head), yaml.safe_load(params)
    assert status == 0
    assert head["nodes"] == ["sim_node", "drive_node", MUX] and head["namespace"] == "/r1"
    assert head["remaps"] == ["drive_node:cmd_vel:=lnn/cmd_vel"]
    assert set(params) == {"/**", "/**/sim_node", "/**/drive_node", "/**/command_mux_node"}  # only the nodes it starts
    assert params["/**"]["ros__parameters"]["stamped"] is True
    value = params["/**/drive_node"]["ros__parameters"]["limits.velocity.max"]
    assert value == 3.0 and isinstance(value, float)  # --set wins, typed as the file's float
    assert params["/**"]["ros__parameters"]["use_sim_time"] is True


def test_a_parameter_an_earlier_release_had_is_refused_with_its_new_name(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("command_mux_node:\n  ros__parameters:\n    teleop_timeout: 0.3\n"
                   "drive_node:\n  ros__parameters:\n    max_speed: 1.0\n")
    with pytest.raises(BringupError, match=r"command_mux_node.teleop_timeout is now input.teleop.timeout.*"
                                           r"drive_node.max_speed is now limits.velocity.max"):
        bringup.resolve_set("sim-drive", extra_configs=[old])
    with pytest.raises(BringupError, match=r"policy_timeout is now input.policy.timeout"):
        bringup.resolve_set("record", set_items=["*.policy_timeout=1.0"])
    assert bringup.resolve_set("record", set_items=["*.max_speed=1.0"]).params  # a teleop's own parameter

