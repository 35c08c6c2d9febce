#!/usr/bin/env bash
# deploy/kubernetes/base: the coordinator's kustomize manifests parse, are valid Kubernetes
# objects, hold the security properties docs/operations.md promises, fit together (ports,
# selectors, volumes, the config's paths), and their embedded coordinator YAML is accepted by
# `cohort-coordinator --check-config`.
#
# The work is in deploy_kubernetes_check.py (see its docstring). Offline schema validation:
# Debian 12 packages no kubeconform, kubeval or standalone kustomize, and Debian's kubectl
# (kubernetes-client 1.20) validates only against a live API server; the checker validates
# every field against the Kubernetes API models of Debian's python3-kubernetes instead. When
# a kubectl is installed (not by setup.sh: Debian's conflicts with other kubectl packages),
# `kubectl kustomize` renders the base too and must produce exactly the listed objects.
# Every check is shown to fail on a broken copy of the manifests.
source "$(dirname "$0")/lib.sh"

BASE=$ROOT/deploy/kubernetes/base
CHECK=$ROOT/tests/e2e/deploy_kubernetes_check.py
"$PY" -c 'import yaml, kubernetes.client' 2>/dev/null ||
  { echo "FAIL: python3-yaml and python3-kubernetes are needed (scripts/setup.sh installs them)"; exit 1; }

# --- the base as it is ---------------------------------------------------------------------
RENDERED=()
if command -v kubectl >/dev/null && kubectl kustomize "$BASE" >"$WORK/rendered.yaml" 2>"$WORK/kustomize.err"; then
  RENDERED=("$WORK/rendered.yaml")
  echo "kubectl kustomize: $(grep -c '^kind:' "$WORK/rendered.yaml") objects rendered"
elif command -v kubectl >/dev/null; then
  fail "kubectl kustomize $BASE: $(cat "$WORK/kustomize.err")"
else
  echo "no kubectl: rendering with kustomize skipped (the checker reads the listed manifests)"
fi
if "$PY" "$CHECK" "$BASE" "$WORK/out" "${RENDERED[@]}"; then pass; else fail "deploy_kubernetes_check.py on $BASE"; fi

# --- the ConfigMap's coordinator YAML passes --check-config ----------------------------------
# The container paths (TLS Secret mount, state volume) are mapped onto a temporary directory
# with a CA and coordinator certificate made by cohortctl.
if [ -f "$WORK/out/paths.env" ]; then
  # shellcheck disable=SC1091
  source "$WORK/out/paths.env"
  "$BIN/cohortctl" pki init-ca --dir "$WORK/pki" --federation example >/dev/null
  "$BIN/cohortctl" pki issue --dir "$WORK/pki" --federation example --coordinator \
    --name cohort-coordinator >/dev/null
  mkdir -p "$WORK/tls" "$WORK/state"
  cp "$WORK/pki/ca.pem" "$WORK/tls/${TLS_CA##*/}"
  cp "$WORK/pki/coordinator.pem" "$WORK/tls/${TLS_CERT##*/}"
  # The key gets the mode the pod sees (the Secret's defaultMode, plus group read that the
  # kubelet adds for fsGroup): a loader that demands 0600 would refuse it in the cluster.
  install -m "$TLS_MODE" "$WORK/pki/coordinator.key" "$WORK/tls/${TLS_KEY##*/}"
  sed -e "s#$TLS_MOUNT/#$WORK/tls/#g" -e "s#^state_dir: $STATE_DIR\$#state_dir: $WORK/state#" \
    "$WORK/out/coordinator.yaml" >"$WORK/coordinator.yaml"
  check "the ConfigMap's TLS and state paths were mapped" \
    test "$(grep -c -e "$WORK/tls/" -e "state_dir: $WORK/state" "$WORK/coordinator.yaml")" -eq 2
  if out=$("$BIN/cohort-coordinator" --config "$WORK/coordinator.yaml" --check-config 2>&1); then
    pass; echo "$out"
  else
    fail "cohort-coordinator --check-config on the ConfigMap's YAML (key mode $TLS_MODE, as mounted from the Secret): $out"
  fi
else
  fail "the checker wrote no paths.env"
fi

# --- every kind of check can fail -------------------------------------------------------------
# mutate NAME FILE SED-EXPRESSION EXPECTED-MESSAGE: a copy of the base with FILE edited must be
# refused by the checker with a message containing EXPECTED-MESSAGE.
mutate() {
  local name=$1 file=$2 expr=$3 expected=$4 dir=$WORK/mutants/$1
  mkdir -p "$WORK/mutants"
  cp -r "$BASE" "$dir"
  sed -i -e "$expr" "$dir/$file"
  if cmp -s "$BASE/$file" "$dir/$file"; then
    fail "mutant $name: the edit '$expr' changed nothing in $file"
    return
  fi
  if "$PY" "$CHECK" "$dir" "$dir.out" >"$dir.log" 2>&1; then
    fail "mutant $name: the checker accepted it"
  elif ! grep -q -- "$expected" "$dir.log"; then
    fail "mutant $name: refused, but without '$expected': $(cat "$dir.log")"
  else
    pass
  fi
}
mutate unknown-field statefulset.yaml 's/periodSeconds: 20/periodSecond: 20/' "unknown field for V1Probe"
mutate wrong-type statefulset.yaml 's/failureThreshold: 60 /failureThreshold: "60" /' "expected int, got str"
mutate missing-required statefulset.yaml 's/^        - name: coordinator$/        - stdin: false/' "must not be \`None\`"
mutate not-a-kind poddisruptionbudget.yaml 's/^kind: PodDisruptionBudget/kind: PodDisruptionBudge/' "not a Kubernetes 1.22 API type"
mutate writable-root statefulset.yaml 's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/' "readOnlyRootFilesystem must be true"
mutate root-user statefulset.yaml '0,/runAsNonRoot: true/s//runAsNonRoot: false/' "runAsNonRoot must be true"
mutate escalation statefulset.yaml 's/allowPrivilegeEscalation: false/allowPrivilegeEscalation: true/' "allowPrivilegeEscalation must be false"
mutate capabilities statefulset.yaml 's/drop: \["ALL"\]/drop: ["NET_RAW"]/' "capabilities must drop ALL"
mutate seccomp statefulset.yaml 's/type: RuntimeDefault/type: Unconfined/' "seccompProfile must be RuntimeDefault"
mutate no-probe statefulset.yaml '/^          readinessProbe:/,/^          # Memory/{/^          # Memory/!d}' "no readinessProbe"
mutate no-limits statefulset.yaml '/^            limits:/,/^              memory: 2Gi/d' "resources.limits.cpu missing"
mutate probe-port statefulset.yaml '/livenessProbe:/,/port:/s/port: 50052/port: 50053/' "must be the health container port"
mutate tcp-probe statefulset.yaml '/readinessProbe:/,/service:/{s/grpc:/tcpSocket:/;/service:/d}' "readinessProbe must be a grpc probe"
mutate state-not-persistent configmap.yaml 's#state_dir: /var/lib/cohort#state_dir: /tmp/state#' "is not the persistent volume's mount"
mutate tls-path configmap.yaml 's#/etc/cohort/tls/tls.key#/etc/cohort/tls/coordinator.key#' "tls.key /etc/cohort/tls/coordinator.key is not a key of the Secret"
mutate secret-mode statefulset.yaml 's/defaultMode: 0440/defaultMode: 0444/' "is world-accessible"
mutate open-ingress networkpolicy.yaml 's/- port: 50051/- port: 9090/' "admit only the gRPC port and the HTTP port"
mutate open-http networkpolicy.yaml '/- from:/,/kubernetes.io\/metadata.name: monitoring/d; s/^      ports:$/    - ports:/' "only from a namespace or pod selector"
mutate service-selector service.yaml '0,/app.kubernetes.io\/name: cohort-coordinator$/!{0,/    app.kubernetes.io\/name: cohort-coordinator$/s//    app.kubernetes.io\/name: other/}' "selector does not match the pod"
mutate pdb-selector poddisruptionbudget.yaml '$s/cohort-coordinator/cohort-other/' "selector does not select the coordinator"
mutate unlisted kustomization.yaml '/networkpolicy.yaml/d' "manifests on disk"

finish
