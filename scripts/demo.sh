#!/usr/bin/env bash
# The cohort demo: a federation of three hospitals on this machine.
#
#   scripts/demo.sh [--rounds N] [--skip-build] [--dp]
#
# Installs what is missing, builds Release into build/, creates a development PKI, splits the
# Breast Cancer Wisconsin data across hospital-a/b/c (label-skewed, so the sites differ),
# starts cohort-coordinator (127.0.0.1:50051) and three cohort-client processes, prints one
# line per committed round, and stops everything it started, also on Ctrl-C or failure.
# Everything it writes stays under build/demo/ (pki/, state/, logs/, data/, the configs).
# --dp: every site trains with DP-SGD under its own budget (configs/demo-dp/), keeps a privacy
# ledger, and the history shows each site's epsilon.
#
# Environment: COHORT_BUILD_DIR (default build), COHORT_DEMO_DIR (default $BUILD/demo),
# COHORT_DEMO_PORT (default 50051; the status page is on 9464 then, else on a free port),
# COHORT_DEMO_FAULT=SITE:STAGE (fault injection for tests:
# that site's client kills itself at that secure aggregation stage: advertise, share, masked
# or unmask; the demo then expects it to die and the rounds to go on without it).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${COHORT_BUILD_DIR:-$ROOT/build}
DEMO=${COHORT_DEMO_DIR:-$BUILD/demo}
PORT=${COHORT_DEMO_PORT:-50051}
ROUNDS=""
SKIP_BUILD=0
CONFIGS=$ROOT/configs/demo
DP=0
# shellcheck source=scripts/demo_lib.sh
source "$ROOT/scripts/demo_lib.sh"

while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --dp) DP=1; CONFIGS=$ROOT/configs/demo-dp; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$SKIP_BUILD" -eq 0 ]; then
  bash "$ROOT/scripts/setup.sh"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j2 --target cohort-coordinator cohort-client cohortctl
fi
BIN=$BUILD/bin

PIDS=()
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  exit "$status"
}
trap cleanup EXIT
trap 'echo "demo: interrupted, stopping"; exit 130' INT TERM

demo_prepare

"$BIN/cohort-coordinator" --config "$DEMO/coordinator.yaml" --check-config
"$BIN/cohort-coordinator" --config "$DEMO/coordinator.yaml" >"$DEMO/logs/coordinator.log" 2>&1 &
COORDINATOR=$!
PIDS+=("$COORDINATOR")
# Start the sites once the coordinator listens (they would reconnect anyway, with backoff).
for _ in $(seq 1 100); do
  grep -q "listening on port" "$DEMO/logs/coordinator.log" 2>/dev/null && break
  kill -0 "$COORDINATOR" 2>/dev/null || break
  sleep 0.1
done
FAULT=${COHORT_DEMO_FAULT:-}
FAULT_SITE=${FAULT%%:*}
FAULT_STAGE=${FAULT#*:}
for site in "${SITES[@]}"; do
  FAULT_ARGS=()
  if [ -n "$FAULT" ] && [ "$site" = "$FAULT_SITE" ]; then
    FAULT_ARGS=(--fault-kill-at "$FAULT_STAGE")
  fi
  "$BIN/cohort-client" --config "$DEMO/$site.yaml" "${FAULT_ARGS[@]}" \
    >"$DEMO/logs/$site.log" 2>&1 &
  PIDS+=("$!")
done
echo "== coordinator pid $COORDINATOR on 127.0.0.1:$PORT, logs in $DEMO/logs"
HTTP_BOUND=$(sed -n -E 's/.*stage=start http port ([0-9]+).*/\1/p' "$DEMO/logs/coordinator.log" | head -n 1)
if [ -n "$HTTP_BOUND" ]; then
  echo "== status page http://127.0.0.1:$HTTP_BOUND/ (metrics at /metrics); admin: $BIN/cohortctl status --coordinator 127.0.0.1:$PORT --cert $DEMO/pki/admin-ops.pem --key $DEMO/pki/admin-ops.key --ca $DEMO/pki/ca.pem"
fi
START=$(date +%s)

# One line per committed round, as the coordinator commits it. The follower runs in the
# background so that `wait` below stays interruptible by Ctrl-C.
tail -n +1 -F --pid="$COORDINATOR" "$DEMO/logs/coordinator.log" 2>/dev/null |
  sed -u -n -E 's/.*round=([0-9]+) stage=commit participants=([^ ]+) examples=([0-9]+) train_loss=([^ ]+) test_accuracy=([^ ]+) duration=([^ ]+)$/round \1  participants \2  examples \3  train_loss \4  test_accuracy \5  duration \6/p' &
FOLLOWER=$!
PIDS+=("$FOLLOWER")

set +e
wait "$COORDINATOR"
COORDINATOR_STATUS=$?
set -e
if [ "$COORDINATOR_STATUS" -ne 0 ]; then
  echo "demo: the coordinator failed (exit $COORDINATOR_STATUS); last lines of its log:" >&2
  tail -n 20 "$DEMO/logs/coordinator.log" >&2
  exit 1
fi
wait "$FOLLOWER" 2>/dev/null || true
i=0
for pid in "${PIDS[@]:1:${#SITES[@]}}"; do
  site=${SITES[$i]}
  i=$((i + 1))
  set +e
  wait "$pid"
  CLIENT_STATUS=$?
  set -e
  if [ -n "$FAULT" ] && [ "$site" = "$FAULT_SITE" ]; then
    if [ "$CLIENT_STATUS" -ne 137 ]; then
      echo "demo: $site was to kill itself at stage $FAULT_STAGE but exited $CLIENT_STATUS" >&2
      exit 1
    fi
  elif [ "$CLIENT_STATUS" -ne 0 ]; then
    echo "demo: a client exited with an error; see $DEMO/logs" >&2
    exit 1
  fi
done
PIDS=()
echo "== done in $(( $(date +%s) - START ))s; round history: $BIN/cohortctl rounds --state-dir $DEMO/state"
"$BIN/cohortctl" rounds --state-dir "$DEMO/state"
if [ "$DP" -eq 1 ]; then
  for site in "${SITES[@]}"; do
    "$BIN/cohortctl" ledger --db "$DEMO/state/ledger-$site.db" | head -n 1
  done
fi
