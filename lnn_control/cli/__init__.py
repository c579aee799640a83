"""``lnn-control``: one command, one verb per job (record, train, eval, ...).

Each verb is a module of this package (``lnn_control/cli/<verb>.py``) with ``configure(parser)`` and ``run(args) ->
int`` and nothing but argument handling and calls into the library; only this package imports argparse. This file
only dispatches, so importing the CLI imports neither torch nor rclpy until a verb needs them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: verb -> (module, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "demo": ("lnn_control.cli.demo", "run the main demo on embedded defaults"),
    "up": ("lnn_control.cli.up", "start a node set (drive, record, sim-drive, record-sim) from the config YAML"),
    "train": ("lnn_control.cli.train", "train a policy from bags"),
    "eval": ("lnn_control.cli.evaluate", "replay bags through a model's step and report errors against the human"),
    "replay-diff": ("lnn_control.cli.replay_diff", "compare two models frame by frame on the same bags"),
    "sim-eval": ("lnn_control.cli.sim_eval", "closed-loop evaluation in the simulator"),
    "play": ("lnn_control.cli.play", "publish a bag into the live ROS graph with its timing and /clock"),
    "inspect": ("lnn_control.cli.inspect", "topics, types, counts, rates and gaps of a bag"),
    "recover": ("lnn_control.cli.recover", "repair bags whose writer died, in place or (--into DIR) as copies"),
    "import-tub": ("lnn_control.cli.import_tub", "convert a Donkeycar tub into a rosbag2 MCAP bag"),
    "export": ("lnn_control.cli.export", "export the single-step policy to TorchScript or ONNX"),
    "info": ("lnn_control.cli.info", "describe a checkpoint: config, parameter counts net of masks"),
    "build-msgs": ("lnn_control.cli.build_msgs", "build the message packages the ROS wheels lack (ackermann, tf2)"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each verb's module adds its own arguments."""
    parser = argparse.ArgumentParser(prog="lnn-control", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, (_module, help_text) in VERBS.items():
        sub.add_parser(verb, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lnn-control`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in VERBS:
        parser = build_parser()
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown verb {argv[0]!r}; choose from {', '.join(VERBS)}")
        parser.print_help()
        return 0 if argv else 2
    verb, rest = argv[0], argv[1:]
    module_name, help_text = VERBS[verb]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"lnn-control {verb}", description=help_text)
    module.configure(parser)
    args = parser.parse_args(rest)
    return int(module.run(args) or 0)
