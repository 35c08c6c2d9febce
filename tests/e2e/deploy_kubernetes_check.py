#!/usr/bin/python3
"""Checks deploy/kubernetes/base (used by deploy_kubernetes_test.sh).

    deploy_kubernetes_check.py BASE_DIR OUT_DIR [RENDERED_YAML]

- the kustomization lists every manifest in BASE_DIR and only those; every document parses and
  has apiVersion, kind, metadata.name and the app.kubernetes.io/name label;
- schema: each object is checked field by field against the Kubernetes API models of Debian's
  python3-kubernetes (22.6, API 1.22): an unknown or misspelt field, a wrong type (string
  for an integer, a mapping for a list...), or a missing required field is an error. No
  offline validator (kubeconform, kubeval) is packaged for Debian 12, and Debian's kubectl
  (kubernetes-client 1.20) validates only against a live API server; these generated models
  are the Kubernetes OpenAPI schema available offline. Fields newer than API 1.22 are
  reported as unknown, except the one the manifests use, Probe.grpc (GRPCAction: beta in
  1.24, GA in 1.27), whose schema (port: int32, required; service: string) is added below;
- RENDERED_YAML (the output of `kubectl kustomize BASE_DIR`, when a kubectl is installed):
  holds exactly the objects of the listed manifests;
- security and wiring: pod and container securityContext (runAsNonRoot, readOnlyRootFilesystem,
  allowPrivilegeEscalation false, capabilities drop ALL, seccompProfile RuntimeDefault), probes,
  resource requests and limits, a PersistentVolumeClaim template mounted at state_dir, volumes
  naming the ConfigMap and Secret of the base, Service and NetworkPolicy ports and selectors
  matching the pod, a NetworkPolicy admitting only the gRPC port and, from a selected namespace, the HTTP port, a PodDisruptionBudget;
- writes OUT_DIR/coordinator.yaml (the ConfigMap's coordinator YAML) and OUT_DIR/paths.env
  (the container paths of the config, TLS files and state directory, for the shell test to map
  onto temporary files before `cohort-coordinator --check-config`).
Exit 1 with one line per problem.
"""
import json
import pathlib
import re
import sys

import yaml
import kubernetes.client as k8s
from kubernetes.client import ApiClient

errors = []


def err(where, what):
    errors.append(f"{where}: {what}")


# --- schema: strict walk over the generated API models -----------------------------------------
PRIMITIVES = {"str": str, "int": int, "float": (int, float), "bool": bool}

# Newer than the 1.22 models: field -> type, and type -> (fields, required fields).
EXTRA_FIELDS = {"V1Probe": {"grpc": "GRPCAction"}}
EXTRA_MODELS = {"GRPCAction": ({"port": "int", "service": "str"}, {"port"})}


def check_type(value, type_name, where):
    if value is None:
        return
    if type_name in ("object",):                      # IntOrString, RawExtension, ...
        if not isinstance(value, (str, int, dict, list)):
            err(where, f"unexpected {type(value).__name__}")
        return
    if type_name in ("datetime", "date"):
        if not isinstance(value, str):
            err(where, f"expected a timestamp string, got {type(value).__name__}")
        return
    if type_name in PRIMITIVES:
        expected = PRIMITIVES[type_name]
        ok = isinstance(value, expected) and not (type_name != "bool" and isinstance(value, bool))
        if not ok:
            err(where, f"expected {type_name}, got {type(value).__name__} {value!r}")
        return
    m = re.fullmatch(r"list\[(.+)\]", type_name)
    if m:
        if not isinstance(value, list):
            err(where, f"expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            check_type(item, m.group(1), f"{where}[{i}]")
        return
    m = re.fullmatch(r"dict\(str, (.+)\)", type_name)
    if m:
        if not isinstance(value, dict):
            err(where, f"expected a mapping, got {type(value).__name__}")
            return
        for key, item in value.items():
            check_type(item, m.group(1), f"{where}.{key}")
        return
    if type_name in EXTRA_MODELS:
        fields, required = EXTRA_MODELS[type_name]
        if not isinstance(value, dict):
            err(where, f"expected a {type_name} mapping, got {type(value).__name__}")
            return
        for key, item in value.items():
            if key not in fields:
                err(f"{where}.{key}", f"unknown field for {type_name} (known: {', '.join(sorted(fields))})")
            else:
                check_type(item, fields[key], f"{where}.{key}")
        for key in sorted(required - set(value)):
            err(where, f"{type_name} requires {key}")
        return
    model = getattr(k8s, type_name, None)
    if model is None:
        err(where, f"no model {type_name} in python3-kubernetes")
        return
    if not isinstance(value, dict):
        err(where, f"expected a {type_name} mapping, got {type(value).__name__}")
        return
    json_to_attr = {v: k for k, v in model.attribute_map.items()}
    extra = EXTRA_FIELDS.get(type_name, {})
    for key, item in value.items():
        if key in extra:
            check_type(item, extra[key], f"{where}.{key}")
            continue
        if key not in json_to_attr:
            err(f"{where}.{key}", f"unknown field for {type_name} (known: {', '.join(sorted(json_to_attr))})")
            continue
        check_type(item, model.openapi_types[json_to_attr[key]], f"{where}.{key}")


class _Response:  # what ApiClient.deserialize reads
    def __init__(self, obj):
        self.data = json.dumps(obj)


def model_name(api_version, kind):
    group_version = api_version.split("/")[-1]
    return "V1" + kind if group_version == "v1" else group_version.capitalize() + kind


def check_schema(obj, where):
    name = model_name(obj["apiVersion"], obj["kind"])
    if getattr(k8s, name, None) is None:
        err(where, f"{obj['apiVersion']} {obj['kind']} is not a Kubernetes 1.22 API type")
        return
    check_type(obj, name, where)
    # Deserializing builds every nested model; their setters refuse missing required fields.
    try:
        ApiClient().deserialize(_Response(obj), name)
    except (ValueError, TypeError) as e:
        err(where, f"not a valid {name}: {e}")


# --- load ----------------------------------------------------------------------------------------
def main():
    base = pathlib.Path(sys.argv[1])
    out = pathlib.Path(sys.argv[2])
    rendered_path = sys.argv[3] if len(sys.argv) > 3 else None

    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    if kustomization.get("kind") != "Kustomization" or not str(kustomization.get("apiVersion", "")).startswith("kustomize.config.k8s.io/"):
        err("kustomization.yaml", "not a kustomize.config.k8s.io Kustomization")
    resources = kustomization.get("resources") or []
    on_disk = sorted(p.name for p in base.glob("*.yaml") if p.name != "kustomization.yaml")
    if sorted(resources) != on_disk:
        err("kustomization.yaml", f"resources {sorted(resources)} != manifests on disk {on_disk}")

    objects = []
    for name in resources:
        path = base / name
        if not path.is_file():
            err(name, "listed in kustomization.yaml but missing")
            continue
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc is None:
                continue
            where = f"{name}#{i}"
            for key in ("apiVersion", "kind", "metadata"):
                if key not in doc:
                    err(where, f"no {key}")
            if "metadata" not in doc or not doc["metadata"].get("name"):
                err(where, "no metadata.name")
                continue
            where = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
            if (doc["metadata"].get("labels") or {}).get("app.kubernetes.io/name") != "cohort-coordinator":
                err(where, "label app.kubernetes.io/name: cohort-coordinator missing")
            check_schema(doc, where)
            objects.append((where, doc))

    by_kind = {}
    for where, doc in objects:
        by_kind.setdefault(doc["kind"], []).append(doc)
    for kind in ("StatefulSet", "Service", "Secret", "ConfigMap", "NetworkPolicy", "PodDisruptionBudget"):
        if kind not in by_kind:
            err("base", f"no {kind}")
    if errors:
        return

    if rendered_path:
        rendered = [d for d in yaml.safe_load_all(open(rendered_path)) if d]
        got = sorted((d["kind"], d["metadata"]["name"]) for d in rendered)
        want = sorted((d["kind"], d["metadata"]["name"]) for _, d in objects)
        if got != want:
            err("kubectl kustomize", f"rendered {got}, manifests hold {want}")

    (sts,) = by_kind["StatefulSet"]
    where = f"StatefulSet/{sts['metadata']['name']}"
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    selector = spec["selector"]["matchLabels"]
    if any(pod_labels.get(k) != v for k, v in selector.items()):
        err(where, "selector does not match the pod template's labels")
    if spec.get("replicas") != 1:
        err(where, "replicas must be 1 (one coordinator per federation)")
    services = {s["metadata"]["name"]: s for s in by_kind["Service"]}
    if spec.get("serviceName") not in services or services[spec["serviceName"]]["spec"].get("clusterIP") != "None":
        err(where, "serviceName must name a headless Service of the base")
    if pod.get("automountServiceAccountToken") is not False:
        err(where, "automountServiceAccountToken must be false")
    psc = pod.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True:
        err(where, "pod securityContext.runAsNonRoot must be true")
    if not isinstance(psc.get("runAsUser"), int) or psc["runAsUser"] == 0:
        err(where, "pod securityContext.runAsUser must be a non-zero uid")
    if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        err(where, "pod seccompProfile must be RuntimeDefault")
    if len(pod["containers"]) != 1:
        err(where, "one container expected")
    (c,) = pod["containers"][:1]
    cw = f"{where} container {c['name']}"
    sc = c.get("securityContext") or {}
    for key, value in (("runAsNonRoot", True), ("readOnlyRootFilesystem", True),
                       ("allowPrivilegeEscalation", False)):
        if sc.get(key) is not value:
            err(cw, f"securityContext.{key} must be {str(value).lower()}")
    if sc.get("privileged") not in (None, False):
        err(cw, "must not be privileged")
    if (sc.get("capabilities") or {}).get("drop") != ["ALL"] or (sc.get("capabilities") or {}).get("add"):
        err(cw, "capabilities must drop ALL and add none")
    if (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        err(cw, "seccompProfile must be RuntimeDefault")
    for probe in ("livenessProbe", "readinessProbe"):
        p = c.get(probe)
        if not p:
            err(cw, f"no {probe}")
            continue
        handlers = [h for h in ("tcpSocket", "httpGet", "grpc", "exec") if h in p]
        if len(handlers) != 1:
            err(cw, f"{probe} needs exactly one handler, has {handlers}")
    res = c.get("resources") or {}
    for part in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in (res.get(part) or {}):
                err(cw, f"resources.{part}.{r} missing")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    if ports.get("grpc") != 50051:
        err(cw, "container port grpc must be 50051")
    # The issue asks for gRPC liveness and readiness probes: on the plaintext health port
    # the ConfigMap's health.listen opens (port 50051 needs a client certificate).
    for probe in ("livenessProbe", "readinessProbe"):
        grpc_probe = (c.get(probe) or {}).get("grpc")
        if not grpc_probe:
            err(cw, f"{probe} must be a grpc probe")
        elif grpc_probe.get("port") != ports.get("health"):
            err(cw, f"{probe}.grpc.port must be the health container port {ports.get('health')}")
    if ports.get("http") != 9464:
        err(cw, "container port http must be 9464 (/metrics, /healthz, /readyz)")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        for handler in ("tcpSocket", "httpGet", "grpc"):
            port = ((c.get(probe) or {}).get(handler) or {}).get("port")
            if port is not None and port not in ports and port not in ports.values():
                err(cw, f"{probe}.{handler}.port {port!r} is not a container port")

    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    claims = {t["metadata"]["name"]: t for t in spec.get("volumeClaimTemplates", [])}
    if not claims:
        err(where, "no volumeClaimTemplates (state must persist)")
    for t in claims.values():
        if "ReadWriteOnce" not in t["spec"].get("accessModes", []) or "storage" not in t["spec"]["resources"].get("requests", {}):
            err(where, f"claim {t['metadata']['name']}: ReadWriteOnce and a storage request expected")
    mounts = {}
    for m in c.get("volumeMounts", []):
        if m["name"] not in volumes and m["name"] not in claims:
            err(cw, f"volumeMount {m['name']} has no volume or claim")
        mounts[m["name"]] = m
    configmaps = {d["metadata"]["name"]: d for d in by_kind["ConfigMap"]}
    secrets = {d["metadata"]["name"]: d for d in by_kind["Secret"]}
    config_volume = next((v for v in volumes.values() if "configMap" in v), None)
    tls_volume = next((v for v in volumes.values() if "secret" in v), None)
    if not config_volume or config_volume["configMap"]["name"] not in configmaps:
        err(where, "no volume from the base's ConfigMap")
        return
    if not tls_volume or tls_volume["secret"]["secretName"] not in secrets:
        err(where, "no volume from the base's TLS Secret")
        return
    mode = tls_volume["secret"].get("defaultMode", 0o644)
    if mode & 0o007:
        err(where, f"TLS secret defaultMode {oct(mode)} is world-accessible")
    secret = secrets[tls_volume["secret"]["secretName"]]
    if secret.get("type") != "kubernetes.io/tls":
        err(f"Secret/{secret['metadata']['name']}", "type must be kubernetes.io/tls")
    secret_keys = set((secret.get("data") or {})) | set((secret.get("stringData") or {}))
    if not {"tls.crt", "tls.key", "ca.crt"} <= secret_keys:
        err(f"Secret/{secret['metadata']['name']}", f"needs tls.crt, tls.key, ca.crt; has {sorted(secret_keys)}")

    # The config file the container is told to load is the ConfigMap's key at its mount.
    cm = configmaps[config_volume["configMap"]["name"]]
    config_mount = mounts.get(config_volume["name"], {}).get("mountPath")
    args = c.get("args", [])
    if "--config" not in args or args.index("--config") + 1 >= len(args):
        err(cw, "args must pass --config")
        return
    config_path = args[args.index("--config") + 1]
    key = config_path.rsplit("/", 1)[-1]
    if config_mount is None or config_path != f"{config_mount}/{key}" or key not in (cm.get("data") or {}):
        err(cw, f"--config {config_path} is not a key of ConfigMap {cm['metadata']['name']} at its mount {config_mount}")
        return
    coordinator = yaml.safe_load(cm["data"][key])
    tls_mount = mounts.get(tls_volume["name"], {}).get("mountPath")
    for field in ("ca", "cert", "key"):
        path = coordinator.get("tls", {}).get(field, "")
        if not (path.startswith(f"{tls_mount}/") and path[len(tls_mount) + 1:] in secret_keys):
            err("ConfigMap", f"tls.{field} {path} is not a key of the Secret mounted at {tls_mount}")
    state_mounts = [mounts[n]["mountPath"] for n in claims if n in mounts]
    if coordinator.get("state_dir") not in state_mounts:
        err("ConfigMap", f"state_dir {coordinator.get('state_dir')} is not the persistent volume's mount {state_mounts}")
    listen_port = int(str(coordinator.get("listen", "")).rsplit(":", 1)[-1] or 0)
    if listen_port != ports.get("grpc"):
        err("ConfigMap", f"listen port {listen_port} != container port grpc {ports.get('grpc')}")
    for section, port_name in (("health", "health"), ("http", "http")):
        value = str((coordinator.get(section) or {}).get("listen", ""))
        port = int(value.rsplit(":", 1)[-1]) if ":" in value else None
        if port != ports.get(port_name):
            err("ConfigMap", f"{section}.listen {value!r} does not open container port "
                             f"{port_name} {ports.get(port_name)}")
    for m in c.get("volumeMounts", []):
        if m["name"] in (config_volume["name"], tls_volume["name"]) and m.get("readOnly") is not True:
            err(cw, f"volumeMount {m['name']} must be readOnly")

    # Services route to the pod's named ports.
    for s in services.values():
        sw = f"Service/{s['metadata']['name']}"
        if any(pod_labels.get(k) != v for k, v in s["spec"]["selector"].items()):
            err(sw, "selector does not match the pod")
        for p in s["spec"]["ports"]:
            if p.get("targetPort", p["port"]) not in ports and p.get("targetPort", p["port"]) not in ports.values():
                err(sw, f"targetPort {p.get('targetPort')} is not a container port")

    # NetworkPolicy: the coordinator's pods, ingress on the gRPC port only.
    for np in by_kind["NetworkPolicy"]:
        nw = f"NetworkPolicy/{np['metadata']['name']}"
        sel = np["spec"]["podSelector"].get("matchLabels", {})
        if not sel or any(pod_labels.get(k) != v for k, v in sel.items()):
            err(nw, "podSelector does not select the coordinator")
        if "Ingress" not in np["spec"].get("policyTypes", []):
            err(nw, "policyTypes must include Ingress")
        # The gRPC port from anywhere (mutual TLS guards it); the plaintext HTTP port only
        # from a selected namespace or pods; nothing else (rules without ports admit all).
        allowed = []
        for rule in np["spec"].get("ingress", []):
            rule_ports = [p.get("port") for p in rule.get("ports", [])]
            if not rule_ports:
                allowed.append("every port")
            for port in rule_ports:
                allowed.append(port)
                if port in (9464, "http") and not rule.get("from"):
                    err(nw, "the plaintext HTTP port must be admitted only from a namespace or "
                            "pod selector (from:), not from everywhere")
        if not allowed or any(p not in (50051, "grpc", 9464, "http") for p in allowed):
            err(nw, f"ingress must admit only the gRPC port and the HTTP port, admits "
                    f"{allowed or 'every port'}")
    for pdb in by_kind["PodDisruptionBudget"]:
        pw = f"PodDisruptionBudget/{pdb['metadata']['name']}"
        sel = pdb["spec"]["selector"].get("matchLabels", {})
        if not sel or any(pod_labels.get(k) != v for k, v in sel.items()):
            err(pw, "selector does not select the coordinator")
        if "minAvailable" not in pdb["spec"] and "maxUnavailable" not in pdb["spec"]:
            err(pw, "needs minAvailable or maxUnavailable")

    out.mkdir(parents=True, exist_ok=True)
    (out / "coordinator.yaml").write_text(cm["data"][key])
    (out / "paths.env").write_text(
        f"TLS_MOUNT={tls_mount}\nSTATE_DIR={coordinator['state_dir']}\n"
        f"TLS_CA={coordinator['tls']['ca']}\nTLS_CERT={coordinator['tls']['cert']}\nTLS_KEY={coordinator['tls']['key']}\n"
        # What the pod sees: with fsGroup the kubelet adds group read to Secret files.
        f"TLS_MODE={oct(mode | (0o440 if psc.get('fsGroup') is not None else 0))[2:]}\n")


if __name__ == "__main__":
    try:
        main()
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as e:
        err("manifests", f"malformed: {type(e).__name__}: {e}")
    for e in errors:
        print(f"FAIL: {e}")
    sys.exit(1 if errors else 0)
