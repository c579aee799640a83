"""A Donkeycar tub (v2) -> a rosbag2 bag the rest of lnn_control reads (``lnn-control import-tub``).

A tub v2 is a folder (or a ``.tar.gz`` of one) holding ``manifest.json`` (JSON lines: inputs, types, metadata,
manifest metadata, then ``{"paths": [catalogs], "deleted_indexes": [...]}``), catalog files of JSON lines (one
record per camera frame) and ``images/*.jpg``. macOS ``._*`` files are ignored.

What is written, per catalog record (in catalog order):

- the image topic (default ``/camera/image_raw/compressed``): ``sensor_msgs/msg/CompressedImage`` with the tub's
  JPEG bytes unchanged and ``format = "jpeg"``, ``frame_id = "camera"``;
- the command topic (default ``/teleop/cmd_vel``): ``geometry_msgs/msg/TwistStamped`` with the same stamp,
  ``frame_id = "base_link"``:

  - ``twist.angular.z = -user/angle``: Donkeycar's ``user/angle`` is +1 for full **right**; lnn_control's steering is
    +1 for full **left** (REP 103), so the sign flips;
  - ``twist.linear.x = user/throttle``: this is Donkeycar's normalised **throttle** in [-1, 1], not a speed in m/s
    (a tub has no speed). Models trained on it output throttle in the velocity channel; scale it for your vehicle.

Stamps: Donkeycar's ``_timestamp_ms`` is often unusable as time (the real tub here spans 3.3 s for 1000 frames), so
by default stamps are synthesised at ``--hz`` (Donkeycar's loop rate, 20 Hz) in catalog order from the first record's
time; ``--trust-timestamps`` uses ``_timestamp_ms`` instead. Header stamp and log time are equal.

Only records with ``user/mode == "user"`` are human demonstrations. Others (the autopilot driving) are counted and
left out, frame and command, while time keeps advancing, so they show as a gap. Deleted indexes, records whose image is
missing and unparseable catalog lines are also counted and left out.
"""

from __future__ import annotations

import json
import math
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.typesys import Stores, get_typestore

from lnn_control.data.bag_writer import BagFormat, BagWriter

DEFAULT_IMAGE_TOPIC = "/camera/image_raw/compressed"
DEFAULT_COMMAND_TOPIC = "/teleop/cmd_vel"


class TubError(ValueError):
    """A tub that cannot be imported; the message names the file and the problem."""


@dataclass
class TubImportReport:
    """What an import read and wrote."""

    source: str
    bags: list[str] = field(default_factory=list)
    records: int = 0
    """Catalog records read (lines that parsed)."""
    frames_written: int = 0
    commands_written: int = 0
    skipped_not_user: int = 0
    skipped_deleted: int = 0
    skipped_missing_image: int = 0
    skipped_bad_line: int = 0
    modes: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return asdict(self)


@dataclass(frozen=True)
class TubRecord:
    """One catalog record as the importer uses it."""

    index: int
    timestamp_ms: int | None
    image: str | None
    angle: float
    throttle: float
    mode: str
    deleted: bool = False


def _topic(name: str) -> str:
    return name if name.startswith("/") else "/" + name


def find_tub_root(path: Path) -> Path:
    """The folder holding ``manifest.json`` at or below ``path`` (three levels at most)."""
    for depth in range(4):
        pattern = "/".join(["*"] * depth + ["manifest.json"]) if depth else "manifest.json"
        hits = sorted(p for p in path.glob(pattern) if not any(part.startswith("._") for part in p.parts))
        if hits:
            return hits[0].parent
    raise TubError(f"{path}: no manifest.json found: not a Donkeycar tub (v2)")


def read_manifest(root: Path) -> tuple[list[str], set[int]]:
    """Catalog file names (in order) and deleted indexes from ``manifest.json``."""
    manifest = root / "manifest.json"
    lines = [ln for ln in manifest.read_text(encoding="utf-8").splitlines() if ln.strip()]
    catalogs: list[str] = []
    deleted: set[int] = set()
    for number, line in enumerate(lines, 1):
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise TubError(f"{manifest}:{number}: not JSON: {exc}") from exc
        if isinstance(item, dict) and "paths" in item:
            catalogs = [str(p) for p in item["paths"]]
            deleted = {int(i) for i in item.get("deleted_indexes", [])}
    if not catalogs:  # older manifests: take the catalog files by their number
        found = [p for p in root.glob("catalog_*.catalog") if not p.name.startswith("._")]
        catalogs = [p.name for p in sorted(found, key=lambda p: int("".join(c for c in p.stem if c.isdigit()) or 0))]
    if not catalogs:
        raise TubError(f"{manifest}: names no catalog file and none is in {root}")
    return catalogs, deleted


def iter_records(root: Path, report: TubImportReport) -> Iterator[TubRecord]:
    """Catalog records in order, deleted ones flagged; bad lines are counted in ``report`` and skipped."""
    catalogs, deleted = read_manifest(root)
    for name in catalogs:
        path = root / name
        if name.startswith("._") or not path.is_file():
            raise TubError(f"{path}: catalog named in manifest.json is missing")
        with path.open(encoding="utf-8", errors="replace") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    index = int(item["_index"])
                    angle = float(item.get("user/angle", 0.0))
                    throttle = float(item.get("user/throttle", 0.0))
                except (ValueError, KeyError, TypeError) as exc:
                    report.skipped_bad_line += 1
                    if len(report.problems) < 5:
                        report.problems.append(f"{path}:{number}: unreadable record: {exc}")
                    continue
                report.records += 1
                stamp = item.get("_timestamp_ms")
                yield TubRecord(
                    index=index,
                    timestamp_ms=int(stamp) if isinstance(stamp, (int, float)) else None,
                    image=item.get("cam/image_array"),
                    angle=angle,
                    throttle=throttle,
                    mode=str(item.get("user/mode", "user")),
                    deleted=index in deleted,
                )


def _extract(archive: Path, into: Path) -> Path:
    try:
        with tarfile.open(archive, "r|*") as tar:  # one sequential pass, no seeking back in the gzip stream
            for member in tar:
                if not Path(member.name).name.startswith("._"):
                    tar.extract(member, into, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise TubError(f"{archive}: cannot extract: {exc}") from exc
    return into


def import_tub(
    path: str | Path,
    out: str | Path,
    *,
    hz: float = 20.0,
    image_topic: str = DEFAULT_IMAGE_TOPIC,
    command_topic: str = DEFAULT_COMMAND_TOPIC,
    storage: str = "mcap",
    trust_timestamps: bool = False,
    split_at: Sequence[int] = (),
) -> TubImportReport:
    """Convert the tub at ``path`` (folder or ``.tar.gz``) into the rosbag2 bag ``out`` (see the module doc).

    ``split_at`` (frame counts, ascending) cuts the output into several bags, ``out_0``, ``out_1``, ...: one
    episode each, e.g. ``[800]`` for the first 800 frames and the rest.
    """
    src, out = Path(path), Path(out)
    if not src.exists():
        raise TubError(f"{src}: does not exist")
    if not (hz > 0 and math.isfinite(hz)):
        raise TubError(f"--hz must be a positive number, got {hz}")
    cuts = sorted({int(c) for c in split_at})
    if any(c <= 0 for c in cuts):
        raise TubError(f"split points must be positive frame counts, got {list(split_at)}")
    outs = [out] if not cuts else [out.with_name(f"{out.name}_{i}") for i in range(len(cuts) + 1)]
    for target in outs:
        if target.exists():
            raise TubError(f"{target}: exists already; choose another --out")
    with tempfile.TemporaryDirectory(prefix="lnn-tub-") as tmp:
        root = find_tub_root(_extract(src, Path(tmp)) if src.is_file() else src)
        report = TubImportReport(source=str(src))
        _convert(root, outs, cuts, report, hz, _topic(image_topic), _topic(command_topic), storage, trust_timestamps)
    return report


def _convert(
    root: Path,
    outs: list[Path],
    cuts: list[int],
    report: TubImportReport,
    hz: float,
    image_topic: str,
    command_topic: str,
    storage: str,
    trust_timestamps: bool,
) -> None:
    store = get_typestore(Stores.ROS2_JAZZY)
    t = store.types
    Time, Header = t["builtin_interfaces/msg/Time"], t["std_msgs/msg/Header"]
    Compressed, TwistStamped = t["sensor_msgs/msg/CompressedImage"], t["geometry_msgs/msg/TwistStamped"]
    Twist, Vector3 = t["geometry_msgs/msg/Twist"], t["geometry_msgs/msg/Vector3"]
    period_ns = int(round(1e9 / hz))
    custom = {
        "source": "lnn-control import-tub",
        "tub": str(report.source),
        "stamps": "tub _timestamp_ms" if trust_timestamps else f"synthesised at {hz:g} Hz in catalog order",
        "steering": "angular.z = -user/angle (Donkeycar +1 = right; here +1 = left)",
        "velocity": "linear.x = user/throttle (normalised throttle, not m/s)",
    }
    writers: list[BagWriter] = []
    try:
        _open_writers(writers, outs, storage, store, custom, image_topic, command_topic)
        start_ns: int | None = None
        last_ns: int | None = None
        for position, rec in enumerate(iter_records(root, report)):
            if trust_timestamps:
                if rec.timestamp_ms is None:
                    raise TubError(f"{root}: record {rec.index} has no _timestamp_ms; drop --trust-timestamps")
                stamp = rec.timestamp_ms * 1_000_000
                if last_ns is not None and stamp <= last_ns:
                    stamp = last_ns + 1  # keep order strict
                    if len(report.problems) < 5:
                        report.problems.append(f"record {rec.index}: _timestamp_ms not increasing, nudged by 1 ns")
            else:
                if start_ns is None:
                    start_ns = (rec.timestamp_ms or 0) * 1_000_000
                stamp = start_ns + position * period_ns
            last_ns = stamp
            if rec.deleted:
                report.skipped_deleted += 1
                continue
            report.modes[rec.mode] = report.modes.get(rec.mode, 0) + 1
            if rec.mode != "user":
                report.skipped_not_user += 1
                continue
            image_path = root / "images" / rec.image if rec.image else None
            if image_path is None or not image_path.is_file():
                report.skipped_missing_image += 1
                if len(report.problems) < 5:
                    report.problems.append(f"record {rec.index}: image {rec.image!r} missing")
                continue
            jpeg = image_path.read_bytes()
            part = sum(1 for c in cuts if report.frames_written >= c)
            writer = writers[part]
            sec, nanosec = divmod(stamp, 1_000_000_000)
            header = Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id="camera")
            image = Compressed(header=header, format="jpeg", data=np.frombuffer(jpeg, dtype=np.uint8))
            writer.write_msg(image_topic, stamp, image)
            cmd = TwistStamped(
                header=Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id="base_link"),
                twist=Twist(
                    linear=Vector3(x=float(rec.throttle), y=0.0, z=0.0),
                    angular=Vector3(x=0.0, y=0.0, z=-float(rec.angle)),
                ),
            )
            writer.write_msg(command_topic, stamp, cmd)
            report.frames_written += 1
            report.commands_written += 1
        if report.frames_written == 0:
            raise TubError(f"{root}: no human-driven frame to import ({report.records} records, modes {report.modes})")
        _close_writers(writers, image_topic, cuts, report)
    except BaseException:
        for writer in writers:
            writer.abort()
        raise


def _open_writers(
    writers: list[BagWriter],
    outs: Sequence[Path],
    storage: str,
    store: Any,
    custom: dict[str, str],
    image_topic: str,
    command_topic: str,
) -> None:
    """One open writer per output bag, appended to ``writers`` (so the caller aborts them all on an error)."""
    for target in outs:
        writer = BagWriter(target, bag_format=BagFormat(storage=storage), typestore=store, custom_data=custom).open()
        writers.append(writer)
        writer.add_topic(image_topic, "sensor_msgs/msg/CompressedImage")
        writer.add_topic(command_topic, "geometry_msgs/msg/TwistStamped")


def _close_writers(writers: list[BagWriter], image_topic: str, cuts: list[int], report: TubImportReport) -> None:
    """Close every bag (none of them may be empty) and list them in ``report``."""
    for writer in writers:
        if not writer.counts[image_topic]:
            raise TubError(f"{writer.path}: split points {cuts} leave this bag empty")
    for writer in writers:
        writer.close()
        report.bags.append(str(writer.path))


def default_out(path: Path) -> Path:
    """Where a tub's bag goes by default: ``./<tub name>_bag``."""
    name = path.name
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return Path.cwd() / f"{name}_bag"


def describe(report: TubImportReport, storage: str) -> str:
    """What an import did, for a person: frames and commands written, the skips, the first problems."""
    skipped = {
        "not user-driven": report.skipped_not_user,
        "deleted": report.skipped_deleted,
        "missing image": report.skipped_missing_image,
        "unreadable line": report.skipped_bad_line,
    }
    lines = [
        f"imported {report.frames_written} frames and {report.commands_written} commands from {report.source} "
        f"into {', '.join(report.bags)} ({storage})",
        "skipped: " + (", ".join(f"{n} {k}" for k, n in skipped.items() if n) or "none"),
    ]
    return "\n".join(lines + [f"  {problem}" for problem in report.problems[:5]])
