# Runs the demo federation prepared in $DEMO (scripts/demo_lib.sh's demo_prepare) to its end:
# the coordinator and every site as processes, logs in $DEMO/logs. Source it after lib.sh.
# demo_run_to_end [SECONDS]: returns the coordinator's exit code (watchdog default 300 s).
demo_run_to_end() {
  local limit=${1:-300}
  "$BIN/cohort-coordinator" --config "$DEMO/coordinator.yaml" >"$DEMO/logs/coordinator.log" 2>&1 &
  local coordinator=$!
  for site in "${SITES[@]}"; do
    "$BIN/cohort-client" --config "$DEMO/$site.yaml" >"$DEMO/logs/$site.log" 2>&1 &
  done
  set +e
  timeout "$limit" tail --pid="$coordinator" -f /dev/null
  wait "$coordinator"; local code=$?
  set -e
  return "$code"
}
