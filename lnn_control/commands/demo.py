"""``lnn-control demo``: the main job on embedded defaults, what ``make demo`` runs.

Record, train, replay, on real data, in a few minutes on a laptop CPU:

1. data: the real Donkeycar tub under ``../shared/data`` (a person driving a small car, 1000 frames) when it is
   there, imported as bags; otherwise the demonstrator drives the CarRacing simulator through ROS
   (``lnn-control up record-sim``) for two short episodes on seeds of its own;
2. train a small LTC-NCP on the first part with ``lnn-control train``'s code, for ``--minutes``;
3. replay the held-out part through ``Driver.observe`` (exactly the drive node's path) with
   ``lnn-control eval``'s code, against the human and the constant-mean baseline;
4. write everything under ``--out`` (default ``reports/demo``): bags, the model (safetensors + JSON), the
   evaluation report with plots, a saliency GIF and neuron activity.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from lnn_control.paths import SOURCE_ROOT, config_file

TUB = SOURCE_ROOT.parent / "shared" / "data" / "donkeycar_tub" / "tub.tar.gz"

#: The tub's 160x120 frames: the top 40 rows show the room above the track; 80x160 left, resized to 56x112.
TUB_OVERRIDES = [
    "preprocess.crop_top=40",
    "preprocess.height=56",
    "preprocess.width=112",
    "dataset.window=16",
    "dataset.stride=4",
    "training.batch_size=16",
    "training.lr=0.003",
    "training.epochs=12",
    "training.patience=6",
    "training.output_weights=[1.0, 0.25]",
    "training.tensorboard=false",
]


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lnn-control demo``."""
    parser.add_argument("--out", type=Path, default=Path("reports/demo"), help="report folder")
    parser.add_argument("--tub", type=Path, default=TUB, help="Donkeycar tub (folder or .tar.gz)")
    parser.add_argument("--minutes", type=float, default=2.0, help="training time (whole epochs)")
    parser.add_argument("--core", default="ltc", choices=("ltc", "cfc", "lstm", "cnn"))
    parser.add_argument("--threads", type=int, default=2)


def say(text: str) -> None:
    """One progress line."""
    print(f"[demo] {text}", flush=True)


def tub_bags(tub: Path, out: Path) -> tuple[list[Path], list[Path], list[Path], list[str]]:
    """Import the tub as three episodes: train (640 frames), validate (160), held out (200)."""
    from lnn_control.data.tub import import_tub

    report = import_tub(tub, out / "bags" / "tub", split_at=[640, 800])
    train, val, test = (Path(b) for b in report.bags)
    say(f"imported {report.frames_written} frames of {tub.name}: train 640, validate 160, held out 200")
    return [train], [val], [test], TUB_OVERRIDES


def sim_bags(out: Path) -> tuple[list[Path], list[Path], list[Path], list[str]]:
    """Record the demonstrator in the simulator through ROS: one bag per seed (train, validate, held out)."""
    bags = []
    for name, seed in (("train", 9001), ("validate", 9002), ("held_out", 9003)):
        folder = out / "bags" / name
        say(f"recording the demonstrator on seed {seed} ({name}) through lnn-control up record-sim")
        command = [
            sys.executable, "-m", "lnn_control.cli", "up", "record-sim", "--local", "--processes", "--duration", "60",
            "--set", f"sim_node.seed={seed}", "--set", "sim_node.episodes=1", "--set", "sim_node.max_steps=400",
            "--set", f"recorder_node.output_dir={folder}",
        ]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        bags.append(sorted(p for p in folder.iterdir() if p.is_dir()))
    return bags[0], bags[1], bags[2], [f"@{config_file('train_carracing.yaml')}"]


def run(args: argparse.Namespace) -> int:
    """Run the pipeline and print where everything went."""
    import torch

    from lnn_control.evaluate import evaluate, load_models
    from lnn_control.train import load_config, train

    torch.set_num_threads(args.threads)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if args.tub.exists():
        train_bags, val_bags, test_bags, overrides = tub_bags(args.tub, out)
    else:
        say(f"{args.tub} is not here (a fresh clone has no ../shared/data): using the simulator instead")
        train_bags, val_bags, test_bags, overrides = sim_bags(out)
    config_path = None
    if overrides and overrides[0].startswith("@"):
        config_path, overrides = overrides[0][1:], overrides[1:]
    config = load_config(config_path, overrides + [
        f"model.core={args.core}", f"training.threads={args.threads}",
        f"training.time_limit_s={args.minutes * 60:g}", f"training.cache_dir={out / 'cache'}",
    ])
    say(f"training an {args.core.upper()} policy for about {args.minutes:g} min (lnn-control train)")
    run_ = train(config, train_bags, out / "model", val_bags=val_bags)
    say(f"trained {run_.epochs_run} epochs (best {run_.best_epoch}); model in {out / 'model' / 'best.safetensors'}")
    say("replaying the held-out frames through Driver.observe, the drive node's path (lnn-control eval)")
    models = load_models([out / "model" / "best"], [args.core])
    result = evaluate(models, test_bags, out / "eval", saliency_frames=100)
    rows = {(r["model"], r["output"]): r for r in result.rows if r["bag"] == "all"}
    base = next(m for m, _ in rows if m.startswith("baseline"))
    summary = {}
    for output in ("steering", "velocity"):
        ours, const = rows[(args.core, output)], rows[(base, output)]
        summary[output] = {"mae": ours["mae"], "baseline_mae": const["mae"], "corr": ours["corr"]}
        say(f"held-out {output}: MAE {ours['mae']:.4f} (corr {ours['corr']:.3f}) vs constant-mean baseline "
            f"{const['mae']:.4f}")
    counts = models[0].policy.parameter_counts()
    say(f"the policy: {counts.get('neurons', '-')} neurons, {counts['recurrent']:,} recurrent parameters net of "
        f"masks, {counts['total']:,} in all")
    say(f"report: {out / 'eval'} (metrics, plots, saliency GIF, neuron activity); took "
        f"{time.perf_counter() - started:.0f} s")
    (out / "summary.json").write_text(json.dumps({"core": args.core, "results": summary, "parameters": counts}) + "\n")
    return 0
