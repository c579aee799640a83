#!/usr/bin/env bash
# The recipe of models/ltc_ncp_carracing: record the demonstrator through ROS, train an LTC-NCP, evaluate closed loop.
#
#   bash bench/make_carracing_model.sh [OUT=runs/carracing] [CORE=ltc]
#
# Data: `lnn-control up record-sim` (sim_node + demonstrator_node + command mux + recorder_node, over Fast DDS on this
# machine only) with config/sim.yaml's demonstrator imperfection (steering noise 0.1, a 0.25 drift every 5 s on
# average); training seeds 100-101 and 102-103 (one bag of two 1000-frame episodes each), validation seed 200.
# The label is the demonstrator's clean command (demonstrator_node/label). Training: config/train_carracing.yaml.
# Evaluation: unseen seeds 1000-1004 in-process through Driver.observe (lnn-control sim-eval).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/carracing}
CORE=${2:-ltc}
BIN=.venv/bin/lnn-control

record() {  # seed episodes folder: run record-sim until the sim reports its episodes done, then stop it cleanly
  local log="$OUT/record_$1.log"
  mkdir -p "$OUT"
  $BIN up record-sim --local --processes --duration 900 --set "sim_node.seed=$1" --set "sim_node.episodes=$2" \
    --set "recorder_node.output_dir=$PWD/$OUT/data/$3" > "$log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if grep -q "episode(s) done" "$log"; then sleep 3; kill -INT "$pid"; fi
    sleep 3
  done
  wait "$pid" || true
}

record 100 2 train
record 102 2 train
record 200 1 val
$BIN train --config config/train_carracing.yaml --bags "$OUT"/data/train/* --val-bags "$OUT"/data/val/* \
  --out "$OUT/$CORE" --set "model.core=$CORE"
$BIN sim-eval --model "$OUT/$CORE/best" --episodes 5 --seed 1000 --out "$OUT/sim-eval-$CORE"
