#!/usr/bin/env bash
# Installs what is missing, builds (Release, into build/) and runs the whole test suite
# through CTest. .ci/run calls exactly this.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${COHORT_BUILD_DIR:-$ROOT/build}
JOBS=${COHORT_JOBS:-2}

bash "$ROOT/scripts/setup.sh"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD" -j"$JOBS"
cd "$BUILD"
ctest --output-on-failure -j"$JOBS" --timeout 900
