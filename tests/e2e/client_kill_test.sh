#!/usr/bin/env bash
# kill -9 of a site during local training and during its upload (the DP demo: secure
# aggregation and DP-SGD with each site's privacy ledger): the round goes on without it; the
# restarted site opens its ledger, which is consistent (one entry per round it trained, written
# before its update left, epsilon never decreasing), and takes part again.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$ROOT/scripts/demo_lib.sh"

CONFIGS=$ROOT/configs/demo-dp
ROUNDS=3
DP=1
for stage in train masked; do
  DEMO=$WORK/demo-$stage
  PORT=$(free_port)
  demo_prepare >/dev/null
  sed -i 's/max_backoff: 10s/max_backoff: 1s/' "$DEMO"/hospital-*.yaml
  "$BIN/cohort-coordinator" --config "$DEMO/coordinator.yaml" >"$DEMO/logs/coordinator.log" 2>&1 &
  COORDINATOR=$!
  for site in hospital-a hospital-b; do
    "$BIN/cohort-client" --config "$DEMO/$site.yaml" >"$DEMO/logs/$site.log" 2>&1 &
  done
  "$BIN/cohort-client" --config "$DEMO/hospital-c.yaml" --fault-kill-at "$stage" \
    >"$DEMO/logs/hospital-c-killed.log" 2>&1 &
  KILLED=$!
  set +e
  timeout 120 tail --pid="$KILLED" -f /dev/null
  wait "$KILLED"; code=$?
  set -e
  check "kill at $stage: hospital-c died of SIGKILL" test "$code" -eq 137
  # Round 1 goes on without it.
  for _ in $(seq 1 600); do
    grep -q 'round=1 stage=commit' "$DEMO/logs/coordinator.log" && break
    sleep 0.05
  done
  check "kill at $stage: round 1 committed with the other two" \
    grep -q 'round=1 stage=commit participants=hospital-a,hospital-b ' "$DEMO/logs/coordinator.log"
  # The site comes back (same ledger) and the federation finishes with it.
  "$BIN/cohort-client" --config "$DEMO/hospital-c.yaml" >"$DEMO/logs/hospital-c.log" 2>&1 &
  RESTARTED=$!
  set +e
  timeout 180 tail --pid="$COORDINATOR" -f /dev/null
  wait "$COORDINATOR"; code=$?
  timeout 30 tail --pid="$RESTARTED" -f /dev/null
  wait "$RESTARTED"; client_code=$?
  set -e
  check "kill at $stage: the federation finishes" test "$code" -eq 0
  check "kill at $stage: the restarted site exits 0" test "$client_code" -eq 0
  "$BIN/cohortctl" ledger --db "$DEMO/state/ledger-hospital-c.db" --json >"$WORK/ledger-$stage.json"
  "$BIN/cohortctl" rounds --state-dir "$DEMO/state" --json >"$WORK/rounds-$stage.json"
  check "kill at $stage: hospital-c's ledger is consistent" "$PY" - "$WORK/ledger-$stage.json" \
    "$WORK/rounds-$stage.json" "$stage" <<'PY'
import json, sys
ledger, rounds, stage = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
entries = ledger["rounds"]
numbers = [e["round"] for e in entries]
assert numbers == sorted(set(numbers)), numbers
eps = [e["epsilon_after"] for e in entries]
assert eps == sorted(eps) and abs(eps[-1] - ledger["epsilon"]) < 1e-4, (eps, ledger["epsilon"])
contributed = {r["round"] for r in rounds if "hospital-c" in r["participants"]}
# Every round whose aggregate holds hospital-c's update is in its ledger (recorded first).
assert contributed <= set(numbers), (contributed, numbers)
if stage == "train":
    # Killed before the ledger write: round 1 is not charged.
    assert 1 not in numbers, numbers
else:
    # Killed after the ledger write, before the upload: charged, though not in the aggregate.
    assert 1 in numbers and 1 not in contributed, (numbers, contributed)
assert contributed, "the restarted site never took part again"
PY
  check "kill at $stage: no process left" no_process_matching "$DEMO/"
done
finish
