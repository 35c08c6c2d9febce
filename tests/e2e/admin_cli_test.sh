#!/usr/bin/env bash
# cohortctl status | pause | resume | abort | rounds --coordinator against a running demo
# federation (three hospitals, secure aggregation on), with the admin certificate that
# `cohortctl pki issue --admin ops` makes. Checks that a pause holds new rounds (none starts
# while paused), resume restarts them, abort ends the round in progress with the admin's
# reason in the history (and the next round takes a new number), and that a site's
# certificate, missing flags and an unreachable coordinator each fail with a clear message.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$ROOT/scripts/demo_lib.sh"

DEMO=$WORK/demo
PORT=$(free_port)
CONFIGS=$ROOT/configs/demo
ROUNDS=100000
DP=0
demo_prepare >/dev/null
ADMIN=(--coordinator "127.0.0.1:$PORT" --cert "$DEMO/pki/admin-ops.pem"
       --key "$DEMO/pki/admin-ops.key" --ca "$DEMO/pki/ca.pem")
ctl() { "$BIN/cohortctl" "$@"; }
json_field() {  # json_field FILE EXPRESSION: evaluates EXPRESSION on the parsed JSON `j`
  "$PY" -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
# Polls `cohortctl status --json` until the Python condition on `j` holds (watchdog 120 s).
wait_status() {
  for _ in $(seq 1 600); do
    ctl status "${ADMIN[@]}" --json >"$WORK/status.json" 2>/dev/null &&
      [ "$(json_field "$WORK/status.json" "$1")" = True ] && return 0
    sleep 0.2
  done
  echo "status never satisfied: $1" >&2
  cat "$WORK/status.json" >&2 || true
  return 1
}

"$BIN/cohort-coordinator" --config "$DEMO/coordinator.yaml" >"$DEMO/logs/coordinator.log" 2>&1 &
COORDINATOR=$!
for site in "${SITES[@]}"; do
  "$BIN/cohort-client" --config "$DEMO/$site.yaml" >"$DEMO/logs/$site.log" 2>&1 &
done

# --- status
check "status reports all three sites connected" \
  wait_status 'sum(s["connected"] for s in j["sites"]) == 3 and int(j["rounds_committed"]) >= 1'
ctl status "${ADMIN[@]}" >"$WORK/status.txt"
check "status text names the federation" grep -q "^federation demo" "$WORK/status.txt"
check "status text shows the connected sites" grep -q "sites (3 of 3 connected)" "$WORK/status.txt"
check "status text lists hospital-b" grep -q "hospital-b" "$WORK/status.txt"

# --- pause: the round in progress finishes, then nothing starts
ctl pause "${ADMIN[@]}" --reason "e2e maintenance" >"$WORK/pause.txt"
check "pause answers with the reason" grep -q "paused: paused by admin 'ops': e2e maintenance" "$WORK/pause.txt"
check "the loop parks in stage paused" wait_status 'j["stage"] == "paused" and j["paused"]'
ctl rounds "${ADMIN[@]}" --all --json >"$WORK/r1.json"
sleep 2
ctl rounds "${ADMIN[@]}" --all --json >"$WORK/r2.json"
check "no round starts while paused" cmp -s "$WORK/r1.json" "$WORK/r2.json"
check "the status page's JSON says paused too" wait_status 'j["pause_reason"] == "paused by admin '"'"'ops'"'"': e2e maintenance"'

# --- resume, then abort a running round (retried until a round is running at that instant)
ctl resume "${ADMIN[@]}" >"$WORK/resume.txt"
check "resume answers" grep -q "^resumed" "$WORK/resume.txt"
aborted=""
for _ in $(seq 1 200); do
  if ctl abort "${ADMIN[@]}" --reason "e2e abort" >"$WORK/abort.txt" 2>"$WORK/abort.err"; then
    aborted=$(sed -n -E 's/^round ([0-9]+) is being aborted.*/\1/p' "$WORK/abort.txt")
    break
  fi
  grep -q "no round is running" "$WORK/abort.err" || { cat "$WORK/abort.err" >&2; break; }
  sleep 0.05
done
check "abort reached a running round" test -n "$aborted"
check "a later round commits after the abort" \
  wait_status "int(j['last_round']) > ${aborted:-0} and int(j['rounds_committed']) >= 2"
ctl rounds "${ADMIN[@]}" --all --json >"$WORK/history.json"
check "the aborted round carries the admin's reason; its number is not reused" \
  "$PY" - "$WORK/history.json" "${aborted:-0}" <<'PY'
import json, sys
rounds = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
numbers = [r["round"] for r in rounds]
assert len(numbers) == len(set(numbers)), numbers
hit = [r for r in rounds if r["round"] == n]
assert hit and hit[0]["status"] == "aborted", hit
assert hit[0]["reason"] == "aborted by admin 'ops': e2e abort", hit[0]
assert any(r["status"] == "committed" and r["round"] > n for r in rounds), rounds
PY
ctl rounds "${ADMIN[@]}" >"$WORK/rounds.txt"
check "rounds --coordinator prints the table" grep -q "^round  *status" "$WORK/rounds.txt"
check "the table lists committed rounds only by default" bash -c "! grep -q ' aborted ' '$WORK/rounds.txt'"

# --- refusals and bad arguments
set +e
ctl status --coordinator "127.0.0.1:$PORT" --cert "$DEMO/pki/hospital-a.pem" \
  --key "$DEMO/pki/hospital-a.key" --ca "$DEMO/pki/ca.pem" 2>"$WORK/site.err"
code=$?
set -e
check "a site certificate: exit 1" test "$code" -eq 1
check "a site certificate: says why" grep -q "refused this certificate.*needs an admin certificate" "$WORK/site.err"
set +e
ctl status --coordinator "127.0.0.1:$PORT" 2>"$WORK/noargs.err"
code=$?
set -e
check "no admin files: exit 2" test "$code" -eq 2
check "no admin files: names the flags" grep -q "give --cert, --key and --ca" "$WORK/noargs.err"
set +e
ctl status "${ADMIN[@]/127.0.0.1:$PORT/127.0.0.1:$(free_port)}" --timeout 3 2>"$WORK/down.err"
code=$?
set -e
check "no coordinator there: exit 1" test "$code" -eq 1
check "no coordinator there: says so" grep -q "cannot reach the coordinator" "$WORK/down.err"

kill -TERM "$COORDINATOR"
set +e
timeout 60 tail --pid="$COORDINATOR" -f /dev/null
wait "$COORDINATOR"; code=$?
set -e
check "coordinator exits 0 on SIGTERM" test "$code" -eq 0
finish
