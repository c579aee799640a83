#!/usr/bin/env bash
# Train the four policies of bench/compare_policies.py on the same data, with the same conv head and recipe:
# LTC-NCP, CfC-NCP, LSTM-64 and the feed-forward CNN, each from several training seeds.
#
#   bash bench/train_policies.sh [DATA=runs/carracing/data] [OUT=runs/compare] [SEEDS="0 1 2"] [CORES="ltc cfc lstm cnn"]
#   CONFIG=config/train_drone.yaml bash bench/train_policies.sh runs/drone/data runs/drone   # the drone's recipe
#
# DATA holds train/ and val/ bag folders, as bench/make_carracing_model.sh records them. A run whose best checkpoint
# already exists is kept, so the script resumes after an interruption. Seed S sets model.seed (initial weights) and
# training.seed (window order, augmentation) to S. THREADS=N sets the training's torch threads (default: the config's
# 2); two scripts with THREADS=1 and disjoint SEEDS/CORES use a crowded 2-core machine better than one with 2 threads.
# SET="key=value ..." adds config overrides (e.g. SET=training.precision=fp32); a DAgger round keeps them, as it
# retrains with the run's own config.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-runs/carracing/data}
OUT=${2:-runs/compare}
SEEDS=${3:-0 1 2}
CORES=${4:-ltc cfc lstm cnn}
BIN=.venv/bin/lnn-control
CONFIG=${CONFIG:-config/train_carracing.yaml}
OVERRIDES=()
[[ -n "${THREADS:-}" ]] && OVERRIDES=(--set "training.threads=$THREADS")
for item in ${SET:-}; do OVERRIDES+=(--set "$item"); done
mkdir -p "$OUT"
for seed in $SEEDS; do
  for core in $CORES; do
    run="$OUT/${core}_s$seed"
    if [[ -f "$run/best.safetensors" && -f "$run/best.json" ]]; then echo "keep $run"; continue; fi
    echo "train $run"
    $BIN train --config "$CONFIG" --bags "$DATA"/train/* --val-bags "$DATA"/val/* --out "$run" \
      --set "model.core=$core" --set "model.seed=$seed" --set "training.seed=$seed" --set training.progress=false \
      "${OVERRIDES[@]}" > "$OUT/train_${core}_s$seed.log" 2>&1
  done
done
