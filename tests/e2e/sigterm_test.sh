#!/usr/bin/env bash
# Graceful shutdown: SIGTERM stops a coordinator in the middle of a long secure run within a
# bounded time, exit code 0, with the open round recorded as aborted (never left 'started');
# a restart resumes from the last commit; SIGTERM stops a site promptly with exit code 0.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$ROOT/scripts/demo_lib.sh"

DEMO=$WORK/demo
PORT=$(free_port)
CONFIGS=$ROOT/configs/demo
ROUNDS=100000
DP=0
demo_prepare >/dev/null
sed -i 's/max_backoff: 10s/max_backoff: 2s/' "$DEMO"/hospital-*.yaml

history() {
  "$BIN/cohortctl" rounds --state-dir "$DEMO/state" --json --all
}

CLIENTS=()
for site in "${SITES[@]}"; do
  "$BIN/cohort-client" --config "$DEMO/$site.yaml" >"$DEMO/logs/$site.log" 2>&1 &
  CLIENTS+=("$!")
done
"$BIN/cohort-coordinator" --config "$DEMO/coordinator.yaml" >"$DEMO/logs/coordinator.log" 2>&1 &
COORDINATOR=$!
for _ in $(seq 1 600); do
  [ "$(grep -c 'stage=commit' "$DEMO/logs/coordinator.log")" -ge 3 ] && break
  sleep 0.05
done
start=$(date +%s.%N)
kill -TERM "$COORDINATOR"
set +e
timeout 30 tail --pid="$COORDINATOR" -f /dev/null
wait "$COORDINATOR"; code=$?
set -e
elapsed=$("$PY" -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$start" "$(date +%s.%N)")
echo "coordinator stopped $elapsed s after SIGTERM"
# The 30 s watchdog above only catches a hang (its exit code 124 fails the next check); the
# time it took is printed, not asserted (docs/operations.md: bounded by the stage deadlines).
check "coordinator exits 0 on SIGTERM" test "$code" -eq 0
check "the shutdown is logged" grep -q "received signal 15" "$DEMO/logs/coordinator.log"
history >"$WORK/h1.json"
check "no round is left 'started'; committed rounds have checkpoints" "$PY" - "$WORK/h1.json" "$DEMO/state" <<'PY'
import json, os, sys
rounds = json.load(open(sys.argv[1]))
assert rounds and all(r["status"] in ("committed", "aborted") for r in rounds), rounds
for r in rounds:
    if r["status"] == "committed":
        assert os.path.exists(os.path.join(sys.argv[2], r["checkpoint"])), r
    else:
        assert r["reason"], r
PY
done_before=$(grep -c 'stage=commit' "$DEMO/logs/coordinator.log")

# A restart resumes; two more rounds, then the federation ends and the sites exit 0.
sed -i -E "s/count: [0-9]+/count: $((done_before + 2))/" "$DEMO/coordinator.yaml"
"$BIN/cohort-coordinator" --config "$DEMO/coordinator.yaml" >"$DEMO/logs/coordinator-2.log" 2>&1 &
COORDINATOR=$!
set +e
timeout 120 tail --pid="$COORDINATOR" -f /dev/null
wait "$COORDINATOR"; code=$?
set -e
check "restarted coordinator resumes and finishes" test "$code" -eq 0
check "it resumed from the last commit" grep -q "stage=resume resuming after committed round $done_before" "$DEMO/logs/coordinator-2.log"
for pid in "${CLIENTS[@]}"; do
  set +e
  timeout 30 tail --pid="$pid" -f /dev/null
  wait "$pid"; client_code=$?
  set -e
  check "site $pid exits 0 when the federation is done" test "$client_code" -eq 0
done

# SIGTERM to a site waiting for its coordinator: exits 0 promptly.
"$BIN/cohort-client" --config "$DEMO/hospital-a.yaml" >"$DEMO/logs/hospital-a-2.log" 2>&1 &
SITE=$!
sleep 1
kill -TERM "$SITE"
set +e
timeout 10 tail --pid="$SITE" -f /dev/null
wait "$SITE"; code=$?
set -e
check "a site exits 0 on SIGTERM" test "$code" -eq 0
finish
