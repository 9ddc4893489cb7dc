"""`raictl up`, `down`, `restart`, `status`, `logs`: parse, call raictl.supervisor, render, exit code.

Exit codes: 0 ok, 1 a start or stop failed, 2 usage, 3 (status only) something is not running
or not healthy.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from raictl.cli import app
from raictl.settings import load_settings

Services = Annotated[Optional[list[str]], typer.Argument(help="Services (default: all).", show_default=False)]
Timeout = Annotated[float, typer.Option("--timeout", help="Seconds to wait for every service to be ready.")]


def _progress():
    from raictl import render

    return render.up_progress if sys.stderr.isatty() else None


def _finish_up(result) -> None:
    from raictl import render

    if sys.stderr.isatty():
        render.up_progress_done()
    render.up_result(result)
    raise typer.Exit(0 if result.ok else 1)


@app.command()
def up(services: Services = None,
       foreground: Annotated[bool, typer.Option("--foreground", help="Stay in the terminal, logs "
                                                "multiplexed; Ctrl-C stops everything.")] = False,
       timeout: Timeout = 60.0) -> None:
    """Pre-flight, start the services (detached), and return when every one is ready."""
    from raictl.supervisor import control

    settings = load_settings()
    if foreground:
        _foreground(settings, services or [])
        return
    _finish_up(control.up(settings, services or [], timeout, _progress()))


def _foreground(settings, names: list[str]) -> None:
    from raictl import render
    from raictl.supervisor import control

    width = max(len(n) for n in names or ["llm_api", "rai_api"])
    colours: dict[str, int] = {}

    def on_line(name: str, line: str) -> None:
        colours.setdefault(name, len(colours))
        render.log_line(name, line, max(width, len(name)), colours[name], prefixed=True)

    control.run_foreground(settings, names, on_line)


@app.command()
def down(services: Services = None) -> None:
    """Stop the services (all by default): SIGTERM, grace period, SIGKILL, no process left."""
    from raictl import render
    from raictl.supervisor import control

    render.down_result(control.down(load_settings(), services or []))


@app.command()
def restart(services: Services = None, timeout: Timeout = 60.0) -> None:
    """Stop, then start, the services (all by default)."""
    from raictl.supervisor import control

    _finish_up(control.restart(load_settings(), services or [], timeout, _progress()))


def status_fast_path(argv: list[str]) -> int | None:
    """`raictl status [--json]` without Typer's parameter machinery, which imports pydantic (~70 ms
    of a ~150 ms command that must beat `supervisorctl status`). None for any other command line,
    which Typer then parses as usual. Same core, same rendering, same errors as `status` below."""
    if not argv or argv[0] != "status" or not set(argv[1:]) <= {"--json"}:
        return None
    from raictl import render
    from raictl.cli import render_error
    from raictl.errors import RaictlError
    from raictl.supervisor.status import overview

    try:
        view = overview(load_settings())
    except RaictlError as exc:
        render_error(exc)
        return exc.exit_code
    render.service_status(view, "--json" in argv)
    return 0 if view.ok else 3


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False) -> None:
    """Each service's state, pid, uptime, restarts, last exit, listen addresses and health."""
    from raictl import render
    from raictl.supervisor.status import overview

    view = overview(load_settings())
    render.service_status(view, as_json)
    raise typer.Exit(0 if view.ok else 3)


@app.command()
def logs(service: Annotated[Optional[str], typer.Argument(help="One service (default: all, by time).")] = None,
         follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines.")] = False,
         lines: Annotated[int, typer.Option("-n", "--lines", help="How many lines to show first.")] = 50) -> None:
    """Show a service's log, or all of them interleaved by time."""
    from raictl import render
    from raictl.supervisor import logs as service_logs

    paths = service_logs.log_files(load_settings(), service)
    width = max((len(n) for n in paths), default=0)
    index = {name: i for i, name in enumerate(paths)}
    prefixed = service is None
    for name, line in service_logs.interleave(paths, lines):
        render.log_line(name, line, width, index[name], prefixed)
    if follow:
        try:
            for name, line in service_logs.follow(paths):
                render.log_line(name, line, width, index[name], prefixed)
        except KeyboardInterrupt:
            pass
