"""``lnn-control info MODEL``: what a checkpoint is: core, wiring, sizes net of masks, preprocessing, metadata."""

from __future__ import annotations

import argparse
import json
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lnn-control info``."""
    parser.add_argument("model", help="checkpoint (stem, .safetensors, .json or a name in models/)")
    parser.add_argument("--json", action="store_true", help="print the parameter counts as JSON")


def run(args: argparse.Namespace) -> int:
    """Load the checkpoint (validating it) and describe it; 1 when it is missing or bad."""
    from lnn_control.nn.checkpoint import CheckpointError, describe, load
    from lnn_control.paths import ModelNotFoundError, resolve_model

    try:
        stem = resolve_model(args.model)
        print(json.dumps(load(stem).parameter_counts()) if args.json else describe(stem))
    except (ModelNotFoundError, CheckpointError) as exc:
        print(f"info: {exc}", file=sys.stderr)
        return 1
    return 0
