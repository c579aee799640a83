"""``lnn-control build-msgs``: build the interface packages the ROS 2 wheels lack (ackermann_msgs, tf2_msgs)."""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lnn-control build-msgs``."""
    from lnn_control.ros.msg_build import PACKAGES

    parser.add_argument("packages", nargs="*", metavar="PACKAGE",
                        help=f"what to build (default: all of {', '.join(PACKAGES)})")
    parser.add_argument("--cache", help="cache folder (default: $LNN_CONTROL_CACHE or ~/.cache/lnn_control); "
                        "builds go to <cache>/msgs")
    parser.add_argument("--force", action="store_true", help="rebuild even when the same build is cached")
    parser.add_argument("--jobs", "-j", type=int, help="parallel compile jobs (default: every CPU)")
    parser.add_argument("--no-check", action="store_true",
                        help="skip the import-and-serialise check of the built packages in a fresh process")
    parser.add_argument("--cpp", action="store_true",
                        help="also build the C++ code (headers and typesupports for rclcpp); rclpy needs only C")
    parser.add_argument("--keep-sources", action="store_true", help="keep the generated sources and build folders")
    parser.add_argument("--where", action="store_true", help="print the current build's prefix (nothing built)")


def run(args: argparse.Namespace) -> int:
    """Build (or reuse) and say where; 1 when the build cannot run or fails."""
    from lnn_control.ros.built_msgs import cache_root, current_build
    from lnn_control.ros.msg_build import MsgBuildError, build

    if args.where:
        record = current_build(cache_root(args.cache))
        if record is None:
            print(f"build-msgs: no build in {cache_root(args.cache)} for this Python; run lnn-control build-msgs",
                  file=sys.stderr)
            return 1
        print(f"{record['folder']}/install")
        return 0
    try:
        result = build(args.packages or None, cache=args.cache, force=args.force, jobs=args.jobs,
                       check=not args.no_check, cpp=args.cpp, keep_sources=args.keep_sources, say=print)
    except MsgBuildError as exc:
        print(f"build-msgs: {exc}", file=sys.stderr)
        return 1
    what = ", ".join(f"{name} ({', '.join(types)})" for name, types in result.record["packages"].items())
    how = f"built in {result.seconds:.1f} s" if result.built else "already built"
    print(f"{what}: {how}, in {result.prefix}")
    print("lnn_control's nodes and tools find it by themselves; for other programs (ros2 CLI): "
          f". {result.prefix}/setup.sh")
    return 0
