"""``lnn-control inspect BAG [BAG ...]``: topics, types, counts, rates and gaps of bags, and what of them would train
(:mod:`lnn_control.data.inspect`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lnn_control.data.bags import BagError
from lnn_control.data.inspect import format_info, inspect_bag
from lnn_control.data.labels import CommandConfig
from lnn_control.data.pairing import PairingConfig


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lnn-control inspect``."""
    parser.add_argument("bags", nargs="+", type=Path, metavar="BAG", help="rosbag2 folder, .mcap, .db3 or ROS 1 .bag")
    parser.add_argument("--image-topic", default=None, help="only this image topic (default: every image topic)")
    parser.add_argument("--command-topic", default=None, help="only this command topic (default: every one)")
    parser.add_argument("--tolerance", type=float, default=0.25, help="pairing tolerance in seconds (0.25)")
    parser.add_argument("--stamps", choices=("header", "log"), default="header", help="stamps to pair on (header)")
    parser.add_argument("--joy-axes", type=int, nargs=2, default=(0, 1), metavar=("STEER", "VEL"), help="Joy axes")
    parser.add_argument("--ackermann-max-angle", type=float, default=0.5, help="rad of full steering (0.5)")
    parser.add_argument("--no-decode", action="store_true", help="count pairs without decoding frames (faster)")
    parser.add_argument("--gaps", type=int, default=3, help="largest gaps to list per topic (3)")
    parser.add_argument("--json", action="store_true", help="one JSON object per bag instead of the table")


def run(args: argparse.Namespace) -> int:
    """Inspect each bag; exit status 1 if any could not be read."""
    pairing = PairingConfig(
        image_topic=args.image_topic,
        command_topic=args.command_topic,
        tolerance_s=args.tolerance,
        stamp_source=args.stamps,
        commands=CommandConfig(
            joy_steering_axis=args.joy_axes[0],
            joy_velocity_axis=args.joy_axes[1],
            ackermann_max_steering_angle=args.ackermann_max_angle,
        ),
    )
    status = 0
    for n, path in enumerate(args.bags):
        try:
            info = inspect_bag(path, pairing, decode=not args.no_decode, n_gaps=args.gaps)
        except BagError as exc:
            print(f"inspect: {exc}", file=sys.stderr)
            status = 1
            continue
        if args.json:
            print(json.dumps(info))
        else:
            if n:
                print()
            print(format_info(info, pairing))
    return status
