"""The drone demonstrator on seeded episodes of one task in every domain: success rate, collisions, time to target.

Episodes use seeds ``--seed .. --seed + --episodes - 1`` in each domain (the same geometry in every domain).
Frames are rendered only with ``--render`` (the demonstrator reads privileged state, so the figures are the same
without pixels) and for the one episode per domain written as a GIF with ``--gif DIR``. Ends with one JSON line.

    MUJOCO_GL=egl python bench/drone_demonstrator.py [--episodes 50] [--task fly-to-target] [--gif DIR]
        [--domains summer,fog] [--imperfect] [--render]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from lnn_control.sim.drone import DOMAINS, TASKS, DroneExpert, DroneExpertConfig, DroneSim, DroneSimConfig  # noqa: E402


def run_domain(domain: str, args: argparse.Namespace, film: bool = False) -> tuple[dict, list[np.ndarray]]:
    """Episodes of one domain: the summary row and the GIF episode's frames."""
    expert_config = DroneExpertConfig.imperfect() if args.imperfect else DroneExpertConfig()
    size = (args.size, args.size)
    events: dict[str, int] = {}
    times, gif_frames = [], []
    successes = collisions = 0
    sim_s = 0.0
    t0 = time.perf_counter()
    plain = DroneSim(DroneSimConfig(task=args.task, domain=domain, frame_size=size, render=args.render))
    filmed = DroneSim(DroneSimConfig(task=args.task, domain=domain, frame_size=size)) if film else None
    try:
        bar = tqdm(range(args.episodes), desc=f"{domain:>10}", unit="ep", dynamic_ncols=True)
        for k in bar:
            seed = args.seed + k
            sim = filmed if (filmed is not None and k == 0) else plain
            expert = DroneExpert(sim, expert_config, seed=seed)
            obs = sim.reset(seed)
            expert.reset()
            if sim is filmed:
                gif_frames.append(obs.frame)
            while not obs.done:
                obs = sim.step(expert.observe(obs.frame, obs.stamp_ns))
                if sim is filmed:
                    gif_frames.append(obs.frame)
            event = obs.info.get("event") or "none"
            events[event] = events.get(event, 0) + 1
            sim_s += obs.stamp_ns * 1e-9
            successes += bool(obs.truth.success)
            collisions += bool(obs.truth.collided)
            if obs.truth.success:
                times.append(obs.truth.time_to_target)
            bar.set_postfix(success=f"{successes}/{k + 1}", collisions=collisions)
    finally:
        plain.close()
        if filmed is not None:
            filmed.close()
    row = {
        "domain": domain,
        "episodes": args.episodes,
        "success_rate": successes / max(1, args.episodes),
        "collisions": collisions,
        "events": events,
        "time_to_target_mean_s": float(np.mean(times)) if times else math.nan,
        "time_to_target_max_s": float(np.max(times)) if times else math.nan,
        "sim_s": round(sim_s, 1),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    return row, gif_frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50, help="episodes per domain")
    parser.add_argument("--task", default="fly-to-target", choices=sorted(TASKS))
    parser.add_argument("--domains", default=",".join(DOMAINS), help="comma-separated (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--size", type=int, default=96, help="square frame size, px")
    parser.add_argument("--render", action="store_true", help="render every episode's frames")
    parser.add_argument("--imperfect", action="store_true", help="the demonstrator with noise and drifts")
    parser.add_argument("--gif", type=Path, default=None, metavar="DIR", help="write one GIF per domain here")
    parser.add_argument("--gif-scale", type=int, default=2, help="pixel repeat of the GIF frames")
    parser.add_argument("--montage", type=Path, default=None, metavar="FILE",
                        help="one GIF of every domain's first episode side by side (as in the README)")
    args = parser.parse_args(argv)

    domains = [d.strip() for d in args.domains.split(",") if d.strip()]
    unknown = [d for d in domains if d not in DOMAINS]
    if unknown:
        parser.error(f"unknown domain(s) {', '.join(unknown)} (known: {', '.join(DOMAINS)})")
    rows, gifs, films = [], {}, {}
    if args.montage and not args.gif:
        args.gif_scale, args.gif = 1, None
    for domain in domains:
        row, frames = run_domain(domain, args, film=bool(args.gif or args.montage))
        rows.append(row)
        films[domain] = frames
        if args.gif and frames:
            from lnn_control.report.media import write_gif

            s = max(1, args.gif_scale)
            big = [np.kron(f, np.ones((s, s, 1), np.uint8)) for f in frames]
            fps = 1e9 / DroneSim(DroneSimConfig(render=False)).dt_ns
            gifs[domain] = str(write_gif(big, args.gif / f"drone_{args.task}_{domain}.gif", fps))
    if args.montage:
        from lnn_control.report.media import montage_gif

        fps = 1e9 / DroneSim(DroneSimConfig(render=False)).dt_ns
        gifs["montage"] = str(montage_gif(films, args.montage, fps, columns=4, stride=2))
    print(f"\n{args.task}, {args.episodes} episodes per domain, demonstrator "
          f"{'imperfect' if args.imperfect else 'clean'}")
    print(f"{'domain':<11} {'success':>8} {'collisions':>10} {'t_target mean':>14} {'max':>6}  events")
    for r in rows:
        print(f"{r['domain']:<11} {r['success_rate']:>8.0%} {r['collisions']:>10} "
              f"{r['time_to_target_mean_s']:>12.1f} s {r['time_to_target_max_s']:>5.1f}  {r['events']}")
    for domain, path in gifs.items():
        print(f"gif {domain}: {path}")
    print(json.dumps({"task": args.task, "episodes": args.episodes, "imperfect": args.imperfect,
                      "domains": rows, "gifs": gifs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
