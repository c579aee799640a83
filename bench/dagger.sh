#!/usr/bin/env bash
# One round of DAgger with interventions through the real ROS pipeline, then retraining on the aggregate.
#
#   bash bench/dagger.sh MODEL DATA [OUT=runs/dagger/<core>_s<seed>] [SEEDS="100 102"]
#
# MODEL: the checkpoint stem that drives (e.g. models/ltc_ncp_carracing, runs/compare/cnn_s0/best). DATA: the folder
# with train/ and val/ bags it was trained on (bench/make_carracing_model.sh records them: seeds 100-103 train, 200
# val).
# 1. Record: `lnn-control up dagger-sim` (sim_node + drive_node with MODEL + demonstrator_node in intervention mode +
#    command mux + recorder, over Fast DDS on this machine only; config/dagger.yaml) on the TRAINING seeds, as DAgger
#    does: SEEDS 100 and 102, two episodes each (seed, seed + 1), one bag per run, into OUT/data/train. The policy
#    drives; the demonstrator labels every frame (demonstrator_node/label) and takes over (teleop/cmd_vel, as a
#    person) while the car is more than 5.5 m off the centreline or 46 deg off the track's heading, handing back within
#    2 m and 17 deg after 0.5 s at least, at 30 m/s at most (config/sim.yaml, demonstrator_node).
# 2. Intervention statistics from the recorded bags: frames, frames the demonstrator drove (teleop messages), takeovers
#    (runs of consecutive teleop stamps), frames lost (more than two road half widths off the centreline: a recovery
#    that failed; their labels are poor), and the episodes' scores (with the interventions helping).
# 3. Retrain the same core with the same seed (model.seed = training.seed = MODEL's seed) on the aggregate: DATA/train
#    + OUT/data/train, validated on DATA/val, with the recipe of MODEL's run (its config.yaml; CONFIG=file, or
#    config/train_carracing.yaml for a checkpoint without one, such as models/) -> OUT/best.
# 4. Reference in the same run: `lnn-control eval` replays DATA/val through MODEL and OUT/best (config/sim.yaml's
#    limits) and reports their errors against the label; the training val loss of both runs when MODEL's run folder
#    (its metrics.csv) is known (MODEL's folder, or REF_RUN=folder). Ends with one JSON line.
# Steps already done (a seed's bag, the training) are kept and an interrupted training resumes (train --resume), so
# the script picks up where it stopped. THREADS=N sets the training's torch threads (default: the config's 2; on a
# crowded 2-core machine 1 is faster).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?usage: bash bench/dagger.sh MODEL DATA [OUT] [SEEDS]}
DATA=${2:?usage: bash bench/dagger.sh MODEL DATA [OUT] [SEEDS]}
BIN=.venv/bin/lnn-control
PY=.venv/bin/python
# shellcheck source=bench/dagger_model.sh
source bench/dagger_model.sh
OUT=${3:-runs/dagger/${CORE}_s$SEED}
SEEDS=${4:-100 102}
ABS_MODEL=$(realpath "$MODEL")
RECIPE=$(dirname "$MODEL")/config.yaml
[[ -f "$RECIPE" ]] || RECIPE=config/train_carracing.yaml
CONFIG=${CONFIG:-$RECIPE}
mkdir -p "$OUT/data/train"
echo "DAgger round: $MODEL ($CORE, seed $SEED) drives seeds $SEEDS (2 episodes each); data $DATA; recipe $CONFIG;"\
  "out $OUT"

record() {  # seed: run dagger-sim until the sim reports its episodes done, then stop it cleanly
  local log="$OUT/record_$1.log"
  if [[ -f "$OUT/record_$1.done" ]]; then echo "keep the bag of seed $1"; return; fi
  echo "record seed $1 ($log)"
  rm -rf "$OUT/data/train/$1"  # what an interrupted run left
  bash bench/until_episodes_done.sh "$log" $BIN up dagger-sim --local --processes --duration 900 \
    --set "drive_node.model=$ABS_MODEL" --set "sim_node.seed=$1" --set "sim_node.episodes=2" \
    --set "recorder_node.output_dir=$(realpath -m "$OUT/data/train/$1")"
  grep -h "labels; drove\|ended (" "$log" | sed 's/^/  /'
  touch "$OUT/record_$1.done"
}

for seed in $SEEDS; do record "$seed"; done

THREADS_ARG=()
[[ -n "${THREADS:-}" ]] && THREADS_ARG=(--threads "$THREADS")  # e.g. THREADS=1 on a crowded machine
if [[ -f "$OUT/train.done" ]]; then
  echo "keep $OUT/best"
elif [[ -f "$OUT/state.json" ]]; then
  echo "resume training $OUT ($OUT/train.log)"
  $BIN train --resume "$OUT" "${THREADS_ARG[@]}" --no-progress >> "$OUT/train.log" 2>&1
  touch "$OUT/train.done"
else
  echo "train $OUT ($OUT/train.log)"
  $BIN train --config "$CONFIG" --bags "$DATA"/train/* "$OUT"/data/train/*/* --val-bags "$DATA"/val/* \
    --out "$OUT" --set "model.core=$CORE" --set "model.seed=$SEED" --set "training.seed=$SEED" "${THREADS_ARG[@]}" \
    --set training.progress=false > "$OUT/train.log" 2>&1
  touch "$OUT/train.done"
fi
$BIN eval --model "$MODEL" --model "$OUT/best" --name original --name dagger --bags "$DATA"/val \
  --driver-config config/sim.yaml --no-plots --no-progress --out "$OUT/eval-val" > "$OUT/eval-val.log" 2>&1

REF_RUN=${REF_RUN:-$(dirname "$MODEL")}
$PY - "$OUT" "$DATA" "$MODEL" "$REF_RUN" <<'EOF'
"""Intervention statistics of the DAgger bags and the before/after comparison; one JSON line at the end."""
import csv
import json
import sys
from pathlib import Path

from lnn_control.data.bags import discover_bags, read_records

out, data, model, ref_run = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
DT_NS = 20_000_000


def runs(stamps):
    """Maximal runs of consecutive frame stamps (one sim frame apart)."""
    count, last = 0, None
    for t in sorted(stamps):
        if last is None or t - last > 1.5 * DT_NS:
            count += 1
        last = t
    return count


def frames(bag):
    return sum(1 for _ in read_records(bag, ["/camera/image_raw"]))


rows = []
for bag in discover_bags([out / "data" / "train"]):
    states = {r.header_ns for r in read_records(bag, ["/demonstrator_node/label"])}
    teleop = {r.header_ns for r in read_records(bag, ["/teleop/cmd_vel"])}
    sources = [r.msg.data for r in read_records(bag, ["/mux/active_source"])]
    handovers = sum(1 for a, b in zip(sources, sources[1:]) if b == "teleop" and a != "teleop")
    events = [json.loads(r.msg.data) for r in read_records(bag, ["/sim/episode"])]
    ends = [e for e in events if e.get("event") == "end"]
    half_width = next(e["track"]["half_width"] for e in events if e.get("event") == "start")
    # lost: the car more than two road half widths off the centreline (the expert did not get it back in time)
    lost = 0
    for r in read_records(bag, ["/sim/truth"]):
        row = dict(zip(r.msg.layout.dim[0].label.split(","), r.msg.data))
        lost += int(abs(row["track_offset"]) > 2 * half_width)
    rows.append({"bag": bag.name, "seed_run": bag.parent.name, "frames": frames(bag), "labels": len(states),
                 "driven": len(teleop & states), "takeovers": runs(teleop), "mux_to_teleop": handovers,
                 "lost": lost, "scores": [round(e["score"], 1) for e in ends], "laps": [e.get("laps") for e in ends]})
print(f"\n{'bag':<42} {'frames':>6} {'labels':>6} {'driven':>6} {'share':>6} {'takeovers':>9} {'mux->teleop':>11}"
      f" {'lost':>5}  scores (with interventions)")
for r in rows:
    share = r["driven"] / max(1, r["labels"])
    print(f"{r['seed_run'] + '/' + r['bag']:<42} {r['frames']:>6} {r['labels']:>6} {r['driven']:>6} {share:>6.1%} "
          f"{r['takeovers']:>9} {r['mux_to_teleop']:>11} {r['lost']:>5}  {r['scores']} laps {r['laps']}")
total = {k: sum(r[k] for r in rows) for k in ("frames", "labels", "driven", "takeovers", "mux_to_teleop", "lost")}
fraction = total["driven"] / max(1, total["labels"])
original = sum(frames(b) for b in discover_bags([data / "train"]))
print(f"{'total':<42} {total['frames']:>6} {total['labels']:>6} {total['driven']:>6} {fraction:>6.1%} "
      f"{total['takeovers']:>9} {total['mux_to_teleop']:>11} {total['lost']:>5}")
print(f"aggregate: {original} original + {total['frames']} DAgger frames")


def best_val(metrics):
    if not metrics.is_file():
        return None
    with metrics.open() as f:
        rows = list(csv.DictReader(f))
    best = min(rows, key=lambda r: float(r["val_loss"]))
    return {k: float(best[k]) for k in ("epoch", "val_loss", "val_mae_steering", "val_mae_velocity")}


before, after = best_val(ref_run / "metrics.csv"), best_val(out / "metrics.csv")
replay = {}
for m in json.loads((out / "eval-val" / "metrics.json").read_text())["metrics"]:
    replay.setdefault(m["model"], {})[m["output"]] = m["mae"]
print(f"\nvalidation bags {data / 'val'} replayed through both (lnn-control eval, config/sim.yaml limits), MAE:")
for name in ("original", "dagger"):
    print(f"  {name:<9} steering {replay[name]['steering']:.4f}  velocity {replay[name]['velocity']:.2f} m/s")
ratio = replay["dagger"]["steering"] / replay["original"]["steering"]
print(f"  steering MAE ratio dagger/original: {ratio:.3f}")
if before and after:
    print(f"training val loss (best epoch; normalised by each run's own target std, so compare MAEs): "
          f"original {before['val_loss']:.4f} (epoch {before['epoch']:.0f}, {ref_run / 'metrics.csv'}), "
          f"dagger {after['val_loss']:.4f} (epoch {after['epoch']:.0f})")
print(json.dumps({
    "bench": "dagger", "model": model, "out": str(out), "frames": total["frames"], "original_frames": original,
    "demonstrator_fraction": round(fraction, 4), "takeovers": total["takeovers"], "lost_frames": total["lost"],
    "takeovers_per_1000_frames": round(1000 * total["takeovers"] / max(1, total["frames"]), 2),
    "episode_scores": [s for r in rows for s in r["scores"]],
    "val_mae_steering": {"original": replay["original"]["steering"], "dagger": replay["dagger"]["steering"]},
    "val_mae_velocity": {"original": replay["original"]["velocity"], "dagger": replay["dagger"]["velocity"]},
    "steering_mae_ratio": round(ratio, 4),
    "train_val_loss": {"original": before and before["val_loss"], "dagger": after and after["val_loss"]},
}))
EOF
