#!/usr/bin/env bash
# Run an `lnn-control up ...` command whose sim_node plays a fixed number of episodes, into LOG, and stop it cleanly
# (SIGINT, so the recorder closes its bag) once the sim reports its episodes done. Exit 1 if it stopped before that.
#
#   bash bench/until_episodes_done.sh LOG CMD [ARG ...]
set -uo pipefail
LOG=${1:?usage: bash bench/until_episodes_done.sh LOG CMD [ARG ...]}
shift
"$@" > "$LOG" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  if grep -qs "episode(s) done" "$LOG"; then sleep 3; kill -INT "$pid"; fi
  sleep 3
done
wait "$pid"
grep -q "episode(s) done" "$LOG" || { echo "error: the episodes did not finish; see $LOG" >&2; exit 1; }
