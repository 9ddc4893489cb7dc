"""`raictl up --foreground`: the same pre-flight and watch loop, run in the terminal.

The loop runs in this process (no daemon); each service's log lines are followed and passed to
the caller as they are written; Ctrl-C (SIGINT) or SIGTERM stops everything it started.
"""

from __future__ import annotations

from typing import Callable

from raictl.errors import RaictlError
from raictl.supervisor import logs
from raictl.supervisor.identity import lookup
from raictl.supervisor.launch import launch_entry, needs_db, want
from raictl.supervisor.preflight import preflight
from raictl.supervisor.spec import all_specs, check_addresses, select
from raictl.supervisor.state import read_state, supervisor_lock
from raictl.supervisor.states import FATAL
from raishared.settings import Settings


def run_foreground(settings: Settings, names: list[str], on_line: Callable[[str, str], None]) -> list[str]:
    """`up --foreground`: the same watch loop in this process, every log line passed to `on_line`;
    SIGINT/SIGTERM (Ctrl-C) stops everything. Returns the services that ended fatal."""
    import threading

    from raictl.migrate import bring_to_head
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
        if any(needs_db(s, specs) for s in specs):
            bring_to_head(settings)
        want(settings, {s.name: launch_entry(s, settings) for s in specs}, keep=False)
        watcher = Watcher(settings.home, settings.logs_dir, foreground=True)
        watcher.claim()
    done = threading.Event()
    paths = {s.name: logs.log_path(settings.logs_dir, s.name) for s in specs}
    def follow() -> None:
        for name, line in logs.follow(paths, 0.05, done.is_set):
            on_line(name, line)

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    try:
        watcher.run()
    finally:
        done.set()
        follower.join(timeout=1)
    return [n for n, r in watcher.state.services.items() if r.state == FATAL]
