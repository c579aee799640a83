"""``lnn-control replay-diff``: compare two models frame by frame on the same bags (:mod:`lnn_control.replay_diff`).

Exit status 0 when nothing differs beyond ``--tol``, 1 when something does, 2 when the replay itself failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

import torch

from lnn_control.cli.evaluate import add_replay_arguments
from lnn_control.data.bags import BagError
from lnn_control.driver import load_driver_config
from lnn_control.evaluate import load_models
from lnn_control.nn.checkpoint import CheckpointError
from lnn_control.replay_diff import diff_table, replay_diff


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lnn-control replay-diff``."""
    add_replay_arguments(parser)
    parser.add_argument("--tol", type=float, default=1e-4, help="largest absolute difference allowed (1e-4)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def run(args: argparse.Namespace) -> int:
    """Compare; 0 when equal within --tol, 1 when they differ, 2 when nothing could be compared."""
    if len(args.models) != 2:
        print(f"replay-diff: give exactly two --model, got {len(args.models)}", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, args.threads))
    try:
        a, b = load_models(args.models, ["A", "B"])
        diffs, skipped = replay_diff(
            a, b, args.bags, tol=args.tol, image_topic=args.image_topic, stamp_source=args.stamps or "header",
            driver_config=load_driver_config(*(args.driver_config or ())), strict=args.strict,
        )
    except (BagError, CheckpointError, ValueError, OSError) as exc:
        print(f"replay-diff: {exc}", file=sys.stderr)
        return 2
    if not diffs:
        print("replay-diff: no bag could be replayed", file=sys.stderr)
        return 2
    differ = any(d.differing for d in diffs)
    if args.json:
        print(json.dumps({"A": args.models[0], "B": args.models[1], "tol": args.tol, "differ": differ,
                          "fields": [asdict(d) for d in diffs], "skipped": skipped}))
    else:
        print(f"A = {args.models[0]}\nB = {args.models[1]}\ntolerance {args.tol:g}\n")
        print(diff_table(diffs))
        print("\n" + ("DIFFERENT: outputs differ beyond the tolerance" if differ else "same within the tolerance"))
    return 1 if differ else 0
