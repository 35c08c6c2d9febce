#!/usr/bin/env bash
# The three binaries as a user runs them: --version, --help, --check-config, and clear errors
# with exit code 2 for bad configs and arguments.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for bin in cohort-coordinator cohort-client cohortctl; do
  out=$("$BIN/$bin" --version 2>&1) || true
  check "$bin --version prints its name and version" grep -qE "^$bin [0-9]+\.[0-9]+\.[0-9]+" <<<"$out"
  out=$("$BIN/$bin" --help 2>&1) || true
  check "$bin --help shows usage" grep -q "Usage" <<<"$out"
done

# A working demo layout: configs, PKI and site data.
cp "$ROOT"/configs/demo/*.yaml "$WORK/"
"$BIN/cohortctl" pki init-ca --dir "$WORK/pki" --federation demo >/dev/null
"$BIN/cohortctl" pki issue --dir "$WORK/pki" --federation demo --coordinator >/dev/null
for s in hospital-a hospital-b hospital-c; do
  "$BIN/cohortctl" pki issue --dir "$WORK/pki" --federation demo --site "$s" >/dev/null
done
"$BIN/cohortctl" data split --input "$ROOT/data/wdbc.csv" --label malignant --sites 3 \
  --scheme label-skew --seed 7 --out "$WORK/data" --names hospital-a,hospital-b,hospital-c >/dev/null

# Every example config in configs/ loads: coordinator files with the coordinator, site files
# (those with a `site:` key) with the client, which also loads the site's data.
for file in "$ROOT"/configs/*/*.yaml; do
  dir=$WORK/configs/$(basename "$(dirname "$file")")
  mkdir -p "$dir"
  cp "$file" "$dir/"
  ln -sfn "$WORK/pki" "$dir/pki"
  ln -sfn "$WORK/data" "$dir/data"
  if grep -q '^site:' "$file"; then
    out=$("$BIN/cohort-client" --config "$dir/$(basename "$file")" --check-config 2>&1) || true
    check "client accepts $file and loads its data: $out" grep -qE ": OK .* features" <<<"$out"
  else
    out=$("$BIN/cohort-coordinator" --config "$dir/$(basename "$file")" --check-config 2>&1) || true
    check "coordinator accepts $file: $out" grep -q ": OK" <<<"$out"
  fi
done

# An unknown key: exit 2, and the message names file, line and key.
sed 's/^seed: 1/seed: 1\nround: {count: 3}/' "$WORK/coordinator.yaml" >"$WORK/typo.yaml"
set +e
out=$("$BIN/cohort-coordinator" --config "$WORK/typo.yaml" --check-config 2>&1); code=$?
set -e
check "unknown key exits 2" test "$code" -eq 2
line=$(grep -n '^round:' "$WORK/typo.yaml" | cut -d: -f1)
check "unknown key error names file:line and key" grep -q "typo.yaml:$line:1: round: unknown key" <<<"$out"

# Out of range value.
sed -E 's/count: [0-9]+/count: 0/' "$WORK/coordinator.yaml" >"$WORK/zero.yaml"
set +e
out=$("$BIN/cohort-coordinator" --config "$WORK/zero.yaml" --check-config 2>&1); code=$?
set -e
check "rounds.count: 0 exits 2" test "$code" -eq 2
check "rounds.count: 0 names the key" grep -q "rounds.count: must be between 1" <<<"$out"

# A missing TLS file for the client.
sed 's#pki/hospital-a.key#pki/missing.key#' "$WORK/hospital-a.yaml" >"$WORK/nokey.yaml"
set +e
out=$("$BIN/cohort-client" --config "$WORK/nokey.yaml" --check-config 2>&1); code=$?
set -e
check "missing key file exits 2" test "$code" -eq 2
check "missing key file is named" grep -q "tls.key: file '.*missing.key' does not exist" <<<"$out"

# A missing config file.
set +e
out=$("$BIN/cohort-coordinator" --config "$WORK/nope.yaml" 2>&1); code=$?
set -e
check "missing config exits 2" test "$code" -eq 2
check "missing config is named" grep -q "nope.yaml" <<<"$out"

# cohortctl: bad arguments exit 2, a missing state dir exits 1 with the reason.
set +e
"$BIN/cohortctl" data split --input "$ROOT/data/wdbc.csv" --label malignant --sites 3 \
  --scheme wobbly --out "$WORK/x" >/dev/null 2>"$WORK/err"; code=$?
set -e
check "unknown split scheme exits 2" test "$code" -eq 2
check "unknown split scheme is explained" grep -q "unknown scheme 'wobbly'" "$WORK/err"
set +e
"$BIN/cohortctl" rounds --state-dir "$WORK/no-state" >/dev/null 2>"$WORK/err"; code=$?
set -e
check "rounds on a missing state dir exits 1" test "$code" -eq 1
check "rounds on a missing state dir says why" grep -q "no state database" "$WORK/err"
set +e
"$BIN/cohortctl" rounds >/dev/null 2>&1; code=$?
set -e
check "rounds without --state-dir exits 2" test "$code" -eq 2

finish
