#!/usr/bin/env bash
# cohortctl state backup | restore. A backup taken while the demo federation runs (secure
# aggregation on) is consistent: after more rounds, a stop, and a restore into an empty
# state_dir, the coordinator resumes from the backup's last committed round, numbers new
# rounds past every number the lost state used (none is reused), and the sites carry on.
# Restoring over an existing state.db, or a backup missing a checkpoint, is refused.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$ROOT/scripts/demo_lib.sh"

DEMO=$WORK/demo
PORT=$(free_port)
CONFIGS=$ROOT/configs/demo
ROUNDS=100000
DP=0
demo_prepare >/dev/null
sed -i 's/max_backoff: 10s/max_backoff: 2s/' "$DEMO"/hospital-*.yaml
commits() { grep -c 'stage=commit' "$1" 2>/dev/null || true; }
wait_commits() {  # wait_commits LOG N (watchdog 120 s)
  for _ in $(seq 1 1200); do
    [ "$(commits "$1")" -ge "$2" ] && return 0
    sleep 0.1
  done
  return 1
}
stop_coordinator() {
  kill -TERM "$COORDINATOR"
  set +e
  timeout 60 tail --pid="$COORDINATOR" -f /dev/null
  wait "$COORDINATOR"; local code=$?
  set -e
  return "$code"
}

"$BIN/cohort-coordinator" --config "$DEMO/coordinator.yaml" >"$DEMO/logs/coordinator.log" 2>&1 &
COORDINATOR=$!
CLIENTS=()
for site in "${SITES[@]}"; do
  "$BIN/cohort-client" --config "$DEMO/$site.yaml" >"$DEMO/logs/$site.log" 2>&1 &
  CLIENTS+=("$!")
done
check "three rounds commit" wait_commits "$DEMO/logs/coordinator.log" 3
"$BIN/cohortctl" state backup --state-dir "$DEMO/state" --out "$WORK/backup" >"$WORK/backup.txt"
check "backup reports what it copied" grep -q "^Backed up .* committed rounds (last [0-9]*)" "$WORK/backup.txt"
BACKED_UP=$(sed -n -E 's/.*committed rounds \(last ([0-9]+)\).*/\1/p' "$WORK/backup.txt")
check "more rounds after the backup" wait_commits "$DEMO/logs/coordinator.log" $((BACKED_UP + 2))
check "coordinator stops cleanly" stop_coordinator
"$BIN/cohortctl" rounds --state-dir "$DEMO/state" --all --json >"$WORK/lost.json"
HIGHEST=$("$PY" -c 'import json,sys; print(max(r["round"] for r in json.load(open(sys.argv[1]))))' "$WORK/lost.json")

set +e
"$BIN/cohortctl" state restore --from "$WORK/backup" --state-dir "$DEMO/state" 2>"$WORK/over.err"
code=$?
set -e
check "restore over a live state.db: exit 2" test "$code" -eq 2
check "restore over a live state.db: says why" grep -q "state.db exists" "$WORK/over.err"

mv "$DEMO/state" "$WORK/lost-state"
mkdir -p "$DEMO/state"
cp -r "$WORK/backup" "$WORK/broken-backup"
rm -f "$WORK/broken-backup/checkpoints/"*"$(printf '%06d' "$BACKED_UP")".pt
set +e
"$BIN/cohortctl" state restore --from "$WORK/broken-backup" --state-dir "$DEMO/state" 2>"$WORK/broken.err"
code=$?
set -e
check "a backup missing a checkpoint: exit 1" test "$code" -eq 1
check "a backup missing a checkpoint: names it" grep -q "round $BACKED_UP is committed but its checkpoint" "$WORK/broken.err"
check "nothing was written by the refused restore" test ! -e "$DEMO/state/state.db"

"$BIN/cohortctl" state restore --from "$WORK/backup" --state-dir "$DEMO/state" >"$WORK/restore.txt"
check "restore reports the resume point" grep -q "resumes from round $BACKED_UP" "$WORK/restore.txt"
sed -i -E "s/count: [0-9]+/count: $((BACKED_UP + 2))/" "$DEMO/coordinator.yaml"
"$BIN/cohort-coordinator" --config "$DEMO/coordinator.yaml" >"$DEMO/logs/coordinator-2.log" 2>&1 &
COORDINATOR=$!
set +e
timeout 180 tail --pid="$COORDINATOR" -f /dev/null
wait "$COORDINATOR"; code=$?
set -e
check "the restored coordinator finishes its rounds" test "$code" -eq 0
check "it resumed from the backup's last commit" \
  grep -q "stage=resume resuming after committed round $BACKED_UP " "$DEMO/logs/coordinator-2.log"
"$BIN/cohortctl" rounds --state-dir "$DEMO/state" --all --json >"$WORK/after.json"
"$BIN/cohortctl" rounds --state-dir "$WORK/backup" --all --json >"$WORK/backup.json"
check "new rounds are numbered past every number the lost state used" \
  "$PY" - "$WORK/after.json" "$WORK/backup.json" "$HIGHEST" <<'PY'
import json, sys
rounds = json.load(open(sys.argv[1]))
in_backup = {r["round"]: r for r in json.load(open(sys.argv[2]))}
highest = int(sys.argv[3])
# The backup's rounds are all there; one it caught in progress is now aborted (interrupted).
for n, r in in_backup.items():
    now = [x for x in rounds if x["round"] == n]
    assert now, n
    assert now[0]["status"] == r["status"] or (r["status"] == "started" and now[0]["status"] == "aborted"), (r, now)
new = [r for r in rounds if r["round"] not in in_backup]
assert sum(r["status"] == "committed" for r in new) == 2, new
assert all(r["round"] > highest for r in new), (highest, [r["round"] for r in new])
PY
for pid in "${CLIENTS[@]}"; do
  set +e
  timeout 60 tail --pid="$pid" -f /dev/null
  wait "$pid"; client_code=$?
  set -e
  check "site $pid exits 0 when the federation is done" test "$client_code" -eq 0
done
finish
