"""Process identity: a process is ours when its pid, create time and run marker agree.

A pid alone lies: after a crash or a reboot it may belong to another program. Each child gets
`RAICTL_RUN=<uuid>` (the run marker) in its environment, which its own children inherit, so a
grandchild that left the process group can still be found and stopped.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:  # psutil (~10 ms) is imported where used: `up` starts its import checks first
    import psutil

MARKER_VAR = "RAICTL_RUN"
SERVICE_VAR = "RAICTL_SERVICE"
_CREATE_TIME_SLACK = 0.05  # psutil rounds create times to clock ticks


@dataclass(frozen=True)
class Identity:
    pid: int
    create_time: float
    marker: str

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "create_time": self.create_time, "marker": self.marker}


# Why raictl ended a process itself (ExitInfo.cause), as status and doctor say it; None: it ended on its own.
CAUSES = {"down": "stopped by raictl down", "restart": "stopped to be restarted",
          "liveness": "restarted for failing liveness", "supervisor": "stopped with its supervisor"}


@dataclass(frozen=True)
class ExitInfo:
    """How a process ended: `code` for a normal exit, `signal` (by name) when killed; `cause` when
    raictl ended it on purpose (a key of CAUSES), so a `down` never reads like a crash."""

    code: int | None
    signal: str | None
    at: float
    cause: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "signal": self.signal, "at": self.at, "cause": self.cause}

    def describe(self) -> str:
        if self.signal:
            how = f"killed by {self.signal}"
        else:
            how = "exit status unknown" if self.code is None else f"exited with code {self.code}"
        if self.cause in CAUSES:
            forced = " (SIGKILL after the grace period)" if self.signal == "SIGKILL" else ""
            return CAUSES[self.cause] + forced if self.cause != "liveness" else f"{CAUSES[self.cause]} ({how})"
        return how

    def because(self, cause: str) -> "ExitInfo":
        return ExitInfo(self.code, self.signal, self.at, cause)


def decode_exit(returncode: int | None, at: float | None = None) -> ExitInfo:
    """Popen's returncode as ExitInfo: -9 is `SIGKILL`, not "exit code -9"."""
    at = time.time() if at is None else at
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return ExitInfo(None, name, at)
    return ExitInfo(returncode, None, at)


def identify(pid: int, marker: str) -> Identity:
    """The identity of a process we just started."""
    import psutil

    return Identity(pid, psutil.Process(pid).create_time(), marker)


def lookup(identity: Identity | None) -> psutil.Process | None:
    """The live process with this identity, or None when it is gone, a zombie, or a reused pid."""
    if identity is None:
        return None
    import psutil

    try:
        proc = psutil.Process(identity.pid)
        if abs(proc.create_time() - identity.create_time) > _CREATE_TIME_SLACK:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return None
    return proc


def environ_of(proc: psutil.Process | int) -> dict[str, str]:
    """A process's environment (by Process or pid); empty when it is gone or we may not read it."""
    import psutil

    try:
        return (proc if isinstance(proc, psutil.Process) else psutil.Process(proc)).environ()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return {}


def process_marker(proc: psutil.Process) -> str | None:
    """The run marker in a process's environment, or None when it has none or we may not read it."""
    return environ_of(proc).get(MARKER_VAR)


def marked_processes(markers: Iterable[str]) -> list[psutil.Process]:
    """Every live process carrying one of these run markers (children of children included)."""
    wanted = set(markers)
    if not wanted:
        return []
    import psutil

    found = []
    for proc in psutil.process_iter():
        marker = process_marker(proc)
        if marker in wanted:
            found.append(proc)
    return found


def home_processes(home: str) -> dict[str, str]:
    """run marker -> service name of every live process started by a supervisor of this home
    (RAICTL_HOME=home and a run marker): what `down` stops when state.json cannot tell it."""
    import psutil

    found: dict[str, str] = {}
    for proc in psutil.process_iter():
        env = environ_of(proc)
        if env.get(MARKER_VAR) and env.get("RAICTL_HOME") == home:
            found.setdefault(env[MARKER_VAR], env.get(SERVICE_VAR) or f"pid {proc.pid}")
    return found


def paused(proc: psutil.Process) -> str | None:
    """Why a live process answers nothing although it holds its port (the kernel still accepts
    connections into the backlog): stopped by SIGSTOP (state T) or by a tracer; else None."""
    import psutil

    try:
        status = proc.status()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return None
    if status in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP):
        return "stopped by a signal (SIGSTOP, state T): it holds its port but answers nothing"
    return None
