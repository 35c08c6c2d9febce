# Helpers for the end-to-end shell tests. Source it; `fail` ends the test with a message.
set -euo pipefail
BUILD=${1:?usage: $0 BUILD_DIR}
BIN=$BUILD/bin
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/cohort-e2e-XXXXXX)
CHECKS=0
FAILURES=0

cleanup_work() {
  # Stop anything still running from this test's directory, then remove it.
  pkill -f "$WORK" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup_work EXIT

fail() { echo "FAIL: $*" >&2; FAILURES=$((FAILURES + 1)); }
pass() { CHECKS=$((CHECKS + 1)); }
check() {  # check "description" command...
  local what=$1; shift
  if "$@"; then pass; else fail "$what"; fi
}
free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# True when no process has `pattern` in its command line (this shell's own is not searched).
no_process_matching() {
  ! pgrep -f "$1" >/dev/null
}
finish() {
  echo "$CHECKS passed, $FAILURES failed"
  [ "$FAILURES" -eq 0 ]
}
# python_matches_server_evaluation ROUNDS_JSON STATE_DIR TEST_CSV LABEL [TORCHSCRIPT]: Python's
# torch.load of the last round's checkpoint, evaluated by tests/e2e/evaluate_checkpoint.py on
# TEST_CSV (into the TorchScript module if given), matches that round's recorded server
# evaluation: the same examples, and accuracy, loss and AUC within 1e-4. Prints Python's figures.
python_matches_server_evaluation() {
  local rounds=$1 state=$2 table=$3 label=$4 module=${5:-}
  local last
  last=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))[-1]["checkpoint"])' \
    "$rounds")
  "$PY" "$ROOT/tests/e2e/evaluate_checkpoint.py" "$state/$last" "$table" "$label" $module \
    >"$WORK/python_eval.json" || return 1
  cat "$WORK/python_eval.json"
  "$PY" - "$rounds" "$WORK/python_eval.json" <<'PY'
import json, sys
recorded = json.load(open(sys.argv[1]))[-1]["server_evaluation"]
python = json.load(open(sys.argv[2]))
assert python["examples"] == recorded["examples"], (python, recorded)
for key in ("accuracy", "loss", "auc"):
    assert abs(python[key] - recorded[key]) <= 1e-4, (key, python[key], recorded[key])
PY
}
