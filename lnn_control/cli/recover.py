"""``lnn-control recover BAG [BAG ...]``: repair bags whose writer died, in place or (``--into DIR``) as copies.

The one way to repair a bag (``recorder_node --recover BAG`` is an alias). See :mod:`lnn_control.data.recovery` for
what is repaired and how; each bag's outcome is printed, each error names its bag on stderr, and the exit status is
1 when any bag could not be recovered.
"""

from __future__ import annotations

import argparse
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


def run(args: argparse.Namespace) -> int:
    """Recover the bags named on the command line."""
    from lnn_control.data.recovery import recover_bags

    return recover_bags(args.bags, args.into)
