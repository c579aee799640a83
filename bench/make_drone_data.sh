#!/usr/bin/env bash
# Demonstrations of the drone for training, recorded through ROS: `lnn-control up drone-record-sim` (sim_node with
# the MuJoCo drone in the summer domain + drone_demonstrator_node with its imperfection + command mux +
# recorder_node, over Fast DDS on this machine only), fly-to-target, one bag per block of seeds.
#
#   bash bench/make_drone_data.sh [OUT=runs/drone] [BLOCKS=4] [PER_BLOCK=10] [VAL_BLOCKS=1]
#
# Training seeds 100-199 then 300.. (BLOCKS x PER_BLOCK episodes, into OUT/data/train), validation seeds 200-299
# (VAL_BLOCKS x PER_BLOCK episodes, into OUT/data/val). Evaluation seeds are 1000 and up: never recorded.
# PER_BLOCK must divide 100. The label to train on is the
# demonstrator's clean command (drone_demonstrator_node/label). Blocks already recorded are kept (the script
# resumes).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/drone}
BLOCKS=${2:-4}
PER_BLOCK=${3:-10}
VAL_BLOCKS=${4:-1}
(( 100 % PER_BLOCK == 0 )) || { echo "PER_BLOCK must divide 100" >&2; exit 2; }
BIN=.venv/bin/lnn-control

record() {  # first_seed episodes folder
  local log="$OUT/record_$1.log"
  if [[ -f "$OUT/record_$1.done" ]]; then echo "keep the bag of seeds $1.."; return; fi
  local tmp="$OUT/data/.partial_$1"  # moved into place when the episodes are done, so a rerun never doubles data
  rm -rf "$tmp"
  mkdir -p "$OUT/data/$3"
  echo "record seeds $1..$(($1 + $2 - 1)) ($log)"
  bash bench/until_episodes_done.sh "$log" $BIN up drone-record-sim --local --processes --duration 1800 \
    --set "sim_node.seed=$1" --set "sim_node.episodes=$2" --set "drone_demonstrator_node.seed=$1" \
    --set "recorder_node.output_dir=$(realpath -m "$tmp")"
  mv "$tmp"/* "$OUT/data/$3/"
  rmdir "$tmp"
  touch "$OUT/record_$1.done"
}

for ((b = 0; b < BLOCKS; b++)); do
  seed=$((100 + b * PER_BLOCK))
  (( seed >= 200 )) && seed=$((seed + 100))  # 200-299 are the validation seeds
  (( seed >= 1000 )) && { echo "more than 900 training episodes would reach the evaluation seeds" >&2; exit 2; }
  record "$seed" "$PER_BLOCK" train
done
for ((v = 0; v < VAL_BLOCKS && v * PER_BLOCK < 100; v++)); do
  record $((200 + v * PER_BLOCK)) "$PER_BLOCK" val
done
echo "recorded into $OUT/data"
