#!/usr/bin/env bash
# A short real DP-SGD training run of configs/fashion-mnist-dp: scripts/federation.sh with
# 12,000 of the Fashion-MNIST training images split dirichlet:0.5 over three sites (5,425 /
# 2,843 / 3,732), the CNN, secure aggregation, DP-SGD at sigma 0.9 and C 1.0 as configured,
# 4 rounds at batch 256 (the config's 512 would spend too much on sites this small: q = B / n).
# Each site's ledger must record the 4 rounds within its budget of epsilon 8 (and agree with the
# round history and with the accountant run on the ledger's own (q, sigma, steps)), and the
# pooled held-out accuracy (6,000 test images) must be far above chance (0.1): > 0.5 (measured
# 0.694 to 0.741 after 4 rounds in five runs; 0.31 to 0.45 after round 1). Epsilon
# after the 4 rounds: 4.61 (site-a, q 0.047), 6.51 (site-b, q 0.090), 5.58 (site-c, q 0.069).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export COHORT_BUILD_DIR=$BUILD
export COHORT_FED_DIR=$WORK/fmdp
export COHORT_FED_PORT=$(free_port)
set +e
bash "$ROOT/scripts/federation.sh" fashion-mnist-dp --skip-build --rounds 4 --limit 12000 \
  --batch-size 256 >"$WORK/out" 2>&1; code=$?
set -e
cat "$WORK/out"
check "the Fashion-MNIST DP federation exits 0" test "$code" -eq 0
check "it prints one line per round (4)" test "$(grep -c '^round [0-9]' "$WORK/out")" -eq 4
check "it created the sites' ledgers" test "$(grep -c '^created privacy ledger' "$WORK/out")" -eq 3
check "it printed each site's privacy spent" \
  test "$(grep -cE '^site site-[abc]: epsilon [0-9.]+ spent at delta 1e-05 over 4 rounds' "$WORK/out")" -eq 3
check "the rounds used secure aggregation" \
  grep -q "stage=configure .*secure_aggregation=k=" "$WORK/fmdp/logs/coordinator.log"
check "no process left running" no_process_matching "$WORK/fmdp/"

"$BIN/cohortctl" rounds --state-dir "$WORK/fmdp/state" --json >"$WORK/rounds.json"
for site in site-a site-b site-c; do
  "$BIN/cohortctl" ledger --db "$WORK/fmdp/state/ledger-$site.db" --json >"$WORK/ledger-$site.json"
done
check "4 DP rounds at every site within epsilon 8, ledgers and history agree, accuracy > 0.5" \
  "$PY" - "$WORK" "$BIN/cohortctl" <<'PY'
import json, subprocess, sys
work, cohortctl = sys.argv[1], sys.argv[2]
rounds = json.load(open(f"{work}/rounds.json"))
assert len(rounds) == 4, rounds
for r in rounds:
    assert r["status"] == "committed", r
    assert sorted(r["participants"]) == ["site-a", "site-b", "site-c"], r
    assert r["examples"] == 12000, r
sizes = {}
for site in ("site-a", "site-b", "site-c"):
    ledger = json.load(open(f"{work}/ledger-{site}.json"))
    assert ledger["site"] == site and ledger["delta"] == 1e-5, ledger
    assert [e["round"] for e in ledger["rounds"]] == [1, 2, 3, 4], ledger
    for e in ledger["rounds"]:
        assert e["noise_multiplier"] == 0.9 and e["max_grad_norm"] == 1.0, e
        assert e["steps"] == ledger["rounds"][0]["steps"] > 0, e
        assert e["sample_rate"] == ledger["rounds"][0]["sample_rate"], e
    after = [e["epsilon_after"] for e in ledger["rounds"]]
    assert 0 < after[0] < after[1] < after[2] < after[3] == ledger["epsilon"] <= 8.0, (site, after)
    # The accountant, run on the ledger's own figures, gives the same total.
    first = ledger["rounds"][0]
    calc = json.loads(subprocess.check_output([
        cohortctl, "privacy", "epsilon", "--sample-rate", repr(first["sample_rate"]),
        "--noise-multiplier", "0.9", "--steps", str(4 * first["steps"]), "--delta", "1e-5",
        "--json"]))["epsilon"]
    assert abs(calc - ledger["epsilon"]) <= 1e-4 * ledger["epsilon"], (site, calc, ledger)
    history = rounds[-1]["epsilon"][site]
    assert abs(history - ledger["epsilon"]) <= 1e-6 * ledger["epsilon"], (site, history, ledger)
    print(site, "q", first["sample_rate"], "steps/round", first["steps"],
          "epsilon", ledger["epsilon"])
print("test accuracy by round", [r["test_accuracy"] for r in rounds])
assert rounds[-1]["test_accuracy"] > 0.5, rounds[-1]
PY
finish
