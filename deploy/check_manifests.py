#!/usr/bin/env python3
"""Checks docgate's deployment files for what the service depends on.

Schemas say a manifest is well formed; these checks say it runs docgate correctly: probes on the
right paths and port, listeners matching the container ports, a grace period longer than the
drain, the security context, the NetworkPolicy fencing the admin port, every referenced Secret and
ConfigMap present, the Ingress or the Gateway API HTTPRoute, one Redis topology with what it needs
(Sentinel's master name and port, a private CA's certificate), every DOCGATE_* name one docgate
reads; and the same for deploy/compose.yaml (with its images' licences and its cluster profile)
and deploy/Dockerfile. One line per check; exit status 1 if any fails.

    check_manifests.py --k8s base=base.yaml --ha base \
        --operator-provided base=Secret/docgate-secrets,Secret/docgate-tls \
        [--edge NAME=gateway-system] --source src \
        --compose deploy/compose.yaml --dockerfile deploy/Dockerfile --dockerignore .dockerignore \
        --cargo-toml Cargo.toml [--self-test]

`--self-test` also breaks a copy of the inputs once per check, in memory, and fails unless that
check (and it alone is asked) reports the breakage: a check that cannot fail is no check.

Standard library and PyYAML only (Debian's python3-yaml).
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import ipaddress
import os
import posixpath
import re
import shlex
import sys
import tomllib
from dataclasses import dataclass, field
from typing import Callable

import yaml

CONTAINER = "docgate"
USER_ID = 65532
DEFAULT_LISTEN = "0.0.0.0:8080"
DEFAULT_ADMIN_LISTEN = "127.0.0.1:9090"
DEFAULT_SHUTDOWN_DELAY = "5s"
DEFAULT_DRAIN = "30s"
INGRESS_NAMESPACE = "ingress-nginx"
MONITORING_NAMESPACE = "monitoring"
# Egress docgate needs: DNS, Redis (plain and TLS), S3/STS over HTTPS, SMTP submission.
EGRESS_ALLOWED = {("UDP", 53), ("TCP", 53), ("TCP", 6379), ("TCP", 6380), ("TCP", 443),
                  ("TCP", 587), ("TCP", 465)}
# Redis Sentinel's port: allowed out only where docgate is configured with Sentinels. (The cluster
# bus, 16379, is node to node: never docgate's.)
SENTINEL_PORT = ("TCP", 26379)
# The three Redis topologies (README.md, "Configuration"): at most one is configured.
REDIS_TOPOLOGIES = {"standalone": "DOCGATE_REDIS_URL", "cluster": "DOCGATE_REDIS_CLUSTER_URLS",
                    "sentinel": "DOCGATE_REDIS_SENTINEL_URLS"}
# Settings the public contract names whose parsing is being added to src/config/: accepted with
# a note until the source declares them, then checked like every other name. True: a secret
# (also read from NAME_FILE).
CONTRACT_NAMES = {"DOCGATE_REDIS_CLUSTER_URLS": True, "DOCGATE_REDIS_SENTINEL_URLS": True,
                  "DOCGATE_REDIS_SENTINEL_MASTER": False, "DOCGATE_REDIS_CA_FILE": False}
# Variables ending in _FILE that name a file which is not a secret.
NOT_SECRET_FILES = {"DOCGATE_REDIS_CA_FILE"}
# Shortest HTTPRoute timeout that does not cut a slow download (the Ingress waits 600 s between
# two reads); 0s turns it off.
ROUTE_TIMEOUT_FLOOR = 600


class Problem(Exception):
    """A check found something wrong; raised to stop that check early."""


# ---- helpers ------------------------------------------------------------------------------------

def parse_duration(text: str) -> float:
    """docgate's durations: `500ms`, `30s`, `15m`, `2h`, `1d`; compose's also `1m30s`."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        raise Problem(f"{text!r} is not a duration")
    return sum(float(n) * units[u] for n, u in parts)


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit():
        raise Problem(f"{text!r} is not host:port")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def under(path: str, directory: str) -> bool:
    path, directory = posixpath.normpath(path), posixpath.normpath(directory)
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """matchLabels and the common matchExpressions against a label set; a Service's selector is
    a plain map."""
    if not selector:
        return False
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        return all(labels.get(k) == v for k, v in selector.items())
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


# ---- Kubernetes -------------------------------------------------------------------------------

@dataclass
class Bundle:
    """The objects one kustomization renders to."""

    name: str
    objects: list[dict]
    ha: bool = False
    operator_provided: set[str] = field(default_factory=set)
    extra_egress: set[tuple[str, int]] = field(default_factory=set)
    # Namespaces the edge's data plane runs in (ingress controller or gateway): the only peers
    # of the public port.
    edge: set[str] = field(default_factory=lambda: {INGRESS_NAMESPACE})
    # DOCGATE_* names docgate reads (string literals in src/), and those it reads as secrets.
    config_names: set[str] = field(default_factory=set)
    secret_names: set[str] = field(default_factory=set)

    def of_kind(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o.get("kind") == kind]

    def get(self, kind: str, name: str) -> dict | None:
        for o in self.of_kind(kind):
            if o.get("metadata", {}).get("name") == name:
                return o
        return None

    def has(self, kind: str, name: str) -> bool:
        return self.get(kind, name) is not None or f"{kind}/{name}" in self.operator_provided

    def workloads(self) -> list[dict]:
        kinds = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
        return [o for o in self.objects if o.get("kind") in kinds]

    def deployment(self) -> dict:
        found = [d for d in self.of_kind("Deployment")
                 if any(c.get("name") == CONTAINER for c in pod_spec(d).get("containers", []))]
        if len(found) != 1:
            raise Problem(f"expected one Deployment with a container {CONTAINER!r}, found {len(found)}")
        return found[0]

    def container(self) -> dict:
        return next(c for c in pod_spec(self.deployment())["containers"] if c["name"] == CONTAINER)

    def pod_labels(self) -> dict:
        return self.deployment()["spec"]["template"]["metadata"].get("labels") or {}

    def service(self) -> dict:
        labels = self.pod_labels()
        found = [s for s in self.of_kind("Service") if selector_matches(s["spec"].get("selector"), labels)]
        if len(found) != 1:
            raise Problem(f"expected one Service selecting docgate's pods, found {len(found)}")
        return found[0]

    def env(self) -> dict[str, str]:
        """docgate's environment as the kubelet builds it: envFrom first, then env over it."""
        c = self.container()
        env: dict[str, str] = {}
        for source in c.get("envFrom") or []:
            ref = source.get("configMapRef")
            if ref:
                cm = self.get("ConfigMap", ref["name"])
                if cm is None:
                    if f"ConfigMap/{ref['name']}" in self.operator_provided:
                        continue
                    raise Problem(f"envFrom names ConfigMap {ref['name']!r}, which is not rendered")
                for k, v in (cm.get("data") or {}).items():
                    env[source.get("prefix", "") + k] = v
        for var in c.get("env") or []:
            if "value" in var:
                env[var["name"]] = var["value"]
            elif (ref := (var.get("valueFrom") or {}).get("configMapKeyRef")):
                cm = self.get("ConfigMap", ref["name"])
                if cm is not None and ref["key"] in (cm.get("data") or {}):
                    env[var["name"]] = cm["data"][ref["key"]]
            else:
                env[var["name"]] = "<from a secret>"
        return env

    def container_port(self, name_or_number) -> dict | None:
        for p in self.container().get("ports") or []:
            if p.get("name") == name_or_number or p.get("containerPort") == name_or_number:
                return p
        return None

    def mount_for(self, path: str) -> tuple[dict, dict] | None:
        """The deepest volume mount holding `path`, with its volume."""
        spec = pod_spec(self.deployment())
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        best = None
        for m in self.container().get("volumeMounts") or []:
            if under(path, m["mountPath"]) and (best is None or len(m["mountPath"]) > len(best["mountPath"])):
                best = m
        if best is None:
            return None
        return best, volumes.get(best["name"], {})


def pod_spec(workload: dict) -> dict:
    spec = workload.get("spec", {})
    if workload.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return spec.get("template", {}).get("spec", {})


K8S_CHECKS: list[tuple[str, Callable[[Bundle], None]]] = []
COMPOSE_CHECKS: list[tuple[str, Callable[[dict], None]]] = []
IMAGE_CHECKS: list[tuple[str, Callable[[dict], None]]] = []


def k8s_check(name):
    def register(fn):
        K8S_CHECKS.append((name, fn))
        return fn
    return register


def compose_check(name):
    def register(fn):
        COMPOSE_CHECKS.append((name, fn))
        return fn
    return register


def image_check(name):
    def register(fn):
        IMAGE_CHECKS.append((name, fn))
        return fn
    return register


def require(condition, message: str) -> None:
    if not condition:
        raise Problem(message)


@k8s_check("workload")
def check_workload(b: Bundle) -> None:
    c = b.container()
    image = c.get("image", "")
    tag = image.rsplit("/", 1)[-1]
    require("@" in image or ":" in tag, f"image {image!r} has no tag")
    require(not image.endswith(":latest"), f"image {image!r} is :latest")
    sel = b.deployment()["spec"]["selector"]
    require(selector_matches(sel, b.pod_labels()), "the Deployment's selector misses its own pods")


PROBES = {"readinessProbe": ("/readyz",), "livenessProbe": ("/healthz",),
          "startupProbe": ("/healthz", "/readyz")}


@k8s_check("probes")
def check_probes(b: Bundle) -> None:
    c = b.container()
    for probe, paths in PROBES.items():
        get = (c.get(probe) or {}).get("httpGet")
        require(get is not None, f"{probe} is not an httpGet probe")
        require(get.get("path") in paths, f"{probe} asks {get.get('path')!r}, not {' or '.join(paths)}")


@k8s_check("probe-port")
def check_probe_port(b: Bundle) -> None:
    """The probes ask the admin listener, which a flood of the public port cannot reach."""
    c = b.container()
    admin = b.container_port("admin")
    require(admin is not None, "no container port named 'admin'")
    for probe in PROBES:
        port = ((c.get(probe) or {}).get("httpGet") or {}).get("port")
        require(port == "admin" or port == admin["containerPort"],
                f"{probe} probes port {port!r}, not the admin port 'admin'")


@k8s_check("listeners")
def check_listeners(b: Bundle) -> None:
    env = b.env()
    for var, default, port_name in (("DOCGATE_LISTEN", DEFAULT_LISTEN, "http"),
                                    ("DOCGATE_ADMIN_LISTEN", DEFAULT_ADMIN_LISTEN, "admin")):
        host, port = parse_listen(env.get(var, default))
        declared = b.container_port(port_name)
        require(declared is not None, f"no container port named {port_name!r}")
        require(declared["containerPort"] == port,
                f"{var} listens on {port}, container port {port_name!r} is {declared['containerPort']}")
        require(not is_loopback(host), f"{var}={host}:{port} is loopback: nothing outside the pod reaches it")


@k8s_check("service")
def check_service(b: Bundle) -> None:
    svc = b.service()
    require(svc["spec"].get("type", "ClusterIP") == "ClusterIP",
            f"Service type {svc['spec'].get('type')}: the public way in is the Ingress")
    names = {p["name"] for p in svc["spec"]["ports"]}
    require({"http", "admin"} <= names, f"Service ports are {sorted(names)}, not http and admin")
    for p in svc["spec"]["ports"]:
        target = p.get("targetPort", p["port"])
        require(isinstance(target, str), f"Service port {p['name']} targets {target!r}, not a named port")
        require(b.container_port(target) is not None, f"Service port {p['name']} targets {target!r}: no such container port")
        if p["name"] in ("http", "admin"):
            require(target == p["name"], f"Service port {p['name']} targets container port {target!r}")


@k8s_check("ingress-routes")
def check_ingress_routes(b: Bundle) -> None:
    svc = b.service()
    http_port = next(p for p in svc["spec"]["ports"] if p["name"] == "http")
    ingresses = b.of_kind("Ingress")
    require(ingresses or b.of_kind("HTTPRoute"), "no Ingress and no HTTPRoute: nothing routes to docgate")
    for ing in ingresses:
        backends = [path["backend"] for rule in ing["spec"].get("rules") or []
                    for path in (rule.get("http") or {}).get("paths") or []]
        if ing["spec"].get("defaultBackend"):
            backends.append(ing["spec"]["defaultBackend"])
        require(backends, f"Ingress {ing['metadata']['name']} routes nowhere")
        for backend in backends:
            service = backend.get("service") or {}
            port = service.get("port") or {}
            require(service.get("name") == svc["metadata"]["name"],
                    f"Ingress routes to Service {service.get('name')!r}")
            require(port.get("name") == "http" or port.get("number") == http_port["port"],
                    f"Ingress routes to Service port {port}, not 'http'")
        for tls in ing["spec"].get("tls") or []:
            require(b.has("Secret", tls.get("secretName")),
                    f"TLS Secret {tls.get('secretName')!r} is neither rendered nor operator-provided")


@k8s_check("ingress-streaming")
def check_ingress_streaming(b: Bundle) -> None:
    for ing in b.of_kind("Ingress"):
        require(ing["spec"].get("ingressClassName") == "nginx", "ingressClassName is not nginx")
        notes = ing["metadata"].get("annotations") or {}
        prefix = "nginx.ingress.kubernetes.io/"
        require(notes.get(prefix + "proxy-buffering") == "off",
                f"{prefix}proxy-buffering is not \"off\": downloads would be buffered")
        for key in ("proxy-read-timeout", "proxy-send-timeout"):
            value = notes.get(prefix + key, "60")
            require(value.isdigit() and int(value) >= 300, f"{prefix}{key}={value}: under 300 s")


def parse_size(text: str) -> int:
    """An nginx size: `8k`, `1m`, `512`."""
    match = re.fullmatch(r"(\d+)([kKmM]?)", text.strip())
    if not match:
        raise Problem(f"size {text!r} is not nginx's N, Nk or Nm")
    return int(match[1]) * {"": 1, "k": 1024, "m": 1024 * 1024}[match[2].lower()]


@k8s_check("ingress-slow-clients")
def check_ingress_slow_clients(b: Bundle) -> None:
    """Slow clients spend the ingress's buffers, not docgate's connections."""
    for ing in b.of_kind("Ingress"):
        notes = ing["metadata"].get("annotations") or {}
        prefix = "nginx.ingress.kubernetes.io/"
        require(notes.get(prefix + "proxy-request-buffering") == "on",
                f"{prefix}proxy-request-buffering is not \"on\": slow request bodies would reach docgate")
        limit = notes.get(prefix + "limit-connections", "")
        require(limit.isdigit() and int(limit) > 0,
                f"{prefix}limit-connections={limit!r}: no per-client connection limit at the ingress")
        size = notes.get(prefix + "proxy-body-size")
        require(size, f"{prefix}proxy-body-size is not set")
        require(0 < parse_size(size) <= 64 * 1024,
                f"{prefix}proxy-body-size={size}: bodies are at most 4 KiB, not over 64k")


@k8s_check("ingress-access-log")
def check_ingress_access_log(b: Bundle) -> None:
    # The controller would log the request URI, and /d/<token> is a live link.
    for ing in b.of_kind("Ingress"):
        notes = ing["metadata"].get("annotations") or {}
        key = "nginx.ingress.kubernetes.io/enable-access-log"
        require(notes.get(key) == "false",
                f"{key} is not \"false\": the ingress would log live links")


@k8s_check("shutdown")
def check_shutdown(b: Bundle) -> None:
    spec = pod_spec(b.deployment())
    drain = parse_duration(b.env().get("DOCGATE_DRAIN_TIMEOUT", DEFAULT_DRAIN))
    pre_stop = (b.container().get("lifecycle") or {}).get("preStop") or {}
    sleep = 0.0
    if "sleep" in pre_stop:
        sleep = float(pre_stop["sleep"]["seconds"])
    elif "exec" in pre_stop:
        command = pre_stop["exec"].get("command") or []
        numbers = [float(x) for x in command if re.fullmatch(r"\d+(\.\d+)?", str(x))]
        sleep = max(numbers, default=0.0)
    delay = parse_duration(b.env().get("DOCGATE_SHUTDOWN_DELAY", DEFAULT_SHUTDOWN_DELAY))
    require(sleep + delay > 0,
            "neither DOCGATE_SHUTDOWN_DELAY nor a preStop hook: the ingress may still route to a "
            "pod already refusing connections")
    grace = spec.get("terminationGracePeriodSeconds", 30)
    require(grace > drain + sleep + delay,
            f"terminationGracePeriodSeconds {grace} <= shutdown delay {delay:g}s + drain "
            f"{drain:g}s + preStop {sleep:g}s")


@k8s_check("security-context")
def check_security_context(b: Bundle) -> None:
    for w in b.workloads():
        spec = pod_spec(w)
        pod_sc = spec.get("securityContext") or {}
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            where = f"{w['kind']}/{w['metadata']['name']} container {c['name']}"
            sc = c.get("securityContext") or {}
            merged = {**pod_sc, **sc}
            require(merged.get("runAsNonRoot") is True, f"{where}: runAsNonRoot is not true")
            require(merged.get("runAsUser", 1) != 0, f"{where}: runs as root")
            require((merged.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
                    f"{where}: seccompProfile is not RuntimeDefault")
            require(sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation is not false")
            require(sc.get("privileged") is not True, f"{where}: privileged")
            caps = sc.get("capabilities") or {}
            require("ALL" in (caps.get("drop") or []), f"{where}: capabilities do not drop ALL")
            require(not caps.get("add"), f"{where}: adds capabilities {caps.get('add')}")
            require(sc.get("readOnlyRootFilesystem") is True, f"{where}: root filesystem is writable")
            if c["name"] == CONTAINER:
                for level, ctx in (("pod", pod_sc), ("container", sc)):
                    require(ctx.get("runAsNonRoot") is True, f"{where}: {level} runAsNonRoot is not true")
                    require(ctx.get("runAsUser") == USER_ID, f"{where}: {level} runAsUser is not {USER_ID}")
                    require((ctx.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
                            f"{where}: {level} seccompProfile is not RuntimeDefault")


@k8s_check("writable-paths")
def check_writable_paths(b: Bundle) -> None:
    env = b.env()
    paths = {
        "DOCGATE_OUTBOX_DIR": env.get("DOCGATE_OUTBOX_DIR", "./outbox"),
        "DOCGATE_REQUEST_LOG's directory": posixpath.dirname(env.get("DOCGATE_REQUEST_LOG", "./requests.jsonl")) or ".",
        "/tmp": "/tmp",
    }
    for what, path in paths.items():
        require(path.startswith("/"), f"{what} is {path!r}: relative to a read-only working directory")
        found = b.mount_for(path)
        require(found is not None, f"{what} ({path}) is on the read-only root filesystem")
        mount, volume = found
        require(not mount.get("readOnly"), f"{what} ({path}) is on read-only mount {mount['name']}")
        require("emptyDir" in volume or "persistentVolumeClaim" in volume or "ephemeral" in volume,
                f"{what} ({path}) is on volume {mount['name']}, which is not writable storage")


@k8s_check("secret-files")
def check_secret_files(b: Bundle) -> None:
    env = b.env()
    files = {k: v for k, v in env.items() if k.endswith("_FILE") and k not in NOT_SECRET_FILES}
    require("DOCGATE_TOKEN_KEYS_FILE" in files or "DOCGATE_TOKEN_SECRET_FILE" in files,
            "no token key file: replicas would each sign with a random key")
    require("DOCGATE_PSEUDONYM_KEY_FILE" in files,
            "no pseudonym key file: docgate refuses to start with Redis without DOCGATE_PSEUDONYM_KEY")
    for var, path in files.items():
        found = b.mount_for(path)
        require(found is not None, f"{var}={path} is on no volume")
        mount, volume = found
        require("secret" in volume or "projected" in volume, f"{var}={path} is not on a Secret volume")
        if "secret" in volume:
            secret = b.get("Secret", volume["secret"]["secretName"])
            key = posixpath.relpath(path, mount["mountPath"])
            items = volume["secret"].get("items")
            if items:
                require(key in {i["path"] for i in items}, f"{var}: {key!r} is not among the volume's items")
            elif secret is not None:
                keys = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
                require(key in keys, f"{var}: Secret {secret['metadata']['name']} has no key {key!r}")


@k8s_check("references")
def check_references(b: Bundle) -> None:
    missing = []
    for w in b.workloads():
        spec = pod_spec(w)
        refs = []
        if spec.get("serviceAccountName"):
            refs.append(("ServiceAccount", spec["serviceAccountName"]))
        for v in spec.get("volumes") or []:
            if "configMap" in v:
                refs.append(("ConfigMap", v["configMap"]["name"]))
            if "secret" in v:
                refs.append(("Secret", v["secret"]["secretName"]))
            if "persistentVolumeClaim" in v:
                refs.append(("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]))
            for source in (v.get("projected") or {}).get("sources") or []:
                if "configMap" in source:
                    refs.append(("ConfigMap", source["configMap"]["name"]))
                if "secret" in source:
                    refs.append(("Secret", source["secret"]["name"]))
        for s in spec.get("imagePullSecrets") or []:
            refs.append(("Secret", s["name"]))
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            for source in c.get("envFrom") or []:
                for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if key in source and not source[key].get("optional"):
                        refs.append((kind, source[key]["name"]))
            for var in c.get("env") or []:
                for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                    ref = (var.get("valueFrom") or {}).get(key)
                    if ref and not ref.get("optional"):
                        refs.append((kind, ref["name"]))
        missing += [f"{w['kind']}/{w['metadata']['name']} needs {kind}/{name}"
                    for kind, name in refs if not b.has(kind, name)]
    for ing in b.of_kind("Ingress"):
        missing += [f"Ingress/{ing['metadata']['name']} needs Secret/{t.get('secretName')}"
                    for t in ing["spec"].get("tls") or [] if not b.has("Secret", t.get("secretName"))]
    require(not missing, "; ".join(missing) + " (neither rendered nor operator-provided)")


@k8s_check("selectors")
def check_selectors(b: Bundle) -> None:
    labels = b.pod_labels()
    svc = b.service()
    dep_name = b.deployment()["metadata"]["name"]
    for pdb in b.of_kind("PodDisruptionBudget"):
        require(selector_matches(pdb["spec"].get("selector"), labels), "the PodDisruptionBudget misses docgate's pods")
    for hpa in b.of_kind("HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        require((ref.get("kind"), ref.get("name")) == ("Deployment", dep_name),
                f"the HorizontalPodAutoscaler scales {ref.get('kind')}/{ref.get('name')}")
    for sm in b.of_kind("ServiceMonitor"):
        require(selector_matches(sm["spec"].get("selector"), svc["metadata"].get("labels") or {}),
                "the ServiceMonitor misses docgate's Service")
    require(any(selector_matches(np["spec"].get("podSelector"), labels) for np in b.of_kind("NetworkPolicy")),
            "no NetworkPolicy selects docgate's pods")


def _np_ports(b: Bundle, rule: dict) -> set[tuple[str, int]] | None:
    """The (protocol, port) pairs a rule admits; None for every port."""
    if not rule.get("ports"):
        return None
    out = set()
    for p in rule["ports"]:
        proto, port = p.get("protocol", "TCP"), p.get("port")
        if port is None:
            return None
        if isinstance(port, str):
            declared = b.container_port(port)
            if declared is None:
                raise Problem(f"NetworkPolicy names port {port!r}, which docgate does not declare")
            port = declared["containerPort"]
        for n in range(port, (p.get("endPort") or port) + 1):
            out.add((proto, n))
    return out


def _np_sources(rule: dict, key: str) -> set[str]:
    """Namespace names a rule's peers come from: '*' for any, 'ipBlock' for addresses."""
    peers = rule.get(key)
    if not peers:
        return {"*"}
    out = set()
    for peer in peers:
        if "ipBlock" in peer:
            out.add("ipBlock")
        elif "namespaceSelector" in peer:
            labels = (peer["namespaceSelector"] or {}).get("matchLabels") or {}
            name = labels.get("kubernetes.io/metadata.name")
            out.add(name if name and not (peer["namespaceSelector"] or {}).get("matchExpressions") else "*")
        else:
            out.add("<own namespace>")
    return out


@k8s_check("network-policy")
def check_network_policy(b: Bundle) -> None:
    labels = b.pod_labels()
    policies = [np for np in b.of_kind("NetworkPolicy") if selector_matches(np["spec"].get("podSelector"), labels)]
    require(policies, "no NetworkPolicy selects docgate's pods")
    types = {t for np in policies for t in np["spec"].get("policyTypes") or []}
    require({"Ingress", "Egress"} <= types, f"policyTypes {sorted(types)}: ingress and egress must both be fenced")
    public = ("TCP", b.container_port("http")["containerPort"])
    admin = ("TCP", b.container_port("admin")["containerPort"])
    for np in policies:
        for rule in np["spec"].get("ingress") or []:
            ports = _np_ports(b, rule)
            sources = _np_sources(rule, "from")
            if ports is None or admin in ports:
                require(not (sources & b.edge) and sources <= {MONITORING_NAMESPACE},
                        f"the admin port is open to {sorted(sources)}, not only {MONITORING_NAMESPACE}")
            if ports is None or public in ports:
                require(sources == b.edge,
                        f"the public port is open to {sorted(sources)}, not only {sorted(b.edge)}")
            require(ports is None or ports <= {public, admin}, f"ingress to ports {sorted(ports or [])}")
    allowed = EGRESS_ALLOWED | b.extra_egress | ({SENTINEL_PORT} if _topology(b.env()) == "sentinel" else set())
    egress = set()
    for np in policies:
        for rule in np["spec"].get("egress") or []:
            ports = _np_ports(b, rule)
            require(ports is not None, "an egress rule allows every port")
            require(ports <= allowed, f"egress to {sorted(ports - allowed)} is not needed")
            egress |= ports
    require({("UDP", 53), ("TCP", 53)} <= egress, "DNS (53 over UDP and TCP) is not allowed out")


@k8s_check("replicas")
def check_replicas(b: Bundle) -> None:
    replicas = b.deployment()["spec"].get("replicas", 1)
    floor = 2 if b.ha else 1
    require(replicas >= floor, f"replicas {replicas} < {floor}")
    for hpa in b.of_kind("HorizontalPodAutoscaler"):
        lo, hi = hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
        require(floor <= lo <= replicas <= hi, f"HPA {lo}..{hi} does not hold replicas {replicas} (floor {floor})")
    for pdb in b.of_kind("PodDisruptionBudget"):
        least = pdb["spec"].get("minAvailable")
        require(isinstance(least, int) and 1 <= least < replicas,
                f"PodDisruptionBudget minAvailable {least} with {replicas} replicas")
    if b.ha:
        require(b.of_kind("HorizontalPodAutoscaler"), "no HorizontalPodAutoscaler")
        require(b.of_kind("PodDisruptionBudget"), "no PodDisruptionBudget")


@k8s_check("resources")
def check_resources(b: Bundle) -> None:
    for w in b.workloads():
        for c in pod_spec(w).get("containers", []):
            res = c.get("resources") or {}
            where = f"{w['kind']}/{w['metadata']['name']} container {c['name']}"
            require({"cpu", "memory"} <= set(res.get("requests") or {}), f"{where}: no cpu and memory requests")
            require("memory" in (res.get("limits") or {}), f"{where}: no memory limit")
    for hpa in b.of_kind("HorizontalPodAutoscaler"):
        require(hpa.get("apiVersion") == "autoscaling/v2", "the HPA is not autoscaling/v2")
        names = {(m.get("resource") or {}).get("name") for m in hpa["spec"].get("metrics") or []}
        require("cpu" in names, "the HPA does not scale on CPU")


@k8s_check("service-monitor")
def check_service_monitor(b: Bundle) -> str | None:
    monitors = b.of_kind("ServiceMonitor")
    if b.ha:
        require(monitors, "no ServiceMonitor")
    if not monitors:
        return "none rendered"
    port_names = {p["name"] for p in b.service()["spec"]["ports"]}
    for sm in monitors:
        # Structural: what Prometheus Operator's CRD requires, and what docgate serves.
        require(sm.get("apiVersion") == "monitoring.coreos.com/v1", f"apiVersion {sm.get('apiVersion')}")
        require(isinstance(sm.get("spec", {}).get("selector"), dict), "spec.selector is not a map")
        endpoints = sm["spec"].get("endpoints")
        require(isinstance(endpoints, list) and endpoints, "spec.endpoints is empty")
        for ep in endpoints:
            require(ep.get("port") == "admin" and "admin" in port_names, f"scrapes port {ep.get('port')!r}, not 'admin'")
            require(ep.get("path") == "/metrics", f"scrapes {ep.get('path')!r}, not /metrics")
            for key in ("interval", "scrapeTimeout"):
                if key in ep:
                    parse_duration(ep[key])


@k8s_check("trusted-proxies")
def check_trusted_proxies(b: Bundle) -> None:
    value = b.env().get("DOCGATE_TRUSTED_PROXIES", "")
    if not b.of_kind("Ingress") and not b.of_kind("HTTPRoute"):
        return
    require(value.strip(), "DOCGATE_TRUSTED_PROXIES is empty behind an ingress or gateway: every client "
                           "would be the proxy")
    for entry in value.split(","):
        try:
            net = ipaddress.ip_network(entry.strip())
        except ValueError:
            raise Problem(f"DOCGATE_TRUSTED_PROXIES entry {entry!r} is not a CIDR") from None
        require(net.prefixlen > 0, f"DOCGATE_TRUSTED_PROXIES trusts {net}: anyone could forge X-Forwarded-For")


def _route_timeout(value, where: str) -> float:
    """A Gateway API duration (`0s`, `600s`, `1h`, `500ms`) in seconds."""
    m = re.fullmatch(r"((\d{1,5})(h|m|s|ms)){1,4}", str(value))
    require(m, f"{where} {value!r} is not a Gateway API duration")
    return parse_duration(str(value))


@k8s_check("gateway-route")
def check_gateway_route(b: Bundle) -> str | None:
    """The HTTPRoute (a CRD, checked structurally): attached to a Gateway, for the host the
    links name, to the public port only, with timeouts that let a long download finish."""
    routes = b.of_kind("HTTPRoute")
    if not routes:
        return "none rendered"
    svc = b.service()
    http_port = next(p for p in svc["spec"]["ports"] if p["name"] == "http")["port"]
    public_host = re.sub(r"^[a-z]+://", "", b.env().get("DOCGATE_PUBLIC_URL", "")).split("/")[0].split(":")[0]
    for route in routes:
        name = route["metadata"]["name"]
        require(route.get("apiVersion") == "gateway.networking.k8s.io/v1",
                f"HTTPRoute {name}: apiVersion {route.get('apiVersion')}, not gateway.networking.k8s.io/v1")
        spec = route.get("spec") or {}
        parents = spec.get("parentRefs") or []
        require(parents, f"HTTPRoute {name} has no parentRefs: no Gateway serves it")
        for ref in parents:
            require(ref.get("group", "gateway.networking.k8s.io") == "gateway.networking.k8s.io"
                    and ref.get("kind", "Gateway") == "Gateway", f"HTTPRoute {name}: parent {ref} is not a Gateway")
            require(ref.get("name"), f"HTTPRoute {name}: a parentRef without a name")
            require(b.has("Gateway", ref["name"]),
                    f"HTTPRoute {name}: Gateway {ref['name']!r} is neither rendered nor operator-provided")
        hostnames = spec.get("hostnames") or []
        require(hostnames, f"HTTPRoute {name} has no hostnames: it would take every host of its Gateway")
        require(public_host in hostnames,
                f"HTTPRoute {name} serves {hostnames}, not {public_host!r} (DOCGATE_PUBLIC_URL's host, "
                f"which the links name)")
        rules = spec.get("rules") or []
        require(rules, f"HTTPRoute {name} has no rules")
        for rule in rules:
            backends = rule.get("backendRefs") or []
            require(backends, f"HTTPRoute {name}: a rule without backendRefs")
            for ref in backends:
                require(ref.get("kind", "Service") == "Service" and ref.get("group", "") == "",
                        f"HTTPRoute {name} routes to a {ref.get('kind')}, not a Service")
                require(ref.get("name") == svc["metadata"]["name"], f"HTTPRoute {name} routes to Service {ref.get('name')!r}")
                require(ref.get("port") == http_port,
                        f"HTTPRoute {name} routes to port {ref.get('port')!r}, not the public port {http_port}")
            timeouts = rule.get("timeouts") or {}
            require("request" in timeouts, f"HTTPRoute {name}: no timeouts.request; the data plane's default "
                                           f"(15 s for Envoy) would cut long downloads")
            request = _route_timeout(timeouts["request"], f"HTTPRoute {name}: timeouts.request")
            require(request == 0 or request >= ROUTE_TIMEOUT_FLOOR,
                    f"HTTPRoute {name}: timeouts.request {timeouts['request']} would cut downloads (0s, or at least "
                    f"{ROUTE_TIMEOUT_FLOOR}s)")
            if "backendRequest" in timeouts:
                backend = _route_timeout(timeouts["backendRequest"], f"HTTPRoute {name}: timeouts.backendRequest")
                require(backend == 0 or backend >= ROUTE_TIMEOUT_FLOOR,
                        f"HTTPRoute {name}: timeouts.backendRequest {timeouts['backendRequest']} would cut downloads")
                require(request == 0 or (backend != 0 and backend <= request),
                        f"HTTPRoute {name}: timeouts.backendRequest exceeds timeouts.request")
    return f"{len(routes)} route(s)"


def _topology(env: dict[str, str]) -> str | None:
    found = [t for t, var in REDIS_TOPOLOGIES.items() if var in env or f"{var}_FILE" in env]
    return found[0] if len(found) == 1 else None


@k8s_check("redis-topology")
def check_redis_topology(b: Bundle) -> str:
    """One Redis topology, with what it needs: Sentinel its master's name and port, a private
    CA its certificate on a volume."""
    env = b.env()
    found = [t for t, var in REDIS_TOPOLOGIES.items() if var in env or f"{var}_FILE" in env]
    require(len(found) <= 1, f"Redis configured as {' and '.join(found)}: docgate refuses more than one topology")
    topology = found[0] if found else "embedded"
    if topology == "sentinel":
        require(env.get("DOCGATE_REDIS_SENTINEL_MASTER", "").strip(),
                "DOCGATE_REDIS_SENTINEL_URLS without DOCGATE_REDIS_SENTINEL_MASTER")
    else:
        require("DOCGATE_REDIS_SENTINEL_MASTER" not in env,
                f"DOCGATE_REDIS_SENTINEL_MASTER is set, but Redis is {topology}, not sentinel")
    egress = set()
    for np in b.of_kind("NetworkPolicy"):
        if selector_matches(np["spec"].get("podSelector"), b.pod_labels()):
            for rule in np["spec"].get("egress") or []:
                egress |= _np_ports(b, rule) or set()
    if topology == "sentinel":
        require(SENTINEL_PORT in egress, "Sentinel, but the NetworkPolicy does not allow 26379 out")
    ca = env.get("DOCGATE_REDIS_CA_FILE")
    if ca is not None:
        require(topology not in ("embedded",), "DOCGATE_REDIS_CA_FILE without Redis")
        found_mount = b.mount_for(ca)
        require(found_mount is not None, f"DOCGATE_REDIS_CA_FILE={ca} is on no volume")
        mount, volume = found_mount
        source = volume.get("configMap") or volume.get("secret")
        require(source is not None, f"DOCGATE_REDIS_CA_FILE={ca} is on volume {mount['name']}, not a ConfigMap or Secret")
        kind = "ConfigMap" if "configMap" in volume else "Secret"
        ref = source.get("name") or source.get("secretName")
        require(b.has(kind, ref), f"DOCGATE_REDIS_CA_FILE's {kind} {ref!r} is neither rendered nor operator-provided")
        key = posixpath.relpath(ca, mount["mountPath"])
        items = source.get("items")
        if items:
            require(key in {i["path"] for i in items}, f"DOCGATE_REDIS_CA_FILE: {key!r} is not among the volume's items")
        rendered = b.get(kind, ref)
        if rendered is not None and not items:
            require(key in set(rendered.get("data") or {}) | set(rendered.get("stringData") or {}),
                    f"DOCGATE_REDIS_CA_FILE: {kind} {ref} has no key {key!r}")
    return topology + (", private CA" if ca is not None else "")


def _unknown_names(names, config_names: set[str], secret_names: set[str]) -> tuple[list[str], list[str]]:
    """(unknown, pending): DOCGATE_* names docgate does not read, and contract names the source
    does not declare yet."""
    unknown, pending = [], []
    for var in sorted(n for n in names if n.startswith("DOCGATE_")):
        if var in config_names:
            continue
        base = var[:-len("_FILE")] if var.endswith("_FILE") else None
        if base in config_names:
            if base not in secret_names:
                unknown.append(f"{var} (it reads {base}, but not from a file)")
        elif var in CONTRACT_NAMES or CONTRACT_NAMES.get(base):
            pending.append(var)
        else:
            unknown.append(var)
    return unknown, pending


@k8s_check("config-names")
def check_config_names(b: Bundle) -> str | None:
    """Every DOCGATE_* variable set is one docgate reads: a misspelt name is silently ignored."""
    if not b.config_names:
        return "no source to check against"
    unknown, pending = _unknown_names(b.env(), b.config_names, b.secret_names)
    require(not unknown, f"docgate does not read {', '.join(unknown)}")
    if pending:
        return f"in the contract, not yet in src/config: {', '.join(pending)}"


@k8s_check("catalog")
def check_catalog(b: Bundle) -> str | None:
    env = b.env()
    path = env.get("DOCGATE_CATALOG", "./catalog.toml")
    found = b.mount_for(path)
    require(found and "configMap" in found[1], f"DOCGATE_CATALOG={path} is not on a ConfigMap volume")
    mount, volume = found
    cm = b.get("ConfigMap", volume["configMap"]["name"])
    require(cm is not None, f"ConfigMap {volume['configMap']['name']} is not rendered")
    key = posixpath.relpath(path, mount["mountPath"])
    require(key in (cm.get("data") or {}), f"ConfigMap {cm['metadata']['name']} has no {key!r}")
    try:
        catalog = tomllib.loads(cm["data"][key])
    except tomllib.TOMLDecodeError as e:
        raise Problem(f"{key} is not TOML: {e}") from None
    documents = catalog.get("documents") or {}
    require(documents, "the catalog offers no document")
    for doc_id, doc in documents.items():
        require({"key", "filename", "title"} <= set(doc), f"document {doc_id!r} lacks key, filename or title")
    if env.get("DOCGATE_S3_BUCKET"):
        return f"{len(documents)} document(s), in the bucket"
    # No bucket: every document must be in the documents directory's volume.
    directory = env.get("DOCGATE_DOCUMENTS_DIR", "./documents")
    found = b.mount_for(directory)
    require(found is not None, f"DOCGATE_DOCUMENTS_DIR={directory} is on no volume")
    mount, volume = found
    require("configMap" in volume or "persistentVolumeClaim" in volume,
            f"DOCGATE_DOCUMENTS_DIR={directory} is on volume {mount['name']}, holding no documents")
    if "configMap" in volume:
        source = b.get("ConfigMap", volume["configMap"]["name"])
        require(source is not None, f"ConfigMap {volume['configMap']['name']} is not rendered")
        items = volume["configMap"].get("items")
        keys = set(source.get("data") or {}) | set(source.get("binaryData") or {})
        present = {i["path"] for i in items if i["key"] in keys} if items else keys
        offset = posixpath.relpath(directory, mount["mountPath"])
        for doc_id, doc in documents.items():
            want = posixpath.normpath(posixpath.join(offset, doc["key"]))
            require(want in present, f"document {doc_id!r} ({doc['key']}) is not in the documents volume")
    return f"{len(documents)} document(s), in the documents volume"


def _is_redis_image(image: str) -> bool:
    return bool(re.match(r"(.*/)?(redis|valkey)(:|@|$)", image))


@k8s_check("redis")
def check_redis(b: Bundle) -> str | None:
    found = False
    for w in b.workloads():
        for c in pod_spec(w).get("containers", []):
            if not _is_redis_image(c.get("image", "")):
                continue
            words = " ".join(str(x) for x in (c.get("command") or []) + (c.get("args") or []))
            where = f"{w['kind']}/{w['metadata']['name']}"
            for pattern, why in REFUSED_IMAGES:
                require(not re.search(pattern, c["image"]), f"{where}: {c['image']}: {why}")
            require(re.search(r"--maxmemory-policy\s+noeviction\b", words),
                    f"{where}: maxmemory-policy is not noeviction (evictions break single use)")
            require(re.search(r"--appendonly\s+yes\b", words), f"{where}: no append-only file")
            found = True
    if not found:
        return "no in-cluster Redis"


# ---- Compose ----------------------------------------------------------------------------------

S3_PATTERN = r"seaweedfs|versitygw|garage|minio|s3"
# Every image the compose stack may run besides docgate's own, with its licence: a new image
# needs its licence (and that it is maintained) looked at and recorded here first. Redis's own
# images (source-available since 7.4) and MinIO's (its community edition in maintenance mode,
# no more images published) are refused outright.
COMPOSE_IMAGE_LICENCES = {
    "valkey/valkey": "BSD-3-Clause",
    "chrislusf/seaweedfs": "Apache-2.0",
    "amazon/aws-cli": "Apache-2.0",
    "axllent/mailpit": "MIT",
}
REFUSED_IMAGES = (
    (r"^(docker\.io/)?(library/)?redis(:|@|$)|^(docker\.io/)?redis/",
     "Redis's images are under a source-available licence: use valkey/valkey"),
    (r"^(docker\.io/|quay\.io/)?minio/", "MinIO's community images are in maintenance mode: use SeaweedFS"),
)

def _compose_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: str(v) for k, v in env.items()}


def _published(service: dict) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of every published port."""
    out = []
    for p in service.get("ports") or []:
        if isinstance(p, dict):
            out.append((p.get("host_ip", "0.0.0.0"), int(p.get("published", 0)), int(p["target"])))
            continue
        parts = str(p).split("/")[0].rsplit(":", 2)
        if len(parts) == 3:
            out.append((parts[0].strip("[]"), int(parts[1]), int(parts[2])))
        elif len(parts) == 2:
            out.append(("0.0.0.0", int(parts[0]), int(parts[1])))
        else:
            out.append(("0.0.0.0", 0, int(parts[0])))
    return out


def _docgates(c: dict) -> list[str]:
    """The services running docgate: `docgate`, and any other of its image (e.g. the cluster
    profile's)."""
    services = c["doc"]["services"]
    image = services[CONTAINER].get("image")
    return [CONTAINER] + [n for n, s in services.items() if n != CONTAINER and image and s.get("image") == image]


def _redis_servers(services: dict) -> list[str]:
    """The services running a Redis or Valkey server (not the one-shot clients of those images)."""
    out = []
    for name, s in services.items():
        command = s.get("command") or []
        words = command if isinstance(command, list) else shlex.split(command)
        if words and re.fullmatch(r"(.*/)?(redis|valkey)-server", str(words[0])):
            out.append(name)
    return out


def _words(service: dict) -> str:
    command = service.get("command") or []
    return " ".join(str(x) for x in (command if isinstance(command, list) else shlex.split(command)))


def _service_like(services: dict, pattern: str) -> str | None:
    for name, s in services.items():
        if re.search(pattern, name) or re.search(pattern, s.get("image", "")):
            return name
    return None


@compose_check("compose-services")
def check_compose_services(c: dict) -> None:
    services = c["doc"].get("services") or {}
    require(CONTAINER in services, "no docgate service")
    for what, pattern in (("Redis", r"redis|valkey"), ("S3", S3_PATTERN), ("mail catcher", r"mailpit|mailhog|smtp")):
        require(_service_like({k: v for k, v in services.items() if k != CONTAINER}, pattern),
                f"no {what} service")


@compose_check("compose-build")
def check_compose_build(c: dict) -> None:
    for name in _docgates(c):
        _check_compose_build(c, name, c["doc"]["services"][name])


def _check_compose_build(c: dict, name: str, s: dict) -> None:
    build = s.get("build") or {}
    require(isinstance(build, dict), "docgate's build is not a map with a dockerfile")
    context = os.path.normpath(os.path.join(c["dir"], build.get("context", ".")))
    dockerfile = os.path.join(context, build.get("dockerfile", "Dockerfile"))
    require(os.path.isfile(dockerfile), f"build dockerfile {dockerfile} does not exist")
    require(os.path.isfile(os.path.join(context, "Cargo.toml")), "build context is not the repository root")
    require(str(s.get("user", "")).split(":")[0] == str(USER_ID), f"{name} does not run as {USER_ID}")
    require(s.get("read_only") is True, f"{name}'s root filesystem is writable")
    require("ALL" in (s.get("cap_drop") or []), f"{name} keeps its capabilities")


@compose_check("compose-depends")
def check_compose_depends(c: dict) -> None:
    for name in _docgates(c):
        _check_compose_depends(c, name)


def _check_compose_depends(c: dict, me: str) -> None:
    services = c["doc"]["services"]
    deps = services[me].get("depends_on") or {}
    if isinstance(deps, list):
        deps = {d: {"condition": "service_started"} for d in deps}
    others = {k: v for k, v in services.items() if k not in _docgates(c)}
    for what, pattern in (("Redis", r"redis|valkey"), ("S3", S3_PATTERN), ("mail", r"mailpit|mailhog|smtp")):
        names = [n for n in deps if n in others and (re.search(pattern, n) or re.search(pattern, others[n].get("image", "")))]
        require(names, f"{me} does not depend on {what}")
        for n in names:
            condition = (deps[n] or {}).get("condition", "service_started")
            require(condition in ("service_healthy", "service_completed_successfully"),
                    f"{me} waits for {n} only to start ({condition})")
    for n, dep in deps.items():
        require(n in services, f"{me} depends on {n!r}, which is not a service")
        if (dep or {}).get("condition") == "service_healthy":
            require((services[n].get("healthcheck") or {}).get("test"), f"{n} has no healthcheck to wait for")


@compose_check("compose-ports")
def check_compose_ports(c: dict) -> None:
    services = c["doc"]["services"]
    docgates = _docgates(c)
    host_ports = [(host, port) for name in services for host, port, _ in _published(services[name])]
    require(len(host_ports) == len(set(p for _, p in host_ports)), f"a host port is published twice: {host_ports}")
    for name in docgates:
        _check_compose_ports(services[name])
    for name, other in services.items():
        if name in docgates:
            continue
        for host, _, target in _published(other):
            require(is_loopback(host), f"{name} publishes port {target} on {host}, not 127.0.0.1")


def _check_compose_ports(s: dict) -> None:
    env = _compose_env(s)
    _, public = parse_listen(env.get("DOCGATE_LISTEN", DEFAULT_LISTEN))
    admin_host, admin = parse_listen(env.get("DOCGATE_ADMIN_LISTEN", DEFAULT_ADMIN_LISTEN))
    published = _published(s)
    require(any(t == public for _, _, t in published), f"docgate's public port {public} is not published")
    for host, _, target in published:
        require(target in (public, admin), f"docgate publishes container port {target}, on which it does not listen")
        if target == admin:
            require(is_loopback(host), f"the admin port is published on {host}, not 127.0.0.1")
    require(not is_loopback(admin_host), "DOCGATE_ADMIN_LISTEN is loopback inside the container: unreachable")


@compose_check("compose-secrets")
def check_compose_secrets(c: dict) -> None:
    declared = c["doc"].get("secrets") or {}
    for name, spec in declared.items():
        require("file" in (spec or {}), f"secret {name} is not a file")
        path = os.path.join(c["dir"], spec["file"])
        require(os.path.isfile(path) and os.path.getsize(path) > 0, f"secret {name}: {spec['file']} is missing or empty")
    for service_name, s in c["doc"]["services"].items():
        granted = {x if isinstance(x, str) else x["source"]: (x if isinstance(x, str) else x.get("target", x["source"]))
                   for x in s.get("secrets") or []}
        for source in granted:
            require(source in declared, f"{service_name} uses secret {source!r}, which is not declared")
        for var, value in _compose_env(s).items():
            if var.endswith("_FILE"):
                require(value.startswith("/run/secrets/") and value[len("/run/secrets/"):] in granted.values(),
                        f"{service_name}: {var}={value} is no secret granted to it")
        for var in _compose_env(s):
            if re.search(r"(SECRET|PASSWORD|TOKEN_KEYS|_URL$)", var) and not var.endswith("_FILE") \
                    and var not in ("DOCGATE_PUBLIC_URL", "AWS_ENDPOINT_URL"):
                raise Problem(f"{service_name}: {var} is set in clear; use {var}_FILE and a secret")


@compose_check("compose-redis")
def check_compose_redis(c: dict) -> None:
    services = c["doc"]["services"]
    names = _redis_servers(services)
    require(names, "no Redis service")
    for name in names:
        words = _words(services[name])
        require(re.search(r"--maxmemory-policy\s+noeviction\b", words), f"{name}: maxmemory-policy is not noeviction")
        require(re.search(r"--appendonly\s+yes\b", words), f"{name}: no append-only file")


@compose_check("compose-images")
def check_compose_images(c: dict) -> str:
    """Maintained, permissively licensed images, each pinned by a tag."""
    services = c["doc"]["services"]
    docgates = _docgates(c)
    seen = set()
    for name, s in services.items():
        if name in docgates:
            continue
        image = str(s.get("image", ""))
        require(image, f"{name} has no image")
        for pattern, why in REFUSED_IMAGES:
            require(not re.search(pattern, image), f"{name}: {image}: {why}")
        repository, _, tag = image.split("@")[0].rpartition(":")
        require(repository and tag and "/" not in tag, f"{name}: {image} has no tag")
        require(tag != "latest", f"{name}: {image} is :latest")
        repository = re.sub(r"^docker\.io/", "", repository)
        require(repository in COMPOSE_IMAGE_LICENCES,
                f"{name}: {repository} is not among the images whose licence is recorded "
                f"(COMPOSE_IMAGE_LICENCES in deploy/check_manifests.py)")
        seen.add(f"{repository} {COMPOSE_IMAGE_LICENCES[repository]}")
    return ", ".join(sorted(seen))


@compose_check("compose-cluster")
def check_compose_cluster(c: dict) -> str | None:
    """The `cluster` profile: at least three cluster-mode nodes, formed by one
    `--cluster create` naming them all, and a docgate pointed at those nodes."""
    services = c["doc"]["services"]
    nodes = [n for n in _redis_servers(services) if re.search(r"--cluster-enabled\s+yes\b", _words(services[n]))]
    if not nodes:
        return "no cluster profile"
    require(len(nodes) >= 3, f"a cluster of {len(nodes)} node(s): a Redis Cluster needs at least three masters")
    for n in nodes:
        words = _words(services[n])
        require(re.search(rf"--cluster-announce-hostname\s+{re.escape(n)}\b", words),
                f"{n} does not announce its service name: the slot map would name container addresses")
    creators = [n for n, s in services.items()
                if "--cluster create" in " ".join(str(x) for x in (s.get("entrypoint") or []) + (s.get("command") or []))]
    require(len(creators) == 1, f"{len(creators)} services run `--cluster create`, not one")
    script = " ".join(str(x) for x in (services[creators[0]].get("entrypoint") or []) + (services[creators[0]].get("command") or []))
    deps = services[creators[0]].get("depends_on") or {}
    for n in nodes:
        require(n in script, f"{creators[0]} does not put {n} in the cluster")
        require((deps.get(n) or {}).get("condition") == "service_healthy", f"{creators[0]} does not wait for {n}")
    users = [d for d in _docgates(c) if "DOCGATE_REDIS_CLUSTER_URLS_FILE" in _compose_env(services[d])
             or "DOCGATE_REDIS_CLUSTER_URLS" in _compose_env(services[d])]
    require(users, "no docgate service uses DOCGATE_REDIS_CLUSTER_URLS")
    for d in users:
        env = _compose_env(services[d])
        require("DOCGATE_REDIS_URL_FILE" not in env and "DOCGATE_REDIS_URL" not in env,
                f"{d} sets DOCGATE_REDIS_URL beside DOCGATE_REDIS_CLUSTER_URLS: docgate refuses both")
        require(((services[d].get("depends_on") or {}).get(creators[0]) or {}).get("condition")
                == "service_completed_successfully", f"{d} does not wait for {creators[0]} to form the cluster")
        value = env.get("DOCGATE_REDIS_CLUSTER_URLS")
        if value is None:
            target = env["DOCGATE_REDIS_CLUSTER_URLS_FILE"][len("/run/secrets/"):]
            granted = {x if isinstance(x, str) else x.get("target", x["source"]):
                       x if isinstance(x, str) else x["source"] for x in services[d].get("secrets") or []}
            spec = (c["doc"].get("secrets") or {}).get(granted.get(target, ""), {})
            require("file" in spec, f"{d}: the cluster URLs' secret is not a file")
            value = open(os.path.join(c["dir"], spec["file"]), encoding="utf-8").read()
        seeds = [u.strip() for u in value.strip().split(",") if u.strip()]
        hosts = set()
        for url in seeds:
            m = re.fullmatch(r"rediss?://(?:[^@/]*@)?([^:/]+)(?::(\d+))?/?", url)
            require(m, f"{d}: seed {url!r} is not a redis:// or rediss:// URL")
            hosts.add(m[1])
        require(hosts <= set(nodes), f"{d}: seeds {sorted(hosts - set(nodes))} are not cluster nodes")
    return f"{len(nodes)} masters: {', '.join(nodes)}"


@compose_check("compose-config-names")
def check_compose_config_names(c: dict) -> str | None:
    """Every DOCGATE_* variable a docgate service sets is one docgate reads."""
    if not c.get("config_names"):
        return "no source to check against"
    names = set()
    for name in _docgates(c):
        names |= set(_compose_env(c["doc"]["services"][name]))
    unknown, pending = _unknown_names(names, c["config_names"], c["secret_names"])
    require(not unknown, f"docgate does not read {', '.join(unknown)}")
    if pending:
        return f"in the contract, not yet in src/config: {', '.join(pending)}"


@compose_check("compose-shutdown")
def check_compose_shutdown(c: dict) -> None:
    for name in _docgates(c):
        _check_compose_shutdown(c["doc"]["services"][name])


def _check_compose_shutdown(s: dict) -> None:
    env = _compose_env(s)
    drain = parse_duration(env.get("DOCGATE_DRAIN_TIMEOUT", DEFAULT_DRAIN))
    delay = parse_duration(env.get("DOCGATE_SHUTDOWN_DELAY", DEFAULT_SHUTDOWN_DELAY))
    grace = parse_duration(s.get("stop_grace_period", "10s"))
    require(grace > drain + delay,
            f"stop_grace_period {grace:g}s <= DOCGATE_SHUTDOWN_DELAY {delay:g}s + "
            f"DOCGATE_DRAIN_TIMEOUT {drain:g}s")


@compose_check("compose-files")
def check_compose_files(c: dict) -> None:
    for name in _docgates(c):
        _check_compose_files(c, c["doc"]["services"][name])


def _check_compose_files(c: dict, s: dict) -> None:
    env = _compose_env(s)
    catalog = env.get("DOCGATE_CATALOG", "/etc/docgate/catalog.toml")
    mounts = {}
    for v in s.get("volumes") or []:
        parts = v.split(":") if isinstance(v, str) else [v.get("source", ""), v["target"]]
        mounts[parts[1]] = parts[0]
    require(catalog in mounts, f"DOCGATE_CATALOG={catalog} is not mounted")
    source = os.path.join(c["dir"], mounts[catalog])
    require(os.path.isfile(source), f"the catalog {mounts[catalog]} does not exist")
    tomllib.loads(open(source, encoding="utf-8").read())
    for var in ("DOCGATE_OUTBOX_DIR", "DOCGATE_REQUEST_LOG"):
        path = env.get(var, c["image_env"].get(var, ""))
        directory = path if var.endswith("DIR") else posixpath.dirname(path)
        require(any(under(directory, target) for target, src in mounts.items() if not src.startswith(".")),
                f"{var}={path} is on no volume, and the root is read-only")


# ---- Image ------------------------------------------------------------------------------------

def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") and not current:
            continue
        if stripped.startswith("#"):
            continue
        current += " " + stripped.rstrip("\\").strip() if current else stripped.rstrip("\\").strip()
        if stripped.endswith("\\"):
            continue
        if current:
            word, _, rest = current.partition(" ")
            out.append((word.upper(), rest.strip()))
        current = ""
    return out


def final_stage(instructions):
    starts = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    return instructions[starts[-1]:] if starts else []


def dockerfile_env(instructions) -> dict[str, str]:
    env = {}
    for word, rest in final_stage(instructions):
        if word == "ENV":
            for token in shlex.split(rest):
                if "=" in token:
                    k, v = token.split("=", 1)
                    env[k] = v
    return env


@image_check("dockerfile")
def check_dockerfile(i: dict) -> None:
    ins = i["instructions"]
    final = final_stage(ins)
    require(len([w for w, _ in ins if w == "FROM"]) >= 2, "not a multi-stage build")
    words = {w for w, _ in final}
    require("HEALTHCHECK" not in {w for w, _ in ins}, "a HEALTHCHECK: the orchestrator's probes are the health checks")
    users = [r for w, r in final if w == "USER"]
    require(users and re.fullmatch(rf"{USER_ID}(:{USER_ID})?", users[-1]), f"final USER is {users[-1:] or 'unset'}, not {USER_ID}")
    exposed = {int(p.split("/")[0]) for w, r in final if w == "EXPOSE" for p in r.split()}
    env = dockerfile_env(ins)
    for var, default in (("DOCGATE_LISTEN", DEFAULT_LISTEN), ("DOCGATE_ADMIN_LISTEN", DEFAULT_ADMIN_LISTEN)):
        host, port = parse_listen(env.get(var, default))
        require(port in exposed, f"{var} port {port} is not EXPOSEd ({sorted(exposed)})")
        require(not is_loopback(host), f"{var} is loopback in the image")
    require(next((r for w, r in final if w == "ENTRYPOINT"), None) == '["/docgate"]', "ENTRYPOINT is not [\"/docgate\"]")
    require(next((r for w, r in final if w == "CMD"), None) == '["serve"]', "CMD is not [\"serve\"]")
    require("VOLUME" in words and "/var/lib/docgate" in next(r for w, r in final if w == "VOLUME"),
            "/var/lib/docgate is not a VOLUME")
    labels = " ".join(r for w, r in final if w == "LABEL")
    for key in ("title", "version", "revision", "licenses"):
        require(f"org.opencontainers.image.{key}=" in labels, f"no org.opencontainers.image.{key} label")
    builds = [r for w, r in ins if w == "RUN" and "cargo build" in r]
    require(len(builds) >= 2, "no dependency layer: expected a cargo build before the source is copied")
    require(all("--release" in r and "--locked" in r for r in builds), "cargo build without --release --locked")
    rust_version = re.search(r'^rust-version\s*=\s*"([\d.]+)"', i["cargo_toml"], re.M)
    arg = next((r for w, r in ins if w == "ARG" and r.startswith("RUST_VERSION=")), "")
    require(rust_version and arg == f"RUST_VERSION={rust_version.group(1)}",
            f"builder's {arg or 'RUST_VERSION'} is not Cargo.toml's rust-version")
    copies = [r for w, r in ins if w == "COPY" and "--from" not in r]
    first_src = next((n for n, (w, r) in enumerate(ins) if w == "COPY" and "src" in r.split()[:-1]), None)
    first_build = next((n for n, (w, r) in enumerate(ins) if w == "RUN" and "cargo build" in r), None)
    require(copies and first_build is not None and first_src is not None and first_build < first_src,
            "the source is copied before the dependency layer is built")
    # COPY keeps the context's modification times, older than the placeholder's build: without
    # a touch, cargo would find the placeholder fresh and ship it.
    later = [r for n, (w, r) in enumerate(ins) if w == "RUN" and n > first_src and "cargo build" in r]
    require(later and re.search(r"touch\s+(\S+\s+)*src/main\.rs", later[0]),
            "the real source is built without touching src/main.rs: cargo would keep the placeholder")


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    excluded = False
    parts = path.split("/")
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = posixpath.normpath(pattern.strip("/"))
        for n in range(1, len(parts) + 1):
            if fnmatch.fnmatchcase("/".join(parts[:n]), pattern):
                excluded = not negate
                break
    return excluded


@image_check("dockerignore")
def check_dockerignore(i: dict) -> None:
    patterns = [l.strip() for l in i["dockerignore"].splitlines() if l.strip() and not l.strip().startswith("#")]
    for path in ("target/release/docgate", "fuzz/target/x", ".git/HEAD", "outbox/a.eml", "requests.jsonl",
                 "deploy/compose-secrets/token_keys"):
        require(dockerignore_excludes(patterns, path), f"{path} would be sent to the builder")
    for w, r in i["instructions"]:
        if w == "COPY" and "--from" not in r:
            for source in shlex.split(r)[:-1]:
                if source.startswith("--"):
                    continue
                require(not dockerignore_excludes(patterns, source.rstrip("/")),
                        f"COPY {source}: excluded by .dockerignore")
                require(os.path.exists(os.path.join(i["root"], source)), f"COPY {source}: no such path")


# ---- running ----------------------------------------------------------------------------------

@dataclass
class Passed:
    """A check passed; `note` says what it found nothing to check, if so."""

    note: str | None = None


def run(name: str, fn, arg) -> str | Passed:
    """Passed, or what is wrong."""
    try:
        return Passed(fn(arg))
    except Problem as e:
        return str(e)
    except Exception as e:  # a check that crashes on its input has not checked it
        return f"internal error: {type(e).__name__}: {e}"


def run_all(bundles, compose, image, verbose=True) -> int:
    failures = 0

    def report(scope, name, result):
        nonlocal failures
        if isinstance(result, Passed):
            if verbose:
                print(f"ok   {scope}: {name}" + (f" ({result.note})" if result.note else ""))
        else:
            failures += 1
            if verbose:
                print(f"FAIL {scope}: {name}: {result}")

    for b in bundles:
        for name, fn in K8S_CHECKS:
            report(f"k8s/{b.name}", name, run(name, fn, b))
    if compose:
        for name, fn in COMPOSE_CHECKS:
            report("compose", name, run(name, fn, compose))
    if image:
        for name, fn in IMAGE_CHECKS:
            report("image", name, run(name, fn, image))
    return failures


# ---- self-test: every check must catch a breakage ---------------------------------------------

def _docgate(b):
    return b.container()


def _set_env(b, name, value):
    for var in _docgate(b).setdefault("env", []):
        if var["name"] == name:
            var["value"] = value
            return
    _docgate(b)["env"].append({"name": name, "value": value})


def _settings(b):
    name = _docgate(b)["envFrom"][0]["configMapRef"]["name"]
    return b.get("ConfigMap", name)["data"]


def _np(b):
    return b.get("NetworkPolicy", "docgate")["spec"]


K8S_MUTATIONS = {
    "workload": ("image :latest", lambda b: _docgate(b).update(image="docgate:latest")),
    "probes": ("readiness on /healthz", lambda b: _docgate(b)["readinessProbe"]["httpGet"].update(path="/healthz")),
    "probe-port": ("liveness on the public port",
                   lambda b: _docgate(b)["livenessProbe"]["httpGet"].update(port="http")),
    "listeners": ("DOCGATE_LISTEN on 8081", lambda b: _set_env(b, "DOCGATE_LISTEN", "0.0.0.0:8081")),
    "service": ("http targets 8080 by number",
                lambda b: b.service()["spec"]["ports"][0].update(targetPort=8080)),
    "ingress-routes": ("Ingress routes to admin",
                       lambda b: b.get("Ingress", "docgate")["spec"]["rules"][0]["http"]["paths"][0]["backend"]
                       ["service"]["port"].update(name="admin")),
    "ingress-streaming": ("proxy buffering left on",
                          lambda b: b.get("Ingress", "docgate")["metadata"]["annotations"]
                          .pop("nginx.ingress.kubernetes.io/proxy-buffering")),
    "ingress-slow-clients": ("request buffering off",
                             lambda b: b.get("Ingress", "docgate")["metadata"]["annotations"]
                             .update({"nginx.ingress.kubernetes.io/proxy-request-buffering": "off"})),
    "ingress-access-log": ("access log left on",
                           lambda b: b.get("Ingress", "docgate")["metadata"]["annotations"]
                           .pop("nginx.ingress.kubernetes.io/enable-access-log")),
    "shutdown": ("grace 30s", lambda b: pod_spec(b.deployment()).update(terminationGracePeriodSeconds=30)),
    "security-context": ("writable root", lambda b: _docgate(b)["securityContext"].update(readOnlyRootFilesystem=False)),
    "writable-paths": ("no data volume", lambda b: _docgate(b).update(
        volumeMounts=[m for m in _docgate(b)["volumeMounts"] if m["mountPath"] != "/var/lib/docgate"])),
    "secret-files": ("token keys outside the secret", lambda b: _set_env(b, "DOCGATE_TOKEN_KEYS_FILE", "/etc/docgate/keys")),
    "references": ("misspelt Secret", lambda b: next(v for v in pod_spec(b.deployment())["volumes"] if "secret" in v)
                   ["secret"].update(secretName="docgate-secret")),
    "selectors": ("PDB selects nothing", lambda b: b.get("PodDisruptionBudget", "docgate")["spec"]["selector"]
                  ["matchLabels"].update({"app.kubernetes.io/name": "docgate-x"})),
    "network-policy": ("ingress-nginx admitted to 9090",
                       lambda b: _np(b)["ingress"][1]["from"].append(
                           {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": INGRESS_NAMESPACE}}})),
    "replicas": ("one replica", lambda b: b.deployment()["spec"].update(replicas=1)),
    "resources": ("no memory limit", lambda b: _docgate(b)["resources"]["limits"].pop("memory")),
    "service-monitor": ("scrapes /metric", lambda b: b.get("ServiceMonitor", "docgate")["spec"]["endpoints"][0]
                        .update(path="/metric")),
    "trusted-proxies": ("trusts 0.0.0.0/0", lambda b: _settings(b).update(DOCGATE_TRUSTED_PROXIES="0.0.0.0/0")),
}
# Checks of what only a bundle on a Redis Cluster has.
K8S_CLUSTER_MUTATIONS = {
    "redis-topology": ("a standalone URL beside the cluster's", lambda b: _set_env(
        b, "DOCGATE_REDIS_URL_FILE", "/run/secrets/docgate/redis-url")),
    "config-names": ("a misspelt DOCGATE_REDIS_CLUSTER_URL", lambda b: _set_env(b, "DOCGATE_REDIS_CLUSTER_URL", "x")),
}
# Checks of what only a bundle on Sentinel has.
K8S_SENTINEL_MUTATIONS = {
    "redis-topology": ("no egress to 26379", lambda b: _np(b).update(
        egress=[r for r in _np(b)["egress"] if ("TCP", 26379) not in (_np_ports(b, r) or set())])),
    "config-names": ("DOCGATE_CATALOG_FILE, not a secret", lambda b: _set_env(b, "DOCGATE_CATALOG_FILE", "/x")),
}
# Checks of what only a bundle behind a Gateway API route has.
K8S_GATEWAY_MUTATIONS = {
    "network-policy": ("the public port still open to ingress-nginx", lambda b: _np(b)["ingress"][0]["from"].append(
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": INGRESS_NAMESPACE}}})),
    "gateway-route": ("a 60s request timeout", lambda b: b.of_kind("HTTPRoute")[0]["spec"]["rules"][0].update(
        timeouts={"request": "60s"})),
}
# Checks of things only a bundle without S3 / with an in-cluster Redis has.
K8S_LOCAL_MUTATIONS = {
    "catalog": ("document missing from the documents volume",
                lambda b: next(v for v in pod_spec(b.deployment())["volumes"] if v["name"] == "documents")
                ["configMap"]["items"][0].update(path="resume/other.pdf")),
    "redis": ("allkeys-lru", lambda b: next(c for w in b.workloads() for c in pod_spec(w)["containers"]
                                            if _is_redis_image(c["image"])).update(
        command=[x if x != "noeviction" else "allkeys-lru" for x in next(
            c for w in b.workloads() for c in pod_spec(w)["containers"] if _is_redis_image(c["image"]))["command"]])),
}


def _svc(c, pattern):
    return c["doc"]["services"][_service_like({k: v for k, v in c["doc"]["services"].items() if k != CONTAINER}, pattern)]


COMPOSE_MUTATIONS = {
    "compose-services": ("no mail catcher", lambda c: c["doc"]["services"].pop(
        _service_like({k: v for k, v in c["doc"]["services"].items() if k != CONTAINER}, r"mailpit"))),
    "compose-build": ("writable root", lambda c: c["doc"]["services"][CONTAINER].update(read_only=False)),
    "compose-depends": ("no wait for Redis", lambda c: c["doc"]["services"][CONTAINER]["depends_on"].pop("valkey")),
    "compose-ports": ("admin on every interface", lambda c: c["doc"]["services"][CONTAINER].update(
        ports=["8080:8080", "9090:9090"])),
    "compose-secrets": ("undeclared secret", lambda c: c["doc"]["services"][CONTAINER]["secrets"].append("nope")),
    "compose-redis": ("no AOF on a cluster node", lambda c: _svc(c, r"valkey-node-2").update(
        command=["valkey-server", "--cluster-enabled", "yes", "--maxmemory-policy", "noeviction"])),
    "compose-shutdown": ("10s grace", lambda c: c["doc"]["services"][CONTAINER].update(stop_grace_period="10s")),
    "compose-images": ("a Redis image", lambda c: _svc(c, r"^valkey$").update(image="redis:7.4-alpine")),
    "compose-cluster": ("two nodes created", lambda c: c["doc"]["services"]["valkey-cluster-init"].update(
        entrypoint=[x.replace("valkey-node-3", "") for x in c["doc"]["services"]["valkey-cluster-init"]["entrypoint"]])),
    "compose-config-names": ("DOCGATE_SMTP_URLS_FILE", lambda c: c["doc"]["services"][CONTAINER]["environment"]
                             .update(DOCGATE_SMTP_URLS_FILE="/run/secrets/smtp_url")),
    "compose-files": ("catalog not mounted", lambda c: c["doc"]["services"][CONTAINER].update(
        volumes=[v for v in c["doc"]["services"][CONTAINER]["volumes"] if "catalog" not in v])),
}

IMAGE_MUTATIONS = {
    "dockerfile": ("a HEALTHCHECK", lambda i: i["instructions"].append(("HEALTHCHECK", "CMD [\"/docgate\", \"check\"]"))),
    "dockerignore": ("nothing ignored", lambda i: i.update(dockerignore="")),
}


def self_test(bundles, compose, image) -> int:
    """Each mutation, on a fresh copy, must make its check fail without crashing it."""
    results = []
    if run_all(bundles, compose, image, verbose=False):
        print("FAIL self-test: the unmodified inputs do not pass")
        return 1
    checks = dict(K8S_CHECKS)
    ha = next((b for b in bundles if b.ha), None)
    cluster = next((b for b in bundles if _topology(b.env()) == "cluster"), None)
    sentinel = next((b for b in bundles if _topology(b.env()) == "sentinel"), None)
    gateway = next((b for b in bundles if b.of_kind("HTTPRoute")), None)
    local = next((b for b in bundles if any(_is_redis_image(c.get("image", "")) for w in b.workloads()
                                            for c in pod_spec(w).get("containers", []))), None)
    for table, bundle in ((K8S_MUTATIONS, ha), (K8S_CLUSTER_MUTATIONS, cluster),
                          (K8S_SENTINEL_MUTATIONS, sentinel), (K8S_GATEWAY_MUTATIONS, gateway), (K8S_LOCAL_MUTATIONS, local)):
        for name, (what, mutate) in table.items():
            if bundle is None:
                results.append((f"k8s {name}", what, "no bundle to break"))
                continue
            broken = copy.deepcopy(bundle)
            mutate(broken)
            results.append((f"k8s/{bundle.name} {name}", what, run(name, checks[name], broken)))
    for table, checks_of, subject in ((COMPOSE_MUTATIONS, dict(COMPOSE_CHECKS), compose),
                                      (IMAGE_MUTATIONS, dict(IMAGE_CHECKS), image)):
        for name, (what, mutate) in table.items():
            broken = copy.deepcopy(subject)
            mutate(broken)
            results.append((name, what, run(name, checks_of[name], broken)))
    covered = {r[0].split()[-1] for r in results}
    for name, _ in K8S_CHECKS + COMPOSE_CHECKS + IMAGE_CHECKS:
        if name not in covered:
            results.append((name, "(no mutation)", Passed()))
    failures = 0
    for name, what, problem in results:
        caught = isinstance(problem, str) and not problem.startswith(("internal error", "no bundle"))
        failures += not caught
        print(f"ok   self-test {name}: {what}: caught ({problem})" if caught
              else f"FAIL self-test {name}: {what}: not caught ({problem})")
    return failures


# ---- command line -----------------------------------------------------------------------------

def read_config_names(source: str) -> tuple[set[str], set[str]]:
    """The DOCGATE_* names docgate's source spells out, and those read through `secret(ENV_*)`
    (so also from NAME_FILE)."""
    names, consts, secret_consts = set(), {}, set()
    for root, _, files in os.walk(source):
        for f in files:
            if f.endswith(".rs"):
                text = open(os.path.join(root, f), encoding="utf-8").read()
                names |= set(re.findall(r'"(DOCGATE_[A-Z0-9_]+)"', text))
                consts.update(re.findall(r'const (ENV_[A-Z0-9_]+): &str = "(DOCGATE_[A-Z0-9_]+)"', text))
                secret_consts |= set(re.findall(r"\bsecret\((ENV_[A-Z0-9_]+)\)", text))
    return names, {consts[c] for c in secret_consts if c in consts}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k8s", action="append", default=[], metavar="NAME=RENDERED.yaml")
    parser.add_argument("--ha", action="append", default=[], metavar="NAME",
                        help="a bundle that must run at least two replicas")
    parser.add_argument("--operator-provided", action="append", default=[], metavar="NAME=Kind/name,...")
    parser.add_argument("--extra-egress", action="append", default=[], metavar="NAME=PORT,...",
                        help="TCP ports a bundle's docgate may also reach (e.g. an in-cluster mail catcher)")
    parser.add_argument("--edge", action="append", default=[], metavar="NAME=NAMESPACE,...",
                        help=f"namespaces of a bundle's edge data plane (default {INGRESS_NAMESPACE})")
    parser.add_argument("--source", metavar="DIR", help="docgate's src/: the DOCGATE_* names it reads")
    parser.add_argument("--compose")
    parser.add_argument("--dockerfile")
    parser.add_argument("--dockerignore")
    parser.add_argument("--cargo-toml")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()

    def per_bundle(values):
        out = {}
        for v in values:
            name, _, rest = v.partition("=")
            out.setdefault(name, set()).update(x for x in rest.split(",") if x)
        return out

    provided, extra, edge = per_bundle(args.operator_provided), per_bundle(args.extra_egress), per_bundle(args.edge)
    config_names, secret_names = read_config_names(args.source) if args.source else (set(), set())
    bundles = []
    for spec in args.k8s:
        name, _, path = spec.partition("=")
        with open(path, encoding="utf-8") as f:
            objects = [o for o in yaml.safe_load_all(f) if o]
        bundles.append(Bundle(name, objects, ha=name in args.ha, operator_provided=provided.get(name, set()),
                              extra_egress={("TCP", int(p)) for p in extra.get(name, set())},
                              edge=edge.get(name) or {INGRESS_NAMESPACE},
                              config_names=config_names, secret_names=secret_names))
    image = None
    if args.dockerfile:
        with open(args.dockerfile, encoding="utf-8") as f:
            instructions = parse_dockerfile(f.read())
        image = {
            "instructions": instructions,
            "dockerignore": open(args.dockerignore, encoding="utf-8").read() if args.dockerignore else "",
            "cargo_toml": open(args.cargo_toml, encoding="utf-8").read() if args.cargo_toml else "",
            "root": os.path.dirname(os.path.abspath(args.dockerignore or ".")),
        }
    compose = None
    if args.compose:
        with open(args.compose, encoding="utf-8") as f:
            compose = {"doc": yaml.safe_load(f), "dir": os.path.dirname(os.path.abspath(args.compose)),
                       "config_names": config_names, "secret_names": secret_names,
                       "image_env": dockerfile_env(image["instructions"]) if image else {}}
    if args.self_test:
        return 1 if self_test(bundles, compose, image) else 0
    return 1 if run_all(bundles, compose, image) else 0


if __name__ == "__main__":
    sys.exit(main())
