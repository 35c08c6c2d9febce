# The demo federation's files, shared by scripts/demo.sh and the end-to-end tests.
# Source it, then call demo_prepare with BIN, ROOT, DEMO, PORT, CONFIGS, ROUNDS and DP set
# (HTTP_PORT optional; see scripts/demo.sh); SITES lists the sites.
SITES=(hospital-a hospital-b hospital-c)

# Writes $DEMO afresh: the configs (port and round count applied), a development PKI, the
# Breast Cancer Wisconsin split across the sites and, with DP=1, the sites' privacy ledgers.
demo_prepare() {
  rm -rf "$DEMO"
  mkdir -p "$DEMO/state" "$DEMO/logs" "$DEMO/data"
  cp "$CONFIGS"/*.yaml "$DEMO/"
  if [ "$PORT" != 50051 ]; then
    sed -i "s/127.0.0.1:50051/127.0.0.1:$PORT/" "$DEMO"/*.yaml
  fi
  # The HTTP port (status page, /metrics): 9464 for the demo itself; elsewhere (tests) port 0,
  # a free port the coordinator logs ("stage=start http port N").
  HTTP_PORT=${HTTP_PORT:-$([ "$PORT" = 50051 ] && echo 9464 || echo 0)}
  sed -i "s/127.0.0.1:9464/127.0.0.1:$HTTP_PORT/" "$DEMO/coordinator.yaml"
  if [ -n "$ROUNDS" ]; then
    sed -i -E "s/count: [0-9]+/count: $ROUNDS/" "$DEMO/coordinator.yaml"
  fi

  echo "== development PKI in $DEMO/pki"
  "$BIN/cohortctl" pki init-ca --dir "$DEMO/pki" --federation demo >/dev/null
  "$BIN/cohortctl" pki issue --dir "$DEMO/pki" --federation demo --coordinator \
    --name localhost --ip 127.0.0.1 >/dev/null
  for site in "${SITES[@]}"; do
    "$BIN/cohortctl" pki issue --dir "$DEMO/pki" --federation demo --site "$site" >/dev/null
  done
  # An operator's certificate for the Admin API (cohortctl status, pause, resume, abort).
  "$BIN/cohortctl" pki issue --dir "$DEMO/pki" --federation demo --admin ops >/dev/null

  echo "== Breast Cancer Wisconsin split across the sites (label-skew)"
  "$BIN/cohortctl" data split --input "$ROOT/data/wdbc.csv" --label malignant --sites 3 \
    --scheme label-skew --seed 7 --out "$DEMO/data" --names hospital-a,hospital-b,hospital-c

  if [ "$DP" -eq 1 ]; then
    echo "== privacy ledgers (one per site, created once by the site's operator)"
    for site in "${SITES[@]}"; do
      "$BIN/cohortctl" ledger init --db "$DEMO/state/ledger-$site.db" --site "$site"
    done
  fi
}
