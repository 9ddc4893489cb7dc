"""`raictl up` and `raictl restart`: pre-flight, hand the work to the watch loop, wait, report.

`up` holds `<home>/supervisor.lock` while it decides, so two `up`s at the same moment start one
set: the second finds the first's supervisor in state.json and only adds to what it wants. A
running service whose launch changed (or that `restart` names) is restarted only once every
pre-flight check passed, so a refusal stops nothing. What needs no database starts while the
database is brought to head. Results are values (`UpResult`); nothing here prints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

from raictl.errors import RaictlError
from raictl.supervisor import logs, probes, process
from raictl.supervisor.daemon import POLL, ensure_supervisor
from raictl.supervisor.entrycheck import ImportCheck
from raictl.supervisor.identity import lookup
from raictl.supervisor.preflight import preflight
from raictl.supervisor.shutdown import stop_direct, stop_supervised
from raictl.supervisor.spec import ServiceSpec, all_specs, builtin, check_addresses, replica_of, select
from raictl.supervisor.state import (DesiredEntry, SupervisorState, read_desired, read_state, service_names,
                                     supervisor_lock, write_desired)
from raictl.supervisor.states import BACKOFF, FATAL, RUNNING, STARTING
from raishared.settings import Settings, base_url, host_port

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


def launch_entry(spec: ServiceSpec, settings: Settings) -> DesiredEntry:
    """What desired.json holds for one service: its spec, full environment, cwd, when asked."""
    return DesiredEntry(spec, process.launch_env(spec, settings), str(settings.base_dir), time.time())


def needs_db(spec: ServiceSpec, specs: list[ServiceSpec]) -> bool:
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


def want(settings: Settings, entries: dict[str, DesiredEntry], keep: bool) -> None:
    desired = read_desired(settings.home) if keep else {}
    desired.update(entries)
    write_desired(settings.home, desired)


def _restarts(state: SupervisorState, alive: set[str], entries: dict[str, DesiredEntry], home: Path,
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
       import_checks: list[ImportCheck] | None = None, force: Sequence[str] = ()) -> UpResult:
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
            entries[name].restart = True
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
        if any(needs_db(s, todo) for s in replaced):  # its database is ready before it is stopped
            failure = _migrate(settings, result)
            if failure:
                result.failures.append(Failure(failure.service, f"{failure.reason}; {_untouched(replaced)}",
                                               failure.log_tail, failure.hint))
                return result
            migrated = True
        if replaced and not supervised:  # left by a supervisor that died: stopped here, started anew
            every = service_names([s.name for s in known], state)
            stop_direct(settings.home, [s.name for s in replaced], every, state, known, "restart")
        # services left running by a supervisor that was killed: the new one adopts them
        orphans = [s for s in specs if s.name in result.already and not supervised]
        waiting = [] if migrated else [s for s in todo if needs_db(s, todo)]
        if waiting and _already_at_head(settings, result):  # nothing to wait for: one hand-over
            waiting = []
        early = orphans + [s for s in todo if s not in waiting]
        if early:  # start what needs no database while the database is upgraded
            want(settings, {s.name: entries[s.name] for s in early}, keep=supervised)
            result.supervisor_pid = ensure_supervisor(settings, state)
        late = [s for s in todo if s not in early]
        if late:
            failure = _migrate(settings, result)
            if failure:  # refused: what this `up` started meanwhile is stopped again
                started = [s.name for s in early if s.name not in alive]
                if started:
                    stop_supervised(settings.home, started)
                result.failures.append(failure)
                return result
            want(settings, {s.name: entries[s.name] for s in late}, keep=bool(early) or supervised)
            result.supervisor_pid = ensure_supervisor(settings, read_state(settings.home))
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
    from raictl.migrate import sqlite_at_head

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
    from raictl.migrate import bring_to_head

    try:
        result.migration = bring_to_head(settings)
    except RaictlError as exc:
        return Failure("rai_api", f"database not upgraded: {exc.message}", [], exc.hint)
    return None


def _progress_states(state: SupervisorState, specs: list[ServiceSpec]) -> dict[str, str]:
    """What `up`'s progress line shows: each state, `waiting for NAME` for one not started yet
    because a dependency is not ready (its `backoff` is not a crash)."""
    shown = {}
    for spec in specs:
        record = state.services.get(spec.name)
        reason = record.reason if record is not None else None
        waiting = record is not None and record.state == BACKOFF and (reason or "").startswith("waiting for")
        shown[spec.name] = reason.split(" to be ")[0] if waiting and reason else (record.state if record else STARTING)
    return shown


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
            if record and record.state == RUNNING and lookup(record.identity) and \
                    (record.started_at or 0.0) >= renewed.get(name, 0.0):
                del pending[name]
            elif record and record.state == FATAL and record.last_exit and \
                    record.last_exit.at >= _requested_at(settings, name):
                result.failures.append(_failure(settings, name, record.reason or "crash loop", "fatal: "))
                del pending[name]
        for name, reason in partial.check(state, pending).items():
            result.failures.append(_failure(settings, name, reason, hint=_one_address_hint(pending[name])))
            del pending[name]
        for failure in _blocked(pending, result.failures, state):
            result.failures.append(failure)
            del pending[failure.service]
        if pending and lookup(state.supervisor) is None:
            result.failures += [_failure(settings, n, "the supervisor process exited") for n in pending]
            break
        if pending and time.monotonic() > deadline:
            for name in [n for n in pending]:  # dependencies first: a dependent that waited names their reason
                if name not in pending:  # failed just above, as a dependent of one that did
                    continue
                result.failures.append(_failure(settings, name, _not_ready_reason(pending.pop(name), timeout)))
                for failure in _blocked(pending, result.failures, state):
                    result.failures.append(failure)
                    del pending[failure.service]
            break
        if pending:
            time.sleep(POLL)
    result.ready = [s.name for s in specs if s.name not in {f.service for f in result.failures}]
    return result


def _blocked(pending: dict[str, ServiceSpec], failures: list[Failure], state: SupervisorState) -> list[Failure]:
    """A failure for each pending service never started because a dependency it waits for failed:
    with that dependency's reason, not a timeout of its own."""
    failed = {f.service: f.reason for f in failures}
    found = []
    for name, spec in pending.items():
        record = state.services.get(name)
        if record is not None and record.state != BACKOFF:  # started: its own readiness decides
            continue
        dep = next((d for d in spec.depends_on if d in failed), None)
        if dep is not None:
            found.append(Failure(name, f"not started: it waits for {dep} to be {spec.condition(dep)}, "
                                       f"and {dep} failed: {failed[dep]}", [], f"fix {dep} first (see above)"))
    return found


def _requested_at(settings: Settings, name: str) -> float:
    entry = read_desired(settings.home).get(name)
    return entry.requested_at if entry else 0.0


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
            if len(spec.addresses) < 2 or record is None or record.state != STARTING:
                continue
            results = probes.probe_all([partial(probes.probe_listen, h, p, 0.2) for h, p in spec.addresses])
            refused = [r for r in results if not r.ok]
            if not refused or len(refused) == len(results):
                self.since.pop(name, None)
                continue
            if now - self.since.setdefault(name, now) >= PARTIAL_GRACE:
                good = ", ".join(host_port(r.host, r.port) for r in results if r.ok)
                bad = "; ".join(f"{host_port(r.host, r.port)} refuses ({r.detail})" for r in refused)
                found[name] = f"{bad}, while {good} has accepted for {PARTIAL_GRACE:g}s: it listens on one address only"
        return found


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
        missing.append(f"health {health.detail if health else 'no answer'}")
    return f"not ready after {timeout:g}s: " + ("; ".join(missing) or "still starting")


def restart(settings: Settings, names: list[str], timeout: float = 60.0,
            progress: Callable[[dict[str, str]], None] | None = None) -> UpResult:
    """Restart the named services (all when none): `up` with each of them asked for again, so the
    pre-flight (ports other than their own, imports, the database) runs before anything is
    stopped, and a refusal leaves what runs untouched. Their dependencies are started if need be."""
    targets = [s.name for s in select(all_specs(settings), names, with_deps=False)]
    return up(settings, names, timeout, progress, force=targets)
