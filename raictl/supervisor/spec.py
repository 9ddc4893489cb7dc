"""Services as data: `ServiceSpec`, the two built-ins, and the `[services.NAME]` tables of raictl.toml.

An extra service is declared like this (every key but `command` is optional):

    [services.web]
    command = ["python", "-m", "http.server", "5173"]   # or one string, split like a shell would
    port = 5173                  # the child also gets it as $PORT
    hosts = ["127.0.0.1", "::1"] # default: both loopbacks
    health = "/"                 # HTTP path that must answer 200; omit for "every address accepts"
    cwd = "frontend"             # relative to raictl.toml's folder
    env = { NODE_ENV = "development" }
    depends_on = ["rai_api"]     # started once rai_api is ready; or { rai_api = "started" }
    grace = 5.0                  # seconds between SIGTERM and SIGKILL on stop
    liveness_interval = 5.0      # while it runs: probe every address this often (seconds) ...
    liveness_timeout = 2.0       # ... wait this long for an answer ...
    liveness_failures = 3        # ... and after this many failures in a row: unhealthy, restarted

The built-ins take the liveness keys in their own tables, `[llm_api]` and `[rai_api]`.

A command starting with `python`/`python3` runs in raictl's own interpreter, so the import
pre-flight checks the interpreter that will really run it.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from raictl.errors import RaictlError
from raishared.settings import LIVENESS_KEYS, LOOPBACKS, Settings, _hosts, _port, env_var

BUILTINS = ("llm_api", "rai_api")
HEALTH_PATH = "/api/health"
CONDITIONS = ("ready", "started")  # what a dependent waits for (compose: service_healthy, service_started)
LIVENESS_DEFAULTS: dict[str, Any] = {"liveness_interval": 5.0, "liveness_timeout": 2.0, "liveness_failures": 3}


@dataclass(frozen=True)
class RestartPolicy:
    """When a service that exited is started again, and when the watch loop gives up on it: the same
    for every service (`raictl export` writes it into the engines' restart settings)."""

    backoff_initial: float = 0.1   # first restart delay, doubling ...
    backoff_max: float = 5.0       # ... up to this cap
    healthy_reset: float = 10.0    # ready this long without exiting: the delay starts over
    fatal_starts: int = 5          # this many failed starts ...
    fatal_window: float = 30.0     # ... within this many seconds: fatal

    def delay(self, failures: int) -> float:
        """The wait before the next start, after `failures` failed starts in a row (0: the first)."""
        return min(self.backoff_initial * (2 ** failures), self.backoff_max)


RESTARTS = RestartPolicy()


@dataclass(frozen=True)
class ServiceSpec:
    """One supervised service: how to run it, where it listens, how to tell it is ready."""

    name: str
    command: tuple[str, ...]
    port: int | None = None
    hosts: tuple[str, ...] = LOOPBACKS
    health: str | None = HEALTH_PATH
    depends_on: tuple[str, ...] = ()
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    grace: float = 5.0             # SIGTERM -> SIGKILL (restarts: the watch loop's RestartPolicy)
    started_deps: tuple[str, ...] = ()  # of depends_on, those it waits only to be started for (not ready)
    liveness_interval: float = LIVENESS_DEFAULTS["liveness_interval"]
    liveness_timeout: float = LIVENESS_DEFAULTS["liveness_timeout"]
    liveness_failures: int = LIVENESS_DEFAULTS["liveness_failures"]

    def condition(self, dependency: str) -> str:
        """What it waits for of `dependency` before it is started: "ready" (the default) or "started"."""
        return "started" if dependency in self.started_deps else "ready"

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Every (host, port) the service must accept on; empty when it has no port."""
        return [(host, self.port) for host in self.hosts] if self.port else []

    @property
    def entry_module(self) -> str | None:
        """The module of a `python -m MODULE` command (checked by the import pre-flight)."""
        if len(self.command) >= 3 and self.command[1] == "-m":
            return self.command[2]
        return None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "env": dict(self.env)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ServiceSpec":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("command", "hosts", "depends_on", "started_deps"):
            known[key] = tuple(known.get(key) or ())
        return cls(**known)


# `python -m` puts the child's folder (raictl.toml's, the user's project) first on sys.path, where
# a `services/` package or a `waitress.py` of the user's would shadow raictl's own: the built-ins
# import only from raictl's installation (Python 3.11+ honours PYTHONSAFEPATH).
BUILTIN_ENV = {"PYTHONSAFEPATH": "1"}


def builtin_specs(settings: Settings) -> list[ServiceSpec]:
    """The LLM API and the RAI API (once per replica), run by the interpreter running raictl; the RAI
    API is started once the LLM API is ready (else its health says "LLM API unreachable" at first)."""
    rai_api = ServiceSpec("rai_api", (sys.executable, "-m", "services.rai_api"),
                          settings.rai_api_port, tuple(settings.rai_api_hosts), depends_on=("llm_api",),
                          env=BUILTIN_ENV, **liveness(settings.liveness.get("rai_api", {}), "rai_api"))
    return [ServiceSpec("llm_api", (sys.executable, "-m", "services.llm_api"),
                        settings.llm_api_port, tuple(settings.llm_api_hosts), env=BUILTIN_ENV,
                        **liveness(settings.liveness.get("llm_api", {}), "llm_api")),
            *replicas(rai_api, settings)]


def replicas(rai_api: ServiceSpec, settings: Settings) -> list[ServiceSpec]:
    """`rai_api` on RAI_API_PORT, then `rai_api@2`, `rai_api@3`, ... on the ports after it: separate
    processes, each supervised and probed on its own, sharing the database and the token secret
    (same settings, same <home>). More than one needs a database server: SQLite is refused."""
    count = settings.rai_api_replicas
    if count > 1 and settings.database_url.startswith("sqlite"):
        raise RaictlError(f"{count} RAI API replicas need MySQL/MariaDB: SQLite is one file, and its writers "
                          "would queue on its lock", hint="set RAI_DATABASE_URL=mysql+pymysql://user:pw@host/db, "
                                                         "or run one replica (rai_api.replicas = 1)")
    port = settings.rai_api_port  # rai_api's own: the first replica's
    if port + count - 1 > 65535:
        raise RaictlError(f"{count} RAI API replicas need ports {port}-{port + count - 1}",
                          hint=f"lower {env_var('rai_api_port')} or rai_api.replicas")
    return [rai_api] + [replace(rai_api, name=f"rai_api@{i}", port=port + i - 1,
                                env={**rai_api.env, env_var("rai_api_port"): str(port + i - 1)})
                        for i in range(2, count + 1)]


def replica_of(name: str) -> str:
    """The service a replica's name stands for: `rai_api@2` -> `rai_api`; any other name is itself."""
    return name.split("@", 1)[0]


def builtin(name: str) -> bool:
    """A built-in service, or a replica of one (its log, imports and hints are the built-in's)."""
    return replica_of(name) in BUILTINS


def liveness(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The liveness keys a table sets, checked: seconds above 0, a whole number of failures >= 1."""
    found: dict[str, Any] = {}
    for key in (k for k in LIVENESS_KEYS if k in table):
        raw = table[key]
        if key == "liveness_failures":
            if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
                raise _bad_in(where, key, "a whole number, 1 or more", raw)
        elif isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 < raw < float("inf"):
            raise _bad_in(where, key, "a number of seconds above 0", raw)
        found[key] = raw
    return found


def _command(raw: Any, name: str) -> tuple[str, ...]:
    if raw is not None and not isinstance(raw, (str, list)):
        raise RaictlError(f"[services.{name}] command must be a string or a list of strings, got {raw!r}",
                          hint='write command = ["prog", "arg"]')
    try:
        parts = shlex.split(raw) if isinstance(raw, str) else [str(p) for p in raw or ()]
    except ValueError as exc:  # shlex: an unclosed quote
        raise RaictlError(f"[services.{name}] command cannot be split: {exc}",
                          hint='write it as a list: command = ["prog", "arg"]') from None
    if not parts:
        raise RaictlError(f"[services.{name}] has no command", hint="add command = [\"prog\", \"arg\"]")
    if parts[0] in ("python", "python3"):
        parts[0] = sys.executable
    return tuple(parts)


KEYS = ("command", "port", "hosts", "health", "cwd", "env", "depends_on", "grace", *LIVENESS_KEYS)


def _bad_in(where: str, key: str, wanted: str, raw: Any) -> RaictlError:
    return RaictlError(f"[{where}] {key} must be {wanted}, got {raw!r}",
                       hint=f"fix {key} in [{where}] of raictl.toml")


def _bad(name: str, key: str, wanted: str, raw: Any) -> RaictlError:
    return _bad_in(f"services.{name}", key, wanted, raw)


def _number(table: Mapping[str, Any], name: str, key: str) -> float:
    raw = table[key]
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 <= raw < float("inf"):
        raise _bad(name, key, "a number of seconds, 0 or more", raw)
    return float(raw)


def _dependencies(table: Mapping[str, Any], name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(depends_on, those of them it waits only to be started for): a list of names (each "ready"),
    or a table of name = "ready" | "started"."""
    raw = table.get("depends_on", [])
    if isinstance(raw, list) and all(isinstance(d, str) for d in raw):
        return tuple(raw), ()
    if isinstance(raw, Mapping) and all(isinstance(d, str) and c in CONDITIONS for d, c in raw.items()):
        return tuple(raw), tuple(d for d, c in raw.items() if c == "started")
    raise _bad(name, "depends_on", 'a list of service names, e.g. ["rai_api"], or a table of conditions, '
                                   'e.g. { rai_api = "ready", worker = "started" }', raw)


def _checked(name: str, table: Mapping[str, Any]) -> Mapping[str, Any]:
    """The table, once its keys and the types a typo or a TOML slip would break are right."""
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise RaictlError(f"[services.{name}] has an unknown key {unknown[0]!r}",
                          hint=f"known keys: {', '.join(KEYS)}")
    health = table.get("health")
    if health is not None and not (isinstance(health, str) and health.startswith("/")):
        raise _bad(name, "health", 'an HTTP path such as "/api/health"', health)
    if "env" in table and not isinstance(table["env"], Mapping):
        raise _bad(name, "env", 'a table such as { NODE_ENV = "development" }', table["env"])
    if "cwd" in table and not isinstance(table["cwd"], str):
        raise _bad(name, "cwd", "a folder path", table["cwd"])
    return table


def extra_spec(name: str, table: Mapping[str, Any], base: Path) -> ServiceSpec:
    """A `[services.NAME]` table as a ServiceSpec; a bad value is a RaictlError naming it."""
    if builtin(name):
        raise RaictlError(f"[services.{name}] reuses a built-in service name",
                          hint=f"configure the built-ins with [{name}] keys; pick another name")
    table = _checked(name, table)
    where = f"services.{name}"
    port = _port(table["port"], f"{where}.port") if "port" in table else None
    cwd = str((base / table["cwd"]).resolve()) if table.get("cwd") else None
    grace: dict[str, Any] = {"grace": _number(table, name, "grace")} if "grace" in table else {}
    depends_on, started = _dependencies(table, name)
    return ServiceSpec(
        name, _command(table.get("command"), name), port,
        _hosts(table.get("hosts", LOOPBACKS), f"{where}.hosts"), table.get("health"),
        depends_on, cwd, {str(k): str(v) for k, v in (table.get("env") or {}).items()}, **grace,
        started_deps=started, **liveness(table, where))


def all_specs(settings: Settings) -> list[ServiceSpec]:
    """Every service of these settings, dependencies first."""
    base = settings.base_dir
    for name, table in settings.services.items():
        if not isinstance(table, Mapping):
            raise RaictlError(f"services.{name} in raictl.toml must be a table, got {table!r}",
                              hint=f'declare it as [services.{name}] with command = ["prog", "arg"]')
    extras = [extra_spec(n, t, base) for n, t in settings.services.items()]
    return dependency_order(builtin_specs(settings) + extras)


def check_addresses(specs: Iterable[ServiceSpec]) -> None:
    """Refuse two services set to listen on one address: the second could never bind it, and
    a probe of it would be answered by the first (`up` would call both ready)."""
    taken: dict[tuple[str, int], str] = {}
    for spec in specs:
        for address in spec.addresses:
            other = taken.setdefault(address, spec.name)
            if other != spec.name:
                raise RaictlError(f"{other} and {spec.name} are both set to listen on port {address[1]}",
                                  hint=f"give each service its own port ({port_setting(other)}, "
                                       f"{port_setting(spec.name)})")


def port_setting(name: str) -> str:
    """Where a service's port is set: `LLM_API_PORT`, or `port in [services.NAME]` (a replica's: after RAI_API_PORT)."""
    if replica_of(name) != name:
        return "RAI_API_PORT (replicas take the ports after it)"
    return env_var(f"{name}_port") if name in BUILTINS else f"port in [services.{name}]"


def hosts_var(name: str) -> str:
    """The environment variable of a built-in's addresses: `LLM_API_HOSTS`."""
    return env_var(f"{name}_hosts")


def hosts_setting(name: str, value: str = "127.0.0.1,::1") -> str:
    """Where a service's addresses are set: `LLM_API_HOSTS=...`, or `hosts = [...]` in its raictl.toml table."""
    if builtin(name):  # a replica (rai_api@2) listens where rai_api does
        return f"{hosts_var(replica_of(name))}={value}"
    return f"hosts = {[h for h in value.split(',')]} in [services.{name}]".replace("'", '"')


def dependency_order(specs: Iterable[ServiceSpec], strict: bool = True) -> list[ServiceSpec]:
    """Specs sorted so each comes after what it depends on; a cycle is an error, and so is an
    unknown name when `strict` (raictl.toml). Not strict (the watch loop: only what is wanted), a
    dependency outside `specs` is ignored: a dependent may run while what it depends on is down."""
    by_name = {s.name: s for s in specs}
    ordered: list[ServiceSpec] = []
    visiting: set[str] = set()

    def visit(spec: ServiceSpec) -> None:
        if any(done.name == spec.name for done in ordered):
            return
        if spec.name in visiting:
            raise RaictlError(f"services depend on each other in a cycle through {spec.name}",
                              hint="fix depends_on in raictl.toml")
        visiting.add(spec.name)
        for dep in spec.depends_on:
            if dep not in by_name:
                if not strict:
                    continue
                raise RaictlError(f"{spec.name} depends on unknown service {dep!r}",
                                  hint=f"known services: {', '.join(by_name)}")
            visit(by_name[dep])
        ordered.append(spec)

    for spec in by_name.values():
        visit(spec)
    return ordered


def select(specs: list[ServiceSpec], names: Iterable[str], with_deps: bool) -> list[ServiceSpec]:
    """The named services (all when none named), plus their dependencies if asked; order kept."""
    names = list(names)
    by_name = {s.name: s for s in specs}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise RaictlError(f"unknown service {unknown[0]!r}", hint=f"known services: {', '.join(by_name)}",
                          exit_code=2)
    wanted = {s for n in names for s in by_name if replica_of(s) == n or s == n} or set(by_name)  # rai_api: each replica
    while with_deps:
        more = {d for n in wanted for d in by_name[n].depends_on} - wanted
        if not more:
            break
        wanted |= more
    return [s for s in specs if s.name in wanted]
