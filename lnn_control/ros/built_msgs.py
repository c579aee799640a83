"""Find the interface packages ``lnn-control build-msgs`` built, and make this process and its children use them.

The PyPI wheels of ROS 2 Jazzy lack some interface packages (``ackermann_msgs``; ``tf2_msgs``, without which
sim_node publishes no TF). :mod:`lnn_control.ros.msg_build` builds them into a prefix under the cache
(``$LNN_CONTROL_CACHE/msgs``, default ``~/.cache/lnn_control/msgs``); :func:`activate`, called when
:mod:`lnn_control.ros` is imported, puts the latest build for this Python version **after** everything already
there, so a real ROS install of the same packages wins:

- its ``site-packages`` at the end of ``sys.path`` (and ``PYTHONPATH`` for children);
- its ``lib`` at the end of ``LD_LIBRARY_PATH`` and the prefix at the end of ``AMENT_PREFIX_PATH``, for child
  processes (the dynamic linker reads ``LD_LIBRARY_PATH`` once, at process start).

In this process nothing else is needed: the built libraries find each other through their RUNPATH (``$ORIGIN``),
and each built Python package loads its typesupport libraries by path when imported, which is what lets
rosidl_typesupport_c's lookup of them by bare name succeed (see :mod:`lnn_control.ros.msg_build`).

``LNN_CONTROL_BUILT_MSGS=0`` turns this off. Nothing here imports rclpy or starts a process.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

#: Set to 0 (or false, no, off) to ignore the built interface packages.
SWITCH = "LNN_CONTROL_BUILT_MSGS"
#: Where lnn_control keeps caches; the builds live under ``<it>/msgs``.
CACHE_VAR = "LNN_CONTROL_CACHE"
#: The file a finished build writes last, in its folder.
RECORD = "build.json"


def cache_root(cache: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding the builds: ``<cache>/msgs`` with ``cache`` from the argument, ``$LNN_CONTROL_CACHE`` or
    ``~/.cache/lnn_control``."""
    base = cache if cache is not None else os.environ.get(CACHE_VAR) or Path.home() / ".cache" / "lnn_control"
    return Path(base).expanduser() / "msgs"


def python_tag() -> str:
    """``py3.11``: the built extension modules fit one Python minor version."""
    return f"py{sys.version_info.major}.{sys.version_info.minor}"


def pointer(root: Path) -> Path:
    """The file naming the build this Python version uses (``<root>/current-py3.11``)."""
    return root / f"current-{python_tag()}"


def current_build(root: Path | None = None) -> dict | None:
    """The record (``build.json``, with ``folder`` added) of the build the pointer names, or None when there is
    none, it is unfinished or it was made for another Python version."""
    root = cache_root() if root is None else root
    try:
        key = pointer(root).read_text().strip()
        record = json.loads((root / key / RECORD).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("python") != python_tag() or not key:
        return None
    record["folder"] = str(root / key)
    return record


def _append_env(env: dict[str, str] | os._Environ, name: str, value: str) -> None:
    parts = [p for p in env.get(name, "").split(os.pathsep) if p]
    if value not in parts:
        env[name] = os.pathsep.join([*parts, value])


def prefix_env(record: dict, env: dict[str, str] | os._Environ) -> None:
    """Append a build's paths to ``env`` (``os.environ`` or a child's environment): PYTHONPATH, LD_LIBRARY_PATH,
    AMENT_PREFIX_PATH."""
    prefix = Path(record["folder"]) / "install"
    _append_env(env, "PYTHONPATH", str(prefix / record["site_packages"]))
    _append_env(env, "LD_LIBRARY_PATH", str(prefix / "lib"))
    _append_env(env, "AMENT_PREFIX_PATH", str(prefix))


def enabled() -> bool:
    """False when ``LNN_CONTROL_BUILT_MSGS`` says 0, false, no or off."""
    return os.environ.get(SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def activate(root: Path | None = None, *, export: bool = True) -> Path | None:
    """Use the current build (see the module docstring); its install prefix, or None when there is none (or the
    switch is off). ``export``: also for child processes (the environment). Safe to call more than once."""
    if not enabled():
        return None
    record = current_build(root)
    if record is None:
        return None
    prefix = Path(record["folder"]) / "install"
    site = str(prefix / record["site_packages"])
    if not Path(site).is_dir():
        return None
    if site not in sys.path:
        sys.path.append(site)
    if export:
        prefix_env(record, os.environ)
    return prefix
