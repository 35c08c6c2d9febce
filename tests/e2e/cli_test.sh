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
# The other example federations: a certificate for every site named in configs/, the banks'
# CSV files and the Fashion-MNIST sites' IDX files (a small subset: the check loads them).
# shellcheck source=scripts/federation_lib.sh
source "$ROOT/scripts/federation_lib.sh"
for s in $(sed -n 's/^site: //p' "$ROOT"/configs/*/*.yaml | sort -u); do
  if [ ! -f "$WORK/pki/$s.pem" ]; then
    "$BIN/cohortctl" pki issue --dir "$WORK/pki" --federation demo --site "$s" >/dev/null
  fi
done
fed_data_bank "$WORK/data" >/dev/null
fed_data_fashion_mnist "$WORK/data" 600 >/dev/null

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
# cohortctl data split on IDX images: per-site image and label files (gzipped by default,
# plain with --no-gzip), every image dealt once with its label, the histogram printed, the
# same seed giving the same files.
"$PY" - "$WORK/idx" <<'PY'
import gzip, os, struct, sys
out = sys.argv[1]
os.makedirs(out)
n, rows, cols = 90, 3, 2
images = bytes((i * 5 + p) % 256 for i in range(n) for p in range(rows * cols))
labels = bytes(i % 3 for i in range(n))
with gzip.open(f"{out}/images.gz", "wb") as f:
    f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, n, rows, cols) + images)
with open(f"{out}/labels", "wb") as f:
    f.write(struct.pack(">BBBBI", 0, 0, 8, 1, n) + labels)
with open(f"{out}/short-labels", "wb") as f:
    f.write(struct.pack(">BBBBI", 0, 0, 8, 1, n - 1) + labels[:-1])
PY
split_idx() {
  "$BIN/cohortctl" data split --images "$WORK/idx/images.gz" --labels "$WORK/idx/labels" \
    --sites 3 --scheme dirichlet:0.5 --seed 4 "$@"
}
out=$(split_idx --out "$WORK/idx/a" 2>&1) || true
check "IDX split prints a label histogram per site: $out" \
  test "$(grep -cE '^site-[012]	[0-9]+	[0-2]:[0-9]+' <<<"$out")" -eq 3
split_idx --out "$WORK/idx/b" >/dev/null
split_idx --out "$WORK/idx/plain" --no-gzip --limit 60 >/dev/null
check "IDX split with the same seed writes the same files" diff -r "$WORK/idx/a" "$WORK/idx/b"
check "IDX split deals every image once, with its label, as valid IDX files" \
  "$PY" - "$WORK/idx" <<'PY'
import gzip, struct, sys
d = sys.argv[1]
def read(path, dims):
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    assert raw[:4] == bytes([0, 0, 8, dims]), raw[:4]
    shape = struct.unpack(">" + "I" * dims, raw[4:4 + 4 * dims])
    return shape, raw[4 + 4 * dims:]
for sub, n, gz in (("a", 90, ".gz"), ("plain", 60, "")):
    seen = []
    for s in range(3):
        (count, rows, cols), pixels = read(f"{d}/{sub}/site-{s}-images-idx3-ubyte{gz}", 3)
        (lcount,), labels = read(f"{d}/{sub}/site-{s}-labels-idx1-ubyte{gz}", 1)
        assert (rows, cols) == (3, 2) and count == lcount and len(pixels) == count * 6
        for k in range(count):
            image = pixels[k * 6:(k + 1) * 6]
            i = next(j for j in range(90) if bytes((j * 5 + p) % 256 for p in range(6)) == image)
            assert labels[k] == i % 3
            seen.append(i)
    assert sorted(seen) == list(range(n)), (sub, sorted(seen))
    if gz == "":
        assert open(f"{d}/{sub}/site-0-images-idx3-ubyte", "rb").read(2) != b"\x1f\x8b"
PY
set +e
"$BIN/cohortctl" data split --images "$WORK/idx/images.gz" --labels "$WORK/idx/short-labels" \
  --sites 3 --out "$WORK/idx/c" >/dev/null 2>"$WORK/err"; code=$?
set -e
check "IDX split of mismatched files exits 1" test "$code" -eq 1
check "IDX split names the file and the counts" grep -q "short-labels: 89 labels for the 90 images" "$WORK/err"
set +e
"$BIN/cohortctl" data split --images "$WORK/idx/images.gz" --sites 3 --out "$WORK/idx/d" \
  >/dev/null 2>"$WORK/err"; code=$?
set -e
check "IDX split without --labels exits 2" test "$code" -eq 2
check "IDX split without --labels says so" grep -q "\-\-labels (the IDX label file) is required" "$WORK/err"
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
