#!/usr/bin/env bash
# scripts/demo.sh --dp: every site trains with DP-SGD under its own budget (epsilon <= 3 at
# delta 1e-5); the federation still learns, and ledgers and round history agree.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export COHORT_BUILD_DIR=$BUILD
export COHORT_DEMO_DIR=$WORK/demo
export COHORT_DEMO_PORT=$(free_port)
set +e
bash "$ROOT/scripts/demo.sh" --skip-build --dp >"$WORK/demo.out" 2>&1; code=$?
set -e
cat "$WORK/demo.out"
check "DP demo exits 0" test "$code" -eq 0
check "DP demo prints one line per round (10)" test "$(grep -c '^round [0-9]' "$WORK/demo.out")" -eq 10
check "DP demo left no process running" no_process_matching "$WORK/demo/"

"$BIN/cohortctl" rounds --state-dir "$WORK/demo/state" --json >"$WORK/rounds.json"
for site in hospital-a hospital-b hospital-c; do
  "$BIN/cohortctl" ledger --db "$WORK/demo/state/ledger-$site.db" --json >"$WORK/ledger-$site.json"
done
check "every site stays within epsilon 3, ledgers and history agree, accuracy >= 0.90" \
  "$PY" - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
rounds = json.load(open(f"{work}/rounds.json"))
assert len(rounds) == 10, len(rounds)
for site in ("hospital-a", "hospital-b", "hospital-c"):
    ledger = json.load(open(f"{work}/ledger-{site}.json"))
    assert ledger["site"] == site
    assert len(ledger["rounds"]) == 10, (site, len(ledger["rounds"]))
    assert 0 < ledger["epsilon"] <= 3.0, (site, ledger["epsilon"])
    assert all(r["noise_multiplier"] == 2.5 and r["max_grad_norm"] == 1.0 for r in ledger["rounds"])
    history = rounds[-1]["epsilon"][site]
    assert abs(history - ledger["epsilon"]) <= 1e-6 * ledger["epsilon"], (site, history, ledger["epsilon"])
    print(site, "epsilon", ledger["epsilon"])
print("final test accuracy", rounds[-1]["test_accuracy"])
assert rounds[-1]["test_accuracy"] >= 0.90, rounds[-1]["test_accuracy"]
PY

finish
