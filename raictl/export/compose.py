"""`raictl export compose`: compose.yaml, the image's Dockerfile and a `.env` of secret names.

Each service gets a healthcheck on its health path (raictl's own probe: the image has no curl) at
raictl's liveness interval, timeout and failure count, and `depends_on` with `service_healthy` for a
`ready` dependency (`service_started` for `started`); the migration is a one-shot service the RAI API waits for
(`service_completed_successfully`), so it runs once, before any replica. MySQL becomes a `mariadb`
service with a volume; SQLite lives in a volume at RAICTL_HOME. Secrets are compose interpolations
(`${RAI_SECRET_KEY:?...}`) read from the `.env` beside compose.yaml, which is written with names only.
Published ports are bound to the host's loopbacks (127.0.0.1 and ::1), as `raictl up` binds them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raictl.export import GeneratedFile, image, yamlfile
from raictl.export.plan import CONTAINER_HOME, Plan, Secret, Unit
from raictl.supervisor.spec import RESTARTS

if TYPE_CHECKING:
    from raictl.export import GeneratedFile

MARIADB_IMAGE = "mariadb:11"
HOME_VOLUME = "raictl-home"
DB_VOLUME = "mariadb-data"
MIGRATE = "migrate"
MARIADB = "mariadb"


def files(plan: Plan, out: Path) -> list[GeneratedFile]:
    header = yamlfile.HEADER.format(target="compose")
    return [GeneratedFile("compose.yaml", yamlfile.dump(document(plan, out), header=header)),
            GeneratedFile("Dockerfile", image.dockerfile(plan)),
            GeneratedFile("Dockerfile.dockerignore", image.dockerignore(plan, out)),
            GeneratedFile(".env", env_template(plan), mode=0o600, keep_existing=True)]


def next_steps(plan: Plan, out: Path) -> list[str]:
    return [f"fill in the secrets in {out / '.env'} (names only were written)",
            f"docker compose -f {out / 'compose.yaml'} up -d --build"]


def document(plan: Plan, out: Path) -> dict[str, Any]:
    """The compose file as a mapping (the compose-spec's shape)."""
    services: dict[str, Any] = {}
    if plan.database.kind == "mysql":
        services[MARIADB] = _mariadb(plan)
    services[MIGRATE] = _migrate(plan, out)
    for unit in plan.units:
        services[unit.slug] = _service(unit, plan, out)
    volumes: dict[str, dict] = {DB_VOLUME: {}} if plan.database.kind == "mysql" else {HOME_VOLUME: {}}
    return {"name": "raictl", "services": services, "volumes": volumes}


def _escape(value: str) -> str:
    return value.replace("$", "$$")  # compose interpolates $NAME in values: a literal $ is $$


def _secret_ref(secret: Secret) -> str:
    if secret.required:
        return f"${{{secret.name}:?set {secret.name} in the .env beside compose.yaml}}"
    return f"${{{secret.name}:-}}"


def _environment(plan: Plan, unit: Unit | None = None) -> dict[str, str]:
    env = {k: _escape(v) for k, v in plan.settings_env.items()}
    if plan.database.kind == "mysql":
        db = plan.database
        password = _secret_ref(next(s for s in plan.secrets if s.name == "MARIADB_PASSWORD"))
        env["RAI_DATABASE_URL"] = f"mysql+pymysql://{db.user}:{password}@{MARIADB}:3306/{db.name}"
    for secret in plan.secrets:
        if not secret.name.startswith("MARIADB_"):
            env[secret.name] = _secret_ref(secret)
    if unit is not None:
        env.update({k: _escape(v) for k, v in unit.env.items()})
        env.update({name: _secret_ref(Secret(name, True, "")) for name in unit.secrets})
    return env


def _build(plan: Plan, out: Path) -> dict[str, Any]:
    build: dict[str, Any] = {"context": os.path.relpath(plan.base_dir, out),
                             "dockerfile": os.path.relpath(out / "Dockerfile", plan.base_dir)}
    src = image.outside_source(plan)
    if src is not None:
        build["additional_contexts"] = {image.SOURCE_CONTEXT: str(src)}
    return build


def _seconds(value: float) -> str:
    return f"{value:g}s"


def healthcheck(unit: Unit) -> dict[str, Any] | None:
    """raictl's probe of the health path (or of the port, for a service without one), as often and as
    patient as raictl's liveness (`liveness_interval`, `liveness_timeout`, `liveness_failures`)."""
    if not unit.port:
        return None
    spec = unit.spec
    test = ["CMD", "python", "-m", "raictl.export.probe", str(unit.port)] + ([unit.health] if unit.health else [])
    return {"test": test, "interval": _seconds(spec.liveness_interval), "timeout": _seconds(spec.liveness_timeout),
            "retries": spec.liveness_failures, "start_period": "60s", "start_interval": "1s"}


def _condition(plan: Plan, unit: Unit, name: str) -> str:
    """compose's word for what `unit` waits for of `name`: `ready` is service_healthy (when it has a
    healthcheck), `started` is service_started, as in raictl's depends_on conditions."""
    if unit.spec.condition(name) == "started" or not plan.unit(name).port:
        return "service_started"
    return "service_healthy"


def _service(unit: Unit, plan: Plan, out: Path) -> dict[str, Any]:
    service: dict[str, Any] = {"image": image.IMAGE, "build": _build(plan, out), "command": list(unit.command),
                               "working_dir": unit.cwd, "environment": _environment(plan, unit)}
    depends = {plan.unit(d).slug: {"condition": _condition(plan, unit, d)} for d in unit.depends_on}
    if unit.name == "rai_api":
        depends[MIGRATE] = {"condition": "service_completed_successfully"}
        if plan.database.kind == "sqlite":
            service["volumes"] = [f"{HOME_VOLUME}:{CONTAINER_HOME}"]
    if depends:
        service["depends_on"] = depends
    check = healthcheck(unit)
    if check:
        service["healthcheck"] = check
    if unit.port and unit.name != "llm_api":  # the LLM API is reached by the RAI API only, inside the network
        service["ports"] = _published(unit)
    service["restart"] = f"on-failure:{RESTARTS.fatal_starts}"
    service["stop_grace_period"] = _seconds(unit.spec.grace)
    if unit.replicas > 1:
        service["deploy"] = {"replicas": unit.replicas}
    return service


def _published(unit: Unit) -> list[str]:
    """The host's loopbacks only (`raictl up` binds no other); one host port per replica."""
    port = unit.port or 0
    ports = str(port) if unit.replicas == 1 else f"{port}-{port + unit.replicas - 1}"
    return [f"127.0.0.1:{ports}:{unit.port}", f"[::1]:{ports}:{unit.port}"]


def _migrate(plan: Plan, out: Path) -> dict[str, Any]:
    service: dict[str, Any] = {"image": image.IMAGE, "build": _build(plan, out), "command": list(plan.migrate),
                               "environment": _environment(plan), "restart": "no"}
    if plan.database.kind == "mysql":
        service["depends_on"] = {MARIADB: {"condition": "service_healthy"}}
    else:
        service["volumes"] = [f"{HOME_VOLUME}:{CONTAINER_HOME}"]
    return service


def _mariadb(plan: Plan) -> dict[str, Any]:
    db = plan.database
    secrets = {s.name: s for s in plan.secrets}
    return {
        "image": MARIADB_IMAGE,
        "environment": {"MARIADB_DATABASE": db.name, "MARIADB_USER": db.user,
                        "MARIADB_PASSWORD": _secret_ref(secrets["MARIADB_PASSWORD"]),
                        "MARIADB_ROOT_PASSWORD": _secret_ref(secrets["MARIADB_ROOT_PASSWORD"])},
        "volumes": [f"{DB_VOLUME}:/var/lib/mysql"],
        "healthcheck": {"test": ["CMD", "healthcheck.sh", "--connect", "--innodb_initialized"],
                        "interval": "10s", "timeout": "5s", "retries": 5, "start_period": "60s",
                        "start_interval": "1s"},
        "restart": "on-failure",
    }


def env_template(plan: Plan) -> str:
    """The `.env` compose reads for its ${...} interpolations: every secret's name, no value."""
    lines = ["# Secrets for compose.yaml: `docker compose` reads this file (beside compose.yaml) itself.",
             "# raictl wrote the names only; fill in the values. Keep it mode 0600 and out of version control."]
    if plan.database.kind == "mysql":
        lines.append("# The passwords end up in a database URL: use letters, digits, - _ . ~ only.")
    names = [*plan.secrets, *(Secret(n, True, f"{u.name}'s own") for u in plan.units for n in u.secrets)]
    for secret in names:
        lines += [f"# {secret.why}" + ("" if secret.required else " (optional)"), f"{secret.name}="]
    return "\n".join(lines) + "\n"
