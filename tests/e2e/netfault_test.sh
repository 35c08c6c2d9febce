#!/usr/bin/env bash
# Real network faults between hosts: the coordinator and the three hospitals of the demo each in
# their own network namespace, joined by veth pairs on a bridge in the coordinator's namespace
# (10.213.X.0/24, which exists only inside them), secure aggregation on, the daemons started
# with `ip netns exec`. Scenarios:
#   1. a slow, lossy link to hospital-c (rate limit and 5% packet loss both ways): every round
#      commits with all three hospitals;
#   2. hospital-c's link cut (carrier down, no FIN or RST) in the middle of its masked upload:
#      hospital-c is a dropout, the round commits with the other two, with exactly their
#      weight, and its checkpoint is bit for bit that of a seeded reference run in which
#      hospital-c's process is killed before its upload instead; the link restored, hospital-c
#      rejoins and the next round commits with all three;
#   3. keepalives (keepalive: {time: 10s, timeout: 5s} at both ends): idle sessions of a paused
#      federation survive 25 s, more than two keepalive periods; a silently dead link is
#      noticed by the coordinator (session ended) within a bound, measured and reported.
# Needs root (ip netns). Where the kernel has no sch_netem (as here: CONFIG_NET_SCH_NETEM is
# off) latency cannot be emulated: the slow link is a tbf rate limit and the loss comes from
# iptables' statistic match; the test says so when it starts. Every namespace (and with it every
# veth and the bridge) and every process this test creates is removed by its EXIT trap, also on
# failure or SIGTERM.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$ROOT/scripts/demo_lib.sh"

if [ "$(id -u)" -ne 0 ] || ! ip netns list >/dev/null 2>&1; then
  echo "SKIP: needs root and ip netns"; exit 0
fi

NS=cnf$$  # namespace prefix: unique per test process, so parallel runs cannot collide
NET=10.213.$(($$ % 250 + 1))
COORD_IP=$NET.1
PIDS=()
cleanup_netfault() {
  local pid
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  local ns
  # Anything still running in the test's namespaces was started by it.
  for ns in coord "${SITES[@]}"; do
    for pid in $(ip netns pids "$NS-$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  done
  for ns in coord "${SITES[@]}"; do ip netns del "$NS-$ns" 2>/dev/null || true; done
  # NETFAULT_KEEP=DIR keeps the runs' logs and states there (for debugging).
  if [ -n "${NETFAULT_KEEP:-}" ]; then rm -rf "$NETFAULT_KEEP"; cp -r "$WORK" "$NETFAULT_KEEP"; fi
  cleanup_work
}
trap cleanup_netfault EXIT

in_ns() { local ns=$1; shift; ip netns exec "$NS-$ns" "$@"; }
veth_of() { echo "v${1#hospital-}"; }  # coordinator-side end of a site's veth pair

# --- topology ---------------------------------------------------------------------------------
ip netns add "$NS-coord"
ip -n "$NS-coord" link set lo up
ip -n "$NS-coord" link add br0 type bridge
ip -n "$NS-coord" addr add "$COORD_IP/24" dev br0
ip -n "$NS-coord" link set br0 up
i=10
for site in "${SITES[@]}"; do
  i=$((i + 1))
  ip netns add "$NS-$site"
  ip -n "$NS-$site" link set lo up
  # Created inside the coordinator's namespace: no name in the host's namespace is touched.
  ip -n "$NS-coord" link add "$(veth_of "$site")" type veth peer name eth0 netns "$NS-$site"
  ip -n "$NS-coord" link set "$(veth_of "$site")" master br0 up
  ip -n "$NS-$site" addr add "$NET.$i/24" dev eth0
  ip -n "$NS-$site" link set eth0 up
done
if in_ns coord tc qdisc add dev lo root netem delay 1ms 2>/dev/null; then
  NETEM=1; in_ns coord tc qdisc del dev lo root
else
  NETEM=0
  echo "NOTE: tc netem is not available in this kernel (CONFIG_NET_SCH_NETEM): no added latency;"
  echo "      the slow link is a tbf rate limit and 5% loss comes from iptables' statistic match"
fi

# --- the federation's files -------------------------------------------------------------------
FILES=$WORK/files
mkdir -p "$FILES"
"$BIN/cohortctl" pki init-ca --dir "$FILES/pki" --federation demo >/dev/null
"$BIN/cohortctl" pki issue --dir "$FILES/pki" --federation demo --coordinator \
  --name cohort-coordinator --ip "$COORD_IP" >/dev/null
for site in "${SITES[@]}"; do
  "$BIN/cohortctl" pki issue --dir "$FILES/pki" --federation demo --site "$site" >/dev/null
done
"$BIN/cohortctl" pki issue --dir "$FILES/pki" --federation demo --admin ops >/dev/null
"$BIN/cohortctl" data split --input "$ROOT/data/wdbc.csv" --label malignant --sites 3 \
  --scheme label-skew --seed 7 --out "$FILES/data" --names hospital-a,hospital-b,hospital-c \
  >/dev/null
ADMIN=(--coordinator "$COORD_IP:50051" --cert "$FILES/pki/admin-ops.pem"
       --key "$FILES/pki/admin-ops.key" --ca "$FILES/pki/ca.pem")

# prepare_run NAME ROUNDS [coordinator yaml line]...: a run directory with the demo configs,
# the coordinator on $COORD_IP:50051 in its namespace, keepalive {10s, 5s} at both ends.
prepare_run() {
  RUN=$WORK/$1; local rounds=$2; shift 2
  mkdir -p "$RUN/state" "$RUN/logs"
  ln -s "$FILES/pki" "$RUN/pki"
  ln -s "$FILES/data" "$RUN/data"
  cp "$ROOT"/configs/demo/*.yaml "$RUN/"
  sed -i -e "s/^listen: .*/listen: $COORD_IP:50051/" -e "s/count: [0-9]*/count: $rounds/" \
    "$RUN/coordinator.yaml"
  sed -i -e "s/127.0.0.1:50051/$COORD_IP:50051/" -e 's/max_backoff: 10s/max_backoff: 1s/' \
    "$RUN"/hospital-*.yaml
  local f line
  for f in "$RUN"/*.yaml; do echo "keepalive: {time: 10s, timeout: 5s}" >>"$f"; done
  for line in "$@"; do echo "$line" >>"$RUN/coordinator.yaml"; done
}
# Started with ip netns exec itself (not through a shell function, which would fork a subshell),
# so that $! is the daemon's pid: ip execs the daemon.
start_coordinator() {
  ip netns exec "$NS-coord" "$BIN/cohort-coordinator" --config "$RUN/coordinator.yaml" \
    >"$RUN/logs/coordinator.log" 2>&1 &
  COORDINATOR=$!; PIDS+=("$COORDINATOR")
}
start_site() {
  ip netns exec "$NS-$1" "$BIN/cohort-client" --config "$RUN/$1.yaml" >"$RUN/logs/$1.log" 2>&1 &
  PIDS+=("$!")
}
# wait_for_log FILE PATTERN SECONDS: true once grep finds it.
wait_for_log() {
  local deadline=$((SECONDS + $3))
  while [ "$SECONDS" -lt "$deadline" ]; do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
# Waits (watchdog SECONDS) for the coordinator to exit; returns its exit code.
wait_coordinator() {
  set +e
  timeout "$1" tail --pid="$COORDINATOR" -f /dev/null
  wait "$COORDINATOR"; local code=$?
  set -e
  return "$code"
}
stop_run() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    timeout 20 tail --pid="$pid" -f /dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}
rounds_json() { "$BIN/cohortctl" rounds --state-dir "$RUN/state" --json >"$RUN/rounds.json"; }
dump_logs() { tail -n 25 "$RUN"/logs/*.log >&2; }

# NETFAULT_SCENARIOS="1 3" runs only those (debugging); all three by default.
wanted() { [[ " ${NETFAULT_SCENARIOS:-1 2 3} " == *" $1 "* ]]; }

# --- 1. a slow, lossy link ----------------------------------------------------------------------
if wanted 1; then
prepare_run slow 3
# A model of 16,898 parameters (66 KB each way per round), so that the lossy link carries
# hundreds of packets and loses some of them.
sed -i 's/hidden: \[32\]/hidden: [512]/' "$RUN/coordinator.yaml"
if [ "$NETEM" -eq 1 ]; then
  in_ns hospital-c tc qdisc add dev eth0 root netem delay 200ms loss 5%
  in_ns coord tc qdisc add dev vc root netem delay 200ms loss 5%
else
  # 1 Mbit/s out of hospital-c, and 5% of the packets lost in each direction.
  in_ns hospital-c tc qdisc add dev eth0 root tbf rate 1mbit burst 16kb latency 500ms
  in_ns hospital-c iptables -A OUTPUT -o eth0 -m statistic --mode random --probability 0.05 -j DROP
  in_ns hospital-c iptables -A INPUT -i eth0 -m statistic --mode random --probability 0.05 -j DROP
fi
start=$SECONDS
start_coordinator
for site in "${SITES[@]}"; do start_site "$site"; done
code=0; wait_coordinator 150 || code=$?
echo "scenario 1 (slow lossy link): coordinator finished in $((SECONDS - start)) s"
[ "$code" -eq 0 ] || dump_logs
check "slow link: the federation finishes" test "$code" -eq 0
rounds_json
check "slow link: all 3 rounds commit with all three hospitals" "$PY" - "$RUN/rounds.json" <<'PY'
import json, sys
rounds = json.load(open(sys.argv[1]))
assert [r["round"] for r in rounds] == [1, 2, 3], rounds
for r in rounds:
    assert r["status"] == "committed", r
    assert sorted(r["participants"]) == ["hospital-a", "hospital-b", "hospital-c"], r
    print("round", r["round"], "duration_s", r["duration_s"])
PY
in_ns hospital-c iptables -S OUTPUT | grep -q statistic && \
  echo "hospital-c's loss rules dropped: $(in_ns hospital-c iptables -L -v -n | awk '/statistic/ {s += $1} END {print s}') packets"
stop_run
in_ns hospital-c iptables -F
in_ns hospital-c tc qdisc del dev eth0 root 2>/dev/null || true
in_ns coord tc qdisc del dev vc root 2>/dev/null || true
fi

# --- 2. the link cut in the middle of an upload ------------------------------------------------
# A wider model (67,587 parameters, 270 KB masked, sent in 16 KiB chunks) and hospital-c's link
# at 256 kbit/s: its masked upload takes about 8 s, and the link is cut (carrier down on the
# coordinator's side: no FIN, no RST) once the coordinator has started to read it. Round 1 must
# commit without it; then the link comes back, hospital-c reconnects on its own and round 2
# commits with all three (a secure round needs at least 3 sites, so round 2 waits for it).
if wanted 2; then
# Seeded (mode: simulation), so that the aggregate can be compared bit for bit with a reference
# run in which hospital-c's process is killed at the same stage instead (the secagg_kill_test
# case): a link cut must leave exactly the same committed model as a clean dropout.
prepare_cut_run() {
  prepare_run "$1" "$2" "limits: {max_concurrent_uploads: 1, max_chunk_bytes: 16384}"
  sed -i -e 's/hidden: \[32\]/hidden: [2048]/' \
    -e '/^limits: {max_concurrent_uploads: 1, max_chunk_bytes: 4194304}/d' "$RUN/coordinator.yaml"
  local site seed=100
  for site in "${SITES[@]}"; do
    seed=$((seed + 1))
    printf 'mode: simulation\nseed: %d\n' "$seed" >>"$RUN/$site.yaml"
  done
}
prepare_cut_run cut 2
in_ns hospital-c tc qdisc add dev eth0 root tbf rate 256kbit burst 16kb latency 10s
start_coordinator
for site in "${SITES[@]}"; do start_site "$site"; done
cut_at=$SECONDS
if wait_for_log "$RUN/logs/coordinator.log" "site=hospital-c round=1 stage=upload receiving" 120; then
  sleep 2  # a few of its 16 KiB chunks through (the upload takes about 8 s)
  ip -n "$NS-coord" link set vc down
  cut_at=$SECONDS
  echo "scenario 2: hospital-c's link cut during its upload of round 1"
  pass
else
  fail "link cut: hospital-c's upload of round 1 never started"; dump_logs
fi
if wait_for_log "$RUN/logs/coordinator.log" "round=1 stage=commit" 90; then
  echo "scenario 2: round 1 committed $((SECONDS - cut_at)) s after the cut"
fi
in_ns hospital-c tc qdisc del dev eth0 root 2>/dev/null || true
ip -n "$NS-coord" link set vc up
back_at=$SECONDS
code=0; wait_coordinator 120 || code=$?
echo "scenario 2: round 2 committed $((SECONDS - back_at)) s after the link came back"
[ "$code" -eq 0 ] || dump_logs
check "link cut: the federation finishes" test "$code" -eq 0
check "link cut: the coordinator read only part of hospital-c's upload" "$PY" - \
  "$RUN/logs/coordinator.log" <<'PY'
import re, sys
log = open(sys.argv[1]).read()
cut = re.search(r"site=hospital-c round=1 stage=upload refused after (\d+) bytes: (.*)", log)
assert cut, "no refused upload of hospital-c in round 1"
full = int(re.search(r"round=1 stage=upload accepted bytes=(\d+)", log).group(1))
print(f"hospital-c's upload: {cut.group(1)} of {full} bytes read when the link died ({cut.group(2)})")
assert 0 <= int(cut.group(1)) < full
PY
check "link cut: round 1 unmasked the sum of the other two" \
  grep -q "round=1 stage=secagg unmasked the sum of 2 sites" "$RUN/logs/coordinator.log"
rounds_json
check "link cut: hospital-c is a dropout of round 1, which commits with the other two and their \
weight only; it is back in round 2; the checkpoints are finite" "$PY" - "$RUN/rounds.json" \
  "$RUN/logs/coordinator.log" "$RUN/state/checkpoints" <<'PY'
import json, re, sys, torch
rounds, log, checkpoints = json.load(open(sys.argv[1])), open(sys.argv[2]).read(), sys.argv[3]
examples = {m[0]: int(m[1]) for m in re.findall(r"site=(\S+) stage=session connected .*train_examples=(\d+)", log)}
assert [r["round"] for r in rounds] == [1, 2], rounds
assert all(r["status"] == "committed" for r in rounds), rounds
r1, r2 = rounds
assert sorted(r1["participants"]) == ["hospital-a", "hospital-b"], r1
assert r1["dropped"] == ["hospital-c"] and r1["drop_reasons"]["hospital-c"], r1
# The aggregate's weight is exactly the survivors' examples: nothing of hospital-c in it.
assert r1["examples"] == examples["hospital-a"] + examples["hospital-b"], (r1, examples)
assert sorted(r2["participants"]) == ["hospital-a", "hospital-b", "hospital-c"], r2
assert r2["examples"] == sum(examples.values()), (r2, examples)
for r in rounds:
    state = torch.load(f"{checkpoints}/round-{r['round']:06d}.pt")
    assert state["fc0.weight"].shape == (2048, 30), state["fc0.weight"].shape
    assert all(torch.isfinite(t).all() for t in state.values())
print("round 1 dropped hospital-c:", r1["drop_reasons"]["hospital-c"])
PY
stop_run
CUT=$RUN
# The reference: one round, hospital-c killed (SIGKILL) just before its masked upload.
prepare_cut_run cut-reference 1
start_coordinator
start_site hospital-a; start_site hospital-b
ip netns exec "$NS-hospital-c" "$BIN/cohort-client" --config "$RUN/hospital-c.yaml" \
  --fault-kill-at masked >"$RUN/logs/hospital-c.log" 2>&1 &
PIDS+=("$!")
disown "$!"  # its SIGKILL is expected: no "Killed" notice from bash
code=0; wait_coordinator 120 || code=$?
[ "$code" -eq 0 ] || dump_logs
check "link cut: the reference run (hospital-c killed before its upload) finishes" test "$code" -eq 0
check "link cut: the aggregate equals the reference's bit for bit" \
  cmp "$CUT/state/checkpoints/round-000001.pt" "$RUN/state/checkpoints/round-000001.pt"
stop_run
fi

# --- 3. keepalives: idle sessions survive, a dead peer is noticed -------------------------------
if wanted 3; then
prepare_run keepalive 100000
start_coordinator
for site in "${SITES[@]}"; do start_site "$site"; done
wait_for_log "$RUN/logs/coordinator.log" "round=1 stage=commit" 90 || fail "keepalive: round 1 never committed"
in_ns coord "$BIN/cohortctl" pause "${ADMIN[@]}" --reason "keepalive test" >/dev/null
paused=0
for _ in $(seq 1 300); do
  in_ns coord "$BIN/cohortctl" status "${ADMIN[@]}" --json >"$RUN/status.json"
  if "$PY" -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["stage"] == "paused" else 1)' \
      "$RUN/status.json"; then paused=1; break; fi
  sleep 0.2
done
check "keepalive: the federation is paused" test "$paused" -eq 1
sessions_before=$(grep -c "stage=session connected" "$RUN/logs/coordinator.log")
sleep 25  # idle: more than two keepalive periods (10 s) at both ends
in_ns coord "$BIN/cohortctl" status "${ADMIN[@]}" --json >"$RUN/status-idle.json"
check "keepalive: after 25 s idle all three sessions are still connected" "$PY" - \
  "$RUN/status-idle.json" <<'PY'
import json, sys
status = json.load(open(sys.argv[1]))
assert status["stage"] == "paused", status["stage"]
connected = sorted(s["site_id"] for s in status["sites"] if s.get("connected"))
assert connected == ["hospital-a", "hospital-b", "hospital-c"], status["sites"]
PY
check "keepalive: no session ended or was reopened while idle" test \
  "$(grep -c "stage=session disconnected" "$RUN/logs/coordinator.log" || true)-$(grep -c "stage=session connected" "$RUN/logs/coordinator.log")" \
  = "0-$sessions_before"
check "keepalive: no GOAWAY for too many pings" \
  bash -c "! grep -qi 'too_many_pings\|too many pings' '$RUN'/logs/*.log"
# The link dies silently: carrier down on the coordinator's side, no FIN, no RST.
ip -n "$NS-coord" link set vc down
cut=$(date +%s.%N)
BOUND=20  # keepalive time 10 s + timeout 5 s + 5 s slack
noticed=""
if wait_for_log "$RUN/logs/coordinator.log" "site=hospital-c stage=session disconnected" $((3 * BOUND)); then
  noticed=$("$PY" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$cut" "$(date +%s.%N)")
fi
echo "scenario 3: the coordinator noticed the dead link after ${noticed:-never} s (keepalive bound $BOUND s)"
check "keepalive: the coordinator ends hospital-c's session within 3 x $BOUND s of the cut" \
  test -n "$noticed"
check "keepalive: the other sessions stay" bash -c \
  "! grep -q 'site=hospital-[ab] stage=session disconnected' '$RUN/logs/coordinator.log'"
stop_run
fi

left=0
for ns in coord "${SITES[@]}"; do left=$((left + $(ip netns pids "$NS-$ns" | wc -l))); done
check "no process left in the test's namespaces" test "$left" -eq 0

finish
