#!/usr/bin/env bash
# Runs scripts/demo.sh as a user would (binaries already built), on a free port and in a temp
# dir, then reads the round history with cohortctl; also checks Ctrl-C stops every process.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export COHORT_BUILD_DIR=$BUILD
export COHORT_DEMO_DIR=$WORK/demo
export COHORT_DEMO_PORT=$(free_port)
set +e
bash "$ROOT/scripts/demo.sh" --skip-build >"$WORK/demo.out" 2>&1; code=$?
set -e
cat "$WORK/demo.out"
check "demo exits 0" test "$code" -eq 0
rounds=$(grep -c '^round [0-9]' "$WORK/demo.out" || true)
check "demo prints one line per round (20)" test "$rounds" -eq 20
for d in pki state logs data; do
  check "demo wrote $d/ under its directory" test -d "$WORK/demo/$d"
done
check "demo left no process running" no_process_matching "$WORK/demo/"

"$BIN/cohortctl" rounds --state-dir "$WORK/demo/state" --json >"$WORK/rounds.json"
check "rounds --json has the documented fields and a good final model" "$PY" - "$WORK/rounds.json" <<'PY'
import json, sys
rounds = json.load(open(sys.argv[1]))
assert len(rounds) == 20, len(rounds)
for i, r in enumerate(rounds, 1):
    assert r["round"] == i
    assert sorted(r["participants"]) == ["hospital-a", "hospital-b", "hospital-c"], r
    assert r["examples"] > 400 and r["duration_s"] >= 0 and r["train_loss"] > 0
    assert 0 <= r["test_accuracy"] <= 1
print("final test accuracy", rounds[-1]["test_accuracy"])
assert rounds[-1]["test_accuracy"] >= 0.93, rounds[-1]["test_accuracy"]
PY
check "Python's torch.load reads the final checkpoint as {name: float32 tensor}" \
  "$PY" - "$WORK/demo/state/checkpoints/round-000020.pt" <<'PY'
import sys, torch
state = torch.load(sys.argv[1])
shapes = {name: tuple(t.shape) for name, t in state.items()}
assert shapes == {"fc0.weight": (32, 30), "fc0.bias": (32,), "fc1.weight": (2, 32),
                  "fc1.bias": (2,)}, shapes
assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in state.values())
PY
table=$("$BIN/cohortctl" rounds --state-dir "$WORK/demo/state")
check "rounds prints a table with a header and 20 rows" \
  test "$(grep -c committed <<<"$table")" -eq 20

# Ctrl-C in the middle of a long run stops the coordinator and every client.
export COHORT_DEMO_DIR=$WORK/demo-int
export COHORT_DEMO_PORT=$(free_port)
# A background job of a script starts with SIGINT ignored (and bash cannot trap a signal
# ignored at entry); restore the default so the demo sees SIGINT as it would from a terminal.
"$PY" -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp("bash", ["bash"] + sys.argv[1:])' \
  "$ROOT/scripts/demo.sh" --skip-build --rounds 100000 >"$WORK/int.out" 2>&1 &
DEMO_PID=$!
for _ in $(seq 1 300); do
  grep -q '^round 2 ' "$WORK/int.out" 2>/dev/null && break
  sleep 0.1
done
check "the long demo got going" grep -q '^round 2 ' "$WORK/int.out"
kill -INT "$DEMO_PID"
set +e
wait "$DEMO_PID"; code=$?
set -e
check "interrupted demo exits 130" test "$code" -eq 130
sleep 0.5
check "interrupted demo left no process running" no_process_matching "$WORK/demo-int/"

finish
