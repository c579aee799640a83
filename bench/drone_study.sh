#!/usr/bin/env bash
# The drone study end to end: demonstrations through ROS, the four policies from three training seeds each on the
# same budget (config/train_drone.yaml), every policy in every domain; then one DAgger round for every run
# (bench/drone_dagger.sh: 20 flights of its own through ROS, then 2 epochs of fine-tuning on the aggregate) and the
# same study of the results; then the tables, the plot, the change per cell and the JSON line.
#
#   bash bench/drone_study.sh [OUT=runs/drone] [SEEDS="0 1 2"] [EPISODES=50] [STRESS_EPISODES=20]
#
# Data: 200 training flights (seeds 100-199, 300-399) and 40 validation flights (200-239), summer only. Training and
# evaluation run as two streams of one thread each (LTC + CNN, CfC + LSTM), which fills a 2-core machine; the
# demonstrator runs in the first. The DAgger runs go to OUT_dagger/<core>_s<seed>. Every step keeps what an earlier
# run finished, so the script resumes. Measured on a 2-core AVX-512 machine: data 7 minutes, training 76 minutes (10
# to 14 minutes a run), the study 8 to 13 minutes per policy and seed (flights that wander until the time limit are
# the slow ones), a DAgger round 1.5 minutes of flights and 7 minutes of fine-tuning per run: about 5 hours in all.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/drone}
SEEDS=${2:-0 1 2}
EPISODES=${3:-50}
STRESS_EPISODES=${4:-20}
PY=.venv/bin/python
# shellcheck source=bench/side_by_side.sh
source bench/side_by_side.sh

bash bench/make_drone_data.sh "$OUT" 20 10 4

stream() {  # cores: train every seed, then the study (with the demonstrator in the stream of the LTC)
  local expert=""
  [[ $1 == ltc* ]] && expert=--expert
  CONFIG=config/train_drone.yaml THREADS=1 bash bench/train_policies.sh "$OUT/data" "$OUT" "$SEEDS" "$1"
  # shellcheck disable=SC2086
  $PY bench/compare_drone_policies.py --runs "$OUT" --cores $1 --episodes "$EPISODES" $expert
  # shellcheck disable=SC2086
  $PY bench/compare_drone_policies.py --runs "$OUT" --cores $1 --episodes "$EPISODES" $expert --stress --range \
    --stress-episodes "$STRESS_EPISODES"
}
dagger_stream() {  # cores: one DAgger round per run, then the study of the fine-tuned runs
  for core in $1; do
    for seed in $SEEDS; do
      THREADS=1 bash bench/drone_dagger.sh "$OUT/${core}_s$seed/best" "$OUT/data" "${OUT}_dagger/${core}_s$seed"
    done
  done
  # shellcheck disable=SC2086
  $PY bench/compare_drone_policies.py --runs "${OUT}_dagger" --cores $1 --episodes "$EPISODES"
}
side_by_side stream "$OUT/stream_ltc_cnn.log" "ltc cnn" "$OUT/stream_cfc_lstm.log" "cfc lstm"
# Two streams: each DAgger recording's `up --local` runs on a ROS domain of its own (random), so they do not meet.
side_by_side dagger_stream "$OUT/dagger_ltc_cnn.log" "ltc cnn" "$OUT/dagger_cfc_lstm.log" "cfc lstm"
$PY bench/compare_drone_policies.py --runs "$OUT" --report
$PY bench/compare_drone_policies.py --runs "${OUT}_dagger" --report --before "$OUT"
