# Sourced by bench/drone_study.sh and bench/car_study.sh. side_by_side FUNCTION LOG1 ARGS1 LOG2 ARGS2: FUNCTION ARGS1
# and FUNCTION ARGS2 (each one word, e.g. "ltc cnn") as two background processes logging to LOG1 and LOG2, which fills
# a 2-core machine with one-thread jobs; returns when both ended, and fails if either failed.
side_by_side() {
  "$1" "$3" > "$2" 2>&1 &
  local first=$!
  "$1" "$5" > "$4" 2>&1 &
  local second=$!
  wait "$first"
  wait "$second"
}
