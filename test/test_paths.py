"""One model resolver for every verb and node; the CLI package holds all argument parsing and imports no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from lnn_control import cli
from lnn_control.paths import ModelNotFoundError, model_file, resolve_model

ROOT = Path(__file__).resolve().parent.parent


def _pair(stem: Path) -> Path:
    stem.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".json", ".safetensors"):
        stem.with_name(stem.name + suffix).write_text("{}")
    return stem


def test_resolve_model_reads_a_stem_either_file_a_packaged_name_or_nothing(tmp_path, monkeypatch):
    stem = _pair(tmp_path / "runs" / "best.v2")
    assert resolve_model(stem) == resolve_model(f"{stem}.json") == resolve_model(f"{stem}.safetensors") == stem
    shipped = model_file("ltc_ncp_carracing")
    assert resolve_model("ltc_ncp_carracing") == resolve_model("ltc_ncp_carracing.json") == shipped
    assert resolve_model(None) == resolve_model("") == shipped  # the one model in models/
    monkeypatch.chdir(tmp_path)
    _pair(tmp_path / "ltc_ncp_carracing")
    assert resolve_model("ltc_ncp_carracing") == Path("ltc_ncp_carracing")  # a path that exists wins


def test_resolve_model_names_what_is_missing(tmp_path):
    (tmp_path / "half.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match=r"missing \S*half\.safetensors$"):
        resolve_model(tmp_path / "half")
    with pytest.raises(ModelNotFoundError, match=r"nobody\.json and \S*nobody\.safetensors and \S*models/nobody\.json"):
        resolve_model("nobody")


def test_verbs_live_in_the_cli_package_and_only_it_parses_arguments():
    assert all(module == f"lnn_control.cli.{module.rsplit('.', 1)[1]}" for module, _ in cli.VERBS.values())
    parsing = set()
    for path in (ROOT / "lnn_control").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if "argparse" in names or (isinstance(node, ast.ImportFrom) and node.module == "argparse"):
                parsing.add(path.relative_to(ROOT).parts[:2])
    assert parsing == {("lnn_control", "cli")}


def test_importing_the_cli_imports_neither_torch_nor_rclpy():
    code = ("import sys, lnn_control.cli; "
            "sys.exit(any(m.split('.')[0] in ('torch', 'rclpy') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
    help_text = subprocess.run([sys.executable, "-m", "lnn_control.cli", "--help"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout
    assert all(verb in help_text for verb in cli.VERBS)
