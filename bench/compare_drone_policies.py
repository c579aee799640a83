"""The drone study: every trained policy in every domain, on seeds never used in training or model choice.

For each run folder ``RUNS/<core>_s<seed>/best`` (bench/train_policies.sh with config/train_drone.yaml) and each
condition, ``--episodes`` seeded episodes (seeds ``--seed`` and up, 1000 by default; bench/make_drone_data.sh records
seeds 100-399) through ``Driver.observe`` (sim-eval's path, with drone-sim-drive's drive_node settings):

- the domains: ``fly-to-target`` in summer (the training domain), fall, winter, urban, dusk, fog, distractor, and
  any mix ``--domains`` names (``summer+fall.ground``: summer on fall's ground; not judged by the goals);
- ``--stress``: summer frames darkened (brightness 0.5), brightened (1.6), noisy (variance 0.02), occluded (10%);
- ``--range``: the ``range`` task (15-30 m) in summer, for the network trained on fly-to-target;
- ``--stress-episodes N``: fewer (or more) episodes for the stress and range conditions than for the domains.

The demonstrator (privileged state) runs the same episodes as a reference. Rows go to ``OUT/rows.jsonl`` (kept and
skipped on a rerun, so two processes with disjoint ``--cores`` can share the work); ``--report`` then prints the
tables (success rate per policy: mean and spread over training seeds; collisions and time to target), judges the
goals, writes ``OUT/table.md`` and ``OUT/success.png``, measures per-step latency (batch 1, one thread) and
parameters per policy, and ends with one JSON line; ``--before RUNS`` adds each cell's change from the study of RUNS
(the same policies before a DAgger round). bench/drone_study.sh runs the whole recipe.

    python bench/compare_drone_policies.py --runs runs/drone --episodes 50 [--cores ltc cfc] [--stress] [--range]
    python bench/compare_drone_policies.py --runs runs/drone --report
    python bench/compare_drone_policies.py --runs runs/drone_dagger --report --before runs/drone
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


def domain_name(text: str) -> str:
    """``text`` if it names a drone domain or a mix of domains (for argparse)."""
    from lnn_control.sim.drone.domains import domain_style

    try:
        domain_style(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def conditions(stress: bool, with_range: bool, domains: tuple[str, ...] = DOMAINS) -> list[tuple[str, str, str, str]]:
    """(label, task, domain, perturbation) of every condition asked for."""
    out = [(d, "fly-to-target", d, "none") for d in domains]
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
    policies: list[tuple[str, Path | None]] = [
        (name, stem) for name, stem in runs_of(root, args.cores)
        if args.train_seeds is None or int(name.rsplit("_s", 1)[1]) in args.train_seeds]
    if args.expert:
        policies.insert(0, ("demonstrator", None))
    import torch

    torch.set_num_threads(1)
    for name, path in policies:
        for label, task, domain, perturb in conditions(args.stress, args.range, tuple(args.domains)):
            plain = task == "fly-to-target" and perturb == "none"  # a domain (or a mix), not a stress test or range
            episodes = args.episodes if plain else (args.stress_episodes or args.episodes)
            if (name, label, episodes) in done:
                continue
            seeds = list(range(args.seed, args.seed + episodes))
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
    stored = sum(p.numel() for p in policy.core.parameters())  # as ncps would store it: masks' zeros included
    return {"latency_us": round(float(np.median(spent)) * 1e6, 1), **policy.parameter_counts(),
            "core_as_stored": int(stored)}


def _largest_rows(rows: list[dict]) -> list[dict]:
    """One row per (policy, condition): the one with the most episodes (reruns with other counts stay on disk)."""
    best: dict[tuple[str, str], dict] = {}
    for r in rows:
        key = (r["policy"], r["condition"])
        if key not in best or r["episodes"] > best[key]["episodes"]:
            best[key] = r
    return list(best.values())


def _summary(rows: list[dict]) -> dict[str, dict[str, dict]]:
    """core -> condition -> mean and spread over training seeds of success, collisions, time and distance."""
    per: dict[str, dict[str, list[dict]]] = {}
    for r in rows:
        per.setdefault(r["policy"].split("_s")[0], {}).setdefault(r["condition"], []).append(r)
    table: dict[str, dict[str, dict]] = {}
    for core, by in per.items():
        for label, group in by.items():
            success = [r["success"] / r["episodes"] for r in group]
            times = [r["time_to_target_s"] for r in group if r["time_to_target_s"] is not None]
            distances = [r["final_distance_m"] for r in group if r["final_distance_m"] is not None]
            table.setdefault(core, {})[label] = {
                "mean": float(np.mean(success)), "std": float(np.std(success)) if len(group) > 1 else 0.0,
                "n": len(group), "episodes": min(r["episodes"] for r in group),
                "collisions": float(np.mean([r["collisions"] / r["episodes"] for r in group])),
                "time_to_target_s": float(np.mean(times)) if times else None,
                "final_distance_m": float(np.mean(distances)) if distances else None,
            }
    return table


def _seeds(n: int) -> str:
    """``1 seed``, ``2 seeds``."""
    return f"{n} seed{'s' if n > 1 else ''}"


def _percent(cell: dict | None, seeds: int) -> str:
    """``mean% ± std`` over training seeds; a cell measured on fewer seeds than its row says how many."""
    if cell is None:
        return "-"
    text = f"{100 * cell['mean']:.0f}%" + (f" ± {100 * cell['std']:.0f}" if cell["n"] > 1 else "")
    return text + (f" ({_seeds(cell['n'])})" if cell["n"] < seeds else "")


def _figure(value: object) -> str:
    """A goal's figure as the table shows it: rates as percentages, ratios as they are, domain lists joined."""
    if isinstance(value, list):
        return "ahead in " + (", ".join(value) if value else "none")
    if isinstance(value, float) and value <= 1.0:
        return f"{100 * value:.0f}%"
    return str(value)


def goals(table: dict[str, dict[str, dict]], sizes: dict[str, dict]) -> dict[str, dict]:
    """The study's goals, each with the figure it was judged on and whether it is met (for each NCP; "ahead" is
    judged on the shifted domains measured for both, and its figure lists those where the NCP's mean is higher)."""
    shifted = [d for d in DOMAINS if d != "summer"]
    out: dict[str, dict] = {}
    expert = table.get("demonstrator", {})
    if expert:
        low = min(expert[d]["mean"] for d in DOMAINS if d in expert)
        out["demonstrator >= 95% in every domain"] = {"value": low, "met": low >= 0.95}
    for ncp in (c for c in ("cfc", "ltc") if c in table):
        out.update(_ncp_goals(ncp, table, sizes, shifted))
    return out


def _ncp_goals(ncp: str, table: dict[str, dict[str, dict]], sizes: dict[str, dict], shifted: list[str]) -> dict:
    """One NCP's goals: summer, the worst shifted domain, ahead of each rival, recurrent size against the LSTM."""
    out: dict[str, dict] = {}
    by = table[ncp]
    if "summer" in by:
        out[f"{ncp} >= 90% in summer"] = {"value": by["summer"]["mean"], "met": by["summer"]["mean"] >= 0.9}
    worst = min((by[d]["mean"] for d in shifted if d in by), default=math.nan)
    out[f"{ncp} >= 80% in every shifted domain"] = {"value": worst, "met": bool(worst >= 0.8)}
    for rival in ("lstm", "cnn"):
        if rival in table:
            both = [d for d in shifted if d in by and d in table[rival]]
            ahead = [d for d in both if by[d]["mean"] > table[rival][d]["mean"]]
            out[f"{ncp} ahead of {rival} in every shifted domain"] = {"value": ahead,
                                                                      "met": bool(both) and ahead == both}
    if "lstm" in sizes and ncp in sizes:
        ratio = sizes[ncp]["recurrent"] / sizes["lstm"]["recurrent"]
        out[f"{ncp} recurrent parameters <= 1/10 of lstm's"] = {"value": f"{ratio:.3f} of lstm's", "met": ratio <= 0.1}
    return out


def _rows_of(root: Path) -> list[dict]:
    """The rows of ``root/study/rows.jsonl``, the largest run of each cell."""
    return _largest_rows([json.loads(line) for line in (root / "study" / "rows.jsonl").read_text().splitlines()])


def change(rows: list[dict], before: list[dict]) -> dict[str, dict[str, dict]]:
    """core -> condition -> success before and now, means over the training seeds measured both times, and ``n``."""
    then = {(r["policy"], r["condition"]): r["success"] / r["episodes"] for r in before}
    pairs: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for r in rows:
        key = (r["policy"], r["condition"])
        if key in then:
            core = r["policy"].split("_s")[0]
            pairs.setdefault(core, {}).setdefault(r["condition"], []).append((then[key], r["success"] / r["episodes"]))
    return {core: {label: {"before": float(np.mean([p[0] for p in got])), "now": float(np.mean([p[1] for p in got])),
                           "n": len(got)} for label, got in by.items()} for core, by in pairs.items()}


def change_lines(delta: dict[str, dict[str, dict]], labels: list[str], name: str) -> list[str]:
    """Markdown lines of :func:`change`: before -> now and the change in points; a cell on fewer seeds says so."""
    shared = [label for label in labels if any(label in by for by in delta.values())]
    if not shared:
        return []
    lines = ["", f"Change from {name} (success before -> now, means over the training seeds measured both times; "
             "percentage points):", "", "| policy | " + " | ".join(shared) + " |", "|" + "---|" * (len(shared) + 1)]
    for core, by in delta.items():
        seeds = max(cell["n"] for cell in by.values())
        cells = []
        for label in shared:
            cell = by.get(label)
            if cell is None:
                cells.append("-")
                continue
            points = 100 * (cell["now"] - cell["before"])
            text = f"{100 * cell['before']:.0f}% -> {100 * cell['now']:.0f}% ({points:+.0f})"
            cells.append(text + (f" ({_seeds(cell['n'])})" if cell["n"] < seeds else ""))
        lines.append(f"| {core} ({_seeds(seeds)}) | " + " | ".join(cells) + " |")
    return lines


def report(root: Path, before: Path | None = None) -> None:
    out = root / "study"
    rows = _rows_of(root)
    labels = list(dict.fromkeys(r["condition"] for r in rows))
    table = _summary(rows)
    sizes = {}
    for core in table:
        stems = sorted(root.glob(f"{core}_s*/best.safetensors"))
        if stems:
            sizes[core] = latency_and_size(stems[0].with_suffix(""))
    header = ["policy", "seeds", *labels, "recurrent params", "all params", "latency us"]
    lines = ["Success rate, mean ± spread (std) over training seeds:", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for core, by in table.items():
        size = sizes.get(core, {})
        n_seeds = max(cell["n"] for cell in by.values())
        cells = [_percent(by.get(label), n_seeds) for label in labels]
        lines.append("| " + " | ".join([core, str(n_seeds), *cells, str(size.get("recurrent", "-")),
                                        str(size.get("total", "-")), str(size.get("latency_us", "-"))]) + " |")
    flown = {r["condition"] for r in rows if r["task"] == "fly-to-target" and r["perturb"] == "none"}
    domains = [d for d in DOMAINS if d in flown] + [d for d in labels if d in flown and d not in DOMAINS]
    lines += ["", "Collisions and mean time to target (successful flights) per domain, means over seeds:", "",
              "| policy | " + " | ".join(domains) + " |", "|" + "---|" * (len(domains) + 1)]
    for core, by in table.items():
        cells = []
        for d in domains:
            cell = by.get(d)
            time_s = "-" if cell is None or cell["time_to_target_s"] is None else f"{cell['time_to_target_s']:.1f} s"
            cells.append("-" if cell is None else f"{100 * cell['collisions']:.0f}% / {time_s}")
        lines.append(f"| {core} | " + " | ".join(cells) + " |")
    judged = goals(table, sizes)
    lines += ["", "Goals:", ""] + [f"- {name}: {'met' if g['met'] else 'MISSED'} ({_figure(g['value'])})"
                                  for name, g in judged.items()]
    episodes = {label: min(c[label]["episodes"] for c in table.values() if label in c) for label in labels}
    lines += ["", "Episodes per condition and seed: " + ", ".join(f"{k} {v}" for k, v in episodes.items())]
    delta = {} if before is None else change(rows, _rows_of(before))
    lines += change_lines(delta, labels, str(before))
    text = "\n".join(lines)
    (out / "table.md").write_text(text + "\n")
    print(text)
    _plot(out / "success.png", table, labels)
    print(json.dumps({"bench": "drone_study", "episodes": episodes, "success": table, "sizes": sizes,
                      "goals": judged, "change": delta, "cpu_count": os.cpu_count()}))


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
    parser.add_argument("--domains", nargs="+", default=list(DOMAINS), type=domain_name,
                        help="the fly-to-target domains to run (all by default); a mix such as summer+fall.ground "
                             "(summer on fall's ground) shows which part of a domain a policy fails on")
    parser.add_argument("--train-seeds", type=int, nargs="+", help="only the runs of these training seeds")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1000, help="first evaluation seed (never recorded)")
    parser.add_argument("--stress", action="store_true", help="also the image stress tests in summer")
    parser.add_argument("--range", action="store_true", help="also the range task in summer")
    parser.add_argument("--stress-episodes", type=int, default=0,
                        help="episodes of the stress and range conditions (0: --episodes)")
    parser.add_argument("--expert", action="store_true", help="also the demonstrator, as a reference")
    parser.add_argument("--report", action="store_true", help="the table, plot, sizes and JSON line of rows.jsonl")
    parser.add_argument("--before", type=Path, default=None, metavar="RUNS",
                        help="--report: also each cell's change from the study of RUNS (e.g. before a DAgger round)")
    args = parser.parse_args(argv)
    if args.report:
        report(args.runs, args.before)
    else:
        measure(args.runs, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
