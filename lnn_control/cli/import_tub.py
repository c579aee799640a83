"""``lnn-control import-tub TUB``: convert a Donkeycar tub into a rosbag2 bag (:mod:`lnn_control.data.tub`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lnn_control.data.tub import DEFAULT_COMMAND_TOPIC, DEFAULT_IMAGE_TOPIC, TubError, default_out, describe, import_tub


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lnn-control import-tub``."""
    parser.add_argument("path", type=Path, help="tub folder (with manifest.json) or a .tar.gz of one")
    parser.add_argument("--out", type=Path, default=None, help="bag folder to create (default: ./<tub name>_bag)")
    parser.add_argument("--hz", type=float, default=20.0, help="frame rate for synthesised stamps (default 20)")
    parser.add_argument("--image-topic", default=DEFAULT_IMAGE_TOPIC, help="CompressedImage topic to write")
    parser.add_argument("--command-topic", default=DEFAULT_COMMAND_TOPIC, help="TwistStamped topic to write")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="rosbag2 storage (mcap)")
    parser.add_argument(
        "--trust-timestamps", action="store_true", help="use the tub's _timestamp_ms instead of synthesised stamps"
    )
    parser.add_argument(
        "--split-at",
        type=int,
        nargs="+",
        default=(),
        metavar="N",
        help="cut into several bags (episodes) after N frames, e.g. --split-at 800 -> OUT_0 (800), OUT_1 (rest)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the import; prints a summary and one JSON line. Exit status 1 on a bad tub."""
    try:
        report = import_tub(
            args.path,
            args.out or default_out(args.path),
            hz=args.hz,
            image_topic=args.image_topic,
            command_topic=args.command_topic,
            storage=args.storage,
            trust_timestamps=args.trust_timestamps,
            split_at=args.split_at,
        )
    except (TubError, OSError) as exc:
        print(f"import-tub: {exc}", file=sys.stderr)
        return 1
    print(describe(report, args.storage))
    print(json.dumps(report.to_dict()))
    return 0
