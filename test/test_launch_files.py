"""Launch files, ``lnn-control up`` and the config YAML agree with setup.py, config/ and the nodes' declarations.

launch_ros is not on PyPI, so the launch files are read as Python source (ast), not run: every executable they name
is a console script in setup.py, every config file they name exists, and they start the same nodes from the same
files as the matching ``up`` node sets. No ROS needed.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from lnn_control.bringup import NODE_MODULES, NODE_SETS

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"
CONFIG_NAME = re.compile(r"[\w.-]+\.(yaml|xml)")
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))
#: launch file stem -> the `up` node sets it starts (drive.launch.py: fused, or split with split:=true)
LAUNCH_SETS = {
    "drive": ("drive", "drive-split"),
    "record": ("record",),
    "sim_drive": ("sim-drive",),
    "record_sim": ("record-sim",),
    "dagger_sim": ("dagger-sim",),
    "teleop_sim": ("teleop-sim",),
}


def setup_nodes() -> dict[str, str]:
    """``NODES`` (console script -> module under lnn_control.nodes) as written in setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "NODES" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no NODES table")


def launch_names(path: Path) -> tuple[list[str], list[str]]:
    """(executables, config file names) a launch file names, in order of appearance."""
    tree = ast.parse(path.read_text(), filename=str(path))
    executables, configs = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "executable":
            assert isinstance(node.value, ast.Constant), f"{path.name}: executable= must be a literal"
            executables.append(node.value.value)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and CONFIG_NAME.fullmatch(node.value):
            configs.append(node.value)
    return executables, sorted(set(configs), key=configs.index)


def test_up_knows_the_same_nodes_as_setup_py():
    assert setup_nodes() == NODE_MODULES


@pytest.mark.parametrize("name", list(NODE_SETS))
def test_node_sets_name_existing_executables_and_configs(name):
    node_set = NODE_SETS[name]
    assert set(node_set.nodes) <= set(setup_nodes()), f"{name}: {node_set.nodes}"
    skip_if_unwritten(name, node_set.configs)
    missing = [c for c in node_set.configs if not (CONFIG / c).is_file()]
    assert not missing, f"node set {name!r} reads {missing}, which are not in config/"


def skip_if_unwritten(set_name: str, configs: tuple[str, ...] | list[str]) -> None:
    """Work in progress: a set whose config file and node module are both not written yet is skipped, not failed."""
    missing = [c for c in configs if not (CONFIG / c).is_file()]
    nodes = NODE_SETS[set_name].nodes
    unwritten = [n for n in nodes if importlib.util.find_spec(f"lnn_control.nodes.{NODE_MODULES[n]}") is None]
    if missing and unwritten:
        pytest.skip(f"{set_name}: {', '.join(unwritten)} and config/{', '.join(missing)} are not written yet")


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_files_match_setup_py_config_and_up(path):
    compile(path.read_text(), str(path), "exec")  # valid Python
    executables, configs = launch_names(path)
    assert executables, f"{path.name} starts no node"
    assert set(executables) <= set(setup_nodes()), f"{path.name}: {executables}"
    sets = LAUNCH_SETS.get(path.name.removesuffix(".launch.py"))
    assert sets, f"{path.name}: no `lnn-control up` node set is paired with it in {__name__}.LAUNCH_SETS"
    skip_if_unwritten(sets[0], configs)
    for name in configs:
        assert (CONFIG / name).is_file(), f"{path.name} names config/{name}, which does not exist"
    assert set(executables) == {n for s in sets for n in NODE_SETS[s].nodes + NODE_SETS[s].optional}, (
        f"{path.name} vs up {sets}"
    )
    assert configs == list(NODE_SETS[sets[0]].configs), f"{path.name} reads {configs}, up {sets[0]} reads other files"


# -- config YAML <-> the nodes' declarations ---------------------------------------------------------------------------


def declared(node: str) -> dict:
    from lnn_control.nodes.driver_params import NODE_PARAMETERS

    defaults = {}
    for group in NODE_PARAMETERS[node]:
        defaults.update({f.name: f.default for f in dataclasses.fields(group)})
    return defaults


@pytest.mark.parametrize("node", ["perception_node", "policy_node", "drive_node"])
def test_drive_yaml_lists_every_parameter_with_its_default(node):
    pytest.importorskip("rclpy")
    section = yaml.safe_load((CONFIG / "drive.yaml").read_text())[node]["ros__parameters"]
    assert section == declared(node), f"config/drive.yaml {node} differs from its declarations"


@pytest.mark.parametrize("path", sorted(CONFIG.glob("*.yaml")), ids=lambda p: p.name)
def test_config_files_set_only_declared_parameters_of_the_driving_nodes(path):
    pytest.importorskip("rclpy")
    document = yaml.safe_load(path.read_text()) or {}
    for node in ("perception_node", "policy_node", "drive_node"):
        if node in document:
            unknown = set(document[node]["ros__parameters"]) - set(declared(node)) - {"use_sim_time"}
            assert not unknown, f"{path.name}: {node} does not declare {sorted(unknown)}"


def test_the_replay_reads_the_same_limit_and_timing_names_the_nodes_declare():
    pytest.importorskip("rclpy")
    from lnn_control.driver import NODE_PARAMS, load_driver_config
    from lnn_control.nodes.driver_params import CommandParams

    assert set(NODE_PARAMS) <= {f.name for f in dataclasses.fields(CommandParams)}
    assert load_driver_config(CONFIG / "drive.yaml") == CommandParams().driver_config()
