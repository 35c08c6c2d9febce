#!/usr/bin/env bash
# Builds the unit tests with AddressSanitizer and UndefinedBehaviorSanitizer (gcc, -O2 -g,
# -fno-sanitize-recover=all) in build-asan/ and runs them: any memory error, leak or undefined
# behaviour fails the run. The unit tests cover the LibTorch-free libraries (config, crypto,
# data, tensor, state, dp, secagg, the coordinator's round logic); LibTorch and the system's
# gRPC are not instrumented, and the integration suite is not run here (docs/testing.md).
#
#   scripts/sanitize.sh            # configure if needed, build -j2, run
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${COHORT_ASAN_BUILD_DIR:-$ROOT/build-asan}
FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
# With -g, ccache hashes the working directory unless told not to: a fresh clone elsewhere
# would then miss the cache and rebuild everything (6.5 minutes on 2 cores).
export CCACHE_NOHASHDIR=true

bash "$ROOT/scripts/setup.sh"
start=$(date +%s)
mkdir -p "$BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOHORT_BUILD_BENCH=OFF \
  -DCMAKE_CXX_FLAGS="$FLAGS" -DCMAKE_C_FLAGS="$FLAGS" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >"$BUILD/configure.log" 2>&1 ||
  { cat "$BUILD/configure.log"; exit 1; }
cmake --build "$BUILD" -j2 --target unit_tests
built=$(date +%s)
set +e
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  "$BUILD/bin/unit_tests" >"$BUILD/unit_tests.log" 2>&1
status=$?
set -e
# The malformed-message tests make protobuf log invalid UTF-8; the rest is the verdict.
grep -v "^\[libprotobuf ERROR" "$BUILD/unit_tests.log" | tail -n 40
echo "sanitize: build $((built - start)) s, tests $(( $(date +%s) - built )) s, exit $status"
exit "$status"
