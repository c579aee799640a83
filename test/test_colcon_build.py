"""The package builds unchanged with ``colcon build`` and installs everything a ROS user needs.

colcon-common-extensions from PyPI builds an ament_python package without a ROS distribution (colcon-ros reads
package.xml, setuptools does the rest), so this runs on the pip path too. The test copies the package's files (git's
tracked and untracked-but-not-ignored files) into ``<tmp>/ws/src/lnn_control``, builds, and checks that every
console script of setup.py, every launch file, config file and model file, package.xml and the ament index marker
land under ``install/``; then it runs one installed console script from the install tree.

Also here: the shipped YAML files give each node exactly the parameters it declares (names, types, ranges), and
launch/record.launch.py starts the ``record`` set of config/node_sets.yaml (executables and config files that exist).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "lnn_control"
COLCON = shutil.which("colcon") or str(Path(sys.executable).parent / "colcon")


def console_scripts() -> list[str]:
    """The console script names setup.py declares (read from its source: NODES plus lnn-control)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    nodes = next(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "NODES"
    )
    names = [key.value for key in nodes.keys]
    assert names, "setup.py: NODES is empty"
    return [*names, "lnn-control"]


def package_files() -> list[str]:
    """Files of the package as git sees them (tracked, plus new files not ignored), that exist."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: cannot tell the package's files from build output")
    return [f for f in listed if (ROOT / f).is_file() and not f.startswith((".venv/", "build/", "install/", "log/"))]


def data_files(folder: str, patterns: tuple[str, ...]) -> set[str]:
    return {p.name for pattern in patterns for p in (ROOT / folder).glob(pattern) if p.is_file()}


@pytest.mark.skipif(not Path(COLCON).exists(), reason="colcon is not installed (pip install colcon-common-extensions)")
@pytest.mark.parametrize("symlink", [False, True], ids=["copy", "symlink-install"])
def test_colcon_build_installs_everything(tmp_path, symlink):
    src = tmp_path / "ws" / "src" / PACKAGE
    for rel in package_files():
        target = src / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    ws = tmp_path / "ws"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLCON_", "AMENT_PREFIX_PATH"))}
    command = [COLCON, "build", "--event-handlers", "console_direct-"] + (["--symlink-install"] if symlink else [])
    done = subprocess.run(command, cwd=ws, env=env, capture_output=True, text=True, timeout=600)
    logs = "\n".join(p.read_text(errors="replace") for p in (ws / "log").rglob("stderr.log"))
    assert done.returncode == 0, f"colcon build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{logs[-3000:]}"

    prefix = ws / "install" / PACKAGE
    share = prefix / "share" / PACKAGE
    scripts = prefix / "lib" / PACKAGE
    missing = [name for name in console_scripts() if not (scripts / name).is_file()]
    assert not missing, f"console scripts missing under {scripts}: {missing}"
    not_executable = [name for name in console_scripts() if not os.access(scripts / name, os.X_OK)]
    assert not not_executable, not_executable
    for name in console_scripts():
        assert f"'console_scripts','{name}'" in (scripts / name).read_text() or name in (scripts / name).read_text()

    expected = {
        "launch": data_files("launch", ("*.launch.py",)),
        "config": data_files("config", ("*.yaml", "*.xml")),
        "models": data_files("models", ("*.safetensors", "*.json", "*.md")),
    }
    assert expected["launch"] >= {"record.launch.py"} and expected["config"] >= {"record.yaml", "mux.yaml"}
    for folder, names in expected.items():
        installed = {p.name for p in (share / folder).glob("*")} if (share / folder).is_dir() else set()
        assert names <= installed, f"{folder}/ files missing under {share / folder}: {sorted(names - installed)}"
        for name in names:  # the same bytes (through the symlink with --symlink-install)
            assert (share / folder / name).read_bytes() == (ROOT / folder / name).read_bytes(), f"{folder}/{name}"
    assert (share / "package.xml").is_file()
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE).is_file()

    # An installed console script runs from the install tree (no ROS start-up needed for --recover).
    site = next(prefix.glob("lib/python3*/site-packages"))
    run_env = dict(env, PYTHONPATH=f"{site}{os.pathsep}{env.get('PYTHONPATH', '')}", AMENT_PREFIX_PATH=str(prefix))
    where = subprocess.run(
        [sys.executable, "-c", "import lnn_control; print(lnn_control.__file__)"],
        env=run_env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert str(ws) in where.stdout or symlink, f"lnn_control imported from {where.stdout.strip()}, not the install"
    recover = subprocess.run(
        [str(scripts / "recorder_node"), "--recover", str(tmp_path / "no_such_bag")],
        env=run_env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert recover.returncode == 1 and "no_such_bag" in recover.stderr, recover.stdout + recover.stderr


# -- shipped parameter files and launch files -------------------------------------------------------------------------


def _configs():
    from lnn_control.nodes.joy_teleop import JoyTeleopConfig
    from lnn_control.nodes.mux import MuxConfig
    from lnn_control.nodes.recorder import RecorderConfig
    from lnn_control.nodes.teleop_keyboard import KeyTeleopConfig

    return [
        ("record.yaml", "recorder_node", RecorderConfig),
        ("mux.yaml", "command_mux_node", MuxConfig),
        ("teleop.yaml", "teleop_keyboard_node", KeyTeleopConfig),
        ("teleop.yaml", "joy_teleop_node", JoyTeleopConfig),
    ]


@pytest.mark.parametrize("index", range(4), ids=["record", "mux", "teleop_keyboard", "joy_teleop"])
def test_config_yaml_gives_each_node_exactly_its_parameters(index):
    pytest.importorskip("rclpy")
    from lnn_control.bringup import node_params, read_params
    from lnn_control.mux_rules import MuxConfig, parameter_specs
    from lnn_control.ros.node_util import check_value, describe

    filename, node, cls = _configs()[index]
    params = node_params(read_params(ROOT / "config" / filename), node)  # its own section and the file's /**
    # the mux also declares input.<name>.* and lock.<name>.* for the inputs and locks the file names
    declared = parameter_specs(params["inputs"], params["locks"]) if cls is MuxConfig else describe(cls)
    specs = {spec["name"]: spec for spec in declared if not spec["description"].startswith("deprecated")}
    assert set(params) == set(specs), f"config/{filename} {node}: extra {set(params) - set(specs)}, " \
                                      f"missing {set(specs) - set(params)}"  # fmt: skip
    for name, value in params.items():
        check_value(name, specs[name]["kind"], value, specs[name])  # type, range and choices as the node checks


def test_record_launch_starts_the_record_set_of_the_node_sets_file():
    from lnn_control.bringup import NODE_SETS

    tree = ast.parse((ROOT / "launch" / "record.launch.py").read_text())
    sets = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in NODE_SETS}
    assert sets == {"record"}, sets
    record = NODE_SETS["record"]
    assert set(record.nodes + record.optional) <= set(console_scripts()), record
    assert all((ROOT / "config" / name).is_file() for name in record.configs), record.configs
