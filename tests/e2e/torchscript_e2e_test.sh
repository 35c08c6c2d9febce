#!/usr/bin/env bash
# TorchScript models: Python (python3-torch) scripts and saves an MLP for the German credit
# data; the coordinator (model: {torchscript: ...}) reads its parameters through
# cohort-evaluator and distributes them; bank-a, bank-b and bank-c run their own copies of the
# file and train it (secure aggregation on); bank-d runs a module of another architecture and
# is refused at join time with both fingerprints and the first differing tensor, and stops.
# The coordinator's server-side evaluation runs the module too, and Python's torch.load of the
# final checkpoint, loaded into the module, matches the recorded accuracy, loss and AUC to
# 1e-4.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$ROOT/scripts/federation_lib.sh"

FED=$WORK/fed
mkdir -p "$FED/state" "$FED/logs"
# torch.jit.script reads the class's source, so the script is a file.
cat >"$WORK/make_modules.py" <<'PY'
import sys, torch

class CreditNet(torch.nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.hidden = torch.nn.Linear(63, hidden)
        self.out = torch.nn.Linear(hidden, 2)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))

torch.manual_seed(5)
torch.jit.script(CreditNet(16)).save(sys.argv[1] + "/credit-net.pt")
torch.jit.script(CreditNet(8)).save(sys.argv[1] + "/credit-net-small.pt")
PY
"$PY" "$WORK/make_modules.py" "$FED"
check "Python saved the TorchScript modules" test -s "$FED/credit-net.pt"

fed_pki "$FED/pki" bank bank-a bank-b bank-c bank-d
fed_data_bank "$FED/data" >/dev/null
cp "$FED/data/bank-c.csv" "$FED/data/bank-d.csv"
PORT=$(free_port)
sed -e "s/127.0.0.1:50071/127.0.0.1:$PORT/" \
  -e 's/^model: .*/model: {torchscript: credit-net.pt}/' \
  -e 's/count: 15/count: 3/' -e 's/^sites: .*/sites: [bank-a, bank-b, bank-c, bank-d]/' \
  -e 's/select_timeout: 30s/select_timeout: 2s/' \
  -e 's/^http: .*/http: {listen: 127.0.0.1:0}/' \
  "$ROOT/configs/bank/coordinator.yaml" >"$FED/coordinator.yaml"
for site in bank-a bank-b bank-c; do
  { sed "s/127.0.0.1:50071/127.0.0.1:$PORT/" "$ROOT/configs/bank/$site.yaml"
    echo "model: {torchscript: credit-net.pt}"; } >"$FED/$site.yaml"
done
{ sed -e "s/127.0.0.1:50071/127.0.0.1:$PORT/" -e 's/bank-c/bank-d/g' \
    "$ROOT/configs/bank/bank-c.yaml"
  echo "model: {torchscript: credit-net-small.pt}"; } >"$FED/bank-d.yaml"

"$BIN/cohort-coordinator" --config "$FED/coordinator.yaml" >"$FED/logs/coordinator.log" 2>&1 &
COORD=$!
for _ in $(seq 1 300); do
  grep -q "listening on port" "$FED/logs/coordinator.log" 2>/dev/null && break
  kill -0 "$COORD" 2>/dev/null || break
  sleep 0.1
done
cat "$FED/logs/coordinator.log"
check "the coordinator read the module's parameters through cohort-evaluator" \
  grep -q "model torchscript .*credit-net.pt: 4 parameter tensors, 1058 values" \
  "$FED/logs/coordinator.log"
for site in bank-a bank-b bank-c bank-d; do
  "$BIN/cohort-client" --config "$FED/$site.yaml" >"$FED/logs/$site.log" 2>&1 &
  eval "PID_${site//-/_}=$!"
done
set +e
wait "$PID_bank_d"; code_d=$?
wait "$COORD"; code_coord=$?
wait "$PID_bank_a"; code_a=$?
wait "$PID_bank_b"; code_b=$?
wait "$PID_bank_c"; code_c=$?
set -e
check "bank-d, with another architecture, stops with an error" test "$code_d" -ne 0
check "bank-d's log names the mismatch: both fingerprints and the first differing tensor" \
  grep -q "refused this site: architecture mismatch: the site's TorchScript model (fingerprint [0-9a-f]\{16\}, 4 parameter tensors) differs from the federation's (fingerprint [0-9a-f]\{16\}, 4); first difference at parameter 0: the site has 'hidden.weight' \[8,63\], the federation 'hidden.weight' \[16,63\]" \
  "$FED/logs/bank-d.log"
check "the coordinator logged the refusal" \
  grep -q "site=bank-d stage=session refused: architecture mismatch" "$FED/logs/coordinator.log"
check "the coordinator and bank-a, bank-b, bank-c exit 0" \
  test "$code_coord$code_a$code_b$code_c" = "0000"

"$BIN/cohortctl" rounds --state-dir "$FED/state" --json >"$WORK/rounds.json"
check "3 rounds committed by bank-a, bank-b and bank-c under secure aggregation, each server-evaluated" \
  "$PY" - "$WORK/rounds.json" <<'PY'
import json, sys
rounds = json.load(open(sys.argv[1]))
assert len(rounds) == 3, rounds
for r in rounds:
    assert sorted(r["participants"]) == ["bank-a", "bank-b", "bank-c"], r
    assert r["server_evaluation"] is not None and r["server_evaluation"]["examples"] == 200, r
print("server accuracy by round", [r["server_evaluation"]["accuracy"] for r in rounds])
print("server loss by round", [r["server_evaluation"]["loss"] for r in rounds])
assert rounds[-1]["server_evaluation"]["loss"] < rounds[0]["server_evaluation"]["loss"], rounds
PY
check "the rounds used secure aggregation" \
  grep -q "stage=configure .*secure_aggregation=k=" "$FED/logs/coordinator.log"

check "the checkpoint loads into the Python module and matches the server evaluation to 1e-4" \
  python_matches_server_evaluation "$WORK/rounds.json" "$FED/state" "$FED/data/test.csv" \
  bad_credit "$FED/credit-net.pt"
check "no process left running" no_process_matching "$FED/"
finish
