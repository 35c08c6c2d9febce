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
