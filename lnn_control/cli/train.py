"""``lnn-control train``: train a policy from bags (:mod:`lnn_control.train`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lnn_control.data.bags import BagError
from lnn_control.nn.checkpoint import CheckpointError
from lnn_control.train import PRECISIONS, TrainError, end_distributed, load_config, load_resume, train


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lnn-control train``."""
    parser.add_argument("--config", type=Path, default=None, help="train YAML (default: the package's train.yaml)")
    parser.add_argument("--bags", nargs="+", default=None, metavar="BAG", help="training bags or folders of bags")
    parser.add_argument("--val-bags", nargs="+", default=None, metavar="BAG", help="validation bags (by episode)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default with --resume: that folder)")
    parser.add_argument("--resume", type=Path, default=None, metavar="DIR", help="continue the run saved in DIR")
    parser.add_argument("--init", default=None, metavar="CHECKPOINT",
                        help="start from this checkpoint's weights (a fine-tune; training.init_from)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="cpu (default) or cuda")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="fp32, bf16 autocast, or auto: whichever a short measurement at the start finds faster")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (training.threads, 2)")
    parser.add_argument("--epochs", type=int, default=None, help="shorthand for --set training.epochs=N")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config field, e.g. model.core=cfc or training.lr=0.001 (repeatable)",
    )
    parser.add_argument("--strict", action="store_true", help="stop at the first bad bag instead of skipping it")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--stop-after-epochs", type=int, default=None, metavar="N",
        help="end after N epochs of the schedule (resume later with --resume)",
    )


def overrides_from_args(args: argparse.Namespace) -> list[str]:
    """``--set`` items, then the shorthand flags as ``section.key=value`` items."""
    overrides = list(args.overrides)
    for flag, key in (("precision", "training.precision"), ("threads", "training.threads"),
                      ("epochs", "training.epochs"), ("init", "training.init_from")):
        if getattr(args, flag) is not None:
            overrides.append(f"{key}={getattr(args, flag)}")
    if args.strict:
        overrides.append("training.strict=true")
    if args.no_progress:
        overrides.append("training.progress=false")
    return overrides


def run(args: argparse.Namespace) -> int:
    """Train; exit status 0 when done (early stop included), 1 when the run could not start or diverged."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    overrides = overrides_from_args(args)
    try:
        if args.resume is not None:
            if args.config is not None:
                print("train: --resume reads the config saved in the run; --config is ignored", file=sys.stderr)
            config, saved_bags, saved_val_bags = load_resume(args.resume, overrides)
            # without --bags, the same training and validation bags as the first run (its split included)
            bags = args.bags or saved_bags
            val_bags = args.val_bags or (None if args.bags else saved_val_bags)
            out = args.out or args.resume
        else:
            if not args.bags or args.out is None:
                print("train: --bags and --out are required (or --resume DIR)", file=sys.stderr)
                return 2
            config = load_config(args.config, overrides)
            bags, val_bags, out = args.bags, args.val_bags, args.out
        result = train(
            config, bags, out, val_bags=val_bags, resume=args.resume, device=args.device,
            stop_after_epochs=args.stop_after_epochs,
        )
    except (TrainError, BagError, CheckpointError, ValueError, OSError) as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 1
    finally:
        end_distributed()
    if result.rank == 0 and (result.history or result.epochs_run):
        print(
            f"train: {result.epochs_run} epochs"
            + (" (stopped early)" if result.stopped_early else "")
            + f"; best {result.best_monitor:.4f} at epoch {result.best_epoch}; "
            f"models in {result.out}/best and {result.out}/last"
        )
    return 0
