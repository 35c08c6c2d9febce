#!/usr/bin/env bash
# deploy/container: the Containerfiles of both daemons.
#
# Always (seconds): a lint of both files. Multi-stage (a build stage, then a final stage
# FROM the base again), the base is a local image (localhost/...bookworm) and no stage pulls
# from a registry, the final stage copies the binaries from the build stage, runs as a fixed
# non-root uid (USER 10001, never root), installs no compiler or -dev package, has the right
# ENTRYPOINT; and its runtime package list covers every shared library the built binary
# (this build's bin/) links directly, mapped to Debian packages with dpkg -S (so linking a new
# library without adding its runtime package fails here, not in production).
#
# With COHORT_CONTAINER_BUILD=1 (not in CI by default: on a 2-core machine the bootstrap and
# both builds take about 17 minutes, see docs/operations.md): deploy/container/build.sh
# bootstraps Debian 12 with mmdebstrap, imports it, builds both images with
# `podman build --isolation=chroot` (nothing is pulled from an image registry), then runs the
# binaries out of the built images: `podman image mount` and chroot as uid 10001, because
# containers cannot be started with `podman run` on these machines (no cgroup/namespace
# support for an OCI runtime inside this sandbox). It checks `--version`, that every library
# resolves inside the image, that the final images hold no compiler, and runs a short
# federation on loopback: the coordinator from its image, three sites from the client image,
# configs from deploy/compose/prepare.sh; three rounds must commit.
source "$(dirname "$0")/lib.sh"

CF=$ROOT/deploy/container

# --- lint --------------------------------------------------------------------------------------
for daemon in coordinator client; do
  file=$CF/Containerfile.$daemon
  binary=cohort-$daemon
  if "$PY" - "$file" "$binary" "$BIN/$binary" <<'EOF'; then pass; else fail "lint $file (see above)"; fi
import re, subprocess, sys
path, binary, built = sys.argv[1:4]
text = open(path).read()
# Join continuation lines, drop comments.
logical = re.sub(r"\\\n", " ", "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#")))
lines = [l.strip() for l in logical.splitlines() if l.strip()]
bad = []
args = {m.group(1): m.group(2) for l in lines for m in [re.match(r"ARG (\w+)=(\S+)", l)] if m}
froms = [(i, l) for i, l in enumerate(lines) if l.upper().startswith("FROM ")]
if len(froms) < 2:
    bad.append("not multi-stage: fewer than two FROM")
stages = [l.split()[3] for _, l in froms if len(l.split()) == 4 and l.split()[2].upper() == "AS"]
for _, l in froms:
    image = l.split()[1]
    ref = args.get(image[2:-1], "") if image.startswith("${") else image
    if image not in stages and not (ref.startswith("localhost/") and "bookworm" in ref):
        bad.append(f"{l}: the base must be the local bootstrapped bookworm image, not a registry's")
if "bookworm" not in args.get("BASE", ""):
    bad.append("ARG BASE must default to the bootstrapped Debian 12 (bookworm) image")
final = lines[froms[-1][0]:]
users = [l.split()[1] for l in final if l.upper().startswith("USER ")]
if not users:
    bad.append("the final stage sets no USER")
elif users[-1].split(":")[0] in ("0", "root") or not re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", users[-1]):
    bad.append(f"the final stage must run as a numeric non-root uid:gid, is USER {users[-1]}")
if not any(re.match(rf"COPY --from={stages[0] if stages else 'build'} .*/{binary}\b", l) for l in final):
    bad.append(f"the final stage does not COPY {binary} from the build stage")
if not any(l.startswith("ENTRYPOINT") and f"/usr/local/bin/{binary}\"" in l for l in final):
    bad.append(f"ENTRYPOINT must run /usr/local/bin/{binary}")
installed = []
for l in final:
    for m in re.finditer(r"apt-get install ([^&|;]*)", l):
        installed += [w for w in m.group(1).split() if not w.startswith("-") and not w.startswith(">")]
for pkg in installed:
    if pkg.endswith("-dev") or pkg in ("build-essential", "cmake", "g++", "gcc", "ccache", "pkg-config",
                                       "protobuf-compiler", "protobuf-compiler-grpc"):
        bad.append(f"the final stage installs build tooling: {pkg}")
# Every directly linked library of the built binary comes from a listed runtime package, or
# from one minbase always has (apt needs libc6, libgcc-s1, libstdc++6).
needed = subprocess.run(["readelf", "-d", built], capture_output=True, text=True, check=True).stdout
sonames = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", needed)
ldd = subprocess.run(["ldd", built], capture_output=True, text=True, check=True).stdout
paths = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
minbase = {"libc6", "libgcc-s1", "libstdc++6"}
for so in sonames:
    if so not in paths:
        continue   # the dynamic loader, vdso
    real = subprocess.run(["readlink", "-f", paths[so]], capture_output=True, text=True).stdout.strip()
    pkg = None
    for candidate in (real, real.removeprefix("/usr"), "/usr" + real):
        r = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if r.returncode == 0:
            pkg = r.stdout.split(":")[0]
            break
    if pkg is None:
        bad.append(f"{so} ({real}) belongs to no Debian package")
    elif pkg not in installed and pkg not in minbase:
        bad.append(f"{binary} links {so} from {pkg}, which the final stage does not install")
for line in bad:
    print(f"FAIL: {path}: {line}")
sys.exit(1 if bad else 0)
EOF
done
check "the two build stages are identical (shared layers)" \
  test "$(sed -n '/AS build$/,/^FROM/p' "$CF/Containerfile.coordinator" | grep -v '^#')" = \
       "$(sed -n '/AS build$/,/^FROM/p' "$CF/Containerfile.client" | grep -v '^#')"
# The lint can fail: a final stage that runs as root is refused.
sed 's/^USER 10001:10001/USER root/' "$CF/Containerfile.client" >"$WORK/Containerfile.root"
if "$PY" - "$WORK/Containerfile.root" cohort-client "$BIN/cohort-client" >/dev/null 2>&1 <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
final = text[text.rindex("\nFROM "):]
users = re.findall(r"^USER (\S+)", final, re.M)
sys.exit(0 if users and users[-1].split(":")[0] not in ("0", "root") else 1)
EOF
then fail "a root final stage was not noticed"; else pass; fi

if [ "${COHORT_CONTAINER_BUILD:-0}" != 1 ]; then
  echo "images not built (COHORT_CONTAINER_BUILD=1 builds and runs them)"
  finish
  exit $?
fi

# --- build and run from the images -----------------------------------------------------------
for tool in podman mmdebstrap; do
  command -v "$tool" >/dev/null || { fail "$tool missing (apt-get install podman mmdebstrap)"; finish; exit 1; }
done
start=$(date +%s)
if bash "$CF/build.sh" >"$WORK/build.log" 2>&1; then pass; else fail "build.sh: $(tail -n 20 "$WORK/build.log")"; finish; exit 1; fi
grep '^build.sh: ' "$WORK/build.log"
echo "images built in $(( $(date +%s) - start ))s"

MOUNTS=()
unmount_all() {
  for m in "${MOUNTS[@]}"; do umount -l "$m" 2>/dev/null || true; done
  podman image unmount cohort-coordinator:latest cohort-client:latest >/dev/null 2>&1 || true
  cleanup_work
}
trap unmount_all EXIT
declare -A ROOTFS
for daemon in coordinator client; do
  image=cohort-$daemon:latest
  check "$image runs as 10001:10001" test "$(podman image inspect "$image" --format '{{.Config.User}}')" = 10001:10001
  ROOTFS[$daemon]=$(podman image mount "$image")
  r=${ROOTFS[$daemon]}
  for b in cohort-$daemon cohortctl; do
    check "$b --version from $image" chroot --userspec=10001:10001 "$r" "/usr/local/bin/$b" --version
    check "every library of $b resolves in $image" \
      bash -c "! chroot '$r' ldd /usr/local/bin/$b | grep -q 'not found'"
  done
  check "$image holds no compiler" bash -c "! chroot '$r' sh -c 'command -v cc || command -v g++ || command -v cmake'"
  check "$image holds no -dev package" bash -c "! chroot '$r' dpkg-query -W -f='\${Package}\n' | grep -q -- '-dev\$'"
  # What the daemons need from the host inside the chroot: /dev (random), /proc (LibTorch),
  # and the configuration at /etc/cohort, the state at /var/lib/cohort.
  for d in dev proc; do mount --bind "/$d" "$r/$d" && MOUNTS+=("$r/$d"); done
done

# A federation on loopback, configs from prepare.sh with the coordinator on 127.0.0.1.
PORT=$(free_port)
bash "$ROOT/deploy/compose/prepare.sh" --build "$BUILD" --out "$WORK/fed" --rounds 3 >/dev/null
sed -i -e "s/^listen: .*/listen: 127.0.0.1:$PORT/" -e "s#^state_dir: .*#state_dir: /var/lib/cohort#" \
  "$WORK/fed/coordinator/coordinator.yaml"
for site in hospital-a hospital-b hospital-c; do
  sed -i "s/^coordinator: .*/coordinator: 127.0.0.1:$PORT\nserver_name: coordinator/" "$WORK/fed/$site/client.yaml"
done
mkdir -p "$WORK/state" && chown 10001:10001 "$WORK/state"
mount --bind "$WORK/fed/coordinator" "${ROOTFS[coordinator]}/etc/cohort" && MOUNTS+=("${ROOTFS[coordinator]}/etc/cohort")
mount --bind "$WORK/state" "${ROOTFS[coordinator]}/var/lib/cohort" && MOUNTS+=("${ROOTFS[coordinator]}/var/lib/cohort")
mount --bind "$WORK/fed" "${ROOTFS[client]}/etc/cohort" && MOUNTS+=("${ROOTFS[client]}/etc/cohort")
chroot --userspec=10001:10001 "${ROOTFS[coordinator]}" /usr/local/bin/cohort-coordinator \
  --config /etc/cohort/coordinator.yaml >"$WORK/coordinator.log" 2>&1 &
COORD=$!
PIDS=()
for site in hospital-a hospital-b hospital-c; do
  chroot --userspec=10001:10001 "${ROOTFS[client]}" /usr/local/bin/cohort-client \
    --config "/etc/cohort/$site/client.yaml" >"$WORK/$site.log" 2>&1 &
  PIDS+=("$!")
done
status=0
timeout 300 tail --pid="$COORD" -f /dev/null || { kill "$COORD" "${PIDS[@]}" 2>/dev/null; status=124; }
wait "$COORD" || status=$?
check "the coordinator from its image exited 0 (got $status)" test "$status" -eq 0
check "three rounds committed" test "$(grep -c 'stage=commit' "$WORK/coordinator.log")" -eq 3
for pid in "${PIDS[@]}"; do
  s=0; wait "$pid" || s=$?
  check "a site from the client image exited 0 (got $s)" test "$s" -eq 0
done
check "the state was written as uid 10001" test "$(stat -c %u "$WORK/state/state.db")" = 10001
[ "$FAILURES" -eq 0 ] || tail -n 5 "$WORK"/*.log
finish
