#!/usr/bin/env bash
# Reproducibility (issue 7): with `mode: simulation` and a `seed` at every site (and the
# coordinator's seed for the initial model), a run repeats bit for bit on the same machine,
# with secure aggregation or without: every round's checkpoint is byte-identical, and so is
# the history's accuracy and loss. The data split (cohortctl data split --seed), the sites'
# shuffling, the stochastic rounding of secure aggregation and, with DP-SGD, the Poisson
# sampling and noise all derive from the seeds; the masks differ between runs but cancel
# exactly in the modular sum, and a plain FedAvg sum is exact, so the order in which the
# uploads arrive (which varies from run to run) changes nothing. A run with one site's seed
# changed must differ (so the comparison can fail).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$ROOT/scripts/demo_lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/demo_run_lib.sh"

run() {  # run NAME CONFIGS DP SEED_OF_HOSPITAL_A [plain]: 5 seeded rounds in $WORK/NAME
  DEMO=$WORK/$1
  PORT=$(free_port)
  CONFIGS=$2
  ROUNDS=5
  DP=$3
  local aggregation="secure_aggregation=k="
  demo_prepare >/dev/null
  if [ "${5:-}" = plain ]; then
    sed -i 's/secure: {enabled: true,/secure: {enabled: false,/' "$DEMO/coordinator.yaml"
    aggregation="secure_aggregation=off"
  fi
  local offset=0
  for site in "${SITES[@]}"; do
    offset=$((offset + 1))
    local seed=$((100 + offset))
    [ "$site" = hospital-a ] && seed=$4
    printf 'mode: simulation\nseed: %d\n' "$seed" >>"$DEMO/$site.yaml"
  done
  demo_run_to_end 300 && grep -q "$aggregation" "$DEMO/logs/coordinator.log"
}

same_checkpoints() {  # same_checkpoints A B: every round's checkpoint byte-identical
  local n=0
  for file in "$WORK/$1/state/checkpoints/"round-*.pt; do
    cmp -s "$file" "$WORK/$2/state/checkpoints/$(basename "$file")" || return 1
    n=$((n + 1))
  done
  [ "$n" -eq 5 ]
}

same_history() {  # same_history A B: identical accuracy and loss by round
  "$PY" - "$WORK/$1/state" "$WORK/$2/state" "$BIN/cohortctl" <<'PY'
import json, subprocess, sys
def history(d):
    out = subprocess.run([sys.argv[3], "rounds", "--state-dir", d, "--json"], check=True,
                         capture_output=True, text=True).stdout
    return [(r["round"], r["test_accuracy"], r["test_loss"], r["train_loss"]) for r in json.loads(out)]
a, b = history(sys.argv[1]), history(sys.argv[2])
assert len(a) == 5 and a == b, (a, b)
PY
}

upload_order() {  # upload_order NAME: the sites in the order their uploads were accepted
  grep -o "site=[a-z-]* round=[0-9]* stage=upload accepted" "$WORK/$1/logs/coordinator.log" |
    cut -d' ' -f1,2 | tr '\n' ' '
}

check "seeded secure run 1" run first "$ROOT/configs/demo" 0 101
check "seeded secure run 2" run second "$ROOT/configs/demo" 0 101
check "the two runs' checkpoints are byte-identical" same_checkpoints first second
check "the two runs' histories are identical" same_history first second
check "a run with hospital-a's seed changed" run other "$ROOT/configs/demo" 0 999
different_checkpoints() { ! same_checkpoints "$@"; }
check "changing one site's seed changes the model" different_checkpoints first other
check "seeded DP-SGD run 1" run dp1 "$ROOT/configs/demo-dp" 1 101
check "seeded DP-SGD run 2" run dp2 "$ROOT/configs/demo-dp" 1 101
check "DP-SGD runs repeat bit for bit too" same_checkpoints dp1 dp2
check "seeded plain run 1" run plain1 "$ROOT/configs/demo" 0 101 plain
check "seeded plain run 2" run plain2 "$ROOT/configs/demo" 0 101 plain
check "plain (not secure) runs repeat bit for bit too" same_checkpoints plain1 plain2
check "the two plain runs' histories are identical" same_history plain1 plain2
# For information only (timing decides it): the comparison above means most when the sites'
# uploads arrived in another order in the two runs.
if [ "$(upload_order plain1)" = "$(upload_order plain2)" ]; then
  echo "note: the plain runs' uploads arrived in the same order: $(upload_order plain1)"
else
  echo "note: the plain runs' uploads arrived in different orders"
fi
finish
