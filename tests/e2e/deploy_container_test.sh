#!/usr/bin/env bash
# deploy/container: the Containerfiles of both daemons, linted, built and run.
#
# Lint (seconds): multi-stage (a build stage, then a final stage FROM the base again), the base
# is a local image (localhost/...bookworm) and no stage pulls from a registry, the final stage
# copies the binaries from the build stage, runs as a fixed non-root uid (USER 10001, never
# root), installs no compiler or -dev package, has the right ENTRYPOINT; and its runtime
# package list covers every shared library the built binary (this build's bin/) links
# directly, mapped to Debian packages with dpkg -S (so linking a new library without adding
# its runtime package fails here, not in production).
#
# Build: deploy/container/build.sh bootstraps Debian 12 with mmdebstrap (once per machine: the
# base image is kept), imports it, builds both images with `podman build --isolation=chroot`
# (nothing is pulled from an image registry). The build stage mounts the host's ccache, which
# the build of BUILD_DIR just filled, so it compiles next to nothing. Timings in
# docs/operations.md. podman or mmdebstrap missing or not working is a failure, not a skip;
# COHORT_SKIP_CONTAINER_BUILD=1 (for developers, never set in CI) stops after the lint.
#
# Run: the binaries run out of the built images with `podman image mount` and chroot as uid
# 10001, NOT with `podman run`: containers cannot be started on these machines (the sandbox
# denies the OCI runtime what it needs: "crun: setrlimit `RLIMIT_NOFILE`: Operation not
# permitted", also with --ulimit host --cgroups=disabled). It checks `--version`, that every
# library resolves inside the image, that the final images hold no compiler, and runs a short
# federation on loopback (port chosen at run time): the coordinator from its image, three
# sites from the client image, configs from deploy/compose/prepare.sh; three rounds must
# commit. Every process it starts and every mount it makes is undone on exit, failure or not.
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

if [ "${COHORT_SKIP_CONTAINER_BUILD:-0}" = 1 ]; then
  echo "SKIPPED: images not built nor run (COHORT_SKIP_CONTAINER_BUILD=1)"
  finish
  exit $?
fi

# Undone in reverse on exit, failure or not: what runs (the build, the daemons: TERM, then
# KILL), our mounts, the image mounts.
RUNNING=()
MOUNTS=()
IMAGES_MOUNTED=()
stop_process() {  # stop_process PID, or -PGID for a process group: TERM, 5 s, KILL
  local pid=$1 i
  kill -TERM -- "$pid" 2>/dev/null || return 0
  for i in $(seq 50); do kill -0 -- "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "$pid" 2>/dev/null || true
  wait "${pid#-}" 2>/dev/null || true
}
reaped() {  # reaped PID: waited for, so never signalled again (its number may be reused)
  local kept=() p
  for p in "${RUNNING[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
  RUNNING=("${kept[@]}")
}
undo_all() {
  local i
  for i in "${RUNNING[@]}"; do stop_process "$i"; done
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" 2>/dev/null || true
  done
  [ ${#IMAGES_MOUNTED[@]} -eq 0 ] || podman image unmount "${IMAGES_MOUNTED[@]}" >/dev/null 2>&1 || true
  cleanup_work
}
trap undo_all EXIT
trap 'exit 130' INT TERM
mount_into() {  # mount_into TARGET mount-arguments...: mounts and remembers it for undo_all
  local target=$1; shift
  mount "$@" "$target" && MOUNTS+=("$target")
}

# --- build -----------------------------------------------------------------------------------
# One run per machine at a time: the tags, the image mounts and podman's storage are shared by
# every checkout (ctest's RESOURCE_LOCK covers only one ctest). Wait for another run to end.
exec 9>"${TMPDIR:-/tmp}/cohort-deploy-container.lock"
flock -w 1200 9 || { fail "another deploy_container_test.sh held the lock for 20 minutes"; finish; exit 1; }
for tool in podman mmdebstrap; do
  command -v "$tool" >/dev/null || { fail "$tool missing (scripts/setup.sh installs it)"; finish; exit 1; }
done
if ! podman info >"$WORK/podman-info.log" 2>&1; then
  fail "podman does not work here: $(tail -n 5 "$WORK/podman-info.log")"; finish; exit 1
fi
start=$(date +%s)
# In its own process group, so that podman goes too if the test is stopped.
setsid bash "$CF/build.sh" >"$WORK/build.log" 2>&1 &
builder=$!
RUNNING+=("-$builder")
build_status=0
wait "$builder" || build_status=$?
reaped "-$builder"
if [ "$build_status" -eq 0 ]; then
  pass
else
  fail "build.sh exited $build_status: $(tail -n 30 "$WORK/build.log")"; finish; exit 1
fi
grep '^build.sh: ' "$WORK/build.log"
echo "images built in $(( $(date +%s) - start ))s"

# --- run from the images ---------------------------------------------------------------------
declare -A ROOTFS
for daemon in coordinator client; do
  image=cohort-$daemon:latest
  # By ID: a concurrent build (another checkout's test) may move the tag meanwhile, and
  # image mounts are counted per image, so each run unmounts exactly what it mounted.
  id=$(podman image inspect "$image" --format '{{.Id}}')
  r=$(podman image mount "$id") || { fail "podman image mount $image"; finish; exit 1; }
  IMAGES_MOUNTED+=("$id")
  check "$image runs as 10001:10001" test "$(podman image inspect "$id" --format '{{.Config.User}}')" = 10001:10001
  [ -d "$r/usr/local/bin" ] || { fail "podman image mount $image gave '$r'"; finish; exit 1; }
  ROOTFS[$daemon]=$r
  # The image's own /dev nodes (null, urandom, ...) serve; LibTorch reads /proc. A fresh proc
  # mount, not a bind of the host's /proc or /dev: nothing under them can be removed through
  # the image's directory.
  mount_into "$r/proc" -t proc proc
  for b in cohort-$daemon cohortctl; do
    check "$b --version from $image" chroot --userspec=10001:10001 "$r" "/usr/local/bin/$b" --version
    check "every library of $b resolves in $image" \
      bash -c "chroot '$r' ldd /usr/local/bin/$b >'$WORK/ldd' && ! grep -q 'not found' '$WORK/ldd'"
  done
  check "$image holds no compiler" bash -c "! chroot '$r' sh -c 'command -v cc || command -v c++ || command -v gcc || command -v g++ || command -v cmake'"
  check "$image holds no -dev package" bash -c "! chroot '$r' dpkg-query -W -f='\${Package}\n' | grep -q -- '-dev\$'"
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
mount_into "${ROOTFS[coordinator]}/etc/cohort" --bind "$WORK/fed/coordinator"
mount_into "${ROOTFS[coordinator]}/var/lib/cohort" --bind "$WORK/state"
mount_into "${ROOTFS[client]}/etc/cohort" --bind "$WORK/fed"
# chroot execs the daemon: $! is the daemon itself.
chroot --userspec=10001:10001 "${ROOTFS[coordinator]}" /usr/local/bin/cohort-coordinator \
  --config /etc/cohort/coordinator.yaml >"$WORK/coordinator.log" 2>&1 &
COORD=$!
RUNNING+=("$COORD")
SITES=()
for site in hospital-a hospital-b hospital-c; do
  chroot --userspec=10001:10001 "${ROOTFS[client]}" /usr/local/bin/cohort-client \
    --config "/etc/cohort/$site/client.yaml" >"$WORK/$site.log" 2>&1 &
  SITES+=("$!")
  RUNNING+=("$!")
done
# Until the coordinator exits (300 s at most; 15 s once no site is left, it cannot finish
# without them).
status=0
left=300
while [ "$left" -gt 0 ] && kill -0 "$COORD" 2>/dev/null; do
  alive=0
  for pid in "${SITES[@]}"; do kill -0 "$pid" 2>/dev/null && alive=$((alive + 1)); done
  [ "$alive" -gt 0 ] || [ "$left" -le 15 ] || left=15
  sleep 1
  left=$((left - 1))
done
if kill -0 "$COORD" 2>/dev/null; then
  stop_process "$COORD"; status=124
else
  wait "$COORD" || status=$?
fi
reaped "$COORD"
check "the coordinator from its image exited 0 by itself within 300 s (got $status)" test "$status" -eq 0
check "three rounds committed" test "$(grep -c 'stage=commit' "$WORK/coordinator.log")" -eq 3
# The sites leave once the federation is over; if the coordinator failed they would retry.
site_wait=60
[ "$status" -eq 0 ] || site_wait=1
for pid in "${SITES[@]}"; do
  s=0
  if timeout "$site_wait" tail --pid="$pid" -f /dev/null; then
    wait "$pid" || s=$?
  else
    stop_process "$pid"; s=124
  fi
  reaped "$pid"
  check "a site from the client image exited 0 (got $s)" test "$s" -eq 0
done
check "the state was written as uid 10001" test "$(stat -c %u "$WORK/state/state.db")" = 10001
[ "$FAILURES" -eq 0 ] || tail -n 5 "$WORK"/*.log
finish
