#!/usr/bin/env bash
# A short real training run of configs/bank: scripts/federation.sh with the German credit data
# (200 applicants set aside as the coordinator's central test file, the other 800 split over
# three banks of different sizes), per-bank standardization, the MLP, secure aggregation, 10
# rounds; then the centrally trained baseline (--central: one site with all 800) on the same
# test file. 30% of the applicants are bad risks: the best constant prediction (p = 0.3) has
# a cross-entropy of 0.611 and an accuracy of 0.70. Checks:
# - the model learnt from the features: held-out loss clearly below 0.611 (measured 0.48-0.51
#   after 10 rounds), accuracy not below chance level by much;
# - the coordinator's server-side evaluation ran on every round (cohort-evaluator), and
#   Python's torch.load of the final checkpoint, evaluated independently on the test file
#   (tests/e2e/evaluate_checkpoint.py), matches the recorded accuracy, loss and AUC to 1e-4;
# - the federated model's AUC on the central test file is at most 0.02 below the centrally
#   trained one's (measured after 10 rounds: federated 0.80, central 0.78).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export COHORT_BUILD_DIR=$BUILD
export COHORT_FED_DIR=$WORK/bank
export COHORT_FED_PORT=$(free_port)
set +e
bash "$ROOT/scripts/federation.sh" bank --skip-build --rounds 10 >"$WORK/out" 2>&1; code=$?
set -e
cat "$WORK/out"
check "the bank federation exits 0" test "$code" -eq 0
check "it prints one line per round (10)" test "$(grep -c '^round [0-9]' "$WORK/out")" -eq 10
check "the rounds used secure aggregation" \
  grep -q "stage=configure .*secure_aggregation=k=" "$WORK/bank/logs/coordinator.log"
check "no process left running" no_process_matching "$WORK/bank/"

"$BIN/cohortctl" rounds --state-dir "$WORK/bank/state" --json >"$WORK/rounds.json"
check "10 committed rounds over the 3 banks, held-out loss below the best constant's" \
  "$PY" - "$WORK/rounds.json" <<'PY'
import json, sys
rounds = json.load(open(sys.argv[1]))
assert len(rounds) == 10, rounds
for r in rounds:
    assert sorted(r["participants"]) == ["bank-a", "bank-b", "bank-c"], r
    assert r["examples"] == 600 and r["test_examples"] == 200, r
print("test loss by round", [round(r["test_loss"], 4) for r in rounds])
print("test accuracy by round", [r["test_accuracy"] for r in rounds])
assert rounds[-1]["test_loss"] < 0.58, rounds[-1]
assert rounds[-1]["test_loss"] < rounds[0]["test_loss"], rounds
assert rounds[-1]["test_accuracy"] > 0.65, rounds[-1]
PY

check "the coordinator evaluated every round on the central test file (200 applicants)" \
  "$PY" - "$WORK/rounds.json" <<'PY'
import json, sys
rounds = json.load(open(sys.argv[1]))
for r in rounds:
    s = r["server_evaluation"]
    assert s is not None and s["examples"] == 200, r
    assert 0 < s["auc"] <= 1 and s["loss"] > 0, s
print("server AUC by round", [s["server_evaluation"]["auc"] for s in rounds])
PY

check "Python's torch.load + its own evaluation match the recorded server evaluation to 1e-4" \
  python_matches_server_evaluation "$WORK/rounds.json" "$WORK/bank/state" \
  "$WORK/bank/data/test.csv" bad_credit

export COHORT_FED_DIR=$WORK/bank-central
export COHORT_FED_PORT=$(free_port)
set +e
bash "$ROOT/scripts/federation.sh" bank --central --skip-build --rounds 10 >"$WORK/out-central" 2>&1
code=$?
set -e
tail -n 5 "$WORK/out-central"
check "the centrally trained baseline (one site, all 800 applicants) exits 0" test "$code" -eq 0
check "both runs were scored on the same central test file" \
  cmp "$WORK/bank/data/test.csv" "$WORK/bank-central/data/test.csv"
"$BIN/cohortctl" rounds --state-dir "$WORK/bank-central/state" --json >"$WORK/central.json"
check "the federated AUC is at most 0.02 below the centrally trained model's" \
  "$PY" - "$WORK/rounds.json" "$WORK/central.json" <<'PY'
import json, sys
fed = json.load(open(sys.argv[1]))[-1]["server_evaluation"]
central_rounds = json.load(open(sys.argv[2]))
assert len(central_rounds) == 10 and central_rounds[-1]["participants"] == ["bank-central"]
central = central_rounds[-1]["server_evaluation"]
print(f"federated: accuracy {fed['accuracy']:.4f} AUC {fed['auc']:.4f}; "
      f"central: accuracy {central['accuracy']:.4f} AUC {central['auc']:.4f}")
assert fed["auc"] >= central["auc"] - 0.02, (fed, central)
PY
check "no process left running" no_process_matching "$WORK/bank-central/"
finish
