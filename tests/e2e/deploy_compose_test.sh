#!/usr/bin/env bash
# deploy/compose: compose.yaml is a valid Compose file (validated against the Compose schema
# by Debian's docker-compose 1.29, `docker-compose config`, which needs no Docker daemon),
# prepare.sh writes a federation directory that it mounts completely (every bind-mount source
# and every file a config names exists, each site sees only its own key, the sites dial the
# coordinator's service name and port and are on its allowlist), and the configs it writes
# are accepted by `cohort-coordinator --check-config` and `cohort-client --check-config` (the
# client's also loads the site's data). The containers are not started here (see
# deploy_container_test.sh: `podman run` does not work on these machines).
source "$(dirname "$0")/lib.sh"

COMPOSE_DIR=$WORK/compose
mkdir -p "$COMPOSE_DIR"
cp "$ROOT/deploy/compose/compose.yaml" "$COMPOSE_DIR/"

# --- prepare.sh ------------------------------------------------------------------------------
if out=$(bash "$ROOT/deploy/compose/prepare.sh" --build "$BUILD" --out "$COMPOSE_DIR/federation" --rounds 3 2>&1); then
  pass
else
  fail "prepare.sh: $out"
fi
# It refuses to overwrite a federation (the CA key) unless --force.
check "prepare.sh refuses an existing directory" \
  bash -c "! bash '$ROOT/deploy/compose/prepare.sh' --build '$BUILD' --out '$COMPOSE_DIR/federation' 2>/dev/null"

# --- the compose file against the Compose schema ---------------------------------------------
if command -v docker-compose >/dev/null; then
  if (cd "$COMPOSE_DIR" && docker-compose -f compose.yaml config -q) >"$WORK/compose.err" 2>&1; then
    pass
  else
    fail "docker-compose config: $(cat "$WORK/compose.err")"
  fi
  # The schema check can fail: a misspelt service key is refused.
  sed 's/^    read_only: true/    read_only: true\n    read_olny: true/; s/^  read_only: true/  read_only: true\n  read_olny: true/' \
    "$COMPOSE_DIR/compose.yaml" >"$COMPOSE_DIR/broken.yaml"
  if (cd "$COMPOSE_DIR" && docker-compose -f broken.yaml config -q) >"$WORK/broken.err" 2>&1; then
    fail "docker-compose accepted an unknown key"
  else
    check "docker-compose names the unknown key" grep -q "read_olny" "$WORK/broken.err"
  fi
else
  fail "docker-compose missing (scripts/setup.sh installs it)"
fi

# --- what the containers mount -----------------------------------------------------------------
if "$PY" - "$COMPOSE_DIR" <<'EOF'; then pass; else fail "compose.yaml vs the prepared directory (see above)"; fi
import pathlib, sys, yaml
root = pathlib.Path(sys.argv[1])
compose = yaml.safe_load((root / "compose.yaml").read_text())
bad = []
services = compose["services"]
want_images = {"coordinator": "cohort-coordinator:latest"}
sites = [name for name in services if name != "coordinator"]
if "coordinator" not in services or len(sites) != 3:
    bad.append(f"expected a coordinator and 3 sites, found {sorted(services)}")
coordinator_cfg = yaml.safe_load((root / "federation/coordinator/coordinator.yaml").read_text())
listen_port = coordinator_cfg["listen"].rsplit(":", 1)[1]
for name, svc in services.items():
    image = want_images.get(name, "cohort-client:latest")
    if svc.get("image") != image:
        bad.append(f"{name}: image {svc.get('image')} != {image}")
    for key, value in (("read_only", True), ("cap_drop", ["ALL"]), ("user", "10001:10001"),
                       ("security_opt", ["no-new-privileges:true"]), ("restart", "on-failure"),
                       ("stop_signal", "SIGTERM")):
        if svc.get(key) != value:
            bad.append(f"{name}: {key} should be {value!r}, is {svc.get(key)!r}")
    etc = None
    for volume in svc.get("volumes", []):
        source, target, *mode = volume.split(":")
        if source.startswith("."):
            path = (root / source).resolve()
            if not path.exists():
                bad.append(f"{name}: bind-mount source {source} does not exist")
            if mode != ["ro"]:
                bad.append(f"{name}: {source} must be mounted read-only")
            if target == "/etc/cohort":
                etc = path
        elif source not in (compose.get("volumes") or {}):
            bad.append(f"{name}: volume {source} is not declared")
    if etc is None:
        bad.append(f"{name}: nothing mounted at /etc/cohort")
        continue
    command = svc.get("command", [])
    config_path = command[command.index("--config") + 1] if "--config" in command else ""
    if not config_path.startswith("/etc/cohort/"):
        bad.append(f"{name}: --config {config_path} is not under /etc/cohort")
        continue
    config_file = etc / config_path[len("/etc/cohort/"):]
    if not config_file.is_file():
        bad.append(f"{name}: {config_path} is not in {etc}")
        continue
    cfg = yaml.safe_load(config_file.read_text())
    files = list(cfg["tls"].values()) + ([cfg["data"]["path"]] if "data" in cfg else [])
    for f in files:
        if not (etc / f).is_file():
            bad.append(f"{name}: {f} named by {config_file.name} is not in its mount")
    keys = sorted(p.name for p in etc.rglob("*.key"))
    own = f"{'coordinator' if name == 'coordinator' else name}.key"
    if keys != [own]:
        bad.append(f"{name}: its mount holds keys {keys}, expected only {own}")
    if name == "coordinator":
        state = [v for v in svc["volumes"] if v.split(":")[1] == cfg["state_dir"]]
        if not state or state[0].startswith("."):
            bad.append(f"coordinator: state_dir {cfg['state_dir']} is not on a named volume")
    else:
        if cfg["site"] != name or name not in coordinator_cfg["sites"]:
            bad.append(f"{name}: site id {cfg['site']} / allowlist {coordinator_cfg['sites']}")
        if cfg["coordinator"] != f"coordinator:{listen_port}":
            bad.append(f"{name}: dials {cfg['coordinator']}, the coordinator listens on port {listen_port}")
        if "coordinator" not in (svc.get("depends_on") or []):
            bad.append(f"{name}: should depend on coordinator")
for line in bad:
    print("FAIL:", line)
sys.exit(1 if bad else 0)
EOF

# --- the daemons accept the configs -----------------------------------------------------------
FED=$COMPOSE_DIR/federation
if out=$("$BIN/cohort-coordinator" --config "$FED/coordinator/coordinator.yaml" --check-config 2>&1); then
  pass; echo "$out"
else
  fail "cohort-coordinator --check-config: $out"
fi
for site in hospital-a hospital-b hospital-c; do
  if out=$("$BIN/cohort-client" --config "$FED/$site/client.yaml" --check-config 2>&1); then
    pass; echo "$out"
  else
    fail "cohort-client --check-config ($site): $out"
  fi
done
# The coordinator certificate carries the name the sites dial.
check "the coordinator certificate names 'coordinator'" \
  bash -c "openssl x509 -in '$FED/coordinator/pki/coordinator.pem' -noout -ext subjectAltName | grep -q 'DNS:coordinator'"
if [ "$(id -u)" -eq 0 ]; then
  check "the keys belong to the images' uid 10001, mode 0600" \
    test "$(stat -c '%u %a' "$FED/hospital-a/pki/hospital-a.key")" = "10001 600"
fi

finish
