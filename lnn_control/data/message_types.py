"""Message definitions a rosbags type store lacks: from ``.msg`` files of installed packages, or from a bag's schema."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from rosbags.typesys import get_types_from_idl, get_types_from_msg
from rosbags.typesys.store import Typestore


class MessageTypeError(ValueError):
    """A message type whose definition cannot be found; the text names the type and where it was looked for."""


_BUILTINS = {
    "bool",
    "byte",
    "char",
    "float32",
    "float64",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "string",
    "wstring",
}


def _share_dirs() -> list[Path]:
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    return [Path(p) / "share" for p in prefixes]


def _find_msg_file(msgtype: str) -> Path | None:
    pkg, _, name = msgtype.split("/")
    for share in _share_dirs():
        candidate = share / pkg / "msg" / f"{name}.msg"
        if candidate.is_file():
            return candidate
    return None


def _referenced(node: Any) -> list[str]:
    """Type names referenced by a rosbags field description (recursing into arrays and sequences)."""
    kind, detail = node
    if getattr(kind, "name", "") == "NAME":
        return [detail]
    if isinstance(detail, tuple) and detail and isinstance(detail[0], tuple) and len(detail[0]) == 2:
        return _referenced(detail[0])
    return []


def ensure_type(store: Typestore, msgtype: str) -> None:
    """Register ``msgtype`` (and what it uses) in ``store`` from ``.msg`` files under ``share/`` when missing.

    The folders searched are ``$AMENT_PREFIX_PATH/*/share`` (a ROS install) and ``sys.prefix/share`` (the pip
    wheels). Raises :class:`MessageTypeError` naming the type when no definition is found.
    """
    pending = [msgtype]
    while pending:
        name = pending.pop()
        if name in store.fielddefs or name.split("/")[-1] in _BUILTINS:
            continue
        path = _find_msg_file(name)
        if path is None:
            raise MessageTypeError(
                f"type {name}: not in the rosbags type store and no {name.split('/')[-1]}.msg under "
                f"{', '.join(str(d) for d in _share_dirs())}; install its interface package"
            )
        types = get_types_from_msg(path.read_text(), name)
        store.register(types)
        for _consts, fields in types.values():
            for _fname, node in fields:
                pending.extend(t for t in _referenced(node) if t not in store.fielddefs)


def register_definition(store: Typestore, name: str, encoding: str, text: str) -> None:
    """Register a definition as a bag stores it (``ros2msg``, or ``ros2idl`` as rosbag2 writes it) in ``store``."""
    if encoding == "ros2msg":
        store.register(get_types_from_msg(text, name))
        return
    sep = "=" * 80 + "\n"
    for part in text.split(sep)[1:] if text.startswith(sep) else [text]:
        store.register(get_types_from_idl(part.split("\n", 1)[1] if part.startswith("IDL:") else part))


_TYPE_RE = re.compile(
    r"^(?P<pkg>[A-Za-z][A-Za-z0-9_]*)[/.](?:(?P<kind>msg|srv|action)[/.])?(?P<name>[A-Z][A-Za-z0-9_]*)$"
)


def normalize_type_name(type_name: str) -> str:
    """``sensor_msgs/Image``, ``sensor_msgs/msg/Image`` or ``sensor_msgs.msg.Image`` -> ``sensor_msgs/msg/Image``;
    ``ValueError`` for anything else."""
    match = _TYPE_RE.match(type_name.strip())
    if not match:
        raise ValueError(f"{type_name!r} is not a message type name like 'sensor_msgs/msg/Image'")
    return f"{match['pkg']}/{match['kind'] or 'msg'}/{match['name']}"
