"""`raictl export kubernetes`: a Deployment and a Service per service, the migration as a Job, the
settings as a ConfigMap and a Secret *template* (names, never values), plus the image's Dockerfile.

Readiness and liveness probes GET the health path (with `Host: 127.0.0.1`: the RAI API serves only
the hosts it knows, and the pod's IP is not one); liveness is raictl's own (any HTTP answer, at the
service's `liveness_*` interval, timeout and failure count: an exec of raictl's probe, since an httpGet
would restart the RAI API for a database outage); a startup probe gives a slow start a minute before
liveness counts. The migration Job runs `raictl migrate` once; README says to wait for it before the
Deployments. The template is `secret.yaml.template`, so `kubectl apply -f DIR` never applies it with
its empty values over a Secret already filled in. Service links are off: Kubernetes would otherwise set
RAI_API_PORT=tcp://10.0.0.7:6102 in every pod, the very variable raictl reads its port from. SQLite
(one replica only) lives on a PersistentVolumeClaim.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raictl.export import GeneratedFile, image, yamlfile
from raictl.export.plan import CONTAINER_HOME, Plan, Secret, Unit

if TYPE_CHECKING:
    from raictl.export import GeneratedFile

SETTINGS = "raictl-settings"
SECRETS = "raictl-secrets"
HOME_CLAIM = "raictl-home"
MIGRATE_JOB = "raictl-migrate"
PART_OF = "raictl"


def files(plan: Plan, out: Path) -> list[GeneratedFile]:
    header = yamlfile.HEADER.format(target="kubernetes")
    found = [GeneratedFile("configmap.yaml", yamlfile.dump(config_map(plan), header=header)),
             GeneratedFile("secret.yaml.template", yamlfile.dump(secret_template(plan), header=_secret_header()),
                           mode=0o600, keep_existing=True),
             GeneratedFile("migrate-job.yaml", yamlfile.dump(migrate_job(plan), header=header))]
    if plan.database.kind == "sqlite":
        found.append(GeneratedFile("home-pvc.yaml", yamlfile.dump(home_claim(), header=header)))
    for unit in plan.units:
        docs = [deployment(unit, plan)] + ([service(unit)] if unit.port else [])
        found.append(GeneratedFile(f"{unit.slug}.yaml", yamlfile.dump(*docs, header=header)))
    found += [GeneratedFile("Dockerfile", image.dockerfile(plan)),
              GeneratedFile("Dockerfile.dockerignore", image.dockerignore(plan, out))]
    return found


def next_steps(plan: Plan, out: Path) -> list[str]:
    context = plan.base_dir
    return [f"docker build -f {out / 'Dockerfile'} -t {image.IMAGE} {context} (and push it where the cluster pulls)",
            f"fill in a copy of {out / 'secret.yaml.template'} and `kubectl apply -f` it (names only were written)",
            f"kubectl apply -f {out / 'configmap.yaml'} -f {out / 'migrate-job.yaml'}"
            + (f" -f {out / 'home-pvc.yaml'}" if plan.database.kind == "sqlite" else "")
            + f" && kubectl wait --for=condition=complete job/{MIGRATE_JOB} --timeout=300s",
            f"kubectl apply -f {out}"]


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": PART_OF}


def _meta(name: str) -> dict[str, Any]:
    return {"name": name, "labels": _labels(name)}


def config_map(plan: Plan) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(SETTINGS), "data": dict(plan.settings_env)}


def _secret_header() -> str:
    return ("# A Secret *template*: raictl wrote the names only. Copy it, fill in each value, then\n"
            "# `kubectl apply -f` the copy (keep the copy out of version control).\n")


def _all_secrets(plan: Plan) -> list[Secret]:
    return [*plan.secrets, *(Secret(n, True, f"{u.name}'s own") for u in plan.units for n in u.secrets)]


def secret_template(plan: Plan) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(SECRETS), "type": "Opaque",
            "stringData": {s.name: "" for s in _all_secrets(plan)}}


def home_claim() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta(HOME_CLAIM),
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}


def _home_volume(plan: Plan) -> dict[str, Any]:
    if plan.database.kind == "sqlite":
        return {"name": "home", "persistentVolumeClaim": {"claimName": HOME_CLAIM}}
    return {"name": "home", "emptyDir": {}}


def _container(name: str, command: list[str], plan: Plan, unit: Unit | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name, "image": image.IMAGE, "command": command,
        "envFrom": [{"configMapRef": {"name": SETTINGS}}, {"secretRef": {"name": SECRETS}}],
        "volumeMounts": [{"name": "home", "mountPath": CONTAINER_HOME}],
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": image.UID},
    }
    if unit is not None:
        container["workingDir"] = unit.cwd
        if unit.env:
            container["env"] = [{"name": k, "value": v} for k, v in unit.env.items()]
    return container


def _probe(unit: Unit, period: float, failures: int) -> dict[str, Any]:
    action: dict[str, Any]
    if unit.health:
        action = {"httpGet": {"path": unit.health, "port": unit.port,
                              "httpHeaders": [{"name": "Host", "value": "127.0.0.1"}]}}
    else:
        action = {"tcpSocket": {"port": unit.port}}
    return {**action, "periodSeconds": max(1, math.ceil(period)),
            "timeoutSeconds": max(1, math.ceil(unit.spec.liveness_timeout)), "failureThreshold": failures}


def _liveness(unit: Unit) -> dict[str, Any]:
    """raictl's liveness: any HTTP answer within the timeout (an httpGet probe would fail a 503, and
    restarting the RAI API does not bring its database back), at its interval and failure count."""
    probe = _probe(unit, unit.spec.liveness_interval, unit.spec.liveness_failures)
    if unit.health:
        probe.pop("httpGet")
        probe["exec"] = {"command": ["python", "-m", "raictl.export.probe", str(unit.port), unit.health, "--answered"]}
    return probe


def deployment(unit: Unit, plan: Plan) -> dict[str, Any]:
    container = _container(unit.slug, list(unit.command), plan, unit)
    if unit.port:
        container["ports"] = [{"name": "http", "containerPort": unit.port}]
        container["startupProbe"] = _probe(unit, 1, 60)
        container["readinessProbe"] = _probe(unit, 5, 2)
        container["livenessProbe"] = _liveness(unit)
    pod = {"enableServiceLinks": False, "containers": [container], "volumes": [_home_volume(plan)],
           "terminationGracePeriodSeconds": max(1, round(unit.spec.grace))}
    spec: dict[str, Any] = {"replicas": unit.replicas, "selector": {"matchLabels": {"app.kubernetes.io/name": unit.slug}},
                            "template": {"metadata": {"labels": _labels(unit.slug)}, "spec": pod}}
    if plan.database.kind == "sqlite" and unit.name == "rai_api":
        spec["strategy"] = {"type": "Recreate"}  # one pod at a time on the ReadWriteOnce claim
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(unit.slug), "spec": spec}


def service(unit: Unit) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(unit.slug),
            "spec": {"selector": {"app.kubernetes.io/name": unit.slug},
                     "ports": [{"name": "http", "port": unit.port, "targetPort": "http"}]}}


def migrate_job(plan: Plan) -> dict[str, Any]:
    pod = {"enableServiceLinks": False, "restartPolicy": "OnFailure", "containers": [_container("migrate", list(plan.migrate), plan)],
           "volumes": [_home_volume(plan)]}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": _meta(MIGRATE_JOB),
            "spec": {"backoffLimit": 4, "template": {"metadata": {"labels": _labels(MIGRATE_JOB)}, "spec": pod}}}
