#!/usr/bin/env bash
# Installs the Debian 12 packages cohort builds and runs with. Idempotent: when every package
# is already present it returns at once without touching apt.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config ccache git openssl python3
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libtorch-dev libopenblas0-openmp
  libabsl-dev libspdlog-dev libyaml-cpp-dev catch2 libssl-dev libsqlite3-dev
  prometheus-cpp-dev libcli11-dev libbenchmark-dev
  python3-torch  # tests check that Python's torch.load reads cohort checkpoints
  # deploy/ tests: systemd-analyze verify/security and systemd-sysusers (the units), the
  # Compose schema (docker-compose config, no daemon), the Kubernetes API models (manifests)
  systemd python3-yaml docker-compose python3-kubernetes
  # deploy/container test: Debian base bootstrapped by mmdebstrap, images built by podman (as
  # root: no uidmap, fuse-overlayfs or slirp4netns needed)
  podman mmdebstrap
  # issue 6's observability tests: the status page rendered by headless Chromium, /metrics
  # scraped by a real Prometheus server (both started by the tests themselves, on loopback)
  chromium prometheus
  clang libclang-rt-14-dev  # libFuzzer targets (scripts/fuzz.sh, tests/fuzz/)
  dataset-fashion-mnist  # Fashion-MNIST IDX files (/usr/share/datasets/fashion-mnist/) for configs/fashion-mnist
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

# LibTorch calls the system BLAS through the alternatives system; make sure the OpenMP
# OpenBLAS (not the reference BLAS, not the pthread variant) is the one selected.
for alt in libblas.so.3 liblapack.so.3; do
  target=$(update-alternatives --list "${alt}-x86_64-linux-gnu" 2>/dev/null | grep openblas-openmp | head -n1 || true)
  if [ -n "$target" ]; then
    $SUDO update-alternatives --set "${alt}-x86_64-linux-gnu" "$target" >/dev/null
  fi
done
