"""One build of the interface packages (ackermann_msgs, tf2_msgs) per pytest session, shared by the test modules.

The build goes into the session's base temp folder (not the user's cache), through :func:`lnn_control.ros.msg_build
.build`, so it is a real cmake build each session (about 15 s here, 50 s on a busy machine) and later modules get
it at once. Where the tools are missing the tests that need it are skipped with the reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lnn_control.ros import built_msgs
from lnn_control.ros.msg_build import BuildResult, MsgBuildError, build, missing_tools

_RESULTS: dict[Path, BuildResult | str] = {}


def session_build(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    """The session's build (made on the first call); ``pytest.skip`` naming what is missing when it cannot run."""
    cache = tmp_path_factory.getbasetemp() / "lnn_cache"
    if cache not in _RESULTS:
        missing = missing_tools()
        if missing:
            _RESULTS[cache] = "cannot build the interface packages here; missing: " + "; ".join(missing)
        else:
            try:
                _RESULTS[cache] = build(cache=cache)
            except MsgBuildError as exc:
                _RESULTS[cache] = f"the interface package build failed: {exc}"
    result = _RESULTS[cache]
    if isinstance(result, str):
        pytest.skip(result)
    return result


def cache_of(result: BuildResult) -> Path:
    """The ``LNN_CONTROL_CACHE`` value that makes a process find ``result`` (``<cache>/msgs/<key>/install``)."""
    return result.prefix.parents[2]


def use_in_this_process(result: BuildResult) -> None:
    """Put the build on this process's ``sys.path``, as importing lnn_control.ros does for the user's cache (not on
    its environment: the session's other child processes must not inherit it)."""
    built_msgs.activate(cache_of(result) / "msgs", export=False)
