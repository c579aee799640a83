#!/usr/bin/env bash
# One round of DAgger with interventions for a drone policy through the real ROS pipeline, then fine-tuning it on the
# aggregate with the recipe of its own run.
#
#   bash bench/drone_dagger.sh MODEL DATA [OUT=runs/drone_dagger/<core>_s<seed>] [FIRST_SEED=100] [EPISODES=20]
#
# MODEL: the checkpoint stem that flies (e.g. runs/drone/cfc_s0/best). DATA: the folder with the train/ and val/ bags
# it was trained on (bench/make_drone_data.sh).
# 1. Record: `lnn-control up drone-dagger-sim` (sim_node with the drone + drive_node with MODEL +
#    drone_demonstrator_node in intervention mode + command mux + recorder, over Fast DDS on this machine only;
#    config/drone_dagger.yaml) for EPISODES flights on TRAINING seeds FIRST_SEED and up, summer only, one bag in
#    OUT/data/train. The policy flies; the demonstrator labels every frame and takes over (teleop/cmd_vel, the mux's
#    person input) near a trunk, with the target lost from view, or out of the altitude band.
# 2. Statistics from the bag: frames, frames the demonstrator flew, takeovers (the mux handing over to teleop), and
#    the flights' outcomes with the interventions helping.
# 3. Fine-tune MODEL (`train --init`) on DATA/train + OUT/data/train for EPOCHS_DAGGER epochs (2), with the recipe
#    of MODEL's own run (its config.yaml: core, seed, learning rates, augmentation, precision), validated on DATA/val
#    -> OUT/best. Every policy gets the same round: its own flights, the same number of epochs. OUT's parent then
#    holds <core>_s<seed> runs like bench/drone_study.sh's, so
#    `python bench/compare_drone_policies.py --runs runs/drone_dagger` evaluates them the same way.
# Ends with one JSON line. Steps already done are kept (the bag, the training), so the script resumes.
# RECORD_ONLY=1 stops after the statistics of step 2; THREADS=N sets the training's torch threads.
# CONTROL=1 is the round's control: no flights, the same fine-tune (same checkpoint, recipe and epochs) on DATA/train
# alone, into OUT=runs/drone_control/<core>_s<seed>; its study against the round's separates what the flights add
# from what 2 more epochs add.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?usage: bash bench/drone_dagger.sh MODEL DATA [OUT] [FIRST_SEED] [EPISODES]}
DATA=${2:?usage: bash bench/drone_dagger.sh MODEL DATA [OUT] [FIRST_SEED] [EPISODES]}
BIN=.venv/bin/lnn-control
PY=.venv/bin/python
# shellcheck source=bench/dagger_model.sh
source bench/dagger_model.sh
ROUND=dagger
[[ -n "${CONTROL:-}" ]] && ROUND=control
OUT=${3:-runs/drone_$ROUND/${CORE}_s$SEED}
FIRST_SEED=${4:-100}
EPISODES=${5:-20}
mkdir -p "$OUT/data/train"
if [[ -n "${CONTROL:-}" ]]; then
  echo "control of a drone DAgger round: $MODEL ($CORE, seed $SEED) fine-tuned without flights; data $DATA; out $OUT"
elif [[ -f "$OUT/record.done" ]]; then
  echo "keep the DAgger bag"
else
  echo "drone DAgger round: $MODEL ($CORE, seed $SEED) flies seeds $FIRST_SEED.. ($EPISODES flights); data $DATA; out $OUT"
  rm -rf "$OUT/data/train/flights"  # what an interrupted run left
  bash bench/until_episodes_done.sh "$OUT/record.log" $BIN up drone-dagger-sim --local --processes --duration 1800 \
    --set "drive_node.model=$(realpath "$MODEL")" --set "sim_node.seed=$FIRST_SEED" \
    --set "sim_node.episodes=$EPISODES" --set "recorder_node.output_dir=$(realpath -m "$OUT/data/train/flights")"
  touch "$OUT/record.done"
fi

THREADS_ARG=()
[[ -n "${THREADS:-}" ]] && THREADS_ARG=(--threads "$THREADS")
if [[ -n "${RECORD_ONLY:-}" ]]; then
  echo "RECORD_ONLY: no retraining"
elif [[ -f "$OUT/best.safetensors" && -f "$OUT/best.json" ]]; then
  echo "keep $OUT/best"
else
  RECIPE=$(dirname "$MODEL")/config.yaml
  [[ -f "$RECIPE" ]] || { echo "error: $RECIPE (the recipe of $MODEL's run) not found" >&2; exit 2; }
  echo "fine-tune $MODEL for ${EPOCHS_DAGGER:-2} epochs with $RECIPE -> $OUT ($OUT/train.log)"
  FLIGHTS=("$OUT"/data/train/flights/*)
  [[ -n "${CONTROL:-}" ]] && FLIGHTS=()
  $BIN train --config "$RECIPE" --init "$MODEL" --epochs "${EPOCHS_DAGGER:-2}" \
    --bags "$DATA"/train/* "${FLIGHTS[@]}" --val-bags "$DATA"/val/* --out "$OUT" \
    --set training.progress=false "${THREADS_ARG[@]}" > "$OUT/train.log" 2>&1
fi

$PY - "$OUT" "$DATA" "$MODEL" <<'EOF'
"""What the round recorded and changed: interventions, outcomes, validation loss before and after; one JSON line."""
import csv
import json
import sys
from pathlib import Path

from lnn_control.data.bags import discover_bags, read_records

out, data, model = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
frames = labels = flown = takeovers = 0
outcomes = []
flights = out / "data" / "train"
for bag in discover_bags([flights]) if any(flights.iterdir()) else []:  # none in a control
    frames += sum(1 for _ in read_records(bag, ["/camera/image_raw"]))
    label_stamps = {r.header_ns for r in read_records(bag, ["/drone_demonstrator_node/label"])}
    labels += len(label_stamps)
    flown += len(label_stamps & {r.header_ns for r in read_records(bag, ["/teleop/cmd_vel"])})
    sources = [r.msg.data for r in read_records(bag, ["/mux/active_source"])]
    takeovers += sum(1 for a, b in zip(sources, sources[1:]) if b == "teleop" and a != "teleop")
    outcomes += [e for e in (json.loads(r.msg.data) for r in read_records(bag, ["/sim/episode"]))
                 if e.get("event") == "end"]


def best_val(run: Path) -> dict | None:
    metrics = run / "metrics.csv"
    if not metrics.is_file():
        return None
    with metrics.open() as f:
        best = min(csv.DictReader(f), key=lambda r: float(r["val_loss"]))
    return {"epoch": int(float(best["epoch"])), "val_loss": float(best["val_loss"])}


success = sum(bool(e.get("success")) for e in outcomes)
collided = sum(bool(e.get("collided")) for e in outcomes)
share = flown / max(1, labels)
original = sum(1 for b in discover_bags([data / "train"]) for _ in read_records(b, ["/camera/image_raw"]))
before, after = best_val(model.parent), best_val(out)
print(f"{frames} frames recorded, {labels} labelled, {flown} ({share:.1%}) flown by the demonstrator in {takeovers} "
      f"takeovers; flights with the interventions helping: {success}/{len(outcomes)} reached the target, "
      f"{collided} collided")
print(f"aggregate: {original} original + {frames} DAgger frames")
if before and after:
    print(f"validation loss (best epoch, on {data / 'val'}): before {before['val_loss']:.4f} (epoch {before['epoch']}), "
          f"after {after['val_loss']:.4f} (epoch {after['epoch']})")
print(json.dumps({"bench": "drone_dagger", "model": str(model), "out": str(out), "frames": frames,
                  "original_frames": original, "demonstrator_share": round(share, 4), "takeovers": takeovers,
                  "flights": len(outcomes), "success": success, "collided": collided,
                  "val_loss": {"before": before and before["val_loss"], "after": after and after["val_loss"]}}))
EOF
