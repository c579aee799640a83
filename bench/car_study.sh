#!/usr/bin/env bash
# The car's out-of-distribution study, on the drone study's recipe: demonstrations through ROS, the four policies
# from three training seeds each with the generic augmentation and a fixed budget (config/train_carracing_aug.yaml:
# nothing of winter or of CarRacing's random colours), one DAgger round for every run, and every policy before and
# after its round on unseen tracks clean, under `winter` and under CarRacing's own `domain_randomize` colours.
#
#   bash bench/car_study.sh [OUT=runs/car_aug] [SEEDS="0 1 2"] [TRACKS=20] [FIRST_TRACK=2000]
#
# Data: bench/make_carracing_model.sh's (training seeds 100-103, validation 200) in OUT/data. Runs: OUT/<core>_s<seed>;
# DAgger rounds (bench/dagger.sh with each run's own recipe): OUT_dagger/<core>_s<seed>. The study:
# bench/compare_policies.py with every training seed on every track (--assign all), into reports/car_study. Training
# and the rounds run as two streams of one thread each (LTC + CNN, CfC + LSTM). Measured on a 2-core AVX-512 machine:
# a training 3.5 minutes, a DAgger round 10 to 12 minutes (3 of driving through ROS, the rest retraining on the
# aggregate). Every step keeps what an earlier run finished, so the script resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/car_aug}
SEEDS=${2:-0 1 2}
TRACKS=${3:-20}
FIRST_TRACK=${4:-2000}
PY=.venv/bin/python
# shellcheck source=bench/side_by_side.sh
source bench/side_by_side.sh

RECORD_ONLY=1 bash bench/make_carracing_model.sh "$OUT"

stream() {  # cores: train every seed, then one DAgger round per run
  CONFIG=config/train_carracing_aug.yaml THREADS=1 bash bench/train_policies.sh "$OUT/data" "$OUT" "$SEEDS" "$1"
  for core in $1; do
    for seed in $SEEDS; do
      THREADS=1 bash bench/dagger.sh "$OUT/${core}_s$seed/best" "$OUT/data" "${OUT}_dagger/${core}_s$seed"
    done
  done
}
# Two streams: each DAgger recording's `up --local` runs on a ROS domain of its own (random), so they do not meet.
side_by_side stream "$OUT/stream_ltc_cnn.log" "ltc cnn" "$OUT/stream_cfc_lstm.log" "cfc lstm"
$PY bench/compare_policies.py --runs "$OUT" --seeds "$(echo "$SEEDS" | tr ' ' ,)" --tracks "$TRACKS" \
  --first-track "$FIRST_TRACK" --assign all --conditions clean,winter,randomize \
  --extra "LTC-NCP + DAgger=${OUT}_dagger/ltc_s*" --extra "CfC-NCP + DAgger=${OUT}_dagger/cfc_s*" \
  --extra "LSTM-64 + DAgger=${OUT}_dagger/lstm_s*" --extra "CNN + DAgger=${OUT}_dagger/cnn_s*" --out reports/car_study
