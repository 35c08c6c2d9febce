#!/usr/bin/env bash
# cohort-sim end to end: real gRPC and TLS on loopback, sites vanishing at each stage, and
# the coordinator's unmasked sum checked against the sites' dumped inputs.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIM=$BIN/cohort-sim
verify_dump() {  # verify_dump DIR EXPECTED_SURVIVORS
  "$PY" - "$1" "$2" <<'PY'
import json, os, struct, sys
d, expected = sys.argv[1], int(sys.argv[2])
m = json.load(open(os.path.join(d, "manifest.json")))
bits, n = m["modulus_bits"], m["length"]
fmt = "<%d%s" % (n, "I" if bits == 32 else "Q")
assert m["committed"] and m["sum"] == "sum.bin", m
assert len(m["survivors"]) == expected, m["survivors"]
assert len(m["clients"]) >= expected
total = [0] * n
for c in m["clients"]:
    if c["id"] in m["survivors"]:
        words = struct.unpack(fmt, open(os.path.join(d, c["file"]), "rb").read())
        total = [(a + b) % (1 << bits) for a, b in zip(total, words)]
got = list(struct.unpack(fmt, open(os.path.join(d, m["sum"]), "rb").read()))
assert got == total, "unmasked sum differs from the survivors' inputs"
assert got[m["weight_word"]] > 0
assert open(os.path.join(d, "survivors.txt")).read().split() == m["survivors"]
PY
}

# Dropouts at every stage within tolerance (7 sites, tolerance 0.3: two may drop).
for drops in "advertise:1 unmask:1" "share:1 masked:1" "masked:2" "unmask:2"; do
  args=()
  for d in $drops; do args+=(--drop "$d"); done
  dir=$WORK/dump-${drops// /-}
  set +e
  out=$("$SIM" --clients 7 --params 5000 --dropout-tolerance 0.3 "${args[@]}" --seed 3 \
        --dump "$dir" 2>"$WORK/sim.err"); code=$?
  set -e
  echo "$out"
  check "sim $drops: exits 0" test "$code" -eq 0
  survivors=5
  [[ "$drops" == *unmask:2* ]] && survivors=7
  [[ "$drops" == *"advertise:1 unmask:1"* ]] && survivors=6
  check "sim $drops: summary says committed" grep -q '"committed":true' <<<"$out"
  check "sim $drops: the unmasked sum is the survivors' exact sum" verify_dump "$dir" "$survivors"
done

# 2^64 words.
out=$("$SIM" --clients 8 --params 3000 --bits 40 --modulus-bits 64 --drop share:1 --drop masked:1 \
      --dump "$WORK/dump64" --seed 5 2>/dev/null)
check "sim 2^64: the unmasked sum is exact" verify_dump "$WORK/dump64" 6
check "sim 2^64: uploads 8 bytes per parameter" "$PY" -c "
import json, sys; s = json.loads(sys.argv[1]); assert 8 * 3000 <= s['bytes_per_client'] < 8 * 3000 * 1.1, s" "$out"

# Beyond tolerance: the round aborts, nothing is unmasked, the exit code says so.
set +e
out=$("$SIM" --clients 5 --params 1000 --dropout-tolerance 0.2 --drop masked:2 \
      --dump "$WORK/dump-abort" 2>/dev/null); code=$?
set -e
check "sim beyond tolerance: exits 1" test "$code" -eq 1
check "sim beyond tolerance: summary says aborted" grep -q '"committed":false' <<<"$out"
check "sim beyond tolerance: no sum was written" test ! -e "$WORK/dump-abort/sum.bin"
check "sim beyond tolerance: manifest has no sum" grep -q '"sum": null' "$WORK/dump-abort/manifest.json"

# Plain FedAvg for comparison, and bytes per client close to 4 x parameters when secure.
out=$("$SIM" --clients 4 --params 20000 --plain 2>/dev/null)
check "sim --plain commits" grep -q '"mode":"plain".*"committed":true' <<<"$out"
out=$("$SIM" --clients 4 --params 20000 2>/dev/null)
check "sim secure: at most 1.05 x 4 bytes per parameter plus key material" "$PY" -c "
import json, sys; s = json.loads(sys.argv[1]); assert s['bytes_per_client'] <= 1.05 * 4 * 20000 + 4096, s" "$out"

# Bad arguments: exit 2 with a message.
for bad in "--drop nowhere:1" "--drop masked:x" "--clients 2" "--secure --plain" "--drop masked:9 --clients 4"; do
  set +e
  # shellcheck disable=SC2086
  "$SIM" $bad >/dev/null 2>"$WORK/bad.err"; code=$?
  set -e
  check "sim $bad: exit 2" test "$code" -eq 2
  check "sim $bad: says why" test -s "$WORK/bad.err"
done
finish
