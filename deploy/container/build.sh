#!/usr/bin/env bash
# Builds the cohort images without pulling anything from an image registry: bootstraps a
# Debian 12 base with mmdebstrap (from the Debian mirror, with bookworm-updates and
# bookworm-security), imports it into podman, then builds both Containerfiles with the
# repository root as context.
#
#   deploy/container/build.sh [--rebootstrap] [--no-ccache] [coordinator] [client]   (default: both)
#
# The build stage compiles with the host's ccache directory mounted (`ccache -k cache_dir`,
# or $COHORT_CCACHE_DIR): after a host build of the same sources (CMakeLists.txt sets ccache's
# base_dir) it compiles almost nothing. --no-ccache builds without it. The bootstrapped base is
# kept and reused (--rebootstrap makes it again), and podman's layer cache makes a rebuild of
# unchanged sources take seconds.
#
# Needs podman and mmdebstrap (apt-get install podman mmdebstrap) and root (or a rootless
# podman set up with subuids). Images: localhost/cohort-debian:bookworm (base),
# cohort-coordinator:latest, cohort-client:latest. Prints how long each step took.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BASE=localhost/cohort-debian:bookworm
REBOOTSTRAP=0
CCACHE_DIR_HOST=${COHORT_CCACHE_DIR:-}
USE_CCACHE=1
TARGETS=()
for arg in "$@"; do
  case "$arg" in
    --rebootstrap) REBOOTSTRAP=1 ;;
    --no-ccache) USE_CCACHE=0 ;;
    coordinator|client) TARGETS+=("$arg") ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
# The client first: its final stage (LibTorch) is the longest, and with --jobs 2 it installs
# while the build stage compiles; the coordinator's build then reuses the build stage's layers.
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(client coordinator)
for tool in podman mmdebstrap; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool missing: apt-get install $tool" >&2; exit 1; }
done

VOLUMES=()
if [ "$USE_CCACHE" -eq 1 ]; then
  if [ -z "$CCACHE_DIR_HOST" ] && command -v ccache >/dev/null; then
    CCACHE_DIR_HOST=$(ccache -k cache_dir)
  fi
  if [ -n "$CCACHE_DIR_HOST" ]; then
    mkdir -p "$CCACHE_DIR_HOST"
    VOLUMES=(-v "$CCACHE_DIR_HOST:/root/.cache/ccache")
  fi
fi

step() { echo "build.sh: $1 took $(( $(date +%s) - $2 ))s"; }
if [ "$REBOOTSTRAP" -eq 1 ] || ! podman image exists "$BASE"; then
  start=$(date +%s)
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mmdebstrap --quiet --variant=minbase bookworm "$tmp/bookworm.tar"
  podman import --quiet "$tmp/bookworm.tar" "$BASE" >/dev/null
  rm -rf "$tmp"
  step "bootstrap of $BASE (mmdebstrap + podman import)" "$start"
fi
for target in "${TARGETS[@]}"; do
  start=$(date +%s)
  podman build --isolation=chroot --layers --jobs 2 --build-arg BASE="$BASE" "${VOLUMES[@]}" \
    -f "$ROOT/deploy/container/Containerfile.$target" -t "cohort-$target:latest" "$ROOT"
  step "podman build cohort-$target:latest" "$start"
done
