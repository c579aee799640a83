"""Closed-loop simulation speed in-process: the evaluation loop beside the bare CarRacing-v3 env, in one run.

Rows (steps per second of wall clock, median of ``--repeats`` interleaved runs of ``--steps`` steps each):

- ``bare env, random actions``: ``gym.make("CarRacing-v3")`` stepped with seeded random actions, nothing else;
- ``closed loop, expert``: :func:`lnn_control.sim.closed_loop.run_episode` with the demonstrator (pure pursuit on the
  privileged track) through :class:`~lnn_control.sim.carracing.CarRacingSim` (speed controller, ground truth, lap
  counting, time series);
- ``bare env, expert's actions``: the bare env replaying the exact gas/brake/steer actions of the expert run, so the
  same trajectory and the same rendering work (CarRacing's cost depends on what is in view: the start-up zoom shows
  the whole track, a fast car sees more tiles), without the loop;
- ``same, gymnasium's renderer``: that replay in an env with gymnasium's own road drawing; every other row uses
  :mod:`lnn_control.sim.fast_road` (the same pixels), as CarRacingSim does, so its ratio is the renderer's gain;
- the same two rows for a constant controller (straight at 10 m/s).

The loop's overhead is reported twice: ``closed / replay - 1`` on the same trajectory (separate runs, so sensitive
to the machine's load between them), and *in-run*: within the closed-loop run itself, the time outside gymnasium's
``env.step`` (controller, speed controller, ground truth, laps, time series) over the time inside it (the issue's
target: below 25 %). The ratio to random actions is printed too. Ends with one JSON line.

    python bench/bench_sim.py [--steps 600] [--repeats 3] [--seed 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lnn_control.sim import fast_road  # noqa: E402
from lnn_control.sim.carracing import CarRacingSim  # noqa: E402
from lnn_control.sim.closed_loop import ConstantController, run_episode  # noqa: E402
from lnn_control.sim.expert import ExpertController  # noqa: E402


def bare_env(fast_road_renderer: bool = True):
    """The bare env; with the same road renderer as CarRacingSim (like for like) unless told otherwise."""
    import gymnasium as gym

    env = gym.make(
        "CarRacing-v3", render_mode=None, continuous=True, disable_env_checker=True, max_episode_steps=100_000
    )
    if fast_road_renderer:
        fast_road.install(env.unwrapped)
    return env


def bare_random(env, seed: int, steps: int) -> float:
    """Steps/s of the bare env with seeded random actions."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset(seed=seed)
    return steps / (time.perf_counter() - start)


def bare_replay(env, seed: int, actions: np.ndarray) -> float:
    """Steps/s of the bare env replaying recorded actions from the same seed."""
    env.reset(seed=seed)
    start = time.perf_counter()
    for a in actions:
        env.step(a)
    return len(actions) / (time.perf_counter() - start)


class RecordingSim:
    """CarRacingSim that keeps every env action (only for the untimed recording run)."""

    def __init__(self, sim: CarRacingSim):
        self.sim = sim
        self.actions: list[np.ndarray] = []

    def __getattr__(self, name):
        return getattr(self.sim, name)

    def reset(self, seed=None):
        self.actions.clear()
        return self.sim.reset(seed)

    def step(self, command):
        obs = self.sim.step(command)
        self.actions.append(self.sim.last_action.copy())
        return obs


def closed(sim: CarRacingSim, controller, seed: int, steps: int) -> tuple[float, int, float]:
    """Steps/s of run_episode (wall time of the loop only), the steps it ran, and the seconds spent inside the
    gymnasium env's own ``step`` during that run (so the loop's share is measured in the same run, whatever the
    machine's load does between runs)."""
    env = sim._env
    inner = env.step
    spent = [0.0]

    def timed_step(action):
        start = time.perf_counter()
        out = inner(action)
        spent[0] += time.perf_counter() - start
        return out

    env.step = timed_step
    try:
        result = run_episode(sim, controller, seed, max_steps=steps)
    finally:
        del env.step  # back to the class's method
    return result.steps_per_s, result.steps, spent[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600, help="steps per run (default 600 = 12 s of sim time)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the median is reported")
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()

    sim = CarRacingSim()
    env = bare_env()
    plain_env = bare_env(fast_road_renderer=False)
    controllers = {
        "expert": ExpertController(sim),
        "constant": ConstantController(),
    }
    actions, lengths = {}, {}
    for name, ctl in controllers.items():  # untimed recording run (also the warm-up)
        rec = RecordingSim(sim)
        res = run_episode(rec, ctl, args.seed, max_steps=args.steps)  # type: ignore[arg-type]
        actions[name] = np.array(rec.actions, dtype=np.float32)
        lengths[name] = res.steps
    bare_random(env, args.seed, 50)

    keys = ("random", "expert", "expert_replay", "expert_share", "constant", "constant_replay", "constant_share",
            "expert_replay_plain")
    samples: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(args.repeats):
        samples["random"].append(bare_random(env, args.seed, args.steps))
        for name, ctl in controllers.items():
            sps, n, env_s = closed(sim, ctl, args.seed, args.steps)
            assert n == lengths[name], "the closed loop is deterministic: same number of steps as the recording"
            samples[name].append(sps)
            samples[f"{name}_share"].append((n / sps) / env_s - 1.0)  # loop time outside env.step / env time
            samples[f"{name}_replay"].append(bare_replay(env, args.seed, actions[name]))
        samples["expert_replay_plain"].append(bare_replay(plain_env, args.seed, actions["expert"]))
    med = {k: statistics.median(v) for k, v in samples.items()}
    sim.close()
    env.close()
    plain_env.close()

    overhead = {name: med[f"{name}_replay"] / med[name] - 1.0 for name in controllers}
    vs_random = {name: med["random"] / med[name] - 1.0 for name in controllers}
    print(
        f"CarRacing-v3, seed {args.seed}, {args.steps} steps per run, median of {args.repeats} interleaved runs, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"{'run':<32}{'steps/s':>9}{'ms/step':>9}{'vs replay':>11}{'in-run':>9}")
    rows = [
        ("bare env, random actions", med["random"], None, None),
        ("bare env, expert's actions", med["expert_replay"], None, None),
        ("  same, gymnasium's renderer", med["expert_replay_plain"], None, None),
        ("closed loop, expert", med["expert"], overhead["expert"], med["expert_share"]),
        ("bare env, constant's actions", med["constant_replay"], None, None),
        ("closed loop, constant 10 m/s", med["constant"], overhead["constant"], med["constant_share"]),
    ]
    for label, sps, ov, share in rows:
        extra = f"{100 * ov:>10.1f}%{100 * share:>8.1f}%" if ov is not None else ""
        print(f"{label:<32}{sps:>9.1f}{1000 / sps:>9.2f}{extra}")
    print(
        "vs replay: closed loop against the bare env replaying the same actions (separate runs, load-sensitive); "
        "in-run: loop time outside gymnasium's env.step over the time inside it, in the same run"
    )
    print(f"road renderer (lnn_control.sim.fast_road, same pixels): "
          f"{med['expert_replay'] / med['expert_replay_plain']:.2f}x gymnasium's own on the expert's drive")
    print(f"vs random actions: expert {100 * vs_random['expert']:+.1f}%, constant {100 * vs_random['constant']:+.1f}%")
    print(
        json.dumps(
            {
                "bench": "sim",
                "steps": args.steps,
                "repeats": args.repeats,
                "seed": args.seed,
                "bare_random_sps": round(med["random"], 1),
                "expert_closed_sps": round(med["expert"], 1),
                "expert_replay_sps": round(med["expert_replay"], 1),
                "expert_replay_plain_renderer_sps": round(med["expert_replay_plain"], 1),
                "fast_road_speedup": round(med["expert_replay"] / med["expert_replay_plain"], 3),
                "expert_overhead_vs_replay": round(overhead["expert"], 4),
                "expert_overhead_in_run": round(med["expert_share"], 4),
                "constant_closed_sps": round(med["constant"], 1),
                "constant_replay_sps": round(med["constant_replay"], 1),
                "constant_overhead_vs_replay": round(overhead["constant"], 4),
                "constant_overhead_in_run": round(med["constant_share"], 4),
                "expert_vs_random": round(vs_random["expert"], 4),
                "constant_vs_random": round(vs_random["constant"], 4),
                "loadavg": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
