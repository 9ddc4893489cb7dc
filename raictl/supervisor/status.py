"""The truth about each service, for `raictl status` and `raictl doctor`.

`service_statuses(settings)` combines what `state.json` says with what is really there: a pid is
trusted only when its create time matches (a reused pid reads as stopped), a service whose
supervisor is gone is never shown as restarting, and every listen address and the health URL are
probed in parallel with short timeouts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from raictl.supervisor import probes
from raictl.supervisor.advice import is_wildcard, probed_hosts
from raictl.supervisor.identity import ExitInfo, lookup, paused
from raictl.supervisor.spec import ServiceSpec, all_specs
from raictl.supervisor.state import ServiceRecord, SupervisorState, read_state, service_names
from raictl.supervisor.states import ACTIVE, ALIVE, FATAL, PENDING, RUNNING, STARTING, STOPPED, UNHEALTHY, State
from raishared.settings import Settings

if TYPE_CHECKING:
    import psutil

NOT_RUNNING = probes.HealthResult(False, None, "not running")


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: State
    pid: int | None
    uptime_s: float | None
    restarts: int
    last_exit: ExitInfo | None
    listen: list[probes.ListenResult]
    health: probes.HealthResult
    reason: str | None = None
    log_tail: list[str] | None = None
    wildcards: tuple[str, ...] = ()  # addresses it binds that take connections from the network

    @property
    def ok(self) -> bool:
        """Running and healthy: what `status` exits 0 for."""
        return self.state == RUNNING and self.health.ok and all(l.ok for l in self.listen)

    def to_dict(self) -> dict[str, Any]:
        """The DESIGN.md `status --json` fields."""
        return {"name": self.name, "state": self.state, "pid": self.pid, "uptime_s": self.uptime_s,
                "restarts": self.restarts, "last_exit": self.last_exit.to_dict() if self.last_exit else None,
                "listen": [l.to_dict() for l in self.listen], "health": self.health.to_dict()}


@dataclass(frozen=True)
class Overview:
    supervisor_pid: int | None
    services: list[ServiceStatus]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.services)


def live_state(record: ServiceRecord | None, alive: bool, supervised: bool) -> State:
    """One of states.STATES from the record and what is really there."""
    if record is None:
        return STOPPED
    if alive:
        return record.state if record.state in ALIVE else RUNNING
    if record.state == FATAL:
        return FATAL
    if supervised and record.state in PENDING:
        return record.state
    return STOPPED


def _where(spec: ServiceSpec | None, record: ServiceRecord | None,
           alive: bool) -> tuple[int | None, tuple[str, ...], str | None]:
    """(port, hosts, health path): what the running process was given, else the current spec."""
    if alive and record and record.port:
        return record.port, record.hosts, record.health
    if spec:
        return spec.port, spec.hosts, spec.health
    return (record.port, record.hosts, record.health) if record else (None, (), None)


def _jobs(port: int | None, hosts: tuple[str, ...], health: str | None, alive: bool) -> list[Callable[[], Any]]:
    """A listen probe per address, a wildcard's being both loopbacks (what a client of localhost
    dials: the log's ECONNREFUSED ::1); when it runs, a health probe per address too (one address
    answering is not enough: the troubleshooting log's client used the other one)."""
    if not port:
        return []
    jobs: list[Callable[[], Any]] = [partial(probes.probe_listen, h, port) for h in probed_hosts(hosts)]
    if alive and health:
        jobs += [partial(_health_answer, h, port, health) for h in hosts]
    return jobs


def _health_answer(host: str, port: int, path: str) -> tuple[str, probes.HealthResult]:
    return host, probes.probe_health(host, port, path)


def overview(settings: Settings, state: SupervisorState | None = None) -> Overview:
    """Status of every configured service (and of any still recorded as running), probed in parallel."""
    state = read_state(settings.home) if state is None else state
    supervisor = lookup(state.supervisor)
    specs = {s.name: s for s in all_specs(settings)}
    names = service_names(list(specs), state)
    rows = []
    for name in names:
        record = state.services.get(name)
        proc = lookup(record.identity) if record else None
        stopped = paused(proc) if proc is not None else None  # its health would only time out
        if name not in specs and live_state(record, proc is not None, supervisor is not None) not in ACTIVE:
            continue  # removed from raictl.toml and no longer running: nothing left to show
        port, hosts, health = _where(specs.get(name), record, proc is not None)
        rows.append((name, record, proc, stopped, hosts, health,
                     _jobs(port, hosts, health, proc is not None and not stopped)))
    results = probes.probe_all([job for row in rows for job in row[-1]])
    statuses = []
    for name, record, proc, stopped, hosts, health, jobs in rows:
        mine, results = results[:len(jobs)], results[len(jobs):]
        statuses.append(_status(name, record, proc, supervisor is not None, mine, bool(health), stopped))
        statuses[-1] = replace(statuses[-1], wildcards=tuple(h for h in hosts if is_wildcard(h)))
    return Overview(supervisor.pid if supervisor else None, statuses)


def _uptime(record: ServiceRecord | None) -> float | None:
    """Seconds a live service has run: started_at is on the wall clock; psutil's create time drifts from
    it by up to a second."""
    if record is None:
        return None
    since = record.started_at or (record.identity.create_time if record.identity else None)
    return round(max(0.0, time.time() - since), 1) if since else None


def _status(name: str, record: ServiceRecord | None, proc: psutil.Process | None, supervised: bool,
            results: list[Any], has_health: bool, stopped: str | None = None) -> ServiceStatus:
    """One service's status; `stopped`: why its live process answers nothing (SIGSTOP): unhealthy,
    as the watch loop will find it once its liveness threshold passes."""
    alive = proc is not None
    listen = [r for r in results if isinstance(r, probes.ListenResult)]
    health = probes.HealthResult(False, None, stopped) if stopped else \
        probes.combine_health([r for r in results if isinstance(r, tuple)])
    if health is None:
        no_check = probes.HealthResult(all(l.ok for l in listen), None, "no health check")
        health = no_check if alive and not has_health else NOT_RUNNING
    uptime = _uptime(record) if alive else None
    state = UNHEALTHY if stopped else live_state(record, alive, supervised)
    if state == STARTING and health.ok and all(l.ok for l in listen):
        state = RUNNING  # ready by the same test the loop uses; it has just not written it yet
    return ServiceStatus(name, state, proc.pid if proc is not None else None, uptime,
                         record.restarts if record else 0, record.last_exit if record else None,
                         listen, health, record.reason if record else None,
                         record.log_tail if record else None)


def service_statuses(settings: Settings) -> list[ServiceStatus]:
    """Every service's status (the list `raictl status` shows and `raictl doctor` checks)."""
    return overview(settings).services
