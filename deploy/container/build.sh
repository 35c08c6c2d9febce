#!/usr/bin/env bash
# Builds the cohort images without pulling anything from an image registry: bootstraps a
# Debian 12 base with mmdebstrap (from the Debian mirror apt uses), imports it into podman,
# then builds both Containerfiles with the repository root as context.
#
#   deploy/container/build.sh [--rebootstrap] [coordinator] [client]     (default: both)
#
# Needs podman and mmdebstrap (apt-get install podman mmdebstrap) and root (or a rootless
# podman set up with subuids). Images: localhost/cohort-debian:bookworm (base),
# cohort-coordinator:latest, cohort-client:latest. Prints how long each step took.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BASE=localhost/cohort-debian:bookworm
REBOOTSTRAP=0
TARGETS=()
for arg in "$@"; do
  case "$arg" in
    --rebootstrap) REBOOTSTRAP=1 ;;
    coordinator|client) TARGETS+=("$arg") ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(coordinator client)
for tool in podman mmdebstrap; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool missing: apt-get install $tool" >&2; exit 1; }
done

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
  podman build --isolation=chroot --build-arg BASE="$BASE" \
    -f "$ROOT/deploy/container/Containerfile.$target" -t "cohort-$target:latest" "$ROOT"
  step "podman build cohort-$target:latest" "$start"
done
