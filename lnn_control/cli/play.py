"""``lnn-control play BAG``: publish a bag into the live ROS graph with its timing and /clock
(:mod:`lnn_control.ros.player`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lnn-control play``."""
    parser.add_argument("bag", type=Path, help="rosbag2 folder, .mcap or .db3")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor (1.0)")
    parser.add_argument("--clock", type=float, nargs="?", const=40.0, default=None, metavar="HZ",
                        help="publish /clock with the bag's time (40 Hz, or HZ)")
    parser.add_argument("--loop", action="store_true", help="start over at the end until interrupted")
    parser.add_argument("--topics", nargs="+", default=(), metavar="TOPIC", help="only these topics")
    parser.add_argument("--local", action="store_true", help="keep DDS traffic on this machine")
    parser.add_argument("--qos-depth", type=int, default=100, help="publisher keep-last depth (100)")
    parser.add_argument("--wait-for-subscribers", type=int, default=0, metavar="N",
                        help="before playing, wait until every topic has N subscribers")
    parser.add_argument("--wait-timeout", type=float, default=10.0, help="seconds to wait for subscribers (10)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before playing (0)")


def run(args: argparse.Namespace) -> int:
    """Play; 0 when done (or interrupted), 1 when the bag cannot be played."""
    from lnn_control.data.bags import BagError
    from lnn_control.ros.player import PlayError, play_bag

    try:
        stats = play_bag(
            args.bag, local=args.local, rate=args.rate, clock_hz=args.clock, loop=args.loop, topics=args.topics,
            qos_depth=args.qos_depth, wait_for_subscribers=args.wait_for_subscribers,
            wait_timeout_s=args.wait_timeout, delay_s=args.delay,
        )
    except (BagError, PlayError) as exc:
        print(f"play: {exc}", file=sys.stderr)
        return 1
    print(f"play: {stats.summary()}")
    return 0
