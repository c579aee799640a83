"""Where the package's data files live, in a source checkout, a pip install or a colcon install."""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "lnn_control"
SOURCE_ROOT = Path(__file__).resolve().parent.parent


def share_dir() -> Path:
    """The folder holding ``config/``, ``launch/`` and ``models/``.

    A source checkout or editable install uses the repository root; a colcon or wheel install uses
    ``<prefix>/share/lnn_control``.
    """
    if (SOURCE_ROOT / "config").is_dir() and (SOURCE_ROOT / "package.xml").is_file():
        return SOURCE_ROOT
    for prefix in (Path(sys.prefix), SOURCE_ROOT.parents[2] if len(SOURCE_ROOT.parents) > 2 else SOURCE_ROOT):
        candidate = prefix / "share" / PACKAGE
        if candidate.is_dir():
            return candidate
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except Exception as exc:  # noqa: BLE001 - any failure means the same thing here
        raise FileNotFoundError(f"cannot find the share folder of {PACKAGE} (config/, launch/, models/)") from exc


def config_file(name: str) -> Path:
    """A file under ``config/``, e.g. ``config_file("drive.yaml")``."""
    return share_dir() / "config" / name


def model_file(name: str) -> Path:
    """A file under ``models/``."""
    return share_dir() / "models" / name
