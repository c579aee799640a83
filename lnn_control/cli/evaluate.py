"""``lnn-control eval``: replay bags through models' steps and report their errors against the human
(:mod:`lnn_control.evaluate`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from lnn_control.data.bags import BagError
from lnn_control.data.labels import CommandConfig
from lnn_control.data.pairing import PairingConfig
from lnn_control.driver import load_driver_config
from lnn_control.evaluate import Model, evaluate_bags, live_evaluation, load_models
from lnn_control.nn.checkpoint import CheckpointError


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments ``eval`` and ``replay-diff`` share: models, bags, topics, stamps, driver config, threads."""
    parser.add_argument("--model", dest="models", action="append", required=True, metavar="M",
                        help="checkpoint (stem, .safetensors, .json or a name in models/); repeat for several")
    parser.add_argument("--bags", nargs="+", required=True, metavar="BAG", help="bags or folders of bags")
    parser.add_argument("--image-topic", default=None, help="image topic (default: the model's, or the only one)")
    parser.add_argument("--stamps", choices=("header", "log"), default=None, help="stamps fed to the driver")
    parser.add_argument("--driver-config", type=Path, action="append", default=None, metavar="YAML",
                        help="the nodes' parameter file (config/drive.yaml: drive_node, else perception_node + "
                             "policy_node; limits, timing, crops), read as the nodes read it; repeat to layer files "
                             "as `up` does (default: the limits' defaults, the model's own timing and crop)")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad bag instead of skipping it")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2)")


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lnn-control eval``."""
    add_replay_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    parser.add_argument("--name", dest="names", action="append", default=None, help="report name of each model")
    parser.add_argument("--command-topic", default=None, help="human command topic (default: the model's)")
    parser.add_argument("--tolerance", type=float, default=None, help="pairing tolerance in seconds")
    parser.add_argument("--saliency-frames", type=int, default=120, help="saliency frames per model and bag (120)")
    parser.add_argument("--saliency-bags", type=int, default=1, help="bags that get a saliency video (the first 1)")
    parser.add_argument("--no-plots", action="store_true", help="numbers only: no plots, no saliency video")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--live", action="store_true",
                        help="also play each bag into a real drive_node per model (needs rclpy) and compare its "
                             "commands with the offline replay")
    parser.add_argument("--live-rate", type=float, default=1.0, help="playback rate of --live (1.0)")


def pairing_from_args(args: argparse.Namespace, models: Sequence[Model]) -> PairingConfig:
    """The first model's pairing with the command-line overrides applied."""
    base = next((p for p in (m.pairing() for m in models) if p is not None), PairingConfig())
    data = base.to_dict()
    for arg, key in (("image_topic", "image_topic"), ("command_topic", "command_topic"),
                     ("tolerance", "tolerance_s"), ("stamps", "stamp_source")):
        if getattr(args, arg, None) is not None:
            data[key] = getattr(args, arg)
    data["commands"] = CommandConfig(**data["commands"])
    return PairingConfig(**data)


def run(args: argparse.Namespace) -> int:
    """Evaluate; exit 0 with a report, 1 when nothing could be evaluated (or a bad bag under --strict)."""
    torch.set_num_threads(max(1, args.threads))
    try:
        models = load_models(args.models, args.names)
        result = evaluate_bags(
            models, args.bags, args.out, pairing=pairing_from_args(args, models),
            driver_config=load_driver_config(*(args.driver_config or ())), strict=args.strict, plots=not args.no_plots,
            saliency_frames=args.saliency_frames, saliency_bags=args.saliency_bags, progress=not args.no_progress,
        )
    except (BagError, CheckpointError, ValueError, OSError) as exc:
        print(f"eval: {exc}", file=sys.stderr)
        return 1
    print(result.text)
    if args.live:
        try:
            live = live_evaluation(models, result.replays, args.out, driver_config=load_driver_config(
                *(args.driver_config or ())), rate=args.live_rate)
        except (ImportError, RuntimeError, BagError, OSError) as exc:
            print(f"eval --live: {exc}", file=sys.stderr)
            return 1
        print("\nlive drive_node vs offline replay (same frames, commands matched by camera stamp)")
        print(live)
    if result.skipped:
        print(f"\nskipped {len(result.skipped)} bag(s): " + "; ".join(s["error"] for s in result.skipped))
    print(f"\nreport in {result.out}")
    return 0
