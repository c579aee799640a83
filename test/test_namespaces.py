"""Parameter files apply under any namespace: the shipped files are keyed ``/**/node_name`` (or ``/**``), so
``ros2 run ... --params-file config/X.yaml -r __ns:=/robot1`` and ``lnn-control up SET --namespace robot1`` give the
nodes the files' values, not the code defaults.

Before, the files were keyed ``drive_node:``, which rcl matches only to a node at the root namespace: under
``/robot1`` every value silently fell back to its default.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lnn_control.bringup import NODE_MODULES, read_params
from lnn_control.paths import config_file

CONFIG = Path(config_file("mux.yaml")).parent
NAMESPACE = "/robot1"
#: A value the mux's code does not default to, given the way the shipped file gives it.
RATE = 7.0


def test_every_shipped_parameter_file_is_keyed_for_any_namespace():
    for path in sorted(CONFIG.glob("*.yaml")):
        if path.name in ("node_sets.yaml",) or path.name.startswith("train"):
            continue  # not ROS parameter files
        document = yaml.safe_load(path.read_text()) or {}
        for key in document:
            assert key == "/**" or (key.startswith("/**/") and key[4:] in NODE_MODULES), (
                f"{path.name}: {key!r} matches only a node at the root namespace; key it /**/{key.lstrip('/')}"
            )
        assert read_params(path) is not None


def _mux_file(tmp_path: Path) -> Path:
    """config/mux.yaml as shipped, with one value changed: the key form is the file's own."""
    text = config_file("mux.yaml").read_text()
    assert "    rate: 20.0" in text
    path = tmp_path / "mux.yaml"
    path.write_text(text.replace("    rate: 20.0", f"    rate: {RATE}", 1))
    return path


def _rate(ros, node: str) -> float:
    from rcl_interfaces.srv import GetParameters

    request = GetParameters.Request(names=["rate"])
    response = ros.call(f"{node}/get_parameters", GetParameters, request, timeout=30.0, idempotent=True)
    return response.values[0].double_value


@pytest.mark.ros
def test_a_shipped_file_reaches_a_node_started_under_a_namespace(tmp_path):
    pytest.importorskip("rclpy")
    from ros_harness import NodeProcess, RosSession, free_domain_id

    domain = free_domain_id()
    params = _mux_file(tmp_path)
    args = ["--ros-args", "--params-file", str(params), "-r", f"__ns:={NAMESPACE}"]
    with RosSession(domain) as ros, NodeProcess("lnn_control.nodes.mux", domain_id=domain, log_dir=tmp_path,
                                                args=args) as mux:
        assert _rate(ros, f"{NAMESPACE}/command_mux_node") == RATE, mux.tail()


@pytest.mark.ros
def test_up_under_a_namespace_gives_the_nodes_the_files_values(tmp_path):
    pytest.importorskip("rclpy")
    from ros_harness import RosSession, free_domain_id, node_env

    domain = free_domain_id()
    command = [sys.executable, "-m", "lnn_control.cli", "up", "record", "--local", "--without", "recorder_node",
               "--namespace", NAMESPACE.strip("/"), "--config", str(_mux_file(tmp_path)), "--duration", "120"]
    with RosSession(domain) as ros:
        up = subprocess.Popen(command, env=node_env(domain), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
        try:
            assert _rate(ros, f"{NAMESPACE}/command_mux_node") == RATE
        finally:
            up.terminate()
            out, _ = up.communicate(timeout=30)
        assert up.returncode == 0, out
