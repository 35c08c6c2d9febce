#!/usr/bin/env bash
# Issue 7's Breast Cancer result, short form: the demo federation (three hospitals with a
# label skew, so the sites are non-IID; secure aggregation on) reaches a pooled held-out
# accuracy >= 0.95 after 20 rounds with FedAvg and with FedAdam (server learning rate 0.01).
# Measured 0.965-0.983 over the last five rounds of three runs each (docs/PERFORMANCE.md).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$ROOT/scripts/demo_lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/demo_run_lib.sh"

run_federation() {  # run_federation STRATEGY: a fresh demo dir, 20 rounds, waits for the end
  local strategy=$1
  DEMO=$WORK/$strategy
  PORT=$(free_port)
  CONFIGS=$ROOT/configs/demo
  ROUNDS=20
  DP=0
  demo_prepare >/dev/null
  if [ "$strategy" = fedadam ]; then
    sed -i 's/^  strategy: fedavg$/  strategy: fedadam\n  server_learning_rate: 0.01/' "$DEMO/coordinator.yaml"
  fi
  grep -q "strategy: $strategy" "$DEMO/coordinator.yaml" || return 1
  demo_run_to_end 300
}

for strategy in fedavg fedadam; do
  check "$strategy: 20 rounds commit" run_federation "$strategy"
  check "$strategy: every round used secure aggregation" \
    test "$(grep -c 'secure_aggregation=k=' "$DEMO/logs/coordinator.log")" -eq 20
  "$BIN/cohortctl" rounds --state-dir "$DEMO/state" --json >"$WORK/$strategy.json"
  check "$strategy: accuracy >= 0.95 with all three hospitals in every round" \
    "$PY" - "$WORK/$strategy.json" "$strategy" <<'PY'
import json, sys
rounds = json.load(open(sys.argv[1]))
assert len(rounds) == 20, len(rounds)
assert all(len(r["participants"]) == 3 for r in rounds)
final = rounds[-1]["test_accuracy"]
print(f"{sys.argv[2]}: final pooled accuracy {final:.4f}, AUC {rounds[-1]['auc']:.4f}")
assert final >= 0.95, final
PY
done
check "FedAdam wrote its optimizer state with every checkpoint" \
  test "$(ls "$WORK/fedadam/state/checkpoints/"round-*.opt | wc -l)" -eq 20
finish
