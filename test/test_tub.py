"""Donkeycar tub import: the real tub (1000 frames), JPEG bytes untouched, steering sign flipped, and the skips."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
from data_helpers import TUB_ARCHIVE, frame_pixels, jpeg_bytes, need

from lnn_control import cli
from lnn_control.data.bags import Bag
from lnn_control.data.pairing import count_pairs
from lnn_control.data.tub import TubError, import_tub

IMAGE = "/camera/image_raw/compressed"
CMD = "/teleop/cmd_vel"


@pytest.fixture(scope="module")
def real_tub(tmp_path_factory):
    """The real tub imported once through the CLI verb (MCAP), and its records and JPEGs read from the archive."""
    out = tmp_path_factory.mktemp("tub") / "bag"
    assert cli.main(["import-tub", str(need(TUB_ARCHIVE)), "--out", str(out)]) == 0
    files = {}
    with tarfile.open(TUB_ARCHIVE) as tar:
        for member in tar:  # one pass: random access into a .tar.gz re-reads it from the start
            if member.isfile():
                files[member.name] = tar.extractfile(member).read()
    catalog = files["tub/catalog_0.catalog"].decode()
    records = [json.loads(line) for line in catalog.splitlines() if line.strip()]
    jpegs = {r["_index"]: files[f"tub/images/{r['cam/image_array']}"] for r in records}
    return out, records, jpegs


def test_real_tub_imports_every_frame_unchanged(real_tub):
    out, records, jpegs = real_tub
    assert len(records) == 1000
    with Bag(out) as bag:
        assert bag.kind == "mcap"
        assert bag.topics[IMAGE].count == 1000 and bag.topics[CMD].count == 1000
        images = list(bag.records([IMAGE]))
        commands = list(bag.records([CMD]))
    for rec, img, cmd in zip(records, images, commands, strict=True):
        assert img.msg.format == "jpeg"
        assert img.msg.data.tobytes() == jpegs[rec["_index"]]  # byte-identical JPEG
        assert cmd.msg.twist.angular.z == pytest.approx(-rec["user/angle"])  # Donkeycar +right -> REP 103 +left
        assert cmd.msg.twist.linear.x == pytest.approx(rec["user/throttle"])
        assert img.header_ns == cmd.header_ns == img.log_ns
    stamps = np.array([r.header_ns for r in images])
    assert np.all(np.diff(stamps) == 50_000_000)  # synthesised at 20 Hz in catalog order
    assert stamps[0] == records[0]["_timestamp_ms"] * 1_000_000


def test_real_tub_pairs_and_decodes(real_tub):
    out, records, _ = real_tub
    rep = count_pairs(out)
    assert (rep.frames, rep.paired, rep.skipped_no_command, rep.skipped_undecodable) == (1000, 1000, 0, 0)
    assert (rep.frame_width, rep.frame_height) == (160, 120)


def test_split_and_sqlite3(tmp_path):
    report = import_tub(need(TUB_ARCHIVE), tmp_path / "ep", storage="sqlite3", split_at=[800])
    assert report.bags == [str(tmp_path / "ep_0"), str(tmp_path / "ep_1")]
    counts = []
    for path in report.bags:
        with Bag(path) as bag:
            assert bag.kind == "sqlite3"
            counts.append(bag.topics[IMAGE].count)
    assert counts == [800, 200]
    with Bag(tmp_path / "ep_1") as bag:  # the second episode carries on in time
        first = next(bag.records([IMAGE]))
    assert first.header_ns - report_start(tmp_path / "ep_0") == 800 * 50_000_000


def report_start(path):
    with Bag(path) as bag:
        return next(bag.records([IMAGE])).header_ns


def write_tub(root, records, deleted=(), images=None):
    (root / "images").mkdir(parents=True)
    manifest = [
        ["cam/image_array", "user/angle", "user/throttle", "user/mode"],
        ["image_array", "float", "float", "str"],
        {},
        {"created_at": 0},
        {"paths": ["catalog_0.catalog"], "current_index": len(records), "deleted_indexes": list(deleted)},
    ]
    (root / "manifest.json").write_text("\n".join(json.dumps(m) for m in manifest) + "\n")
    lines = []
    for rec in records:
        lines.append(rec if isinstance(rec, str) else json.dumps(rec))
        if isinstance(rec, dict) and rec.get("cam/image_array") and (images is None or rec["_index"] in images):
            (root / "images" / rec["cam/image_array"]).write_bytes(jpeg_bytes(frame_pixels(rec["_index"])))
    (root / "catalog_0.catalog").write_text("\n".join(lines) + "\n")
    (root / "._catalog_0.catalog").write_bytes(b"\x00\x05\x16\x07Mac OS X junk")


def record(i, mode="user", ts=None):
    return {
        "_index": i,
        "_timestamp_ms": 1_600_000_000_000 + (ts if ts is not None else i * 100),
        "cam/image_array": f"{i}_cam_image_array_.jpg",
        "user/angle": 0.1 * (i % 5),
        "user/throttle": 0.5,
        "user/mode": mode,
    }


def test_modes_deleted_missing_and_bad_lines_are_counted(tmp_path):
    recs = [record(i, mode="local" if i in (3, 4) else "user") for i in range(10)]
    recs.insert(6, "{not json")
    write_tub(tmp_path / "tub", recs, deleted=[7], images=set(range(10)) - {8})
    report = import_tub(tmp_path / "tub", tmp_path / "bag", hz=10)
    assert report.records == 10 and report.skipped_bad_line == 1
    assert report.skipped_not_user == 2 and report.skipped_deleted == 1 and report.skipped_missing_image == 1
    assert report.frames_written == 6 and report.modes == {"user": 7, "local": 2}
    with Bag(tmp_path / "bag") as bag:
        stamps = [r.header_ns for r in bag.records([IMAGE])]
    # frames 0 1 2 _ _ 5 6 _ _ 9 at 10 Hz: what is left out stays a gap in time
    start = 1_600_000_000_000 * 1_000_000
    assert stamps == [start + k * 100_000_000 for k in (0, 1, 2, 5, 6, 9)]


def test_trusted_timestamps_and_errors(tmp_path):
    write_tub(tmp_path / "tub", [record(i, ts=i * 37) for i in range(4)])
    import_tub(tmp_path / "tub", tmp_path / "bag", trust_timestamps=True)
    with Bag(tmp_path / "bag") as bag:
        stamps = [r.header_ns for r in bag.records([CMD])]
    assert np.diff(stamps).tolist() == [37_000_000] * 3
    with pytest.raises(TubError, match="exists already"):
        import_tub(tmp_path / "tub", tmp_path / "bag")
    with pytest.raises(TubError, match="no manifest.json found"):
        import_tub(tmp_path / "bag", tmp_path / "other")
    write_tub(tmp_path / "pilot", [record(i, mode="local") for i in range(3)])
    with pytest.raises(TubError, match="no human-driven frame"):
        import_tub(tmp_path / "pilot", tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_cli_reports_a_bad_tub(tmp_path, capsys):
    assert cli.main(["import-tub", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 1
    assert "none: does not exist" in capsys.readouterr().err
