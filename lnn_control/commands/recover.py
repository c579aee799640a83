"""``lnn-control recover BAG [BAG ...]``: repair bags whose writer died, in place or (``--into DIR``) as copies.

The one way to repair a bag (``recorder_node --recover BAG`` is an alias). See :mod:`lnn_control.data.recovery` for
what is repaired and how; each bag's outcome is printed, each error names its bag on stderr, and the exit status is
1 when any bag could not be recovered.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lnn-control recover``."""
    parser.add_argument("bags", nargs="+", metavar="BAG", help="bag folder, or a bare .mcap or .db3 file")
    parser.add_argument(
        "--into",
        type=Path,
        default=None,
        metavar="DIR",
        help="leave each bag as it is and write a repaired copy into DIR/<bag name> (DIR is created if needed)",
    )


def recover_bags(paths: Sequence[str | Path], into: str | Path | None = None) -> int:
    """Recover each bag, printing what was done; 0 when all were recovered, 1 otherwise."""
    from lnn_control.data.bags import BagError
    from lnn_control.data.recovery import recover

    code = 0
    for path in paths:
        try:
            print(recover(path, into=into))
        except BagError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = 1
    return code


def run(args: argparse.Namespace) -> int:
    """Recover the bags named on the command line."""
    return recover_bags(args.bags, args.into)
