"""`raictl up`, `down`, `restart`, `status`, `logs`: parse, call raictl.supervisor, render, exit code.

Exit codes: 0 ok, 1 a start or stop failed, 2 usage, 3 (status only) something is not running
or not healthy. The bodies live in `raictl.entry`, which also answers the plain forms of
status/up/down without importing Typer (see its docstring).
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from raictl import entry
from raishared.settings import load_settings

Services = Annotated[Optional[list[str]], typer.Argument(help="Services (default: all).", show_default=False)]
LOG_LINES = 50  # `raictl logs` shows this many lines first, unless -n or --since says otherwise
Timeout = Annotated[float, typer.Option("--timeout", help="Seconds to wait for every service to be ready.")]


def up(services: Services = None,
       foreground: Annotated[bool, typer.Option("--foreground", help="Stay in the terminal, logs "
                                                "multiplexed; Ctrl-C stops everything.")] = False,
       timeout: Timeout = 60.0,
       replicas: Annotated[Optional[int], typer.Option(
           "--replicas", min=1, help="RAI API processes, on RAI_API_PORT and the ports after it (default: "
                                     "rai_api.replicas, 1); more than one needs MySQL/MariaDB.")] = None) -> None:
    """Pre-flight, start the services (detached), and return when every one is ready."""
    if foreground:
        raise typer.Exit(_foreground(services or [], replicas))
    raise typer.Exit(entry.run_up(services or [], timeout, replicas))


def _foreground(names: list[str], replicas: int | None = None) -> int:
    from raictl import render
    from raictl.supervisor import control

    width = max(len(n) for n in names or ["llm_api", "rai_api"])
    colours: dict[str, int] = {}

    def on_line(name: str, line: str) -> None:
        colours.setdefault(name, len(colours))
        render.log_line(name, line, max(width, len(name)), colours[name], prefixed=True)

    fatal = control.run_foreground(load_settings(rai_api_replicas=replicas), names, on_line)
    for name in fatal:
        render.note(f"{name} ended fatal: `raictl logs {name}` shows why")
    return 1 if fatal else 0


def down(services: Services = None) -> None:
    """Stop the services (all by default): SIGTERM, grace period, SIGKILL, no process left."""
    raise typer.Exit(entry.run_down(services or []))


def restart(services: Services = None, timeout: Timeout = 60.0) -> None:
    """Restart the services (all by default): pre-flight first; a refusal leaves them running."""
    raise typer.Exit(entry.run_restart(services or [], timeout))


def status(as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False) -> None:
    """Each service's state, pid, uptime, restarts, last exit, listen addresses and health."""
    raise typer.Exit(entry.run_status(as_json))


def logs(service: Annotated[Optional[str], typer.Argument(help="One service (default: all, by time).")] = None,
         follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines.")] = False,
         lines: Annotated[Optional[int], typer.Option("-n", "--lines", min=0, show_default=False,
                                                      help="How many lines to show first [default: 50, "
                                                           "or all with --since].")] = None,
         since: Annotated[Optional[str], typer.Option("--since", help="Only lines from then on: a duration "
                                                      "back from now (90s, 10m, 2h, 1d) or an ISO time "
                                                      "(2026-12-02T01:30, local).")] = None) -> None:
    """Show a service's log, or all of them interleaved by time."""
    from raictl import render
    from raictl.supervisor import logs as service_logs

    moment = service_logs.parse_since(since) if since is not None else None
    paths = service_logs.log_files(load_settings(), service, follow)
    width = max((len(n) for n in paths), default=0)
    index = {name: i for i, name in enumerate(paths)}
    prefixed = service is None
    shown = lines if lines is not None or moment is not None else LOG_LINES
    try:  # Ctrl-C ends `logs -f` cleanly, also while the first lines are still being printed
        for name, line in service_logs.interleave(paths, shown, moment):
            render.log_line(name, line, width, index[name], prefixed)
        for name, line in service_logs.follow(paths) if follow else ():
            render.log_line(name, line, width, index[name], prefixed)
    except KeyboardInterrupt:
        if not follow:
            raise


def register(app: typer.Typer) -> None:
    """Attach `up`, `down`, `restart`, `status` and `logs` to the raictl app."""
    for command in (up, down, restart, status, logs):
        app.command()(command)
