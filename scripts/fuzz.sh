#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ (clang, -DCOHORT_FUZZ=ON, ASan + UBSan, into
# build-fuzz/) and runs each for a bounded time on a copy of its seed corpus
# tests/fuzz/corpus/<target>/. Exits non-zero when any target reports a crash, a leak, a
# sanitizer error or a timeout; the input that did it is kept under build-fuzz/artifacts/.
#
#   scripts/fuzz.sh [--seconds N] [--write-seeds] [TARGET...]
#
# --seconds N     run time per target (default 60)
# --write-seeds   (re)write the generated seeds of tests/fuzz/corpus/ from configs/, data/ and
#                 the code's encoders, then exit (the inputs that found bugs stay)
# TARGET...       run only these (e.g. csv idx); default: all
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${COHORT_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}
JOBS=${COHORT_JOBS:-2}
CORPUS=$ROOT/tests/fuzz/corpus
TARGETS_ALL=(config csv idx chunk_reassembler checkpoint evaluation_report)

seconds=60
write_seeds=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --seconds=*) seconds=${1#*=}; shift ;;
    --write-seeds) write_seeds=1; shift ;;
    -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz.sh: --seconds needs a positive integer" >&2
  exit 2
fi
[ ${#targets[@]} -gt 0 ] || targets=("${TARGETS_ALL[@]}")

bash "$ROOT/scripts/setup.sh"
start=$(date +%s)
mkdir -p "$BUILD"
CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" -DCOHORT_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  >"$BUILD/configure.log" 2>&1 || { cat "$BUILD/configure.log"; exit 1; }
cmake --build "$BUILD" -j"$JOBS"
echo "fuzz: built in $(( $(date +%s) - start )) s"

if [ "$write_seeds" = 1 ]; then
  mkdir -p "$CORPUS/config" "$CORPUS/csv"
  for f in demo/coordinator demo/hospital-a demo-dp/coordinator demo-dp/hospital-a \
      fashion-mnist/coordinator fashion-mnist/site-a fashion-mnist-dp/coordinator \
      fashion-mnist-dp/site-a bank/coordinator bank/bank-a; do
    cp "$ROOT/configs/$f.yaml" "$CORPUS/config/${f//\//-}.yaml"
  done
  head -n 4 "$ROOT/data/wdbc.csv" >"$CORPUS/csv/wdbc-head.csv"
  head -n 3 "$ROOT/data/credit_g.csv" >"$CORPUS/csv/credit-g-head.csv"
  printf 'x, y ,label\r\n1.5,-2e3,0\r\n\r\n0x1p3,inf,1\r\n' >"$CORPUS/csv/crlf-spaces.csv"
  "$BUILD/bin/fuzz_write_seeds" "$CORPUS"
  cp "$ROOT/tests/data/torch_save_linear_3x2.pt" "$CORPUS/checkpoint/torch-save-linear-3x2.pt"
  du -sh "$CORPUS"/*
  exit 0
fi

ARTIFACTS=$BUILD/artifacts
WORK=$BUILD/fuzz-work
rm -rf "$WORK" "$ARTIFACTS"
mkdir -p "$ARTIFACTS" "$WORK"
# detect_leaks is on by default with ASan on x86_64 Linux; spelled out so that nobody turns it
# off by accident. halt_on_error: any report ends the run with a non-zero status.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

failed=()
summary=()
for target in "${targets[@]}"; do
  binary=$BUILD/bin/${target}_fuzz
  if [ ! -x "$binary" ]; then
    echo "fuzz.sh: no target $target (have: ${TARGETS_ALL[*]})" >&2
    exit 2
  fi
  # The run adds what it finds to a copy; the seeds in the repository stay as they are.
  mkdir -p "$WORK/$target"
  cp -r "$CORPUS/$target/." "$WORK/$target/"
  log=$WORK/$target.log
  echo "fuzz: $target for ${seconds} s"
  status=0
  "$binary" "$WORK/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -detect_leaks=1 -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$target-" \
    >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n1 || true)
  corpus_size=$(grep -oE 'corp: [0-9]+/[0-9]+[bKM]?b?' "$log" | tail -n1 || true)
  line=$(printf '%-18s %s runs (%s/s) %s, %s, %s' "$target" "${runs:-?}" "${rate:-?}" \
    "$([ "$status" = 0 ] && echo ok || echo "FAILED (exit $status)")" "${cov:-cov: ?}" \
    "${corpus_size:-corp: ?}")
  summary+=("$line")
  if [ "$status" != 0 ]; then
    failed+=("$target")
    echo "fuzz: $target failed; last lines of $log:" >&2
    tail -n 60 "$log" >&2
  fi
done

echo "fuzz: summary ($(( $(date +%s) - start )) s in all)"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (crashing inputs: $ARTIFACTS)" >&2
  exit 1
fi
