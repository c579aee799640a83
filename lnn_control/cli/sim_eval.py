"""``lnn-control sim-eval``: closed-loop evaluation in the simulator (:mod:`lnn_control.sim.closed_loop`).

A learned policy (``--model``), the demonstrator or a constant command drives ``--episodes`` episodes of the
simulator ``--sim`` (CarRacing, with ``--domain randomize`` its random colours; or the MuJoCo drone with ``--task``
and ``--domain``) on seeds from ``--seed``,
optionally perturbed; the scores are printed (the car: reward; the drone: success, collisions, time to target) and a
report folder is written.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lnn-control sim-eval``."""
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", help="checkpoint of a learned policy to drive (stem, .json, .safetensors, a name in "
                                     "models/)")
    who.add_argument(
        "--baseline",
        choices=("expert", "constant"),
        help="drive with the demonstrator (privileged track geometry) or a constant command",
    )
    parser.add_argument("--sim", choices=("carracing", "drone"), default="carracing",
                        help="the simulator: carracing (the car, default) or drone (MuJoCo quadrotor)")
    parser.add_argument("--task", default=None, help="drone: fly-to-target (default), range, hike, track")
    parser.add_argument("--domain", default=None,
                        help="drone: summer (default, the training domain), fall, winter, urban, dusk, fog, "
                             "distractor, or a mix such as summer+fall.ground (summer on fall's ground); carracing: "
                             "default, or randomize (CarRacing's domain_randomize colours)")
    parser.add_argument("--inference", choices=("torch", "onnxruntime"), default="torch",
                        help="where a --model's network runs (default torch; onnxruntime is checked against it)")
    parser.add_argument("--episodes", type=int, default=5, help="number of episodes (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="first seed; episodes use seed, seed+1, ... (default 0)")
    parser.add_argument(
        "--perturb",
        action="append",
        default=[],
        metavar="SPEC",
        help="perturbation, repeatable and combinable: noise=V, winter, brightness=F, drop=P, latency=K "
        "(e.g. --perturb noise=0.1 --perturb drop=0.3,latency=2)",
    )
    parser.add_argument("--out", type=Path, default=None, help="report folder (default reports/sim-eval/<run>)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="steps per episode (default: a whole episode; CarRacing 1000 = 20 s, the drone's task "
                             "time limit)")
    parser.add_argument("--frame-size", default="96x96", help="camera frame HEIGHTxWIDTH (default 96x96)")
    parser.add_argument("--gif-seconds", type=float, default=10.0, help="length of the GIF, s (0: no GIF)")
    parser.add_argument("--expert-noise", type=float, default=0.0, help="expert's steering noise std (default 0)")
    parser.add_argument("--expert-drift-rate", type=float, default=0.0, help="expert's drift episodes per second")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def frame_size(text: str) -> tuple[int, int]:
    """``HEIGHTxWIDTH`` -> (height, width); SystemExit naming the option otherwise."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise SystemExit(f"sim-eval: --frame-size {text!r}: expected HEIGHTxWIDTH, e.g. 96x96") from exc
    return h, w


def run(args: argparse.Namespace) -> int:
    """``lnn-control sim-eval``: evaluate, print a summary, write the report folder."""
    from lnn_control.nn.checkpoint import CheckpointError
    from lnn_control.paths import ModelNotFoundError, resolve_model
    from lnn_control.report.tables import episode_table
    from lnn_control.sim.backends import SimSpec
    from lnn_control.sim.closed_loop import (
        ConstantController,
        expert_controller_factory,
        model_controller_factory,
        sim_eval,
    )
    from lnn_control.sim.expert import ExpertConfig
    from lnn_control.sim.perturb import PerturbConfig

    if args.episodes < 1:
        raise SystemExit("sim-eval: --episodes must be at least 1")
    try:
        perturb = PerturbConfig.parse(args.perturb)
    except ValueError as exc:
        raise SystemExit(f"sim-eval: --perturb: {exc}") from exc
    try:
        spec = SimSpec(args.sim, frame_size(args.frame_size), args.task, args.domain)
    except ValueError as exc:
        raise SystemExit(f"sim-eval: {exc}") from exc
    meta: dict = {"model": None}
    if args.model is not None:
        import torch

        torch.set_num_threads(1)  # batch 1: more threads only wait on each other (the nodes do the same)
        try:
            stem = resolve_model(args.model)
            controller_factory = model_controller_factory(stem, spec.node_set, args.inference)
        except (ModelNotFoundError, CheckpointError) as exc:
            raise SystemExit(f"sim-eval: {exc}") from exc
        name, meta["model"] = stem.name, str(stem)
    elif args.baseline == "expert":
        expert = ExpertConfig(steering_noise=args.expert_noise, drift_rate_hz=args.expert_drift_rate)
        controller_factory = expert_controller_factory(expert, seed=args.seed)
        name = "expert"
        meta["expert"] = {"steering_noise": args.expert_noise, "drift_rate_hz": args.expert_drift_rate}
    else:
        controller_factory, name = (lambda sim: ConstantController(sim.schema.stop())), "constant"
    seeds = list(range(args.seed, args.seed + args.episodes))
    run_name = f"{name}-{perturb.describe().replace(',', '_')}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        results, paths = sim_eval(
            controller_factory, seeds, args.out or Path("reports") / "sim-eval" / run_name, perturb=perturb,
            spec=spec, max_steps=args.max_steps, gif_seconds=args.gif_seconds, progress=not args.quiet,
            meta={"controller": name, **meta},
        )
    except ValueError as exc:  # a model of another action than the simulator's
        raise SystemExit(f"sim-eval: {exc}") from exc
    print(episode_table(results))
    print(score_line(results))
    print(f"report: {paths['dir']}")
    return 0


def score_line(results: list) -> str:
    """The figure a reader looks for: the car's reward, or the drone task's success rate (with collisions and time to
    target over the successes)."""
    n = len(results)
    if "success" in results[0].outcome:
        wins = [r for r in results if r.outcome["success"]]
        crashes = sum(bool(r.outcome.get("collided")) for r in results)
        times = [r.outcome["time_to_target_s"] for r in wins if np.isfinite(r.outcome["time_to_target_s"])]
        when = f", time to target {np.mean(times):.1f} s (max {np.max(times):.1f})" if times else ""
        return f"success {len(wins)}/{n} ({100 * len(wins) / n:.0f}%), collisions {crashes}/{n}{when}"
    rewards = np.array([r.reward for r in results])
    return f"reward {rewards.mean():.1f} +- {rewards.std():.1f} over {n} episodes"
