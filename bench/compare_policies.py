"""Liquid vs baselines in closed loop: LTC-NCP, CfC-NCP, LSTM-64 and the feed-forward CNN on the same unseen tracks,
clean and perturbed, with their sizes and per-step latency. Not a test: it takes as long as it takes (resumable).

    python bench/compare_policies.py [--runs runs/compare] [--tracks 21] [--first-track 1000] [--assign split|all]
        [--extra "LTC-NCP + DAgger=runs/dagger/ltc_s*"] [--workers 2] [--minutes 0] [--out reports/compare]

**Models**: ``<runs>/<core>_s<seed>/best`` as bench/train_policies.sh trains them (same data, conv head and recipe;
seed = initial weights and window order). ``--extra NAME=GLOB`` adds a row from other run folders.

**Episodes**: the tracks are CarRacing seeds ``first-track ...`` (the training data used 100-103 and 200). With
``--assign all`` every training seed drives every track; with ``--assign split`` (cheaper by the number of seeds) the
tracks are dealt round-robin to the training seeds, so every policy still drives every track once per condition and
each seed gets a third of them. Every episode runs :func:`lnn_control.sim.closed_loop.run_episode` with
:meth:`Driver.observe`, the drive node's own path, under config/sim.yaml's limits and timing.

**Conditions** (:mod:`lnn_control.sim.perturb`): clean; Gaussian pixel noise of variance 0.1, 0.2, 0.3 (the NCP
paper's test); the winter colour shift; ``randomize``, CarRacing's own ``domain_randomize`` (new background, grass and
road colours every episode, drawn from the track's seed); 30 % of frames dropped (the policy sees irregular time
steps). The demonstrator (privileged pure pursuit) drives the same tracks clean, as the reference of the scores.

**Per policy**: recurrent parameters net of masks, total parameters, per-step latency of ``Driver.observe`` (batch 1,
one thread; median of ``--latency-steps`` calls on a real frame, measured before the episodes start) and its ratio to
the LSTM's, and per condition the mean +- std reward over all episodes, the spread across training seeds (std of
the per-seed means), and laps completed. Results go to ``<out>/episodes.csv`` as they come (a rerun skips the
episodes already there), then ``results.md`` (the table), ``rewards.png`` (the plot) and ``results.json``; the last
line printed is one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import math
import multiprocessing as mp
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CORES = {"ltc": "LTC-NCP", "cfc": "CfC-NCP", "lstm": "LSTM-64", "cnn": "CNN"}
#: Run in this order, so an interrupted run has the most telling columns first.
CONDITIONS = ("clean", "noise=0.1", "winter", "randomize", "drop=0.3", "noise=0.2", "noise=0.3")
#: Conditions that are a domain of the simulator (lnn_control.sim.backends.CAR_DOMAINS), not a perturbation.
DOMAIN_CONDITIONS = ("randomize",)
DEMONSTRATOR = "Demonstrator"
FIELDS = ("policy", "model", "model_seed", "condition", "track", "reward", "laps", "tiles_visited", "tiles_total",
          "off_track_s", "steps", "wall_s")
#: Issue 6's goals for the NCP (reward).
GOAL_CLEAN, GOAL_PERTURBED = 925.0, 900.0
#: Issue 14's (trained without winter): winter at 880 or more while clean stays at 905 or more.
GOAL_SHIFT_CLEAN, GOAL_WINTER = 905.0, 880.0


@dataclass(frozen=True)
class Job:
    """One episode: a policy's checkpoint (or the demonstrator) on one track under one condition."""

    policy: str
    model: str
    model_seed: int
    condition: str
    track: int

    @property
    def key(self) -> tuple[str, str, str, int]:
        return self.policy, self.model, self.condition, self.track


def finished(run: Path) -> bool:
    """A run folder whose training ended (all epochs, or stopped early), judged by its state.json and config.yaml;
    a folder without them (a checkpoint copied elsewhere) counts as finished."""
    import yaml

    state, config = run / "state.json", run / "config.yaml"
    if not (state.is_file() and config.is_file()):
        return True
    counters = json.loads(state.read_text(encoding="utf-8"))["counters"]
    training = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("training", {})
    patience = training.get("patience", 0)
    return counters["epoch"] >= training.get("epochs", 0) or (patience > 0 and counters["bad_epochs"] >= patience)


def find_models(runs: Path, extras: list[str], seeds: list[int]) -> dict[str, list[tuple[int, str | None]]]:
    """Policy name -> [(training seed, checkpoint path or None while not trained yet)]: ``<runs>/<core>_s<seed>/best``
    for each of ``seeds`` (a policy with none of them is left out), and every run matching an ``--extra`` glob."""
    found: dict[str, list[tuple[int, str | None]]] = {}
    for core, name in CORES.items():
        entries = [(s, str(runs / f"{core}_s{s}" / "best")) for s in seeds]
        entries = [(s, p if Path(p).with_suffix(".safetensors").is_file() and finished(Path(p).parent) else None)
                   for s, p in entries]
        if any(p for _, p in entries):
            found[name] = entries
    patterns: list[tuple[str, str]] = []
    for item in extras:
        name, sep, pattern = item.partition("=")
        if not sep:
            raise SystemExit(f"--extra {item!r}: expected NAME=GLOB, e.g. 'LTC-NCP + DAgger=runs/dagger/ltc_s*'")
        patterns.append((name.strip(), pattern.strip()))
    for name, pattern in patterns:
        for folder in sorted(glob.glob(pattern)):
            best = Path(folder) / "best"
            if not (best.with_suffix(".safetensors").is_file() and finished(Path(folder))):
                continue
            tail = Path(folder).name.rsplit("_s", 1)[-1]
            seed = int(tail) if tail.isdigit() else len(found.get(name, []))
            found.setdefault(name, []).append((seed, str(best)))
    return found


def plan(models: dict[str, list[tuple[int, str | None]]], tracks: list[int], assign: str,
         conditions: tuple[str, ...] = CONDITIONS) -> list[Job]:
    """All episodes, condition by condition (in :data:`CONDITIONS` order), the policies interleaved; episodes of
    models not trained yet are left out (a later run adds them)."""
    jobs: list[Job] = [Job(DEMONSTRATOR, "expert", 0, "clean", t) for t in tracks]
    for condition in conditions:
        for i, track in enumerate(tracks):
            for name, entries in models.items():
                chosen = entries if assign == "all" else [entries[i % len(entries)]]
                jobs += [Job(name, path, seed, condition, track) for seed, path in chosen if path]
    return jobs


# -- worker side ---------------------------------------------------------------------------------------------------
_SIMS: dict[str, Any] = {}
_CONTROLLERS: dict[tuple[str, str], Any] = {}


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def run_job(job: Job) -> dict[str, Any]:
    """Drive one episode (in a worker process; the simulator and the models are kept between jobs)."""
    from lnn_control.sim.backends import SimSpec
    from lnn_control.sim.closed_loop import model_controller_factory, run_episode
    from lnn_control.sim.expert import ExpertController
    from lnn_control.sim.perturb import PerturbConfig

    domain = job.condition if job.condition in DOMAIN_CONDITIONS else "default"
    if domain not in _SIMS:
        _SIMS[domain] = SimSpec("carracing", domain=domain).build()
    sim = _SIMS[domain]
    if job.model == "expert":
        controller = ExpertController(sim, seed=job.track)
    else:
        if (job.model, domain) not in _CONTROLLERS:  # a controller is bound to the simulator it reads
            _CONTROLLERS[job.model, domain] = model_controller_factory(Path(job.model))(sim)
        controller = _CONTROLLERS[job.model, domain]
    perturb = PerturbConfig.parse([] if job.condition in ("clean", *DOMAIN_CONDITIONS) else [job.condition])
    result = run_episode(sim, controller, job.track, perturb)
    return {**asdict(job), "reward": round(result.reward, 3), "laps": result.laps,
            "tiles_visited": result.tiles_visited, "tiles_total": result.tiles_total,
            "off_track_s": round(result.off_track_s, 3), "steps": result.steps, "wall_s": round(result.wall_s, 2)}


# -- main side -------------------------------------------------------------------------------------------------------
def read_rows(path: Path) -> list[dict[str, Any]]:
    """Episodes already in ``episodes.csv`` (numbers parsed)."""
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            for key in ("model_seed", "track", "laps", "tiles_visited", "tiles_total", "steps"):
                row[key] = int(row[key])
            for key in ("reward", "off_track_s", "wall_s"):
                row[key] = float(row[key])
            rows.append(row)
    return rows


def sizes_and_latency(models: dict[str, list[tuple[int, str | None]]], steps: int) -> dict[str, dict[str, Any]]:
    """Parameter counts and the median ``Driver.observe`` latency (batch 1, one thread) of each policy's first model."""
    import torch

    from lnn_control.driver import Driver, load_driver_config
    from lnn_control.nn.checkpoint import load
    from lnn_control.paths import config_file
    from lnn_control.sim.carracing import CarRacingSim

    torch.set_num_threads(1)
    with CarRacingSim() as sim:
        frame = sim.reset(1).frame
    config = load_driver_config(config_file("sim.yaml"))
    out: dict[str, dict[str, Any]] = {}
    for name, entries in models.items():
        policy = load(next(p for _, p in entries if p))
        counts = policy.parameter_counts()
        driver = Driver(policy, config)
        features = driver.features(frame)
        for k in range(30):
            driver.observe(frame, (k + 1) * 20_000_000)
        full, core = [], []
        for k in range(steps):
            stamp = (k + 31) * 20_000_000
            t0 = time.perf_counter()
            driver.observe(frame, stamp)
            t1 = time.perf_counter()
            driver.command_from_features(features, stamp + 10_000_000)
            t2 = time.perf_counter()
            full.append(t1 - t0)
            core.append(t2 - t1)
        out[name] = {"recurrent": counts["recurrent"], "total": counts["total"],
                     "latency_ms": 1e3 * statistics.median(full), "core_latency_ms": 1e3 * statistics.median(core)}
    return out


def aggregate(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """policy -> condition -> n, mean, std (episodes), seed_std (std of per-seed means), laps, per-seed means."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["policy"], row["condition"]), []).append(row)
    for (policy, condition), items in groups.items():
        rewards = np.array([r["reward"] for r in items])
        by_seed: dict[int, list[float]] = {}
        for r in items:
            by_seed.setdefault(r["model_seed"], []).append(r["reward"])
        seed_means = {s: float(np.mean(v)) for s, v in sorted(by_seed.items())}
        table.setdefault(policy, {})[condition] = {
            "n": len(items),
            "mean": float(rewards.mean()),
            "std": float(rewards.std()),
            "seed_std": float(np.std(list(seed_means.values()))) if len(seed_means) > 1 else math.nan,
            "seed_means": seed_means,
            "laps": int(sum(r["laps"] > 0 for r in items)),
        }
    return table


def goals(table: dict[str, dict[str, dict[str, Any]]], info: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Issue 6's goals for the best NCP policy (LTC-NCP or CfC-NCP, with or without DAgger, by clean mean): met,
    missed or not measured. The baselines are every other policy but the demonstrator (LSTM, CNN, CNN + DAgger)."""
    ncps = [p for p in table if p.startswith(("LTC-NCP", "CfC-NCP")) and "clean" in table[p]]
    if not ncps:
        return {}
    best = max(ncps, key=lambda p: table[p]["clean"]["mean"])
    baselines = [p for p in table if p not in ncps and p != DEMONSTRATOR]
    cells = table[best]

    def mean(policy: str, condition: str) -> float:
        return table.get(policy, {}).get(condition, {}).get("mean", math.nan)

    demo = mean(DEMONSTRATOR, "clean")
    result: dict[str, Any] = {"policy": best}
    result["clean >= 925"] = mean(best, "clean") >= GOAL_CLEAN
    result["clean >= 905"] = mean(best, "clean") >= GOAL_SHIFT_CLEAN
    result["clean >= demonstrator"] = mean(best, "clean") >= demo if not math.isnan(demo) else None
    for condition in ("noise=0.1", "winter"):
        result[f"{condition} >= 900"] = mean(best, condition) >= GOAL_PERTURBED if condition in cells else None
    result["winter >= 880"] = mean(best, "winter") >= GOAL_WINTER if "winter" in cells else None
    if "LSTM-64" in info and best in info:
        result["recurrent <= LSTM/10"] = info[best]["recurrent"] * 10 <= info["LSTM-64"]["recurrent"]
    shared = [c for c in CONDITIONS[1:] if c in cells and baselines
              and all(not math.isnan(mean(b, c)) for b in baselines)]
    ahead = [mean(best, c) > max(mean(b, c) for b in baselines) for c in shared]
    key = f"ahead of {', '.join(baselines)} under {', '.join(shared) or 'every perturbation'}"
    result[key] = all(ahead) if shared else None
    return result


def _cell(stats: dict[str, Any] | None) -> str:
    if stats is None:
        return "not run"
    spread = "" if math.isnan(stats["seed_std"]) else f" [{stats['seed_std']:.0f}]"
    return f"{stats['mean']:.1f} +- {stats['std']:.1f}{spread} ({stats['laps']}/{stats['n']})"


def measured_conditions(table: dict) -> list[str]:
    """The conditions some policy drove, in :data:`CONDITIONS` order."""
    return [c for c in CONDITIONS if any(c in by for p, by in table.items() if p != DEMONSTRATOR)]


def write_table(path: Path, table: dict, info: dict, goal: dict, meta: dict[str, Any]) -> str:
    """The Markdown table (README-ready; the conditions measured) and the goals, also returned as text."""
    policies = [p for p in (*CORES.values(), *sorted(set(table) - set(CORES.values()) - {DEMONSTRATOR})) if p in table]
    lstm_latency = info.get("LSTM-64", {}).get("latency_ms")
    conditions = measured_conditions(table)
    header = ["policy", "recurrent params", "total params", "step ms (x LSTM)", *conditions]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for p in policies:
        i = info.get(p, {})
        ratio = f" ({i['latency_ms'] / lstm_latency:.2f}x)" if lstm_latency and i else ""
        lat = f"{i['latency_ms']:.2f}{ratio}" if i else ""
        lines.append("| " + " | ".join([p, f"{i.get('recurrent', 0):,}", f"{i.get('total', 0):,}", lat,
                                       *(_cell(table[p].get(c)) for c in conditions)]) + " |")
    if DEMONSTRATOR in table:
        lines.append("| " + " | ".join([DEMONSTRATOR + " (privileged)", "", "", "",
                                       _cell(table[DEMONSTRATOR].get("clean")), *[""] * (len(conditions) - 1)]) + " |")
    text = "\n".join(lines)
    notes = [
        "",
        f"Cells: mean +- std reward over episodes [std across training seeds] (episodes with a lap / episodes). "
        f"Tracks: CarRacing seeds {meta['tracks'][0]}-{meta['tracks'][-1]} ({len(meta['tracks'])}), assignment "
        f"'{meta['assign']}', training seeds per policy: {meta['seeds_per_policy']}. Step ms: Driver.observe "
        f"(preprocess, conv head, core, limits), batch 1, one thread, median.",
    ]
    if goal:
        notes += ["", f"Goals ({goal['policy']}): " + "; ".join(
            f"{k}: {'met' if v else ('not measured' if v is None else 'MISSED')}" for k, v in goal.items()
            if k != "policy")]
    text += "\n" + "\n".join(notes) + "\n"
    path.write_text(text, encoding="utf-8")
    return text


def plot(path: Path, table: dict) -> None:
    """Grouped bars: mean reward per condition and policy, error bars = std across training seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = [p for p in table if p != DEMONSTRATOR]
    conditions = measured_conditions(table)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / max(1, len(policies))
    x = np.arange(len(conditions))
    for k, p in enumerate(policies):
        means = [table[p].get(c, {}).get("mean", np.nan) for c in conditions]
        errs = [np.nan_to_num(table[p].get(c, {}).get("seed_std", np.nan)) for c in conditions]
        ax.bar(x + (k - (len(policies) - 1) / 2) * width, means, width, yerr=errs, capsize=2, label=p)
    demo = table.get(DEMONSTRATOR, {}).get("clean")
    if demo:
        ax.axhline(demo["mean"], color="k", ls="--", lw=1, label=f"demonstrator, clean ({demo['mean']:.0f})")
    ax.axhline(GOAL_CLEAN, color="tab:red", ls=":", lw=1, label="goal clean (925)")
    ax.set_xticks(x, conditions)
    ax.set_ylabel("reward (mean over tracks)")
    ax.set_ylim(min(0, ax.get_ylim()[0]), 1000)
    ax.set_title("CarRacing closed loop on unseen tracks (error bars: std across training seeds)")
    ax.legend(fontsize=8, ncol=3, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/compare"), help="folder of <core>_s<seed> runs")
    parser.add_argument("--extra", action="append", default=[], help="NAME=GLOB of more run folders (repeatable)")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds of each policy (default 0,1,2)")
    parser.add_argument("--tracks", type=int, default=21, help="unseen tracks (default 21)")
    parser.add_argument("--first-track", type=int, default=1000, help="first track seed (default 1000)")
    parser.add_argument("--assign", choices=("split", "all"), default="split", help="tracks per training seed")
    parser.add_argument("--workers", type=int, default=2, help="episode processes (default 2)")
    parser.add_argument("--minutes", type=float, default=0.0, help="stop starting episodes after this long; 0: none")
    parser.add_argument("--conditions", default=",".join(CONDITIONS),
                        help="conditions to run, comma-separated (default all: " + ", ".join(CONDITIONS) + ")")
    parser.add_argument("--latency-steps", type=int, default=300, help="calls per latency measurement")
    parser.add_argument("--out", type=Path, default=Path("reports/compare"), help="output folder")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the table from episodes.csv")
    args = parser.parse_args()

    from tqdm import tqdm

    models = find_models(args.runs, args.extra, [int(v) for v in args.seeds.split(",")])
    if not models:
        raise SystemExit(f"no checkpoints under {args.runs} (<core>_s<seed>/best): run bench/train_policies.sh")
    tracks = list(range(args.first_track, args.first_track + args.tracks))
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path = args.out / "episodes.csv"
    rows = read_rows(csv_path)
    done = {(r["policy"], r["model"], r["condition"], r["track"]) for r in rows}
    conditions = tuple(c.strip() for c in args.conditions.split(",") if c.strip())
    unknown = sorted(set(conditions) - set(CONDITIONS))
    if unknown:
        raise SystemExit(f"--conditions: unknown {', '.join(unknown)}; choose from {', '.join(CONDITIONS)}")
    jobs = [j for j in plan(models, tracks, args.assign, conditions) if j.key not in done]
    print("models: " + ", ".join(f"{n} x{sum(bool(p) for _, p in v)}" for n, v in models.items()) +
          f"; {len(jobs)} episodes to run, {len(rows)} already in {csv_path}", flush=True)

    info_path = args.out / "sizes_latency.json"
    if info_path.is_file() and set(json.loads(info_path.read_text())) >= set(models):
        info = json.loads(info_path.read_text())
    else:
        info = sizes_and_latency(models, args.latency_steps)
        info["_load_average"] = os.getloadavg()[0]
        info_path.write_text(json.dumps(info, indent=1), encoding="utf-8")
    load_avg = info.pop("_load_average", None)

    if jobs and not args.report_only:
        t_end = time.monotonic() + args.minutes * 60 if args.minutes > 0 else math.inf
        new = not csv_path.is_file()
        with csv_path.open("a", newline="", encoding="utf-8") as f, \
                mp.get_context("spawn").Pool(args.workers, initializer=_init_worker) as pool:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            if new:
                writer.writeheader()
            bar = tqdm(pool.imap_unordered(run_job, jobs), total=len(jobs), unit="ep", dynamic_ncols=True)
            for row in bar:
                writer.writerow(row)
                f.flush()
                rows.append(row)
                bar.set_postfix(last=f"{row['policy']} {row['condition']} {row['reward']:.0f}")
                if time.monotonic() > t_end:
                    print(f"--minutes {args.minutes} reached: stopping (rerun to go on)", flush=True)
                    pool.terminate()
                    break

    table = aggregate(rows)
    goal = goals(table, info)
    meta = {"tracks": tracks, "assign": args.assign,
            "seeds_per_policy": {n: [s for s, p in v if p] for n, v in models.items()}, "load_average": load_avg}
    text = write_table(args.out / "results.md", table, info, goal, meta)
    plot(args.out / "rewards.png", table)
    print(text)
    lstm = info.get("LSTM-64", {}).get("latency_ms")
    summary = {
        "bench": "compare_policies",
        **meta,
        "policies": {
            p: {**info.get(p, {}), "latency_vs_lstm": (info[p]["latency_ms"] / lstm) if lstm and p in info else None,
                "conditions": {c: {k: v for k, v in s.items() if k != "seed_means"} for c, s in table[p].items()}}
            for p in table
        },
        "goals": goal,
    }
    (args.out / "results.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
