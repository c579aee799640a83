"""The bench scripts as modules, for the tests of their pure parts (bench/ is scripts, not a package)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[1] / "bench"


def bench_module(name: str) -> Iterator[ModuleType]:
    """``bench/NAME.py`` imported, and registered in ``sys.modules`` while in use (dataclasses look their module up
    there); a generator for a pytest fixture to yield from."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]
