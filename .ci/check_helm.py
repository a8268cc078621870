#!/usr/bin/env python3
# .ci/check_helm.py: offline checks of helm/api-tokens (strict lint, renders, Kubernetes schemas, guards, yamllint) and the Dockerfile; run through .ci/check-helm.
"""Checks the api-tokens Helm chart without a cluster or a `helm` binary.

1. `helm lint --strict` (helm-python-sdk, Helm 4 as a library) with default and all-on values.
2. Renders (`helm template`) several value sets, writes every manifest to a temporary
   directory, checks the contract the Deployment must keep (probes, security context,
   grace period, env, ports, checksums, the headless Service and the migration hook Job when
   asked for), and runs `kubernetes-validate -k 1.30.0 --strict` on every
   built-in resource. The ServiceMonitor is a CRD that kubernetes-validate has no schema for:
   it is validated against the Prometheus Operator's generated models instead, unknown
   fields rejected, and that is printed.
   Secret and setting changes change the pod template's checksums (so the pods roll).
3. Value sets that must fail do fail, with the expected message (the SQLite guard for
   several replicas, schema errors, the grace period check, ...).
4. The chart's README.md has a row for every value in values.yaml.
5. yamllint --strict on values.yaml and Chart.yaml.
6. hadolint on the Dockerfile, plus the facts the chart relies on (user, ports, entrypoint).

Exits non-zero on the first failed group, after printing what failed.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "api-tokens"
VENV_BIN = Path(sys.executable).parent
KUBE_VERSION = "1.30.0"
RELEASE = "api-tokens"
NAMESPACE = "api-tokens"
CRD_KINDS = {"ServiceMonitor"}

PG_URL = "postgres://api_tokens:change-me@postgres.databases.svc.cluster.local:5432/api_tokens"

# Every optional part on: PostgreSQL from a created Secret, autoscaling, PDB, metrics with a
# ServiceMonitor, NetworkPolicy with egress, and every free-form list/map filled once.
ALL_ON: dict[str, Any] = {
    "replicaCount": 3,
    "image": {"repository": "registry.example.com/api-tokens",
              "digest": "sha256:" + "0123456789abcdef" * 4},
    "imagePullSecrets": [{"name": "registry"}],
    "serviceAccount": {"annotations": {"example.com/role": "api-tokens"}},
    "podAnnotations": {"example.com/team": "identity"},
    "podLabels": {"example.com/tier": "backend"},
    "config": {"extra": {"API_TOKENS_MAX_STALENESS_SECS": 30, "API_TOKENS_CACHE_MAX_TOKENS": "100000"}},
    "database": {"driver": "postgres", "url": PG_URL, "maxConnections": 20},
    "service": {"annotations": {"example.com/lb": "internal"}, "headless": {"enabled": True}},
    "deploymentAnnotations": {"example.com/owner": "identity"},
    "metrics": {"enabled": True,
                "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 8,
                    "targetCPUUtilizationPercentage": 70,
                    "targetMemoryUtilizationPercentage": 80,
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}}},
    "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
    "networkPolicy": {
        "enabled": True,
        "grpcFrom": [{"namespaceSelector": {"matchLabels": {"api-tokens-client": "true"}}}],
        "metricsFrom": [{"namespaceSelector": {
            "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        "egress": {"enabled": True,
                   "databaseTo": [{"namespaceSelector": {
                       "matchLabels": {"kubernetes.io/metadata.name": "databases"}}}],
                   "extraRules": [{"to": [{"podSelector": {"matchLabels": {"app": "otel"}}}],
                                   "ports": [{"port": 4317, "protocol": "TCP"}]}]},
    },
    "extraEnv": [{"name": "RUST_BACKTRACE", "value": "1"}, {"name": "RUST_LOG", "value": "info,sqlx=warn"}],
    "priorityClassName": "high",
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "api",
                     "effect": "NoSchedule"}],
    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": {
            "topologyKey": "kubernetes.io/hostname",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "api-tokens"}}}}]}},
    "topologySpreadConstraints": [{
        "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "api-tokens"}}}],
}

# name -> (values, kinds that must be rendered, kinds that must not)
RENDERS: dict[str, tuple[dict[str, Any], set[str], set[str]]] = {
    "defaults": ({}, {"Deployment", "Service", "ConfigMap", "Secret", "ServiceAccount",
                      "PodDisruptionBudget", "PersistentVolumeClaim"},
                 {"HorizontalPodAutoscaler", "ServiceMonitor", "NetworkPolicy"}),
    "all-optional-parts-on": (ALL_ON, {"Deployment", "Service", "ConfigMap", "Secret",
                                       "ServiceAccount", "PodDisruptionBudget",
                                       "HorizontalPodAutoscaler", "ServiceMonitor",
                                       "NetworkPolicy"},
                              {"PersistentVolumeClaim"}),
    "postgres-existing-secret": ({"replicaCount": 2,
                                  "database": {"driver": "postgres",
                                               "existingSecret": "api-tokens-db",
                                               "existingSecretKey": "url"},
                                  "deploymentAnnotations": {
                                      "secret.reloader.stakater.com/reload": "api-tokens-db"}},
                                 {"Deployment", "Service", "ConfigMap"},
                                 {"Secret", "PersistentVolumeClaim", "Job"}),
    "postgres-migration-job": ({"replicaCount": 2,
                                "database": {"driver": "postgres",
                                             "existingSecret": "api-tokens-db"},
                                "migrations": {"job": {"enabled": True}},
                                "service": {"headless": {"enabled": True}},
                                "extraEnv": [{"name": "RUST_LOG", "value": "debug"}]},
                               {"Deployment", "Service", "ConfigMap", "Job"},
                               {"Secret", "PersistentVolumeClaim"}),
    "sqlite-emptydir": ({"sqlite": {"persistence": {"enabled": False}},
                         "podDisruptionBudget": {"enabled": False},
                         "serviceAccount": {"create": False}, "preStopSleepSeconds": 0},
                        {"Deployment", "Secret"},
                        {"PersistentVolumeClaim", "PodDisruptionBudget", "ServiceAccount"}),
}

# name -> (values, exception class name, text the message must contain)
MUST_FAIL: dict[str, tuple[dict[str, Any], str, str]] = {
    "replicaCount=2 with the default SQLite URL": (
        {"replicaCount": 2}, "HelmRenderError", "need PostgreSQL"),
    "autoscaling with SQLite": (
        {"autoscaling": {"enabled": True}}, "HelmRenderError", "need PostgreSQL"),
    "replicaCount=2 with an explicit SQLite URL": (
        {"replicaCount": 2, "database": {"url": "sqlite:///data/x.db?mode=rwc"}},
        "HelmRenderError", "need PostgreSQL"),
    "a PostgreSQL URL under driver sqlite": (
        {"replicaCount": 2, "database": {"url": PG_URL}}, "HelmRenderError",
        "set database.driver=postgres"),
    "driver postgres without a URL or Secret": (
        {"database": {"driver": "postgres"}}, "HelmRenderError", "needs database.url"),
    "driver postgres with an SQLite URL": (
        {"database": {"driver": "postgres", "url": "sqlite://x.db"}}, "HelmRenderError",
        "does not start with postgres://"),
    "both url and existingSecret": (
        {"database": {"driver": "postgres", "url": PG_URL, "existingSecret": "s"}},
        "HelmRenderError", "not both"),
    "grace period not above preStop + drain": (
        {"terminationGracePeriodSeconds": 15}, "HelmRenderError", "must exceed"),
    "ServiceMonitor without metrics": (
        {"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}}, "HelmRenderError",
        "needs metrics.enabled"),
    "PDB with neither minAvailable nor maxUnavailable": (
        {"podDisruptionBudget": {"maxUnavailable": None}}, "HelmRenderError",
        "needs minAvailable or maxUnavailable"),
    "schema: unknown top-level value": (
        {"replicas": 2}, "HelmValuesError", "additional properties 'replicas'"),
    "schema: replicaCount as a string": (
        {"replicaCount": "2"}, "HelmValuesError", "/replicaCount"),
    "schema: unknown database driver": (
        {"database": {"driver": "mysql"}}, "HelmValuesError", "/database/driver"),
    "schema: the database URL through config.extra": (
        {"config": {"extra": {"API_TOKENS_DATABASE_URL": "postgres://a@b/c"}}}, "HelmValuesError",
        "invalid propertyName 'API_TOKENS_DATABASE_URL'"),
    "migration Job with SQLite": (
        {"migrations": {"job": {"enabled": True}}}, "HelmRenderError",
        "migrations.job.enabled needs database.driver=postgres"),
    "migration Job with the chart's own Secret": (
        {"database": {"driver": "postgres", "url": PG_URL}, "migrations": {"job": {"enabled": True}}},
        "HelmRenderError", "migrations.job.enabled needs database.existingSecret"),
    "schema: RUST_LOG through config.extra (it goes in extraEnv)": (
        {"config": {"extra": {"RUST_LOG": "debug"}}}, "HelmValuesError",
        "invalid propertyName 'RUST_LOG'"),
    "schema: the migrate mode through config.extra": (
        {"config": {"extra": {"API_TOKENS_MIGRATE": "check"}}}, "HelmValuesError",
        "invalid propertyName 'API_TOKENS_MIGRATE'"),
    "schema: log format": (
        {"config": {"logFormat": "pretty"}}, "HelmValuesError", "/config/logFormat"),
}

YAMLLINT_CONFIG = """\
extends: default
rules:
  line-length: {max: 140}
  document-start: disable
"""


class Failed(Exception):
    pass


def heading(text: str) -> None:
    print(f"\n--- {text}", flush=True)


def ok(text: str) -> None:
    print(f"  ok    {text}", flush=True)


def render(values: dict[str, Any]) -> dict[str, str]:
    with helm.Chart.load(CHART) as chart:
        return chart.render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE)


@contextlib.contextmanager
def captured_fd2() -> Iterator[list[str]]:
    """Collects what the Go library writes to file descriptor 2 (its log) while inside."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode(errors="replace").splitlines())


def check_lint() -> None:
    heading(f"helm lint --strict --kube-version v{KUBE_VERSION} (Helm {helm.helm_sdk_version()})")
    for label, values in (("default values", None), ("all optional parts on", ALL_ON)):
        # Lint mode turns a template's `fail` into a log line instead of an error: catch those too.
        with captured_fd2() as log:
            report = helm.lint(str(CHART), copy.deepcopy(values) if values else None,
                               strict=True, kube_version=f"v{KUBE_VERSION}")
        swallowed = [l for l in log if "fail" in l]
        for line in swallowed:
            print(f"  FAIL  a template check failed during lint: {line}")
        if swallowed:
            raise Failed(f"helm lint ({label}): a template `fail` fired")
        bad = [m for m in report["messages"] if m["severity"] >= 2]
        for m in report["messages"]:
            if m["severity"] < 2:
                print(f"  info  {m['path']}: {m['error']}")
        if bad or report["errors"]:
            for m in bad:
                print(f"  FAIL  {m['path']}: {m['error']}")
            for e in report["errors"]:
                print(f"  FAIL  {e}")
            raise Failed(f"helm lint ({label})")
        ok(f"lint with {label}: {report['total_charts_linted']} chart, no warning or error")


def docs_of(manifests: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                out.append((template, doc))
    return out


def find(docs: list[tuple[str, dict[str, Any]]], kind: str) -> dict[str, Any]:
    found = [d for _, d in docs if d["kind"] == kind]
    if len(found) != 1:
        raise Failed(f"expected one {kind}, found {len(found)}")
    return found[0]


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise Failed(what)


def check_contract(name: str, docs: list[tuple[str, dict[str, Any]]], values: dict[str, Any]) -> None:
    """What the Deployment and Service must keep, whatever the values."""
    dep = find(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    expect(c["args"] == ["serve"], "container args must be [serve]")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    expect(ports.get("grpc") == 50051, "container port grpc must be 50051")
    default_on = yaml.safe_load((CHART / "values.yaml").read_text())["metrics"]["enabled"]
    metrics_on = values.get("metrics", {}).get("enabled", default_on)
    expect(("metrics" in ports) == metrics_on, "container port metrics iff metrics.enabled")
    expect(c["readinessProbe"]["grpc"] == {"port": 50051, "service": "apitokens.v1.AuthorizeService"},
           "readiness must be a gRPC probe of apitokens.v1.AuthorizeService on 50051")
    expect(c["livenessProbe"]["grpc"] == {"port": 50051, "service": ""},
           "liveness must be a gRPC probe of the whole server (service \"\") on 50051")
    sc = c["securityContext"]
    expect(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 65532, "runAsNonRoot, runAsUser 65532")
    expect(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
    expect(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation false")
    expect(sc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities drop ALL")
    expect(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "seccompProfile RuntimeDefault")
    expect(c["resources"].get("requests") and c["resources"].get("limits"), "resources requests and limits")
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    expect("/tmp" in mounts and "emptyDir" in vols[mounts["/tmp"]], "an emptyDir at /tmp")
    cm = find(docs, "ConfigMap")["data"]
    expect(cm.get("API_TOKENS_LISTEN") == "0.0.0.0:50051", "API_TOKENS_LISTEN=0.0.0.0:50051")
    expect(cm.get("API_TOKENS_LOG_FORMAT") == "json", "API_TOKENS_LOG_FORMAT=json")
    for key in ("API_TOKENS_DB_MAX_CONNECTIONS", "API_TOKENS_MAX_APPS_PER_TOKEN",
                "API_TOKENS_DRAIN_TIMEOUT_SECS", "API_TOKENS_INSTALL_API_URL",
                "API_TOKENS_INSTALL_COSI_URL"):
        expect(key in cm, f"ConfigMap sets {key}")
    expect(("API_TOKENS_METRICS_LISTEN" in cm) == metrics_on, "API_TOKENS_METRICS_LISTEN iff metrics.enabled")
    for key, value in values.get("config", {}).get("extra", {}).items():
        expect(cm.get(key) == str(value), f"config.extra {key} in the ConfigMap as a string")
    expect(any(e.get("configMapRef") for e in c["envFrom"]), "settings loaded with envFrom")
    (db,) = [e for e in c["env"] if e["name"] == "API_TOKENS_DATABASE_URL"]
    expect("secretKeyRef" in db["valueFrom"], "API_TOKENS_DATABASE_URL from a Secret")
    expect("value" not in db, "the database URL never inline in the pod spec")
    drain = int(cm["API_TOKENS_DRAIN_TIMEOUT_SECS"])
    pre = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    expect(pod["terminationGracePeriodSeconds"] > drain + pre,
           "terminationGracePeriodSeconds > preStop sleep + drain timeout")
    job_on = values.get("migrations", {}).get("job", {}).get("enabled", False)
    expect(cm.get("API_TOKENS_MIGRATE") == ("check" if job_on else "auto"),
           "API_TOKENS_MIGRATE=check iff the migration Job runs, else auto")
    expect(int(cm.get("API_TOKENS_MAX_CONNECTION_AGE_SECS", "-1")) >= 0, "API_TOKENS_MAX_CONNECTION_AGE_SECS set")
    expect("API_TOKENS_MAX_CONNECTION_AGE_GRACE_SECS" in cm, "API_TOKENS_MAX_CONNECTION_AGE_GRACE_SECS set")
    for env in values.get("extraEnv", []):
        expect(env in c["env"], f"extraEnv {env['name']} in the container's env")
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    existing = values.get("database", {}).get("existingSecret")
    expect("checksum/config" in annotations, "pod template annotated checksum/config")
    expect(("checksum/secret" in annotations) == (not existing),
           "pod template annotated checksum/secret iff the chart makes the Secret")
    for key, value in values.get("deploymentAnnotations", {}).items():
        expect(dep["metadata"].get("annotations", {}).get(key) == value, f"Deployment annotation {key}")
    fullname = dep["metadata"]["name"]
    services = {d["metadata"]["name"]: d for _, d in docs if d["kind"] == "Service"}
    svc = services.pop(fullname)
    expect(svc["spec"]["type"] == "ClusterIP", "Service type ClusterIP")
    grpc = [p for p in svc["spec"]["ports"] if p["name"] == "grpc"]
    expect(len(grpc) == 1 and grpc[0]["appProtocol"] == "grpc", "Service port grpc with appProtocol grpc")
    headless_on = values.get("service", {}).get("headless", {}).get("enabled", False)
    headless = services.pop(f"{fullname}-headless", None)
    expect(not services, f"no other Service: {sorted(services)}")
    expect((headless is not None) == headless_on, "a headless Service iff service.headless.enabled")
    if headless is not None:
        expect(headless["spec"].get("clusterIP") == "None", "the headless Service has clusterIP None")
        expect(headless["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"],
               "the headless Service selects the Deployment's pods")
        expect(headless["spec"].get("publishNotReadyAddresses") is False,
               "the headless Service lists ready pods only")
        expect([p["name"] for p in headless["spec"]["ports"]] == ["grpc"], "the headless Service has port grpc only")
    jobs = [d for _, d in docs if d["kind"] == "Job"]
    expect(len(jobs) == (1 if job_on else 0), "a migration Job iff migrations.job.enabled")
    for job in jobs:
        hooks = job["metadata"]["annotations"]
        expect(hooks.get("helm.sh/hook") == "pre-install,pre-upgrade", "the Job is a pre-install/pre-upgrade hook")
        jpod = job["spec"]["template"]["spec"]
        (jc,) = jpod["containers"]
        expect(jc["args"] == ["migrate"], "the Job runs `api-tokens migrate`")
        expect(jc["image"] == c["image"], "the Job runs the Deployment's image")
        expect(jc["securityContext"] == c["securityContext"], "the Job has the server's security context")
        expect(jpod["restartPolicy"] == "Never" and "serviceAccountName" not in jpod and "envFrom" not in jc,
               "the Job needs nothing the chart creates after its hooks (ServiceAccount, ConfigMap)")
        (jdb,) = [e for e in jc["env"] if e["name"] == "API_TOKENS_DATABASE_URL"]
        expect(jdb["valueFrom"] == db["valueFrom"], "the Job reads the URL from the pods' Secret")
    ok(f"{name}: Deployment/Service/ConfigMap contract (probes, security, env, grace {pod['terminationGracePeriodSeconds']}s > {pre}s + {drain}s)"
       + (", headless Service" if headless_on else "") + (", migration hook Job" if job_on else ""))


def validate_servicemonitor(doc: dict[str, Any]) -> None:
    """Against the Prometheus Operator CRD's generated models; unknown fields are errors."""
    from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor

    model = ServiceMonitor.model_validate(doc)
    back = model.model_dump(mode="json", by_alias=True, exclude_unset=True)

    def dropped(a: Any, b: Any, path: str) -> list[str]:
        if isinstance(a, dict):
            out = []
            for k, v in a.items():
                if not isinstance(b, dict) or k not in b:
                    out.append(f"{path}.{k}")
                else:
                    out += dropped(v, b[k], f"{path}.{k}")
            return out
        if isinstance(a, list):
            if not isinstance(b, list) or len(a) != len(b):
                return [path]
            return [p for i, (x, y) in enumerate(zip(a, b)) for p in dropped(x, y, f"{path}[{i}]")]
        return [] if a == b else [path]

    unknown = dropped(doc, back, "")
    if unknown:
        raise Failed(f"ServiceMonitor has fields its CRD does not know: {', '.join(unknown)}")


def check_renders(out_dir: Path) -> None:
    heading(f"render (helm template) and kubernetes-validate -k {KUBE_VERSION} --strict; manifests in {out_dir}")
    for name, (values, must, must_not) in RENDERS.items():
        manifests = render(values)
        docs = docs_of(manifests)
        kinds = {d["kind"] for _, d in docs}
        expect(must <= kinds, f"{name}: missing kinds {sorted(must - kinds)}")
        expect(not (must_not & kinds), f"{name}: unexpected kinds {sorted(must_not & kinds)}")
        expect(any(k.endswith("NOTES.txt") for k in manifests), f"{name}: NOTES.txt rendered")
        scenario_dir = out_dir / name
        scenario_dir.mkdir(parents=True)
        builtin: list[str] = []
        crds: list[tuple[str, dict[str, Any]]] = []
        for i, (template, doc) in enumerate(docs):
            path = scenario_dir / f"{i:02d}-{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"
            path.write_text(f"# Source: {template}\n" + yaml.safe_dump(doc, sort_keys=False))
            if doc["kind"] in CRD_KINDS:
                crds.append((str(path), doc))
            else:
                builtin.append(str(path))
        (scenario_dir / "NOTES.txt").write_text(
            next(v for k, v in manifests.items() if k.endswith("NOTES.txt")))
        try:
            check_contract(name, docs, values)
        except (Failed, KeyError, ValueError) as e:
            raise Failed(f"{name}: the Deployment/Service/ConfigMap contract: {type(e).__name__} {e}") from e
        result = subprocess.run(
            [str(VENV_BIN / "kubernetes-validate"), "-k", KUBE_VERSION, "--strict", *builtin],
            capture_output=True, text=True)
        lines = (result.stdout + result.stderr).strip().splitlines()
        passed = [l for l in lines if l.startswith("INFO ") and " passed " in l]
        problems = [l for l in lines if not (l.startswith("INFO ") and " passed " in l)]
        if result.returncode != 0 or problems or len(passed) != len(builtin):
            for line in problems:
                print(f"  FAIL  {line}")
            raise Failed(f"{name}: kubernetes-validate (exit {result.returncode}, {len(passed)}/{len(builtin)} passed)")
        ok(f"{name}: {len(builtin)} resources pass kubernetes-validate --strict "
           f"({', '.join(sorted(d['kind'] for _, d in docs if d['kind'] not in CRD_KINDS))})")
        for path, doc in crds:
            validate_servicemonitor(doc)
            print(f"  note  {name}: {doc['kind']} is a CRD, which kubernetes-validate has no schema for; "
                  f"checked instead against the Prometheus Operator models "
                  f"(cloudcoil-models-prometheus-operator), unknown fields rejected: {Path(path).name}")


def pod_annotations(values: dict[str, Any]) -> dict[str, str]:
    dep = find(docs_of(render(values)), "Deployment")
    return dep["spec"]["template"]["metadata"]["annotations"]


def check_rollouts() -> None:
    heading("secret and setting changes roll the pods (pod-template checksums)")
    pg = {"replicaCount": 2, "database": {"driver": "postgres", "url": PG_URL}}
    before = pod_annotations(pg)
    rotated = copy.deepcopy(pg)
    rotated["database"]["url"] = PG_URL.replace("change-me", "new-password")
    after = pod_annotations(rotated)
    expect(before["checksum/secret"] != after["checksum/secret"],
           "a new database.url changes checksum/secret, so the pods roll")
    expect(before["checksum/config"] == after["checksum/config"], "the ConfigMap is unchanged by a new URL")
    ok("a new database.url (the chart's Secret) changes checksum/secret: helm upgrade rolls the pods")
    more = copy.deepcopy(pg)
    more["config"] = {"extra": {"API_TOKENS_MAX_STALENESS_SECS": "45"}}
    expect(pod_annotations(more)["checksum/config"] != before["checksum/config"],
           "a new setting changes checksum/config")
    ok("a new setting (the ConfigMap) changes checksum/config")
    existing = pod_annotations({"database": {"driver": "postgres", "existingSecret": "api-tokens-db"}})
    expect("checksum/secret" not in existing, "no checksum of a Secret the chart does not render")
    ok("with existingSecret there is no checksum/secret (docs/DEPLOYMENT.md: reloader annotation or rollout restart)")


def check_must_fail() -> None:
    heading("values that must be refused")
    for label, (values, exc_name, text) in MUST_FAIL.items():
        try:
            render(values)
        except helm.HelmError as e:
            msg = str(e)
            if type(e).__name__ != exc_name or text not in msg:
                raise Failed(f"{label}: expected {exc_name} containing {text!r}, got {type(e).__name__}: {msg}")
            reason = msg.split("): ", 1)[1] if "execution error at" in msg else msg.strip().splitlines()[-1]
            ok(f"{label}: refused, {exc_name}: {reason.strip()[:110]}")
        else:
            raise Failed(f"{label}: rendered, but must fail")


# Values whose defaults are Kubernetes objects: documented as one row, not key by key.
OPAQUE_VALUES = {"resources", "podSecurityContext", "securityContext"}


def value_keys(values: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k, v in values.items():
        path = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and v and path not in OPAQUE_VALUES:
            keys += value_keys(v, path)
        else:
            keys.append(path)
    return keys


def check_readme() -> None:
    heading("README.md lists every value of values.yaml")
    keys = value_keys(yaml.safe_load((CHART / "values.yaml").read_text()))
    readme = (CHART / "README.md").read_text()
    missing = [k for k in keys if f"| `{k}` |" not in readme]
    if missing:
        raise Failed(f"README.md has no row for: {', '.join(missing)}")
    ok(f"{len(keys)} values, each with a row in the README's table")


def check_yamllint() -> None:
    heading("yamllint --strict (default rules, lines up to 140) on values.yaml and Chart.yaml")
    files = [str(CHART / "values.yaml"), str(CHART / "Chart.yaml")]
    result = subprocess.run(
        [str(VENV_BIN / "yamllint"), "--strict", "-f", "parsable", "-d", YAMLLINT_CONFIG, *files],
        capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stdout + result.stderr)
        raise Failed("yamllint")
    ok("values.yaml, Chart.yaml: no yamllint warning or error")


def check_dockerfile() -> None:
    heading("Dockerfile: hadolint, and the facts the chart relies on (the image cannot be built here: no Docker engine)")
    dockerfile = ROOT / "Dockerfile"
    result = subprocess.run([str(VENV_BIN / "hadolint"), "--no-color", str(dockerfile)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stdout + result.stderr)
        raise Failed("hadolint Dockerfile")
    ok(f"hadolint {subprocess.run([str(VENV_BIN / 'hadolint'), '--version'], capture_output=True, text=True).stdout.split()[-1]}: no finding")
    text = dockerfile.read_text()
    for needle in ("FROM rust:1.95-bookworm AS builder", "cargo build --release --locked",
                   "FROM gcr.io/distroless/cc-debian12:nonroot", "/usr/local/bin/api-tokens",
                   "USER 65532:65532", "EXPOSE 50051 9090", "ENV API_TOKENS_LISTEN=0.0.0.0:50051",
                   'ENTRYPOINT ["/usr/local/bin/api-tokens"]', 'CMD ["serve"]'):
        if needle not in text:
            raise Failed(f"Dockerfile lacks {needle!r}")
    ok("builder rust:1.95-bookworm, runtime distroless cc nonroot, USER 65532:65532, EXPOSE 50051 9090, ENTRYPOINT/CMD serve")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", metavar="DIR", help="write the rendered manifests here and keep them")
    parser.add_argument("--chart", metavar="DIR", help="check this chart directory instead (e.g. a broken copy)")
    args = parser.parse_args()
    global CHART
    if args.chart:
        CHART = Path(args.chart).resolve()
    start = time.monotonic()
    helm.disable_logging()
    print(f"checking the chart {CHART} (release {RELEASE!r}, namespace {NAMESPACE!r})")
    try:
        check_lint()
        if args.keep:
            keep = Path(args.keep)
            keep.mkdir(parents=True, exist_ok=True)
            out = Path(tempfile.mkdtemp(prefix="rendered-", dir=keep))
            check_renders(out)
        else:
            with tempfile.TemporaryDirectory(prefix="api-tokens-chart-") as tmp:
                check_renders(Path(tmp))
        check_rollouts()
        check_must_fail()
        check_readme()
        check_yamllint()
        check_dockerfile()
    except (Failed, helm.HelmError) as e:
        print(f"\nFAILED: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"\nhelm chart checks passed in {time.monotonic() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
