"""`up`'s pre-flight: before anything is started or stopped, every reason it would fail is found
and named (a taken port and who holds it, a folder or program that is missing, an entry module
that does not import). Each check returns a RaictlError or None; `preflight` raises the first.
"""

from __future__ import annotations

import os
from pathlib import Path

from raictl.errors import RaictlError
from raictl.supervisor import probes, process
from raictl.supervisor.entrycheck import ImportCheck, import_problem, reap, start_import_checks
from raictl.supervisor.identity import MARKER_VAR, environ_of
from raictl.supervisor.spec import ServiceSpec, builtin, hosts_var, port_setting, replica_of
from raishared.settings import Settings, host_port


def port_problem(spec: ServiceSpec, host: str, port: int, settings: Settings,
                 own: frozenset[str] = frozenset()) -> RaictlError | None:
    """None when host:port is free, or held by a process carrying one of the run markers `own` (a
    service about to be restarted: its wildcard listener covers the loopback it will bind next);
    else who holds it, by pid, name and command line."""
    free = probes.port_free(host, port)
    if free:
        return None
    where = host_port(host, port)
    if free is None:
        return RaictlError(f"{spec.name} cannot listen on {where}: the address does not exist here",
                           hint=_port_hint(spec, hosts=True))
    owner = probes.port_owner(host, port)
    if owner is None:
        users = probes.port_connections(host, port)
        held = f"a connection using it as its local port: {users[0]}" if users else "a socket that closed as we looked"
        return RaictlError(f"{spec.name} cannot listen on {where}: in use by {held}",
                           hint="a TIME_WAIT socket frees itself within a minute; " + _port_hint(spec))
    if owner.pid and own and environ_of(owner.pid).get(MARKER_VAR) in own:
        return None
    home = raictl_home_of(owner.pid) if owner.pid else None
    if home is None:
        hint = _port_hint(spec)
    elif home == str(settings.home):
        hint = "a leftover raictl process: run `raictl down`"
    else:
        hint = f"a service of another raictl home: `RAICTL_HOME={home} raictl down` stops it; or {_port_hint(spec)}"
    return RaictlError(f"{spec.name} cannot listen on {where}: taken by {owner.describe()}", hint=hint)


def raictl_home_of(pid: int) -> str | None:
    """The RAICTL_HOME of a process a raictl supervisor started (it carries a run marker); else None."""
    env = environ_of(pid)
    return env.get("RAICTL_HOME", "") if env.get(MARKER_VAR) else None


def _port_hint(spec: ServiceSpec, hosts: bool = False) -> str:
    if not builtin(spec.name):
        return f"stop that process, or change {'hosts' if hosts else 'port'} in [services.{spec.name}] of raictl.toml"
    if hosts:
        return f"set {hosts_var(replica_of(spec.name))} to addresses this machine has, e.g. 127.0.0.1"
    return f"stop that process, or set {port_setting(spec.name)} to another value"


def start_problem(spec: ServiceSpec, settings: Settings) -> RaictlError | None:
    """None when the service's folder (cwd in its table) exists and its program can be run: else
    `up` would only learn it from five failed starts and a `fatal`."""
    import shutil

    if spec.cwd is not None and not Path(spec.cwd).is_dir():
        return RaictlError(f"{spec.name} cannot start: its folder {spec.cwd} does not exist",
                           hint=f"fix cwd in [services.{spec.name}] of raictl.toml (relative to its folder)")
    program, cwd = spec.command[0], process.launch_cwd(spec, settings)
    if "/" in program:
        found = os.access(Path(cwd, program), os.X_OK) and Path(cwd, program).is_file()
    else:
        found = shutil.which(program, path=process.launch_env(spec, settings).get("PATH")) is not None
    if found:
        return None
    return RaictlError(f"{spec.name} cannot start: {program} is not found or not executable"
                       + ("" if "/" in program else " on its PATH"),
                       hint=f"install it, or give its full path in command of [services.{spec.name}]")


def preflight(specs: list[ServiceSpec], settings: Settings, started: list[ImportCheck] | None = None,
              own: frozenset[str] = frozenset()) -> None:
    """Ports free on every address, entry modules importable: else a RaictlError naming the culprit.
    `started`: import checks launched ahead of time (`entrycheck.early_import_checks`); the checks
    of services they do not cover are started here. `own`: the run markers of the services about
    to be restarted (what they hold, on any address, they free when stopped)."""
    for spec in specs:
        problem = start_problem(spec, settings)
        if problem:
            raise problem
    wanted = {s.name for s in specs}
    checks = [c for c in started or [] if wanted & {s.name for s in c[0]}]
    covered = {s.name for group, _ in checks for s in group}
    checks += start_import_checks([s for s in specs if s.name not in covered], settings)
    try:
        for spec in specs:
            for host, port in spec.addresses:
                problem = port_problem(spec, host, port, settings, own)
                if problem:
                    raise problem
        for check in checks:
            problem = import_problem(check, wanted)
            if problem:
                raise problem
    finally:
        reap(checks)
