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


# -- models ---------------------------------------------------------------------------------------------------------

CHECKPOINT_SUFFIXES = (".json", ".safetensors")


class ModelNotFoundError(FileNotFoundError):
    """No checkpoint by that name; the message names the files that are missing."""


#: The model an empty ``model`` means when ``models/`` holds several: the car's (the drone sets name theirs).
DEFAULT_MODEL = "ltc_ncp_carracing"


def shipped_model() -> Path:
    """The checkpoint stem shipped in ``models/``: the only one, else one named ``default``, else
    :data:`DEFAULT_MODEL`."""
    folder = model_file("")
    found = sorted(p.with_suffix("") for p in folder.glob("*.json")) if folder.is_dir() else []
    chosen = [p for p in found if p.name == "default"] or [p for p in found if p.name == DEFAULT_MODEL] or found
    if len(chosen) == 1:
        return chosen[0]
    how = (
        "name one: a checkpoint stem, .json or .safetensors, or a name in models/ (lnn-control ... --model PATH; "
        "the nodes' parameter model:=PATH, e.g. lnn-control up drive --set drive_node.model=PATH)"
    )
    if not chosen:
        raise ModelNotFoundError(f"no model is shipped in {folder}: {how}")
    raise ModelNotFoundError(
        f"several models in {folder} ({', '.join(p.name for p in chosen)}) and none is 'default': {how}"
    )


def _stem(path: Path) -> Path:
    return path.with_suffix("") if path.suffix in CHECKPOINT_SUFFIXES else path


def _missing(stem: Path) -> list[Path]:
    return [stem.with_name(stem.name + s) for s in CHECKPOINT_SUFFIXES if not stem.with_name(stem.name + s).is_file()]


def resolve_model(name: str | Path | None = None) -> Path:
    """The checkpoint stem (``stem.json`` and ``stem.safetensors`` beside each other) that ``name`` names.

    ``name`` is a stem, either file of the pair, or a bare name looked up in the package's ``models/`` folder;
    empty or ``None`` is the shipped model (:func:`shipped_model`). :class:`ModelNotFoundError` names what is
    missing.
    """
    empty = name is None or not str(name).strip()
    stem = shipped_model() if empty else _stem(Path(str(name)).expanduser())
    missing = _missing(stem)
    if missing and name and not Path(name).expanduser().is_absolute():
        packaged = _stem(model_file(str(name)))
        if not _missing(packaged):
            return packaged
        if len(Path(name).parts) == 1:
            missing += [p for p in _missing(packaged) if p not in missing]
    if missing:
        raise ModelNotFoundError(f"model {name or stem}: missing {' and '.join(str(p) for p in missing)}")
    return stem
