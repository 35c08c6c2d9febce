#!/usr/bin/env bash
# Prepares the directory that deploy/compose/compose.yaml mounts: a development PKI, the
# Breast Cancer Wisconsin data split across three hospitals, and one configuration per
# container, made with the built cohortctl as scripts/demo.sh does.
#
#   deploy/compose/prepare.sh [--build DIR] [--out DIR] [--rounds N] [--force]
#
#   --build DIR   build directory holding bin/cohortctl (default: build/, or $COHORT_BUILD_DIR)
#   --out DIR     where to write (default: deploy/compose/federation, which compose.yaml mounts)
#   --rounds N    rounds the coordinator runs (default 20)
#   --force       replace an existing --out directory
#
# Layout (each container mounts only its own directory, read-only, at /etc/cohort; relative
# paths in the configs resolve against it, so a site sees its own key and no other):
#   OUT/coordinator/coordinator.yaml   OUT/coordinator/pki/{ca.pem,coordinator.pem,coordinator.key}
#   OUT/hospital-X/client.yaml         OUT/hospital-X/pki/{ca.pem,hospital-X.pem,hospital-X.key}
#                                      OUT/hospital-X/data/hospital-X.csv
#   OUT/ca/{ca.pem,ca.key}             the CA: mounted by no container
# The images run as uid/gid 10001 (deploy/container/); run as root, this script gives the
# mounted files to 10001 so that the daemons can read their keys (mode 0600). Rootless podman:
# `podman unshare chown -R 10001:10001 OUT/coordinator OUT/hospital-*` instead.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${COHORT_BUILD_DIR:-$ROOT/build}
OUT=$ROOT/deploy/compose/federation
ROUNDS=20
FORCE=0
SITES=(hospital-a hospital-b hospital-c)
IMAGE_UID=10001

while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --force) FORCE=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "prepare.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$ROUNDS" in ''|*[!0-9]*) echo "prepare.sh: --rounds takes a number" >&2; exit 2 ;; esac
CTL=$BUILD/bin/cohortctl
if [ ! -x "$CTL" ]; then
  echo "prepare.sh: $CTL not found; build it first:" >&2
  echo "  cmake -S $ROOT -B $BUILD -DCMAKE_BUILD_TYPE=Release && cmake --build $BUILD --target cohortctl" >&2
  exit 1
fi
if [ -e "$OUT" ]; then
  if [ "$FORCE" -eq 0 ]; then
    echo "prepare.sh: $OUT exists (it holds a CA key); --force replaces it" >&2
    exit 1
  fi
  rm -rf "$OUT"
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# The CA and every certificate, made in one place, then copied to where each container
# mounts them. (At a real site the key is generated there: see docs/operations.md.)
"$CTL" pki init-ca --dir "$OUT/ca" --federation compose >/dev/null
"$CTL" pki issue --dir "$OUT/ca" --federation compose --coordinator \
  --name coordinator --name localhost --ip 127.0.0.1 --out "$OUT/issued" >/dev/null
for site in "${SITES[@]}"; do
  "$CTL" pki issue --dir "$OUT/ca" --federation compose --site "$site" --out "$OUT/issued" >/dev/null
done
"$CTL" data split --input "$ROOT/data/wdbc.csv" --label malignant --sites 3 \
  --scheme label-skew --seed 7 --out "$OUT/split" --names "$(IFS=,; echo "${SITES[*]}")" >/dev/null

install_pki() {  # install_pki DIR NAME: the CA certificate and NAME's certificate and key
  install -d -m 0700 "$1/pki"
  install -m 0644 "$OUT/ca/ca.pem" "$1/pki/ca.pem"
  install -m 0644 "$OUT/issued/$2.pem" "$1/pki/$2.pem"
  install -m 0600 "$OUT/issued/$2.key" "$1/pki/$2.key"
}

mkdir -p "$OUT/coordinator"
install_pki "$OUT/coordinator" coordinator
cat >"$OUT/coordinator/coordinator.yaml" <<EOF
# Written by deploy/compose/prepare.sh: the coordinator of the compose federation. Mounted at
# /etc/cohort; relative paths resolve against it. State lives in the coordinator-state volume.
federation: compose
listen: 0.0.0.0:50051
tls: {ca: pki/ca.pem, cert: pki/coordinator.pem, key: pki/coordinator.key}
sites: [$(IFS=,; echo "${SITES[*]}" | sed 's/,/, /g')]
state_dir: /var/lib/cohort
seed: 1
model: {arch: mlp, inputs: 30, hidden: [32], classes: 2}
rounds: {count: $ROUNDS, min_clients: 2, stage_timeout: 60s, select_timeout: 30s}
training: {epochs: 1, batch_size: 16, lr: 0.05, optimizer: sgd}
aggregation:
  strategy: fedavg
  secure: {enabled: true, dropout_tolerance: 0.34, bits: 20, clip_range: 1.0, stage_timeout: 30s}
limits: {max_concurrent_uploads: 1, max_chunk_bytes: 4194304}
# /metrics, /healthz, /readyz and the status page (published on the host's loopback only).
http: {listen: 0.0.0.0:9464}
admins: [ops]
logging: {level: info}
EOF

for site in "${SITES[@]}"; do
  dir=$OUT/$site
  mkdir -p "$dir/data"
  install_pki "$dir" "$site"
  install -m 0644 "$OUT/split/$site.csv" "$dir/data/$site.csv"
  cat >"$dir/client.yaml" <<EOF
# Written by deploy/compose/prepare.sh: site $site of the compose federation. Mounted at
# /etc/cohort; its key (pki/$site.key) is mounted into this site's container only.
site: $site
coordinator: coordinator:50051
tls: {ca: pki/ca.pem, cert: pki/$site.pem, key: pki/$site.key}
data: {format: csv, path: data/$site.csv, label: malignant, test_fraction: 0.2}
reconnect: {initial_backoff: 500ms, max_backoff: 10s}
threads: 1
EOF
done
rm -rf "$OUT/issued" "$OUT/split"

if [ "$(id -u)" -eq 0 ]; then
  chown -R "$IMAGE_UID:$IMAGE_UID" "$OUT/coordinator" "${SITES[@]/#/$OUT/}"
else
  echo "prepare.sh: not root: the containers (uid $IMAGE_UID) cannot read the keys yet; run" >&2
  echo "  podman unshare chown -R $IMAGE_UID:$IMAGE_UID $OUT/coordinator ${SITES[*]/#/$OUT/}" >&2
fi
echo "prepare.sh: federation 'compose' ($ROUNDS rounds, sites ${SITES[*]}) in $OUT"
