"""The drone study: every trained policy in every domain, on seeds never used in training or model choice.

For each run folder ``RUNS/<core>_s<seed>/best`` (bench/train_policies.sh with config/train_drone.yaml) and each
condition, ``--episodes`` seeded episodes (seeds ``--seed`` and up; the recordings used 100-139 and 200-209) through
``Driver.observe`` (sim-eval's path, with drone-sim-drive's drive_node settings):

- the domains: ``fly-to-target`` in summer (the training domain), fall, winter, urban, dusk, fog, distractor;
- ``--stress``: summer frames darkened (brightness 0.5), brightened (1.6), noisy (variance 0.02), occluded (10%);
- ``--range``: the ``range`` task (15-30 m) in summer, for the network trained on fly-to-target.

The demonstrator (privileged state) runs the same episodes as a reference. Rows go to ``OUT/rows.jsonl`` (kept and
skipped on a rerun, so two processes with disjoint ``--cores`` can share the work); ``--report`` then prints the
table (success rate per policy: mean and spread over training seeds), writes ``OUT/table.md`` and
``OUT/success.png``, measures per-step latency (batch 1, one thread) and parameters per policy, and ends with one
JSON line.

    python bench/compare_drone_policies.py --runs runs/drone --episodes 50 [--cores ltc cfc] [--stress] [--range]
    python bench/compare_drone_policies.py --runs runs/drone --report
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

from lnn_control.sim.backends import SimSpec  # noqa: E402
from lnn_control.sim.perturb import PerturbConfig  # noqa: E402

DOMAINS = ("summer", "fall", "winter", "urban", "dusk", "fog", "distractor")
STRESS = {"dark": "brightness=0.5", "bright": "brightness=1.6", "noise": "noise=0.02", "occluded": "occlude=0.1"}
CORES = ("ltc", "cfc", "lstm", "cnn")


def conditions(stress: bool, with_range: bool) -> list[tuple[str, str, str, str]]:
    """(label, task, domain, perturbation) of every condition asked for."""
    out = [(d, "fly-to-target", d, "none") for d in DOMAINS]
    if stress:
        out += [(f"summer+{k}", "fly-to-target", "summer", v) for k, v in STRESS.items()]
    if with_range:
        out.append(("range", "range", "summer", "none"))
    return out


def run_condition(name: str, path: Path | None, label: str, task: str, domain: str, perturb: str, seeds: list[int]):
    """One policy (or the demonstrator, ``path`` None) on one condition: the summary row."""
    from lnn_control.sim.closed_loop import expert_controller_factory, model_controller_factory, run_episodes

    spec = SimSpec("drone", (96, 96), task, domain)
    factory = expert_controller_factory(seed=0) if path is None else model_controller_factory(path, spec.node_set)
    t0 = time.perf_counter()
    results = run_episodes(spec.build, factory, seeds, PerturbConfig.parse(perturb), max_steps=None,
                           record_frames_for=[], progress=False)
    wins = [r for r in results if r.outcome["success"]]
    times = [r.outcome["time_to_target_s"] for r in wins]
    distances = [r.outcome["final_distance_m"] for r in results if math.isfinite(r.outcome["final_distance_m"])]
    return {
        "policy": name, "condition": label, "task": task, "domain": domain, "perturb": perturb,
        "episodes": len(results), "success": len(wins), "collisions": sum(bool(r.outcome["collided"]) for r in results),
        "time_to_target_s": float(np.mean(times)) if times else None,
        "final_distance_m": float(np.mean(distances)) if distances else None,
        "seeds": [seeds[0], seeds[-1]], "wall_s": round(time.perf_counter() - t0, 1),
    }


def runs_of(root: Path, cores: list[str]) -> list[tuple[str, Path]]:
    """``(name, checkpoint stem)`` of every ``<core>_s<seed>/best`` under ``root`` for ``cores``."""
    found = []
    for core in cores:
        for run in sorted(root.glob(f"{core}_s*")):
            if (run / "best.safetensors").is_file():
                found.append((run.name, run / "best"))
    return found


def measure(root: Path, args: argparse.Namespace) -> None:
    out = root / "study"
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "rows.jsonl"
    done = set()
    if rows_path.is_file():
        lines = rows_path.read_text().splitlines()
        done = {(r["policy"], r["condition"], r["episodes"]) for r in map(json.loads, lines)}
    policies: list[tuple[str, Path | None]] = list(runs_of(root, args.cores))
    if args.expert:
        policies.insert(0, ("demonstrator", None))
    seeds = list(range(args.seed, args.seed + args.episodes))
    import torch

    torch.set_num_threads(1)
    for name, path in policies:
        for label, task, domain, perturb in conditions(args.stress, args.range):
            if (name, label, args.episodes) in done:
                continue
            row = run_condition(name, path, label, task, domain, perturb, seeds)
            print(f"{name:<14} {label:<16} success {row['success']:>3}/{row['episodes']}  collisions "
                  f"{row['collisions']:>3}  ({row['wall_s']:.0f} s)", flush=True)
            with rows_path.open("a") as fh:
                fh.write(json.dumps(row) + "\n")


def latency_and_size(stem: Path) -> dict:
    """Per-step latency of Driver.observe (batch 1, one thread, 96x96) and the parameter counts."""
    import torch

    from lnn_control.driver import Driver
    from lnn_control.nn.checkpoint import load

    torch.set_num_threads(1)
    policy = load(stem)
    driver = Driver(policy)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in range(20)]
    for k in range(30):
        driver.observe(frames[k % 20], k * 70_000_000)
    spent = []
    for k in range(300):
        t0 = time.perf_counter()
        driver.observe(frames[k % 20], (30 + k) * 70_000_000)
        spent.append(time.perf_counter() - t0)
    return {"latency_us": round(float(np.median(spent)) * 1e6, 1), **policy.parameter_counts()}


def report(root: Path) -> None:
    out = root / "study"
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    labels = list(dict.fromkeys(r["condition"] for r in rows))
    groups: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        core = r["policy"].split("_s")[0]
        groups.setdefault(core, {}).setdefault(r["condition"], []).append(r["success"] / r["episodes"])
    sizes = {}
    for core in groups:
        stems = sorted(root.glob(f"{core}_s*/best.safetensors"))
        if stems:
            sizes[core] = latency_and_size(stems[0].with_suffix(""))
    header = ["policy", "seeds", *labels, "recurrent params", "latency us"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table = {}
    for core, by in groups.items():
        cells = []
        for label in labels:
            values = by.get(label, [])
            mean = float(np.mean(values)) if values else math.nan
            spread = float(np.std(values)) if len(values) > 1 else 0.0
            table.setdefault(core, {})[label] = {"mean": mean, "std": spread, "n": len(values)}
            cells.append("-" if not values else f"{100 * mean:.0f}%" + (f" ± {100 * spread:.0f}" if len(values) > 1
                                                                        else ""))
        size = sizes.get(core, {})
        n_seeds = max((len(v) for v in by.values()), default=0)
        lines.append("| " + " | ".join([core, str(n_seeds), *cells, f"{size.get('recurrent', '-')}",
                                        f"{size.get('latency_us', '-')}"]) + " |")
    text = "\n".join(lines)
    (out / "table.md").write_text(text + "\n")
    print(text)
    _plot(out / "success.png", table, labels)
    episodes = sorted({r["episodes"] for r in rows})
    print(json.dumps({"episodes_per_condition": episodes, "success": table, "sizes": sizes,
                      "cpu_count": os.cpu_count()}))


def _plot(path: Path, table: dict, labels: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 4))
    width = 0.8 / max(1, len(table))
    for i, (core, by) in enumerate(table.items()):
        means = [100 * by.get(label, {}).get("mean", math.nan) for label in labels]
        stds = [100 * by.get(label, {}).get("std", 0.0) for label in labels]
        ax.bar(np.arange(len(labels)) + i * width, means, width, yerr=stds, label=core, capsize=2)
    ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2, labels, rotation=30, ha="right")
    ax.set_ylabel("success, % (mean over training seeds)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, ncol=len(table))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/drone"), help="folder of <core>_s<seed>/ runs")
    parser.add_argument("--cores", nargs="+", default=list(CORES), choices=CORES)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1000, help="first evaluation seed (never recorded)")
    parser.add_argument("--stress", action="store_true", help="also the image stress tests in summer")
    parser.add_argument("--range", action="store_true", help="also the range task in summer")
    parser.add_argument("--expert", action="store_true", help="also the demonstrator, as a reference")
    parser.add_argument("--report", action="store_true", help="the table, plot, sizes and JSON line of rows.jsonl")
    args = parser.parse_args(argv)
    if args.report:
        report(args.runs)
    else:
        measure(args.runs, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
