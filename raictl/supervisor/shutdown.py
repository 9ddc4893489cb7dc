"""`raictl down`: stop services in reverse dependency order, with or without a live supervisor.

With a supervisor, `down` withdraws the services from desired.json and waits for the watch loop
to stop them (and to exit once nothing is left). Without one (killed -9), it stops them itself
from state.json, by identity. With state.json damaged, it stops every process carrying this home's
run marker and sets the file aside. Also used by `up`, which stops what it is about to restart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Iterable

from raictl.errors import RaictlError
from raictl.supervisor import process
from raictl.supervisor.identity import ExitInfo, home_processes, lookup
from raictl.supervisor.spec import ServiceSpec, all_specs, dependency_order, select
from raictl.supervisor.state import (STATE_FILE, DamagedState, DesiredEntry, SupervisorState, read_desired,
                                     read_state, service_names, supervisor_lock, write_desired, write_state)
from raictl.supervisor.states import ACTIVE, STOPPED
from raishared.settings import Settings, lenient_home

POLL = 0.01


@dataclass
class DownResult:
    stopped: list[str] = field(default_factory=list)
    forced: list[str] = field(default_factory=list)
    supervisor_gone: bool = False  # acted from state.json: the supervisor process was not there


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
            stop_supervised(home, targets)
        state = read_state(home)
        result.supervisor_gone = lookup(state.supervisor) is None
        if result.supervisor_gone:
            stop_direct(home, targets, every, state, known)
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
        specs = [e.spec for e in read_desired(home).values()]
    except RaictlError:  # damaged: state.json still names them
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


def _withdraw(home: Path, targets: list[str]) -> dict[str, DesiredEntry]:
    """Remove the targets from desired.json; returns what it held before."""
    desired = read_desired(home)
    write_desired(home, {n: e for n, e in desired.items() if n not in targets})
    return desired


def stop_supervised(home: Path, targets: list[str]) -> None:
    """Withdraw the targets from desired.json and wait for the watch loop to stop them; when
    nothing is left wanted, wait for the supervisor itself to exit too (no process of ours is left)."""
    desired = _withdraw(home, targets)
    everything = not set(desired) - set(targets)
    graces = [e.spec.grace for n, e in desired.items() if n in targets]
    deadline = time.monotonic() + sum(graces) + 15
    while time.monotonic() < deadline:
        state = read_state(home)
        if lookup(state.supervisor) is None:
            return
        stopped = not any(state.services[n].state in ACTIVE
                          for n in targets if n in state.services)  # the loop has recorded each stop
        if stopped and not everything:
            return
        time.sleep(POLL)


def stop_direct(home: Path, targets: Collection[str], every: list[str], state: SupervisorState,
                known: Iterable[ServiceSpec], cause: str = "down") -> None:
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
        if record.state in ACTIVE:
            record.change_state(STOPPED)
        record.identity, record.next_start_at = None, None
    state.supervisor = None
    write_state(home, state)
