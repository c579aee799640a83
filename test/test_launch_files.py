"""Launch files, ``lnn-control up`` and the config YAML agree with setup.py, config/ and the nodes' declarations.

The node sets are described once, in config/node_sets.yaml; ``up`` and the launch files (through
lnn_control/launching.py) both start them from there. Here: the description names console scripts of setup.py and
files of config/, every launch file starts an existing set, and each launch file's choice (its ``choose`` and
lnn_control.launching.node_actions: what its description hands launch_ros, which is not on PyPI) starts the nodes,
parameter file and remaps ``up`` starts for the same set and options. No ROS needed.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib.util
from pathlib import Path

import pytest
import yaml

from lnn_control import bringup
from lnn_control.bringup import MUX, NODE_MODULES, NODE_SETS, WILDCARD, load_node_sets, node_params, read_params
from lnn_control.cli import up as up_verb
from lnn_control.launching import node_actions

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))


def setup_nodes() -> dict[str, str]:
    """``NODES`` (console script -> module under lnn_control.nodes) as written in setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "NODES" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no NODES table")


def test_up_knows_the_same_nodes_as_setup_py():
    assert setup_nodes() == NODE_MODULES


def test_node_sets_come_from_the_description_file():
    assert load_node_sets(CONFIG / bringup.NODE_SETS_FILE) == NODE_SETS
    assert set(yaml.safe_load((CONFIG / bringup.NODE_SETS_FILE).read_text())) == set(NODE_SETS)


@pytest.mark.parametrize("name", list(NODE_SETS))
def test_node_sets_name_existing_executables_and_configs(name):
    node_set = NODE_SETS[name]
    assert set(node_set.nodes + node_set.optional) <= set(setup_nodes()), f"{name}: {node_set.nodes}"
    assert not set(node_set.nodes) & set(node_set.optional), f"{name}: a node is both started and optional"
    missing = [c for c in node_set.configs if not (CONFIG / c).is_file()]
    assert not missing, f"node set {name!r} reads {missing}, which are not in config/"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("s: {nodes: [drive_node], configs: [drive.yaml]}\n", "no 'description'"),
        ("s: {description: d, nodes: [nobody_node], configs: [drive.yaml]}\n", "unknown nodes"),
        ("s: {description: d, nodes: [drive_node], configs: [drive.yaml], remap: {}}\n", "unknown key 'remap'"),
        ("s: {description: d, nodes: drive_node, configs: [drive.yaml]}\n", "'nodes' must be a list"),
        ("- s\n", "mappings"),
    ],
)
def test_a_bad_node_sets_file_names_the_set_and_the_key(tmp_path, text, problem):
    path = tmp_path / "node_sets.yaml"
    path.write_text(text)
    with pytest.raises(bringup.BringupError, match=problem) as info:
        load_node_sets(path)
    assert str(path) in str(info.value)


# -- the launch files' choices, resolved as launch_ros would be handed them ------------------------------------------


def launch_sets(path: Path) -> set[str]:
    """The node sets a launch file names (string literals that are set names)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in NODE_SETS}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_files_start_existing_sets_through_the_helper(path):
    source = path.read_text()
    compile(source, str(path), "exec")  # valid Python
    assert launch_sets(path), f"{path.name} names no node set of config/{bringup.NODE_SETS_FILE}"
    imported = {
        alias.name if isinstance(n, ast.Import) else n.module
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Import | ast.ImportFrom)
        for alias in n.names
    }
    assert not {m for m in imported if m.split(".")[0] in ("launch", "launch_ros")}, (
        f"{path.name}: nodes are started through lnn_control.launching, which imports launch and launch_ros"
    )


def run_launch_file(path: Path, **given: str) -> list[dict]:
    """The Node keyword arguments a launch file makes with these launch arguments (the rest at their defaults):
    its ``choose`` and :func:`lnn_control.launching.node_actions`, which is all that ``generate_launch_description``
    hands to launch_ros (not installable here) besides declaring the arguments."""
    spec = importlib.util.spec_from_file_location(path.name.removesuffix(".py").replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imports no launch or launch_ros (checked above)
    declared = {name: default for name, (default, _text) in module.ARGUMENTS.items()}
    assert set(given) <= set(declared), f"{path.name} has no arguments {set(given) - set(declared)}"
    return node_actions(module.choose({**declared, **given}))


CAMERA = [("camera/image_raw", "camera/image_raw"), ("camera/image_raw/compressed", "camera/image_raw/compressed")]
#: (launch file, its arguments, the `up` command line it matches, extra remaps per node: what `up` leaves alone)
LAUNCH_CASES = [
    (
        "drive",
        {"model": "m"},
        ["drive", "--set", "*.model=m"],
        {"drive_node": CAMERA, MUX: [*CAMERA, ("cmd_vel", "cmd_vel")]},
    ),
    (
        "drive",
        {"split": "true", "use_mux": "false", "stamped": "true", "model": "random:ltc:0", "cmd_vel_topic": "/cmd"},
        ["drive-split", "--without", MUX, "--set", "*.stamped=true", "--set", "*.model=random:ltc:0"],
        {"perception_node": CAMERA, "policy_node": [*CAMERA, ("cmd_vel", "/cmd")]},
    ),
    (
        "drive",
        {"model": "m", "camera": "true", "camera_device": "0", "vehicle": "twist_yaw_rate", "joy": "true",
         "cmd_vel_topic": "/diff_drive_controller/cmd_vel"},
        ["drive", "--set", "*.model=m", "--with", "camera_node", "--with", "vehicle_adapter_node", "--with",
         "joy_teleop_node", "--set", "camera_node.device=0", "--set", "vehicle_adapter_node.mode=twist_yaw_rate"],
        {"drive_node": CAMERA, MUX: CAMERA, "camera_node": CAMERA, "joy_teleop_node": CAMERA,
         "vehicle_adapter_node": [*CAMERA, ("vehicle/cmd_vel", "/diff_drive_controller/cmd_vel")]},
    ),  # fmt: skip
    (
        "record",
        {"joy": "true", "operator": "alice", "autostart": "true", "image_topic": "/cam"},
        ["record", "--with", "joy_teleop_node", "--set", "recorder_node.operator=alice", "--set",
         "recorder_node.autostart=true"],
        {"recorder_node": [("camera/image_raw", "/cam")], MUX: [("cmd_vel", "cmd_vel")]},
    ),  # fmt: skip
    ("sim_drive", {"seed": "5"}, ["sim-drive", "--set", "sim_node.seed=5"], {}),
    ("record_sim", {}, ["record-sim", "--set", "sim_node.seed=0"], {}),
    (
        "dagger_sim",
        {"model": "m"},
        ["dagger-sim", "--set", "sim_node.seed=0", "--set", "drive_node.model=m"],
        {},
    ),
    ("teleop_sim", {"seed": "3"}, ["teleop-sim", "--set", "sim_node.seed=3"], {}),
    (
        "drone_sim_drive",
        {"model": "random:ltc:0:drone", "seed": "7"},
        ["drone-sim-drive", "--set", "sim_node.seed=7", "--set", "drive_node.model=random:ltc:0:drone"],
        {},
    ),
    ("drone_record_sim", {"seed": "2"}, ["drone-record-sim", "--set", "sim_node.seed=2"], {}),
    (
        "drone_dagger_sim",
        {"model": "m", "seed": "100"},
        ["drone-dagger-sim", "--set", "sim_node.seed=100", "--set", "drive_node.model=m"],
        {},
    ),
    (
        "drone_teleop_sim",
        {"joy": "true"},
        ["drone-teleop-sim", "--with", "joy_teleop_node", "--set", "sim_node.seed=0"],
        {},
    ),
]


@pytest.mark.parametrize(("stem", "given", "argv", "extra"), LAUNCH_CASES, ids=[c[0] for c in LAUNCH_CASES])
def test_launch_files_start_what_up_starts(stem, given, argv, extra):
    parser = argparse.ArgumentParser()
    up_verb.configure(parser)
    plan = up_verb.plan_from_args(parser.parse_args(argv))
    path = ROOT / "launch" / f"{stem}.launch.py"
    assert plan.name in launch_sets(path)
    nodes = run_launch_file(path, **given)
    others = [n for n in nodes if n["package"] != "lnn_control"]  # config/node_sets.yaml's external, after ours
    assert [(n["package"], n["executable"]) for n in others] == [(p, e) for _, p, e in plan.external]
    nodes = nodes[: len(nodes) - len(others)]
    assert [n["executable"] for n in nodes] == [n["name"] for n in nodes] == plan.nodes
    files = {file for node in nodes for file in node["parameters"]}
    assert len(files) == 1, "one parameter file for all nodes, as up writes it"
    (params_file,) = files
    assert yaml.safe_load(Path(params_file).read_text()) == bringup.params_document(plan.params)
    Path(params_file).unlink()
    for node in nodes:
        assert node["parameters"] == [params_file]
        up_remaps = [(s, t) for n, s, t in plan.remaps if n == node["name"]]
        assert node["remappings"] == up_remaps + extra.get(node["name"], []), node["name"]
    assert [n["name"] for n in nodes if "prefix" in n] == [n for n in plan.nodes if n == "teleop_keyboard_node"]


@pytest.mark.parametrize("given", [{}, {"split": "true"}, {"use_mux": "false"}])
def test_drive_launch_refuses_a_real_vehicle_without_a_model(given):
    with pytest.raises(bringup.BringupError, match=r"drives a real vehicle.*model:=PATH"):
        run_launch_file(ROOT / "launch" / "drive.launch.py", **given)
    nodes = run_launch_file(ROOT / "launch" / "drive.launch.py", model="random:ltc:0", **given)
    (params_file,) = {file for node in nodes for file in node["parameters"]}
    params = yaml.safe_load(Path(params_file).read_text())
    Path(params_file).unlink()
    driving = next(n["name"] for n in nodes if n["name"] in ("drive_node", "policy_node"))
    enabled = {**params["/**"]["ros__parameters"], **params.get(f"/**/{driving}", {}).get("ros__parameters", {})}
    assert enabled["enabled"] is (given.get("use_mux") != "false"), "alone it starts disabled; behind the mux, enabled"


def test_every_launch_file_is_run_here():
    assert {c[0] for c in LAUNCH_CASES} == {p.name.removesuffix(".launch.py") for p in LAUNCH_FILES}


# -- config YAML <-> the nodes' declarations ---------------------------------------------------------------------------


def declared(node: str) -> dict:
    """The parameters ``node`` declares with their defaults; a command node's limits are the car's (the shipped
    model's action: they are declared per field of the model's action)."""
    from lnn_control.nodes.driver_params import parameter_specs

    return {spec["name"]: spec["default"] for spec in parameter_specs(node)}


def declared_elsewhere() -> dict[str, set[str]]:
    """Parameter names of the nodes that do not drive (they may receive config/drive.yaml's ``/**`` block)."""
    from lnn_control.nodes.demonstrator import DemonstratorConfig
    from lnn_control.nodes.joy_teleop import JoyTeleopConfig
    from lnn_control.nodes.mux import MuxConfig
    from lnn_control.nodes.recorder import RecorderConfig
    from lnn_control.nodes.simulator import SimNodeConfig
    from lnn_control.nodes.teleop_keyboard import KeyTeleopConfig
    from lnn_control.ros.node_util import describe

    classes = {
        "demonstrator_node": DemonstratorConfig,
        "joy_teleop_node": JoyTeleopConfig,
        MUX: MuxConfig,
        "recorder_node": RecorderConfig,
        "sim_node": SimNodeConfig,
        "teleop_keyboard_node": KeyTeleopConfig,
    }
    return {node: {s["name"] for s in describe(cls)} for node, cls in classes.items()}


@pytest.mark.parametrize("node", ["perception_node", "policy_node", "drive_node"])
def test_drive_yaml_gives_every_parameter_its_default(node):
    pytest.importorskip("rclpy")
    given = node_params(read_params(CONFIG / "drive.yaml"), node)
    assert {k: v for k, v in given.items() if k in declared(node)} == declared(node), (
        f"config/drive.yaml (/** and {node}) differs from its declarations"
    )


def test_drive_yaml_says_each_value_once_and_shares_only_what_means_the_same_to_every_node():
    pytest.importorskip("rclpy")
    params = read_params(CONFIG / "drive.yaml")
    driving = {name: set(declared(name)) for name in ("perception_node", "policy_node", "drive_node")}
    assert set(params) <= {WILDCARD, *driving}
    assert set(params[WILDCARD]) <= set.union(*driving.values()), "a /** parameter no driving node declares"
    for node, values in params.items():
        if node != WILDCARD:
            assert set(values) <= driving[node], f"{node} does not declare {set(values) - driving[node]}"
            assert not set(values) & set(params[WILDCARD]), f"{node} repeats /** values"
    # Nodes beside the driving ones get the shared block too: only `stamped` (one message type on every command
    # topic) may be a parameter of theirs; the others (frame_id, max_speed, ...) stay with the driving nodes.
    for node, names in declared_elsewhere().items():
        assert set(params[WILDCARD]) & names <= {"stamped"}, f"config/drive.yaml's /** would set {node}'s parameters"


PARAMETER_FILES = sorted({CONFIG / name for node_set in NODE_SETS.values() for name in node_set.configs})


@pytest.mark.parametrize("path", PARAMETER_FILES, ids=lambda p: p.name)
def test_config_files_set_only_declared_parameters_of_the_driving_nodes(path):
    pytest.importorskip("rclpy")
    params = read_params(path)
    for node in ("perception_node", "policy_node", "drive_node"):
        unknown = set(params.get(node, {})) - set(declared(node)) - {"use_sim_time"}
        assert not unknown, f"{path.name}: {node} does not declare {sorted(unknown)}"
    everyone = {n for names in declared_elsewhere().values() for n in names} | {
        n for node in ("perception_node", "policy_node", "drive_node") for n in declared(node)
    }
    unknown = set(params.get(WILDCARD, {})) - everyone - {"use_sim_time"}
    assert not unknown, f"{path.name}: no node declares the /** parameters {sorted(unknown)}"


def test_the_replay_reads_the_same_limit_and_timing_names_the_nodes_declare():
    pytest.importorskip("rclpy")
    from lnn_control.command import CAR
    from lnn_control.driver import NODE_PARAMS, load_driver_config, resolve_limits
    from lnn_control.nodes.driver_params import CommandParams

    assert set(NODE_PARAMS) <= {f.name for f in dataclasses.fields(CommandParams)}
    config = load_driver_config(CONFIG / "drive.yaml")
    assert dataclasses.replace(config, limits={}) == CommandParams().driver_config()
    assert resolve_limits(CAR, config.limits) == resolve_limits(CAR, {}), "drive.yaml's limits: the car's own"
