#!/usr/bin/env bash
# /metrics scraped by a real Prometheus server (Debian's prometheus package, started by this
# test on loopback with its own storage in the test's directory). A DP demo federation (three
# hospitals, secure aggregation, DP-SGD) runs a few rounds and is paused, so its figures stop
# moving; then the test asks Prometheus's query API for what it scraped and compares it with
# what the Admin API reports: committed rounds, connected sites, the paused flag, each
# site's epsilon, and the stage-duration histograms of the secure stages.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/paused_demo_lib.sh"

PROMETHEUS=$(command -v prometheus || true)
if [ -z "$PROMETHEUS" ]; then
  # Not a skip: scripts/setup.sh installs it, so its absence is a broken setup.
  echo "FAIL: prometheus is not installed (scripts/setup.sh installs the prometheus package)" >&2
  exit 1
fi

check "the demo ran 3 rounds and paused" start_paused_demo 3 "scrape test"

PROM_PORT=$(free_port)
cat >"$WORK/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: cohort-coordinator
    static_configs: [{targets: ['127.0.0.1:$HTTP']}]
YAML
"$PROMETHEUS" --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prometheus-data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$WORK/prometheus.log" 2>&1 &

check "Prometheus scraped the coordinator and agrees with the Admin API" \
  "$PY" - "$PROM_PORT" "$WORK/status.json" <<'PY'
import json, sys, time, urllib.parse, urllib.request
port, status_file = sys.argv[1], sys.argv[2]
status = json.load(open(status_file))
committed = int(status["rounds_committed"])
epsilon = {s["site_id"]: s["epsilon"] for s in status["sites"] if s["has_epsilon"]}
assert committed >= 3 and len(epsilon) == 3, status

def query(expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]

def value(expr):
    result = query(expr)
    return None if not result else float(result[0]["value"][1])

# Scrapes every second; wait (watchdog 90 s) until the paused figures have been scraped.
deadline = time.time() + 90
last = None
while time.time() < deadline:
    try:
        last = value('cohort_coordinator_rounds_total{outcome="committed"}')
        if last == committed and value("cohort_coordinator_paused") == 1:
            break
    except Exception as e:  # Prometheus still starting
        last = repr(e)
    time.sleep(0.5)
else:
    raise SystemExit(f"Prometheus never saw {committed} committed rounds (last: {last})")

assert value('up{job="cohort-coordinator"}') == 1
assert value("cohort_coordinator_committed_rounds") == committed
assert value("cohort_coordinator_connected_sites") == 3
series = query("cohort_coordinator_site_epsilon")
scraped = {s["metric"]["site"]: float(s["value"][1]) for s in series}
assert set(scraped) == set(epsilon), (scraped, epsilon)
for site, e in epsilon.items():
    assert abs(scraped[site] - e) <= 1e-9 * max(1.0, e), (site, scraped[site], e)
    assert 0 < e <= 3.0, (site, e)
for stage in ("train", "share_keys", "masked_input", "unmask", "evaluate", "commit"):
    count = value(f'cohort_coordinator_stage_duration_seconds_count{{stage="{stage}"}}')
    assert count is not None and count >= committed, (stage, count)
assert value("cohort_coordinator_received_bytes_total") > 0
assert value("cohort_coordinator_sent_bytes_total") > 0
print(f"Prometheus agrees: {committed} committed rounds, epsilon {scraped}")
PY

check "coordinator exits 0 on SIGTERM" stop_demo_coordinator
finish
