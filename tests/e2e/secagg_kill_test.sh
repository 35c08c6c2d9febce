#!/usr/bin/env bash
# The demo federation (secure aggregation on, three hospital processes) with hospital-c's
# process killed during each secure aggregation stage in turn: the round completes with the
# survivors, and the history says who contributed and why hospital-c dropped.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export COHORT_BUILD_DIR=$BUILD
for stage in advertise share masked unmask; do
  export COHORT_DEMO_DIR=$WORK/demo-$stage
  export COHORT_DEMO_PORT=$(free_port)
  export COHORT_DEMO_FAULT=hospital-c:$stage
  set +e
  bash "$ROOT/scripts/demo.sh" --skip-build --rounds 1 >"$WORK/$stage.out" 2>&1; code=$?
  set -e
  if [ "$code" -ne 0 ]; then cat "$WORK/$stage.out"; tail -n 30 "$COHORT_DEMO_DIR/logs/coordinator.log"; fi
  check "kill at $stage: demo exits 0" test "$code" -eq 0
  check "kill at $stage: hospital-c was killed by SIGKILL at that stage" \
    grep -q "fault injection: vanishing now" "$COHORT_DEMO_DIR/logs/hospital-c.log"
  check "kill at $stage: the coordinator unmasked a secure sum" \
    grep -q "stage=secagg unmasked the sum" "$COHORT_DEMO_DIR/logs/coordinator.log"
  "$BIN/cohortctl" rounds --state-dir "$COHORT_DEMO_DIR/state" --json >"$WORK/$stage.json"
  check "kill at $stage: round 1 committed with the survivors" "$PY" - "$WORK/$stage.json" "$stage" <<'PY'
import json, sys
rounds, stage = json.load(open(sys.argv[1])), sys.argv[2]
assert len(rounds) == 1 and rounds[0]["status"] == "committed", rounds
r = rounds[0]
if stage == "unmask":
    # Its masked input was already in the sum: its peers' shares recover its self mask.
    assert sorted(r["participants"]) == ["hospital-a", "hospital-b", "hospital-c"], r
else:
    assert sorted(r["participants"]) == ["hospital-a", "hospital-b"], r
    assert r["dropped"] == ["hospital-c"], r
    assert r["drop_reasons"]["hospital-c"], r
assert 0 <= r["test_accuracy"] <= 1, r
PY
  check "kill at $stage: no process left running" no_process_matching "$COHORT_DEMO_DIR/"
done
finish
