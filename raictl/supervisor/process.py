"""Starting a child and stopping it, children of children included.

A child gets its own session (so its process group is its own), stdout and stderr appended to
`<home>/logs/NAME.log`, and an environment built from scratch: the resolved settings
(`Settings.to_env()`), a few inherited basics, `PYTHONPATH` pointing at the folder that holds the
`raictl` package being run (so `python -m services.llm_api` imports the same tree: the
troubleshooting log's `ModuleNotFoundError` cannot happen), and the run marker.

Stopping: SIGTERM to the process group and to every process carrying the run marker, a grace
period, then SIGKILL to whatever is left of either. Nothing is signalled by pid unless its create
time matches what we recorded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from functools import partial
from typing import IO, TYPE_CHECKING, Any, Callable, Protocol

from raictl.supervisor.identity import MARKER_VAR, SERVICE_VAR, Identity, identify, lookup, marked_processes, paused
from raictl.supervisor.spec import ServiceSpec, builtin
from raishared.private_files import ensure_private_dir
from raishared.settings import Settings

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor
  # psutil (~10 ms) is imported where used: `up` starts its import checks first
    from concurrent.futures import Future

    import psutil

INHERITED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "HOME", "USER", "TMPDIR", "TZ", "SYSTEMROOT",
             "RAICTL_TEST_ID")  # RAICTL_TEST_ID: the test suite's leftover check must see our children
KILL_WAIT = 3.0
RELAY_VAR = "RAICTL_LOG_RELAY"  # set on an extra service's stamping relay: it carries the run marker too


def package_root() -> str:
    """The folder containing the `raictl` package that is running (and its sibling `services`)."""
    import raictl

    return str(Path(raictl.__file__).resolve().parent.parent)


def launch_env(spec: ServiceSpec, settings: Settings) -> dict[str, str]:
    """The complete environment of `spec`'s child, minus the run marker (added per start)."""
    env = {k: os.environ[k] for k in INHERITED if k in os.environ}
    env.update(settings.to_env())
    env["PYTHONPATH"] = package_root()
    env["PYTHONUNBUFFERED"] = "1"  # log lines reach NAME.log as they happen, not at exit
    env[SERVICE_VAR] = spec.name
    if spec.port:
        env["PORT"] = str(spec.port)
    env.update(spec.env)
    return env


def launch_cwd(spec: ServiceSpec, settings: Settings) -> str:
    """The folder `spec`'s child runs in: its own `cwd`, else raictl.toml's folder (never the caller's)."""
    return spec.cwd or str(settings.base_dir)


def spawn(spec: ServiceSpec, env: dict[str, str], cwd: str, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start `spec` in its own session; returns the Popen and its new run marker. OSError if it cannot run.

    A built-in appends to its log itself (its logging stamps each line); an extra service's output goes
    through the stamping relay (raictl/supervisor/stamp.py), which carries the same run marker."""
    import uuid

    marker = uuid.uuid4().hex
    env = {**env, MARKER_VAR: marker}
    ensure_private_dir(log_path.parent)
    with open(log_path, "ab") as log:
        relay = None if builtin(spec.name) else _start_relay(env, log)
        try:
            child = subprocess.Popen(list(spec.command), cwd=spec.cwd or cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=relay.stdin if relay else log, stderr=subprocess.STDOUT,
                                     start_new_session=True, close_fds=True)
        finally:
            if relay and relay.stdin:  # the child holds the pipe now (or never will): the relay ends when it closes
                relay.stdin.close()
    return child, marker


def _start_relay(env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    """The stamping relay, appending to `log`; reaped by a daemon thread when it ends."""
    import threading

    relay = subprocess.Popen([sys.executable, "-m", "raictl.supervisor.stamp"], stdin=subprocess.PIPE,
                             stdout=log, stderr=log, env={**env, "PYTHONPATH": package_root(), RELAY_VAR: "1"},
                             start_new_session=True, close_fds=True)
    threading.Thread(target=relay.wait, name="reap-relay", daemon=True).start()
    return relay


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_all(procs: list[psutil.Process], sig: signal.Signals) -> None:
    import psutil

    for proc in procs:
        try:
            proc.send_signal(sig)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


def _psutil_waiter(proc: psutil.Process | None) -> Callable[[float], bool]:
    def wait(timeout: float) -> bool:
        if proc is None:
            return True
        import psutil

        gone, alive = psutil.wait_procs([proc], timeout=timeout)
        return not alive
    return wait


def _wait_marked(marker: str, deadline: float) -> list[psutil.Process]:
    """Wait until nothing carries `marker` or the deadline passes; returns what is left."""
    while True:
        left = [p for p in marked_processes([marker]) if _alive(p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.02)


def _alive(proc: psutil.Process) -> bool:
    import psutil

    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def stop(identity: Identity | None, marker: str | None, grace: float,
         wait_leader: Callable[[float], bool] | None = None) -> bool:
    """Stop a service's process tree; True when SIGKILL was needed.

    `wait_leader(timeout) -> gone?` lets the watch loop reap its own child; by default psutil waits.
    """
    import psutil

    leader = lookup(identity)
    wait_leader = wait_leader or _psutil_waiter(leader)
    deadline = time.monotonic() + grace
    marked = [p for p in marked_processes([marker]) if _alive(p)] if marker else []
    for sig in (signal.SIGTERM, signal.SIGCONT):  # CONT: a stopped (SIGSTOP) one handles its TERM now
        if leader is not None:
            _signal_group(leader.pid, sig)
        _signal_all(marked, sig)
    gone = wait_leader(grace) if leader is not None else True
    left = _wait_marked(marker, deadline) if marker else []
    if gone and not left:
        return False
    if leader is not None:  # the group outlives its leader only with live members: no pid reuse
        _signal_group(leader.pid, signal.SIGKILL)
    _signal_all(left, signal.SIGKILL)
    wait_leader(KILL_WAIT)
    psutil.wait_procs(left, timeout=KILL_WAIT)
    return True


def sweep(markers: list[str]) -> int:
    """SIGKILL every process still carrying one of these run markers; returns how many."""
    import psutil

    left = [p for p in marked_processes(markers) if _alive(p)]
    _signal_all(left, signal.SIGKILL)
    psutil.wait_procs(left, timeout=KILL_WAIT)
    return len(left)


class Handle(Protocol):
    """A started child as the watch loop holds it: what Popen offers (and a test's fake process)."""

    pid: int

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int | None: ...


class Processes:
    """The real processes the watch loop starts, checks and stops: its process factory. The fast
    tests (tests/test_watch_rules.py) give the loop a fake with these methods and a fake clock."""

    def start(self, spec: ServiceSpec, env: dict[str, str], cwd: str, log_path: Path
              ) -> tuple[subprocess.Popen, Identity]:
        """Spawn `spec`; its Popen (poll, wait) and identity. OSError when it cannot run."""
        import psutil

        popen, marker = spawn(spec, env, cwd, log_path)
        try:
            return popen, identify(popen.pid, marker)
        except psutil.NoSuchProcess:  # already gone: the loop's next tick records its exit
            return popen, Identity(popen.pid, time.time(), marker)

    def alive(self, identity: Identity | None) -> bool:
        """Whether this very process (pid, create time, marker) still runs."""
        return lookup(identity) is not None

    def ready(self, spec: ServiceSpec) -> bool:
        """Every address accepts and health answers 200 on every address (the caller knows it is alive)."""
        from raictl.supervisor import probes

        if not all(probes.probe_listen(h, p, 0.2).ok for h, p in spec.addresses):
            return False
        if spec.port and spec.health:
            return all(probes.probe_health(h, spec.port, spec.health, 1.0).ok for h in spec.hosts)
        return True

    def probe_live(self, spec: ServiceSpec, identity: Identity) -> "Future[str | None]":
        """Start one liveness probe in the background (the loop must not wait on a hung service);
        its result is None when the service answers on every address, else why not."""
        return _probe_pool().submit(live_problem, spec, identity)

    def stop(self, identity: Identity, grace: float, popen: Handle | None) -> bool:
        """SIGTERM, grace, SIGKILL (`stop`); the loop's own child is reaped through its Popen."""
        return stop(identity, identity.marker, grace, _popen_waiter(popen) if popen else None)

    def sweep(self, identity: Identity) -> None:
        """Kill what a service that exited left behind (its run marker)."""
        sweep([identity.marker])


def live_problem(spec: ServiceSpec, identity: Identity) -> str | None:
    """None when the service answers on every address within its liveness timeout, else why not.

    Liveness asks whether the process answers at all: any HTTP status on its health path (a 503
    because the database is down is not cured by a restart), or a TCP accept when it has none."""
    from raictl.supervisor import probes
    from raishared.settings import host_port

    proc = lookup(identity)
    why = paused(proc) if proc is not None else None
    if why or not spec.port:
        return why
    timeout = spec.liveness_timeout
    port, path = spec.port, spec.health
    if path:
        answers = probes.probe_all([partial(_health_answer, h, port, path, timeout) for h in spec.hosts])
        bad = [(h, r.detail) for h, r in answers if r.status is None]
    else:
        results = probes.probe_all([partial(probes.probe_listen, h, p, timeout) for h, p in spec.addresses])
        bad = [(r.host, r.detail) for r in results if not r.ok]
    return "; ".join(f"{host_port(h, spec.port)}: {detail}" for h, detail in bad) or None


def _health_answer(host: str, port: int, path: str, timeout: float) -> tuple[str, Any]:
    from raictl.supervisor import probes

    return host, probes.probe_health(host, port, path, timeout)


_POOL: ThreadPoolExecutor | None = None


def _probe_pool() -> ThreadPoolExecutor:
    """A few threads for liveness probes, made on first use (never on `up`'s critical path)."""
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="liveness")
    return _POOL


def _popen_waiter(popen: Handle) -> Callable[[float], bool]:
    def wait(timeout: float) -> bool:
        try:
            popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    return wait
