"""Starting the supervisor: the watch loop as a daemon of its own session, and waiting until it
is on record in state.json. `up` hands it the work through desired.json and never waits on it
otherwise; the daemon outlives the CLI that forked it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from raictl.errors import RaictlError
from raictl.supervisor import process
from raictl.supervisor.identity import lookup
from raictl.supervisor.state import SupervisorState, read_state
from raishared.private_files import ensure_private_dir
from raishared.settings import Settings

POLL = 0.01


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


def ensure_supervisor(settings: Settings, state: SupervisorState) -> int:
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
