"""The supervisor's files in `<home>`, each written atomically (temp file + rename, mode 0600).

- `state.json`    what runs: written by the watch loop (or by `down` when the loop is gone)
      {"version": 1, "updated_at": t,
       "supervisor": {"pid", "create_time", "marker"} | null, "foreground": bool,
       "services": {NAME: {"state", "pid", "create_time", "marker", "started_at", "ready_at",
                           "restarts", "last_exit": {"code", "signal", "at", "cause"} | null,
                           "log_tail": [str] | null, "reason": str | null, "next_start_at",
                           "port", "hosts", "health"}}}
- `desired.json`  what should run: written by `up`/`down`, read by the watch loop (holds secrets: 0600)
      {"updated_at": t,
       "services": {NAME: {"spec": {ServiceSpec fields...}, "env": {the child's whole environment},
                           "cwd": str, "requested_at": t, "restart": bool}}}   (a `DesiredEntry` each)
- `supervisor.lock`  a flock(2) held while `up`/`down` decide, so two `up`s start one set.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raictl.errors import RaictlError
from raictl.supervisor import states
from raictl.supervisor.identity import ExitInfo, Identity
from raictl.supervisor.spec import ServiceSpec
from raishared.private_files import ensure_private_dir, write_json_atomic

STATE_FILE = "state.json"
DESIRED_FILE = "desired.json"
LOCK_FILE = "supervisor.lock"
STATE_VERSION = 1


def _identity(d: dict[str, Any]) -> Identity | None:
    """pid + create time + marker; None when a part is missing (an older file). TypeError when a
    part has the wrong type: that file is damaged, and nothing may be signalled on its word."""
    pid, created, marker = d.get("pid"), d.get("create_time"), d.get("marker")
    if not (pid and created and marker):
        return None
    if isinstance(pid, bool) or not isinstance(pid, int) or not isinstance(created, (int, float)) \
            or not isinstance(marker, str):
        raise TypeError(f"pid {pid!r}, create_time {created!r}, marker {marker!r}")
    return Identity(pid, float(created), marker)


@dataclass
class ServiceRecord:
    """What the watch loop knows about one service."""

    name: str
    state: str = states.STOPPED  # one of states.STATES (read as written: a newer file may hold others)
    identity: Identity | None = None
    started_at: float | None = None
    ready_at: float | None = None
    restarts: int = 0
    last_exit: ExitInfo | None = None
    log_tail: list[str] | None = None
    reason: str | None = None
    next_start_at: float | None = None
    port: int | None = None
    hosts: tuple[str, ...] = ()
    health: str | None = None

    def change_state(self, new: states.State) -> None:
        """The one place a service's state changes: InvalidTransition unless states allows it."""
        if new != self.state:
            states.check_transition(self.state, new)
        self.state = new

    def to_dict(self) -> dict[str, Any]:
        ident = self.identity.to_dict() if self.identity else {"pid": None, "create_time": None, "marker": None}
        return {"state": self.state, **ident, "started_at": self.started_at, "ready_at": self.ready_at,
                "restarts": self.restarts, "last_exit": self.last_exit.to_dict() if self.last_exit else None,
                "log_tail": self.log_tail, "reason": self.reason, "next_start_at": self.next_start_at,
                "port": self.port, "hosts": list(self.hosts), "health": self.health}

    @classmethod
    def from_dict(cls, name: str, d: dict[str, Any]) -> "ServiceRecord":
        """A record as any version wrote it: what an older file lacks (a create time, a marker)
        leaves no identity, so nothing is trusted or signalled on its word."""
        ident = _identity(d)
        exit_doc = d.get("last_exit") or {}
        last = ExitInfo(exit_doc.get("code"), exit_doc.get("signal"), exit_doc.get("at") or 0.0,
                        exit_doc.get("cause")) \
            if exit_doc else None
        return cls(name, d.get("state", states.STOPPED), ident, d.get("started_at"), d.get("ready_at"),
                   d.get("restarts", 0), last, d.get("log_tail"), d.get("reason"), d.get("next_start_at"),
                   d.get("port"), tuple(d.get("hosts") or ()), d.get("health"))


@dataclass
class DesiredEntry:
    """One service as `up` asks for it in desired.json: how to launch it, and when it was asked."""

    spec: ServiceSpec
    env: dict[str, str]     # the child's complete environment (settings, secrets included), minus the run marker
    cwd: str                # raictl.toml's folder: where a service without its own `cwd` runs
    requested_at: float = 0.0  # when `up`/`restart` asked: newer than what the loop saw means "asked again"
    restart: bool = False   # `raictl restart`: restart it even if nothing changed

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "env": dict(self.env), "cwd": self.cwd,
                "requested_at": self.requested_at, "restart": self.restart}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DesiredEntry":
        """KeyError, TypeError, ValueError or AttributeError when `d` is not an entry (damaged)."""
        env = d["env"]
        if not isinstance(env, dict):
            raise TypeError(f"env is {type(env).__name__}, not a table")
        return cls(ServiceSpec.from_dict(d["spec"]), {str(k): str(v) for k, v in env.items()}, str(d["cwd"]),
                   float(d.get("requested_at") or 0.0), bool(d.get("restart")))


@dataclass
class SupervisorState:
    supervisor: Identity | None = None
    foreground: bool = False
    services: dict[str, ServiceRecord] = field(default_factory=dict)
    updated_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "updated_at": time.time(),
                "supervisor": self.supervisor.to_dict() if self.supervisor else None,
                "foreground": self.foreground,
                "services": {n: r.to_dict() for n, r in self.services.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SupervisorState":
        sup = _identity(d["supervisor"]) if d.get("supervisor") else None
        services = {n: ServiceRecord.from_dict(n, r) for n, r in (d.get("services") or {}).items()}
        return cls(sup, bool(d.get("foreground")), services, d.get("updated_at"))


class DamagedState(RaictlError):
    """state.json exists but cannot be read as a state: `raictl down` still stops what runs."""


DAMAGED_HINT = ("run `raictl down`: it stops every process started from this home (each carries "
                "RAICTL_HOME and a run marker) and sets the damaged file aside")


def home_problem(home: Path, exc: OSError) -> RaictlError:
    """RAICTL_HOME unusable (a file, a folder we may not write): one line naming it."""
    if home.exists() and not home.is_dir():
        return RaictlError(f"the state folder {home} (RAICTL_HOME) is a file, not a folder",
                           hint="point RAICTL_HOME at a folder, or move the file away")
    return RaictlError(f"cannot use the state folder {home} (RAICTL_HOME): {exc.strerror or exc}",
                       hint="point RAICTL_HOME at a folder you may write to")


def ensure_home(home: Path) -> None:
    """Create `<home>` (0700) if need be; a RaictlError when it cannot be a folder we write in."""
    try:
        ensure_private_dir(home)
        (home / LOCK_FILE).touch(exist_ok=True)  # really writing: root passes every access() test
    except OSError as exc:
        raise home_problem(home, exc) from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (NotADirectoryError, PermissionError) as exc:
        raise home_problem(path.parent, exc) from None
    except IsADirectoryError:
        raise DamagedState(f"{path} is a folder, not a file", hint="move that folder out of the way") from None
    except ValueError as exc:
        raise DamagedState(f"{path} is damaged: not valid JSON ({exc})", hint=DAMAGED_HINT) from None


def read_state(home: Path) -> SupervisorState:
    """The last state written (any version); empty when there is none yet or it predates services."""
    path = home / STATE_FILE
    doc = _read_json(path)
    if not doc:
        return SupervisorState()
    try:
        return SupervisorState.from_dict(doc)
    except (AttributeError, TypeError, ValueError) as exc:  # a list where a table was, and so on
        raise DamagedState(f"{path} is damaged: {type(exc).__name__}: {exc}", hint=DAMAGED_HINT) from None


def service_names(configured: list[str], state: SupervisorState) -> list[str]:
    """The configured services, then any that only state.json still records (removed from raictl.toml
    while running): `status` shows them, `logs` reads them, `down` stops them."""
    return list(configured) + [n for n in state.services if n not in configured]


def write_state(home: Path, state: SupervisorState) -> None:
    write_json_atomic(home / STATE_FILE, state.to_dict())


def read_desired(home: Path) -> dict[str, DesiredEntry]:
    """What should run, by service name; DamagedState when the file is not what we write."""
    path = home / DESIRED_FILE
    doc = _read_json(path)
    if not doc:
        return {}
    try:
        return {str(n): DesiredEntry.from_dict(e) for n, e in (doc.get("services") or {}).items()}
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise DamagedState(f"{path} is damaged: {type(exc).__name__}: {exc}", hint=DAMAGED_HINT) from None


def write_desired(home: Path, services: dict[str, DesiredEntry]) -> None:
    write_json_atomic(home / DESIRED_FILE, {"services": {n: e.to_dict() for n, e in services.items()},
                                            "updated_at": time.time()})


def desired_version(home: Path) -> tuple[int, int] | None:
    """Changes whenever desired.json is replaced: cheap enough to check on every tick."""
    try:
        st = (home / DESIRED_FILE).stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


@contextmanager
def supervisor_lock(home: Path, timeout: float = 60.0) -> Iterator[None]:
    """The lock `up` and `down` hold while they decide: flock(2) on `<home>/supervisor.lock`.

    What filelock's FileLock does on Unix, but its import costs ~25 ms of `up`. Closing the
    descriptor releases the lock (a forked supervisor closes its copy at once)."""
    import fcntl

    ensure_home(home)
    fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:  # another raictl holds it: wait our turn
                if time.monotonic() >= deadline:
                    raise RaictlError(f"another raictl held {home / LOCK_FILE} for {timeout:g}s",
                                      hint="is a `raictl up` or `down` stuck? see `raictl status`") from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)
