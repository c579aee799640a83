"""``lnn-control info MODEL``: what a checkpoint is: core, wiring, sizes net of masks, preprocessing, metadata."""

from __future__ import annotations

import argparse
import json


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lnn-control info``."""
    parser.add_argument("model", help="checkpoint (stem, .safetensors or .json)")
    parser.add_argument("--json", action="store_true", help="print the parameter counts as JSON")


def run(args: argparse.Namespace) -> int:
    """Load the checkpoint (validating it) and describe it."""
    from lnn_control.nn.checkpoint import load, paths, read_config

    policy = load(args.model)
    document = read_config(args.model)
    counts = policy.parameter_counts()
    if args.json:
        print(json.dumps(counts))
        return 0
    config = policy.config
    weights, _ = paths(args.model)
    pre = config.preprocess
    print(f"model        {weights}")
    print(f"core         {config.core}" + (f" ({config.cfc_mode})" if config.core == "cfc" else ""))
    if "neurons" in counts:
        print(f"wiring       {config.wiring}: {counts['neurons']} neurons, {counts['synapses']} synapses")
    print(f"parameters   recurrent {counts['recurrent']:,} (net of masks), conv head {counts['encoder']:,}, "
          f"total {counts['total']:,}")
    print(f"input        {pre.height}x{pre.width} RGB after crop t{pre.crop_top} b{pre.crop_bottom} "
          f"l{pre.crop_left} r{pre.crop_right}; dt unit {config.dt_unit_s} s")
    print(f"outputs      {', '.join(config.outputs)} (mean {list(config.target_mean)}, std {list(config.target_std)})")
    for key, value in document.get("metadata", {}).items():
        print(f"{key:<12} {value if not isinstance(value, (dict, list)) else json.dumps(value)}")
    return 0
