"""package.xml is complete: an exec_depend for every ROS package the code imports and for every Python dependency
of setup.py (by its rosdep key), so ``rosdep install --from-paths src`` gives a colcon user what ``pip install``
gives a pip user. No ROS needed: the files are parsed, not imported."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: setup.py install_requires (distribution name) -> rosdep key, checked against ros/rosdistro's rosdep/python.yaml
#: (2026-08); None: rosdep has no key, pip installs it (the README's install steps say so).
PYTHON_KEYS: dict[str, str | None] = {
    "setuptools": "python3-setuptools",
    "numpy": "python3-numpy",
    "torch": "python3-torch",  # the distribution's package may be older than we need: README, --skip-keys
    "safetensors": None,
    "opencv-python-headless": "python3-opencv",
    "pyyaml": "python3-yaml",  # PyYAML (import yaml), not ruamel.yaml (python3-ruamel.yaml)
    "rosbags": "python3-rosbags-pip",
    "tqdm": "python3-tqdm",
    "matplotlib": "python3-matplotlib",
}

#: Imported ROS packages that are not exec_depends: built from source by those who need them (PX4's messages).
OPTIONAL_ROS = {"px4_msgs"}
#: ROS packages the pip path gets with rclpy's wheel (its dependencies), or does not have (launch, TF, joy).
NO_WHEEL = {"builtin_interfaces", "rcl_interfaces", "rosgraph_msgs", "tf2_msgs", "ackermann_msgs", "launch",
            "launch_ros", "ros2launch", "joy"}
#: What launch files start from other packages (lnn_control.launching) or need to run.
LAUNCH_DEPENDS = {"ros2launch", "launch", "launch_ros", "joy"}

_ROS_IMPORT = re.compile(
    r"^\s*(?:from|import)\s+([a-z0-9_]+_(?:msgs|srvs|interfaces)|rclpy|launch_ros|launch)\b", re.MULTILINE
)


def exec_depends() -> set[str]:
    root = ET.parse(ROOT / "package.xml").getroot()
    return {e.text.strip() for tag in ("exec_depend", "depend") for e in root.findall(tag) if e.text}


def imported_ros_packages() -> set[str]:
    """ROS packages imported anywhere in lnn_control/ and launch/ (at the top or inside functions)."""
    found: set[str] = set()
    for path in [*(ROOT / "lnn_control").rglob("*.py"), *(ROOT / "launch").glob("*.py")]:
        found.update(_ROS_IMPORT.findall(path.read_text()))
    return found


def _setup_list(name: str) -> list[str]:
    """A list literal of setup.py: the module-level ``name = [...]`` or the ``setup(name=[...])`` keyword."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return list(ast.literal_eval(node.value))
        if isinstance(node, ast.keyword) and node.arg == name:
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"setup.py has no {name}")


def _distribution(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].strip().lower()


def test_every_imported_ros_package_is_an_exec_depend():
    imported = imported_ros_packages()
    assert {"rclpy", "sensor_msgs", "diagnostic_msgs"} <= imported, imported  # the scan sees the imports
    missing = imported - OPTIONAL_ROS - exec_depends()
    assert not missing, f"package.xml lacks <exec_depend> for {sorted(missing)}"


def test_every_imported_ros_package_has_a_wheel_on_the_pip_path():
    wheels = {w.removeprefix("ros-jazzy-").replace("-", "_") for w in _setup_list("ROS_WHEELS")}
    missing = imported_ros_packages() - OPTIONAL_ROS - NO_WHEEL - wheels
    assert not missing, f"setup.py ROS_WHEELS lacks ros-jazzy-* for {sorted(missing)}"


def test_every_install_requirement_maps_to_a_rosdep_key_in_package_xml():
    requirements = {_distribution(r) for r in _setup_list("install_requires")}
    unmapped = requirements - set(PYTHON_KEYS)
    assert not unmapped, f"add {sorted(unmapped)} to PYTHON_KEYS (its rosdep key, or None) and to package.xml"
    depends = exec_depends()
    missing = {PYTHON_KEYS[r] for r in requirements if PYTHON_KEYS[r] is not None} - depends
    assert not missing, f"package.xml lacks <exec_depend> for {sorted(missing)}"


def test_the_launch_dependencies_are_listed():
    assert exec_depends() >= LAUNCH_DEPENDS


def test_package_xml_is_format_3_and_names_the_package():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "lnn_control"
    assert root.find("export/build_type").text == "ament_python"
