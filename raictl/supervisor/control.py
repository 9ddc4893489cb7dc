"""What `raictl up/down/restart` call: pre-flight, hand the work to the watch loop, wait, report.

`up` holds `<home>/supervisor.lock` while it decides, so two `up`s at the same moment start one
set: the second finds the first's supervisor in state.json and only adds to what it wants.
Results are values (`UpResult`, `DownResult`); nothing here prints.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from raictl.errors import RaictlError
from raictl.supervisor import logs, probes, process
from raictl.supervisor.entrycheck import ImportCheck, import_problem, reap, start_import_checks
from raictl.supervisor.identity import MARKER_VAR, ExitInfo, environ_of, home_processes, lookup
from raictl.supervisor.spec import (ServiceSpec, all_specs, builtin, check_addresses, dependency_order,
                                    hosts_var, port_setting, replica_of, select)
from raictl.supervisor.state import (STATE_FILE, DamagedState, SupervisorState, read_desired, read_state,
                                     service_names, supervisor_lock, write_desired, write_state)
from raishared.database import sqlite_file
from raishared.private_files import ensure_private_dir
from raishared.settings import Settings, base_url, host_port, lenient_home

POLL = 0.01
PARTIAL_GRACE = 3.0  # one address accepts, another still refuses this long after: it never will
DB_SERVICES = ("rai_api",)  # services that need the database at head before they start


@dataclass(frozen=True)
class Failure:
    service: str
    reason: str
    log_tail: list[str]
    hint: str | None = None


@dataclass
class UpResult:
    ready: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    supervisor_pid: int | None = None
    migration: str | None = None
    restarted: dict[str, str] = field(default_factory=dict)  # running, restarted: what changed ("": asked to)
    page_url: str | None = None  # the chat page, when the RAI API is ready
    warnings: list = field(default_factory=list)  # advice.Notice: ready, but not as a client expects

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class DownResult:
    stopped: list[str] = field(default_factory=list)
    forced: list[str] = field(default_factory=list)
    supervisor_gone: bool = False  # acted from state.json: the supervisor process was not there


# -- pre-flight ---------------------------------------------------------------------------------

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


def migrate_database(settings: Settings) -> str:
    """Upgrade the RAI API's database to head; RaictlError (hint `raictl migrate --repair`) if it cannot."""
    head = sqlite_at_head(settings.database_url)
    if head:
        return f"database at head ({head})"
    from raictl.migrate import upgrade_to_head

    result = upgrade_to_head(settings)
    if result.before == result.after:
        return f"database at head ({result.after})"
    return f"database upgraded {result.before or 'empty'} -> {result.after}"


_REVISION = re.compile(r"""^revision\s*=\s*["']([^"']+)["']""", re.M)
_DOWN = re.compile(r"""^down_revision\s*=\s*(?:None|["']([^"']+)["'])\s*$""", re.M)


def _script_heads() -> list[str] | None:
    """Head revisions from the migration scripts' text; None when a script is not a plain one."""
    versions = Path(process.package_root(), "migrations", "versions")  # shipped beside raictl
    if not versions.is_dir():
        return None
    revisions, parents = set(), set()
    for script in versions.glob("*.py"):
        text = script.read_text()
        revision, down = _REVISION.search(text), _DOWN.search(text)
        if revision is None or down is None:
            if script.name != "__init__.py":
                return None
            continue
        revisions.add(revision.group(1))
        parents.add(down.group(1))
    return sorted(revisions - parents)


def sqlite_at_head(url: str) -> str | None:
    """The head revision when an existing SQLite database is stamped with exactly that one head.

    The common `up` on a database already at head then costs a stdlib sqlite3 read instead of
    importing Alembic and SQLAlchemy (~0.5 s before the RAI API could start). Anything else
    (another database, not at head, several heads) returns None: `upgrade_to_head` decides."""
    path = sqlite_file(url)
    if path is None or not path.is_file():
        return None
    heads = _script_heads()
    if not heads or len(heads) != 1:
        return None
    import sqlite3

    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        return None
    return heads[0] if rows == [(heads[0],)] else None


# -- up -----------------------------------------------------------------------------------------

def launch_entry(spec: ServiceSpec, settings: Settings) -> dict:
    """What desired.json holds for one service: its spec, full environment, cwd, when asked."""
    return {"spec": spec.to_dict(), "env": process.launch_env(spec, settings), "cwd": str(settings.base_dir),
            "requested_at": time.time()}


def _needs_db(spec: ServiceSpec, specs: list[ServiceSpec]) -> bool:
    """Whether `spec` is, or depends (through any chain) on, a service that needs the database."""
    by_name = {s.name: s for s in specs}
    todo, seen = [spec.name], set()
    while todo:
        name = todo.pop()
        if replica_of(name) in DB_SERVICES:  # rai_api@2 needs it as rai_api does
            return True
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        todo += by_name[name].depends_on
    return False


def detach(home: Path, logs_dir: Path) -> int:
    """Start the watch loop in a process of its own session; returns its pid.

    From a single-threaded CLI: a double fork (no interpreter start-up on `up`'s critical path).
    From a threaded caller (e.g. `raictl doctor --fix`) forking is unsafe (another thread may hold
    the import lock), so a fresh `python -m raictl.supervisor.watch` is started instead."""
    import threading

    if threading.active_count() > 1:
        return _spawn_watcher(home, logs_dir)
    read_end, write_end = os.pipe()
    first = os.fork()
    if first == 0:
        os.close(read_end)
        os.setsid()
        if os.fork():
            os._exit(0)
        _become_daemon(write_end, home, logs_dir)
    os.close(write_end)
    os.waitpid(first, 0)
    with os.fdopen(read_end) as pipe:
        pid = pipe.read().strip()
    if not pid:
        raise RaictlError("the supervisor process failed to start",
                          hint=f"see {logs_dir / 'supervisor.log'}")
    return int(pid)


def _spawn_watcher(home: Path, logs_dir: Path) -> int:
    ensure_private_dir(logs_dir)
    env = {**os.environ, "PYTHONPATH": process.package_root()}
    with open(logs_dir / "supervisor.log", "ab") as log:
        child = subprocess.Popen([sys.executable, "-m", "raictl.supervisor.watch", str(home), str(logs_dir)],
                                 env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                 start_new_session=True)
    return child.pid


def _become_daemon(report_fd: int, home: Path, logs_dir: Path) -> None:
    from raictl.supervisor.watch import Watcher, name_process

    code = 0
    try:
        ensure_private_dir(logs_dir)
        null = os.open(os.devnull, os.O_RDWR)
        log = os.open(logs_dir / "supervisor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(null, 0), os.dup2(null, 1), os.dup2(log, 2)
        os.write(report_fd, str(os.getpid()).encode())
        os.close(report_fd)
        os.closerange(3, 1024)  # the CLI's lock and pipes are not the supervisor's
        name_process(home)
        Watcher(home, logs_dir).run()
    except BaseException:  # the daemon's last words go to supervisor.log, then it must exit
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        os._exit(code)


def _ensure_supervisor(settings: Settings, state: SupervisorState) -> int:
    """The pid of the live supervisor, forking one if there is none; waits until it is on record."""
    running = lookup(state.supervisor)
    if running is not None:
        return running.pid
    pid = detach(settings.home, settings.logs_dir)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        recorded = read_state(settings.home).supervisor
        if recorded and recorded.pid == pid:
            return pid
        if _pid_gone(pid):
            break
        time.sleep(POLL)
    raise RaictlError("the supervisor process did not start",
                      hint=f"see {settings.logs_dir / 'supervisor.log'}")


def _pid_gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _want(settings: Settings, entries: dict[str, dict], keep: bool) -> None:
    desired = read_desired(settings.home) if keep else {}
    desired.update(entries)
    write_desired(settings.home, desired)


def _restarts(state: SupervisorState, alive: set[str], entries: dict[str, dict], home: Path,
              force: list[str]) -> dict[str, str]:
    """The running services to restart: those asked for (`restart`), and those whose launch (command,
    port, hosts, cwd, the settings they read) differs from what they were started with."""
    from raictl.supervisor.changes import changes

    recorded = read_desired(home)
    found = {}
    for name, entry in entries.items():
        if name not in alive:
            continue
        if name in force:
            found[name] = ""
            continue
        record = state.services[name]
        changed = changes(recorded.get(name), entry, record.port, record.hosts)
        if changed:
            found[name] = "settings changed (" + ", ".join(changed) + ")"
    return found


def up(settings: Settings, names: list[str], timeout: float = 60.0,
       progress: Callable[[dict[str, str]], None] | None = None,
       import_checks: list[ImportCheck] | None = None, force: list[str] = ()) -> UpResult:
    """Start the named services (all when none) and their dependencies detached; wait until ready.
    A running one whose settings changed is restarted with the new ones, as is one named in
    `force` (`restart`): only once every pre-flight check passed, so a refusal stops nothing.
    `import_checks`: pre-flight import checks already started (the caller reaps them)."""
    check_timeout(timeout)
    known = all_specs(settings)
    specs = select(known, names, with_deps=True)
    check_addresses(known)
    result = UpResult()
    with supervisor_lock(settings.home):
        state = read_state(settings.home)
        supervised = lookup(state.supervisor) is not None
        alive = {n for n, r in state.services.items() if lookup(r.identity)}
        entries = {s.name: launch_entry(s, settings) for s in specs}
        result.restarted = _restarts(state, alive, entries, settings.home, list(force))
        for name in force:  # the watch loop restarts it even if nothing changed (or it is in backoff)
            entries[name]["restart"] = True
        result.already = [s.name for s in specs if s.name in alive and s.name not in result.restarted]
        todo = [s for s in specs if s.name not in result.already]
        replaced = [s for s in todo if s.name in result.restarted]
        own = frozenset(r.identity.marker for n in result.restarted if (r := state.services[n]).identity)
        try:
            preflight(todo, settings, import_checks, own)
        except RaictlError as exc:
            if replaced:
                raise RaictlError(f"{exc.message}; {_untouched(replaced)}", hint=exc.hint,
                                  exit_code=exc.exit_code) from None
            raise
        migrated = False
        if any(_needs_db(s, todo) for s in replaced):  # its database is ready before it is stopped
            failure = _migrate(settings, result)
            if failure:
                result.failures.append(Failure(failure.service, f"{failure.reason}; {_untouched(replaced)}",
                                               failure.log_tail, failure.hint))
                return result
            migrated = True
        if replaced and not supervised:  # left by a supervisor that died: stopped here, started anew
            every = service_names([s.name for s in known], state)
            _down_direct(settings.home, [s.name for s in replaced], every, state, known, "restart")
        # services left running by a supervisor that was killed: the new one adopts them
        orphans = [s for s in specs if s.name in result.already and not supervised]
        waiting = [] if migrated else [s for s in todo if _needs_db(s, todo)]
        if waiting and _already_at_head(settings, result):  # nothing to wait for: one hand-over
            waiting = []
        early = orphans + [s for s in todo if s not in waiting]
        if early:  # start what needs no database while the database is upgraded
            _want(settings, {s.name: entries[s.name] for s in early}, keep=supervised)
            result.supervisor_pid = _ensure_supervisor(settings, state)
        late = [s for s in todo if s not in early]
        if late:
            failure = _migrate(settings, result)
            if failure:  # refused: what this `up` started meanwhile is stopped again
                started = [s.name for s in early if s.name not in alive]
                if started:
                    _down_supervised(settings.home, started)
                result.failures.append(failure)
                return result
            _want(settings, {s.name: entries[s.name] for s in late}, keep=bool(early) or supervised)
            result.supervisor_pid = _ensure_supervisor(settings, read_state(settings.home))
    result = wait_ready(settings, specs, timeout, result, progress)
    rai_api = next((s for s in specs if s.name == "rai_api"), None)
    if rai_api and rai_api.port and rai_api.name in result.ready:
        result.page_url = chat_page_url(rai_api.hosts, rai_api.port)
    from raictl.supervisor.advice import after_up

    result.warnings = after_up(settings, specs, result.ready)
    return result


def chat_page_url(hosts: tuple[str, ...], port: int) -> str:
    """Where `up` says the chat page is: `localhost` when the RAI API listens on both loopbacks (a
    browser may resolve it to ::1 or to 127.0.0.1, and each answers), else its first address."""
    if {"127.0.0.1", "::1"} <= set(hosts):
        return f"http://localhost:{port}/"
    return base_url(hosts[0], port) + "/"


def _untouched(running: list[ServiceSpec]) -> str:
    names = ", ".join(s.name for s in running)
    return f"nothing was stopped: {names} {'keeps' if len(running) == 1 else 'keep'} running as before"


def _already_at_head(settings: Settings, result: UpResult) -> bool:
    """Whether a SQLite database is stamped at head (a stdlib read, no Alembic): then what needs it
    starts together with the rest instead of after a second hand-over to the supervisor."""
    head = sqlite_at_head(settings.database_url)
    if head:
        result.migration = f"database at head ({head})"
    return head is not None


def check_timeout(timeout: float) -> None:
    """A usage error unless `timeout` is a positive number of seconds (NaN included)."""
    if not timeout > 0:
        raise RaictlError(f"--timeout must be a positive number of seconds, got {timeout:g}",
                          hint="e.g. --timeout 60", exit_code=2)


def _migrate(settings: Settings, result: UpResult) -> Failure | None:
    # raictl.migrate.upgrade_to_head raises RaictlError (hint: raictl migrate --repair) on an
    # unknown revision: the RAI API is then not started.
    try:
        result.migration = migrate_database(settings)
    except RaictlError as exc:
        return Failure("rai_api", f"database not upgraded: {exc.message}", [], exc.hint)
    return None


def _progress_states(state: SupervisorState, specs: list[ServiceSpec]) -> dict[str, str]:
    states = {}
    for spec in specs:
        record = state.services.get(spec.name)
        states[spec.name] = record.state if record else "starting"
    return states


def wait_ready(settings: Settings, specs: list[ServiceSpec], timeout: float, result: UpResult,
               progress: Callable[[dict[str, str]], None] | None = None) -> UpResult:
    """Poll state.json (the watch loop probes: alive, every address accepts, health 200) until every
    service is running, one turns fatal, the supervisor dies, or the timeout passes."""
    deadline = time.monotonic() + timeout
    pending = {s.name: s for s in specs}
    renewed = {n: _requested_at(settings, n) for n in result.restarted}  # ready only as a new process
    shown: dict[str, str] | None = None
    partial = PartialListen()
    while pending:
        state = read_state(settings.home)
        states = _progress_states(state, specs)
        if progress and states != shown:  # redraw only when something changed
            progress(states)
            shown = states
        for name in list(pending):
            record = state.services.get(name)
            if record and record.state == "running" and lookup(record.identity) and \
                    (record.started_at or 0.0) >= renewed.get(name, 0.0):
                del pending[name]
            elif record and record.state == "fatal" and record.last_exit and \
                    record.last_exit.at >= _requested_at(settings, name):
                result.failures.append(_failure(settings, name, record.reason or "crash loop", "fatal: "))
                del pending[name]
        for name, reason in partial.check(state, pending).items():
            result.failures.append(_failure(settings, name, reason, hint=_one_address_hint(pending[name])))
            del pending[name]
        if pending and lookup(state.supervisor) is None:
            result.failures += [_failure(settings, n, "the supervisor process exited") for n in pending]
            break
        if pending and time.monotonic() > deadline:
            result.failures += [_failure(settings, n, _not_ready_reason(pending[n], timeout)) for n in pending]
            break
        if pending:
            time.sleep(POLL)
    result.ready = [s.name for s in specs if s.name not in {f.service for f in result.failures}]
    return result


class PartialListen:
    """A service that accepts on one of its addresses and still refuses on another, PARTIAL_GRACE
    seconds after the first one accepted, is not going to bind it (a program that listens on one
    loopback only): `up` names the address now instead of waiting for its whole timeout."""

    EVERY = 0.25

    def __init__(self) -> None:
        self.since: dict[str, float] = {}
        self.next_probe = 0.0

    def check(self, state: SupervisorState, pending: dict[str, ServiceSpec]) -> dict[str, str]:
        """name -> reason for each pending service found listening partially for too long."""
        now = time.monotonic()
        if now < self.next_probe:
            return {}
        self.next_probe = now + self.EVERY
        found = {}
        for name, spec in pending.items():
            record = state.services.get(name)
            if len(spec.addresses) < 2 or record is None or record.state != "starting":
                continue
            results = probes.probe_all([lambda a=a: probes.probe_listen(*a, 0.2) for a in spec.addresses])
            refused = [r for r in results if not r.ok]
            if not refused or len(refused) == len(results):
                self.since.pop(name, None)
                continue
            if now - self.since.setdefault(name, now) >= PARTIAL_GRACE:
                good = ", ".join(host_port(r.host, r.port) for r in results if r.ok)
                bad = "; ".join(f"{host_port(r.host, r.port)} refuses ({r.detail})" for r in refused)
                found[name] = f"{bad}, while {good} has accepted for {PARTIAL_GRACE:g}s: it listens on one address only"
        return found


def _requested_at(settings: Settings, name: str) -> float:
    return read_desired(settings.home).get(name, {}).get("requested_at", 0.0)


def _failure(settings: Settings, name: str, reason: str, prefix: str = "", hint: str | None = None) -> Failure:
    tail = logs.tail(logs.log_path(settings.logs_dir, name), logs.TAIL_LINES)
    return Failure(name, prefix + reason, tail, hint or f"full log: raictl logs {name}")


def _one_address_hint(spec: ServiceSpec) -> str:
    if builtin(spec.name):
        return f"`raictl logs {spec.name}` shows what it bound; `raictl doctor {spec.name}` explains the refusal"
    return (f"make its command listen on every address in hosts (it gets the port as $PORT), or list only "
            f"the addresses it binds: hosts = [...] in [services.{spec.name}]")


def _not_ready_reason(spec: ServiceSpec, timeout: float) -> str:
    """What was still missing at the timeout: each address that refuses, or the health answer."""
    missing = [f"{host_port(r.host, r.port)} {r.detail}" for r in
               (probes.probe_listen(h, p) for h, p in spec.addresses) if not r.ok]
    if not missing and spec.port and spec.health:
        health = probes.combine_health([(h, probes.probe_health(h, spec.port, spec.health))
                                        for h in spec.hosts])
        missing.append(f"health {health.detail}")
    return f"not ready after {timeout:g}s: " + ("; ".join(missing) or "still starting")


# -- down ---------------------------------------------------------------------------------------

def down(settings: Settings, names: list[str]) -> DownResult:
    """Stop the named services (all when none), dependents' order reversed; idempotent."""
    return down_in(settings.home, names, all_specs(settings))


def down_in(home: Path, names: list[str], known: list[ServiceSpec] | None = None) -> DownResult:
    """`down` in `home`. `known`: the configured services; None when the settings do not load, and
    then the services desired.json records (a config typo made while the stack runs must not
    leave it without a way to stop)."""
    result = DownResult()
    with supervisor_lock(home):
        if known is None:
            known = _recorded_specs(home)
        try:
            state = read_state(home)
        except DamagedState:
            return _down_damaged(home, names, known)
        every = service_names([s.name for s in known], state)
        recorded = every[len(known):]
        if names:
            select(known, [n for n in names if n not in recorded], with_deps=False)  # unknown -> error
        targets = names or every
        result.stopped = [n for n in reversed(every)  # in the order they are stopped
                          if n in targets and n in state.services and lookup(state.services[n].identity)]
        if lookup(state.supervisor) is not None:
            _down_supervised(home, targets)
        state = read_state(home)
        result.supervisor_gone = lookup(state.supervisor) is None
        if result.supervisor_gone:
            _down_direct(home, targets, every, state, known)
            _withdraw(home, targets)
        state = read_state(home)
        result.forced = [n for n in result.stopped if _killed(state, n)]
    return result


def home_without_settings() -> Path | None:
    """`<home>` found leniently when the settings do not load (`settings.lenient_home`); None when
    that folder does not exist: nothing to stop there."""
    home = lenient_home()
    return home if home.is_dir() else None


def _recorded_specs(home: Path) -> list[ServiceSpec]:
    """The services desired.json records, dependencies first (what `down` knows without settings)."""
    try:
        specs = [ServiceSpec.from_dict(e["spec"]) for e in read_desired(home).values()]
    except (RaictlError, KeyError, TypeError, ValueError, AttributeError):  # damaged: state.json still names them
        return []
    try:
        return dependency_order(specs, strict=False)
    except RaictlError:  # a cycle
        return specs


def _down_damaged(home: Path, names: list[str], known: list[ServiceSpec]) -> DownResult:
    """`down` when state.json cannot be read: withdraw everything from desired.json (a live
    supervisor then stops its children and exits), stop every process carrying this home and a
    run marker, then set the damaged file aside so the next command starts from a clean state."""
    if names:
        raise RaictlError("state.json is damaged: only `raictl down` of every service can repair it",
                          hint="run `raictl down` with no service names")
    running = home_processes(str(home))  # before withdrawing: a live supervisor starts stopping them
    write_desired(home, {})
    result = DownResult(supervisor_gone=True)
    order = [s.name for s in reversed(known)]  # dependents first, as always
    for marker, name in sorted(running.items(), key=lambda item: _rank(order, item[1])):
        if process.stop(None, marker, 5.0):
            result.forced.append(name)
        result.stopped.append(name)
    try:
        read_state(home)  # a live supervisor may have rewritten it while stopping
    except DamagedState:
        path = home / STATE_FILE
        path.replace(path.with_name(f"{STATE_FILE}.damaged-{int(time.time())}"))
    return result


def _rank(order: list[str], name: str) -> int:
    return order.index(name) if name in order else -1


def _killed(state: SupervisorState, name: str) -> bool:
    record = state.services.get(name)
    return bool(record and record.last_exit and record.last_exit.signal == "SIGKILL")


def _withdraw(home: Path, targets: list[str]) -> dict[str, dict]:
    """Remove the targets from desired.json; returns what it held before."""
    desired = read_desired(home)
    write_desired(home, {n: e for n, e in desired.items() if n not in targets})
    return desired


def _down_supervised(home: Path, targets: list[str]) -> None:
    """Withdraw the targets from desired.json and wait for the watch loop to stop them; when
    nothing is left wanted, wait for the supervisor itself to exit too (no process of ours is left)."""
    desired = _withdraw(home, targets)
    everything = not set(desired) - set(targets)
    graces = [ServiceSpec.from_dict(e["spec"]).grace for n, e in desired.items() if n in targets]
    deadline = time.monotonic() + sum(graces) + 15
    while time.monotonic() < deadline:
        state = read_state(home)
        if lookup(state.supervisor) is None:
            return
        stopped = not any(state.services[n].state in ("running", "starting", "backoff")
                          for n in targets if n in state.services)  # the loop has recorded each stop
        if stopped and not everything:
            return
        time.sleep(POLL)


def _down_direct(home: Path, targets, every, state: SupervisorState, known, cause: str = "down") -> None:
    """No supervisor: stop from state.json by identity (pid + create time), then sweep markers.
    Not their parent, we cannot read an exit code: last_exit records the signal that ended them."""
    graces = {s.name: s.grace for s in known}
    for name in reversed(every):
        record = state.services.get(name)
        if name not in targets or record is None:
            continue
        marker = record.identity.marker if record.identity else None
        was_alive = lookup(record.identity) is not None
        forced = process.stop(record.identity, marker, graces.get(name, 5.0))
        if was_alive:
            record.last_exit = ExitInfo(None, "SIGKILL" if forced else "SIGTERM", time.time(), cause)
        if record.state in ("running", "starting", "backoff"):
            record.state = "stopped"
        record.identity, record.next_start_at = None, None
    state.supervisor = None
    write_state(home, state)


def restart(settings: Settings, names: list[str], timeout: float = 60.0,
            progress: Callable[[dict[str, str]], None] | None = None) -> UpResult:
    """Restart the named services (all when none): `up` with each of them asked for again, so the
    pre-flight (ports other than their own, imports, the database) runs before anything is
    stopped, and a refusal leaves what runs untouched. Their dependencies are started if need be."""
    targets = [s.name for s in select(all_specs(settings), names, with_deps=False)]
    return up(settings, names, timeout, progress, force=targets)


# -- foreground -----------------------------------------------------------------------------------

def run_foreground(settings: Settings, names: list[str], on_line: Callable[[str, str], None]) -> list[str]:
    """`up --foreground`: the same watch loop in this process, every log line passed to `on_line`;
    SIGINT/SIGTERM (Ctrl-C) stops everything. Returns the services that ended fatal."""
    import threading

    from raictl.supervisor.watch import Watcher

    known = all_specs(settings)
    specs = select(known, names, with_deps=True)
    check_addresses(known)
    with supervisor_lock(settings.home):
        running = lookup(read_state(settings.home).supervisor)
        if running is not None:
            raise RaictlError(f"a supervisor is already running (pid {running.pid})",
                              hint="run `raictl down` first, or use `raictl up` without --foreground")
        preflight(specs, settings)
        if any(_needs_db(s, specs) for s in specs):
            migrate_database(settings)
        _want(settings, {s.name: launch_entry(s, settings) for s in specs}, keep=False)
        watcher = Watcher(settings.home, settings.logs_dir, foreground=True)
        watcher.claim()
    done = threading.Event()
    paths = {s.name: logs.log_path(settings.logs_dir, s.name) for s in specs}
    follower = threading.Thread(target=lambda: [on_line(n, l) for n, l in logs.follow(paths, 0.05, done.is_set)],
                                daemon=True)
    follower.start()
    try:
        watcher.run()
    finally:
        done.set()
        follower.join(timeout=1)
    return [n for n, r in watcher.state.services.items() if r.state == "fatal"]
