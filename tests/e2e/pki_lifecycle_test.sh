#!/usr/bin/env bash
# The certificate lifecycle as operators run it, with the real binaries: a site requests a
# certificate (its key never leaves its directory), the CA signs it, refuses requests for
# another identity or with weak keys, revokes a site (the running coordinator refuses it at
# its next handshake, also after SIGHUP), the site recovers with a rotated key, and the
# errors people hit (key permissions, host name mismatch, wrong CA) name their cause.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CTL=$BIN/cohortctl
CA=$WORK/ca           # the CA's machine
COORD=$WORK/coord     # the coordinator's host
SITE=$WORK/hospital-a # hospital-a's host
mkdir -p "$COORD" "$SITE"

"$CTL" pki init-ca --dir "$CA" --federation demo >/dev/null
"$CTL" pki issue --dir "$CA" --federation demo --coordinator --out "$COORD" >/dev/null
cp "$CA/ca.pem" "$COORD/ca.pem"

# --- Join a site: request at the site, signature at the CA ------------------------------------
out=$("$CTL" pki csr --dir "$SITE" --federation demo --site hospital-a)
check "csr says the key stays at the site" grep -q "never send it" <<<"$out"
check "csr writes the key with mode 0600" test "$(stat -c %a "$SITE/hospital-a.key")" = 600
check "csr writes a PEM certificate request" grep -q "BEGIN CERTIFICATE REQUEST" "$SITE/hospital-a.csr"
check "openssl verifies the request's signature" openssl req -in "$SITE/hospital-a.csr" -noout -verify 2>/dev/null
# Only the CSR travels to the CA.
cp "$SITE/hospital-a.csr" "$CA/incoming.csr"
out=$("$CTL" pki sign --dir "$CA" --csr "$CA/incoming.csr" --federation demo --site hospital-a)
check "sign reports the identity and key type" grep -q "CN=hospital-a \[URI:spiffe://demo/site/hospital-a\] for a EC P-256 key" <<<"$out"
check "the CA never held the site's key" test ! -e "$CA/hospital-a.key"
cp "$CA/hospital-a.pem" "$CA/ca.pem" "$SITE/"
check "the signed certificate matches the site's key" \
  test "$(openssl x509 -in "$SITE/hospital-a.pem" -noout -pubkey)" = "$(openssl pkey -in "$SITE/hospital-a.key" -pubout)"
check "the certificate carries clientAuth only" \
  grep -q "TLS Web Client Authentication$" <(openssl x509 -in "$SITE/hospital-a.pem" -noout -ext extendedKeyUsage)
out=$("$CTL" pki inspect "$SITE/hospital-a.pem" --ca "$SITE/ca.pem" --federation demo)
check "inspect accepts the signed certificate" grep -q "verdict:       ACCEPTED" <<<"$out"

# --- The CA refuses what it must not sign ------------------------------------------------------
set +e
"$CTL" pki sign --dir "$CA" --csr "$CA/incoming.csr" --federation demo --site hospital-b \
  >/dev/null 2>"$WORK/err"; code=$?
set -e
check "a request for another site is refused (exit 1)" test "$code" -eq 1
check "the refusal says what was asked and what --site grants" \
  grep -q "asks for CN=hospital-a, URI:spiffe://demo/site/hospital-a, but --site hospital-b grants CN=hospital-b" "$WORK/err"
openssl req -new -newkey rsa:1024 -nodes -keyout "$WORK/weak.key" -subj /CN=hospital-c \
  -out "$WORK/weak.csr" 2>/dev/null
set +e
"$CTL" pki sign --dir "$CA" --csr "$WORK/weak.csr" --federation demo --site hospital-c \
  >/dev/null 2>"$WORK/err"; code=$?
set -e
check "an RSA 1024 request is refused" test "$code" -eq 1
check "the weak key is named" grep -q "RSA 1024 bits; RSA keys need at least 2048" "$WORK/err"
openssl req -new -newkey rsa:2048 -nodes -keyout "$WORK/rsa.key" -subj /CN=hospital-c \
  -addext subjectAltName=URI:spiffe://demo/site/hospital-c -out "$WORK/rsa.csr" 2>/dev/null
check "an RSA 2048 request made by openssl is signed" \
  "$CTL" pki sign --dir "$CA" --csr "$WORK/rsa.csr" --federation demo --site hospital-c --out "$WORK/rsa-out" >/dev/null
# Change one base64 character in the middle of the request: the signature no longer verifies
# (or the request no longer parses); either way it is refused.
awk 'NR==4 { c = substr($0, 20, 1); r = (c == "A") ? "B" : "A"; $0 = substr($0, 1, 19) r substr($0, 21) } { print }' \
  "$SITE/hospital-a.csr" >"$WORK/tampered.csr"
set +e
"$CTL" pki sign --dir "$CA" --csr "$WORK/tampered.csr" --federation demo --site hospital-a \
  >/dev/null 2>"$WORK/err"; code=$?
set -e
check "a tampered request is refused" test "$code" -eq 1
check "the tampered request's refusal names it" grep -q "refusing .*tampered.csr" "$WORK/err"
set +e
"$CTL" pki csr --dir "$SITE" --federation demo --site hospital-a >/dev/null 2>"$WORK/err"; code=$?
set -e
check "csr does not overwrite the key in use" test "$code" -eq 1
check "csr suggests --reuse-key or --rotate" grep -q -- "--rotate" "$WORK/err"

# The coordinator's certificate can come from a request too; the CA decides its names.
"$CTL" pki csr --dir "$WORK/coord-req" --federation demo --coordinator --name coord.example.org \
  --ip 127.0.0.1 >/dev/null
out=$("$CTL" pki inspect "$WORK/coord-req/coordinator.csr")
check "a coordinator request asks for its DNS and IP names" \
  grep -qE "DNS names: +coord.example.org" <<<"$out"
"$CTL" pki sign --dir "$CA" --csr "$WORK/coord-req/coordinator.csr" --federation demo --coordinator \
  --name localhost --ip 127.0.0.1 --out "$WORK/coord-req" >/dev/null 2>"$WORK/err"
check "sign warns when the names granted differ from the request's" \
  grep -q "asks for DNS:coord.example.org, IP:127.0.0.1; the certificate names DNS:localhost, IP:127.0.0.1" "$WORK/err"
check "the signed coordinator certificate has serverAuth and clientAuth" \
  grep -q "TLS Web Server Authentication, TLS Web Client Authentication" \
  <(openssl x509 -in "$WORK/coord-req/coordinator.pem" -noout -ext extendedKeyUsage)
set +e
"$CTL" pki sign --dir "$CA" --csr "$SITE/hospital-a.csr" --federation demo --coordinator \
  >/dev/null 2>"$WORK/err"; code=$?
set -e
check "a site's request is not signed as the coordinator" test "$code" -eq 1
check "the refusal says why" grep -q "a site identity cannot be signed as the coordinator" "$WORK/err"

# --- The coordinator with a CRL ---------------------------------------------------------------
"$CTL" pki crl --dir "$CA" >/dev/null
cp "$CA/crl.pem" "$COORD/crl.pem"
PORT=$(free_port)
cat >"$COORD/coordinator.yaml" <<YAML
federation: demo
listen: 127.0.0.1:$PORT
tls: {ca: ca.pem, cert: coordinator.pem, key: coordinator.key, crl: crl.pem}
sites: [hospital-a, hospital-b, hospital-c]
state_dir: state
model: {arch: logreg, inputs: 30, classes: 2}
rounds: {count: 5, min_clients: 3, select_timeout: 600s}
YAML
chmod 644 "$COORD/coordinator.key"
set +e
out=$("$BIN/cohort-coordinator" --config "$COORD/coordinator.yaml" --check-config 2>&1); code=$?
set -e
check "a world-readable key is refused at config load (exit 2)" test "$code" -eq 2
check "the key permission error says what to run" \
  grep -q "tls.key: permissions 0644 are too open; chmod 600" <<<"$out"
chmod 600 "$COORD/coordinator.key"

"$CTL" data split --input "$ROOT/data/wdbc.csv" --label malignant --sites 3 --scheme iid \
  --seed 7 --out "$WORK/data" --names hospital-a,hospital-b,hospital-c >/dev/null
site_config() {  # site_config SITE DIR [extra yaml line]
  cat >"$2/client.yaml" <<YAML
site: $1
coordinator: 127.0.0.1:$PORT
tls: {ca: ca.pem, cert: $1.pem, key: $1.key}
data: {path: $WORK/data/$1.csv, label: malignant}
reconnect: {initial_backoff: 100ms, max_backoff: 500ms}
${3:-}
YAML
}
site_config hospital-a "$SITE"

wait_for() {  # wait_for FILE PATTERN [seconds]
  for _ in $(seq 1 $((${3:-20} * 10))); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
"$BIN/cohort-coordinator" --config "$COORD/coordinator.yaml" >"$WORK/coordinator.log" 2>&1 &
COORD_PID=$!
check "the coordinator starts with the CRL" wait_for "$WORK/coordinator.log" "listening on port"
check "the coordinator loaded CRL number 1" grep -q "loaded CRL .*number 1: 0 revoked" "$WORK/coordinator.log"

"$BIN/cohort-client" --config "$SITE/client.yaml" >"$WORK/site-a.log" 2>&1 &
CLIENT_PID=$!
check "the signed site connects" wait_for "$WORK/site-a.log" "session open"
kill "$CLIENT_PID"; wait "$CLIENT_PID" 2>/dev/null || true

# --- Revoke the site ---------------------------------------------------------------------------
out=$("$CTL" pki revoke --dir "$CA" --cert "$SITE/hospital-a.pem" --reason keyCompromise)
check "revoke reports the serial and writes CRL number 2" grep -q "Wrote CRL number 2 with 1 revoked" <<<"$out"
check "the index lists the revoked serial" \
  grep -q "$(openssl x509 -in "$SITE/hospital-a.pem" -noout -serial | cut -d= -f2 | sed 's/^0*//')" "$CA/revoked.txt"
check "openssl finds the site revoked in crl.pem" \
  grep -q "certificate revoked" <(openssl verify -crl_check -CAfile "$CA/ca.pem" -CRLfile "$CA/crl.pem" "$SITE/hospital-a.pem" 2>&1)
set +e
out=$("$CTL" pki inspect "$SITE/hospital-a.pem" --ca "$CA/ca.pem" --crl "$CA/crl.pem"); code=$?
set -e
check "inspect with the CRL exits 1" test "$code" -eq 1
check "inspect says when and why it was revoked" grep -q "revoked at .* (reason: keyCompromise)" <<<"$out"
cp "$CA/crl.pem" "$COORD/crl.new" && mv "$COORD/crl.new" "$COORD/crl.pem"

"$BIN/cohort-client" --config "$SITE/client.yaml" >"$WORK/site-a-revoked.log" 2>&1 &
CLIENT_PID=$!
check "the coordinator refuses the revoked site at its next handshake and says why" \
  wait_for "$WORK/coordinator.log" "refused a TLS handshake: client certificate CN=hospital-a .* is revoked at .*keyCompromise"
check "the revoked site gets no session" bash -c "! grep -q 'session open' '$WORK/site-a-revoked.log'"
kill "$CLIENT_PID"; wait "$CLIENT_PID" 2>/dev/null || true

# SIGHUP re-reads the CRL at once; the coordinator keeps running.
kill -HUP "$COORD_PID"
check "SIGHUP re-reads the CRL" wait_for "$WORK/coordinator.log" "received SIGHUP"
check "the CRL is reloaded after SIGHUP" \
  wait_for "$WORK/coordinator.log" "loaded CRL .*number 2: 1 revoked.*" 5
check "the coordinator survives SIGHUP" kill -0 "$COORD_PID"
check "the CRL was loaded twice with number 2 (file change, then SIGHUP)" \
  test "$(grep -c 'loaded CRL .*number 2' "$WORK/coordinator.log")" -ge 2

# --- Rotate: a new key and certificate for the site ---------------------------------------------
"$CTL" pki csr --dir "$SITE" --federation demo --site hospital-a --rotate >/dev/null
check "--rotate leaves the key in use alone and writes hospital-a.next.key" test -e "$SITE/hospital-a.next.key"
"$CTL" pki sign --dir "$CA" --csr "$SITE/hospital-a.csr" --federation demo --site hospital-a \
  --out "$WORK/signed" >/dev/null
mv "$SITE/hospital-a.next.key" "$SITE/hospital-a.key"
mv "$WORK/signed/hospital-a.pem" "$SITE/hospital-a.pem"
"$BIN/cohort-client" --config "$SITE/client.yaml" >"$WORK/site-a-rotated.log" 2>&1 &
CLIENT_PID=$!
check "the site is back with its rotated certificate" wait_for "$WORK/site-a-rotated.log" "session open"
kill "$CLIENT_PID"; wait "$CLIENT_PID" 2>/dev/null || true

# --- Errors a site hits ------------------------------------------------------------------------
# The coordinator's certificate does not name the host the site expects.
site_config hospital-a "$SITE" "server_name: coord.example.org"
"$BIN/cohort-client" --config "$SITE/client.yaml" >"$WORK/site-a-name.log" 2>&1 &
CLIENT_PID=$!
check "a host name mismatch names the expected and the presented names" \
  wait_for "$WORK/site-a-name.log" "it is for DNS:localhost, IP:127.0.0.1, not for 'coord.example.org'"
kill "$CLIENT_PID"; wait "$CLIENT_PID" 2>/dev/null || true

# A site whose certificate another CA issued.
OTHER=$WORK/other-ca
SITE_B=$WORK/hospital-b
"$CTL" pki init-ca --dir "$OTHER" --federation elsewhere >/dev/null
"$CTL" pki issue --dir "$OTHER" --federation demo --site hospital-b --out "$SITE_B" >/dev/null 2>&1
cp "$CA/ca.pem" "$SITE_B/ca.pem"
site_config hospital-b "$SITE_B"
"$BIN/cohort-client" --config "$SITE_B/client.yaml" >"$WORK/site-b.log" 2>&1 &
CLIENT_PID=$!
check "the coordinator names a certificate from another CA" \
  wait_for "$WORK/coordinator.log" "client certificate CN=hospital-b .* refused: issued by another CA: its issuer is CN=elsewhere CA, and the federation CA is CN=demo CA"
check "the site itself explains its refused certificate" \
  wait_for "$WORK/site-b.log" "this site's certificate .*hospital-b.pem: issued by another CA"
kill "$CLIENT_PID"; wait "$CLIENT_PID" 2>/dev/null || true

set +e
out=$("$CTL" pki inspect "$SITE_B/hospital-b.pem" --ca "$CA/ca.pem" --federation other); code=$?
set -e
check "inspect of a foreign certificate exits 1" test "$code" -eq 1
check "inspect names the other CA" \
  grep -q "issued by another CA: its issuer is CN=elsewhere CA, and the federation CA is CN=demo CA" <<<"$out"
check "inspect names the other federation" \
  grep -q "belongs to another federation: it names spiffe://demo/site/hospital-b" <<<"$out"
kill "$COORD_PID"; wait "$COORD_PID" 2>/dev/null || true

# A coordinator key that does not belong to its certificate stops the start with the reason.
cp "$SITE/hospital-a.key" "$COORD/other.key"
sed 's#key: coordinator.key#key: other.key#' "$COORD/coordinator.yaml" >"$COORD/mismatch.yaml"
set +e
"$BIN/cohort-coordinator" --config "$COORD/mismatch.yaml" >"$WORK/mismatch.log" 2>&1; code=$?
set -e
check "a key that does not match the certificate stops the coordinator (exit 1)" test "$code" -eq 1
check "the mismatch names both files" \
  grep -q "tls.key .*other.key does not match tls.cert .*coordinator.pem" "$WORK/mismatch.log"
finish
