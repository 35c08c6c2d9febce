#!/usr/bin/env bash
# kill -9 of the coordinator at moments spread over a secure run (after a round is
# configured, during the secure aggregation stages, around unmasking and the checkpoint
# write), then a restart each time: the run resumes from the last committed round, no round
# number is used twice, interrupted rounds are recorded as aborted, the sites reconnect by
# themselves, and the final model still trains on (demo federation, secure aggregation on).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$ROOT/scripts/demo_lib.sh"

DEMO=$WORK/demo
PORT=$(free_port)
CONFIGS=$ROOT/configs/demo
ROUNDS=30
DP=0
demo_prepare >/dev/null
# Quick restarts: the sites back off at most 2 s, a round starts 5 s after a restart at the
# latest.
sed -i 's/select_timeout: 30s/select_timeout: 5s/' "$DEMO/coordinator.yaml"
sed -i 's/max_backoff: 10s/max_backoff: 2s/' "$DEMO"/hospital-*.yaml

committed() {
  "$BIN/cohortctl" rounds --state-dir "$DEMO/state" --json 2>/dev/null |
    "$PY" -c 'import json,sys; print(sum(r["status"] == "committed" for r in json.load(sys.stdin)))' \
    2>/dev/null || echo 0
}

CLIENTS=()
for site in "${SITES[@]}"; do
  "$BIN/cohort-client" --config "$DEMO/$site.yaml" >"$DEMO/logs/$site.log" 2>&1 &
  CLIENTS+=("$!")
done

# Each kill waits for a log line of the current coordinator run (after its first commit),
# then a short random delay.
KILL_AFTER=("stage=configure" "stage=secagg keys advertised" "stage=secagg unmasked"
            "stage=commit" "stage=secagg keys advertised")
for i in "${!KILL_AFTER[@]}"; do
  log=$DEMO/logs/coordinator-$i.log
  "$BIN/cohort-coordinator" --config "$DEMO/coordinator.yaml" >"$log" 2>&1 &
  COORDINATOR=$!
  before=$(committed)
  for _ in $(seq 1 600); do
    # The pattern seen anywhere after this run's first committed round (so each restart
    # makes progress). Looking only at the last lines missed it when rounds are quick, and
    # the run then went on to finish the federation before its kill.
    if awk -v pattern="${KILL_AFTER[$i]}" \
        '{ if (seen && index($0, pattern)) found = 1; if (index($0, "stage=commit")) seen = 1 }
         END { exit !found }' "$log"; then
      break
    fi
    kill -0 "$COORDINATOR" 2>/dev/null || break
    sleep 0.02
  done
  sleep "0.0$((RANDOM % 10))"
  kill -9 "$COORDINATOR" 2>/dev/null || true
  wait "$COORDINATOR" 2>/dev/null || true
  echo "kill $i after '${KILL_AFTER[$i]}': last line: $(tail -n 1 "$log" | cut -c1-160)"
  check "run $i made progress before the kill" test "$(committed)" -gt "$before"
done

# The last run finishes the federation.
"$BIN/cohort-coordinator" --config "$DEMO/coordinator.yaml" >"$DEMO/logs/coordinator-final.log" 2>&1 &
COORDINATOR=$!
set +e
timeout 300 tail --pid="$COORDINATOR" -f /dev/null
wait "$COORDINATOR"; code=$?
set -e
check "the final coordinator run exits 0" test "$code" -eq 0
for pid in "${CLIENTS[@]}"; do
  set +e
  timeout 60 tail --pid="$pid" -f /dev/null
  wait "$pid"; client_code=$?
  set -e
  check "site $pid rode through the restarts and exited 0" test "$client_code" -eq 0
done
check "the coordinator resumed after each kill" test \
  "$(grep -l 'stage=resume' "$DEMO"/logs/coordinator-*.log | wc -l)" -ge 5
check "the sites reconnected after each kill" test \
  "$(grep -c 'session open' "$DEMO/logs/hospital-a.log")" -ge 6

"$BIN/cohortctl" rounds --state-dir "$DEMO/state" --json --all >"$WORK/rounds.json"
check "history: 30 committed rounds, unique increasing numbers, interrupted rounds aborted" \
  "$PY" - "$WORK/rounds.json" "$DEMO/state" <<'PY'
import json, os, sys
rounds, state = json.load(open(sys.argv[1])), sys.argv[2]
numbers = [r["round"] for r in rounds]
assert numbers == sorted(set(numbers)), numbers
committed = [r for r in rounds if r["status"] == "committed"]
assert len(committed) == 30, [(r["round"], r["status"]) for r in rounds]
assert all(r["status"] in ("committed", "aborted") for r in rounds), rounds
interrupted = [r for r in rounds if r["status"] == "aborted" and "interrupted" in r["reason"]]
print("rounds used:", len(rounds), "interrupted by kills:", len(interrupted))
# Every kill but the one after a commit lands inside a round (the next round starts at once).
assert len(interrupted) >= 2, [(r["round"], r["status"], r["reason"]) for r in rounds]
for r in committed:
    assert os.path.exists(os.path.join(state, r["checkpoint"])), r
assert not [f for f in os.listdir(os.path.join(state, "checkpoints")) if f.startswith(".")]
assert committed[-1]["test_accuracy"] >= 0.9, committed[-1]
PY
check "Python's torch.load reads the final checkpoint" "$PY" - "$DEMO/state/checkpoints" <<'PY'
import os, sys, torch
d = sys.argv[1]
last = sorted(f for f in os.listdir(d) if f.endswith(".pt"))[-1]
state = torch.load(os.path.join(d, last))
assert all(torch.isfinite(t).all() for t in state.values())
PY
finish
