"""``lnn-control up SET``: start a node set from the config YAML (:mod:`lnn_control.bringup`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

from lnn_control.bringup import NODE_SETS, BringupError, Plan, describe_plan, make_plan, start


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lnn-control up``."""
    parser.add_argument(
        "set", choices=list(NODE_SETS), help="; ".join(f"{k}: {v.description}" for k, v in NODE_SETS.items())
    )
    parser.add_argument(
        "--config", action="append", metavar="FILE",
        help="extra parameter YAML, applied after the set's own (repeatable)",
    )
    parser.add_argument(
        "--set", dest="set_params", action="append", metavar="NODE.PARAM=VALUE",
        help="one parameter (repeatable); NODE may be * for all",
    )
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: run until Ctrl-C)")
    parser.add_argument("--processes", action="store_true", help="one process per node instead of one for all")
    parser.add_argument(
        "--threads", type=int, metavar="N", help="executor threads in one process (default 1: single-threaded)"
    )
    parser.add_argument("--local", action="store_true", help="keep all DDS traffic on this machine (tests, demos)")
    parser.add_argument("--without", action="append", metavar="NODE", help="leave a node of the set out (repeatable)")
    parser.add_argument("--with", dest="with_nodes", action="append", metavar="NODE", help="add a node (repeatable)")
    parser.add_argument("--namespace", metavar="NS", help="push every node into this namespace (e.g. /robot1)")
    parser.add_argument(
        "--print-params", action="store_true",
        help="print the resolved set (nodes, remaps, the merged parameter file) as YAML and exit",
    )


def plan_from_args(args: argparse.Namespace, base_env: Mapping[str, str] | None = None) -> Plan:
    """The :class:`~lnn_control.bringup.Plan` the parsed arguments ask for."""
    return make_plan(
        args.set, without=args.without or [], with_nodes=args.with_nodes or [], configs=args.config or [],
        set_items=args.set_params or [], local=args.local, threads=args.threads, namespace=args.namespace or "",
        base_env=base_env,
    )


def run(args: argparse.Namespace) -> int:
    """Start the set; returns the exit status."""
    if args.duration is not None and args.duration <= 0:
        print("error: --duration must be positive", file=sys.stderr)
        return 2
    if args.threads is not None and args.threads < 1:
        print("error: --threads must be at least 1", file=sys.stderr)
        return 2
    try:
        plan = plan_from_args(args)
    except BringupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print_params:
        print(describe_plan(plan), end="")
        return 0
    return start(plan, processes=args.processes, duration=args.duration)
