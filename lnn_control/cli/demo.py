"""``lnn-control demo``: the shipped liquid policies drive the CarRacing simulator and fly the drone through ROS, or
(``--offline``) import, train and replay a tub (:mod:`lnn_control.demo`, what ``make demo`` runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lnn_control.demo import (
    DEFAULT_MODEL,
    DRONE_DOMAINS,
    DRONE_MAX_STEPS,
    DRONE_MODEL,
    FIRST_UNSEEN_SEED,
    TUB,
    DemoOptions,
    run_demo,
)

DOMAINS = ("summer", "fall", "winter", "urban", "dusk", "fog", "distractor")


def domain_list(text: str) -> tuple[str, ...]:
    """``summer,fog`` -> the drone's domains, each checked."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in DOMAINS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"{text!r}: give domains out of {', '.join(DOMAINS)}, comma-separated")
    return names


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lnn-control demo``."""
    parser.add_argument("--out", type=Path, default=Path("reports/demo"), help="report folder (default reports/demo)")
    parser.add_argument("--model", help=f"checkpoint stem (default: the shipped models/{DEFAULT_MODEL})")
    parser.add_argument("--episodes", type=int, default=3, help="episodes to drive (default 3)")
    parser.add_argument("--seed", type=int, default=FIRST_UNSEEN_SEED,
                        help=f"seed of the first episode; episode k uses seed + k (default {FIRST_UNSEEN_SEED})")
    parser.add_argument("--max-steps", type=int, default=1000, help="frames per episode (default 1000 = 20 s)")
    parser.add_argument("--processes", action="store_true", help="run each node in its own process (up --processes)")
    parser.add_argument("--set", dest="set_params", action="append", default=[], metavar="NODE.PARAM=VALUE",
                        help="more parameters for lnn-control up sim-drive (repeatable)")
    parser.add_argument("--gif-seconds", type=float, default=20.0,
                        help="length of the car's GIF, s of sim time (the drone's shows its first flight; 0: none)")
    parser.add_argument("--domain-id", type=int, help="ROS_DOMAIN_ID for up and the observer (default: random)")
    parser.add_argument("--startup-timeout", type=float, default=120.0, help="s to wait for the first frame")
    parser.add_argument("--stall-timeout", type=float, default=30.0, help="s without a new sim step before giving up")
    parser.add_argument("--no-car", dest="car", action="store_false", help="skip the car (fly the drone only)")
    drone = parser.add_argument_group("the drone (after the car: up drone-sim-drive, one flight per domain)")
    drone.add_argument("--no-drone", dest="drone", action="store_false", help="skip the drone")
    drone.add_argument("--drone-model", help=f"drone checkpoint stem (default: the shipped models/{DRONE_MODEL})")
    drone.add_argument("--drone-domains", type=domain_list, default=DRONE_DOMAINS, metavar="D[,D...]",
                       help=f"one fly-to-target flight per domain (default {','.join(DRONE_DOMAINS)}: its training "
                            "domain and a shift it never saw)")
    drone.add_argument("--drone-seed", type=int, default=FIRST_UNSEEN_SEED,
                       help=f"seed of every flight (the same forest in each domain; default {FIRST_UNSEEN_SEED})")
    drone.add_argument("--drone-max-steps", type=int, default=DRONE_MAX_STEPS,
                       help=f"frames per flight (70 ms each; default {DRONE_MAX_STEPS}: the task's 30 s limit ends "
                            "it first)")
    offline = parser.add_argument_group("the offline pipeline (--offline)")
    offline.add_argument("--offline", action="store_true", help="import a tub, train, replay (no simulator drive)")
    offline.add_argument("--tub", type=Path, default=TUB, help="Donkeycar tub (folder or .tar.gz)")
    offline.add_argument("--minutes", type=float, default=2.0, help="training time (whole epochs)")
    offline.add_argument("--core", default="ltc", choices=("ltc", "cfc", "lstm", "cnn"))
    offline.add_argument("--threads", type=int, default=2)


def run(args: argparse.Namespace) -> int:
    """``lnn-control demo``."""
    return run_demo(DemoOptions(**vars(args)))
