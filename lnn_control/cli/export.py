"""``lnn-control export --model M --format onnx|torchscript [--out PATH]``: the single-step policy for edge devices
(:mod:`lnn_control.nn.export`)."""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lnn-control export``."""
    parser.add_argument("--model", required=True, help="checkpoint (stem, .safetensors, .json or a name in models/)")
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    parser.add_argument("--out", help="output file (default: beside the model, .onnx or .pt)")


def run(args: argparse.Namespace) -> int:
    """Export and print where the file went; 1 when the model is missing or bad."""
    from lnn_control.nn.checkpoint import CheckpointError
    from lnn_control.nn.export import export
    from lnn_control.paths import ModelNotFoundError

    try:
        out = export(args.model, args.format, args.out)
    except (ModelNotFoundError, CheckpointError) as exc:
        print(f"export: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB), single step: frame, state, dt -> output, next_state")
    return 0
