#!/usr/bin/env bash
# cohortctl privacy as a user runs it: epsilon and noise in text and JSON, the reference
# value, and bad arguments exiting 2 with a message naming the parameter.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CTL=$BIN/cohortctl

# json_check JSON PYTHON_EXPR: the expression, evaluated with `d` bound to the parsed JSON,
# is true.
json_check() {
  "$PY" -c 'import json, sys; d = json.loads(sys.argv[1]); sys.exit(0 if eval(sys.argv[2]) else 1)' \
    "$1" "$2"
}

# epsilon: JSON keys, the reference value (q = 0.01, sigma = 1.1, 1000 steps, delta = 1e-5).
out=$("$CTL" privacy epsilon --sample-rate 0.01 --noise-multiplier 1.1 --steps 1000 \
  --delta 1e-5 --json 2>&1) || true
check "epsilon --json parses with keys epsilon and order: $out" \
  json_check "$out" '(sorted(d) == ["epsilon", "order"] and
                      all(isinstance(v, (int, float)) for v in d.values()))'
check "epsilon is 1.7118 to 4 decimal places: $out" \
  json_check "$out" 'abs(d["epsilon"] - 1.7118) < 0.5e-4 and 1 < d["order"] <= 63'
out=$("$CTL" privacy epsilon --sample-rate 0.01 --noise-multiplier 1.1 --steps 10000 \
  --delta 1e-5 --json 2>&1) || true
check "epsilon after 10000 steps is 5.632: $out" \
  json_check "$out" 'abs(d["epsilon"] - 5.632) < 0.5e-3'

# epsilon: a short human line with the value and the order.
out=$("$CTL" privacy epsilon --sample-rate 0.01 --noise-multiplier 1.1 --steps 1000 \
  --delta 1e-5 2>&1) || true
check "epsilon text names epsilon and the order: $out" \
  grep -qE "^epsilon = 1\.7117[0-9]* .*order [0-9.]+" <<<"$out"

# noise: JSON keys; the epsilon it reports is within the target and matches `epsilon`.
out=$("$CTL" privacy noise --target-epsilon 2 --sample-rate 0.01 --steps 1000 --delta 1e-5 \
  --json 2>&1) || true
check "noise --json parses with keys noise_multiplier and epsilon: $out" \
  json_check "$out" 'sorted(d) == ["epsilon", "noise_multiplier"] and d["noise_multiplier"] > 0'
check "noise meets the target: $out" json_check "$out" 'd["epsilon"] <= 2 and d["epsilon"] > 1.99'
sigma=$("$PY" -c 'import json, sys; print(json.loads(sys.argv[1])["noise_multiplier"])' \
  "$out" 2>/dev/null) || sigma=0
back=$("$CTL" privacy epsilon --sample-rate 0.01 --noise-multiplier "$sigma" --steps 1000 \
  --delta 1e-5 --json 2>&1) || true
check "epsilon at the calibrated noise is within the target: $back" \
  json_check "$back" 'd["epsilon"] <= 2'
out=$("$CTL" privacy noise --target-epsilon 1.7118 --sample-rate 0.01 --steps 1000 \
  --delta 1e-5 2>&1) || true
check "noise text gives the multiplier (about 1.1): $out" \
  grep -qE "^noise multiplier = 1\.09999[0-9]* " <<<"$out"

# Bad arguments: exit 2 and `cohortctl privacy <sub>: <message naming the parameter>`.
# expect_bad SUB FRAGMENT ARGS...
expect_bad() {
  local sub=$1 fragment=$2 code
  shift 2
  set +e
  "$CTL" privacy "$sub" "$@" >"$WORK/out" 2>"$WORK/err"; code=$?
  set -e
  check "privacy $sub $* exits 2 (got $code)" test "$code" -eq 2
  check "privacy $sub $* says '$fragment': $(cat "$WORK/err")" \
    grep -q "^cohortctl privacy $sub: .*$fragment" "$WORK/err"
  check "privacy $sub $* prints nothing on stdout" test ! -s "$WORK/out"
}
EPS=(--noise-multiplier 1.1 --steps 1000 --delta 1e-5)
expect_bad epsilon "sample rate" --sample-rate 0 "${EPS[@]}"
expect_bad epsilon "sample rate" --sample-rate 1.5 "${EPS[@]}"
expect_bad epsilon "sample rate" --sample-rate -0.1 "${EPS[@]}"
expect_bad epsilon "noise multiplier" --sample-rate 0.01 --noise-multiplier 0 --steps 1000 --delta 1e-5
expect_bad epsilon "noise multiplier" --sample-rate 0.01 --noise-multiplier -2 --steps 1000 --delta 1e-5
expect_bad epsilon "steps" --sample-rate 0.01 --noise-multiplier 1.1 --steps 0 --delta 1e-5
expect_bad epsilon "delta" --sample-rate 0.01 --noise-multiplier 1.1 --steps 1000 --delta 0
expect_bad epsilon "delta" --sample-rate 0.01 --noise-multiplier 1.1 --steps 1000 --delta 1
expect_bad noise "target epsilon" --target-epsilon 0 --sample-rate 0.01 --steps 1000 --delta 1e-5
expect_bad noise "target epsilon" --target-epsilon -1 --sample-rate 0.01 --steps 1000 --delta 1e-5
expect_bad noise "cannot be met" --target-epsilon 0.01 --sample-rate 0.01 --steps 1000 --delta 1e-5
expect_bad noise "sample rate" --target-epsilon 1 --sample-rate 2 --steps 1000 --delta 1e-5
expect_bad noise "steps" --target-epsilon 1 --sample-rate 0.01 --steps -4 --delta 1e-5
expect_bad noise "delta" --target-epsilon 1 --sample-rate 0.01 --steps 1000 --delta 1.5

# A missing option or a non-number is a usage error: exit 2 as well.
set +e
"$CTL" privacy epsilon --sample-rate 0.01 --steps 1000 --delta 1e-5 >/dev/null 2>&1; code=$?
set -e
check "epsilon without --noise-multiplier exits 2 (got $code)" test "$code" -eq 2
set +e
"$CTL" privacy noise --target-epsilon lots --sample-rate 0.01 --steps 1000 --delta 1e-5 \
  >/dev/null 2>&1; code=$?
set -e
check "a non-numeric --target-epsilon exits 2 (got $code)" test "$code" -eq 2

# The site's privacy ledger: created once by an operator, read by anyone.
"$BIN/cohortctl" ledger init --db "$WORK/ledger.db" --site hospital-a >/dev/null
check "ledger init creates the file" test -f "$WORK/ledger.db"
set +e
"$BIN/cohortctl" ledger init --db "$WORK/ledger.db" --site hospital-a >/dev/null 2>"$WORK/err"; code=$?
set -e
check "a second ledger init is refused (exit 1)" test "$code" -eq 1
check "a second ledger init says why" grep -q "already exists" "$WORK/err"
"$BIN/cohortctl" ledger --db "$WORK/ledger.db" --json >"$WORK/ledger.json"
check "ledger --json shows an empty ledger of its site" "$PY" - "$WORK/ledger.json" <<'PY'
import json, sys
ledger = json.load(open(sys.argv[1]))
assert ledger["site"] == "hospital-a" and ledger["epsilon"] == 0 and ledger["rounds"] == [], ledger
PY
set +e
"$BIN/cohortctl" ledger --db "$WORK/missing.db" >/dev/null 2>"$WORK/err"; code=$?
set -e
check "a missing ledger exits 1" test "$code" -eq 1
check "a missing ledger names the command that creates it" grep -q "cohortctl ledger init" "$WORK/err"
set +e
"$BIN/cohortctl" ledger init --db "$WORK/x.db" --site "Bad Site" >/dev/null 2>&1; code=$?
set -e
check "ledger init with a bad site id exits 2" test "$code" -eq 2

finish
