#!/usr/bin/env bash
# The recipe of models/ltc_ncp_carracing: record the demonstrator through ROS, train an LTC-NCP, one DAgger round
# through ROS, evaluate closed loop on unseen tracks.
#
#   bash bench/make_carracing_model.sh [OUT=runs/carracing] [CORE=ltc] [SEED=2]
#   RECORD_ONLY=1 bash bench/make_carracing_model.sh runs/carracing   # only the demonstrations (for train_policies.sh)
#
# 1. Data: `lnn-control up record-sim` (sim_node + demonstrator_node + command mux + recorder_node, over Fast DDS on
#    this machine only) with config/sim.yaml's demonstrator imperfection (steering noise 0.1, a 0.25 drift every 5 s on
#    average); training seeds 100-101 and 102-103 (one bag of two episodes each), validation seed 200, into OUT/data.
#    The label is the demonstrator's clean command (demonstrator_node/label).
# 2. Training: config/train_carracing.yaml with model.seed = training.seed = SEED -> OUT/<CORE>_s<SEED>, exactly as
#    bench/train_policies.sh trains the comparison's runs (the shipped model is its seed 2).
# 3. DAgger: bench/dagger.sh (the policy drives seeds 100-103 through ROS, the demonstrator labels and takes over;
#    retrain on the aggregate) -> OUT/dagger_<CORE>_s<SEED>/best, the shipped checkpoint.
# 4. Evaluation: `lnn-control sim-eval` on 20 unseen tracks (seeds 2000-2019), clean and with pixel noise 0.1.
# Steps already done are kept, so the script resumes. THREADS=N sets the trainings' torch threads.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/carracing}
CORE=${2:-ltc}
SEED=${3:-2}
BIN=.venv/bin/lnn-control

record() {  # seed episodes folder: record-sim until the sim reports its episodes done
  local log="$OUT/record_$1.log"
  if [[ -f "$OUT/record_$1.done" ]]; then echo "keep the bag of seed $1"; return; fi
  local tmp="$OUT/data/.partial_$1"  # moved into place when the episodes are done, so a rerun never doubles data
  rm -rf "$tmp"
  mkdir -p "$OUT/data/$3"
  echo "record seed $1 ($log)"
  bash bench/until_episodes_done.sh "$log" $BIN up record-sim --local --processes --duration 900 \
    --set "sim_node.seed=$1" --set "sim_node.episodes=$2" --set "recorder_node.output_dir=$(realpath -m "$tmp")"
  mv "$tmp"/* "$OUT/data/$3/"
  rmdir "$tmp"
  touch "$OUT/record_$1.done"
}

record 100 2 train
record 102 2 train
record 200 1 val
[[ -n "${RECORD_ONLY:-}" ]] && { echo "recorded into $OUT/data"; exit 0; }

bash bench/train_policies.sh "$OUT/data" "$OUT" "$SEED" "$CORE"
bash bench/dagger.sh "$OUT/${CORE}_s$SEED/best" "$OUT/data" "$OUT/dagger_${CORE}_s$SEED"
for perturb in clean noise=0.1; do
  extra=(); [[ $perturb != clean ]] && extra=(--perturb "$perturb")
  $BIN sim-eval --model "$OUT/dagger_${CORE}_s$SEED/best" --episodes 20 --seed 2000 "${extra[@]}" \
    --out "$OUT/sim-eval-$perturb"
done
