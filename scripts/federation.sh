#!/usr/bin/env bash
# Runs an example federation of configs/ on this machine, with secure aggregation:
#
#   scripts/federation.sh fashion-mnist|fashion-mnist-dp|bank [--rounds N] [--limit N]
#                         [--batch-size N] [--central] [--skip-build]
#
# fashion-mnist: a CNN on Debian's dataset-fashion-mnist; the 60,000 training images split
#   non-IID (dirichlet:0.5) over site-a/b/c, the 10,000 test images split iid as their
#   held-out sets (configs/fashion-mnist/).
# fashion-mnist-dp: the same with DP-SGD at every site, each within its own budget
#   (epsilon <= 8 at delta 1e-5) kept in a privacy ledger that this script initialises as the
#   sites' operators would (configs/fashion-mnist-dp/); prints each site's ledger at the end.
# bank: an MLP on the German credit data (data/credit_g.csv): 200 applicants set aside as the
#   coordinator's central test file (server-side evaluation), the other 800 split over
#   bank-a/b/c of different sizes (quantity-skew) (configs/bank/). --central gives all 800 to
#   one site, bank-central, with the same model, training and test file: the centrally
#   trained baseline the federated model is compared with.
# Builds Release into build/ (unless --skip-build), creates a development PKI and the sites'
# data, starts cohort-coordinator and one cohort-client per site, prints one line per
# committed round and the round history, and stops everything it started, also on Ctrl-C or
# failure. Everything it writes stays under build/<name>/ (pki/, state/, logs/, data/, the
# configs). --rounds N overrides rounds.count, --batch-size N training.batch_size; --limit N
# uses only the first N training rows or images (and N/2 test images) for a quick run (with
# DP-SGD, fewer images mean a larger sample rate q = batch / n per step: use a smaller batch
# to stay within the sites' budgets).
#
# Environment: COHORT_BUILD_DIR (default build), COHORT_FED_DIR (default $BUILD/<name>),
# COHORT_FED_PORT (gRPC port; default that of the config, whose HTTP status port is then used
# too; another port puts the HTTP port on a free one), FASHION_MNIST_DIR (default
# /usr/share/datasets/fashion-mnist).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAME=${1:-}
case "$NAME" in
  fashion-mnist|fashion-mnist-dp|bank) shift ;;
  -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
  *) echo "federation.sh: first argument: fashion-mnist, fashion-mnist-dp or bank (see --help)" >&2
     exit 2 ;;
esac
BUILD=${COHORT_BUILD_DIR:-$ROOT/build}
DIR=${COHORT_FED_DIR:-$BUILD/$NAME}
CONFIGS=$ROOT/configs/$NAME
ROUNDS=""
BATCH_SIZE=""
LIMIT=0
SKIP_BUILD=0
CENTRAL=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --limit) LIMIT=$2; shift 2 ;;
    --batch-size) BATCH_SIZE=$2; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --central) CENTRAL=1; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "federation.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$SKIP_BUILD" -eq 0 ]; then
  bash "$ROOT/scripts/setup.sh"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j2 --target cohort-coordinator cohort-client cohortctl \
    cohort-evaluator
fi
BIN=$BUILD/bin
# shellcheck source=scripts/federation_lib.sh
source "$ROOT/scripts/federation_lib.sh"

read -r -a SITES <<<"$(sed -n -E 's/^sites: \[(.*)\]/\1/p' "$CONFIGS/coordinator.yaml" | tr ',' ' ')"
CONFIG_PORT=$(sed -n -E 's/^listen: 127\.0\.0\.1:([0-9]+)$/\1/p' "$CONFIGS/coordinator.yaml")
PORT=${COHORT_FED_PORT:-$CONFIG_PORT}

PIDS=()
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  exit "$status"
}
trap cleanup EXIT
trap 'echo "federation: interrupted, stopping"; exit 130' INT TERM

if [ "$CENTRAL" -eq 1 ] && [ "$NAME" != bank ]; then
  echo "federation.sh: --central is for bank only" >&2
  exit 2
fi
rm -rf "$DIR"
mkdir -p "$DIR/state" "$DIR/logs" "$DIR/data"
cp "$CONFIGS"/*.yaml "$DIR/"
if [ "$CENTRAL" -eq 1 ]; then
  # One site with all the training data; the same model, training and central test file.
  # Secure aggregation needs several sites and protects nothing here: off.
  SITES=(bank-central)
  sed -i -E -e 's/^sites: \[.*\]/sites: [bank-central]/' -e 's/min_clients: [0-9]+/min_clients: 1/' \
    -e 's/secure: \{enabled: true/secure: {enabled: false/' "$DIR/coordinator.yaml"
  sed 's/bank-a/bank-central/g' "$CONFIGS/bank-a.yaml" >"$DIR/bank-central.yaml"
  rm -f "$DIR"/bank-[abc].yaml
fi
if [ "$PORT" != "$CONFIG_PORT" ]; then
  sed -i "s/127.0.0.1:$CONFIG_PORT/127.0.0.1:$PORT/" "$DIR"/*.yaml
  sed -i -E 's/^http: \{listen: 127\.0\.0\.1:[0-9]+\}/http: {listen: 127.0.0.1:0}/' \
    "$DIR/coordinator.yaml"
fi
if [ -n "$ROUNDS" ]; then
  sed -i -E "s/count: [0-9]+/count: $ROUNDS/" "$DIR/coordinator.yaml"
fi
if [ -n "$BATCH_SIZE" ]; then
  sed -i -E "s/batch_size: [0-9]+/batch_size: $BATCH_SIZE/" "$DIR/coordinator.yaml"
fi
echo "== development PKI in $DIR/pki"
fed_pki "$DIR/pki" "$(sed -n -E 's/^federation: //p' "$CONFIGS/coordinator.yaml")" "${SITES[@]}"
echo "== the sites' data in $DIR/data"
if [ "$NAME" = bank ]; then
  fed_data_bank "$DIR/data" "$([ "$CENTRAL" -eq 1 ] && echo central)"
  if [ "$LIMIT" -gt 0 ]; then echo "(--limit applies to fashion-mnist only)"; fi
else
  fed_data_fashion_mnist "$DIR/data" "$LIMIT"
fi
# A site with a privacy policy trains only against an existing ledger: its operator creates it
# once (docs/privacy.md).
LEDGERS=()
for site in "${SITES[@]}"; do
  ledger=$(sed -n -E 's/^privacy: .*ledger: ([^,} ]+).*/\1/p' "$DIR/$site.yaml")
  if [ -n "$ledger" ]; then
    if [ "${#LEDGERS[@]}" -eq 0 ]; then echo "== the sites' privacy ledgers"; fi
    "$BIN/cohortctl" ledger init --db "$DIR/$ledger" --site "$site"
    LEDGERS+=("$site:$DIR/$ledger")
  fi
done

"$BIN/cohort-coordinator" --config "$DIR/coordinator.yaml" --check-config
for site in "${SITES[@]}"; do
  "$BIN/cohort-client" --config "$DIR/$site.yaml" --check-config
done
"$BIN/cohort-coordinator" --config "$DIR/coordinator.yaml" >"$DIR/logs/coordinator.log" 2>&1 &
COORDINATOR=$!
PIDS+=("$COORDINATOR")
for _ in $(seq 1 100); do
  grep -q "listening on port" "$DIR/logs/coordinator.log" 2>/dev/null && break
  kill -0 "$COORDINATOR" 2>/dev/null || break
  sleep 0.1
done
for site in "${SITES[@]}"; do
  "$BIN/cohort-client" --config "$DIR/$site.yaml" >"$DIR/logs/$site.log" 2>&1 &
  PIDS+=("$!")
done
echo "== coordinator pid $COORDINATOR on 127.0.0.1:$PORT, logs in $DIR/logs"
START=$(date +%s)
tail -n +1 -F --pid="$COORDINATOR" "$DIR/logs/coordinator.log" 2>/dev/null |
  sed -u -n -E 's/.*round=([0-9]+) stage=commit participants=([^ ]+) examples=([0-9]+) train_loss=([^ ]+) test_accuracy=([^ ]+) duration=([^ ]+)$/round \1  participants \2  examples \3  train_loss \4  test_accuracy \5  duration \6/p' &
PIDS+=("$!")

set +e
wait "$COORDINATOR"
COORDINATOR_STATUS=$?
set -e
if [ "$COORDINATOR_STATUS" -ne 0 ]; then
  echo "federation: the coordinator failed (exit $COORDINATOR_STATUS); last lines of its log:" >&2
  tail -n 20 "$DIR/logs/coordinator.log" >&2
  exit 1
fi
for pid in "${PIDS[@]:1:${#SITES[@]}}"; do
  set +e
  wait "$pid"
  CLIENT_STATUS=$?
  set -e
  if [ "$CLIENT_STATUS" -ne 0 ]; then
    echo "federation: a client exited with an error; see $DIR/logs" >&2
    exit 1
  fi
done
wait "${PIDS[-1]}" 2>/dev/null || true
PIDS=()
echo "== done in $(( $(date +%s) - START ))s; round history: $BIN/cohortctl rounds --state-dir $DIR/state"
"$BIN/cohortctl" rounds --state-dir "$DIR/state"
if [ "${#LEDGERS[@]}" -gt 0 ]; then
  echo "== privacy spent (every round: $BIN/cohortctl ledger --db LEDGER)"
  for entry in "${LEDGERS[@]}"; do
    echo "$("$BIN/cohortctl" ledger --db "${entry#*:}" | sed -n 1p)  (${entry#*:})"
  done
fi
