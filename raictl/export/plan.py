"""What every export format shares: the services as an engine other than raictl's supervisor runs them.

`make_plan(settings, target, replicas)` reads the same ServiceSpecs (built-ins and `[services.NAME]`) and
Settings that `raictl up` uses and returns a `Plan`: each service's command, port, addresses, health
path, dependencies and environment, the migration, and the *names* of the secrets it needs. A secret's
value never enters a Plan, so no format can write one.

Inside a container a service must listen on every address (the other containers and the engine's probes
reach it through the container's own interface, not its loopback): the default loopback-only addresses
become `0.0.0.0,::` explicitly. What a container could not run or reach is refused with the reason:
SQLite with more than one replica, an address list set without a wildcard, a command or folder that is a
path of this machine the image would not have.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from raictl.errors import RaictlError
from raictl.export.container import CONTAINER_VAR
from raishared.database import mask_url, sqlite_file
from raishared.settings import FIELDS, Settings
from raictl.supervisor.spec import BUILTINS, ServiceSpec, all_specs, hosts_var, replica_of

TARGETS = ("compose", "kubernetes", "systemd")
CONTAINER_TARGETS = ("compose", "kubernetes")
APP_DIR = "/app"           # the project folder (raictl.toml's) inside the image
CONTAINER_HOME = "/data"   # RAICTL_HOME inside a container: a volume when the database is SQLite
WILDCARDS = ("0.0.0.0", "::")
MIGRATE_WAIT = 60          # seconds a systemd replica's migration waits for another one's (it runs once)
_SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|PASS$|CREDENTIAL", re.I)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Secret:
    """A variable whose value the operator supplies at run time; only its name is ever written."""

    name: str
    required: bool
    why: str


@dataclass(frozen=True)
class Unit:
    """One service as an engine runs it."""

    name: str                       # raictl's name: rai_api
    slug: str                       # a DNS label: rai-api (container host, Kubernetes object, unit name)
    command: tuple[str, ...]
    cwd: str | None
    port: int | None
    hosts: tuple[str, ...]
    health: str | None
    depends_on: tuple[str, ...]
    env: Mapping[str, str]          # its own non-secret variables (PORT, env of its table)
    secrets: tuple[str, ...]        # names of the secrets it reads (beyond the shared ones)
    spec: ServiceSpec
    replicas: int = 1


@dataclass(frozen=True)
class Database:
    kind: str                       # "sqlite" or "mysql"
    name: str                       # the database's name (MySQL), else ""
    user: str


@dataclass(frozen=True)
class Plan:
    target: str
    units: tuple[Unit, ...]
    settings_env: Mapping[str, str]  # shared, non-secret: ConfigMap, x-settings, Environment=
    secrets: tuple[Secret, ...]      # shared secrets, by name
    database: Database
    migrate: tuple[str, ...]         # the migration's command
    replicas: int
    base_dir: Path
    notes: tuple[str, ...] = field(default=())

    def unit(self, name: str) -> Unit:
        return next(u for u in self.units if u.name == name)


def slug(name: str) -> str:
    """A service name as a DNS label (`rai_api` -> `rai-api`): what containers and units are called."""
    return name.lower().replace("_", "-")


def make_plan(settings: Settings, target: str, replicas: int = 1) -> Plan:
    """The Plan of `settings` for `target` (compose, kubernetes, systemd); RaictlError for a refusal."""
    if target not in TARGETS:
        raise RaictlError(f"unknown export format {target!r}", hint=f"use one of {', '.join(TARGETS)}", exit_code=2)
    database = _database(settings.database_url)
    if replicas > 1 and database.kind == "sqlite":
        raise RaictlError(f"cannot export {replicas} RAI API replicas on SQLite: it is one file on one machine "
                          "(replicas in other containers or pods cannot share it; on one host they queue on its lock)",
                          hint="set RAI_DATABASE_URL to a MySQL/MariaDB database "
                               "(mysql+pymysql://user:pw@host/db), or export one replica")
    container = target in CONTAINER_TARGETS
    notes: list[str] = []
    specs = [s for s in all_specs(settings) if replica_of(s.name) == s.name]  # replicas: one unit, N copies
    units = tuple(_unit(s, settings, target, replicas, notes) for s in specs)
    if target == "systemd":
        _check_instance_ports(units, replicas)
    settings_env, secrets = (_container_env(settings, target, database, units) if container
                             else _host_env(settings))
    return Plan(target, units, settings_env, secrets, database, _migrate_command(target), replicas,
                settings.base_dir, tuple(notes))


def _database(url: str) -> Database:
    if sqlite_file(url) is not None or url.startswith("sqlite"):
        return Database("sqlite", "", "")
    if not url.startswith("mysql"):
        raise RaictlError(f"cannot export a stack on the database {mask_url(url)}: only SQLite and MySQL/MariaDB "
                          "are known", hint="use sqlite:///PATH or mysql+pymysql://user:pw@host/db")
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return Database("mysql", parts.path.lstrip("/") or "rai", "rai")


def _migrate_command(target: str) -> tuple[str, ...]:
    if target == "systemd":  # each replica's ExecStartPre: the first migrates, the others wait, find head
        return (sys.executable, "-m", "raictl", "migrate", "--wait", str(MIGRATE_WAIT))
    return ("raictl", "migrate")


# -- one service ----------------------------------------------------------------------------------

def _unit(spec: ServiceSpec, settings: Settings, target: str, replicas: int, notes: list[str]) -> Unit:
    name = slug(spec.name)
    if not _DNS_LABEL.match(name):
        raise RaictlError(f"the service name {spec.name!r} cannot name a container, a Kubernetes object or a unit",
                          hint="rename [services.NAME] to lower-case letters, digits, - and _ (at most 63)")
    env = {"PORT": str(spec.port)} if spec.port and spec.name not in BUILTINS else {}
    secret_env = sorted(k for k in spec.env if _SECRET_NAME.search(k))
    env.update({k: v for k, v in spec.env.items() if k not in secret_env})
    if secret_env:
        notes.append(f"{spec.name}: {', '.join(secret_env)} from its raictl.toml table are treated as secrets: "
                     "their values are not written; supply them with the other secrets")
    container = target in CONTAINER_TARGETS
    command, cwd = (_image_command(spec, settings, notes) if container
                    else (_host_command(spec), spec.cwd or str(settings.base_dir)))
    hosts = _container_hosts(spec, settings) if container else spec.hosts
    return Unit(spec.name, name, command, cwd, spec.port, hosts, spec.health, spec.depends_on, env,
                tuple(secret_env), spec, replicas if spec.name == "rai_api" else 1)


def _host_command(spec: ServiceSpec) -> tuple[str, ...]:
    """The command with its program as an absolute path (systemd runs it without raictl's PATH)."""
    import shutil

    program = spec.command[0]
    found = program if "/" in program else shutil.which(program)
    return (found or program, *spec.command[1:])


def _image_command(spec: ServiceSpec, settings: Settings, notes: list[str]) -> tuple[tuple[str, ...], str]:
    """The command and folder inside the image: raictl's interpreter is the image's `python`, a path in
    the project folder moves under /app; any other path of this machine is refused."""
    base = settings.base_dir.resolve()
    command = ["python" if spec.command[0] == sys.executable else spec.command[0], *spec.command[1:]]
    command = [_in_image(arg, base, spec.name, "command") if arg.startswith("/") else arg for arg in command]
    cwd = _in_image(spec.cwd, base, spec.name, "cwd") if spec.cwd else APP_DIR
    if command[0] not in ("python", "raictl") and not command[0].startswith(APP_DIR + "/"):
        notes.append(f"{spec.name} runs {command[0]!r}, which the image does not install: add it to the Dockerfile")
    return tuple(command), cwd


def _in_image(path: str, base: Path, name: str, key: str) -> str:
    resolved = Path(path).resolve()
    if resolved == base or base in resolved.parents:
        return str(Path(APP_DIR, resolved.relative_to(base)))
    raise RaictlError(f"{name}'s {key} uses {path}, a path of this machine the image would not have "
                      f"(only the project folder {base} is copied, to {APP_DIR})",
                      hint=f"move it into {base} and use a relative path in [services.{name}], "
                           "or install it in the Dockerfile and name the program without a path")


def _container_hosts(spec: ServiceSpec, settings: Settings) -> tuple[str, ...]:
    """Every address inside a container: the loopback default becomes 0.0.0.0 and :: explicitly; an
    address list set on purpose must already hold a wildcard (raictl cannot rebind an extra's command)."""
    if not spec.port or any(h in WILDCARDS or h == "::0" for h in spec.hosts):
        return spec.hosts
    builtin = spec.name in BUILTINS
    if builtin and settings.sources.get(spec.name + "_hosts", "default") == "default":
        return WILDCARDS
    where = f"{hosts_var(spec.name)}={','.join(spec.hosts)}" if builtin else \
        f"hosts = {list(spec.hosts)} in [services.{spec.name}]"
    raise RaictlError(f"{spec.name} listens only on {', '.join(spec.hosts)} ({where}): inside a container no other "
                      "container, and no health probe of the engine, could reach it",
                      hint=("unset it (export then binds 0.0.0.0 and ::) or include 0.0.0.0" if builtin else
                            f'set hosts = ["0.0.0.0"] in [services.{spec.name}] and make its command bind it'))


def _check_instance_ports(units: tuple[Unit, ...], replicas: int) -> None:
    """systemd replicas listen on consecutive ports: none may be another service's."""
    rai = next(u for u in units if u.name == "rai_api")
    assert rai.port is not None  # the RAI API always has a port
    ports = range(rai.port, rai.port + replicas)
    for other in units:
        if other.name != "rai_api" and other.port in ports:
            raise RaictlError(f"rai_api's {replicas} replicas would listen on ports {ports.start}-{ports.stop - 1}, "
                              f"and {other.name} listens on {other.port}",
                              hint="move RAI_API_PORT (or the other service) so the ports do not overlap")
    if ports.stop - 1 > 65535:
        raise RaictlError(f"rai_api's {replicas} replicas would need ports up to {ports.stop - 1}",
                          hint="lower RAI_API_PORT or the replicas")


# -- settings -------------------------------------------------------------------------------------

_SECRET_VARS = {f.env[0]: f.name for f in FIELDS if f.secret}


def _shared_env(settings: Settings) -> dict[str, str]:
    """The settings as the children get them (`Settings.to_env`), without any secret."""
    env = {k: v for k, v in settings.to_env().items() if k not in _SECRET_VARS}
    if _database_url_public(settings.database_url):
        env["RAI_DATABASE_URL"] = settings.database_url
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _database_url_public(url: str) -> bool:
    return mask_url(url) == url  # no password anywhere in it


def _host_env(settings: Settings) -> tuple[dict[str, str], tuple[Secret, ...]]:
    """systemd runs on this machine, from raictl.toml's folder: the services read raictl.toml and .env
    there themselves. A secret set in the environment (or on the command line) is not in either: the
    operator puts it in the EnvironmentFile."""
    from raictl.supervisor.process import package_root

    env = {**_shared_env(settings), "PYTHONPATH": package_root()}
    secrets = []
    for var, name in _SECRET_VARS.items():
        source = settings.sources.get(name, "default")
        if getattr(settings, "secret_key_value" if name == "secret_key" else name) and var not in env \
                and source.startswith(("environment", "command line")):
            secrets.append(Secret(var, True, f"set in raictl's {source.split(' (')[0]} when exported"))
    return env, tuple(secrets)


def _container_env(settings: Settings, target: str, database: Database,
                   units: tuple[Unit, ...]) -> tuple[dict[str, str], tuple[Secret, ...]]:
    env = _shared_env(settings)
    hosts = {u.name: ",".join(u.hosts) for u in units}
    env.update({"RAICTL_HOME": CONTAINER_HOME, CONTAINER_VAR: target,
                "RAI_API_HOSTS": hosts["rai_api"], "LLM_API_HOSTS": hosts["llm_api"]})
    env.pop("PYTHONPATH", None)
    env["LLM_API_URL"] = _container_llm_url(settings)
    # other containers call a service by its name (`Host: llm-api:6301`): served besides the loopbacks
    env["RAICTL_ALLOWED_HOSTS"] = ",".join(dict.fromkeys([*settings.allowed_hosts, *(u.slug for u in units)]))
    secrets = [Secret("RAI_SECRET_KEY", True, "signs tokens: one value shared by every replica "
                                              "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))')")]
    key_wanted = bool(settings.gemini_api_key) or settings.llm_engine == "gemini"
    secrets.append(Secret("GEMINI_API_KEY", key_wanted,
                          "the Gemini key" + ("" if key_wanted else " (empty: the mock engine answers)")))
    env.pop("RAI_DATABASE_URL", None)
    if database.kind == "sqlite":
        env["RAI_DATABASE_URL"] = f"sqlite:///{CONTAINER_HOME}/rai.db"
    elif target == "kubernetes":
        secrets.append(Secret("RAI_DATABASE_URL", True, "mysql+pymysql://USER:PASSWORD@HOST/DB of your MySQL/MariaDB"))
    else:
        secrets += [Secret("MARIADB_PASSWORD", True, f"the password of user {database.user} of the mariadb service"),
                    Secret("MARIADB_ROOT_PASSWORD", True, "the mariadb service's root password")]
    return env, tuple(secrets)


def _container_llm_url(settings: Settings) -> str:
    """The LLM API by its service name; an LLM_API_URL set on purpose is kept unless it names a loopback
    (inside a container that is the container itself)."""
    from urllib.parse import urlsplit

    derived = f"http://{slug('llm_api')}:{settings.llm_api_port}"
    if settings.sources.get("llm_api_url", "").startswith("derived"):
        return derived
    host = urlsplit(settings.llm_api_url).hostname or ""
    if host in ("localhost", "127.0.0.1", "::1") or host.startswith("127."):
        raise RaictlError(f"LLM_API_URL={settings.llm_api_url} names this machine's loopback: inside a container "
                          "that is the container itself, not the LLM API",
                          hint=f"unset LLM_API_URL (export then uses {derived}), or set it to a remote LLM API")
    return settings.llm_api_url
