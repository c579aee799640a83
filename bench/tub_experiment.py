"""The real Donkeycar tub: does a small NCP trained for a few minutes on this CPU beat the constant-mean baseline?

The tub (``../shared/data/donkeycar_tub/tub.tar.gz``: 1000 frames of a person driving a small car round an indoor
track, 160x120 JPEG, 20 Hz) is imported with :func:`lnn_control.data.tub.import_tub` and cut into three episodes:
frames 0-639 train, 640-799 validate (early stopping, best-model choice), 800-999 are held out. So training sees
only the first 800 frames, and the last 200 are scored, as two episodes, never split by frame.

Each core named (``--cores``, default cfc and ltc) is trained with ``lnn-control train``'s own code
(:func:`lnn_control.train.train`, the package's ``config/train.yaml`` plus the overrides below), then replayed over
the held-out bag through ``Driver.observe`` (:func:`lnn_control.evaluate.evaluate_bags`). Printed: steering MAE of each
model and of the constant baseline (the training frames' mean steering) on the held-out 200 frames; the last line
is JSON.

    python bench/tub_experiment.py [--cores cfc ltc] [--minutes 6] [--out runs/tub]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lnn_control.data.tub import import_tub  # noqa: E402
from lnn_control.demo import TUB, TUB_OVERRIDES  # noqa: E402
from lnn_control.evaluate import evaluate_bags, load_models  # noqa: E402
from lnn_control.train import load_config, train  # noqa: E402

OVERRIDES = TUB_OVERRIDES + ["training.progress=false"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tub", type=Path, default=TUB)
    parser.add_argument("--cores", nargs="+", default=["cfc", "ltc"], choices=("ltc", "cfc", "lstm", "cnn"))
    parser.add_argument("--minutes", type=float, default=6.0, help="largest training time per core (whole epochs)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="keep runs and reports here (default: a temp dir)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="more train overrides")
    args = parser.parse_args()
    if not args.tub.exists():
        sys.exit(f"tub not found: {args.tub}")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="lnn-tub-experiment-") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        report = import_tub(args.tub, out / "tub", split_at=[640, 800])
        train_bag, val_bag, test_bag = (Path(b) for b in report.bags)
        print(f"imported {report.frames_written} frames: train {train_bag.name} (640), validate {val_bag.name} "
              f"(160), held out {test_bag.name} (200)")
        results = {}
        for core in args.cores:
            config = load_config(None, OVERRIDES + [
                f"model.core={core}", f"training.threads={args.threads}",
                f"training.time_limit_s={args.minutes * 60:g}", f"training.cache_dir={out / 'cache'}",
            ] + args.overrides)
            started = time.perf_counter()
            run = train(config, [train_bag], out / core, val_bags=[val_bag])
            seconds = time.perf_counter() - started
            models = load_models([out / core / "best"], [core])
            result = evaluate_bags(models, [test_bag], out / f"eval_{core}", plots=core == args.cores[0],
                              saliency_frames=100)
            rows = {(r["model"], r["output"]): r for r in result.rows}
            base = next(m for m, _ in rows if m.startswith("baseline"))
            results[core] = {
                "steering_mae": rows[(core, "steering")]["mae"],
                "steering_rmse": rows[(core, "steering")]["rmse"],
                "steering_corr": rows[(core, "steering")]["corr"],
                "baseline_steering_mae": rows[(base, "steering")]["mae"],
                "velocity_mae": rows[(core, "velocity")]["mae"],
                "baseline_velocity_mae": rows[(base, "velocity")]["mae"],
                "epochs": run.epochs_run,
                "best_epoch": run.best_epoch,
                "train_seconds": round(seconds, 1),
                "parameters": models[0].policy.parameter_counts()["total"],
            }
            r = results[core]
            print(f"{core}: held-out steering MAE {r['steering_mae']:.4f} (corr {r['steering_corr']:.3f}) vs "
                  f"constant-mean baseline {r['baseline_steering_mae']:.4f}; {run.epochs_run} epochs "
                  f"(best {run.best_epoch}) in {seconds:.0f} s", flush=True)
    print()
    print(f"{'core':<6} {'steering MAE':>13} {'baseline MAE':>13} {'corr':>6} {'velocity MAE':>13} "
          f"{'baseline':>9} {'epochs':>7} {'train s':>8}")
    for core, r in results.items():
        print(f"{core:<6} {r['steering_mae']:13.4f} {r['baseline_steering_mae']:13.4f} {r['steering_corr']:6.3f} "
              f"{r['velocity_mae']:13.4f} {r['baseline_velocity_mae']:9.4f} {r['epochs']:7d} {r['train_seconds']:8.0f}")
    best = min(results, key=lambda c: results[c]["steering_mae"])
    print(json.dumps({
        "bench": "tub_experiment", "held_out_frames": 200, "train_frames": 640, "val_frames": 160,
        "threads": args.threads, "minutes_per_core": args.minutes, "best_core": best,
        "beats_baseline": results[best]["steering_mae"] < results[best]["baseline_steering_mae"],
        "results": results,
    }))


if __name__ == "__main__":
    main()
