# A DP demo federation (three hospitals, secure aggregation, DP-SGD) started as processes and
# paused by an operator after a few committed rounds, so that its figures stop moving: the
# fixture of the observability tests. Source it after lib.sh, then call
# start_paused_demo ROUNDS_BEFORE_PAUSE REASON. It sets DEMO, PORT, ADMIN (cohortctl flags for
# the admin certificate), HTTP (the coordinator's HTTP port), COORDINATOR (its pid) and writes
# $WORK/status.json (the paused status). Returns non-zero if the federation never got there.
source "$ROOT/scripts/demo_lib.sh"

start_paused_demo() {
  local commits=$1 reason=$2
  DEMO=$WORK/demo
  PORT=$(free_port)
  CONFIGS=$ROOT/configs/demo-dp
  ROUNDS=100000
  DP=1
  demo_prepare >/dev/null
  ADMIN=(--coordinator "127.0.0.1:$PORT" --cert "$DEMO/pki/admin-ops.pem"
         --key "$DEMO/pki/admin-ops.key" --ca "$DEMO/pki/ca.pem")
  "$BIN/cohort-coordinator" --config "$DEMO/coordinator.yaml" >"$DEMO/logs/coordinator.log" 2>&1 &
  COORDINATOR=$!
  for site in "${SITES[@]}"; do
    "$BIN/cohort-client" --config "$DEMO/$site.yaml" >"$DEMO/logs/$site.log" 2>&1 &
  done
  HTTP=""
  for _ in $(seq 1 100); do
    HTTP=$(sed -n -E 's/.*stage=start http port ([0-9]+).*/\1/p' "$DEMO/logs/coordinator.log" | head -n 1)
    [ -n "$HTTP" ] && break
    sleep 0.1
  done
  [ -n "$HTTP" ] || { echo "the coordinator never opened its HTTP port" >&2; return 1; }
  for _ in $(seq 1 1200); do
    [ "$(grep -c 'stage=commit' "$DEMO/logs/coordinator.log")" -ge "$commits" ] && break
    sleep 0.1
  done
  "$BIN/cohortctl" pause "${ADMIN[@]}" --reason "$reason" >/dev/null
  for _ in $(seq 1 600); do
    "$BIN/cohortctl" status "${ADMIN[@]}" --json >"$WORK/status.json"
    "$PY" -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["stage"] == "paused" else 1)' \
      "$WORK/status.json" && return 0
    sleep 0.2
  done
  echo "the federation never reached stage paused" >&2
  return 1
}

# SIGTERM to the coordinator; true when it exits 0 (watchdog 60 s).
stop_demo_coordinator() {
  kill -TERM "$COORDINATOR"
  set +e
  timeout 60 tail --pid="$COORDINATOR" -f /dev/null
  wait "$COORDINATOR"; local code=$?
  set -e
  return "$code"
}
